//! A deterministic simulation of a swarm, for tests: N client
//! [`Engine`]s and the tracker's real registry (through the same
//! [`answer`] the tracker's loop uses) on an in-memory network with a fake
//! clock, per-link latency, bandwidth and datagram loss, and hostile
//! behaviours scripted per node (corrupt what it sends, stall after some
//! bytes, die at once).
//!
//! Invariants:
//! - No real clock and no real socket: time is `start + now_ms`, moved by
//!   the simulation (1 ms steps while bytes flow, else a jump to the next
//!   deadline); every random choice comes from the seed. One seed gives one
//!   trace ([`Sim::trace`]).
//! - Streams behave like non-blocking TCP: a full send buffer is
//!   `WouldBlock`, a closed writer is end-of-file once its bytes are read,
//!   a dead host is a reset.
//! - Shared files and downloads live in temporary directories (the
//!   engine's real storage), so partial seeding between downloaders runs
//!   as in the program.
//!
//! `tracker_link_tests.rs` here holds the tracker link's tests (included
//! from `client::engine::tracker_link`), which also run against the
//! tracker's real logic.

use crate::client::engine::library::Library;
use crate::client::engine::{Action, Command, ConnEnd, ConnId, Engine, EngineConfig, Event};
use crate::client::io::part_file::FsStorage;
use crate::meta::MIN_CHUNK_SIZE;
use crate::rand::Rng;
use crate::testutil::TempDir;
use crate::tracker::connid::ConnIds;
use crate::tracker::registry::{Limits, Registry};
use crate::tracker::server::{answer, Answer};
use crate::wire::tracker::encode_reply;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[cfg(test)]
mod bt_tests;
#[cfg(test)]
mod tests;

/// Bytes a connection's send buffer holds (the kernel's socket buffer).
const SEND_CAP: usize = 64 << 10;
/// Bytes on the wire and unread at the receiver, at most (TCP's window):
/// a reader that does not read stops the writer, however long the
/// simulation runs.
const RECV_CAP: usize = 64 << 10;
/// The node index of a scripted client's end (no engine behind it).
const RAW: usize = usize::MAX;
/// The port every node listens on (each node has its own address).
const PORT: u16 = 7000;

/// The network's character, for every link.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    pub latency_ms: u64,
    /// Bytes per millisecond each way on each connection.
    pub bytes_per_ms: usize,
    /// Datagrams lost, per thousand.
    pub loss_per_mille: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency_ms: 2,
            bytes_per_ms: 4000,
            loss_per_mille: 0,
        }
    }
}

/// How a node misbehaves in what it sends over TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hostile {
    /// Flip one byte in every this many it sends (from byte 4096 on, past
    /// the metadata, so it is the chunks that are wrong).
    pub corrupt_every: Option<u64>,
    /// Send this many bytes on each connection, then nothing more.
    pub stall_after: Option<u64>,
    /// Send one byte every this many milliseconds, no faster.
    pub trickle_ms: Option<u64>,
    /// Never read what arrives (ask, and let the answers pile up).
    pub deaf: bool,
}

/// One direction of a connection.
#[derive(Debug, Default)]
struct Pipe {
    /// Written, not yet on the wire.
    send: VecDeque<u8>,
    /// On the wire: (arrival time, bytes).
    line: VecDeque<(u64, Vec<u8>)>,
    /// Arrived, not yet read.
    recv: VecDeque<u8>,
    /// Bytes put on the wire so far.
    sent: u64,
    /// When the last trickled byte left.
    trickled_at: u64,
    /// The writer closed: end-of-file once everything is read.
    closed: bool,
    /// The reader is gone: writes fail.
    reader_gone: bool,
    /// The host died: reads and writes fail.
    reset: bool,
    hostile: Hostile,
}

impl Pipe {
    fn drained(&self) -> bool {
        self.send.is_empty() && self.line.is_empty()
    }

    /// Whether bytes will move without anyone acting: not when drained,
    /// when a stalled or trickling pipe's held bytes wait (a trickle moves
    /// at its own pace, see `next_wake`), or when the window is full.
    fn moving(&self) -> bool {
        let held = self.hostile.stall_after.is_some_and(|l| self.sent >= l)
            || self.hostile.trickle_ms.is_some()
            || self.recv.len() >= RECV_CAP;
        !(self.drained() || held && self.line.is_empty())
    }

