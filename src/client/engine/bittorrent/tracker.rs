//! The BEP 15 client: announcing BitTorrent downloads to the `udp://`
//! trackers of their torrent or magnet link, for peers.
//!
//! Per tracker: connect (an id valid for a minute, reused), then announce
//! (`started` first); a request unanswered is sent again after 2, 4, 8 ...
//! s (at most 60 s); a tracker's interval is respected, except that a
//! download with no connected peer asks again every 15 s. When
//! the client leaves, each tracker that knows us gets one `stopped`
//! announce (best effort, unanswered).
//! Replies are matched by sender address and transaction id, so a datagram
//! from anyone else changes nothing. Trackers are named by IP address (or
//! `localhost`): the engine does no name resolution, so a tracker named by
//! a host name is skipped with a log line.

use crate::client::engine::*;
use crate::names;
use crate::wire::bep15::{self, AnnounceRequest, Peers, Request, Response};
use log::{debug, info};
use std::net::IpAddr;

/// A connection id is used for this long (BEP 15: one minute).
const CONN_ID_LIFE: Duration = Duration::from_secs(60);
/// First wait for a reply; doubles per try.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Re-announce period of a download that has no connected peer.
const HUNGRY_EVERY: Duration = Duration::from_secs(15);
/// Most peers asked for per announce.
const NUM_WANT: i32 = 50;

/// One tracker of one download.
#[derive(Debug)]
pub struct UdpTracker {
    pub addr: SocketAddr,
    conn: Option<(u64, Instant)>,
    /// The request in flight: its transaction id, whether it is a connect,
    /// and when it is sent again.
    pending: Option<(u32, bool, Instant)>,
    tries: u32,
    next_at: Instant,
    started: bool,
    /// The `stopped` announce went out (we are leaving).
    stopped: bool,
    /// The download finished: the next announce says `completed`.
    completed: bool,
}

/// The address of a `udp://HOST:PORT/...` tracker URL, when HOST is an
/// IP address or `localhost`.
pub fn udp_tracker_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("udp://")?;
    let host_port = rest.split('/').next()?;
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return Some(addr);
    }
    let (host, port) = host_port.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

impl UdpTracker {
    pub fn new(addr: SocketAddr, now: Instant) -> UdpTracker {
        UdpTracker {
            addr,
            conn: None,
            pending: None,
            tries: 0,
            next_at: now,
            started: false,
            stopped: false,
            completed: false,
        }
    }

    /// The download finished (and is seeded now): tell the tracker at once.
    pub fn complete(&mut self, now: Instant) {
        self.completed = true;
        self.next_at = now;
    }

    /// The `stopped` announce when we leave: once, and only to a tracker
    /// that knows us and whose connection id is still good (there is no
    /// time to get a new one). Best effort: nobody waits for the reply.
    fn stop(
        &mut self,
        info_hash: &[u8; 20],
        left: u64,
        me: &Announcing,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        let conn = self.conn.filter(|(_, at)| now.duration_since(*at) < CONN_ID_LIFE);
        let (true, false, Some((conn, _))) = (self.started, self.stopped, conn) else {
            return false;
        };
        self.stopped = true;
        announce(conn, *info_hash, left, bep15::Event::Stopped, me, out);
        true
    }

    /// The next datagram for this tracker about `info_hash`, with `left`
    /// bytes missing, if one is due.
    fn transmit(
        &mut self,
        info_hash: &[u8; 20],
        left: u64,
        me: &Announcing,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        if now < self.next_at {
            return false;
        }
        let tx = me.tx;
        let wait = FIRST_RETRY.saturating_mul(1 << self.tries.min(5)).min(MAX_RETRY);
        self.tries += 1;
        self.next_at = now + wait;
        let conn = self.conn.filter(|(_, at)| now.duration_since(*at) < CONN_ID_LIFE);
        let Some((conn, _)) = conn else {
            self.pending = Some((tx, true, self.next_at));
            bep15::encode_request(&Request::Connect { tx }, out);
            return true;
        };
        let event = if !self.started {
            bep15::Event::Started
        } else if std::mem::take(&mut self.completed) {
            bep15::Event::Completed
        } else {
            bep15::Event::None
        };
        self.pending = Some((tx, false, self.next_at));
        announce(conn, *info_hash, left, event, me, out);
        true
    }

