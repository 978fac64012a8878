//! The client's event loop: one thread, one mio `Poll` that owns every
//! socket: the UDP socket to the tracker, the TCP listener that serves our
//! files, the SIGINT/SIGTERM source, stdin (interactive), and every peer
//! connection, kept in a `Slab` and addressed by `Token(FIRST_CONN + key)`.
//! It makes no decision: it feeds the [`Engine`] what happened and carries
//! out the engine's [`Action`]s, and hands events to the [`Frontend`].
//!
//! Invariants:
//! - Nothing blocks the loop: sockets are non-blocking, the engine drives a
//!   connection with a byte budget per turn (a connection that used it up
//!   asks to be driven again, which happens next turn with a zero poll
//!   timeout, since edge-triggered readiness will not repeat).
//! - Nothing leaves the slab during an event batch: the engine's
//!   [`Action::Close`] is carried out after the batch, deregistering
//!   before removing, so an event never reaches a reused key's new socket.
//! - The poll timeout is the earliest of the engine's and the frontend's
//!   deadlines.
//! - Connections register READABLE | WRITABLE once: with edge-triggered
//!   readiness a writable event comes only when buffer space frees up.
//! - The rate limits hold for every connection of both protocols: the
//!   engine sees each socket through [`Throttled`]; a connection turned
//!   away for want of tokens waits in `throttled` and is driven again when
//!   the buckets have refilled (that instant bounds the poll timeout).

use super::part_file::FsStorage;
use super::rate_limit::{RateLimits, Throttled};
use super::secret::{self, Secret};
use crate::cli::EXIT_FAILURE;
use crate::client::engine::library::Library;
use crate::client::engine::{Action, Command, ConnEnd, ConnId, Engine, EngineConfig, Event};
use crate::client::frontend::{Cx, Frontend};
use crate::client::options::{Mode, Options};
use crate::meta::FileMeta;
use crate::names;
use crate::rand::Rng;
use crate::wire::MAX_DATAGRAM;
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
use std::path::{Path, PathBuf};
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

struct Socket {
    stream: TcpStream,
    conn: ConnId,
    /// The outbound connect has not completed yet.
    connecting: bool,
}

