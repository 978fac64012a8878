//! The set of files a client shares: the regular files directly in the
//! shared directory, plus finished downloads added while running.
//!
//! The directory is listed again while running ([`Library::rescan`]): new
//! files are queued, files that vanished or changed are dropped (a changed
//! one is queued again). A file the user stopped sharing
//! ([`Library::remove`]) is withheld from rescans until the next start.
//!
//! Hashing a large directory takes minutes, and the client has one thread
//! and one event loop, so hashing happens in slices: [`Library::open`] only
//! lists the directory, and the loop calls [`Library::index_step`] between
//! events, each call reading about a budget of bytes through one fixed
//! buffer. A hidden cache file ([`INDEX_FILE`]) keeps the metadata of files
//! already hashed, keyed by name, size, modification time (ns), inode and
//! chunk size, so a restart hashes only what changed.
//!
//! Invariants:
//! - Ready plus queued files never exceed [`MAX_SHARED_FILES`].
//! - A ready file's `meta` passed [`FileMeta::validate`], its `id` is
//!   `meta.id()` and its `encoded_meta` is `encode_meta(meta)`.
//! - Only names that pass [`names::check_file_name`] are shared; a name
//!   that fails is printed only through [`names::escape`].
//! - A file is ready only if its size, mtime and inode were the same before
//!   and after it was hashed; a file that changed while being hashed is
//!   hashed once more, then skipped.
//! - Nothing read from the cache is trusted: it is size-limited, decoded
//!   with a memory limit, and every entry is validated; a bad cache only
//!   costs a rehash. A cache that cannot be written is only a warning, so a
//!   read-only directory can still be shared.

use crate::meta::{self, FileMeta, MetaBuilder};
use crate::names;
use crate::wire::codec::{self, ALLOC_PER_WIRE_BYTE};
use crate::wire::tracker::FileEntry;
use crate::wire::FileId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Name of the metadata cache inside the shared directory (hidden, so it
/// is never shared itself).
pub const INDEX_FILE: &str = ".pytorrent-index";
/// Most files one client shares: as many as the tracker accepts from a peer.
pub const MAX_SHARED_FILES: usize = crate::wire::tracker::MAX_FILES_PER_PEER;

/// Start of the cache file: magic and format version, checked before the
/// body is decoded so another version is recognised, not called corrupt.
/// Then the SHA-256 of the body: a flipped bit in a cached hash would
/// otherwise decode fine and make us serve metadata that no longer matches
/// the file.
const CACHE_MAGIC: &[u8; 7] = b"PYTIDX\0";
const CACHE_VERSION: u8 = 1;
/// Magic, version, body digest.
const CACHE_HEADER: usize = CACHE_MAGIC.len() + 1 + 32;
/// Largest cache body. Metadata of about 2 million chunks; entries that do
/// not fit are left out of the cache (and rehashed at the next start).
const MAX_CACHE_LEN: usize = 64 * 1024 * 1024;
/// Memory decoding the cache may claim (see [`codec`]).
const CACHE_ALLOC: usize = MAX_CACHE_LEN * ALLOC_PER_WIRE_BYTE;
/// Read buffer for hashing: large enough for few syscalls, small enough to
/// keep per-step latency low.
const HASH_BUF: usize = 256 * 1024;
/// Budget charged for opening and checking a file, so a queue of many small
/// or empty files is also spread over several steps.
const FILE_COST: u64 = 4096;
/// A file modified this recently is not cached: a change within the same
/// mtime tick after hashing would otherwise go unnoticed ("racy clean" in
/// git's terms). 2 s covers the coarsest common timestamps (FAT).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// One shared file, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFile {
    /// `meta.id()`.
    pub id: FileId,
    pub meta: FileMeta,
    /// [`meta::encode_meta`] output, served to peers as-is.
    pub encoded_meta: Vec<u8>,
    /// Where its bytes are: the shared directory, or a download directory
    /// for re-seeded downloads.
    pub path: PathBuf,
    /// What the file was when it was indexed: a file found different when
    /// opened to serve it (swapped, replaced, changed) is not served.
    pub stat: Option<Stat>,
}

/// What one [`Library::index_step`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IndexStep {
    /// Files that became ready during this step.
    pub ready: Vec<FileId>,
    /// Files dropped (vanished, unreadable, changing) and cache write
    /// failures, for the log. Names are escaped.
    pub warnings: Vec<String>,
}

/// What identifies an unchanged file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    size: u64,
    /// Modification time in ns since the epoch (0 before it).
    mtime_ns: u64,
    /// A file replaced by rename (rsync, editors) gets a new inode even
    /// when size and mtime are preserved.
    ino: u64,
}

impl Stat {
    pub fn of(md: &Metadata) -> Stat {
        Stat {
            size: md.len(),
            mtime_ns: md.modified().map_or(0, ns_since_epoch),
            ino: md.ino(),
        }
    }
}

fn ns_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One cached file. Name, size and chunk size are those of `meta`.
#[derive(Serialize, Deserialize)]
struct CacheEntry {
    stat: Stat,
    meta: FileMeta,
}

/// The borrowed twin of [`CacheEntry`] for writing (serde encodes a
/// reference exactly like the value, so the two are the same on disk).
#[derive(Serialize)]
struct CacheEntryRef<'a> {
    stat: Stat,
    meta: &'a FileMeta,
}

/// A file waiting to be hashed.
struct Queued {
    name: String,
    path: PathBuf,
    /// As listed; compared after hashing to detect a change.
    stat: Stat,
    /// Already re-queued once because it changed while being hashed.
    retried: bool,
}

/// The file being hashed.
struct Hashing {
    job: Queued,
    file: File,
    builder: MetaBuilder,
}

/// A ready file and, for files of the shared directory, the stat its
/// metadata is cached under.
struct Ready {
    shared: SharedFile,
    stat: Option<Stat>,
}

