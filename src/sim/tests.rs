//! Swarms in simulation: every file verified byte for byte against the
//! original, whatever the peers do.

use super::*;
use crate::client::engine::{EngineView, Listed, MAX_CONNS_PER_DOWNLOAD};
use crate::meta::FileMeta;
use sha2::{Digest, Sha256};

/// `len` bytes that differ by `seed` and do not repeat within a chunk.
pub(super) fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::seeded(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

fn id_of(name: &str, bytes: &[u8]) -> crate::wire::FileId {
    FileMeta::from_reader(name, bytes, MIN_CHUNK_SIZE).unwrap().id()
}

pub(super) fn done(sim: &Sim, node: usize) -> bool {
    sim.nodes[node]
        .events
        .iter()
        .any(|e| matches!(e, Event::DownloadDone { .. }))
}

pub(super) fn failed(sim: &Sim, node: usize) -> Option<String> {
    sim.nodes[node].events.iter().find_map(|e| match e {
        Event::DownloadFailed { why, .. } => Some(why.clone()),
        _ => None,
    })
}

/// Starts the download of `name` on every leecher.
fn get_all(sim: &mut Sim, leechers: &[usize], name: &str, bytes: &[u8]) {
    for &l in leechers {
        let id = id_of(name, bytes);
        sim.command(
            l,
            Command::Download {
                id,
                label: name.into(),
                listed: Some(Listed {
                    name: name.into(),
                    size: bytes.len() as u64,
                }),
                output: None,
            },
        );
    }
}

/// Each leecher holds a file whose SHA-256 is the original's.
fn assert_verified(sim: &Sim, leechers: &[usize], name: &str, bytes: &[u8]) {
    let want: [u8; 32] = Sha256::digest(bytes).into();
    for &l in leechers {
        assert!(done(sim, l), "node {l} did not finish: {:?}", failed(sim, l));
        let got: [u8; 32] = Sha256::digest(std::fs::read(sim.downloaded(l, name)).unwrap()).into();
        assert_eq!(got, want, "node {l}'s copy differs");
    }
}

/// Connections node `from` opened to node `to`.
fn connects(sim: &Sim, from: usize, to: usize) -> usize {
    let needle = format!(" n{from} connected n{to}");
    sim.trace.iter().filter(|l| l.ends_with(&needle)).count()
}

fn swarm(
    seed: u64,
    leechers: usize,
    hostile: &[Hostile],
    kill_at: Option<u64>,
) -> (Sim, Vec<usize>, Vec<u8>) {
    let bytes = content(40 * MIN_CHUNK_SIZE as usize + 123, seed);
    // 400 KB/s a connection: slow enough that downloaders find each other
    // (at the tracker, once they hold chunks) before the seeder alone has
    // served everyone.
    let net = NetConfig {
        bytes_per_ms: 400,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, net);
    for h in hostile {
        sim.add_seeder(&[("film.bin", &bytes)], *h);
    }
    let ls: Vec<usize> = (0..leechers).map(|_| sim.add_leecher()).collect();
    // Seeders register and announce first.
    let seeders = hostile.len();
    assert!(sim.run_until(5_000, |s| (0..seeders)
        .all(|n| s.nodes[n].events.iter().any(|e| matches!(e, Event::Ready)))));
    get_all(&mut sim, &ls, "film.bin", &bytes);
    if let Some(at) = kill_at {
        let until = sim.now_ms + at;
        sim.run_until(until, |s| s.now_ms >= until);
        assert!(
            ls.iter().any(|&l| !done(&sim, l)),
            "killed too late: everyone is done"
        );
        sim.kill(0);
    }
    let all = ls.clone();
    sim.run_until(120_000, |s| {
        all.iter().all(|&l| done(s, l) || failed(s, l).is_some())
    });
    (sim, ls, bytes)
}

#[test]
fn one_seeder_and_eight_leechers_all_verify() {
    let (sim, ls, bytes) = swarm(1, 8, &[Hostile::default()], None);
    assert_verified(&sim, &ls, "film.bin", &bytes);
    // Downloaders fetched from each other, not only from the seeder.
    let between: usize = ls
        .iter()
        .flat_map(|&a| ls.iter().map(move |&b| (a, b)))
        .map(|(a, b)| connects(&sim, a, b))
        .sum();
    assert!(
        between > 0,
        "no leecher connected to another:\n{}",
        sim.trace.join("\n")
    );
}

#[test]
fn a_killed_seeder_is_survived() {
    let (sim, ls, bytes) = swarm(2, 3, &[Hostile::default(), Hostile::default()], Some(60));
    assert!(sim.trace.iter().any(|l| l.ends_with("n0 killed")));
    assert_verified(&sim, &ls, "film.bin", &bytes);
}

#[test]
fn a_corrupt_seeder_is_dropped_and_nothing_bad_is_kept() {
    let corrupt = Hostile {
        corrupt_every: Some(5000),
        ..Hostile::default()
    };
    let (sim, ls, bytes) = swarm(3, 3, &[corrupt, Hostile::default()], None);
    assert_verified(&sim, &ls, "film.bin", &bytes);
    for &l in &ls {
        // Banned after its second bad chunk: no endless reconnects.
        assert!(
            connects(&sim, l, 0) <= 2,
            "node {l} kept going back to the corrupt seeder"
        );
    }
}

#[test]
fn a_stalled_seeder_is_survived() {
    let stalled = Hostile {
        stall_after: Some(20_000),
        ..Hostile::default()
    };
    let (sim, ls, bytes) = swarm(4, 2, &[stalled, Hostile::default()], None);
    assert_verified(&sim, &ls, "film.bin", &bytes);
}

#[test]
fn a_trickling_seeder_does_not_hold_the_metadata_hostage() {
    // The leecher meets the trickler first (one byte every 2 s, enough
    // to look alive), and an honest seeder only later.
    let bytes = content(40 * MIN_CHUNK_SIZE as usize, 10);
    let mut sim = Sim::new(10, NetConfig::default());
    let trickle = Hostile {
        trickle_ms: Some(2000),
        ..Hostile::default()
    };
    sim.add_seeder(&[("film.bin", &bytes)], trickle);
    let l = sim.add_leecher();
    assert!(sim.run_until(5_000, |s| s.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Ready))));
    get_all(&mut sim, &[l], "film.bin", &bytes);
    let until = sim.now_ms + 500;
    sim.run_until(until, |s| s.now_ms >= until);
    assert_eq!(connects(&sim, l, 0), 1, "the leecher met the trickler first");
    let honest = sim.add_seeder(&[("film.bin", &bytes)], Hostile::default());
    assert!(sim.run_until(60_000, |s| done(s, l) || failed(s, l).is_some()));
    assert_verified(&sim, &[l], "film.bin", &bytes);
    assert!(connects(&sim, l, honest) > 0);
}

