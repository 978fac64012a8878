//! The tracker link's tests, against the tracker's real logic (its
//! connection ids, its registry and the server's `answer`) on a fake
//! clock. A child module of `client::engine::tracker_link` (for its
//! private limits), kept with the simulation so that the client's own code
//! never imports the tracker.

use super::*;
use crate::tracker::connid::ConnIds;
use crate::tracker::registry::{Fairness, Limits, Registry};
use crate::tracker::server::{answer, Answer};
use crate::wire::tracker::{decode_request, encode_reply};

const INTERVAL: u32 = 30;
const LIFETIME: u32 = 120;
const SEC: Duration = Duration::from_secs(1);

/// The real tracker logic (connection ids + registry, answered by the
/// server's own `answer`) on a fake clock, wired to one link.
struct Net {
    base: Instant,
    now: Instant,
    tracker_start: Instant,
    ids: ConnIds,
    reg: Registry,
    me: SocketAddr,
    /// False: the tracker never answers.
    up: bool,
    /// Datagrams for which this returns true are lost.
    lose: Box<dyn FnMut(&RequestBody) -> bool>,
    /// Every datagram the link sent, with its time since `base`.
    sent: Vec<(Duration, RequestBody)>,
    events: Vec<LinkEvent>,
}

fn registry() -> Registry {
    Registry::new(
        Limits {
            max_peers: 1000,
            max_files: 100_000,
            max_peers_per_host: 1000,
            max_files_per_host: 1_000_000,
            interval_secs: INTERVAL,
            fair: Fairness::OFF,
        },
        Rng::seeded(11),
    )
}

fn peer_addr(n: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, (n >> 8) as u8, n as u8], 50_000 + n))
}

fn entry(i: u32) -> FileEntry {
    let mut root = [0xa5; 32];
    root[..4].copy_from_slice(&i.to_be_bytes());
    FileEntry {
        name: format!("shared-file-number-{i:05}-with-a-longer-name.bin"),
        size: u64::from(i) * 1000 + 1,
        chunk_size: 1 << 20,
        root,
        complete: true,
    }
}

fn entries(range: std::ops::Range<u32>) -> Vec<FileEntry> {
    range.map(entry).collect()
}

impl Net {
    fn new() -> (Net, TrackerLink) {
        let base = Instant::now();
        let net = Net {
            base,
            now: base,
            tracker_start: base,
            ids: ConnIds::new([1; 32], LIFETIME),
            reg: registry(),
            me: "192.0.2.7:40000".parse().unwrap(),
            up: true,
            lose: Box::new(|_| false),
            sent: Vec::new(),
            events: Vec::new(),
        };
        let link = TrackerLink::new("alice".into(), [5; 16], 6881, Role::Seeder, Rng::seeded(5), base);
        (net, link)
    }

    /// The tracker comes back as a new process: a new secret (key
    /// `[key; 32]`), an empty registry, its own clock.
    fn restart_tracker(&mut self, key: u8) {
        self.ids = ConnIds::new([key; 32], LIFETIME);
        self.reg = registry();
        self.tracker_start = self.now;
        self.up = true;
    }

    fn secs(&self) -> u32 {
        self.now.duration_since(self.tracker_start).as_secs() as u32
    }

    /// Exactly what the server sends back for `datagram`, if anything.
    fn serve(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        let now = self.secs();
        let (reply, unproven) = match answer(&self.ids, &mut self.reg, datagram, self.me, now) {
            Answer::Reply(r) => (r, false),
            Answer::Unproven(r) => (r, true),
            Answer::Drop(_) => return None,
        };
        let mut buf = Vec::new();
        encode_reply(&reply, &mut buf).unwrap();
        (!unproven || buf.len() <= datagram.len()).then_some(buf)
    }

    /// Sends everything the link has due, answering at once.
    fn flush(&mut self, link: &mut TrackerLink) {
        for _ in 0..100_000 {
            let mut out = Vec::new();
            if !link.poll_transmit(self.now, &mut out) {
                return;
            }
            assert!(out.len() <= MAX_DATAGRAM, "{} bytes", out.len());
            let req = decode_request(&out).expect("the link sends valid requests");
            self.sent
                .push((self.now.duration_since(self.base), req.body.clone()));
            if !self.up || (self.lose)(&req.body) {
                continue;
            }
            if let Some(reply) = self.serve(&out) {
                link.handle_datagram(&reply, self.now, &mut self.events);
            }
        }
        panic!("the link never stops sending");
    }

