//! Tracker load benchmark: `cargo bench --bench tracker_load [-- --secs N --rounds N --peers N]`.
//!
//! 1. Throughput: starts the release tracker pinned to CPU 0 (when `taskset`
//!    exists; this process pins itself to CPU 1), registers 8 UDP sockets on
//!    127.0.0.1, and keeps 64 requests in flight on each with a realistic mix
//!    (10% connect, 40% keep-alive, 10% announce, 25% get peers, 15% list
//!    files). Prints requests answered per second and p50/p99 latency per
//!    round and the median over rounds. A request unanswered after 1 s counts
//!    as lost.
//! 2. Memory: in two fresh trackers, registers `--peers` peers (default
//!    100,000), each from its own loopback address in 127.0.0.0/8 and sharing
//!    one file, (a) the same file for all, (b) a distinct file each, and
//!    prints the growth of the tracker's resident memory per peer.
//! 3. Lookups (in process, the registry alone): with 10,000, 100,000 and
//!    1,000,000 files registered, the time of one `FindFiles` by name and by
//!    16-hex id prefix (median of 5 batches of 20,000), beside one page of
//!    `ListFiles` from the middle of the list. An indexed lookup costs
//!    O(log n + page): the figures should barely grow with n.
//!    `-- --lookups-only` runs this part alone.

