//! One download: its metadata, its working file (behind
//! [`PartFile`]), which chunks are verified and the peers known to have
//! it. No file is named or opened here: the [`Storage`] hands out the
//! working file.
//!
//! Invariants:
//! - Metadata is trusted only after its SHA-256 equals the file id asked
//!   for; its name then passed [`crate::names::check_file_name`].
//! - Bytes reach the working file only through [`Download::write`], with
//!   positioned writes, and never over a chunk already verified.
//! - A chunk counts as verified only once the bytes on disk are the bytes
//!   that hashed right: a chunk that two peers fetched at once (end-game)
//!   is read back and hashed again, since the other peer's writes may have
//!   landed in between.
//! - The resume record holds a chunk only after the working file's data
//!   was synced ([`PartFile::save`]); an earlier working file without a
//!   sound record is re-checked chunk by chunk against the hashes, never
//!   trusted ([`Phase::Recheck`]).
//! - Every byte is hashed once, as it arrives and before it is written:
//!   the file id vouches for every chunk hash (and the whole file's
//!   SHA-256, which the metadata carries), so a file whose every chunk
//!   verified is the file. It appears under its name only once every chunk
//!   is verified and the data is synced ([`PartFile::finish`]).
//! - A download never changes its own phase because of storage alone:
//!   every storage result is looked at here and turned into a phase.

use crate::client::engine::native::serve::Source;
use crate::client::engine::transfer::bitmap;
use crate::client::engine::transfer::peer_set::PeerSet;
use crate::client::engine::transfer::picker::{Has, Scheduler};
use crate::client::engine::transfer::storage::{CreateError, FinishError, PartFile, Storage};
use crate::client::engine::{ConnId, Listed};
use crate::meta::{decode_meta, encode_meta, hex, max_meta_len, FileMeta, Hash, MAX_META_LEN};
use crate::names;
use crate::rand::Rng;
use crate::wire::tracker::FileEntry;
use crate::wire::FileId;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// Peers asked for a listed file's metadata at once: every connection, so
/// each one that cannot deliver it times out and makes room (the listing
/// bounds what each may send).
const META_FETCHERS: usize = crate::client::engine::SEARCH_CONNS;
/// Peers asked at once for the metadata of a file known only by its id
/// (each answer may be up to the protocol's limit).
const UNLISTED_META_FETCHERS: usize = 4;

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

/// Metadata bytes all downloads together may be receiving at once (16 MiB:
/// the metadata of a file of 8 GiB in the smallest chunks, or of 512 GiB
/// in 1 MiB chunks). An answer to a metadata request claims the size it
/// announces (at most [`Download::meta_limit`], which the listed size
/// bounds) before any of it is buffered, and holds it until the request
/// ends. A claim larger than the whole budget is let in only while no
/// other is held: the metadata of a file that large is what its download
/// needs, so memory goes in proportion to the file sizes asked for, and a
/// hostile stream against a small file holds no more than that file's
/// metadata could be (issue 19; it was one budget of 128 MiB that any
/// stream could fill).
pub const META_MEMORY: usize = 16 << 20;

/// The metadata bytes claimed of [`META_MEMORY`], shared by the engine's
/// downloads (one thread, so a plain `Rc<Cell>`), and the cap.
#[derive(Debug, Clone)]
pub struct MetaBudget {
    held: Rc<Cell<usize>>,
    cap: usize,
}

/// One download's share of a [`MetaBudget`]: the room each connection's
/// metadata request holds, given back when the request ends or, at the
/// latest, when the download is dropped.
#[derive(Debug)]
struct MetaRoom {
    budget: MetaBudget,
    held: Vec<(ConnId, usize)>,
}

impl Drop for MetaRoom {
    fn drop(&mut self) {
        for (_, n) in self.held.drain(..) {
            self.budget.give(n);
        }
    }
}

impl MetaBudget {
    pub fn new(cap: usize) -> MetaBudget {
        MetaBudget {
            held: Rc::new(Cell::new(0)),
            cap,
        }
    }

    /// Claims `n` bytes: within the cap, or alone (nothing else held).
    fn take(&self, n: usize) -> bool {
        let held = self.held.get();
        if held != 0 && held + n > self.cap {
            return false;
        }
        self.held.set(held + n);
        true
    }