    /// Runs the link's timers for `d` of fake time; the tracker expires
    /// silent peers as its sweep would.
    fn run(&mut self, link: &mut TrackerLink, d: Duration) {
        let until = self.now + d;
        for _ in 0..100_000 {
            self.flush(link);
            let secs = self.secs();
            self.reg.expire(secs);
            match link.poll_deadline() {
                Some(at) if at <= until => {
                    self.now = self.now.max(at);
                    link.handle_timeout(self.now, &mut self.events);
                }
                _ => {
                    self.now = until;
                    link.handle_timeout(self.now, &mut self.events);
                    self.flush(link);
                    return;
                }
            }
        }
        panic!("the link's deadline never moves forward");
    }

    fn count(&self, f: impl Fn(&LinkEvent) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    fn sent_kind(&self, kind: &str) -> Vec<Duration> {
        self.sent
            .iter()
            .filter(|(_, b)| b.kind() == kind)
            .map(|(t, _)| *t)
            .collect()
    }

    fn failures(&self) -> Vec<&LinkEvent> {
        self.events
            .iter()
            .filter(|e| matches!(e, LinkEvent::Failed { .. }))
            .collect()
    }

    fn add_peer(&mut self, n: u16, files: Vec<FileEntry>) {
        let now = self.secs();
        let r = self.reg.handle(
            peer_addr(n),
            RequestBody::Register {
                username: format!("peer{n}"),
                port: 7000 + n,
                role: Role::Seeder,
                secret: [0; 16],
            },
            now,
        );
        assert!(matches!(r, ReplyBody::Registered { .. }), "{r:?}");
        for chunk in files.chunks(20) {
            let r = self.reg.handle(
                peer_addr(n),
                RequestBody::Announce {
                    files: chunk.to_vec(),
                },
                now,
            );
            assert!(matches!(r, ReplyBody::Announced { .. }), "{r:?}");
        }
    }

    /// Our own entry in the tracker's peer list, as another peer sees it.
    fn me_at_tracker(&mut self) -> Option<PeerInfo> {
        let now = self.secs();
        self.add_peer(999, vec![]);
        let ReplyBody::PeerList { peers, next: None } = self.reg.handle(
            peer_addr(999),
            RequestBody::ListPeers {
                cursor: 0,
                member: true,
            },
            now,
        ) else {
            panic!("one page expected");
        };
        peers.into_iter().find(|p| p.addr.port() == 6881)
    }
}

#[test]
fn handshake_register_and_announce_300_files_in_pages() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..300), net.now);
    net.run(&mut link, SEC);
    assert_eq!(
        net.events,
        vec![
            LinkEvent::Registered {
                interval: Duration::from_secs(u64::from(INTERVAL))
            },
            LinkEvent::Announced { files: 300 },
        ]
    );
    assert!(link.is_registered());
    assert_eq!(net.reg.file_count(), 300);
    let pages = net.sent_kind("announce").len();
    assert!(pages >= 5, "300 files in only {pages} datagrams");
    assert_eq!(net.sent_kind("connect").len(), 1);
    assert_eq!(net.sent_kind("register").len(), 1);
    assert_eq!(net.me_at_tracker().unwrap().files, 300);

    // A later announce: only the new and changed files travel.
    let mut changed = entry(3);
    changed.complete = false;
    let mut later = entries(300..310);
    later.push(changed);
    later.push(entry(4)); // unchanged
    let before = net.sent.len();
    link.announce(later, net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.events.last(), Some(&LinkEvent::Announced { files: 310 }));
    let files: usize = net.sent[before..]
        .iter()
        .map(|(_, b)| match b {
            RequestBody::Announce { files } => files.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(files, 11);
    assert_eq!(net.reg.file_count(), 310);
    assert!(net.failures().is_empty());
}

#[test]
fn lost_datagrams_are_retried() {
    let (mut net, mut link) = Net::new();
    let mut lost = HashSet::new();
    // Lose the first datagram of every kind.
    net.lose = Box::new(move |b| lost.insert(b.kind()));
    link.announce(entries(0..100), net.now);
    net.run(&mut link, 10 * SEC);
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Announced { files: 100 })), 1);
    assert_eq!(net.reg.file_count(), 100);
    let connects = net.sent_kind("connect");
    assert_eq!(connects, vec![Duration::ZERO, Duration::from_millis(500)]);
    assert_eq!(net.sent_kind("register").len(), 2);
    assert!(net.failures().is_empty(), "{:?}", net.failures());
}

