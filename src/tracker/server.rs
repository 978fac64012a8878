//! The tracker's event loop: one thread, one mio `Poll`, one UDP socket and
//! the SIGINT/SIGTERM signal source.
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

use super::connid::ConnIds;
use super::registry::{Limits, Registry};
use crate::rand::{os_random, Rng};
use crate::wire::tracker::{
    decode_request, encode_reply, error_reply, peek_request_header, ErrorCode, Reply, ReplyBody, RequestBody,
};
use crate::wire::{DecodeError, MAX_DATAGRAM, PREFIX_LEN, VERSION};
use log::{debug, info, warn};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SOCKET: Token = Token(0);
const SIGNALS: Token = Token(1);
/// Datagrams handled per wake-up before timers get a turn.
const BATCH: usize = 1024;
/// How often silent peers are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the summary line is logged.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Everything the tracker needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub interval_secs: u32,
    pub max_peers: usize,
    pub max_files: usize,
    /// How long a connection id stays valid, at least.
    pub id_lifetime_secs: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    received: u64,
    answered: u64,
    /// Malformed, foreign, unauthenticated or otherwise ignored datagrams.
    dropped: u64,
    /// Replies the kernel would not take (send buffer full).
    send_failed: u64,
}

/// A bound tracker, ready to [`run`](Tracker::run).
pub struct Tracker {
    poll: Poll,
    socket: UdpSocket,
    signals: Signals,
    ids: ConnIds,
    registry: Registry,
    start: Instant,
    counters: Counters,
    last_stats: (Instant, Counters),
    next_sweep: Instant,
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
        let mut socket = UdpSocket::bind(config.bind)?;
        poll.registry()
            .register(&mut socket, SOCKET, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let mut key = [0u8; 32];
        os_random(&mut key)?;
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
                    interval_secs: config.interval_secs,
                },
                Rng::from_entropy(),
            ),
            start,
            counters: Counters::default(),
            last_stats: (start, Counters::default()),
            next_sweep: start + SWEEP_EVERY,
            // One byte more than the largest datagram, so an oversized
            // datagram shows up as too long instead of silently cut.
            recv_buf: vec![0; MAX_DATAGRAM + 1],
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
        })
    }

    /// The address actually bound (with the OS-chosen port for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
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
                        if let Some(signal) = self.signals.pending().next() {
                            return Ok(signal);
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
        self.next_sweep.min(self.last_stats.0 + STATS_EVERY)
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
        match self.socket.send_to(&self.send_buf, from) {
            Ok(_) => self.counters.answered += 1,
            // UDP is lossy by contract: the client retries.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.counters.send_failed += 1,
            Err(e) => {
                self.counters.send_failed += 1;
                debug!("send to {from} failed: {e}");
            }
        }
    }

    fn upkeep(&mut self, now: Instant) {
        if now >= self.next_sweep {
            let expired = self.registry.expire(self.now_secs());
            if expired > 0 {
                debug!("expired {expired} silent peer(s)");
            }
            self.next_sweep = now + SWEEP_EVERY;
        }
        let (since, before) = self.last_stats;
        if now >= since + STATS_EVERY {
            let secs = now.duration_since(since).as_secs_f64().max(1e-3);
            let c = self.counters;
            info!(
                "peers={} files={} requests/s={:.1} dropped={} send_failed={}",
                self.registry.peer_count(),
                self.registry.file_count(),
                (c.received - before.received) as f64 / secs,
                c.dropped - before.dropped,
                c.send_failed - before.send_failed,
            );
            self.last_stats = (now, c);
        }
    }
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
                let reply = registry.handle(from, body, now);
                debug!("{from}: {kind} -> {}", reply_kind(&reply));
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
    }
}
