//! End-to-end tests of the real `pytorrent` client on loopback: seeders and
//! leechers as separate processes around a real tracker, every downloaded
//! file compared by SHA-256 with the original. Seeders that die, stall or
//! serve changed files are made deterministic with SIGSTOP/SIGKILL and by
//! watching the leecher's log, not by sleeping.

mod common;

use common::{
    args, check_downloaded, get, hex, random_bytes, s, seed, seeding_addr, served_bytes, shared_dir, Client,
    ClientProc, Seeder, TempDir, TrackerProc, CHUNK, DOWNLOAD, KIB, MIB, READY,
};
use pytorrent::meta::{FileMeta, MAX_META_LEN};
use pytorrent::wire::peer::{decode_peer_msg, encode_peer_msg, PeerMsg, Refusal, BLOCK_SIZE};
use pytorrent::wire::tracker::{FileEntry, ReplyBody, RequestBody};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for the leecher to exit 0.
fn expect_success(leecher: &mut ClientProc) {
    let code = leecher.wait_code(DOWNLOAD);
    if code != 0 {
        let report = leecher.report();
        panic!("{} exited {code}\n{report}", leecher.name);
    }
}

fn peer_used(name: &str, addr: SocketAddr) -> impl Fn(&str) -> bool {
    let needle = format!("peer used for {name}: {addr}");
    move |l: &str| l.contains(&needle)
}

#[test]
fn one_seeder_to_one_leecher() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("one");
    let data = random_bytes(4 * MIB + 12_345, 1);
    let shared = shared_dir(&tmp, "alice", &[("song.bin", &data)]);
    let mut alice = seed(&tmp, t.addr, "alice", &shared, &[]);
    let (mut bob, dl) = get(&tmp, t.addr, "bob", &["song.bin"], &[]);
    check_downloaded(&mut bob, &dl, "song.bin", &data, DOWNLOAD);
    expect_success(&mut bob);
    let log = bob.log_text();
    assert!(log.contains("download started: "), "{log}");
    assert!(log.contains("download verified: song.bin"), "{log}");
    let left: Vec<String> = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["song.bin"], "only the finished file stays");

    // SIGTERM: the seeder withdraws its file and exits 0.
    alice.proc.signal("TERM");
    assert_eq!(
        alice.proc.wait_code(Duration::from_secs(10)),
        0,
        "{}",
        alice.proc.report()
    );
    let mut watcher = Client::registered(t.addr, "watcher", 1);
    match watcher.request(RequestBody::ListFiles {
        cursor: 0,
        member: true,
    }) {
        ReplyBody::FileList { files, .. } => assert!(files.is_empty(), "still listed: {files:?}"),
        other => panic!("list files: {other:?}"),
    }
}

#[test]
fn three_seeders_each_serve_part_of_one_file() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("three");
    let data = random_bytes(48 * MIB, 2);
    let seeders: Vec<Seeder> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| {
            let shared = shared_dir(&tmp, name, &[("big.bin", &data)]);
            seed(&tmp, t.addr, name, &shared, &[])
        })
        .collect();
    // Stopped seeders still accept connections: the leecher connects to
    // all three before any can answer, so none is left out by a download
    // that finishes before its connection is up.
    for seeder in &seeders {
        seeder.proc.signal("STOP");
    }
    let (mut leech, dl) = get(&tmp, t.addr, "leech", &["big.bin"], &[]);
    for seeder in &seeders {
        let used = format!("peer used for big.bin: {}", seeder.addr);
        leech.wait_log("using each seeder", |l| l.contains(&used), DOWNLOAD);
    }
    for seeder in &seeders {
        seeder.proc.signal("CONT");
    }
    check_downloaded(&mut leech, &dl, "big.bin", &data, DOWNLOAD);
    expect_success(&mut leech);
    let log = leech.log_text();
    for mut seeder in seeders {
        assert!(
            log.contains(&format!("peer used for big.bin: {}", seeder.addr)),
            "leecher never used {}\n{log}",
            seeder.addr
        );
        // The seeder logs its bytes once the leecher's connection closes.
        seeder.proc.wait_log(
            "with chunk bytes served",
            |l| l.contains("finished serving") || l.contains("stopped serving"),
            Duration::from_secs(10),
        );
        let sent = served_bytes(&seeder.proc.log_text());
        if sent == 0 {
            let report = seeder.proc.report();
            panic!(
                "{} served no chunk bytes\n{report}\nleecher log:\n{log}",
                seeder.proc.name
            );
        }
    }
}

