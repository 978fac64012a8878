//! How any torrent's piece space (v1, v2 or hybrid; one file or many)
//! divides into 16 KiB blocks, and what each piece is checked against.
//! Pure: geometry over a [`Metainfo`], no I/O.
//!
//! Blocks are counted over the whole piece space (padding included), a
//! piece's blocks being `piece * blocks_per_piece ..`; only the last
//! block of the space is short. A block that lies wholly in padding
//! ([`Metainfo::pad_block`]) is zeros by definition: never asked for.
//!
//! A piece is checked one of two ways ([`Check`]):
//! - v2 (v2 and hybrid torrents whose piece layers are known): every file
//!   starts on a piece boundary, so a piece holds one file's bytes (then
//!   padding); its hash is the merkle subtree over that file's blocks
//!   within it (a block's leaf is the hash of its file bytes only), as the
//!   file's piece layer (or, for a file of one piece, its root) says.
//! - v1: SHA-1 over the piece's bytes, padding as zeros, across file
//!   boundaries.
//!
//! A hybrid is checked by its v2 tree when its layers are known: every
//! byte is hashed once. (Its v1 hashes were cross-checked for structure
//! when it was parsed; a hybrid whose halves describe different bytes
//! is not detected by a download that checks one half.)

use super::layout::Sha1Hash;
use super::merkle::{self, Hash, HashRequest, BLOCK};
use super::metainfo::Metainfo;

/// How a download checks its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// By the v2 merkle tree (needs every piece layer).
    V2,
    /// By the v1 SHA-1 piece hashes.
    V1,
}

/// What piece `index` of a v2 check covers: one file's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Piece {
    /// The file (index into `layout.files`).
    pub file: usize,
    /// The file's own tree shape.
    pub tree: merkle::Layout,
    /// The piece's index within that file.
    pub index: u64,
    /// The file's bytes in this piece (the rest of the piece is padding).
    pub len: u64,
}

impl Metainfo {
    pub fn piece_len(&self) -> u64 {
        self.layout.piece_len
    }

    /// Bytes of the piece space, padding included.
    pub fn total_len(&self) -> u64 {
        self.layout.total_len
    }

    /// Bytes of the files (padding excluded).
    pub fn content_len(&self) -> u64 {
        self.layout.files.iter().filter(|f| !f.pad).map(|f| f.len).sum()
    }

    pub fn pieces(&self) -> u64 {
        self.layout.pieces()
    }

    pub fn piece_size(&self, index: u64) -> u64 {
        self.layout.piece_size(index)
    }

    pub fn blocks_per_piece(&self) -> u64 {
        self.layout.piece_len / BLOCK as u64
    }

    /// Blocks of the piece space (the last of each piece may be short
    /// only at the end of the space).
    pub fn blocks(&self) -> u64 {
        let per = self.blocks_per_piece();
        let pieces = self.pieces();
        match pieces {
            0 => 0,
            n => (n - 1) * per + self.piece_size(n - 1).div_ceil(BLOCK as u64),
        }
    }

    /// Where block `b` starts in the piece space and its length.
    pub fn block_range(&self, b: u64) -> (u64, u64) {
        let per = self.blocks_per_piece();
        let at = (b / per) * self.layout.piece_len + (b % per) * BLOCK as u64;
        (at, self.total_len().saturating_sub(at).min(BLOCK as u64))
    }

    /// Whether block `b` lies wholly in padding (or is past the end).
    pub fn pad_block(&self, b: u64) -> bool {
        let (at, len) = self.block_range(b);
        let end = at + len;
        let first = self.layout.files.partition_point(|f| f.offset + f.len <= at);
        !self.layout.files[first..]
            .iter()
            .take_while(|f| f.offset < end)
            .any(|f| !f.pad && f.len > 0)
    }

    /// Whether block `b` holds any padding.
    pub fn touches_padding(&self, b: u64) -> bool {
        let (at, len) = self.block_range(b);
        let end = at + len;
        let first = self.layout.files.partition_point(|f| f.offset + f.len <= at);
        self.layout.files[first..]
            .iter()
            .take_while(|f| f.offset < end)
            .any(|f| f.pad)
    }