/// The shared files, indexed incrementally (see the module docs).
pub struct Library {
    dir: PathBuf,
    chunk_size: u32,
    ready: HashMap<FileId, Ready>,
    /// `ready` in name order (then id, as names may repeat across dirs).
    order: BTreeSet<(String, FileId)>,
    queue: VecDeque<Queued>,
    /// Sum of the sizes in `queue`.
    queued_bytes: u64,
    current: Option<Hashing>,
    /// Allocated while indexing only.
    buf: Vec<u8>,
    /// The cache on disk differs from what indexing will produce.
    cache_dirty: bool,
    /// Names in `dir` the user stopped sharing: rescans skip them. At most
    /// one per file the directory can hold ([`MAX_SHARED_FILES`]).
    withheld: BTreeSet<String>,
    /// Files that could not be opened, as they were then: a rescan skips
    /// them until they change (no warning every rescan). Bounded like
    /// `withheld`.
    unreadable: HashMap<String, Stat>,
}

/// What one [`Library::rescan`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rescan {
    /// New or changed files queued for hashing.
    pub queued: usize,
    /// Ready files that vanished from disk or changed: no longer shared.
    pub gone: Vec<FileId>,
    /// Entries skipped (bad names, symlinks, the limit); names escaped.
    pub warnings: Vec<String>,
}

impl Library {
    /// Lists `dir` (creating it if missing), loads the cache, and queues
    /// every file whose (name, size, mtime, inode, chunk size) is not in
    /// the cache for hashing. Files found in the cache are ready at once.
    /// Returns warnings about skipped entries: invalid or non-UTF-8 names,
    /// symlinks, more than [`MAX_SHARED_FILES`] files, a corrupt, oversized
    /// or foreign cache (ignored: its files are rehashed).
    ///
    /// Errors only if `dir` cannot be created or listed, or if `chunk_size`
    /// is out of range.
    pub fn open(dir: &Path, chunk_size: u32) -> io::Result<(Library, Vec<String>)> {
        if let Err(e) = MetaBuilder::new(chunk_size) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
        }
        fs::create_dir_all(dir)?;
        let mut warnings = Vec::new();
        let (mut cache, cache_ok) = load_cache(dir, chunk_size, &mut warnings);
        let candidates = list_dir(dir, &mut warnings)?;

