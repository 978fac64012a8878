//! Rate-limit benchmark: `cargo bench --bench rate_limit [-- --rate-kib N --size-mib N --runs N]`.
//!
//! Starts a tracker and an unlimited seeder of a file of `--size-mib` MiB
//! (pseudo-random bytes) on 127.0.0.1, then, `--runs` times each:
//! 1. a leecher with `--max-download-rate` of `--rate-kib` KiB/s (from
//!    both seeders);
//! 2. once the unlimited seeder has left, a leecher of a second seeder that
//!    has `--max-upload-rate` of the same;
//! 3. the same as 2 over BitTorrent (the seeder also offers the file as a
//!    v2 torrent; the leecher gets it by its magnet link).
//!
//! Each run's rate is the file's size over the leecher's wall time from
//! spawn to exit (so start-up counts against it, and the bucket's one
//! 16 KiB+ burst for it); it prints each run, the median, and the median's
//! distance from the limit (target: within 5%). Every download is checked
//! against the original's SHA-256. Children are killed when it ends.

use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(300);

/// A child killed on drop.
struct Proc(Child, mpsc::Receiver<String>);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn start(bin: &str, args: &[String], cwd: &Path) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc(child, rx)
    }

    /// The first stdout line starting with `prefix`.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.1.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line {prefix:?}"),
            }
        }
    }
}

fn word_after(line: &str, word: &str) -> String {
    let mut words = line.split_whitespace().skip_while(|w| *w != word);
    words
        .nth(1)
        .unwrap_or_else(|| panic!("no {word} in {line}"))
        .to_string()
}

fn arg(args: &[String], flag: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{flag} {v}")))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate_kib = arg(&args, "--rate-kib", 2048);
    let size_mib = arg(&args, "--size-mib", 8);
    let runs = arg(&args, "--runs", 3).max(1);
    let (client, tracker) = (
        env!("CARGO_BIN_EXE_pytorrent"),
        env!("CARGO_BIN_EXE_pytorrent-tracker"),
    );
    let dir = std::env::temp_dir().join(format!("pytorrent-rate-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mkdir = |name: &str| -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let shared = mkdir("shared");
    let mut x = 0x9e3779b97f4a7c15u64;
    let data: Vec<u8> = (0..size_mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(shared.join("bench.bin"), &data).unwrap();
    let sha: String = Sha256::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
    let s = |v: &str| v.to_string();
    let t = Proc::start(tracker, &[s("--bind"), s("127.0.0.1:0"), s("--quiet")], &dir);
    let taddr = word_after(&t.line("pytorrent-tracker"), "udp");
    let seeder = |name: &str, extra: &[&str]| {
        let mut a = vec![
            s("--seed"),
            s("-u"),
            s(name),
            s("-t"),
            taddr.clone(),
            s("-l"),
            s("127.0.0.1:0"),
        ];
        a.extend([s("-s"), shared.display().to_string(), s("-c"), s("none.conf")]);
        a.extend([s("-d"), mkdir(&format!("{name}-dl")).display().to_string()]);
        a.extend([s("--log"), dir.join(format!("{name}.log")).display().to_string()]);
        a.extend(extra.iter().map(|e| e.to_string()));
        Proc::start(client, &a, &dir)
    };
    std::fs::write(dir.join("none.conf"), "").unwrap();
    let rate = format!("{rate_kib}K");
    let free = seeder("free", &[]);
    free.line("seeding ");
    let capped = seeder("capped", &["--max-upload-rate", &rate, "--torrent", "bench.bin"]);
    let magnet = capped.line("magnet:");
    let capped_addr = word_after(&capped.line("seeding "), "tcp");
    let limit = (rate_kib * 1024) as f64;
    println!(
        "rate limit {rate_kib} KiB/s, file {size_mib} MiB, {runs} runs each (rate = size / leecher wall time)"
    );
    let mut n = 0;
    let mut measure = |what: &str, target: &str, extra: &[String]| {
        let mut rates = Vec::new();
        for run in 1..=runs {
            n += 1;
            let dl = mkdir(&format!("dl-{n}"));
            let mut a = vec![
                s("--get"),
                s(target),
                s("-t"),
                taddr.clone(),
                s("-l"),
                s("127.0.0.1:0"),
            ];
            a.extend([s("-d"), dl.display().to_string(), s("-c"), s("none.conf")]);
            a.extend([
                s("--log"),
                dir.join(format!("leech-{n}.log")).display().to_string(),
            ]);
            a.extend(extra.iter().cloned());
            let started = Instant::now();
            let mut p = Proc::start(client, &a, &dir);
            let line = p.line("downloaded ");
            let status = p.0.wait().unwrap();
            let secs = started.elapsed().as_secs_f64();
            assert!(status.success() && line.contains(&sha), "{what}: {line}");
            let r = data.len() as f64 / secs;
            println!(
                "  {what} run {run}: {secs:.2} s, {:.1} KiB/s ({:+.1}% of the limit)",
                r / 1024.0,
                (r / limit - 1.0) * 100.0
            );
            rates.push(r);
        }
        let m = median(rates);
        println!(
            "{what}: median {:.1} KiB/s, {:+.1}% of the limit (target: within 5%)",
            m / 1024.0,
            (m / limit - 1.0) * 100.0
        );
    };
    // Limited by the leecher: from both seeders.
    measure(
        "download limit, native",
        "bench.bin",
        &[s("--max-download-rate"), rate.clone()],
    );
    // Limited by the seeder: the free one leaves first.
    drop(free);
    measure("upload limit, native", "bench.bin", &[]);
    measure(
        "upload limit, BitTorrent",
        &magnet,
        &[s("--peer"), capped_addr.clone()],
    );
    drop(capped);
    let _ = std::fs::remove_dir_all(&dir);
}
