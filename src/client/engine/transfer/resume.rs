//! The resume record ("sidecar"): beside a download's working file, a
//! `.state` file records which chunks are verified, so an interrupted
//! download (a crash, a kill, a power cut, Disconnect) picks up where it
//! stopped. Where the files live is the storage's business
//! ([`crate::client::io::part_file`]); this is the format.
//!
//! Layout: `MAGIC | id (32 bytes) | SHA-256 of the body (32) | body`, the
//! body being the codec's encoding of [`State`]: the metadata, the verified
//! chunks and, for a BitTorrent download, its torrent (info dictionary and
//! piece layer), so a magnet download resumes without asking a peer for
//! them again. Records of format 1 (no torrent) are still read. The id sits at a fixed
//! place so a record's file can be told by reading a few bytes.
//!
//! Invariants:
//! - A chunk is recorded only after its bytes are on disk: the caller syncs
//!   the `.part` file's data before [`write()`], and [`write()`] replaces the
//!   sidecar atomically (a temporary file, synced, renamed over).
//! - [`decode`] trusts nothing: a wrong magic, checksum, size or id, or
//!   metadata that does not hash to the id, is refused; a torn or missing
//!   sidecar only costs re-checking the `.part` file against the hashes.

use crate::bt::torrent::MAX_TORRENT_LEN;
use crate::client::engine::transfer::bitmap::bit;
use crate::meta::{decode_meta, encode_meta, FileMeta, MAX_CHUNKS, MAX_META_LEN};
use crate::wire::codec::{self, ALLOC_PER_WIRE_BYTE};
use crate::wire::{DecodeError, FileId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// First bytes of every sidecar written (format version 2).
pub const MAGIC: &[u8; 8] = b"PYTRES\x00\x02";
/// First bytes of a format 1 sidecar (no torrent), still read.
const MAGIC_V1: &[u8; 8] = b"PYTRES\x00\x01";
/// What a record's file name ends with.
pub const SUFFIX: &str = ".state";
const HEADER: usize = MAGIC.len() + 32 + 32;
/// Largest sidecar: the header, the metadata and one bit per chunk.
pub const MAX_STATE_LEN: usize = HEADER + MAX_META_LEN + MAX_CHUNKS / 8 + MAX_TORRENT_LEN + 64;
/// Most sidecars looked at when searching a directory.
pub const MAX_SCANNED: usize = 1024;

/// What a sidecar holds: the file's metadata (so a resumed download needs
/// no peer to know what it is fetching) and the verified chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub meta: FileMeta,
    /// Bit `i` (of byte `i / 8`, least significant first) is chunk `i`.
    pub verified: Vec<u8>,
    /// A BitTorrent download's torrent as `.torrent` bytes (empty for a
    /// native download); parsed and checked by whoever uses it.
    pub torrent: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    meta: Vec<u8>,
    verified: Vec<u8>,
    torrent: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct BodyV1 {
    meta: Vec<u8>,
    verified: Vec<u8>,
}

impl State {
    /// A state with no chunk verified.
    pub fn new(meta: FileMeta) -> State {
        let verified = vec![0; meta.chunks.len().div_ceil(8)];
        State {
            meta,
            verified,
            torrent: Vec::new(),
        }
    }

    pub fn is_verified(&self, index: usize) -> bool {
        bit(&self.verified, index)
    }

    /// Chunks recorded as verified.
    pub fn count(&self) -> usize {
        self.verified.iter().map(|b| b.count_ones() as usize).sum()
    }
}

/// Encodes a sidecar for `meta` with the `verified` bitmap and `torrent`
/// (empty for a native download).
pub fn encode(meta: &FileMeta, verified: &[u8], torrent: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    // Metadata we hold was validated, so it always encodes.
    let _ = encode_meta(meta, &mut encoded);
    let mut body = Vec::new();
    let _ = codec::encode(
        &Body {
            meta: encoded,
            verified: verified.to_vec(),
            torrent: torrent.to_vec(),
        },
        &mut body,
        MAX_STATE_LEN,
    );
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&meta.id());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// The file id a sidecar claims, from its header alone.
pub fn peek_id(bytes: &[u8]) -> Option<FileId> {
    if bytes.len() < HEADER || (&bytes[..MAGIC.len()] != MAGIC && &bytes[..MAGIC.len()] != MAGIC_V1) {
        return None;
    }
    bytes[MAGIC.len()..MAGIC.len() + 32].try_into().ok()
}

/// Decodes and checks a sidecar (see the module's invariants).
pub fn decode(bytes: &[u8]) -> Result<State, DecodeError> {
    if bytes.len() > MAX_STATE_LEN {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: MAX_STATE_LEN,
        });
    }
    if bytes.len() < HEADER {
        return Err(DecodeError::Truncated);
    }
    let id = peek_id(bytes).ok_or(DecodeError::BadMagic)?;
    let body = &bytes[HEADER..];
    if Sha256::digest(body).as_slice() != &bytes[MAGIC.len() + 32..HEADER] {
        return Err(DecodeError::Malformed(
            "checksum mismatch (a torn or damaged sidecar)",
        ));
    }
    const LIMIT: usize = MAX_STATE_LEN + 64 * ALLOC_PER_WIRE_BYTE;
    let body = if &bytes[..MAGIC.len()] == MAGIC {
        codec::decode_exact::<Body, LIMIT>(body, MAX_STATE_LEN)?
    } else {
        let v1 = codec::decode_exact::<BodyV1, LIMIT>(body, MAX_STATE_LEN)?;
        Body {
            meta: v1.meta,
            verified: v1.verified,
            torrent: Vec::new(),
        }
    };
    let meta = decode_meta(&body.meta)?;
    if meta.id() != id {
        return Err(DecodeError::Malformed("metadata does not match the sidecar's id"));
    }
    if body.verified.len() != meta.chunks.len().div_ceil(8) {
        return Err(DecodeError::Malformed("chunk bitmap of the wrong size"));
    }
    Ok(State {
        meta,
        verified: body.verified,
        torrent: body.torrent,
    })
}

