//! Torrent metainfo of every kind people meet: v1 (BEP 3), v2 (BEP 52)
//! and hybrid, single- and multi-file, with BEP 47 pad files and
//! attributes and BEP 12 tracker tiers. Pure: bytes in, a [`Metainfo`] or
//! a [`TorrentError`] out.
//!
//! Invariants of a [`Metainfo`]:
//! - `hashes.v1` is SHA-1 and `hashes.v2` SHA-256 of the info dictionary's
//!   bytes exactly as they arrived; a torrent has at least one of them.
//! - Every path component (the torrent's name, each folder and file name)
//!   passed [`names::check_file_name`]: no `..`, no separator, no control
//!   character, NFC, at most 255 bytes; a whole path is at most
//!   [`MAX_PATH_LEN`] bytes; no two files share a path and no file is
//!   another's folder. A hostile torrent is refused, never trimmed.
//! - A hybrid's v1 file list (pads included) is the v2 file tree laid out
//!   with libtorrent's pads ([`FileLayout::aligned`]); a hybrid whose
//!   halves disagree is refused, as libtorrent refuses it.
//! - The piece length is a power of two from 16 KiB to [`MAX_PIECE_LEN`];
//!   the v1 `pieces` string has one SHA-1 per piece of the piece space;
//!   every v2 piece layer carried checks against its file's pieces root.
//! - Sizes are bounded: [`MAX_FILES`] entries, [`MAX_FILE_SIZE`] bytes in
//!   all, at most `meta::MAX_CHUNKS` pieces.
//!
//! Symlinks (BEP 47 `l`) are refused: a link target from the network is a
//! way out of the torrent's folder. Only the UTF-8 `name` and `path` keys
//! are read (`name.utf-8` and `path.utf-8` are legacy spellings of them).

use super::bencode::{self, Dict, Value};
use super::layout::{FileEntry, FileLayout, Sha1Hash};
pub use super::limits::MAX_FILES;
use super::limits::{
    TorrentError, MAX_FILE_SIZE, MAX_INFO_LEN, MAX_PIECE_LEN, MAX_TORRENT_LEN, MAX_TRACKERS,
};
use super::merkle::{self, Hash};
use crate::names;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Longest path of one file, in bytes with separators (Linux's PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

/// The v2 info hash truncated to 20 bytes, as handshakes and trackers use it.
pub fn short_hash(info_hash: &Hash) -> [u8; 20] {
    let mut h = [0; 20];
    h.copy_from_slice(&info_hash[..20]);
    h
}

/// The info hashes a torrent has: v1 (SHA-1), v2 (SHA-256), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoHashes {
    pub v1: Option<Sha1Hash>,
    pub v2: Option<Hash>,
}

impl InfoHashes {
    /// The v2 hash truncated to 20 bytes, as v2 handshakes and trackers
    /// use it (BEP 52).
    pub fn v2_short(&self) -> Option<[u8; 20]> {
        self.v2.as_ref().map(short_hash)
    }
}

/// A parsed torrent of any version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    pub hashes: InfoHashes,
    /// The info dictionary's bytes (served to magnet leechers).
    pub info: Vec<u8>,
    /// The torrent's name: the file's name (for a v2 single file, its
    /// file tree key), or the folder's (checked).
    pub name: String,
    /// Whether the files land in a folder named `name`.
    pub multi_file: bool,
    pub layout: FileLayout,
    /// One SHA-1 per piece (v1 and hybrid torrents).
    pub v1_pieces: Option<Vec<Sha1Hash>>,
    /// Per entry of `layout.files`: the v2 piece layer, when the torrent
    /// carries it and the file has more than one piece (checked against
    /// its pieces root).
    pub piece_layers: Vec<Option<Vec<Hash>>>,
    /// Tracker tiers (BEP 12), deduplicated, at most `MAX_TRACKERS` URLs.
    pub trackers: Vec<Vec<String>>,
}

