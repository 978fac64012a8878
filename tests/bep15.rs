//! End-to-end tests of the tracker's BitTorrent side (BEP 15): the real
//! `pytorrent-tracker` binary on loopback, driven with hand-made BEP 15
//! datagrams beside the project's own clients on the same port. Real
//! BitTorrent clients (libtorrent, aria2) are in `tests/interop/`, run by
//! `.ci/run`; this file needs nothing but the binary.

mod common;

use common::{Client, TempDir, TrackerProc};
use pytorrent::wire::bep15::{
    decode_response, encode_request, AnnounceRequest, Event, Peers, Request, Response, ScrapeRequest,
    ScrapeStats,
};
use pytorrent::wire::tracker::{FileEntry, ReplyBody, RequestBody};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

const NO_REPLY_WAIT: Duration = Duration::from_millis(400);

/// A BitTorrent client's tracker socket, speaking BEP 15 by hand.
struct Bt {
    sock: UdpSocket,
    tracker: SocketAddr,
    conn: u64,
    tx: u32,
}

impl Bt {
    fn new(bind: &str, tracker: SocketAddr) -> Bt {
        let sock = UdpSocket::bind(bind).expect("bind test socket");
        sock.set_read_timeout(Some(NO_REPLY_WAIT)).unwrap();
        let mut bt = Bt {
            sock,
            tracker,
            conn: 0,
            tx: 100,
        };
        bt.conn = match bt.ask(&Request::Connect { tx: 0 }) {
            Some(Response::Connect { conn, .. }) => conn,
            other => panic!("connect: {other:?}"),
        };
        assert!(bt.conn >> 63 == 1, "BEP 15 ids have the top bit set");
        bt
    }

