//! `pytorrent --check FILE --id ID`: whether a file on disk is the file an
//! id names (as `--list` shows it: the whole id or a prefix of 8 or more
//! hex digits). The id covers the name, size, chunk size and every chunk's
//! SHA-256, so the file is hashed as a seeder would index it: under its
//! name (NFC, as shared), with `--chunk-size-kib` first and then every
//! other chunk size until one matches (most files use the default, one
//! pass).
//!
//! Invariants: the file is only read (opened with `O_NOFOLLOW`, so a
//! symlink is refused, and `O_NONBLOCK`, so a FIFO cannot block); memory
//! is one chunk buffer whatever the file's size.

use crate::meta::{hex, FileMeta, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::names;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// The file is the one the id names: its whole id and chunk size.
    Matches { id: String, chunk_size: u32 },
    /// No chunk size gives the id; the id with the preferred chunk size.
    Differs { id: String },
}

/// Checks `path` against `wanted` (8 to 64 hex digits, any case), trying
/// `preferred` chunk size first. `Err` says why the file could not be read.
pub fn check_file(path: &Path, wanted: &str, preferred: u32) -> Result<Checked, String> {
    let shown = path.display();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(names::to_nfc)
        .ok_or_else(|| format!("{shown}: not a file name in UTF-8"))?;
    names::check_file_name(&name).map_err(|e| format!("{shown}: the name {e}"))?;
    let wanted = wanted.to_ascii_lowercase();
    let sizes = std::iter::once(preferred).chain(
        (MIN_CHUNK_SIZE.trailing_zeros()..=MAX_CHUNK_SIZE.trailing_zeros())
            .map(|bits| 1 << bits)
            .filter(|&s| s != preferred),
    );
    let mut first = None;
    for chunk_size in sizes {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("cannot open {shown}: {e}"))?;
        if !file.metadata().map_err(|e| format!("{shown}: {e}"))?.is_file() {
            return Err(format!("{shown} is not a regular file"));
        }
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let meta = FileMeta::from_reader(&name, reader, chunk_size)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        let id = hex(&meta.id());
        if id.starts_with(&wanted) {
            return Ok(Checked::Matches { id, chunk_size });
        }
        first.get_or_insert(id);
    }
    Ok(Checked::Differs {
        id: first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{data, TempDir};

    #[test]
    fn a_file_matches_its_id_at_any_chunk_size_and_nothing_else() {
        let tmp = TempDir::new("check");
        let bytes = data(100_000, 3);
        let path = tmp.path().join("f.bin");
        std::fs::write(&path, &bytes).unwrap();
        let chunk = 32 * 1024;
        let id = hex(&FileMeta::from_reader("f.bin", &bytes[..], chunk).unwrap().id());
        let want = Checked::Matches {
            id: id.clone(),
            chunk_size: chunk,
        };
        // Found whichever chunk size is tried first, by whole id or prefix.
        assert_eq!(check_file(&path, &id, MIN_CHUNK_SIZE).unwrap(), want);
        assert_eq!(check_file(&path, &id[..16].to_uppercase(), chunk).unwrap(), want);
        // One byte changed: no chunk size gives the id.
        let mut changed = bytes.clone();
        changed[50_000] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert!(matches!(
            check_file(&path, &id, chunk).unwrap(),
            Checked::Differs { .. }
        ));
        assert!(check_file(&tmp.path().join("missing"), &id, chunk).is_err());
    }
}
