//! BitTorrent v2 between project clients, with the real binaries and no
//! other software: a seeder started with `--seed --torrent NAME` writes the
//! torrent and prints its magnet link; one leecher downloads by the
//! `.torrent`, finding the seeder only through the tracker's BEP 15 side;
//! another by the magnet link and `--peer` (metadata by `ut_metadata`, the
//! piece layer by hash requests with proofs). Both files must have the
//! original's SHA-256. (The interop tests with libtorrent are in
//! `tests/interop/run.py`.)

mod common;

use common::{
    args, random_bytes, s, seeding_addr, sha256_file, sha256_hex, shared_dir, ClientProc, TempDir,
    TrackerProc, READY,
};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_seeded_torrent_downloads_by_its_torrent_file_and_by_its_magnet_link() {
    let t = TrackerProc::start(&[]);
    let tmp = TempDir::new("bt");
    // 62 pieces of 16 KiB, the last short: a piece layer of more than one
    // hash request's proof, and tail padding.
    let data = random_bytes(1_000_123, 5);
    let shared = shared_dir(&tmp, "seed", &[("film.bin", &data)]);
    let here = tmp.mkdir("torrents");
    let mut a = args(&[
        "--seed",
        "--torrent",
        "film.bin",
        "--piece-size-kib",
        "16",
        "-u",
        "seed",
    ]);
    a.extend(["-t".into(), t.addr.to_string(), "-s".into(), s(&shared)]);
    a.extend(["-d".into(), s(&tmp.mkdir("seed-downloads"))]);
    let mut seeder = ClientProc::start_with(&tmp, "seed", &a, |c| {
        c.current_dir(&here);
    });
    let wrote = seeder.wait_line("wrote film.bin.torrent", READY);
    assert!(wrote.contains("62 pieces of 16 KiB"), "{wrote}");
    let magnet = seeder.wait_line("magnet:?xt=urn:btmh:1220", READY);
    let addr = seeding_addr(&seeder.wait_line("seeding ", READY));

    let by_torrent = tmp.mkdir("by-torrent");
    let mut a = args(&["--get", &s(&here.join("film.bin.torrent")), "-u", "one"]);
    a.extend(["-t".into(), t.addr.to_string(), "-d".into(), s(&by_torrent)]);
    let mut one = ClientProc::start(&tmp, "one", &a);
    one.wait_line("downloaded film.bin", WAIT);
    assert_eq!(one.wait_code(WAIT), 0, "{}", one.report());
    assert_eq!(sha256_file(&by_torrent.join("film.bin")), sha256_hex(&data));

    let by_magnet = tmp.mkdir("by-magnet");
    let mut a = args(&["--get", &magnet, "--peer", &addr.to_string(), "-u", "two"]);
    a.extend(["-t".into(), t.addr.to_string(), "-d".into(), s(&by_magnet)]);
    let mut two = ClientProc::start(&tmp, "two", &a);
    let line = two.wait_line("downloaded film.bin", WAIT);
    assert_eq!(two.wait_code(WAIT), 0, "{}", two.report());
    assert!(line.contains(&sha256_hex(&data)), "{line}");
    assert_eq!(sha256_file(&by_magnet.join("film.bin")), sha256_hex(&data));
    let log = two.log_text();
    assert!(
        log.contains("metadata verified") && log.contains("piece layer verified"),
        "{log}"
    );
}
