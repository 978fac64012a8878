//! Shared helpers for the integration tests: start the real binaries on
//! loopback port 0, read the address they actually bound, and talk to the
//! tracker with the real wire codec; start real clients, wait for what they
//! print and log. Every process is killed on drop and every wait has a
//! timeout, so a failing test never hangs or leaves a process behind.
#![allow(dead_code)] // each test file uses its own subset

use pytorrent::rand::Rng;
use pytorrent::wire::tracker::{
    decode_reply, encode_request, ConnId, Reply, ReplyBody, Request, RequestBody, Role, CONNECT_PADDING,
};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `pytorrent-tracker`.
pub struct TrackerProc {
    pub child: Child,
    pub addr: SocketAddr,
    /// Lines the tracker printed on stdout after its banner.
    pub stdout: mpsc::Receiver<String>,
}

impl TrackerProc {
    /// Starts the tracker on 127.0.0.1:0 with `extra` flags.
    pub fn start(extra: &[&str]) -> TrackerProc {
        TrackerProc::start_on("127.0.0.1:0", extra)
    }

    pub fn start_on(bind: &str, extra: &[&str]) -> TrackerProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pytorrent-tracker"))
            .args(["--bind", bind])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pytorrent-tracker");
        let rx = stdout_lines(child.stdout.take().unwrap());
        let banner = rx.recv_timeout(Duration::from_secs(10)).expect("tracker banner");
        let addr = banner
            .split_whitespace()
            .skip_while(|w| *w != "udp")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in banner: {banner}"));
        TrackerProc {
            child,
            addr,
            stdout: rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits (up to 10 s) for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        wait_with_timeout(&mut self.child, Duration::from_secs(10)).expect("tracker did not exit")
    }
}

