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
//!   `max_files`, files per peer by [`MAX_FILES_PER_PEER`].
//! - Files are indexed by the first 20 bytes of their id (the full id is
//!   checked on every lookup), so BitTorrent clients, whose info hashes are
//!   20 bytes, find the project's files through the same one index
//!   ([`Registry::bt_view`]). A second id with a taken prefix is not
//!   tracked: ids are SHA-256 outputs, so only a deliberate forgery collides,
//!   and it gets what a forged name or size gets already.

use crate::names;
use crate::rand::Rng;
use crate::wire::bep15::InfoHash;
use crate::wire::tracker::{
    error_reply, ErrorCode, FileEntry, FileInfo, Page, PeerInfo, ReplyBody, RequestBody, Role,
    MAX_PEERS_PER_REPLY,
};
use crate::wire::FileId;
use slab::Slab;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub use crate::wire::tracker::MAX_FILES_PER_PEER;

/// Limits and timing the registry enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_peers: usize,
    pub max_files: usize,
    /// Keep-alive interval; a peer silent for three of them expires.
    pub interval_secs: u32,
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
/// default first allocation of four slots (most peers share few files, most
/// files have few holders, and this is per-peer memory).
fn push_small<T>(list: &mut Vec<T>, item: T) {
    if list.capacity() == 0 {
        list.reserve_exact(1);
    }
    list.push(item);
}

#[derive(Debug)]
struct Peer {
    addr: PeerAddr,
    username: Box<str>,
    tcp_port: u16,
    role: Role,
    last_seen: u32,
    files: Vec<Held>,
}

