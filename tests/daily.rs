//! Issue 20's headless defects, end to end with the real binaries on
//! loopback: what a new user met running `pytorrent --get/--list/--peers`
//! and `pytorrent-tracker` from a fresh checkout. Each test names the
//! defect it pins down.

mod common;

use common::{
    args, check_downloaded, get, hex, random_bytes, seed, shared_dir, ClientProc, TempDir, TrackerProc,
    CHUNK, DOWNLOAD,
};
use pytorrent::meta::FileMeta;
use std::time::Duration;

/// Defect 1: `--get NAME --get PREFIX` naming one file downloads it once
/// and exits 0 (it used to wait forever for a second result).
#[test]
fn two_targets_naming_one_file_download_it_once_and_exit() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("same-file");
    let data = random_bytes(200_000, 20);
    let shared = shared_dir(&tmp, "seeder", &[("small note.txt", &data)]);
    let _seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let id = FileMeta::from_reader("small note.txt", &data[..], CHUNK as u32)
        .unwrap()
        .id();
    let prefix = hex(&id[..8]);
    let long_prefix = hex(&id[..12]);
    let (mut leecher, dir) = get(
        &tmp,
        t.addr,
        "twice",
        &["small note.txt", &prefix, &long_prefix],
        &["--peer-wait", "5"],
    );
    check_downloaded(&mut leecher, &dir, "small note.txt", &data, DOWNLOAD);
    let code = leecher.wait_code(Duration::from_secs(20));
    assert_eq!(code, 0, "{}", leecher.report());
    let done = leecher
        .stdout
        .iter()
        .filter(|l| l.starts_with("downloaded "))
        .count();
    assert_eq!(done, 1, "{:?}", leecher.stdout);
}

/// Defect 3: `--list` and `--peers` leave no `logs/download.log` where
/// they run, `--peers` does not count the asker, every log line names its
/// process, and a connection that took nothing is no info line.
#[test]
fn list_and_peers_leave_no_log_and_the_log_names_the_process() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("quiet-ask");
    let data = random_bytes(100_000, 21);
    let shared = shared_dir(&tmp, "seeder", &[("one.bin", &data)]);
    let seeder = seed(&tmp, t.addr, "seeder", &shared, &[]);
    let cwd = tmp.mkdir("cwd");
    let tracker = t.addr.to_string();
    for (mode, last) in [
        ("--list", "1 file on the network"),
        ("--peers", "1 peer on the network"),
    ] {
        let cfg = tmp.join("empty.conf");
        std::fs::write(&cfg, "").unwrap();
        let a = args(&[
            mode,
            "-t",
            &tracker,
            "-c",
            &cfg.display().to_string(),
            "-l",
            "127.0.0.1:0",
        ]);
        let mut p = ClientProc::spawn_with(mode, &a, cwd.join("none"), |c| {
            c.current_dir(&cwd);
        });
        assert_eq!(p.wait_code(Duration::from_secs(15)), 0, "{}", p.report());
        assert_eq!(p.stdout.last().map(String::as_str), Some(last), "{:?}", p.stdout);
        assert!(!p.stdout.iter().any(|l| l.contains("(you)")), "{:?}", p.stdout);
    }
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "--list/--peers left {left:?}");

    // A peer that connects and leaves without asking for anything.
    drop(std::net::TcpStream::connect(seeder.addr).unwrap());
    let (mut leecher, dir) = get(&tmp, t.addr, "leecher", &["one.bin"], &[]);
    check_downloaded(&mut leecher, &dir, "one.bin", &data, DOWNLOAD);
    let mut seeder = seeder.proc;
    seeder.wait_log(
        "for the leecher",
        |l| l.contains("finished serving") && !l.contains(": 0 chunk"),
        DOWNLOAD,
    );
    let log = seeder.log_text();
    let pid = format!(" {}] ", seeder.pid());
    assert!(log.lines().all(|l| l.contains(&pid)), "{log}");
    assert!(!log.contains(": 0 chunk bytes sent"), "{log}");
}