impl Metainfo {
    /// Parses a `.torrent` file.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Metainfo, TorrentError> {
        if bytes.len() > MAX_TORRENT_LEN {
            return Err(TorrentError::TooLarge(bytes.len()));
        }
        let Value::Dict(top) = bencode::decode(bytes)? else {
            return Err(TorrentError::Missing("top-level dictionary"));
        };
        let info = top.dict(b"info").ok_or(TorrentError::Missing("info"))?;
        let mut m = Metainfo::from_info_dict(info)?;
        m.trackers = tracker_tiers(&top);
        if let Some(layers) = top.dict(b"piece layers") {
            for (f, slot) in m.layout.files.iter().zip(&mut m.piece_layers) {
                let Some(root) = f.pieces_root else { continue };
                let file = merkle::Layout {
                    size: f.len,
                    piece_len: m.layout.piece_len,
                };
                // A torrent may leave a layer out; then peers supply it.
                if !file.has_piece_layer() {
                    continue;
                }
                if let Some(bytes) = layers.bytes(&root) {
                    *slot = Some(check_piece_layer(file, &root, bytes).ok_or(TorrentError::BadPieceLayer)?);
                }
            }
        }
        Ok(m)
    }

    /// Parses an info dictionary's bytes (from a peer: compare its hash
    /// with the one asked for).
    pub fn from_info_bytes(bytes: &[u8]) -> Result<Metainfo, TorrentError> {
        if bytes.len() > MAX_INFO_LEN {
            return Err(TorrentError::TooLarge(bytes.len()));
        }
        match bencode::decode(bytes)? {
            Value::Dict(info) => Metainfo::from_info_dict(&info),
            _ => Err(TorrentError::Missing("info dictionary")),
        }
    }

    pub(super) fn from_info_dict(info: &Dict<'_>) -> Result<Metainfo, TorrentError> {
        let name = info.bytes(b"name").ok_or(TorrentError::Missing("name"))?;
        let name = component(name)?;
        let piece_len = info
            .int(b"piece length")
            .ok_or(TorrentError::Missing("piece length"))?;
        let piece_len = u64::try_from(piece_len).map_err(|_| TorrentError::BadPieceLength)?;
        if !piece_len.is_power_of_two() || !(merkle::BLOCK as u64..=MAX_PIECE_LEN).contains(&piece_len) {
            return Err(TorrentError::BadPieceLength);
        }
        let v2 = match info.get(b"meta version") {
            None => None,
            Some(Value::Int(2)) => {
                let tree = info
                    .dict(b"file tree")
                    .ok_or(TorrentError::Missing("file tree"))?;
                Some(v2_files(&name, piece_len, tree)?)
            }
            Some(_) => return Err(TorrentError::UnknownVersion),
        };
        let v1 = match info.bytes(b"pieces") {
            None => None,
            Some(pieces) => Some((v1_files(&name, piece_len, info)?, pieces)),
        };
        let (multi_file, layout, v1_pieces) = match (v1, v2) {
            (None, None) => return Err(TorrentError::Missing("pieces or file tree")),
            (None, Some((multi, layout))) => (multi, layout, None),
            (Some(((multi, layout), pieces)), v2) => {
                if let Some((multi2, layout2)) = &v2 {
                    if multi != *multi2 || !layout.same_files(layout2) {
                        return Err(TorrentError::HybridMismatch);
                    }
                }
                if pieces.len() as u64 != 20 * layout.pieces() {
                    return Err(TorrentError::Missing("pieces (one SHA-1 per piece)"));
                }
                let hashes = pieces
                    .chunks_exact(20)
                    .filter_map(|h| h.try_into().ok())
                    .collect();
                // The v1 half's layout is the piece space (libtorrent ends
                // a hybrid's file list with a pad to a whole piece, which
                // its last v1 piece hashes); the v2 half has the roots.
                let mut layout = layout;
                if let Some((_, l2)) = &v2 {
                    for (f, f2) in layout.files.iter_mut().zip(&l2.files) {
                        f.pieces_root = f2.pieces_root;
                    }
                }
                (multi, layout, Some(hashes))
            }
        };
        check_layout(&layout)?;
        // A v2 single file is stored under its file tree key, which may
        // differ from `name`: the name is the file's.
        let name = match &layout.files[..] {
            [f] if !multi_file => f.path.concat(),
            _ => name,
        };
        let has_v2 = info.get(b"meta version").is_some();
        Ok(Metainfo {
            hashes: InfoHashes {
                v1: v1_pieces.is_some().then(|| Sha1::digest(info.raw).into()),
                v2: has_v2.then(|| Sha256::digest(info.raw).into()),
            },
            info: info.raw.to_vec(),
            name,
            multi_file,
            piece_layers: vec![None; layout.files.len()],
            layout,
            v1_pieces,
            trackers: Vec::new(),
        })
    }

    /// Every tracker URL, tier by tier.
    pub fn tracker_urls(&self) -> Vec<String> {
        self.trackers.concat()
    }
}

