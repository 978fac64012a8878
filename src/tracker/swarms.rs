//! BitTorrent swarms (BEP 15): which peers announced which info hash. Pure:
//! no sockets, no clock; time comes in as `now` (whole seconds since the
//! tracker started).
//!
//! Invariants:
//! - A peer is its source IP and announced port, one entry per swarm; the
//!   `ip` field of an announce is never used, so nobody can list a victim's
//!   address. IPv4 and IPv6 peers are kept apart, and an asker only gets
//!   peers of its own family, in compact form (6 or 18 bytes).
//! - Every bound holds at all times: torrents by `max_torrents`, peers by
//!   `max_peers`, peers per swarm by `max_peers_per_torrent`, entries per
//!   host (an IPv4 address or an IPv6 /64) by `max_per_ip`. Nothing is ever
//!   evicted to make room: a host that announces junk hashes holds at most
//!   `max_per_ip` entries and so keeps at most that many torrents alive,
//!   and cannot push anyone else's out.
//! - A swarm with no peer left is removed; `completed` is lost with it.
//! - `seeders` of a swarm equals the number of its entries with the seeder
//!   bit set, and `per_ip` equals the entries each host holds (the unit
//!   tests check both after random churn).
//!
//! Memory: an IPv4 peer is a 12-byte entry (6 compact bytes ready to copy
//! into a response, 4 bytes of last-seen time with the seeder bit), an IPv6
//! peer 24; a swarm is 48 bytes beside its 20-byte key, and its first IPv4
//! peer lives inside those (no heap block: most swarms hold one peer). Small swarms are
//! searched linearly; a swarm past [`INDEX_FROM`] peers of a family gets an
//! open-addressing index of 4-byte slots (at most 3/4 full), so an announce
//! costs O(1) whatever the swarm's size.

use super::host_key;
use crate::rand::Rng;
use crate::wire::bep15::{AnnounceRequest, Event, InfoHash, ScrapeStats};
use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};

/// Size bounds and timing.
#[derive(Debug, Clone, Copy)]
pub struct SwarmLimits {
    pub max_torrents: usize,
    pub max_peers: usize,
    pub max_peers_per_torrent: usize,
    /// Entries one IPv4 address or IPv6 /64 may hold, over all swarms.
    pub max_per_ip: usize,
    /// The announce interval told to clients; a peer silent for two of them
    /// is gone.
    pub interval_secs: u32,
}

/// Why an announce was not recorded. The server answers with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A new swarm would pass `max_torrents`.
    TooManyTorrents,
    /// A new peer would pass `max_peers`.
    TooManyPeers,
    /// The asker's host holds `max_per_ip` entries already.
    TooManyFromHost,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::TooManyTorrents => "tracker full: too many torrents",
            Refusal::TooManyPeers => "tracker full: too many peers",
            Refusal::TooManyFromHost => "too many announces from your address",
        }
    }
}

/// What an announce returns besides the peers it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub seeders: u32,
    pub leechers: u32,
}

/// Peers of a family past this many get a hash index.
pub const INDEX_FROM: usize = 32;
/// Set in an entry's `seen` word for a seeder.
const SEEDER: u32 = 1 << 31;
const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry<const N: usize> {
    /// Compact address: IP then port, big-endian, as BEP 15 sends it.
    addr: [u8; N],
    /// Last announce (seconds) in the low 31 bits; [`SEEDER`] on top.
    seen: u32,
}

impl<const N: usize> Entry<N> {
    fn is_seeder(&self) -> bool {
        self.seen & SEEDER != 0
    }
}

/// A list's entries: one kept inline (most swarms hold one peer of a
/// family, and a heap block would cost 32 bytes more), more on the heap.
/// As large as a `Vec` (24 bytes for IPv4).
#[derive(Debug)]
enum Entries<const N: usize> {
    One(Entry<N>),
    Many(Vec<Entry<N>>),
}

impl<const N: usize> Default for Entries<N> {
    fn default() -> Self {
        Entries::Many(Vec::new())
    }
}

impl<const N: usize> std::ops::Deref for Entries<N> {
    type Target = [Entry<N>];
    fn deref(&self) -> &[Entry<N>] {
        match self {
            Entries::One(e) => std::slice::from_ref(e),
            Entries::Many(v) => v,
        }
    }
}

