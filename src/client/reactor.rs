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
//! - The slab changes only between event batches: closes are queued and
//!   applied after the batch, deregistering before removing, so an event
//!   never reaches a reused key's new connection.
//! - Every timer (tracker retries and keep-alives, request and idle
//!   timeouts, peer re-queries) is a deadline that bounds the poll timeout.
//! - Connections register READABLE | WRITABLE once: with edge-triggered
//!   readiness a writable event comes only when buffer space frees up, so
//!   keeping it costs nothing and saves a reregister per state change.

use super::download::{hex, Download, Phase, MAX_STRIKES};
use super::fetch::{Fetch, FetchEnd, Report};
use super::library::Library;
use super::options::{Mode, Options};
use super::serve::{Close, Serve};
use super::table::{human_bytes, render};
use super::tracker_link::{LinkEvent, Query, TrackerLink};
use super::Flow;
use crate::names;
use crate::rand::Rng;
use crate::wire::peer::Refusal;
use crate::wire::tracker::{FileEntry, FileInfo, PeerInfo, Role};
use crate::wire::{FileId, MAX_DATAGRAM};
use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TRACKER: Token = Token(0);
const LISTENER: Token = Token(1);
const SIGNALS: Token = Token(2);
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
const REQUERY_BUSY: Duration = Duration::from_secs(15);
const REQUERY_IDLE: Duration = Duration::from_secs(2);

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
}

/// What the headless run is waiting for.
#[derive(Debug, PartialEq, Eq)]
enum Goal {
    /// Serve until a signal.
    Seed,
    /// Downloading (`resolving` names, then `downloads`).
    Get,
    List,
    Peers,
    /// Nothing left: waiting for the tracker's goodbye.
    Exit,
}

/// The client, bound and ready to [`run`](Client::run).
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
    udp_buf: Vec<u8>,
    whole_buf: Vec<u8>,
    next_tick: Instant,
    goal: Goal,
    /// `--get` targets: names waiting for the file list, ids to start.
    targets: Vec<String>,
    /// `--get` targets that failed.
    failed_gets: usize,
    seed_after_get: bool,
    /// The seeding banner was printed.
    announced_banner: bool,
    /// Files sent to the tracker and not yet acknowledged.
    announce_pending: bool,
    /// Exit code and deadline once shutting down.
    exit: Option<(u8, Instant)>,
    /// A refused inbound connection was logged (once per burst).
    refused_logged: bool,
}

