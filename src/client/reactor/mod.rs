//! The client's event loop: one thread, one mio `Poll` that owns every
//! socket and file: the UDP link to the tracker, the TCP listener that
//! serves our files, the SIGINT/SIGTERM source, and every peer connection,
//! kept in a `Slab` and addressed by `Token(FIRST_CONN + key)`.
//!
//! Invariants:
//! - Nothing blocks the loop: sockets are non-blocking, connections are
//!   driven with a byte budget per turn (a connection that used its budget
//!   is driven again after the batch, since edge-triggered readiness will
//!   not repeat), and hashing (the shared library, the whole-file check)
//!   runs in slices between events.
//! - Nothing leaves the slab during an event batch: closes are queued and
//!   applied after it, deregistering before removing, so an event never
//!   reaches a reused key's new connection (a connection accepted during a
//!   batch takes a key that no event of that batch can name).
//! - Every timer (tracker retries and keep-alives, request and idle
//!   timeouts, peer re-queries) is a deadline that bounds the poll timeout.
//! - Connections register READABLE | WRITABLE once: with edge-triggered
//!   readiness a writable event comes only when buffer space frees up, so
//!   keeping it costs nothing and saves a reregister per state change.
//!
//! This file holds the loop and what a frontend may read; `conns` drives
//! peer connections, `tracker` the tracker link, `transfers` downloads,
//! shares and the periodic upkeep.

use super::download::{hex, Download, Phase, Resumed, MAX_STRIKES};
use super::fetch::{Fetch, FetchEnd, Report};
use super::frontend::{Command, Cx, Event, Frontend};
use super::library::Library;
use super::options::{Mode, Options};
use super::resume;
use super::serve::{Close, Files, Serve, Source};
use super::tracker_link::{LinkEvent, Query, TrackerLink};
use super::Flow;
use crate::cli::EXIT_FAILURE;
use crate::meta::FileMeta;
use crate::names;
use crate::rand::Rng;
use crate::wire::peer::Refusal;
use crate::wire::tracker::{FileEntry, Role};
use crate::wire::{FileId, MAX_DATAGRAM};
use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod conns;
mod tracker;
mod transfers;

const TRACKER: Token = Token(0);
const LISTENER: Token = Token(1);
const SIGNALS: Token = Token(2);
const STDIN: Token = Token(3);
/// Tokens below this are fixed sources; connections come after.
const FIRST_CONN: usize = 16;

fn conn_token(key: usize) -> Token {
    Token(FIRST_CONN + key)
}

fn conn_key(token: Token) -> Option<usize> {
    token.0.checked_sub(FIRST_CONN)
}

/// Bytes a connection may move in one turn before others get theirs.
const TURN_BUDGET: usize = 4 << 20;
/// Bytes of the shared library hashed per loop turn.
const INDEX_BUDGET: u64 = 8 << 20;
/// Bytes of a download hashed for its whole-file check per loop turn.
const WHOLE_BUDGET: u64 = 16 << 20;
/// Most connections one download opens.
const MAX_CONNS_PER_DOWNLOAD: usize = 16;
/// Most downloads at once.
pub const MAX_DOWNLOADS: usize = 16;
/// How often peer timeouts, re-queries and new connections are looked at.
const TICK: Duration = Duration::from_millis(250);
/// How long to wait for the tracker to acknowledge a disconnect.
const GOODBYE_WAIT: Duration = Duration::from_secs(3);
/// Peer re-query period while a download has peers, and while it has none.
/// Other downloaders of the same file appear at the tracker once they have
/// its metadata, so the first re-query comes soon after ours
/// ([`REQUERY_AFTER_META`]).
const REQUERY_BUSY: Duration = Duration::from_secs(5);
const REQUERY_AFTER_META: Duration = Duration::from_millis(300);
const REQUERY_IDLE: Duration = Duration::from_secs(2);
/// How often a download records its verified chunks in its sidecar (each
/// time syncing the `.part` file's data first).
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// A download with no peer for this long says it is waiting.
const WAITING_AFTER: Duration = Duration::from_secs(3);

struct Conn {
    stream: TcpStream,
    kind: Kind,
    last_active: Instant,
}

enum Kind {
    Serve(Serve),
    Fetch(Fetch),
}

