//! Fuzzes magnet link parsing. Beyond "no panic": a link that parses has
//! a hash, and the link written back for what it says parses to the same
//! hashes, name and trackers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::bt::magnet::Magnet;

fuzz_target!(|data: &[u8]| {
    let Ok(link) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Magnet::parse(link) else { return };
    assert!(m.hashes.v1.is_some() || m.hashes.v2.is_some());
    let name = m.name.clone().unwrap_or_default();
    let again = Magnet::parse(&Magnet::link(&m.hashes, &name, &m.trackers)).expect("our own link parses");
    assert_eq!(again.hashes, m.hashes);
    assert_eq!(again.name.unwrap_or_default(), name);
    assert_eq!(again.trackers, m.trackers);
});
