//! BitTorrent v2 metainfo (BEP 52), single-file torrents only: parsing a
//! `.torrent` file or an info dictionary fetched from peers, and writing
//! one for a shared file.
//!
//! Invariants of a [`Torrent`]: the info hash is SHA-256 of the info
//! dictionary's bytes exactly as they arrived; the name passed
//! [`crate::names::check_file_name`]; the piece length is a power of two of at
//! least 16 KiB; the file is not empty; the piece layer, when present, has
//! one hash per piece and its root equals `pieces root` (a torrent whose
//! layer does not check is refused, not trusted later).

use super::bencode::{self, Dict, Value};
pub use super::limits::{
    TorrentError, MAX_FILE_SIZE, MAX_INFO_LEN, MAX_PIECE_LEN, MAX_TORRENT_LEN, MAX_TRACKERS,
};
use super::merkle::{self, Hash, Layout};
pub use super::metainfo::short_hash;
use super::metainfo::{self, Metainfo};
use sha2::{Digest, Sha256};

/// A parsed v2 single-file torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torrent {
    /// SHA-256 of the info dictionary's bytes.
    pub info_hash: Hash,
    /// The info dictionary's bytes (served to magnet leechers).
    pub info: Vec<u8>,
    /// The file's name (checked).
    pub name: String,
    pub layout: Layout,
    pub pieces_root: Hash,
    /// The piece layer, when the torrent carries it (files of more than
    /// one piece); verified against `pieces_root`.
    pub piece_layer: Option<Vec<Hash>>,
    /// Tracker URLs (`announce`, then `announce-list`), deduplicated.
    pub trackers: Vec<String>,
}

impl Torrent {
    /// Parses a `.torrent` file.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Torrent, TorrentError> {
        Torrent::from_metainfo(Metainfo::from_file_bytes(bytes)?)
    }

    /// Parses an info dictionary's bytes (from a peer: check its hash
    /// before calling, or compare `info_hash` after).
    pub fn from_info_bytes(bytes: &[u8]) -> Result<Torrent, TorrentError> {
        Torrent::from_metainfo(Metainfo::from_info_bytes(bytes)?)
    }

    /// The v2 single-file view of a torrent of any kind (a hybrid's v2
    /// half), or why it has none.
    pub fn from_metainfo(m: Metainfo) -> Result<Torrent, TorrentError> {
        let info_hash = m.hashes.v2.ok_or(TorrentError::NotV2)?;
        let ([file], [layer]) = (&m.layout.files[..], &m.piece_layers[..]) else {
            return Err(TorrentError::MultiFile);
        };
        if m.multi_file {
            return Err(TorrentError::MultiFile);
        }
        let pieces_root = file.pieces_root.ok_or(TorrentError::Empty)?;
        Ok(Torrent {
            info_hash,
            info: m.info,
            name: file.path.concat(),
            layout: Layout {
                size: file.len,
                piece_len: m.layout.piece_len,
            },
            pieces_root,
            piece_layer: layer.clone(),
            trackers: m.trackers.concat(),
        })
    }

    /// The piece layer from its bytes, when it has one hash per piece and
    /// its root is `pieces_root`.
    pub fn check_piece_layer(&self, bytes: &[u8]) -> Option<Vec<Hash>> {
        metainfo::check_piece_layer(self.layout, &self.pieces_root, bytes)
    }

    /// The hash of piece `index`: from the piece layer, or the root for a
    /// file of one piece. `None` while the layer is unknown.
    pub fn piece_hash(&self, index: u64) -> Option<Hash> {
        if !self.layout.has_piece_layer() {
            return Some(self.pieces_root);
        }
        self.piece_layer.as_ref()?.get(index as usize).copied()
    }

    /// The 20 bytes that stand for the torrent in handshakes and tracker
    /// announces (BEP 52: the v2 info hash truncated).
    pub fn short_hash(&self) -> [u8; 20] {
        short_hash(&self.info_hash)
    }
}

impl Torrent {
    /// The torrent of a file we share, from its tree: what `--torrent`
    /// writes and the seeder serves. Also returns the `.torrent` file's bytes.
    pub fn for_tree(
        name: &str,
        tree: &merkle::Tree,
        trackers: &[String],
    ) -> Result<(Torrent, Vec<u8>), TorrentError> {
        let (bytes, _) = write_torrent(name, tree.layout(), &tree.root(), tree.piece_layer(), trackers);
        Ok((Torrent::from_file_bytes(&bytes)?, bytes))
    }

    /// The smallest power-of-two piece length (at least 16 KiB) that cuts
    /// a file of `size` bytes into at most 2048 pieces.
    pub fn auto_piece_len(size: u64) -> u64 {
        let mut p = merkle::BLOCK as u64;
        while size.div_ceil(p) > 2048 && p < MAX_PIECE_LEN {
            p *= 2;
        }
        p
    }
}