#[test]
fn seeder_killed_mid_download() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("killed");
    let data = random_bytes(16 * MIB, 3);
    let mut seeders: Vec<Seeder> = ["k1", "k2", "victim"]
        .iter()
        .map(|name| {
            let shared = shared_dir(&tmp, name, &[("film.bin", &data)]);
            seed(&tmp, t.addr, name, &shared, &[])
        })
        .collect();
    let victim = seeders.pop().unwrap();
    // Stopped, a seeder's kernel still accepts the connection but nothing
    // is answered, so the download cannot finish (not even by end-game
    // duplicates of the victim's requests) before the victim dies.
    victim.proc.signal("STOP");
    for s in &seeders {
        s.proc.signal("STOP");
    }
    let (mut leech, dl) = get(&tmp, t.addr, "leech", &["film.bin"], &[]);
    for s in seeders.iter().chain([&victim]) {
        leech.wait_log("using each seeder", peer_used("film.bin", s.addr), DOWNLOAD);
    }
    victim.proc.signal("KILL");
    let lost = format!("peer lost for film.bin: {}", victim.addr);
    leech.wait_log(
        "losing the victim",
        |l| l.contains(&lost),
        Duration::from_secs(10),
    );
    assert!(!leech.log_text().contains("download verified"));
    for s in &seeders {
        s.proc.signal("CONT");
    }
    check_downloaded(&mut leech, &dl, "film.bin", &data, DOWNLOAD);
    expect_success(&mut leech);
}

#[test]
fn file_changed_on_disk_after_indexing() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("changed");
    let chunks = 64;
    let data = random_bytes(chunks * CHUNK, 4);
    let shared_a = shared_dir(&tmp, "a", &[("doc.bin", &data)]);
    let shared_b = shared_dir(&tmp, "b", &[("doc.bin", &data)]);
    let a = seed(&tmp, t.addr, "a", &shared_a, &[]);
    // Every chunk but the first two and last two changes, in place, same size.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(shared_a.join("doc.bin"))
            .unwrap();
        let junk = random_bytes((chunks - 4) * CHUNK, 44);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(2 * CHUNK as u64)).unwrap();
        f.write_all(&junk).unwrap();
        f.sync_all().unwrap();
    }
    assert_eq!(
        std::fs::metadata(shared_a.join("doc.bin")).unwrap().len(),
        data.len() as u64
    );
    // A alone first. It sees that the file is not the one it indexed (its
    // modification time changed) and refuses to serve it, rather than send
    // chunks that fail their hash.
    let (mut leech, dl) = get(&tmp, t.addr, "leech", &["doc.bin"], &[]);
    let refused = format!("{}: refused", a.addr);
    leech.wait_log("A refusing the changed file", |l| l.contains(&refused), DOWNLOAD);
    assert!(
        !leech.log_text().contains("failed its SHA-256"),
        "A served changed bytes"
    );
    let _b = seed(&tmp, t.addr, "b", &shared_b, &[]);
    check_downloaded(&mut leech, &dl, "doc.bin", &data, DOWNLOAD);
    expect_success(&mut leech);
}

#[test]
fn seeder_that_stops_responding() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("stalled");
    let data = random_bytes(4 * MIB, 5);
    let shared_a = shared_dir(&tmp, "a", &[("slow.bin", &data)]);
    let shared_v = shared_dir(&tmp, "v", &[("slow.bin", &data)]);
    let a = seed(&tmp, t.addr, "a", &shared_a, &[]);
    let v = seed(&tmp, t.addr, "v", &shared_v, &[]);
    // Both stop answering, so the leecher cannot finish from `a` before
    // `v`'s request timeout: `v` is certainly stalled with requests out.
    // `a` wakes up once the stall is logged; `v` never does.
    v.proc.signal("STOP");
    a.proc.signal("STOP");
    let (mut leech, dl) = get(
        &tmp,
        t.addr,
        "leech",
        &["slow.bin"],
        &["--request-timeout", "2", "--peer-wait", "30"],
    );
    leech.wait_log("using v", peer_used("slow.bin", v.addr), DOWNLOAD);
    let lost = format!("peer lost for slow.bin: {}", v.addr);
    let line = leech.wait_log(
        "with v stalled",
        |l| l.contains(&lost) && l.contains("stalled"),
        Duration::from_secs(15),
    );
    assert!(line.contains("stalled"));
    a.proc.signal("CONT");
    check_downloaded(&mut leech, &dl, "slow.bin", &data, DOWNLOAD);
    expect_success(&mut leech);
    v.proc.signal("CONT");
}

