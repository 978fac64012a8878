//! One download: its metadata, its `.part` file, which chunks are verified,
//! the peers known to have it, and the final whole-file check.
//!
//! Invariants:
//! - Metadata is trusted only after its SHA-256 equals the file id asked
//!   for; its name then passed [`crate::names::check_file_name`], so the
//!   `.part` and final paths are always directly inside the downloads
//!   directory.
//! - Bytes reach the `.part` file only through [`Download::write`], with
//!   positioned writes, and never over a chunk already verified.
//! - A chunk counts as verified only once the bytes on disk are the bytes
//!   that hashed right: a chunk that two peers fetched at once (end-game)
//!   is read back and hashed again, since the other peer's writes may have
//!   landed in between.
//! - The resume sidecar records a chunk only after the `.part` file's data
//!   was synced ([`Download::save`]); an earlier `.part` without a sound
//!   sidecar is re-checked chunk by chunk against the hashes, never
//!   trusted ([`Phase::Recheck`]).
//! - The final file appears only after the whole-file SHA-256 of the
//!   `.part` file matched and its data was synced; it is created with a
//!   hard link, which fails rather than replace an existing file.

use super::resume;
use super::scheduler::{Has, Scheduler};
use super::serve::Source;
use crate::meta::{decode_meta, encode_meta, FileMeta, Hash};
use crate::names;
use crate::rand::Rng;
use crate::wire::tracker::FileEntry;
use crate::wire::FileId;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Most peer addresses remembered per download.
pub const MAX_KNOWN_PEERS: usize = 64;
/// Failed connections in a row after which a peer may make room for a new
/// one in a full list.
const DEAD_AFTER: u32 = 3;
/// Bad chunks a peer may send before it is dropped for the file.
pub const MAX_STRIKES: u8 = 2;

/// Where a download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (verified) metadata.
    Meta,
    /// An earlier `.part` file without a sound sidecar: hashing its chunks
    /// to see which can be kept.
    Recheck,
    /// Fetching chunks.
    Chunks,
    /// Every chunk verified; hashing the whole file.
    Checking,
    /// Verified and in place at this path.
    Done(PathBuf),
    /// Stopped for good; the message is safe to print.
    Failed(String),
}

/// What became of metadata a peer sent.
#[derive(Debug, PartialEq, Eq)]
pub enum MetaOutcome {
    /// Verified: chunks can be fetched.
    Accepted,
    /// Another peer's copy was accepted first.
    AlreadyKnown,
    /// The peer sent metadata that is not the file asked for.
    Bad(&'static str),
    /// The download cannot go on (see its phase).
    Failed,
}

/// What a download found on disk from an earlier run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Chunks already verified.
    pub verified: usize,
    pub total: usize,
    /// Found by hashing the `.part` file (no sound sidecar), not from the
    /// sidecar.
    pub rechecked: bool,
}

/// A peer known to have the file.
#[derive(Debug, Clone)]
pub struct PeerRec {
    pub addr: SocketAddr,
    /// Key of our connection to it, if any.
    pub conn: Option<usize>,
    pub strikes: u8,
    /// Dropped for this file (bad data twice, or it refused the file).
    pub banned: bool,
    /// No new connection before this time.
    pub retry_at: Instant,
    /// Connection failures in a row (backs off the retries).
    pub failures: u32,
}

/// One download's state.
#[derive(Debug)]
pub struct Download {
    pub id: FileId,
    /// What the user asked for, safe to print.
    pub label: String,
    pub meta: Option<FileMeta>,
    /// The connection fetching the metadata, if any.
    pub meta_conn: Option<usize>,
    pub sched: Scheduler,
    /// Chunks that had two fetchers at once since they were last missing.
    shared: Vec<u32>,
    dir: PathBuf,
    part: Option<File>,
    part_path: PathBuf,
    whole: Sha256,
    /// Next chunk to feed the whole-file hash.
    whole_next: u32,
    pub phase: Phase,
    pub peers: Vec<PeerRec>,
    pub verified_bytes: u64,
    /// Of `verified_bytes`, those found on disk from an earlier run.
    pub resumed_bytes: u64,
    pub started: Instant,
    /// Last time a connection to a peer was up (for giving up).
    pub last_connected: Instant,
    /// When to ask the tracker for peers again.
    pub next_query: Instant,
    /// "Waiting for peers" was said for the current stretch without one.
    pub waiting_told: bool,
    /// Verified chunks, one bit each, as the resume sidecar records them.
    bits: Vec<u8>,
    /// Chunks verified when the sidecar was last written.
    saved: usize,
    /// When the sidecar was last written.
    pub saved_at: Instant,
    /// In [`Phase::Recheck`]: the next chunk to hash.
    recheck_next: u32,
    /// The metadata as it travels, served to other peers while we download.
    encoded_meta: Vec<u8>,
}

