//! Writing torrents: hybrid v1+v2 (the default), v2-only or v1-only, for
//! one file or a folder of files. Pure: the caller
//! reads the files and feeds their bytes in order; this module hashes them
//! once as they pass (SHA-1 per v1 piece, SHA-256 per 16 KiB v2 leaf) and
//! writes the `.torrent` bytes.
//!
//! The output is what libtorrent writes: v1 files in the v2 file tree's
//! order (sorted path components), a BEP 47 pad file (`attr` `p`, path
//! `.pad/N`) after each file that is not the last and does not end on a
//! piece boundary, the v2 `piece layers` for files of more than one piece,
//! `announce` and one `announce-list` tier per tracker. No creation date,
//! so the same files give the same bytes.
//!
//! Invariant: the bytes [`TorrentHasher::finish`] returns parse back with
//! [`Metainfo::from_file_bytes`] into the layout that was hashed (it is
//! checked before they are returned).

use super::bencode::{self, Dict, Value};
use super::layout::{FileEntry, FileLayout, Sha1Hash};
use super::limits::{TorrentError, MAX_FILES, MAX_PIECE_LEN};
use super::merkle::{self, Hash, Tree, BLOCK};
use super::metainfo::{check_layout, Metainfo};
use crate::names;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Which halves a new torrent has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// v1 and v2: aria2c, Transmission and libtorrent 1 read the v1 half.
    Hybrid,
    V2Only,
    /// v1 without pads, as mktorrent writes: for clients that cannot read
    /// hybrids (aria2c 1.36 hashes their info dictionary wrongly,
    /// Transmission 3.00 refuses their empty dictionary keys).
    V1Only,
}

/// A file to put in a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Components below the torrent's folder; empty for a single-file
    /// torrent (whose file is named by the torrent's name).
    pub path: Vec<String>,
    pub len: u64,
}

/// A written torrent.
pub struct Made {
    pub metainfo: Metainfo,
    /// The `.torrent` file's bytes.
    pub bytes: Vec<u8>,
    /// Per entry of the layout: its v2 tree (what a seeder serves hashes
    /// from), for files of 1 byte or more.
    pub trees: Vec<Option<Tree>>,
}

/// A torrent being hashed: `update` with each file's bytes in order,
/// `end_file` after each, then `finish`.
pub struct TorrentHasher {
    name: String,
    kind: Kind,
    multi: bool,
    layout: FileLayout,
    /// The entry of `layout.files` being fed, and how much of it came.
    at: usize,
    fed: u64,
    /// The v1 piece being hashed, and its bytes so far.
    piece: Sha1,
    piece_fill: u64,
    pieces: Vec<Sha1Hash>,
    /// The v2 leaf being hashed, its bytes so far, and the file's leaves.
    leaf: Sha256,
    leaf_fill: usize,
    leaves: Vec<Hash>,
    /// One tree per entry (files of 1 byte or more).
    trees: Vec<Option<Tree>>,
}

/// Zeros hashed for pads.
const ZEROS: [u8; BLOCK] = [0; BLOCK];

impl TorrentHasher {
    /// Starts a torrent named `name` of `files` (one with an empty path
    /// for a single file, else paths in any order: they are sorted here).
    /// `piece_len` is a power of two from 16 KiB; every name is checked as
    /// shared names are.
    pub fn new(
        name: &str,
        mut files: Vec<NewFile>,
        piece_len: u64,
        kind: Kind,
    ) -> Result<TorrentHasher, TorrentError> {
        names::check_file_name(name).map_err(TorrentError::BadName)?;
        if files.is_empty() {
            return Err(TorrentError::Missing("files"));
        }
        if files.len() > MAX_FILES {
            return Err(TorrentError::TooManyFiles);
        }
        let single = files.len() == 1 && files[0].path.is_empty();
        if !single {
            files.sort_by(|a, b| a.path.cmp(&b.path));
        }
        let entries = files
            .into_iter()
            .map(|f| {
                let mut path = if single { vec![] } else { vec![name.to_string()] };
                path.extend(f.path);
                if path.is_empty() {
                    path.push(name.to_string());
                }
                FileEntry {
                    path,
                    len: f.len,
                    offset: 0,
                    pad: false,
                    executable: false,
                    hidden: false,
                    pieces_root: None,
                }
            })
            .collect();
        let layout = match kind {
            Kind::V1Only => FileLayout::new(piece_len, entries),
            Kind::Hybrid | Kind::V2Only => FileLayout::aligned(piece_len, entries),
        };
        // The same checks as a torrent from the network gets.
        for c in layout.files.iter().flat_map(|f| &f.path) {
            names::check_file_name(c).map_err(TorrentError::BadName)?;
        }
        if !piece_len.is_power_of_two() || !(BLOCK as u64..=MAX_PIECE_LEN).contains(&piece_len) {
            return Err(TorrentError::BadPieceLength);
        }
        check_layout(&layout)?;
        if layout.total_len == 0 {
            return Err(TorrentError::Empty);
        }
        let mut h = TorrentHasher {
            name: name.to_string(),
            kind,
            multi: !single,
            trees: vec![None; layout.files.len()],
            layout,
            at: 0,
            fed: 0,
            piece: Sha1::new(),
            piece_fill: 0,
            pieces: Vec::new(),
            leaf: Sha256::new(),
            leaf_fill: 0,
            leaves: Vec::new(),
        };
        h.skip_pads();
        Ok(h)
    }

