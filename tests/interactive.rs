//! The interactive client end to end, driven through a pseudo-terminal
//! like a person at a keyboard: first-run username, the five menu items, a
//! download from a real headless seeder with its share question, and
//! Disconnect. The result is checked on disk: the downloaded file's
//! SHA-256, the shared copy, and the username saved in the config file.

mod common;

use common::{
    interrupted_download, random_bytes, seed, sha256_file, sha256_hex, shared_dir, wait_with_timeout,
    TempDir, TrackerProc,
};
use rexpect::reader::Options;
use rexpect::session::{spawn_with_options, PtySession};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// Longest wait for any one thing on screen.
const WAIT_MS: u64 = 30_000;

fn expect(p: &mut PtySession, what: &str) {
    expect_before(p, what);
}

/// Waits for `what` (any text: rexpect reads bytes as Latin-1, so it is
/// matched byte for byte) and returns what came before it, as UTF-8.
fn expect_before(p: &mut PtySession, what: &str) -> String {
    let needle: String = what.bytes().map(char::from).collect();
    match p.exp_string(&needle) {
        Ok(before) => {
            let bytes: Vec<u8> = before.chars().map(|c| c as u32 as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Err(e) => panic!("waiting for {what:?}: {e}"),
    }
}

/// Gives the pseudo-terminal `cols` columns (and 30 rows), as a resized
/// window would; the client gets SIGWINCH.
fn set_columns(p: &PtySession, cols: u16) {
    use std::os::fd::AsRawFd;
    let pty = p.process().get_file_handle().expect("pty handle");
    let size = libc::winsize {
        ws_row: 30,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the fd is
    // the pty master, open for the duration of the call.
    let rc = unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ");
}

/// Starts the interactive client in a pseudo-terminal, in `home`, with
/// `home/config.txt`, its own directories and log, and `extra` flags.
fn start(home: &Path, tracker: SocketAddr, extra: &[&str]) -> PtySession {
    let mut all = vec!["-c", "config.txt"];
    all.extend(extra);
    start_default_config(home, tracker, &all)
}

/// Like [`start`], without `-c`: the default config/config.txt in `home`.
fn start_default_config(home: &Path, tracker: SocketAddr, extra: &[&str]) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pytorrent"));
    cmd.current_dir(home)
        .args(["-t", &tracker.to_string(), "-l", "127.0.0.1:0"])
        .args(["-s", "shared", "-d", "downloads", "--log", "client.log"])
        .args(extra)
        .env_remove("NO_COLOR");
    let options = Options {
        timeout_ms: Some(WAIT_MS),
        strip_ansi_escape_codes: true,
    };
    spawn_with_options(cmd, options).expect("start pytorrent in a pty")
}

/// Waits for the client to exit, and checks it exited 0.
fn expect_exit_0(p: &PtySession) {
    let status = p.process().wait().expect("wait for pytorrent");
    assert_eq!(
        format!("{status:?}"),
        format!("Exited(Pid({}), 0)", p.process().child_pid),
        "exit status"
    );
}

#[test]
fn a_person_downloads_shares_renames_and_leaves() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive");
    let data = random_bytes(3 * 1024 * 1024 + 5, 21);
    let shared = shared_dir(&tmp, "alice", &[("holiday ñ.bin", &data)]);
    let alice = seed(&tmp, t.addr, "alice", &shared, &[]);

    // Bob's home: an empty config (first run), his own directories.
    let home = tmp.mkdir("bob");
    std::fs::write(home.join("config.txt"), "# bob's config\n").unwrap();
    let mut p = start(&home, t.addr, &[]);

    // First run: a bad name is refused, a good one accepted.
    expect(&mut p, "Choose a username:");
    p.send_line("two words").unwrap();
    expect(&mut p, "contains whitespace");
    p.send_line("bob").unwrap();
    expect(&mut p, "Hi, bob!");
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "5. Disconnect");

    // 1: the peers, alice among them.
    p.send_line("1").unwrap();
    expect(&mut p, "alice");
    expect(&mut p, "bob (you)");

    // 3: pick alice's file by number; it downloads in the background and
    // asks to be shared.
    p.send_line("3").unwrap();
    // (rexpect reads bytes as Latin-1, so needles stay ASCII.)
    expect(&mut p, "holiday ");
    expect(&mut p, "File number, name");
    p.send_line("1").unwrap();
    expect(&mut p, "in the background");
    // The completion line says where the file is.
    expect(
        &mut p,
        &format!(
            "saved as downloads/holiday \u{f1}.bin sha256 {}",
            sha256_hex(&data)
        ),
    );
    expect(&mut p, "with other peers? (y/n)");
    p.send_line("y").unwrap();
    expect(&mut p, "Now sharing holiday ");

    // 2: our shared files now list it.
    p.send_line("2").unwrap();
    expect(&mut p, "SHA-256");
    expect(&mut p, "holiday ");

    // A typo is a red line, not an exit.
    p.send_line("7").unwrap();
    expect(&mut p, "Unknown choice");

    // 4: a new username, confirmed by the tracker.
    p.send_line("4").unwrap();
    expect(&mut p, "New username");
    p.send_line("carol").unwrap();
    expect(&mut p, "You are now carol");

    // 5: goodbye, exit 0.
    p.send_line("5").unwrap();
    expect(&mut p, "Goodbye");
    expect_exit_0(&p);

    let downloaded = home.join("downloads").join("holiday ñ.bin");
    assert_eq!(sha256_file(&downloaded), sha256_hex(&data));
    assert_eq!(
        sha256_file(&home.join("shared").join("holiday ñ.bin")),
        sha256_hex(&data)
    );
    let config = std::fs::read_to_string(home.join("config.txt")).unwrap();
    assert!(config.starts_with("# bob's config\n"), "comment kept: {config:?}");
    assert!(config.contains("username=carol"), "{config:?}");
    drop(alice);
}

