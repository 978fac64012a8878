//! The peers known to have one file, and the one place that decides whom
//! to connect to: back-off after failures, strikes for bad chunks, bans,
//! and which peer makes room in a full list.
//!
//! Invariants:
//! - At most [`MAX_KNOWN_PEERS`] peers; a full list makes room only for a
//!   peer that keeps failing, or that failed without ever answering (so
//!   hundreds of silent peers cannot hold the list while the honest one
//!   waits outside it), never by forgetting a ban.
//! - A banned peer is never offered for a connection again.
//! - A peer has at most one connection of ours at a time.

use crate::client::engine::transfer::conn_end::{ConnEnd, Verdict};
use crate::client::engine::ConnId;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most peer addresses remembered per download.
pub const MAX_KNOWN_PEERS: usize = 64;
/// Failed connections in a row after which a peer may make room for a new
/// one in a full list.
const DEAD_AFTER: u32 = 3;
/// Bad chunks a peer may send before it is dropped for the file.
pub const MAX_STRIKES: u8 = 2;
/// Wait before reconnecting to a peer whose connection ended normally.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest back-off after failures in a row (2^5 s).
const MAX_BACKOFF_SHIFT: u32 = 5;

/// A peer known to have the file.
#[derive(Debug, Clone)]
pub struct PeerRec {
    pub addr: SocketAddr,
    /// Our connection to it, if any.
    pub conn: Option<ConnId>,
    pub strikes: u8,
    /// Dropped for this file (bad data, or it refused the file).
    pub banned: bool,
    /// No new connection before this time.
    pub retry_at: Instant,
    /// Connection failures in a row (backs off the retries).
    pub failures: u32,
    /// It answered a request at least once.
    pub answered: bool,
}

#[derive(Debug, Default)]
pub struct PeerSet {
    peers: Vec<PeerRec>,
}

impl PeerSet {
    /// Adds peer addresses from the tracker.
    pub fn add(&mut self, addrs: &[SocketAddr], now: Instant) {
        for &addr in addrs {
            if self.peers.iter().any(|p| p.addr == addr) {
                continue;
            }
            let rec = PeerRec {
                addr,
                conn: None,
                strikes: 0,
                banned: false,
                retry_at: now,
                failures: 0,
                answered: false,
            };
            if self.peers.len() < MAX_KNOWN_PEERS {
                self.peers.push(rec);
            } else if let Some(dead) = self
                .peers
                .iter_mut()
                .filter(|p| {
                    let dead = p.failures >= DEAD_AFTER || (!p.answered && p.failures > 0);
                    p.conn.is_none() && !p.banned && dead
                })
                .max_by_key(|p| (p.failures, !p.answered))
            {
                *dead = rec;
            }
        }
    }

    /// The peers banned for this file.
    pub fn banned(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.iter().filter(|p| p.banned).map(|p| p.addr)
    }

    pub fn get(&self, addr: SocketAddr) -> Option<&PeerRec> {
        self.peers.iter().find(|p| p.addr == addr)
    }