#[test]
fn empty_one_chunk_and_chunks_plus_one_byte() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("sizes");
    let one = random_bytes(CHUNK, 6);
    let plus = random_bytes(5 * CHUNK + 1, 7);
    let files: [(&str, &[u8]); 3] = [
        ("empty.bin", b""),
        ("one-chunk.bin", &one),
        ("plus-one.bin", &plus),
    ];
    let shared = shared_dir(&tmp, "seeder", &files);
    let seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let (mut leech, dl) = get(
        &tmp,
        t.addr,
        "leech",
        &["empty.bin", "one-chunk.bin", "plus-one.bin"],
        &[],
    );
    for (name, bytes) in files {
        check_downloaded(&mut leech, &dl, name, bytes, DOWNLOAD);
    }
    expect_success(&mut leech);
    drop(seeder);
}

#[test]
fn name_with_spaces_and_non_ascii_letters() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("unicode");
    let name = "ñandú café 2.bin";
    let data = random_bytes(MIB + 17, 8);
    let shared = shared_dir(&tmp, "seeder", &[(name, &data)]);
    let _seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let (mut leech, dl) = get(&tmp, t.addr, "leech", &[name], &[]);
    check_downloaded(&mut leech, &dl, name, &data, DOWNLOAD);
    expect_success(&mut leech);
}

#[test]
fn unknown_file_id_fails_clearly() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("unknown");
    let id = hex(&random_bytes(32, 9));
    let (mut leech, _) = get(&tmp, t.addr, "leech", &[&id], &["--peer-wait", "2"]);
    let started = Instant::now();
    let code = leech.wait_code(Duration::from_secs(15));
    let secs = started.elapsed();
    let err = leech.stderr_text();
    assert_eq!(code, 1, "{}", leech.report());
    assert!(secs < Duration::from_secs(10), "took {secs:?}");
    assert!(err.contains("pytorrent: error: "), "{err}");
    assert!(err.contains("no peer has it"), "{err}");
    assert!(err.contains(&id[..16]), "stderr does not name the file: {err}");
}

/// Reads peer messages from `stream` until `count` arrived (or panics).
fn read_msgs(stream: &mut TcpStream, count: usize) -> Vec<PeerMsg> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let mut chunk = [0u8; 4096];
    while out.len() < count {
        if let Some(d) = decode_peer_msg(&buf).expect("reply decodes") {
            let len = d.len;
            out.push(d.msg);
            buf.drain(..len);
            continue;
        }
        let n = stream.read(&mut chunk).expect("reply within 10 s");
        assert!(n > 0, "connection closed after {out:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    out
}

#[test]
fn seeder_refuses_a_file_it_lacks() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("refuse");
    let shared = shared_dir(&tmp, "seeder", &[("real.bin", &random_bytes(100_000, 10))]);
    let seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let mut id = [0u8; 32];
    id.copy_from_slice(&random_bytes(32, 11));
    let mut stream = TcpStream::connect(seeder.addr).unwrap();
    let mut out = Vec::new();
    encode_peer_msg(&PeerMsg::GetChunk { id, index: 0 }, &[], &mut out).unwrap();
    encode_peer_msg(&PeerMsg::GetMeta { id }, &[], &mut out).unwrap();
    stream.write_all(&out).unwrap();
    let refused = PeerMsg::Refused {
        reason: Refusal::NoSuchFile,
    };
    assert_eq!(read_msgs(&mut stream, 2), vec![refused.clone(), refused]);
}

