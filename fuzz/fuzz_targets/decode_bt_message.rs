//! Fuzzes the BitTorrent peer wire decoders. Beyond "no panic": a message
//! that decodes (other than one this client ignores) re-encodes to exactly
//! the bytes it used, never more than the length limit; a handshake that
//! decodes re-encodes to its 68 bytes; a magnet link that parses keeps its
//! limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::bt::magnet::{Magnet, MAX_PEERS};
use pytorrent::bt::wire::{decode, encode, Handshake, Msg, HANDSHAKE_LEN, MAX_MESSAGE_LEN};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((msg, used))) = decode(rest) {
        assert!(used >= 4 && used <= 4 + MAX_MESSAGE_LEN);
        if !matches!(msg, Msg::Other(_)) {
            let mut again = Vec::new();
            encode(&msg, &mut again);
            assert_eq!(again, rest[..used]);
        }
        rest = &rest[used..];
    }
    if let Ok(Some(h)) = Handshake::decode(data) {
        let mut again = Vec::new();
        h.encode(&mut again);
        assert_eq!(again, data[..HANDSHAKE_LEN]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = Magnet::parse(text) {
            assert!(m.peers.len() <= MAX_PEERS);
        }
    }
});