impl Download {
    pub fn new(id: FileId, label: String, dir: &Path, now: Instant) -> Download {
        Download {
            id,
            label,
            meta: None,
            meta_conn: None,
            sched: Scheduler::new(0),
            shared: Vec::new(),
            dir: dir.to_path_buf(),
            part: None,
            part_path: PathBuf::new(),
            whole: Sha256::new(),
            whole_next: 0,
            phase: Phase::Meta,
            peers: Vec::new(),
            verified_bytes: 0,
            resumed_bytes: 0,
            started: now,
            last_connected: now,
            next_query: now,
            waiting_told: false,
            bits: Vec::new(),
            saved: 0,
            saved_at: now,
            recheck_next: 0,
            encoded_meta: Vec::new(),
        }
    }

    /// A name for messages: the file's name once known, else the label.
    pub fn display_name(&self) -> String {
        match &self.meta {
            Some(m) => names::escape(&m.name),
            None => self.label.clone(),
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done(_) | Phase::Failed(_))
    }

    pub fn fail(&mut self, why: String) {
        if !self.is_finished() {
            self.phase = Phase::Failed(why);
        }
    }

    /// Adds peer addresses from the tracker (up to [`MAX_KNOWN_PEERS`]).
    /// When the list is full, a peer that keeps failing to connect makes
    /// room (banned peers stay, so their ban holds).
    pub fn add_peers(&mut self, addrs: &[SocketAddr], now: Instant) {
        for &addr in addrs {
            if self.peers.iter().any(|p| p.addr == addr) {
                continue;
            }
            let rec = PeerRec {
                addr,
                conn: None,
                strikes: 0,
                banned: false,
                retry_at: now,
                failures: 0,
            };
            if self.peers.len() < MAX_KNOWN_PEERS {
                self.peers.push(rec);
            } else if let Some(dead) = self
                .peers
                .iter_mut()
                .filter(|p| p.conn.is_none() && !p.banned && p.failures >= DEAD_AFTER)
                .max_by_key(|p| p.failures)
            {
                *dead = rec;
            }
        }
    }

    pub fn peer_mut(&mut self, addr: SocketAddr) -> Option<&mut PeerRec> {
        self.peers.iter_mut().find(|p| p.addr == addr)
    }

    /// Peers worth a new connection now.
    pub fn connectable(&self, now: Instant) -> Vec<SocketAddr> {
        self.peers
            .iter()
            .filter(|p| p.conn.is_none() && !p.banned && p.retry_at <= now)
            .map(|p| p.addr)
            .collect()
    }

    /// Peers that are neither banned nor backing off for long: whether
    /// waiting still makes sense.
    pub fn usable_peers(&self) -> usize {
        self.peers.iter().filter(|p| !p.banned).count()
    }

    /// A connection to `addr` ended; back off before the next one.
    pub fn peer_disconnected(&mut self, addr: SocketAddr, now: Instant, failed: bool) {
        if let Some(p) = self.peer_mut(addr) {
            p.conn = None;
            if failed {
                p.failures = p.failures.saturating_add(1);
                let secs = 1u64 << p.failures.min(5);
                p.retry_at = now + Duration::from_secs(secs);
            } else {
                p.retry_at = now + Duration::from_secs(1);
            }
        }
    }

    /// Checks metadata a peer sent against the file id and prepares the
    /// `.part` file.
    pub fn accept_meta(&mut self, bytes: &[u8]) -> MetaOutcome {
        if self.meta.is_some() {
            return MetaOutcome::AlreadyKnown;
        }
        let Ok(meta) = decode_meta(bytes) else {
            return MetaOutcome::Bad("undecodable metadata");
        };
        if meta.id() != self.id {
            return MetaOutcome::Bad("metadata does not match the file id");
        }
        match self.create_part(&meta) {
            Ok(reused) => {
                self.encoded_meta = bytes.to_vec();
                self.sched = Scheduler::new(meta.chunks.len()).with_rng(Rng::from_entropy());
                self.bits = vec![0; meta.chunks.len().div_ceil(8)];
                self.meta = Some(meta);
                if reused {
                    self.phase = Phase::Recheck;
                    self.recheck_next = 0;
                } else {
                    self.start_fetching();
                }
                MetaOutcome::Accepted
            }
            Err(why) => {
                self.meta = Some(meta);
                self.fail(why);
                MetaOutcome::Failed
            }
        }
    }

