//! BitTorrent (v1, v2 and hybrid) for the client: the pure parts, no I/O.
//!
//! - [`bencode`]: strict canonical bencode; dictionaries keep their raw
//!   bytes so info hashes are of what arrived.
//! - [`limits`]: what a torrent may be, and why one is refused.
//! - [`metainfo`]: torrents of every kind (v1, v2, hybrid, single- and
//!   multi-file), every path checked, hybrids cross-checked.
//! - [`layout`]: files in the piece space (BEP 47 pads), v1 piece checks.
//! - [`torrent`]: the v2 single-file view the download engine uses, and
//!   writing v2 torrents.
//! - [`create`]: writing hybrid, v2 and v1 torrents of files and folders.
//! - [`magnet`]: `magnet:?xt=urn:btih:...` and `xt=urn:btmh:1220...` links.
//! - [`http_tracker`]: HTTP tracker requests and replies (BEP 3, 23, 7).
//! - [`mse`]: the message stream encryption handshake (MSE/PE).
//! - [`pieces`]: any torrent's blocks, padding and piece checks (v1 or v2).
//! - [`select`]: which files and pieces a user wants (`--only GLOB`).
//! - [`merkle`]: SHA-256 trees over 16 KiB blocks, piece layers, proofs.
//! - [`wire`]: the peer wire protocol's handshake and messages.
//! - [`ext`]: the BEP 10 extension handshake and BEP 9 `ut_metadata`.
//!
//! Names from the network pass [`crate::names::check_file_name`] before
//! anything else sees them; every decoder is bounded and fuzzed.

pub mod bencode;
pub mod create;
pub mod ext;
pub mod http_tracker;
pub mod layout;
pub mod limits;
pub mod magnet;
pub mod merkle;
pub mod metainfo;
pub mod mse;
pub mod pieces;
pub mod select;
pub mod torrent;
#[cfg(test)]
mod vectors;
pub mod wire;
