//! BitTorrent downloads in simulation: the engines and network of
//! `tests.rs`, the peers speaking BitTorrent v2 (seeders offer a torrent
//! with [`Command::BtShare`], leechers start [`Command::BtDownload`] with
//! the seeders' addresses). Every file is checked byte for byte, and the
//! bytes the seeders put on the wire are counted.

use super::tests::{content, done, failed};
use super::*;
use crate::bt::create::{Kind, NewFile, TorrentHasher};
use crate::client::engine::bittorrent::fetch::BtSource;
use crate::client::engine::EngineView;
use sha2::{Digest, Sha256};

/// A node seeding `bytes` as `name` over BitTorrent in pieces of
/// `piece_len`; returns it and the `.torrent` file's bytes (v2-only).
fn bt_seeder(sim: &mut Sim, name: &str, bytes: &[u8], piece_len: u64, hostile: Hostile) -> (usize, Vec<u8>) {
    bt_seeder_of(sim, name, bytes, piece_len, hostile, Kind::V2Only)
}

/// [`bt_seeder`] of a torrent of `kind` (v1, v2 or hybrid).
fn bt_seeder_of(
    sim: &mut Sim,
    name: &str,
    bytes: &[u8],
    piece_len: u64,
    hostile: Hostile,
    kind: Kind,
) -> (usize, Vec<u8>) {
    let n = sim.add_seeder(&[(name, bytes)], hostile);
    let file = NewFile {
        path: Vec::new(),
        len: bytes.len() as u64,
    };
    let mut h = TorrentHasher::new(name, vec![file], piece_len, kind).expect("a valid torrent");
    h.update(bytes).expect("its bytes");
    h.end_file().expect("one file");
    let made = h.finish(&[]).expect("a valid torrent");
    let path = sim.shared_path(n, name).expect("a seeder shares");
    sim.command(
        n,
        Command::BtShare {
            torrent: Box::new(made.metainfo),
            trees: made.trees,
            path,
        },
    );
    (n, made.bytes)
}

fn bt_get(sim: &mut Sim, node: usize, torrent: &[u8], seeders: &[usize]) {
    let peers = seeders.iter().map(|&s| sim.nodes[s].addr).collect();
    sim.command(
        node,
        Command::BtDownload {
            source: BtSource::Torrent(torrent.to_vec()),
            peers,
            only: Vec::new(),
        },
    );
}

fn assert_same(sim: &Sim, node: usize, name: &str, bytes: &[u8]) {
    assert!(
        done(sim, node),
        "node {node} did not finish: {:?}",
        failed(sim, node)
    );
    let got = std::fs::read(sim.downloaded(node, name)).expect("downloaded");
    assert_eq!(
        Sha256::digest(&got),
        Sha256::digest(bytes),
        "node {node}'s copy differs"
    );
}

