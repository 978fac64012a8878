//! File metadata and the file id: what a file is, independent of who holds
//! it or where it is stored.
//!
//! A file is cut into chunks of `chunk_size` bytes (the last one may be
//! shorter; an empty file has none). The metadata lists the SHA-256 of every
//! chunk and of the whole file. The file id is a hash of the name, size,
//! chunk size and a root digest of all those hashes
//! ([`crate::wire::tracker::file_id`]), so the id vouches for every chunk:
//! metadata fetched from an untrusted peer is checked against the id before
//! it is used, and the tracker checks the id of an announce the same way.
//!
//! Invariants of a [`FileMeta`] that passed [`FileMeta::validate`] (every
//! decoded one has): the name is a safe single path component, the chunk
//! size is within [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`], and there is
//! exactly one hash per chunk, at most [`MAX_CHUNKS`].

use crate::names;
use crate::wire::codec::{self, ALLOC_PER_WIRE_BYTE};
use crate::wire::tracker::{file_id, FileEntry};
use crate::wire::{DecodeError, FileId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// Smallest chunk size a file may use.
pub const MIN_CHUNK_SIZE: u32 = 16 * 1024;
/// Largest chunk size a file may use.
pub const MAX_CHUNK_SIZE: u32 = 64 * 1024 * 1024;
/// Most chunks in one file (4 TiB at the default 1 MiB chunk size).
pub const MAX_CHUNKS: usize = 1 << 22;
/// Largest encoded metadata: name, numbers and every chunk hash.
pub const MAX_META_LEN: usize = 64 + names::MAX_FILE_NAME + 32 * MAX_CHUNKS + 32;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// What a file is: name, size, chunking and hashes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub name: String,
    pub size: u64,
    pub chunk_size: u32,
    /// SHA-256 of every chunk, in order.
    pub chunks: Vec<Hash>,
    /// SHA-256 of the whole file.
    pub sha256: Hash,
}

/// Why metadata is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaError {
    BadName(names::NameError),
    BadChunkSize(u32),
    /// The number of chunk hashes does not match size / chunk size.
    ChunkCount {
        expected: u64,
        got: usize,
    },
    TooManyChunks(u64),
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaError::BadName(e) => write!(f, "file name {e}"),
            MetaError::BadChunkSize(n) => write!(
                f,
                "chunk size {n} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE} bytes"
            ),
            MetaError::ChunkCount { expected, got } => {
                write!(f, "metadata lists {got} chunk hashes, the size needs {expected}")
            }
            MetaError::TooManyChunks(n) => write!(f, "{n} chunks is more than the limit of {MAX_CHUNKS}"),
        }
    }
}

impl std::error::Error for MetaError {}

/// Lower-case hex of `bytes` (ids and hashes in messages and logs).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The largest metadata a file of `size` bytes can have: its name, and a
/// hash per chunk of the smallest size.
pub fn max_meta_len(size: u64) -> usize {
    let chunks = chunk_count(size, MIN_CHUNK_SIZE).min(MAX_CHUNKS as u64) as usize;
    (64 + names::MAX_FILE_NAME + 32 * chunks + 32).min(MAX_META_LEN)
}

/// Number of chunks a file of `size` bytes has.
pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    size.div_ceil(u64::from(chunk_size.max(1)))
}

impl FileMeta {
    /// Hashes `reader` to its end, chunk by chunk, through a [`MetaBuilder`].
    pub fn from_reader(name: &str, mut reader: impl Read, chunk_size: u32) -> io::Result<FileMeta> {
        let invalid = |e: MetaError| io::Error::new(io::ErrorKind::InvalidInput, e);
        let mut builder = MetaBuilder::new(chunk_size).map_err(invalid)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => builder.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        builder.finish(name).map_err(invalid)
    }

    /// The file id: [`file_id`] of the name, size, chunk size and
    /// [`FileMeta::root`].
    pub fn id(&self) -> FileId {
        file_id(&self.name, self.size, self.chunk_size, &self.root())
    }

    /// One digest of every hash in the metadata: SHA-256 over the chunk
    /// hashes, then the whole-file hash. With the name, size and chunk size
    /// it makes the id, so the tracker can check an id without the hashes.
    pub fn root(&self) -> Hash {
        let mut h = Sha256::new();
        for chunk in &self.chunks {
            h.update(chunk);
        }
        h.update(self.sha256);
        h.finalize().into()
    }

    /// The tracker entry announcing this file.
    pub fn entry(&self, complete: bool) -> FileEntry {
        FileEntry {
            name: self.name.clone(),
            size: self.size,
            chunk_size: self.chunk_size,
            root: self.root(),
            complete,
        }
    }

