//! Fuzzes the resume sidecar decoder (a file on disk that a crash may have
//! torn or a user may have edited). Beyond "no panic": whatever decodes has
//! metadata that passes its invariants and hashes to the id in the header,
//! a bitmap of exactly one bit per chunk, and (format 2) re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::client::engine::transfer::resume::{decode, encode, peek_id, MAGIC};

fuzz_target!(|data: &[u8]| {
    let Ok(state) = decode(data) else { return };
    assert!(state.meta.validate().is_ok());
    assert_eq!(peek_id(data), Some(state.meta.id()));
    assert_eq!(state.verified.len(), state.meta.chunks.len().div_ceil(8));
    // Format 1 records are read but written as format 2.
    if data.starts_with(MAGIC) {
        assert_eq!(encode(&state.meta, &state.verified, &state.torrent), data);
    }
});