#[test]
fn list_files_and_list_peers_gather_every_page() {
    let (mut net, mut link) = Net::new();
    for n in 1..=150 {
        net.add_peer(n, entries(u32::from(n) * 10..u32::from(n) * 10 + 2));
    }
    link.announce(entries(0..3), net.now);
    net.run(&mut link, SEC);
    link.query(Query::ListFiles, net.now).unwrap();
    link.query(Query::ListPeers, net.now).unwrap();
    net.run(&mut link, SEC);
    let files = net
        .events
        .iter()
        .find_map(|e| match e {
            LinkEvent::FileList(f) => Some(f.clone()),
            _ => None,
        })
        .expect("a file list");
    assert_eq!(files.len(), 303);
    assert_eq!(files.iter().filter(|f| f.seeders == 1).count(), 303);
    let mut ids: Vec<FileId> = files.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 303, "no row twice");
    assert!(net.sent_kind("list files").len() > 1, "one page only");

    let peers = net
        .events
        .iter()
        .find_map(|e| match e {
            LinkEvent::PeerList(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a peer list");
    assert_eq!(peers.len(), 151);
    assert_eq!(peers.iter().filter(|p| p.is_you).count(), 1);
    assert!(net.sent_kind("list peers").len() > 1, "one page only");
}

#[test]
fn get_peers_returns_the_holders() {
    let (mut net, mut link) = Net::new();
    net.add_peer(1, vec![entry(42)]);
    net.add_peer(2, vec![entry(42), entry(43)]);
    net.run(&mut link, SEC);
    link.query(Query::GetPeers(entry(42).id()), net.now).unwrap();
    link.query(Query::GetPeers(entry(77).id()), net.now).unwrap();
    net.run(&mut link, SEC);
    let mut got: Vec<(FileId, Vec<SocketAddr>)> = net
        .events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::Peers { id, peers } => Some((*id, peers.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2);
    got[0].1.sort();
    let tcp = |n: u16| SocketAddr::new(peer_addr(n).ip(), 7000 + n);
    assert_eq!(got[0], (entry(42).id(), vec![tcp(1), tcp(2)]));
    assert_eq!(got[1], (entry(77).id(), vec![]));
}

#[test]
fn a_restarted_tracker_gets_us_back_by_itself() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..300), net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.reg.file_count(), 300);
    // Restart: new secret, empty registry, its own clock.
    net.ids = ConnIds::new([2; 32], LIFETIME);
    net.reg = registry();
    net.tracker_start = net.now;
    let restart = net.now;
    net.run(&mut link, Duration::from_secs(u64::from(INTERVAL)) + 10 * SEC);
    assert_eq!(net.reg.file_count(), 300);
    assert_eq!(net.reg.peer_count(), 1);
    assert!(link.is_registered());
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Registered { .. })), 2);
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Announced { files: 300 })), 2);
    assert!(net.failures().is_empty(), "{:?}", net.failures());
    let reconnect = net.sent_kind("connect")[1];
    let since = reconnect - restart.duration_since(net.base);
    assert!(since <= Duration::from_secs(u64::from(INTERVAL) + 2), "{since:?}");
    // Registered again right after the new handshake: the keep-alive that
    // went unanswered on the old id was resent with the new one at once.
    let register = net.sent_kind("register")[1];
    assert!(register - reconnect < FIRST_RETRY, "{:?}", register - reconnect);
}