impl Client {
    /// Binds the sockets and opens the shared library (seeding only).
    pub fn bind(opts: Options) -> Result<Client, String> {
        let Mode::Headless {
            seed,
            get,
            list,
            peers,
        } = opts.mode.clone()
        else {
            return Err(
                "the interactive client is not built yet; use --seed, --get, --list or --peers".into(),
            );
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
        for w in warnings {
            warn!("{w}");
            eprintln!("pytorrent: warning: {w}");
        }
        let mut rng = Rng::from_entropy();
        let username = opts
            .username
            .clone()
            .unwrap_or_else(|| format!("peer-{:04x}", rng.next_u64() & 0xffff));
        let role = if seed { Role::Seeder } else { Role::Leecher };
        let now = Instant::now();
        let link = TrackerLink::new(username, listen_addr.port(), role, rng, now);
        let goal = match (get.is_empty(), list, peers) {
            (false, _, _) => Goal::Get,
            (true, true, _) => Goal::List,
            (true, _, true) => Goal::Peers,
            _ => Goal::Seed,
        };
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
            udp_buf: vec![0; MAX_DATAGRAM + 1],
            whole_buf: vec![0; 1 << 20],
            next_tick: now,
            goal,
            targets: get,
            failed_gets: 0,
            seed_after_get: seed,
            announced_banner: false,
            announce_pending: false,
            exit: None,
            refused_logged: false,
        })
    }

    /// The TCP address peers reach us on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// Runs until the task is done or a signal arrives; returns the exit
    /// code (0 success, 1 failure).
    pub fn run(&mut self) -> Result<u8, String> {
        let mut events = Events::with_capacity(256);
        self.start_goal(Instant::now());
        loop {
            let now = Instant::now();
            if let Some((code, deadline)) = self.exit {
                if now >= deadline {
                    return Ok(code);
                }
            }
            let timeout = self.timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("event loop: {e}"));
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    TRACKER => self.read_tracker(now),
                    LISTENER => self.accept(now),
                    SIGNALS => {
                        if self.signals.pending().next().is_some() {
                            self.on_signal(now);
                        }
                    }
                    token => {
                        if let Some(key) = conn_key(token) {
                            self.drive(key, now);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.again) {
                self.drive(key, now);
            }
            self.apply_closes(now);
            self.link.handle_timeout(now, &mut self.link_events);
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
            self.flush_tracker();
            if let Some(code) = self.exit_now() {
                return Ok(code);
            }
        }
    }

    /// The poll timeout: the earliest deadline, or zero with work pending.
    fn timeout(&self, now: Instant) -> Duration {
        let busy = !self.again.is_empty()
            || self.library.is_indexing()
            || self.downloads.iter().any(|(_, d)| d.phase == Phase::Checking);
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
                    self.announce_ready(now);
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
                LinkEvent::FileList(files) => self.on_file_list(files, now),
                LinkEvent::PeerList(peers) => self.on_peer_list(peers, now),
                LinkEvent::UsernameChanged(name) => info!("username is now {}", names::escape(&name)),
                LinkEvent::Failed { what, error } => {
                    warn!("tracker {what}: {error}");
                    if self.waits_on_tracker() {
                        self.finish(
                            1,
                            &format!("the tracker did not answer the {what} request: {error}"),
                            now,
                        );
                    }
                }
                LinkEvent::Unreachable => {
                    warn!("the tracker {} does not answer", self.opts.tracker);
                    if self.waits_on_tracker() {
                        self.finish(
                            1,
                            &format!("the tracker {} does not answer", self.opts.tracker),
                            now,
                        );
                    }
                }
                LinkEvent::Reachable => info!("the tracker answers again"),
                LinkEvent::Disconnected => {
                    if let Some((code, _)) = self.exit {
                        self.exit = Some((code, now));
                    }
                }
            }
        }
        self.print_banner();
    }

    /// Announces every ready file (the link keeps the set and re-announces
    /// it by itself after a re-registration).
    fn announce_ready(&mut self, now: Instant) {
        if !self.library.is_empty() {
            self.link.announce(self.library.entries(), now);
            self.announce_pending = true;
        }
    }

    fn print_banner(&mut self) {
        if self.goal != Goal::Seed
            || self.announced_banner
            || self.announce_pending
            || self.library.is_indexing()
            || !self.link.is_registered()
        {
            return;
        }
        self.announced_banner = true;
        let line = format!(
            "seeding {} files as {} on tcp {} (tracker {})",
            self.library.len(),
            names::escape(self.link.username()),
            self.listen_addr,
            self.opts.tracker
        );
        info!("{line}");
        println!("{line}");
        let _ = io::stdout().flush();
    }

    // ----- headless goals -----

    /// Whether the run cannot go on without an answer from the tracker
    /// (a listing, or names to resolve).
    fn waits_on_tracker(&self) -> bool {
        matches!(self.goal, Goal::List | Goal::Peers) || (self.goal == Goal::Get && !self.targets.is_empty())
    }

    fn start_goal(&mut self, now: Instant) {
        let query = match self.goal {
            Goal::Get => {
                // Ids start at once; names wait for the file list.
                for target in std::mem::take(&mut self.targets) {
                    match parse_file_id(&target) {
                        Some(id) => self.start_download(id, format!("file {}", &target[..16]), now),
                        None => self.targets.push(target),
                    }
                }
                (!self.targets.is_empty()).then_some(Query::ListFiles)
            }
            Goal::List => Some(Query::ListFiles),
            Goal::Peers => Some(Query::ListPeers),
            _ => None,
        };
        if let Some(q) = query {
            if let Err(e) = self.link.query(q, now) {
                self.finish(1, &e, now);
            }
        }
    }

    fn on_file_list(&mut self, files: Vec<FileInfo>, now: Instant) {
        match &self.goal {
            Goal::List => {
                let rows: Vec<Vec<String>> = files
                    .iter()
                    .map(|f| {
                        vec![
                            hex(&f.id[..8]),
                            names::escape(&f.name),
                            human_bytes(f.size),
                            f.seeders.to_string(),
                            f.partial.to_string(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    render(&["ID", "NAME", "SIZE", "SEEDERS", "PARTIAL"], &rows, &[2, 3, 4])
                );
                println!("{} files on the network", files.len());
                self.finish(0, "", now);
            }
            Goal::Get => {
                for name in std::mem::take(&mut self.targets) {
                    let matches: Vec<&FileInfo> = files.iter().filter(|f| f.name == name).collect();
                    match matches.as_slice() {
                        [one] => {
                            let (id, label) = (one.id, names::escape(&one.name));
                            self.start_download(id, label, now);
                        }
                        [] => self.get_failed(&format!(
                            "no file named '{}' on the network (see --list)",
                            names::escape(&name)
                        )),
                        many => {
                            let ids: Vec<String> = many.iter().map(|f| hex(&f.id)).collect();
                            self.get_failed(&format!(
                                "{} files are named '{}'; pick one by id: {}",
                                many.len(),
                                names::escape(&name),
                                ids.join(", ")
                            ));
                        }
                    }
                }
                self.check_gets(now);
            }
            _ => {}
        }
    }

    fn on_peer_list(&mut self, peers: Vec<PeerInfo>, now: Instant) {
        if self.goal != Goal::Peers {
            return;
        }
        let rows: Vec<Vec<String>> = peers
            .iter()
            .map(|p| {
                let role = match p.role {
                    Role::Seeder => "seeder",
                    Role::Leecher => "leecher",
                };
                let you = if p.is_you { " (you)" } else { "" };
                vec![
                    format!("{}{you}", names::escape(&p.username)),
                    p.addr.to_string(),
                    role.to_string(),
                    p.files.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            render(&["USERNAME", "ADDRESS", "ROLE", "FILES"], &rows, &[3])
        );
        println!("{} peers on the network", peers.len());
        self.finish(0, "", now);
    }

    fn start_download(&mut self, id: FileId, label: String, now: Instant) {
        if self.downloads.iter().any(|(_, d)| d.id == id) {
            return;
        }
        if self.downloads.len() >= MAX_DOWNLOADS {
            self.get_failed(&format!("{label}: at most {MAX_DOWNLOADS} downloads at once"));
            return;
        }
        info!("download started: {label} (id {})", hex(&id));
        let mut d = Download::new(id, label, &self.opts.download_dir, now);
        d.next_query = now + REQUERY_IDLE;
        self.downloads.insert(d);
        if let Err(e) = self.link.query(Query::GetPeers(id), now) {
            debug!("peer query postponed: {e}");
        }
    }

    /// A download ended: report it and move on.
    fn download_ended(&mut self, key: usize, now: Instant) {
        let d = &self.downloads[key];
        match &d.phase {
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
                println!(
                    "downloaded {} ({size} bytes) sha256 {} -> {}",
                    d.display_name(),
                    d.sha256_hex(),
                    path.display()
                );
                let _ = io::stdout().flush();
                let (meta, path) = (d.meta.clone(), path.clone());
                self.downloads.remove(key);
                if let (true, Some(meta)) = (self.seed_after_get, meta) {
                    self.reseed(meta, path, now);
                }
            }
            Phase::Failed(why) => {
                let why = format!("download of {} failed: {why}", d.display_name());
                self.downloads.remove(key);
                self.get_failed(&why);
            }
            _ => return,
        }
        self.check_gets(now);
    }

    fn get_failed(&mut self, why: &str) {
        warn!("{why}");
        eprintln!("pytorrent: error: {why}");
        self.failed_gets += 1;
    }

    /// Once every `--get` has ended: exit, or go on seeding.
    fn check_gets(&mut self, now: Instant) {
        if self.goal != Goal::Get || !self.targets.is_empty() || !self.downloads.is_empty() {
            return;
        }
        if self.failed_gets > 0 {
            let why = format!("{} of the requested downloads failed", self.failed_gets);
            self.finish(1, &why, now);
        } else if self.seed_after_get {
            self.goal = Goal::Seed;
            self.print_banner();
        } else {
            self.finish(0, "", now);
        }
    }

    /// Shares a verified download from where it is: no bytes are copied.
    fn reseed(&mut self, meta: crate::meta::FileMeta, path: std::path::PathBuf, now: Instant) {
        let entry = FileEntry {
            id: meta.id(),
            name: meta.name.clone(),
            size: meta.size,
            complete: true,
        };
        match self.library.add_verified(meta, path) {
            Ok(_) => {
                info!("sharing {}", names::escape(&entry.name));
                self.link.announce(vec![entry], now);
                self.announce_pending = true;
            }
            Err(e) => warn!("cannot share the download: {e}"),
        }
    }

    /// Ends the run: `why` goes to stderr on failure.
    fn finish(&mut self, code: u8, why: &str, now: Instant) {
        if self.exit.is_some() {
            return;
        }
        if code != 0 {
            warn!("{why}");
            eprintln!("pytorrent: error: {why}");
        }
        self.goal = Goal::Exit;
        self.exit = Some((code, now + GOODBYE_WAIT));
        self.link.disconnect(now);
    }

    fn on_signal(&mut self, now: Instant) {
        let code = match self.goal {
            Goal::Seed => 0,
            _ => 1,
        };
        info!("signal received: leaving the network");
        if code == 0 {
            println!("pytorrent: signal received, withdrawing and leaving the network; goodbye");
        }
        self.finish(
            code,
            "interrupted by a signal; unfinished downloads keep their .part file",
            now,
        );
    }

    fn exit_now(&self) -> Option<u8> {
        match self.exit {
            Some((code, deadline)) if Instant::now() >= deadline => Some(code),
            _ => None,
        }
    }

    // ----- connections -----

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
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
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        conn_token(key),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("cannot register a connection from {addr}: {e}");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    entry.insert(Conn {
                        stream,
                        kind: Kind::Serve(Serve::new()),
                        last_active: now,
                    });
                    self.inbound += 1;
                    debug!("serving {addr}");
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
                let mut stream = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("cannot connect to peer {addr}: {e}");
                        self.downloads[dk].peer_disconnected(addr, now, true);
                        continue;
                    }
                };
                let entry = self.conns.vacant_entry();
                let key = entry.key();
                if let Err(e) = self.poll.registry().register(
                    &mut stream,
                    conn_token(key),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    warn!("cannot register a connection to {addr}: {e}");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let d = &mut self.downloads[dk];
                let strikes = d.peer_mut(addr).map_or(0, |p| p.strikes);
                entry.insert(Conn {
                    stream,
                    kind: Kind::Fetch(Fetch::new(key, dk, addr, now, self.opts.request_timeout, strikes)),
                    last_active: now,
                });
                if let Some(p) = d.peer_mut(addr) {
                    p.conn = Some(key);
                }
                open += 1;
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
            Kind::Serve(s) => match s.drive(&mut conn.stream, &self.library, TURN_BUDGET) {
                Ok(Flow::Idle) => {}
                Ok(Flow::Again) => self.again.push(key),
                Err(c) => self.closing.push((key, Ending::Serve(c))),
            },
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
                    self.kick(dk);
                }
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
                    let end = match ending {
                        Ending::Fetch(e) => e,
                        Ending::Serve(c) => FetchEnd::Close(c),
                        Ending::Idle => FetchEnd::Stalled,
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
                    if !matches!(end, FetchEnd::Done) {
                        let banned = d.peer_mut(f.addr).is_some_and(|p| p.banned);
                        let what = if banned { "peer dropped" } else { "peer lost" };
                        warn!("{what} for {}: {}: {end}", d.display_name(), f.addr);
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
            }
            if now >= d.next_query {
                d.next_query = now + if connected > 0 { REQUERY_BUSY } else { REQUERY_IDLE };
                queries.push(d.id);
            }
            let waited = now.duration_since(d.last_connected);
            if connected == 0 && waited >= self.opts.peer_wait {
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
        for w in &step.warnings {
            warn!("{w}");
            eprintln!("pytorrent: warning: {w}");
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
        for (dk, d) in self.downloads.iter_mut() {
            if matches!(d.phase, Phase::Chunks | Phase::Checking) {
                d.advance_whole(&mut self.whole_buf, WHOLE_BUDGET);
            }
            if d.is_finished() {
                ended.push(dk);
            }
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

/// A file id written as 64 hex digits.
fn parse_file_id(text: &str) -> Option<FileId> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_parse_from_hex_only() {
        let id: FileId = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(parse_file_id(&hex(&id)), Some(id));
        assert_eq!(parse_file_id(&hex(&id).to_uppercase()), Some(id));
        assert_eq!(parse_file_id("abc"), None);
        assert_eq!(parse_file_id(&"g".repeat(64)), None);
        assert_eq!(parse_file_id(&"é".repeat(32)), None);
        assert_eq!(conn_key(conn_token(5)), Some(5));
        assert_eq!(conn_key(SIGNALS), None);
    }
}