    /// Chunks to fetch, or (all there already, or an empty file) straight
    /// to the whole-file check.
    fn start_fetching(&mut self) {
        self.phase = if self.sched.is_complete() {
            Phase::Checking
        } else {
            Phase::Chunks
        };
    }

    /// Picks up an earlier run's `.part` file from its sidecar, if there is
    /// a sound one for this file: its verified chunks are not fetched again.
    pub fn resume(&mut self) -> Option<Resumed> {
        let (side, state) = resume::find(&self.dir, &self.id)?;
        let part_path = self.dir.join(format!("{}.part", state.meta.name));
        if resume::path_for(&part_path) != side {
            return None;
        }
        let part = OpenOptions::new().read(true).write(true).open(&part_path).ok()?;
        lock(&part).ok()?;
        if part.metadata().ok()?.len() != state.meta.size {
            return None;
        }
        let total = state.meta.chunks.len();
        self.sched = Scheduler::new(total).with_rng(Rng::from_entropy());
        let mut encoded = Vec::new();
        encode_meta(&state.meta, &mut encoded).ok()?;
        self.encoded_meta = encoded;
        for i in (0..total).filter(|&i| state.is_verified(i)) {
            self.sched.complete(i as u32);
            self.verified_bytes += state.meta.chunk_len(i);
        }
        self.saved = self.sched.done();
        self.resumed_bytes = self.verified_bytes;
        self.bits = state.verified;
        self.meta = Some(state.meta);
        self.part = Some(part);
        self.part_path = part_path;
        self.start_fetching();
        Some(Resumed {
            verified: self.saved,
            total,
            rechecked: false,
        })
    }

    /// In [`Phase::Recheck`]: hashes about `budget` bytes of the reused
    /// `.part` file's chunks and keeps those that match. Returns what was
    /// found once every chunk was looked at.
    pub fn advance_recheck(&mut self, buf: &mut [u8], budget: u64) -> Option<Resumed> {
        if self.phase != Phase::Recheck {
            return None;
        }
        let (Some(part), Some(meta)) = (&self.part, &self.meta) else {
            return None;
        };
        let total = meta.chunks.len();
        let mut spent = 0u64;
        while (self.recheck_next as usize) < total && spent < budget {
            let index = self.recheck_next;
            let len = meta.chunk_len(index as usize);
            if hash_range(part, u64::from(index) * u64::from(meta.chunk_size), len, buf).ok()
                == Some(meta.chunks[index as usize])
            {
                self.sched.complete(index);
                self.verified_bytes += len;
                resume::set_bit(&mut self.bits, index as usize);
            }
            spent += len;
            self.recheck_next += 1;
        }
        if (self.recheck_next as usize) < total {
            return None;
        }
        self.resumed_bytes = self.verified_bytes;
        self.start_fetching();
        Some(Resumed {
            verified: self.sched.done(),
            total,
            rechecked: true,
        })
    }