#[test]
fn a_sole_stalled_seeder_makes_the_download_fail_not_hang() {
    let stalled = Hostile {
        stall_after: Some(0),
        ..Hostile::default()
    };
    let (sim, ls, _) = swarm(5, 1, &[stalled], None);
    assert!(!done(&sim, ls[0]));
    let why = failed(&sim, ls[0]).expect("the download neither finished nor failed");
    assert!(why.contains("delivered"), "{why}");
    // It gave up after the configured minute, not at once and not never.
    assert!(
        (60_000..70_000).contains(&sim.now_ms),
        "gave up at {} ms",
        sim.now_ms
    );
}

#[test]
fn metadata_that_contradicts_the_listing_is_refused_before_anything_is_written() {
    // A host announced the id of a large "holiday.jpg.desktop" as a small
    // "holiday.jpg": the metadata (which does hash to the id) says otherwise.
    let bytes = content(40 * MIN_CHUNK_SIZE as usize, 8);
    let mut sim = Sim::new(8, NetConfig::default());
    sim.add_seeder(&[("holiday.jpg.desktop", &bytes)], Hostile::default());
    let l = sim.add_leecher();
    assert!(sim.run_until(5_000, |s| s.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Ready))));
    let id = id_of("holiday.jpg.desktop", &bytes);
    for (name, size) in [("holiday.jpg", bytes.len() as u64), ("holiday.jpg.desktop", 1024)] {
        sim.nodes[l].events.clear();
        let listed = Some(Listed {
            name: name.into(),
            size,
        });
        let label = name.to_string();
        sim.command(
            l,
            Command::Download {
                id,
                label,
                listed,
                output: None,
            },
        );
        sim.run_until(sim.now_ms + 120_000, |s| failed(s, l).is_some() || done(s, l));
        let why = failed(&sim, l).expect("the download went on");
        assert!(why.contains("dropped") || why.contains("delivered"), "{why}");
        let left: Vec<_> = std::fs::read_dir(sim.nodes[l].downloads.path())
            .unwrap()
            .collect();
        assert!(left.is_empty(), "something was written: {left:?}");
    }
}