    /// Moves bytes along: arrivals into `recv`, then up to `budget` bytes
    /// from `send` onto the wire. Returns (bytes arrived, bytes left send).
    fn advance(&mut self, now: u64, latency: u64, budget: usize) -> (bool, bool) {
        let mut arrived = false;
        while self.line.front().is_some_and(|(at, _)| *at <= now) {
            let (_, bytes) = self.line.pop_front().expect("checked");
            self.recv.extend(bytes);
            arrived = true;
        }
        let unread = self.recv.len() + self.line.iter().map(|(_, b)| b.len()).sum::<usize>();
        let mut n = budget.min(self.send.len()).min(RECV_CAP.saturating_sub(unread));
        if let Some(limit) = self.hostile.stall_after {
            n = n.min(limit.saturating_sub(self.sent) as usize);
        }
        if let Some(every) = self.hostile.trickle_ms {
            if n > 0 && (self.sent == 0 || now >= self.trickled_at + every) {
                n = 1;
                self.trickled_at = now;
            } else {
                n = 0;
            }
        }
        if n == 0 {
            return (arrived, false);
        }
        let mut bytes: Vec<u8> = self.send.drain(..n).collect();
        if let Some(every) = self.hostile.corrupt_every {
            for (i, b) in bytes.iter_mut().enumerate() {
                let at = self.sent + i as u64;
                if at >= 4096 && at.is_multiple_of(every) {
                    *b ^= 0x5a;
                }
            }
        }
        self.sent += n as u64;
        self.line.push_back((now + latency, bytes));
        (arrived, true)
    }
}

/// A connection between two nodes: `pipes[0]` carries a→b, `pipes[1]` b→a.
struct Link {
    ends: [(usize, ConnId); 2],
    pipes: [Pipe; 2],
}

/// One end of a link, as the engine sees it.
struct End<'a> {
    rx: &'a mut Pipe,
    tx: &'a mut Pipe,
    deaf: bool,
}

