//! The peer protocol: what a downloading peer (the leecher) asks a serving
//! peer (the seeder) over TCP, and what comes back. Every message travels
//! as one [`frame`](super::frame): a [`PeerMsg`] header plus a raw payload.
//!
//! A connection carries requests one way and replies the other, strictly in
//! order: the seeder answers requests in the order they arrived, so the
//! leecher matches replies to its queue of requests without ids, and may
//! keep several requests in flight (pipelining).
//!
//! - `GetMeta { id }` is answered by `MetaPiece` frames that together carry
//!   the file's encoded [`FileMeta`](crate::meta::FileMeta), in order.
//! - `GetChunk { id, index }` is answered by `Block` frames that together
//!   carry the chunk's bytes, in order, each at most [`BLOCK_SIZE`].
//! - `GetHave { id }` asks which chunks the seeder holds: `HaveAll` (it
//!   has the whole file), or `HaveMap` frames carrying a bitmap, one bit
//!   per chunk, in order. It also subscribes the connection: whenever a
//!   seeder that is itself still downloading verifies a chunk, it sends
//!   `Have { index }`, unsolicited, between any two frames (never inside
//!   one). This is how partial peers swarm, as in BitTorrent.
//! - Any request may instead be answered by one `Refused`.
//!
//! Invariants (checked by [`decode_peer_msg`], so every caller can rely on
//! them): a frame body is at most [`MAX_PEER_BODY`] bytes, so a connection
//! never buffers more than one block; only `MetaPiece`, `HaveMap` and
//! `Block` carry a payload, of 1 to [`BLOCK_SIZE`] bytes.

use super::codec::EncodeError;
use super::frame::{decode_frame_head, encode_frame_head, FrameHead, MAX_HEADER};
use super::{DecodeError, FileId};
use serde::{Deserialize, Serialize};

/// Most payload bytes in one frame: chunks and metadata travel in blocks
/// of this size, so buffers stay small whatever the chunk size.
pub const BLOCK_SIZE: usize = 256 * 1024;
/// Largest frame body: header-length field, a header, a block.
pub const MAX_PEER_BODY: usize = 2 + MAX_HEADER + BLOCK_SIZE;
/// Most requests a leecher keeps in flight on one connection; a seeder
/// stops reading a connection that has this many waiting (back-pressure).
pub const MAX_PIPELINE: usize = 8;

/// Why a seeder refused a request.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The seeder does not share a file with this id.
    NoSuchFile,
    /// The file has no chunk with this index.
    NoSuchChunk,
    /// The seeder could not read the file (changed or removed on disk).
    Unavailable,
    /// The seeder is still downloading the file and lacks this chunk.
    Missing,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::NoSuchFile => "the peer does not share this file",
            Refusal::NoSuchChunk => "the file has no such chunk",
            Refusal::Unavailable => "the peer cannot read the file",
            Refusal::Missing => "the peer does not have this chunk yet",
        })
    }
}

/// One peer-protocol message (a frame's header).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// Leecher -> seeder: send the metadata of file `id`.
    GetMeta { id: FileId },
    /// Leecher -> seeder: send chunk `index` of file `id`.
    GetChunk { id: FileId, index: u32 },
    /// Leecher -> seeder: which chunks of `id` do you hold? (And tell me
    /// of new ones.)
    GetHave { id: FileId },
    /// Seeder -> leecher: the payload is the encoded metadata's bytes from
    /// `offset`; `total` is its whole length.
    MetaPiece { offset: u32, total: u32 },
    /// Seeder -> leecher: the payload is chunk `index`'s bytes from `offset`.
    Block { index: u32, offset: u32 },
    /// Seeder -> leecher: every chunk (the answer to `GetHave` from a
    /// complete seeder).
    HaveAll,
    /// Seeder -> leecher: the payload is the held-chunks bitmap's bytes
    /// from `offset` (bit `i % 8` of byte `i / 8` is chunk `i`); `total` is
    /// its whole length.
    HaveMap { offset: u32, total: u32 },
    /// Seeder -> leecher, unsolicited: chunk `index` was just verified.
    Have { index: u32 },
    /// Seeder -> leecher: the oldest outstanding request is not served.
    Refused { reason: Refusal },
}

impl PeerMsg {
    /// Whether this message travels with a payload.
    pub fn has_payload(&self) -> bool {
        matches!(
            self,
            PeerMsg::MetaPiece { .. } | PeerMsg::HaveMap { .. } | PeerMsg::Block { .. }
        )
    }
}

/// A decoded message and its payload; `len` is the bytes of input it took.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub msg: PeerMsg,
    pub payload: &'a [u8],
    pub len: usize,
}

/// A message whose payload may still be arriving.
pub type Head = FrameHead<PeerMsg>;