use pytorrent::rand::Rng;
use pytorrent::tracker::registry::{Limits, Registry, MAX_FILES_PER_PEER};
use pytorrent::wire::tracker::{
    decode_reply, encode_request, ConnId, FileEntry, FileQuery, FindCursor, ReplyBody, Request, RequestBody,
    Role, CONNECT_PADDING,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SOCKETS: usize = 8;
const WINDOW: usize = 64;
const LOST_AFTER: Duration = Duration::from_secs(1);

struct Tracker {
    child: Child,
    addr: SocketAddr,
}

impl Tracker {
    fn start(extra: &[&str]) -> Result<Tracker, String> {
        let bin = env!("CARGO_BIN_EXE_pytorrent-tracker");
        let pinned = Command::new("taskset").arg("-V").output().is_ok();
        let mut cmd = if pinned {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", bin]);
            c
        } else {
            Command::new(bin)
        };
        let mut child = cmd
            .args(["--bind", "127.0.0.1:0", "--quiet"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the tracker: {e}"))?;
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .map_err(|e| e.to_string())?;
        let addr = banner
            .split_whitespace()
            .skip_while(|w| *w != "udp")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("no address in tracker banner: {banner:?}"))?;
        Ok(Tracker { child, addr })
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(tx: u32, conn: ConnId, body: RequestBody) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    encode_request(&Request { tx, conn, body }, &mut buf).expect("request fits");
    buf
}

/// Blocking request with retries, for set-up.
fn call(sock: &UdpSocket, to: SocketAddr, tx: u32, conn: ConnId, body: RequestBody) -> Option<ReplyBody> {
    let bytes = encode(tx, conn, body);
    sock.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut buf = [0u8; 2048];
    for _ in 0..5 {
        sock.send_to(&bytes, to).ok()?;
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Ok(r) = decode_reply(&buf[..n]) {
                if r.tx == tx {
                    return Some(r.body);
                }
            }
        }
    }
    None
}

fn join(sock: &UdpSocket, to: SocketAddr, n: u32, file: &FileEntry) -> Option<ConnId> {
    let conn = match call(
        sock,
        to,
        1,
        [0; 8],
        RequestBody::Connect {
            padding: [0; CONNECT_PADDING],
        },
    )? {
        ReplyBody::Connected { conn, .. } => conn,
        _ => return None,
    };
    let register = RequestBody::Register {
        username: format!("peer{n}"),
        port: 6881,
        role: Role::Seeder,
        secret: [0; 16],
    };
    matches!(call(sock, to, 2, conn, register)?, ReplyBody::Registered { .. }).then_some(())?;
    let announce = RequestBody::Announce {
        files: vec![file.clone()],
    };
    matches!(
        call(sock, to, 3, conn, announce)?,
        ReplyBody::Announced { accepted: 1 }
    )
    .then_some(conn)
}

fn file(i: u32) -> FileEntry {
    let mut root = [7u8; 32];
    root[..4].copy_from_slice(&i.to_be_bytes());
    FileEntry {
        name: format!("file-{i}.bin"),
        size: 1 << 30,
        chunk_size: 1 << 20,
        root,
        complete: true,
    }
}

struct Round {
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    lost: u64,
}

fn throughput_round(tracker: SocketAddr, secs: u64) -> Round {
    let shared = file(0);
    let shared_id = shared.id();
    let mut socks = Vec::new();
    for n in 0..SOCKETS {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let conn = join(&sock, tracker, n as u32, &shared).expect("bench peer joins");
        sock.set_nonblocking(true).unwrap();
        socks.push((
            sock,
            conn,
            HashMap::<u32, Instant>::with_capacity(WINDOW * 2),
            100u32,
        ));
    }
    let mut latencies: Vec<u32> = Vec::with_capacity(2_000_000);
    let (mut lost, mut seq) = (0u64, 0u64);
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        for (sock, conn, inflight, tx) in socks.iter_mut() {
            while inflight.len() < WINDOW {
                seq += 1;
                *tx = tx.wrapping_add(1);
                let body = match seq % 20 {
                    0 | 1 => RequestBody::Connect {
                        padding: [0; CONNECT_PADDING],
                    },
                    2..=9 => RequestBody::KeepAlive,
                    10 | 11 => RequestBody::Announce {
                        files: vec![shared.clone()],
                    },
                    12..=16 => RequestBody::GetPeers { id: shared_id },
                    _ => RequestBody::ListFiles {
                        cursor: 0,
                        member: true,
                    },
                };
                if sock.send_to(&encode(*tx, *conn, body), tracker).is_err() {
                    break;
                }
                inflight.insert(*tx, Instant::now());
            }
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let Ok(reply) = decode_reply(&buf[..n]) else {
                    continue;
                };
                if let Some(sent) = inflight.remove(&reply.tx) {
                    latencies.push(sent.elapsed().as_micros() as u32);
                }
            }
            let now = Instant::now();
            let before = inflight.len();
            inflight.retain(|_, sent| now.duration_since(*sent) < LOST_AFTER);
            lost += (before - inflight.len()) as u64;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
    };
    Round {
        per_sec: latencies.len() as f64 / elapsed,
        p50_us: pct(0.50).copied().unwrap_or(0).into(),
        p99_us: pct(0.99).copied().unwrap_or(0).into(),
        lost,
    }
}

/// Registers `peers` peers from distinct loopback addresses; returns the
/// tracker's RSS growth per peer.
fn memory(peers: u32, same_file: bool) -> Result<f64, String> {
    let t = Tracker::start(&[
        "--max-peers",
        "1000000",
        "--max-files",
        "1000000",
        "--interval",
        "3600",
    ])?;
    std::thread::sleep(Duration::from_millis(200));
    let before = t.rss_bytes();
    for i in 0..peers {
        // 127.1.0.0 upwards: one address per peer, all routed to lo.
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + i);
        let sock = UdpSocket::bind((ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
        let f = if same_file { file(0) } else { file(i) };
        join(&sock, t.addr, i, &f).ok_or_else(|| format!("peer {i} could not join"))?;
    }
    let after = t.rss_bytes();
    Ok(after.saturating_sub(before) as f64 / f64::from(peers))
}

/// A registry holding `n` files (4,096 per peer, one peer per address);
/// returns it and the files.
fn filled_registry(n: u32) -> (Registry, Vec<FileEntry>) {
    let limits = Limits {
        max_peers: 1_000_000,
        max_files: 2_000_000,
        max_peers_per_host: 64,
        max_files_per_host: 1 << 30,
        ..Limits::DEFAULT
    };
    let mut r = Registry::new(limits, Rng::seeded(3));
    let files: Vec<FileEntry> = (0..n).map(file).collect();
    for (p, chunk) in files.chunks(MAX_FILES_PER_PEER).enumerate() {
        // One peer per /24: the per-network caps do not apply.
        let from = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + ((p as u32) << 8)), 5000));
        let mut secret = [0u8; 16];
        secret[..4].copy_from_slice(&(p as u32).to_be_bytes());
        let register = RequestBody::Register {
            username: format!("p{p}"),
            port: 1,
            role: Role::Seeder,
            secret,
        };
        assert!(matches!(
            r.handle(from, register, 0),
            ReplyBody::Registered { .. }
        ));
        for page in chunk.chunks(64) {
            let reply = r.handle(from, RequestBody::Announce { files: page.to_vec() }, 0);
            assert!(matches!(reply, ReplyBody::Announced { .. }), "{reply:?}");
        }
    }
    (r, files)
}