#[test]
fn unfinished_downloads_are_offered_at_start_and_resumed() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-resume");
    let home = tmp.mkdir("erin");
    let downloads = home.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    // An earlier run left film.bin half done (and its only seeder gone).
    let data = interrupted_download(&t, &tmp, &downloads);
    let good = shared_dir(&tmp, "good", &[("film.bin", &data)]);
    let _good = seed(&tmp, t.addr, "good", &good, &[]);

    std::fs::write(home.join("config.txt"), "username=erin\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pytorrent"));
    cmd.current_dir(&home)
        .args(["-c", "config.txt", "-t", &t.addr.to_string(), "-l", "127.0.0.1:0"])
        .args([
            "-s",
            "shared",
            "-d",
            "downloads",
            "--log",
            "erin.log",
            "--no-effects",
        ]);
    let mut p = spawn_with_options(
        cmd,
        Options {
            timeout_ms: Some(WAIT_MS),
            strip_ansi_escape_codes: true,
        },
    )
    .expect("start pytorrent in a pty");
    expect(&mut p, "Hi, erin!");
    expect(&mut p, "Unfinished downloads from last time:");
    expect(&mut p, "film.bin: ");
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "Resume them now? (y/n)");
    p.send_line("y").unwrap();
    expect(&mut p, "Resuming film.bin: ");
    expect(&mut p, &format!("sha256 {}", sha256_hex(&data)));
    expect(&mut p, "with other peers? (y/n)");
    p.send_line("n").unwrap();
    expect(&mut p, "not shared");
    p.send_line("5").unwrap();
    expect(&mut p, "Goodbye");
    expect_exit_0(&p);
    assert_eq!(sha256_file(&downloads.join("film.bin")), sha256_hex(&data));
    assert!(common::records(&downloads).is_empty());
    assert!(
        !home.join("shared").join("film.bin").exists(),
        "not shared when the answer was n"
    );
}

