//! v1 piece verification and torrent writing speed:
//! `cargo bench --bench v1_verify [-- --size-mib N --runs N]`.
//!
//! In memory (no disk: this measures hashing and the layout walk, not the
//! storage), a torrent of `--size-mib` MiB (default 512) cut into 37 files
//! of uneven sizes, hybrid layout (BEP 47 pads after each file), 1 MiB
//! pieces, so most pieces span a file boundary or a pad. Prints, for each
//! of `--runs` runs (default 5) and then their medians, in MB/s (10^6
//! bytes per second of piece space):
//! - `check_v1_piece`: every piece checked through its spans, read by
//!   copying from the in-memory files (what checking files on disk does,
//!   less the reads);
//! - `v1_piece_ok`: every piece checked from one contiguous buffer (what a
//!   download does with a piece assembled from blocks);
//! - `TorrentHasher` hybrid and v1-only: writing the torrent (SHA-1 and
//!   SHA-256 of every byte for a hybrid).

use pytorrent::bt::create::{Kind, NewFile, TorrentHasher};
use pytorrent::bt::layout::{check_v1_piece, v1_piece_ok, FileLayout};
use std::time::Instant;

const PIECE: u64 = 1 << 20;
const FILES: u64 = 37;

fn main() {
    let mut size_mib = 512u64;
    let mut runs = 5usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size-mib" => size_mib = it.next().and_then(|v| v.parse().ok()).expect("--size-mib N"),
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let total = size_mib << 20;
    // Uneven sizes: file i gets a share proportional to i + 1, plus an odd tail.
    let weight: u64 = (1..=FILES).sum();
    let files: Vec<NewFile> = (0..FILES)
        .map(|i| NewFile {
            path: vec![format!("f{i:02}.bin")],
            len: total * (i + 1) / weight + 4321 * i,
        })
        .collect();
    let data: Vec<Vec<u8>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
            (0..f.len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();

    let write = |kind: Kind| {
        let mut h = TorrentHasher::new("bench", files.clone(), PIECE, kind).expect("a valid torrent");
        let mut next = data.iter();
        while h.next_file().is_some() {
            for part in next.next().expect("one buffer per file").chunks(1 << 20) {
                h.update(part).expect("sizes as announced");
            }
            h.end_file().expect("sizes as announced");
        }
        h.finish(&[]).expect("a torrent")
    };
    let made = write(Kind::Hybrid);
    let m = &made.metainfo;
    let layout: &FileLayout = &m.layout;
    let pieces = m.v1_pieces.as_ref().expect("a hybrid has v1 pieces");
    // Layout entry -> data buffer (pads have none).
    let buffer_of = layout.stored_index();
    let space: Vec<u8> = layout
        .files
        .iter()
        .zip(&buffer_of)
        .flat_map(|(f, b)| b.map_or(vec![0; f.len as usize], |i| data[i].clone()))
        .collect();
    let mb = layout.total_len as f64 / 1e6;
    println!(
        "{} files, {} entries with pads, {:.1} MB of piece space, {} pieces of {} KiB",
        FILES,
        layout.files.len(),
        mb,
        layout.pieces(),
        PIECE >> 10
    );

    let mut results: Vec<[f64; 4]> = Vec::new();
    for run in 1..=runs {
        let t = Instant::now();
        for (i, h) in pieces.iter().enumerate() {
            let ok = check_v1_piece(layout, i as u64, h, |s, buf| -> Result<(), ()> {
                let d = &data[buffer_of[s.file].ok_or(())?];
                let at = s.file_offset as usize;
                buf.copy_from_slice(&d[at..at + buf.len()]);
                Ok(())
            });
            assert_eq!(ok, Ok(true), "piece {i}");
        }
        let spans = mb / t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (piece, h) in space.chunks(PIECE as usize).zip(pieces) {
            assert!(v1_piece_ok(piece, h));
        }
        let whole = mb / t.elapsed().as_secs_f64();
        let t = Instant::now();
        write(Kind::Hybrid);
        let hybrid = mb / t.elapsed().as_secs_f64();
        let t = Instant::now();
        write(Kind::V1Only);
        let v1 = mb / t.elapsed().as_secs_f64();
        println!(
            "run {run}: check_v1_piece {spans:.0} MB/s, v1_piece_ok {whole:.0} MB/s, write hybrid {hybrid:.0} MB/s, write v1-only {v1:.0} MB/s"
        );
        results.push([spans, whole, hybrid, v1]);
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = results.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {runs}: check_v1_piece {:.0} MB/s, v1_piece_ok {:.0} MB/s, write hybrid {:.0} MB/s, write v1-only {:.0} MB/s",
        median(0),
        median(1),
        median(2),
        median(3)
    );
}