        let mut lib = Library {
            dir: dir.to_path_buf(),
            chunk_size,
            ready: HashMap::new(),
            order: BTreeSet::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            current: None,
            buf: Vec::new(),
            cache_dirty: !cache_ok,
            withheld: BTreeSet::new(),
            unreadable: HashMap::new(),
        };
        for Listed { name, file, stat } in candidates {
            let path = dir.join(&file);
            match cache.remove(&name) {
                Some(entry) if entry.stat == stat && entry.meta.size == stat.size => {
                    lib.insert_ready(entry.meta, path, Some(stat), &mut warnings);
                }
                _ => lib.enqueue(Queued {
                    name,
                    path,
                    stat,
                    retried: false,
                }),
            }
        }
        // Entries left over are files that are gone or changed.
        lib.cache_dirty |= !cache.is_empty() || !lib.queue.is_empty();
        if lib.cache_dirty && lib.queue.is_empty() {
            warnings.extend(lib.write_cache());
        }
        Ok((lib, warnings))
    }

    /// A library with no shared directory (a client that only downloads):
    /// it holds only what [`add_verified`](Library::add_verified) adds.
    pub fn empty() -> Library {
        Library {
            dir: PathBuf::new(),
            chunk_size: meta::MIN_CHUNK_SIZE,
            ready: HashMap::new(),
            order: BTreeSet::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            current: None,
            buf: Vec::new(),
            cache_dirty: false,
            withheld: BTreeSet::new(),
            unreadable: HashMap::new(),
        }
    }

    /// Lists the shared directory again: queues files that are new or
    /// changed since they were indexed, and drops ready files of the
    /// directory that are gone or changed (their ids are in
    /// [`Rescan::gone`], for the tracker). Files being indexed and files
    /// the user stopped sharing are left alone. A library without a
    /// directory ([`Library::empty`]) finds nothing.
    pub fn rescan(&mut self) -> io::Result<Rescan> {
        let mut out = Rescan::default();
        if self.dir.as_os_str().is_empty() {
            return Ok(out);
        }
        // By network name: the file's name on disk and its stat.
        let listed: HashMap<String, (String, Stat)> = list_dir(&self.dir, &mut out.warnings)?
            .into_iter()
            .map(|l| (l.name, (l.file, l.stat)))
            .collect();
        // Ready files of the directory (not downloads shared from
        // elsewhere) that vanished or changed.
        let stale: Vec<FileId> = self
            .ready
            .values()
            .filter(|r| r.shared.path.parent() == Some(self.dir.as_path()))
            .filter(|r| listed.get(&r.shared.meta.name).map(|(_, stat)| stat) != r.shared.stat.as_ref())
            .map(|r| r.shared.id)
            .collect();
        for id in stale {
            if let Some(r) = self.ready.remove(&id) {
                self.order.remove(&(r.shared.meta.name, id));
                self.cache_dirty = true;
                out.gone.push(id);
            }
        }
        let busy: BTreeSet<&str> = self
            .ready
            .values()
            .filter(|r| r.shared.path.parent() == Some(self.dir.as_path()))
            .map(|r| r.shared.meta.name.as_str())
            .chain(self.queue.iter().map(|q| q.name.as_str()))
            .chain(self.current.iter().map(|h| h.job.name.as_str()))
            .chain(self.withheld.iter().map(String::as_str))
            .collect();
        // A file modified within the racy window may still be being
        // written (a copy into the folder): it waits for a later rescan
        // rather than being hashed, found changed, and dropped with a
        // warning every time.
        let settled = ns_since_epoch(SystemTime::now().checked_sub(RACY_WINDOW).unwrap_or(UNIX_EPOCH));
        let mut new: Vec<(String, (String, Stat))> = listed
            .into_iter()
            .filter(|(name, (_, stat))| {
                !busy.contains(name.as_str()) && self.unreadable.get(name) != Some(stat)
            })
            .filter(|(_, (_, stat))| stat.mtime_ns <= settled)
            .collect();
        new.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, (file, stat)) in new {
            if self.total() >= MAX_SHARED_FILES {
                out.warnings.push(format!(
                    "not sharing {}: already sharing the limit of {MAX_SHARED_FILES} files",
                    names::escape(&name)
                ));
                continue;
            }
            let path = self.dir.join(&file);
            self.enqueue(Queued {
                name,
                path,
                stat,
                retried: false,
            });
            self.cache_dirty = true;
            out.queued += 1;
        }
        Ok(out)
    }

    /// Stops sharing a ready file; the file on disk is not touched. A file
    /// of the shared directory is withheld from rescans until the next
    /// start. Returns it, or `None` if no ready file has that id.
    pub fn remove(&mut self, id: &FileId) -> Option<SharedFile> {
        let r = self.ready.remove(id)?;
        self.order.remove(&(r.shared.meta.name.clone(), *id));
        if r.shared.path.parent() == Some(self.dir.as_path()) && self.withheld.len() < MAX_SHARED_FILES {
            self.withheld.insert(r.shared.meta.name.clone());
        }
        Some(r.shared)
    }

    fn enqueue(&mut self, job: Queued) {
        self.queued_bytes += job.stat.size;
        self.queue.push_back(job);
    }

    /// Makes a file ready. `meta` must have passed `validate`.
    fn insert_ready(
        &mut self,
        meta: FileMeta,
        path: PathBuf,
        stat: Option<Stat>,
        warnings: &mut Vec<String>,
    ) -> Option<FileId> {
        let mut encoded_meta = Vec::new();
        if let Err(e) = meta::encode_meta(&meta, &mut encoded_meta) {
            // Cannot happen for validated metadata; never serve what we
            // could not encode.
            warnings.push(format!("not sharing {}: {e}", names::escape(&meta.name)));
            return None;
        }
        let id = meta.id();
        self.order.insert((meta.name.clone(), id));
        // A re-seeded download has no cached stat: take it now, from the
        // file that was just verified.
        let identity = stat.or_else(|| fs::symlink_metadata(&path).ok().map(|md| Stat::of(&md)));
        let shared = SharedFile {
            id,
            meta,
            encoded_meta,
            path,
            stat: identity,
        };
        self.ready.insert(id, Ready { shared, stat });
        Some(id)
    }

    /// Hashes up to about `budget` bytes of queued files (opening a file
    /// counts as a few KiB), reading through one buffer of 256 KiB. Returns
    /// the files that became ready during this step. A file that vanished,
    /// could not be read, or kept changing is dropped with a warning. When
    /// the last queued file finishes, writes the cache. A budget of 0 does
    /// nothing.
    pub fn index_step(&mut self, budget: u64) -> IndexStep {
        let mut step = IndexStep::default();
        if !self.is_indexing() {
            return step;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; HASH_BUF];
        }
        let mut spent = 0u64;
        while spent < budget {
            let Some(mut hashing) = self.current.take() else {
                let Some(job) = self.queue.pop_front() else {
                    break;
                };
                self.queued_bytes -= job.stat.size;
                spent += FILE_COST;
                let (name, stat) = (job.name.clone(), job.stat);
                match self.start(job) {
                    Ok(h) => self.current = Some(h),
                    Err(warning) => {
                        step.warnings.push(warning);
                        if self.unreadable.len() < MAX_SHARED_FILES {
                            self.unreadable.insert(name, stat);
                        }
                    }
                }
                continue;
            };
            // Never more than the budget left, and never past the listed
            // size by more than a byte or so: a growing file is a changed
            // file, not a reason to read forever.
            let left = budget - spent;
            let want = (self.buf.len() as u64).min(left) as usize;
            match hashing.file.read(&mut self.buf[..want]) {
                Ok(0) => self.finish(hashing, &mut step),
                Ok(n) => {
                    spent += n as u64;
                    hashing.builder.update(&self.buf[..n]);
                    if hashing.builder.bytes() > hashing.job.stat.size {
                        self.changed(hashing.job, &mut step);
                    } else {
                        self.current = Some(hashing);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.current = Some(hashing),
                Err(e) => step.warnings.push(format!(
                    "not sharing {}: read failed: {e}",
                    names::escape(&hashing.job.name)
                )),
            }
        }
        if !self.is_indexing() {
            self.buf = Vec::new();
            if self.cache_dirty {
                step.warnings.extend(self.write_cache());
            }
        }
        step
    }

    /// Opens a queued file for hashing.
    fn start(&self, job: Queued) -> Result<Hashing, String> {
        let name = names::escape(&job.name);
        // O_NONBLOCK: if the file was swapped for a FIFO since it was
        // listed, opening it must not wait for a writer. It has no effect on
        // regular files.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&job.path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => format!("not sharing {name}: it vanished before it was hashed"),
                _ => format!("not sharing {name}: cannot open it: {e}"),
            })?;
        match file.metadata() {
            Ok(md) if md.is_file() => {}
            Ok(_) => return Err(format!("not sharing {name}: no longer a regular file")),
            Err(e) => return Err(format!("not sharing {name}: {e}")),
        }
        let builder = MetaBuilder::new(self.chunk_size).map_err(|e| format!("not sharing {name}: {e}"))?;
        Ok(Hashing { job, file, builder })
    }

    /// The file reached its end: ready if it did not change meanwhile.
    fn finish(&mut self, hashing: Hashing, step: &mut IndexStep) {
        let Hashing { job, builder, .. } = hashing;
        let after = match fs::symlink_metadata(&job.path) {
            Ok(md) if md.is_file() => Stat::of(&md),
            _ => {
                let name = names::escape(&job.name);
                step.warnings
                    .push(format!("not sharing {name}: it vanished while it was hashed"));
                return;
            }
        };
        if after != job.stat || builder.bytes() != job.stat.size {
            return self.changed(job, step);
        }
        match builder.finish(&job.name) {
            Ok(meta) => {
                if let Some(id) = self.insert_ready(meta, job.path, Some(job.stat), &mut step.warnings) {
                    step.ready.push(id);
                }
            }
            Err(e) => step
                .warnings
                .push(format!("not sharing {}: {e}", names::escape(&job.name))),
        }
    }

    /// The file changed while it was hashed: hash it once more from its
    /// current state, or give up if that already happened.
    fn changed(&mut self, mut job: Queued, step: &mut IndexStep) {
        let name = names::escape(&job.name);
        if job.retried {
            step.warnings.push(format!(
                "not sharing {name}: it keeps changing while it is hashed"
            ));
            return;
        }
        match fs::symlink_metadata(&job.path) {
            Ok(md) if md.is_file() => {
                job.stat = Stat::of(&md);
                job.retried = true;
                self.enqueue(job);
            }
            _ => step
                .warnings
                .push(format!("not sharing {name}: it vanished while it was hashed")),
        }
    }

    /// True while files are queued or being hashed.
    pub fn is_indexing(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// Files queued (including the one being hashed) and bytes left to
    /// hash, for a status line.
    pub fn pending(&self) -> (usize, u64) {
        let (files, bytes) = match &self.current {
            Some(h) => (1, h.job.stat.size.saturating_sub(h.builder.bytes())),
            None => (0, 0),
        };
        (self.queue.len() + files, self.queued_bytes + bytes)
    }

    /// A ready file.
    pub fn get(&self, id: &FileId) -> Option<&SharedFile> {
        self.ready.get(id).map(|r| &r.shared)
    }

    /// The ready files, in name order.
    pub fn files(&self) -> impl Iterator<Item = &SharedFile> + '_ {
        self.order.iter().filter_map(|(_, id)| self.get(id))
    }

    /// Number of ready files.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// True if no file is ready.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Adds an already-verified file (a finished download) at `path`
    /// without reading its bytes. Adding a file that is already ready (same
    /// id, so same name and bytes) keeps the existing one and returns its
    /// id. Error if `meta` is invalid or the library is full.
    pub fn add_verified(&mut self, meta: FileMeta, path: PathBuf) -> Result<FileId, String> {
        meta.validate().map_err(|e| e.to_string())?;
        let id = meta.id();
        if self.ready.contains_key(&id) {
            return Ok(id);
        }
        if self.total() >= MAX_SHARED_FILES {
            return Err(format!("already sharing the limit of {MAX_SHARED_FILES} files"));
        }
        let mut warnings = Vec::new();
        // Not cached: its stat is unknown here, and a download directory
        // is not ours to keep an index in.
        self.insert_ready(meta, path, None, &mut warnings)
            .ok_or_else(|| warnings.join("; "))
    }

    /// The tracker announce entries for all ready files, in name order.
    pub fn entries(&self) -> Vec<FileEntry> {
        self.files().map(|f| f.meta.entry(true)).collect()
    }

    /// Ready, queued and in-progress files.
    fn total(&self) -> usize {
        self.ready.len() + self.queue.len() + usize::from(self.current.is_some())
    }

    /// Writes the cache of the shared directory's ready files; returns a
    /// warning if that failed.
    fn write_cache(&mut self) -> Option<String> {
        let racy_after = ns_since_epoch(SystemTime::now().checked_sub(RACY_WINDOW).unwrap_or(UNIX_EPOCH));
        let mut ready: Vec<&Ready> = self.ready.values().collect();
        ready.sort_by(|a, b| a.shared.meta.name.cmp(&b.shared.meta.name));
        let mut entries = Vec::new();
        // 10 bytes: the largest varint of the list length.
        let mut room = MAX_CACHE_LEN - 10;
        for r in ready {
            let Some(stat) = r.stat else { continue };
            if stat.mtime_ns >= racy_after {
                continue;
            }
            let entry = CacheEntryRef {
                stat,
                meta: &r.shared.meta,
            };
            let len = codec::encoded_len(&entry);
            // A file too big to cache is rehashed at the next start; the
            // others are still cached.
            if len <= room {
                room -= len;
                entries.push(entry);
            }
        }
        let mut out = CACHE_MAGIC.to_vec();
        out.push(CACHE_VERSION);
        out.extend_from_slice(&[0; 32]);
        let result = codec::encode(&entries, &mut out, MAX_CACHE_LEN)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|()| {
                let digest = Sha256::digest(&out[CACHE_HEADER..]);
                out[CACHE_HEADER - 32..CACHE_HEADER].copy_from_slice(&digest);
                crate::atomic_file::write(&self.dir.join(INDEX_FILE), &out)
            });
        match result {
            Ok(()) => {
                self.cache_dirty = false;
                None
            }
            Err(e) => Some(format!(
                "could not write the index cache in {}: {e}; files will be hashed again at the next start",
                self.dir.display()
            )),
        }
    }
}

