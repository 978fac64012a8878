//! Swarm transfer benchmark:
//! `cargo bench --bench swarm [-- --size-mib N --seeders N --runs N --warmup N --chunk-kib N --dir PATH --keep]`.
//!
//! 1. Builds the release binaries (`cargo build --release --bins`) and uses
//!    `target/release/pytorrent{,-tracker}`.
//! 2. Writes a file of `--size-mib` MiB of pseudo-random bytes (SplitMix64,
//!    fixed seed, 1 MiB at a time) and its SHA-256, and gives each of
//!    `--seeders` seeders its own shared directory holding a hard link to it
//!    (a copy where linking fails).
//! 3. Starts the tracker and the seeders (`--seed`, chunks of `--chunk-kib`
//!    KiB) as separate processes on 127.0.0.1 and waits for each one's
//!    `seeding ...` line.
//! 4. `--runs` times: starts one leecher (`--get NAME`) and measures the wall
//!    time from spawn to exit, its peak resident memory and its CPU time
//!    (`wait4` rusage); checks exit status 0 and the SHA-256 of the
//!    downloaded file, then deletes it.
//! 5. Prints each run, the medians against the targets, the bytes each seeder
//!    served per run (from the seeders' logs) and any warning or error lines
//!    the processes logged.
//!
//! Every wait has a time limit; the child processes are killed and the
//! working directory (a temporary one unless `--dir` is given; `--keep`
//! keeps it) is removed when the benchmark ends, fails, panics or gets
//! SIGINT/SIGTERM.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const MIB: u64 = 1 << 20;
/// How long one leecher run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the tracker may take to print its address.
const TRACKER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped process may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often waits look at the clock and the interrupt flag.
const TICK: Duration = Duration::from_millis(50);
/// Targets for 1 GiB from three seeders.
const TARGET_MB_S: f64 = 600.0;
const TARGET_RSS_MIB: f64 = 16.0;
const USAGE: &str = "usage: cargo bench --bench swarm [-- --size-mib N (1024) --seeders N (3) --runs N (3) \
                     --warmup N (1) --chunk-kib N (1024) --dir PATH (a temporary directory) --keep]";

struct Args {
    size_mib: u64,
    seeders: usize,
    runs: usize,
    /// Runs before the measured ones, shown but not counted: the first
    /// download on a fresh VM pays for memory the host has not backed yet.
    warmup: usize,
    chunk_kib: u64,
    dir: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        size_mib: 1024,
        seeders: 3,
        runs: 3,
        warmup: 1,
        chunk_kib: 1024,
        dir: None,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |min: u64, max: u64| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            v.parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{flag}: expected a whole number in {min}..={max}, found '{v}'"))
        };
        match flag.as_str() {
            // cargo bench passes this to every harness = false bench.
            "--bench" => {}
            "--size-mib" => a.size_mib = value(1, 1 << 20)?,
            "--seeders" => a.seeders = value(1, 64)? as usize,
            "--runs" => a.runs = value(1, 1000)? as usize,
            "--warmup" => a.warmup = value(0, 100)? as usize,
            "--chunk-kib" => a.chunk_kib = value(16, 65536)?,
            "--dir" => a.dir = Some(it.next().ok_or("--dir needs a value")?.into()),
            "--keep" => a.keep = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Set by SIGINT/SIGTERM: every wait gives up, and the guards clean up.
fn interrupted(stop: &AtomicBool) -> Result<(), String> {
    if stop.load(Ordering::Relaxed) {
        Err("interrupted by a signal".into())
    } else {
        Ok(())
    }
}

/// The working directory; removed on drop unless it was given or kept.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = fs::remove_dir_all(&self.path);
        } else {
            println!("swarm: files and logs left in {}", self.path.display());
        }
    }
}

/// A child process, killed and reaped on drop unless it already ended.
struct Proc {
    name: String,
    child: Child,
    /// Lines of its standard output, when piped.
    lines: Option<Receiver<String>>,
    /// Where its standard error goes.
    stderr: PathBuf,
    ended: bool,
}

