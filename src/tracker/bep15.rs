//! The tracker's BEP 15 side: what one BitTorrent datagram deserves. Pure
//! apart from the state it updates (swarms, counters); the server's loop
//! owns the socket and sends what this writes.
//!
//! Invariants:
//! - Nothing but a connect response goes to a sender without a valid BEP 15
//!   connection id, and a connect response (16 bytes) is never larger than
//!   the connect request (at least 16): no amplification of spoofed traffic.
//!   Forged or expired ids get no reply at all.
//! - The sender's address is canonical before it is used: an IPv4-mapped
//!   IPv6 address (an IPv4 client on a `[::]` socket) is IPv4, for ids,
//!   swarms, per-host caps and the family of the peers returned.
//! - A response holds at most [`MAX_NUM_WANT`] peers, so it fits
//!   [`crate::wire::MAX_DATAGRAM`] in either family.
//! - The project's files are BitTorrent swarms too: their holders are added
//!   (counts and addresses) under the first 20 bytes of the file id.

use super::access::AccessList;
use super::connid::ConnIds;
use super::registry::Registry;
use super::swarms::{SwarmLimits, Swarms};
use crate::rand::Rng;
use crate::wire::bep15::{
    decode_request, put_announce_header, put_connect_response, put_error, put_scrape_header,
    put_scrape_stats, Event, Request, RequestError, ANNOUNCE_RESPONSE_HEADER_LEN,
};
use std::net::{IpAddr, SocketAddr};

/// Peers given when an announce asks for the tracker's default (`num_want`
/// of 0 or less), and the most given whatever it asks.
pub const MAX_NUM_WANT: usize = 50;

/// What one family's BEP 15 traffic did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BtCounters {
    pub connects: u64,
    pub announces: u64,
    pub scrapes: u64,
    /// Error responses sent (bad request with a valid id, refusals).
    pub errors: u64,
    /// Datagrams dropped without a reply (forged ids, noise).
    pub dropped: u64,
}

/// What the server does with the bytes [`Bep15::answer`] wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The sender holds a valid id: send.
    Reply,
    /// The sender is unproven: send only if no larger than its datagram.
    Unproven,
    Drop(&'static str),
}

pub struct Bep15 {
    ids: ConnIds,
    swarms: Swarms,
    access: Option<AccessList>,
    /// Index 0 for IPv4 senders, 1 for IPv6.
    pub counters: [BtCounters; 2],
    /// Scratch for the project's holder addresses a scrape does not send.
    scratch: Vec<u8>,
}

impl Bep15 {
    pub fn new(ids: ConnIds, limits: SwarmLimits, access: Option<AccessList>, rng: Rng) -> Bep15 {
        Bep15 {
            ids,
            swarms: Swarms::new(limits, rng),
            access,
            counters: [BtCounters::default(); 2],
            scratch: Vec::new(),
        }
    }

    pub fn swarms(&self) -> &Swarms {
        &self.swarms
    }

    pub fn access(&self) -> Option<&AccessList> {
        self.access.as_ref()
    }

    /// Reads the access list again; on success swarms it no longer allows
    /// are dropped at once. On failure the old list stays.
    pub fn reload_access(&mut self) -> Result<String, String> {
        let Some(old) = &self.access else {
            return Ok("no access list configured".into());
        };
        let new = old.reload()?;
        let dropped = self.swarms.retain_torrents(|h| new.allows(h));
        let summary = format!(
            "access list reloaded: {} hashes, {} mode; {dropped} peers of swarms no longer allowed dropped",
            new.len(),
            new.mode()
        );
        self.access = Some(new);
        Ok(summary)
    }

    pub fn expire(&mut self, now: u32) -> usize {
        self.swarms.expire(now)
    }

    fn allowed(&self, hash: &[u8; 20]) -> bool {
        match &self.access {
            Some(list) => list.allows(hash),
            None => true,
        }
    }

