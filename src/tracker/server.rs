//! The tracker's event loop: one thread, one mio `Poll`, one UDP socket and
//! the SIGINT/SIGTERM/SIGHUP signal source.
//!
//! Two protocols share the socket. A datagram starting with the project's
//! `PYT\x01` is the project's own; anything else is BitTorrent's BEP 15
//! ([`super::bep15`]), whose connection ids always have their top bit set so
//! an announce or scrape can never start with `PYT\x01`. SIGHUP reloads the
//! BEP 15 access list.
//!
//! Invariants:
//! - Nothing is sent to an address before it proved, with a valid connection
//!   id, that it receives our datagrams, except replies no larger than the
//!   datagram that caused them (the handshake, the version error): the
//!   tracker cannot amplify spoofed traffic.
//! - Bad input never stops the loop: it is counted and dropped, or answered
//!   with a short error when the sender's connection id is valid.
//! - Timers (expiry sweep, statistics) are deadlines that set the poll
//!   timeout; the socket is drained in bounded batches so a flood cannot
//!   starve them.

use super::access::{AccessList, Mode};
use super::bep15::{Bep15, BtCounters, Outcome};
use super::connid::ConnIds;
use super::registry::{Fairness, Limits, Registry};
use super::swarms::SwarmLimits;
use crate::client::frontend::table::count;
use crate::names;
use crate::rand::{os_random, Rng};
use crate::wire::tracker::{
    decode_request, encode_reply, error_reply, peek_request_header, ErrorCode, Reply, ReplyBody, RequestBody,
};
use crate::wire::{DecodeError, MAGIC, MAX_DATAGRAM, PREFIX_LEN, VERSION};
use log::{debug, info, warn};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
const SIGNALS: Token = Token(1);
/// Datagrams handled per wake-up before timers get a turn.
const BATCH: usize = 1024;
/// How often silent peers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the summary line is logged.
const STATS_EVERY: Duration = Duration::from_secs(60);
/// How often silent BitTorrent peers are looked for: a sweep is O(peers),
/// and they expire after two announce intervals (10 minutes at least).
const SWARM_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often the `--stats` file is rewritten.
const STATS_FILE_EVERY: Duration = Duration::from_secs(10);
/// Receive buffer: a full BEP 15 scrape (1,496 bytes) fits; a longer
/// datagram is cut, which both protocols' decoders then refuse or (an
/// announce's BEP 41 options) ignore.
const RECV_BUF: usize = 2048;
/// Kernel receive buffer asked for (Linux caps it at `net.core.rmem_max`):
/// room for bursts of about 50,000 small datagrams, the same request
/// aquatic_udp makes, so a burst is queued instead of dropped.
const RECV_BUFFER_BYTES: libc::c_int = 8_000_000;

/// Asks for a larger kernel receive buffer; a refusal only costs drops.
fn set_recv_buffer(socket: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd we own, and an in-parameter of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        debug!("SO_RCVBUF {bytes}: {}", io::Error::last_os_error());
    }
}

/// Everything the tracker needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub interval_secs: u32,
    pub max_peers: usize,
    pub max_files: usize,
    /// Peers one host (IPv4 address or IPv6 /64) may register at once.
    pub max_peers_per_host: usize,
    /// Files (counted once per holder) one host's peers may announce.
    pub max_files_per_host: usize,
    /// Caps per network (IPv4 /24, IPv6 /48) and the share kept for
    /// small networks.
    pub fair: Fairness,
    /// How long a connection id stays valid, at least.
    pub id_lifetime_secs: u32,
    /// BEP 15 swarm limits and announce interval.
    pub bt: SwarmLimits,
    /// The BEP 15 access list file and its mode.
    pub access_list: Option<(PathBuf, Mode)>,
    /// Where to write the counters as JSON (every 10 s and on exit).
    pub stats_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    /// Every datagram, both protocols.
    received: u64,
    answered: u64,
    /// Malformed, foreign, unauthenticated or otherwise ignored datagrams.
    dropped: u64,
    /// Replies the kernel would not take (send buffer full).
    send_failed: u64,
    /// The project's protocol, by the sender's family (0 IPv4, 1 IPv6).
    own: [u64; 2],
    /// BEP 15, by family; kept by [`Bep15`] and copied here for the deltas.
    bt: [BtCounters; 2],
}