/// The client, bound and ready to [`run`](Client::run).
pub struct Client {
    poll: Poll,
    udp: UdpSocket,
    listener: TcpListener,
    signals: Signals,
    tracker: SocketAddr,
    shared_dir: PathBuf,
    socks: Slab<Socket>,
    by_conn: HashMap<ConnId, usize>,
    /// Connections the engine asked to drive again next turn.
    again: Vec<ConnId>,
    /// `--max-upload-rate` and `--max-download-rate`.
    limits: RateLimits,
    /// Connections turned away by the limits, to drive once they refill.
    throttled: Vec<ConnId>,
    engine: Engine,
    /// The client's secret, its file locked while we run (`None` for a
    /// read-only run, which registers nothing).
    _secret: Option<Secret>,
    /// Said to the frontend once it started (indexing warnings).
    early: Vec<Event>,
    udp_buf: Vec<u8>,
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
        for w in &warnings {
            warn!("{w}");
        }
        let mut rng = Rng::from_entropy();
        let interactive = opts.mode == Mode::Interactive;
        // Headless clients without a name get one; the interactive client
        // asks the user first and joins with Command::Join.
        let username = match (&opts.username, interactive) {
            (Some(name), _) => Some(name.clone()),
            (None, true) => None,
            (None, false) => Some(format!("peer-{:04x}", rng.next_u64() & 0xffff)),
        };
        // `--list` and `--peers` only read: no username, no secret, nobody's
        // place taken.
        let read_only = matches!(
            opts.mode,
            Mode::Headless {
                seed: false,
                ref get,
                ..
            } if get.is_empty()
        );
        let secret = if read_only {
            None
        } else {
            let s = secret::load(&opts.config_path).map_err(|e| {
                format!(
                    "cannot open the client secret {}: {e}",
                    secret::secret_path(&opts.config_path).display()
                )
            })?;
            if !s.from_file {
                eprintln!(
                    "pytorrent: note: another client runs with this config ({} is locked); this one cannot take that client's username",
                    secret::secret_path(&opts.config_path).display()
                );
            }
            Some(s)
        };
        let cfg = EngineConfig {
            tracker: opts.tracker,
            listen_addr,
            username,
            secret: secret.as_ref().map_or([0; 16], |s| s.bytes),
            read_only,
            seed,
            max_inbound: opts.max_inbound,
            idle_timeout: opts.idle_timeout,
            request_timeout: opts.request_timeout,
            // The interactive client waits as long as the user likes.
            give_up_after: (!interactive).then_some(opts.peer_wait),
            rng_seed: rng.next_u64(),
        };
        let storage = Box::new(FsStorage::new(&opts.download_dir));
        let engine = Engine::new(cfg, library, storage, Instant::now());
        Ok(Client {
            poll,
            udp,
            listener,
            signals,
            tracker: opts.tracker,
            shared_dir: opts.shared_dir,
            socks: Slab::new(),
            by_conn: HashMap::new(),
            again: Vec::new(),
            limits: RateLimits::new(opts.max_upload_rate, opts.max_download_rate, Instant::now()),
            throttled: Vec::new(),
            engine,
            _secret: secret,
            early: warnings.into_iter().map(Event::Warning).collect(),
            udp_buf: vec![0; MAX_DATAGRAM + 1],
        })
    }

    /// Runs until the frontend quits; returns the exit code (0 success,
    /// 1 failure).
    pub fn run(&mut self, ui: &mut dyn Frontend) -> Result<u8, String> {
        let result = self.run_loop(ui);
        ui.stop(*result.as_ref().unwrap_or(&EXIT_FAILURE));
        result
    }

    fn run_loop(&mut self, ui: &mut dyn Frontend) -> Result<u8, String> {
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
        let now = Instant::now();
        ui.start(
            &Cx {
                now,
                client: &self.engine,
            },
            &mut commands,
        );
        for event in std::mem::take(&mut self.early) {
            ui.on_event(
                event,
                &Cx {
                    now,
                    client: &self.engine,
                },
                &mut commands,
            );
        }
        self.apply_commands(&mut commands, now);
        loop {
            let now = Instant::now();
            let mut deadline = self.engine.poll_timeout(now);
            if let Some(d) = ui.deadline() {
                deadline = deadline.min(d);
            }
            if let Some(d) = self.limits.next_refill().filter(|_| !self.throttled.is_empty()) {
                deadline = deadline.min(d);
            }
            let timeout = if self.again.is_empty() {
                deadline.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("event loop: {e}"));
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
                            ui.on_event(
                                Event::Signal,
                                &Cx {
                                    now,
                                    client: &self.engine,
                                },
                                &mut commands,
                            );
                        }
                    }
                    STDIN => input = true,
                    token => {
                        if let Some(key) = conn_key(token) {
                            self.ready(key, now);
                        }
                    }
                }
            }
            if input && stdin_open {
                stdin_open = self.read_stdin(ui, now, &mut commands);
            }
            if self.limits.next_refill().is_some_and(|d| d <= now) {
                for id in std::mem::take(&mut self.throttled) {
                    if !self.again.contains(&id) {
                        self.again.push(id);
                    }
                }
            }
            for id in std::mem::take(&mut self.again) {
                self.drive(id, now);
            }
            self.engine.handle_timeout(now);
            if ui.deadline().is_some_and(|d| d <= now) {
                ui.on_timeout(
                    &Cx {
                        now,
                        client: &self.engine,
                    },
                    &mut commands,
                );
            }
            self.apply_commands(&mut commands, now);
            if let Some(code) = self.take_actions(ui, now)? {
                return Ok(code);
            }
            self.flush_tracker(now);
        }
    }

    /// Carries out what the engine asked for, handing events to the
    /// frontend and its commands back to the engine, until nothing is
    /// left. Returns the exit code once the engine is done.
    fn take_actions(&mut self, ui: &mut dyn Frontend, now: Instant) -> Result<Option<u8>, String> {
        let mut commands = Vec::new();
        loop {
            let Some(action) = self.engine.poll_action() else {
                if commands.is_empty() {
                    return Ok(None);
                }
                self.apply_commands(&mut commands, now);
                continue;
            };
            match action {
                Action::Connect { conn, addr } => self.connect(conn, addr, now),
                Action::Drive(conn) => {
                    if !self.again.contains(&conn) {
                        self.again.push(conn);
                    }
                }
                Action::Close(conn) => self.remove(conn),
                Action::Notify(event) => ui.on_event(
                    event,
                    &Cx {
                        now,
                        client: &self.engine,
                    },
                    &mut commands,
                ),
                Action::Exit(code) => {
                    for mut s in self.socks.drain() {
                        let _ = self.poll.registry().deregister(&mut s.stream);
                    }
                    return Ok(Some(code));
                }
            }
        }
    }

    fn apply_commands(&mut self, commands: &mut Vec<Command>, now: Instant) {
        for command in commands.drain(..) {
            let command = match command {
                Command::Share { meta, path } => {
                    let path = link_into(&self.shared_dir, &meta, path);
                    Command::Share { meta, path }
                }
                c => c,
            };
            self.engine.command(command, now);
        }
    }

    /// Reads what stdin has (it is non-blocking) into the frontend.
    /// Returns false once stdin is closed or failing (it is then dropped
    /// from the poll).
    fn read_stdin(&mut self, ui: &mut dyn Frontend, now: Instant, commands: &mut Vec<Command>) -> bool {
        let mut buf = [0u8; 1024];
        let mut open = true;
        loop {
            match io::stdin().lock().read(&mut buf) {
                Ok(0) => {
                    ui.on_input(
                        &[],
                        &Cx {
                            now,
                            client: &self.engine,
                        },
                        commands,
                    );
                    open = false;
                    break;
                }
                Ok(n) => ui.on_input(
                    &buf[..n],
                    &Cx {
                        now,
                        client: &self.engine,
                    },
                    commands,
                ),
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
        open
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    // A refused connection is dropped at once, so the
                    // backlog does not fill with ones we will not serve.
                    if let Some(conn) = self.engine.on_inbound(addr, now) {
                        if let Err(e) = self.add(stream, conn, false) {
                            warn!("cannot register a connection from {addr}: {e}");
                            self.engine.on_closed(conn, ConnEnd::Io(e), now);
                        }
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

    fn connect(&mut self, conn: ConnId, addr: SocketAddr, now: Instant) {
        let added = TcpStream::connect(addr).and_then(|stream| self.add(stream, conn, true));
        if let Err(e) = added {
            warn!("cannot connect to peer {addr}: {e}");
            self.engine.on_closed(conn, ConnEnd::Io(e), now);
        }
    }

    /// Registers `stream` (READABLE | WRITABLE, see the module header)
    /// under a new key.
    fn add(&mut self, mut stream: TcpStream, conn: ConnId, connecting: bool) -> io::Result<()> {
        let entry = self.socks.vacant_entry();
        self.poll.registry().register(
            &mut stream,
            conn_token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        // Requests and block heads are small: send them at once.
        let _ = stream.set_nodelay(true);
        self.by_conn.insert(conn, entry.key());
        entry.insert(Socket {
            stream,
            conn,
            connecting,
        });
        Ok(())
    }

    fn remove(&mut self, conn: ConnId) {
        if let Some(key) = self.by_conn.remove(&conn) {
            let mut s = self.socks.remove(key);
            let _ = self.poll.registry().deregister(&mut s.stream);
        }
        self.again.retain(|c| *c != conn);
        self.throttled.retain(|c| *c != conn);
    }

    /// Socket `key` is ready: finish its connect, or give it its turn.
    fn ready(&mut self, key: usize, now: Instant) {
        let Some(s) = self.socks.get_mut(key) else {
            return;
        };
        let conn = s.conn;
        if s.connecting {
            match connect_result(&s.stream) {
                Ok(false) => return,
                Ok(true) => {
                    s.connecting = false;
                    self.engine.on_connected(conn, now);
                }
                Err(e) => {
                    self.engine.on_closed(conn, ConnEnd::Io(e), now);
                    return;
                }
            }
        }
        self.drive(conn, now);
    }

    fn drive(&mut self, conn: ConnId, now: Instant) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        let s = &mut self.socks[key];
        if !s.connecting {
            let mut stream = Throttled::new(&mut s.stream, &mut self.limits, now);
            self.engine.on_io(conn, &mut stream, now);
            if stream.starved() && !self.throttled.contains(&conn) {
                self.throttled.push(conn);
            }
        }
    }

    fn read_tracker(&mut self, now: Instant) {
        loop {
            match self.udp.recv_from(&mut self.udp_buf) {
                // The engine tells the project's tracker from BitTorrent
                // ones, and drops anything from anyone else.
                Ok((n, from)) => self.engine.on_udp(from, &self.udp_buf[..n], now),
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

    fn flush_tracker(&mut self, now: Instant) {
        let mut out = Vec::with_capacity(MAX_DATAGRAM);
        loop {
            out.clear();
            if !self.engine.poll_transmit(now, &mut out) {
                break;
            }
            // A datagram the kernel will not take now is lost like any
            // other; the link retries.
            if let Err(e) = self.udp.send_to(&out, self.tracker) {
                debug!("send to tracker: {e}");
            }
        }
        loop {
            out.clear();
            let Some(to) = self.engine.poll_bt_transmit(now, &mut out) else {
                break;
            };
            if let Err(e) = self.udp.send_to(&out, to) {
                debug!("send to BitTorrent tracker {to}: {e}");
            }
        }
    }
}

/// Where a verified download is shared from: hard-linked into the shared
/// directory when that works (same file system, name free), else where it
/// is. Never copied.
fn link_into(shared_dir: &Path, meta: &FileMeta, path: PathBuf) -> PathBuf {
    let linked = shared_dir.join(&meta.name);
    match std::fs::create_dir_all(shared_dir).and_then(|()| std::fs::hard_link(&path, &linked)) {
        Ok(()) => linked,
        Err(e) => {
            debug!(
                "sharing {} from {} ({e})",
                names::escape(&meta.name),
                path.display()
            );
            path
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