#[test]
fn control_characters_in_a_shared_file_name() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("evil-local");
    let shared = shared_dir(
        &tmp,
        "seeder",
        &[("evil\u{1b}[2J.txt", b"evil"), ("fine.txt", b"fine")],
    );
    let mut seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let line = seeder.proc.stdout[0].clone();
    assert!(line.starts_with("seeding 1 file as seeder"), "{line}");
    // Stderr is read by another thread: wait for the warning to arrive.
    seeder.proc.wait_stderr(
        "with a warning naming the file, escaped",
        |e| e.contains("warning") && e.contains("evil\\u{1b}[2J.txt"),
        Duration::from_secs(5),
    );
    let err = seeder.proc.stderr_bytes();
    let text = String::from_utf8_lossy(&err);
    assert!(!err.contains(&0x1b), "raw ESC on stderr: {text:?}");
}

/// A peer written here: serves `meta` (already encoded) and the chunks of
/// `data` with the real encoder, on 127.0.0.1, until dropped.
struct FakeSeeder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl FakeSeeder {
    fn start(meta: Vec<u8>, data: Vec<u8>, chunk_size: usize) -> FakeSeeder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (meta, data) = (Arc::new(meta), Arc::new(data));
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (meta, data, flag) = (Arc::clone(&meta), Arc::clone(&data), Arc::clone(&flag));
                        std::thread::spawn(move || fake_serve(stream, &meta, &data, chunk_size, &flag));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeSeeder { addr, stop }
    }
}