/// A download whose only seeder is frozen: the bar appears without a key
/// press even without effects, says "fetching metadata" (not 100%) until
/// the metadata arrives, and keeps the file name, shortened at 40 columns.
#[test]
fn a_download_shows_its_bar_at_once_and_its_name_at_any_width() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-bar");
    let data = random_bytes(64 * 1024, 5);
    let name = "a-long-holiday-video-name.bin";
    let shared = shared_dir(&tmp, "frozen", &[(name, &data)]);
    let frozen = seed(&tmp, t.addr, "frozen", &shared, &[]);
    let home = tmp.mkdir("dora");
    std::fs::write(home.join("config.txt"), "username=dora\n").unwrap();
    let mut p = start(&home, t.addr, &["--no-effects"]);
    set_columns(&p, 120);
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "5. Disconnect");
    p.send_line("3").unwrap();
    expect(&mut p, "File number, name");
    frozen.proc.signal("STOP");
    p.send_line("1").unwrap();
    let before = expect_before(&mut p, &format!("{name} fetching metadata"));
    assert!(!before.contains("100%"), "no 100% before the metadata: {before}");
    // Narrow: the name is shortened with an ellipsis, not dropped.
    set_columns(&p, 40);
    expect(&mut p, "a-long-holida\u{2026} fetching metadata");
    set_columns(&p, 120);
    expect(&mut p, &format!("{name} fetching metadata"));
    // Disconnect with a download running asks first.
    p.send_line("5").unwrap();
    expect(&mut p, "1 download running; leave anyway?");
    p.send_line("n").unwrap();
    p.send_line("5").unwrap();
    expect(&mut p, "leave anyway?");
    p.send_line("y").unwrap();
    expect(
        &mut p,
        "Goodbye! The unfinished download stays as a .part file to resume.",
    );
    expect_exit_0(&p);
    frozen.proc.signal("CONT");
    drop(frozen);
}

/// A first run in a directory without `config/`: the username is saved
/// (the directory and file created), a rename works, the empty shared
/// folder is named as given by `-s`, the peer table says USERNAME and
/// calls a peer without files a leecher, and the goodbye mentions no
/// .part files when there are none.
#[test]
fn a_first_run_without_a_config_directory() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-noconfig");
    let home = tmp.mkdir("fay");
    let mut p = start_default_config(&home, t.addr, &["--no-effects"]);
    expect(&mut p, "Choose a username:");
    p.send_line("fay").unwrap();
    expect(&mut p, "Hi, fay!");
    expect(&mut p, "You are only downloading (no files in shared yet)");
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "5. Disconnect");
    assert_eq!(
        std::fs::read_to_string(home.join("config/config.txt")).unwrap(),
        "username=fay\n"
    );
    // Line editing: Home then a missing letter; history brings it back.
    p.send("elp\x1b[Hh\r").unwrap();
    p.flush().unwrap();
    expect(&mut p, "Commands");
    expect(&mut p, "show the menu again");
    p.send("x\x1b[D\x1b[3~\x1b[A\r").unwrap();
    p.flush().unwrap();
    expect(&mut p, "Commands");
    expect(&mut p, "show the menu again");
    p.send_line("2").unwrap();
    expect(&mut p, "no shared files (put some in shared)");
    p.send_line("1").unwrap();
    let table = expect_before(&mut p, "fay (you)");
    assert!(table.contains("USERNAME"), "{table}");
    expect(&mut p, "leecher");
    p.send_line("4").unwrap();
    expect(&mut p, "New username");
    p.send_line("gus").unwrap();
    expect(&mut p, "You are now gus");
    assert_eq!(
        std::fs::read_to_string(home.join("config/config.txt")).unwrap(),
        "username=gus\n"
    );
    p.send_line("5").unwrap();
    expect(&mut p, "Goodbye!");
    let bye = p.exp_eof().expect("the client ends");
    assert!(!bye.contains(".part"), "no unfinished download, no .part: {bye}");
    expect_exit_0(&p);
}

/// Ctrl-C at the first-run prompt leaves at once: the tracker never heard
/// of us, so there is no goodbye to wait for.
#[test]
fn ctrl_c_at_the_first_run_prompt_exits_at_once() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-ctrlc");
    let home = tmp.mkdir("hal");
    std::fs::write(home.join("config.txt"), "").unwrap();
    let mut p = start(&home, t.addr, &["--no-effects"]);
    expect(&mut p, "Choose a username:");
    let asked = std::time::Instant::now();
    p.send_control('c').unwrap();
    expect_exit_0(&p);
    let took = asked.elapsed();
    assert!(took < std::time::Duration::from_millis(1500), "took {took:?}");
}

/// Whether `c` is an emoji (the ranges the client's plain mode removes).
fn is_emoji(c: char) -> bool {
    matches!(c, '\u{1F000}'..='\u{1FAFF}' | '\u{2600}'..='\u{26FF}' | '\u{FE0F}')
        || (('\u{2700}'..='\u{27BF}').contains(&c) && c != '\u{2714}' && c != '\u{2718}')
}

