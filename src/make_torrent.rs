//! `--torrent NAME`: the file-reading side of [`crate::bt::create`]. A
//! shared file becomes a single-file torrent, a shared folder a multi-file
//! one (every file below it, in the order the torrent lists them).
//!
//! Nothing is followed out of the folder: a symbolic link, a device or a
//! FIFO anywhere below it is an error, not skipped silently (the user
//! would otherwise share less than they think). Bounded: at most
//! `MAX_FILES` files and [`MAX_DEPTH`] folder levels; every name passes
//! the checks a torrent from the network gets.

use crate::bt::create::{Kind, Made, NewFile, TorrentHasher};
use crate::bt::metainfo::MAX_FILES;
use crate::bt::torrent::Torrent;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Deepest folder nesting put in a torrent (bencode nests two levels per
/// folder in the v2 file tree, within its limit of 32).
pub const MAX_DEPTH: usize = 12;

/// Hashes the file or folder at `path` into a torrent named `name`.
/// `piece_len` `None` picks one from the total size. Errors are sentences
/// for the user.
pub fn make(
    path: &Path,
    name: &str,
    piece_len: Option<u64>,
    kind: Kind,
    trackers: &[String],
) -> Result<Made, String> {
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut Vec::new(), &mut files)?;
        files
    } else if meta.is_file() {
        vec![NewFile {
            path: Vec::new(),
            len: meta.len(),
        }]
    } else {
        return Err(format!("{shown} is not a file or a folder"));
    };
    let total: u64 = files.iter().map(|f| f.len).sum();
    if total == 0 {
        return Err(format!("{shown} is empty: a torrent needs at least one byte"));
    }
    let piece_len = piece_len.unwrap_or_else(|| Torrent::auto_piece_len(total));
    let mut h = TorrentHasher::new(name, files, piece_len, kind).map_err(|e| format!("{shown}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    while let Some(f) = h.next_file() {
        // Components after the torrent's name, below `path`.
        let file_path: PathBuf = if meta.is_dir() {
            path.join(f.path[1..].iter().collect::<PathBuf>())
        } else {
            path.to_path_buf()
        };
        let shown = file_path.display();
        let mut file = File::open(&file_path).map_err(|e| format!("cannot open {shown}: {e}"))?;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]).map_err(|e| format!("{shown}: {e}"))?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read {shown}: {e}")),
            }
        }
        h.end_file().map_err(|e| format!("{shown}: {e}"))?;
    }
    h.finish(trackers).map_err(|e| e.to_string())
}

/// Every file below `dir`, with its path components below the top folder.
fn walk(dir: &Path, below: &mut Vec<String>, out: &mut Vec<NewFile>) -> Result<(), String> {
    let shown = dir.display();
    if below.len() > MAX_DEPTH {
        return Err(format!("{shown}: folders nested deeper than {MAX_DEPTH} levels"));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {shown}: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {shown}: {e}"))?;
        let path = entry.path();
        let shown = path.display();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| format!("{shown}: the name is not UTF-8"))?;
        let meta = entry
            .metadata()
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        below.push(name);
        if meta.is_dir() {
            walk(&path, below, out)?;
        } else if meta.is_file() {
            if out.len() >= MAX_FILES {
                return Err(format!("more than {MAX_FILES} files"));
            }
            out.push(NewFile {
                path: below.clone(),
                len: meta.len(),
            });
        } else {
            // DirEntry::metadata does not follow links: this is one.
            return Err(format!(
                "{shown} is a link or a special file: not put in torrents"
            ));
        }
        below.pop();
    }
    Ok(())
}