/// Defect 11: errors that point the right way: a `.torrent` path that
/// does not exist is a missing file (not "no file on the network"), and a
/// malformed v2 hash in a magnet link is malformed (not missing).
#[test]
fn a_missing_torrent_file_and_a_malformed_magnet_say_so() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("wrong-way");
    let magnet = format!("magnet:?xt=urn:btmh:1220{}&dn=x", "c".repeat(62));
    for (target, want) in [
        ("missing.torrent", "cannot read missing.torrent: no such file"),
        (magnet.as_str(), "malformed v2 hash"),
    ] {
        let (mut p, _) = get(&tmp, t.addr, "wrong", &[target], &["--peer-wait", "3"]);
        assert_eq!(p.wait_code(Duration::from_secs(20)), 1, "{}", p.report());
        let err = p.stderr_text();
        assert!(err.contains(want), "{target}: {err}");
    }
}

/// Runs `pytorrent-tracker` with `args` until it exits (it must, within
/// 10 s); returns its exit code and stderr.
fn tracker_exit(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pytorrent-tracker"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pytorrent-tracker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Defect 12, the tracker's messages: a bad flag is one line and a hint,
/// a `--stats` file in a missing directory is refused at start, a peer
/// joining and leaving is an info line naming it, debug lines name the
/// user, and counts take the singular.
#[test]
fn tracker_messages_are_short_and_name_the_user() {
    let (code, err) = tracker_exit(&["--bind", "127.0.0.1:0", "--nope"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("'nope'") && err.contains("--help"), "{err}");
    let tmp = TempDir::new("tracker-words");
    let missing = tmp.join("no/such/dir/stats.json");
    let (code, err) = tracker_exit(&["--bind", "127.0.0.1:0", "--stats", &missing.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");

    let hashes = tmp.join("hashes.txt");
    std::fs::write(&hashes, format!("{}\n", "ab".repeat(20))).unwrap();
    let log = tmp.join("tracker.err");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pytorrent-tracker"))
        .args([
            "--bind",
            "127.0.0.1:0",
            "--access-list",
            &hashes.display().to_string(),
        ])
        .args(["--access-mode", "deny"])
        .env("RUST_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut banner,
    )
    .unwrap();
    assert!(banner.contains("access list: 1 info hash,"), "{banner}");
    let addr: std::net::SocketAddr = banner
        .split_whitespace()
        .skip_while(|w| *w != "udp")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{banner}"));
    let shared = shared_dir(&tmp, "uma", &[("u.bin", &random_bytes(1000, 22))]);
    let mut uma = seed(&tmp, addr, "uma", &shared, &[]).proc;
    uma.signal("INT");
    assert_eq!(uma.wait_code(Duration::from_secs(20)), 0, "{}", uma.report());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("uma left") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.lines()
            .any(|l| l.contains("INFO") && l.contains("uma joined from 127.0.0.1:")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("INFO") && l.contains("uma left")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("DEBUG") && l.contains("(uma): announce")),
        "{text}"
    );
}

/// `--list --json` and `--peers --json`: one JSON array with whole ids
/// and exact sizes; `--on-complete CMD` runs once per verified download
/// with the file in its environment.
#[test]
fn json_listings_and_a_command_on_completion() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("scripting");
    let data = random_bytes(123_457, 40);
    let shared = shared_dir(&tmp, "vic", &[("exact \"size\".bin", &data)]);
    let vic = seed(&tmp, t.addr, "vic", &shared, &[]);
    let id = FileMeta::from_reader("exact \"size\".bin", &data[..], CHUNK as u32)
        .unwrap()
        .id();
    let tracker = t.addr.to_string();
    let mut list = ClientProc::start(&tmp, "list", &args(&["--list", "--json", "-t", &tracker]));
    assert_eq!(list.wait_code(Duration::from_secs(15)), 0, "{}", list.report());
    let want = format!(
        r#"[{{"id":"{}","name":"exact \"size\".bin","size":123457,"seeders":1,"partial":0}}]"#,
        hex(&id)
    );
    assert_eq!(list.stdout, [want]);
    let mut peers = ClientProc::start(&tmp, "peers", &args(&["--peers", "--json", "-t", &tracker]));
    assert_eq!(peers.wait_code(Duration::from_secs(15)), 0, "{}", peers.report());
    let want = format!(
        r#"[{{"username":"vic","address":"{}","role":"seeder","files":1}}]"#,
        vic.addr
    );
    assert_eq!(peers.stdout, [want]);

    let out = tmp.join("done.txt");
    let copy = tmp.join("copy.bin");
    let cmd = format!(
        r#"cp "$PYTORRENT_PATH" '{}' && printf '%s|%s|%s' "$PYTORRENT_NAME" "$PYTORRENT_SIZE" "$PYTORRENT_SHA256" > '{}.tmp' && mv '{}.tmp' '{}'"#,
        copy.display(),
        out.display(),
        out.display(),
        out.display()
    );
    let (mut leecher, dir) = get(&tmp, t.addr, "leecher", &[&hex(&id)], &["--on-complete", &cmd]);
    check_downloaded(&mut leecher, &dir, "exact \"size\".bin", &data, DOWNLOAD);
    assert_eq!(
        leecher.wait_code(Duration::from_secs(20)),
        0,
        "{}",
        leecher.report()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !out.exists() {
        assert!(std::time::Instant::now() < deadline, "--on-complete did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        text,
        format!("exact \"size\".bin|123457|{}", common::sha256_hex(&data))
    );
    assert_eq!(common::sha256_file(&copy), common::sha256_hex(&data));
}

/// A download whose name is taken in the downloads folder lands as
/// `name.1.ext`, then `name.2.ext` (it used to be refused: "move it
/// away"); the file already there is untouched.
#[test]
fn a_taken_name_is_numbered_not_refused() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("renamed");
    let data = random_bytes(70_000, 50);
    let shared = shared_dir(&tmp, "xan", &[("photo.jpg", &data)]);
    let _xan = seed(&tmp, t.addr, "xan", &shared, &[]);
    let downloads = tmp.mkdir("yul-downloads");
    std::fs::write(downloads.join("photo.jpg"), b"mine").unwrap();
    for n in 1..=2 {
        let a = args(&[
            "--get",
            "photo.jpg",
            "-t",
            &t.addr.to_string(),
            "-d",
            &downloads.display().to_string(),
        ]);
        let mut p = ClientProc::start(&tmp, &format!("yul{n}"), &a);
        let line = p.wait_line("downloaded photo.jpg (", DOWNLOAD);
        let want = downloads.join(format!("photo.{n}.jpg"));
        assert!(line.ends_with(&want.display().to_string()), "{line}");
        assert_eq!(p.wait_code(Duration::from_secs(20)), 0, "{}", p.report());
        assert_eq!(common::sha256_file(&want), common::sha256_hex(&data));
    }
    assert_eq!(std::fs::read(downloads.join("photo.jpg")).unwrap(), b"mine");
}

/// The quick start's flow: the interactive client (or a seeder) of a
/// checkout is online under the config's username, and `--list` from the
/// same checkout, with the same config, still works (usernames are
/// unique, so it used to be refused as "username taken").
#[test]
fn list_beside_a_client_with_the_same_config_name() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("same-name");
    let shared = shared_dir(&tmp, "zed", &[("z.bin", &random_bytes(1000, 60))]);
    let _zed = seed(&tmp, t.addr, "zed", &shared, &[]);
    let cfg = tmp.join("checkout.conf");
    std::fs::write(&cfg, "username=zed\n").unwrap();
    let cfg = cfg.display().to_string();
    for mode in ["--list", "--peers"] {
        let a = args(&[mode, "-t", &t.addr.to_string(), "-c", &cfg, "-l", "127.0.0.1:0"]);
        let mut p = ClientProc::spawn(mode, &a, tmp.join("none.log"));
        assert_eq!(p.wait_code(Duration::from_secs(15)), 0, "{}", p.report());
        assert!(
            p.stdout.iter().any(|l| l.contains("zed") || l.contains("z.bin")),
            "{:?}",
            p.stdout
        );
    }
}

/// Rate limits hold for both protocols: 512 KiB through a 128 KiB/s
/// bucket cannot take less than its 4 s (less one 16 KiB burst), whether
/// the leecher limits its download or the seeder its upload, over the
/// project's protocol and over BitTorrent. (How close to the limit the
/// rate stays is `cargo bench --bench rate_limit`'s business.)
#[test]
fn rate_limits_hold_for_both_protocols() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("rates");
    let data = random_bytes(512 * 1024, 70);
    let floor = Duration::from_millis(3_500);
    let shared = shared_dir(&tmp, "fast", &[("r.bin", &data)]);
    let _fast = seed(&tmp, t.addr, "fast", &shared, &[]);
    let started = std::time::Instant::now();
    let (mut down, dir) = get(&tmp, t.addr, "down", &["r.bin"], &["--max-download-rate", "128K"]);
    check_downloaded(&mut down, &dir, "r.bin", &data, DOWNLOAD);
    let took = started.elapsed();
    assert!(
        took >= floor,
        "a 128K download limit let 512 KiB through in {took:?}"
    );
    drop(_fast);

    // The seeder limits its upload, over both protocols from one port.
    let here = tmp.mkdir("torrents");
    let slow_shared = shared_dir(&tmp, "slow", &[("s.bin", &data)]);
    let mut a = args(&[
        "--seed",
        "--torrent",
        "s.bin",
        "--piece-size-kib",
        "16",
        "-u",
        "slow",
    ]);
    a.extend([
        "--max-upload-rate".into(),
        "128K".into(),
        "-t".into(),
        t.addr.to_string(),
    ]);
    a.extend([
        "-s".into(),
        slow_shared.display().to_string(),
        "-d".into(),
        tmp.mkdir("slow-dl").display().to_string(),
    ]);
    let mut slow = ClientProc::start_with(&tmp, "slow", &a, |c| {
        c.current_dir(&here);
    });
    let magnet = slow.wait_line("magnet:?xt=urn:", common::READY);
    let addr = common::seeding_addr(&slow.wait_line("seeding ", common::READY));
    let started = std::time::Instant::now();
    let (mut native, dir) = get(&tmp, t.addr, "native", &["s.bin"], &[]);
    check_downloaded(&mut native, &dir, "s.bin", &data, DOWNLOAD);
    let took = started.elapsed();
    assert!(
        took >= floor,
        "a 128K upload limit let 512 KiB through in {took:?}"
    );
    let started = std::time::Instant::now();
    let (mut bt, dir) = get(&tmp, t.addr, "bt", &[&magnet], &["--peer", &addr.to_string()]);
    check_downloaded(&mut bt, &dir, "s.bin", &data, DOWNLOAD);
    let took = started.elapsed();
    assert!(
        took >= floor,
        "a 128K upload limit let 512 KiB through BitTorrent in {took:?}"
    );
}

/// `--check FILE --id ID`: 0 and "matches" for the file an id names (by
/// the 16 digits `--list` shows, whatever chunk size it was shared with),
/// 1 and "does not match" for a file one byte off.
#[test]
fn check_a_file_against_an_id() {
    let tmp = TempDir::new("check");
    let data = random_bytes(300_000, 80);
    let id = FileMeta::from_reader("c.bin", &data[..], 64 * 1024).unwrap().id();
    let dir = tmp.mkdir("files");
    std::fs::write(dir.join("c.bin"), &data).unwrap();
    let run = |id: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pytorrent"))
            .args(["--check", &dir.join("c.bin").display().to_string(), "--id", id])
            .current_dir(&dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&hex(&id[..8]));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("matches {}", hex(&id))) && out.contains("chunks of 64 KiB"),
        "{out}"
    );
    let mut off = data.clone();
    off[123] ^= 0x40;
    std::fs::write(dir.join("c.bin"), &off).unwrap();
    let (code, out) = run(&hex(&id));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not match"), "{out}");
    assert!(!dir.join("logs").exists(), "--check wrote a log");
}