/// Runs the interactive client with `input` on a pipe and its output on
/// another (no terminal at all); returns its exit code and stdout.
fn run_piped(home: &Path, tracker: SocketAddr, input: &str, env: &[(&str, &str)]) -> (i32, String) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pytorrent"))
        .current_dir(home)
        .args([
            "-c",
            "config.txt",
            "-t",
            &tracker.to_string(),
            "-l",
            "127.0.0.1:0",
        ])
        .args(["-s", "shared", "-d", "downloads", "--log", "client.log"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pytorrent");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let status = match wait_with_timeout(&mut child, std::time::Duration::from_secs(30)) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            panic!("the piped client did not finish");
        }
    };
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (status.code().unwrap_or(-1), out)
}

/// Without a terminal the output is plain text: no escape codes, no emoji.
#[test]
fn piped_output_is_plain_text() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-plain");
    let home = tmp.mkdir("ivy");
    std::fs::write(home.join("config.txt"), "username=ivy\n").unwrap();
    let (code, out) = run_piped(&home, t.addr, "\nhelp\n7\n5\n", &[]);
    assert_eq!(code, 0, "{out}");
    // Issue 20, defect 6: words, not marks or box drawing, for scripts.
    assert!(out.contains("error: Unknown choice '7'"), "{out}");
    assert!(!out.contains(['✔', '✘']), "{out}");
    assert!(
        !out.chars().any(|c| ('\u{2500}'..='\u{257F}').contains(&c)),
        "{out}"
    );
    assert!(
        out.contains("Hi, ivy!") && out.contains("1. View connected peers"),
        "{out}"
    );
    assert!(out.contains("Goodbye!"), "{out}");
    assert!(!out.contains('\u{1b}'), "escape codes in {out:?}");
    assert!(!out.chars().any(is_emoji), "emoji in {out}");
    assert!(
        !out.lines().any(|l| l.ends_with(' ')),
        "trailing spaces in {out:?}"
    );
}

/// Headless `--get` with stderr on a terminal shows its progress there.
#[test]
fn headless_get_shows_progress_on_a_terminal() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("headless-progress");
    let shared = shared_dir(&tmp, "stiff", &[("slow.bin", &random_bytes(10_000, 9))]);
    let stiff = seed(&tmp, t.addr, "stiff", &shared, &[]);
    stiff.proc.signal("STOP");
    let home = tmp.mkdir("jo");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pytorrent"));
    cmd.current_dir(&home)
        .args([
            "--get",
            "slow.bin",
            "-t",
            &t.addr.to_string(),
            "-l",
            "127.0.0.1:0",
        ])
        .args(["-c", "none.txt", "-d", "downloads", "--log", "jo.log"]);
    std::fs::write(home.join("none.txt"), "").unwrap();
    let mut p = spawn_with_options(
        cmd,
        Options {
            timeout_ms: Some(WAIT_MS),
            strip_ansi_escape_codes: true,
        },
    )
    .expect("start pytorrent --get in a pty");
    expect(&mut p, "slow.bin fetching metadata");
    stiff.proc.signal("CONT");
    expect(&mut p, "downloaded slow.bin (10000 bytes)");
    expect_exit_0(&p);
}

/// Lines piped ahead of the tracker's answers run in order, and at the end
/// of input a download still running finishes before the client leaves
/// (its share question answered no).
#[test]
fn piped_lines_queue_behind_the_tracker_and_work_finishes() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-typeahead");
    let data = random_bytes(2 * 1024 * 1024 + 3, 17);
    let shared = shared_dir(&tmp, "kim", &[("piped.bin", &data)]);
    let _kim = seed(&tmp, t.addr, "kim", &shared, &[]);
    let home = tmp.mkdir("lee");
    std::fs::write(home.join("config.txt"), "username=lee\n").unwrap();
    let (code, out) = run_piped(&home, t.addr, "\n1\n2\nhelp\n3\n1\n", &[]);
    assert_eq!(code, 0, "{out}");
    let at = |what: &str| out.find(what).unwrap_or_else(|| panic!("no {what:?} in {out}"));
    // In order: the peers, the shared files, help, the download.
    assert!(at("kim ") < at("no shared files"), "{out}");
    assert!(at("no shared files") < at("Commands"), "{out}");
    assert!(at("Commands") < at("Downloading piped.bin"), "{out}");
    assert!(
        at("Downloading piped.bin") < at(&format!("sha256 {}", sha256_hex(&data))),
        "{out}"
    );
    assert!(out.contains("not shared"), "{out}");
    assert!(out.contains("Goodbye!"), "{out}");
    assert!(
        out.contains("done: piped.bin saved as") && !out.contains('✔'),
        "{out}"
    );
    assert_eq!(sha256_file(&home.join("downloads/piped.bin")), sha256_hex(&data));
}

