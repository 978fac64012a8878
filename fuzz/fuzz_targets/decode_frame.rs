//! Fuzzes the TCP frame decoder (bytes from untrusted peers), with a small
//! stand-in header type until the peer messages exist. Beyond "no panic":
//! a decoded frame re-encodes and decodes back to the same header and
//! payload, and every shorter prefix of a decodable input is "need more
//! bytes" (never an error, never a different frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::wire::frame::{decode_frame, encode_frame};

const MAX_BODY: usize = 1 << 16;
type Header = (u32, String, Vec<u16>);

fuzz_target!(|data: &[u8]| {
    let Ok(Some(frame)) = decode_frame::<Header>(data, MAX_BODY) else { return };
    for cut in [0, frame.len / 2, frame.len - 1] {
        assert_eq!(decode_frame::<Header>(&data[..cut], MAX_BODY), Ok(None));
    }
    let mut again = Vec::new();
    encode_frame(&frame.header, frame.payload, MAX_BODY, &mut again).expect("a decoded frame re-encodes");
    let back = decode_frame::<Header>(&again, MAX_BODY).expect("decodes").expect("complete");
    assert_eq!((back.header, back.payload, back.len), (frame.header, frame.payload, again.len()));
});