impl Drop for FakeSeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn fake_serve(mut stream: TcpStream, meta: &[u8], data: &[u8], chunk_size: usize, stop: &AtomicBool) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    while !stop.load(Ordering::Relaxed) {
        while let Ok(Some(d)) = decode_peer_msg(&buf) {
            let (msg, len) = (d.msg, d.len);
            buf.drain(..len);
            let mut out = Vec::new();
            match msg {
                PeerMsg::GetMeta { .. } => {
                    for (i, piece) in meta.chunks(BLOCK_SIZE).enumerate() {
                        let m = PeerMsg::MetaPiece {
                            offset: (i * BLOCK_SIZE) as u32,
                            total: meta.len() as u32,
                        };
                        encode_peer_msg(&m, piece, &mut out).unwrap();
                    }
                }
                PeerMsg::GetChunk { index, .. } => {
                    let start = (index as usize * chunk_size).min(data.len());
                    let end = (start + chunk_size).min(data.len());
                    for (i, piece) in data[start..end].chunks(BLOCK_SIZE).enumerate() {
                        let m = PeerMsg::Block {
                            index,
                            offset: (i * BLOCK_SIZE) as u32,
                        };
                        encode_peer_msg(&m, piece, &mut out).unwrap();
                    }
                }
                _ => return,
            }
            if stream.write_all(&out).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn metadata_naming_a_path_outside_downloads_is_refused() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("evil-remote");
    let data = random_bytes(40_000, 12);
    let chunk_size = 16 * KIB;
    let mut meta = FileMeta::from_reader("escape.txt", &data[..], chunk_size as u32).unwrap();
    meta.name = "../escape.txt".into();
    let mut encoded = Vec::new();
    pytorrent::wire::codec::encode(&meta, &mut encoded, MAX_META_LEN).unwrap();
    // The tracker refuses the bad name and derives ids itself, so mallory
    // lists the harmless name with the evil metadata's hashes and hopes
    // the leecher trusts what it is sent.
    let entry = FileEntry {
        name: "escape.txt".into(),
        size: data.len() as u64,
        chunk_size: chunk_size as u32,
        root: meta.root(),
        complete: true,
    };
    let id = entry.id();
    let fake = FakeSeeder::start(encoded, data.clone(), chunk_size);
    let mut mallory = Client::registered(t.addr, "mallory", fake.addr.port());
    let reply = mallory.request(RequestBody::Announce { files: vec![entry] });
    assert_eq!(reply, ReplyBody::Announced { accepted: 1 });

    let parent = tmp.mkdir("leech-home");
    let downloads = tmp.mkdir("leech-home/downloads");
    let mut a = args(&["-t", &t.addr.to_string(), "-u", "leech", "--peer-wait", "3"]);
    a.extend(["-d".into(), s(&downloads), "--get".into(), hex(&id)]);
    let mut leech = ClientProc::start(&tmp, "leech", &a);
    let code = leech.wait_code(Duration::from_secs(20));
    assert_eq!(code, 1, "{}", leech.report());
    let log = leech.log_text();
    assert!(
        // A whole id is looked up at the tracker too: the download is
        // labelled with the listed name.
        log.contains(&format!("peer used for escape.txt: {}", fake.addr)),
        "the leecher never reached the fake seeder\n{log}"
    );
    for p in [
        parent.join("escape.txt"),
        parent.join("escape.txt.part"),
        tmp.join("escape.txt"),
        tmp.join("escape.txt.part"),
    ] {
        assert!(!p.exists(), "{} was created", p.display());
    }
    let left: Vec<_> = std::fs::read_dir(&downloads).unwrap().collect();
    assert!(left.is_empty(), "downloads dir not empty: {left:?}");
    assert!(
        leech.stderr_text().contains("pytorrent: error: "),
        "{}",
        leech.report()
    );
}

#[test]
fn downloads_two_files_while_seeding_a_third() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("busy");
    let f1 = random_bytes(3 * MIB + 1, 13);
    let f2 = random_bytes(2 * MIB + 7, 14);
    let f3 = random_bytes(3 * MIB + 3, 15);
    let a = seed(&tmp, t.addr, "a", &shared_dir(&tmp, "a", &[("f1.bin", &f1)]), &[]);
    let _b = seed(&tmp, t.addr, "b", &shared_dir(&tmp, "b", &[("f2.bin", &f2)]), &[]);
    // With `a` stopped, C cannot finish f1 until it is woken: D's download
    // from C certainly happens while C is still downloading.
    a.proc.signal("STOP");
    let shared_c = shared_dir(&tmp, "c", &[("f3.bin", &f3)]);
    let downloads_c = tmp.mkdir("c-downloads");
    let mut ca = args(&[
        "--seed",
        "-t",
        &t.addr.to_string(),
        "-u",
        "c",
        "--chunk-size-kib",
        "64",
    ]);
    ca.extend(["-s".into(), s(&shared_c), "-d".into(), s(&downloads_c)]);
    ca.extend(args(&[
        "--get",
        "f1.bin",
        "--get",
        "f2.bin",
        "--request-timeout",
        "60",
    ]));
    let mut c = ClientProc::start(&tmp, "c", &ca);
    c.wait_log("starting f1", |l| l.contains("download started: f1.bin"), READY);
    // F3 by id: D need not wait for C's announce to resolve a name.
    let f3_id = FileMeta::from_reader("f3.bin", &f3[..], CHUNK as u32)
        .unwrap()
        .id();
    let (mut d, downloads_d) = get(&tmp, t.addr, "d", &[&hex(&f3_id)], &["--peer-wait", "30"]);
    check_downloaded(&mut d, &downloads_d, "f3.bin", &f3, DOWNLOAD);
    expect_success(&mut d);
    let c_addr = {
        let log = d.log_text();
        let line = log
            .lines()
            .find(|l| l.contains("peer used for"))
            .unwrap_or_else(|| panic!("D used no peer\n{log}"))
            .to_string();
        line.rsplit(": ").next().unwrap().parse::<SocketAddr>().unwrap()
    };
    assert!(
        !c.stdout.iter().any(|l| l.starts_with("downloaded f1.bin"))
            && !c.log_text().contains("download verified: f1.bin"),
        "C finished f1 while its only seeder was stopped\n{}",
        c.report()
    );
    assert!(
        !c.stdout.iter().any(|l| l.starts_with("seeding ")),
        "{}",
        c.report()
    );
    a.proc.signal("CONT");
    check_downloaded(&mut c, &downloads_c, "f1.bin", &f1, DOWNLOAD);
    check_downloaded(&mut c, &downloads_c, "f2.bin", &f2, DOWNLOAD);
    let seeding = c.wait_line("seeding ", DOWNLOAD);
    let pos = |prefix: &str| c.stdout.iter().position(|l| l.starts_with(prefix)).unwrap();
    assert!(
        pos("seeding ") > pos("downloaded f1.bin") && pos("seeding ") > pos("downloaded f2.bin"),
        "{:?}",
        c.stdout
    );
    assert_eq!(seeding_addr(&seeding), c_addr, "D did not download from C");
}

