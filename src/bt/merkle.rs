//! BEP 52 merkle trees: SHA-256 over 16 KiB blocks, two children per node,
//! leaves past the end of the file are 32 zero bytes, so any subtree of
//! padding has a fixed hash ([`pad_hash`]).
//!
//! Heights count from the leaves (0) up. A file of `n` blocks has a tree of
//! `n.next_power_of_two()` leaves; its root is the torrent's `pieces root`.
//! A piece of `piece_len` bytes is a subtree of height
//! `log2(piece_len / BLOCK)`; the "piece layer" is those subtrees' roots.
//! A file of at most one piece has no piece layer: its root is the hash of
//! its only piece (a tree of `n.next_power_of_two()` leaves, which may be
//! smaller than a piece).
//!
//! Proofs follow libtorrent (`merkle_tree::get_hashes`), which is what
//! peers send: a `hashes` message holds `count` hashes of one layer, then
//! the siblings ("uncles") of the subtree they form and of its ancestors,
//! bottom-up, for heights `log2(count)` to `proof_layers` above that layer.

use sha2::{Digest, Sha256};

/// The leaf size of every BEP 52 tree.
pub const BLOCK: usize = 16 << 10;
/// A SHA-256 digest.
pub type Hash = [u8; 32];
/// Most hashes one request may ask for (libtorrent's limit: a piece layer
/// of 8192 blocks, 128 MiB pieces).
pub const MAX_HASH_COUNT: u32 = 8192;

/// SHA-256 of two children.
pub fn hash_pair(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The leaf hash of one block (the last block of a file may be short; it
/// is hashed as it is, not padded).
pub fn block_hash(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// The hash of a subtree of height `height` holding only padding.
pub fn pad_hash(height: u32) -> Hash {
    let mut h = [0u8; 32];
    for _ in 0..height {
        h = hash_pair(&h, &h);
    }
    h
}

/// The root over `hashes` (nodes at height `height`), padded to `width`
/// nodes (a power of two at least `hashes.len()`) with pad hashes.
pub fn root(hashes: &[Hash], width: usize, height: u32) -> Hash {
    debug_assert!(width.is_power_of_two() && width >= hashes.len());
    let mut layer: Vec<Hash> = hashes.to_vec();
    let mut pad = pad_hash(height);
    let mut width = width;
    while width > 1 {
        let next: Vec<Hash> = (0..width / 2)
            .take_while(|i| 2 * i < layer.len())
            .map(|i| hash_pair(&layer[2 * i], layer.get(2 * i + 1).unwrap_or(&pad)))
            .collect();
        layer = next;
        pad = hash_pair(&pad, &pad);
        width /= 2;
    }
    layer.first().copied().unwrap_or(pad)
}

/// The shape of one file's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    /// A power of two, at least [`BLOCK`].
    pub piece_len: u64,
}

impl Layout {
    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(BLOCK as u64)
    }

    pub fn pieces(&self) -> u64 {
        self.size.div_ceil(self.piece_len)
    }

    pub fn blocks_per_piece(&self) -> u64 {
        self.piece_len / BLOCK as u64
    }

    /// Leaves of the whole tree.
    pub fn leaves(&self) -> u64 {
        self.blocks().max(1).next_power_of_two()
    }

    /// Height of the root above the leaves.
    pub fn height(&self) -> u32 {
        self.leaves().trailing_zeros()
    }

    /// Height of the piece layer.
    pub fn piece_height(&self) -> u32 {
        self.blocks_per_piece().trailing_zeros()
    }

    /// Whether the file has a piece layer (more than one piece).
    pub fn has_piece_layer(&self) -> bool {
        self.size > self.piece_len
    }

    /// Bytes of piece `index` (the last may be short).
    pub fn piece_size(&self, index: u64) -> u64 {
        self.size
            .saturating_sub(index * self.piece_len)
            .min(self.piece_len)
    }

    /// The hash of one piece from its block hashes: the subtree of a whole
    /// piece, or for a file of one piece the whole (smaller) tree.
    pub fn piece_hash(&self, block_hashes: &[Hash]) -> Hash {
        let width = if self.has_piece_layer() {
            self.blocks_per_piece() as usize
        } else {
            self.leaves() as usize
        };
        root(block_hashes, width, 0)
    }

    /// The root from the piece layer (files of more than one piece).
    pub fn root_from_piece_layer(&self, layer: &[Hash]) -> Hash {
        root(
            layer,
            self.pieces().next_power_of_two() as usize,
            self.piece_height(),
        )
    }
}

/// A hash request's fields (BEP 52), for one file's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRequest {
    pub pieces_root: Hash,
    /// Height of the requested layer.
    pub base: u32,
    pub index: u32,
    pub count: u32,
    pub proof_layers: u32,
}

