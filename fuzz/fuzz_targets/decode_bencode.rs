//! Fuzzes the strict bencode decoder and what is built on it. Beyond "no
//! panic": whatever decodes is canonical, so it re-encodes to exactly its
//! input, and every dictionary's raw span re-encodes to itself; a torrent
//! or info dictionary that parses has a checked name, and its raw info
//! bytes parse alone to the same info hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::bt::bencode::{decode, decode_prefix, encode, Value};
use pytorrent::bt::ext::{ExtHandshake, Metadata};
use pytorrent::bt::torrent::Torrent;

fn check_raw(v: &Value<'_>) {
    match v {
        Value::Dict(d) => {
            let mut again = Vec::new();
            encode(v, &mut again);
            assert_eq!(again, d.raw);
            d.entries.iter().for_each(|(_, v)| check_raw(v));
        }
        Value::List(items) => items.iter().for_each(check_raw),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode(data) {
        let mut again = Vec::new();
        encode(&v, &mut again);
        assert_eq!(again, data);
        check_raw(&v);
    }
    if let Ok((_, used)) = decode_prefix(data) {
        assert!(used <= data.len());
    }
    for t in [Torrent::from_file_bytes(data), Torrent::from_info_bytes(data)].into_iter().flatten() {
        assert!(pytorrent::names::check_file_name(&t.name).is_ok());
        let again = Torrent::from_info_bytes(&t.info).expect("its own info parses");
        assert_eq!(again.info_hash, t.info_hash);
    }
    let _ = ExtHandshake::decode(data);
    if let Some(m) = Metadata::decode(data) {
        let mut again = Vec::new();
        m.encode(&mut again);
        assert_eq!(Metadata::decode(&again), Some(m));
    }
});