    fn give(&self, n: usize) {
        self.held.set(self.held.get() - n);
    }

    #[cfg(test)]
    pub fn left(&self) -> usize {
        self.cap.saturating_sub(self.held.get())
    }
}

/// One download's state.
pub struct Download {
    pub id: FileId,
    /// What the user asked for, safe to print.
    pub label: String,
    pub meta: Option<FileMeta>,
    /// What the tracker listed (when the user picked it from the list):
    /// the metadata must name the same file and size.
    pub listed: Option<Listed>,
    /// The name to save it as (`--output`), else the metadata's.
    pub output: Option<String>,
    /// The connections asking for the metadata (at most
    /// [`Download::max_meta_fetchers`]).
    pub meta_conns: Vec<ConnId>,
    /// Room held by metadata requests, in a budget the engine shares
    /// among its downloads ([`Download::use_meta_budget`]).
    meta_room: MetaRoom,
    pub sched: Scheduler,
    /// Chunks that had two fetchers at once since they were last missing.
    shared: Vec<u32>,
    part: Option<Box<dyn PartFile>>,
    rng: Option<Rng>,

    pub phase: Phase,
    pub peers: PeerSet,
    pub verified_bytes: u64,
    /// Of `verified_bytes`, those found on disk from an earlier run.
    pub resumed_bytes: u64,
    pub started: Instant,
    /// Last time a connection to a peer was up (for giving up).
    pub last_connected: Instant,
    /// Last time a peer delivered something we kept (verified metadata or
    /// a verified chunk): a connection that delivers nothing is not hope.
    pub last_progress: Instant,
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
    pub fn new(id: FileId, label: String, rng: Rng, now: Instant) -> Download {
        Download {
            id,
            label,
            meta: None,
            listed: None,
            output: None,
            meta_conns: Vec::new(),
            meta_room: MetaRoom {
                budget: MetaBudget::new(META_MEMORY),
                held: Vec::new(),
            },
            sched: Scheduler::new(0),
            shared: Vec::new(),
            part: None,
            rng: Some(rng),

            phase: Phase::Meta,
            peers: PeerSet::default(),
            verified_bytes: 0,
            resumed_bytes: 0,
            started: now,
            last_connected: now,
            last_progress: now,
            next_query: now,
            waiting_told: false,
            bits: Vec::new(),
            saved: 0,
            saved_at: now,
            recheck_next: 0,
            encoded_meta: Vec::new(),
        }
    }

    /// Claims room for the `total` bytes of metadata `conn`'s peer is
    /// about to send: false (ask later) when the downloads' metadata would
    /// not fit in [`META_MEMORY`].
    pub fn claim_meta(&mut self, conn: ConnId, total: usize) -> bool {
        if !self.meta_room.budget.take(total) {
            return false;
        }
        self.meta_room.held.push((conn, total));
        true
    }

    /// `conn`'s metadata request is over: its room goes back.
    pub fn release_meta(&mut self, conn: ConnId) {
        let held = &mut self.meta_room.held;
        if let Some(i) = held.iter().position(|(c, _)| *c == conn) {
            let (_, n) = held.swap_remove(i);
            self.meta_room.budget.give(n);
        }
    }

