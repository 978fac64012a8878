//! The real [`Storage`]: working files under `<downloads>/.pytorrent/`,
//! named by the file id (`<id>.part`, its resume record `<id>.state`),
//! written with positioned writes and linked into place under the file's
//! name when verified.
//!
//! Invariants:
//! - Nothing outside `.pytorrent/` is ever created, truncated, replaced or
//!   removed, except the final file, which appears through a hard link
//!   that fails rather than replace anything. Names from the network are
//!   never part of a working file's name, so they cannot collide with a
//!   user's file, nor be too long for the file system (the id is 64 hex
//!   digits).
//! - Working files are opened with `O_NOFOLLOW` (a symlink planted in
//!   their place is an error, never followed) and created with `O_EXCL`.
//! - A working file is locked (advisory `flock`) by the download that
//!   writes it: two downloads (in one client or two) never write one file.
//! - The working file and its record are removed only after the final
//!   link exists; `.pytorrent/` is removed when it is left empty.

use crate::client::engine::transfer::resume;
use crate::client::engine::transfer::storage::{
    CreateError, Created, FinishError, FolderPlan, PartFile, Storage,
};
use crate::meta::{hex, FileMeta};
use crate::wire::FileId;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The working directory's name inside the downloads directory.
pub const WORK_DIR: &str = ".pytorrent";

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

    /// The downloads directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn work(&self) -> PathBuf {
        self.dir.join(WORK_DIR)
    }

    fn part_path(&self, id: &FileId) -> PathBuf {
        self.work().join(format!("{}.part", hex(id)))
    }

    /// Creates `.pytorrent/` if needed, and makes sure it is a directory,
    /// not a symlink to somewhere else.
    pub(super) fn make_work(&self) -> Result<PathBuf, CreateError> {
        let work = self.work();
        let io = |e| CreateError::Io(format!("create {}", work.display()), e);
        match fs::create_dir_all(&work) {
            Ok(()) => {}
            Err(e) => return Err(io(e)),
        }
        let md = fs::symlink_metadata(&work).map_err(io)?;
        if !md.is_dir() {
            let e = io::Error::new(io::ErrorKind::AlreadyExists, "not a directory");
            return Err(CreateError::Io(format!("use {}", work.display()), e));
        }
        Ok(work)
    }

    fn open(path: &Path, create: bool) -> io::Result<File> {
        let mut o = OpenOptions::new();
        o.read(true).write(true).custom_flags(libc::O_NOFOLLOW);
        if create {
            o.create_new(true);
        }
        o.open(path)
    }
}

/// An open, locked working file.
pub struct FsPart {
    file: File,
    path: PathBuf,
    /// Its resume record.
    state: PathBuf,
    /// The downloads directory (where the final file goes).
    dir: PathBuf,
}

impl FsPart {
    fn new(file: File, path: PathBuf, dir: &Path) -> FsPart {
        let state = path.with_extension("state");
        FsPart {
            file,
            path,
            state,
            dir: dir.to_path_buf(),
        }
    }

    /// Removes `.pytorrent/` if nothing else is in it.
    fn tidy(&self) {
        if let Some(work) = self.path.parent() {
            let _ = fs::remove_dir(work);
        }
    }
}

impl Storage for FsStorage {
    fn create(&mut self, meta: &FileMeta) -> Result<Created, CreateError> {
        // A name already taken is no reason to refuse: the finished file
        // gets the next free `name.N.ext` (see `finish`).
        fs::create_dir_all(&self.dir)
            .map_err(|e| CreateError::Io(format!("create {}", self.dir.display()), e))?;
        self.make_work()?;
        let path = self.part_path(&meta.id());
        let io = |what: &str, e| CreateError::Io(format!("{what} {}", path.display()), e);
        // An earlier run's working file (ours: it is in our directory,
        // under the id) is reused and re-checked; else a new one.
        let (file, existed) = match Self::open(&path, false) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (Self::open(&path, true).map_err(|e| io("create", e))?, false)
            }
            Err(e) => return Err(io("open", e)),
        };
        lock(&file).map_err(|_| CreateError::Busy)?;
        let md = file.metadata().map_err(|e| io("read", e))?;
        if !md.is_file() {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io("use", e));
        }
        let reused = existed && md.len() == meta.size && md.len() > 0;
        if existed && !reused {
            file.set_len(0).map_err(|e| io("reset", e))?;
        }
        Ok(Created {
            part: Box::new(FsPart::new(file, path, &self.dir)),
            reused,
        })
    }

    fn create_folder(&mut self, meta: &FileMeta, plan: &FolderPlan) -> Result<Created, CreateError> {
        self.create_folder_part(meta, plan)
    }

    fn resume_folder(
        &mut self,
        id: &FileId,
        plan: &FolderPlan,
    ) -> Option<(Box<dyn PartFile>, resume::State)> {
        self.resume_folder_part(id, plan)
    }

    fn resume(&mut self, id: &FileId) -> Option<(Box<dyn PartFile>, resume::State)> {
        let path = self.part_path(id);
        let state = resume::read(&path.with_extension("state")).ok()?;
        if state.meta.id() != *id {
            return None;
        }
        let file = Self::open(&path, false).ok()?;
        lock(&file).ok()?;
        let md = file.metadata().ok()?;
        if !md.is_file() || md.len() != state.meta.size {
            return None;
        }
        Some((Box::new(FsPart::new(file, path, &self.dir)), state))
    }

    fn unfinished(&self) -> Vec<resume::State> {
        resume::scan(&self.work()).into_iter().map(|(_, st)| st).collect()
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

    fn save(&mut self, meta: &FileMeta, verified: &[u8], torrent: &[u8]) -> io::Result<()> {
        self.file.sync_data()?;
        resume::write(&self.state, meta, verified, torrent)
    }

    fn finish(&mut self, name: &str) -> Result<PathBuf, FinishError> {
        self.file.sync_data().map_err(FinishError::Io)?;
        // The name, else name.1.ext, name.2.ext, ...: a hard link never
        // replaces a file, so the first free name is taken atomically,
        // even against another process finishing the same name.
        let mut final_path = None;
        for n in 0..=MAX_RENAMES {
            let path = self.dir.join(numbered(name, n));
            match fs::hard_link(&self.path, &path) {
                Ok(()) => {
                    final_path = Some(path);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(FinishError::Io(e)),
            }
        }
        let final_path = final_path.ok_or(FinishError::Exists)?;
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.state);
        self.tidy();
        Ok(final_path)
    }

    fn discard(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.state);
        self.tidy();
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// Most numbered names tried for a finished download whose name is taken.
pub const MAX_RENAMES: u32 = 999;

/// `name` for the `n`-th try: itself for 0, else `name.N.ext` (`name.N`
/// without an extension; a leading dot is not an extension's).
pub fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => format!("{}.{n}{}", &name[..i], &name[i..]),
        None => format!("{name}.{n}"),
    }
}

