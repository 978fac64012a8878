//! TCP framing for the peer protocol: how one message is cut out of a byte
//! stream.
//!
//! A frame is `MAGIC | VERSION | body length: u32 BE | header length: u16 BE
//! | bincode(header) | payload`. The header is a serde message; the payload
//! is raw bytes (chunk data) that never pass through serde, so they can be
//! hashed and written straight from the receive buffer.
//!
//! Invariants: the body length is checked against the caller's maximum as
//! soon as the 9-byte prefix is in, before any of the body is buffered; a
//! partial frame decodes to `Ok(None)` ("need more bytes"), never to an
//! error, so a stream can be fed in pieces of any size.

use super::codec::{self, EncodeError, ALLOC_PER_WIRE_BYTE};
use super::{check_prefix, put_prefix, DecodeError, PREFIX_LEN};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes before the body: magic, version, body length.
pub const FRAME_PREFIX_LEN: usize = PREFIX_LEN + 4;
/// Largest serde header in a frame.
pub const MAX_HEADER: usize = 4096;

/// One decoded frame: its header message and its raw payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a, T> {
    pub header: T,
    pub payload: &'a [u8],
    /// Bytes of the input this frame took.
    pub len: usize,
}

/// Appends one frame (`header`, then `payload`) to `out`. Refuses a frame
/// whose body would exceed `max_body`; on error `out` is unchanged.
pub fn encode_frame<T: Serialize>(
    header: &T,
    payload: &[u8],
    max_body: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    encode_frame_head(header, payload.len(), max_body, out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends everything of a frame but its payload, which must be
/// `payload_len` bytes that the caller appends next (a seeder reads chunk
/// bytes from disk straight into its send buffer this way, with no copy in
/// between). On error `out` is unchanged.
pub fn encode_frame_head<T: Serialize>(
    header: &T,
    payload_len: usize,
    max_body: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    put_prefix(out);
    out.extend_from_slice(&[0; 4 + 2]); // lengths, filled in below
    let header_start = out.len();
    if let Err(e) = codec::encode(header, out, MAX_HEADER) {
        out.truncate(start);
        return Err(e);
    }
    let header_len = out.len() - header_start;
    let body_len = 2 + header_len + payload_len;
    if body_len > max_body {
        out.truncate(start);
        return Err(EncodeError { max: max_body });
    }
    out[start + PREFIX_LEN..start + FRAME_PREFIX_LEN].copy_from_slice(&(body_len as u32).to_be_bytes());
    out[header_start - 2..header_start].copy_from_slice(&(header_len as u16).to_be_bytes());
    Ok(())
}

/// How long the frame at the start of `buf` is in all, once its prefix is
/// in: lets a reader size its next read. `Ok(None)` while the prefix is
/// incomplete; an error for a foreign prefix or a body over `max_body`.
pub fn frame_len(buf: &[u8], max_body: usize) -> Result<Option<usize>, DecodeError> {
    match check_prefix(buf) {
        Ok(()) => {}
        Err(DecodeError::Truncated) => return Ok(None),
        Err(e) => return Err(e),
    }
    let Some(len) = buf.get(PREFIX_LEN..FRAME_PREFIX_LEN) else {
        return Ok(None);
    };
    let body = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if body > max_body {
        return Err(DecodeError::TooLarge {
            len: body,
            max: max_body,
        });
    }
    if body < 2 {
        return Err(DecodeError::Malformed(
            "frame body shorter than its header length",
        ));
    }
    Ok(Some(FRAME_PREFIX_LEN + body))
}

/// The start of a frame whose header has arrived: enough to act on it while
/// its payload is still streaming in.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameHead<T> {
    pub header: T,
    /// Bytes before the payload (prefix, lengths, header).
    pub head_len: usize,
    /// Bytes of payload that follow the head.
    pub payload_len: usize,
}

/// Decodes the head of the frame at the start of `buf`: `Ok(None)` until
/// the prefix and the whole header are in; the payload need not be.
pub fn decode_frame_head<T: DeserializeOwned>(
    buf: &[u8],
    max_body: usize,
) -> Result<Option<FrameHead<T>>, DecodeError> {
    let Some(total) = frame_len(buf, max_body)? else {
        return Ok(None);
    };
    let Some(len) = buf.get(FRAME_PREFIX_LEN..FRAME_PREFIX_LEN + 2) else {
        return Ok(None);
    };
    let header_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if header_len > MAX_HEADER {
        return Err(DecodeError::TooLarge {
            len: header_len,
            max: MAX_HEADER,
        });
    }
    let head_len = FRAME_PREFIX_LEN + 2 + header_len;
    if head_len > total {
        return Err(DecodeError::Malformed("header longer than the frame"));
    }
    let Some(header_bytes) = buf.get(FRAME_PREFIX_LEN + 2..head_len) else {
        return Ok(None);
    };
    let header = codec::decode_exact::<T, { MAX_HEADER * ALLOC_PER_WIRE_BYTE }>(header_bytes, MAX_HEADER)
        .map_err(|e| match e {
            // The header's length is known and all of it is here, so a short
            // header is a lie, not a wait.
            DecodeError::Truncated => DecodeError::Malformed("header truncated inside its declared length"),
            other => other,
        })?;
    Ok(Some(FrameHead {
        header,
        head_len,
        payload_len: total - head_len,
    }))
}

/// Decodes the frame at the start of `buf`: `Ok(None)` if more bytes are
/// needed, else the frame (which may be followed by more bytes in `buf`).
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max_body: usize,
) -> Result<Option<Frame<'_, T>>, DecodeError> {
    let Some(head) = decode_frame_head::<T>(buf, max_body)? else {
        return Ok(None);
    };
    let total = head.head_len + head.payload_len;
    let Some(payload) = buf.get(head.head_len..total) else {
        return Ok(None);
    };
    Ok(Some(Frame {
        header: head.header,
        payload,
        len: total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::VERSION;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    enum Msg {
        Hello { name: String },
        Data { chunk: u32, offset: u32 },
        Bye,
    }

    const MAX: usize = 1 << 16;

    fn samples() -> Vec<(Msg, Vec<u8>)> {
        vec![
            (Msg::Hello { name: "ñame".into() }, vec![]),
            (
                Msg::Data {
                    chunk: 7,
                    offset: 65536,
                },
                (0..=255u8).cycle().take(40_000).collect(),
            ),
            (Msg::Bye, vec![1, 2, 3]),
        ]
    }

    fn stream() -> Vec<u8> {
        let mut out = Vec::new();
        for (msg, payload) in samples() {
            encode_frame(&msg, &payload, MAX, &mut out).unwrap();
        }
        out
    }

    /// Decodes every frame from a stream fed in pieces of `step` bytes.
    fn decode_in_pieces(stream: &[u8], step: usize) -> Vec<(Msg, Vec<u8>)> {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for piece in stream.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(f) = decode_frame::<Msg>(&buf, MAX).unwrap() {
                got.push((f.header, f.payload.to_vec()));
                let len = f.len;
                buf.drain(..len);
            }
        }
        assert!(buf.is_empty());
        got
    }

    #[test]
    fn round_trip_whole_and_in_pieces() {
        let s = stream();
        assert_eq!(decode_in_pieces(&s, s.len()), samples());
        for step in [1, 2, 7, 9, 1000] {
            assert_eq!(decode_in_pieces(&s, step), samples(), "step {step}");
        }
    }

    #[test]
    fn every_prefix_needs_more_and_two_halves_decode_the_same() {
        let all = samples();
        for (i, (msg, payload)) in all.iter().enumerate() {
            // This frame, then the next sample's, back to back, as a
            // stream would carry them.
            let (next, next_payload) = &all[(i + 1) % all.len()];
            let mut stream = Vec::new();
            encode_frame(msg, payload, MAX, &mut stream).unwrap();
            let first_len = stream.len();
            encode_frame(next, next_payload, MAX, &mut stream).unwrap();
            for cut in 0..first_len {
                // A receiver that has only the first part of the frame...
                let mut buf = stream[..cut].to_vec();
                assert_eq!(decode_frame::<Msg>(&buf, MAX), Ok(None), "cut {cut}");
                // Once the head is in, it is this frame's head.
                let head = decode_frame_head::<Msg>(&buf, MAX).unwrap();
                assert!(head.is_none_or(|h| h.header == *msg), "cut {cut}");
                // ...then gets the rest and the next frame in one read.
                buf.extend_from_slice(&stream[cut..]);
                let f = decode_frame::<Msg>(&buf, MAX).unwrap().unwrap();
                assert_eq!(
                    (&f.header, f.payload, f.len),
                    (msg, payload.as_slice(), first_len),
                    "cut {cut}"
                );
                let rest = &buf[f.len..];
                let g = decode_frame::<Msg>(rest, MAX).unwrap().unwrap();
                assert_eq!(
                    (&g.header, g.payload, g.len),
                    (next, next_payload.as_slice(), rest.len())
                );
            }
        }
    }

    #[test]
    fn oversized_length_is_refused_before_the_body_arrives() {
        let mut prefix = Vec::new();
        put_prefix(&mut prefix);
        prefix.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_frame::<Msg>(&prefix, MAX),
            Err(DecodeError::TooLarge {
                len: u32::MAX as usize,
                max: MAX
            })
        );
        let mut out = Vec::new();
        assert!(encode_frame(&Msg::Bye, &vec![0; MAX], MAX, &mut out).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn lies_inside_a_complete_frame_are_malformed() {
        let mut f = Vec::new();
        encode_frame(&Msg::Hello { name: "x".into() }, &[], MAX, &mut f).unwrap();
        let mut long_header = f.clone();
        long_header[FRAME_PREFIX_LEN + 1] = 200; // header longer than the body
        assert!(matches!(
            decode_frame::<Msg>(&long_header, MAX),
            Err(DecodeError::Malformed(_))
        ));
        let mut bad_variant = f.clone();
        bad_variant[FRAME_PREFIX_LEN + 2] = 99;
        assert!(matches!(
            decode_frame::<Msg>(&bad_variant, MAX),
            Err(DecodeError::Malformed(_))
        ));
        let mut other_version = f;
        other_version[4] = VERSION + 1;
        assert_eq!(
            decode_frame::<Msg>(&other_version, MAX),
            Err(DecodeError::UnsupportedVersion(VERSION + 1))
        );
    }
}