#[test]
fn list_and_peers_show_the_seeder() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("list");
    let data = random_bytes(300_000, 16);
    let shared = shared_dir(&tmp, "lister", &[("listed file.bin", &data)]);
    let seeder = seed(&tmp, t.addr, "lister", &shared, &[]);
    let tracker = t.addr.to_string();

    let mut list = ClientProc::start(&tmp, "list", &args(&["--list", "-t", &tracker]));
    assert_eq!(list.wait_code(Duration::from_secs(15)), 0, "{}", list.report());
    // The log: a line marking the session's start, no Rust module paths.
    let log = list.log_text();
    assert!(
        log.lines()
            .next()
            .unwrap_or("")
            .contains("---- session started: pytorrent"),
        "{log}"
    );
    assert!(!log.contains("pytorrent::"), "{log}");
    let out = list.stdout.clone();
    assert!(
        ["ID", "NAME", "SIZE", "SEEDERS", "PARTIAL"]
            .iter()
            .all(|h| out[0].contains(h)),
        "{out:?}"
    );
    let id = FileMeta::from_reader("listed file.bin", &data[..], CHUNK as u32)
        .unwrap()
        .id();
    let row = out
        .iter()
        .find(|l| l.contains("listed file.bin"))
        .unwrap_or_else(|| panic!("file not listed: {out:?}"));
    assert!(row.contains(&hex(&id[..8])), "{row}");
    assert_eq!(out.last().unwrap(), "1 file on the network", "{out:?}");

    // The prefix --list shows is enough for --get.
    let (mut by_prefix, dir) = get(&tmp, t.addr, "by-prefix", &[&hex(&id[..8])], &[]);
    check_downloaded(&mut by_prefix, &dir, "listed file.bin", &data, DOWNLOAD);
    expect_success(&mut by_prefix);

    // A --seed with nothing to share is a leecher in every view.
    let nothing = shared_dir(&tmp, "empty", &[]);
    let _empty = seed(&tmp, t.addr, "empty", &nothing, &[]);
    let mut peers = ClientProc::start(&tmp, "peers", &args(&["--peers", "-t", &tracker]));
    assert_eq!(peers.wait_code(Duration::from_secs(15)), 0, "{}", peers.report());
    let out = peers.stdout.clone();
    assert!(
        ["USERNAME", "ADDRESS", "ROLE", "FILES"]
            .iter()
            .all(|h| out[0].contains(h)),
        "{out:?}"
    );
    let row = out
        .iter()
        .find(|l| l.starts_with("lister "))
        .unwrap_or_else(|| panic!("seeder not listed: {out:?}"));
    let words: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        words,
        ["lister", &seeder.addr.to_string(), "seeder", "1"],
        "{row}"
    );
    // The seeders only: `--peers` reads without registering (issue 19),
    // and the asker is not one of them.
    assert_eq!(out.last().unwrap(), "2 peers on the network", "{out:?}");
    assert!(!out.iter().any(|l| l.contains("(you)")), "{out:?}");
    let empty = out
        .iter()
        .find(|l| l.starts_with("empty "))
        .expect("empty seeder listed");
    assert!(empty.contains(" leecher ") && empty.ends_with(" 0"), "{out:?}");
}

#[test]
fn bad_flags_and_bad_config_exit_2() {
    let tmp = TempDir::new("flags");
    let mut bogus = ClientProc::spawn("bogus", &args(&["--bogus"]), tmp.join("bogus.log"));
    assert_eq!(bogus.wait_code(Duration::from_secs(10)), 2, "{}", bogus.report());
    assert!(
        bogus
            .stderr_text()
            .contains("pytorrent: unrecognized option: 'bogus'"),
        "{}",
        bogus.report()
    );

    // A host name that does not resolve is named as such.
    let a = args(&["--list", "-t", "no.such.host.invalid:17380"]);
    let mut unresolved = ClientProc::spawn("unresolved", &a, tmp.join("unresolved.log"));
    assert_eq!(unresolved.wait_code(Duration::from_secs(30)), 2);
    let err = unresolved.stderr_text();
    assert!(
        err.contains("the name 'no.such.host.invalid' does not resolve"),
        "{err}"
    );

    let config = tmp.join("bad.conf");
    std::fs::write(&config, "# chunk size out of range\nchunk_size_kib=3\n").unwrap();
    let a = vec![
        "--list".to_string(),
        "-c".into(),
        s(&config),
        "--log".into(),
        s(&tmp.join("bad.log")),
    ];
    let mut bad = ClientProc::spawn("bad-config", &a, tmp.join("bad.log"));
    assert_eq!(bad.wait_code(Duration::from_secs(10)), 2, "{}", bad.report());
    let err = bad.stderr_text();
    assert!(err.contains("line 2"), "{err}");
}

