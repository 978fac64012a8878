//! Resume drills with the real binaries: a leecher killed with SIGKILL
//! mid-download starts again and fetches only the chunks it lacked (the
//! count it reports and the bytes its peer served must agree); a torn
//! sidecar costs only a re-check of the `.part` file.

mod common;

use common::{
    interrupted_download, leecher, records, seed, served_bytes, sha256_file, sha256_hex, shared_dir,
    working_files, TempDir, TrackerProc, CHUNK, INTERRUPTED_CHUNKS as CHUNKS,
};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

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
    assert!(working_files(downloads).is_empty());
    assert!(
        !downloads.join(".pytorrent").exists(),
        "the working directory is tidied away"
    );
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
    let downloads = tmp.mkdir("downloads");
    let data = interrupted_download(&t, &tmp, &downloads);
    finish(&t, &tmp, &downloads, &data, "resuming film.bin: ");
}

#[test]
fn a_torn_sidecar_costs_only_a_recheck() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("torn");
    let downloads = tmp.mkdir("downloads");
    let data = interrupted_download(&t, &tmp, &downloads);
    let side = records(&downloads).pop().expect("a resume record");
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