    /// The layout being hashed (files in the order to feed them).
    pub fn layout(&self) -> &FileLayout {
        &self.layout
    }

    /// The next file to feed, if any.
    pub fn next_file(&self) -> Option<&FileEntry> {
        self.layout.files.get(self.at)
    }

    /// Bytes of the current file, in order, in cuts of any size.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), TorrentError> {
        let Some(f) = self.layout.files.get(self.at) else {
            return Err(TorrentError::SizeChanged);
        };
        if self.fed + data.len() as u64 > f.len {
            return Err(TorrentError::SizeChanged);
        }
        self.fed += data.len() as u64;
        self.feed_v1(data);
        while self.kind != Kind::V1Only && !data.is_empty() {
            let n = data.len().min(BLOCK - self.leaf_fill);
            self.leaf.update(&data[..n]);
            self.leaf_fill += n;
            if self.leaf_fill == BLOCK {
                self.end_leaf();
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// Ends the current file: it must have had exactly its length.
    pub fn end_file(&mut self) -> Result<(), TorrentError> {
        let len = self
            .layout
            .files
            .get(self.at)
            .ok_or(TorrentError::SizeChanged)?
            .len;
        if self.fed != len {
            return Err(TorrentError::SizeChanged);
        }
        if self.leaf_fill > 0 {
            self.end_leaf();
        }
        if len > 0 && self.kind != Kind::V1Only {
            let layout = merkle::Layout {
                size: len,
                piece_len: self.layout.piece_len,
            };
            let tree = Tree::new(layout, std::mem::take(&mut self.leaves));
            self.layout.files[self.at].pieces_root = Some(tree.root());
            self.trees[self.at] = Some(tree);
        }
        self.at += 1;
        self.fed = 0;
        self.skip_pads();
        Ok(())
    }

    fn end_leaf(&mut self) {
        let leaf = std::mem::replace(&mut self.leaf, Sha256::new());
        self.leaves.push(leaf.finalize().into());
        self.leaf_fill = 0;
    }

    /// Hashes the pads after the current file (zeros, v1 only).
    fn skip_pads(&mut self) {
        while let Some(f) = self.layout.files.get(self.at).filter(|f| f.pad) {
            let mut left = f.len;
            while left > 0 {
                let n = left.min(BLOCK as u64) as usize;
                self.feed_v1(&ZEROS[..n]);
                left -= n as u64;
            }
            self.at += 1;
        }
    }

    fn feed_v1(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min((self.layout.piece_len - self.piece_fill) as usize);
            self.piece.update(&data[..n]);
            self.piece_fill += n as u64;
            if self.piece_fill == self.layout.piece_len {
                self.end_piece();
            }
            data = &data[n..];
        }
    }

    fn end_piece(&mut self) {
        let piece = std::mem::replace(&mut self.piece, Sha1::new());
        self.pieces.push(piece.finalize().into());
        self.piece_fill = 0;
    }

    /// The torrent, once every file was fed.
    pub fn finish(mut self, trackers: &[String]) -> Result<Made, TorrentError> {
        if self.at != self.layout.files.len() {
            return Err(TorrentError::SizeChanged);
        }
        if self.piece_fill > 0 {
            self.end_piece();
        }
        let info = self.info_bytes();
        let layers: Vec<(Hash, Vec<u8>)> = self
            .trees
            .iter()
            .flatten()
            .filter(|t| t.layout().has_piece_layer())
            .map(|t| (t.root(), t.piece_layer().concat()))
            .collect();
        let bytes = encode_file(&info, trackers, &layers);
        let m = Metainfo::from_file_bytes(&bytes)?;
        debug_assert!(m.layout.same_files(&self.layout));
        Ok(Made {
            metainfo: m,
            bytes,
            trees: self.trees,
        })
    }

    fn info_bytes(&self) -> Vec<u8> {
        let multi = self.multi;
        let pad_names: Vec<String> = self.layout.files.iter().map(|f| f.len.to_string()).collect();
        let real: Vec<&FileEntry> = self.layout.files.iter().filter(|f| !f.pad).collect();
        let tree = file_tree(&real, usize::from(multi));
        let mut info = vec![
            (&b"name"[..], Value::Bytes(self.name.as_bytes())),
            (b"piece length", Value::Int(self.layout.piece_len as i64)),
        ];
        if self.kind != Kind::V1Only {
            info.push((b"file tree", Value::Dict(tree)));
            info.push((b"meta version", Value::Int(2)));
        }
        let pieces = self.pieces.concat();
        if self.kind != Kind::V2Only {
            info.push((b"pieces", Value::Bytes(&pieces)));
            if multi {
                let files = self.layout.files.iter().zip(&pad_names).map(|(f, n)| {
                    let path: Vec<Value<'_>> = if f.pad {
                        vec![Value::Bytes(b".pad"), Value::Bytes(n.as_bytes())]
                    } else {
                        f.path[1..].iter().map(|c| Value::Bytes(c.as_bytes())).collect()
                    };
                    let mut d = vec![
                        (&b"length"[..], Value::Int(f.len as i64)),
                        (b"path", Value::List(path)),
                    ];
                    if f.pad {
                        d.push((b"attr", Value::Bytes(b"p")));
                    }
                    Value::Dict(Dict::from_entries(d))
                });
                info.push((b"files", Value::List(files.collect())));
            } else {
                info.push((b"length", Value::Int(self.layout.files[0].len as i64)));
            }
        }
        let mut out = Vec::new();
        bencode::encode(&Value::Dict(Dict::from_entries(info)), &mut out);
        out
    }
}