/// Writes a v2 `.torrent` for one file: its info dictionary and the whole
/// file's bytes (`piece_layer` must be the tree's, empty for one piece).
pub fn write_torrent(
    name: &str,
    layout: Layout,
    pieces_root: &Hash,
    piece_layer: &[Hash],
    trackers: &[String],
) -> (Vec<u8>, Hash) {
    let info = info_bytes(name, layout, pieces_root);
    let info_hash: Hash = Sha256::digest(&info).into();
    let layers = if piece_layer.is_empty() {
        vec![]
    } else {
        vec![(*pieces_root, piece_layer.concat())]
    };
    (super::create::encode_file(&info, trackers, &layers), info_hash)
}

/// The info dictionary of a v2 single-file torrent.
pub fn info_bytes(name: &str, layout: Layout, pieces_root: &Hash) -> Vec<u8> {
    let file = Dict::from_entries(vec![
        (&b"length"[..], Value::Int(layout.size as i64)),
        (&b"pieces root"[..], Value::Bytes(pieces_root)),
    ]);
    let node = Dict::from_entries(vec![(&b""[..], Value::Dict(file))]);
    let tree = Dict::from_entries(vec![(name.as_bytes(), Value::Dict(node))]);
    let info = Dict::from_entries(vec![
        (&b"file tree"[..], Value::Dict(tree)),
        (&b"meta version"[..], Value::Int(2)),
        (&b"name"[..], Value::Bytes(name.as_bytes())),
        (&b"piece length"[..], Value::Int(layout.piece_len as i64)),
    ]);
    let mut out = Vec::new();
    bencode::encode(&Value::Dict(info), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::merkle::{block_hash, Tree, BLOCK};

    fn sample(size: usize, piece_len: u64) -> (Vec<u8>, Tree) {
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let layout = Layout {
            size: size as u64,
            piece_len,
        };
        let tree = Tree::new(layout, data.chunks(BLOCK).map(block_hash).collect());
        (data, tree)
    }

    #[test]
    fn a_written_torrent_parses_back_with_its_layer_and_hash() {
        let layout = Layout {
            size: 300 << 10,
            piece_len: 64 << 10,
        };
        let (_, tree) = sample(300 << 10, 64 << 10);
        let trackers = vec!["udp://127.0.0.1:1/announce".to_string()];
        let (bytes, hash) = write_torrent("a b.bin", layout, &tree.root(), tree.piece_layer(), &trackers);
        let t = Torrent::from_file_bytes(&bytes).unwrap();
        assert_eq!(t.info_hash, hash);
        assert_eq!(t.name, "a b.bin");
        assert_eq!(t.layout, layout);
        assert_eq!(t.pieces_root, tree.root());
        assert_eq!(t.piece_layer.as_deref(), Some(tree.piece_layer()));
        assert_eq!(t.trackers, trackers);
        assert_eq!(Sha256::digest(&t.info)[..], hash[..]);
        assert_eq!(Torrent::from_info_bytes(&t.info).unwrap().info_hash, hash);
        assert_eq!(t.piece_hash(4), Some(tree.piece_layer()[4]));
    }

    #[test]
    fn a_wrong_layer_a_bad_name_or_v1_is_refused() {
        let layout = Layout {
            size: 100 << 10,
            piece_len: 16 << 10,
        };
        let (_, tree) = sample(100 << 10, 16 << 10);
        let mut layer = tree.piece_layer().to_vec();
        layer[2][0] ^= 1;
        let (bytes, _) = write_torrent("x", layout, &tree.root(), &layer, &[]);
        assert_eq!(Torrent::from_file_bytes(&bytes), Err(TorrentError::BadPieceLayer));
        for bad in ["..", "a/b", "tab\there"] {
            let info = info_bytes(bad, layout, &tree.root());
            assert!(
                matches!(Torrent::from_info_bytes(&info), Err(TorrentError::BadName(_))),
                "{bad}"
            );
        }
        let v1 = [
            &b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:"[..],
            &[7; 20],
            b"e",
        ]
        .concat();
        assert_eq!(Torrent::from_info_bytes(&v1), Err(TorrentError::NotV2));
        let odd = Layout {
            piece_len: 48 << 10,
            ..layout
        };
        let info = info_bytes("x", odd, &tree.root());
        assert_eq!(Torrent::from_info_bytes(&info), Err(TorrentError::BadPieceLength));
        let huge = Layout {
            size: MAX_FILE_SIZE + 1,
            piece_len: 1 << 20,
        };
        let info = info_bytes("x", huge, &tree.root());
        assert_eq!(
            Torrent::from_info_bytes(&info),
            Err(TorrentError::TooBig(MAX_FILE_SIZE + 1))
        );
    }

    #[test]
    fn the_info_hash_is_of_the_bytes_as_they_came() {
        let layout = Layout {
            size: 5,
            piece_len: 16 << 10,
        };
        let info = info_bytes("x", layout, &[9; 32]);
        let t = Torrent::from_info_bytes(&info).unwrap();
        assert_eq!(t.info_hash[..], Sha256::digest(&info)[..]);
        assert_eq!(t.piece_hash(0), Some([9; 32]));
        // An extra key (libtorrent adds none, others may) changes the hash.
        let mut more = info.clone();
        more.pop();
        more.extend_from_slice(b"1:zi0ee");
        let t2 = Torrent::from_info_bytes(&more).unwrap();
        assert_ne!(t2.info_hash, t.info_hash);
    }
}