/// A file you share is marked in the list and refused before anything is
/// announced: the tracker still counts you as one of its seeders. Parts
/// of a name filter the list, numbered from 1.
#[test]
fn a_file_you_share_is_marked_and_refused() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-own");
    let data = random_bytes(100_000, 23);
    let other = random_bytes(1000, 24);
    let shared = shared_dir(&tmp, "max", &[("both.bin", &data), ("zz-other.bin", &other)]);
    let _max = seed(&tmp, t.addr, "max", &shared, &[]);
    let home = tmp.mkdir("ned");
    std::fs::create_dir_all(home.join("shared")).unwrap();
    std::fs::write(home.join("shared/both.bin"), &data).unwrap();
    std::fs::write(home.join("config.txt"), "username=ned\n").unwrap();
    let mut p = start(&home, t.addr, &["--no-effects", "--chunk-size-kib", "64"]);
    set_columns(&p, 120);
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "5. Disconnect");
    // Wait until our copy is announced: both seeders listed.
    let mut listed = String::new();
    for _ in 0..50 {
        p.send_line("3").unwrap();
        listed = expect_before(&mut p, "File number, name");
        if listed.contains("2        0  sharing") {
            break;
        }
        p.send_line("").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(listed.contains("1  both.bin"), "{listed}");
    assert!(listed.contains("2        0  sharing"), "{listed}");
    p.send_line("1").unwrap();
    expect(&mut p, "You share both.bin already.");
    p.send_line("3").unwrap();
    let again = expect_before(&mut p, "File number, name");
    assert!(
        again.contains("2        0  sharing"),
        "still two seeders: {again}"
    );
    // A part of a name: only the matches, numbered anew.
    p.send_line("OTHER").unwrap();
    expect(&mut p, "1 file with 'OTHER' in the name");
    let found = expect_before(&mut p, "File number, name");
    assert!(
        found.contains("1  zz-other.bin") && !found.contains("both.bin"),
        "{found}"
    );
    // A number past the results is refused, not taken from the full list.
    p.send_line("2").unwrap();
    expect(&mut p, "No number 2 in the list shown");
    p.send_line("").unwrap();
    p.send_line("5").unwrap();
    expect(&mut p, "Goodbye");
    expect_exit_0(&p);
}