impl Read for End<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rx.reset {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        if self.rx.recv.is_empty() || self.deaf {
            if self.rx.closed && self.rx.drained() {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.rx.recv.len());
        for (slot, byte) in buf.iter_mut().zip(self.rx.recv.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for End<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tx.reset || self.tx.reader_gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(SEND_CAP - self.tx.send.len());
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.tx.send.extend(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A simulated host running one engine.
pub struct Node {
    pub engine: Engine,
    pub addr: SocketAddr,
    pub alive: bool,
    /// Everything the engine told its frontend.
    pub events: Vec<Event>,
    pub downloads: TempDir,
    /// Kept for the node's lifetime: the shared files.
    _shared: Option<TempDir>,
    again: BTreeSet<ConnId>,
    hostile: Hostile,
    /// Bytes this node put on the wire over TCP, all connections together.
    pub sent: u64,
    cfg: EngineConfig,
}

enum Pending {
    /// A datagram arriving at the tracker (from node) or at a node.
    ToTracker {
        from: usize,
        bytes: Vec<u8>,
    },
    ToNode {
        to: usize,
        bytes: Vec<u8>,
    },
    Connect {
        from: usize,
        conn: ConnId,
        addr: SocketAddr,
    },
}

/// The tracker: its real registry and connection ids.
struct TrackerHost {
    ids: ConnIds,
    registry: Registry,
    addr: SocketAddr,
}

pub struct Sim {
    start: Instant,
    pub now_ms: u64,
    net: NetConfig,
    rng: Rng,
    seed: u64,
    pub nodes: Vec<Node>,
    tracker: TrackerHost,
    links: BTreeMap<u64, Link>,
    next_link: u64,
    /// Which link and side each (node, connection) is.
    ends: BTreeMap<(usize, ConnId), (u64, usize)>,
    pending: Vec<(u64, u64, Pending)>,
    next_pending: u64,
    /// What happened, in order, for comparing runs.
    pub trace: Vec<String>,
}

impl Sim {
    pub fn new(seed: u64, net: NetConfig) -> Sim {
        let mut rng = Rng::seeded(seed);
        let tracker = TrackerHost {
            ids: ConnIds::new([seed as u8; 32], 120),
            registry: Registry::new(
                Limits {
                    max_peers: 1000,
                    max_files: 1000,
                    max_peers_per_host: 1000,
                    max_files_per_host: 1_000_000,
                    interval_secs: 30,
                },
                Rng::seeded(rng.next_u64()),
            ),
            addr: SocketAddr::from(([10, 0, 0, 254], 17380)),
        };
        Sim {
            start: Instant::now(),
            now_ms: 0,
            net,
            rng,
            seed,
            nodes: Vec::new(),
            tracker,
            links: BTreeMap::new(),
            next_link: 0,
            ends: BTreeMap::new(),
            pending: Vec::new(),
            next_pending: 0,
            trace: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.start + Duration::from_millis(self.now_ms)
    }

    /// A node sharing `files` (name, bytes); returns its index.
    pub fn add_seeder(&mut self, files: &[(&str, &[u8])], hostile: Hostile) -> usize {
        let i = self.nodes.len();
        let dir = TempDir::new(&format!("sim{}-shared{i}", self.seed));
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).expect("temp dir");
        }
        let (library, warnings) = Library::open(dir.path(), MIN_CHUNK_SIZE).expect("temp dir");
        assert!(warnings.is_empty(), "{warnings:?}");
        self.add_node(library, Some(dir), hostile)
    }

    /// A node sharing nothing.
    pub fn add_leecher(&mut self) -> usize {
        self.add_node(Library::empty(), None, Hostile::default())
    }

    fn add_node(&mut self, library: Library, shared: Option<TempDir>, hostile: Hostile) -> usize {
        let i = self.nodes.len();
        let addr = SocketAddr::from(([10, 0, (i >> 8) as u8 + 1, i as u8], PORT));
        let downloads = TempDir::new(&format!("sim{}-dl{i}", self.seed));
        let cfg = EngineConfig {
            tracker: self.tracker.addr,
            listen_addr: addr,
            username: Some(format!("node{i}")),
            seed: shared.is_some(),
            max_inbound: 64,
            idle_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(3),
            give_up_after: Some(Duration::from_secs(60)),
            rng_seed: self.rng.next_u64(),
        };
        let storage = Box::new(FsStorage::new(downloads.path()));
        let engine = Engine::new(cfg.clone(), library, storage, self.now());
        self.nodes.push(Node {
            engine,
            addr,
            alive: true,
            events: Vec::new(),
            downloads,
            _shared: shared,
            again: BTreeSet::new(),
            hostile,
            sent: 0,
            cfg,
        });
        i
    }

    /// A node that crashed ([`Sim::kill`]) starts again: a new engine on
    /// the same downloads directory, sharing nothing, its events cleared.
    pub fn restart(&mut self, node: usize) {
        if self.nodes[node].alive {
            self.kill(node);
        }
        self.trace.push(format!("{} n{node} restarted", self.now_ms));
        let mut cfg = self.nodes[node].cfg.clone();
        cfg.rng_seed = self.rng.next_u64();
        let storage = Box::new(FsStorage::new(self.nodes[node].downloads.path()));
        let n = &mut self.nodes[node];
        n.engine = Engine::new(
            cfg,
            Library::empty(),
            storage,
            self.start + Duration::from_millis(self.now_ms),
        );
        n.alive = true;
        n.events.clear();
        n.again.clear();
    }

    pub fn command(&mut self, node: usize, command: Command) {
        let now = self.now();
        self.nodes[node].engine.command(command, now);
        self.take_actions(node);
    }

    /// The node dies at once: its connections reset, it sends nothing more.
    pub fn kill(&mut self, node: usize) {
        self.trace.push(format!("{} n{node} killed", self.now_ms));
        self.nodes[node].alive = false;
        for link in self.links.values_mut() {
            if link.ends.iter().any(|(n, _)| *n == node) {
                for p in &mut link.pipes {
                    p.reset = true;
                    p.send.clear();
                    p.line.clear();
                    p.recv.clear();
                }
            }
        }
        self.ends.retain(|(n, _), _| *n != node);
    }

    /// A scripted client, not a node: connects from `from` to node
    /// `target`, sends `bytes`, and never reads. Returns the target's id
    /// for the connection (`None`: refused).
    pub fn add_raw_client(&mut self, target: usize, from: SocketAddr, bytes: Vec<u8>) -> Option<ConnId> {
        let now = self.now();
        let sid = self.nodes[target].engine.on_inbound(from, now)?;
        self.next_link += 1;
        let mut link = Link {
            ends: [(RAW, ConnId(0)), (target, sid)],
            pipes: [Pipe::default(), Pipe::default()],
        };
        link.pipes[0].send.extend(bytes);
        self.links.insert(self.next_link, link);
        self.ends.insert((target, sid), (self.next_link, 1));
        self.take_actions(target);
        Some(sid)
    }

    /// Path of a file node `node` shares from its shared directory.
    pub fn shared_path(&self, node: usize, name: &str) -> Option<PathBuf> {
        Some(self.nodes[node]._shared.as_ref()?.path().join(name))
    }

    /// Path of a finished download of `node`.
    pub fn downloaded(&self, node: usize, name: &str) -> PathBuf {
        self.nodes[node].downloads.path().join(name)
    }

    fn later(&mut self, delay: u64, what: Pending) {
        self.next_pending += 1;
        self.pending.push((self.now_ms + delay, self.next_pending, what));
    }

    fn lost(&mut self) -> bool {
        self.net.loss_per_mille > 0 && (self.rng.next_u64() % 1000) < self.net.loss_per_mille
    }

    /// Runs until `done` holds (true) or `limit_ms` of simulated time
    /// passed (false).
    pub fn run_until(&mut self, limit_ms: u64, done: impl Fn(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now_ms > limit_ms {
                return false;
            }
            let busy = self.step();
            if done(self) {
                return true;
            }
            self.now_ms = if busy {
                self.now_ms + 1
            } else {
                self.next_wake().max(self.now_ms + 1)
            };
        }
    }

    /// One instant: arrivals, bytes on the wire, every engine's turn.
    /// Returns whether bytes are still moving.
    fn step(&mut self) -> bool {
        // Datagrams and connects due now, in the order they were sent.
        let now_ms = self.now_ms;
        let mut due: Vec<(u64, u64, Pending)> = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 <= now_ms {
                due.push(self.pending.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|(at, n, _)| (*at, *n));
        for (_, _, what) in due {
            self.arrive(what);
        }
        // Bytes along every link.
        let mut ready: BTreeSet<(usize, ConnId)> = BTreeSet::new();
        let mut busy = false;
        for link in self.links.values_mut() {
            for (dir, pipe) in link.pipes.iter_mut().enumerate() {
                let before = pipe.sent;
                let (arrived, moved) = pipe.advance(now_ms, self.net.latency_ms, self.net.bytes_per_ms);
                if let Some(node) = self.nodes.get_mut(link.ends[dir].0) {
                    node.sent += pipe.sent - before;
                }
                // A stalled pipe's held bytes will never move, a trickling
                // one's at its own pace (`next_wake`): not busy.
                busy |= pipe.moving();
                if arrived || (pipe.closed && pipe.drained()) || pipe.reset {
                    ready.insert(link.ends[1 - dir]);
                }
                if moved {
                    // Room in the send buffer: the writer may go on.
                    ready.insert(link.ends[dir]);
                }
            }
        }
        for n in 0..self.nodes.len() {
            if !self.nodes[n].alive {
                continue;
            }
            let again = std::mem::take(&mut self.nodes[n].again);
            let conns: BTreeSet<ConnId> = ready
                .iter()
                .filter(|(node, _)| *node == n)
                .map(|(_, c)| *c)
                .chain(again)
                .collect();
            for conn in conns {
                self.drive(n, conn);
            }
            let now = self.now();
            if self.nodes[n].engine.poll_timeout(now) <= now {
                self.nodes[n].engine.handle_timeout(now);
            }
            self.take_actions(n);
            busy |= !self.nodes[n].again.is_empty();
        }
        // Bytes written during this turn move on the next.
        busy || self.links.values().any(|l| l.pipes.iter().any(Pipe::moving))
    }

    /// When something next happens with no bytes moving.
    fn next_wake(&self) -> u64 {
        let now = self.now();
        let mut wake = self.pending.iter().map(|(at, ..)| *at).min().unwrap_or(u64::MAX);
        for node in self.nodes.iter().filter(|n| n.alive) {
            let at = node
                .engine
                .poll_timeout(now)
                .saturating_duration_since(self.start);
            wake = wake.min(at.as_millis() as u64);
        }
        for link in self.links.values() {
            for pipe in &link.pipes {
                if let Some((at, _)) = pipe.line.front() {
                    wake = wake.min(*at);
                }
                if let (Some(every), false) = (pipe.hostile.trickle_ms, pipe.send.is_empty()) {
                    wake = wake.min(pipe.trickled_at + every);
                }
            }
        }
        wake
    }

    fn drive(&mut self, n: usize, conn: ConnId) {
        let Some(&(link_id, side)) = self.ends.get(&(n, conn)) else {
            return;
        };
        let now = self.now();
        let link = self.links.get_mut(&link_id).expect("ends name live links");
        let [a, b] = &mut link.pipes;
        let (tx, rx) = if side == 0 { (a, b) } else { (b, a) };
        let deaf = self.nodes[n].hostile.deaf;
        self.nodes[n].engine.on_io(conn, &mut End { rx, tx, deaf }, now);
    }

    fn arrive(&mut self, what: Pending) {
        let now = self.now();
        match what {
            Pending::ToTracker { from, bytes } => {
                let secs = (self.now_ms / 1000) as u32 + 1;
                let addr = self.nodes[from].addr;
                let t = &mut self.tracker;
                let (reply, unproven) = match answer(&t.ids, &mut t.registry, &bytes, addr, secs) {
                    Answer::Reply(r) => (r, false),
                    Answer::Unproven(r) => (r, true),
                    Answer::Drop(_) => return,
                };
                let mut out = Vec::new();
                if encode_reply(&reply, &mut out).is_err() || (unproven && out.len() > bytes.len()) {
                    return;
                }
                if !self.lost() {
                    self.later(self.net.latency_ms, Pending::ToNode { to: from, bytes: out });
                }
            }
            Pending::ToNode { to, bytes } => {
                if self.nodes[to].alive {
                    self.nodes[to].engine.on_datagram(&bytes, now);
                    self.take_actions(to);
                }
            }
            Pending::Connect { from, conn, addr } => {
                if !self.nodes[from].alive {
                    return;
                }
                let target = self.nodes.iter().position(|n| n.addr == addr && n.alive);
                let accepted = target.and_then(|t| {
                    let from_addr = SocketAddr::new(self.nodes[from].addr.ip(), 40000 + conn.0 as u16);
                    self.nodes[t]
                        .engine
                        .on_inbound(from_addr, now)
                        .map(|sid| (t, sid))
                });
                let Some((t, sid)) = accepted else {
                    self.trace.push(format!("{} n{from} refused {addr}", self.now_ms));
                    let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
                    self.nodes[from].engine.on_closed(conn, ConnEnd::Io(refused), now);
                    self.take_actions(from);
                    return;
                };
                self.next_link += 1;
                let mut link = Link {
                    ends: [(from, conn), (t, sid)],
                    pipes: [Pipe::default(), Pipe::default()],
                };
                link.pipes[0].hostile = self.nodes[from].hostile;
                link.pipes[1].hostile = self.nodes[t].hostile;
                self.links.insert(self.next_link, link);
                self.ends.insert((from, conn), (self.next_link, 0));
                self.ends.insert((t, sid), (self.next_link, 1));
                self.trace.push(format!("{} n{from} connected n{t}", self.now_ms));
                self.nodes[from].engine.on_connected(conn, now);
                self.take_actions(from);
                self.take_actions(t);
            }
        }
    }

    /// Carries out what node `n`'s engine asked for.
    fn take_actions(&mut self, n: usize) {
        while let Some(action) = self.nodes[n].engine.poll_action() {
            match action {
                Action::Connect { conn, addr } => {
                    self.later(self.net.latency_ms, Pending::Connect { from: n, conn, addr });
                }
                Action::Drive(conn) => {
                    self.nodes[n].again.insert(conn);
                }
                Action::Close(conn) => {
                    self.trace.push(format!("{} n{n} close c{}", self.now_ms, conn.0));
                    self.nodes[n].again.remove(&conn);
                    if let Some((link_id, side)) = self.ends.remove(&(n, conn)) {
                        let link = self.links.get_mut(&link_id).expect("ends name live links");
                        link.pipes[side].closed = true;
                        link.pipes[1 - side].reader_gone = true;
                        if !self.ends.contains_key(&link.ends[1 - side]) {
                            self.links.remove(&link_id);
                        }
                    }
                }
                Action::Notify(event) => {
                    self.trace
                        .push(format!("{} n{n} {}", self.now_ms, summary(&event)));
                    self.nodes[n].events.push(event);
                }
                Action::Exit(code) => self.trace.push(format!("{} n{n} exit {code}", self.now_ms)),
            }
        }
        let now = self.now();
        let mut out = Vec::new();
        while self.nodes[n].alive && self.nodes[n].engine.poll_transmit(now, &mut out) {
            let bytes = std::mem::take(&mut out);
            if !self.lost() {
                self.later(self.net.latency_ms, Pending::ToTracker { from: n, bytes });
            }
        }
    }
}

/// An event in one line, without paths (they differ between runs).
fn summary(event: &Event) -> String {
    match event {
        Event::DownloadDone { meta, .. } => format!("done {}", meta.name),
        Event::DownloadFailed { label, why } => format!("failed {label}: {why}"),
        Event::FileList(files) => format!("file list of {}", files.len()),
        Event::PeerList(peers) => format!("peer list of {}", peers.len()),
        e => format!("{e:?}"),
    }
}
