//! Where a download's bytes live, behind two small traits, so the engine
//! never touches a file: [`Storage`] finds or creates a download's working
//! file, [`PartFile`] is that file. The real implementation is
//! [`crate::client::io::part_file`]; tests use `mem::MemStorage` (tests only).
//!
//! Invariants every implementation keeps:
//! - [`Storage::create`] never truncates or replaces a file it did not
//!   create for this download: an earlier run's file of the right size is
//!   handed back as `reused` (its chunks are re-checked, never trusted).
//! - [`PartFile::save`] makes the written bytes durable before it records
//!   any chunk as verified.
//! - [`PartFile::finish`] makes the final file appear whole or not at all,
//!   and never over an existing file.
//!
//! Storage returns typed results; what a result means for the download
//! (failed, re-check, resumed) is decided by the download, not here.

use crate::client::engine::transfer::resume;
use crate::meta::FileMeta;
use crate::wire::FileId;
use std::io;
use std::path::PathBuf;

/// A download's working file.
pub trait PartFile {
    /// Gives the file its full length, reserving the space where the file
    /// system can, so a full disk shows before the first byte is fetched.
    fn reserve(&mut self, size: u64) -> io::Result<()>;
    fn write_at(&mut self, data: &[u8], at: u64) -> io::Result<()>;
    /// Fills `buf` from `at`; a short file is an error.
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
    /// A hint that `len` bytes from `at` are final (start writing them
    /// back now); implementations may ignore it.
    fn written(&self, _at: u64, _len: u64) {}
    /// Makes the written bytes durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Syncs, then records `verified` (one bit a chunk) and, for a
    /// BitTorrent download, its `torrent`, so a later run can resume.
    fn save(&mut self, meta: &FileMeta, verified: &[u8], torrent: &[u8]) -> io::Result<()>;
    /// The verified file is complete: sync it and put it in place as
    /// `name` (its own, or `--output`'s). The working file and its record
    /// are gone afterwards.
    fn finish(&mut self, name: &str) -> Result<PathBuf, FinishError>;
    /// Removes a working file this download created and never filled (its
    /// space could not be reserved).
    fn discard(&mut self);
    /// Where the bytes are, for serving verified chunks to other peers
    /// (`None` when they are not in a file).
    fn path(&self) -> Option<&std::path::Path>;
}

/// Why [`PartFile::finish`] could not put the file in place.
#[derive(Debug)]
pub enum FinishError {
    /// A file of that name appeared meanwhile; the data stays where it is.
    Exists,
    Io(io::Error),
}

/// A working file handed out by [`Storage::create`].
pub struct Created {
    pub part: Box<dyn PartFile>,
    /// An earlier run's file of the right size: check its chunks.
    pub reused: bool,
}

/// Why [`Storage::create`] failed; `Display` is safe to print.
#[derive(Debug)]
pub enum CreateError {
    /// The final name is taken already.
    Exists,
    /// Another download (here or in another process) owns the working file.
    Busy,
    /// What could not be done (names a path), and why.
    Io(String, io::Error),
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CreateError::Exists => write!(
                f,
                "a file of that name already exists; move it away to download it again"
            ),
            CreateError::Busy => write!(f, "another download is writing its .part file"),
            CreateError::Io(what, e) => write!(f, "cannot {what}: {e}"),
        }
    }
}

/// A multi-file torrent's files as a working folder holds them: where
/// each sits in the piece space (padding is in none of them, and reads
/// as zeros).
#[derive(Debug, Clone, Default)]
pub struct FolderPlan {
    pub files: Vec<PlannedFile>,
}

#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Inside the torrent's folder; every component checked (a torrent's
    /// paths pass `names::check_file_name`).
    pub rel: PathBuf,
    /// Where it starts in the piece space, and its length.
    pub offset: u64,
    pub len: u64,
    /// Not wanted (`--only`): it may hold bytes of pieces it shares with
    /// wanted files, and is removed when the download finishes.
    pub unwanted: bool,
}

/// Finds and creates downloads' working files.
pub trait Storage {
    /// A working file for `meta`, to be reserved and filled.
    fn create(&mut self, meta: &FileMeta) -> Result<Created, CreateError>;
    /// A working folder for a multi-file torrent whose piece space is
    /// `meta.size` bytes, its files as `plan` says; it finishes as a
    /// folder named `meta.name`.
    fn create_folder(&mut self, meta: &FileMeta, plan: &FolderPlan) -> Result<Created, CreateError>;
    /// An earlier run's working file for `id` with a sound record of its
    /// verified chunks.
    fn resume(&mut self, id: &FileId) -> Option<(Box<dyn PartFile>, resume::State)>;
    /// An earlier run's working folder for `id`, its files as `plan` says,
    /// with a sound record.
    fn resume_folder(&mut self, id: &FileId, plan: &FolderPlan)
        -> Option<(Box<dyn PartFile>, resume::State)>;
    /// Every unfinished download an earlier run recorded.
    fn unfinished(&self) -> Vec<resume::State>;
}