/// Nanoseconds per request: the median of 5 batches of 20,000, each
/// request made by `make` from a random file.
fn time_per_request(r: &mut Registry, files: &[FileEntry], make: impl Fn(&FileEntry) -> RequestBody) -> f64 {
    let asker = SocketAddr::from(([192, 0, 2, 1], 1));
    let mut rng = Rng::seeded(7);
    let batches = (0..5)
        .map(|_| {
            let reqs: Vec<RequestBody> = (0..20_000)
                .map(|_| make(&files[rng.below(files.len())]))
                .collect();
            let start = Instant::now();
            for req in reqs {
                std::hint::black_box(r.handle(asker, req, 0));
            }
            start.elapsed().as_nanos() as f64 / 20_000.0
        })
        .collect();
    median(batches)
}

fn lookups() {
    for n in [10_000, 100_000, 1_000_000] {
        let (mut r, files) = filled_registry(n);
        let by_name = time_per_request(&mut r, &files, |f| RequestBody::FindFiles {
            query: FileQuery::Name(f.name.clone()),
            cursor: FindCursor::default(),
            member: false,
        });
        let by_prefix = time_per_request(&mut r, &files, |f| {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&f.id()[..8]);
            RequestBody::FindFiles {
                query: FileQuery::IdPrefix { id, digits: 16 },
                cursor: FindCursor::default(),
                member: false,
            }
        });
        let list_page = time_per_request(&mut r, &files, |_| RequestBody::ListFiles {
            cursor: n / 2,
            member: false,
        });
        println!(
            "tracker_load: lookup with {n} files: by name {by_name:.0} ns, by 16-hex prefix {by_prefix:.0} ns, a list page {list_page:.0} ns"
        );
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let secs = arg("--secs", 3);
    let rounds = arg("--rounds", 3).max(1);
    let peers = arg("--peers", 100_000) as u32;
    if std::env::args().any(|a| a == "--lookups-only") {
        lookups();
        return;
    }
    // Load generator on CPU 1, tracker on CPU 0.
    let _ = Command::new("taskset")
        .args(["-cp", "1", &std::process::id().to_string()])
        .output();

    let tracker = match Tracker::start(&[]) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tracker_load: {e}");
            std::process::exit(1);
        }
    };
    let mut results = Vec::new();
    for r in 1..=rounds {
        let round = throughput_round(tracker.addr, secs);
        println!(
            "round {r}: {:.0} requests/s answered, p50 {} us, p99 {} us, lost {}",
            round.per_sec, round.p50_us, round.p99_us, round.lost
        );
        results.push(round);
    }
    drop(tracker);
    let rate = median(results.iter().map(|r| r.per_sec).collect());
    let p50 = median(results.iter().map(|r| r.p50_us as f64).collect());
    let p99 = median(results.iter().map(|r| r.p99_us as f64).collect());
    let lost: u64 = results.iter().map(|r| r.lost).sum();

    let same = memory(peers, true);
    let distinct = memory(peers, false);
    let show = |m: &Result<f64, String>| match m {
        Ok(b) => format!("{b:.0} B"),
        Err(e) => format!("failed ({e})"),
    };
    lookups();
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "tracker_load: requests/s median={rate:.0} p50={p50:.0}us p99={p99:.0}us lost={lost} [{} target >= 150000]",
        verdict(rate >= 150_000.0)
    );
    println!(
        "tracker_load: rss per peer (same file)={} (distinct files)={} peers={peers} [{} target <= 200 B]",
        show(&same),
        show(&distinct),
        verdict(matches!(same, Ok(b) if b <= 200.0))
    );
}