/// A path component from the network, checked.
fn component(bytes: &[u8]) -> Result<String, TorrentError> {
    let s = std::str::from_utf8(bytes).map_err(|_| TorrentError::BadName(names::NameError::Control))?;
    names::check_file_name(s).map_err(TorrentError::BadName)?;
    Ok(s.to_string())
}

/// BEP 47 attributes: (pad, executable, hidden); a symlink is refused.
fn attrs(d: &Dict<'_>) -> Result<(bool, bool, bool), TorrentError> {
    let a = d.bytes(b"attr").unwrap_or_default();
    if a.contains(&b'l') {
        return Err(TorrentError::Symlink);
    }
    Ok((a.contains(&b'p'), a.contains(&b'x'), a.contains(&b'h')))
}

fn length(d: &Dict<'_>) -> Result<u64, TorrentError> {
    let n = d.int(b"length").ok_or(TorrentError::Missing("length"))?;
    let n = u64::try_from(n).map_err(|_| TorrentError::Missing("length"))?;
    if n > MAX_FILE_SIZE {
        return Err(TorrentError::TooBig(n));
    }
    Ok(n)
}

/// The v1 half: `length` (one file) or `files` (a folder), laid end to
/// end as listed, pads included.
fn v1_files(name: &str, piece_len: u64, info: &Dict<'_>) -> Result<(bool, FileLayout), TorrentError> {
    let Some(list) = info.list(b"files") else {
        let (_, executable, hidden) = attrs(info)?;
        let f = FileEntry {
            path: vec![name.to_string()],
            len: length(info)?,
            offset: 0,
            pad: false,
            executable,
            hidden,
            pieces_root: None,
        };
        return Ok((false, FileLayout::new(piece_len, vec![f])));
    };
    if list.len() > MAX_FILES {
        return Err(TorrentError::TooManyFiles);
    }
    let mut files = Vec::with_capacity(list.len());
    for item in list {
        let Value::Dict(d) = item else {
            return Err(TorrentError::Missing("files"));
        };
        let parts = d.list(b"path").ok_or(TorrentError::Missing("path"))?;
        let (mut pad, executable, hidden) = attrs(d)?;
        // BitComet's pads, from before BEP 47, are known by their name.
        pad |= matches!(parts.last(), Some(Value::Bytes(b)) if b.starts_with(b"_____padding_file_"));
        let mut path = vec![name.to_string()];
        if !pad {
            for p in parts {
                let Value::Bytes(p) = p else {
                    return Err(TorrentError::Missing("path"));
                };
                path.push(component(p)?);
            }
            if path.len() == 1 {
                return Err(TorrentError::Missing("path"));
            }
        }
        files.push(FileEntry {
            path: if pad { Vec::new() } else { path },
            len: length(d)?,
            offset: 0,
            pad,
            executable,
            hidden,
            pieces_root: None,
        });
    }
    if files.iter().all(|f| f.pad) {
        return Err(TorrentError::Missing("files"));
    }
    Ok((true, FileLayout::new(piece_len, files)))
}

/// The v2 half: the file tree flattened depth first in key order (the
/// order libtorrent writes the v1 list in), then aligned with pads.
fn v2_files(name: &str, piece_len: u64, tree: &Dict<'_>) -> Result<(bool, FileLayout), TorrentError> {
    let mut files = Vec::new();
    // One file at the top is a single-file torrent, stored under its key.
    let single = matches!(&tree.entries[..], [(_, Value::Dict(node))] if node.get(b"").is_some());
    let base = if single { vec![] } else { vec![name.to_string()] };
    walk_tree(tree, &mut base.clone(), &mut files)?;
    if files.is_empty() {
        return Err(TorrentError::Missing("file tree"));
    }
    Ok((!single, FileLayout::aligned(piece_len, files)))
}

