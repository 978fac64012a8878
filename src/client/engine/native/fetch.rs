//! One outbound connection to a peer that has a file we download: send
//! requests, stream the replies into the download.
//!
//! Invariants:
//! - Several requests are in flight (pipelining); replies arrive in request
//!   order, so each reply belongs to the oldest request in `Fetch::queue`.
//!   A reply that does not fit that request (another chunk, a wrong offset,
//!   too many bytes) is a protocol error and ends the connection.
//! - Block bytes are hashed and written as they arrive, straight from the
//!   fixed input buffer: memory does not grow with the chunk size.
//! - Every chunk this connection was given is either verified, or handed
//!   back to the scheduler when the fetch fails or the connection ends
//!   ([`Fetch::abandon`]), so no chunk is ever lost.
//! - A request without progress for the request timeout ends the
//!   connection (the engine checks [`Fetch::deadline`]); progress is a whole
//!   answer or [`MIN_PROGRESS`] bytes, so a trickle does not count.
//! - Chunks are asked only of a peer known to hold them: after the
//!   metadata, the connection asks `GetHave` and keeps the answer up to date
//!   from the peer's `Have` notifications, which may come between any two
//!   frames (those that come while the bitmap is still arriving are kept,
//!   bounded, and applied once it is whole).

use crate::client::engine::native::download::Download;
use crate::client::engine::native::serve::MAX_PENDING_HAVES;
use crate::client::engine::transfer::bitmap;
use crate::client::engine::transfer::buf::Buf;
use crate::client::engine::transfer::conn_end::ConnEnd;
use crate::client::engine::transfer::picker::Has;
use crate::client::engine::{ConnId, Flow, MIN_PROGRESS};
use crate::meta::Hash;
use crate::wire::peer::{decode_peer_head, encode_peer_msg, PeerMsg, Refusal, BLOCK_SIZE, MAX_PIPELINE};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Inbound buffer: one block and its head, twice, so a read can be large.
pub const IN_CAP: usize = 2 * (BLOCK_SIZE + 64);
/// Bytes of chunks a connection tries to keep requested, which sets its
/// pipeline depth from the chunk size.
const BYTES_IN_FLIGHT: u64 = 4 << 20;
/// Longest wait for a peer's connect and first answer (or its first
/// `MIN_PROGRESS` bytes): a live peer answers a first small request within
/// a few round trips, and hundreds of peers that accept connections and
/// never answer must each cost little time.
const FIRST_ANSWER: Duration = Duration::from_secs(3);

/// Which assembled reply a [`Req::Pieces`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pieces {
    /// The encoded metadata (`MetaPiece` frames).
    Meta,
    /// The held-chunks bitmap (`HaveMap` frames, or one `HaveAll`).
    Have,
}

#[derive(Debug)]
enum Req {
    /// A reply that arrives in pieces and is used whole.
    Pieces {
        kind: Pieces,
        bytes: Vec<u8>,
        total: usize,
    },
    Chunk {
        index: u32,
        len: u64,
        got: u64,
        hasher: Sha256,
    },
}

fn pieces(kind: Pieces) -> Req {
    Req::Pieces {
        kind,
        bytes: Vec::new(),
        total: 0,
    }
}

/// What happened while driving a connection, for the loop's log and
/// interface.
#[derive(Debug, Default)]
pub struct Report {
    /// Chunks this connection delivered and verified.
    pub verified: Vec<u32>,
    /// Chunks that failed their hash.
    pub bad: Vec<u32>,
    /// A whole answer arrived: the peer delivers.
    pub answered: bool,
    /// The metadata the peer sent, whole, for the engine to check (it is
    /// not trusted here).
    pub meta: Option<Vec<u8>>,
}