/// Issue 20, defects 2, 7, 8 and 10: a search's results are numbered from
/// 1 and `1` picks the first result (it used to keep its full-list number
/// and `1` started another file); two files of one name show their ids;
/// `get NAME` at the prompt downloads; the menu is printed once, not after
/// every command.
#[test]
fn search_results_get_name_twins_and_one_menu() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-picks");
    let notes_a = random_bytes(3000, 31);
    let notes_b = random_bytes(4000, 32);
    let iso = random_bytes(150_000, 33);
    let other = random_bytes(5000, 34);
    let files_a: [(&str, &[u8]); 3] = [
        ("notes.txt", &notes_a),
        ("aa-first.bin", &other),
        ("ubuntu.iso", &iso),
    ];
    let shared_a = shared_dir(&tmp, "pat", &files_a);
    let _pat = seed(&tmp, t.addr, "pat", &shared_a, &[]);
    let shared_b = shared_dir(&tmp, "quin", &[("notes.txt", &notes_b)]);
    let _quin = seed(&tmp, t.addr, "quin", &shared_b, &[]);
    let id = |name: &str, data: &[u8]| {
        let meta = pytorrent::meta::FileMeta::from_reader(name, data, 64 * 1024).unwrap();
        meta.id()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let home = tmp.mkdir("rue");
    std::fs::write(home.join("config.txt"), "username=rue\n").unwrap();
    let mut p = start(&home, t.addr, &["--no-effects"]);
    set_columns(&p, 120);
    let mut seen = String::new();
    let mut look = |p: &mut PtySession, what: &str| {
        let before = expect_before(p, what);
        seen.push_str(&before);
        seen.push_str(what);
        before
    };
    look(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    look(&mut p, "5. Disconnect");
    p.send_line("3").unwrap();
    let list = look(&mut p, "File number, name");
    for twin in [id("notes.txt", &notes_a), id("notes.txt", &notes_b)] {
        assert!(list.contains(&format!("notes.txt [{twin}]")), "{list}");
    }
    p.send_line("ubuntu").unwrap();
    look(&mut p, "1 file with 'ubuntu' in the name");
    let found = look(&mut p, "File number, name");
    assert!(found.contains("1  ubuntu.iso"), "{found}");
    p.send_line("1").unwrap();
    look(&mut p, "Downloading ubuntu.iso in the background");
    look(&mut p, &format!("sha256 {}", sha256_hex(&iso)));
    look(&mut p, "with other peers? (y/n)");
    p.send_line("n").unwrap();
    look(&mut p, "not shared");
    p.send_line("get aa-first.bin").unwrap();
    look(&mut p, "Downloading aa-first.bin in the background");
    look(&mut p, &format!("sha256 {}", sha256_hex(&other)));
    look(&mut p, "with other peers? (y/n)");
    p.send_line("n").unwrap();
    look(&mut p, "not shared");
    p.send_line("downloads").unwrap();
    look(&mut p, "no downloads running");
    p.send_line("5").unwrap();
    look(&mut p, "Goodbye");
    expect_exit_0(&p);
    assert_eq!(seen.matches("5. Disconnect").count(), 1, "{seen}");
    assert_eq!(sha256_file(&home.join("downloads/ubuntu.iso")), sha256_hex(&iso));
    assert_eq!(
        sha256_file(&home.join("downloads/aa-first.bin")),
        sha256_hex(&other)
    );
    assert!(!home.join("downloads/notes.txt").exists());
}

/// Issue 20, defect 9: while the tracker does not answer, `help` (and any
/// command that needs no tracker) runs at once instead of waiting behind
/// "(asking the tracker...)".
#[test]
fn help_runs_while_the_tracker_is_silent() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tmp = TempDir::new("interactive-silent");
    let home = tmp.mkdir("sol");
    std::fs::write(home.join("config.txt"), "username=sol\n").unwrap();
    let mut p = start(&home, silent.local_addr().unwrap(), &["--no-effects"]);
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "5. Disconnect");
    p.send_line("1").unwrap();
    expect(&mut p, "(asking the tracker...)");
    let asked = std::time::Instant::now();
    p.send_line("help").unwrap();
    expect(&mut p, "show the menu again");
    let took = asked.elapsed();
    assert!(took < std::time::Duration::from_secs(3), "help took {took:?}");
    p.send_line("quit").unwrap();
    expect(&mut p, "Goodbye");
}

/// `cancel --delete N`: the download stops and its `.part` file and
/// record are deleted (plain `cancel` keeps them to resume).
#[test]
fn cancel_delete_removes_the_part_file() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("interactive-cancel-delete");
    let (_half, _) = common::corrupt_tail_seeder(&t, &tmp, "stuck.bin");
    let home = tmp.mkdir("wes");
    std::fs::write(home.join("config.txt"), "username=wes\n").unwrap();
    let mut p = start(&home, t.addr, &["--no-effects"]);
    expect(&mut p, "Press any key to continue");
    p.send("x").unwrap();
    p.flush().unwrap();
    expect(&mut p, "5. Disconnect");
    p.send_line("get stuck.bin").unwrap();
    expect(&mut p, "Downloading stuck.bin in the background");
    let downloads = home.join("downloads");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while common::working_files(&downloads).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no .part file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    p.send_line("cancel --delete 1").unwrap();
    expect(&mut p, "Cancelled stuck.bin and deleted its .part file");
    let left = common::working_files(&downloads);
    assert!(left.is_empty(), "{left:?}");
    p.send_line("5").unwrap();
    expect(&mut p, "Goodbye");
    expect_exit_0(&p);
}