    /// A reply from this tracker's address; peers, when it announced.
    fn receive(&mut self, bytes: &[u8], hungry: bool, now: Instant) -> Option<Vec<SocketAddr>> {
        let (tx, _, _) = self.pending?;
        let resp = bep15::decode_response(bytes, self.addr.is_ipv6()).ok()?;
        match resp {
            Response::Connect { tx: t, conn } if t == tx => {
                self.pending = None;
                self.tries = 0;
                self.conn = Some((conn, now));
                self.next_at = now;
                None
            }
            Response::Announce(a) if a.tx == tx => {
                self.pending = None;
                self.tries = 0;
                self.started = true;
                let interval = Duration::from_secs(u64::from(a.interval).clamp(15, 3600));
                self.next_at = now
                    + if hungry {
                        interval.min(HUNGRY_EVERY)
                    } else {
                        interval
                    };
                let peers = match a.peers {
                    Peers::V4(p) => p.into_iter().map(SocketAddr::V4).collect(),
                    Peers::V6(p) => p.into_iter().map(SocketAddr::V6).collect(),
                };
                Some(peers)
            }
            Response::Error { tx: t, message } if t == tx => {
                warn!("tracker {}: {}", self.addr, names::escape(&message));
                self.pending = None;
                // An error may come from a stale connection id.
                self.conn = None;
                None
            }
            _ => None,
        }
    }
}

/// What every announce of ours carries.
struct Announcing {
    tx: u32,
    peer_id: [u8; 20],
    key: u32,
    port: u16,
}

impl Engine {
    /// The trackers of a new BitTorrent download, from its URLs.
    pub(in crate::client::engine) fn bt_trackers(urls: &[String], now: Instant) -> Vec<UdpTracker> {
        let mut out: Vec<UdpTracker> = Vec::new();
        for url in urls {
            match udp_tracker_addr(url) {
                Some(addr) if !out.iter().any(|t| t.addr == addr) => out.push(UdpTracker::new(addr, now)),
                Some(_) => {}
                None => info!(
                    "tracker skipped (only udp:// trackers by IP address): {}",
                    names::escape(url)
                ),
            }
        }
        out
    }

    /// A datagram on the tracker socket from `from`: the project's tracker
    /// or a BitTorrent download's.
    pub fn on_udp(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        if from == self.cfg.tracker && bytes.starts_with(&crate::wire::MAGIC) {
            return self.on_datagram(bytes, now);
        }
        let mut found = Vec::new();
        for (dk, d) in self.bt.iter_mut() {
            let hungry = d.peers.connected() == 0;
            for t in d.trackers.iter_mut().filter(|t| t.addr == from) {
                if let Some(peers) = t.receive(bytes, hungry, now) {
                    debug!("tracker {from} gave {} peers", peers.len());
                    found.push((dk, peers));
                }
            }
        }
        for s in &mut self.bt_shared {
            for t in s.trackers.iter_mut().filter(|t| t.addr == from) {
                // A seeder wants no peers; it waits for leechers to come.
                let _ = t.receive(bytes, false, now);
            }
        }
        for (dk, peers) in found {
            self.bt[dk].peers.add(&peers, now);
        }
        self.bt_connect(now);
        self.after(now);
    }

    /// When a BitTorrent tracker is next due a datagram (seeded torrents
    /// too: without a download, upkeep does not wake the engine). Exactly
    /// the trackers [`Engine::poll_bt_transmit`] would send to, so a
    /// deadline never passes without a datagram (the loop would spin);
    /// none while leaving (the `stopped` announces go at once).
    pub(in crate::client::engine) fn bt_tracker_deadline(&self) -> Option<Instant> {
        if self.exit.is_some() {
            return None;
        }
        let running = self.bt.iter().filter(|(_, d)| !d.is_finished());
        let downloads = running.flat_map(|(_, d)| &d.trackers);
        let shared = self.bt_shared.iter().flat_map(|s| &s.trackers);
        downloads.chain(shared).map(|t| t.next_at).min()
    }

    /// The next datagram for a BitTorrent tracker, appended to `out`, and
    /// where it goes.
    pub fn poll_bt_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> Option<SocketAddr> {
        let leaving = self.exit.is_some();
        let me = Announcing {
            tx: self.rng.next_u64() as u32,
            peer_id: self.peer_id,
            key: u32::from_be_bytes([
                self.peer_id[8],
                self.peer_id[9],
                self.peer_id[10],
                self.peer_id[11],
            ]),
            port: self.cfg.listen_addr.port(),
        };
        for (_, d) in self.bt.iter_mut().filter(|(_, d)| !d.is_finished()) {
            // Unknown size (a magnet link): any nonzero amount says leecher.
            let left = d.torrent.as_ref().map_or(1, |t| {
                let done = d.verified * t.piece_len();
                t.content_len().saturating_sub(done).max(1)
            });
            let hash = d.wire_hash();
            if let Some(t) = next(&mut d.trackers, &hash, left, &me, leaving, now, out) {
                return Some(t);
            }
        }
        for s in &mut self.bt_shared {
            let hash = s.torrent.wire_hash();
            if let Some(t) = next(&mut s.trackers, &hash, 0, &me, leaving, now, out) {
                return Some(t);
            }
        }
        None
    }
}