impl HashRequest {
    /// Whether the request fits a tree of this layout (libtorrent's
    /// `validate_hash_request`, plus: `count` a power of two of at least 2,
    /// aligned, at most [`MAX_HASH_COUNT`]).
    pub fn fits(&self, layout: &Layout) -> bool {
        let height = layout.height();
        if self.base >= height || self.proof_layers >= height - self.base {
            return false;
        }
        let width = layout.leaves() >> self.base;
        let (index, count) = (u64::from(self.index), u64::from(self.count));
        self.count >= 2
            && self.count <= MAX_HASH_COUNT
            && self.count.is_power_of_two()
            && index % count == 0
            && index + count <= width
    }

    /// How many uncle hashes follow the `count` requested ones.
    pub fn uncles(&self) -> u32 {
        self.proof_layers
            .saturating_add(1)
            .saturating_sub(self.count.trailing_zeros())
    }
}

/// Checks a `hashes` answer to `req` against the file's `root`: the
/// requested hashes, then their uncles up to the root (so `proof_layers`
/// must reach it). Returns the requested hashes when they are proven.
pub fn verify_hashes<'h>(
    req: &HashRequest,
    layout: &Layout,
    root: &Hash,
    hashes: &'h [Hash],
) -> Option<&'h [Hash]> {
    if !req.fits(layout) || req.base + req.proof_layers + 1 != layout.height() {
        return None;
    }
    let count = req.count as usize;
    if hashes.len() != count + req.uncles() as usize {
        return None;
    }
    let (base, uncles) = hashes.split_at(count);
    let sub_height = req.count.trailing_zeros();
    // The subtree the requested hashes form.
    let mut node = self::root(base, count, req.base);
    let mut pos = u64::from(req.index) >> sub_height;
    for uncle in uncles {
        node = if pos.is_multiple_of(2) {
            hash_pair(&node, uncle)
        } else {
            hash_pair(uncle, &node)
        };
        pos /= 2;
    }
    (node == *root).then_some(base)
}

/// A whole tree kept in memory, to answer hash requests (a seeder's).
/// `layers[0]` are the leaves padded to a power of two, the last layer is
/// the root.
#[derive(Clone)]
pub struct Tree {
    layout: Layout,
    layers: Vec<Vec<Hash>>,
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tree {{ {:?}, root {} }}",
            self.layout,
            crate::meta::hex(&self.root())
        )
    }
}

impl Tree {
    /// Builds the tree from every block's hash.
    pub fn new(layout: Layout, mut leaves: Vec<Hash>) -> Tree {
        leaves.resize(layout.leaves() as usize, [0; 32]);
        let mut layers = vec![leaves];
        while layers.last().is_some_and(|l| l.len() > 1) {
            let below = layers.last().map(Vec::as_slice).unwrap_or_default();
            let up = below.chunks(2).map(|p| hash_pair(&p[0], &p[1])).collect();
            layers.push(up);
        }
        Tree { layout, layers }
    }

