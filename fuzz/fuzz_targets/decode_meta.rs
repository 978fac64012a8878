//! Fuzzes the file-metadata decoder (metadata comes from untrusted peers).
//! Beyond "no panic": whatever decodes satisfies the metadata invariants,
//! re-encodes to bytes that decode to an equal value, and has a stable id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::meta::{decode_meta, encode_meta};

fuzz_target!(|data: &[u8]| {
    let Ok(meta) = decode_meta(data) else { return };
    assert_eq!(meta.validate(), Ok(()));
    let mut again = Vec::new();
    encode_meta(&meta, &mut again).expect("decoded metadata re-encodes");
    let back = decode_meta(&again).expect("re-encoded metadata decodes");
    assert_eq!(back.id(), meta.id());
    assert_eq!(back, meta);
});
