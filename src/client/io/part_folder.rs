//! A multi-file torrent's working folder: `<downloads>/.pytorrent/<id>.d/`
//! holding its files at their paths inside the torrent, written by
//! piece-space offset (padding is in no file: it reads as zeros and
//! writes to it are dropped), renamed into place as one folder when
//! verified.
//!
//! Invariants (those of [`super::part_file`], for a folder):
//! - Everything is created inside the working folder, which is ours: each
//!   folder on a file's path is created (or found) as a real directory,
//!   never through a symlink, and files are opened with `O_NOFOLLOW`.
//!   Paths come from a parsed torrent, whose every component passed
//!   `names::check_file_name` (no `..`, no separator, no absolute path).
//! - The folder is locked (`flock` on it) by the download that writes it.
//! - The finished folder appears under its name (or `name.N`) by one
//!   `renameat2(RENAME_NOREPLACE)`: it never replaces anything, not even
//!   an empty folder or a symlink planted there.

use super::part_file::{lock, numbered, FsStorage, MAX_RENAMES};
use crate::client::engine::transfer::resume;
use crate::client::engine::transfer::storage::{CreateError, Created, FinishError, FolderPlan, PartFile};
use crate::meta::FileMeta;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// An open, locked working folder.
pub struct FsFolder {
    /// The folder itself, open (the lock is on it).
    _dir: File,
    path: PathBuf,
    state: PathBuf,
    /// The downloads directory (where the final folder goes).
    dest: PathBuf,
    plan: FolderPlan,
    files: Vec<File>,
}

impl FsStorage {
    /// Creates (or, with the same files, reuses) the working folder for
    /// `meta`.
    pub(super) fn folder(
        &self,
        meta: &FileMeta,
        plan: &FolderPlan,
        create: bool,
    ) -> Result<(FsFolder, bool), CreateError> {
        let work = self.make_work()?;
        let id = crate::meta::hex(&meta.id());
        let path = work.join(format!("{id}.d"));
        let io = |what: &str, e| CreateError::Io(format!("{what} {}", path.display()), e);
        let existed = match fs::create_dir(&path) {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !create => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => true,
            Err(e) => return Err(io("create", e)),
        };
        let md = fs::symlink_metadata(&path).map_err(|e| io("read", e))?;
        if !md.is_dir() {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a directory");
            return Err(io("use", e));
        }
        let dir = File::open(&path).map_err(|e| io("open", e))?;
        lock(&dir).map_err(|_| CreateError::Busy)?;
        let mut files = Vec::with_capacity(plan.files.len());
        let mut same = existed;
        for f in &plan.files {
            let at = path.join(&f.rel);
            let io = |what: &str, e| CreateError::Io(format!("{what} {}", at.display()), e);
            make_parents(&path, &f.rel).map_err(|e| io("create the folders of", e))?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&at)
                .map_err(|e| io("open", e))?;
            let md = file.metadata().map_err(|e| io("read", e))?;
            if !md.is_file() {
                return Err(io(
                    "use",
                    io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
                ));
            }
            same &= md.len() == f.len;
            files.push(file);
        }
        let state = work.join(format!("{id}.state"));
        let folder = FsFolder {
            _dir: dir,
            path,
            state,
            dest: self.dir().to_path_buf(),
            plan: plan.clone(),
            files,
        };
        Ok((folder, same))
    }

    pub(super) fn create_folder_part(
        &mut self,
        meta: &FileMeta,
        plan: &FolderPlan,
    ) -> Result<Created, CreateError> {
        fs::create_dir_all(self.dir())
            .map_err(|e| CreateError::Io(format!("create {}", self.dir().display()), e))?;
        let (folder, reused) = self.folder(meta, plan, true)?;
        Ok(Created {
            part: Box::new(folder),
            reused,
        })
    }

    pub(super) fn resume_folder_part(
        &mut self,
        meta_id: &crate::wire::FileId,
        plan: &FolderPlan,
    ) -> Option<(Box<dyn PartFile>, resume::State)> {
        let id = crate::meta::hex(meta_id);
        let state = resume::read(
            &self
                .dir()
                .join(super::part_file::WORK_DIR)
                .join(format!("{id}.state")),
        )
        .ok()?;
        if state.meta.id() != *meta_id {
            return None;
        }
        let (folder, same) = self.folder(&state.meta, plan, false).ok()?;
        same.then(|| (Box::new(folder) as Box<dyn PartFile>, state))
    }
}

/// Creates the folders of `rel` below `root`, one at a time, each a real
/// directory (a symlink in the way is an error, never followed).
fn make_parents(root: &Path, rel: &Path) -> io::Result<()> {
    let mut at = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        let Component::Normal(c) = c else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a plain path"));
        };
        at.push(c);
        match fs::create_dir(&at) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if !fs::symlink_metadata(&at)?.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a directory"));
        }
    }
    Ok(())
}

impl FsFolder {
    /// Calls `each(file, offset in it, range of the buffer)` for the files
    /// that `len` bytes from piece-space offset `at` fall in.
    fn spans(
        &self,
        at: u64,
        len: usize,
        mut each: impl FnMut(usize, u64, std::ops::Range<usize>) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = at + len as u64;
        let first = self.plan.files.partition_point(|f| f.offset + f.len <= at);
        for (i, f) in self.plan.files.iter().enumerate().skip(first) {
            if f.offset >= end {
                break;
            }
            let from = at.max(f.offset);
            let to = end.min(f.offset + f.len);
            if from < to {
                each(i, from - f.offset, (from - at) as usize..(to - at) as usize)?;
            }
        }
        Ok(())
    }
}

