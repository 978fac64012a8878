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
