//! Fuzzes the tracker's request decoder with arbitrary datagrams. Beyond "no
//! panic": whatever decodes must re-encode within the datagram limit and
//! decode back to an equal request, and the fixed header read without the
//! body must agree with the full decode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::wire::tracker::{decode_request, encode_request, peek_request_header};
use pytorrent::wire::MAX_DATAGRAM;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode_request(data) else { return };
    assert_eq!(peek_request_header(data), Ok((req.tx, req.conn)));
    let mut again = Vec::new();
    encode_request(&req, &mut again).expect("a decoded request re-encodes");
    assert!(again.len() <= MAX_DATAGRAM);
    assert_eq!(decode_request(&again), Ok(req));
});