#[test]
fn a_client_that_asks_and_never_reads_loses_its_slot() {
    let bytes = content(40 * MIN_CHUNK_SIZE as usize, 11);
    let mut sim = Sim::new(11, NetConfig::default());
    let s = sim.add_seeder(&[("film.bin", &bytes)], Hostile::default());
    assert!(sim.run_until(5_000, |s| s.nodes[0]
        .events
        .iter()
        .any(|e| matches!(e, Event::Ready))));
    let id = id_of("film.bin", &bytes);
    let mut asks = Vec::new();
    for index in 0..8 {
        crate::wire::peer::encode_peer_msg(
            &crate::wire::peer::PeerMsg::GetChunk { id, index },
            &[],
            &mut asks,
        )
        .unwrap();
    }
    let from = SocketAddr::from(([10, 9, 9, 9], 4000));
    let conn = sim.add_raw_client(s, from, asks).expect("admitted");
    let start = sim.now_ms;
    let closed = format!(" n{s} close c{}", conn.0);
    assert!(sim.run_until(start + 30_000, |sim| sim
        .trace
        .iter()
        .any(|l| l.ends_with(&closed))));
    // It had its chunks' first bytes out (progress), then nothing: closed
    // one idle timeout (10 s here) later, not never.
    let waited = sim.now_ms - start;
    assert!((10_000..12_000).contains(&waited), "closed after {waited} ms");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let corrupt = Hostile {
        corrupt_every: Some(5000),
        ..Hostile::default()
    };
    let (a, ..) = swarm(6, 6, &[corrupt, Hostile::default()], None);
    let (b, ..) = swarm(6, 6, &[corrupt, Hostile::default()], None);
    assert!(a.trace.len() > 40, "too little happened: {:?}", a.trace);
    assert_eq!(a.trace, b.trace);
}

#[test]
fn an_eclipse_of_silent_peers_does_not_hide_the_honest_seeder() {
    // 600 hosts share the file and accept connections but never answer
    // (far more than a download remembers, and than it connects to at
    // once); one honest seeder joins last. It must be found before the
    // download gives up (60 s without progress).
    let bytes = content(4 * MIN_CHUNK_SIZE as usize, 12);
    let mut sim = Sim::new(12, NetConfig::default());
    let silent = Hostile {
        stall_after: Some(0),
        ..Hostile::default()
    };
    for _ in 0..600 {
        sim.add_seeder(&[("film.bin", &bytes)], silent);
    }
    let honest = sim.add_seeder(&[("film.bin", &bytes)], Hostile::default());
    let l = sim.add_leecher();
    assert!(sim.run_until(10_000, |s| (0..=honest)
        .all(|n| s.nodes[n].events.iter().any(|e| matches!(e, Event::Ready)))));
    get_all(&mut sim, &[l], "film.bin", &bytes);
    let start = sim.now_ms;
    assert!(sim.run_until(start + 120_000, |s| done(s, l) || failed(s, l).is_some()));
    assert_verified(&sim, &[l], "film.bin", &bytes);
    assert!(connects(&sim, l, honest) > 0);
    eprintln!("eclipse: done after {} ms of simulated time", sim.now_ms - start);
}

#[test]
fn the_search_for_metadata_opens_more_connections_and_gives_them_back() {
    // 40 honest seeders: while the metadata is sought a download opens up
    // to SEARCH_CONNS connections; once it is in, only
    // MAX_CONNS_PER_DOWNLOAD stay.
    let bytes = content(64 * MIN_CHUNK_SIZE as usize, 14);
    let mut sim = Sim::new(14, NetConfig::default());
    let seeders: Vec<usize> = (0..40)
        .map(|_| sim.add_seeder(&[("film.bin", &bytes)], Hostile::default()))
        .collect();
    let l = sim.add_leecher();
    assert!(sim.run_until(10_000, |s| seeders
        .iter()
        .all(|&n| s.nodes[n].events.iter().any(|e| matches!(e, Event::Ready)))));
    get_all(&mut sim, &[l], "film.bin", &bytes);
    let start = sim.now_ms;
    let (mut most_searching, mut most_after) = (0, 0);
    while !done(&sim, l) && failed(&sim, l).is_none() && sim.now_ms < start + 60_000 {
        let now = sim.now_ms;
        sim.run_until(now + 5, |_| false);
        if let Some(d) = sim.nodes[l].engine.downloads().first() {
            if d.has_meta {
                most_after = most_after.max(d.peers);
            } else {
                most_searching = most_searching.max(d.peers);
            }
        }
    }
    assert_verified(&sim, &[l], "film.bin", &bytes);
    assert!(most_searching > MAX_CONNS_PER_DOWNLOAD, "{most_searching}");
    assert!(most_after <= MAX_CONNS_PER_DOWNLOAD, "{most_after}");
}

