//! Fuzzes the peer-protocol frame decoder (bytes from untrusted peers).
//! Beyond "no panic": a decoded message re-encodes and decodes back to the
//! same message and payload; its head alone decodes to the same message and
//! payload size; and every shorter prefix is "need more bytes" (never an
//! error, never a different message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::wire::peer::{decode_peer_head, decode_peer_msg, encode_peer_msg};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(d)) = decode_peer_msg(data) else { return };
    for cut in [0, d.len / 2, d.len - 1] {
        assert_eq!(decode_peer_msg(&data[..cut]), Ok(None));
    }
    let head = decode_peer_head(&data[..d.len - d.payload.len()]).expect("head decodes").expect("head complete");
    assert_eq!((&head.header, head.payload_len), (&d.msg, d.payload.len()));
    let mut again = Vec::new();
    encode_peer_msg(&d.msg, d.payload, &mut again).expect("a decoded message re-encodes");
    let back = decode_peer_msg(&again).expect("decodes").expect("complete");
    assert_eq!((back.msg, back.payload, back.len), (d.msg, d.payload, again.len()));
});