#[test]
fn keep_alives_follow_the_interval_and_ids_are_refreshed() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..5), net.now);
    net.run(&mut link, 300 * SEC);
    let keepalives: Vec<u64> = net.sent_kind("keep-alive").iter().map(|t| t.as_secs()).collect();
    assert_eq!(keepalives, (1..=10).map(|k| k * 30).collect::<Vec<_>>());
    // Ids live 120 s; the link renews them before that, so no request
    // ever went unanswered.
    let connects = net.sent_kind("connect");
    assert!(connects.len() >= 3, "{connects:?}");
    assert!(connects
        .windows(2)
        .all(|w| w[1] - w[0] < Duration::from_secs(120)));
    assert_eq!(
        net.sent.len() - net.sent_kind("keep-alive").len() - connects.len(),
        2
    );
    assert_eq!(net.reg.peer_count(), 1, "expired despite keep-alives");
    assert!(net.failures().is_empty());

    // Without keep-alives the same tracker would have expired us.
    let mut silent = registry();
    let r = silent.handle(
        net.me,
        RequestBody::Register {
            username: "x".into(),
            port: 1,
            role: Role::Seeder,
            secret: [0; 16],
        },
        0,
    );
    assert!(matches!(r, ReplyBody::Registered { .. }));
    assert_eq!(silent.expire(3 * INTERVAL), 1);
}

#[test]
fn a_silent_tracker_is_unreachable_once_and_queries_fail() {
    let (mut net, mut link) = Net::new();
    net.up = false;
    link.query(Query::ListPeers, net.now).unwrap();
    net.run(&mut link, 60 * SEC);
    assert_eq!(net.count(|e| *e == LinkEvent::Unreachable), 1);
    assert_eq!(
        net.count(|e| matches!(
            e,
            LinkEvent::Failed {
                what: RequestKind::ListPeers,
                ..
            }
        )),
        1
    );
    assert_eq!(net.events.len(), 2, "{:?}", net.events);
    assert!(!link.is_registered());
    // The handshake keeps trying: every second while the query waits on
    // it (15 s, unsendable), then backing off to 8 s.
    let connects = net.sent_kind("connect");
    let (waited, after): (Vec<Duration>, Vec<Duration>) = connects.iter().partition(|t| **t <= WAIT_PATIENCE);
    assert!(waited.len() >= 14 && after.len() >= 4, "{connects:?}");
    let gaps = |ts: &[Duration]| ts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>();
    assert!(gaps(&waited).iter().all(|g| *g <= WAITED_HANDSHAKE), "{waited:?}");
    assert!(gaps(&after[1..]).iter().all(|g| *g == MAX_BACKOFF), "{after:?}");

    net.up = true;
    net.run(&mut link, 10 * SEC);
    assert_eq!(net.count(|e| *e == LinkEvent::Reachable), 1);
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Registered { .. })), 1);
    assert!(link.is_registered());
}

#[test]
fn a_query_sent_into_silence_fails_after_its_retries() {
    let (mut net, mut link) = Net::new();
    net.run(&mut link, SEC);
    net.up = false;
    link.query(Query::ListFiles, net.now).unwrap();
    net.run(&mut link, 20 * SEC);
    assert_eq!(net.sent_kind("list files").len(), MAX_SENDS as usize);
    assert_eq!(
        net.count(|e| matches!(
            e,
            LinkEvent::Failed {
                what: RequestKind::ListFiles,
                ..
            }
        )),
        1
    );
    assert_eq!(net.count(|e| *e == LinkEvent::Unreachable), 1);
}

