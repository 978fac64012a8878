//! Swarm transfer benchmark:
//! `cargo bench --bench swarm [-- --size-mib N --seeders N --runs N --warmup N --chunk-kib N --swarm N --dir PATH --keep]`.
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
//! `--swarm N` measures swarming instead: one seeder (`--seeders` is forced
//! to 1) and, per run, N leechers spawned back to back, each with its own
//! downloads directory and log. A run lasts until every leecher has exited
//! (each must exit 0 with the right SHA-256); it prints the all-finished wall
//! time, the aggregate rate (N x size / wall), the bytes the seeder uploaded
//! (also as copies of the file) and each leecher uploaded (from the
//! `finished serving` / `stopped serving` lines of each one's own log), the
//! largest peak RSS and CPU time among the leechers, and which peers each
//! leecher fetched from; then the medians.
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
                     --warmup N (1) --chunk-kib N (1024) --swarm N (off: one leecher at a time) \
                     --dir PATH (a temporary directory) --keep]";

struct Args {
    size_mib: u64,
    seeders: usize,
    /// Whether `--seeders` was given (swarm mode says it overrides it).
    seeders_given: bool,
    runs: usize,
    /// Runs before the measured ones, shown but not counted: the first
    /// download on a fresh VM pays for memory the host has not backed yet.
    warmup: usize,
    chunk_kib: u64,
    /// `--swarm N`: N leechers at once from one seeder.
    swarm: Option<usize>,
    dir: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        size_mib: 1024,
        seeders: 3,
        seeders_given: false,
        runs: 3,
        warmup: 1,
        chunk_kib: 1024,
        swarm: None,
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
            "--seeders" => {
                a.seeders = value(1, 64)? as usize;
                a.seeders_given = true;
            }
            "--runs" => a.runs = value(1, 1000)? as usize,
            "--warmup" => a.warmup = value(0, 100)? as usize,
            "--chunk-kib" => a.chunk_kib = value(16, 65536)?,
            "--swarm" => a.swarm = Some(value(1, 64)? as usize),
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
    let mut all = wait_all(std::slice::from_mut(p), timeout, stop)?;
    all.pop().ok_or_else(|| "nothing reaped".into())
}

/// Waits for every process in `ps` to exit with `wait4` (one thread each),
/// for their rusage and exit times; kills those still running after
/// `timeout` or on a signal.
fn wait_all(ps: &mut [Proc], timeout: Duration, stop: &AtomicBool) -> Result<Vec<Reaped>, String> {
    let (tx, rx) = mpsc::channel();
    for (i, p) in ps.iter().enumerate() {
        let pid = p.pid();
        let tx = tx.clone();
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
            let _ = tx.send((i, (r == pid).then_some(Reaped { status, usage, at })));
        });
    }
    drop(tx);
    let mut got: Vec<Option<Reaped>> = ps.iter().map(|_| None).collect();
    let mut left = ps.len();
    let deadline = Instant::now() + timeout;
    while left > 0 {
        match rx.recv_timeout(TICK) {
            Ok((i, reaped)) => {
                ps[i].ended = true;
                left -= 1;
                got[i] = Some(reaped.ok_or_else(|| format!("wait4 on {} failed", ps[i].name))?);
            }
            Err(RecvTimeoutError::Timeout) => {
                let why = if stop.load(Ordering::Relaxed) {
                    "interrupted by a signal".to_string()
                } else if Instant::now() > deadline {
                    let late: Vec<&str> = ps
                        .iter()
                        .zip(&got)
                        .filter(|(_, g)| g.is_none())
                        .map(|(p, _)| p.name.as_str())
                        .collect();
                    format!("{} did not finish within {timeout:?}", late.join(", "))
                } else {
                    continue;
                };
                for (p, g) in ps.iter_mut().zip(&got) {
                    if g.is_none() {
                        let _ = p.child.kill();
                    }
                }
                let until = Instant::now() + STOP_TIMEOUT;
                while left > 0 {
                    match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok((i, _)) => {
                            ps[i].ended = true;
                            left -= 1;
                        }
                        Err(_) => break,
                    }
                }
                return Err(why);
            }
            Err(RecvTimeoutError::Disconnected) => return Err("wait4 failed".into()),
        }
    }
    Ok(got.into_iter().flatten().collect())
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

