//! What a torrent may be, and why one is refused: the limits every
//! torrent read or written is held to, and [`TorrentError`] (its
//! `Display` never repeats network text). Shared by the metainfo model
//! ([`super::metainfo`]), its v2 single-file view ([`super::torrent`]) and
//! the writer ([`super::create`]), which import from here, never from each
//! other's errors.

use super::bencode;
use crate::names;
use std::fmt;

/// Largest `.torrent` file or info dictionary read (a 64 GiB file with
/// 16 KiB pieces has a 128 MiB piece layer; such torrents get their layer
/// by hash requests instead).
pub const MAX_TORRENT_LEN: usize = 16 << 20;
/// Largest info dictionary accepted from peers (BEP 9).
pub const MAX_INFO_LEN: usize = 1 << 20;
/// Largest piece length accepted: the largest chunk the working files take.
pub const MAX_PIECE_LEN: u64 = crate::meta::MAX_CHUNK_SIZE as u64;
/// Largest file a torrent may describe (256 GiB): bounds what a download
/// keeps per block (one byte each, 16 MiB at most).
pub const MAX_FILE_SIZE: u64 = 256 << 30;
/// Most trackers kept from a torrent or magnet link.
pub const MAX_TRACKERS: usize = 16;

/// Most entries (files and pads) of one torrent.
pub const MAX_FILES: usize = 100_000;

/// Why a torrent is refused; `Display` never repeats network text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentError {
    Bencode(bencode::Error),
    TooLarge(usize),
    Missing(&'static str),
    NotV2,
    MultiFile,
    BadName(names::NameError),
    BadPieceLength,
    Empty,
    TooBig(u64),
    BadPieceLayer,
    UnknownVersion,
    HybridMismatch,
    TooManyFiles,
    DuplicatePath,
    Symlink,
    /// A file being put in a torrent had another length than announced.
    SizeChanged,
}

impl fmt::Display for TorrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TorrentError::Bencode(e) => write!(f, "{e}"),
            TorrentError::TooLarge(n) => write!(f, "{n} bytes is too large for a torrent"),
            TorrentError::Missing(what) => write!(f, "missing or malformed {what}"),
            TorrentError::NotV2 => write!(
                f,
                "a BitTorrent v1 torrent: this client downloads only v2 and hybrid torrents so far"
            ),
            TorrentError::MultiFile => write!(f, "multi-file torrents are not downloaded yet"),
            TorrentError::BadName(e) => write!(f, "file name {e}"),
            TorrentError::BadPieceLength => write!(
                f,
                "piece length must be a power of two from 16 KiB to {} MiB",
                MAX_PIECE_LEN >> 20
            ),
            TorrentError::Empty => write!(f, "empty torrents are not supported"),
            TorrentError::TooBig(n) => {
                write!(f, "{n} bytes is more than the {} GiB limit", MAX_FILE_SIZE >> 30)
            }
            TorrentError::BadPieceLayer => write!(f, "the piece layer does not match its pieces root"),
            TorrentError::UnknownVersion => write!(f, "an unknown torrent version (meta version is not 2)"),
            TorrentError::HybridMismatch => {
                write!(f, "a hybrid torrent whose v1 and v2 file lists disagree")
            }
            TorrentError::TooManyFiles => write!(f, "more than {} files", MAX_FILES),
            TorrentError::DuplicatePath => {
                write!(f, "two files with one path, or a file that is also a folder")
            }
            TorrentError::Symlink => write!(f, "symbolic links in torrents are not supported"),
            TorrentError::SizeChanged => write!(f, "a file changed size while it was hashed"),
        }
    }
}

impl std::error::Error for TorrentError {}

impl From<bencode::Error> for TorrentError {
    fn from(e: bencode::Error) -> Self {
        TorrentError::Bencode(e)
    }
}