#[derive(Debug)]
struct FileRecord {
    id: FileId,
    name: Box<str>,
    size: u64,
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
    files: Slab<FileRecord>,
    /// Keyed by the first 20 bytes of the id; see the module's invariants.
    file_by_prefix: HashMap<InfoHash, u32>,
    rng: Rng,
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
            files: Slab::new(),
            file_by_prefix: HashMap::new(),
            rng,
        }
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

    /// Answers one authenticated request from `from`. (`Connect` is the
    /// server's business; it never reaches here.)
    pub fn handle(&mut self, from: SocketAddr, body: RequestBody, now: u32) -> ReplyBody {
        if let RequestBody::Register { username, port, role } = body {
            return self.register(from, &username, port, role, now);
        }
        let Some(&key) = self.peer_by_addr.get(&PeerAddr::new(from)) else {
            return error_reply(ErrorCode::NotRegistered, "not registered: register first");
        };
        self.peers[key as usize].last_seen = now;
        match body {
            RequestBody::Connect { .. } | RequestBody::Register { .. } => {
                error_reply(ErrorCode::BadRequest, "unexpected request")
            }
            RequestBody::Announce { files } => self.announce(key, &files),
            RequestBody::Withdraw { ids } => {
                let removed = ids.iter().filter(|id| self.withdraw(key, id)).count();
                ReplyBody::Withdrawn {
                    removed: removed as u32,
                }
            }
            RequestBody::ListPeers { cursor } => self.list_peers(key, cursor),
            RequestBody::ListFiles { cursor } => self.list_files(cursor),
            RequestBody::GetPeers { id } => self.get_peers(key, id),
            RequestBody::KeepAlive => ReplyBody::Ok,
            RequestBody::ChangeUsername { username } => match names::check_username(&username) {
                Ok(()) => {
                    self.peers[key as usize].username = username.into_boxed_str();
                    ReplyBody::Ok
                }
                Err(e) => error_reply(ErrorCode::BadUsername, &format!("username {e}")),
            },
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

    fn register(&mut self, from: SocketAddr, username: &str, port: u16, role: Role, now: u32) -> ReplyBody {
        if let Err(e) = names::check_username(username) {
            return error_reply(ErrorCode::BadUsername, &format!("username {e}"));
        }
        if port == 0 {
            return error_reply(ErrorCode::BadRequest, "TCP port 0 is not a serving port");
        }
        let interval_secs = self.limits.interval_secs;
        let from = PeerAddr::new(from);
        if let Some(&key) = self.peer_by_addr.get(&from) {
            let peer = &mut self.peers[key as usize];
            peer.username = username.into();
            peer.tcp_port = port;
            peer.role = role;
            peer.last_seen = now;
            return ReplyBody::Registered { interval_secs };
        }
        if self.peers.len() >= self.limits.max_peers {
            return error_reply(
                ErrorCode::TrackerFull,
                &format!(
                    "tracker is full ({} peers); try again later",
                    self.limits.max_peers
                ),
            );
        }
        let key = self.peers.insert(Peer {
            addr: from,
            username: username.into(),
            tcp_port: port,
            role,
            last_seen: now,
            files: Vec::new(),
        });
        self.peer_by_addr.insert(from, key as u32);
        ReplyBody::Registered { interval_secs }
    }

    fn announce(&mut self, peer: u32, entries: &[FileEntry]) -> ReplyBody {
        for (i, entry) in entries.iter().enumerate() {
            if let Err(e) = names::check_file_name(&entry.name) {
                return error_reply(
                    ErrorCode::BadFileName,
                    &format!("file {} of this announce: name {e}", i + 1),
                );
            }
        }
        let mut accepted = 0u32;
        for entry in entries {
            match self.add_holder(peer, entry) {
                Ok(()) => accepted += 1,
                Err(limit) => {
                    return error_reply(
                        ErrorCode::TooManyFiles,
                        &format!("accepted {accepted} of {}: {limit}", entries.len()),
                    )
                }
            }
        }
        ReplyBody::Announced { accepted }
    }

    /// Makes `peer` a holder of `entry`, creating the file record if needed.
    /// A file already known under another name or size is not added (the id
    /// covers both, so the announcer is wrong) but is not an error either.
    fn add_holder(&mut self, peer: u32, entry: &FileEntry) -> Result<(), String> {
        let existing = self.lookup(&entry.id);
        if existing.is_none() && self.file_by_prefix.contains_key(&prefix(&entry.id)) {
            // Another id with these 20 bytes: a forgery (see the module's
            // invariants); not tracked, like a forged name or size.
            return Ok(());
        }
        if let Some(f) = existing {
            let rec = &self.files[f as usize];
            if *rec.name != *entry.name || rec.size != entry.size {
                return Ok(());
            }
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
            return Err(format!("a peer may share at most {MAX_FILES_PER_PEER} files"));
        }
        let file = match existing {
            Some(f) => f,
            None => {
                if self.files.len() >= self.limits.max_files {
                    return Err(format!(
                        "the tracker holds its limit of {} files",
                        self.limits.max_files
                    ));
                }
                let f = self.files.insert(FileRecord {
                    id: entry.id,
                    name: entry.name.as_str().into(),
                    size: entry.size,
                    holders: Vec::new(),
                    complete: 0,
                }) as u32;
                self.file_by_prefix.insert(prefix(&entry.id), f);
                f
            }
        };
        let p = &mut self.peers[peer as usize];
        let rec = &mut self.files[file as usize];
        push_small(
            &mut p.files,
            Held {
                file,
                slot_in_file: rec.holders.len() as u32,
            },
        );
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
        }
    }

    fn remove_peer(&mut self, peer: u32) {
        while let Some(last) = self.peers[peer as usize].files.len().checked_sub(1) {
            self.unlink(peer, last);
        }
        let p = self.peers.remove(peer as usize);
        self.peer_by_addr.remove(&p.addr);
    }

    fn list_peers(&self, asker: u32, cursor: u32) -> ReplyBody {
        let mut page = Page::new();
        let mut next = None;
        for key in cursor as usize..self.peers.capacity() {
            let Some(p) = self.peers.get(key) else { continue };
            let row = PeerInfo {
                username: p.username.to_string(),
                addr: p.addr.with_port(p.tcp_port),
                role: p.role,
                files: p.files.len() as u32,
                is_you: key == asker as usize,
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

    fn list_files(&self, cursor: u32) -> ReplyBody {
        let mut page = Page::new();
        let mut next = None;
        for key in cursor as usize..self.files.capacity() {
            let Some(f) = self.files.get(key) else { continue };
            let row = FileInfo {
                id: f.id,
                name: f.name.to_string(),
                size: f.size,
                seeders: f.complete,
                partial: f.holders.len() as u32 - f.complete,
            };
            if page.try_push(row).is_err() {
                next = Some(key as u32);
                break;
            }
        }
        ReplyBody::FileList {
            files: page.into_items(),
            next,
        }
    }

    /// A shuffled sample of up to [`MAX_PEERS_PER_REPLY`] holders of `id`,
    /// not counting the asker. Floyd's algorithm picks the sample in
    /// O(k²) whatever the number of holders.
    fn get_peers(&mut self, asker: u32, id: FileId) -> ReplyBody {
        let holders: &[Holder] = match self.lookup(&id) {
            Some(f) => &self.files[f as usize].holders,
            None => &[],
        };
        let n = holders.len();
        let k = n.min(MAX_PEERS_PER_REPLY + 1);
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        for j in n - k..n {
            let t = self.rng.below(j + 1);
            picked.push(if picked.contains(&t) { j } else { t });
        }
        self.rng.shuffle(&mut picked);
        let peers: Vec<SocketAddr> = picked
            .into_iter()
            .map(|i| holders[i].peer)
            .filter(|&p| p != asker)
            .take(MAX_PEERS_PER_REPLY)
            .map(|p| {
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
                interval_secs: 10,
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
            },
            now,
        )
    }

    fn entry(i: u8) -> FileEntry {
        FileEntry {
            id: [i; 32],
            name: format!("file{i}"),
            size: u64::from(i) * 100,
            complete: true,
        }
    }

    fn announce(r: &mut Registry, n: u16, files: Vec<FileEntry>) -> ReplyBody {
        r.handle(addr(n), RequestBody::Announce { files }, 0)
    }

    fn all_files(r: &mut Registry, asker: u16) -> Vec<FileInfo> {
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            match r.handle(addr(asker), RequestBody::ListFiles { cursor }, 0) {
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
        assert_eq!(files.iter().find(|f| f.id == [1; 32]).unwrap().seeders, 2);

        assert_eq!(
            r.handle(
                addr(1),
                RequestBody::Withdraw {
                    ids: vec![[1; 32], [9; 32]]
                },
                0
            ),
            ReplyBody::Withdrawn { removed: 1 }
        );
        assert_eq!(
            all_files(&mut r, 1)
                .iter()
                .find(|f| f.id == [1; 32])
                .unwrap()
                .seeders,
            1
        );
        assert_eq!(r.handle(addr(2), RequestBody::Disconnect, 0), ReplyBody::Ok);
        let ids: Vec<FileId> = all_files(&mut r, 1).iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![[2; 32]]);
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
        match r.handle(addr(1), RequestBody::GetPeers { id: [5; 32] }, 0) {
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
        match r.handle(addr(300), RequestBody::GetPeers { id: [6; 32] }, 0) {
            ReplyBody::Peers { peers, .. } => assert_eq!(peers, vec![SocketAddr::new(addr(2).ip(), 7002)]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.handle(addr(1), RequestBody::GetPeers { id: [99; 32] }, 0),
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
            let ReplyBody::PeerList { peers, next } = r.handle(addr(5), RequestBody::ListPeers { cursor }, 0)
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
                r.handle(addr(n), RequestBody::Withdraw { ids: vec![[f; 32]] }, 0);
            }
            // Check the mirror invariant.
            for (pk, p) in r.peers.iter() {
                for (slot, held) in p.files.iter().enumerate() {
                    let h = r.files[held.file as usize].holders[held.slot_in_file as usize];
                    assert_eq!((h.peer as usize, h.slot_in_peer as usize), (pk, slot));
                }
            }
            for (_, f) in r.files.iter() {
                assert!(!f.holders.is_empty());
                assert_eq!(
                    f.complete as usize,
                    f.holders.iter().filter(|h| h.complete).count()
                );
            }
        }
    }

    #[test]
    fn a_full_peer_can_still_update_a_file_it_holds() {
        use sha2::{Digest, Sha256};
        let mut r = Registry::new(
            Limits {
                max_peers: 2,
                max_files: 2 * MAX_FILES_PER_PEER,
                interval_secs: 10,
            },
            Rng::seeded(7),
        );
        register(&mut r, 1, 0);
        let many = |n: usize, complete: bool| -> Vec<FileEntry> {
            (0..n)
                .map(|i| FileEntry {
                    id: Sha256::digest(i.to_le_bytes()).into(),
                    name: format!("f{i}"),
                    size: 1,
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
        let hash = [9u8; 20];
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
        let mut forged = entry(9);
        forged.id[31] ^= 1;
        assert_eq!(
            announce(&mut r, 3, vec![forged.clone()]),
            ReplyBody::Announced { accepted: 1 }
        );
        assert_eq!(r.file_count(), 1);
        match r.handle(addr(3), RequestBody::GetPeers { id: forged.id }, 0) {
            ReplyBody::Peers { peers, .. } => assert!(peers.is_empty()),
            other => panic!("{other:?}"),
        }
        match r.handle(addr(3), RequestBody::GetPeers { id: entry(9).id }, 0) {
            ReplyBody::Peers { peers, .. } => assert_eq!(peers.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