#[test]
fn username_change_accepted_and_refused() {
    let (mut net, mut link) = Net::new();
    net.run(&mut link, SEC);
    link.change_username("bob".into(), net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.events.last(), Some(&LinkEvent::UsernameChanged("bob".into())));
    assert_eq!(link.username(), "bob");
    assert_eq!(net.me_at_tracker().unwrap().username, "bob");

    link.change_username("two words\x1b[31m".into(), net.now);
    net.run(&mut link, SEC);
    match net.events.last() {
        Some(LinkEvent::Failed { what, error }) => {
            assert_eq!(*what, RequestKind::ChangeUsername);
            assert!(error.contains("BadUsername"), "{error}");
            assert!(!error.contains('\x1b'));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(link.username(), "bob");
    // A later re-registration uses the accepted name.
    link.set_role(Role::Leecher, net.now);
    net.run(&mut link, SEC);
    let me = net.me_at_tracker().unwrap();
    assert_eq!((me.username.as_str(), me.role), ("bob", Role::Leecher));
}

#[test]
fn disconnect_is_acknowledged_and_removes_us() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..50), net.now);
    net.run(&mut link, SEC);
    link.query(Query::ListPeers, net.now).unwrap();
    link.disconnect(net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.events.last(), Some(&LinkEvent::Disconnected));
    assert_eq!(net.count(|e| matches!(e, LinkEvent::PeerList(_))), 0);
    assert_eq!(net.reg.peer_count(), 0);
    assert_eq!(net.reg.file_count(), 0);
    assert_eq!(link.poll_deadline(), None);
    assert!(link.query(Query::ListFiles, net.now).is_err());
    let sent = net.sent.len();
    net.run(&mut link, 100 * SEC);
    assert_eq!(net.sent.len(), sent, "no keep-alives after a disconnect");
}

#[test]
fn disconnect_from_a_silent_tracker_gives_up() {
    let (mut net, mut link) = Net::new();
    net.run(&mut link, SEC);
    net.up = false;
    link.disconnect(net.now);
    net.run(&mut link, 30 * SEC);
    assert_eq!(net.count(|e| *e == LinkEvent::Disconnected), 1);
    assert_eq!(net.sent_kind("disconnect").len(), MAX_SENDS as usize);

    // Never heard of us: nothing to wait for.
    let (mut net, mut link) = Net::new();
    net.up = false;
    link.disconnect(net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.events, vec![LinkEvent::Disconnected]);
}

#[test]
fn garbage_and_strangers_are_ignored() {
    let (mut net, mut link) = Net::new();
    net.run(&mut link, SEC);
    let mut rng = Rng::seeded(9);
    let mut n = 0;
    for len in [0, 1, 5, 9, 10, 40, 1232, 1233, 5000] {
        let junk: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        link.handle_datagram(&junk, net.now, &mut net.events);
        n += 1;
    }
    // Well formed, but nobody asked.
    for body in [
        ReplyBody::Ok,
        ReplyBody::Registered { interval_secs: 1 },
        ReplyBody::Connected {
            conn: [9; 8],
            valid_secs: 1,
        },
    ] {
        let mut buf = Vec::new();
        encode_reply(&crate::wire::tracker::Reply { tx: 12345, body }, &mut buf).unwrap();
        link.handle_datagram(&buf, net.now, &mut net.events);
        // Truncated copies too.
        link.handle_datagram(&buf[..buf.len() - 1], net.now, &mut net.events);
        n += 2;
    }
    assert_eq!(link.ignored_datagrams(), n);
    assert_eq!(net.events.len(), 1, "{:?}", net.events);
    link.query(Query::ListPeers, net.now).unwrap();
    net.run(&mut link, SEC);
    assert!(matches!(net.events.last(), Some(LinkEvent::PeerList(p)) if p.len() == 1));
}

#[test]
fn queries_are_bounded() {
    let (mut net, mut link) = Net::new();
    net.up = false;
    for _ in 0..MAX_QUERIES {
        link.query(Query::ListFiles, net.now).unwrap();
    }
    assert!(link.query(Query::ListPeers, net.now).is_err());
    net.run(&mut link, 60 * SEC);
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Failed { .. })), MAX_QUERIES);
    assert!(link.query(Query::ListPeers, net.now).is_ok());
}

#[test]
fn a_forgotten_peer_registers_again_and_resends_its_request() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..40), net.now);
    net.add_peer(1, vec![entry(7)]);
    net.run(&mut link, SEC);
    assert_eq!(net.reg.file_count(), 40);
    // The tracker drops us (as expiry would) but keeps its secret.
    let now = net.secs();
    net.reg.handle(net.me, RequestBody::Disconnect, now);
    assert_eq!(net.reg.file_count(), 1);
    link.query(Query::GetPeers(entry(7).id()), net.now).unwrap();
    net.run(&mut link, SEC);
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Registered { .. })), 2);
    assert_eq!(
        net.count(|e| matches!(e, LinkEvent::Peers { peers, .. } if peers.len() == 1)),
        1
    );
    assert_eq!(net.reg.file_count(), 40);
    assert!(net.failures().is_empty(), "{:?}", net.failures());
}