/// An outbound connection's protocol state.
#[derive(Debug)]
pub struct Fetch {
    /// Key of the download this connection serves.
    pub download: usize,
    /// This connection's id.
    conn: ConnId,
    pub addr: SocketAddr,
    /// False until the TCP connect completes.
    pub connected: bool,
    input: Buf,
    output: Buf,
    queue: VecDeque<Req>,
    /// Payload bytes still to come for the frame at the head of the queue.
    payload_left: usize,
    /// Chunks this peer sent bad data for: never asked of it again.
    avoid: Vec<u32>,
    /// The connect or the oldest request must make progress by then.
    pub deadline: Instant,
    /// Bytes received since the deadline last moved.
    window: u64,
    /// The request timeout now: [`FIRST_ANSWER`] at most until the peer
    /// answered once, then `full_timeout`.
    timeout: Duration,
    full_timeout: Duration,
    /// Chunk bytes received on this connection.
    pub received: u64,
    /// What the peer holds (its answer to `GetHave`, kept up to date by
    /// its `Have` messages).
    has: Has,
    have_asked: bool,
    /// `Have` notifications that came before the bitmap was complete.
    early_haves: Vec<u32>,
}

impl Fetch {
    pub fn new(conn: ConnId, download: usize, addr: SocketAddr, now: Instant, timeout: Duration) -> Fetch {
        Fetch {
            conn,
            download,
            addr,
            connected: false,
            input: Buf::new(IN_CAP),
            output: Buf::new(MAX_PIPELINE * 128),
            queue: VecDeque::new(),
            payload_left: 0,
            avoid: Vec::new(),
            deadline: now + timeout.min(FIRST_ANSWER),
            window: 0,
            timeout: timeout.min(FIRST_ANSWER),
            full_timeout: timeout,
            received: 0,
            has: Has::Unknown,
            have_asked: false,
            early_haves: Vec::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The connect completed.
    pub fn on_connected(&mut self, dl: &mut Download, now: Instant) {
        self.connected = true;
        self.deadline = now + self.timeout;
        self.refill(dl, now);
    }

    /// Tops the pipeline up: the metadata if nobody is fetching it, then
    /// what the peer holds, then chunks it holds.
    pub fn refill(&mut self, dl: &mut Download, now: Instant) {
        if !self.connected {
            return;
        }
        let was_idle = self.queue.is_empty();
        match dl.meta.as_ref() {
            None => {
                if dl.meta_conns.len() < dl.max_meta_fetchers() && !dl.meta_conns.contains(&self.conn) {
                    dl.meta_conns.push(self.conn);
                    self.request(&PeerMsg::GetMeta { id: dl.id }, pieces(Pieces::Meta));
                }
            }
            Some(_) if !self.have_asked => {
                self.have_asked = true;
                self.request(&PeerMsg::GetHave { id: dl.id }, pieces(Pieces::Have));
            }
            Some(_) if self.has == Has::Unknown => {}
            Some(m) => {
                let depth =
                    (BYTES_IN_FLIGHT / u64::from(m.chunk_size)).clamp(2, MAX_PIPELINE as u64) as usize;
                while self.queue.len() < depth {
                    let busy: Vec<u32> = self
                        .queue
                        .iter()
                        .filter_map(|r| match r {
                            Req::Chunk { index, .. } => Some(*index),
                            Req::Pieces { .. } => None,
                        })
                        .collect();
                    let Some(index) = dl.next_chunk(&self.has, &busy, &self.avoid) else {
                        break;
                    };
                    self.request(
                        &PeerMsg::GetChunk { id: dl.id, index },
                        Req::Chunk {
                            index,
                            len: dl.chunk_len(index),
                            got: 0,
                            hasher: Sha256::new(),
                        },
                    );
                }
            }
        }
        if was_idle && !self.queue.is_empty() {
            self.deadline = now + self.timeout;
        }
    }

    fn request(&mut self, msg: &PeerMsg, req: Req) {
        let mut frame = Vec::with_capacity(64);
        // A request is a few dozen bytes and the output buffer holds a full
        // pipeline of them, so neither step can fail.
        if encode_peer_msg(msg, &[], &mut frame).is_ok() && self.output.push(&frame) {
            self.queue.push_back(req);
        }
    }

    /// Counts `n` bytes received: the deadline moves only once
    /// [`MIN_PROGRESS`] bytes came since it last moved, so a peer that
    /// trickles a byte at a time is stalled, not alive.
    fn progress(&mut self, n: usize, now: Instant) {
        self.window += n as u64;
        if self.window >= MIN_PROGRESS {
            self.window = 0;
            self.deadline = now + self.timeout;
        }
    }

    /// Writes queued requests and reads replies until the socket would
    /// block, or `budget` bytes were read ([`Flow::Again`]).
    pub fn drive<S: Read + Write + ?Sized>(
        &mut self,
        s: &mut S,
        dl: &mut Download,
        now: Instant,
        budget: usize,
        report: &mut Report,
    ) -> Result<Flow, ConnEnd> {
        let mut got = 0;
        loop {
            self.output.flush_to(s)?;
            let Some(n) = self.input.fill_from(s)? else {
                self.process(dl, now, report)?;
                return Ok(Flow::Idle);
            };
            if n == 0 {
                return Err(ConnEnd::Eof {
                    in_flight: self.queue.len(),
                });
            }
            got += n;
            self.progress(n, now);
            self.process(dl, now, report)?;
            if dl.is_finished() {
                return Err(ConnEnd::Finished);
            }
            if got >= budget {
                return Ok(Flow::Again);
            }
        }
    }

    /// Handles every complete head and every payload byte in the input.
    fn process(&mut self, dl: &mut Download, now: Instant, report: &mut Report) -> Result<(), ConnEnd> {
        loop {
            if self.payload_left > 0 {
                let take = self.payload_left.min(self.input.len());
                if take == 0 {
                    return Ok(());
                }
                let data = &self.input.filled()[..take];
                match self.queue.front_mut() {
                    Some(Req::Pieces { bytes, .. }) => bytes.extend_from_slice(data),
                    Some(Req::Chunk {
                        index, got, hasher, ..
                    }) => {
                        hasher.update(data);
                        dl.write(*index, *got, data).map_err(|e| {
                            let why = format!("cannot write to the .part file: {e}");
                            dl.fail(why);
                            ConnEnd::Finished
                        })?;
                        *got += take as u64;
                        self.received += take as u64;
                    }
                    None => return Err(ConnEnd::Unexpected("payload without a request")),
                }
                self.input.consume(take);
                self.payload_left -= take;
                if self.payload_left == 0 {
                    self.frame_done(dl, now, report)?;
                }
                continue;
            }
            let head = match decode_peer_head(self.input.filled()) {
                Ok(Some(head)) => head,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ConnEnd::Protocol(e)),
            };
            self.input.consume(head.head_len);
            match head.header {
                // Unsolicited, between any two frames: the peer gained a
                // chunk.
                PeerMsg::Have { index } => {
                    if self.has == Has::Unknown {
                        // The bitmap is still on its way (in pieces).
                        if self.early_haves.len() >= MAX_PENDING_HAVES {
                            return Err(ConnEnd::Unexpected("too many chunk notifications"));
                        }
                        self.early_haves.push(index);
                    } else {
                        self.gained(index, dl);
                        self.refill(dl, now);
                    }
                    continue;
                }
                PeerMsg::HaveAll => {
                    if !matches!(
                        self.queue.pop_front(),
                        Some(Req::Pieces {
                            kind: Pieces::Have,
                            ..
                        })
                    ) {
                        return Err(ConnEnd::Unexpected("a reply that does not match the request"));
                    }
                    self.has = Has::All;
                    dl.sched.peer_joined(&self.has);
                    self.refill(dl, now);
                    continue;
                }
                PeerMsg::Refused {
                    reason: Refusal::Missing,
                } => {
                    // A partial peer lacks a chunk it claimed: give the
                    // chunk back and take its claim away, here and in the
                    // scheduler's counts (so a complete seeder is not kept
                    // off a chunk by claims that are not kept). A peer that
                    // claimed everything is lying.
                    let Some(Req::Chunk { index, .. }) = self.queue.pop_front() else {
                        return Err(ConnEnd::Unexpected("a refusal that does not match the request"));
                    };
                    dl.chunk_abandoned(index);
                    match &mut self.has {
                        Has::All => {
                            return Err(ConnEnd::BadPeer("claimed every chunk, then said it lacks one"))
                        }
                        Has::Bits(bits) if bitmap::bit(bits, index as usize) => {
                            bitmap::clear_bit(bits, index as usize);
                            dl.sched.peer_lost(index);
                        }
                        _ => {}
                    }
                    self.refill(dl, now);
                    continue;
                }
                PeerMsg::Refused { reason } => return Err(ConnEnd::Refused(reason)),
                _ => {}
            }
            self.check_head(&head.header, head.payload_len, dl)?;
            self.payload_left = head.payload_len;
        }
    }

    /// Checks that a reply fits the oldest request.
    fn check_head(&mut self, msg: &PeerMsg, payload: usize, dl: &mut Download) -> Result<(), ConnEnd> {
        // The whole bitmap's size is known from the metadata.
        let have_len = dl.meta.as_ref().map_or(0, |m| m.chunks.len().div_ceil(8));
        let fits = match (msg, self.queue.front_mut()) {
            (
                PeerMsg::MetaPiece { offset, total },
                Some(Req::Pieces {
                    kind: Pieces::Meta,
                    bytes,
                    total: want,
                }),
            )
            | (
                PeerMsg::HaveMap { offset, total },
                Some(Req::Pieces {
                    kind: Pieces::Have,
                    bytes,
                    total: want,
                }),
            ) => {
                let total = *total as usize;
                let limit = if matches!(msg, PeerMsg::MetaPiece { .. }) {
                    dl.meta_limit()
                } else {
                    have_len
                };
                let first = bytes.is_empty() && *want == 0;
                let sound = total <= limit && (matches!(msg, PeerMsg::MetaPiece { .. }) || total == have_len);
                if first && sound {
                    if matches!(msg, PeerMsg::MetaPiece { .. }) && !dl.claim_meta(self.conn, total) {
                        return Err(ConnEnd::NoRoom);
                    }
                    *want = total;
                    // One piece's worth at a time: the buffer grows only
                    // with bytes the peer actually sends.
                    bytes.reserve(total.min(BLOCK_SIZE));
                }
                total == *want && *offset as usize == bytes.len() && bytes.len() + payload <= total
            }
            (
                PeerMsg::Block { index, offset },
                Some(Req::Chunk {
                    index: want,
                    len,
                    got,
                    ..
                }),
            ) => index == want && u64::from(*offset) == *got && *got + payload as u64 <= *len,
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(ConnEnd::Unexpected("a reply that does not match the request"))
        }
    }

    /// The payload of the head request's latest frame is all in.
    fn frame_done(&mut self, dl: &mut Download, now: Instant, report: &mut Report) -> Result<(), ConnEnd> {
        let complete = match self.queue.front() {
            Some(Req::Pieces { bytes, total, .. }) => bytes.len() == *total,
            Some(Req::Chunk { len, got, .. }) => got == len,
            None => false,
        };
        if !complete {
            return Ok(());
        }
        // A whole answer is progress, however small it was.
        self.window = 0;
        self.timeout = self.full_timeout;
        self.deadline = now + self.timeout;
        report.answered = true;
        match self.queue.pop_front() {
            Some(Req::Pieces {
                kind: Pieces::Meta,
                bytes,
                ..
            }) => {
                dl.release_meta(self.conn);
                report.meta = Some(bytes);
            }
            Some(Req::Pieces {
                kind: Pieces::Have,
                bytes,
                ..
            }) => {
                self.has = Has::Bits(bytes);
                dl.sched.peer_joined(&self.has);
                for index in std::mem::take(&mut self.early_haves) {
                    self.gained(index, dl);
                }
            }
            Some(Req::Chunk { index, hasher, .. }) => {
                let hash: Hash = hasher.finalize().into();
                if Some(hash) == dl.chunk_hash(index) {
                    if dl.chunk_fetched(index) {
                        report.verified.push(index);
                    }
                } else {
                    dl.chunk_abandoned(index);
                    report.bad.push(index);
                    self.avoid.push(index);
                }
            }
            None => {}
        }
        self.refill(dl, now);
        Ok(())
    }

    /// The peer announced chunk `index`.
    fn gained(&mut self, index: u32, dl: &mut Download) {
        if let Has::Bits(bits) = &mut self.has {
            if (index as usize) < bits.len() * 8 && !bitmap::bit(bits, index as usize) {
                bitmap::set_bit(bits, index as usize);
                dl.sched.peer_gained(index);
            }
        }
    }

    /// Hands every chunk still requested back to the scheduler (the
    /// connection is ending).
    pub fn abandon(&mut self, dl: &mut Download) {
        dl.sched
            .peer_left(&std::mem::replace(&mut self.has, Has::Unknown));
        for req in self.queue.drain(..) {
            if let Req::Chunk { index, .. } = req {
                dl.chunk_abandoned(index);
            }
        }
        dl.meta_conns.retain(|c| *c != self.conn);
        dl.release_meta(self.conn);
    }
}

#[cfg(test)]
mod tests {
    //! A leecher's [`Fetch`] and a seeder's [`Serve`](crate::client::engine::native::serve::Serve)
    //! talking through in-memory pipes that block like sockets, with no
    //! network and no clock: the whole protocol, byte for byte.
    use super::*;
    use crate::client::engine::library::Library;
    use crate::client::engine::native::download::{MetaOutcome, Phase};
    use crate::client::engine::native::serve::{Files, Serve, Source};
    use crate::client::io::part_file::FsStorage;
    use crate::meta::MIN_CHUNK_SIZE;
    use crate::rand::Rng;
    use crate::testutil::{data, TempDir};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::io;
    use std::rc::Rc;

