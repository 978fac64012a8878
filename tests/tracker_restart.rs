//! Issue 11, defect 12, with the real binaries: the tracker is killed and a
//! new one takes its port while an interactive client (lines on a pipe,
//! as a script or `printf ... | pytorrent` would send them) is running. A
//! question asked right after the restart, or during it, is answered once
//! the tracker is back: never "no answer after 5 tries", never a view that
//! lacks our own files because it was answered before we announced them
//! again.

mod common;

use common::{random_bytes, shared_dir, ClientProc, TempDir, TrackerProc};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{ChildStdin, Stdio};
use std::time::{Duration, Instant};

/// The interactive client as `alice`, sharing one file, with its stdin on
/// a pipe the test writes to; returned once its menu is up.
fn alice(tmp: &TempDir, tracker: SocketAddr) -> (ClientProc, ChildStdin) {
    let shared = shared_dir(tmp, "alice", &[("notes.bin", &random_bytes(70_000, 3))]);
    let downloads = tmp.mkdir("alice-downloads");
    let args = vec![
        "-t".to_string(),
        tracker.to_string(),
        "-u".into(),
        "alice".into(),
        "-s".into(),
        shared.display().to_string(),
        "-d".into(),
        downloads.display().to_string(),
    ];
    let mut p = ClientProc::start_with(tmp, "alice", &args, |cmd| {
        cmd.stdin(Stdio::piped());
    });
    let mut stdin = p.child.stdin.take().expect("stdin pipe");
    p.wait_line("You are seeding 1 file", Duration::from_secs(10));
    stdin.write_all(b"\n").unwrap();
    p.wait_line("Type a number", Duration::from_secs(10));
    (p, stdin)
}

/// Kills the tracker and starts a new one on the same address (a new
/// secret and an empty registry: every client must join again).
fn restart(t: TrackerProc) -> TrackerProc {
    let addr = t.addr;
    kill(t);
    let t2 = TrackerProc::start_on(&addr.to_string(), &[]);
    assert_eq!(t2.addr, addr);
    t2
}

fn kill(mut t: TrackerProc) {
    let status = t.signal_and_wait("KILL");
    assert!(!status.success(), "{status:?}");
}

fn assert_no_failure(p: &ClientProc, since: usize) {
    let failed: Vec<&String> = p.stdout[since..]
        .iter()
        .filter(|l| l.contains("could not") || l.contains("no answer"))
        .collect();
    assert!(failed.is_empty(), "{failed:?}\n{}", p.stdout.join("\n"));
}

#[test]
fn the_peer_list_right_after_a_tracker_restart_is_answered_with_our_files() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("restart-at-once");
    let (mut p, mut stdin) = alice(&tmp, t.addr);
    let _t2 = restart(t);
    let since = p.stdout.len();
    stdin.write_all(b"1\n").unwrap();
    let row = p.wait_line_from(since, "alice (you)", Duration::from_secs(10));
    assert_no_failure(&p, since);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3..], ["seeder", "1"], "{row:?}");
    stdin.write_all(b"5\n").unwrap();
    assert_eq!(p.wait_code(Duration::from_secs(10)), 0);
}

#[test]
fn a_question_asked_while_the_tracker_restarts_is_answered_once_it_is_back() {
    let t = TrackerProc::start(&[]);
    let addr = t.addr;
    let tmp = TempDir::new("restart-slow");
    let (mut p, mut stdin) = alice(&tmp, addr);
    kill(t);
    let since = p.stdout.len();
    stdin.write_all(b"1\n").unwrap();
    // A slow restart (a build, a reboot): the client has been knocking for
    // a while, and its handshakes have backed off, when the tracker is back.
    std::thread::sleep(Duration::from_millis(9_500));
    let back = Instant::now();
    let _t2 = TrackerProc::start_on(&addr.to_string(), &[]);
    let row = p.wait_line_from(since, "alice (you)", Duration::from_secs(10));
    eprintln!("answered {:?} after the tracker was back", back.elapsed());
    assert!(back.elapsed() < Duration::from_secs(4), "{:?}", back.elapsed());
    assert_no_failure(&p, since);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3..], ["seeder", "1"], "{row:?}");
    stdin.write_all(b"5\n").unwrap();
    assert_eq!(p.wait_code(Duration::from_secs(10)), 0);
}