impl Drop for TrackerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child's stdout as a channel of lines, read by a thread of its own
/// (which ends with the child's stdout).
fn stdout_lines(out: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A test client speaking the tracker protocol from its own UDP socket.
pub struct Client {
    pub sock: UdpSocket,
    pub tracker: SocketAddr,
    pub conn: ConnId,
    tx: u32,
}

impl Client {
    /// A client that has done the handshake (not yet registered).
    pub fn connect(tracker: SocketAddr) -> Client {
        let bind = if tracker.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let sock = UdpSocket::bind(bind).unwrap();
        let mut c = Client {
            sock,
            tracker,
            conn: [0; 8],
            tx: 1,
        };
        c.handshake();
        c
    }

    pub fn handshake(&mut self) {
        match self.request(RequestBody::Connect {
            padding: [0; CONNECT_PADDING],
        }) {
            ReplyBody::Connected { conn, valid_secs } => {
                assert!(valid_secs >= 1);
                self.conn = conn;
            }
            other => panic!("connect: {other:?}"),
        }
    }

    /// Connects and registers as `name` serving on TCP `port`.
    pub fn registered(tracker: SocketAddr, name: &str, port: u16) -> Client {
        let mut c = Client::connect(tracker);
        let reply = c.request(RequestBody::Register {
            username: name.into(),
            port,
            role: Role::Seeder,
            secret: [0; 16],
        });
        assert!(matches!(reply, ReplyBody::Registered { .. }), "{reply:?}");
        c
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Encodes a request with this client's connection id.
    pub fn encode(&mut self, body: RequestBody) -> (u32, Vec<u8>) {
        self.tx += 1;
        let mut buf = Vec::new();
        encode_request(
            &Request {
                tx: self.tx,
                conn: self.conn,
                body,
            },
            &mut buf,
        )
        .unwrap();
        (self.tx, buf)
    }

    /// Sends raw bytes and returns the raw reply, if one comes within `wait`.
    pub fn send_raw(&self, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
        self.sock.send_to(bytes, self.tracker).unwrap();
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = vec![0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Sends a request and returns its reply, sending it again (same
    /// transaction id) when a datagram is lost: up to 4 tries, 500 ms each.
    pub fn request(&mut self, body: RequestBody) -> ReplyBody {
        let (tx, bytes) = self.encode(body);
        (0..4)
            .find_map(|_| {
                self.sock.send_to(&bytes, self.tracker).unwrap();
                self.await_reply(tx, Duration::from_millis(500))
            })
            .expect("no reply from tracker after 4 tries")
    }

    /// Sends a request once; `None` if no matching reply came within `wait`.
    pub fn try_request(&mut self, body: RequestBody, wait: Duration) -> Option<ReplyBody> {
        let (tx, bytes) = self.encode(body);
        self.sock.send_to(&bytes, self.tracker).unwrap();
        self.await_reply(tx, wait)
    }

    /// The reply with transaction id `tx`, if one comes within `wait`.
    fn await_reply(&mut self, tx: u32, wait: Duration) -> Option<ReplyBody> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 2048];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let (n, _) = self.sock.recv_from(&mut buf).ok()?;
            assert!(n <= pytorrent::wire::MAX_DATAGRAM, "reply of {n} bytes");
            let Reply { tx: got, body } = decode_reply(&buf[..n]).expect("tracker reply decodes");
            if got == tx {
                return Some(body);
            }
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop (kept when
/// `PYTORRENT_KEEP_TEMP` is set, to read the logs of a failed test).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pytorrent-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Creates (with parents) and returns the directory `rel` inside.
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let dir = self.path.join(rel);
        std::fs::create_dir_all(&dir).expect("create dir");
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("PYTORRENT_KEEP_TEMP").is_some() {
            eprintln!("keeping {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `len` pseudo-random bytes, the same for the same `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::seeded(seed);
    let mut out = vec![0u8; len];
    for word in out.chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        word.copy_from_slice(&bytes[..word.len()]);
    }
    out
}

/// Writes `len` pseudo-random bytes to `path`; returns them.
pub fn write_random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let bytes = random_bytes(len, seed);
    std::fs::write(path, &bytes).expect("write test file");
    bytes
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 of a file's contents, in hex.
pub fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex(&hasher.finalize())
}

/// A running `pytorrent` client.
pub struct ClientProc {
    pub name: String,
    pub child: Child,
    /// Its log file (`--log`).
    pub log: PathBuf,
    stdout_rx: mpsc::Receiver<String>,
    /// Stdout lines received so far.
    pub stdout: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: mpsc::Receiver<()>,
    status: Option<ExitStatus>,
}

impl ClientProc {
    /// Starts `pytorrent` with exactly `args`; `log` is only where
    /// [`ClientProc::log_text`] looks.
    pub fn spawn(name: &str, args: &[String], log: PathBuf) -> ClientProc {
        ClientProc::spawn_with(name, args, log, |_| {})
    }

    /// Like [`ClientProc::spawn`], with `tweak` applied to the command
    /// before it starts (for example a `pre_exec` that sets a limit).
    pub fn spawn_with(
        name: &str,
        args: &[String],
        log: PathBuf,
        tweak: impl FnOnce(&mut Command),
    ) -> ClientProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pytorrent"));
        cmd.args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("start pytorrent");
        let stdout_rx = stdout_lines(child.stdout.take().unwrap());
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
            let _ = done_tx.send(());
        });
        ClientProc {
            name: name.into(),
            child,
            log,
            stdout_rx,
            stdout: Vec::new(),
            stderr,
            stderr_done,
            status: None,
        }
    }

    /// Starts `pytorrent` with `args` plus an empty config file
    /// (`-c dir/NAME.conf`), `--log dir/NAME.log` and `-l 127.0.0.1:0`.
    pub fn start(dir: &TempDir, name: &str, args: &[String]) -> ClientProc {
        ClientProc::start_with(dir, name, args, |_| {})
    }

    /// Like [`ClientProc::start`], with `tweak` applied to the command.
    pub fn start_with(
        dir: &TempDir,
        name: &str,
        args: &[String],
        tweak: impl FnOnce(&mut Command),
    ) -> ClientProc {
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(&config, "").expect("write config");
        let log = dir.join(format!("{name}.log"));
        let mut all = args.to_vec();
        all.extend([
            "-c".into(),
            config.display().to_string(),
            "--log".into(),
            log.display().to_string(),
            "-l".into(),
            "127.0.0.1:0".into(),
        ]);
        ClientProc::spawn_with(name, &all, log, tweak)
    }

    /// Moves stdout lines that arrived into `self.stdout`; false once the
    /// process closed its stdout.
    fn pump(&mut self, wait: Duration) -> bool {
        match self.stdout_rx.recv_timeout(wait) {
            Ok(line) => {
                self.stdout.push(line);
                while let Ok(line) = self.stdout_rx.try_recv() {
                    self.stdout.push(line);
                }
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => true,
            Err(mpsc::RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Waits for a stdout line starting with `prefix` (seen before or new).
    pub fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        self.wait_line_from(0, prefix, limit)
    }

    /// Waits for a stdout line starting with `prefix`, among the lines
    /// from the `from`-th on (0 is the first line printed).
    pub fn wait_line_from(&mut self, from: usize, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.stdout.get(from..).unwrap_or_default();
            if let Some(line) = seen.iter().find(|l| l.starts_with(prefix)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let report = self.report();
                panic!(
                    "{}: no stdout line starting with {prefix:?} within {limit:?}\n{report}",
                    self.name
                );
            }
            if !self.pump(left.min(Duration::from_millis(100))) {
                // Stdout is closed: one last look, then give up.
                let seen = self.stdout.get(from..).unwrap_or_default();
                if let Some(line) = seen.iter().find(|l| l.starts_with(prefix)) {
                    return line.clone();
                }
                let status = self.try_status();
                let report = self.report();
                panic!(
                    "{}: stdout closed ({status:?}) without a line starting with {prefix:?}\n{report}",
                    self.name
                );
            }
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits for the process to exit (panics after `limit`), then collects
    /// the rest of its stdout and stderr.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let status = match self.status {
            Some(s) => s,
            None => match wait_with_timeout(&mut self.child, limit) {
                Some(s) => s,
                None => {
                    let report = self.report();
                    panic!("{}: still running after {limit:?}\n{report}", self.name)
                }
            },
        };
        self.status = Some(status);
        while self.pump(Duration::from_secs(2)) {}
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(2));
        status
    }

    /// Waits for the exit and returns its code (panics on a signal death).
    pub fn wait_code(&mut self, limit: Duration) -> i32 {
        let status = self.wait_exit(limit);
        match status.code() {
            Some(code) => code,
            None => {
                let report = self.report();
                panic!("{}: killed by a signal: {status:?}\n{report}", self.name)
            }
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, `TERM`, `INT`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "{}: kill -{signal} failed", self.name);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file so far (empty if not written yet).
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a log line satisfies `pred`; returns it.
    pub fn wait_log(&mut self, what: &str, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log_text().lines().find(|l| pred(l)) {
                return line.to_string();
            }
            if Instant::now() >= deadline {
                let report = self.report();
                panic!("{}: no log line {what} within {limit:?}\n{report}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until stderr (as lossy text) satisfies `pred`.
    pub fn wait_stderr(&mut self, what: &str, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let text = self.stderr_text();
            if pred(&text) {
                return text;
            }
            if Instant::now() >= deadline {
                let report = self.report();
                panic!("{}: stderr not {what} within {limit:?}\n{report}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr_bytes(&self) -> Vec<u8> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr_bytes()).into_owned()
    }

    /// What the process printed and logged, for failure messages.
    pub fn report(&mut self) -> String {
        while let Ok(line) = self.stdout_rx.try_recv() {
            self.stdout.push(line);
        }
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(60)..];
        format!(
            "--- {} stdout:\n{}\n--- stderr:\n{}\n--- log {} (last {} lines):\n{}\n---",
            self.name,
            self.stdout.join("\n"),
            self.stderr_text(),
            self.log.display(),
            tail.len(),
            tail.join("\n")
        )
    }
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Longest a seeder may take to index and announce.
pub const READY: Duration = Duration::from_secs(30);

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

/// A seeding client and the TCP address it printed.
pub struct Seeder {
    pub proc: ClientProc,
    pub addr: SocketAddr,
}

/// Starts `pytorrent --seed` as `name` sharing `shared` (64 KiB chunks) and
/// waits for its `seeding ...` line.
pub fn seed(tmp: &TempDir, tracker: SocketAddr, name: &str, shared: &Path, extra: &[&str]) -> Seeder {
    let downloads = tmp.mkdir(format!("{name}-downloads"));
    let mut a = args(&[
        "--seed",
        "-t",
        &tracker.to_string(),
        "-u",
        name,
        "--chunk-size-kib",
        "64",
    ]);
    a.extend(["-s".into(), s(shared), "-d".into(), s(&downloads)]);
    a.extend(args(extra));
    let mut proc = ClientProc::start(tmp, name, &a);
    let line = proc.wait_line("seeding ", READY);
    let addr = seeding_addr(&line);
    Seeder { proc, addr }
}

/// The TCP address in a `seeding N files as NAME on tcp ADDR (...)` line.
pub fn seeding_addr(line: &str) -> SocketAddr {
    line.split_whitespace()
        .skip_while(|w| *w != "tcp")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// A shared dir `NAME-shared` holding `files`.
pub fn shared_dir(tmp: &TempDir, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = tmp.mkdir(format!("{name}-shared"));
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

/// Chunk bytes a seeder's log says it sent, over all its connections.
pub fn served_bytes(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| {
            if let Some(rest) = l.split("finished serving ").nth(1) {
                rest.split(": ").nth(1)?.split(' ').next()?.parse::<u64>().ok()
            } else if let Some(rest) = l.split("stopped serving ").nth(1) {
                rest.split(" after ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            } else {
                None
            }
        })
        .sum()
}

/// Checks the `downloaded NAME (SIZE bytes) sha256 HEX -> PATH` line and
/// the file on disk against `original`.
pub fn check_downloaded(leecher: &mut ClientProc, dir: &Path, name: &str, original: &[u8], limit: Duration) {
    let line = leecher.wait_line(&format!("downloaded {name} ("), limit);
    let want = sha256_hex(original);
    assert!(
        line.contains(&format!("({} bytes) sha256 {want} -> ", original.len())),
        "{}: unexpected line {line:?}, want size {} and sha256 {want}",
        leecher.name,
        original.len()
    );
    let path = dir.join(name);
    assert!(
        line.ends_with(&s(&path)),
        "{line:?} does not end in {}",
        path.display()
    );
    assert_eq!(
        sha256_file(&path),
        want,
        "{} differs from the original",
        path.display()
    );
}

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;
/// Chunk size the test seeders use (`--chunk-size-kib 64`).
pub const CHUNK: usize = 64 * KIB;
/// Longest a download may take (they take a second or two).
pub const DOWNLOAD: Duration = Duration::from_secs(60);

/// Starts `pytorrent --get T...` as `name`; downloads land in `NAME-downloads`.
pub fn get(
    tmp: &TempDir,
    tracker: SocketAddr,
    name: &str,
    targets: &[&str],
    extra: &[&str],
) -> (ClientProc, PathBuf) {
    let downloads = tmp.mkdir(format!("{name}-downloads"));
    let mut a = args(&["-t", &tracker.to_string(), "-u", name]);
    a.extend(["-d".into(), s(&downloads)]);
    for t in targets {
        a.extend(["--get".into(), t.to_string()]);
    }
    a.extend(args(extra));
    (ClientProc::start(tmp, name, &a), downloads)
}

/// Chunks of the file [`interrupted_download`] leaves half done.
pub const INTERRUPTED_CHUNKS: usize = 256;

/// A leecher of `name` into `downloads`, as process `tag`.
pub fn leecher(tmp: &TempDir, tracker: &str, tag: &str, downloads: &Path, name: &str) -> ClientProc {
    let args: Vec<String> = [
        "--get",
        name,
        "-t",
        tracker,
        "-d",
        &s(downloads),
        "--peer-wait",
        "60",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    ClientProc::start(tmp, tag, &args)
}

/// A seeder of `name` ([`INTERRUPTED_CHUNKS`] chunks) whose last two
/// chunks change on disk after indexing, so a leecher verifies what comes
/// before them (chunks go out in random order: about half, most likely),
/// then drops it for bad data and waits for peers with its download
/// stuck part way. Returns the seeder and the file's true bytes.
pub fn corrupt_tail_seeder(t: &TrackerProc, tmp: &TempDir, name: &str) -> (Seeder, Vec<u8>) {
    const CHUNKS: usize = INTERRUPTED_CHUNKS;
    let data = random_bytes(CHUNKS * CHUNK, 31);
    let shared = shared_dir(tmp, "half", &[(name, &data)]);
    let half = seed(tmp, t.addr, "half", &shared, &[]);
    // Silently, as a failing disk would: same inode, size and modification
    // time, so the seeder's check cannot tell.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(shared.join(name))
        .unwrap();
    let mtime = f.metadata().unwrap().modified().unwrap();
    f.seek(SeekFrom::Start(((CHUNKS - 2) * CHUNK) as u64)).unwrap();
    f.write_all(&vec![0u8; 2 * CHUNK]).unwrap();
    f.set_modified(mtime).unwrap();
    f.sync_all().unwrap();
    (half, data)
}

/// Runs a leecher against a [`corrupt_tail_seeder`] of `film.bin` until
/// it waits for peers, having verified whatever came before; then kills it
/// (SIGKILL) and that seeder. The leecher downloads into `downloads`;
/// returns the file's bytes.
pub fn interrupted_download(t: &TrackerProc, tmp: &TempDir, downloads: &Path) -> Vec<u8> {
    let (mut half, data) = corrupt_tail_seeder(t, tmp, "film.bin");
    let mut first = leecher(tmp, &t.addr.to_string(), "first", downloads, "film.bin");
    // Dropped for bad data, nobody else: it records its progress and waits.
    first.wait_log("waiting for peers", |l| l.contains("waiting for peers"), DOWNLOAD);
    assert!(!records(downloads).is_empty(), "{}", first.report());
    first.signal("KILL");
    first.wait_exit(DOWNLOAD);
    half.proc.signal("KILL");
    half.proc.wait_exit(DOWNLOAD);
    data
}

/// The download working files (`.part`) and resume records (`.state`) a
/// client keeps under `<downloads>/.pytorrent/`.
pub fn working_files(downloads: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(downloads.join(".pytorrent")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The resume records among [`working_files`].
pub fn records(downloads: &Path) -> Vec<PathBuf> {
    working_files(downloads)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "state"))
        .collect()
}
