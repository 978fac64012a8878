//! Fault drills: the real binaries on loopback under the faults a real
//! network and a real machine bring: a tracker that dies and comes back on
//! the same port, a flood of junk datagrams, a seeder swamped by leechers,
//! an unusable downloads directory, a full disk and a config file full of
//! mistakes. Each test has its own tracker and temp dirs; every downloaded
//! file is compared by SHA-256 with the original; every wait is bounded.

mod common;

use common::{
    args, check_downloaded, get, random_bytes, s, seed, shared_dir, Client, ClientProc, TempDir, TrackerProc,
    CHUNK, DOWNLOAD, KIB, MIB,
};
use pytorrent::rand::Rng;
use pytorrent::wire::tracker::{PeerInfo, ReplyBody, RequestBody, Role};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for the client to exit 0.
fn expect_success(leecher: &mut ClientProc, limit: Duration) {
    let code = leecher.wait_code(limit);
    if code != 0 {
        let report = leecher.report();
        panic!("{} exited {code}\n{report}", leecher.name);
    }
}

/// Waits until a log line containing `second` follows one containing
/// `first`; returns the later line.
fn wait_log_after(proc: &mut ClientProc, first: &str, second: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = proc.log_text();
        let lines: Vec<&str> = log.lines().collect();
        if let Some(i) = lines.iter().position(|l| l.contains(first)) {
            if let Some(l) = lines[i + 1..].iter().find(|l| l.contains(second)) {
                return l.to_string();
            }
        }
        if Instant::now() >= deadline {
            let report = proc.report();
            panic!(
                "{}: no log line with {second:?} after one with {first:?} within {limit:?}\n{report}",
                proc.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every page of the tracker's peer list, asked by `watcher`; `None` if the
/// tracker did not answer in time.
fn list_peers(watcher: &mut Client) -> Option<Vec<PeerInfo>> {
    let mut rows = Vec::new();
    let mut cursor = 0;
    loop {
        match watcher.try_request(
            RequestBody::ListPeers { cursor, member: true },
            Duration::from_millis(500),
        )? {
            ReplyBody::PeerList { peers, next } => {
                rows.extend(peers);
                match next {
                    Some(n) => cursor = n,
                    None => return Some(rows),
                }
            }
            other => panic!("list peers: {other:?}"),
        }
    }
}

/// The tracker's resident memory in KiB, from /proc/PID/status.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
}

/// Every path under `dir` (recursively) whose file name is one of `names`.
fn find_named(dir: &Path, names: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if names.iter().any(|n| e.file_name().to_string_lossy() == *n) {
            found.push(path.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&path, names));
        }
    }
    found
}

