//! The real [`Storage`]: `<dir>/<name>.part` files beside their resume
//! sidecars, written with positioned writes and moved into place with a
//! hard link.
//!
//! Invariants:
//! - A `.part` file is opened without truncating and taken with an
//!   advisory lock before anything changes it: two downloads (in one
//!   client or two) never write the same file.
//! - The final file appears only through a hard link, which fails rather
//!   than replace an existing file; the `.part` file and its sidecar are
//!   removed only after that link exists.

use crate::client::engine::resume;
use crate::client::engine::storage::{CreateError, Created, FinishError, PartFile, Storage};
use crate::meta::FileMeta;
use crate::wire::FileId;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Working files in one downloads directory.
pub struct FsStorage {
    dir: PathBuf,
}

impl FsStorage {
    pub fn new(dir: &Path) -> FsStorage {
        FsStorage {
            dir: dir.to_path_buf(),
        }
    }
}

/// An open, locked `.part` file.
pub struct FsPart {
    file: File,
    path: PathBuf,
    dir: PathBuf,
}

impl Storage for FsStorage {
    fn create(&mut self, meta: &FileMeta) -> Result<Created, CreateError> {
        if fs::symlink_metadata(self.dir.join(&meta.name)).is_ok() {
            return Err(CreateError::Exists);
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| CreateError::Io(format!("create {}", self.dir.display()), e))?;
        let path = self.dir.join(format!("{}.part", meta.name));
        // Opened without truncating: another download may own it, which
        // the lock finds out before anything is changed.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| CreateError::Io(format!("create {}", path.display()), e))?;
        lock(&file).map_err(|_| CreateError::Busy)?;
        let len = file
            .metadata()
            .map_err(|e| CreateError::Io(format!("read {}", path.display()), e))?
            .len();
        let reused = len == meta.size && len > 0;
        if !reused {
            file.set_len(0)
                .map_err(|e| CreateError::Io(format!("reset {}", path.display()), e))?;
        }
        Ok(Created {
            part: Box::new(FsPart {
                file,
                path,
                dir: self.dir.clone(),
            }),
            reused,
        })
    }

    fn resume(&mut self, id: &FileId) -> Option<(Box<dyn PartFile>, resume::State)> {
        let (side, state) = resume::find(&self.dir, id)?;
        let path = self.dir.join(format!("{}.part", state.meta.name));
        if resume::path_for(&path) != side {
            return None;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        lock(&file).ok()?;
        if file.metadata().ok()?.len() != state.meta.size {
            return None;
        }
        let part = FsPart {
            file,
            path,
            dir: self.dir.clone(),
        };
        Some((Box::new(part), state))
    }

    fn unfinished(&self) -> Vec<resume::State> {
        resume::scan(&self.dir).into_iter().map(|(_, st)| st).collect()
    }
}

impl PartFile for FsPart {
    /// Linux `fallocate` where the file system has it (writes into reserved
    /// blocks are also cheaper than growing a sparse file), else a sparse
    /// file of the full length.
    fn reserve(&mut self, size: u64) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if size > 0 {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain syscall on a file descriptor we own.
            let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, size as libc::off_t) };
            if rc == 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                return Err(e);
            }
        }
        self.file.set_len(size)
    }

    fn write_at(&mut self, data: &[u8], at: u64) -> io::Result<()> {
        self.file.write_all_at(data, at)
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, at)
    }

    /// Starts the kernel writing a verified chunk back now, so the sync
    /// before the final link has little left and dirty pages do not pile
    /// up (Linux; elsewhere the final sync does it all).
    fn written(&self, at: u64, len: u64) {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain syscall on a file descriptor we own; it only
            // schedules I/O. A failure is harmless: the final sync covers it.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    at as i64,
                    len as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (at, len);
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn save(&mut self, meta: &FileMeta, verified: &[u8]) -> io::Result<()> {
        self.file.sync_data()?;
        resume::write(&resume::path_for(&self.path), meta, verified)
    }

    fn finish(&mut self, meta: &FileMeta) -> Result<PathBuf, FinishError> {
        self.file.sync_data().map_err(FinishError::Io)?;
        let final_path = self.dir.join(&meta.name);
        fs::hard_link(&self.path, &final_path).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                FinishError::Exists
            } else {
                FinishError::Io(e)
            }
        })?;
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(resume::path_for(&self.path));
        Ok(final_path)
    }

    fn discard(&mut self) {
        let _ = fs::remove_file(&self.path);
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// Takes the `.part` file for this download alone (an advisory `flock`,
/// released when the file is closed).
fn lock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
