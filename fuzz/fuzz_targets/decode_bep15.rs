//! Fuzzes the BEP 15 decoders with arbitrary datagrams. Beyond "no panic":
//! a request that decodes re-encodes to the very bytes it came from (an
//! announce to its first 98, since BEP 41 options are skipped) and decodes
//! back to an equal request; a response that decodes, in either address
//! family, re-encodes to exactly its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::wire::bep15::{
    decode_request, decode_response, encode_request, encode_response, Request, RequestError, ANNOUNCE_LEN,
    MAX_SCRAPE_HASHES,
};

fuzz_target!(|data: &[u8]| {
    match decode_request(data) {
        Ok(req) => {
            let mut again = Vec::new();
            encode_request(&req, &mut again);
            match &req {
                Request::Announce(_) => assert_eq!(again[..], data[..ANNOUNCE_LEN]),
                Request::Scrape(s) => {
                    assert!((1..=MAX_SCRAPE_HASHES).contains(&s.info_hashes.len()));
                    assert_eq!(again, data);
                }
                Request::Connect { .. } => assert_eq!(again, data[..16]),
            }
            assert_eq!(decode_request(&again), Ok(req));
        }
        // A sendable error must carry the ids found at their fixed offsets.
        Err(RequestError::Sendable { conn, tx, .. }) => {
            assert_eq!(conn.to_be_bytes()[..], data[..8]);
            assert_eq!(tx.to_be_bytes()[..], data[12..16]);
        }
        Err(RequestError::Unsendable(_)) => {}
    }
    for ipv6 in [false, true] {
        if let Ok(resp) = decode_response(data, ipv6) {
            let mut again = Vec::new();
            encode_response(&resp, &mut again);
            assert_eq!(again, data);
        }
    }
});