#[test]
fn tracker_restarted_mid_download() {
    let mut t = TrackerProc::start(&["--interval", "2"]);
    let addr = t.addr;
    let tmp = TempDir::new("restart");
    let chunks = 64;
    let data = random_bytes(chunks * CHUNK, 101);
    let shared_a = shared_dir(&tmp, "a", &[("doc.bin", &data)]);
    let shared_b = shared_dir(&tmp, "b", &[("doc.bin", &data)]);
    let mut a = seed(&tmp, addr, "a", &shared_a, &[]);
    // A's copy changes in place after indexing: A finds it is not the file
    // it indexed and refuses it (it never serves changed bytes), so the
    // leecher has nobody to fetch from.
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(shared_a.join("doc.bin"))
            .unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(CHUNK as u64)).unwrap();
        f.write_all(&random_bytes((chunks - 2) * CHUNK, 102)).unwrap();
        f.sync_all().unwrap();
    }
    assert_eq!(
        std::fs::metadata(shared_a.join("doc.bin")).unwrap().len(),
        data.len() as u64
    );
    let (mut leech, dl) = get(&tmp, addr, "leech", &["doc.bin"], &["--peer-wait", "60"]);
    let refused = format!("peer lost for doc.bin: {}: refused", a.addr);
    leech.wait_log("A refusing", |l| l.contains(&refused), DOWNLOAD);
    wait_log_after(&mut leech, &refused, "waiting for peers", Duration::from_secs(20));
    assert!(
        !leech.log_text().contains("download verified"),
        "{}",
        leech.report()
    );

    // The tracker dies (no goodbye, no state) and a new one takes its port.
    let status = t.signal_and_wait("KILL");
    assert!(!status.success(), "{status:?}");
    drop(t);
    let killed = Instant::now();
    let t2 = TrackerProc::start_on(&addr.to_string(), &["--interval", "2"]);
    assert_eq!(t2.addr, addr, "the new tracker did not get the same address");

    // Both clients find out by themselves and register again; A announces
    // its file again.
    let mut watcher = Client::registered(addr, "watcher", 1);
    let deadline = killed + Duration::from_secs(20);
    let mut last = Vec::new();
    loop {
        if let Some(rows) = list_peers(&mut watcher) {
            let a_back = rows
                .iter()
                .any(|p| p.username == "a" && p.role == Role::Seeder && p.files == 1);
            let leech_back = rows.iter().any(|p| p.username == "leech");
            last = rows;
            if a_back && leech_back {
                break;
            }
        }
        if Instant::now() >= deadline {
            panic!(
                "within 20 s of the restart, the new tracker lists {last:?}\n{}\n{}",
                leech.report(),
                a.proc.report()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "both clients registered again {:?} after the restart",
        killed.elapsed()
    );

    // A good seeder appears: the leecher finds it through the new tracker.
    let b = seed(&tmp, addr, "b", &shared_b, &[]);
    check_downloaded(&mut leech, &dl, "doc.bin", &data, DOWNLOAD);
    expect_success(&mut leech, Duration::from_secs(10));
    let log = leech.log_text();
    assert!(
        log.contains(&format!("peer used for doc.bin: {}", b.addr)),
        "the leecher never used B\n{log}"
    );
    drop(a);
}

/// A number from 0 to `max`.
fn upto(rng: &mut Rng, max: usize) -> usize {
    (rng.next_u64() % (max as u64 + 1)) as usize
}

/// Appends `n` random bytes (from `pool`, at a random offset: generating
/// them byte by byte would slow the flood down in a debug build).
fn junk(rng: &mut Rng, pool: &[u8], buf: &mut Vec<u8>, n: usize) {
    let start = upto(rng, pool.len() - n);
    buf.extend_from_slice(&pool[start..start + n]);
}

/// Sends junk to `tracker` from several sockets until `stop`; returns the
/// number of datagrams sent.
fn flood(tracker: SocketAddr, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = Rng::seeded(2024);
    let pool = random_bytes(64 * KIB, 2025);
    let socks: Vec<UdpSocket> = (0..5)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // One sender holds a valid connection id: its junk gets past the id
    // check and is answered with a short error (drained and dropped).
    let mut valid = Client::connect(tracker);
    valid.sock.set_nonblocking(true).unwrap();
    let real: Vec<Vec<u8>> = [
        RequestBody::Register {
            username: "flooder".into(),
            port: 9,
            role: Role::Seeder,
            secret: [0; 16],
        },
        RequestBody::ListFiles {
            cursor: 0,
            member: true,
        },
        RequestBody::KeepAlive,
        RequestBody::GetPeers { id: [7; 32] },
    ]
    .into_iter()
    .map(|b| valid.encode(b).1)
    .collect();
    // Magic and version, transaction id, connection id.
    let header_len = pytorrent::wire::PREFIX_LEN + 4 + 8;
    let (mut sent, mut buf, mut sink) = (0u64, Vec::with_capacity(9000), [0u8; 2048]);
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..256 {
            buf.clear();
            let r = &real[upto(&mut rng, real.len() - 1)];
            let from: &UdpSocket = match rng.next_u64() % 6 {
                // Random bytes, 0 to 1,500 of them (past the 1,232 limit too).
                0 => {
                    let n = upto(&mut rng, 1500);
                    junk(&mut rng, &pool, &mut buf, n);
                    &socks[0]
                }
                // A real request cut short anywhere.
                1 => {
                    buf.extend_from_slice(&r[..upto(&mut rng, r.len() - 1)]);
                    &socks[1]
                }
                // The right magic and version, then garbage.
                2 => {
                    buf.extend_from_slice(b"PYT\x01\x01");
                    let n = upto(&mut rng, 200);
                    junk(&mut rng, &pool, &mut buf, n);
                    &socks[2]
                }
                // Another version.
                3 => {
                    buf.extend_from_slice(b"PYT\x01");
                    buf.push(2 + upto(&mut rng, 250) as u8);
                    let n = upto(&mut rng, 64);
                    junk(&mut rng, &pool, &mut buf, n);
                    &socks[3]
                }
                // Oversized.
                4 => {
                    buf.extend_from_slice(b"PYT\x01\x01");
                    let n = 1300 + upto(&mut rng, 7000);
                    junk(&mut rng, &pool, &mut buf, n);
                    &socks[4]
                }
                // A valid header and connection id with a garbage body.
                _ => {
                    buf.extend_from_slice(&r[..header_len]);
                    let n = 1 + upto(&mut rng, 100);
                    junk(&mut rng, &pool, &mut buf, n);
                    &valid.sock
                }
            };
            // A full socket buffer is fine: the point is the pressure.
            if from.send_to(&buf, tracker).is_ok() {
                sent += 1;
            }
        }
        while valid.sock.recv_from(&mut sink).is_ok() {}
    }
    sent
}