    /// Reserves metadata room in `budget` (shared with other downloads)
    /// instead of a budget of its own. Called before any request.
    pub fn use_meta_budget(&mut self, budget: MetaBudget) {
        debug_assert!(self.meta_room.held.is_empty());
        self.meta_room.budget = budget;
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

    /// Checks metadata a peer sent against the file id and prepares the
    /// working file.
    pub fn accept_meta(&mut self, bytes: &[u8], storage: &mut dyn Storage) -> MetaOutcome {
        if self.meta.is_some() {
            return MetaOutcome::AlreadyKnown;
        }
        let Ok(meta) = decode_meta(bytes) else {
            return MetaOutcome::Bad("undecodable metadata");
        };
        if meta.id() != self.id {
            return MetaOutcome::Bad("metadata does not match the file id");
        }
        // The id was only as good as its announcer: a listing that said
        // "holiday.jpg, 1 KiB" must not become another name or 200 MiB.
        if let Some(l) = &self.listed {
            if meta.name != l.name {
                return MetaOutcome::Bad("metadata names another file than the tracker listed");
            }
            if meta.size != l.size {
                return MetaOutcome::Bad("metadata gives another size than the tracker listed");
            }
        }
        match self.create_part(&meta, storage) {
            Ok(reused) => {
                self.encoded_meta = bytes.to_vec();
                self.sched = self.scheduler(meta.chunks.len());
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

    /// Chunks to fetch, or (all there already, or an empty file) done.
    fn start_fetching(&mut self) {
        self.phase = Phase::Chunks;
        if self.sched.is_complete() {
            self.finish();
        }
    }

    /// The scheduler for `count` chunks, taking this download's random
    /// source (given once, at creation, so runs with one seed repeat).
    fn scheduler(&mut self, count: usize) -> Scheduler {
        let s = Scheduler::new(count);
        match self.rng.take() {
            Some(rng) => s.with_rng(rng),
            None => s,
        }
    }

    /// Picks up an earlier run's working file, if the storage has a sound
    /// record of it: its verified chunks are not fetched again.
    pub fn resume(&mut self, storage: &mut dyn Storage) -> Option<Resumed> {
        let (part, state) = storage.resume(&self.id)?;
        let total = state.meta.chunks.len();
        self.sched = self.scheduler(total);
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
            if hash_range(
                part.as_ref(),
                u64::from(index) * u64::from(meta.chunk_size),
                len,
                buf,
            )
            .ok()
                == Some(meta.chunks[index as usize])
            {
                self.sched.complete(index);
                self.verified_bytes += len;
                bitmap::set_bit(&mut self.bits, index as usize);
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
        Some(Source {
            meta: self.meta.as_ref()?,
            encoded_meta: &self.encoded_meta,
            path: self.part.as_ref()?.path()?,
            stat: None,
            have: Some(&self.bits),
        })
    }

    /// The tracker entry announcing this partial download (once its
    /// metadata is known).
    pub fn entry(&self, complete: bool) -> Option<FileEntry> {
        Some(self.meta.as_ref()?.entry(complete))
    }

    /// Whether verified chunks are not yet recorded in the sidecar.
    pub fn unsaved(&self) -> bool {
        self.sched.done() > self.saved
    }

    /// Deletes the working file and its record (`cancel --delete`).
    pub fn discard(&mut self) {
        if let Some(mut part) = self.part.take() {
            part.discard();
        }
    }

    /// Records the verified chunks ([`PartFile::save`] syncs the data
    /// first, so no chunk is ever recorded before its bytes are on disk).
    pub fn save(&mut self, now: Instant) -> io::Result<()> {
        if !self.unsaved() {
            return Ok(());
        }
        self.record(now)
    }

    /// Records the verified chunks even if none came since the last
    /// record: a cancelled download leaves a record even with no chunk, so
    /// the next run offers to resume it.
    pub fn record(&mut self, now: Instant) -> io::Result<()> {
        let (Some(part), Some(meta)) = (&mut self.part, &self.meta) else {
            return Ok(());
        };
        part.save(meta, &self.bits, &[])?;
        self.saved = self.sched.done();
        self.saved_at = now;
        Ok(())
    }

    /// Gets the working file from the storage: reused (true) if an earlier
    /// run left one of the right size, else reserved at full size.
    fn create_part(&mut self, meta: &FileMeta, storage: &mut dyn Storage) -> Result<bool, String> {
        let shown = names::escape(&meta.name);
        let created = storage.create(meta).map_err(|e| match e {
            CreateError::Exists => format!(
                "'{shown}' already exists in the downloads directory; move it away to download it again"
            ),
            CreateError::Busy => format!("another download is writing '{shown}'"),
            e => format!("'{shown}': {e}"),
        })?;
        let mut part = created.part;
        if !created.reused {
            if let Err(e) = part.reserve(meta.size) {
                part.discard();
                return Err(format!(
                    "cannot make room for '{shown}' ({} bytes): {e}",
                    meta.size
                ));
            }
        }
        self.part = Some(part);
        Ok(created.reused)
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

    /// The most metadata bytes worth receiving for this file: bounded by
    /// the listed size when there is one (its chunks are at least
    /// `MIN_CHUNK_SIZE` each), so a peer cannot make a small listing cost
    /// megabytes.
    pub fn meta_limit(&self) -> usize {
        match &self.listed {
            Some(l) => max_meta_len(l.size),
            None => MAX_META_LEN,
        }
    }

    /// How many peers are asked for the metadata at once: every
    /// connection when a listing bounds its size, a few otherwise, so one
    /// slow or silent peer cannot hold the download up. (Each answer's
    /// size is claimed from [`META_MEMORY`] before it is buffered.)
    pub fn max_meta_fetchers(&self) -> usize {
        if self.listed.is_some() {
            META_FETCHERS
        } else {
            UNLISTED_META_FETCHERS
        }
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
        let (Some(part), Some(meta)) = (&mut self.part, &self.meta) else {
            return Ok(());
        };
        part.write_at(data, u64::from(index) * u64::from(meta.chunk_size) + offset)
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
            bitmap::set_bit(&mut self.bits, index as usize);
            self.start_writeback(index);
        }
        if self.sched.is_complete() && self.phase == Phase::Chunks {
            self.finish();
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

    /// Tells the storage a verified chunk is final, so it can start
    /// writing it back and the last sync has little left to do.
    fn start_writeback(&self, index: u32) {
        if let (Some(part), Some(meta)) = (&self.part, &self.meta) {
            part.written(
                u64::from(index) * u64::from(meta.chunk_size),
                meta.chunk_len(index as usize),
            );
        }
    }

    fn read_back_matches(&self, index: u32) -> Option<bool> {
        let (part, meta) = (self.part.as_ref()?, self.meta.as_ref()?);
        let mut buf = vec![0u8; 64 * 1024];
        let start = u64::from(index) * u64::from(meta.chunk_size);
        let hash = hash_range(part.as_ref(), start, meta.chunk_len(index as usize), &mut buf).ok()?;
        Some(hash == meta.chunks[index as usize])
    }

    /// Every chunk is verified: sync the data and put the file in place.
    fn finish(&mut self) {
        let (Some(mut part), Some(meta)) = (self.part.take(), &self.meta) else {
            return;
        };
        let shown = names::escape(&meta.name);
        match part.finish(self.output.as_deref().unwrap_or(&meta.name)) {
            Ok(path) => self.phase = Phase::Done(path),
            Err(FinishError::Exists) => self.fail(format!(
                "'{shown}' appeared in the downloads directory meanwhile; the verified data stays in its working file"
            )),
            Err(FinishError::Io(e)) => self.fail(format!("cannot put '{shown}' in place: {e}")),
        }
    }

    /// Hex SHA-256 of the whole file, as its metadata (vouched for by the
    /// id) says.
    pub fn sha256_hex(&self) -> String {
        self.meta.as_ref().map_or_else(String::new, |m| hex(&m.sha256))
    }
}

/// SHA-256 of `len` bytes of `file` from `start`, read through `buf`.
fn hash_range(file: &dyn PartFile, start: u64, len: u64, buf: &mut [u8]) -> io::Result<Hash> {
    let mut hasher = Sha256::new();
    let (mut at, mut left) = (start, len);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.read_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
        left -= n as u64;
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::engine::transfer::storage::mem::MemStorage;
    use crate::client::io::part_file::FsStorage;
    use crate::meta::MIN_CHUNK_SIZE;
    use crate::testutil::{data, TempDir};

    fn encoded(name: &str, bytes: &[u8]) -> (FileMeta, Vec<u8>) {
        let meta = FileMeta::from_reader(name, bytes, MIN_CHUNK_SIZE).unwrap();
        let mut out = Vec::new();
        encode_meta(&meta, &mut out).unwrap();
        (meta, out)
    }

    fn download(id: FileId) -> Download {
        Download::new(id, "x".into(), Rng::seeded(1), Instant::now())
    }

    #[test]
    fn metadata_room_follows_the_listed_size() {
        // A listed 1 GiB file's metadata is at most 2 MiB and change: a
        // peer cannot make it hold more, and seven such claims fit beside
        // each other in the budget.
        let budget = MetaBudget::new(META_MEMORY);
        let mut d = download([1; 32]);
        d.listed = Some(Listed {
            name: "x".into(),
            size: 1 << 30,
        });
        d.use_meta_budget(budget.clone());
        let limit = d.meta_limit();
        assert!(limit < 3 << 20, "{limit}");
        for c in 0..7 {
            assert!(d.claim_meta(ConnId(c), limit));
        }
        assert!(!d.claim_meta(ConnId(99), limit), "the eighth passes 16 MiB");
    }

    #[test]
    fn metadata_room_is_bounded_across_downloads() {
        let budget = MetaBudget::new(META_MEMORY);
        let mut by_id: Vec<Download> = (0..4u8).map(|i| download([i; 32])).collect();
        for d in &mut by_id {
            d.use_meta_budget(budget.clone());
        }
        // Peers of unlisted downloads announce the protocol's largest
        // metadata, larger than the budget: one is let in alone, four
        // downloads do not get four times that.
        let most = by_id[0].meta_limit();
        assert!(most > META_MEMORY);
        assert!(by_id[0].claim_meta(ConnId(1), most));
        assert!(!by_id[1].claim_meta(ConnId(2), most));
        assert!(
            !by_id[0].claim_meta(ConnId(3), most),
            "nor a second peer of the same download"
        );
        // Honest answers of ordinary sizes fit beside each other.
        let mut small: Vec<Download> = (10..14u8).map(|i| download([i; 32])).collect();
        by_id[0].release_meta(ConnId(1));
        for (i, d) in small.iter_mut().enumerate() {
            d.use_meta_budget(budget.clone());
            for c in 0..32 {
                assert!(d.claim_meta(ConnId((i * 32 + c) as u64), 100_000));
            }
        }
        assert_eq!(META_MEMORY - budget.left(), 128 * 100_000);
        assert!(
            !by_id[1].claim_meta(ConnId(2), most),
            "no room for a maximal one beside them"
        );
        // Ending requests, or dropping the downloads, gives the room back.
        small[0].release_meta(ConnId(0));
        small[0].release_meta(ConnId(0));
        assert_eq!(META_MEMORY - budget.left(), 127 * 100_000);
        drop(small);
        assert_eq!(budget.left(), META_MEMORY);
        assert!(by_id[1].claim_meta(ConnId(2), most));
    }

    /// Chunk `i` of `bytes`, with its first byte flipped if `spoil`.
    fn chunk(meta: &FileMeta, bytes: &[u8], i: u32, spoil: bool) -> Vec<u8> {
        let start = i as usize * meta.chunk_size as usize;
        let mut c = bytes[start..start + meta.chunk_len(i as usize) as usize].to_vec();
        if spoil {
            c[0] ^= 1;
        }
        c
    }

    /// Fetches every chunk the scheduler hands out but `skip`, as a peer
    /// would deliver them, and hashes each as a connection does.
    fn fill(d: &mut Download, bytes: &[u8], skip: Option<u32>) {
        let meta = d.meta.clone().unwrap();
        let avoid: Vec<u32> = skip.into_iter().collect();
        while let Some(i) = d.next_chunk(&Has::All, &[], &avoid) {
            deliver(d, &chunk(&meta, bytes, i, false), i);
        }
    }

    /// Writes `data` as chunk `i` and reports it as a connection would.
    fn deliver(d: &mut Download, data: &[u8], i: u32) {
        d.write(i, 0, data).unwrap();
        let hash: Hash = Sha256::digest(data).into();
        if Some(hash) == d.chunk_hash(i) {
            assert!(d.chunk_fetched(i));
        } else {
            d.chunk_abandoned(i);
        }
    }

    #[test]
    fn a_download_in_memory_storage_finishes_verified() {
        let bytes = data(3 * MIN_CHUNK_SIZE as usize + 7, 4);
        let (meta, enc) = encoded("m.bin", &bytes);
        let mut storage = MemStorage::default();
        let mut d = download(meta.id());
        assert_eq!(d.accept_meta(&enc, &mut storage), MetaOutcome::Accepted);
        // Everything but the last chunk, which comes with a wrong byte.
        fill(&mut d, &bytes, Some(3));
        assert_eq!(d.next_chunk(&Has::All, &[], &[]), Some(3));
        deliver(&mut d, &chunk(&meta, &bytes, 3, true), 3);
        assert_eq!(d.phase, Phase::Chunks, "a bad chunk is not verified");
        d.save(Instant::now()).unwrap();
        let recorded = storage.0.borrow().parts["m.bin"].1.clone().unwrap();
        assert_eq!(recorded.count(), 3, "the record holds the three good chunks");
        // The bad chunk is fetched again, right this time.
        assert_eq!(d.next_chunk(&Has::All, &[], &[]), Some(3));
        deliver(&mut d, &chunk(&meta, &bytes, 3, false), 3);
        // Done with the last chunk: no second pass over the file.
        assert_eq!(d.phase, Phase::Done(PathBuf::from("m.bin")));
        assert_eq!(storage.0.borrow().done["m.bin"], bytes);
        assert!(storage.0.borrow().parts.is_empty());
    }

    #[test]
    fn two_downloads_never_share_a_working_file() {
        let dir = TempDir::new("lock");
        let mut storage = FsStorage::new(dir.path());
        let (a, a_bytes) = encoded("same.bin", &data(3 * MIN_CHUNK_SIZE as usize, 1));
        let mut first = download(a.id());
        assert_eq!(first.accept_meta(&a_bytes, &mut storage), MetaOutcome::Accepted);
        // The same file again (another client on this directory, say).
        let mut second = download(a.id());
        assert_eq!(second.accept_meta(&a_bytes, &mut storage), MetaOutcome::Failed);
        assert!(
            matches!(&second.phase, Phase::Failed(why) if why.contains("another download")),
            "{:?}",
            second.phase
        );
        // The first one's file is untouched: still its full reserved size.
        let part = first.part.as_ref().unwrap().path().unwrap().to_path_buf();
        assert_eq!(std::fs::metadata(&part).unwrap().len(), a.size);
        // Another file of the same name has a working file of its own.
        let (b, b_bytes) = encoded("same.bin", &data(3 * MIN_CHUNK_SIZE as usize, 2));
        let mut other = download(b.id());
        assert_eq!(other.accept_meta(&b_bytes, &mut storage), MetaOutcome::Accepted);
        // Once the first is gone, its file can be taken (and re-checked).
        drop(first);
        let mut third = download(a.id());
        assert_eq!(third.accept_meta(&a_bytes, &mut storage), MetaOutcome::Accepted);
        assert_eq!(third.phase, Phase::Recheck);
    }

    #[test]
    fn a_small_listing_bounds_the_metadata_a_peer_may_send() {
        let mut d = download([1; 32]);
        assert_eq!(d.meta_limit(), MAX_META_LEN, "no listing: the protocol's limit");
        d.listed = Some(Listed {
            name: "holiday.jpg".into(),
            size: 1024,
        });
        // One chunk's hash, a name and the fixed fields.
        assert!(d.meta_limit() < 1024, "{}", d.meta_limit());
        let (meta, enc) = encoded("holiday.jpg", &data(1024, 3));
        assert!(enc.len() <= d.meta_limit());
        let mut d = download(meta.id());
        d.listed = Some(Listed {
            name: "holiday.jpg".into(),
            size: 1024,
        });
        assert_eq!(
            d.accept_meta(&enc, &mut MemStorage::default()),
            MetaOutcome::Accepted
        );
    }

    #[test]
    fn wrong_metadata_is_refused_before_anything_is_created() {
        let mut storage = MemStorage::default();
        let (a, _) = encoded("x.bin", &data(1000, 1));
        let (_, other) = encoded("x.bin", &data(1000, 2));
        let mut d = download(a.id());
        assert_eq!(
            d.accept_meta(&other, &mut storage),
            MetaOutcome::Bad("metadata does not match the file id")
        );
        assert_eq!(
            d.accept_meta(b"garbage", &mut storage),
            MetaOutcome::Bad("undecodable metadata")
        );
        assert!(storage.0.borrow().parts.is_empty());
    }
}