impl Proc {
    fn spawn(
        name: &str,
        mut cmd: Command,
        stderr: PathBuf,
        pipe_stdout: bool,
        stdout: Option<&Path>,
    ) -> Result<Proc, String> {
        let err_file = File::create(&stderr).map_err(|e| format!("{}: {e}", stderr.display()))?;
        cmd.stdin(Stdio::null()).stderr(err_file);
        if pipe_stdout {
            cmd.stdout(Stdio::piped());
        } else if let Some(path) = stdout {
            cmd.stdout(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?);
        } else {
            cmd.stdout(Stdio::null());
        }
        let mut child = cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))?;
        let lines = child.stdout.take().map(|out| {
            let (tx, rx) = mpsc::channel();
            // Keeps draining after the receiver is gone, so the child never
            // blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
            rx
        });
        Ok(Proc {
            name: name.into(),
            child,
            lines,
            stderr,
            ended: false,
        })
    }

    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    fn stderr_text(&self) -> String {
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let text = text.trim();
        if text.is_empty() {
            "(nothing on stderr)".into()
        } else {
            tail(text, 20)
        }
    }

    /// Waits for a line of standard output starting with `prefix`.
    fn wait_line(&mut self, prefix: &str, deadline: Instant, stop: &AtomicBool) -> Result<String, String> {
        let rx = self.lines.as_ref().ok_or("stdout not piped")?;
        loop {
            interrupted(stop)?;
            match rx.recv_timeout(TICK) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{} printed no '{prefix}...' line in time; stderr:\n{}",
                        self.name,
                        self.stderr_text()
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Usually it has exited; give it a moment, never wait
                    // unbounded (the drop kills it if it lingers).
                    let mut status = "still running".to_string();
                    for _ in 0..40 {
                        if let Ok(Some(s)) = self.child.try_wait() {
                            status = s.to_string();
                            self.ended = true;
                            break;
                        }
                        std::thread::sleep(TICK);
                    }
                    return Err(format!(
                        "{} closed its stdout ({status}) before printing '{prefix}...'; stderr:\n{}",
                        self.name,
                        self.stderr_text()
                    ));
                }
            }
        }
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(&mut self, stop: &AtomicBool) -> Result<ExitStatus, String> {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                self.ended = true;
                return Ok(status);
            }
            if Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                return Err(format!(
                    "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How a leecher run ended.
struct Reaped {
    status: libc::c_int,
    usage: libc::rusage,
    at: Instant,
}

/// Waits for `p` to exit with `wait4`, for its rusage; kills it after
/// `timeout`.
fn wait_rusage(p: &mut Proc, timeout: Duration, stop: &AtomicBool) -> Result<Reaped, String> {
    let pid = p.pid();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status: libc::c_int = 0;
        // SAFETY: rusage is plain integers; wait4 fills it in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = loop {
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break r;
        };
        let at = Instant::now();
        let _ = tx.send((r == pid).then_some(Reaped { status, usage, at }));
    });
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_timeout(TICK) {
            Ok(reaped) => {
                p.ended = true;
                return reaped.ok_or_else(|| format!("wait4 on {} failed", p.name));
            }
            Err(RecvTimeoutError::Timeout) => {
                let why = if stop.load(Ordering::Relaxed) {
                    "interrupted by a signal".to_string()
                } else if Instant::now() > deadline {
                    format!("{} did not finish within {timeout:?}", p.name)
                } else {
                    continue;
                };
                let _ = p.child.kill();
                if rx.recv_timeout(STOP_TIMEOUT).is_ok() {
                    p.ended = true;
                }
                return Err(why);
            }
            Err(RecvTimeoutError::Disconnected) => return Err(format!("wait4 on {} failed", p.name)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes `size` bytes of SplitMix64 output to `path`; returns their SHA-256.
fn make_file(path: &Path, size: u64, stop: &AtomicBool) -> Result<String, String> {
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut out = File::create(path).map_err(shown)?;
    let mut rng = pytorrent::rand::Rng::seeded(0x5a4d_2026);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        interrupted(stop)?;
        for word in buf.chunks_exact_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        out.write_all(&buf[..n]).map_err(shown)?;
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    out.sync_all().map_err(shown)?;
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 and length of a file, read 1 MiB at a time.
fn hash_file(path: &Path) -> Result<(String, u64), String> {
    let shown = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = File::open(path).map_err(shown)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(shown)?;
        if n == 0 {
            return Ok((hex(&hasher.finalize()), len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Chunk bytes and connections in `finished serving ADDR: N chunk bytes
/// sent` / `stopped serving ADDR after N chunk bytes: WHY` log lines.
fn served(log: &str) -> (u64, usize) {
    let (mut bytes, mut conns) = (0, 0);
    for line in log.lines() {
        let Some(at) = line
            .find("finished serving ")
            .or_else(|| line.find("stopped serving "))
        else {
            continue;
        };
        let words: Vec<&str> = line[at..].split_whitespace().collect();
        if let Some(n) = words
            .windows(3)
            .find(|w| w[1] == "chunk" && w[2].starts_with("bytes"))
            .and_then(|w| w[0].parse::<u64>().ok())
        {
            bytes += n;
            conns += 1;
        }
    }
    (bytes, conns)
}

/// Lines at warning level or worse (env_logger format), and any line of a
/// stderr file.
fn problems(text: &str, stderr: bool) -> Vec<String> {
    text.lines()
        .filter(|l| stderr && !l.trim().is_empty() || l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_string)
        .collect()
}

/// Seconds since midnight UTC.
fn seconds_of_day(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
        .rem_euclid(86_400.0)
}

/// Seconds since midnight of an env_logger line (`[2026-11-25T07:44:13.327Z ...`).
fn log_seconds_of_day(line: &str) -> Option<f64> {
    let time = line.get(line.find('T')? + 1..line.find('Z')?)?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Where a leecher's wall time went, from its log: start-up until the
/// download started, the client's own timing of the transfer (which stops
/// before the last whole-file hashing and the fsync), and the rest until
/// the exit.
fn timeline(log: &str, spawned: f64, wall: f64) -> String {
    let at = |what: &str| {
        log.lines()
            .find(|l| l.contains(what))
            .and_then(|l| log_seconds_of_day(l).map(|t| (t - spawned).rem_euclid(86_400.0)))
    };
    let client = log
        .lines()
        .find_map(|l| l.split_once("download verified: ").map(|(_, rest)| rest))
        .and_then(|rest| rest.get(rest.find('(')? + 1..rest.find(')')?))
        .unwrap_or("no 'download verified' log line");
    match (at("download started: "), at("download verified: ")) {
        (Some(started), Some(verified)) => format!(
            "start-up {started:.3} s, client's timing ({client}), verified at {verified:.3} s, exit {:.3} s later",
            wall - verified
        ),
        _ => format!("client's timing: {client}"),
    }
}

fn machine_context() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let git = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        );
    format!(
        "nproc {nproc} ({cpu}), load average {}, git {git}",
        load.join(" ")
    )
}

fn build_release() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(&cargo)
        .args(["build", "--release", "--bins", "--manifest-path"])
        .arg(manifest.join("Cargo.toml"))
        .status()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !status.success() {
        return Err(format!("cargo build --release --bins failed ({status})"));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), PathBuf::from);
    let release = if target.is_absolute() {
        target.join("release")
    } else {
        manifest.join(target).join("release")
    };
    for bin in ["pytorrent", "pytorrent-tracker"] {
        if !release.join(bin).is_file() {
            return Err(format!("{} missing after the build", release.join(bin).display()));
        }
    }
    Ok(release)
}

fn create_dir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Removes `path` (file or directory) if it exists.
fn remove(path: &Path) -> Result<(), String> {
    let r = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    r.map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

struct RunResult {
    wall: f64,
    rss_mib: f64,
    user: f64,
    sys: f64,
}

fn secs(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("swarm: {e}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("swarm: cannot handle signal {sig}: {e}");
        }
    }
    // All guards live inside `run`, so they are dropped before the exit.
    if let Err(e) = run(&args, &stop) {
        eprintln!("swarm: FAILED: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args, stop: &AtomicBool) -> Result<(), String> {
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let context = machine_context();
    let release = build_release()?;
    let size = args.size_mib * MIB;
    let name = format!("swarm-{}MiB.bin", args.size_mib);

    // Declared first, so it is removed after every process is gone.
    let work = match &args.dir {
        Some(d) => WorkDir {
            path: d.clone(),
            remove: false,
        },
        None => WorkDir {
            path: std::env::temp_dir().join(format!("pytorrent-swarm-{}", std::process::id())),
            remove: !args.keep,
        },
    };
    let dir = work.path.clone();
    create_dir(&dir)?;
    println!("swarm: {context}");
    println!("swarm: command line: {command_line}");
    println!(
        "swarm: {} MiB file, {} seeders, chunks of {} KiB, {} runs, working directory {}",
        args.size_mib,
        args.seeders,
        args.chunk_kib,
        args.runs,
        dir.display()
    );

    let config = dir.join("empty-config.txt");
    fs::write(&config, "").map_err(|e| format!("{}: {e}", config.display()))?;
    let source_dir = dir.join("source");
    remove(&source_dir)?;
    create_dir(&source_dir)?;
    let source = source_dir.join(&name);
    let t = Instant::now();
    let sha = make_file(&source, size, stop)?;
    println!(
        "swarm: wrote {} in {:.1} s, sha256 {sha}",
        source.display(),
        t.elapsed().as_secs_f64()
    );

    let tracker_bin = release.join("pytorrent-tracker");
    let client_bin = release.join("pytorrent");
    let mut tracker_cmd = Command::new(&tracker_bin);
    tracker_cmd.args(["--bind", "127.0.0.1:0"]);
    let mut tracker = Proc::spawn("tracker", tracker_cmd, dir.join("tracker.log"), true, None)?;
    let banner = tracker.wait_line("pytorrent-tracker", Instant::now() + TRACKER_TIMEOUT, stop)?;
    let tracker_addr = banner
        .split_whitespace()
        .skip_while(|w| *w != "udp")
        .nth(1)
        .ok_or_else(|| format!("no address in the tracker's banner: {banner:?}"))?
        .to_string();

    // Seeders index at the same time; then each must announce.
    let t = Instant::now();
    let mut seeders = Vec::new();
    let mut seeder_logs = Vec::new();
    for i in 1..=args.seeders {
        let home = dir.join(format!("seeder{i}"));
        remove(&home)?;
        let shared = home.join("shared");
        create_dir(&shared)?;
        if fs::hard_link(&source, shared.join(&name)).is_err() {
            fs::copy(&source, shared.join(&name))
                .map_err(|e| format!("cannot copy the file for seeder{i}: {e}"))?;
        }
        let log = home.join("seeder.log");
        let mut cmd = Command::new(&client_bin);
        cmd.arg("--seed")
            .arg("-c")
            .arg(&config)
            .args(["-t", &tracker_addr, "-u", &format!("seeder{i}"), "-s"])
            .arg(&shared)
            .arg("-d")
            .arg(home.join("downloads"))
            .args([
                "-l",
                "127.0.0.1:0",
                "--chunk-size-kib",
                &args.chunk_kib.to_string(),
                "--log",
            ])
            .arg(&log);
        seeders.push(Proc::spawn(
            &format!("seeder{i}"),
            cmd,
            home.join("stderr.txt"),
            true,
            None,
        )?);
        seeder_logs.push(log);
    }
    // Indexing runs at roughly 1-2 GB/s per core; allow for a busy machine.
    let seed_deadline = Instant::now() + Duration::from_secs(60 + args.size_mib * args.seeders as u64 / 16);
    for s in &mut seeders {
        let line = s.wait_line("seeding ", seed_deadline, stop)?;
        println!("swarm: {}: {line}", s.name);
    }
    println!(
        "swarm: {} seeders ready {:.1} s after start",
        args.seeders,
        t.elapsed().as_secs_f64()
    );

    let leech_home = dir.join("leecher");
    remove(&leech_home)?;
    create_dir(&leech_home)?;
    let mut results = Vec::new();
    // Where each run starts in each seeder's log.
    let mut log_starts: Vec<Vec<u64>> = Vec::new();
    let mut leecher_logs = Vec::new();
    for run in 1..=args.warmup + args.runs {
        interrupted(stop)?;
        log_starts.push(
            seeder_logs
                .iter()
                .map(|l| fs::metadata(l).map_or(0, |m| m.len()))
                .collect(),
        );
        let downloads = leech_home.join("downloads");
        remove(&downloads)?;
        create_dir(&downloads)?;
        let log = leech_home.join(format!("run{run}.log"));
        let out = leech_home.join(format!("run{run}.stdout"));
        let mut cmd = Command::new(&client_bin);
        cmd.args(["--get", &name, "-c"])
            .arg(&config)
            .args(["-t", &tracker_addr, "-d"])
            .arg(&downloads)
            .args(["-l", "127.0.0.1:0", "--log"])
            .arg(&log);
        let start = Instant::now();
        let start_clock = seconds_of_day(SystemTime::now());
        let mut leecher = Proc::spawn(
            &format!("leecher (run {run})"),
            cmd,
            leech_home.join(format!("run{run}.stderr")),
            false,
            Some(&out),
        )?;
        let reaped = wait_rusage(&mut leecher, RUN_TIMEOUT, stop)?;
        let wall = reaped.at.duration_since(start).as_secs_f64();
        leecher_logs.push(log.clone());
        let stdout = fs::read_to_string(&out).unwrap_or_default();
        let exited_ok = libc::WIFEXITED(reaped.status) && libc::WEXITSTATUS(reaped.status) == 0;
        if !exited_ok {
            let how = if libc::WIFEXITED(reaped.status) {
                format!("exit status {}", libc::WEXITSTATUS(reaped.status))
            } else {
                format!("signal {}", libc::WTERMSIG(reaped.status))
            };
            return Err(format!(
                "run {run}: the leecher ended with {how} after {wall:.2} s\nstdout:\n{}\nstderr:\n{}\nlog ({}):\n{}",
                tail(&stdout, 20),
                leecher.stderr_text(),
                log.display(),
                tail(&fs::read_to_string(&log).unwrap_or_default(), 30)
            ));
        }
        let line = stdout
            .lines()
            .find(|l| l.starts_with("downloaded "))
            .ok_or_else(|| {
                format!("run {run}: the leecher exited 0 without a 'downloaded' line; stdout:\n{stdout}")
            })?;
        if !line.contains(&format!("sha256 {sha}")) || !line.contains(&format!("({size} bytes)")) {
            return Err(format!(
                "run {run}: the leecher reports another file: {line:?} (expected {size} bytes, sha256 {sha})"
            ));
        }
        let path = downloads.join(&name);
        let (got, len) = hash_file(&path)?;
        if got != sha || len != size {
            return Err(format!(
                "run {run}: {} has {len} bytes with sha256 {got}; the original has {size} bytes with sha256 {sha}",
                path.display()
            ));
        }
        let u = reaped.usage;
        let r = RunResult {
            wall,
            rss_mib: u.ru_maxrss as f64 / 1024.0,
            user: secs(u.ru_utime),
            sys: secs(u.ru_stime),
        };
        let timeline = timeline(&fs::read_to_string(&log).unwrap_or_default(), start_clock, wall);
        let label = if run <= args.warmup {
            " (warm-up, not counted)"
        } else {
            ""
        };
        println!(
            "run {run}{label}: {:.3} s, {:.1} MB/s, peak RSS {:.1} MiB, CPU {:.2} s (user {:.2} + sys {:.2}); sha256 ok; {timeline}",
            r.wall,
            size as f64 / r.wall / 1e6,
            r.rss_mib,
            r.user + r.sys,
            r.user,
            r.sys
        );
        if run > args.warmup {
            results.push(r);
        }
        remove(&downloads)?;
    }

    // Stop the seeders (their logs are then complete) and the tracker.
    let mut seeder_rss = Vec::new();
    let mut stop_problems = Vec::new();
    for s in &mut seeders {
        seeder_rss.push(s.peak_rss_kib());
        match s.terminate(stop) {
            Ok(status) if status.success() => {}
            Ok(status) => stop_problems.push(format!("{} exited with {status} after SIGTERM", s.name)),
            Err(e) => stop_problems.push(e),
        }
    }
    match tracker.terminate(stop) {
        Ok(status) if status.success() => {}
        Ok(status) => stop_problems.push(format!("the tracker exited with {status} after SIGTERM")),
        Err(e) => stop_problems.push(e),
    }

    println!("served chunk bytes per seeder (from the seeders' logs; MiB, connections):");
    let logs: Vec<String> = seeder_logs
        .iter()
        .map(|l| fs::read_to_string(l).unwrap_or_default())
        .collect();
    for run in 0..log_starts.len() {
        let mut parts = Vec::new();
        let mut total = 0;
        for (i, text) in logs.iter().enumerate() {
            let from = (log_starts[run][i] as usize).min(text.len());
            let to = log_starts
                .get(run + 1)
                .map_or(text.len(), |s| (s[i] as usize).min(text.len()));
            let (bytes, conns) = served(text.get(from..to).unwrap_or(""));
            total += bytes;
            parts.push(format!(
                "seeder{} {:.1} ({conns})",
                i + 1,
                bytes as f64 / MIB as f64
            ));
        }
        println!(
            "  run {}: {}; total {:.1} MiB of {} MiB",
            run + 1,
            parts.join(", "),
            total as f64 / MIB as f64,
            args.size_mib
        );
    }
    let rss: Vec<String> = seeder_rss
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!(
                "seeder{} {}",
                i + 1,
                r.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
            )
        })
        .collect();
    println!("seeders' peak RSS (MiB): {}", rss.join(", "));

    // Anything the processes complained about.
    let mut files: Vec<(PathBuf, bool)> = vec![(tracker.stderr.clone(), false)];
    for (s, l) in seeders.iter().zip(&seeder_logs) {
        files.push((l.clone(), false));
        files.push((s.stderr.clone(), true));
    }
    for (run, l) in leecher_logs.iter().enumerate() {
        files.push((l.clone(), false));
        files.push((leech_home.join(format!("run{}.stderr", run + 1)), true));
    }
    let mut any = !stop_problems.is_empty();
    for p in &stop_problems {
        println!("problem: {p}");
    }
    for (path, is_stderr) in &files {
        let found = problems(&fs::read_to_string(path).unwrap_or_default(), *is_stderr);
        if found.is_empty() {
            continue;
        }
        any = true;
        println!(
            "problem: {} has {} warning/error lines, first ones:",
            path.strip_prefix(&dir).unwrap_or(path).display(),
            found.len()
        );
        for l in found.iter().take(5) {
            println!("    {l}");
        }
    }
    if !any {
        println!("no warnings or errors in the logs");
    }

    let mb_s = median(results.iter().map(|r| size as f64 / r.wall / 1e6).collect());
    let wall = median(results.iter().map(|r| r.wall).collect());
    let rss = median(results.iter().map(|r| r.rss_mib).collect());
    let cpu = median(results.iter().map(|r| r.user + r.sys).collect());
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let standard = args.size_mib == 1024 && args.seeders == 3;
    println!(
        "swarm: median of {} runs: {wall:.3} s, {mb_s:.1} MB/s [{}], peak RSS {rss:.1} MiB [{} target < {TARGET_RSS_MIB} MiB], CPU {cpu:.2} s",
        results.len(),
        if standard {
            format!("{} target >= {TARGET_MB_S} MB/s", verdict(mb_s >= TARGET_MB_S))
        } else {
            format!("target >= {TARGET_MB_S} MB/s is for 1024 MiB from 3 seeders")
        },
        verdict(rss < TARGET_RSS_MIB)
    );
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "swarm: load average at the end {} (figures on a busy machine are low)",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    drop(seeders);
    drop(tracker);
    drop(work);
    Ok(())
}