/// Loads the cache of `dir` as name -> entry, keeping only entries that
/// validate and use `chunk_size`. The flag is false if the cache was
/// missing, unreadable or dropped entries (so it should be rewritten).
fn load_cache(
    dir: &Path,
    chunk_size: u32,
    warnings: &mut Vec<String>,
) -> (HashMap<String, CacheEntry>, bool) {
    let mut map = HashMap::new();
    let path = dir.join(INDEX_FILE);
    let header = CACHE_HEADER;
    let md = match fs::symlink_metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (map, false),
        Err(e) => {
            warnings.push(format!("ignoring the index cache: {e}; rehashing"));
            return (map, false);
        }
    };
    let mut ignore = |why: &str| {
        warnings.push(format!(
            "ignoring the index cache ({why}); rehashing the shared files"
        ));
        (HashMap::new(), false)
    };
    if !md.is_file() {
        return ignore("not a regular file");
    }
    if md.len() > (header + MAX_CACHE_LEN) as u64 {
        return ignore("it is too large");
    }
    let mut bytes = Vec::new();
    // The file may have grown since it was measured: read at most one byte
    // past the limit to notice.
    let read = File::open(&path).and_then(|f| {
        f.take((header + MAX_CACHE_LEN + 1) as u64)
            .read_to_end(&mut bytes)
    });
    if let Err(e) = read {
        return ignore(&format!("cannot read it: {e}"));
    }
    if bytes.len() < header || &bytes[..CACHE_MAGIC.len()] != CACHE_MAGIC {
        return ignore("not a PyTorrent index cache");
    }
    if bytes[CACHE_MAGIC.len()] != CACHE_VERSION {
        return ignore("written by another version");
    }
    if bytes[header - 32..header] != Sha256::digest(&bytes[header..])[..] {
        return ignore("corrupt: checksum mismatch");
    }
    let entries: Vec<CacheEntry> =
        match codec::decode_exact::<_, CACHE_ALLOC>(&bytes[header..], MAX_CACHE_LEN) {
            Ok(entries) => entries,
            Err(e) => return ignore(&format!("corrupt: {e}")),
        };
    if entries.len() > MAX_SHARED_FILES {
        return ignore("too many entries");
    }
    let mut complete = true;
    for entry in entries {
        let meta = &entry.meta;
        let usable = meta.validate().is_ok() && meta.chunk_size == chunk_size && meta.size == entry.stat.size;
        if usable && !map.contains_key(&meta.name) {
            map.insert(meta.name.clone(), entry);
        } else {
            complete = false;
        }
    }
    (map, complete)
}