/// Issue 17: a BitTorrent download that crashes (no goodbye, no last
/// record) and starts again keeps what its record holds: the seeder sends
/// at most 10% of the file twice.
#[test]
fn a_crashed_bittorrent_download_resumes_and_fetches_little_again() {
    for (seed, kind) in [
        (1, Kind::V2Only),
        (2, Kind::V2Only),
        (3, Kind::V1Only),
        (4, Kind::Hybrid),
    ] {
        let bytes = content(8 << 20, seed);
        let net = NetConfig {
            bytes_per_ms: 100,
            ..NetConfig::default()
        };
        let mut sim = Sim::new(seed, net);
        let (s, torrent) = bt_seeder_of(&mut sim, "big.bin", &bytes, 64 << 10, Hostile::default(), kind);
        let l = sim.add_leecher();
        bt_get(&mut sim, l, &torrent, &[s]);
        let half = |sim: &Sim| {
            let d = sim.nodes[l].engine.downloads();
            d.first().is_some_and(|d| d.done * 2 >= bytes.len() as u64)
        };
        assert!(sim.run_until(200_000, half), "no progress: {:?}", failed(&sim, l));
        sim.kill(l);
        sim.restart(l);
        bt_get(&mut sim, l, &torrent, &[s]);
        let resumed = sim.nodes[l].events.iter().find_map(|e| match e {
            Event::Resumed { verified, total, .. } => Some((*verified, *total)),
            _ => None,
        });
        let (verified, total) = resumed.expect("resumed from the record");
        assert!(verified * 5 >= total * 2, "{verified} of {total} pieces kept");
        sim.run_until(400_000, |s| done(s, l) || failed(s, l).is_some());
        assert_same(&sim, l, "big.bin", &bytes);
        let sent = sim.nodes[s].sent as f64 / bytes.len() as f64;
        eprintln!("{kind:?}: {verified} of {total} pieces resumed, the seeder sent {sent:.3}x the file");
        assert!(sent <= 1.10, "{kind:?}: the seeder sent {sent:.3}x the file");
    }
}
/// Issue 17: with 8 MiB pieces every piece mixes blocks from every peer;
/// corrupting peers are still found out, banned, and the download costs
/// at most twice the file (v2: block hashes name the bad blocks), 2.5
/// times under v1's SHA-1 pieces (issue 18: the peer that sent most of a
/// bad piece finishes it alone; measured 1.50x and 2.15x).
#[test]
fn corrupting_peers_inside_big_pieces_are_banned_and_cost_little() {
    for (corrupt, kind) in [
        (1, Kind::V2Only),
        (2, Kind::V2Only),
        (1, Kind::V1Only),
        (2, Kind::V1Only),
    ] {
        let bytes = content(16 << 20, 7 + corrupt as u64);
        let mut sim = Sim::new(7, NetConfig::default());
        let (honest, torrent) = bt_seeder_of(&mut sim, "big.bin", &bytes, 8 << 20, Hostile::default(), kind);
        let bad: Vec<usize> = (0..corrupt)
            .map(|_| {
                let h = Hostile {
                    corrupt_every: Some(1 << 20),
                    ..Hostile::default()
                };
                bt_seeder_of(&mut sim, "big.bin", &bytes, 8 << 20, h, kind).0
            })
            .collect();
        let l = sim.add_leecher();
        let all: Vec<usize> = std::iter::once(honest).chain(bad.iter().copied()).collect();
        bt_get(&mut sim, l, &torrent, &all);
        let bad_addrs: Vec<SocketAddr> = bad.iter().map(|&b| sim.nodes[b].addr).collect();
        let mut banned = Vec::new();
        sim.run_until(300_000, |s| {
            done(s, l) || failed(s, l).is_some() || {
                let b = s.nodes[l].engine.bt_banned();
                bad_addrs.iter().all(|a| b.contains(a))
            }
        });
        banned.extend(sim.nodes[l].engine.bt_banned());
        sim.run_until(300_000, |s| done(s, l) || failed(s, l).is_some());
        // Bans told to the user count too (a ban at the last piece comes
        // with the end of the download).
        for e in &sim.nodes[l].events {
            if let Event::Warning(w) = e {
                banned.extend(
                    bad_addrs
                        .iter()
                        .filter(|a| w.contains(&format!("dropped peer {a} "))),
                );
            }
        }
        assert_same(&sim, l, "big.bin", &bytes);
        for a in &bad_addrs {
            assert!(
                banned.contains(a),
                "{kind:?}, {corrupt} corrupting: {a} was not banned ({banned:?})"
            );
        }
        assert!(
            !banned.contains(&sim.nodes[honest].addr),
            "the honest seeder was banned"
        );
        let sent: u64 = all.iter().map(|&n| sim.nodes[n].sent).sum();
        let ratio = sent as f64 / bytes.len() as f64;
        eprintln!("{kind:?}, {corrupt} corrupting: {ratio:.3}x the file in traffic");
        // v1 has no block hashes: the others' share of a bad piece mixing
        // peers is fetched again from one peer before anyone is blamed.
        let bound = if kind == Kind::V1Only { 2.5 } else { 2.0 };
        assert!(
            ratio <= bound,
            "{kind:?}, {corrupt} corrupting: {ratio:.2}x the file in traffic"
        );
    }
}