    type Pipe = Rc<RefCell<VecDeque<u8>>>;

    /// One end of a duplex pipe: reads `rx`, writes `tx` (at most `cap`
    /// bytes buffered, else WouldBlock), flipping the byte at stream
    /// offset `corrupt_at` on its way out.
    struct End {
        rx: Pipe,
        tx: Pipe,
        cap: usize,
        sent: usize,
        corrupt_at: Option<usize>,
    }

    fn pair(cap: usize, corrupt_seeder_at: Option<usize>) -> (End, End) {
        let (a, b): (Pipe, Pipe) = Default::default();
        let leecher = End {
            rx: a.clone(),
            tx: b.clone(),
            cap,
            sent: 0,
            corrupt_at: None,
        };
        let seeder = End {
            rx: b,
            tx: a,
            cap,
            sent: 0,
            corrupt_at: corrupt_seeder_at,
        };
        (leecher, seeder)
    }

    impl Read for End {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut rx = self.rx.borrow_mut();
            if rx.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(rx.len());
            for (slot, byte) in buf.iter_mut().zip(rx.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }
    }

    impl Write for End {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut tx = self.tx.borrow_mut();
            let n = buf.len().min(self.cap - tx.len());
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            for (i, &byte) in buf[..n].iter().enumerate() {
                let flip = self.corrupt_at == Some(self.sent + i);
                tx.push_back(if flip { !byte } else { byte });
            }
            self.sent += n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A shared directory holding `bytes` as `name`, fully indexed.
    fn library(dir: &TempDir, name: &str, bytes: &[u8]) -> Library {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        let (mut lib, warnings) = Library::open(dir.path(), MIN_CHUNK_SIZE).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        while lib.is_indexing() {
            lib.index_step(1 << 20);
        }
        lib
    }

