//! Resume drills with the real binaries: a leecher killed with SIGKILL
//! mid-download starts again and fetches only the chunks it lacked (the
//! count it reports and the bytes its peer served must agree); a torn
//! sidecar costs only a re-check of the `.part` file.

mod common;

use common::{
    random_bytes, s, seed, served_bytes, sha256_file, sha256_hex, shared_dir, ClientProc, TempDir,
    TrackerProc,
};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 256;
const WAIT: Duration = Duration::from_secs(60);

/// A leecher of `name` into `downloads`, as process `tag`.
fn leecher(tmp: &TempDir, tracker: &str, tag: &str, downloads: &Path, name: &str) -> ClientProc {
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

/// Runs a leecher against a seeder whose copy has two bad chunks, until
/// the leecher has dropped it (two bad chunks) and waits for peers, having
/// verified whatever came before; then kills it (SIGKILL) and that seeder.
/// Returns the downloads dir and the data.
fn interrupted_download(t: &TrackerProc, tmp: &TempDir) -> (PathBuf, Vec<u8>) {
    let data = random_bytes(CHUNKS * CHUNK, 31);
    let shared = shared_dir(tmp, "half", &[("film.bin", &data)]);
    let mut half = seed(tmp, t.addr, "half", &shared, &[]);
    {
        // The last two chunks change on disk after indexing: they fail.
        // Chunks go out in random order, so the seeder is dropped at a
        // random point, with the chunks that came before it verified
        // (about half of them, most likely).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(shared.join("film.bin"))
            .unwrap();
        f.seek(SeekFrom::Start(((CHUNKS - 2) * CHUNK) as u64)).unwrap();
        f.write_all(&vec![0u8; 2 * CHUNK]).unwrap();
        f.sync_all().unwrap();
    }
    let downloads = tmp.mkdir("downloads");
    let mut first = leecher(tmp, &t.addr.to_string(), "first", &downloads, "film.bin");
    // Dropped for bad data, nobody else: it records its progress and waits.
    first.wait_log("waiting for peers", |l| l.contains("waiting for peers"), WAIT);
    assert!(
        downloads.join("film.bin.part.state").exists(),
        "{}",
        first.report()
    );
    first.signal("KILL");
    first.wait_exit(WAIT);
    half.proc.signal("KILL");
    half.proc.wait_exit(WAIT);
    (downloads, data)
}

/// The `N` in a line `... N of 256 chunks already verified`.
fn verified_in(line: &str) -> usize {
    line.split(": ")
        .last()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

fn finish(t: &TrackerProc, tmp: &TempDir, downloads: &Path, data: &[u8], expect: &str) {
    let good = shared_dir(tmp, "good", &[("film.bin", data)]);
    let mut good = seed(tmp, t.addr, "good", &good, &[]);
    let mut second = leecher(tmp, &t.addr.to_string(), "second", downloads, "film.bin");
    let line = second.wait_line(expect, WAIT);
    let kept = verified_in(&line);
    assert!(kept > 0 && kept < CHUNKS, "{line}");
    second.wait_line("downloaded film.bin", WAIT);
    assert_eq!(second.wait_code(WAIT), 0, "{}", second.report());
    assert_eq!(sha256_file(&downloads.join("film.bin")), sha256_hex(data));
    assert!(!downloads.join("film.bin.part").exists());
    assert!(!downloads.join("film.bin.part.state").exists());
    // The good seeder served exactly the chunks that were missing (its log
    // line is written when the leecher's connection closes).
    good.proc.signal("TERM");
    good.proc.wait_exit(WAIT);
    let served = served_bytes(&good.proc.log_text());
    assert_eq!(served, ((CHUNKS - kept) * CHUNK) as u64, "kept {kept} chunks");
}

#[test]
fn killed_leecher_resumes_and_fetches_only_the_missing_chunks() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("resume");
    let (downloads, data) = interrupted_download(&t, &tmp);
    finish(&t, &tmp, &downloads, &data, "resuming film.bin: ");
}

#[test]
fn a_torn_sidecar_costs_only_a_recheck() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("torn");
    let (downloads, data) = interrupted_download(&t, &tmp);
    let side = downloads.join("film.bin.part.state");
    let len = std::fs::metadata(&side).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&side)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    finish(
        &t,
        &tmp,
        &downloads,
        &data,
        "re-checked the .part file of film.bin: ",
    );
}