impl<const N: usize> std::ops::DerefMut for Entries<N> {
    fn deref_mut(&mut self) -> &mut [Entry<N>] {
        match self {
            Entries::One(e) => std::slice::from_mut(e),
            Entries::Many(v) => v,
        }
    }
}

impl<const N: usize> Entries<N> {
    fn capacity(&self) -> usize {
        match self {
            Entries::One(_) => 1,
            Entries::Many(v) => v.capacity(),
        }
    }

    /// The entries on the heap, moved there if one was inline.
    fn vec(&mut self, extra: usize) -> &mut Vec<Entry<N>> {
        if let Entries::One(e) = *self {
            let mut v = Vec::with_capacity(1 + extra);
            v.push(e);
            *self = Entries::Many(v);
        }
        match self {
            Entries::Many(v) => v,
            Entries::One(_) => unreachable!("moved to the heap above"),
        }
    }

    /// Back inline when one entry is left (its heap block freed).
    fn settle(&mut self) {
        if let Entries::Many(v) = self {
            if let [only] = v[..] {
                *self = Entries::One(only);
            }
        }
    }

    fn reserve_exact(&mut self, extra: usize) {
        self.vec(extra).reserve_exact(extra);
    }

    fn push(&mut self, e: Entry<N>) {
        match self {
            Entries::Many(v) if v.is_empty() && v.capacity() == 0 => *self = Entries::One(e),
            _ => self.vec(1).push(e),
        }
    }

    fn swap_remove(&mut self, pos: usize) -> Entry<N> {
        let gone = self.vec(0).swap_remove(pos);
        self.settle();
        gone
    }

    fn retain(&mut self, keep: impl FnMut(&Entry<N>) -> bool) {
        self.vec(0).retain(keep);
        self.settle();
    }

    fn shrink_to_fit(&mut self) {
        if let Entries::Many(v) = self {
            v.shrink_to_fit();
        }
    }
}

/// One family's peers of one swarm: a dense list (for sampling and
/// responses) and, once large, an index from address to position.
#[derive(Debug, Default)]
struct List<const N: usize> {
    entries: Entries<N>,
    /// Open addressing with linear probing; a power-of-two number of slots,
    /// each [`EMPTY`] or a position in `entries`. Boxed twice so a swarm
    /// without one pays 8 bytes, not a slice's 16.
    #[allow(clippy::box_collection)]
    index: Option<Box<Vec<u32>>>,
}

impl<const N: usize> List<N> {
    fn home(hasher: &RandomState, addr: &[u8; N], mask: usize) -> usize {
        hasher.hash_one(addr) as usize & mask
    }

    fn find(&self, hasher: &RandomState, addr: &[u8; N]) -> Option<usize> {
        let Some(table) = &self.index else {
            return self.entries.iter().position(|e| e.addr == *addr);
        };
        let mask = table.len() - 1;
        let mut i = Self::home(hasher, addr, mask);
        // Terminates: the table is never more than 3/4 full.
        loop {
            let slot = table[i];
            if slot == EMPTY {
                return None;
            }
            if self.entries.get(slot as usize).is_some_and(|e| e.addr == *addr) {
                return Some(slot as usize);
            }
            i = (i + 1) & mask;
        }
    }

