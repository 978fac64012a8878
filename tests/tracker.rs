//! End-to-end tests of the real `pytorrent-tracker` binary on loopback:
//! every request, expiry, the peer limit, connection-id checks, paging,
//! garbage input, flags and signals.

mod common;

use common::{Client, TrackerProc};
use pytorrent::rand::Rng;
use pytorrent::wire::tracker::{
    encode_request, ErrorCode, FileEntry, FileInfo, FileQuery, FindCursor, Page, PeerInfo, ReplyBody,
    Request, RequestBody, Role, CONNECT_PADDING, MAX_PEERS_PER_REPLY,
};
use pytorrent::wire::{FileId, MAX_DATAGRAM};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const NO_REPLY_WAIT: Duration = Duration::from_millis(400);

fn entry(i: u32, name: &str) -> FileEntry {
    let mut root = [0u8; 32];
    root[..4].copy_from_slice(&i.to_be_bytes());
    FileEntry {
        name: name.into(),
        size: u64::from(i) * 1000 + 1,
        chunk_size: 1 << 20,
        root,
        complete: true,
    }
}

fn all_files(c: &mut Client) -> (Vec<FileInfo>, usize) {
    let (mut files, mut cursor, mut pages) = (Vec::new(), 0, 0);
    loop {
        match c.request(RequestBody::ListFiles { cursor, member: true }) {
            ReplyBody::FileList { files: page, next } => {
                pages += 1;
                files.extend(page);
                match next {
                    Some(n) => cursor = n,
                    None => return (files, pages),
                }
            }
            other => panic!("list files: {other:?}"),
        }
    }
}

fn all_peers(c: &mut Client) -> Vec<PeerInfo> {
    let (mut peers, mut cursor) = (Vec::new(), 0);
    loop {
        match c.request(RequestBody::ListPeers { cursor, member: true }) {
            ReplyBody::PeerList { peers: page, next } => {
                peers.extend(page);
                match next {
                    Some(n) => cursor = n,
                    None => return peers,
                }
            }
            other => panic!("list peers: {other:?}"),
        }
    }
}

fn is_error(reply: &ReplyBody, want: ErrorCode) -> bool {
    matches!(reply, ReplyBody::Error { code, .. } if *code == want)
}

