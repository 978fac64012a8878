//! PyTorrent: a small peer-to-peer file-sharing system.
//!
//! A tracker (UDP, [`tracker`]) knows which peers are online and which files
//! they share; clients seed files over TCP and download them in verified
//! chunks from several seeders at once. Data flows one way: bytes ->
//! [`wire`] decode -> a pure state machine that takes `now` -> actions the
//! event loop performs. Only the loops do I/O, so every decision is testable
//! without sockets and every decoder is fuzzable without a network.
//!
//! - [`wire`]: message types and codecs (no I/O).
//! - [`meta`]: file metadata (chunk hashes) and the content-derived file id.
//! - [`names`]: validation and safe display of names from the network.
//! - [`bt`]: BitTorrent v2: bencode, metainfo, magnet links, merkle trees,
//!   the peer wire protocol (pure; the client engine drives it).
//! - [`tracker`]: the tracker's registry and its mio loop.
//! - [`rand`]: OS randomness for keys, a fast PRNG for shuffles.
//! - [`config`]: the client's `config/config.txt`: parse, validate, write back.
//! - [`cli`]: small helpers shared by the binaries' command lines.
//! - [`atomic_file`]: replacing a small file whole (config, caches, sidecars).
//!
//! In tests, `sim` runs many client engines and the tracker's registry on
//! a simulated network with a fake clock.

pub mod atomic_file;
pub mod bt;
pub mod cli;
pub mod client;
pub mod config;
pub mod make_torrent;
pub mod meta;
pub mod names;
pub mod rand;
pub mod tracker;
pub mod wire;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod testutil;
