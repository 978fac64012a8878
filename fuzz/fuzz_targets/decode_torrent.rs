//! Fuzzes the torrent reader (v1, v2, hybrid, single- and multi-file)
//! with whole `.torrent` files. Beyond "no panic": what parses keeps the
//! `Metainfo` invariants (every path component checked, one place per
//! file, entries laid end to end, one SHA-1 per piece, hashes of the info
//! bytes), and its info bytes alone parse to the same torrent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::bt::metainfo::Metainfo;
use pytorrent::names::check_file_name;
use sha1::Sha1;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Metainfo::from_file_bytes(data) else {
        return;
    };
    let l = &m.layout;
    let mut at = 0;
    for f in &l.files {
        assert_eq!(f.offset, at);
        at += f.len;
        assert_eq!(f.pad, f.path.is_empty());
        for c in &f.path {
            assert_eq!(check_file_name(c), Ok(()));
        }
        if !f.pad {
            assert_eq!(
                f.path[0],
                m.name.as_str(),
                "every file inside the torrent's folder"
            );
            assert!(f
                .rel_path()
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))));
        }
    }
    assert_eq!(at, l.total_len);
    let mut paths: Vec<_> = l.files.iter().filter(|f| !f.pad).map(|f| &f.path).collect();
    paths.sort();
    assert!(paths.windows(2).all(|w| !w[1].starts_with(w[0])));
    if let Some(p) = &m.v1_pieces {
        assert_eq!(p.len() as u64, l.pieces());
        assert_eq!(m.hashes.v1, Some(Sha1::digest(&m.info).into()));
    }
    if m.hashes.v2.is_some() {
        assert_eq!(m.hashes.v2, Some(Sha256::digest(&m.info).into()));
        assert!(l.files.iter().all(|f| f.pad || f.offset % l.piece_len == 0));
    }
    assert!(m.hashes.v1.is_some() || m.hashes.v2.is_some());
    let alone = Metainfo::from_info_bytes(&m.info).expect("the info bytes parse alone");
    assert_eq!(alone.hashes, m.hashes);
    assert_eq!(alone.layout, m.layout);
});
