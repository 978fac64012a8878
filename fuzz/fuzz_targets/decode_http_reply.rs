//! Fuzzes the HTTP tracker reply decoder (status line, headers, chunked or
//! sized body, bencoded announce reply). Beyond "no panic": fed in two
//! pieces cut anywhere, the reader gives what it gives for the whole
//! input, and a reply keeps its bounds (peers, text lengths, no port 0).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytorrent::bt::http_tracker::{decode_reply, Reply, ReplyReader, MAX_PEERS, MAX_TEXT_LEN};

fn read(parts: &[&[u8]]) -> Result<Reply, pytorrent::bt::http_tracker::HttpError> {
    let mut r = ReplyReader::new();
    for p in parts {
        if let Some(reply) = r.feed(p)? {
            return Ok(reply);
        }
    }
    r.end()
}

fuzz_target!(|data: &[u8]| {
    let whole = read(&[data]);
    let cut = data.first().map_or(0, |&b| usize::from(b) * data.len() / 256);
    let split = read(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split, "cut at {cut}");
    match &whole {
        Ok(Reply::Peers(p)) => {
            assert!(p.peers.len() <= MAX_PEERS);
            assert!(p.peers.iter().all(|a| a.port() != 0));
            assert!(p.warning.as_ref().is_none_or(|w| w.len() <= 3 * MAX_TEXT_LEN));
        }
        Ok(Reply::Failure(reason)) => assert!(reason.len() <= 3 * MAX_TEXT_LEN),
        Err(_) => {}
    }
    // The one-shot decoder agrees with the reader at end of stream.
    if let Ok(Some(r)) = decode_reply(data, true) {
        assert_eq!(Ok(r), whole);
    }
});