    /// Hashes `reader` to its end, block by block; its length must be
    /// `layout.size`.
    pub fn from_reader(layout: Layout, mut reader: impl std::io::Read) -> std::io::Result<Tree> {
        let mut leaves = Vec::with_capacity(layout.blocks() as usize);
        let mut block = vec![0u8; BLOCK];
        let mut total = 0u64;
        loop {
            let mut filled = 0;
            while filled < BLOCK {
                match reader.read(&mut block[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break;
            }
            total += filled as u64;
            leaves.push(block_hash(&block[..filled]));
            if filled < BLOCK {
                break;
            }
        }
        if total != layout.size {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file changed size while hashed",
            );
            return Err(e);
        }
        Ok(Tree::new(layout, leaves))
    }

    pub fn root(&self) -> Hash {
        self.layers
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The piece layer, without its padding (empty for a file of one
    /// piece).
    pub fn piece_layer(&self) -> &[Hash] {
        if !self.layout.has_piece_layer() {
            return &[];
        }
        let layer = &self.layers[self.layout.piece_height() as usize];
        &layer[..self.layout.pieces() as usize]
    }

    /// The answer to `req`, or `None` when it does not fit this tree.
    pub fn hashes(&self, req: &HashRequest) -> Option<Vec<Hash>> {
        if !req.fits(&self.layout) {
            return None;
        }
        let (base, index, count) = (req.base as usize, req.index as usize, req.count as usize);
        let mut out = self.layers[base][index..index + count].to_vec();
        let sub_height = req.count.trailing_zeros();
        for h in sub_height..=req.proof_layers {
            let pos = index >> h;
            out.push(self.layers[base + h as usize][pos ^ 1]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(size: usize) -> (Vec<u8>, Vec<Hash>) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let leaves = data.chunks(BLOCK).map(block_hash).collect();
        (data, leaves)
    }

    #[test]
    fn pad_hashes_are_hashes_of_zero_subtrees() {
        assert_eq!(pad_hash(0), [0; 32]);
        assert_eq!(pad_hash(1), hash_pair(&[0; 32], &[0; 32]));
        assert_eq!(root(&[], 4, 0), pad_hash(2));
        let a = [1; 32];
        assert_eq!(root(&[a], 2, 0), hash_pair(&a, &[0; 32]));
        assert_eq!(root(&[a], 1, 0), a);
    }

    #[test]
    fn the_root_from_the_piece_layer_is_the_root_from_the_blocks() {
        // 5 pieces of 4 blocks, the last short: padding within the last
        // piece and pieces past the end.
        let layout = Layout {
            size: 17 * BLOCK as u64 + 100,
            piece_len: 4 * BLOCK as u64,
        };
        let (_, leaves) = blocks(layout.size as usize);
        assert_eq!(leaves.len(), 18);
        let tree = Tree::new(layout, leaves.clone());
        let pieces: Vec<Hash> = leaves.chunks(4).map(|b| layout.piece_hash(b)).collect();
        assert_eq!(tree.piece_layer(), &pieces[..]);
        assert_eq!(layout.root_from_piece_layer(&pieces), tree.root());
        assert_eq!(root(&leaves, 32, 0), tree.root());
    }

    #[test]
    fn a_file_of_one_piece_is_its_own_piece_hash() {
        let layout = Layout {
            size: 3 * BLOCK as u64,
            piece_len: 64 * BLOCK as u64,
        };
        let (_, leaves) = blocks(layout.size as usize);
        let tree = Tree::new(layout, leaves.clone());
        assert!(tree.piece_layer().is_empty());
        assert_eq!(layout.piece_hash(&leaves), tree.root());
        assert_eq!(layout.leaves(), 4);
    }

    #[test]
    fn proofs_verify_and_any_change_fails() {
        let layout = Layout {
            size: 1280 * BLOCK as u64,
            piece_len: BLOCK as u64,
        };
        let (_, leaves) = blocks(layout.size as usize);
        let tree = Tree::new(layout, leaves);
        let root = tree.root();
        assert_eq!(layout.height(), 11);
        for (index, count) in [(0, 512), (512, 512), (1024, 256), (1024, 512), (6, 2)] {
            let req = HashRequest {
                pieces_root: root,
                base: 0,
                index,
                count,
                proof_layers: 10,
            };
            let hashes = tree.hashes(&req).unwrap();
            assert_eq!(hashes.len() as u32, count + req.uncles());
            let got = verify_hashes(&req, &layout, &root, &hashes).unwrap();
            assert_eq!(got.len(), count as usize);
            for i in 0..hashes.len() {
                let mut bad = hashes.clone();
                bad[i][3] ^= 1;
                assert!(
                    verify_hashes(&req, &layout, &root, &bad).is_none(),
                    "hash {i} changed"
                );
            }
            assert!(verify_hashes(&req, &layout, &root, &hashes[1..]).is_none());
            let moved = HashRequest {
                index: index ^ count,
                ..req
            };
            assert!(verify_hashes(&moved, &layout, &root, &hashes).is_none());
        }
        let misaligned = HashRequest {
            pieces_root: root,
            base: 0,
            index: 3,
            count: 2,
            proof_layers: 10,
        };
        assert!(tree.hashes(&misaligned).is_none());
        let too_high = HashRequest {
            proof_layers: 11,
            index: 0,
            ..misaligned
        };
        assert!(tree.hashes(&too_high).is_none());
    }
}