fn walk_tree(dir: &Dict<'_>, path: &mut Vec<String>, out: &mut Vec<FileEntry>) -> Result<(), TorrentError> {
    for (key, node) in &dir.entries {
        let Value::Dict(node) = node else {
            return Err(TorrentError::Missing("file tree"));
        };
        path.push(component(key)?);
        match &node.entries[..] {
            [(b"", Value::Dict(file))] => {
                if out.len() >= MAX_FILES {
                    return Err(TorrentError::TooManyFiles);
                }
                let len = length(file)?;
                let (pad, executable, hidden) = attrs(file)?;
                if pad {
                    return Err(TorrentError::Missing("file tree"));
                }
                let pieces_root = match file.bytes(b"pieces root") {
                    _ if len == 0 => None,
                    Some(r) => Some(r.try_into().map_err(|_| TorrentError::Missing("pieces root"))?),
                    None => return Err(TorrentError::Missing("pieces root")),
                };
                out.push(FileEntry {
                    path: path.clone(),
                    len,
                    offset: 0,
                    pad: false,
                    executable,
                    hidden,
                    pieces_root,
                });
            }
            // A folder: an empty one, or one that is also a file, is malformed.
            entries if !entries.is_empty() && node.get(b"").is_none() => walk_tree(node, path, out)?,
            _ => return Err(TorrentError::Missing("file tree")),
        }
        path.pop();
    }
    Ok(())
}

/// Sizes, path lengths, and one place per file.
pub(super) fn check_layout(layout: &FileLayout) -> Result<(), TorrentError> {
    if layout.files.len() > MAX_FILES {
        return Err(TorrentError::TooManyFiles);
    }
    if layout.total_len > MAX_FILE_SIZE {
        return Err(TorrentError::TooBig(layout.total_len));
    }
    if layout.pieces() > crate::meta::MAX_CHUNKS as u64 {
        return Err(TorrentError::BadPieceLength);
    }
    let mut paths: Vec<&[String]> = layout
        .files
        .iter()
        .filter(|f| !f.pad)
        .map(|f| &f.path[..])
        .collect();
    if paths
        .iter()
        .any(|p| p.iter().map(|c| c.len() + 1).sum::<usize>() > MAX_PATH_LEN)
    {
        return Err(TorrentError::BadName(names::NameError::TooLong));
    }
    // Sorted, a path is followed at once by any path it is a folder of.
    paths.sort_unstable();
    if paths.windows(2).any(|w| w[1].starts_with(w[0])) {
        return Err(TorrentError::DuplicatePath);
    }
    Ok(())
}

/// The piece layer of one file from its bytes, when it has one hash per
/// piece and its root is `root`.
pub fn check_piece_layer(file: merkle::Layout, root: &Hash, bytes: &[u8]) -> Option<Vec<Hash>> {
    if bytes.len() as u64 != 32 * file.pieces() {
        return None;
    }
    let layer: Vec<Hash> = bytes.chunks_exact(32).filter_map(|h| h.try_into().ok()).collect();
    (file.root_from_piece_layer(&layer) == *root).then_some(layer)
}

