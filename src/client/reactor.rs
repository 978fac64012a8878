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
    /// The file's name once known (escaped), else what was asked for.
    pub name: String,
    pub done: u64,
    /// Of `done`, the bytes fetched by this run (not found on disk).
    pub fetched: u64,
    /// 0 until the metadata is known.
    pub total: u64,
    pub peers: usize,
    pub started: Instant,
}

/// A shared file as the frontend sees it.
#[derive(Debug, Clone)]
pub struct SharedView {
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

    /// Whether the tracker has registered us (and not forgotten us).
    pub fn is_registered(&self) -> bool {
        self.joined && self.link.is_registered()
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

    pub fn is_indexing(&self) -> bool {
        self.library.is_indexing()
    }

    /// The downloads in progress, oldest first.
    pub fn downloads(&self) -> Vec<DownloadView> {
        self.downloads
            .iter()
            .map(|(_, d)| DownloadView {
                name: d.display_name(),
                done: d.verified_bytes,
                fetched: d.verified_bytes - d.resumed_bytes,
                total: d.meta.as_ref().map_or(0, |m| m.size),
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

    // ----- tracker -----

    fn read_tracker(&mut self, now: Instant) {
        loop {
            match self.udp.recv_from(&mut self.udp_buf) {
                Ok((n, from)) => {
                    // Only the tracker's datagrams reach the link.
                    if from == self.opts.tracker {
                        self.link
                            .handle_datagram(&self.udp_buf[..n], now, &mut self.link_events);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ICMP errors (tracker down) surface here; the link's
                    // retries cover them.
                    debug!("tracker socket: {e}");
                    break;
                }
            }
        }
    }

    fn flush_tracker(&mut self) {
        if !self.joined {
            return;
        }
        let now = Instant::now();
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        loop {
            out.clear();
            if !self.link.poll_transmit(now, &mut out) {
                break;
            }
            // A datagram the kernel will not take now is lost like any
            // other; the link retries.
            if let Err(e) = self.udp.send_to(&out, self.opts.tracker) {
                debug!("send to tracker: {e}");
            }
        }
    }

    fn handle_link_events(&mut self, now: Instant) {
        for event in std::mem::take(&mut self.link_events) {
            match event {
                LinkEvent::Registered { interval } => {
                    info!(
                        "registered with the tracker {} as {} (keep-alive {} s)",
                        self.opts.tracker,
                        names::escape(self.link.username()),
                        interval.as_secs()
                    );
                    if !self.library.is_empty() {
                        // The link re-announces its set by itself after a
                        // re-registration; this covers files indexed
                        // before the first one.
                        self.link.announce(self.library.entries(), now);
                        self.announce_pending = true;
                    }
                }
                LinkEvent::Announced { files } => {
                    debug!("tracker acknowledged {files} files");
                    self.announce_pending = false;
                }
                LinkEvent::Peers { id, peers } => {
                    for (_, d) in self.downloads.iter_mut().filter(|(_, d)| d.id == id) {
                        d.add_peers(&peers, now);
                    }
                    self.connect_peers(now);
                }
                LinkEvent::FileList(files) => self.events.push(Event::FileList(files)),
                LinkEvent::PeerList(peers) => self.events.push(Event::PeerList(peers)),
                LinkEvent::UsernameChanged(name) => {
                    info!("username is now {}", names::escape(&name));
                    self.events.push(Event::UsernameChanged(name));
                }
                LinkEvent::Failed { what, error } => {
                    warn!("tracker {what}: {error}");
                    if what == "announce" {
                        self.announce_pending = false;
                    }
                    self.events.push(Event::TrackerFailed { what, error });
                }
                LinkEvent::Unreachable => {
                    warn!("the tracker {} does not answer", self.opts.tracker);
                    self.events.push(Event::TrackerUnreachable);
                }
                LinkEvent::Reachable => {
                    info!("the tracker answers again");
                    self.events.push(Event::TrackerReachable);
                }
                LinkEvent::Disconnected => {
                    if let Some((code, _)) = self.exit {
                        self.exit = Some((code, now));
                    }
                }
            }
        }
    }

    // ----- commands -----

    fn start_download(&mut self, id: FileId, label: String, now: Instant) {
        if self.downloads.iter().any(|(_, d)| d.id == id) {
            return;
        }
        if self.downloads.len() >= MAX_DOWNLOADS {
            self.events.push(Event::DownloadFailed {
                label,
                why: format!("at most {MAX_DOWNLOADS} downloads at once"),
            });
            return;
        }
        info!("download started: {label} (id {})", hex(&id));
        let mut d = Download::new(id, label, &self.opts.download_dir, now);
        d.next_query = now + REQUERY_IDLE;
        let resumed = d.resume();
        if let Some(r) = resumed {
            self.resumed(&d, r);
        }
        let dk = self.downloads.insert(d);
        if resumed.is_some() {
            self.announce_partial(dk, now);
        }
        if let Err(e) = self.link.query(Query::GetPeers(id), now) {
            debug!("peer query postponed: {e}");
        }
    }

    fn resumed(&mut self, d: &Download, r: Resumed) {
        let how = if r.rechecked {
            "re-checked the .part file"
        } else {
            "resuming"
        };
        info!(
            "{how} for {}: {} of {} chunks already verified",
            d.display_name(),
            r.verified,
            r.total
        );
        self.events.push(Event::Resumed {
            name: d.display_name(),
            verified: r.verified,
            total: r.total,
            rechecked: r.rechecked,
        });
    }

    /// Records a download's verified chunks in its sidecar; a failure is
    /// logged (the next run then re-checks the `.part` file instead).
    fn save(d: &mut Download, now: Instant) {
        if let Err(e) = d.save(now) {
            warn!("cannot record the progress of {}: {e}", d.display_name());
        }
    }

    /// Downloads in the downloads directory that an earlier run left
    /// unfinished (not the ones running now): id, name (escaped), chunks
    /// verified, chunks in all.
    pub fn unfinished(&self) -> Vec<(FileId, String, usize, usize)> {
        resume::scan(&self.opts.download_dir)
            .into_iter()
            .map(|(_, st)| {
                (
                    st.meta.id(),
                    names::escape(&st.meta.name),
                    st.count(),
                    st.meta.chunks.len(),
                )
            })
            .filter(|(id, ..)| !self.downloads.iter().any(|(_, d)| d.id == *id))
            .collect()
    }

    /// A download ended: report it. Its partial entry at the tracker is
    /// withdrawn (a share announces the complete file).
    fn download_ended(&mut self, key: usize, now: Instant) {
        let mut d = self.downloads.remove(key);
        if d.meta.is_some() {
            self.link.withdraw(vec![d.id], now);
        }
        match std::mem::replace(&mut d.phase, Phase::Meta) {
            Phase::Done(path) => {
                let secs = now.duration_since(d.started).as_secs_f64().max(1e-6);
                let size = d.meta.as_ref().map_or(0, |m| m.size);
                info!(
                    "download verified: {} ({} bytes in {:.2} s, {:.1} MB/s), sha256 {}",
                    d.display_name(),
                    size,
                    secs,
                    size as f64 / secs / 1e6,
                    d.sha256_hex()
                );
                if let Some(meta) = d.meta {
                    self.events.push(Event::DownloadDone { meta, path });
                }
            }
            Phase::Failed(why) => {
                Self::save(&mut d, now);
                warn!("download failed: {}: {why}", d.display_name());
                self.events.push(Event::DownloadFailed {
                    label: d.display_name(),
                    why,
                });
            }
            _ => {}
        }
    }

    /// Shares a verified download without copying its bytes: hard-linked
    /// into the shared directory when that works (same file system, name
    /// free), else shared from where it is.
    fn share(&mut self, meta: FileMeta, path: PathBuf, now: Instant) {
        let name = names::escape(&meta.name);
        let linked = self.opts.shared_dir.join(&meta.name);
        let path = match std::fs::create_dir_all(&self.opts.shared_dir)
            .and_then(|()| std::fs::hard_link(&path, &linked))
        {
            Ok(()) => linked,
            Err(e) => {
                debug!("sharing {name} from {} ({e})", path.display());
                path
            }
        };
        let entry = FileEntry {
            id: meta.id(),
            name: meta.name.clone(),
            size: meta.size,
            complete: true,
        };
        match self.library.add_verified(meta, path) {
            Ok(_) => {
                info!("sharing {name}");
                self.link.set_role(Role::Seeder, now);
                self.link.announce(vec![entry], now);
                self.announce_pending = true;
                self.ready_told = false;
                self.events.push(Event::Shared { name });
            }
            Err(e) => {
                warn!("cannot share {name}: {e}");
                self.events
                    .push(Event::Warning(format!("cannot share {name}: {e}")));
            }
        }
    }

    /// Registers with the tracker as `name` (once; later changes go
    /// through [`Command::ChangeUsername`]).
    fn join(&mut self, name: String, now: Instant) {
        if self.joined {
            self.link.change_username(name, now);
            return;
        }
        let role = if self.library.is_empty() && !self.library.is_indexing() {
            Role::Leecher
        } else {
            Role::Seeder
        };
        let rng = Rng::seeded(self.rng.next_u64());
        self.link = TrackerLink::new(name, self.listen_addr.port(), role, rng, now);
        self.joined = true;
    }

    /// Leaves the network and exits with `code` once the tracker has
    /// acknowledged (or after a short wait).
    fn quit(&mut self, code: u8, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        info!("leaving the network");
        for (_, d) in self.downloads.iter_mut() {
            Self::save(d, now);
        }
        self.exit = Some((code, now + GOODBYE_WAIT));
        self.link.disconnect(now);
    }

    // ----- connections -----

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if self.inbound >= self.opts.max_inbound || self.exit.is_some() {
                        // Accept and drop at once, so the backlog does not
                        // fill with connections we will not serve.
                        if !self.refused_logged {
                            warn!(
                                "inbound limit of {} connections reached: refusing {addr}",
                                self.opts.max_inbound
                            );
                            self.refused_logged = true;
                        }
                        continue;
                    }
                    match self.add_conn(stream, now, |_| Kind::Serve(Serve::new())) {
                        Ok(_) => {
                            self.inbound += 1;
                            debug!("serving {addr}");
                        }
                        Err(e) => warn!("cannot register a connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors and the like: try again on
                    // the next readiness rather than spin.
                    warn!("accept: {e}");
                    break;
                }
            }
        }
    }

    /// Registers `stream` with the poll (READABLE | WRITABLE, see the
    /// module header) under a new key and keeps it; `make` builds its
    /// protocol state from the key.
    fn add_conn(
        &mut self,
        mut stream: TcpStream,
        now: Instant,
        make: impl FnOnce(usize) -> Kind,
    ) -> io::Result<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            conn_token(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        // Requests and block heads are small: send them at once.
        let _ = stream.set_nodelay(true);
        entry.insert(Conn {
            stream,
            kind: make(key),
            last_active: now,
        });
        Ok(key)
    }

    /// Opens connections to the peers downloads know of.
    fn connect_peers(&mut self, now: Instant) {
        let keys: Vec<usize> = self.downloads.iter().map(|(k, _)| k).collect();
        for dk in keys {
            let d = &self.downloads[dk];
            if d.is_finished() {
                continue;
            }
            let mut open = d.peers.iter().filter(|p| p.conn.is_some()).count();
            for addr in d.connectable(now) {
                if open >= MAX_CONNS_PER_DOWNLOAD {
                    break;
                }
                let stream = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("cannot connect to peer {addr}: {e}");
                        self.downloads[dk].peer_disconnected(addr, now, true);
                        continue;
                    }
                };
                let strikes = self.downloads[dk].peer_mut(addr).map_or(0, |p| p.strikes);
                let timeout = self.opts.request_timeout;
                let make = |key| Kind::Fetch(Fetch::new(key, dk, addr, now, timeout, strikes));
                match self.add_conn(stream, now, make) {
                    Ok(key) => {
                        if let Some(p) = self.downloads[dk].peer_mut(addr) {
                            p.conn = Some(key);
                        }
                        open += 1;
                    }
                    Err(e) => warn!("cannot register a connection to {addr}: {e}"),
                }
            }
        }
    }

    /// Gives connection `key` its turn.
    fn drive(&mut self, key: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if self.closing.iter().any(|(k, _)| *k == key) {
            return;
        }
        conn.last_active = now;
        match &mut conn.kind {
            Kind::Serve(s) => {
                let files = Sources {
                    library: &self.library,
                    downloads: &self.downloads,
                };
                let flow = s.drive(&mut conn.stream, &files, TURN_BUDGET);
                for (id, bytes) in s.take_sent() {
                    *self.uploaded.entry(id).or_insert(0) += bytes;
                }
                match flow {
                    Ok(Flow::Idle) => {}
                    Ok(Flow::Again) => self.again.push(key),
                    Err(c) => self.closing.push((key, Ending::Serve(c))),
                }
            }
            Kind::Fetch(f) => {
                let Some(d) = self.downloads.get_mut(f.download) else {
                    self.closing.push((key, Ending::Fetch(FetchEnd::Done)));
                    return;
                };
                if !f.connected {
                    match connect_result(&conn.stream) {
                        Ok(false) => return,
                        Ok(true) => {
                            info!("peer used for {}: {}", d.display_name(), f.addr);
                            d.last_connected = now;
                            f.on_connected(d, now);
                        }
                        Err(e) => {
                            self.closing
                                .push((key, Ending::Fetch(FetchEnd::Close(Close::Io(e)))));
                            return;
                        }
                    }
                }
                f.refill(d, now);
                let mut report = Report::default();
                let result = f.drive(&mut conn.stream, d, now, TURN_BUDGET, &mut report);
                for index in &report.bad {
                    warn!(
                        "chunk {index} of {} from {} failed its SHA-256: fetching it again",
                        d.display_name(),
                        f.addr
                    );
                }
                let dk = f.download;
                match result {
                    Ok(Flow::Idle) => {}
                    Ok(Flow::Again) => self.again.push(key),
                    Err(end) => self.closing.push((key, Ending::Fetch(end))),
                }
                if report.meta_accepted {
                    let d = &self.downloads[dk];
                    if let Some(m) = &d.meta {
                        info!(
                            "metadata verified for {}: {} bytes in {} chunks",
                            d.display_name(),
                            m.size,
                            m.chunks.len()
                        );
                    }
                    self.announce_partial(dk, now);
                    self.kick(dk);
                }
                if !report.verified.is_empty() {
                    let id = self.downloads[dk].id;
                    self.tell_subscribers(&id, &report.verified);
                }
            }
        }
    }

    /// Tells the tracker we hold part of download `dk`, so other
    /// downloaders can fetch what we verified (swarming).
    fn announce_partial(&mut self, dk: usize, now: Instant) {
        if let Some(d) = self.downloads.get_mut(dk) {
            if let Some(entry) = d.entry(false) {
                self.link.announce(vec![entry], now);
                let query = now + REQUERY_AFTER_META;
                d.next_query = d.next_query.min(query);
                // The query is sent from the tick: bring it forward.
                self.next_tick = self.next_tick.min(query);
            }
        }
    }

    /// Sends `Have` for each of `chunks` to the leechers subscribed to
    /// file `id` (partial seeding).
    fn tell_subscribers(&mut self, id: &FileId, chunks: &[u32]) {
        for (key, conn) in self.conns.iter_mut() {
            let Kind::Serve(s) = &mut conn.kind else {
                continue;
            };
            if s.subscribed.as_ref() != Some(id) {
                continue;
            }
            if let Some(Err(c)) = chunks.iter().map(|&i| s.notify_have(i)).find(Result::is_err) {
                self.closing.push((key, Ending::Serve(c)));
            } else if !self.again.contains(&key) {
                self.again.push(key);
            }
        }
    }

    /// Drives every connection of download `dk` (new work may be there for
    /// connections that were idle).
    fn kick(&mut self, dk: usize) {
        for (key, conn) in self.conns.iter() {
            if matches!(&conn.kind, Kind::Fetch(f) if f.download == dk && f.connected)
                && !self.again.contains(&key)
            {
                self.again.push(key);
            }
        }
    }

    fn apply_closes(&mut self, now: Instant) {
        while let Some((key, ending)) = self.closing.pop() {
            if !self.conns.contains(key) {
                continue;
            }
            let mut conn = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
            match (conn.kind, ending) {
                (Kind::Serve(s), ending) => {
                    self.inbound -= 1;
                    self.refused_logged = false;
                    let why = match ending {
                        Ending::Serve(Close::Eof) => None,
                        Ending::Serve(c) => Some(c.to_string()),
                        Ending::Idle => Some("idle timeout".into()),
                        Ending::Leaving => Some("leaving the network".into()),
                        Ending::Fetch(f) => Some(f.to_string()),
                    };
                    let peer = conn
                        .stream
                        .peer_addr()
                        .map_or_else(|_| "a peer".into(), |a| a.to_string());
                    match why {
                        Some(why) => info!("stopped serving {peer} after {} chunk bytes: {why}", s.uploaded),
                        None => info!("finished serving {peer}: {} chunk bytes sent", s.uploaded),
                    }
                }
                (Kind::Fetch(mut f), ending) => {
                    let dk = f.download;
                    let Some(d) = self.downloads.get_mut(dk) else {
                        continue;
                    };
                    f.abandon(d);
                    let in_flight = f.in_flight();
                    let end = match ending {
                        Ending::Fetch(e) => e,
                        Ending::Serve(c) => FetchEnd::Close(c),
                        Ending::Idle => FetchEnd::Stalled,
                        Ending::Leaving => FetchEnd::Done,
                    };
                    let failed = !matches!(end, FetchEnd::Done);
                    d.peer_disconnected(f.addr, now, failed);
                    if let Some(p) = d.peer_mut(f.addr) {
                        p.strikes = f.strikes;
                        let refused =
                            matches!(end, FetchEnd::Refused(Refusal::NoSuchFile | Refusal::NoSuchChunk));
                        if f.strikes >= MAX_STRIKES || matches!(end, FetchEnd::BadPeer(_)) || refused {
                            p.banned = true;
                        }
                    }
                    let banned = d.peer_mut(f.addr).is_some_and(|p| p.banned);
                    match end {
                        FetchEnd::Done => {}
                        // A peer that leaves with nothing of ours in flight
                        // (another downloader that finished) is normal churn.
                        FetchEnd::Close(Close::Eof) if in_flight == 0 && !banned => {
                            info!("peer left {}: {}", d.display_name(), f.addr)
                        }
                        end => {
                            let what = if banned { "peer dropped" } else { "peer lost" };
                            warn!("{what} for {}: {}: {end}", d.display_name(), f.addr);
                        }
                    }
                    self.kick(dk);
                }
            }
        }
    }

    /// Timers: stalled requests, idle inbound connections, peer upkeep.
    fn tick(&mut self, now: Instant) {
        for (key, conn) in self.conns.iter() {
            match &conn.kind {
                Kind::Fetch(f) => {
                    if now >= f.deadline && (!f.connected || f.in_flight() > 0) {
                        let end = if f.connected {
                            FetchEnd::Stalled
                        } else {
                            FetchEnd::Close(Close::Io(io::ErrorKind::TimedOut.into()))
                        };
                        self.closing.push((key, Ending::Fetch(end)));
                    } else if f.connected && !self.again.contains(&key) {
                        // Chunks may have been handed back by others.
                        self.again.push(key);
                    }
                }
                Kind::Serve(s) => {
                    if s.is_idle() && now.duration_since(conn.last_active) >= self.opts.idle_timeout {
                        self.closing.push((key, Ending::Idle));
                    }
                }
            }
        }
        let mut queries = Vec::new();
        for (_, d) in self.downloads.iter_mut() {
            if d.is_finished() {
                continue;
            }
            let connected = d.peers.iter().filter(|p| p.conn.is_some()).count();
            if connected > 0 {
                d.last_connected = now;
                d.waiting_told = false;
            }
            if now >= d.next_query {
                d.next_query = now + if connected > 0 { REQUERY_BUSY } else { REQUERY_IDLE };
                queries.push(d.id);
            }
            let waited = now.duration_since(d.last_connected);
            if d.unsaved() && (now.duration_since(d.saved_at) >= SAVE_EVERY || connected == 0) {
                Self::save(d, now);
            }
            if connected == 0 && waited >= WAITING_AFTER && !d.waiting_told {
                d.waiting_told = true;
                let msg = format!(
                    "waiting for peers: none that has {} is reachable; asking the tracker every {} s",
                    d.display_name(),
                    REQUERY_IDLE.as_secs()
                );
                warn!("{msg}");
                self.events.push(Event::Warning(msg));
            }
            // The interactive client waits as long as the user likes.
            let gives_up = self.opts.mode != Mode::Interactive;
            if gives_up && connected == 0 && waited >= self.opts.peer_wait {
                let why = if d.usable_peers() == 0 && !d.peers.is_empty() {
                    format!(
                        "every peer that had it failed or was dropped; gave up after {} s",
                        waited.as_secs()
                    )
                } else {
                    format!("no peer has it (waited {} s)", waited.as_secs())
                };
                d.fail(why);
            }
        }
        for id in queries {
            if let Err(e) = self.link.query(Query::GetPeers(id), now) {
                debug!("peer query postponed: {e}");
            }
        }
        self.connect_peers(now);
    }

    fn step_library(&mut self, now: Instant) {
        if !self.library.is_indexing() {
            return;
        }
        let step = self.library.index_step(INDEX_BUDGET);
        for w in step.warnings {
            warn!("{w}");
            self.events.push(Event::Warning(w));
        }
        if !step.ready.is_empty() && self.link.is_registered() {
            let entries: Vec<FileEntry> = self
                .library
                .entries()
                .into_iter()
                .filter(|e| step.ready.contains(&e.id))
                .collect();
            self.link.announce(entries, now);
            self.announce_pending = true;
        }
        if !self.library.is_indexing() {
            info!("indexed {} shared files", self.library.len());
        }
    }

    fn step_downloads(&mut self, now: Instant) {
        let mut ended = Vec::new();
        let mut rechecked = Vec::new();
        for (dk, d) in self.downloads.iter_mut() {
            if let Some(r) = d.advance_recheck(&mut self.whole_buf, WHOLE_BUDGET) {
                rechecked.push((dk, r));
            }
            if matches!(d.phase, Phase::Chunks | Phase::Checking) {
                d.advance_whole(&mut self.whole_buf, WHOLE_BUDGET);
            }
            if d.is_finished() {
                ended.push(dk);
            }
        }
        for (dk, r) in rechecked {
            let d = &self.downloads[dk];
            let (name, total) = (d.display_name(), r.total);
            info!(
                "re-checked the .part file of {name}: {} of {total} chunks already verified",
                r.verified
            );
            self.events.push(Event::Resumed {
                name,
                verified: r.verified,
                total,
                rechecked: true,
            });
            self.kick(dk);
        }
        for dk in ended {
            for (key, conn) in self.conns.iter() {
                if matches!(&conn.kind, Kind::Fetch(f) if f.download == dk) {
                    self.closing.push((key, Ending::Fetch(FetchEnd::Done)));
                }
            }
            self.apply_closes(now);
            self.download_ended(dk, now);
        }
    }
}

/// The files inbound connections may serve: those shared, then those
/// being downloaded (their verified chunks).
struct Sources<'a> {
    library: &'a Library,
    downloads: &'a Slab<Download>,
}

impl Files for Sources<'_> {
    fn source(&self, id: &FileId) -> Option<Source<'_>> {
        self.library
            .source(id)
            .or_else(|| self.downloads.iter().find(|(_, d)| d.id == *id)?.1.source())
    }
}

/// Whether a non-blocking connect finished: `Ok(false)` while it is still
/// in progress (a spurious wake-up).
fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
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
