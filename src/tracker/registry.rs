//! The tracker's state: who is online and which files they hold. Pure: no
//! sockets, no clock; time comes in as `now` (whole seconds since the
//! tracker started).
//!
//! Invariants:
//! - A peer is identified by the UDP address it talks from; registering again
//!   from the same address updates the one entry, never adds a second.
//! - Every file record has at least one holder; the last holder leaving
//!   (withdraw, disconnect, expiry) removes the record.
//! - `peers[p].files` and `files[f].holders` mirror each other, and each
//!   side records the other's position, so removing a holder is O(1) even
//!   for a file with 100,000 holders (swap-remove, then fix the moved entry).
//! - Everything is bounded: peers by `max_peers`, file records by
//!   `max_files`, files per peer by [`MAX_FILES_PER_PEER`]; and one host
//!   (an IPv4 address or an IPv6 /64) holds at most `max_peers_per_host`
//!   peers and `max_files_per_host` (peer, file) links, so one address
//!   cannot fill the tracker and refuse everybody else.
//! - Wider networks (an IPv4 /24, an IPv6 /48) have caps of their own
//!   ([`Fairness`]), and the last `reserved_peers` peers and
//!   `reserved_files` file records of the tracker's limits go only to
//!   networks that hold little ([`SMALL_NETWORK_PEERS`],
//!   [`SMALL_NETWORK_FILES`]): many networks working together can fill the
//!   rest, never the part kept for a new honest host.
//! - A file id is derived here from the announce ([`FileEntry::id`]), never
//!   taken from it: nobody can list a name or size under another file's id.
//! - A username belongs to the client that registered it: only a
//!   registration presenting the same secret (the same client restarting,
//!   from any address) takes it over; anybody else gets `UsernameTaken`.
//!   The peer keeps a keyed 64-bit hash of its secret, not the secret.
//! - Usernames are unique among online peers, compared by
//!   [`names::username_key`] (NFC, lower case). The index holds a keyed
//!   64-bit hash of that key, not the name (memory per peer is a target):
//!   two different names collide with odds of 2^-64, under a key the
//!   senders do not know, and then the second is refused as taken.
//! - `file_order` lists the live file keys densely (each record knows its
//!   position), so a page of `ListFiles` costs O(page), not a walk over a
//!   slab of up to `max_files` slots left sparse by withdrawals. (Peers are
//!   paged over their slab: at most `max_peers` slots, and memory per peer
//!   is a target.)
//! - Files are indexed by the first 20 bytes of their id (the full id is
//!   checked on every lookup), so BitTorrent clients, whose info hashes are
//!   20 bytes, find the project's files through the same one index
//!   ([`Registry::bt_view`]). A second id with a taken prefix is not
//!   tracked: ids are SHA-256 outputs, so only a deliberate forgery collides,
//!   and it gets what a forged name or size gets already.
//! - `FindFiles` is answered from two ordered indexes of (key, file):
//!   a keyed hash of the exact name, and the first 8 bytes of the id. A
//!   page costs O(log n + page) whatever the number of files, so a name
//!   or an id prefix is found however long the list is.
//! - Listing and finding need no registration: a connection id (proof of
//!   address) is enough, so a read-only client takes nobody's place.

use super::{host_key, network_key};
use crate::meta::{chunk_count, MAX_CHUNKS, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::names;
use crate::rand::Rng;
use crate::wire::bep15::InfoHash;
use crate::wire::tracker::{
    error_reply, ClientSecret, ErrorCode, FileEntry, FileInfo, FileQuery, FindCursor, Page, PeerInfo,
    ReplyBody, RequestBody, Role, MAX_FOUND_PER_REPLY, MAX_PEERS_PER_REPLY, MIN_PREFIX_DIGITS,
};
use crate::wire::FileId;
use slab::Slab;
use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::collections::{BTreeSet, HashSet};
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub use crate::wire::tracker::MAX_FILES_PER_PEER;

/// Limits and timing the registry enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_peers: usize,
    pub max_files: usize,
    /// Peers registered from one host at once.
    pub max_peers_per_host: usize,
    /// (peer, file) links held by the peers of one host at once.
    pub max_files_per_host: usize,
    /// Keep-alive interval; a peer silent for three of them expires.
    pub interval_secs: u32,
    /// Caps per network and the share kept for small networks.
    pub fair: Fairness,
}

impl Limits {
    /// The tracker's defaults (`pytorrent-tracker` without flags).
    pub const DEFAULT: Limits = Limits {
        max_peers: 10_000,
        max_files: 1_000_000,
        max_peers_per_host: 64,
        max_files_per_host: 16_384,
        interval_secs: 30,
        fair: Fairness {
            max_peers_per_network: 256,
            max_files_per_network: 65_536,
            reserved_peers: 10_000 / 20,
            reserved_files: 1_000_000 / 20,
        },
    };
}

/// Fair share across networks (an IPv4 /24, an IPv6 /48): what one network
/// may hold, and how much of the tracker is kept for networks that hold
/// little, so a new honest host can announce a file however many networks
/// an attacker fills the rest from.
#[derive(Debug, Clone, Copy)]
pub struct Fairness {
    pub max_peers_per_network: usize,
    /// (peer, file) links, as for hosts.
    pub max_files_per_network: usize,
    /// The last this many peers of `max_peers` go only to networks with
    /// fewer than [`SMALL_NETWORK_PEERS`] peers.
    pub reserved_peers: usize,
    /// The last this many file records of `max_files` go only to networks
    /// holding fewer than [`SMALL_NETWORK_FILES`] links.
    pub reserved_files: usize,
}

impl Fairness {
    /// No network caps and nothing reserved (tests of other things).
    pub const OFF: Fairness = Fairness {
        max_peers_per_network: usize::MAX,
        max_files_per_network: usize::MAX,
        reserved_peers: 0,
        reserved_files: 0,
    };
}

/// Holders sampled for one `GetPeers` answer before it is spread over
/// hosts (see [`Registry::get_peers`]): four answers' worth.
const PEER_SAMPLE: usize = 4 * (MAX_PEERS_PER_REPLY + 1);

/// A network with fewer peers than this may take a reserved peer place.
pub const SMALL_NETWORK_PEERS: u32 = 4;
/// A network holding fewer (peer, file) links than this may create a file
/// record in the reserved share (a host sharing a few files, not a flood).
pub const SMALL_NETWORK_FILES: u32 = 64;

/// What one host (or one network) holds, for its caps.
#[derive(Debug, Clone, Copy, Default)]
struct HostUse {
    peers: u32,
    files: u32,
}

/// A holder of a file: the peer's slab key, whether it holds every chunk,
/// and where this file sits in that peer's `files` list.
#[derive(Debug, Clone, Copy)]
struct Holder {
    peer: u32,
    complete: bool,
    slot_in_peer: u32,
}

/// A file a peer holds, and where the peer sits in that file's `holders`.
#[derive(Debug, Clone, Copy)]
struct Held {
    file: u32,
    slot_in_file: u32,
}

/// A peer's UDP address in 18 bytes (IPv4 as IPv4-mapped IPv6) instead of
/// `SocketAddr`'s 32: it is stored twice per peer (entry and index), and
/// the tracker's memory per peer is a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PeerAddr {
    ip: [u8; 16],
    port: u16,
}

impl PeerAddr {
    fn new(addr: SocketAddr) -> PeerAddr {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        PeerAddr {
            ip,
            port: addr.port(),
        }
    }

    /// The peer's host as a 64-bit key: the /64 of an IPv6 address is its
    /// top 64 bits, and an IPv4 address (as `::ffff:a.b.c.d`) fits in the
    /// bottom 64, where it could only meet the reserved ::/8 range. Half
    /// the size of a `u128` key in a table with an entry per host.
    fn host(&self) -> u64 {
        let key = host_key(self.with_port(0).ip());
        (key >> 64) as u64 | key as u64
    }

    /// The peer's network (IPv4 /24, IPv6 /48) as a 64-bit key, folded as
    /// in [`PeerAddr::host`].
    fn network(&self) -> u64 {
        let key = network_key(self.with_port(0).ip());
        (key >> 64) as u64 | key as u64
    }

    /// The peer's IP with another port (its TCP serving port).
    fn with_port(&self, port: u16) -> SocketAddr {
        let v6 = Ipv6Addr::from(self.ip);
        match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::new(IpAddr::V6(v6), port),
        }
    }
}

/// Pushes onto a list that is usually of length one, without `Vec`'s
/// default first allocation of four slots (most files have few holders,
/// and this is per-peer memory).
fn push_small<T>(list: &mut Vec<T>, item: T) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(item);
}

/// A peer's files: one inline (most peers share one file or a few), more
/// in a `Vec`. As big as a bare `Vec`, without its heap block for one file.
#[derive(Debug)]
enum HeldList {
    Empty,
    One(Held),
    Many(Vec<Held>),
}

impl std::ops::Deref for HeldList {
    type Target = [Held];

