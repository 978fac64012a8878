//! Replacing a small file so that a crash leaves the old version or the
//! new one, whole, never a mix: write a temporary file beside it, sync it,
//! rename it over, sync the directory (so the rename itself survives a
//! power cut). Used by the config file, the shared files' index cache and
//! the resume sidecars.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces the file at `path` with `bytes`. On an error the temporary
/// file is removed and `path` is as it was.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable once the directory is synced; failing that
    // loses at most the new version, which a caller cannot do better on.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("f.txt");
        write(&path, b"one").unwrap();
        write(&path, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.txt")]);
        // A directory in the way: an error, and nothing left behind.
        let blocked = dir.path().join("sub");
        std::fs::create_dir(&blocked).unwrap();
        assert!(write(&blocked, b"x").is_err());
        assert!(!dir.path().join("sub.tmp").exists());
    }
}