    struct Peer {
        fetch: Fetch,
        serve: Serve,
        leecher: End,
        seeder: End,
        ended: Option<String>,
    }

    /// Runs every peer until the download ends or nothing moves; returns
    /// the chunks reported bad.
    fn run(dl: &mut Download, storage: &mut FsStorage, lib: &dyn Files, peers: &mut [Peer]) -> Vec<u32> {
        let now = Instant::now();
        let mut bad = Vec::new();
        let mut whole_buf = vec![0u8; 1 << 16];
        for p in peers.iter_mut() {
            p.fetch.on_connected(dl, now);
        }
        for _ in 0..100_000 {
            for p in peers.iter_mut().filter(|p| p.ended.is_none()) {
                let mut report = Report::default();
                p.fetch.refill(dl, now);
                let mut result = p.fetch.drive(&mut p.leecher, dl, now, 1 << 16, &mut report);
                // What the engine does with metadata a peer sent.
                if let Some(bytes) = report.meta.take() {
                    if let MetaOutcome::Bad(why) = dl.accept_meta(&bytes, storage) {
                        result = Err(ConnEnd::BadPeer(why));
                    }
                }
                if let Err(e) = result {
                    p.fetch.abandon(dl);
                    p.ended = Some(e.to_string());
                }
                bad.extend(report.bad);
                if let Err(e) = p.serve.drive(&mut p.seeder, lib, 1 << 16) {
                    p.ended.get_or_insert(e.to_string());
                }
            }
            dl.advance_whole(&mut whole_buf, u64::MAX);
            if dl.is_finished() || peers.iter().all(|p| p.ended.is_some()) {
                break;
            }
        }
        bad
    }