/// Takes the `.part` file for this download alone (an advisory `flock`,
/// released when the file is closed).
pub(super) fn lock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MIN_CHUNK_SIZE;
    use crate::testutil::{data, TempDir};

    fn meta(name: &str) -> FileMeta {
        FileMeta::from_reader(name, &data(2 * MIN_CHUNK_SIZE as usize, 9)[..], MIN_CHUNK_SIZE).unwrap()
    }

    #[test]
    fn taken_names_are_numbered_before_the_extension() {
        assert_eq!(numbered("a.tar.gz", 0), "a.tar.gz");
        assert_eq!(numbered("a.tar.gz", 1), "a.tar.1.gz");
        assert_eq!(numbered("notes", 2), "notes.2");
        assert_eq!(numbered(".hidden", 3), ".hidden.3");
    }

    #[test]
    fn files_of_the_user_are_never_touched() {
        let dir = TempDir::new("userfiles");
        // Everything a download of x.bin used to write over or delete.
        let mine = ["x.bin.part", "x.bin.part.state", "x.part", ".pytorrent-not-ours"];
        for name in mine {
            fs::write(dir.path().join(name), name).unwrap();
        }
        let m = meta("x.bin");
        let mut storage = FsStorage::new(dir.path());
        let mut created = storage.create(&m).unwrap();
        assert!(!created.reused);
        let part = &mut created.part;
        part.reserve(m.size).unwrap();
        part.write_at(&data(m.size as usize, 9), 0).unwrap();
        part.save(&m, &[0b11], &[]).unwrap();
        assert_eq!(part.finish(&m.name).unwrap(), dir.path().join("x.bin"));
        for name in mine {
            assert_eq!(
                fs::read(dir.path().join(name)).unwrap(),
                name.as_bytes(),
                "{name} changed"
            );
        }
        assert!(
            !dir.path().join(WORK_DIR).exists(),
            "the working directory is tidied away"
        );
    }

    #[test]
    fn a_symlink_in_place_of_a_working_file_is_not_followed() {
        let dir = TempDir::new("symlink");
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, b"precious").unwrap();
        let m = meta("y.bin");
        let work = dir.path().join(WORK_DIR);
        fs::create_dir(&work).unwrap();
        std::os::unix::fs::symlink(&victim, work.join(format!("{}.part", hex(&m.id())))).unwrap();
        let mut storage = FsStorage::new(dir.path());
        let err = storage.create(&m).err().expect("a symlink was followed");
        assert!(matches!(err, CreateError::Io(..)), "{err:?}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // And a working directory that is a symlink is refused too.
        let other = TempDir::new("symlink-dir");
        std::os::unix::fs::symlink(dir.path(), other.path().join(WORK_DIR)).unwrap();
        assert!(FsStorage::new(other.path()).create(&meta("z.bin")).is_err());
    }

    #[test]
    fn a_name_as_long_as_allowed_can_be_downloaded() {
        // 255 bytes: the working file's name is the id, so no suffix
        // makes it too long.
        let dir = TempDir::new("longname");
        let name = "n".repeat(255);
        let m = meta(&name);
        let mut created = FsStorage::new(dir.path()).create(&m).unwrap();
        created.part.reserve(m.size).unwrap();
        created.part.write_at(&data(m.size as usize, 9), 0).unwrap();
        created.part.save(&m, &[0b11], &[]).unwrap();
        assert_eq!(created.part.finish(&m.name).unwrap(), dir.path().join(&name));
    }
}