/// A bound tracker, ready to [`run`](Tracker::run).
pub struct Tracker {
    poll: Poll,
    socket: UdpSocket,
    signals: Signals,
    ids: ConnIds,
    registry: Registry,
    bt: Bep15,
    start: Instant,
    counters: Counters,
    last_stats: (Instant, Counters),
    next_sweep: Instant,
    next_swarm_sweep: Instant,
    stats_file: Option<(PathBuf, Instant)>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
}

/// What to do with one datagram.
pub(crate) enum Answer {
    /// The sender holds a valid connection id: reply.
    Reply(Reply),
    /// The sender is unproven: reply only if no larger than its datagram.
    Unproven(Reply),
    Drop(&'static str),
}

impl Tracker {
    /// Binds the socket and the signal handlers; nothing is served until
    /// [`run`](Tracker::run).
    pub fn bind(config: &Config) -> io::Result<Tracker> {
        let poll = Poll::new()?;
        let access = match &config.access_list {
            Some((path, mode)) => Some(
                AccessList::load(path, *mode).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let mut socket = UdpSocket::bind(config.bind)?;
        set_recv_buffer(&socket, RECV_BUFFER_BYTES);
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut key = [0u8; 32];
        os_random(&mut key)?;
        // A key of its own for BEP 15 ids: neither protocol's ids can be
        // derived from the other's.
        let mut bt_key = [0u8; 32];
        os_random(&mut bt_key)?;
        let start = Instant::now();
        Ok(Tracker {
            poll,
            socket,
            signals,
            ids: ConnIds::new(key, config.id_lifetime_secs),
            registry: Registry::new(
                Limits {
                    max_peers: config.max_peers,
                    max_files: config.max_files,
                    max_peers_per_host: config.max_peers_per_host,
                    max_files_per_host: config.max_files_per_host,
                    interval_secs: config.interval_secs,
                    fair: config.fair,
                },
                Rng::from_entropy(),
            ),
            bt: Bep15::new(
                ConnIds::new_bep15(bt_key, config.id_lifetime_secs),
                config.bt,
                access,
                Rng::from_entropy(),
            ),
            start,
            counters: Counters::default(),
            last_stats: (start, Counters::default()),
            next_sweep: start + SWEEP_EVERY,
            next_swarm_sweep: start + SWARM_SWEEP_EVERY,
            stats_file: config.stats_file.clone().map(|p| (p, start)),
            // Larger than the largest datagram of either protocol, so an
            // oversized one shows up as too long instead of silently cut.
            recv_buf: vec![0; RECV_BUF],
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
        })
    }

    /// The address actually bound (with the OS-chosen port for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// True when the socket is an IPv6 one that also receives IPv4
    /// (`IPV6_V6ONLY` off, Linux's default for `[::]`).
    pub fn dual_stack(&self) -> bool {
        use std::os::fd::AsRawFd;
        if !matches!(self.local_addr(), Ok(SocketAddr::V6(_))) {
            return false;
        }
        let mut v6only: libc::c_int = 1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid fd we own, and an out-parameter of the size we pass.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&mut v6only as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        rc == 0 && v6only == 0
    }

    /// The loaded access list's size and mode, if any.
    pub fn access_summary(&self) -> Option<String> {
        self.bt.access().map(|a| {
            // "hash" takes "es": not count()'s plural.
            let n = a.len();
            let hashes = if n == 1 { "info hash" } else { "info hashes" };
            format!("{n} {hashes}, {} mode", a.mode())
        })
    }

    /// Serves until SIGINT or SIGTERM; returns the signal's number.
    pub fn run(&mut self) -> io::Result<i32> {
        let mut events = Events::with_capacity(64);
        // True while the socket may hold more datagrams than one batch took.
        let mut backlog = false;
        loop {
            let timeout = if backlog {
                Duration::ZERO
            } else {
                self.next_deadline().saturating_duration_since(Instant::now())
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    SOCKET => backlog = true,
                    SIGNALS => {
                        let pending: Vec<i32> = self.signals.pending().collect();
                        for signal in pending {
                            if signal == SIGHUP {
                                match self.bt.reload_access() {
                                    Ok(summary) => info!("SIGHUP: {summary}"),
                                    Err(e) => warn!("SIGHUP: {e}; the old access list stays in force"),
                                }
                            } else {
                                self.write_stats_file();
                                return Ok(signal);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if backlog {
                backlog = self.drain_batch()?;
            }
            self.upkeep(Instant::now());
        }
    }

    fn now_secs(&self) -> u32 {
        u32::try_from(self.start.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn next_deadline(&self) -> Instant {
        let mut at = self
            .next_sweep
            .min(self.last_stats.0 + STATS_EVERY)
            .min(self.next_swarm_sweep);
        if let Some((_, last)) = &self.stats_file {
            at = at.min(*last + STATS_FILE_EVERY);
        }
        at
    }

    /// Handles up to [`BATCH`] datagrams; true if the socket may hold more.
    fn drain_batch(&mut self) -> io::Result<bool> {
        let now = self.now_secs();
        for _ in 0..BATCH {
            let (len, from) = match self.socket.recv_from(&mut self.recv_buf) {
                Ok(got) => got,
                // Drained: mio will wake us on the next datagram.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from earlier sends surface here on some
                // systems; they concern a past datagram, not the socket.
                Err(e) => {
                    debug!("recv error: {e}");
                    continue;
                }
            };
            self.counters.received += 1;
            self.handle_datagram(len, from, now);
        }
        Ok(true)
    }

    fn handle_datagram(&mut self, len: usize, from: SocketAddr, now: u32) {
        let datagram = &self.recv_buf[..len];
        if !datagram.starts_with(&MAGIC) {
            let outcome = self
                .bt
                .answer(&mut self.registry, datagram, from, now, &mut self.send_buf);
            match outcome {
                Outcome::Reply => {}
                // Only the connect response: 16 bytes for a datagram of at
                // least 16, checked here all the same.
                Outcome::Unproven if self.send_buf.len() <= len => {}
                Outcome::Unproven => {
                    self.counters.dropped += 1;
                    return;
                }
                Outcome::Drop(why) => {
                    self.counters.dropped += 1;
                    debug!("{from}: dropped {len}-byte datagram: {why}");
                    return;
                }
            }
            self.send(from);
            return;
        }
        self.counters.own[usize::from(!super::bep15::is_v4(from.ip()))] += 1;
        let answer = answer(&self.ids, &mut self.registry, datagram, from, now);
        let (reply, unproven) = match answer {
            Answer::Reply(reply) => (reply, false),
            Answer::Unproven(reply) => (reply, true),
            Answer::Drop(why) => {
                self.counters.dropped += 1;
                debug!("{from}: dropped {len}-byte datagram: {why}");
                return;
            }
        };
        self.send_buf.clear();
        if let Err(e) = encode_reply(&reply, &mut self.send_buf) {
            warn!("reply to {from} not sent: {e}");
            return;
        }
        if unproven && self.send_buf.len() > len {
            // Never send more than we received before a valid handshake.
            self.counters.dropped += 1;
            debug!("{from}: not answered: reply would be larger than the request");
            return;
        }
        self.send(from);
    }

    /// Sends `send_buf` to `to`; a reply the kernel will not take is counted
    /// and dropped.
    fn send(&mut self, to: SocketAddr) {
        match self.socket.send_to(&self.send_buf, to) {
            Ok(_) => self.counters.answered += 1,
            // UDP is lossy by contract: the client retries.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.counters.send_failed += 1,
            Err(e) => {
                self.counters.send_failed += 1;
                debug!("send to {to} failed: {e}");
            }
        }
    }

    fn upkeep(&mut self, now: Instant) {
        if now >= self.next_sweep {
            let expired = self.registry.expire(self.now_secs());
            if expired > 0 {
                info!("{} left without a word (silent too long)", count(expired, "peer"));
            }
            self.next_sweep = now + SWEEP_EVERY;
        }
        if now >= self.next_swarm_sweep {
            let expired = self.bt.expire(self.now_secs());
            if expired > 0 {
                debug!("expired {}", count(expired, "silent BitTorrent peer"));
            }
            self.next_swarm_sweep = now + SWARM_SWEEP_EVERY;
        }
        let (since, before) = self.last_stats;
        if now >= since + STATS_EVERY {
            let secs = now.duration_since(since).as_secs_f64().max(1e-3);
            self.counters.bt = self.bt.counters;
            let c = self.counters;
            let rate = |a: u64, b: u64| (a - b) as f64 / secs;
            let bt = |f: usize| {
                let (n, b) = (c.bt[f], before.bt[f]);
                format!(
                    "connect/s={:.1} announce/s={:.1} scrape/s={:.1} errors={} dropped={}",
                    rate(n.connects, b.connects),
                    rate(n.announces, b.announces),
                    rate(n.scrapes, b.scrapes),
                    n.errors - b.errors,
                    n.dropped - b.dropped,
                )
            };
            let (bt_peers, bt_v6) = self.bt.swarms().peer_counts();
            info!(
                "peers={} files={} requests/s={:.1} dropped={} send_failed={} | own ipv4 requests/s={:.1} ipv6 requests/s={:.1} | bt torrents={} peers={} (ipv6 {}) | bt ipv4 {} | bt ipv6 {}",
                self.registry.peer_count(),
                self.registry.file_count(),
                rate(c.received, before.received),
                c.dropped - before.dropped,
                c.send_failed - before.send_failed,
                rate(c.own[0], before.own[0]),
                rate(c.own[1], before.own[1]),
                self.bt.swarms().torrent_count(),
                bt_peers,
                bt_v6,
                bt(0),
                bt(1),
            );
            self.last_stats = (now, c);
        }
        if let Some((_, last)) = &self.stats_file {
            if now >= *last + STATS_FILE_EVERY {
                self.write_stats_file();
            }
        }
    }

    /// The counters as one JSON object (hand-written: flat numbers only).
    pub fn stats_json(&self) -> String {
        let c = self.counters;
        let bt = |b: BtCounters| {
            format!(
                r#"{{"connects":{},"announces":{},"scrapes":{},"errors":{},"dropped":{}}}"#,
                b.connects, b.announces, b.scrapes, b.errors, b.dropped
            )
        };
        let (bt_peers, bt_v6) = self.bt.swarms().peer_counts();
        format!(
            concat!(
                r#"{{"uptime_secs":{},"received":{},"answered":{},"dropped":{},"send_failed":{},"#,
                r#""own":{{"peers":{},"files":{},"requests":{{"ipv4":{},"ipv6":{}}}}},"#,
                r#""bep15":{{"torrents":{},"peers":{},"peers_ipv6":{},"ipv4":{},"ipv6":{}}}}}"#
            ),
            self.now_secs(),
            c.received,
            c.answered,
            c.dropped,
            c.send_failed,
            self.registry.peer_count(),
            self.registry.file_count(),
            c.own[0],
            c.own[1],
            self.bt.swarms().torrent_count(),
            bt_peers,
            bt_v6,
            bt(self.bt.counters[0]),
            bt(self.bt.counters[1]),
        )
    }

    /// Replaces the `--stats` file atomically (written beside it, then
    /// renamed), so a reader never sees half a file.
    fn write_stats_file(&mut self) {
        let Some((path, _)) = &self.stats_file else { return };
        let path = path.clone();
        let json = self.stats_json();
        if let Err(e) = write_atomically(&path, json.as_bytes()) {
            warn!("stats file {}: {e}", path.display());
        }
        self.stats_file = Some((path, Instant::now()));
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Decides what one datagram deserves. Pure apart from the registry update,
/// so the client's tracker link tests drive the real tracker logic in-process.
pub(crate) fn answer(
    ids: &ConnIds,
    registry: &mut Registry,
    datagram: &[u8],
    from: SocketAddr,
    now: u32,
) -> Answer {
    let (tx, conn) = match peek_request_header(datagram) {
        Ok(header) => header,
        Err(DecodeError::UnsupportedVersion(v)) => {
            // Tell the peer which version we speak, if that costs no more
            // bytes than it sent. Its tx id sits where ours would.
            let tx = datagram
                .get(PREFIX_LEN..PREFIX_LEN + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            debug!("{from}: speaks protocol version {v}");
            return Answer::Unproven(Reply {
                tx,
                body: error_reply(
                    ErrorCode::UnsupportedVersion,
                    &format!("tracker speaks version {VERSION}"),
                ),
            });
        }
        Err(_) => return Answer::Drop("not a PyTorrent request"),
    };
    let proven = || ids.check(&conn, from, now);
    match decode_request(datagram) {
        Ok(req) => match req.body {
            RequestBody::Connect { .. } => Answer::Unproven(Reply {
                tx,
                body: ReplyBody::Connected {
                    conn: ids.issue(from, now),
                    valid_secs: ids.lifetime_secs(),
                },
            }),
            body if proven() => {
                let kind = body.kind();
                // Who asked, for the log (taken before a disconnect
                // forgets it); usernames are checked, escaped all the same.
                let who = match &body {
                    RequestBody::Register { username, .. } => Some(username.as_str()),
                    _ => registry.username_at(from),
                }
                .map_or_else(|| "?".to_string(), names::escape);
                let joins =
                    matches!(body, RequestBody::Register { .. }) && registry.username_at(from).is_none();
                let leaves = matches!(body, RequestBody::Disconnect);
                let reply = registry.handle(from, body, now);
                debug!("{from} ({who}): {kind} -> {}", reply_kind(&reply));
                match reply {
                    ReplyBody::Registered { .. } if joins => info!("{who} joined from {from}"),
                    ReplyBody::Ok if leaves => info!("{who} left ({from})"),
                    _ => {}
                }
                Answer::Reply(Reply { tx, body: reply })
            }
            _ => Answer::Drop("missing, forged or expired connection id"),
        },
        Err(e) if proven() => Answer::Reply(Reply {
            tx,
            body: error_reply(ErrorCode::BadRequest, &e.to_string()),
        }),
        Err(_) => Answer::Drop("undecodable request without a valid connection id"),
    }
}

fn reply_kind(reply: &ReplyBody) -> &'static str {
    match reply {
        ReplyBody::Connected { .. } => "connected",
        ReplyBody::Registered { .. } => "registered",
        ReplyBody::Announced { .. } => "announced",
        ReplyBody::Withdrawn { .. } => "withdrawn",
        ReplyBody::PeerList { .. } => "peer list",
        ReplyBody::FileList { .. } => "file list",
        ReplyBody::Peers { .. } => "peers",
        ReplyBody::Ok => "ok",
        ReplyBody::Error { .. } => "error",
        ReplyBody::Found { .. } => "found",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_file_is_replaced_whole() {
        let dir = crate::testutil::TempDir::new("stats");
        let path = dir.path().join("stats.json");
        write_atomically(&path, b"{\"a\":1}").unwrap();
        write_atomically(&path, b"{\"a\":2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":2}\n");
        assert!(!dir.path().join("stats.json.tmp").exists());
    }
}