/// Appends an announce of ours (no peers wanted when `stopped`).
fn announce(conn: u64, short: [u8; 20], left: u64, event: bep15::Event, me: &Announcing, out: &mut Vec<u8>) {
    let mut a = AnnounceRequest::new(conn, me.tx, short, me.port, left, event);
    a.peer_id = me.peer_id;
    a.key = me.key;
    a.num_want = if event == bep15::Event::Stopped {
        0
    } else {
        NUM_WANT
    };
    bep15::encode_request(&Request::Announce(a), out);
}

/// The first of `trackers` with a datagram to send (`stopped` ones while
/// `leaving`), and where it goes.
fn next(
    trackers: &mut [UdpTracker],
    hash: &[u8; 20],
    left: u64,
    me: &Announcing,
    leaving: bool,
    now: Instant,
    out: &mut Vec<u8>,
) -> Option<SocketAddr> {
    trackers.iter_mut().find_map(|t| {
        let sent = if leaving {
            t.stop(hash, left, me, now, out)
        } else {
            t.transmit(hash, left, me, now, out)
        };
        sent.then_some(t.addr)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_urls_by_address_are_taken() {
        let a = |s: &str| udp_tracker_addr(s);
        assert_eq!(
            a("udp://127.0.0.1:6969/announce"),
            Some("127.0.0.1:6969".parse().unwrap())
        );
        assert_eq!(a("udp://[::1]:80"), Some("[::1]:80".parse().unwrap()));
        assert_eq!(a("udp://localhost:1/x"), Some("127.0.0.1:1".parse().unwrap()));
        assert_eq!(a("udp://tracker.example:1/x"), None);
        assert_eq!(a("http://127.0.0.1:1/announce"), None);
    }

    #[test]
    fn connect_then_announce_and_replies_only_by_transaction() {
        let now = Instant::now();
        let addr: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        let mut t = UdpTracker::new(addr, now);
        let me = Announcing {
            tx: 7,
            peer_id: [1; 20],
            key: 2,
            port: 6881,
        };
        let mut out = Vec::new();
        assert!(t.transmit(&[5; 20], 1, &me, now, &mut out));
        assert_eq!(bep15::decode_request(&out), Ok(Request::Connect { tx: 7 }));
        assert!(
            !t.transmit(&[5; 20], 1, &me, now, &mut Vec::new()),
            "waits for the reply"
        );
        let mut reply = Vec::new();
        bep15::put_connect_response(8, 99, &mut reply);
        assert_eq!(t.receive(&reply, true, now), None);
        assert!(t.conn.is_none(), "another transaction's reply is ignored");
        reply.clear();
        bep15::put_connect_response(7, 99, &mut reply);
        t.receive(&reply, true, now);
        let me = Announcing { tx: 9, ..me };
        out.clear();
        assert!(t.transmit(&[5; 20], 1, &me, now, &mut out));
        let Ok(Request::Announce(a)) = bep15::decode_request(&out) else {
            panic!("not an announce");
        };
        assert_eq!(
            (a.conn, a.event, a.port, a.info_hash),
            (99, bep15::Event::Started, 6881, [5; 20])
        );
        reply.clear();
        bep15::put_announce_header(9, 300, 0, 1, &mut reply);
        bep15::put_peer_v4("10.0.0.1:7000".parse().unwrap(), &mut reply);
        let peers = t.receive(&reply, true, now).unwrap();
        assert_eq!(peers, vec!["10.0.0.1:7000".parse::<SocketAddr>().unwrap()]);
        assert_eq!(
            t.next_at,
            now + HUNGRY_EVERY,
            "no peer connected: asks again soon"
        );
        // The download finished: the next announce says so, at once, and
        // only that one.
        t.complete(now);
        for want in [bep15::Event::Completed, bep15::Event::None] {
            out.clear();
            t.pending = None;
            t.next_at = now;
            assert!(t.transmit(&[5; 20], 0, &me, now, &mut out));
            let Ok(Request::Announce(a)) = bep15::decode_request(&out) else {
                panic!("not an announce");
            };
            assert_eq!((a.event, a.left), (want, 0));
        }
        out.clear();
        assert!(t.stop(&[5; 20], 1, &me, now, &mut out));
        let Ok(Request::Announce(a)) = bep15::decode_request(&out) else {
            panic!("not an announce");
        };
        assert_eq!(a.event, bep15::Event::Stopped);
        assert!(!t.stop(&[5; 20], 1, &me, now, &mut Vec::new()), "once");
    }
}
