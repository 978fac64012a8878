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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::metainfo::Metainfo;
    use crate::testutil::{data, TempDir};

    #[test]
    fn a_folder_becomes_a_multi_file_torrent_and_a_link_in_it_is_refused() {
        let tmp = TempDir::new("make-torrent");
        let top = tmp.path().join("photos");
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        std::fs::create_dir_all(top.join("nothing")).unwrap();
        let files = [
            ("x.jpg", 40_000),
            ("a/y.jpg", 16_384),
            ("a/b/z", 0),
            ("a/b/w", 70_001),
        ];
        for (i, (rel, len)) in files.iter().enumerate() {
            std::fs::write(top.join(rel), data(*len, i as u8)).unwrap();
        }
        let trackers = ["udp://127.0.0.1:1/announce".to_string()];
        let made = make(&top, "photos", Some(32 << 10), Kind::Hybrid, &trackers).unwrap();
        let m = Metainfo::from_file_bytes(&made.bytes).unwrap();
        assert_eq!(m, made.metainfo);
        assert!(m.multi_file && m.hashes.v1.is_some() && m.hashes.v2.is_some());
        let mut paths: Vec<String> = m
            .layout
            .files
            .iter()
            .filter(|f| !f.pad)
            .map(|f| f.path.join("/"))
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            ["photos/a/b/w", "photos/a/b/z", "photos/a/y.jpg", "photos/x.jpg"]
        );
        // Every v1 piece checks against the files on disk.
        for (i, h) in m.v1_pieces.as_ref().unwrap().iter().enumerate() {
            let ok = crate::bt::layout::check_v1_piece(&m.layout, i as u64, h, |s, buf| {
                let f = &m.layout.files[s.file];
                let bytes = std::fs::read(top.join(f.path[1..].join("/")))?;
                let at = s.file_offset as usize;
                buf.copy_from_slice(&bytes[at..at + buf.len()]);
                Ok::<(), std::io::Error>(())
            });
            assert!(ok.unwrap(), "piece {i}");
        }
        // A single file: a single-file torrent named after it.
        let one = make(&top.join("x.jpg"), "x.jpg", None, Kind::V2Only, &[]).unwrap();
        assert!(!one.metainfo.multi_file && one.metainfo.hashes.v1.is_none());
        // A link anywhere below is an error, not followed and not skipped.
        std::os::unix::fs::symlink("/etc", top.join("a/etc")).unwrap();
        let err = make(&top, "photos", None, Kind::Hybrid, &[]).err().unwrap();
        assert!(err.contains("link"), "{err}");
        std::fs::remove_file(top.join("a/etc")).unwrap();
        // An empty folder has nothing to share.
        let err = make(&top.join("nothing"), "nothing", None, Kind::Hybrid, &[])
            .err()
            .unwrap();
        assert!(err.contains("is empty"), "{err}");
    }
}