    /// Checks the invariants in the module header.
    pub fn validate(&self) -> Result<(), MetaError> {
        names::check_file_name(&self.name).map_err(MetaError::BadName)?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(MetaError::BadChunkSize(self.chunk_size));
        }
        let expected = chunk_count(self.size, self.chunk_size);
        if expected > MAX_CHUNKS as u64 {
            return Err(MetaError::TooManyChunks(expected));
        }
        if self.chunks.len() as u64 != expected {
            return Err(MetaError::ChunkCount {
                expected,
                got: self.chunks.len(),
            });
        }
        Ok(())
    }

    /// Length of chunk `index` in bytes (the last may be short).
    pub fn chunk_len(&self, index: usize) -> u64 {
        let start = index as u64 * u64::from(self.chunk_size);
        self.size.saturating_sub(start).min(u64::from(self.chunk_size))
    }
}

/// Builds a [`FileMeta`] from a file fed in pieces of any size, so a caller
/// can hash a large file a slice at a time (between events of a loop) and
/// still read every byte only once.
///
/// Each byte goes to both the current chunk's hash and the whole-file hash
/// while it is still in cache. At most [`MAX_CHUNKS`] chunk hashes are kept:
/// past that the file is refused by [`MetaBuilder::finish`] anyway, so
/// storing more would only let an oversized file grow memory.
pub struct MetaBuilder {
    chunk_size: u32,
    whole: Sha256,
    chunk: Sha256,
    /// Bytes fed into `chunk` since the last chunk boundary.
    in_chunk: u64,
    size: u64,
    chunks: Vec<Hash>,
}

impl MetaBuilder {
    /// A builder for a file cut into chunks of `chunk_size` bytes.
    pub fn new(chunk_size: u32) -> Result<MetaBuilder, MetaError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(MetaError::BadChunkSize(chunk_size));
        }
        Ok(MetaBuilder {
            chunk_size,
            whole: Sha256::new(),
            chunk: Sha256::new(),
            in_chunk: 0,
            size: 0,
            chunks: Vec::new(),
        })
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        let chunk_size = u64::from(self.chunk_size);
        while !data.is_empty() {
            // in_chunk < chunk_size <= MAX_CHUNK_SIZE, so this fits a usize.
            let room = (chunk_size - self.in_chunk) as usize;
            let (head, rest) = data.split_at(data.len().min(room));
            self.chunk.update(head);
            self.whole.update(head);
            self.in_chunk += head.len() as u64;
            self.size += head.len() as u64;
            data = rest;
            if self.in_chunk == chunk_size {
                self.push_chunk();
            }
        }
    }

    fn push_chunk(&mut self) {
        let hash: Hash = self.chunk.finalize_reset().into();
        if self.chunks.len() < MAX_CHUNKS {
            self.chunks.push(hash);
        }
        self.in_chunk = 0;
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.size
    }

    /// The metadata of the bytes fed, named `name`; checked with
    /// [`FileMeta::validate`].
    pub fn finish(mut self, name: &str) -> Result<FileMeta, MetaError> {
        if self.in_chunk > 0 {
            self.push_chunk();
        }
        let count = chunk_count(self.size, self.chunk_size);
        if count > MAX_CHUNKS as u64 {
            return Err(MetaError::TooManyChunks(count));
        }
        let meta = FileMeta {
            name: name.to_string(),
            size: self.size,
            chunk_size: self.chunk_size,
            chunks: self.chunks,
            sha256: self.whole.finalize().into(),
        };
        meta.validate()?;
        Ok(meta)
    }
}

/// Appends the encoding of `meta` (the bytes its id is the hash of).
pub fn encode_meta(meta: &FileMeta, out: &mut Vec<u8>) -> Result<(), codec::EncodeError> {
    codec::encode(meta, out, MAX_META_LEN)
}