/// A shareable file of the shared directory.
struct Listed {
    /// Its name on the network (NFC).
    name: String,
    /// Its name on disk: the same, or the NFD spelling macOS writes.
    file: String,
    stat: Stat,
}

/// The shareable files directly in `dir`, by name: regular files (not
/// followed through symlinks) with valid names that are not hidden and not
/// partial downloads, at most [`MAX_SHARED_FILES`] (the first by name). A
/// name on disk in another Unicode form (NFD, as macOS writes it) is shared
/// under its NFC form, with a warning saying so; if that name is also on
/// disk as such, the NFC file wins.
fn list_dir(dir: &Path, warnings: &mut Vec<String>) -> io::Result<Vec<Listed>> {
    // Keeps only the first MAX_SHARED_FILES names, so a huge directory
    // costs bounded memory: network name -> name on disk.
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    let mut dropped = 0usize;
    for entry in fs::read_dir(dir)? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                warnings.push(format!("skipping an entry of {}: {e}", dir.display()));
                continue;
            }
        };
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            let lossy = os_name.to_string_lossy();
            warnings.push(format!(
                "skipping {}: the name is not UTF-8",
                names::escape(&lossy)
            ));
            continue;
        };
        if name.starts_with('.') || name.ends_with(".part") {
            continue;
        }
        let shared_as = match names::check_file_name(name) {
            Ok(()) => name.to_string(),
            Err(names::NameError::NotNfc) => {
                let nfc = names::to_nfc(name);
                if let Err(e) = names::check_file_name(&nfc) {
                    warnings.push(format!("skipping {}: the name {e}", names::escape(name)));
                    continue;
                }
                warnings.push(format!(
                    "sharing {} under its NFC name (on disk it is in NFD, as macOS writes names)",
                    names::escape(&nfc)
                ));
                nfc
            }
            Err(e) => {
                warnings.push(format!("skipping {}: the name {e}", names::escape(name)));
                continue;
            }
        };
        // file_type does not follow symlinks. Checked before counting, so
        // subdirectories do not take the place of files.
        match entry.file_type() {
            Ok(t) if t.is_file() => {}
            Ok(t) if t.is_symlink() => {
                warnings.push(format!(
                    "skipping {}: a symlink (only regular files are shared)",
                    names::escape(name)
                ));
                continue;
            }
            // Directories, sockets, FIFOs: not files to share.
            Ok(_) => continue,
            Err(e) => {
                warnings.push(format!("skipping {}: {e}", names::escape(name)));
                continue;
            }
        }
        if let Some(other) = kept.get(&shared_as) {
            // Two spellings of one name: the NFC one on disk wins, else
            // the first listed.
            let nfc_here = name == shared_as;
            let loser = if nfc_here { other.as_str() } else { name };
            warnings.push(format!(
                "skipping {}: another spelling of {} is shared",
                names::escape(loser),
                names::escape(&shared_as)
            ));
            if !nfc_here {
                continue;
            }
        }
        kept.insert(shared_as, name.to_string());
        if kept.len() > MAX_SHARED_FILES {
            kept.pop_last();
            dropped += 1;
        }
    }
    let mut files = Vec::with_capacity(kept.len());
    for (name, file) in kept {
        match fs::symlink_metadata(dir.join(&file)) {
            Ok(md) if md.is_file() => files.push(Listed {
                name,
                file,
                stat: Stat::of(&md),
            }),
            // Replaced since it was listed.
            Ok(_) => warnings.push(format!("skipping {}: not a regular file", names::escape(&name))),
            Err(e) => warnings.push(format!("skipping {}: {e}", names::escape(&name))),
        }
    }
    if dropped > 0 {
        warnings.push(format!(
            "{} holds more than {MAX_SHARED_FILES} entries; skipping the last {dropped} by name",
            dir.display()
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    /// Where [`crate::atomic_file::write`] puts the cache before renaming it.
    const INDEX_TMP: &str = ".pytorrent-index.tmp";
    use super::*;
    use crate::testutil::{data, TempDir};

    const CHUNK: u32 = meta::MIN_CHUNK_SIZE;
    const SIZES: [(&str, usize); 4] = [
        ("empty", 0),
        ("one", 1),
        ("chunk", CHUNK as usize),
        ("three and a bit", 3 * CHUNK as usize + 1),
    ];

    /// Writes a file with an mtime `age_secs` in the past, so it is not
    /// "racy" and can be cached.
    fn put(dir: &Path, name: &str, bytes: &[u8], age_secs: u64) {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
            .unwrap();
    }

    fn populate(dir: &Path) {
        for (i, (name, len)) in SIZES.iter().enumerate() {
            put(dir, name, &data(*len, i as u8), 3600);
        }
    }

    fn expected(dir: &Path, name: &str) -> FileMeta {
        FileMeta::from_reader(name, File::open(dir.join(name)).unwrap(), CHUNK).unwrap()
    }

    /// Steps until indexing is done; returns (steps, ready ids, warnings).
    fn index_all(lib: &mut Library, budget: u64) -> (usize, Vec<FileId>, Vec<String>) {
        let (mut steps, mut ready, mut warnings) = (0, Vec::new(), Vec::new());
        while lib.is_indexing() {
            let step = lib.index_step(budget);
            steps += 1;
            ready.extend(step.ready);
            warnings.extend(step.warnings);
            assert!(steps < 100_000, "indexing does not end");
        }
        (steps, ready, warnings)
    }

    fn names_of(lib: &Library) -> Vec<String> {
        lib.files().map(|f| f.meta.name.clone()).collect()
    }

    fn check_matches_disk(lib: &Library, dir: &Path) {
        for f in lib.files() {
            let want = expected(dir, &f.meta.name);
            assert_eq!(f.meta, want, "{}", f.meta.name);
            assert_eq!(f.id, want.id());
            assert_eq!(meta::decode_meta(&f.encoded_meta).unwrap(), want);
            assert_eq!(lib.get(&f.id), Some(f));
            assert_eq!(f.path, dir.join(&f.meta.name));
        }
    }

    #[test]
    fn indexes_in_slices_and_matches_from_reader() {
        let tmp = TempDir::new("slices");
        populate(&tmp.0);
        let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(lib.is_indexing() && lib.is_empty());
        let total: u64 = SIZES.iter().map(|(_, len)| *len as u64).sum();
        assert_eq!(lib.pending(), (4, total));

        // A small budget: the largest file alone takes several steps, and
        // the bytes left only go down.
        let mut left = total;
        let mut steps = 0;
        let mut ready = Vec::new();
        while lib.is_indexing() {
            let step = lib.index_step(5000);
            assert!(step.warnings.is_empty(), "{:?}", step.warnings);
            ready.extend(step.ready);
            let (_, now_left) = lib.pending();
            assert!(now_left <= left);
            left = now_left;
            steps += 1;
        }
        assert!(steps >= (total / 5000) as usize, "only {steps} steps");
        assert_eq!(lib.pending(), (0, 0));
        assert_eq!(lib.len(), 4);
        assert_eq!(ready.len(), 4);
        let mut sorted: Vec<String> = SIZES.iter().map(|(n, _)| n.to_string()).collect();
        sorted.sort();
        assert_eq!(names_of(&lib), sorted);
        check_matches_disk(&lib, &tmp.0);
        assert!(tmp.0.join(INDEX_FILE).is_file());
        assert!(!tmp.0.join(INDEX_TMP).exists());

        // A big budget does it in one step.
        let (mut again, _) = Library::open(&tmp.0, CHUNK * 2).unwrap();
        assert_eq!(index_all(&mut again, u64::MAX).0, 1);
        assert_eq!(again.len(), 4);
    }

    #[test]
    fn reopening_an_unchanged_dir_hashes_nothing() {
        let tmp = TempDir::new("reopen");
        populate(&tmp.0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, 1 << 20);
        let before: Vec<SharedFile> = lib.files().cloned().collect();

        let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!lib.is_indexing());
        assert_eq!(lib.pending(), (0, 0));
        assert_eq!(lib.files().cloned().collect::<Vec<_>>(), before);
        assert_eq!(lib.index_step(u64::MAX), IndexStep::default());

        // Another chunk size cannot use the cache.
        let (lib, _) = Library::open(&tmp.0, 2 * CHUNK).unwrap();
        assert_eq!(lib.pending().0, 4);
    }

    #[test]
    fn only_a_changed_file_is_rehashed() {
        let tmp = TempDir::new("touch");
        populate(&tmp.0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        let old = lib.files().find(|f| f.meta.name == "chunk").unwrap().id;

        // Same size, new content and mtime.
        put(&tmp.0, "chunk", &data(CHUNK as usize, 99), 1800);
        let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(lib.pending(), (1, u64::from(CHUNK)));
        assert_eq!(lib.len(), 3);
        assert!(lib.get(&old).is_none());
        let (_, ready, warnings) = index_all(&mut lib, u64::MAX);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(ready, vec![expected(&tmp.0, "chunk").id()]);
        check_matches_disk(&lib, &tmp.0);

        // The rewritten cache holds the new version; a deleted file is gone.
        fs::remove_file(tmp.0.join("one")).unwrap();
        let (lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        assert!(!lib.is_indexing());
        assert_eq!(names_of(&lib), ["chunk", "empty", "three and a bit"]);
        check_matches_disk(&lib, &tmp.0);
    }

    #[test]
    fn a_corrupt_cache_is_ignored_and_everything_rehashed() {
        let tmp = TempDir::new("corrupt");
        populate(&tmp.0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        let index = tmp.0.join(INDEX_FILE);
        let good = fs::read(&index).unwrap();

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let mut cut = good.clone();
        cut.truncate(good.len() / 2);
        // A body that claims a huge list, with a valid checksum: the
        // decoder's memory limit refuses it.
        let mut hostile = good[..CACHE_HEADER].to_vec();
        hostile.extend_from_slice(&[253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let digest = Sha256::digest(&hostile[CACHE_HEADER..]);
        hostile[CACHE_HEADER - 32..CACHE_HEADER].copy_from_slice(&digest);
        let mut other_version = good.clone();
        other_version[CACHE_MAGIC.len()] = CACHE_VERSION + 1;
        for (what, bytes) in [
            ("last byte flipped", flipped),
            ("cut", cut),
            ("hostile length", hostile),
            ("other version", other_version),
            ("garbage", b"not a cache".to_vec()),
        ] {
            fs::write(&index, &bytes).unwrap();
            let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
            assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
            assert!(warnings[0].contains("index cache"), "{what}: {warnings:?}");
            assert_eq!(lib.pending().0, 4, "{what}");
            index_all(&mut lib, u64::MAX);
            check_matches_disk(&lib, &tmp.0);
            assert_eq!(lib.len(), 4);
            assert_eq!(fs::read(&index).unwrap(), good, "{what}: cache rewritten");
        }

        // Oversized: refused before it is read.
        let f = File::create(&index).unwrap();
        f.set_len((MAX_CACHE_LEN + 100) as u64).unwrap();
        let (lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        assert!(warnings.iter().any(|w| w.contains("too large")), "{warnings:?}");
        assert_eq!(lib.pending().0, 4);
    }

    #[test]
    fn unshareable_entries_are_skipped() {
        let tmp = TempDir::new("skip");
        put(&tmp.0, "good", b"hello", 3600);
        put(&tmp.0, ".hidden", b"secret", 3600);
        put(&tmp.0, "movie.mkv.part", b"half", 3600);
        put(&tmp.0, "bell\u{7}\u{1b}[2J", b"evil", 3600);
        fs::create_dir(tmp.0.join("subdir")).unwrap();
        put(&tmp.0.join("subdir"), "nested", b"deep", 3600);
        std::os::unix::fs::symlink(tmp.0.join("good"), tmp.0.join("link")).unwrap();
        let bad_utf8 = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"caf\xe9");
        fs::write(tmp.0.join(bad_utf8), b"latin-1").unwrap();

        let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        assert_eq!(names_of(&lib), ["good"]);
        check_matches_disk(&lib, &tmp.0);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        for w in &warnings {
            assert!(!w.contains('\u{1b}') && !w.contains('\u{7}'), "unescaped: {w:?}");
        }
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("control or invisible character")),
            "{warnings:?}"
        );
        assert!(warnings.iter().any(|w| w.contains("not UTF-8")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("symlink")), "{warnings:?}");
    }

    #[test]
    fn nfd_names_are_shared_under_their_nfc_name() {
        // Issue 20, defect 13: "café" as macOS writes it (e + U+0301).
        let tmp = TempDir::new("nfd");
        put(&tmp.0, "cafe\u{301}.txt", b"latte", 3600);
        let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        assert_eq!(names_of(&lib), ["caf\u{e9}.txt"]);
        assert!(
            warnings.iter().any(|w| w.contains("under its NFC name")),
            "{warnings:?}"
        );
        let shared: Vec<&SharedFile> = lib.files().collect();
        assert_eq!(shared[0].path, tmp.0.join("cafe\u{301}.txt"));
        assert_eq!(
            shared[0].meta.id(),
            FileMeta::from_reader("caf\u{e9}.txt", &b"latte"[..], CHUNK)
                .unwrap()
                .id()
        );
        // A rescan leaves it shared, neither gone nor queued again.
        let found = lib.rescan().unwrap();
        assert!(found.gone.is_empty() && found.queued == 0, "{found:?}");
        // Both spellings on disk: the NFC file is the one shared.
        put(&tmp.0, "caf\u{e9}.txt", b"espresso", 3600);
        let (mut lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        assert_eq!(names_of(&lib), ["caf\u{e9}.txt"]);
        assert_eq!(lib.files().next().unwrap().path, tmp.0.join("caf\u{e9}.txt"));
        assert!(
            warnings.iter().any(|w| w.contains("another spelling")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_file_changing_while_hashed_is_retried_once() {
        let tmp = TempDir::new("changing");
        let big = 3 * CHUNK as usize + 1;
        put(&tmp.0, "f", &data(big, 0), 3600);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        // Open, then read some of it (opening alone costs the budget).
        for _ in 0..3 {
            assert!(lib.index_step(1000).ready.is_empty());
        }
        let (files, left) = lib.pending();
        assert!(files == 1 && left < big as u64 && left > 0, "{left}");
        // Changed mid-hash, same size: hashed again from its new state.
        put(&tmp.0, "f", &data(big, 1), 3000);
        let (_, ready, warnings) = index_all(&mut lib, 1000);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(ready, vec![expected(&tmp.0, "f").id()]);
        check_matches_disk(&lib, &tmp.0);

        // Changing during both tries: skipped with a warning.
        put(&tmp.0, "g", &data(big, 2), 3600);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        let mut seed = 3;
        let mut warnings = Vec::new();
        while lib.is_indexing() {
            let step = lib.index_step(1000);
            warnings.extend(step.warnings);
            // Grows, so the change is seen even within one mtime tick.
            seed += 1;
            put(&tmp.0, "g", &data(big + seed as usize, seed), 3600);
        }
        assert!(lib.get(&expected(&tmp.0, "f").id()).is_some());
        assert_eq!(names_of(&lib), ["f"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("keeps changing"), "{warnings:?}");
    }

    #[test]
    fn vanished_files_are_dropped_with_a_warning() {
        let tmp = TempDir::new("vanish");
        populate(&tmp.0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        fs::remove_file(tmp.0.join("one")).unwrap();
        let (_, ready, warnings) = index_all(&mut lib, u64::MAX);
        assert_eq!(ready.len(), 3);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("vanished"), "{warnings:?}");
    }

    #[test]
    fn a_rescan_picks_up_new_files_and_drops_gone_and_changed_ones() {
        let tmp = TempDir::new("rescan");
        populate(&tmp.0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        // Nothing changed: nothing to do.
        assert_eq!(lib.rescan().unwrap(), Rescan::default());
        let old_one = expected(&tmp.0, "one").id();
        let old_chunk = expected(&tmp.0, "chunk").id();
        put(&tmp.0, "dropped in", &data(5000, 9), 3600);
        put(&tmp.0, "one", &data(2, 9), 3600);
        fs::remove_file(tmp.0.join("chunk")).unwrap();
        let r = lib.rescan().unwrap();
        assert_eq!(r.queued, 2, "{r:?}");
        assert_eq!(r.gone.len(), 2);
        assert!(r.gone.contains(&old_one) && r.gone.contains(&old_chunk), "{r:?}");
        // Queued files are not queued twice; one still being written
        // (modified just now) waits for a later rescan.
        put(&tmp.0, "being copied", &data(10, 3), 0);
        assert_eq!(lib.rescan().unwrap().queued, 0);
        let (_, ready, warnings) = index_all(&mut lib, u64::MAX);
        assert_eq!(ready.len(), 2, "{warnings:?}");
        assert_eq!(names_of(&lib), ["dropped in", "empty", "one", "three and a bit"]);
        put(&tmp.0, "being copied", &data(10, 3), 3600);
        assert_eq!(lib.rescan().unwrap().queued, 1);
        check_matches_disk(&lib, &tmp.0);
        assert_eq!(Library::empty().rescan().unwrap(), Rescan::default());
    }

    #[test]
    fn a_removed_file_stays_on_disk_and_out_of_rescans() {
        let tmp = TempDir::new("unshare");
        populate(&tmp.0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        let id = expected(&tmp.0, "one").id();
        assert_eq!(lib.remove(&id).map(|f| f.meta.name), Some("one".to_string()));
        assert_eq!(lib.remove(&id), None);
        assert!(lib.get(&id).is_none() && lib.len() == 3);
        assert!(tmp.0.join("one").exists(), "the file on disk is untouched");
        assert_eq!(lib.rescan().unwrap(), Rescan::default());
    }

    #[test]
    fn a_file_that_failed_is_retried_only_once_it_changes() {
        let tmp = TempDir::new("unreadable");
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        put(&tmp.0, "late", &data(10, 1), 3600);
        // A second name for the same inode, hidden from listings.
        fs::hard_link(tmp.0.join("late"), tmp.0.join(".keep")).unwrap();
        assert_eq!(lib.rescan().unwrap().queued, 1);
        // Between listing and hashing, "late" becomes a FIFO: it fails.
        let fifo = tmp.0.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        fs::rename(&fifo, tmp.0.join("late")).unwrap();
        let (_, ready, warnings) = index_all(&mut lib, u64::MAX);
        assert!(ready.is_empty() && warnings.len() == 1, "{warnings:?}");
        // The same file as when it failed: not queued (no warning every
        // rescan); changed, it is.
        fs::rename(tmp.0.join(".keep"), tmp.0.join("late")).unwrap();
        assert_eq!(lib.rescan().unwrap().queued, 0);
        put(&tmp.0, "late", &data(10, 2), 3600);
        assert_eq!(lib.rescan().unwrap().queued, 1);
        let (_, ready, _) = index_all(&mut lib, u64::MAX);
        assert_eq!(ready.len(), 1);
    }

    #[test]
    fn a_failed_cache_write_is_only_a_warning() {
        let tmp = TempDir::new("nowrite");
        populate(&tmp.0);
        // A directory where the temporary cache file would go.
        fs::create_dir(tmp.0.join(INDEX_TMP)).unwrap();
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        let (_, ready, warnings) = index_all(&mut lib, u64::MAX);
        assert_eq!(ready.len(), 4);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("could not write the index cache"),
            "{warnings:?}"
        );
        assert!(!tmp.0.join(INDEX_FILE).exists());
        check_matches_disk(&lib, &tmp.0);
    }

    #[test]
    fn recently_modified_files_are_not_cached() {
        let tmp = TempDir::new("racy");
        put(&tmp.0, "old", b"old", 3600);
        put(&tmp.0, "new", b"new", 0);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);
        let (lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        assert_eq!(names_of(&lib), ["old"]);
        assert_eq!(lib.pending(), (1, 3));
    }

    #[test]
    fn add_verified_and_entries() {
        let tmp = TempDir::new("add");
        let other = TempDir::new("add-downloads");
        put(&tmp.0, "b shared", b"shared bytes", 3600);
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        index_all(&mut lib, u64::MAX);

        let bytes = data(70_000, 5);
        put(&other.0, "a download", &bytes, 3600);
        let meta = FileMeta::from_reader("a download", &bytes[..], CHUNK).unwrap();
        let id = lib
            .add_verified(meta.clone(), other.0.join("a download"))
            .unwrap();
        assert_eq!(id, meta.id());
        assert_eq!(lib.add_verified(meta.clone(), other.0.join("elsewhere")), Ok(id));
        assert_eq!(lib.len(), 2);
        let got = lib.get(&id).unwrap();
        assert_eq!((&got.meta, &got.path), (&meta, &other.0.join("a download")));
        assert_eq!(meta::decode_meta(&got.encoded_meta).unwrap(), meta);

        let shared = expected(&tmp.0, "b shared");
        let entries = lib.entries();
        let described: Vec<_> = entries
            .iter()
            .map(|e| (e.id(), e.name.as_str(), e.size, e.complete))
            .collect();
        assert_eq!(
            described,
            vec![
                (id, "a download", 70_000, true),
                (shared.id(), "b shared", 12, true)
            ]
        );

        let mut invalid = meta.clone();
        invalid.chunks.pop();
        assert!(lib.add_verified(invalid, other.0.join("x")).is_err());
    }

    #[test]
    fn the_library_is_bounded() {
        let tmp = TempDir::new("full");
        let (mut lib, _) = Library::open(&tmp.0, CHUNK).unwrap();
        for i in 0..MAX_SHARED_FILES {
            let name = format!("f{i}");
            let meta = FileMeta::from_reader(&name, &b""[..], CHUNK).unwrap();
            lib.add_verified(meta, tmp.0.join(name)).unwrap();
        }
        let meta = FileMeta::from_reader("one more", &b""[..], CHUNK).unwrap();
        assert!(lib.add_verified(meta, tmp.0.join("one more")).is_err());
        assert_eq!(lib.len(), MAX_SHARED_FILES);

        // A directory with too many files: the first by name are shared.
        for i in 0..=MAX_SHARED_FILES {
            File::create(tmp.0.join(format!("{i:05}"))).unwrap();
        }
        let (lib, warnings) = Library::open(&tmp.0, CHUNK).unwrap();
        assert_eq!(lib.pending(), (MAX_SHARED_FILES, 0));
        assert!(
            warnings.iter().any(|w| w.contains("skipping the last 1")),
            "{warnings:?}"
        );
    }
}