#[test]
fn datagram_flood_during_a_download() {
    let mut t = TrackerProc::start(&[]);
    let pid = t.pid();
    let tmp = TempDir::new("flood");
    let data = random_bytes(16 * MIB, 201);
    let shared = shared_dir(&tmp, "seeder", &[("big.bin", &data)]);
    let seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let rss_before = vm_rss_kib(pid);

    // With the seeder stopped, the download cannot finish before the flood
    // has been going for a while: the leecher's file list, peer query and
    // first requests all happen under it.
    seeder.proc.signal("STOP");
    let stop = Arc::new(AtomicBool::new(false));
    let flood_started = Instant::now();
    let flooder = {
        let (tracker, stop) = (t.addr, Arc::clone(&stop));
        std::thread::spawn(move || flood(tracker, stop))
    };
    let (mut leech, dl) = get(&tmp, t.addr, "leech", &["big.bin"], &["--peer-wait", "60"]);
    let used = format!("peer used for big.bin: {}", seeder.addr);
    let connected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        leech.wait_log("using the seeder", |l| l.contains(&used), Duration::from_secs(40))
    }));
    let connected_after = flood_started.elapsed();
    seeder.proc.signal("CONT");
    // The chunks flow while the flood goes on for at least 1.5 s more and
    // at least 2 s in all.
    let until = (Instant::now() + Duration::from_millis(1500)).max(flood_started + Duration::from_secs(2));
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flooder.join().expect("flood thread");
    let flood_secs = flood_started.elapsed().as_secs_f64();
    if let Err(e) = connected {
        std::panic::resume_unwind(e);
    }
    let rss_after = vm_rss_kib(pid);
    eprintln!(
        "flood: {sent} datagrams in {flood_secs:.1} s; the leecher reached the seeder after \
         {connected_after:.1?}; tracker VmRSS {rss_before} KiB before, {rss_after} KiB after"
    );
    check_downloaded(&mut leech, &dl, "big.bin", &data, DOWNLOAD);
    expect_success(&mut leech, Duration::from_secs(10));
    assert!(
        rss_after < 32 * 1024,
        "tracker VmRSS {rss_after} KiB after the flood of {sent} datagrams (was {rss_before} KiB, grew by {} KiB)",
        rss_after as i64 - rss_before as i64
    );
    // Still a working tracker: a newcomer registers and sees the seeder.
    let mut late = Client::registered(t.addr, "late", 1);
    let rows = list_peers(&mut late).expect("the tracker answers after the flood");
    assert!(
        rows.iter().any(|p| p.username == "seeder" && p.files == 1),
        "{rows:?}"
    );
    assert!(t.child.try_wait().unwrap().is_none(), "the tracker exited");
}

#[test]
fn thirty_leechers_one_seeder() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("thirty");
    let data = random_bytes(MIB, 301);
    let shared = shared_dir(&tmp, "seeder", &[("one.bin", &data)]);
    let mut seeder = seed(&tmp, t.addr, "seeder", &shared, &["--max-inbound", "8"]);
    let started = Instant::now();
    let mut leechers: Vec<(ClientProc, PathBuf)> = (0..30)
        .map(|i| {
            get(
                &tmp,
                t.addr,
                &format!("l{i:02}"),
                &["one.bin"],
                &["--peer-wait", "60"],
            )
        })
        .collect();
    let deadline = started + Duration::from_secs(90);
    for (leech, dl) in &mut leechers {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        check_downloaded(leech, dl, "one.bin", &data, left);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        expect_success(leech, left);
    }
    eprintln!("30 leechers done in {:?}", started.elapsed());
    assert!(
        seeder.proc.child.try_wait().unwrap().is_none(),
        "{}",
        seeder.proc.report()
    );
    // --max-inbound 8 holds: 8 connections that ask nothing stay open, a
    // ninth is closed at once. (The leechers are gone, so their
    // connections close; wait until the seeder has let all of them go.)
    let open_eight = || -> Vec<std::net::TcpStream> {
        (0..8)
            .map(|_| std::net::TcpStream::connect(seeder.addr).unwrap())
            .collect()
    };
    let closed_at_once = |c: &mut std::net::TcpStream| {
        c.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        match std::io::Read::read(c, &mut [0u8; 16]) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    };
    let mut held = open_eight();
    let mut ninth = std::net::TcpStream::connect(seeder.addr).unwrap();
    let mut tries = 0;
    while !closed_at_once(&mut ninth) {
        // A leecher's connection may still be closing: try again.
        tries += 1;
        assert!(
            tries < 20,
            "a ninth connection was never refused: {}",
            seeder.proc.report()
        );
        drop(held);
        std::thread::sleep(Duration::from_millis(200));
        held = open_eight();
        ninth = std::net::TcpStream::connect(seeder.addr).unwrap();
    }
    for c in &mut held {
        c.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let r = std::io::Read::read(c, &mut [0u8; 16]);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "one of the first eight was closed: {r:?}"
        );
    }
    // All of them come from 127.0.0.1, so the per-host share (8 too, at
    // --max-inbound 8) may be what refused the ninth.
    let log = seeder.proc.log_text();
    assert!(
        log.contains("inbound limit of 8 connections reached")
            || log.contains("8 connections from 127.0.0.1 already"),
        "{log}"
    );
}