    fn get_mut(&mut self, addr: SocketAddr) -> Option<&mut PeerRec> {
        self.peers.iter_mut().find(|p| p.addr == addr)
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Peers worth a new connection now, those that failed least first
    /// (never tried before retried), so peers that keep failing cannot
    /// keep the others from their turn.
    pub fn connectable(&self, now: Instant) -> Vec<SocketAddr> {
        let mut ready: Vec<&PeerRec> = self
            .peers
            .iter()
            .filter(|p| p.conn.is_none() && !p.banned && p.retry_at <= now)
            .collect();
        ready.sort_by_key(|p| (p.failures, p.retry_at));
        ready.into_iter().map(|p| p.addr).collect()
    }

    /// Peers we hold a connection to.
    pub fn connected(&self) -> usize {
        self.peers.iter().filter(|p| p.conn.is_some()).count()
    }

    /// Peers not banned: whether waiting still makes sense.
    pub fn usable(&self) -> usize {
        self.peers.iter().filter(|p| !p.banned).count()
    }

    /// A connection to `addr` is being opened.
    pub fn connecting(&mut self, addr: SocketAddr, conn: ConnId) {
        if let Some(p) = self.get_mut(addr) {
            p.conn = Some(conn);
        }
    }

    /// The peer at `addr` delivered an answer: "failures in a row" start
    /// again.
    pub fn up(&mut self, addr: SocketAddr) {
        if let Some(p) = self.get_mut(addr) {
            p.failures = 0;
            p.answered = true;
        }
    }

    /// A bad chunk from `addr`; true once the peer has had its last chance
    /// (it is banned).
    pub fn strike(&mut self, addr: SocketAddr) -> bool {
        let Some(p) = self.get_mut(addr) else {
            return false;
        };
        p.strikes = p.strikes.saturating_add(1);
        if p.strikes >= MAX_STRIKES {
            p.banned = true;
        }
        p.banned
    }

    /// The connection to `addr` ended: apply the verdict. Returns it.
    pub fn ended(&mut self, addr: SocketAddr, end: &ConnEnd, now: Instant) -> Verdict {
        let verdict = end.verdict();
        if let Some(p) = self.get_mut(addr) {
            p.conn = None;
            match verdict {
                Verdict::Retry => p.retry_at = now + RETRY_AFTER,
                Verdict::BackOff => {
                    p.failures = p.failures.saturating_add(1);
                    p.retry_at = now + Duration::from_secs(1 << p.failures.min(MAX_BACKOFF_SHIFT));
                }
                Verdict::Ban => p.banned = true,
            }
            if p.banned {
                return Verdict::Ban;
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 7000))
    }

    #[test]
    fn a_full_list_makes_room_only_for_dead_peers() {
        let now = Instant::now();
        let mut set = PeerSet::default();
        let all: Vec<SocketAddr> = (0..MAX_KNOWN_PEERS as u16).map(addr).collect();
        set.add(&all, now);
        set.add(&[addr(999)], now);
        assert!(set.get(addr(999)).is_none(), "full of live peers: no room");
        // A banned peer keeps its place; one that keeps failing gives it up.
        set.ended(addr(1), &ConnEnd::BadPeer("x"), now);
        for _ in 0..DEAD_AFTER {
            set.up(addr(2));
            set.ended(addr(2), &ConnEnd::Stalled, now);
        }
        set.add(&[addr(999)], now);
        assert!(
            set.get(addr(999)).is_none(),
            "it answered before: one failure is not death"
        );
        for _ in 0..DEAD_AFTER {
            set.ended(addr(2), &ConnEnd::Stalled, now);
        }
        set.add(&[addr(999)], now);
        assert!(set.get(addr(999)).is_some());
        assert!(set.get(addr(2)).is_none());
        assert!(set.get(addr(1)).is_some_and(|p| p.banned));
        // One that never answered gives up its place at its first failure.
        set.ended(addr(3), &ConnEnd::Stalled, now);
        set.add(&[addr(998)], now);
        assert!(set.get(addr(998)).is_some() && set.get(addr(3)).is_none());
    }

    #[test]
    fn failures_back_off_and_bans_hold() {
        let now = Instant::now();
        let mut set = PeerSet::default();
        set.add(&[addr(1), addr(2)], now);
        set.connecting(addr(1), ConnId(7));
        assert_eq!(set.connectable(now), vec![addr(2)]);
        assert_eq!(set.ended(addr(1), &ConnEnd::Stalled, now), Verdict::BackOff);
        assert_eq!(set.ended(addr(1), &ConnEnd::Stalled, now), Verdict::BackOff);
        // Two failures in a row: 4 s.
        assert!(!set.connectable(now + Duration::from_secs(3)).contains(&addr(1)));
        assert!(set.connectable(now + Duration::from_secs(4)).contains(&addr(1)));
        set.up(addr(1));
        assert_eq!(set.get(addr(1)).unwrap().failures, 0);
        assert!(!set.strike(addr(2)));
        assert!(set.strike(addr(2)), "the second bad chunk bans");
        assert!(!set.connectable(now + Duration::from_secs(100)).contains(&addr(2)));
        assert_eq!(set.usable(), 1);
    }
}