    fn peer(key: usize, corrupt_at: Option<usize>) -> Peer {
        let (leecher, seeder) = pair(40_000, corrupt_at);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1000 + key as u16));
        Peer {
            fetch: Fetch::new(
                ConnId(key as u64),
                0,
                addr,
                Instant::now(),
                Duration::from_secs(10),
            ),
            serve: Serve::new(),
            leecher,
            seeder,
            ended: None,
        }
    }

    #[test]
    fn a_file_crosses_the_protocol_intact() {
        let (shared, downloads) = (TempDir::new("xfer-shared"), TempDir::new("xfer-dl"));
        let bytes = data(5 * MIN_CHUNK_SIZE as usize + 100, 3);
        let lib = library(&shared, "five and a bit.bin", &bytes);
        let id = lib.files().next().unwrap().id;
        let mut dl = Download::new(id, "x".into(), Rng::seeded(1), Instant::now());
        let mut peers = [peer(0, None)];
        assert!(run(&mut dl, &mut FsStorage::new(downloads.path()), &lib, &mut peers).is_empty());
        let path = downloads.path().join("five and a bit.bin");
        assert_eq!(dl.phase, Phase::Done(path.clone()));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert!(!downloads.path().join("five and a bit.bin.part").exists());
        assert_eq!(peers[0].serve.uploaded, bytes.len() as u64);
    }