/// BEP 12: `announce-list` tiers when present (then `announce` is only
/// its first entry), else `announce` alone; non-UTF-8 URLs are dropped.
fn tracker_tiers(top: &Dict<'_>) -> Vec<Vec<String>> {
    let mut seen = 0usize;
    let mut tiers: Vec<Vec<String>> = Vec::new();
    let listed: Vec<Vec<&[u8]>> = match top.list(b"announce-list") {
        Some(list) => list
            .iter()
            .filter_map(|t| match t {
                Value::List(urls) => Some(
                    urls.iter()
                        .filter_map(|u| match u {
                            Value::Bytes(b) => Some(*b),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => None,
            })
            .collect(),
        None => top.bytes(b"announce").map(|u| vec![vec![u]]).unwrap_or_default(),
    };
    for tier in listed {
        let mut kept = Vec::new();
        for url in tier {
            let Ok(url) = std::str::from_utf8(url) else {
                continue;
            };
            if seen < MAX_TRACKERS
                && !url.is_empty()
                && !tiers.iter().chain([&kept]).flatten().any(|u| u == url)
            {
                kept.push(url.to_string());
                seen += 1;
            }
        }
        if !kept.is_empty() {
            tiers.push(kept);
        }
    }
    tiers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::layout::{self, check_v1_piece};
    use crate::bt::merkle::{block_hash, Tree, BLOCK};
    use crate::bt::vectors::{content, expected, listed, vector};
    use crate::meta::hex;

    /// Each torrent libtorrent and mktorrent wrote: our info hashes are
    /// libtorrent's, our layout puts every file where its v1 piece hashes
    /// and v2 roots say its bytes are.
    #[test]
    fn torrents_from_libtorrent_and_mktorrent_read_as_libtorrent_reads_them() {
        let mut kinds = 0;
        for file in listed() {
            let file = file.as_str();
            let w = expected(file);
            let [v1, v2, count, total] = [&w[0], &w[1], &w[2], &w[3]].map(String::as_str);
            let m = Metainfo::from_file_bytes(&vector(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(m.hashes.v1.map_or("-".into(), |h| hex(&h)), v1, "{file}");
            assert_eq!(m.hashes.v2.map_or("-".into(), |h| hex(&h)), v2, "{file}");
            let real: Vec<&FileEntry> = m.layout.files.iter().filter(|f| !f.pad).collect();
            assert_eq!(real.len().to_string(), count, "{file}");
            let total: u64 = total.parse().unwrap();
            // libtorrent pads a v2-only torrent's last file too.
            let ours = if v1 == "-" {
                m.layout.total_len.next_multiple_of(m.layout.piece_len)
            } else {
                m.layout.total_len
            };
            assert_eq!(ours, total, "{file}");
            assert_eq!(m.multi_file, count != "1", "{file}");
            assert_eq!(m.name, if m.multi_file { "d" } else { "one.bin" });
            assert_eq!(m.trackers[0], ["udp://127.0.0.1:6969/announce"], "{file}");
            if file.starts_with("lt_") {
                // libtorrent wrote two tiers (BEP 12).
                assert_eq!(m.trackers[1], ["http://localhost:6969/announce"], "{file}");
            }
            let data: Vec<Vec<u8>> = m
                .layout
                .files
                .iter()
                .map(|f| {
                    content(
                        &f.path
                            .get(usize::from(m.multi_file)..)
                            .unwrap_or_default()
                            .join("/"),
                        f.len,
                    )
                })
                .collect();
            if let Some(pieces) = &m.v1_pieces {
                kinds |= 1;
                for (i, h) in pieces.iter().enumerate() {
                    let read = |s: layout::Span, buf: &mut [u8]| -> Result<(), ()> {
                        let at = s.file_offset as usize;
                        buf.copy_from_slice(&data[s.file][at..at + buf.len()]);
                        Ok(())
                    };
                    assert_eq!(
                        check_v1_piece(&m.layout, i as u64, h, read),
                        Ok(true),
                        "{file} piece {i}"
                    );
                }
            }
            if m.hashes.v2.is_some() {
                kinds |= 2;
                for (f, bytes) in m.layout.files.iter().zip(&data).filter(|(f, _)| !f.pad) {
                    let l = merkle::Layout {
                        size: f.len,
                        piece_len: m.layout.piece_len,
                    };
                    let root = (f.len > 0)
                        .then(|| Tree::new(l, bytes.chunks(BLOCK).map(block_hash).collect()).root());
                    assert_eq!(f.pieces_root, root, "{file} {:?}", f.path);
                }
            }
            if m.hashes.v1.is_some() && m.hashes.v2.is_some() {
                kinds |= 4;
                // The v1 half's pads are where the v2 half aligns files.
                assert!(m
                    .layout
                    .files
                    .iter()
                    .all(|f| f.pad || f.offset % m.layout.piece_len == 0));
            }
        }
        assert_eq!(kinds, 7, "v1, v2 and hybrid vectors all seen");
    }

    fn enc(v: &Value<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        bencode::encode(v, &mut out);
        out
    }

    fn d<'a>(entries: Vec<(&'a [u8], Value<'a>)>) -> Value<'a> {
        Value::Dict(Dict::from_entries(entries))
    }

    /// A v1 multi-file info dict with these paths (1 byte each, one piece).
    fn v1_info(paths: &[&[&[u8]]], attr: &[u8]) -> Vec<u8> {
        let files = paths
            .iter()
            .map(|p| {
                d(vec![
                    (b"length", Value::Int(1)),
                    (b"path", Value::List(p.iter().map(|c| Value::Bytes(c)).collect())),
                    (b"attr", Value::Bytes(attr)),
                ])
            })
            .collect();
        enc(&d(vec![
            (b"name", Value::Bytes(b"t")),
            (b"piece length", Value::Int(16384)),
            (b"pieces", Value::Bytes(&[0; 20])),
            (b"files", Value::List(files)),
        ]))
    }

    #[test]
    fn hostile_paths_are_refused_and_accepted_ones_stay_inside_the_folder() {
        let refused: [(&[&[u8]], TorrentError); 8] = [
            (&[b"..", b"x"], TorrentError::BadName(names::NameError::DotName)),
            (
                &[b"/etc", b"passwd"],
                TorrentError::BadName(names::NameError::PathSeparator),
            ),
            (
                &[b"a/../../b"],
                TorrentError::BadName(names::NameError::PathSeparator),
            ),
            (
                &[b"a\\..\\b"],
                TorrentError::BadName(names::NameError::PathSeparator),
            ),
            (&[b"e\xcc\x81"], TorrentError::BadName(names::NameError::NotNfc)),
            (&[b"\xff"], TorrentError::BadName(names::NameError::Control)),
            (&[b"nul\0"], TorrentError::BadName(names::NameError::Control)),
            (&[], TorrentError::Missing("path")),
        ];
        for (path, why) in refused {
            let info = v1_info(&[path], b"");
            assert_eq!(Metainfo::from_info_bytes(&info), Err(why), "{path:?}");
        }
        let long = vec![b'a'; 255];
        let deep: Vec<&[u8]> = vec![&long; 17];
        let info = enc(&d(vec![
            (b"name", Value::Bytes(b"t")),
            (b"piece length", Value::Int(16384)),
            (b"pieces", Value::Bytes(&[0; 20])),
            (
                b"files",
                Value::List(vec![d(vec![
                    (b"length", Value::Int(1)),
                    (
                        b"path",
                        Value::List(deep.iter().map(|c| Value::Bytes(c)).collect()),
                    ),
                ])]),
            ),
        ]));
        assert_eq!(
            Metainfo::from_info_bytes(&info),
            Err(TorrentError::BadName(names::NameError::TooLong))
        );
        let twice: &[&[&[u8]]] = &[&[b"a"], &[b"a"]];
        assert_eq!(
            Metainfo::from_info_bytes(&v1_info(twice, b"")),
            Err(TorrentError::DuplicatePath)
        );
        let file_and_folder: &[&[&[u8]]] = &[&[b"a"], &[b"a", b"b"]];
        assert_eq!(
            Metainfo::from_info_bytes(&v1_info(file_and_folder, b"")),
            Err(TorrentError::DuplicatePath)
        );
        assert_eq!(
            Metainfo::from_info_bytes(&v1_info(&[&[b"a"]], b"l")),
            Err(TorrentError::Symlink)
        );
        let ok: &[&[&[u8]]] = &[&[b"a", b"b"], &[b"a", b"c d"], &[b"\xc3\xa9"]];
        let m = Metainfo::from_info_bytes(&v1_info(ok, b"x")).unwrap();
        assert!(m.multi_file && m.layout.files.iter().all(|f| f.executable));
        for f in &m.layout.files {
            let p = f.rel_path();
            assert!(p.starts_with("t"));
            assert!(p
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))));
        }
    }

    fn v2_file<'a>(len: i64, root: &'a [u8]) -> Value<'a> {
        d(vec![(
            b"",
            d(vec![
                (b"length", Value::Int(len)),
                (b"pieces root", Value::Bytes(root)),
            ]),
        )])
    }

    #[test]
    fn malformed_v2_trees_versions_and_piece_counts_are_refused() {
        let root = [5u8; 32];
        let info = |tree: Value<'_>, version: i64| {
            enc(&d(vec![
                (b"name", Value::Bytes(b"t")),
                (b"piece length", Value::Int(16384)),
                (b"meta version", Value::Int(version)),
                (b"file tree", tree),
            ]))
        };
        let good = d(vec![
            (b"a", v2_file(3, &root)),
            (b"s", d(vec![(b"b", v2_file(0, b""))])),
        ]);
        let m = Metainfo::from_info_bytes(&info(good.clone(), 2)).unwrap();
        assert_eq!(m.layout.files.len(), 3, "a, a pad, s/b");
        assert_eq!(m.layout.files[2].path, ["t", "s", "b"]);
        assert_eq!(m.hashes.v1, None);
        assert_eq!(m.hashes.v2_short().unwrap()[..], m.hashes.v2.unwrap()[..20]);
        // One file at the top: stored under its key, whatever `name` says.
        let single = Metainfo::from_info_bytes(&info(d(vec![(b"f", v2_file(3, &root))]), 2)).unwrap();
        assert!(!single.multi_file);
        assert_eq!(
            (single.name.as_str(), &single.layout.files[0].path[..]),
            ("f", &["f".to_string()][..])
        );
        assert_eq!(
            Metainfo::from_info_bytes(&info(good, 3)),
            Err(TorrentError::UnknownVersion)
        );
        for bad in [
            d(vec![]),
            d(vec![(b"a", d(vec![]))]),
            d(vec![(b"a", Value::Int(1))]),
            d(vec![(b"a", v2_file(3, b"short"))]),
            d(vec![(b"a", v2_file(3, b""))]),
            d(vec![(b"a", v2_file(-1, &root))]),
            // A node that is both a file and a folder.
            d(vec![(
                b"a",
                d(vec![
                    (b"", d(vec![(b"length", Value::Int(0))])),
                    (b"b", v2_file(1, &root)),
                ]),
            )]),
        ] {
            assert!(
                Metainfo::from_info_bytes(&info(bad.clone(), 2)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            Metainfo::from_info_bytes(&info(d(vec![(b"..", v2_file(1, &root))]), 2)),
            Err(TorrentError::BadName(names::NameError::DotName))
        );
        // v1: one SHA-1 per piece, no more, no fewer.
        let two = enc(&d(vec![
            (b"name", Value::Bytes(b"t")),
            (b"piece length", Value::Int(16384)),
            (b"length", Value::Int(1)),
            (b"pieces", Value::Bytes(&[0; 40])),
        ]));
        assert!(matches!(
            Metainfo::from_info_bytes(&two),
            Err(TorrentError::Missing(_))
        ));
    }

    #[test]
    fn a_hybrid_whose_halves_disagree_is_refused() {
        let good = vector("lt_hybrid_multi.torrent");
        assert!(Metainfo::from_file_bytes(&good).is_ok());
        // Each edit keeps the length of the bytes, so the file stays bencode.
        for (from, to) in [
            (&b"5:A.txt"[..], &b"5:A.txu"[..]), // a name in one half only
            (b"i40000e", b"i40001e"),           // a length in one half only
            (b"5:32763", b"5:32764"),           // a pad's name: not compared
        ] {
            let at = good.windows(from.len()).position(|w| w == from).unwrap();
            let mut bad = good.clone();
            bad[at..at + from.len()].copy_from_slice(to);
            let got = Metainfo::from_file_bytes(&bad);
            if from == b"5:32763" {
                assert!(got.is_ok());
            } else {
                assert_eq!(
                    got,
                    Err(TorrentError::HybridMismatch),
                    "{}",
                    String::from_utf8_lossy(from)
                );
            }
        }
    }

    #[test]
    fn tracker_tiers_follow_bep12() {
        let info = v1_info(&[&[b"a"]], b"");
        let Value::Dict(info) = bencode::decode(&info).unwrap() else {
            panic!()
        };
        let tier = |urls: &[&'static [u8]]| Value::List(urls.iter().map(|u| Value::Bytes(u)).collect());
        let top = d(vec![
            (b"announce", Value::Bytes(b"udp://ignored:1")),
            (
                b"announce-list",
                Value::List(vec![
                    tier(&[b"udp://a:1", b"udp://b:2", b"udp://a:1"]),
                    tier(&[b"\xff\xfe"]),
                    tier(&[b"http://c/announce", b"udp://b:2"]),
                    Value::Int(3),
                ]),
            ),
            (b"info", Value::Dict(info)),
        ]);
        let m = Metainfo::from_file_bytes(&enc(&top)).unwrap();
        assert_eq!(
            m.trackers,
            [vec!["udp://a:1", "udp://b:2"], vec!["http://c/announce"]]
        );
        assert_eq!(m.tracker_urls(), ["udp://a:1", "udp://b:2", "http://c/announce"]);
        // Without a list, `announce` is the only tier.
        let Value::Dict(mut only) = top else { panic!() };
        only.entries.retain(|(k, _)| *k != b"announce-list");
        let m = Metainfo::from_file_bytes(&enc(&Value::Dict(only))).unwrap();
        assert_eq!(m.trackers, [vec!["udp://ignored:1"]]);
    }
}