/// A seeder whose tracker does not answer says so on stderr within a few
/// seconds, and says when it answers.
#[test]
fn seed_says_when_the_tracker_is_silent_and_when_it_answers() {
    let tmp = TempDir::new("silent");
    // A UDP port that never answers, then a tracker on it.
    let mute = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = mute.local_addr().unwrap();
    let shared = shared_dir(&tmp, "patient", &[("a.bin", &random_bytes(1000, 3))]);
    let a = args(&[
        "--seed",
        "-u",
        "patient",
        "-t",
        &addr.to_string(),
        "-s",
        &s(&shared),
    ]);
    let mut seeder = ClientProc::start(&tmp, "patient", &a);
    seeder.wait_stderr(
        "saying the tracker is silent",
        |e| e.contains(&format!("no answer from the tracker {addr} yet; still trying")),
        Duration::from_secs(10),
    );
    drop(mute);
    let _t = TrackerProc::start_on(&addr.to_string(), &[]);
    seeder.wait_stderr(
        "saying the tracker answers",
        |e| e.contains(&format!("the tracker {addr} answers")),
        Duration::from_secs(30),
    );
    seeder.wait_line("seeding 1 file as patient", READY);
}

#[test]
fn a_seed_the_tracker_refuses_is_reported_on_stderr() {
    // One host may share two files here; the seeder offers three.
    let t = TrackerProc::start(&["--max-files-per-host", "2"]);
    let tmp = TempDir::new("refused-seed");
    let shared = shared_dir(
        &tmp,
        "capped",
        &[("a.bin", b"a"), ("b.bin", b"b"), ("c.bin", b"c")],
    );
    let mut seeder = seed(&tmp, t.addr, "capped", &shared, &[]);
    let err = seeder.proc.wait_stderr(
        "the refusal",
        |e| e.contains("warning: tracker announce failed"),
        Duration::from_secs(15),
    );
    assert!(
        err.contains("HostLimit") && err.contains("accepted 2 of 3"),
        "{err}"
    );
    // The network lists exactly what the tracker took.
    let mut lister = Client::registered(t.addr, "lister", 9);
    let ReplyBody::FileList { files, .. } = lister.request(RequestBody::ListFiles {
        cursor: 0,
        member: true,
    }) else {
        panic!("no file list")
    };
    assert_eq!(files.len(), 2, "{files:?}");
}