    /// Writes into `out` (cleared first) the response `datagram` from
    /// `from` deserves, and says whether to send it.
    pub fn answer(
        &mut self,
        registry: &mut Registry,
        datagram: &[u8],
        from: SocketAddr,
        now: u32,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        let ip = from.ip().to_canonical();
        let from = SocketAddr::new(ip, from.port());
        let fam = usize::from(ip.is_ipv6());
        let proven = |ids: &ConnIds, conn: u64| ids.check(&conn.to_be_bytes(), from, now);
        let outcome = match decode_request(datagram) {
            Ok(Request::Connect { tx }) => {
                let id = u64::from_be_bytes(self.ids.issue(from, now));
                put_connect_response(tx, id, out);
                self.counters[fam].connects += 1;
                Outcome::Unproven
            }
            Ok(Request::Announce(a)) if proven(&self.ids, a.conn) => {
                self.counters[fam].announces += 1;
                if !self.allowed(&a.info_hash) {
                    put_error(a.tx, "info hash not allowed on this tracker", out);
                    self.counters[fam].errors += 1;
                    return Outcome::Reply;
                }
                let want = match usize::try_from(a.num_want) {
                    Ok(n) if n > 0 => n.min(MAX_NUM_WANT),
                    _ => MAX_NUM_WANT,
                };
                let interval = self.swarms.interval_secs();
                put_announce_header(a.tx, interval, 0, 0, out);
                match self.swarms.announce(&a, ip, now, want, out) {
                    Ok(mut counts) => {
                        let width = if ip.is_ipv6() { 18 } else { 6 };
                        let given = (out.len() - ANNOUNCE_RESPONSE_HEADER_LEN) / width;
                        let left = if a.event == Event::Stopped {
                            0
                        } else {
                            want - given
                        };
                        let me = SocketAddr::new(ip, a.port);
                        if let Some((s, l)) = registry.bt_view(&a.info_hash, ip.is_ipv6(), me, left, out) {
                            counts.seeders += s;
                            counts.leechers += l;
                        }
                        out[12..16].copy_from_slice(&counts.leechers.to_be_bytes());
                        out[16..20].copy_from_slice(&counts.seeders.to_be_bytes());
                    }
                    Err(refusal) => {
                        out.clear();
                        put_error(a.tx, refusal.message(), out);
                        self.counters[fam].errors += 1;
                    }
                }
                Outcome::Reply
            }
            Ok(Request::Scrape(s)) if proven(&self.ids, s.conn) => {
                self.counters[fam].scrapes += 1;
                put_scrape_header(s.tx, out);
                for hash in &s.info_hashes {
                    let mut stats = if self.allowed(hash) {
                        self.swarms.scrape(hash)
                    } else {
                        Default::default()
                    };
                    self.scratch.clear();
                    if let Some((seeders, leechers)) =
                        registry.bt_view(hash, false, from, 0, &mut self.scratch)
                    {
                        stats.seeders += seeders;
                        stats.leechers += leechers;
                    }
                    put_scrape_stats(stats, out);
                }
                Outcome::Reply
            }
            Ok(_) => Outcome::Drop("BEP 15 request with a missing, forged or expired connection id"),
            Err(RequestError::Sendable { conn, tx, why }) if proven(&self.ids, conn) => {
                put_error(tx, why, out);
                self.counters[fam].errors += 1;
                Outcome::Reply
            }
            Err(RequestError::Sendable { .. }) => Outcome::Drop("bad BEP 15 request without a valid id"),
            Err(RequestError::Unsendable(why)) => Outcome::Drop(why),
        };
        if let Outcome::Drop(_) = outcome {
            self.counters[fam].dropped += 1;
        }
        outcome
    }
}