    fn deref(&self) -> &[Held] {
        match self {
            HeldList::Empty => &[],
            HeldList::One(h) => std::slice::from_ref(h),
            HeldList::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for HeldList {
    fn deref_mut(&mut self) -> &mut [Held] {
        match self {
            HeldList::Empty => &mut [],
            HeldList::One(h) => std::slice::from_mut(h),
            HeldList::Many(v) => v,
        }
    }
}

impl HeldList {
    fn push(&mut self, item: Held) {
        match self {
            HeldList::Empty => *self = HeldList::One(item),
            HeldList::One(first) => *self = HeldList::Many(vec![*first, item]),
            HeldList::Many(v) => v.push(item),
        }
    }

    /// Removes entry `i`, the last one taking its place.
    fn swap_remove(&mut self, i: usize) -> Held {
        match self {
            HeldList::Many(v) if v.len() > 2 => v.swap_remove(i),
            HeldList::Many(v) => {
                let gone = v.swap_remove(i);
                *self = HeldList::One(v[0]);
                gone
            }
            HeldList::One(h) if i == 0 => {
                let gone = *h;
                *self = HeldList::Empty;
                gone
            }
            _ => panic!("HeldList::swap_remove({i}) out of range"),
        }
    }
}

/// Bytes of a username kept inline.
const INLINE_NAME: usize = 30;

/// A username, inline when it fits in [`INLINE_NAME`] bytes (nearly all
/// do): 32 bytes in the peer instead of a 16-byte `Box<str>` and its
/// 32-byte heap block.
#[derive(Debug)]
enum Username {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl From<&str> for Username {
    fn from(name: &str) -> Username {
        if name.len() <= INLINE_NAME {
            let mut bytes = [0; INLINE_NAME];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Username::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            Username::Heap(name.into())
        }
    }
}

impl std::ops::Deref for Username {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            // Copied whole from a `&str`, so this cannot fail.
            Username::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len as usize]).unwrap_or(""),
            Username::Heap(name) => name,
        }
    }
}

#[derive(Debug)]
struct Peer {
    addr: PeerAddr,
    username: Username,
    tcp_port: u16,
    role: Role,
    last_seen: u32,
    /// Keyed hash of the client's secret ([`Registry::secret_hash`]).
    secret: u64,
    files: HeldList,
}

#[derive(Debug)]
struct FileRecord {
    id: FileId,
    name: Box<str>,
    size: u64,
    /// Position in `Registry::file_order`.
    pos: u32,
    holders: Vec<Holder>,
    /// How many of `holders` are complete (kept so listing is O(1) a row).
    complete: u32,
}

/// Who is online and what they share.
#[derive(Debug)]
pub struct Registry {
    limits: Limits,
    peers: Slab<Peer>,
    peer_by_addr: HashMap<PeerAddr, u32>,
    /// Keyed hash of each online peer's [`names::username_key`].
    peer_by_name: HashMap<u64, u32>,
    name_hasher: RandomState,
    per_host: HashMap<u64, HostUse>,
    per_network: HashMap<u64, HostUse>,
    files: Slab<FileRecord>,
    /// Keyed by the first 20 bytes of the id; see the module's invariants.
    file_by_prefix: HashMap<InfoHash, u32>,
    file_order: Vec<u32>,
    /// (keyed hash of the exact name, file) for `FindFiles` by name.
    file_by_name: BTreeSet<(u64, u32)>,
    /// (first 8 bytes of the id, file) for `FindFiles` by id prefix.
    file_by_id64: BTreeSet<(u64, u32)>,
    rng: Rng,
}

/// The refusal of a username another online peer has.
fn taken() -> ReplyBody {
    error_reply(
        ErrorCode::UsernameTaken,
        "that username is in use by another online client (not this one: its secret differs); choose another",
    )
}

/// The first 8 bytes of a file id, big-endian: its key in the prefix index.
fn id64(id: &FileId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id[..8]);
    u64::from_be_bytes(b)
}

/// Removes the key at `pos` from a dense order list; returns the key that
/// moved into `pos` (its position must be updated), if any.
fn remove_ordered(order: &mut Vec<u32>, pos: u32) -> Option<u32> {
    order.swap_remove(pos as usize);
    order.get(pos as usize).copied()
}

/// The first 20 bytes of a file id: its key in the index, and the info hash
/// under which BitTorrent clients find it.
fn prefix(id: &FileId) -> InfoHash {
    let mut p = [0u8; 20];
    p.copy_from_slice(&id[..20]);
    p
}

impl Registry {
    pub fn new(limits: Limits, rng: Rng) -> Registry {
        Registry {
            limits,
            peers: Slab::new(),
            peer_by_addr: HashMap::new(),
            peer_by_name: HashMap::new(),
            name_hasher: RandomState::new(),
            per_host: HashMap::new(),
            per_network: HashMap::new(),
            files: Slab::new(),
            file_by_prefix: HashMap::new(),
            file_order: Vec::new(),
            file_by_name: BTreeSet::new(),
            file_by_id64: BTreeSet::new(),
            rng,
        }
    }

    fn name_hash(&self, username: &str) -> u64 {
        self.name_hasher.hash_one(names::username_key(username))
    }

    /// The key of a file name in `file_by_name` (exact, not folded: `--get`
    /// names a file exactly as listed).
    fn file_name_hash(&self, name: &str) -> u64 {
        self.name_hasher.hash_one((b"file", name))
    }