#[test]
fn withdraw_and_bad_names_and_limits() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..300), net.now);
    net.run(&mut link, SEC);
    link.withdraw(entries(0..10).iter().map(FileEntry::id).collect(), net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.reg.file_count(), 290);

    let mut evil = entry(500);
    evil.name = "../escape".into();
    link.announce(vec![evil, entry(501)], net.now);
    net.run(&mut link, SEC);
    assert_eq!(net.reg.file_count(), 291);
    assert_eq!(
        net.count(|e| matches!(
            e,
            LinkEvent::Failed {
                what: RequestKind::Announce,
                ..
            }
        )),
        1
    );

    let many = entries(1000..1000 + MAX_FILES_PER_PEER as u32);
    link.announce(many, net.now);
    net.run(&mut link, 5 * SEC);
    assert_eq!(
        net.count(|e| matches!(
            e,
            LinkEvent::Failed {
                what: RequestKind::Announce,
                ..
            }
        )),
        2
    );
    assert_eq!(net.reg.file_count(), MAX_FILES_PER_PEER);
    assert_eq!(
        net.events.last(),
        Some(&LinkEvent::Announced {
            files: MAX_FILES_PER_PEER
        })
    );
}

#[test]
fn a_query_right_after_a_tracker_restart_is_answered_not_failed() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..3), net.now);
    net.run(&mut link, SEC);
    // The tracker goes down; the user asks meanwhile; it comes back as a
    // new process (new secret, empty registry) a few seconds later.
    net.up = false;
    link.query(Query::ListFiles, net.now).unwrap();
    net.run(&mut link, 4 * SEC);
    net.restart_tracker(3);
    net.run(&mut link, 30 * SEC);
    assert!(net.failures().is_empty(), "{:?}", net.failures());
    assert_eq!(net.count(|e| matches!(e, LinkEvent::FileList(_))), 1);
}

#[test]
fn a_taken_username_is_refused_and_a_new_one_registers() {
    let (mut net, mut link) = Net::new();
    // "Alice" is online from another host.
    let other: SocketAddr = "198.51.100.1:40000".parse().unwrap();
    let reg = RequestBody::Register {
        username: "Alice".into(),
        port: 1,
        role: Role::Seeder,
        secret: [0; 16],
    };
    assert!(matches!(
        net.reg.handle(other, reg, 0),
        ReplyBody::Registered { .. }
    ));
    link.announce(entries(0..2), net.now);
    net.run(&mut link, SEC);
    let refused = net.failures();
    assert!(
        refused.iter().any(
            |e| matches!(e, LinkEvent::Failed { what: RequestKind::Register, error } if error.contains("in use by another"))
        ),
        "{refused:?}"
    );
    assert!(!link.is_registered());
    assert_eq!(net.reg.file_count(), 0);
    // Renaming registers under the new name, and the files follow.
    link.change_username("alice2".into(), net.now);
    net.run(&mut link, SEC);
    assert!(link.is_registered());
    assert_eq!(link.username(), "alice2");
    assert_eq!(
        net.count(|e| matches!(e, LinkEvent::UsernameChanged(n) if n == "alice2")),
        1
    );
    assert_eq!(net.reg.file_count(), 2);
    // A later rename to a taken name fails and keeps the old one.
    link.change_username("ALICE".into(), net.now);
    net.run(&mut link, SEC);
    assert_eq!(link.username(), "alice2");
    assert!(net.failures().iter().any(|e| matches!(
        e,
        LinkEvent::Failed {
            what: RequestKind::ChangeUsername,
            ..
        }
    )));
}

/// Defect 12 as the real binaries showed it: the user asks while the
/// tracker is down, and it is back 9.5 s later. The handshake had backed
/// off to 8 s by then, so the question used to run out of its 5 sends
/// (15.5 s) before the next handshake found the tracker.
#[test]
fn a_query_during_a_slow_tracker_restart_is_answered_once_it_is_back() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..3), net.now);
    net.run(&mut link, SEC);
    net.up = false;
    link.query(Query::ListFiles, net.now).unwrap();
    net.run(&mut link, Duration::from_millis(9_500));
    net.restart_tracker(4);
    net.run(&mut link, 2 * SEC);
    assert!(net.failures().is_empty(), "{:?}", net.failures());
    let files = net.events.iter().find_map(|e| match e {
        LinkEvent::FileList(files) => Some(files.len()),
        _ => None,
    });
    assert_eq!(
        files,
        Some(3),
        "answered within 2 s of the tracker's return, with our files"
    );
}