/// Decodes the message at the start of `buf` once its head is in, without
/// waiting for its payload (a leecher hashes and writes block bytes as they
/// stream in). Enforces the invariants in the module header.
pub fn decode_peer_head(buf: &[u8]) -> Result<Option<Head>, DecodeError> {
    let Some(head) = decode_frame_head::<PeerMsg>(buf, MAX_PEER_BODY)? else {
        return Ok(None);
    };
    let payload_ok = if head.header.has_payload() {
        (1..=BLOCK_SIZE).contains(&head.payload_len)
    } else {
        head.payload_len == 0
    };
    if !payload_ok {
        return Err(DecodeError::Malformed("payload size does not suit the message"));
    }
    Ok(Some(head))
}

/// Decodes the whole message at the start of `buf`: `Ok(None)` until the
/// whole frame is in.
pub fn decode_peer_msg(buf: &[u8]) -> Result<Option<Decoded<'_>>, DecodeError> {
    let Some(head) = decode_peer_head(buf)? else {
        return Ok(None);
    };
    let len = head.head_len + head.payload_len;
    let Some(payload) = buf.get(head.head_len..len) else {
        return Ok(None);
    };
    Ok(Some(Decoded {
        msg: head.header,
        payload,
        len,
    }))
}

/// Appends `msg` with its `payload` to `out`.
pub fn encode_peer_msg(msg: &PeerMsg, payload: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_peer_head(msg, payload.len(), out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends `msg` without its payload of `payload_len` bytes, which the
/// caller appends next (read from disk straight into `out`).
pub fn encode_peer_head(msg: &PeerMsg, payload_len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if payload_len > BLOCK_SIZE {
        return Err(EncodeError { max: BLOCK_SIZE });
    }
    encode_frame_head(msg, payload_len, MAX_PEER_BODY, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<(PeerMsg, Vec<u8>)> {
        vec![
            (PeerMsg::GetMeta { id: [3; 32] }, vec![]),
            (
                PeerMsg::GetChunk {
                    id: [4; 32],
                    index: u32::MAX,
                },
                vec![],
            ),
            (PeerMsg::MetaPiece { offset: 0, total: 5 }, b"hello".to_vec()),
            (
                PeerMsg::Block {
                    index: 9,
                    offset: 262_144,
                },
                (0..BLOCK_SIZE).map(|i| i as u8).collect(),
            ),
            (
                PeerMsg::Refused {
                    reason: Refusal::NoSuchFile,
                },
                vec![],
            ),
            (PeerMsg::GetHave { id: [5; 32] }, vec![]),
            (PeerMsg::HaveAll, vec![]),
            (PeerMsg::HaveMap { offset: 0, total: 3 }, vec![0xff, 0x0f, 0x01]),
            (PeerMsg::Have { index: 77 }, vec![]),
        ]
    }

    #[test]
    fn round_trip_whole_and_in_two_halves() {
        for (msg, payload) in samples() {
            let mut buf = Vec::new();
            encode_peer_msg(&msg, &payload, &mut buf).unwrap();
            let d = decode_peer_msg(&buf).unwrap().unwrap();
            assert_eq!((&d.msg, d.payload, d.len), (&msg, &payload[..], buf.len()));
            for cut in [0, 1, 8, 9, 12, buf.len() / 2, buf.len() - 1]
                .into_iter()
                .filter(|&c| c < buf.len())
            {
                assert_eq!(decode_peer_msg(&buf[..cut]), Ok(None), "cut {cut}");
            }
            // The head alone is enough to learn the message and its payload size.
            let head = decode_peer_head(&buf[..d.len - payload.len()]).unwrap().unwrap();
            assert_eq!((head.header, head.payload_len), (msg, payload.len()));
        }
    }

    #[test]
    fn payload_rules_are_enforced() {
        let mut out = Vec::new();
        assert!(encode_peer_msg(
            &PeerMsg::Block { index: 0, offset: 0 },
            &vec![0; BLOCK_SIZE + 1],
            &mut out
        )
        .is_err());
        assert!(out.is_empty());
        // A request with a payload, and a block without one, are lies.
        let mut lie = Vec::new();
        crate::wire::frame::encode_frame(&PeerMsg::GetMeta { id: [0; 32] }, b"x", MAX_PEER_BODY, &mut lie)
            .unwrap();
        assert!(matches!(decode_peer_msg(&lie), Err(DecodeError::Malformed(_))));
        lie.clear();
        crate::wire::frame::encode_frame(
            &PeerMsg::Block { index: 0, offset: 0 },
            b"",
            MAX_PEER_BODY,
            &mut lie,
        )
        .unwrap();
        assert!(matches!(decode_peer_msg(&lie), Err(DecodeError::Malformed(_))));
    }
}