/// Replaces the sidecar at `path` atomically: a temporary file beside it
/// is written and synced, then renamed over.
pub fn write(path: &Path, meta: &FileMeta, verified: &[u8], torrent: &[u8]) -> io::Result<()> {
    crate::atomic_file::write(path, &encode(meta, verified, torrent))
}

/// Reads and decodes the sidecar at `path`.
pub fn read(path: &Path) -> Result<State, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_STATE_LEN as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| e.to_string())?;
    decode(&bytes).map_err(|e| e.to_string())
}

/// Every readable sidecar in `dir` (at most [`MAX_SCANNED`] looked at),
/// with its path. Damaged ones are skipped: their `.part` is re-checked
/// when the file is downloaded again.
pub fn scan(dir: &Path) -> Vec<(PathBuf, State)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(SUFFIX))
        .take(MAX_SCANNED)
        .filter_map(|e| read(&e.path()).ok().map(|s| (e.path(), s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MIN_CHUNK_SIZE;
    use crate::testutil::{data, TempDir};

    fn state() -> State {
        let meta = FileMeta::from_reader(
            "ñame.bin",
            &data(10 * MIN_CHUNK_SIZE as usize + 3, 2)[..],
            MIN_CHUNK_SIZE,
        )
        .unwrap();
        let mut s = State::new(meta);
        for i in [0, 3, 9, 10] {
            crate::client::engine::transfer::bitmap::set_bit(&mut s.verified, i);
        }
        s
    }

    #[test]
    fn round_trips_and_counts() {
        let s = state();
        assert_eq!(s.count(), 4);
        assert!(s.is_verified(9) && !s.is_verified(8));
        let bytes = encode(&s.meta, &s.verified, &s.torrent);
        assert_eq!(peek_id(&bytes), Some(s.meta.id()));
        assert_eq!(decode(&bytes), Ok(s.clone()));
        let with_torrent = State {
            torrent: b"d4:infod...ee".to_vec(),
            ..s.clone()
        };
        let bytes = encode(&s.meta, &s.verified, &with_torrent.torrent);
        assert_eq!(decode(&bytes), Ok(with_torrent));
    }

    #[test]
    fn a_format_1_record_is_still_read() {
        let s = state();
        let mut encoded = Vec::new();
        encode_meta(&s.meta, &mut encoded).unwrap();
        let mut body = Vec::new();
        let v1 = BodyV1 {
            meta: encoded,
            verified: s.verified.clone(),
        };
        codec::encode(&v1, &mut body, MAX_STATE_LEN).unwrap();
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&s.meta.id());
        bytes.extend_from_slice(&Sha256::digest(&body));
        bytes.extend_from_slice(&body);
        assert_eq!(decode(&bytes), Ok(s));
    }

    #[test]
    fn torn_damaged_and_foreign_sidecars_are_refused() {
        let s = state();
        let bytes = encode(&s.meta, &s.verified, &[]);
        for cut in [0, 5, HEADER - 1, HEADER, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in [0, 10, HEADER + 1, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {at}");
        }
        // A right checksum over metadata that is not the claimed file.
        let mut other = bytes.clone();
        other[MAGIC.len()] ^= 1;
        assert!(matches!(decode(&other), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn written_atomically_and_scanned() {
        let dir = TempDir::new("resume");
        let s = state();
        write(&dir.path().join("a.state"), &s.meta, &s.verified, &[]).unwrap();
        // Another file's record and some litter: the litter is skipped.
        let mut other = state();
        other.meta.name = "other.bin".into();
        write(&dir.path().join("b.state"), &other.meta, &other.verified, &[]).unwrap();
        fs::write(dir.path().join("junk.state"), b"not a sidecar").unwrap();
        fs::write(dir.path().join("c.part"), b"not a record at all").unwrap();
        let mut found: Vec<State> = scan(dir.path()).into_iter().map(|(_, st)| st).collect();
        found.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        // "other.bin" sorts before "ñame.bin" (bytes).
        assert_eq!(found, vec![other, s.clone()]);
        assert_eq!(read(&dir.path().join("a.state")).unwrap(), s);
        assert!(!dir.path().join("a.state.tmp").exists());
    }
}