    /// The index slot holding position `pos`.
    fn slot_of(&self, hasher: &RandomState, table: &[u32], pos: usize) -> Option<usize> {
        let mask = table.len() - 1;
        let mut i = Self::home(hasher, &self.entries[pos].addr, mask);
        for _ in 0..table.len() {
            match table[i] {
                EMPTY => return None,
                s if s as usize == pos => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
        None
    }

    fn rebuild(&mut self, hasher: &RandomState) {
        if self.entries.len() <= INDEX_FROM / 2 {
            self.index = None;
            return;
        }
        let slots = (self.entries.len() * 2).next_power_of_two().max(64);
        let mut table = Box::new(vec![EMPTY; slots]);
        let mask = slots - 1;
        for (pos, e) in self.entries.iter().enumerate() {
            let mut i = Self::home(hasher, &e.addr, mask);
            while table[i] != EMPTY {
                i = (i + 1) & mask;
            }
            table[i] = pos as u32;
        }
        self.index = Some(table);
    }

    fn push(&mut self, hasher: &RandomState, entry: Entry<N>) {
        // Grow one slot at a time while small: most swarms have a handful
        // of peers, and `Vec`'s doubling would waste up to half of them.
        // (The first entry goes inline, with no heap block at all.)
        let len = self.entries.len();
        if len > 0 && len == self.entries.capacity() && len < 8 {
            self.entries.reserve_exact(1);
        }
        self.entries.push(entry);
        let pos = self.entries.len() - 1;
        match &mut self.index {
            Some(table) if pos * 4 < table.len() * 3 => {
                let mask = table.len() - 1;
                let mut i = Self::home(hasher, &entry.addr, mask);
                while table[i] != EMPTY {
                    i = (i + 1) & mask;
                }
                table[i] = pos as u32;
            }
            // Too full, or no index yet but now large enough.
            Some(_) => self.rebuild(hasher),
            None if self.entries.len() > INDEX_FROM => self.rebuild(hasher),
            None => {}
        }
    }

    /// Removes the entry at `pos` (swap-remove) and keeps the index right.
    fn remove(&mut self, hasher: &RandomState, pos: usize) -> Entry<N> {
        if let Some(mut table) = self.index.take() {
            if let Some(hole) = self.slot_of(hasher, &table, pos) {
                self.delete_slot(hasher, &mut table, hole);
            }
            let gone = self.entries.swap_remove(pos);
            let last = self.entries.len();
            if pos < last {
                // The old last entry moved to `pos`: repoint its slot.
                let mask = table.len() - 1;
                let mut i = Self::home(hasher, &self.entries[pos].addr, mask);
                for _ in 0..table.len() {
                    if table[i] == last as u32 {
                        table[i] = pos as u32;
                        break;
                    }
                    i = (i + 1) & mask;
                }
            }
            self.index = Some(table);
            if self.entries.len() < INDEX_FROM / 2 {
                self.index = None;
            }
            gone
        } else {
            self.entries.swap_remove(pos)
        }
    }

    /// Empties index slot `hole` and shifts back the entries after it that
    /// probed past it (linear probing's deletion without tombstones).
    fn delete_slot(&self, hasher: &RandomState, table: &mut [u32], mut hole: usize) {
        let mask = table.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let slot = table[j];
            if slot == EMPTY {
                break;
            }
            let home = Self::home(hasher, &self.entries[slot as usize].addr, mask);
            // The entry at j may fill the hole if its home is not in
            // (hole, j], cyclically.
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                table[hole] = slot;
                hole = j;
            }
        }
        table[hole] = EMPTY;
    }

    /// Appends up to `want` compact addresses other than `skip`, from a
    /// random starting point.
    fn sample(&self, rng: &mut Rng, skip: &[u8; N], want: usize, out: &mut Vec<u8>) -> usize {
        let n = self.entries.len();
        if n == 0 || want == 0 {
            return 0;
        }
        let start = rng.below(n);
        let mut given = 0;
        for i in 0..n {
            let e = &self.entries[(start + i) % n];
            if e.addr == *skip {
                continue;
            }
            out.extend_from_slice(&e.addr);
            given += 1;
            if given == want {
                break;
            }
        }
        given
    }
}

/// The rarely needed parts of a swarm, boxed so an IPv4-only swarm pays 8
/// bytes for them.
#[derive(Debug, Default)]
struct V6Part {
    list: List<18>,
}

#[derive(Debug, Default)]
struct Torrent {
    v4: List<6>,
    v6: Option<Box<V6Part>>,
    seeders: u32,
    completed: u32,
}

impl Torrent {
    fn len(&self) -> usize {
        self.v4.entries.len() + self.v6.as_ref().map_or(0, |p| p.list.entries.len())
    }

    fn counts(&self) -> Counts {
        Counts {
            seeders: self.seeders,
            leechers: self.len() as u32 - self.seeders,
        }
    }
}

/// Every swarm the tracker knows.
#[derive(Debug)]
pub struct Swarms {
    limits: SwarmLimits,
    torrents: HashMap<InfoHash, Torrent>,
    per_host: HashMap<u128, u32>,
    peers: usize,
    v6_peers: usize,
    /// Keys the peer indexes, so an attacker cannot aim collisions.
    hasher: RandomState,
    rng: Rng,
}

/// What one announce does to the tables; decided before anything changes.
enum Plan {
    Update(usize),
    Insert,
    Ignore,
}

impl Swarms {
    pub fn new(limits: SwarmLimits, rng: Rng) -> Swarms {
        Swarms {
            limits,
            torrents: HashMap::new(),
            per_host: HashMap::new(),
            peers: 0,
            v6_peers: 0,
            hasher: RandomState::new(),
            rng,
        }
    }

    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    /// Peers in every swarm, and how many of them are IPv6.
    pub fn peer_counts(&self) -> (usize, usize) {
        (self.peers, self.v6_peers)
    }