    /// Sets the padding inside `data` (block `b`'s bytes) to zeros: what
    /// a peer sends there is not the torrent's.
    pub fn zero_padding(&self, b: u64, data: &mut [u8]) {
        let (at, len) = self.block_range(b);
        let end = at + len.min(data.len() as u64);
        let first = self.layout.files.partition_point(|f| f.offset + f.len <= at);
        for f in self.layout.files[first..].iter().take_while(|f| f.offset < end) {
            if f.pad {
                let from = f.offset.max(at) - at;
                let to = (f.offset + f.len).min(end) - at;
                data[from as usize..to as usize].fill(0);
            }
        }
    }

    /// How pieces can be checked now: by v2 when every multi-piece file's
    /// layer is known, else by v1 when the torrent has v1 hashes.
    pub fn check(&self) -> Option<Check> {
        if self.hashes.v2.is_some() && self.layers_complete() {
            return Some(Check::V2);
        }
        self.v1_pieces.as_ref().map(|_| Check::V1)
    }

    /// Whether every file of more than one piece has its piece layer.
    pub fn layers_complete(&self) -> bool {
        self.layout.files.iter().zip(&self.piece_layers).all(|(f, l)| {
            f.pad || f.pieces_root.is_none() || !self.file_tree(f.len).has_piece_layer() || l.is_some()
        })
    }

    /// The tree shape of a file of `len` bytes in this torrent.
    pub fn file_tree(&self, len: u64) -> merkle::Layout {
        merkle::Layout {
            size: len,
            piece_len: self.layout.piece_len,
        }
    }

    /// The file piece `index` belongs to under a v2 check (`None` past
    /// the end, or for a torrent without v2 roots).
    pub fn v2_piece(&self, index: u64) -> Option<V2Piece> {
        let at = index.checked_mul(self.layout.piece_len)?;
        let i = self.layout.files.partition_point(|f| f.offset + f.len <= at);
        let f = self
            .layout
            .files
            .get(i)
            .filter(|f| !f.pad && f.pieces_root.is_some())?;
        let tree = self.file_tree(f.len);
        let within = (at - f.offset) / self.layout.piece_len;
        Some(V2Piece {
            file: i,
            tree,
            index: within,
            len: tree.piece_size(within),
        })
    }

    /// The v2 hash piece `index` must have, once known.
    pub fn v2_expected(&self, p: &V2Piece) -> Option<Hash> {
        let f = &self.layout.files[p.file];
        if !p.tree.has_piece_layer() {
            return f.pieces_root;
        }
        self.piece_layers[p.file].as_ref()?.get(p.index as usize).copied()
    }

    /// The v1 hash of piece `index`.
    pub fn v1_expected(&self, index: u64) -> Option<&Sha1Hash> {
        self.v1_pieces.as_ref()?.get(index as usize)
    }

    /// The hash request for the block hashes of piece `p`, proven up to
    /// its file's root (BEP 52).
    pub fn leaf_request(&self, p: &V2Piece) -> Option<HashRequest> {
        let per = self.blocks_per_piece() as u32;
        Some(HashRequest {
            pieces_root: self.layout.files[p.file].pieces_root?,
            base: 0,
            index: p.index as u32 * per,
            count: per,
            proof_layers: p.tree.height().saturating_sub(1),
        })
    }

    /// The single file whose piece layer comes by hash requests (a v2
    /// magnet of one multi-piece file), with its tree shape.
    pub fn fetchable_layer(&self) -> Option<(usize, merkle::Layout)> {
        let stored: Vec<usize> = (0..self.layout.files.len())
            .filter(|&i| !self.layout.files[i].pad && self.layout.files[i].pieces_root.is_some())
            .collect();
        let [only] = stored[..] else {
            return None;
        };
        let tree = self.file_tree(self.layout.files[only].len);
        (tree.has_piece_layer() && self.piece_layers[only].is_none()).then_some((only, tree))
    }