/// Why a connection is being closed, for its one log line.
enum Ending {
    Serve(Close),
    Fetch(FetchEnd),
    Idle,
    /// We are leaving the network.
    Leaving,
}

/// The client engine, bound and ready to [`run`](Client::run).
pub struct Client {
    opts: Options,
    poll: Poll,
    udp: UdpSocket,
    listener: TcpListener,
    listen_addr: SocketAddr,
    signals: Signals,
    link: TrackerLink,
    library: Library,
    conns: Slab<Conn>,
    downloads: Slab<Download>,
    inbound: usize,
    /// Connections to drive again after this batch.
    again: Vec<usize>,
    closing: Vec<(usize, Ending)>,
    link_events: Vec<LinkEvent>,
    /// Events for the frontend, delivered after each loop phase.
    events: Vec<Event>,
    udp_buf: Vec<u8>,
    whole_buf: Vec<u8>,
    next_tick: Instant,
    /// Files sent to the tracker and not yet acknowledged.
    announce_pending: bool,
    /// `Event::Ready` was sent and nothing has changed since.
    ready_told: bool,
    /// Bytes of chunks served per shared file.
    uploaded: HashMap<FileId, u64>,
    /// False until the frontend gives a username (first run of the
    /// interactive client): the tracker hears nothing before that.
    joined: bool,
    rng: Rng,
    /// Exit code and deadline once shutting down.
    exit: Option<(u8, Instant)>,
    /// A refused inbound connection was logged (once per burst).
    refused_logged: bool,
}

/// A download as the frontend sees it.
#[derive(Debug, Clone)]
pub struct DownloadView {
    pub id: FileId,
    /// The file's name once known (escaped), else what was asked for.
    pub name: String,
    pub done: u64,
    /// Of `done`, the bytes fetched by this run (not found on disk).
    pub fetched: u64,
    /// 0 until the metadata is known.
    pub total: u64,
    /// The metadata is in (until then `total` means nothing).
    pub has_meta: bool,
    pub peers: usize,
    pub started: Instant,
}

/// A shared file as the frontend sees it.
#[derive(Debug, Clone)]
pub struct SharedView {
    pub id: FileId,
    pub name: String,
    pub size: u64,
    pub chunks: usize,
    pub sha256: crate::meta::Hash,
    /// Peers fetching from it right now.
    pub leechers: usize,
    pub uploaded: u64,
}

impl Client {
    /// Binds the sockets and opens the shared library (when seeding: in
    /// the interactive client, or with `--seed`).
    pub fn bind(opts: Options) -> Result<Client, String> {
        let seed = match &opts.mode {
            Mode::Interactive => true,
            Mode::Headless { seed, .. } => *seed,
        };
        let io = |what: &str, e: io::Error| format!("{what}: {e}");
        let poll = Poll::new().map_err(|e| io("cannot create the event loop", e))?;
        let any: SocketAddr = if opts.tracker.is_ipv6() {
            "[::]:0".parse().expect("literal address")
        } else {
            "0.0.0.0:0".parse().expect("literal address")
        };
        let mut udp = UdpSocket::bind(any).map_err(|e| io("cannot open a UDP socket", e))?;
        let mut listener = TcpListener::bind(opts.listen)
            .map_err(|e| io(&format!("cannot listen on tcp {}", opts.listen), e))?;
        let listen_addr = listener.local_addr().map_err(|e| io("listener", e))?;
        let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| io("signals", e))?;
        let r = poll.registry();
        r.register(&mut udp, TRACKER, Interest::READABLE)
            .and_then(|()| r.register(&mut listener, LISTENER, Interest::READABLE))
            .and_then(|()| r.register(&mut signals, SIGNALS, Interest::READABLE))
            .map_err(|e| io("cannot register with the event loop", e))?;