/// Right after a restart, the first answer already counts our files: the
/// query waits for the re-announce that follows the new registration.
#[test]
fn the_peer_list_right_after_a_tracker_restart_counts_our_files() {
    let (mut net, mut link) = Net::new();
    link.announce(entries(0..3), net.now);
    net.run(&mut link, SEC);
    net.restart_tracker(5);
    link.query(Query::ListPeers, net.now).unwrap();
    net.run(&mut link, 5 * SEC);
    let me = net.events.iter().find_map(|e| match e {
        LinkEvent::PeerList(peers) => peers.iter().find(|p| p.is_you).map(|p| (p.role, p.files)),
        _ => None,
    });
    assert_eq!(me, Some((Role::Seeder, 3)));
}

/// A query asked just before files are announced (the engine announces
/// what it indexed as soon as it is registered) is answered after them:
/// the answer counts what we share, even with the query queued first.
#[test]
fn a_query_waits_for_the_announce_round() {
    let (mut net, mut link) = Net::new();
    net.run(&mut link, SEC);
    link.query(Query::ListPeers, net.now).unwrap();
    link.announce(entries(0..2), net.now);
    net.run(&mut link, SEC);
    let me = net.events.iter().find_map(|e| match e {
        LinkEvent::PeerList(peers) => peers.iter().find(|p| p.is_you).map(|p| p.files),
        _ => None,
    });
    assert_eq!(me, Some(2));
}

/// Issue 19: a reader (`--list`, `--peers`) sends no registration, so it
/// takes nobody's name or place, and still lists and finds; a find of a
/// name 40 files share follows the pages of the tracker's index.
#[test]
fn a_reader_lists_and_finds_without_registering() {
    let (mut net, _) = Net::new();
    let mut twins = entries(0..40);
    for t in &mut twins {
        t.name = "same.bin".into();
    }
    net.add_peer(1, twins);
    net.add_peer(2, entries(100..103));
    let mut reader = TrackerLink::reader(Rng::seeded(9), net.now);
    reader.query(Query::ListPeers, net.now).unwrap();
    reader.query(Query::ListFiles, net.now).unwrap();
    reader
        .query(Query::Find(FileQuery::Name("same.bin".into())), net.now)
        .unwrap();
    let prefix = FileQuery::IdPrefix {
        id: entry(101).id(),
        digits: 16,
    };
    reader.query(Query::Find(prefix.clone()), net.now).unwrap();
    net.run(&mut reader, 2 * SEC);
    assert!(net.failures().is_empty(), "{:?}", net.failures());
    assert!(net.sent_kind("register").is_empty());
    assert!(!reader.is_registered());
    assert_eq!(net.reg.peer_count(), 2, "the reader is nobody's peer");
    let peers = net.events.iter().find_map(|e| match e {
        LinkEvent::PeerList(p) => Some(p.len()),
        _ => None,
    });
    assert_eq!(peers, Some(2));
    let found = |q: &FileQuery| {
        net.events.iter().find_map(|e| match e {
            LinkEvent::Found { query, files } if query == q => Some(files.clone()),
            _ => None,
        })
    };
    let same = found(&FileQuery::Name("same.bin".into())).unwrap();
    assert_eq!(same.len(), 40);
    assert!(
        net.sent_kind("find files").len() >= 4,
        "40 rows take 3 pages or more"
    );
    let by_prefix = found(&prefix).unwrap();
    assert_eq!(
        by_prefix.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![entry(101).id()]
    );
    // Leaving sends nothing either.
    let before = net.sent.len();
    reader.disconnect(net.now);
    net.run(&mut reader, SEC);
    assert_eq!(net.sent.len(), before);
    assert_eq!(net.count(|e| matches!(e, LinkEvent::Disconnected)), 1);
}