    /// Sends raw bytes; the reply, or `None` after [`NO_REPLY_WAIT`] (the
    /// tracker answers loopback within milliseconds, so silence is a drop).
    fn raw(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.sock.send_to(bytes, self.tracker).unwrap();
        let mut buf = [0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    fn ask(&mut self, req: &Request) -> Option<Response> {
        let mut buf = Vec::new();
        encode_request(req, &mut buf);
        let v6 = self.tracker.is_ipv6();
        self.raw(&buf)
            .map(|r| decode_response(&r, v6).expect("a valid BEP 15 response"))
    }

    fn announce_req(&mut self, hash: [u8; 20], port: u16, left: u64, event: Event) -> Request {
        self.tx += 1;
        Request::Announce(AnnounceRequest::new(self.conn, self.tx, hash, port, left, event))
    }

    fn announce(&mut self, hash: [u8; 20], port: u16, left: u64, event: Event) -> Response {
        let req = self.announce_req(hash, port, left, event);
        self.ask(&req).expect("announce answered")
    }

    fn scrape(&mut self, hashes: &[[u8; 20]]) -> Vec<ScrapeStats> {
        self.tx += 1;
        let req = Request::Scrape(ScrapeRequest {
            conn: self.conn,
            tx: self.tx,
            info_hashes: hashes.to_vec(),
        });
        match self.ask(&req) {
            Some(Response::Scrape { tx, stats }) => {
                assert_eq!(tx, self.tx);
                stats
            }
            other => panic!("scrape: {other:?}"),
        }
    }
}

fn peers_of(resp: &Response) -> &Peers {
    match resp {
        Response::Announce(a) => &a.peers,
        other => panic!("not an announce response: {other:?}"),
    }
}

#[test]
fn bittorrent_and_project_clients_share_one_port() {
    let t = TrackerProc::start(&[]);
    let hash = [0x11; 20];
    let mut a = Bt::new("127.0.0.1:0", t.addr);
    let mut b = Bt::new("127.0.0.1:0", t.addr);

    // A seeder, then a leecher that gets the seeder (never itself).
    let first = a.announce(hash, 6881, 0, Event::Started);
    assert_eq!(peers_of(&first), &Peers::V4(vec![]));
    let resp = b.announce(hash, 6882, 1000, Event::Started);
    let Response::Announce(r) = &resp else { panic!() };
    assert_eq!((r.interval, r.seeders, r.leechers), (1800, 1, 1));
    assert_eq!(r.peers, Peers::V4(vec!["127.0.0.1:6881".parse().unwrap()]));

    // The leecher finishes; scrape counts it, and an unknown hash is zeros.
    b.announce(hash, 6882, 0, Event::Completed);
    assert_eq!(
        b.scrape(&[hash, [0x99; 20]]),
        vec![
            ScrapeStats {
                seeders: 2,
                completed: 1,
                leechers: 0
            },
            ScrapeStats::default()
        ]
    );

    // The project's protocol works on the same port meanwhile, and its
    // file is a swarm for BitTorrent clients under its first 20 bytes.
    let mut own = Client::registered(t.addr, "alice", 7001);
    let file = FileEntry {
        name: "shared.bin".into(),
        size: 5,
        chunk_size: 1 << 20,
        root: [0x22; 32],
        complete: true,
    };
    let own_hash: [u8; 20] = file.id()[..20].try_into().unwrap();
    assert_eq!(
        own.request(RequestBody::Announce { files: vec![file] }),
        ReplyBody::Announced { accepted: 1 }
    );
    let resp = a.announce(own_hash, 6881, 5, Event::Started);
    let Response::Announce(r) = &resp else { panic!() };
    assert_eq!((r.seeders, r.leechers), (1, 1));
    assert_eq!(r.peers, Peers::V4(vec!["127.0.0.1:7001".parse().unwrap()]));
    assert_eq!(own.request(RequestBody::KeepAlive), ReplyBody::Ok);

    // Stopped removes the peer and returns nobody.
    let resp = b.announce(hash, 6882, 0, Event::Stopped);
    assert_eq!(peers_of(&resp), &Peers::V4(vec![]));
    assert_eq!(b.scrape(&[hash])[0].seeders, 1);
}

#[test]
fn no_reply_without_a_valid_id_and_no_amplification() {
    let t = TrackerProc::start(&[]);
    let mut a = Bt::new("127.0.0.1:0", t.addr);
    let mut req = a.announce_req([1; 20], 6881, 0, Event::Started);
    // Forged ids: a flipped bit, one made up.
    if let Request::Announce(ann) = &mut req {
        ann.conn ^= 1;
    }
    assert_eq!(a.ask(&req), None);
    if let Request::Announce(ann) = &mut req {
        ann.conn = 1 << 63 | 12345;
    }
    assert_eq!(a.ask(&req), None);
    // Noise of every short length, and a connect without the magic, then
    // a real connect: the first reply (loopback keeps order) is the connect's.
    for len in 0..40 {
        a.sock.send_to(&vec![0x80; len], t.addr).unwrap();
    }
    let mut connect = Vec::new();
    encode_request(&Request::Connect { tx: 1 }, &mut connect);
    connect[2] ^= 0xff;
    assert_eq!(a.raw(&connect), None);
    // A connect reply is exactly as long as the request.
    connect[2] ^= 0xff;
    assert_eq!(a.raw(&connect).map(|r| r.len()), Some(16));
    // A malformed request with a valid id: a short error, never larger.
    let mut short = Vec::new();
    encode_request(&a.announce_req([1; 20], 6881, 0, Event::Started), &mut short);
    short.truncate(40);
    let reply = a.raw(&short).expect("an error for a proven sender");
    assert!(matches!(
        decode_response(&reply, false),
        Ok(Response::Error { .. })
    ));
    // Nothing was recorded by any of it.
    assert_eq!(a.scrape(&[[1; 20]])[0], ScrapeStats::default());
}

#[test]
fn dual_stack_answers_each_family_with_its_own_peers() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED dual_stack test: this machine has no IPv6 loopback");
        return;
    }
    let t = TrackerProc::start_on("[::]:0", &[]);
    let port = t.addr.port();
    let v4_tracker: SocketAddr = ([127, 0, 0, 1], port).into();
    let v6_tracker: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let hash = [0x33; 20];
    let mut v4a = Bt::new("127.0.0.1:0", v4_tracker);
    let mut v4b = Bt::new("127.0.0.1:0", v4_tracker);
    let mut v6a = Bt::new("[::1]:0", v6_tracker);
    let mut v6b = Bt::new("[::1]:0", v6_tracker);
    v4a.announce(hash, 1001, 0, Event::Started);
    v6a.announce(hash, 2001, 0, Event::Started);
    // An IPv4 client on the [::] socket arrives IPv4-mapped, and is
    // answered as IPv4: 6-byte peers, IPv4 ones only.
    let resp = v4b.announce(hash, 1002, 5, Event::Started);
    assert_eq!(
        peers_of(&resp),
        &Peers::V4(vec!["127.0.0.1:1001".parse().unwrap()])
    );
    let resp = v6b.announce(hash, 2002, 5, Event::Started);
    assert_eq!(peers_of(&resp), &Peers::V6(vec!["[::1]:2001".parse().unwrap()]));
    let Response::Announce(r) = resp else { panic!() };
    assert_eq!((r.seeders, r.leechers), (2, 2));
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_error(resp: &Response) -> bool {
    matches!(resp, Response::Error { .. })
}

#[test]
fn access_list_reloads_on_sighup_and_stats_file_counts() {
    let tmp = TempDir::new("bep15-access");
    let list = tmp.join("allowed.txt");
    let stats = tmp.join("stats.json");
    let (allowed, other) = ([0xaa; 20], [0xbb; 20]);
    std::fs::write(&list, format!("# allowed torrents\n{}\n", "aa".repeat(20))).unwrap();
    let mut t = TrackerProc::start(&[
        "--access-list",
        list.to_str().unwrap(),
        "--access-mode",
        "allow",
        "--stats",
        stats.to_str().unwrap(),
        "--bt-interval",
        "300",
    ]);
    let mut a = Bt::new("127.0.0.1:0", t.addr);
    let resp = a.announce(allowed, 6881, 0, Event::Started);
    let Response::Announce(r) = &resp else {
        panic!("{resp:?}")
    };
    assert_eq!(r.interval, 300);
    let resp = a.announce(other, 6881, 0, Event::Started);
    assert!(matches!(&resp, Response::Error { message, .. } if message.contains("not allowed")));

    // The operator swaps the list and sends SIGHUP: no restart needed.
    std::fs::write(&list, format!("{}\n", "bb".repeat(20))).unwrap();
    Command::new("kill")
        .args(["-HUP", &t.pid().to_string()])
        .status()
        .unwrap();
    let mut tries = 0;
    wait_for("the new access list", || {
        tries += 1;
        !is_error(&a.announce(other, 6881, 0, Event::None))
    });
    assert!(is_error(&a.announce(allowed, 6881, 0, Event::None)));
    // The swarm of a hash no longer allowed is gone.
    assert_eq!(a.scrape(&[allowed])[0], ScrapeStats::default());

    // A broken list on SIGHUP keeps the old one in force.
    std::fs::write(&list, "not a hash\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &t.pid().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!is_error(&a.announce(other, 6881, 0, Event::None)));

    // SIGTERM writes the stats file one last time.
    assert!(t.signal_and_wait("TERM").success());
    let json = std::fs::read_to_string(&stats).expect("stats file written");
    // Announces: 2 before the reload, `tries` waiting for it, 2 after;
    // errors: 1 before, `tries - 1` while waiting, 1 after.
    let bt = format!(
        r#""bep15":{{"torrents":1,"peers":1,"peers_ipv6":0,"ipv4":{{"connects":1,"announces":{},"scrapes":1,"errors":{},"dropped":0}}"#,
        4 + tries,
        tries + 1
    );
    for want in [
        bt.as_str(),
        r#""ipv6":{"connects":0,"announces":0"#,
        r#""own":{"peers":0,"files":0,"requests":{"ipv4":0,"ipv6":0}}"#,
    ] {
        assert!(json.contains(want), "{want} not in {json}");
    }
}

#[test]
fn flags_are_documented_and_checked() {
    let bin = env!("CARGO_BIN_EXE_pytorrent-tracker");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--bt-interval",
        "--max-torrents",
        "--max-bt-peers",
        "--max-peers-per-torrent",
        "--max-per-ip",
        "--access-list",
        "--access-mode",
        "--stats",
        "BEP 15",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    for (args, why) in [
        (vec!["--bt-interval", "299"], "300 to 10800"),
        (vec!["--bt-interval", "10801"], "300 to 10800"),
        (vec!["--access-list", "/nonexistent"], "needs --access-mode"),
        (vec!["--access-mode", "allow"], "needs --access-list"),
        (
            vec!["--access-list", "x", "--access-mode", "white"],
            "allow or deny",
        ),
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{args:?}");
    }
    // A missing access list file stops the start, naming the file.
    let out = Command::new(bin)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--access-list",
            "/nonexistent/list",
            "--access-mode",
            "deny",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/list"));
}