    /// What this download can serve other peers: its verified chunks.
    pub fn source(&self) -> Option<Source<'_>> {
        self.part.as_ref()?;
        Some(Source {
            meta: self.meta.as_ref()?,
            encoded_meta: &self.encoded_meta,
            path: &self.part_path,
            have: Some(&self.bits),
        })
    }

    /// The tracker entry announcing this partial download (once its
    /// metadata is known).
    pub fn entry(&self, complete: bool) -> Option<FileEntry> {
        let meta = self.meta.as_ref()?;
        Some(FileEntry {
            id: self.id,
            name: meta.name.clone(),
            size: meta.size,
            complete,
        })
    }

    /// Whether verified chunks are not yet recorded in the sidecar.
    pub fn unsaved(&self) -> bool {
        self.sched.done() > self.saved
    }

    /// Records the verified chunks in the sidecar: the `.part` file's data
    /// is synced first, so no chunk is ever recorded before its bytes are
    /// on disk.
    pub fn save(&mut self, now: Instant) -> io::Result<()> {
        let (Some(part), Some(meta)) = (&self.part, &self.meta) else {
            return Ok(());
        };
        if !self.unsaved() {
            return Ok(());
        }
        part.sync_data()?;
        resume::write(&resume::path_for(&self.part_path), meta, &self.bits)?;
        self.saved = self.sched.done();
        self.saved_at = now;
        Ok(())
    }

    /// Prepares `<dir>/<name>.part`: reused (true) if a file of the right
    /// size is there from an earlier run, else created and its space
    /// reserved.
    fn create_part(&mut self, meta: &FileMeta) -> Result<bool, String> {
        let shown = names::escape(&meta.name);
        let final_path = self.dir.join(&meta.name);
        if fs::symlink_metadata(&final_path).is_ok() {
            return Err(format!(
                "'{shown}' already exists in {}; move it away to download it again",
                self.dir.display()
            ));
        }
        fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let part_path = self.dir.join(format!("{}.part", meta.name));
        // Opened without truncating: another download (in this process or
        // another) may own it, which the lock finds out before anything
        // is changed.
        let part = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(|e| format!("cannot create '{shown}.part': {e}"))?;
        lock(&part).map_err(|_| {
            format!(
                "another download is writing '{shown}.part' in {}",
                self.dir.display()
            )
        })?;
        let len = part
            .metadata()
            .map_err(|e| format!("cannot read '{shown}.part': {e}"))?
            .len();
        if len == meta.size && len > 0 {
            // An earlier run's file: its chunks are checked, not trusted.
            self.part = Some(part);
            self.part_path = part_path;
            return Ok(true);
        }
        part.set_len(0)
            .map_err(|e| format!("cannot reset '{shown}.part': {e}"))?;
        if let Err(e) = reserve(&part, meta.size) {
            drop(part);
            let _ = fs::remove_file(&part_path);
            return Err(format!(
                "cannot make room for '{shown}' ({} bytes): {e}",
                meta.size
            ));
        }
        self.part = Some(part);
        self.part_path = part_path;
        Ok(false)
    }

    /// The chunk for a connection to a peer holding `has`, busy with
    /// `busy`, that must avoid `avoid`.
    pub fn next_chunk(&mut self, has: &Has, busy: &[u32], avoid: &[u32]) -> Option<u32> {
        if self.phase != Phase::Chunks {
            return None;
        }
        let index = self.sched.next_for(has, busy, avoid)?;
        if self.sched.fetchers(index) > 1 && !self.shared.contains(&index) {
            self.shared.push(index);
        }
        Some(index)
    }

    /// Length of chunk `index` (0 before the metadata is known).
    pub fn chunk_len(&self, index: u32) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.chunk_len(index as usize))
    }

    pub fn chunk_hash(&self, index: u32) -> Option<Hash> {
        self.meta.as_ref()?.chunks.get(index as usize).copied()
    }

    /// Writes bytes of chunk `index` at `offset` within it, unless the
    /// chunk is already verified (a late end-game duplicate).
    pub fn write(&mut self, index: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.sched.is_done(index as usize) {
            return Ok(());
        }
        let (Some(part), Some(meta)) = (&self.part, &self.meta) else {
            return Ok(());
        };
        part.write_all_at(data, u64::from(index) * u64::from(meta.chunk_size) + offset)
    }

    /// A fetch of `index` delivered bytes that hashed right. Returns true
    /// if this made the chunk verified.
    pub fn chunk_fetched(&mut self, index: u32) -> bool {
        if self.sched.is_done(index as usize) {
            return false;
        }
        if let Some(pos) = self.shared.iter().position(|&c| c == index) {
            // Two fetchers wrote this chunk: trust only what is on disk.
            if self.read_back_matches(index) != Some(true) {
                self.sched.release(index);
                return false;
            }
            self.shared.swap_remove(pos);
        }
        if self.sched.complete(index) {
            self.verified_bytes += self.chunk_len(index);
            resume::set_bit(&mut self.bits, index as usize);
            self.start_writeback(index);
        }
        if self.sched.is_complete() {
            self.phase = Phase::Checking;
        }
        true
    }

    /// A fetch of `index` ended without a verified chunk.
    pub fn chunk_abandoned(&mut self, index: u32) {
        self.sched.release(index);
        if !self.sched.is_done(index as usize) && self.sched.fetchers(index) == 0 {
            self.shared.retain(|&c| c != index);
        }
    }

    /// Asks the kernel to start writing a verified chunk to disk now, so
    /// the sync before the final rename has little left to wait for and
    /// dirty pages do not pile up (Linux; elsewhere the final sync does it
    /// all).
    fn start_writeback(&self, index: u32) {
        #[cfg(target_os = "linux")]
        if let (Some(part), Some(meta)) = (&self.part, &self.meta) {
            use std::os::fd::AsRawFd;
            let start = u64::from(index) * u64::from(meta.chunk_size);
            let len = meta.chunk_len(index as usize);
            // SAFETY: a plain syscall on a file descriptor we own; it only
            // schedules I/O. A failure is harmless: the final sync covers it.
            unsafe {
                libc::sync_file_range(
                    part.as_raw_fd(),
                    start as i64,
                    len as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = index;
    }

    fn read_back_matches(&self, index: u32) -> Option<bool> {
        let (part, meta) = (self.part.as_ref()?, self.meta.as_ref()?);
        let mut buf = vec![0u8; 64 * 1024];
        let start = u64::from(index) * u64::from(meta.chunk_size);
        let hash = hash_range(part, start, meta.chunk_len(index as usize), &mut buf).ok()?;
        Some(hash == meta.chunks[index as usize])
    }

    /// Feeds verified chunks, in order, to the whole-file hash, reading
    /// about `budget` bytes from the `.part` file into `buf`; when all are
    /// in and the hash matches, syncs and moves the file into place.
    /// Returns true if there is more to do now.
    pub fn advance_whole(&mut self, buf: &mut [u8], budget: u64) -> bool {
        let (Some(part), Some(meta)) = (&self.part, &self.meta) else {
            return false;
        };
        let mut spent = 0u64;
        let count = meta.chunks.len() as u32;
        while self.whole_next < count && self.sched.is_done(self.whole_next as usize) {
            if spent >= budget {
                return true;
            }
            let index = self.whole_next;
            let mut at = u64::from(index) * u64::from(meta.chunk_size);
            let mut left = meta.chunk_len(index as usize);
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                if let Err(e) = part.read_exact_at(&mut buf[..n], at) {
                    let why = format!("cannot read back '{}.part': {e}", names::escape(&meta.name));
                    self.fail(why);
                    return false;
                }
                self.whole.update(&buf[..n]);
                at += n as u64;
                left -= n as u64;
                spent += n as u64;
            }
            self.whole_next += 1;
        }
        if self.whole_next == count && self.phase == Phase::Checking {
            self.finish();
        }
        false
    }

    fn finish(&mut self) {
        let (Some(part), Some(meta)) = (self.part.take(), &self.meta) else {
            return;
        };
        let shown = names::escape(&meta.name);
        let sha: Hash = std::mem::take(&mut self.whole).finalize().into();
        if sha != meta.sha256 {
            // Every chunk matched but the whole does not: the disk returned
            // other bytes than were written. Nothing here can fix that.
            self.fail(format!(
                "'{shown}' failed its whole-file SHA-256 check; the .part file is kept"
            ));
            return;
        }
        if let Err(e) = part.sync_data() {
            self.fail(format!("cannot sync '{shown}.part': {e}"));
            return;
        }
        let final_path = self.dir.join(&meta.name);
        if let Err(e) = fs::hard_link(&self.part_path, &final_path) {
            let why = if e.kind() == io::ErrorKind::AlreadyExists {
                format!("'{shown}' appeared in the downloads directory meanwhile; the verified data stays in '{shown}.part'")
            } else {
                format!("cannot move '{shown}.part' into place: {e}")
            };
            self.fail(why);
            return;
        }
        let _ = fs::remove_file(&self.part_path);
        let _ = fs::remove_file(resume::path_for(&self.part_path));
        self.phase = Phase::Done(final_path);
    }

    /// Hex SHA-256 of the whole file (once the metadata is known).
    pub fn sha256_hex(&self) -> String {
        self.meta.as_ref().map_or_else(String::new, |m| hex(&m.sha256))
    }
}

/// Takes the `.part` file for this download alone (an advisory `flock`,
/// released when the file is closed): two downloads never write the same
/// `.part`, whether in one client or in two.
fn lock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SHA-256 of `len` bytes of `file` from `start`, read through `buf`.
fn hash_range(file: &File, start: u64, len: u64, buf: &mut [u8]) -> io::Result<Hash> {
    let mut hasher = Sha256::new();
    let (mut at, mut left) = (start, len);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
        left -= n as u64;
    }
    Ok(hasher.finalize().into())
}