#[test]
fn downloads_dir_unusable() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("baddir");
    let data = random_bytes(200_000, 401);
    let shared = shared_dir(&tmp, "seeder", &[("x.bin", &data)]);
    let _seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    // The downloads dir's parent is a regular file: no mode bits help root.
    let blocker = tmp.join("blocker");
    std::fs::write(&blocker, b"not a directory\n").unwrap();
    let downloads = blocker.join("downloads");
    let mut a = args(&["-t", &t.addr.to_string(), "-u", "leech", "--peer-wait", "10"]);
    a.extend(["-d".into(), s(&downloads), "--get".into(), "x.bin".into()]);
    let mut leech = ClientProc::start(&tmp, "leech", &a);
    let code = leech.wait_code(Duration::from_secs(30));
    let err = leech.stderr_text();
    eprintln!("exit {code}, stderr:\n{err}");
    assert_eq!(code, 1, "{}", leech.report());
    assert!(err.contains("pytorrent: error: "), "{}", leech.report());
    assert!(
        err.contains(&s(&downloads)) || err.contains(&s(&blocker)),
        "stderr does not name the directory: {err}"
    );
    assert!(
        err.contains("Not a directory"),
        "stderr does not say what is wrong: {err}"
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory\n");
    let stray: Vec<PathBuf> = find_named(&tmp.path, &["x.bin".into(), ".pytorrent".into()])
        .into_iter()
        .filter(|p| !p.starts_with(&shared))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn disk_full() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("full");
    let data = random_bytes(MIB, 501);
    let shared = shared_dir(&tmp, "seeder", &[("huge.bin", &data)]);
    let _seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let downloads = tmp.mkdir("leech-downloads");
    let mut a = args(&["-t", &t.addr.to_string(), "-u", "leech", "--peer-wait", "10"]);
    a.extend(["-d".into(), s(&downloads), "--get".into(), "huge.bin".into()]);
    // No file of this process may grow past 256 KiB: the 1 MiB download
    // cannot fit (the log stays far smaller).
    let limit = 256 * KIB as u64;
    let mut leech = ClientProc::start_with(&tmp, "leech", &a, |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let status = leech.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{status:?}\n{}", leech.report());
    let err = leech.stderr_text();
    eprintln!("{status:?}, stderr:\n{err}");
    assert!(err.contains("pytorrent: error: "), "{}", leech.report());
    assert!(err.contains("huge.bin"), "stderr does not name the file: {err}");
    assert!(
        err.contains("space") || err.contains("room"),
        "stderr does not say there is no room for it: {err}"
    );
    assert!(!downloads.join("huge.bin").exists(), "the final file exists");
    let left: Vec<_> = std::fs::read_dir(&downloads)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the downloads dir: {left:?}");
}

#[test]
fn config_with_every_kind_of_mistake() {
    let tmp = TempDir::new("config");
    let config = tmp.join("mistakes.conf");
    let text = "\
# one mistake of each kind
no equals sign here
colour=blue
username=two words
tracker=nohost
listen=here
shared_dir=
chunk_size_kib=3
tracker=127.0.0.1:17380
download_dir=fine/downloads
";
    std::fs::write(&config, text).unwrap();
    let log = tmp.join("mistakes.log");
    let a = vec![
        "-c".to_string(),
        s(&config),
        "--log".into(),
        s(&log),
        "--list".into(),
    ];
    let mut p = ClientProc::spawn("mistakes", &a, log);
    let code = p.wait_code(Duration::from_secs(10));
    let err = p.stderr_text();
    assert_eq!(code, 2, "{}", p.report());
    let lines: Vec<&str> = err.lines().collect();
    let line_of = |n: usize| -> Vec<&str> {
        let tag = format!("line {n}: ");
        lines.iter().copied().filter(|l| l.contains(&tag)).collect()
    };
    for (n, what) in [
        (2, "key=value"),
        (4, "username"),
        (5, "tracker"),
        (6, "listen"),
        (7, "shared_dir"),
        (8, "chunk_size_kib"),
        (9, "already set on line 5"),
    ] {
        let found = line_of(n);
        assert!(
            found.iter().any(|l| l.contains(what) && !l.contains("warning")),
            "no error for line {n} ({what}) in stderr:\n{err}"
        );
    }
    let unknown = line_of(3);
    assert!(
        !unknown.is_empty()
            && unknown
                .iter()
                .all(|l| l.contains("warning") && l.contains("unknown key")),
        "line 3 (unknown key) should be a warning, not an error; stderr:\n{err}"
    );
    assert!(line_of(10).is_empty(), "line 10 is fine: {err}");
    assert!(
        !log_exists_with_content(&tmp.join("mistakes.log")),
        "it ran: {err}"
    );
}

/// Whether a log file was written (the client must not start on a bad config).
fn log_exists_with_content(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// A TCP connection to `to` from the loopback address `from` (the kernel
/// owns all of 127.0.0.0/8), so one test can be many hosts.
fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let sockaddr = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns (and
    // hands to TcpStream, which closes it), with sockaddr_in values of the
    // length passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let local = sockaddr(from, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(to.ip().octets(), to.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

#[test]
fn tricklers_and_non_readers_do_not_lock_a_seeder() {
    use pytorrent::meta::FileMeta;
    use pytorrent::wire::peer::{encode_peer_msg, PeerMsg};
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("locked-seeder");
    let data = random_bytes(2 * MIB, 41);
    let shared = shared_dir(&tmp, "target", &[("film.bin", &data)]);
    let seeder = seed(&tmp, t.addr, "target", &shared, &[]);
    let to = SocketAddr::from(([127, 0, 0, 1], seeder.addr.port()));
    let id = FileMeta::from_reader("film.bin", &data[..], CHUNK as u32)
        .unwrap()
        .id();

    // 96 tricklers from six hosts (16 each) that send a request a byte
    // every two seconds, and 32 from two more that ask for every chunk
    // and never read: the seeder's 128 slots, full.
    let mut trickle = Vec::new();
    encode_peer_msg(&PeerMsg::GetMeta { id }, &[], &mut trickle).unwrap();
    let mut greedy = Vec::new();
    for index in 0..(data.len() / CHUNK) as u32 {
        encode_peer_msg(&PeerMsg::GetChunk { id, index }, &[], &mut greedy).unwrap();
    }
    let mut tricklers = Vec::new();
    for host in 2..8u8 {
        for _ in 0..16 {
            tricklers.push(connect_from([127, 0, 0, host], to).unwrap());
        }
    }
    let mut hogs = Vec::new();
    for host in 8..10u8 {
        for _ in 0..16 {
            let mut s = connect_from([127, 0, 0, host], to).unwrap();
            s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
            let _ = s.write_all(&greedy);
            hogs.push(s);
        }
    }
    // One host gets a quarter of the slots at most: a 33rd connection from
    // an address holding 32 is closed at once.
    let mut over = connect_from([127, 0, 0, 8], to).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    let started = Instant::now();
    let n = std::io::Read::read(&mut over, &mut byte).unwrap_or(0);
    assert_eq!(n, 0, "the connection over the host's share was served");
    assert!(started.elapsed() < Duration::from_secs(4), "not closed at once");

    let stop = Arc::new(AtomicBool::new(false));
    let trickling = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < trickle.len() {
                for s in &mut tricklers {
                    let _ = s.write_all(&trickle[sent..sent + 1]);
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(2));
            }
            tricklers
        })
    };
    // Unproductive for more than 5 s: each may now make room for a
    // newcomer.
    std::thread::sleep(Duration::from_secs(6));
    let (mut leecher, dir) = get(&tmp, t.addr, "honest", &["film.bin"], &["--peer-wait", "40"]);
    check_downloaded(&mut leecher, &dir, "film.bin", &data, DOWNLOAD);
    expect_success(&mut leecher, DOWNLOAD);
    stop.store(true, Ordering::Relaxed);
    drop(trickling.join().unwrap());
    drop(hogs);
}