/// Issue 17: a finished BitTorrent download that the user shares is
/// seeded to BitTorrent peers: once the first seeder is gone, a third
/// node downloads the file from it alone.
#[test]
fn a_shared_bittorrent_download_is_seeded_on() {
    let bytes = content((3 << 20) + 777, 5);
    let slow = NetConfig {
        bytes_per_ms: 300,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(5, slow);
    let (s, torrent) = bt_seeder(&mut sim, "on.bin", &bytes, 256 << 10, Hostile::default());
    // A node that shares (an empty directory): it may seed what it gets.
    let l = sim.add_seeder(&[], Hostile::default());
    bt_get(&mut sim, l, &torrent, &[s]);
    // It crashes half-way: what it resumes must be seeded too.
    let half = |sim: &Sim| {
        let d = sim.nodes[l].engine.downloads();
        d.first().is_some_and(|d| d.done * 2 >= bytes.len() as u64)
    };
    assert!(sim.run_until(60_000, half));
    sim.restart(l);
    bt_get(&mut sim, l, &torrent, &[s]);
    sim.run_until(60_000, |sim| done(sim, l) || failed(sim, l).is_some());
    assert_same(&sim, l, "on.bin", &bytes);
    let (meta, path) = sim.nodes[l]
        .events
        .iter()
        .find_map(|e| match e {
            Event::DownloadDone { meta, path } => Some((meta.clone(), path.clone())),
            _ => None,
        })
        .expect("done");
    sim.command(l, Command::Share { meta, path });
    sim.kill(s);
    let m = sim.add_leecher();
    bt_get(&mut sim, m, &torrent, &[l]);
    sim.run_until(120_000, |sim| done(sim, m) || failed(sim, m).is_some());
    assert_same(&sim, m, "on.bin", &bytes);
}

/// Issue 17: BitTorrent seeders that stall after a little, or trickle a
/// byte at a time, beside an honest one: every download finishes, and
/// soon (a trickle is not progress).
#[test]
fn stalled_and_trickling_bittorrent_seeders_do_not_hold_a_download() {
    for seed in [3, 4] {
        let bytes = content((2 << 20) + 99, seed);
        let mut sim = Sim::new(seed, NetConfig::default());
        let (honest, torrent) = bt_seeder(&mut sim, "t.bin", &bytes, 64 << 10, Hostile::default());
        let stall = Hostile {
            stall_after: Some(20_000),
            ..Hostile::default()
        };
        let trickle = Hostile {
            trickle_ms: Some(50),
            ..Hostile::default()
        };
        let bad: Vec<usize> = [stall, trickle, stall, trickle]
            .into_iter()
            .map(|h| bt_seeder(&mut sim, "t.bin", &bytes, 64 << 10, h).0)
            .collect();
        let leechers: Vec<usize> = (0..3).map(|_| sim.add_leecher()).collect();
        let all: Vec<usize> = bad.iter().copied().chain(std::iter::once(honest)).collect();
        for &l in &leechers {
            bt_get(&mut sim, l, &torrent, &all);
        }
        let finished = sim.run_until(40_000, |s| leechers.iter().all(|&l| done(s, l)));
        for &l in &leechers {
            assert_same(&sim, l, "t.bin", &bytes);
        }
        assert!(finished && sim.now_ms <= 40_000, "seed {seed}: {} ms", sim.now_ms);
        eprintln!(
            "seed {seed}: 3 leechers done in {} ms of simulated time",
            sim.now_ms
        );
    }
}

/// Issue 19, attack 4, end to end on the BitTorrent side: a list of 200
/// candidates (the `--peer` list here; a BEP 15 answer goes to the same
/// peer set), 199 tarpits on a few hosts first and the honest seeder last.
/// The list is kept whole (it was cut to 64), attempts spread over
/// networks, and the file arrives within 15 s, checked byte for byte.
#[test]
fn a_200_peer_list_with_the_honest_seeder_last_is_served_within_15_s() {
    for seed in [1, 2, 3, 4] {
        let bytes = content(256 << 10, seed);
        let mut sim = Sim::new(seed, NetConfig::default());
        let (s, torrent) = bt_seeder(&mut sim, "last.bin", &bytes, 64 << 10, Hostile::default());
        let l = sim.add_leecher();
        let hosts = 1 + seed as u8;
        let mut peers = Vec::new();
        for h in 0..hosts {
            let count = 199 / u16::from(hosts) + u16::from(h == 0) * (199 % u16::from(hosts));
            peers.extend(sim.add_silent(std::net::IpAddr::from([10, 251, h, 1]), count));
        }
        assert_eq!(peers.len(), 199);
        peers.push(sim.nodes[s].addr);
        sim.command(
            l,
            Command::BtDownload {
                source: BtSource::Torrent(torrent.clone()),
                peers,
                only: Vec::new(),
            },
        );
        let start = sim.now_ms;
        sim.run_until(start + 15_000, |sim| done(sim, l) || failed(sim, l).is_some());
        assert_same(&sim, l, "last.bin", &bytes);
    }
}

/// Issue 17: BitTorrent downloads serve their verified pieces while they
/// run: leechers that know each other take part of the file from each
/// other, not all of it from the one seeder.
#[test]
fn bittorrent_leechers_serve_each_other_while_downloading() {
    let bytes = content(4 << 20, 11);
    let net = NetConfig {
        bytes_per_ms: 500,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(11, net);
    let (s, torrent) = bt_seeder(&mut sim, "swarm.bin", &bytes, 64 << 10, Hostile::default());
    let leechers: Vec<usize> = (0..4).map(|_| sim.add_leecher()).collect();
    for (i, &l) in leechers.iter().enumerate() {
        // The seeder, and the leechers that started before it.
        let known: Vec<usize> = std::iter::once(s).chain(leechers[..i].iter().copied()).collect();
        bt_get(&mut sim, l, &torrent, &known);
        let until = sim.now_ms + 1_000;
        sim.run_until(until, |sim| sim.now_ms >= until);
    }
    sim.run_until(120_000, |sim| {
        leechers.iter().all(|&l| done(sim, l) || failed(sim, l).is_some())
    });
    for &l in &leechers {
        assert_same(&sim, l, "swarm.bin", &bytes);
    }
    let from_leechers: u64 = leechers.iter().map(|&l| sim.nodes[l].sent).sum();
    let size = bytes.len() as u64;
    eprintln!(
        "the seeder sent {:.2}x the file, the leechers {:.2}x",
        sim.nodes[s].sent as f64 / size as f64,
        from_leechers as f64 / size as f64
    );
    assert!(
        from_leechers >= size / 2,
        "the leechers sent each other only {from_leechers} bytes"
    );
}

/// The working files under a node's downloads directory.
fn working_files(sim: &Sim, node: usize) -> Vec<String> {
    let work = sim.nodes[node].downloads.path().join(".pytorrent");
    let Ok(entries) = std::fs::read_dir(work) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Issue 17: a BitTorrent download that fails without a verified piece
/// leaves nothing on disk; one that fails after some says which working
/// file it kept, and the file is there to resume.
#[test]
fn a_failed_bittorrent_download_keeps_only_what_it_verified() {
    let bytes = content(1 << 20, 21);
    let mut sim = Sim::new(21, NetConfig::default());
    let corrupt = Hostile {
        corrupt_every: Some(8 << 10),
        ..Hostile::default()
    };
    let (bad, torrent) = bt_seeder(&mut sim, "f.bin", &bytes, 64 << 10, corrupt);
    let l = sim.add_leecher();
    bt_get(&mut sim, l, &torrent, &[bad]);
    sim.run_until(120_000, |s| done(s, l) || failed(s, l).is_some());
    let why = failed(&sim, l).expect("every piece it sent was bad");
    assert!(!why.contains("kept"), "{why}");
    assert!(
        working_files(&sim, l).is_empty(),
        "left {:?}",
        working_files(&sim, l)
    );

    let slow = NetConfig {
        bytes_per_ms: 100,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(22, slow);
    let (s, torrent) = bt_seeder(&mut sim, "f.bin", &bytes, 64 << 10, Hostile::default());
    let l = sim.add_leecher();
    bt_get(&mut sim, l, &torrent, &[s]);
    let some = |sim: &Sim| {
        let d = sim.nodes[l].engine.downloads();
        d.first().is_some_and(|d| d.done * 4 >= bytes.len() as u64)
    };
    assert!(sim.run_until(60_000, some));
    sim.kill(s);
    sim.run_until(200_000, |sim| failed(sim, l).is_some());
    let why = failed(&sim, l).expect("the seeder is gone");
    assert!(why.contains("kept") && why.contains("bytes verified"), "{why}");
    assert!(
        working_files(&sim, l).iter().any(|f| f.ends_with(".part")),
        "{:?}",
        working_files(&sim, l)
    );
}

/// Issue 17: a BitTorrent download is in the downloads view (by its v2
/// info hash), can be cancelled keeping its verified pieces, and resumes
/// when asked for again.
#[test]
fn a_bittorrent_download_is_viewed_cancelled_and_resumed() {
    let bytes = content(2 << 20, 23);
    let slow = NetConfig {
        bytes_per_ms: 100,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(23, slow);
    let (s, torrent) = bt_seeder(&mut sim, "v.bin", &bytes, 64 << 10, Hostile::default());
    let l = sim.add_leecher();
    bt_get(&mut sim, l, &torrent, &[s]);
    let info_hash = crate::bt::metainfo::Metainfo::from_file_bytes(&torrent)
        .unwrap()
        .hashes
        .v2
        .unwrap();
    let some = |sim: &Sim| {
        let d = sim.nodes[l].engine.downloads();
        d.first().is_some_and(|d| d.done * 3 >= bytes.len() as u64)
    };
    assert!(sim.run_until(60_000, some));
    let view = sim.nodes[l].engine.downloads();
    assert_eq!(view.len(), 1);
    assert_eq!(
        (view[0].id, view[0].total, view[0].name.as_str()),
        (info_hash, bytes.len() as u64, "v.bin")
    );
    sim.command(l, Command::Cancel(info_hash));
    assert!(sim.nodes[l].engine.downloads().is_empty());
    assert!(sim.nodes[l]
        .events
        .iter()
        .any(|e| matches!(e, Event::DownloadCancelled { name, kept: true, .. } if name == "v.bin")));
    bt_get(&mut sim, l, &torrent, &[s]);
    let resumed = sim.nodes[l].events.iter().find_map(|e| match e {
        Event::Resumed { verified, .. } => Some(*verified),
        _ => None,
    });
    assert!(resumed.is_some_and(|v| v * 3 >= 32), "{resumed:?} of 32 pieces");
    sim.run_until(120_000, |sim| done(sim, l) || failed(sim, l).is_some());
    assert_same(&sim, l, "v.bin", &bytes);
}