/// Whether `ip` is IPv4 once IPv4-mapped addresses are unwrapped.
pub fn is_v4(ip: IpAddr) -> bool {
    ip.to_canonical().is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::registry::{Fairness, Limits};
    use crate::wire::bep15::{
        decode_response, encode_request, AnnounceRequest, Peers, Response, ScrapeRequest, ScrapeStats,
    };
    use crate::wire::tracker::{FileEntry, RequestBody, Role};

    fn setup() -> (Bep15, Registry) {
        let limits = SwarmLimits {
            max_torrents: 100,
            max_peers: 1000,
            max_peers_per_torrent: 100,
            max_per_ip: 100,
            interval_secs: 1800,
        };
        let bt = Bep15::new(ConnIds::new_bep15([9; 32], 120), limits, None, Rng::seeded(1));
        let reg = Registry::new(
            Limits {
                max_peers: 10,
                max_files: 10,
                max_peers_per_host: 1000,
                max_files_per_host: 1_000_000,
                interval_secs: 30,
                fair: Fairness::OFF,
            },
            Rng::seeded(2),
        );
        (bt, reg)
    }

    fn send(bt: &mut Bep15, reg: &mut Registry, req: &Request, from: &str) -> (Outcome, Option<Response>) {
        let mut buf = Vec::new();
        encode_request(req, &mut buf);
        let from: SocketAddr = from.parse().unwrap();
        let mut out = Vec::new();
        let outcome = bt.answer(reg, &buf, from, 10, &mut out);
        let v6 = !is_v4(from.ip());
        let resp = (!out.is_empty()).then(|| decode_response(&out, v6).expect("a valid response"));
        if outcome == Outcome::Unproven {
            assert!(out.len() <= buf.len(), "amplification");
        }
        (outcome, resp)
    }

    fn connect(bt: &mut Bep15, reg: &mut Registry, from: &str) -> u64 {
        match send(bt, reg, &Request::Connect { tx: 1 }, from) {
            (Outcome::Unproven, Some(Response::Connect { tx: 1, conn })) => conn,
            other => panic!("{other:?}"),
        }
    }

    fn announce(conn: u64, hash: u8, port: u16, left: u64) -> Request {
        Request::Announce(AnnounceRequest::new(
            conn,
            2,
            [hash; 20],
            port,
            left,
            Event::Started,
        ))
    }

    #[test]
    fn connect_then_announce_and_scrape() {
        let (mut bt, mut reg) = setup();
        let a = connect(&mut bt, &mut reg, "10.0.0.1:1000");
        assert!(a >> 63 == 1, "top bit set");
        let (o, _) = send(&mut bt, &mut reg, &announce(a, 1, 6881, 0), "10.0.0.1:1000");
        assert_eq!(o, Outcome::Reply);
        let b = connect(&mut bt, &mut reg, "10.0.0.2:1000");
        let (_, resp) = send(&mut bt, &mut reg, &announce(b, 1, 6882, 5), "10.0.0.2:1000");
        let Some(Response::Announce(r)) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!((r.interval, r.seeders, r.leechers), (1800, 1, 1));
        assert_eq!(r.peers, Peers::V4(vec!["10.0.0.1:6881".parse().unwrap()]));
        let scrape = Request::Scrape(ScrapeRequest {
            conn: b,
            tx: 3,
            info_hashes: vec![[1; 20], [7; 20]],
        });
        let (_, resp) = send(&mut bt, &mut reg, &scrape, "10.0.0.2:1000");
        assert_eq!(
            resp,
            Some(Response::Scrape {
                tx: 3,
                stats: vec![
                    ScrapeStats {
                        seeders: 1,
                        completed: 0,
                        leechers: 1
                    },
                    ScrapeStats::default()
                ]
            })
        );
        assert_eq!(bt.counters[0].connects, 2);
        assert_eq!(bt.counters[0].announces, 2);
        assert_eq!(bt.counters[0].scrapes, 1);
    }

    #[test]
    fn forged_ids_get_nothing_and_valid_ids_get_errors() {
        let (mut bt, mut reg) = setup();
        let id = connect(&mut bt, &mut reg, "10.0.0.1:1000");
        // Another sender's id, a flipped bit: silence.
        for (conn, from) in [
            (id, "10.0.0.9:1000"),
            (id ^ 1, "10.0.0.1:1000"),
            (0, "10.0.0.1:1000"),
        ] {
            let (o, resp) = send(&mut bt, &mut reg, &announce(conn, 1, 1, 0), from);
            assert!(matches!(o, Outcome::Drop(_)) && resp.is_none());
        }
        assert_eq!(bt.swarms().torrent_count(), 0);
        // A short announce: an error, but only with a valid id.
        let mut buf = Vec::new();
        encode_request(&announce(id, 1, 1, 0), &mut buf);
        let mut out = Vec::new();
        let from: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        assert_eq!(
            bt.answer(&mut reg, &buf[..60], from, 10, &mut out),
            Outcome::Reply
        );
        assert!(matches!(
            decode_response(&out, false),
            Ok(Response::Error { tx: 2, .. })
        ));
        buf[7] ^= 1;
        assert!(matches!(
            bt.answer(&mut reg, &buf[..60], from, 10, &mut out),
            Outcome::Drop(_)
        ));
        // Expired: issued at 10, checked two lifetimes later.
        let mut fresh = Vec::new();
        encode_request(&announce(id, 1, 1, 0), &mut fresh);
        assert!(matches!(
            bt.answer(&mut reg, &fresh, from, 250, &mut out),
            Outcome::Drop(_)
        ));
        assert_eq!(bt.counters[0].dropped, 5);
        assert_eq!(bt.counters[0].errors, 1);
    }

    #[test]
    fn ipv4_mapped_senders_are_ipv4() {
        let (mut bt, mut reg) = setup();
        let a = connect(&mut bt, &mut reg, "[::ffff:10.0.0.1]:1000");
        // The same client seen without the mapping holds the same id.
        send(&mut bt, &mut reg, &announce(a, 1, 6881, 0), "10.0.0.1:1000");
        let b = connect(&mut bt, &mut reg, "[::ffff:10.0.0.2]:1000");
        let (_, resp) = send(
            &mut bt,
            &mut reg,
            &announce(b, 1, 6882, 0),
            "[::ffff:10.0.0.2]:1000",
        );
        let Some(Response::Announce(r)) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!(r.peers, Peers::V4(vec!["10.0.0.1:6881".parse().unwrap()]));
        assert_eq!(bt.swarms().peer_counts(), (2, 0));
        assert_eq!(bt.counters[0].connects, 2);
        assert_eq!(bt.counters[1], BtCounters::default());
        // A real IPv6 sender gets IPv6 peers only.
        let c = connect(&mut bt, &mut reg, "[2001:db8::5]:1000");
        let (_, resp) = send(&mut bt, &mut reg, &announce(c, 1, 6883, 0), "[2001:db8::5]:1000");
        let Some(Response::Announce(r)) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!((r.seeders, r.peers), (3, Peers::V6(vec![])));
        assert_eq!(bt.counters[1].announces, 1);
    }

    #[test]
    fn project_files_are_found_by_their_first_20_bytes() {
        let (mut bt, mut reg) = setup();
        let seeder: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        reg.handle(
            seeder,
            RequestBody::Register {
                username: "alice".into(),
                port: 7000,
                role: Role::Seeder,
                secret: [0; 16],
            },
            0,
        );
        let file = FileEntry {
            name: "a.bin".into(),
            size: 1,
            chunk_size: 1 << 20,
            root: [4; 32],
            complete: true,
        };
        let hash: [u8; 20] = file.id()[..20].try_into().unwrap();
        reg.handle(seeder, RequestBody::Announce { files: vec![file] }, 0);
        let c = connect(&mut bt, &mut reg, "10.0.0.1:1000");
        let req = Request::Announce(AnnounceRequest::new(c, 2, hash, 6881, 9, Event::Started));
        let (_, resp) = send(&mut bt, &mut reg, &req, "10.0.0.1:1000");
        let Some(Response::Announce(r)) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!((r.seeders, r.leechers), (1, 1));
        assert_eq!(r.peers, Peers::V4(vec!["10.0.0.7:7000".parse().unwrap()]));
        let scrape = Request::Scrape(ScrapeRequest {
            conn: c,
            tx: 3,
            info_hashes: vec![hash],
        });
        let (_, resp) = send(&mut bt, &mut reg, &scrape, "10.0.0.1:1000");
        let Some(Response::Scrape { stats, .. }) = resp else {
            panic!("{resp:?}")
        };
        assert_eq!((stats[0].seeders, stats[0].leechers), (1, 1));
    }

    #[test]
    fn access_list_refuses_and_reload_drops_swarms() {
        let dir = crate::testutil::TempDir::new("bt-access");
        let path = dir.path().join("allow");
        std::fs::write(&path, format!("{}\n", "01".repeat(20))).unwrap();
        let (bt0, mut reg) = setup();
        let list = AccessList::load(&path, super::super::access::Mode::Allow).unwrap();
        let mut bt = Bep15 {
            access: Some(list),
            ..bt0
        };
        let c = connect(&mut bt, &mut reg, "10.0.0.1:1000");
        let (_, resp) = send(&mut bt, &mut reg, &announce(c, 1, 6881, 0), "10.0.0.1:1000");
        assert!(matches!(resp, Some(Response::Announce(_))));
        let (_, resp) = send(&mut bt, &mut reg, &announce(c, 2, 6881, 0), "10.0.0.1:1000");
        assert!(matches!(resp, Some(Response::Error { ref message, .. }) if message.contains("not allowed")));
        assert_eq!(bt.swarms().torrent_count(), 1);
        // The operator swaps the list: the old swarm goes at once.
        std::fs::write(&path, format!("{}\n", "02".repeat(20))).unwrap();
        assert!(bt.reload_access().unwrap().contains("1 peers"));
        assert_eq!(bt.swarms().torrent_count(), 0);
        // A broken file keeps the list in force.
        std::fs::write(&path, "junk\n").unwrap();
        assert!(bt.reload_access().is_err());
        let (_, resp) = send(&mut bt, &mut reg, &announce(c, 2, 6881, 0), "10.0.0.1:1000");
        assert!(matches!(resp, Some(Response::Announce(_))));
    }
}