impl PartFile for FsFolder {
    fn reserve(&mut self, _size: u64) -> io::Result<()> {
        // Sparse files of their full lengths: the space is taken as
        // pieces land (a folder's files are many; no fallocate each).
        for (f, p) in self.files.iter().zip(&self.plan.files) {
            f.set_len(p.len)?;
        }
        Ok(())
    }

    fn write_at(&mut self, data: &[u8], at: u64) -> io::Result<()> {
        let files = &self.files;
        self.spans(at, data.len(), |i, off, r| files[i].write_all_at(&data[r], off))
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        buf.fill(0);
        let len = buf.len();
        let mut spans = Vec::new();
        self.spans(at, len, |i, off, r| {
            spans.push((i, off, r));
            Ok(())
        })?;
        for (i, off, r) in spans {
            self.files[i].read_exact_at(&mut buf[r], off)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.files.iter().try_for_each(File::sync_data)
    }

    fn save(&mut self, meta: &FileMeta, verified: &[u8], torrent: &[u8]) -> io::Result<()> {
        self.sync()?;
        resume::write(&self.state, meta, verified, torrent)
    }

    fn finish(&mut self, name: &str) -> Result<PathBuf, FinishError> {
        self.sync().map_err(FinishError::Io)?;
        for p in self.plan.files.iter().filter(|p| p.unwanted) {
            let _ = fs::remove_file(self.path.join(&p.rel));
        }
        let mut final_path = None;
        for n in 0..=MAX_RENAMES {
            let to = self.dest.join(numbered(name, n));
            match rename_noreplace(&self.path, &to) {
                Ok(()) => {
                    final_path = Some(to);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(FinishError::Io(e)),
            }
        }
        let final_path = final_path.ok_or(FinishError::Exists)?;
        let _ = fs::remove_file(&self.state);
        if let Some(work) = self.state.parent() {
            let _ = fs::remove_dir(work);
        }
        Ok(final_path)
    }

    fn discard(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        let _ = fs::remove_file(&self.state);
        if let Some(work) = self.state.parent() {
            let _ = fs::remove_dir(work);
        }
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// Renames `from` to `to` unless something is at `to` (Linux
/// `renameat2(RENAME_NOREPLACE)`: atomic, never replaces).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; a plain syscall.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::engine::transfer::storage::{PlannedFile, Storage};
    use crate::testutil::TempDir;

    fn plan() -> FolderPlan {
        let f = |rel: &str, offset, len| PlannedFile {
            rel: PathBuf::from(rel),
            offset,
            len,
            unwanted: false,
        };
        // 10 bytes of padding between "a" and "sub/b"; "e" is empty.
        FolderPlan {
            files: vec![f("a", 0, 30), f("sub/e", 40, 0), f("sub/b", 40, 25)],
        }
    }

    fn meta() -> FileMeta {
        FileMeta {
            name: "t".into(),
            size: 65,
            chunk_size: 16 << 10,
            chunks: vec![[0; 32]],
            sha256: [7; 32],
        }
    }

    #[test]
    fn a_folder_is_written_by_piece_space_offset_and_renamed_into_place_whole() {
        let dir = TempDir::new("folder");
        let mut st = FsStorage::new(dir.path());
        let created = st.create_folder(&meta(), &plan()).unwrap();
        let mut part = created.part;
        part.reserve(65).unwrap();
        let space: Vec<u8> = (0..65u8)
            .map(|i| if (30..40).contains(&i) { 0 } else { i + 1 })
            .collect();
        part.write_at(&[9; 65], 0).unwrap();
        part.write_at(&space[20..50], 20).unwrap();
        part.write_at(&space[..20], 0).unwrap();
        part.write_at(&space[50..], 50).unwrap();
        let mut back = vec![0xff; 65];
        part.read_at(&mut back, 0).unwrap();
        assert_eq!(back, space, "padding reads as zeros");
        part.save(&meta(), &[1], b"").unwrap();
        drop(part);
        let (part, state) = st.resume_folder(&meta().id(), &plan()).expect("resumes");
        assert_eq!(state.verified, vec![1]);
        let mut part = part;
        // Something planted under the final name is never replaced.
        std::os::unix::fs::symlink("/tmp", dir.path().join("t")).unwrap();
        let done = part.finish("t").unwrap();
        assert_eq!(done, dir.path().join("t.1"));
        assert_eq!(fs::read(done.join("a")).unwrap(), space[..30]);
        assert_eq!(fs::read(done.join("sub/b")).unwrap(), space[40..]);
        assert_eq!(fs::read(done.join("sub/e")).unwrap(), b"");
        assert!(
            !dir.path().join(super::super::part_file::WORK_DIR).exists(),
            "nothing left behind"
        );
    }

    #[test]
    fn a_symlinked_folder_inside_is_not_followed() {
        let dir = TempDir::new("folder-link");
        let outside = TempDir::new("folder-outside");
        let mut st = FsStorage::new(dir.path());
        // The working folder exists with `sub` planted as a symlink.
        let work = st.make_work().unwrap();
        let d = work.join(format!("{}.d", crate::meta::hex(&meta().id())));
        fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join("sub")).unwrap();
        assert!(st.create_folder(&meta(), &plan()).is_err());
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside"
        );
    }
}
