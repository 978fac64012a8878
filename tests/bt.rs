//! BitTorrent v2 between project clients, with the real binaries and no
//! other software: a seeder started with `--seed --torrent NAME` writes the
//! torrent and prints its magnet link; one leecher downloads by the
//! `.torrent`, finding the seeder only through the tracker's BEP 15 side;
//! another by the magnet link and `--peer` (metadata by `ut_metadata`, the
//! piece layer by hash requests with proofs). Both files must have the
//! original's SHA-256, and a third client fetches the file over the
//! project's own protocol from the same port. A seeder that serves a flipped byte in every piece
//! is struck, then dropped, and no file is put in place. (The interop tests with libtorrent are in
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
    let magnet = seeder.wait_line("magnet:?xt=urn:btih:", READY);
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
    // A hybrid's magnet: its pieces are checked by the v1 hashes in the
    // info dictionary, with no piece layer to fetch.
    let log = two.log_text();
    assert!(log.contains("metadata verified"), "{log}");

    // The same listening port still serves the project's own protocol.
    let native = tmp.mkdir("native");
    let mut a = args(&["--get", "film.bin", "-u", "three"]);
    a.extend(["-t".into(), t.addr.to_string(), "-d".into(), s(&native)]);
    let mut three = ClientProc::start(&tmp, "three", &a);
    three.wait_line("downloaded film.bin", WAIT);
    assert_eq!(three.wait_code(WAIT), 0, "{}", three.report());
    assert_eq!(sha256_file(&native.join("film.bin")), sha256_hex(&data));
}

/// A BitTorrent peer that has every piece of `torrent` and answers block
/// requests from `data` with the 100th byte of every piece flipped.
fn lying_seeder(torrent: &[u8], data: Vec<u8>) -> std::net::SocketAddr {
    use pytorrent::bt::torrent::Torrent;
    use pytorrent::bt::wire::{decode, encode, put_piece_header, Handshake, Msg, HANDSHAKE_LEN};
    use std::io::{Read, Write};
    let t = Torrent::from_file_bytes(torrent).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut served = data;
    let piece = t.layout.piece_len as usize;
    let last = served.len() - 1;
    for at in (0..served.len()).step_by(piece) {
        served[(at + 100).min(last)] ^= 0xff;
    }
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut hs = [0u8; HANDSHAKE_LEN];
            if c.read_exact(&mut hs).is_err() {
                continue;
            }
            let mut out = Vec::new();
            Handshake::new(t.short_hash(), [7; 20]).encode(&mut out);
            let pieces = t.layout.pieces() as usize;
            encode(&Msg::Bitfield(&vec![0xff; pieces.div_ceil(8)]), &mut out);
            encode(&Msg::Unchoke, &mut out);
            let _ = c.write_all(&out);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = c.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let mut out = Vec::new();
                while let Ok(Some((msg, used))) = decode(&buf) {
                    if let Msg::Request { index, begin, length } = msg {
                        let at = index as usize * piece + begin as usize;
                        put_piece_header(&mut out, index, begin, length as usize);
                        out.extend_from_slice(&served[at..at + length as usize]);
                    }
                    buf.drain(..used);
                }
                if c.write_all(&out).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

#[test]
fn a_seeder_of_bad_pieces_is_dropped_and_nothing_is_put_in_place() {
    use pytorrent::bt::merkle::{Layout, Tree};
    use pytorrent::bt::torrent::Torrent;
    let tmp = TempDir::new("bt-bad");
    let data = random_bytes(300 << 10, 9);
    let layout = Layout {
        size: data.len() as u64,
        piece_len: 64 << 10,
    };
    let tree = Tree::from_reader(layout, &data[..]).unwrap();
    let (_, torrent) = Torrent::for_tree("film.bin", &tree, &[]).unwrap();
    let path = tmp.join("film.bin.torrent");
    std::fs::write(&path, &torrent).unwrap();
    let liar = lying_seeder(&torrent, data);
    let downloads = tmp.mkdir("downloads");
    let mut a = args(&[
        "--get",
        &s(&path),
        "--peer",
        &liar.to_string(),
        "-u",
        "victim",
        "--peer-wait",
        "3",
    ]);
    a.extend(["-t".into(), "127.0.0.1:9".into(), "-d".into(), s(&downloads)]);
    let mut victim = ClientProc::start(&tmp, "victim", &a);
    assert_eq!(victim.wait_code(WAIT), 1, "{}", victim.report());
    let log = victim.log_text();
    assert!(log.contains("failed its hash"), "{log}");
    assert!(log.contains("peer dropped for film.bin"), "{log}");
    assert!(
        !downloads.join("film.bin").exists(),
        "a bad file was put in place"
    );
}