/// `n` and `word`, plural unless `n` is 1.
fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
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
    let n_seeders = if args.swarm.is_some() { 1 } else { args.seeders };
    if args.swarm.is_some() && args.seeders_given && args.seeders != 1 {
        println!(
            "swarm: --swarm uses one seeder: --seeders {} ignored",
            args.seeders
        );
    }
    let leechers = match args.swarm {
        Some(n) => format!("{n} leechers at once per run"),
        None => "one leecher per run".into(),
    };
    println!(
        "swarm: {} MiB file, {}, {leechers}, chunks of {} KiB, {} runs + {} warm-up, working directory {}",
        args.size_mib,
        count(n_seeders, "seeder"),
        args.chunk_kib,
        args.runs,
        args.warmup,
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
    for i in 1..=n_seeders {
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
    let seed_deadline = Instant::now() + Duration::from_secs(60 + args.size_mib * n_seeders as u64 / 16);
    let mut seeder_addrs = Vec::new();
    for s in &mut seeders {
        let line = s.wait_line("seeding ", seed_deadline, stop)?;
        println!("swarm: {}: {line}", s.name);
        seeder_addrs.push(
            line.split_whitespace()
                .skip_while(|w| *w != "tcp")
                .nth(1)
                .unwrap_or("?")
                .to_string(),
        );
    }
    println!(
        "swarm: {} ready {:.1} s after start",
        count(n_seeders, "seeder"),
        t.elapsed().as_secs_f64()
    );

    let su = Setup {
        args,
        client: client_bin,
        config,
        tracker: tracker_addr,
        name,
        sha,
        size,
        dir: dir.clone(),
        seeder_logs: seeder_logs.clone(),
        seeder_addrs,
    };
    // The leechers' logs and stderr files, for the problem report.
    let mut leecher_files = Vec::new();
    let outcome = match args.swarm {
        None => Outcome::Single(single_runs(&su, &mut leecher_files, stop)?),
        Some(n) => Outcome::Swarm(swarm_runs(&su, n, &mut leecher_files, stop)?),
    };

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

    if let Outcome::Single(single) = &outcome {
        print_served(&seeder_logs, &single.log_starts, args.size_mib);
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
    files.extend(leecher_files);
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

    match outcome {
        Outcome::Single(single) => print_single_medians(args, size, &single.results),
        Outcome::Swarm(runs) => print_swarm_medians(args, &runs),
    }
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

/// What the leecher runs need.
struct Setup<'a> {
    args: &'a Args,
    client: PathBuf,
    config: PathBuf,
    tracker: String,
    name: String,
    sha: String,
    size: u64,
    dir: PathBuf,
    seeder_logs: Vec<PathBuf>,
    /// The seeders' TCP addresses, from their `seeding ...` lines.
    seeder_addrs: Vec<String>,
}

enum Outcome {
    Single(Single),
    Swarm(Vec<SwarmRun>),
}

/// The measured runs of the one-leecher mode, and where every run
/// (warm-ups too) starts in each seeder's log.
struct Single {
    results: Vec<RunResult>,
    log_starts: Vec<Vec<u64>>,
}

/// One leecher process and its files.
struct Leecher {
    proc: Proc,
    downloads: PathBuf,
    log: PathBuf,
    out: PathBuf,
}

/// Starts a leecher (`--get`) whose files go in `home`: `downloads/`, an
/// empty `shared/`, `log.txt`, `stdout.txt`, `stderr.txt`.
fn spawn_leecher(su: &Setup, label: &str, home: &Path) -> Result<Leecher, String> {
    let downloads = home.join("downloads");
    let shared = home.join("shared");
    let log = home.join("log.txt");
    let out = home.join("stdout.txt");
    let mut cmd = Command::new(&su.client);
    cmd.args(["--get", &su.name, "-c"])
        .arg(&su.config)
        .args(["-t", &su.tracker, "-s"])
        .arg(&shared)
        .arg("-d")
        .arg(&downloads)
        .args(["-l", "127.0.0.1:0", "--log"])
        .arg(&log);
    let proc = Proc::spawn(label, cmd, home.join("stderr.txt"), false, Some(&out))?;
    Ok(Leecher {
        proc,
        downloads,
        log,
        out,
    })
}

/// A fresh home for a leecher: its old files removed, `downloads/` and
/// `shared/` created.
fn leecher_home(home: &Path) -> Result<(), String> {
    remove(home)?;
    create_dir(&home.join("downloads"))?;
    create_dir(&home.join("shared"))
}

/// Checks how leecher `l` ended: exit status 0, its `downloaded` line, and
/// the SHA-256 and length of the file it wrote.
fn check_download(su: &Setup, l: &Leecher, reaped: &Reaped, wall: f64) -> Result<(), String> {
    let stdout = fs::read_to_string(&l.out).unwrap_or_default();
    let exited_ok = libc::WIFEXITED(reaped.status) && libc::WEXITSTATUS(reaped.status) == 0;
    let who = &l.proc.name;
    if !exited_ok {
        let how = if libc::WIFEXITED(reaped.status) {
            format!("exit status {}", libc::WEXITSTATUS(reaped.status))
        } else {
            format!("signal {}", libc::WTERMSIG(reaped.status))
        };
        return Err(format!(
            "{who} ended with {how} after {wall:.2} s\nstdout:\n{}\nstderr:\n{}\nlog ({}):\n{}",
            tail(&stdout, 20),
            l.proc.stderr_text(),
            l.log.display(),
            tail(&fs::read_to_string(&l.log).unwrap_or_default(), 30)
        ));
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("downloaded "))
        .ok_or_else(|| format!("{who} exited 0 without a 'downloaded' line; stdout:\n{stdout}"))?;
    let (sha, size) = (&su.sha, su.size);
    if !line.contains(&format!("sha256 {sha}")) || !line.contains(&format!("({size} bytes)")) {
        return Err(format!(
            "{who} reports another file: {line:?} (expected {size} bytes, sha256 {sha})"
        ));
    }
    let path = l.downloads.join(&su.name);
    let (got, len) = hash_file(&path)?;
    if got != *sha || len != size {
        return Err(format!(
            "{who}: {} has {len} bytes with sha256 {got}; the original has {size} bytes with sha256 {sha}",
            path.display()
        ));
    }
    Ok(())
}

/// Where each seeder's log ends now.
fn log_ends(logs: &[PathBuf]) -> Vec<u64> {
    logs.iter()
        .map(|l| fs::metadata(l).map_or(0, |m| m.len()))
        .collect()
}

/// The default mode: one leecher per run.
fn single_runs(su: &Setup, files: &mut Vec<(PathBuf, bool)>, stop: &AtomicBool) -> Result<Single, String> {
    let args = su.args;
    let size = su.size;
    let leech_home = su.dir.join("leecher");
    remove(&leech_home)?;
    let mut results = Vec::new();
    let mut log_starts: Vec<Vec<u64>> = Vec::new();
    for run in 1..=args.warmup + args.runs {
        interrupted(stop)?;
        log_starts.push(log_ends(&su.seeder_logs));
        let home = leech_home.join(format!("run{run}"));
        leecher_home(&home)?;
        let start = Instant::now();
        let start_clock = seconds_of_day(SystemTime::now());
        let mut l = spawn_leecher(su, &format!("the leecher (run {run})"), &home)?;
        files.push((l.log.clone(), false));
        files.push((l.proc.stderr.clone(), true));
        let reaped = wait_rusage(&mut l.proc, RUN_TIMEOUT, stop)?;
        let wall = reaped.at.duration_since(start).as_secs_f64();
        check_download(su, &l, &reaped, wall).map_err(|e| format!("run {run}: {e}"))?;
        let u = reaped.usage;
        let r = RunResult {
            wall,
            rss_mib: u.ru_maxrss as f64 / 1024.0,
            user: secs(u.ru_utime),
            sys: secs(u.ru_stime),
        };
        let timeline = timeline(&fs::read_to_string(&l.log).unwrap_or_default(), start_clock, wall);
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
        remove(&l.downloads)?;
    }
    Ok(Single { results, log_starts })
}

/// The chunk bytes each seeder served in each run (from their logs).
fn print_served(seeder_logs: &[PathBuf], log_starts: &[Vec<u64>], size_mib: u64) {
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
            "  run {}: {}; total {:.1} MiB of {size_mib} MiB",
            run + 1,
            parts.join(", "),
            total as f64 / MIB as f64,
        );
    }
}