    #[test]
    fn bad_bytes_are_caught_and_fetched_from_the_other_peer() {
        let (shared, downloads) = (TempDir::new("bad-shared"), TempDir::new("bad-dl"));
        let bytes = data(8 * MIN_CHUNK_SIZE as usize, 5);
        let lib = library(&shared, "f", &bytes);
        let id = lib.files().next().unwrap().id;
        let mut dl = Download::new(id, "f".into(), Rng::seeded(2), Instant::now());
        // Peer 0 spoils a byte far past the metadata, inside some chunk.
        let mut peers = [peer(0, Some(30_000)), peer(1, None)];
        let bad = run(&mut dl, &mut FsStorage::new(downloads.path()), &lib, &mut peers);
        assert_eq!(bad.len(), 1, "exactly one chunk was spoiled: {bad:?}");
        assert!(matches!(dl.phase, Phase::Done(_)), "{:?}", dl.phase);
        assert_eq!(std::fs::read(downloads.path().join("f")).unwrap(), bytes);
    }

    /// A seeder that claims every chunk (its empty bitmap reads as
    /// `HaveAll`) and then refuses each as missing.
    struct Liar<'a>(&'a Library);

    impl Files for Liar<'_> {
        fn source(&self, id: &crate::wire::FileId) -> Option<Source<'_>> {
            let real = self.0.source(id)?;
            Some(Source {
                have: Some(&[]),
                ..real
            })
        }
    }

    #[test]
    fn a_peer_that_claims_everything_and_refuses_it_is_dropped() {
        let (shared, downloads) = (TempDir::new("liar-shared"), TempDir::new("liar-dl"));
        let lib = library(&shared, "f", &data(4 * MIN_CHUNK_SIZE as usize, 7));
        let id = lib.files().next().unwrap().id;
        let mut dl = Download::new(id, "f".into(), Rng::seeded(5), Instant::now());
        let mut peers = [peer(0, None)];
        run(
            &mut dl,
            &mut FsStorage::new(downloads.path()),
            &Liar(&lib),
            &mut peers,
        );
        let why = peers[0].ended.clone().expect("the liar is still being asked");
        assert!(why.contains("claimed every chunk"), "{why}");
        assert_eq!(dl.sched.done(), 0);
    }

    #[test]
    fn a_shared_file_swapped_for_a_fifo_or_a_symlink_is_not_served() {
        for swap in ["fifo", "symlink"] {
            let (shared, downloads) = (TempDir::new("swap-shared"), TempDir::new("swap-dl"));
            let lib = library(&shared, "f", &data(4 * MIN_CHUNK_SIZE as usize, 8));
            let id = lib.files().next().unwrap().id;
            let path = shared.path().join("f");
            std::fs::remove_file(&path).unwrap();
            if swap == "fifo" {
                let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: a plain syscall with a valid C string.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            } else {
                let elsewhere = shared.path().join("secret");
                std::fs::write(&elsewhere, data(4 * MIN_CHUNK_SIZE as usize, 8)).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
            }
            let mut dl = Download::new(id, "f".into(), Rng::seeded(6), Instant::now());
            let mut peers = [peer(0, None)];
            // Opening a FIFO without O_NONBLOCK would hang right here.
            run(&mut dl, &mut FsStorage::new(downloads.path()), &lib, &mut peers);
            let why = peers[0].ended.clone().unwrap_or_default();
            assert!(why.contains("refused"), "{swap}: {why}");
            assert_eq!(dl.sched.done(), 0, "{swap}: nothing was served");
        }
    }

    #[test]
    fn metadata_that_is_not_the_file_asked_for_ends_the_connection() {
        let (shared, downloads) = (TempDir::new("meta-shared"), TempDir::new("meta-dl"));
        let lib = library(&shared, "real", &data(1000, 1));
        let real = lib.files().next().unwrap().id;
        // Ask for a file the seeder lacks: refused.
        let mut dl = Download::new([9; 32], "missing".into(), Rng::seeded(3), Instant::now());
        let mut peers = [peer(0, None)];
        run(&mut dl, &mut FsStorage::new(downloads.path()), &lib, &mut peers);
        assert!(
            peers[0].ended.as_deref().unwrap().contains("does not share"),
            "{:?}",
            peers[0].ended
        );
        // The seeder sends metadata with one byte spoiled: it does not hash
        // to the id, so it is refused and nothing is created.
        let mut dl = Download::new(real, "real".into(), Rng::seeded(4), Instant::now());
        let mut peers = [peer(0, Some(40))];
        run(&mut dl, &mut FsStorage::new(downloads.path()), &lib, &mut peers);
        let why = peers[0].ended.clone().unwrap();
        assert!(why.contains("metadata") || why.contains("protocol"), "{why}");
        assert!(dl.meta.is_none());
        assert_eq!(std::fs::read_dir(downloads.path()).unwrap().count(), 0);
    }
}