#[cfg(test)]
pub mod mem {
    //! Storage in memory, shared by handle so a test can look at (or
    //! damage) what a download wrote.
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    #[derive(Debug, Default)]
    pub struct Disk {
        /// Working files by name, with their saved record.
        pub parts: BTreeMap<String, (Vec<u8>, Option<resume::State>)>,
        /// Finished files by name.
        pub done: BTreeMap<String, Vec<u8>>,
        /// Names whose working file is open (owned by a download).
        pub busy: Vec<String>,
    }

    #[derive(Clone, Default)]
    pub struct MemStorage(pub Rc<RefCell<Disk>>);

    pub struct MemPart {
        disk: Rc<RefCell<Disk>>,
        name: String,
    }

    impl Drop for MemPart {
        fn drop(&mut self) {
            self.disk.borrow_mut().busy.retain(|n| *n != self.name);
        }
    }

    impl PartFile for MemPart {
        fn reserve(&mut self, size: u64) -> io::Result<()> {
            let mut disk = self.disk.borrow_mut();
            let part = disk.parts.get_mut(&self.name).ok_or(io::ErrorKind::NotFound)?;
            part.0.resize(size as usize, 0);
            Ok(())
        }
        fn write_at(&mut self, data: &[u8], at: u64) -> io::Result<()> {
            let mut disk = self.disk.borrow_mut();
            let part = disk.parts.get_mut(&self.name).ok_or(io::ErrorKind::NotFound)?;
            let end = at as usize + data.len();
            if end > part.0.len() {
                part.0.resize(end, 0);
            }
            part.0[at as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
            let disk = self.disk.borrow();
            let part = disk.parts.get(&self.name).ok_or(io::ErrorKind::NotFound)?;
            let src = part
                .0
                .get(at as usize..at as usize + buf.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn save(&mut self, meta: &FileMeta, verified: &[u8], torrent: &[u8]) -> io::Result<()> {
            let mut disk = self.disk.borrow_mut();
            let part = disk.parts.get_mut(&self.name).ok_or(io::ErrorKind::NotFound)?;
            part.1 = Some(resume::State {
                meta: meta.clone(),
                verified: verified.to_vec(),
                torrent: torrent.to_vec(),
            });
            Ok(())
        }
        fn finish(&mut self, name: &str) -> Result<PathBuf, FinishError> {
            let mut disk = self.disk.borrow_mut();
            if disk.done.contains_key(name) {
                return Err(FinishError::Exists);
            }
            let (bytes, _) = disk
                .parts
                .remove(&self.name)
                .ok_or(FinishError::Io(io::ErrorKind::NotFound.into()))?;
            disk.done.insert(name.to_string(), bytes);
            Ok(PathBuf::from(name))
        }
        fn discard(&mut self) {
            self.disk.borrow_mut().parts.remove(&self.name);
        }
        fn path(&self) -> Option<&std::path::Path> {
            None
        }
    }

    impl MemStorage {
        fn open(&self, name: &str) -> Result<MemPart, CreateError> {
            let mut disk = self.0.borrow_mut();
            if disk.busy.iter().any(|n| n == name) {
                return Err(CreateError::Busy);
            }
            disk.busy.push(name.to_string());
            Ok(MemPart {
                disk: self.0.clone(),
                name: name.to_string(),
            })
        }
    }

    impl Storage for MemStorage {
        fn create(&mut self, meta: &FileMeta) -> Result<Created, CreateError> {
            if self.0.borrow().done.contains_key(&meta.name) {
                return Err(CreateError::Exists);
            }
            let part = self.open(&meta.name)?;
            let mut disk = self.0.borrow_mut();
            let entry = disk.parts.entry(meta.name.clone()).or_default();
            let reused = entry.0.len() as u64 == meta.size && meta.size > 0;
            if !reused {
                entry.0.clear();
            }
            Ok(Created {
                part: Box::new(part),
                reused,
            })
        }
        /// The piece space in one buffer: what the engine sees of a
        /// folder is the same.
        fn create_folder(&mut self, meta: &FileMeta, _plan: &FolderPlan) -> Result<Created, CreateError> {
            self.create(meta)
        }
        fn resume_folder(
            &mut self,
            id: &FileId,
            _plan: &FolderPlan,
        ) -> Option<(Box<dyn PartFile>, resume::State)> {
            self.resume(id)
        }
        fn resume(&mut self, id: &FileId) -> Option<(Box<dyn PartFile>, resume::State)> {
            let (name, state) = {
                let disk = self.0.borrow();
                disk.parts.iter().find_map(|(name, (bytes, st))| {
                    let st = st.as_ref()?;
                    (st.meta.id() == *id && bytes.len() as u64 == st.meta.size)
                        .then(|| (name.clone(), st.clone()))
                })?
            };
            let part = self.open(&name).ok()?;
            Some((Box::new(part), state))
        }
        fn unfinished(&self) -> Vec<resume::State> {
            let disk = self.0.borrow();
            disk.parts.values().filter_map(|(_, st)| st.clone()).collect()
        }
    }
}