fn print_single_medians(args: &Args, size: u64, results: &[RunResult]) {
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
}

/// One run of the swarm mode.
struct SwarmRun {
    /// From the first spawn until the last leecher exited.
    wall: f64,
    /// Chunk bytes the seeder served in the run.
    seeder_bytes: u64,
    /// The largest peak RSS (MiB) and CPU seconds among the leechers.
    max_rss_mib: f64,
    max_cpu: f64,
    counted: bool,
}

/// The TCP port process `pid` listens on (its first listening socket in
/// /proc/net/tcp), if it has one yet.
fn listen_port(pid: libc::pid_t) -> Option<u16> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 the inode.
        if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
            u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()
        } else {
            None
        }
    })
}

/// The peer addresses a leecher connected to (`peer used for NAME: ADDR`
/// lines), in order, repeats included.
fn peers_used(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("peer used for "))
        .filter_map(|l| l.rsplit(": ").next())
        .map(|a| a.trim().to_string())
        .collect()
}

/// Swarm mode: `n` leechers at once per run, from one seeder.
fn swarm_runs(
    su: &Setup,
    n: usize,
    files: &mut Vec<(PathBuf, bool)>,
    stop: &AtomicBool,
) -> Result<Vec<SwarmRun>, String> {
    let args = su.args;
    let size = su.size;
    let mib = |b: u64| b as f64 / MIB as f64;
    let seeder_addr = su.seeder_addrs.first().cloned().unwrap_or_default();
    let seeder_log = su.seeder_logs.first().ok_or("no seeder")?;
    let swarm_home = su.dir.join("swarm");
    remove(&swarm_home)?;
    let mut runs = Vec::new();
    for run in 1..=args.warmup + args.runs {
        interrupted(stop)?;
        let homes: Vec<PathBuf> = (1..=n)
            .map(|i| swarm_home.join(format!("run{run}")).join(format!("leecher{i}")))
            .collect();
        for h in &homes {
            leecher_home(h)?;
        }
        let log_start = log_ends(std::slice::from_ref(seeder_log))[0];
        let start = Instant::now();
        let start_clock = seconds_of_day(SystemTime::now());
        let mut leechers = Vec::new();
        for (i, h) in homes.iter().enumerate() {
            leechers.push(spawn_leecher(su, &format!("leecher{} (run {run})", i + 1), h)?);
        }
        for l in &leechers {
            files.push((l.log.clone(), false));
            files.push((l.proc.stderr.clone(), true));
        }
        // Each leecher's listening port, to tell which leecher served whom.
        let mut ports: Vec<Option<u16>> = vec![None; n];
        let deadline = Instant::now() + Duration::from_secs(5);
        while ports.iter().any(Option::is_none) && Instant::now() < deadline {
            for (p, l) in ports.iter_mut().zip(&leechers) {
                if p.is_none() {
                    *p = listen_port(l.proc.pid());
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut procs: Vec<Proc> = Vec::new();
        let mut rest = Vec::new();
        for l in leechers {
            let Leecher {
                proc,
                downloads,
                log,
                out,
            } = l;
            procs.push(proc);
            rest.push((downloads, log, out));
        }
        let reaped = wait_all(&mut procs, RUN_TIMEOUT, stop)?;
        let leechers: Vec<Leecher> = procs
            .into_iter()
            .zip(rest)
            .map(|(proc, (downloads, log, out))| Leecher {
                proc,
                downloads,
                log,
                out,
            })
            .collect();
        let walls: Vec<f64> = reaped
            .iter()
            .map(|r| r.at.duration_since(start).as_secs_f64())
            .collect();
        let wall = walls.iter().copied().fold(0.0, f64::max);
        for ((l, r), w) in leechers.iter().zip(&reaped).zip(&walls) {
            check_download(su, l, r, *w).map_err(|e| format!("run {run}: {e}"))?;
        }
        let logs: Vec<String> = leechers
            .iter()
            .map(|l| fs::read_to_string(&l.log).unwrap_or_default())
            .collect();
        let used: Vec<Vec<String>> = logs.iter().map(|t| peers_used(t)).collect();
        let addr_of = |j: usize| ports[j].map(|p| format!("127.0.0.1:{p}"));
        let name_of = |a: &str| {
            if a == seeder_addr {
                "seeder".to_string()
            } else if let Some(j) = (0..n).find(|&j| addr_of(j).as_deref() == Some(a)) {
                format!("leecher{}", j + 1)
            } else {
                a.to_string()
            }
        };
        let connections_to = |a: &str| used.iter().flatten().filter(|u| u.as_str() == a).count();
        // The seeder logs a connection when it sees it close, just after the
        // leecher's exit: wait (bounded) for all of them.
        let seeder_expected = connections_to(&seeder_addr);
        let settle = Instant::now() + Duration::from_secs(5);
        let (seeder_bytes, seeder_conns) = loop {
            let text = fs::read_to_string(seeder_log).unwrap_or_default();
            let got = served(text.get(log_start as usize..).unwrap_or(""));
            if got.1 >= seeder_expected || Instant::now() > settle {
                break got;
            }
            std::thread::sleep(TICK);
        };
        let label = if run <= args.warmup {
            " (warm-up, not counted)"
        } else {
            ""
        };
        let mut lines = Vec::new();
        let mut leecher_total = 0;
        let (mut max_rss, mut max_cpu) = (0.0f64, 0.0f64);
        for (i, ((text, r), w)) in logs.iter().zip(&reaped).zip(&walls).enumerate() {
            let (bytes, conns) = served(text);
            leecher_total += bytes;
            let expected = addr_of(i).map(|a| connections_to(&a));
            let u = r.usage;
            let rss = u.ru_maxrss as f64 / 1024.0;
            let cpu = secs(u.ru_utime) + secs(u.ru_stime);
            max_rss = max_rss.max(rss);
            max_cpu = max_cpu.max(cpu);
            let mut from: Vec<String> = Vec::new();
            for a in &used[i] {
                let who = name_of(a);
                if !from.contains(&who) {
                    from.push(who);
                }
            }
            let logged = match expected {
                Some(e) if e == conns => count(conns, "connection"),
                Some(e) => format!("{conns} of the {} made to it logged", count(e, "connection")),
                None => format!("{}; its port was not found", count(conns, "connection")),
            };
            lines.push(format!(
                "  leecher{}: {w:.3} s, uploaded {:.1} MiB ({logged}), fetched from {} ({}), peak RSS {rss:.1} MiB, CPU {cpu:.2} s; {}",
                i + 1,
                mib(bytes),
                if from.is_empty() { "nobody".into() } else { from.join(", ") },
                count(used[i].len(), "connection"),
                timeline(text, start_clock, *w)
            ));
        }
        let sorted_walls = {
            let mut v = walls.clone();
            v.sort_by(f64::total_cmp);
            v.iter()
                .map(|w| format!("{w:.2}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "run {run}{label}: all {n} finished in {wall:.3} s (exits at {sorted_walls} s), aggregate {:.1} MB/s; \
             seeder uploaded {:.1} MiB = {:.2} copies ({}{}); leechers uploaded {:.1} MiB; \
             max peak RSS {max_rss:.1} MiB, max CPU {max_cpu:.2} s; sha256 ok x{n}",
            n as f64 * size as f64 / wall / 1e6,
            mib(seeder_bytes),
            seeder_bytes as f64 / size as f64,
            count(seeder_conns, "connection"),
            if seeder_conns == seeder_expected {
                String::new()
            } else {
                format!(" logged of {seeder_expected} made to it")
            },
            mib(leecher_total),
        );
        for l in &lines {
            println!("{l}");
        }
        let total = seeder_bytes + leecher_total;
        let needed = n as u64 * size;
        if total != needed {
            println!(
                "  uploads logged: {:.1} MiB for {n} x {} MiB downloaded ({:+.1} MiB: {})",
                mib(total),
                args.size_mib,
                (total as f64 - needed as f64) / MIB as f64,
                if total > needed {
                    "chunks sent twice, or not used"
                } else {
                    "bytes received that no log accounts for"
                }
            );
        }
        runs.push(SwarmRun {
            wall,
            seeder_bytes,
            max_rss_mib: max_rss,
            max_cpu,
            counted: run > args.warmup,
        });
        for l in &leechers {
            remove(&l.downloads)?;
        }
    }
    Ok(runs)
}

fn print_swarm_medians(args: &Args, runs: &[SwarmRun]) {
    let n = args.swarm.unwrap_or(1);
    let size = args.size_mib * MIB;
    let counted: Vec<&SwarmRun> = runs.iter().filter(|r| r.counted).collect();
    let m = |f: &dyn Fn(&SwarmRun) -> f64| median(counted.iter().map(|r| f(r)).collect());
    println!(
        "swarm: median of {} runs, {n} leechers x {} MiB from one seeder: all finished in {:.3} s, aggregate {:.1} MB/s, \
         seeder uploaded {:.2} copies; largest leecher peak RSS {:.1} MiB, largest leecher CPU {:.2} s",
        counted.len(),
        args.size_mib,
        m(&|r| r.wall),
        m(&|r| n as f64 * size as f64 / r.wall / 1e6),
        m(&|r| r.seeder_bytes as f64 / size as f64),
        m(&|r| r.max_rss_mib),
        m(&|r| r.max_cpu),
    );
}
