//! The peers known to have one file, and the one place that decides whom
//! to connect to: back-off after failures, strikes for bad chunks, bans,
//! which peer makes room in a full list, and the order of attempts.
//!
//! Search wide, not deep: the set keeps a bounded list of candidates far
//! beyond the connections a download holds (a tracker's 200-peer answer
//! fits whole), and [`PeerSet::connectable`] orders them so that peers
//! that answered before come first, then peers of the networks (IPv4 /24,
//! IPv6 /48) whose peers failed least, and no more than
//! [`ATTEMPTS_PER_NETWORK`] unproven peers of one network are tried at
//! once. Tarpits (accept, never answer) on a few hosts then cost a few
//! slots, not all of them, and a peer on a fresh network is tried at once.
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
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Most peer addresses remembered per download: the candidates a download
/// rotates through, far more than it connects to at once.
pub const MAX_KNOWN_PEERS: usize = 1000;
/// Attempts at once to peers of one network that never answered.
pub const ATTEMPTS_PER_NETWORK: usize = 4;
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

    /// Peers worth a new connection now, best first: those that answered
    /// before; then those of the networks whose unproven peers failed
    /// least, failing least themselves (never tried before retried); at
    /// most [`ATTEMPTS_PER_NETWORK`] unproven peers of one network at once,
    /// counting the attempts under way. Peers that keep failing, or many
    /// peers of one network, cannot keep the others from their turn.
    pub fn connectable(&self, now: Instant) -> Vec<SocketAddr> {
        // Per network: failures of its unproven peers, and their attempts
        // under way.
        let mut nets: HashMap<u64, (u32, usize)> = HashMap::new();
        for p in self.peers.iter().filter(|p| !p.answered) {
            let n = nets.entry(network(p.addr.ip())).or_default();
            n.0 = n.0.saturating_add(p.failures);
            n.1 += usize::from(p.conn.is_some());
        }
        let mut ready: Vec<(&PeerRec, u64)> = self
            .peers
            .iter()
            .filter(|p| p.conn.is_none() && !p.banned && p.retry_at <= now)
            .map(|p| (p, network(p.addr.ip())))
            .collect();
        ready.sort_by_key(|(p, net)| {
            let net_failures = if p.answered { 0 } else { nets[net].0 };
            (!p.answered, net_failures, p.failures, p.retry_at)
        });
        let mut out = Vec::with_capacity(ready.len());
        for (p, net) in ready {
            if !p.answered {
                let open = &mut nets.get_mut(&net).expect("counted above").1;
                if *open >= ATTEMPTS_PER_NETWORK {
                    continue;
                }
                *open += 1;
            }
            out.push(p.addr);
        }
        out
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

/// The network of `ip` for spreading attempts: an IPv4 /24 or an IPv6
/// /48, folded to 64 bits.
fn network(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => (u128::from(v6) >> 80) as u64 | 1 << 63,
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
        set.add(&[addr(5000)], now);
        assert!(set.get(addr(5000)).is_none(), "full of live peers: no room");
        // A banned peer keeps its place; one that keeps failing gives it up.
        set.ended(addr(1), &ConnEnd::BadPeer("x"), now);
        for _ in 0..DEAD_AFTER {
            set.up(addr(2));
            set.ended(addr(2), &ConnEnd::Stalled, now);
        }
        set.add(&[addr(5000)], now);
        assert!(
            set.get(addr(5000)).is_none(),
            "it answered before: one failure is not death"
        );
        for _ in 0..DEAD_AFTER {
            set.ended(addr(2), &ConnEnd::Stalled, now);
        }
        set.add(&[addr(5000)], now);
        assert!(set.get(addr(5000)).is_some());
        assert!(set.get(addr(2)).is_none());
        assert!(set.get(addr(1)).is_some_and(|p| p.banned));
        // One that never answered gives up its place at its first failure.
        set.ended(addr(3), &ConnEnd::Stalled, now);
        set.add(&[addr(5001)], now);
        assert!(set.get(addr(5001)).is_some() && set.get(addr(3)).is_none());
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

    /// A download's search for a data source on a fake clock: up to
    /// `SEARCH_CONNS` attempts at once; an attempt to a tarpit (accepts,
    /// never answers) ends after `FIRST_ANSWER`, one to `honest` is it.
    /// Returns when `honest` was first tried.
    fn search(set: &mut PeerSet, honest: SocketAddr, start: Instant, limit: Duration) -> Option<Duration> {
        use crate::client::engine::native::fetch::FIRST_ANSWER;
        use crate::client::engine::SEARCH_CONNS;
        let mut open: Vec<(SocketAddr, Instant)> = Vec::new();
        let mut now = start;
        let mut next_id = 0;
        while now < start + limit {
            for (addr, _) in open.iter().filter(|(_, end)| *end <= now) {
                set.ended(*addr, &ConnEnd::Stalled, now);
            }
            open.retain(|(_, end)| *end > now);
            let room = SEARCH_CONNS - open.len();
            for addr in set.connectable(now).into_iter().take(room) {
                if addr == honest {
                    return Some(now - start);
                }
                next_id += 1;
                set.connecting(addr, ConnId(next_id));
                open.push((addr, now + FIRST_ANSWER));
            }
            now += Duration::from_millis(100);
        }
        None
    }

    /// Issue 19, attack 4: a tracker answers 200 candidates, the honest
    /// one last, the others tarpits spread over a number of hosts the seed
    /// picks (from one host to 199). The answer is kept whole, and the
    /// honest one is tried within 15 s.
    #[test]
    fn a_200_peer_answer_is_kept_whole_and_its_last_peer_tried_within_15_s() {
        for seed in 0..12u64 {
            let mut rng = crate::rand::Rng::seeded(seed);
            let hosts = [1, 2, 3, 7, 10, 16, 50, 199][rng.below(8)];
            let start = Instant::now();
            let mut set = PeerSet::default();
            let mut answer: Vec<SocketAddr> = (0..199u16)
                .map(|i| {
                    let host = (i as usize % hosts) as u16;
                    SocketAddr::from(([192, 0, (host >> 8) as u8 + 10, host as u8], 6000 + i))
                })
                .collect();
            let honest = SocketAddr::from(([203, 0, 113, 5], 6881));
            answer.push(honest);
            set.add(&answer, start);
            assert!(set.get(honest).is_some(), "seed {seed}: the 200th is kept");
            let found = search(&mut set, honest, start, Duration::from_secs(15));
            assert!(
                found.is_some(),
                "seed {seed}, {hosts} hosts: not tried within 15 s"
            );
        }
    }

    #[test]
    fn attempts_spread_over_networks_and_answered_peers_come_first() {
        let now = Instant::now();
        let mut set = PeerSet::default();
        let one_host: Vec<SocketAddr> = (0..64)
            .map(|p| SocketAddr::from(([198, 51, 100, 7], 7000 + p)))
            .collect();
        set.add(&one_host, now);
        let other = SocketAddr::from(([198, 51, 101, 7], 7000));
        set.add(&[other], now);
        let first = set.connectable(now);
        assert_eq!(first.len(), ATTEMPTS_PER_NETWORK + 1, "{first:?}");
        assert!(first.contains(&other));
        // One that answered before goes first, whatever its network did.
        set.up(one_host[40]);
        assert_eq!(set.connectable(now)[0], one_host[40]);
    }
}