        let (library, warnings) = if seed {
            Library::open(&opts.shared_dir, opts.chunk_size)
                .map_err(|e| format!("cannot share {}: {e}", opts.shared_dir.display()))?
        } else {
            (Library::empty(), Vec::new())
        };
        let mut events = Vec::new();
        for w in warnings {
            warn!("{w}");
            events.push(Event::Warning(w));
        }
        let mut rng = Rng::from_entropy();
        // Headless clients without a name get one; the interactive client
        // asks the user first and joins with Command::Join.
        let joined = opts.username.is_some() || opts.mode != Mode::Interactive;
        let username = opts
            .username
            .clone()
            .unwrap_or_else(|| format!("peer-{:04x}", rng.next_u64() & 0xffff));
        let role = if seed { Role::Seeder } else { Role::Leecher };
        let now = Instant::now();
        let link = TrackerLink::new(
            username,
            listen_addr.port(),
            role,
            Rng::seeded(rng.next_u64()),
            now,
        );
        Ok(Client {
            opts,
            poll,
            udp,
            listener,
            listen_addr,
            signals,
            link,
            library,
            conns: Slab::new(),
            downloads: Slab::new(),
            inbound: 0,
            again: Vec::new(),
            closing: Vec::new(),
            link_events: Vec::new(),
            events,
            udp_buf: vec![0; MAX_DATAGRAM + 1],
            whole_buf: vec![0; 256 << 10],
            next_tick: now,
            announce_pending: false,
            ready_told: false,
            uploaded: HashMap::new(),
            joined,
            rng,
            exit: None,
            refused_logged: false,
        })
    }

    // ----- what a frontend may read -----

    /// The TCP address peers reach us on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn tracker(&self) -> SocketAddr {
        self.opts.tracker
    }

    /// Our name on the network (a placeholder until joined).
    pub fn username(&self) -> &str {
        self.link.username()
    }

    /// Shared files still waiting to be indexed, and their bytes.
    pub fn indexing(&self) -> (usize, u64) {
        self.library.pending()
    }

    /// Files shared (ready to serve).
    pub fn shared_count(&self) -> usize {
        self.library.len()
    }

    /// Whether indexing is done and the tracker knows every shared file.
    pub fn is_ready(&self) -> bool {
        self.joined && self.link.is_registered() && !self.library.is_indexing() && !self.announce_pending
    }

    /// The downloads in progress, oldest first.
    pub fn downloads(&self) -> Vec<DownloadView> {
        self.downloads
            .iter()
            .map(|(_, d)| DownloadView {
                id: d.id,
                name: d.display_name(),
                done: d.verified_bytes,
                fetched: d.verified_bytes - d.resumed_bytes,
                total: d.meta.as_ref().map_or(0, |m| m.size),
                has_meta: d.meta.is_some(),
                peers: d.peers.iter().filter(|p| p.conn.is_some()).count(),
                started: d.started,
            })
            .collect()
    }

    /// The shared files, by name, with who is fetching them now.
    pub fn shared(&self) -> Vec<SharedView> {
        self.library
            .files()
            .map(|f| SharedView {
                id: f.id,
                name: f.meta.name.clone(),
                size: f.meta.size,
                chunks: f.meta.chunks.len(),
                sha256: f.meta.sha256,
                leechers: self
                    .conns
                    .iter()
                    .filter(
                        |(_, c)| matches!(&c.kind, Kind::Serve(s) if s.file == Some(f.id) && !s.is_idle()),
                    )
                    .count(),
                uploaded: self.uploaded.get(&f.id).copied().unwrap_or(0),
            })
            .collect()
    }

    // ----- the loop -----

    /// Runs until the frontend quits; returns the exit code (0 success,
    /// 1 failure).
    pub fn run(&mut self, ui: &mut dyn Frontend) -> Result<u8, String> {
        let mut events = Events::with_capacity(256);
        let mut stdin_open = ui.wants_stdin();
        if stdin_open {
            let fd = std::io::stdin().as_raw_fd();
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), STDIN, Interest::READABLE)
                .map_err(|e| format!("cannot watch the keyboard: {e}"))?;
        }
        let mut commands = Vec::new();
        ui.start(
            &Cx {
                now: Instant::now(),
                client: self,
            },
            &mut commands,
        );
        self.apply_commands(&mut commands, Instant::now());
        let result = loop {
            let now = Instant::now();
            if let Some((code, deadline)) = self.exit {
                if now >= deadline {
                    // Every connection ends with its one log line.
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    self.closing
                        .extend(keys.into_iter().map(|k| (k, Ending::Leaving)));
                    self.apply_closes(now);
                    break Ok(code);
                }
            }
            let mut timeout = self.timeout(now);
            if let Some(d) = ui.deadline() {
                timeout = timeout.min(d.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break Err(format!("event loop: {e}"));
                }
            }
            let now = Instant::now();
            let mut input = false;
            for event in events.iter() {
                match event.token() {
                    TRACKER => self.read_tracker(now),
                    LISTENER => self.accept(now),
                    SIGNALS => {
                        if self.signals.pending().next().is_some() {
                            info!("signal received");
                            self.events.push(Event::Signal);
                        }
                    }
                    STDIN => input = true,
                    token => {
                        if let Some(key) = conn_key(token) {
                            self.drive(key, now);
                        }
                    }
                }
            }
            if input && stdin_open {
                stdin_open = self.read_stdin(ui, now);
            }
            for key in std::mem::take(&mut self.again) {
                self.drive(key, now);
            }
            self.apply_closes(now);
            if self.joined {
                self.link.handle_timeout(now, &mut self.link_events);
            }
            self.handle_link_events(now);
            if now >= self.next_tick {
                self.next_tick = now + TICK;
                self.tick(now);
                self.apply_closes(now);
            }
            self.step_library(now);
            self.step_downloads(now);
            self.apply_closes(now);
            self.handle_link_events(now);
            if !self.ready_told && self.is_ready() {
                self.ready_told = true;
                self.events.push(Event::Ready);
            }
            if ui.deadline().is_some_and(|d| d <= now) {
                ui.on_timeout(&Cx { now, client: self }, &mut commands);
            }
            for event in std::mem::take(&mut self.events) {
                ui.on_event(event, &Cx { now, client: self }, &mut commands);
            }
            self.apply_commands(&mut commands, now);
            self.flush_tracker();
        };
        ui.stop(*result.as_ref().unwrap_or(&EXIT_FAILURE));
        result
    }

    /// Reads what stdin has (it is non-blocking) into the frontend.
    /// Returns false once stdin is closed or failing (it is then dropped
    /// from the poll).
    fn read_stdin(&mut self, ui: &mut dyn Frontend, now: Instant) -> bool {
        let mut commands = Vec::new();
        let mut buf = [0u8; 1024];
        let mut open = true;
        loop {
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => {
                    ui.on_input(&[], &Cx { now, client: self }, &mut commands);
                    open = false;
                    break;
                }
                Ok(n) => ui.on_input(&buf[..n], &Cx { now, client: self }, &mut commands),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("reading the keyboard: {e}");
                    open = false;
                    break;
                }
            }
        }
        if !open {
            let fd = std::io::stdin().as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        self.apply_commands(&mut commands, now);
        open
    }

    fn apply_commands(&mut self, commands: &mut Vec<Command>, now: Instant) {
        for command in commands.drain(..) {
            match command {
                Command::ListPeers => self.query(Query::ListPeers, now),
                Command::ListFiles => self.query(Query::ListFiles, now),
                Command::Download { id, label } => self.start_download(id, label, now),
                Command::Share { meta, path } => self.share(meta, path, now),
                Command::ChangeUsername(name) => self.link.change_username(name, now),
                Command::Join(name) => self.join(name, now),
                Command::Quit { code } => self.quit(code, now),
            }
        }
    }

    fn query(&mut self, q: Query, now: Instant) {
        if let Err(e) = self.link.query(q, now) {
            self.events.push(Event::TrackerFailed {
                what: "query",
                error: e,
            });
        }
    }

    /// The poll timeout: the earliest deadline, or zero with work pending.
    fn timeout(&self, now: Instant) -> Duration {
        let busy = !self.again.is_empty()
            || !self.events.is_empty()
            || self.library.is_indexing()
            || self
                .downloads
                .iter()
                .any(|(_, d)| matches!(d.phase, Phase::Checking | Phase::Recheck));
        if busy {
            return Duration::ZERO;
        }
        let mut deadline = self.next_tick;
        if let Some(d) = self.link.poll_deadline() {
            deadline = deadline.min(d);
        }
        if let Some((_, d)) = self.exit {
            deadline = deadline.min(d);
        }
        deadline.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_keys_and_back() {
        assert_eq!(conn_key(conn_token(5)), Some(5));
        assert_eq!(conn_key(SIGNALS), None);
        assert_eq!(conn_key(STDIN), None);
    }
}
