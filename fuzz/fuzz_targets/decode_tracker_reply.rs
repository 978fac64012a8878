//! Fuzzes the client's reply decoder with arbitrary datagrams (what a
//! hostile or broken tracker could send). Beyond "no panic": whatever
//! decodes must re-encode within the datagram limit and decode back to an
//! equal reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::wire::tracker::{decode_reply, encode_reply};
use pytorrent::wire::MAX_DATAGRAM;

fuzz_target!(|data: &[u8]| {
    let Ok(reply) = decode_reply(data) else { return };
    let mut again = Vec::new();
    encode_reply(&reply, &mut again).expect("a decoded reply re-encodes");
    assert!(again.len() <= MAX_DATAGRAM);
    assert_eq!(decode_reply(&again), Ok(reply));
});