    /// The 20 bytes that name the torrent in handshakes and announces:
    /// the v1 hash when it has one (every client knows it), else the v2
    /// hash truncated (BEP 52).
    pub fn wire_hash(&self) -> [u8; 20] {
        self.hashes
            .v1
            .or_else(|| self.hashes.v2_short())
            .unwrap_or_default()
    }

    /// Whether `short` names this torrent (either hash).
    pub fn is_named_by(&self, short: &[u8; 20]) -> bool {
        self.hashes.v1.as_ref() == Some(short) || self.hashes.v2_short().as_ref() == Some(short)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::create::{Kind, NewFile, TorrentHasher};

    fn made(files: &[(&str, u64)], piece_len: u64, kind: Kind) -> (Metainfo, Vec<Vec<u8>>) {
        let news = files
            .iter()
            .map(|(n, len)| NewFile {
                path: vec![n.to_string()],
                len: *len,
            })
            .collect();
        let mut h = TorrentHasher::new("t", news, piece_len, kind).unwrap();
        let mut datas = Vec::new();
        for (i, (_, len)) in files.iter().enumerate() {
            let data: Vec<u8> = (0..*len)
                .map(|j| (j as u8).wrapping_mul(7).wrapping_add(i as u8))
                .collect();
            h.update(&data).unwrap();
            h.end_file().unwrap();
            datas.push(data);
        }
        (h.finish(&[]).unwrap().metainfo, datas)
    }

    /// The piece space's bytes (pads as zeros).
    fn space(m: &Metainfo, datas: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut next = datas.iter();
        for f in &m.layout.files {
            if f.pad {
                out.extend(std::iter::repeat_n(0, f.len as usize));
            } else {
                out.extend_from_slice(next.next().unwrap());
            }
        }
        out
    }

    #[test]
    fn every_piece_of_a_hybrid_checks_by_both_halves_and_pad_blocks_are_known() {
        let (m, datas) = made(&[("a", 40_000), ("b", 0), ("c", 70_000)], 32 << 10, Kind::Hybrid);
        assert_eq!(m.check(), Some(Check::V2));
        let bytes = space(&m, &datas);
        assert_eq!(m.total_len(), bytes.len() as u64);
        assert_eq!(m.content_len(), 110_000);
        let blocks = m.blocks();
        let pads: Vec<u64> = (0..blocks).filter(|&b| m.pad_block(b)).collect();
        // "a" fills 40,000 bytes of two 32 KiB pieces: its third block
        // (from 32 KiB) holds its tail, the fourth is all padding.
        assert_eq!(pads, vec![3]);
        for p in 0..m.pieces() {
            let at = (p * m.piece_len()) as usize;
            let piece = &bytes[at..at + m.piece_size(p) as usize];
            assert!(crate::bt::layout::v1_piece_ok(piece, m.v1_expected(p).unwrap()));
            let v2 = m.v2_piece(p).unwrap();
            let leaves: Vec<Hash> = piece[..v2.len as usize]
                .chunks(BLOCK)
                .map(merkle::block_hash)
                .collect();
            assert_eq!(Some(v2.tree.piece_hash(&leaves)), m.v2_expected(&v2), "piece {p}");
        }
        let mut block = vec![0xff; BLOCK];
        m.zero_padding(2, &mut block);
        let tail = 40_000 - (32 << 10);
        assert!(block[..tail].iter().all(|&b| b == 0xff) && block[tail..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_v1_torrent_checks_by_sha1_across_files() {
        let (m, datas) = made(&[("a", 20_000), ("b", 50_000)], 16 << 10, Kind::V1Only);
        assert_eq!(m.check(), Some(Check::V1));
        assert!(m.v2_piece(0).is_none());
        let bytes = space(&m, &datas);
        assert_eq!(m.blocks(), bytes.len().div_ceil(BLOCK) as u64);
        assert!((0..m.blocks()).all(|b| !m.pad_block(b)));
        let p = 1; // spans "a" and "b"
        let at = (p * m.piece_len()) as usize;
        assert!(crate::bt::layout::v1_piece_ok(
            &bytes[at..at + BLOCK],
            m.v1_expected(p).unwrap()
        ));
        assert_eq!(m.wire_hash(), m.hashes.v1.unwrap());
    }
}