/// The v2 file tree of `files` (sorted by path, pads left out), from
/// path component `depth` on: a folder is a dictionary of its entries, a
/// file a dictionary under the empty key.
fn file_tree<'a>(files: &[&'a FileEntry], depth: usize) -> Dict<'a> {
    let mut entries = Vec::new();
    let mut rest = files;
    while let Some(first) = rest.first() {
        let Some(key) = first.path.get(depth) else {
            // Only a file's own entry ends here; check_layout saw to that.
            rest = &rest[1..];
            continue;
        };
        let n = rest.iter().take_while(|f| f.path.get(depth) == Some(key)).count();
        let (group, after) = rest.split_at(n);
        let node = match group {
            [f] if f.path.len() == depth + 1 => {
                let mut leaf = vec![(&b"length"[..], Value::Int(f.len as i64))];
                if let Some(root) = &f.pieces_root {
                    leaf.push((b"pieces root", Value::Bytes(root)));
                }
                Dict::from_entries(vec![(&b""[..], Value::Dict(Dict::from_entries(leaf)))])
            }
            _ => file_tree(group, depth + 1),
        };
        entries.push((key.as_bytes(), Value::Dict(node)));
        rest = after;
    }
    Dict::from_entries(entries)
}

/// A `.torrent` file's bytes around an info dictionary's: `announce` and
/// one `announce-list` tier per tracker when there are trackers, and the
/// v2 piece layers (pieces root -> concatenated hashes). Keys in order:
/// announce, announce-list, info, piece layers.
pub fn encode_file(info: &[u8], trackers: &[String], layers: &[(Hash, Vec<u8>)]) -> Vec<u8> {
    let mut head = vec![];
    if let Some(first) = trackers.first() {
        head.push((&b"announce"[..], Value::Bytes(first.as_bytes())));
        let tiers = trackers
            .iter()
            .map(|t| Value::List(vec![Value::Bytes(t.as_bytes())]));
        head.push((b"announce-list", Value::List(tiers.collect())));
    }
    let layers = layers
        .iter()
        .map(|(root, l)| (&root[..], Value::Bytes(l)))
        .collect();
    let mut out = Vec::new();
    bencode::encode(&Value::Dict(Dict::from_entries(head)), &mut out);
    out.pop(); // the head's closing `e`: the info dictionary and the layers follow
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(info);
    out.extend_from_slice(b"12:piece layers");
    bencode::encode(&Value::Dict(Dict::from_entries(layers)), &mut out);
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::vectors::content;
    use crate::meta::hex;

    fn make(name: &str, files: &[(&str, u64)], kind: Kind, cut: usize) -> (Metainfo, Vec<u8>) {
        let new: Vec<NewFile> = files
            .iter()
            .map(|(p, len)| NewFile {
                path: if p.is_empty() {
                    vec![]
                } else {
                    p.split('/').map(String::from).collect()
                },
                len: *len,
            })
            .collect();
        let mut h = TorrentHasher::new(name, new, 32768, kind).unwrap();
        while let Some(f) = h.next_file() {
            let rel = if f.path.len() > 1 {
                f.path[1..].join("/")
            } else {
                f.path.join("/")
            };
            let data = content(&rel, f.len);
            for part in data.chunks(cut) {
                h.update(part).unwrap();
            }
            h.end_file().unwrap();
        }
        let trackers = [
            "udp://127.0.0.1:6969/announce".to_string(),
            "http://localhost:6969/announce".into(),
        ];
        let made = h.finish(&trackers).unwrap();
        (made.metainfo, made.bytes)
    }

    fn expected(file: &str) -> (String, String) {
        let w = super::super::vectors::expected(file);
        (w[0].clone(), w[1].clone())
    }

    #[test]
    fn our_torrents_have_libtorrents_info_hashes_for_the_same_files() {
        let folder = [
            ("sub/empty", 0),
            ("b.bin", 40000),
            ("sub/deep/c", 16384),
            ("A.txt", 5),
            ("sub/a.bin", 70000),
        ];
        for (kind, file, cut) in [
            (Kind::Hybrid, "lt_hybrid_multi.torrent", 7777),
            (Kind::V2Only, "lt_v2_multi.torrent", 1 << 20),
            (Kind::V1Only, "mk_v1_multi.torrent", 100),
        ] {
            let (m, bytes) = make("d", &folder, kind, cut);
            let (v1, v2) = expected(file);
            assert_eq!(m.hashes.v1.map_or("-".into(), |h| hex(&h)), v1, "{file}");
            assert_eq!(m.hashes.v2.map_or("-".into(), |h| hex(&h)), v2, "{file}");
            assert!(m.multi_file);
            assert_eq!(Metainfo::from_file_bytes(&bytes), Ok(m));
        }
        for (kind, file) in [
            (Kind::Hybrid, "lt_hybrid_single.torrent"),
            (Kind::V2Only, "lt_v2_single.torrent"),
            (Kind::V1Only, "lt_v1_single.torrent"),
        ] {
            let (m, bytes) = make("one.bin", &[("", 100000)], kind, 16384);
            let (v1, v2) = expected(file);
            assert_eq!(m.hashes.v1.map_or("-".into(), |h| hex(&h)), v1, "{file}");
            assert_eq!(m.hashes.v2.map_or("-".into(), |h| hex(&h)), v2, "{file}");
            assert!(!m.multi_file);
            if kind == Kind::V1Only {
                continue;
            }
            // 100000 bytes are 4 pieces of 32 KiB: the layer is carried.
            assert!(m.piece_layers[0].as_ref().is_some_and(|l| l.len() == 4));
            let t = super::super::torrent::Torrent::from_file_bytes(&bytes).unwrap();
            assert_eq!(Some(t.info_hash), m.hashes.v2);
        }
    }

    #[test]
    fn wrong_sizes_bad_names_and_empty_torrents_are_refused() {
        let one = |len| vec![NewFile { path: vec![], len }];
        let mut h = TorrentHasher::new("x", one(3), 16384, Kind::Hybrid).unwrap();
        h.update(b"ab").unwrap();
        assert_eq!(h.end_file(), Err(TorrentError::SizeChanged));
        assert_eq!(h.update(b"cd"), Err(TorrentError::SizeChanged));
        let h = TorrentHasher::new("x", one(3), 16384, Kind::Hybrid).unwrap();
        assert!(matches!(h.finish(&[]), Err(TorrentError::SizeChanged)));
        assert!(matches!(
            TorrentHasher::new("x", one(0), 16384, Kind::Hybrid),
            Err(TorrentError::Empty)
        ));
        assert!(matches!(
            TorrentHasher::new("x", one(1), 3 << 14, Kind::Hybrid),
            Err(TorrentError::BadPieceLength)
        ));
        for bad in [
            vec!["..".to_string()],
            vec!["a/b".into()],
            vec!["ok".into(), "".into()],
        ] {
            let files = vec![NewFile {
                path: bad.clone(),
                len: 1,
            }];
            assert!(
                matches!(
                    TorrentHasher::new("x", files, 16384, Kind::Hybrid),
                    Err(TorrentError::BadName(_))
                ),
                "{bad:?}"
            );
        }
        let twice = vec![
            NewFile {
                path: vec!["a".into()],
                len: 1,
            },
            NewFile {
                path: vec!["a".into(), "b".into()],
                len: 1,
            },
        ];
        assert!(matches!(
            TorrentHasher::new("x", twice, 16384, Kind::Hybrid),
            Err(TorrentError::DuplicatePath)
        ));
    }
}