/// Decodes metadata and checks its invariants. Does not check it against a
/// file id: the caller compares [`FileMeta::id`] with the id it asked for.
pub fn decode_meta(buf: &[u8]) -> Result<FileMeta, DecodeError> {
    // Hashes are 32 bytes on the wire and in memory, so the memory limit
    // can follow the wire limit closely.
    let meta: FileMeta =
        codec::decode_exact::<FileMeta, { MAX_META_LEN + 64 * ALLOC_PER_WIRE_BYTE }>(buf, MAX_META_LEN)?;
    meta.validate()
        .map_err(|_| DecodeError::Malformed("metadata breaks its invariants"))?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: u32 = MIN_CHUNK_SIZE;

    fn data(len: usize) -> Vec<u8> {
        crate::testutil::data(len, 0)
    }

    #[test]
    fn chunking_at_the_edges() {
        for (len, chunks) in [(0, 0), (1, 1), (CHUNK as usize, 1), (3 * CHUNK as usize + 1, 4)] {
            let bytes = data(len);
            let meta = FileMeta::from_reader("f", &bytes[..], CHUNK).unwrap();
            assert_eq!((meta.size, meta.chunks.len()), (len as u64, chunks), "len {len}");
            assert_eq!(meta.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
            for (i, hash) in meta.chunks.iter().enumerate() {
                let start = i * CHUNK as usize;
                let end = (start + CHUNK as usize).min(len);
                assert_eq!(meta.chunk_len(i), (end - start) as u64);
                assert_eq!(*hash, <[u8; 32]>::from(Sha256::digest(&bytes[start..end])));
            }
        }
    }

    #[test]
    fn reads_in_odd_pieces_hash_the_same() {
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(777);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let bytes = data(5 * CHUNK as usize + 123);
        let a = FileMeta::from_reader("f", &bytes[..], CHUNK).unwrap();
        let b = FileMeta::from_reader("f", Dribble(&bytes), CHUNK).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn builder_fed_in_odd_pieces_matches_from_reader() {
        let bytes = data(3 * CHUNK as usize + 1);
        let expected = FileMeta::from_reader("f", &bytes[..], CHUNK).unwrap();
        // Pieces that straddle chunk boundaries, land exactly on one, and are empty.
        for sizes in [
            &[1usize, 0, 7][..],
            &[CHUNK as usize - 1, 2],
            &[CHUNK as usize],
            &[5000, 99_999],
        ] {
            let mut b = MetaBuilder::new(CHUNK).unwrap();
            let mut rest = &bytes[..];
            for &n in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (head, tail) = rest.split_at(n.min(rest.len()));
                b.update(head);
                rest = tail;
            }
            assert_eq!(b.bytes(), bytes.len() as u64);
            assert_eq!(b.finish("f").unwrap(), expected, "pieces {sizes:?}");
        }
        let empty = MetaBuilder::new(CHUNK).unwrap().finish("e").unwrap();
        assert_eq!(empty, FileMeta::from_reader("e", &b""[..], CHUNK).unwrap());
        assert!(empty.chunks.is_empty());
        assert_eq!(
            MetaBuilder::new(CHUNK - 1).err(),
            Some(MetaError::BadChunkSize(CHUNK - 1))
        );
        let mut bad = MetaBuilder::new(CHUNK).unwrap();
        bad.update(b"x");
        assert!(matches!(bad.finish("a/b"), Err(MetaError::BadName(_))));
    }

    #[test]
    fn id_covers_name_and_content() {
        let bytes = data(100_000);
        let a = FileMeta::from_reader("a.bin", &bytes[..], CHUNK).unwrap();
        let renamed = FileMeta::from_reader("b.bin", &bytes[..], CHUNK).unwrap();
        let mut changed = bytes.clone();
        changed[99_999] ^= 1;
        let edited = FileMeta::from_reader("a.bin", &changed[..], CHUNK).unwrap();
        assert_ne!(a.id(), renamed.id());
        assert_ne!(a.id(), edited.id());
        assert_eq!(
            a.id(),
            FileMeta::from_reader("a.bin", &bytes[..], CHUNK).unwrap().id()
        );
    }

    #[test]
    fn round_trip_and_refusals() {
        let meta = FileMeta::from_reader("ñame with spaces", &data(70_000)[..], CHUNK).unwrap();
        let mut buf = Vec::new();
        encode_meta(&meta, &mut buf).unwrap();
        assert_eq!(decode_meta(&buf), Ok(meta.clone()));
        for cut in 0..buf.len() {
            assert_eq!(decode_meta(&buf[..cut]), Err(DecodeError::Truncated), "cut {cut}");
        }
        let mut lying = meta.clone();
        lying.chunks.pop();
        buf.clear();
        encode_meta(&lying, &mut buf).unwrap();
        assert!(matches!(decode_meta(&buf), Err(DecodeError::Malformed(_))));
        let mut evil = meta;
        evil.name = "../../.bashrc".into();
        assert!(matches!(evil.validate(), Err(MetaError::BadName(_))));
        assert!(
            FileMeta::from_reader("x", &b"abc"[..], 1).is_err(),
            "chunk size too small"
        );
    }
}