    pub fn interval_secs(&self) -> u32 {
        self.limits.interval_secs
    }

    /// Records an announce from `ip` (the datagram's source, IPv4-mapped
    /// addresses already turned into IPv4) and appends up to `want` other
    /// peers of the asker's family to `out`, compact. A stopped peer is
    /// removed and gets no peers. A full swarm still answers, without
    /// recording the asker.
    pub fn announce(
        &mut self,
        req: &AnnounceRequest,
        ip: IpAddr,
        now: u32,
        want: usize,
        out: &mut Vec<u8>,
    ) -> Result<Counts, Refusal> {
        let seen = (now & !SEEDER) | if req.left == 0 { SEEDER } else { 0 };
        let port = req.port.to_be_bytes();
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                let addr = [o[0], o[1], o[2], o[3], port[0], port[1]];
                self.announce_in(req, ip, addr, seen, want, out, |t, _| Some(&mut t.v4))
            }
            IpAddr::V6(v6) => {
                let mut addr = [0u8; 18];
                addr[..16].copy_from_slice(&v6.octets());
                addr[16..].copy_from_slice(&port);
                self.announce_in(req, ip, addr, seen, want, out, |t, create| {
                    if create {
                        Some(&mut t.v6.get_or_insert_with(Default::default).list)
                    } else {
                        t.v6.as_mut().map(|p| &mut p.list)
                    }
                })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn announce_in<const N: usize>(
        &mut self,
        req: &AnnounceRequest,
        ip: IpAddr,
        addr: [u8; N],
        seen: u32,
        want: usize,
        out: &mut Vec<u8>,
        // The swarm's list for this family; `true` creates it if missing.
        list_of: impl Fn(&mut Torrent, bool) -> Option<&mut List<N>>,
    ) -> Result<Counts, Refusal> {
        let host = host_key(ip);
        let stopped = req.event == Event::Stopped;
        let exists = self.torrents.contains_key(&req.info_hash);
        // Decide first, so a refusal leaves no empty swarm behind.
        let plan = match self.torrents.get_mut(&req.info_hash) {
            Some(t) => match list_of(t, false).and_then(|l| l.find(&self.hasher, &addr)) {
                Some(pos) => Plan::Update(pos),
                None if stopped || req.port == 0 => Plan::Ignore,
                None if t.len() >= self.limits.max_peers_per_torrent => Plan::Ignore,
                None => Plan::Insert,
            },
            None if stopped || req.port == 0 => Plan::Ignore,
            None => Plan::Insert,
        };
        if let Plan::Insert = plan {
            if !exists && self.torrents.len() >= self.limits.max_torrents {
                return Err(Refusal::TooManyTorrents);
            }
            if self
                .per_host
                .get(&host)
                .is_some_and(|&n| n as usize >= self.limits.max_per_ip)
            {
                return Err(Refusal::TooManyFromHost);
            }
            if self.peers >= self.limits.max_peers {
                return Err(Refusal::TooManyPeers);
            }
        }
        let Some(torrent) = (match plan {
            Plan::Insert => Some(self.torrents.entry(req.info_hash).or_default()),
            _ => self.torrents.get_mut(&req.info_hash),
        }) else {
            // Unknown swarm and nothing to record (stopped, port 0).
            return Ok(Counts::default());
        };
        let is_v6 = N == 18;
        let completes = req.event == Event::Completed && req.left == 0;
        let mut removed = false;
        if let Some(list) = list_of(torrent, matches!(plan, Plan::Insert)) {
            match plan {
                Plan::Update(pos) if stopped => {
                    let gone = list.remove(&self.hasher, pos);
                    torrent.seeders -= u32::from(gone.is_seeder());
                    removed = true;
                }
                Plan::Update(pos) => {
                    let e = &mut list.entries[pos];
                    let was_seeder = e.is_seeder();
                    e.seen = seen;
                    let now_seeder = e.is_seeder();
                    torrent.seeders = torrent.seeders + u32::from(now_seeder) - u32::from(was_seeder);
                    torrent.completed += u32::from(completes && !was_seeder);
                }
                Plan::Insert => {
                    list.push(&self.hasher, Entry { addr, seen });
                    torrent.seeders += u32::from(seen & SEEDER != 0);
                    torrent.completed += u32::from(completes);
                    *self.per_host.entry(host).or_insert(0) += 1;
                    self.peers += 1;
                    self.v6_peers += usize::from(is_v6);
                }
                Plan::Ignore => {}
            }
        }
        let counts = torrent.counts();
        if !stopped {
            if let Some(list) = list_of(torrent, false) {
                list.sample(&mut self.rng, &addr, want, out);
            }
        }
        if removed {
            self.peers -= 1;
            self.v6_peers -= usize::from(is_v6);
            Self::release_host(&mut self.per_host, host);
            if torrent.v6.as_ref().is_some_and(|p| p.list.entries.is_empty()) {
                torrent.v6 = None;
            }
            if torrent.len() == 0 {
                self.torrents.remove(&req.info_hash);
            }
        }
        Ok(counts)
    }

    fn release_host(per_host: &mut HashMap<u128, u32>, host: u128) {
        if let MapEntry::Occupied(mut e) = per_host.entry(host) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// One torrent's counts for a scrape (zeros for an unknown hash, which
    /// is not created).
    pub fn scrape(&self, hash: &InfoHash) -> ScrapeStats {
        self.torrents.get(hash).map_or_else(ScrapeStats::default, |t| {
            let c = t.counts();
            ScrapeStats {
                seeders: c.seeders,
                completed: t.completed,
                leechers: c.leechers,
            }
        })
    }

    /// Removes every peer silent for two announce intervals, and every swarm
    /// left empty; returns how many peers went. O(peers): the server calls
    /// it about once a minute.
    pub fn expire(&mut self, now: u32) -> usize {
        let limit = self.limits.interval_secs.saturating_mul(2);
        let stale = |e_seen: u32| (now & !SEEDER).saturating_sub(e_seen & !SEEDER) > limit;
        self.retain(|_, seen| !stale(seen))
    }

    /// Removes every swarm whose hash `keep` refuses (after the access list
    /// changed); returns how many peers went.
    pub fn retain_torrents(&mut self, keep: impl Fn(&InfoHash) -> bool) -> usize {
        let mut gone = Vec::new();
        for (hash, _) in self.torrents.iter() {
            if !keep(hash) {
                gone.push(*hash);
            }
        }
        let mut removed = 0;
        for hash in gone {
            if let Some(t) = self.torrents.remove(&hash) {
                removed += t.len();
                self.forget_list(&t.v4);
                if let Some(p) = &t.v6 {
                    self.forget_list(&p.list);
                    self.v6_peers -= p.list.entries.len();
                }
            }
        }
        removed
    }

    fn forget_list<const N: usize>(&mut self, list: &List<N>) {
        for e in list.entries.iter() {
            Self::release_host(&mut self.per_host, host_of(&e.addr));
        }
        self.peers -= list.entries.len();
    }

    /// Keeps the peers for which `keep(hash, seen)` holds.
    fn retain(&mut self, keep: impl Fn(&InfoHash, u32) -> bool) -> usize {
        let (mut removed, mut removed_v6) = (0, 0);
        let per_host = &mut self.per_host;
        let hasher = &self.hasher;
        self.torrents.retain(|hash, t| {
            let mut seeders_gone = 0;
            removed += sweep(&mut t.v4, hasher, per_host, &mut seeders_gone, |s| keep(hash, s));
            if let Some(p) = &mut t.v6 {
                let n = sweep(&mut p.list, hasher, per_host, &mut seeders_gone, |s| {
                    keep(hash, s)
                });
                removed += n;
                removed_v6 += n;
                if p.list.entries.is_empty() {
                    t.v6 = None;
                }
            }
            t.seeders -= seeders_gone;
            t.len() > 0
        });
        self.peers -= removed;
        self.v6_peers -= removed_v6;
        removed
    }
}

/// The per-host key of a compact address.
fn host_of<const N: usize>(addr: &[u8; N]) -> u128 {
    if N == 6 {
        host_key(IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])))
    } else {
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&addr[..16]);
        host_key(IpAddr::V6(ip.into()))
    }
}