/// `--output NAME`: the one download is saved under NAME (numbered when
/// taken), with the original's bytes.
#[test]
fn output_names_the_saved_file() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("output");
    let data = random_bytes(90_000, 90);
    let shared = shared_dir(&tmp, "oak", &[("original.bin", &data)]);
    let _oak = seed(&tmp, t.addr, "oak", &shared, &[]);
    let (mut p, dir) = get(
        &tmp,
        t.addr,
        "named",
        &["original.bin"],
        &["--output", "renamed.dat"],
    );
    let line = p.wait_line("downloaded original.bin (", DOWNLOAD);
    assert!(
        line.ends_with(&dir.join("renamed.dat").display().to_string()),
        "{line}"
    );
    assert_eq!(p.wait_code(Duration::from_secs(20)), 0, "{}", p.report());
    assert_eq!(
        common::sha256_file(&dir.join("renamed.dat")),
        common::sha256_hex(&data)
    );
    assert!(!dir.join("original.bin").exists());
    // Two targets, or a bad name: refused as a usage mistake.
    for extra in [&["--get", "x", "--output", "y"][..], &["--output", "../y"]] {
        let mut a = args(&["--get", "original.bin", "-t", &t.addr.to_string()]);
        a.extend(args(extra));
        let mut p = ClientProc::start(&tmp, "bad-output", &a);
        assert_eq!(p.wait_code(Duration::from_secs(20)), 2, "{}", p.report());
    }
}