/// `--help` and the README's client section agree: every flag the README's
/// option and mode tables name is in the help, which exits 0 and points to
/// the interactive client's `help` for its commands.
#[test]
fn help_names_every_flag_the_readme_documents() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pytorrent"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.starts_with("Usage: pytorrent"), "{help}");
    for command in ["downloads", "cancel", "unshare", "rescan"] {
        assert!(help.contains(command), "{command} not in --help");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("## The client\n").expect("README client section");
    let end = start
        + readme[start..]
            .find("### The interactive client")
            .expect("next section");
    let flags: Vec<&str> = readme[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .flat_map(|l| l.split('`').next())
        .flat_map(|cell| cell.split([',', ' ', '/']))
        .filter(|w| w.starts_with('-'))
        .collect();
    assert!(flags.len() >= 20, "{flags:?}");
    for flag in flags {
        assert!(help.contains(flag), "{flag} is in the README, not in --help");
    }
}

/// Defect 17: the README's quick start names the Rust version Cargo.toml
/// requires, and runs the tests in a block of their own, apart from the
/// tracker (which holds its terminal).
#[test]
fn the_quick_start_matches_cargo_toml() {
    let root = env!("CARGO_MANIFEST_DIR");
    let cargo = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("rust-version in Cargo.toml");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(
        readme.contains(&format!("with Rust {version} or newer")),
        "README names another Rust version"
    );
    let blocks: Vec<&str> = readme.split("```").skip(1).step_by(2).collect();
    let tests = blocks
        .iter()
        .find(|b| b.contains("cargo test"))
        .expect("a cargo test block");
    assert!(!tests.contains("pytorrent-tracker"), "{tests}");
    assert!(blocks.iter().any(|b| b.contains("--bin pytorrent-tracker")));
}

/// The peers the tracker lists, read without registering.
fn listed_peers(tracker: SocketAddr) -> Vec<pytorrent::wire::tracker::PeerInfo> {
    let mut reader = Client::connect(tracker);
    match reader.request(RequestBody::ListPeers {
        cursor: 0,
        member: false,
    }) {
        ReplyBody::PeerList { peers, next: None } => peers,
        other => panic!("list peers: {other:?}"),
    }
}

/// `pytorrent` with `args`, using the config (and so the secret) of the
/// client `owner` started by [`seed`] in `tmp`: "the same folder".
fn in_folder_of(tmp: &TempDir, owner: &str, tag: &str, a: &[&str]) -> ClientProc {
    let mut all = args(a);
    let log = tmp.join(format!("{tag}.log"));
    all.extend(["-c".into(), s(&tmp.join(format!("{owner}.conf")))]);
    all.extend(["--log".into(), s(&log), "-l".into(), "127.0.0.1:0".into()]);
    ClientProc::spawn(tag, &all, log)
}

/// Issue 19, attack 5: `--list` and `--peers` run from a seeder's folder
/// with its username take nobody's place; a second client there with the
/// same name is refused and told why; the seeder restarted gets its name
/// back at once.
#[test]
fn a_name_in_use_stays_with_its_client() {
    let t = TrackerProc::start(&[]);
    let tracker = t.addr.to_string();
    let tmp = TempDir::new("names");
    let data = random_bytes(100 * KIB, 19);
    let shared = shared_dir(&tmp, "alice", &[("a.bin", &data)]);
    let mut alice = seed(&tmp, t.addr, "alice", &shared, &[]);
    let alice_listed = |addr: SocketAddr| {
        let peers = listed_peers(t.addr);
        let rows: Vec<(String, SocketAddr, u32)> =
            peers.into_iter().map(|p| (p.username, p.addr, p.files)).collect();
        assert_eq!(rows, [("alice".to_string(), addr, 1)], "{rows:?}");
    };
    alice_listed(alice.addr);

    for (tag, flag) in [("lister", "--list"), ("peers", "--peers")] {
        let mut reader = in_folder_of(&tmp, "alice", tag, &[flag, "-t", &tracker, "-u", "alice"]);
        assert_eq!(
            reader.wait_code(Duration::from_secs(15)),
            0,
            "{}",
            reader.report()
        );
        assert!(
            reader
                .stdout
                .iter()
                .any(|l| l.contains("alice") || l.contains("a.bin")),
            "{}",
            reader.report()
        );
        // Right after it: the seeder is still there with its file.
        alice_listed(alice.addr);
    }

    let downloads = tmp.mkdir("second-downloads");
    let mut second = in_folder_of(
        &tmp,
        "alice",
        "second",
        &[
            "--get",
            "a.bin",
            "-t",
            &tracker,
            "-u",
            "alice",
            "-d",
            &s(&downloads),
        ],
    );
    assert_eq!(
        second.wait_code(Duration::from_secs(20)),
        1,
        "{}",
        second.report()
    );
    let err = second.stderr_text();
    assert!(
        err.contains("UsernameTaken") && err.contains("in use by another online client"),
        "{err}"
    );
    assert!(err.contains("another client runs with this config"), "{err}");
    alice_listed(alice.addr);

    // A crash, then a restart: the name comes back at once, not after the
    // old entry's expiry (three keep-alive intervals, 90 s).
    alice.proc.signal("KILL");
    let _ = alice.proc.wait_exit(Duration::from_secs(10));
    let started = Instant::now();
    let back = seed(&tmp, t.addr, "alice", &shared, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    alice_listed(back.addr);
}