/// Drops the entries `keep` refuses from one list; returns how many went.
fn sweep<const N: usize>(
    list: &mut List<N>,
    hasher: &RandomState,
    per_host: &mut HashMap<u128, u32>,
    seeders_gone: &mut u32,
    keep: impl Fn(u32) -> bool,
) -> usize {
    let before = list.entries.len();
    list.entries.retain(|e| {
        let k = keep(e.seen);
        if !k {
            *seeders_gone += u32::from(e.is_seeder());
            Swarms::release_host(per_host, host_of(&e.addr));
        }
        k
    });
    let removed = before - list.entries.len();
    if removed > 0 {
        list.rebuild(hasher);
        if list.entries.capacity() > 2 * list.entries.len() + 8 {
            list.entries.shrink_to_fit();
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn limits() -> SwarmLimits {
        SwarmLimits {
            max_torrents: 100,
            max_peers: 10_000,
            max_peers_per_torrent: 1000,
            max_per_ip: 1000,
            interval_secs: 100,
        }
    }

    fn req(hash: u8, port: u16, left: u64, event: Event) -> AnnounceRequest {
        AnnounceRequest {
            // Ignored: peers are listed by their source address.
            ip: 0x0102_0304,
            ..AnnounceRequest::new(0, 0, [hash; 20], port, left, event)
        }
    }

    fn v4(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    fn announce(
        s: &mut Swarms,
        r: &AnnounceRequest,
        ip: IpAddr,
        now: u32,
    ) -> (Result<Counts, Refusal>, Vec<u8>) {
        let mut out = Vec::new();
        let res = s.announce(r, ip, now, 50, &mut out);
        (res, out)
    }

    /// An announce that must be accepted.
    fn put(s: &mut Swarms, r: &AnnounceRequest, ip: IpAddr, now: u32) {
        announce(s, r, ip, now).0.expect("announce accepted");
    }

    /// Recounts everything the tables cache and checks every index.
    fn check_invariants(s: &Swarms) {
        let mut hosts: HashMap<u128, u32> = HashMap::new();
        let (mut peers, mut v6) = (0, 0);
        for t in s.torrents.values() {
            assert!(t.len() > 0, "empty swarm kept");
            let mut seeders = 0;
            for e in t.v4.entries.iter() {
                seeders += u32::from(e.is_seeder());
                *hosts.entry(host_of(&e.addr)).or_default() += 1;
            }
            for (pos, e) in t.v4.entries.iter().enumerate() {
                assert_eq!(t.v4.find(&s.hasher, &e.addr), Some(pos));
            }
            if let Some(p) = &t.v6 {
                for (pos, e) in p.list.entries.iter().enumerate() {
                    seeders += u32::from(e.is_seeder());
                    *hosts.entry(host_of(&e.addr)).or_default() += 1;
                    assert_eq!(p.list.find(&s.hasher, &e.addr), Some(pos));
                }
                v6 += p.list.entries.len();
            }
            assert_eq!(t.seeders, seeders);
            peers += t.len();
        }
        assert_eq!(s.per_host, hosts);
        assert_eq!(s.peer_counts(), (peers, v6));
    }

    #[test]
    fn a_lone_peer_costs_no_heap_block() {
        // Issue 20, tracker memory: a swarm is its map slot; one IPv4 peer
        // lives inside it, and an index costs 8 bytes until it exists.
        assert_eq!(std::mem::size_of::<Entries<6>>(), 24);
        assert!(
            std::mem::size_of::<Torrent>() <= 48,
            "{}",
            std::mem::size_of::<Torrent>()
        );
        let hasher = RandomState::new();
        let mut list = List::<6>::default();
        let e = |i: u8| Entry {
            addr: [10, 0, 0, i, 0, 1],
            seen: 5,
        };
        list.push(&hasher, e(1));
        assert!(matches!(list.entries, Entries::One(_)));
        list.push(&hasher, e(2));
        assert!(matches!(list.entries, Entries::Many(_)));
        assert_eq!(list.find(&hasher, &e(2).addr), Some(1));
        list.remove(&hasher, 0);
        // Back inline, the survivor kept.
        assert!(matches!(list.entries, Entries::One(x) if x.addr == e(2).addr));
        list.remove(&hasher, 0);
        assert!(list.entries.is_empty());
        // Many peers: the index, then fewer again: inline.
        for i in 0..100 {
            list.push(&hasher, e(i));
        }
        assert!(list.index.is_some());
        for i in 0..100 {
            assert_eq!(
                list.find(&hasher, &e(i).addr).map(|p| list.entries[p].addr),
                Some(e(i).addr)
            );
        }
        while list.entries.len() > 1 {
            list.remove(&hasher, 0);
        }
        assert!(matches!(list.entries, Entries::One(_)) && list.index.is_none());
    }

    #[test]
    fn seeders_leechers_completed_and_stopped() {
        let mut s = Swarms::new(limits(), Rng::seeded(1));
        let (res, out) = announce(&mut s, &req(1, 6881, 100, Event::Started), v4(1), 0);
        assert_eq!(
            res,
            Ok(Counts {
                seeders: 0,
                leechers: 1
            })
        );
        assert!(out.is_empty(), "never the asker itself");
        let (res, out) = announce(&mut s, &req(1, 6882, 0, Event::Started), v4(2), 0);
        assert_eq!(
            res,
            Ok(Counts {
                seeders: 1,
                leechers: 1
            })
        );
        assert_eq!(out, [10, 0, 0, 1, 0x1a, 0xe1], "the source IP, not the ip field");
        // The leecher finishes: counted once, however often it says so.
        for _ in 0..3 {
            put(&mut s, &req(1, 6881, 0, Event::Completed), v4(1), 1);
        }
        assert_eq!(
            s.scrape(&[1; 20]),
            ScrapeStats {
                seeders: 2,
                completed: 1,
                leechers: 0
            }
        );
        // Stopped removes and lists nobody; the last one removes the swarm.
        let (res, out) = announce(&mut s, &req(1, 6881, 0, Event::Stopped), v4(1), 2);
        assert_eq!(
            res,
            Ok(Counts {
                seeders: 1,
                leechers: 0
            })
        );
        assert!(out.is_empty());
        put(&mut s, &req(1, 6882, 0, Event::Stopped), v4(2), 2);
        assert_eq!(s.torrent_count(), 0);
        assert_eq!(s.scrape(&[1; 20]), ScrapeStats::default());
        // Stopped or port 0 for an unknown swarm creates nothing.
        put(&mut s, &req(2, 6881, 0, Event::Stopped), v4(1), 2);
        put(&mut s, &req(2, 0, 0, Event::Started), v4(1), 2);
        assert_eq!(s.torrent_count(), 0);
        check_invariants(&s);
    }

    #[test]
    fn families_are_kept_apart() {
        let mut s = Swarms::new(limits(), Rng::seeded(2));
        let six = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        put(&mut s, &req(1, 1000, 0, Event::None), v4(1), 0);
        let (res, out) = announce(&mut s, &req(1, 2000, 5, Event::None), six, 0);
        assert_eq!(
            res,
            Ok(Counts {
                seeders: 1,
                leechers: 1
            }),
            "counts cover both families"
        );
        assert!(out.is_empty(), "no IPv4 peer for an IPv6 asker");
        let six2 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2));
        let (_, out) = announce(&mut s, &req(1, 3000, 5, Event::None), six2, 0);
        assert_eq!(out.len(), 18);
        assert_eq!(&out[16..], &2000u16.to_be_bytes());
        let (_, out) = announce(&mut s, &req(1, 1001, 5, Event::None), v4(2), 0);
        assert_eq!(out, [10, 0, 0, 1, 0x03, 0xe8]);
        assert_eq!(s.peer_counts(), (4, 2));
        check_invariants(&s);
    }

    #[test]
    fn num_want_is_honoured_without_repeats() {
        let mut s = Swarms::new(limits(), Rng::seeded(3));
        for n in 0..100u16 {
            put(&mut s, &req(1, 1000 + n, 1, Event::None), v4(1), 0);
        }
        let mut out = Vec::new();
        s.announce(&req(1, 1000, 1, Event::None), v4(1), 0, 30, &mut out)
            .unwrap();
        assert_eq!(out.len(), 30 * 6);
        let mut seen: Vec<&[u8]> = out.chunks(6).collect();
        assert!(!seen.contains(&&[10, 0, 0, 1, 0x03, 0xe8][..]), "the asker");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 30);
    }

    #[test]
    fn expiry_after_two_intervals() {
        let mut s = Swarms::new(limits(), Rng::seeded(4));
        put(&mut s, &req(1, 1, 0, Event::None), v4(1), 0);
        put(&mut s, &req(1, 2, 5, Event::None), v4(2), 150);
        assert_eq!(s.expire(200), 0, "exactly two intervals: still there");
        assert_eq!(s.expire(201), 1);
        assert_eq!(s.scrape(&[1; 20]).leechers, 1);
        assert_eq!(s.scrape(&[1; 20]).seeders, 0);
        assert_eq!(s.expire(351), 1);
        assert_eq!(s.torrent_count(), 0);
        check_invariants(&s);
    }

    #[test]
    fn limits_hold_and_nobody_is_evicted() {
        let mut s = Swarms::new(
            SwarmLimits {
                max_torrents: 10,
                max_peers: 15,
                max_peers_per_torrent: 3,
                max_per_ip: 8,
                interval_secs: 100,
            },
            Rng::seeded(5),
        );
        // A victim's swarm, then one host announcing junk hashes.
        put(&mut s, &req(200, 1, 0, Event::None), v4(9), 0);
        let junk: Vec<_> = (0..20u8)
            .map(|h| announce(&mut s, &req(h, 1, 0, Event::None), v4(1), 0).0)
            .collect();
        assert_eq!(junk.iter().filter(|r| r.is_ok()).count(), 8);
        assert_eq!(junk[8], Err(Refusal::TooManyFromHost));
        assert_eq!(s.scrape(&[200; 20]).seeders, 1, "the victim is still there");
        // Other hosts may still create swarms, up to max_torrents.
        assert!(announce(&mut s, &req(100, 1, 0, Event::None), v4(2), 0).0.is_ok());
        assert_eq!(
            announce(&mut s, &req(101, 1, 0, Event::None), v4(3), 0).0,
            Err(Refusal::TooManyTorrents)
        );
        assert_eq!(s.torrent_count(), 10);
        // A full swarm answers but does not record.
        for n in 4..8 {
            let (res, _) = announce(&mut s, &req(100, 1, 0, Event::None), v4(n), 0);
            assert!(res.is_ok());
        }
        assert_eq!(s.scrape(&[100; 20]).seeders, 3);
        // Existing peers can still update when everything is full.
        assert!(announce(&mut s, &req(200, 1, 5, Event::None), v4(9), 1).0.is_ok());
        assert_eq!(s.scrape(&[200; 20]).leechers, 1);
        // max_peers: 1 + 8 + 3 = 12 so far; three more fill it.
        for (hash, host) in [(200, 20), (200, 21), (0, 22)] {
            assert!(announce(&mut s, &req(hash, 1, 0, Event::None), v4(host), 0)
                .0
                .is_ok());
        }
        assert_eq!(s.peer_counts().0, 15);
        assert_eq!(
            announce(&mut s, &req(1, 1, 0, Event::None), v4(23), 0).0,
            Err(Refusal::TooManyPeers)
        );
        check_invariants(&s);
    }

    #[test]
    fn indexes_stay_right_under_churn() {
        let mut s = Swarms::new(
            SwarmLimits {
                max_torrents: 4,
                max_peers: 100_000,
                max_peers_per_torrent: 100_000,
                max_per_ip: 100_000,
                interval_secs: 100,
            },
            Rng::seeded(6),
        );
        let mut rng = Rng::seeded(60);
        for step in 0..20_000u32 {
            let hash = rng.below(3) as u8;
            let host = rng.below(40) as u8;
            let ip = if host.is_multiple_of(5) {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, u16::from(host), 0, 0, 0, 0, 1))
            } else {
                v4(host)
            };
            let port = 1 + rng.below(20) as u16;
            let event = match rng.below(10) {
                0..=2 => Event::Stopped,
                3 => Event::Completed,
                _ => Event::None,
            };
            let left = rng.below(2) as u64;
            let mut out = Vec::new();
            s.announce(&req(hash, port, left, event), ip, step / 10, 50, &mut out)
                .unwrap();
            if step % 2000 == 1999 {
                check_invariants(&s);
                s.expire(step / 10);
                check_invariants(&s);
            }
        }
        assert!(s.peer_counts().0 > INDEX_FROM, "the index was exercised");
        s.retain_torrents(|h| h[0] != 1);
        check_invariants(&s);
        assert_eq!(s.scrape(&[1; 20]), ScrapeStats::default());
    }

    #[test]
    fn ipv6_hosts_are_capped_by_their_64() {
        let mut s = Swarms::new(
            SwarmLimits {
                max_per_ip: 2,
                ..limits()
            },
            Rng::seeded(7),
        );
        let ip = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, last));
        assert!(announce(&mut s, &req(1, 1, 0, Event::None), ip(1), 0).0.is_ok());
        assert!(announce(&mut s, &req(2, 1, 0, Event::None), ip(2), 0).0.is_ok());
        assert_eq!(
            announce(&mut s, &req(3, 1, 0, Event::None), ip(3), 0).0,
            Err(Refusal::TooManyFromHost)
        );
        check_invariants(&s);
    }
}