    fn secret_hash(&self, secret: &ClientSecret) -> u64 {
        self.name_hasher.hash_one((b"secret", secret))
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The file whose id is exactly `id`.
    fn lookup(&self, id: &FileId) -> Option<u32> {
        let f = *self.file_by_prefix.get(&prefix(id))?;
        (self.files[f as usize].id == *id).then_some(f)
    }

    /// A project file seen as a BitTorrent swarm: `(seeders, leechers)` of
    /// the file whose id starts with `hash`, and up to `want` of its
    /// holders' TCP addresses in the asker's family (`ipv6`), never
    /// `asker` itself, appended in compact form (6 or 18 bytes each).
    /// `None` when no project file has that prefix.
    pub fn bt_view(
        &mut self,
        hash: &InfoHash,
        ipv6: bool,
        asker: SocketAddr,
        want: usize,
        out: &mut Vec<u8>,
    ) -> Option<(u32, u32)> {
        let f = *self.file_by_prefix.get(hash)?;
        let rec = &self.files[f as usize];
        let counts = (rec.complete, rec.holders.len() as u32 - rec.complete);
        let n = rec.holders.len();
        // A random starting point, then in order: cheap, and the holder
        // order changes with every swap-remove anyway.
        let start = if n == 0 { 0 } else { self.rng.below(n) };
        let mut given = 0;
        for i in 0..n {
            if given >= want {
                break;
            }
            let peer = &self.peers[rec.holders[(start + i) % n].peer as usize];
            let addr = peer.addr.with_port(peer.tcp_port);
            if addr.ip() == asker.ip() && addr.port() == asker.port() {
                continue;
            }
            match addr {
                SocketAddr::V4(v4) if !ipv6 => {
                    out.extend_from_slice(&v4.ip().octets());
                    out.extend_from_slice(&v4.port().to_be_bytes());
                }
                SocketAddr::V6(v6) if ipv6 => {
                    out.extend_from_slice(&v6.ip().octets());
                    out.extend_from_slice(&v6.port().to_be_bytes());
                }
                _ => continue,
            }
            given += 1;
        }
        Some(counts)
    }

    /// The username of the peer registered from `from` (for log lines).
    pub fn username_at(&self, from: SocketAddr) -> Option<&str> {
        let &key = self.peer_by_addr.get(&PeerAddr::new(from))?;
        Some(&self.peers[key as usize].username)
    }

    /// Answers one authenticated request from `from`. (`Connect` is the
    /// server's business; it never reaches here.)
    pub fn handle(&mut self, from: SocketAddr, body: RequestBody, now: u32) -> ReplyBody {
        let known = self.peer_by_addr.get(&PeerAddr::new(from)).copied();
        match body {
            RequestBody::Register {
                username,
                port,
                role,
                secret,
            } => return self.register(from, &username, port, role, &secret, now),
            // Reading needs no registration (see the module's invariants),
            // unless the sender says it is a member: then it hears that it
            // was forgotten, and registers and announces before it reads.
            RequestBody::ListPeers { cursor, member } if !member || known.is_some() => {
                return self.list_peers(known, cursor)
            }
            RequestBody::ListFiles { cursor, member } if !member || known.is_some() => {
                return self.list_files(cursor)
            }
            RequestBody::FindFiles {
                query,
                cursor,
                member,
            } if !member || known.is_some() => return self.find_files(&query, cursor),
            _ => {}
        }
        let Some(key) = known else {
            return error_reply(ErrorCode::NotRegistered, "not registered: register first");
        };
        self.peers[key as usize].last_seen = now;
        match body {
            RequestBody::Connect { .. }
            | RequestBody::Register { .. }
            | RequestBody::ListPeers { .. }
            | RequestBody::ListFiles { .. }
            | RequestBody::FindFiles { .. } => error_reply(ErrorCode::BadRequest, "unexpected request"),
            RequestBody::Announce { files } => self.announce(key, &files),
            RequestBody::Withdraw { ids } => {
                let removed = ids.iter().filter(|id| self.withdraw(key, id)).count();
                ReplyBody::Withdrawn {
                    removed: removed as u32,
                }
            }
            RequestBody::GetPeers { id } => self.get_peers(key, id),
            RequestBody::KeepAlive => ReplyBody::Ok,
            RequestBody::ChangeUsername { username } => {
                if let Err(e) = names::check_username(&username) {
                    return error_reply(ErrorCode::BadUsername, &format!("username {e}"));
                }
                let hash = self.name_hash(&username);
                if self.peer_by_name.get(&hash).is_some_and(|&owner| owner != key) {
                    return taken();
                }
                self.set_username(key, &username, hash);
                ReplyBody::Ok
            }
            RequestBody::Disconnect => {
                self.remove_peer(key);
                ReplyBody::Ok
            }
        }
    }

    /// Removes every peer silent for three keep-alive intervals; returns how
    /// many went.
    pub fn expire(&mut self, now: u32) -> usize {
        let limit = self.limits.interval_secs.saturating_mul(3);
        let stale: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.last_seen) >= limit)
            .map(|(k, _)| k as u32)
            .collect();
        for &key in &stale {
            self.remove_peer(key);
        }
        stale.len()
    }

    fn register(
        &mut self,
        from: SocketAddr,
        username: &str,
        port: u16,
        role: Role,
        secret: &ClientSecret,
        now: u32,
    ) -> ReplyBody {
        if let Err(e) = names::check_username(username) {
            return error_reply(ErrorCode::BadUsername, &format!("username {e}"));
        }
        if port == 0 {
            return error_reply(ErrorCode::BadRequest, "TCP port 0 is not a serving port");
        }
        let interval_secs = self.limits.interval_secs;
        let from = PeerAddr::new(from);
        let hash = self.name_hash(username);
        let secret = self.secret_hash(secret);
        let owner = self.peer_by_name.get(&hash).copied();
        let known = self.peer_by_addr.get(&from).copied();
        if let Some(owner) = owner.filter(|&o| Some(o) != known) {
            // Only the client holding the name's secret takes it over: that
            // client restarting (a new UDP port, maybe a new address) before
            // its old entry expired. A neighbour on the same host is not it.
            if self.peers[owner as usize].secret != secret {
                return taken();
            }
            self.remove_peer(owner);
        }
        if let Some(key) = known {
            self.set_username(key, username, hash);
            let peer = &mut self.peers[key as usize];
            peer.tcp_port = port;
            peer.role = role;
            peer.last_seen = now;
            peer.secret = secret;
            return ReplyBody::Registered { interval_secs };
        }
        if let Err(refusal) = self.admit_peer(&from) {
            return refusal;
        }
        self.per_host.entry(from.host()).or_default().peers += 1;
        self.per_network.entry(from.network()).or_default().peers += 1;
        let key = self.peers.insert(Peer {
            addr: from,
            username: username.into(),
            tcp_port: port,
            role,
            last_seen: now,
            secret,
            files: HeldList::Empty,
        }) as u32;
        self.peer_by_addr.insert(from, key);
        self.peer_by_name.insert(hash, key);
        ReplyBody::Registered { interval_secs }
    }

    /// Whether a new peer from `from` fits: the tracker's limit (its
    /// reserved end only for small networks), its host's and its
    /// network's caps.
    fn admit_peer(&self, from: &PeerAddr) -> Result<(), ReplyBody> {
        let fair = &self.limits.fair;
        let host = self.per_host.get(&from.host()).map_or(0, |h| h.peers);
        let net = self.per_network.get(&from.network()).map_or(0, |h| h.peers);
        let open = self.limits.max_peers.saturating_sub(fair.reserved_peers);
        let full = self.peers.len() >= self.limits.max_peers
            || (self.peers.len() >= open && net >= SMALL_NETWORK_PEERS);
        if full {
            return Err(error_reply(
                ErrorCode::TrackerFull,
                &format!(
                    "tracker is full ({} peers, the last {} kept for networks with fewer than {SMALL_NETWORK_PEERS}); try again later",
                    self.peers.len(),
                    fair.reserved_peers
                ),
            ));
        }
        if host as usize >= self.limits.max_peers_per_host {
            return Err(error_reply(
                ErrorCode::HostLimit,
                &format!("your address has {host} peers registered already (the limit)"),
            ));
        }
        if net as usize >= fair.max_peers_per_network {
            return Err(error_reply(
                ErrorCode::HostLimit,
                &format!("your network has {net} peers registered already (the limit)"),
            ));
        }
        Ok(())
    }

    /// Gives peer `key` a username whose [`Registry::name_hash`] is `hash`
    /// (found free or its own by the caller), keeping the name index in
    /// step.
    fn set_username(&mut self, key: u32, username: &str, hash: u64) {
        let old = self.name_hash(&self.peers[key as usize].username);
        if self.peer_by_name.get(&old) == Some(&key) {
            self.peer_by_name.remove(&old);
        }
        self.peer_by_name.insert(hash, key);
        self.peers[key as usize].username = username.into();
    }

    fn announce(&mut self, peer: u32, entries: &[FileEntry]) -> ReplyBody {
        for (i, entry) in entries.iter().enumerate() {
            if let Err(e) = names::check_file_name(&entry.name) {
                return error_reply(
                    ErrorCode::BadFileName,
                    &format!("file {} of this announce: name {e}", i + 1),
                );
            }
            if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&entry.chunk_size)
                || chunk_count(entry.size, entry.chunk_size) > MAX_CHUNKS as u64
            {
                return error_reply(
                    ErrorCode::BadRequest,
                    &format!("file {} of this announce: impossible size or chunk size", i + 1),
                );
            }
        }
        let mut accepted = 0u32;
        for entry in entries {
            match self.add_holder(peer, entry.id(), entry) {
                Ok(()) => accepted += 1,
                Err((code, limit)) => {
                    return error_reply(
                        code,
                        &format!("accepted {accepted} of {}: {limit}", entries.len()),
                    )
                }
            }
        }
        ReplyBody::Announced { accepted }
    }

    /// Makes `peer` a holder of `entry` (whose id is `id`), creating the
    /// file record if needed.
    fn add_holder(&mut self, peer: u32, id: FileId, entry: &FileEntry) -> Result<(), (ErrorCode, String)> {
        let existing = self.lookup(&id);
        if existing.is_none() && self.file_by_prefix.contains_key(&prefix(&id)) {
            // Another id with these 20 bytes: a forgery (see the module's
            // invariants); not tracked.
            return Ok(());
        }
        if let Some(f) = existing {
            // Already a holder: only its completeness may change. Search the
            // peer's own list (short), not the file's holders (maybe 100,000).
            let held = self.peers[peer as usize]
                .files
                .iter()
                .find(|h| h.file == f)
                .copied();
            if let Some(held) = held {
                let rec = &mut self.files[f as usize];
                let h = &mut rec.holders[held.slot_in_file as usize];
                if h.complete != entry.complete {
                    h.complete = entry.complete;
                    if entry.complete {
                        rec.complete += 1;
                    } else {
                        rec.complete -= 1;
                    }
                }
                return Ok(());
            }
        }
        if self.peers[peer as usize].files.len() >= MAX_FILES_PER_PEER {
            return Err((
                ErrorCode::TooManyFiles,
                format!("a peer may share at most {MAX_FILES_PER_PEER} files"),
            ));
        }
        let host = self.peers[peer as usize].addr.host();
        let network = self.peers[peer as usize].addr.network();
        let held_by_host = self.per_host.get(&host).map_or(0, |h| h.files);
        if held_by_host as usize >= self.limits.max_files_per_host {
            return Err((
                ErrorCode::HostLimit,
                format!("your address shares {held_by_host} files already (the limit)"),
            ));
        }
        let held_by_net = self.per_network.get(&network).map_or(0, |h| h.files);
        if held_by_net as usize >= self.limits.fair.max_files_per_network {
            return Err((
                ErrorCode::HostLimit,
                format!("your network shares {held_by_net} files already (the limit)"),
            ));
        }
        let file = match existing {
            Some(f) => f,
            None => {
                let open = self
                    .limits
                    .max_files
                    .saturating_sub(self.limits.fair.reserved_files);
                if self.files.len() >= self.limits.max_files
                    || (self.files.len() >= open && held_by_net >= SMALL_NETWORK_FILES)
                {
                    return Err((
                        ErrorCode::TooManyFiles,
                        format!(
                            "the tracker holds {} files (limit {}, the last {} kept for networks sharing fewer than {SMALL_NETWORK_FILES})",
                            self.files.len(),
                            self.limits.max_files,
                            self.limits.fair.reserved_files
                        ),
                    ));
                }
                let f = self.files.insert(FileRecord {
                    id,
                    name: entry.name.as_str().into(),
                    size: entry.size,
                    pos: self.file_order.len() as u32,
                    holders: Vec::new(),
                    complete: 0,
                }) as u32;
                self.file_order.push(f);
                self.file_by_prefix.insert(prefix(&id), f);
                let name_key = self.file_name_hash(&entry.name);
                self.file_by_name.insert((name_key, f));
                self.file_by_id64.insert((id64(&id), f));
                f
            }
        };
        if let Some(h) = self.per_host.get_mut(&host) {
            h.files += 1;
        }
        if let Some(h) = self.per_network.get_mut(&network) {
            h.files += 1;
        }
        let p = &mut self.peers[peer as usize];
        let rec = &mut self.files[file as usize];
        p.files.push(Held {
            file,
            slot_in_file: rec.holders.len() as u32,
        });
        push_small(
            &mut rec.holders,
            Holder {
                peer,
                complete: entry.complete,
                slot_in_peer: (p.files.len() - 1) as u32,
            },
        );
        rec.complete += u32::from(entry.complete);
        Ok(())
    }

    /// Stops `peer` holding file `id`; true if it did hold it.
    fn withdraw(&mut self, peer: u32, id: &FileId) -> bool {
        let Some(file) = self.lookup(id) else {
            return false;
        };
        match self.peers[peer as usize]
            .files
            .iter()
            .position(|h| h.file == file)
        {
            Some(slot) => {
                self.unlink(peer, slot);
                true
            }
            None => false,
        }
    }

    /// Removes entry `slot` of `peer`'s files and the matching holder entry,
    /// fixing the positions of whatever the two swap-removes moved.
    fn unlink(&mut self, peer: u32, slot: usize) {
        let held = self.peers[peer as usize].files.swap_remove(slot);
        let addr = self.peers[peer as usize].addr;
        if let Some(h) = self.per_host.get_mut(&addr.host()) {
            h.files -= 1;
        }
        if let Some(h) = self.per_network.get_mut(&addr.network()) {
            h.files -= 1;
        }
        if let Some(moved) = self.peers[peer as usize].files.get(slot).copied() {
            self.files[moved.file as usize].holders[moved.slot_in_file as usize].slot_in_peer = slot as u32;
        }
        let rec = &mut self.files[held.file as usize];
        let gone = rec.holders.swap_remove(held.slot_in_file as usize);
        rec.complete -= u32::from(gone.complete);
        if let Some(moved) = rec.holders.get(held.slot_in_file as usize).copied() {
            self.peers[moved.peer as usize].files[moved.slot_in_peer as usize].slot_in_file =
                held.slot_in_file;
        }
        if rec.holders.is_empty() {
            let rec = self.files.remove(held.file as usize);
            self.file_by_prefix.remove(&prefix(&rec.id));
            let name_key = self.file_name_hash(&rec.name);
            self.file_by_name.remove(&(name_key, held.file));
            self.file_by_id64.remove(&(id64(&rec.id), held.file));
            if let Some(moved) = remove_ordered(&mut self.file_order, rec.pos) {
                self.files[moved as usize].pos = rec.pos;
            }
        }
    }

    fn remove_peer(&mut self, peer: u32) {
        while let Some(last) = self.peers[peer as usize].files.len().checked_sub(1) {
            self.unlink(peer, last);
        }
        let p = self.peers.remove(peer as usize);
        self.peer_by_addr.remove(&p.addr);
        let name = self.name_hash(&p.username);
        if self.peer_by_name.get(&name) == Some(&peer) {
            self.peer_by_name.remove(&name);
        }
        for (table, key) in [
            (&mut self.per_host, p.addr.host()),
            (&mut self.per_network, p.addr.network()),
        ] {
            if let MapEntry::Occupied(mut e) = table.entry(key) {
                e.get_mut().peers -= 1;
                if e.get().peers == 0 {
                    e.remove();
                }
            }
        }
    }

    /// A page of the peer list; `asker` (if registered) is marked as "you".
    fn list_peers(&self, asker: Option<u32>, cursor: u32) -> ReplyBody {
        let mut page = Page::new();
        let mut next = None;
        for key in cursor as usize..self.peers.capacity() {
            let Some(p) = self.peers.get(key) else { continue };
            let row = PeerInfo {
                username: p.username.to_string(),
                addr: p.addr.with_port(p.tcp_port),
                role: p.role,
                files: p.files.len() as u32,
                is_you: asker == Some(key as u32),
            };
            if page.try_push(row).is_err() {
                next = Some(key as u32);
                break;
            }
        }
        ReplyBody::PeerList {
            peers: page.into_items(),
            next,
        }
    }

    /// The row of file `key` in a list or a find.
    fn file_info(&self, key: u32) -> FileInfo {
        let f = &self.files[key as usize];
        FileInfo {
            id: f.id,
            name: f.name.to_string(),
            size: f.size,
            seeders: f.complete,
            partial: f.holders.len() as u32 - f.complete,
        }
    }

    fn list_files(&self, cursor: u32) -> ReplyBody {
        let mut page = Page::new();
        let mut next = None;
        for (i, &key) in self.file_order.iter().enumerate().skip(cursor as usize) {
            if page.try_push(self.file_info(key)).is_err() {
                next = Some(i as u32);
                break;
            }
        }
        ReplyBody::FileList {
            files: page.into_items(),
            next,
        }
    }

    /// A page of the files matching `query`, from `cursor` (a position in
    /// the index): a range of one ordered index, so O(log n + page).
    /// Candidates the index narrows to (a hash, 8 bytes of id) are checked
    /// whole. Pages never repeat a file; one that arrives between pages may
    /// be missed (the list is live).
    fn find_files(&self, query: &FileQuery, cursor: FindCursor) -> ReplyBody {
        let (index, low, high) = match query {
            FileQuery::Name(name) => {
                let h = self.file_name_hash(name);
                (&self.file_by_name, h, h)
            }
            FileQuery::IdPrefix { id, digits } => {
                if !(MIN_PREFIX_DIGITS..=64).contains(digits) {
                    return error_reply(
                        ErrorCode::BadRequest,
                        &format!("an id prefix has {MIN_PREFIX_DIGITS} to 64 hex digits"),
                    );
                }
                // The prefix's range of 64-bit keys: its bits, then all
                // zeros up to all ones.
                let bits = u32::from(*digits).min(16) * 4;
                let mask = if bits == 64 { 0 } else { u64::MAX >> bits };
                let low = id64(id) & !mask;
                (&self.file_by_id64, low, low | mask)
            }
        };
        let start = (low, 0).max((cursor.0, cursor.1));
        let end = (high, u32::MAX);
        let mut page = Page::new();
        let mut next = None;
        if start <= end {
            let candidates = index.range(start..=end).filter(|&&(_, key)| {
                let f = &self.files[key as usize];
                query.matches(&f.id, &f.name)
            });
            for &(at, key) in candidates {
                if page.len() >= MAX_FOUND_PER_REPLY || page.try_push(self.file_info(key)).is_err() {
                    next = Some(FindCursor(at, key));
                    break;
                }
            }
        }
        ReplyBody::Found {
            files: page.into_items(),
            next,
        }
    }

    /// Up to [`MAX_PEERS_PER_REPLY`] holders of `id`, not counting the
    /// asker, spread over hosts: a random sample of [`PEER_SAMPLE`]
    /// holders (Floyd's algorithm, O(k) whatever the number of holders),
    /// shuffled, then each host's first sampled holder before any host's
    /// second. Hundreds of holders on a few hosts then leave room for a
    /// holder alone on its host in most answers, not one in twelve.
    fn get_peers(&mut self, asker: u32, id: FileId) -> ReplyBody {
        let holders: &[Holder] = match self.lookup(&id) {
            Some(f) => &self.files[f as usize].holders,
            None => &[],
        };
        let n = holders.len();
        let k = n.min(PEER_SAMPLE);
        let mut seen: HashSet<usize> = HashSet::with_capacity(k);
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        for j in n - k..n {
            let t = self.rng.below(j + 1);
            let i = if seen.insert(t) { t } else { j };
            seen.insert(i);
            picked.push(i);
        }
        self.rng.shuffle(&mut picked);
        // (rank among the sampled holders of its host, peer)
        let mut per_host: HashMap<u64, u32> = HashMap::with_capacity(k);
        let mut ranked: Vec<(u32, u32)> = picked
            .into_iter()
            .map(|i| holders[i].peer)
            .filter(|&p| p != asker)
            .map(|p| {
                let rank = per_host.entry(self.peers[p as usize].addr.host()).or_default();
                *rank += 1;
                (*rank, p)
            })
            .collect();
        ranked.sort_by_key(|&(rank, _)| rank);
        let peers: Vec<SocketAddr> = ranked
            .into_iter()
            .take(MAX_PEERS_PER_REPLY)
            .map(|(_, p)| {
                let peer = &self.peers[p as usize];
                peer.addr.with_port(peer.tcp_port)
            })
            .collect();
        ReplyBody::Peers { id, peers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::hex;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, (n >> 8) as u8, n as u8)),
            40000 + n,
        )
    }

    fn registry(max_peers: usize) -> Registry {
        Registry::new(
            Limits {
                max_peers,
                max_files: 1000,
                max_peers_per_host: 1000,
                max_files_per_host: 1_000_000,
                interval_secs: 10,
                fair: Fairness::OFF,
            },
            Rng::seeded(7),
        )
    }

    fn register(r: &mut Registry, n: u16, now: u32) -> ReplyBody {
        r.handle(
            addr(n),
            RequestBody::Register {
                username: format!("user{n}"),
                port: 7000 + n,
                role: Role::Seeder,
                secret: [0; 16],
            },
            now,
        )
    }

    fn entry(i: u8) -> FileEntry {
        FileEntry {
            name: format!("file{i}"),
            size: u64::from(i) * 100,
            chunk_size: 1 << 20,
            root: [i; 32],
            complete: true,
        }
    }

    fn id(i: u8) -> FileId {
        entry(i).id()
    }

    fn announce(r: &mut Registry, n: u16, files: Vec<FileEntry>) -> ReplyBody {
        r.handle(addr(n), RequestBody::Announce { files }, 0)
    }

    fn all_files(r: &mut Registry, asker: u16) -> Vec<FileInfo> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            match r.handle(
                addr(asker),
                RequestBody::ListFiles {
                    cursor,
                    member: false,
                },
                0,
            ) {
                ReplyBody::FileList { files, next } => {
                    out.extend(files);
                    match next {
                        Some(c) => cursor = c,
                        None => return out,
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn register_twice_counts_once_and_limit_refuses() {
        let mut r = registry(2);
        assert_eq!(
            register(&mut r, 1, 0),
            ReplyBody::Registered { interval_secs: 10 }
        );
        assert_eq!(
            register(&mut r, 1, 1),
            ReplyBody::Registered { interval_secs: 10 }
        );
        assert_eq!(
            register(&mut r, 2, 1),
            ReplyBody::Registered { interval_secs: 10 }
        );
        assert_eq!(r.peer_count(), 2);
        assert!(matches!(
            register(&mut r, 3, 1),
            ReplyBody::Error {
                code: ErrorCode::TrackerFull,
                ..
            }
        ));
        // A known peer re-registering at the limit is fine.
        assert_eq!(
            register(&mut r, 2, 2),
            ReplyBody::Registered { interval_secs: 10 }
        );
    }

    #[test]
    fn unregistered_and_bad_names_are_refused() {
        let mut r = registry(10);
        assert!(matches!(
            r.handle(addr(1), RequestBody::KeepAlive, 0),
            ReplyBody::Error {
                code: ErrorCode::NotRegistered,
                ..
            }
        ));
        let bad = r.handle(
            addr(1),
            RequestBody::Register {
                username: "two words".into(),
                port: 1,
                role: Role::Leecher,
                secret: [0; 16],
            },
            0,
        );
        assert!(matches!(
            bad,
            ReplyBody::Error {
                code: ErrorCode::BadUsername,
                ..
            }
        ));
        register(&mut r, 1, 0);
        let mut evil = entry(1);
        evil.name = "../../etc/passwd".into();
        assert!(matches!(
            announce(&mut r, 1, vec![entry(2), evil]),
            ReplyBody::Error {
                code: ErrorCode::BadFileName,
                ..
            }
        ));
        assert_eq!(r.file_count(), 0, "a refused announce adds nothing");
    }

    #[test]
    fn one_file_two_seeders_is_one_entry_and_last_holder_removes_it() {
        let mut r = registry(10);
        register(&mut r, 1, 0);
        register(&mut r, 2, 0);
        assert_eq!(
            announce(&mut r, 1, vec![entry(1), entry(2)]),
            ReplyBody::Announced { accepted: 2 }
        );
        assert_eq!(
            announce(&mut r, 2, vec![entry(1)]),
            ReplyBody::Announced { accepted: 1 }
        );
        // Same name, other content: a second entry.
        let mut twin = entry(3);
        twin.name = "file1".into();
        announce(&mut r, 2, vec![twin]);
        let files = all_files(&mut r, 1);
        assert_eq!(files.len(), 3);
        assert_eq!(files.iter().find(|f| f.id == id(1)).unwrap().seeders, 2);

        assert_eq!(
            r.handle(
                addr(1),
                RequestBody::Withdraw {
                    ids: vec![id(1), id(9)]
                },
                0
            ),
            ReplyBody::Withdrawn { removed: 1 }
        );
        assert_eq!(
            all_files(&mut r, 1)
                .iter()
                .find(|f| f.id == id(1))
                .unwrap()
                .seeders,
            1
        );
        assert_eq!(r.handle(addr(2), RequestBody::Disconnect, 0), ReplyBody::Ok);
        let ids: Vec<FileId> = all_files(&mut r, 1).iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![id(2)]);
        assert_eq!(r.peer_count(), 1);
    }

    #[test]
    fn expiry_removes_silent_peers_and_their_files() {
        let mut r = registry(10);
        register(&mut r, 1, 0);
        register(&mut r, 2, 0);
        announce(&mut r, 1, vec![entry(1)]);
        r.handle(addr(2), RequestBody::KeepAlive, 25);
        assert_eq!(r.expire(29), 0);
        assert_eq!(r.expire(30), 1);
        assert_eq!(r.peer_count(), 1);
        assert_eq!(r.file_count(), 0);
        assert_eq!(r.expire(54), 0);
        assert_eq!(r.expire(55), 1);
    }

    #[test]
    fn get_peers_samples_without_the_asker_and_without_repeats() {
        let mut r = registry(1000);
        for n in 1..=200 {
            register(&mut r, n, 0);
            announce(&mut r, n, vec![entry(5)]);
        }
        match r.handle(addr(1), RequestBody::GetPeers { id: id(5) }, 0) {
            ReplyBody::Peers { peers, .. } => {
                assert_eq!(peers.len(), MAX_PEERS_PER_REPLY);
                let mut uniq = peers.clone();
                uniq.sort();
                uniq.dedup();
                assert_eq!(uniq.len(), peers.len());
                assert!(!peers.contains(&SocketAddr::new(addr(1).ip(), 7001)));
                assert!(peers.iter().all(|a| a.port() > 7001 && a.port() <= 7200));
            }
            other => panic!("{other:?}"),
        }
        // Few holders: all of them but the asker.
        register(&mut r, 300, 0);
        announce(&mut r, 300, vec![entry(6)]);
        announce(&mut r, 2, vec![entry(6)]);
        match r.handle(addr(300), RequestBody::GetPeers { id: id(6) }, 0) {
            ReplyBody::Peers { peers, .. } => assert_eq!(peers, vec![SocketAddr::new(addr(2).ip(), 7002)]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.handle(addr(1), RequestBody::GetPeers { id: id(99) }, 0),
            ReplyBody::Peers { peers, .. } if peers.is_empty()
        ));
    }

    #[test]
    fn paging_lists_everything_once() {
        let mut r = registry(1000);
        for n in 1..=100 {
            register(&mut r, n, 0);
        }
        for i in 0..200u8 {
            announce(&mut r, u16::from(i % 100) + 1, vec![entry(i)]);
        }
        let files = all_files(&mut r, 1);
        assert_eq!(files.len(), 200);
        let mut ids: Vec<FileId> = files.iter().map(|f| f.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 200);

        let mut seen = 0;
        let mut cursor = 0;
        let mut pages = 0;
        loop {
            let ReplyBody::PeerList { peers, next } =
                r.handle(addr(5), RequestBody::ListPeers { cursor, member: true }, 0)
            else {
                panic!()
            };
            pages += 1;
            seen += peers.len();
            assert_eq!(
                peers.iter().filter(|p| p.is_you).count(),
                usize::from(peers.iter().any(|p| p.username == "user5"))
            );
            match next {
                Some(c) => cursor = c,
                None => break,
            }
        }
        assert_eq!(seen, 100);
        assert!(pages > 1);
    }

    #[test]
    fn holder_positions_stay_consistent_under_churn() {
        let mut r = registry(100);
        let mut rng = Rng::seeded(3);
        for n in 1..=20 {
            register(&mut r, n, 0);
        }
        for _ in 0..3000 {
            let n = rng.below(20) as u16 + 1;
            let f = rng.below(10) as u8;
            if rng.below(2) == 0 {
                let mut e = entry(f);
                e.complete = rng.below(2) == 0;
                announce(&mut r, n, vec![e]);
            } else {
                r.handle(addr(n), RequestBody::Withdraw { ids: vec![id(f)] }, 0);
            }
            if rng.below(50) == 0 {
                r.handle(addr(n), RequestBody::Disconnect, 0);
                register(&mut r, n, 0);
            }
            check_invariants(&r);
        }
    }

    /// The module's invariants: holder mirrors, dense orders, host counts,
    /// name index.
    fn check_invariants(r: &Registry) {
        let mut hosts: HashMap<u64, (u32, u32)> = HashMap::new();
        let mut networks: HashMap<u64, (u32, u32)> = HashMap::new();
        for (pk, p) in r.peers.iter() {
            let n = networks.entry(p.addr.network()).or_default();
            n.0 += 1;
            n.1 += p.files.len() as u32;
            for (slot, held) in p.files.iter().enumerate() {
                let h = r.files[held.file as usize].holders[held.slot_in_file as usize];
                assert_eq!((h.peer as usize, h.slot_in_peer as usize), (pk, slot));
            }
            assert_eq!(r.peer_by_name[&r.name_hash(&p.username)] as usize, pk);
            let h = hosts.entry(p.addr.host()).or_default();
            h.0 += 1;
            h.1 += p.files.len() as u32;
        }
        assert_eq!(r.peer_by_name.len(), r.peers.len());
        let counted: HashMap<u64, (u32, u32)> =
            r.per_host.iter().map(|(&k, u)| (k, (u.peers, u.files))).collect();
        assert_eq!(counted, hosts);
        let counted: HashMap<u64, (u32, u32)> = r
            .per_network
            .iter()
            .map(|(&k, u)| (k, (u.peers, u.files)))
            .collect();
        assert_eq!(counted, networks);
        assert_eq!(r.file_by_name.len(), r.files.len());
        assert_eq!(r.file_by_id64.len(), r.files.len());
        for (fk, f) in r.files.iter() {
            assert!(r.file_by_name.contains(&(r.file_name_hash(&f.name), fk as u32)));
            assert!(r.file_by_id64.contains(&(id64(&f.id), fk as u32)));
            assert!(!f.holders.is_empty());
            assert_eq!(
                f.complete as usize,
                f.holders.iter().filter(|h| h.complete).count()
            );
            assert_eq!(r.file_order[f.pos as usize] as usize, fk);
        }
        assert_eq!(r.file_order.len(), r.files.len());
    }

    fn limited(peers_per_host: usize, files_per_host: usize) -> Registry {
        Registry::new(
            Limits {
                max_peers: 1000,
                max_files: 1000,
                max_peers_per_host: peers_per_host,
                max_files_per_host: files_per_host,
                interval_secs: 10,
                fair: Fairness::OFF,
            },
            Rng::seeded(7),
        )
    }

    /// Registers as another client for every address: its secret is
    /// made from `from`.
    fn register_as(r: &mut Registry, from: &str, username: &str) -> ReplyBody {
        let mut secret = [0u8; 16];
        for (i, b) in from.bytes().enumerate() {
            secret[i % 16] ^= b.rotate_left(i as u32 / 16);
        }
        register_with(r, from, username, secret)
    }

    fn register_with(r: &mut Registry, from: &str, username: &str, secret: ClientSecret) -> ReplyBody {
        r.handle(
            from.parse().unwrap(),
            RequestBody::Register {
                username: username.into(),
                port: 7000,
                role: Role::Seeder,
                secret,
            },
            0,
        )
    }

    fn code(reply: ReplyBody) -> Option<ErrorCode> {
        match reply {
            ReplyBody::Error { code, .. } => Some(code),
            _ => None,
        }
    }

    #[test]
    fn usernames_read_back_as_given_inline_or_not() {
        for name in ["a", "alice", &"é".repeat(15), &"é".repeat(16), &"ø".repeat(32)] {
            let kept = Username::from(name);
            assert_eq!(&*kept, name);
            assert_eq!(matches!(kept, Username::Inline { .. }), name.len() <= INLINE_NAME);
        }
        assert_eq!(std::mem::size_of::<Username>(), 32);
    }

    #[test]
    fn one_host_cannot_fill_the_tracker_with_peers_or_files() {
        let mut r = limited(3, 5);
        for port in 1..=3 {
            let reply = register_as(&mut r, &format!("192.0.2.1:{port}"), &format!("m{port}"));
            assert_eq!(code(reply), None);
        }
        // The 10,000 registrations of the issue, scaled down: the fourth
        // from that address is refused, other hosts (and IPv6 /64s) are not.
        for port in 4..100 {
            let reply = register_as(&mut r, &format!("192.0.2.1:{port}"), &format!("m{port}"));
            assert_eq!(code(reply), Some(ErrorCode::HostLimit));
        }
        assert_eq!(code(register_as(&mut r, "192.0.2.2:1", "honest")), None);
        assert_eq!(code(register_as(&mut r, "[2001:db8:0:1::1]:1", "v6a")), None);
        assert_eq!(code(register_as(&mut r, "[2001:db8:0:1::2]:1", "v6b")), None);
        assert_eq!(code(register_as(&mut r, "[2001:db8:0:1::3]:1", "v6c")), None);
        assert_eq!(
            code(register_as(&mut r, "[2001:db8:0:1::4]:1", "v6d")),
            Some(ErrorCode::HostLimit),
            "one /64 is one host"
        );
        assert_eq!(code(register_as(&mut r, "[2001:db8:0:2::1]:1", "v6e")), None);

        // Files: five links for the whole host, whichever of its peers.
        let from = |p: u16| SocketAddr::from(([192, 0, 2, 1], p));
        let files = (0..4).map(entry).collect();
        assert_eq!(
            r.handle(from(1), RequestBody::Announce { files }, 0),
            ReplyBody::Announced { accepted: 4 }
        );
        let files = (4..10).map(entry).collect();
        let reply = r.handle(from(2), RequestBody::Announce { files }, 0);
        assert!(
            matches!(&reply, ReplyBody::Error { code: ErrorCode::HostLimit, message } if message.starts_with("accepted 1 of 6")),
            "{reply:?}"
        );
        let honest = "192.0.2.2:1".parse().unwrap();
        let files = (10..15).map(entry).collect();
        assert_eq!(
            r.handle(honest, RequestBody::Announce { files }, 0),
            ReplyBody::Announced { accepted: 5 }
        );
        // Leaving frees the host's share.
        r.handle(from(1), RequestBody::Disconnect, 0);
        assert_eq!(code(register_as(&mut r, "192.0.2.1:50", "back")), None);
        let files = (30..34).map(entry).collect();
        assert_eq!(
            r.handle(from(50), RequestBody::Announce { files }, 0),
            ReplyBody::Announced { accepted: 4 }
        );
        check_invariants(&r);
    }

    #[test]
    fn usernames_are_unique_among_online_peers() {
        let mut r = limited(10, 100);
        assert_eq!(code(register_as(&mut r, "192.0.2.1:1", "Jos\u{E9}")), None);
        // Another host, the same name in another case or spelling: taken.
        for other in ["Jos\u{E9}", "jos\u{E9}", "JOS\u{C9}", "Jose\u{301}"] {
            let reply = register_as(&mut r, "192.0.2.9:1", other);
            assert_eq!(code(reply), Some(ErrorCode::UsernameTaken), "{other:?}");
        }
        assert_eq!(code(register_as(&mut r, "192.0.2.9:1", "bob")), None);
        let bob: SocketAddr = "192.0.2.9:1".parse().unwrap();
        let rename = |r: &mut Registry, name: &str| {
            r.handle(
                bob,
                RequestBody::ChangeUsername {
                    username: name.into(),
                },
                0,
            )
        };
        assert_eq!(
            code(rename(&mut r, "jose\u{301}")),
            Some(ErrorCode::UsernameTaken)
        );
        assert_eq!(
            rename(&mut r, "BOB"),
            ReplyBody::Ok,
            "one's own name in another case"
        );
        assert_eq!(rename(&mut r, "robert"), ReplyBody::Ok);
        // "bob" is free again; the old name does not linger.
        assert_eq!(code(register_as(&mut r, "192.0.2.3:1", "bob")), None);
        // A neighbour on the same host (another secret) is refused too.
        let reply = register_as(&mut r, "192.0.2.1:2", "jos\u{E9}");
        assert_eq!(code(reply), Some(ErrorCode::UsernameTaken));
        assert_eq!(r.peer_count(), 3);
        // Leaving frees the name.
        r.handle(bob, RequestBody::Disconnect, 0);
        assert_eq!(code(register_as(&mut r, "192.0.2.4:1", "Robert")), None);
        check_invariants(&r);
    }

    #[test]
    fn an_id_cannot_be_squatted_under_another_name_or_size() {
        let mut r = limited(10, 100);
        register_as(&mut r, "192.0.2.1:1", "honest");
        register_as(&mut r, "192.0.2.2:1", "squatter");
        let real = entry(1);
        let honest: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let squatter: SocketAddr = "192.0.2.2:1".parse().unwrap();
        r.handle(
            honest,
            RequestBody::Announce {
                files: vec![real.clone()],
            },
            0,
        );
        // The same hashes under another name, or another size: other ids.
        let mut renamed = real.clone();
        renamed.name = "holiday.jpg.desktop".into();
        let mut resized = real.clone();
        resized.size += 1;
        let files = vec![renamed.clone(), resized.clone()];
        assert_eq!(
            r.handle(squatter, RequestBody::Announce { files }, 0),
            ReplyBody::Announced { accepted: 2 }
        );
        register(&mut r, 1, 0);
        let listed = all_files(&mut r, 1);
        let row = |id: FileId| {
            listed
                .iter()
                .find(|f| f.id == id)
                .map(|f| (f.name.clone(), f.size))
        };
        assert_eq!(row(real.id()), Some((real.name.clone(), real.size)));
        assert_eq!(row(renamed.id()), Some((renamed.name.clone(), real.size)));
        assert_eq!(row(resized.id()), Some((real.name.clone(), real.size + 1)));
        match r.handle(honest, RequestBody::GetPeers { id: real.id() }, 0) {
            ReplyBody::Peers { peers, .. } => assert!(peers.is_empty(), "the squatter holds the real id"),
            other => panic!("{other:?}"),
        }
        // Sizes and chunk sizes no file can have are refused.
        let mut odd = entry(2);
        odd.chunk_size = 1000;
        let reply = r.handle(squatter, RequestBody::Announce { files: vec![odd] }, 0);
        assert_eq!(code(reply), Some(ErrorCode::BadRequest));
        let mut huge = entry(3);
        huge.size = u64::MAX;
        huge.chunk_size = MIN_CHUNK_SIZE;
        let reply = r.handle(squatter, RequestBody::Announce { files: vec![huge] }, 0);
        assert_eq!(code(reply), Some(ErrorCode::BadRequest));
    }

    #[test]
    fn a_page_of_a_sparse_table_lists_what_is_left() {
        let mut r = registry(1000);
        for n in 1..=300 {
            register(&mut r, n, 0);
        }
        for i in 0..=255u8 {
            announce(&mut r, u16::from(i) + 1, vec![entry(i)]);
        }
        // All but a few leave: slabs keep their capacity, the orders shrink.
        for n in 1..=300 {
            if n % 100 != 0 {
                r.handle(addr(n), RequestBody::Disconnect, 0);
            }
        }
        assert_eq!(r.peer_count(), 3);
        assert_eq!((r.files.capacity() >= 256, r.file_order.len()), (true, 2));
        let names: Vec<String> = all_files(&mut r, 100).into_iter().map(|f| f.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["file199", "file99"]);
        check_invariants(&r);
    }

    #[test]
    fn a_full_peer_can_still_update_a_file_it_holds() {
        use sha2::{Digest, Sha256};
        let mut r = Registry::new(
            Limits {
                max_peers: 2,
                max_files: 2 * MAX_FILES_PER_PEER,
                max_peers_per_host: 1000,
                max_files_per_host: 1_000_000,
                interval_secs: 10,
                fair: Fairness::OFF,
            },
            Rng::seeded(7),
        );
        register(&mut r, 1, 0);
        let many = |n: usize, complete: bool| -> Vec<FileEntry> {
            (0..n)
                .map(|i| FileEntry {
                    name: format!("f{i}"),
                    size: 1,
                    chunk_size: 1 << 20,
                    root: Sha256::digest(i.to_le_bytes()).into(),
                    complete,
                })
                .collect()
        };
        for page in many(MAX_FILES_PER_PEER, false).chunks(100) {
            announce(&mut r, 1, page.to_vec());
        }
        assert_eq!(r.file_count(), MAX_FILES_PER_PEER);
        // Finishing a download re-announces the file as complete: allowed.
        let done = many(1, true);
        assert_eq!(announce(&mut r, 1, done), ReplyBody::Announced { accepted: 1 });
        assert_eq!(all_files(&mut r, 1).iter().filter(|f| f.seeders == 1).count(), 1);
        // A new file past the limit is still refused.
        let mut extra = many(MAX_FILES_PER_PEER + 1, true);
        let reply = announce(&mut r, 1, vec![extra.pop().unwrap()]);
        assert!(
            matches!(
                reply,
                ReplyBody::Error {
                    code: ErrorCode::TooManyFiles,
                    ..
                }
            ),
            "{reply:?}"
        );
    }

    #[test]
    fn bittorrent_clients_see_project_files_by_their_first_20_bytes() {
        let mut r = registry(10);
        for n in 1..=3 {
            register(&mut r, n, 0);
        }
        let mut partial = entry(9);
        partial.complete = false;
        announce(&mut r, 1, vec![entry(9)]);
        announce(&mut r, 2, vec![partial]);
        let hash = prefix(&id(9));
        let mut out = Vec::new();
        // Asked by a BitTorrent client (not registered): both holders, as
        // compact IPv4 TCP addresses.
        let asker: SocketAddr = "192.0.2.1:6881".parse().unwrap();
        assert_eq!(r.bt_view(&hash, false, asker, 50, &mut out), Some((1, 1)));
        assert_eq!(out.len(), 12);
        let mut got: Vec<&[u8]> = out.chunks(6).collect();
        got.sort();
        assert_eq!(got, [[10, 0, 0, 1, 0x1b, 0x59], [10, 0, 0, 2, 0x1b, 0x5a]]);
        // Never the asker itself; `want` honoured; no IPv6 holders.
        out.clear();
        let holder1: SocketAddr = "10.0.0.1:7001".parse().unwrap();
        r.bt_view(&hash, false, holder1, 50, &mut out);
        assert_eq!(out, [10, 0, 0, 2, 0x1b, 0x5a]);
        out.clear();
        r.bt_view(&hash, false, asker, 1, &mut out);
        assert_eq!(out.len(), 6);
        out.clear();
        r.bt_view(&hash, true, asker, 50, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.bt_view(&[8; 20], false, asker, 50, &mut out), None);
        // Another id with the same 20 bytes is not tracked, and does not
        // disturb the real file.
        // (Ids are derived from announces, so a forgery takes a SHA-256
        // prefix collision; it is planted directly here.)
        let mut forged = id(9);
        forged[31] ^= 1;
        register(&mut r, 3, 0);
        let key = r.peer_by_addr[&PeerAddr::new(addr(3))];
        assert_eq!(r.add_holder(key, forged, &entry(9)), Ok(()));
        assert_eq!(r.file_count(), 1);
        match r.handle(addr(3), RequestBody::GetPeers { id: forged }, 0) {
            ReplyBody::Peers { peers, .. } => assert!(peers.is_empty()),
            other => panic!("{other:?}"),
        }
        match r.handle(addr(3), RequestBody::GetPeers { id: id(9) }, 0) {
            ReplyBody::Peers { peers, .. } => assert_eq!(peers.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    /// `count` distinct files named `{tag}{i}`, for a flood.
    fn flood(tag: &str, from: usize, count: usize) -> Vec<FileEntry> {
        (from..from + count)
            .map(|i| {
                let mut root = [0u8; 32];
                root[..8].copy_from_slice(&(i as u64).to_be_bytes());
                root[8..8 + tag.len().min(24)].copy_from_slice(&tag.as_bytes()[..tag.len().min(24)]);
                FileEntry {
                    name: format!("{tag}{i}"),
                    size: 1000,
                    chunk_size: MIN_CHUNK_SIZE,
                    root,
                    complete: true,
                }
            })
            .collect()
    }

    /// Registers `peers` peers from host `ip` and has each announce
    /// `per_peer` files of the flood; returns the files accepted.
    fn fill_host(r: &mut Registry, ip: &str, peers: usize, per_peer: usize) -> usize {
        let mut accepted = 0;
        for p in 0..peers {
            let from = format!("{ip}:{}", 1000 + p);
            if code(register_as(r, &from, &format!("{ip}-{p}"))).is_some() {
                continue;
            }
            let tag = format!("{ip}-{p}-");
            for chunk in flood(&tag, 0, per_peer).chunks(512) {
                match r.handle(
                    from.parse().unwrap(),
                    RequestBody::Announce {
                        files: chunk.to_vec(),
                    },
                    0,
                ) {
                    ReplyBody::Announced { accepted: n } => accepted += n as usize,
                    ReplyBody::Error { message, .. } => {
                        accepted += message
                            .strip_prefix("accepted ")
                            .and_then(|m| m.split(' ').next())
                            .and_then(|n| n.parse::<usize>().ok())
                            .unwrap_or(0);
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        accepted
    }

    fn find(r: &mut Registry, query: FileQuery) -> Vec<FileInfo> {
        let (mut out, mut cursor) = (Vec::new(), FindCursor::default());
        loop {
            // No registration needed to find.
            let asker = "203.0.113.250:1".parse().unwrap();
            match r.handle(
                asker,
                RequestBody::FindFiles {
                    query: query.clone(),
                    cursor,
                    member: false,
                },
                0,
            ) {
                ReplyBody::Found { files, next } => {
                    assert!(files.len() <= MAX_FOUND_PER_REPLY);
                    out.extend(files);
                    match next {
                        Some(n) => {
                            assert!(n > cursor, "cursors move forward");
                            cursor = n
                        }
                        None => return out,
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// Issue 19, attack 1: eight hosts, each at its caps (4 peers x 4,096
    /// files), fill more than the client's 100,000-row list; a file
    /// announced afterwards is found by name and by the 16-hex prefix
    /// `--list` shows, from the index.
    #[test]
    fn eight_hosts_at_their_caps_cannot_hide_a_file_from_a_find() {
        let mut r = Registry::new(Limits::DEFAULT, Rng::seeded(19));
        let mut flooded = 0;
        for h in 0..8 {
            flooded += fill_host(&mut r, &format!("198.18.{h}.1"), 4, MAX_FILES_PER_PEER);
        }
        assert_eq!(flooded, 8 * Limits::DEFAULT.max_files_per_host);
        assert!(r.file_count() > 100_000);
        assert_eq!(code(register_as(&mut r, "192.0.2.7:1", "honest")), None);
        let needle = FileEntry {
            name: "needle.bin".into(),
            ..flood("x", 0, 1).remove(0)
        };
        let honest = "192.0.2.7:1".parse().unwrap();
        assert_eq!(
            r.handle(
                honest,
                RequestBody::Announce {
                    files: vec![needle.clone()]
                },
                0
            ),
            ReplyBody::Announced { accepted: 1 }
        );
        // The list's first 100,000 rows (the client's cap) miss it.
        let listed = all_files(&mut r, 1);
        let at = listed.iter().position(|f| f.id == needle.id()).unwrap();
        assert!(at >= 100_000, "listed at row {at}");

        let by_name = find(&mut r, FileQuery::Name("needle.bin".into()));
        assert_eq!(
            by_name.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![needle.id()]
        );
        let mut shown = [0u8; 32];
        shown[..8].copy_from_slice(&needle.id()[..8]);
        for digits in [16, 8, 9, 64] {
            let q = FileQuery::IdPrefix {
                id: if digits == 64 { needle.id() } else { shown },
                digits,
            };
            let found = find(&mut r, q);
            assert!(found.iter().any(|f| f.id == needle.id()), "{digits} digits");
            assert!(found
                .iter()
                .all(|f| hex(&f.id).starts_with(&hex(&shown)[..digits.min(16) as usize])));
        }
        // A name many files share is paged, never cut.
        let mut twins = flood("twin", 0, 40);
        for (i, t) in twins.iter_mut().enumerate() {
            t.name = "same.bin".into();
            t.size = 10 + i as u64;
        }
        assert_eq!(
            r.handle(honest, RequestBody::Announce { files: twins }, 0),
            ReplyBody::Announced { accepted: 40 }
        );
        assert_eq!(find(&mut r, FileQuery::Name("same.bin".into())).len(), 40);
        assert!(find(&mut r, FileQuery::Name("same.bi".into())).is_empty());
        let short = FileQuery::IdPrefix { id: shown, digits: 7 };
        let reply = r.handle(
            honest,
            RequestBody::FindFiles {
                query: short,
                cursor: FindCursor::default(),
                member: false,
            },
            0,
        );
        assert_eq!(code(reply), Some(ErrorCode::BadRequest));
        check_invariants(&r);
    }

    /// Issue 19, attack 2, scaled down (limits / 100): 62 hosts on 62
    /// networks, each at its caps, try to fill `max_files`; the share kept
    /// for small networks stays free, and an honest host's new file is
    /// accepted. The same for peers and `max_peers`.
    #[test]
    fn many_networks_cannot_fill_the_tracker_against_a_new_host() {
        let d = Limits::DEFAULT;
        let limits = Limits {
            max_peers: d.max_peers / 100,
            max_files: d.max_files / 100,
            max_peers_per_host: d.max_peers_per_host,
            max_files_per_host: d.max_files_per_host / 100,
            interval_secs: 10,
            fair: Fairness {
                max_peers_per_network: d.fair.max_peers_per_network,
                max_files_per_network: d.fair.max_files_per_network / 100,
                reserved_peers: d.fair.reserved_peers / 100,
                reserved_files: d.fair.reserved_files / 100,
            },
        };
        let mut r = Registry::new(limits, Rng::seeded(62));
        let mut flooded = 0;
        for h in 0..62 {
            flooded += fill_host(&mut r, &format!("198.18.{h}.1"), 1, limits.max_files_per_host);
        }
        // 62 x 163 links would be 10,106: past max_files, but the attack
        // stops at the reserve, of which each network can take only what a
        // small one may (the hosts past the open share: 4 at most here).
        let open = limits.max_files - limits.fair.reserved_files;
        assert!(flooded >= open && flooded < 62 * limits.max_files_per_host);
        assert!(
            r.file_count() <= open + 4 * SMALL_NETWORK_FILES as usize,
            "{}",
            r.file_count()
        );
        assert_eq!(code(register_as(&mut r, "192.0.2.7:1", "honest")), None);
        let honest = "192.0.2.7:1".parse().unwrap();
        let files = flood("honest", 0, 3);
        assert_eq!(
            r.handle(honest, RequestBody::Announce { files }, 0),
            ReplyBody::Announced { accepted: 3 }
        );
        // Peers: 4 networks of 64 hosts x 4 peers fill max_peers up to the
        // reserve; a peer from a new network still registers.
        let mut joined = 0;
        'fill: for net in 0..64 {
            for host in 1..=64 {
                for p in 0..4 {
                    let from = format!("198.19.{net}.{host}:{}", 2000 + p);
                    match code(register_as(&mut r, &from, &format!("p{net}.{host}.{p}"))) {
                        None => joined += 1,
                        Some(ErrorCode::TrackerFull) => break 'fill,
                        Some(ErrorCode::HostLimit) => {}
                        Some(other) => panic!("{other:?}"),
                    }
                }
            }
        }
        assert!(joined > 0);
        assert_eq!(r.peer_count(), limits.max_peers - limits.fair.reserved_peers);
        assert_eq!(code(register_as(&mut r, "203.0.113.9:1", "late")), None);
        check_invariants(&r);
    }

    #[test]
    fn a_network_has_caps_of_its_own() {
        let mut r = Registry::new(
            Limits {
                max_peers_per_host: 64,
                max_files_per_host: 100,
                fair: Fairness {
                    max_peers_per_network: 3,
                    max_files_per_network: 150,
                    reserved_peers: 0,
                    reserved_files: 0,
                },
                ..Limits::DEFAULT
            },
            Rng::seeded(3),
        );
        // Hosts of one /24 share its caps; another /24 has its own.
        assert_eq!(fill_host(&mut r, "192.0.2.1", 1, 100), 100);
        assert_eq!(fill_host(&mut r, "192.0.2.2", 1, 100), 50);
        assert_eq!(code(register_as(&mut r, "192.0.2.3:1", "c")), None);
        assert_eq!(
            code(register_as(&mut r, "192.0.2.4:1", "d")),
            Some(ErrorCode::HostLimit)
        );
        assert_eq!(code(register_as(&mut r, "192.0.3.4:1", "e")), None);
        // IPv6: /64s of one /48 share it.
        for (i, ip) in ["[2001:db8:1:1::1]", "[2001:db8:1:2::1]", "[2001:db8:1:3::1]"]
            .iter()
            .enumerate()
        {
            assert_eq!(
                code(register_as(&mut r, &format!("{ip}:1"), &format!("v{i}"))),
                None
            );
        }
        let reply = register_as(&mut r, "[2001:db8:1:4::1]:1", "v4");
        assert_eq!(code(reply), Some(ErrorCode::HostLimit));
        assert_eq!(code(register_as(&mut r, "[2001:db8:2:4::1]:1", "v5")), None);
        check_invariants(&r);
    }

    /// Issue 19, attack 5: a neighbour on the same IP (the same NAT) asking
    /// for a name in use is refused, and the owner stays listed with its
    /// files; the owner restarting with its secret gets the name back at
    /// once, from any address.
    #[test]
    fn a_name_belongs_to_the_client_holding_its_secret() {
        let mut r = limited(10, 100);
        let alice = "192.0.2.1:1000";
        assert_eq!(code(register_with(&mut r, alice, "alice", [1; 16])), None);
        let files = vec![entry(1), entry(2)];
        r.handle(alice.parse().unwrap(), RequestBody::Announce { files }, 0);
        let reply = register_with(&mut r, "192.0.2.1:2000", "Alice", [2; 16]);
        match &reply {
            ReplyBody::Error {
                code: ErrorCode::UsernameTaken,
                message,
            } => assert!(message.contains("in use by another online client"), "{message}"),
            other => panic!("{other:?}"),
        }
        let reader = "192.0.2.1:2000".parse().unwrap();
        let listed = match r.handle(
            reader,
            RequestBody::ListPeers {
                cursor: 0,
                member: false,
            },
            0,
        ) {
            ReplyBody::PeerList { peers, .. } => peers,
            other => panic!("{other:?}"),
        };
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].username.as_str(), listed[0].files), ("alice", 2));
        let read = r.handle(
            reader,
            RequestBody::ListFiles {
                cursor: 0,
                member: false,
            },
            0,
        );
        assert!(matches!(read, ReplyBody::FileList { files, .. } if files.len() == 2));
        let member = r.handle(
            reader,
            RequestBody::ListFiles {
                cursor: 0,
                member: true,
            },
            0,
        );
        assert_eq!(code(member), Some(ErrorCode::NotRegistered));
        // The restart: a new UDP port, the same secret, before the old
        // entry expired. Then from another address altogether.
        assert_eq!(
            code(register_with(&mut r, "192.0.2.1:1001", "alice", [1; 16])),
            None
        );
        let old = r.handle(alice.parse().unwrap(), RequestBody::KeepAlive, 0);
        assert_eq!(code(old), Some(ErrorCode::NotRegistered));
        assert_eq!(
            code(register_with(&mut r, "198.51.100.5:1", "ALICE", [1; 16])),
            None
        );
        assert_eq!(r.peer_count(), 1);
        check_invariants(&r);
    }

    /// Issue 19: 600 holders on 10 hosts and one alone on its host; the
    /// answers spread over hosts, so the lone holder is in about a third
    /// of them (a plain sample of 50 would give it one in twelve).
    #[test]
    fn get_peers_spreads_over_hosts() {
        let mut r = limited(1000, 1_000_000);
        for h in 0..10 {
            for p in 0..60 {
                let from = format!("198.18.{h}.1:{}", 1000 + p);
                assert_eq!(code(register_as(&mut r, &from, &format!("t{h}-{p}"))), None);
                r.handle(
                    from.parse().unwrap(),
                    RequestBody::Announce {
                        files: vec![entry(7)],
                    },
                    0,
                );
            }
        }
        let lone = "203.0.113.9:1";
        register_as(&mut r, lone, "lone");
        r.handle(
            lone.parse().unwrap(),
            RequestBody::Announce {
                files: vec![entry(7)],
            },
            0,
        );
        register_as(&mut r, "192.0.2.1:1", "asker");
        let mut with_lone = 0;
        for _ in 0..200 {
            let reply = r.handle(
                "192.0.2.1:1".parse().unwrap(),
                RequestBody::GetPeers { id: id(7) },
                0,
            );
            let ReplyBody::Peers { peers, .. } = reply else {
                panic!("{reply:?}");
            };
            assert_eq!(peers.len(), MAX_PEERS_PER_REPLY);
            let mut per_host: HashMap<IpAddr, usize> = HashMap::new();
            for p in &peers {
                *per_host.entry(p.ip()).or_default() += 1;
            }
            assert!(per_host.values().all(|&n| n <= 5), "{per_host:?}");
            with_lone += usize::from(per_host.contains_key(&"203.0.113.9".parse::<IpAddr>().unwrap()));
        }
        assert!(with_lone >= 50, "the lone holder in {with_lone} of 200 answers");
    }
}