#[test]
fn every_request_end_to_end() {
    let t = TrackerProc::start(&[]);
    let mut alice = Client::registered(t.addr, "alice", 7001);
    let mut bob = Client::registered(t.addr, "bob", 7002);

    let files = vec![entry(1, "song.mp3"), entry(2, "notes ñ.txt")];
    assert_eq!(
        alice.request(RequestBody::Announce { files: files.clone() }),
        ReplyBody::Announced { accepted: 2 }
    );
    assert_eq!(
        bob.request(RequestBody::Announce {
            files: vec![files[0].clone()]
        }),
        ReplyBody::Announced { accepted: 1 }
    );

    // List peers: both, with the asker marked, TCP ports as registered.
    let peers = all_peers(&mut bob);
    assert_eq!(peers.len(), 2);
    let me = peers.iter().find(|p| p.is_you).expect("asker marked");
    assert_eq!((me.username.as_str(), me.addr.port(), me.files), ("bob", 7002, 1));
    let a = peers.iter().find(|p| p.username == "alice").unwrap();
    assert_eq!(
        (a.addr.port(), a.role, a.files, a.is_you),
        (7001, Role::Seeder, 2, false)
    );

    // List files: one entry per file id, with its seeder count.
    let (listed, _) = all_files(&mut alice);
    assert_eq!(listed.len(), 2);
    let song = listed.iter().find(|f| f.name == "song.mp3").unwrap();
    assert_eq!((song.seeders, song.size, song.id), (2, 1001, files[0].id()));

    // Get peers: the other holder's TCP address, never the asker's own.
    match bob.request(RequestBody::GetPeers { id: files[0].id() }) {
        ReplyBody::Peers { id, peers } => {
            assert_eq!(id, files[0].id());
            assert_eq!(peers, vec![SocketAddr::from(([127, 0, 0, 1], 7001))]);
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(alice.request(RequestBody::KeepAlive), ReplyBody::Ok);
    assert_eq!(
        alice.request(RequestBody::ChangeUsername {
            username: "alicia".into()
        }),
        ReplyBody::Ok
    );
    assert!(is_error(
        &alice.request(RequestBody::ChangeUsername {
            username: "has space".into()
        }),
        ErrorCode::BadUsername
    ));
    assert!(all_peers(&mut bob).iter().any(|p| p.username == "alicia"));

    assert_eq!(
        alice.request(RequestBody::Withdraw {
            ids: vec![files[1].id()]
        }),
        ReplyBody::Withdrawn { removed: 1 }
    );
    assert_eq!(all_files(&mut bob).0.len(), 1);

    // Disconnect removes the peer and files only it had; bob keeps his.
    assert_eq!(bob.request(RequestBody::Disconnect), ReplyBody::Ok);
    let (left, _) = all_files(&mut alice);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seeders, 1);
    assert!(is_error(
        &bob.request(RequestBody::KeepAlive),
        ErrorCode::NotRegistered
    ));
    assert_eq!(alice.request(RequestBody::Disconnect), ReplyBody::Ok);
    let mut carol = Client::registered(t.addr, "carol", 7003);
    assert!(all_files(&mut carol).0.is_empty());
}

#[test]
fn bad_names_are_refused_with_clear_errors() {
    let t = TrackerProc::start(&[]);
    let mut c = Client::connect(t.addr);
    for bad in ["", "two words", "\u{1b}[31mred", &"x".repeat(33)] {
        let reply = c.request(RequestBody::Register {
            username: bad.into(),
            port: 1,
            role: Role::Leecher,
            secret: [0; 16],
        });
        assert!(is_error(&reply, ErrorCode::BadUsername), "{bad:?}: {reply:?}");
    }
    let mut c = Client::registered(t.addr, "ok", 1);
    for bad in ["../up", "a/b", "..", "c\\d", "nul\0", &"n".repeat(256)] {
        let reply = c.request(RequestBody::Announce {
            files: vec![entry(1, bad)],
        });
        match reply {
            ReplyBody::Error {
                code: ErrorCode::BadFileName,
                message,
            } => assert!(message.contains("name"), "{message}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert!(all_files(&mut c).0.is_empty());
}

#[test]
fn silent_peers_expire_with_their_files() {
    let t = TrackerProc::start(&["--interval", "1"]);
    let mut quiet = Client::registered(t.addr, "quiet", 7001);
    quiet.request(RequestBody::Announce {
        files: vec![entry(1, "a")],
    });
    let mut chatty = Client::registered(t.addr, "chatty", 7002);
    assert_eq!(all_peers(&mut chatty).len(), 2);
    // Three 1 s intervals of silence, plus the once-a-second sweep.
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        assert_eq!(chatty.request(RequestBody::KeepAlive), ReplyBody::Ok);
        let peers = all_peers(&mut chatty);
        if peers.len() == 1 {
            assert_eq!(peers[0].username, "chatty", "the peer that kept alive stays");
            break;
        }
        assert!(Instant::now() < deadline, "silent peer never expired");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(all_files(&mut chatty).0.is_empty(), "its files went with it");
    assert!(is_error(
        &quiet.request(RequestBody::KeepAlive),
        ErrorCode::NotRegistered
    ));
}

#[test]
fn peer_limit_refuses_new_peers_but_not_returning_ones() {
    let t = TrackerProc::start(&["--max-peers", "2"]);
    let mut a = Client::registered(t.addr, "a", 1);
    let _b = Client::registered(t.addr, "b", 2);
    let mut c = Client::connect(t.addr);
    let reply = c.request(RequestBody::Register {
        username: "c".into(),
        port: 3,
        role: Role::Leecher,
        secret: [0; 16],
    });
    match reply {
        ReplyBody::Error {
            code: ErrorCode::TrackerFull,
            message,
        } => assert!(message.contains("full"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Registering again from the same address updates, never counts twice.
    let again = a.request(RequestBody::Register {
        username: "a2".into(),
        port: 11,
        role: Role::Leecher,
        secret: [0; 16],
    });
    assert!(matches!(again, ReplyBody::Registered { .. }), "{again:?}");
    assert_eq!(all_peers(&mut a).len(), 2);
}

#[test]
fn forged_missing_and_expired_ids_get_no_reply() {
    let t = TrackerProc::start(&["--id-lifetime", "1"]);
    let issued = Instant::now();
    let mut c = Client::registered(t.addr, "id", 1);
    let good = c.conn;

    let mut forged = good;
    forged[0] ^= 0xff;
    c.conn = forged;
    assert_eq!(c.try_request(RequestBody::KeepAlive, NO_REPLY_WAIT), None);
    c.conn = [0; 8];
    assert_eq!(c.try_request(RequestBody::KeepAlive, NO_REPLY_WAIT), None);

    // An id from another address is no good either.
    let other = Client::connect(t.addr);
    c.conn = other.conn;
    assert_eq!(c.try_request(RequestBody::KeepAlive, NO_REPLY_WAIT), None);

    // The real id works, until it expires (lifetime 1 s: at most 2 s).
    c.conn = good;
    assert_eq!(c.request(RequestBody::KeepAlive), ReplyBody::Ok);
    // Asked until it stops working: valid at least 1 s, at most 2 s (the
    // tracker counts whole seconds, hence the margins).
    loop {
        let asked = Instant::now();
        if c.try_request(RequestBody::KeepAlive, NO_REPLY_WAIT).is_none() {
            assert!(asked >= issued + Duration::from_millis(900), "expired early");
            break;
        }
        assert!(issued.elapsed() < Duration::from_secs(4), "the id never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A fresh handshake restores service; the registration survived.
    c.handshake();
    assert_eq!(c.request(RequestBody::KeepAlive), ReplyBody::Ok);
}

#[test]
fn nothing_sent_before_a_handshake_is_larger_than_what_caused_it() {
    let t = TrackerProc::start(&[]);
    let c = Client::connect(t.addr);
    let mut connect = Vec::new();
    encode_request(
        &Request {
            tx: 1,
            conn: [0; 8],
            body: RequestBody::Connect {
                padding: [0; CONNECT_PADDING],
            },
        },
        &mut connect,
    )
    .unwrap();
    let reply = c
        .send_raw(&connect, Duration::from_secs(2))
        .expect("connect reply");
    assert!(
        reply.len() <= connect.len(),
        "{} > {}",
        reply.len(),
        connect.len()
    );
    // Another protocol version: a short error no larger than the request,
    // or nothing at all.
    // Exactly the error the tracker sends (its size does not depend on
    // the transaction id), to know which lengths may be answered.
    let mut error = Vec::new();
    pytorrent::wire::tracker::encode_reply(
        &pytorrent::wire::tracker::Reply {
            tx: 0,
            body: pytorrent::wire::tracker::error_reply(
                ErrorCode::UnsupportedVersion,
                &format!("tracker speaks version {}", pytorrent::wire::VERSION),
            ),
        },
        &mut error,
    )
    .unwrap();
    for len in [5, 12, 40, error.len()] {
        let mut other = connect.clone();
        other.resize(len, 0);
        other[4] = 9;
        let reply = c.send_raw(&other, NO_REPLY_WAIT);
        if len < error.len() {
            assert_eq!(reply, None, "a {len}-byte datagram must not get a larger error");
            continue;
        }
        let r = reply.unwrap_or_else(|| panic!("no version error for a {len}-byte datagram"));
        assert_eq!(r.len(), error.len());
        let decoded = pytorrent::wire::tracker::decode_reply(&r).unwrap();
        assert!(matches!(
            decoded.body,
            ReplyBody::Error {
                code: ErrorCode::UnsupportedVersion,
                ..
            }
        ));
    }
    // A truncated connect gets nothing.
    assert_eq!(c.send_raw(&connect[..connect.len() - 1], NO_REPLY_WAIT), None);
}

#[test]
fn long_file_list_is_paged() {
    let t = TrackerProc::start(&[]);
    let mut c = Client::registered(t.addr, "many", 1);
    let all: Vec<FileEntry> = (0..300)
        .map(|i| entry(i, &format!("{i:03} {}", "long name ".repeat(20))))
        .collect();
    // Announce in as many datagrams as it takes.
    let mut rest = all.as_slice();
    let mut datagrams = 0;
    while !rest.is_empty() {
        let mut page = Page::new();
        for e in rest {
            if page.try_push(e.clone()).is_err() {
                break;
            }
        }
        let files = page.into_items();
        let n = files.len();
        let (_, bytes) = c.encode(RequestBody::Announce { files: files.clone() });
        assert!(bytes.len() <= MAX_DATAGRAM);
        assert_eq!(
            c.request(RequestBody::Announce { files }),
            ReplyBody::Announced { accepted: n as u32 }
        );
        rest = &rest[n..];
        datagrams += 1;
    }
    assert!(datagrams > 10, "{datagrams} datagrams");
    let (listed, pages) = all_files(&mut c);
    assert!(pages > 10, "{pages} pages");
    let mut ids: Vec<FileId> = listed.iter().map(|f| f.id).collect();
    ids.sort();
    let mut want: Vec<FileId> = all.iter().map(|f| f.id()).collect();
    want.sort();
    assert_eq!(ids, want, "every file listed exactly once");
}

#[test]
fn get_peers_is_a_capped_sample() {
    let t = TrackerProc::start(&[]);
    let file = entry(7, "popular");
    let mut clients: Vec<Client> = (0..60)
        .map(|i| {
            let mut c = Client::registered(t.addr, &format!("p{i}"), 8000 + i);
            c.request(RequestBody::Announce {
                files: vec![file.clone()],
            });
            c
        })
        .collect();
    match clients[0].request(RequestBody::GetPeers { id: file.id() }) {
        ReplyBody::Peers { peers, .. } => {
            assert_eq!(peers.len(), MAX_PEERS_PER_REPLY);
            let mut ports: Vec<u16> = peers.iter().map(|p| p.port()).collect();
            ports.sort();
            ports.dedup();
            assert_eq!(ports.len(), MAX_PEERS_PER_REPLY, "no duplicates");
            assert!(!ports.contains(&8000), "never the asker");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_burst_is_survived() {
    let t = TrackerProc::start(&[]);
    let mut c = Client::registered(t.addr, "survivor", 1);
    c.request(RequestBody::Announce {
        files: vec![entry(1, "kept")],
    });
    let (_, valid) = c.encode(RequestBody::Announce {
        files: vec![entry(2, "x"), entry(3, "y")],
    });
    let mut rng = Rng::seeded(99);
    let attacker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5000 {
        let datagram: Vec<u8> = match i % 4 {
            // Pure noise of any size, up to past the limit.
            0 => (0..rng.below(1500)).map(|_| rng.next_u64() as u8).collect(),
            // Our valid datagram, truncated.
            1 => valid[..rng.below(valid.len())].to_vec(),
            // Our valid datagram with random bytes flipped.
            2 => {
                let mut d = valid.clone();
                for _ in 0..3 {
                    let at = rng.below(d.len());
                    d[at] = rng.next_u64() as u8;
                }
                d
            }
            // The right magic and version, then noise.
            _ => {
                let mut d = valid[..5].to_vec();
                d.extend((0..rng.below(1300)).map(|_| rng.next_u64() as u8));
                d
            }
        };
        // Half from a stranger, half from the registered client itself.
        let sock = if i % 2 == 0 { &attacker } else { &c.sock };
        let _ = sock.send_to(&datagram, t.addr);
    }
    // Drain whatever short errors the registered client was sent.
    c.sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 2048];
    while c.sock.recv_from(&mut buf).is_ok() {}

    // Still answering correctly, with state intact.
    assert_eq!(c.request(RequestBody::KeepAlive), ReplyBody::Ok);
    let (files, _) = all_files(&mut c);
    assert!(files.iter().any(|f| f.name == "kept"));
    let mut fresh = Client::registered(t.addr, "fresh", 2);
    assert!(all_peers(&mut fresh).iter().any(|p| p.username == "survivor"));
}

#[test]
fn malformed_request_with_valid_id_gets_a_short_error() {
    let t = TrackerProc::start(&[]);
    let mut c = Client::registered(t.addr, "m", 1);
    let (_, mut bytes) = c.encode(RequestBody::KeepAlive);
    bytes[17] = 250; // no such request variant
    let reply = c
        .send_raw(&bytes, Duration::from_secs(2))
        .expect("an error reply");
    let decoded = pytorrent::wire::tracker::decode_reply(&reply).unwrap();
    assert!(matches!(
        decoded.body,
        ReplyBody::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
}

#[test]
fn ipv6_bind_works() {
    let t = TrackerProc::start_on("[::1]:0", &[]);
    assert!(t.addr.is_ipv6());
    let mut c = Client::registered(t.addr, "six", 6);
    let peers = all_peers(&mut c);
    assert_eq!(peers[0].addr, "[::1]:6".parse().unwrap());
}

#[test]
fn signals_say_goodbye_and_exit_zero() {
    for signal in ["INT", "TERM"] {
        let mut t = TrackerProc::start(&[]);
        let status = t.signal_and_wait(signal);
        assert!(status.success(), "{signal}: {status:?}");
        let goodbye = t
            .stdout
            .recv_timeout(Duration::from_secs(2))
            .expect("goodbye line");
        assert!(goodbye.contains("goodbye"), "{goodbye}");
    }
}

#[test]
fn flags_help_version_and_mistakes() {
    let bin = env!("CARGO_BIN_EXE_pytorrent-tracker");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--bind",
        "--interval",
        "--max-peers",
        "--max-files-per-network",
        "--reserved-files",
        "--quiet",
        "--help",
        "--version",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    let version = Command::new(bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("pytorrent-tracker "));
    for bad in [
        &["--frobnicate"][..],
        &["--interval", "0"],
        &["--bind", "nowhere"],
        &["extra"],
        &["--max-files", "100", "--reserved-files", "100"],
        &["--max-peers", "10", "--reserved-peers", "11"],
    ] {
        let out = Command::new(bin).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--help for the options"),
            "{bad:?}"
        );
    }
}

/// Issue 19 against the real binary: reads need no registration (a
/// reader is nobody's peer), `member` reads say when the tracker forgot
/// the sender, and `FindFiles` finds by exact name and by id prefix,
/// paged, with the list order out of the way.
#[test]
fn finds_and_reads_without_registering() {
    let t = TrackerProc::start(&[]);
    let mut seeder = Client::registered(t.addr, "seeder", 7001);
    let mut twins: Vec<FileEntry> = (0..20).map(|i| entry(i, "twin.bin")).collect();
    twins.push(entry(100, "needle.bin"));
    for page in twins.chunks(10) {
        let reply = seeder.request(RequestBody::Announce { files: page.to_vec() });
        assert!(matches!(reply, ReplyBody::Announced { .. }), "{reply:?}");
    }
    let needle = entry(100, "needle.bin").id();
    let mut reader = Client::connect(t.addr);
    let find = |c: &mut Client, query: FileQuery| -> Vec<FileInfo> {
        let (mut out, mut cursor, mut pages) = (Vec::new(), FindCursor::default(), 0);
        loop {
            pages += 1;
            let body = RequestBody::FindFiles {
                query: query.clone(),
                cursor,
                member: false,
            };
            match c.request(body) {
                ReplyBody::Found { files, next } => {
                    out.extend(files);
                    match next {
                        Some(n) => cursor = n,
                        None => return out,
                    }
                }
                other => panic!("find: {other:?} after {pages} pages"),
            }
        }
    };
    let found = find(&mut reader, FileQuery::Name("needle.bin".into()));
    assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), vec![needle]);
    assert_eq!(find(&mut reader, FileQuery::Name("twin.bin".into())).len(), 20);
    let mut shown = [0u8; 32];
    shown[..8].copy_from_slice(&needle[..8]);
    let by_prefix = find(
        &mut reader,
        FileQuery::IdPrefix {
            id: shown,
            digits: 16,
        },
    );
    assert_eq!(by_prefix.iter().map(|f| f.id).collect::<Vec<_>>(), vec![needle]);
    // The reader is listed nowhere; a member read from it is told.
    assert_eq!(all_peers(&mut seeder).len(), 1);
    let member = reader.request(RequestBody::ListFiles {
        cursor: 0,
        member: true,
    });
    assert!(is_error(&member, ErrorCode::NotRegistered), "{member:?}");
}