/// Gives `file` its full length, with the disk space reserved where the
/// file system can (Linux `fallocate`): a full disk is found before the
/// first byte is fetched, and writes into reserved blocks are cheaper than
/// growing a sparse file page by page.
fn reserve(file: &File, size: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if size > 0 {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file descriptor we own.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        // File systems without fallocate (tmpfs has it; some do not) fall
        // back to a sparse file; a full disk is a real error.
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    file.set_len(size)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MIN_CHUNK_SIZE;
    use crate::testutil::{data, TempDir};

    fn encoded(name: &str, seed: u8) -> (FileMeta, Vec<u8>) {
        let meta = FileMeta::from_reader(name, &data(3 * MIN_CHUNK_SIZE as usize, seed)[..], MIN_CHUNK_SIZE)
            .unwrap();
        let mut bytes = Vec::new();
        encode_meta(&meta, &mut bytes).unwrap();
        (meta, bytes)
    }

    #[test]
    fn two_downloads_never_share_a_part_file() {
        let dir = TempDir::new("lock");
        let now = Instant::now();
        let (a, a_bytes) = encoded("same.bin", 1);
        let (b, b_bytes) = encoded("same.bin", 2);
        let mut first = Download::new(a.id(), "a".into(), dir.path(), now);
        assert_eq!(first.accept_meta(&a_bytes), MetaOutcome::Accepted);
        let mut second = Download::new(b.id(), "b".into(), dir.path(), now);
        assert_eq!(second.accept_meta(&b_bytes), MetaOutcome::Failed);
        assert!(
            matches!(&second.phase, Phase::Failed(why) if why.contains("another download")),
            "{:?}",
            second.phase
        );
        // The first one's file is untouched: still its full reserved size.
        assert_eq!(
            fs::metadata(dir.path().join("same.bin.part")).unwrap().len(),
            a.size
        );
        // Once the first is gone, the file can be taken (and re-checked).
        drop(first);
        let mut third = Download::new(b.id(), "b".into(), dir.path(), now);
        assert_eq!(third.accept_meta(&b_bytes), MetaOutcome::Accepted);
        assert_eq!(third.phase, Phase::Recheck);
    }

    #[test]
    fn a_full_peer_list_makes_room_only_for_dead_peers() {
        let now = Instant::now();
        let mut d = Download::new([0; 32], "x".into(), Path::new("."), now);
        let addr = |i: u16| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 7000));
        let all: Vec<SocketAddr> = (0..MAX_KNOWN_PEERS as u16).map(addr).collect();
        d.add_peers(&all, now);
        d.add_peers(&[addr(999)], now);
        assert_eq!(d.peers.len(), MAX_KNOWN_PEERS);
        assert!(d.peer_mut(addr(999)).is_none(), "full of live peers: no room");
        // A banned peer keeps its place; one that keeps failing gives it up.
        d.peer_mut(addr(1)).unwrap().banned = true;
        d.peer_mut(addr(1)).unwrap().failures = 9;
        d.peer_mut(addr(2)).unwrap().failures = DEAD_AFTER;
        d.add_peers(&[addr(999)], now);
        assert!(d.peer_mut(addr(999)).is_some());
        assert!(d.peer_mut(addr(2)).is_none());
        assert!(d.peer_mut(addr(1)).is_some_and(|p| p.banned));
    }

    #[test]
    fn wrong_metadata_is_refused_before_anything_is_created() {
        let dir = TempDir::new("badmeta");
        let (a, _) = encoded("x.bin", 1);
        let (_, other) = encoded("x.bin", 2);
        let mut d = Download::new(a.id(), "x".into(), dir.path(), Instant::now());
        assert_eq!(
            d.accept_meta(&other),
            MetaOutcome::Bad("metadata does not match the file id")
        );
        assert_eq!(
            d.accept_meta(b"garbage"),
            MetaOutcome::Bad("undecodable metadata")
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