/// The TCP addresses the tracker gives out for `id` (asked as node `asker`).
fn holders(sim: &mut Sim, asker: usize, id: crate::wire::FileId) -> Vec<SocketAddr> {
    let from = sim.nodes[asker].addr;
    let now = (sim.now_ms / 1000) as u32;
    match sim
        .tracker
        .registry
        .handle(from, crate::wire::tracker::RequestBody::GetPeers { id }, now)
    {
        crate::wire::tracker::ReplyBody::Peers { peers, .. } => peers,
        other => panic!("{other:?}"),
    }
}

/// Issue 11: a cancelled download stops, is withdrawn from the tracker,
/// keeps its verified chunks in its `.part` file and record (so it is
/// offered at the next start), and resumes from them when asked again.
#[test]
fn a_cancelled_download_keeps_its_part_and_resumes() {
    let bytes = content(40 * MIN_CHUNK_SIZE as usize, 31);
    let slow = NetConfig {
        bytes_per_ms: 100,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(31, slow);
    let seeder = sim.add_seeder(&[("slow.bin", &bytes)], Hostile::default());
    let l = sim.add_leecher();
    assert!(sim.run_until(5_000, |s| s.nodes[seeder]
        .events
        .iter()
        .any(|e| matches!(e, Event::Ready))));
    get_all(&mut sim, &[l], "slow.bin", &bytes);
    let id = id_of("slow.bin", &bytes);
    let part_way = |s: &Sim| {
        s.nodes[l]
            .engine
            .downloads()
            .first()
            .is_some_and(|d| d.done > 8 * u64::from(MIN_CHUNK_SIZE))
    };
    assert!(sim.run_until(60_000, part_way), "no progress");
    let leecher_addr = sim.nodes[l].addr;
    assert!(
        holders(&mut sim, seeder, id).contains(&leecher_addr),
        "announced as partial"
    );

    sim.command(l, Command::Cancel(id));
    assert!(sim.nodes[l].engine.downloads().is_empty());
    assert!(sim.nodes[l]
        .events
        .iter()
        .any(|e| matches!(e, Event::DownloadCancelled { name, kept: true, .. } if name == "slow.bin")));
    let until = sim.now_ms + 3_000;
    sim.run_until(until, |s| s.now_ms >= until);
    assert!(
        !holders(&mut sim, seeder, id).contains(&leecher_addr),
        "still announced"
    );
    assert!(!done(&sim, l) && failed(&sim, l).is_none());
    let unfinished = sim.nodes[l].engine.unfinished();
    assert_eq!(unfinished.len(), 1, "offered for resume at the next start");
    let (_, ref name, kept, total) = unfinished[0];
    assert!(name == "slow.bin" && kept >= 8 && kept < total, "{unfinished:?}");

    get_all(&mut sim, &[l], "slow.bin", &bytes);
    let resumed = sim.nodes[l].events.iter().find_map(|e| match e {
        Event::Resumed { verified, .. } => Some(*verified),
        _ => None,
    });
    assert_eq!(resumed, Some(kept));
    sim.run_until(120_000, |s| done(s, l) || failed(s, l).is_some());
    assert_verified(&sim, &[l], "slow.bin", &bytes);
}

/// Issue 11: a file dropped into the shared directory is shared without a
/// restart (the timer rescan), and one the user stops sharing is withdrawn
/// from the tracker, stays on disk, and is not picked up again.
#[test]
fn dropped_in_files_are_shared_and_unshared_ones_withdrawn() {
    let first = content(3 * MIN_CHUNK_SIZE as usize, 41);
    let mut sim = Sim::new(41, NetConfig::default());
    let seeder = sim.add_seeder(&[("first.bin", &first)], Hostile::default());
    let watcher = sim.add_leecher();
    assert!(sim.run_until(5_000, |s| s.nodes[seeder]
        .events
        .iter()
        .any(|e| matches!(e, Event::Ready))));
    let seeder_addr = sim.nodes[seeder].addr;
    let dir = sim.nodes[seeder]._shared.as_ref().unwrap().path().to_path_buf();
    let later = content(2 * MIN_CHUNK_SIZE as usize + 7, 42);
    std::fs::write(dir.join("later.bin"), &later).unwrap();
    // Written a while ago in real time (the simulation's clock is its own):
    // a file modified within 2 s is left for a later rescan.
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(dir.join("later.bin"))
        .and_then(|f| f.set_modified(old))
        .unwrap();
    let later_id = id_of("later.bin", &later);

    let until = sim.now_ms + 12_000;
    sim.run_until(until, |s| s.now_ms >= until);
    assert!(sim.nodes[seeder].events.iter().any(|e| matches!(
        e,
        Event::Rescanned {
            queued: 1,
            gone: 0,
            asked: false
        }
    )));
    assert!(
        holders(&mut sim, watcher, later_id).contains(&seeder_addr),
        "not announced"
    );
    assert_eq!(sim.nodes[seeder].engine.shared_count(), 2);

    sim.command(seeder, Command::Unshare(later_id));
    let until = sim.now_ms + 25_000;
    sim.run_until(until, |s| s.now_ms >= until);
    assert!(holders(&mut sim, watcher, later_id).is_empty(), "still announced");
    assert_eq!(
        sim.nodes[seeder].engine.shared_count(),
        1,
        "shared again by a rescan"
    );
    assert_eq!(
        std::fs::read(dir.join("later.bin")).unwrap(),
        later,
        "the file was touched"
    );
    assert!(sim.nodes[seeder]
        .events
        .iter()
        .any(|e| matches!(e, Event::Unshared { name } if name == "later.bin")));

    // A rescan asked for says so even when it finds nothing.
    sim.command(seeder, Command::Rescan);
    assert!(sim.nodes[seeder].events.iter().any(|e| matches!(
        e,
        Event::Rescanned {
            queued: 0,
            gone: 0,
            asked: true
        }
    )));
}

/// One honest seeder of a small file and `hosts` hosts of `per_host`
/// tarpits each (listed at the tracker as holders; they accept
/// connections and never answer), then one download: the simulated
/// milliseconds it took, or `None` if it did not finish within `limit_ms`.
fn tarpit_run(seed: u64, hosts: u8, per_host: u16, limit_ms: u64) -> Option<u64> {
    let bytes = content(8 * MIN_CHUNK_SIZE as usize + 77, seed);
    let mut sim = Sim::new(seed, NetConfig::default());
    let entry = FileMeta::from_reader("film.bin", &bytes[..], MIN_CHUNK_SIZE)
        .unwrap()
        .entry(true);
    for h in 0..hosts {
        let ip = std::net::IpAddr::from([10, 250, h, 1]);
        sim.add_tarpits(ip, per_host, &entry);
    }
    let honest = sim.add_seeder(&[("film.bin", &bytes)], Hostile::default());
    let l = sim.add_leecher();
    let ready = |s: &Sim, n: usize| s.nodes[n].events.iter().any(|e| matches!(e, Event::Ready));
    assert!(sim.run_until(10_000, |s| ready(s, honest) && ready(s, l)));
    get_all(&mut sim, &[l], "film.bin", &bytes);
    let start = sim.now_ms;
    sim.run_until(start + limit_ms, |s| done(s, l) || failed(s, l).is_some());
    if !done(&sim, l) {
        return None;
    }
    assert_verified(&sim, &[l], "film.bin", &bytes);
    // No idle honest connection: from its first connect to the end of
    // the download is a matter of round trips, not of timeouts.
    let at = |suffix: &str| -> u64 {
        let line = sim
            .trace
            .iter()
            .find(|t| t.ends_with(suffix))
            .expect("in the trace");
        line.split(' ')
            .next()
            .and_then(|ms| ms.parse().ok())
            .expect("a time")
    };
    let connected = at(&format!(" n{l} connected n{honest}"));
    let finished = at(&format!(" n{l} done film.bin"));
    assert!(
        finished - connected < 1_000,
        "seed {seed}: connected at {connected} ms, done at {finished} ms"
    );
    Some(sim.now_ms - start)
}

/// Twenty downloads (seeds `first..first + 20`) against `hosts` hosts of
/// `per_host` tarpits: every one finishes within 30 s of simulated time,
/// its file checked against the original.
fn twenty_downloads_beside_tarpits(first: u64, hosts: u8, per_host: u16) {
    let times: Vec<Option<u64>> = (first..first + 20)
        .map(|seed| tarpit_run(seed, hosts, per_host, 30_000))
        .collect();
    eprintln!("{per_host} tarpits on each of {hosts} hosts: {times:?}");
    assert!(times.iter().all(Option::is_some), "{times:?}");
}

/// Issue 19, attack 3: 600 tarpits from 10 hosts beside one honest seeder.
#[test]
fn six_hundred_tarpits_from_ten_hosts_do_not_eclipse_the_honest_seeder() {
    twenty_downloads_beside_tarpits(1900, 10, 60);
}

/// Issue 19, attack 3: 64 tarpits from one host (the per-host cap).
#[test]
fn sixty_four_tarpits_from_one_host_do_not_eclipse_the_honest_seeder() {
    twenty_downloads_beside_tarpits(1950, 1, 64);
}
