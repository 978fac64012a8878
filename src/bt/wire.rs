//! The BitTorrent peer wire protocol (BEP 3, BEP 10, BEP 52): the
//! handshake and length-prefixed messages. No I/O happens here.
//!
//! Decoding is `fn(&[u8]) -> Result<Option<(Msg, usize)>, DecodeError>`:
//! `None` means more bytes are needed. A message's length is checked against
//! [`MAX_MESSAGE_LEN`] before its body is waited for, so a peer cannot make
//! a connection buffer more. Messages this client does not use (port, the
//! fast extension, v1 hash messages) decode as [`Msg::Other`] and are
//! ignored by the caller; a known id with the wrong length is malformed.

use super::merkle::{Hash, HashRequest};
use crate::wire::DecodeError;

/// `\x13BitTorrent protocol`.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
/// Handshake length: protocol, reserved, info hash, peer id.
pub const HANDSHAKE_LEN: usize = 68;
/// Largest message body accepted: a 16 KiB block with its header, an
/// extended message carrying a 16 KiB metadata piece, or 512 hashes with
/// their proof (libtorrent's piece-layer requests). A bitfield for more
/// pieces than this allows (over 1M pieces) is refused.
pub const MAX_MESSAGE_LEN: usize = 128 << 10;
/// The block size every request uses.
pub const BLOCK_LEN: u32 = 16 << 10;
/// The reserved bit for BEP 10 extensions (byte 5, 0x10).
pub const EXTENSION_BIT: (usize, u8) = (5, 0x10);

/// The handshake both sides send first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Ours: only the extension bit set.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Handshake {
        let mut reserved = [0; 8];
        reserved[EXTENSION_BIT.0] = EXTENSION_BIT.1;
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BIT.0] & EXTENSION_BIT.1 != 0
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(PROTOCOL);
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.info_hash);
        out.extend_from_slice(&self.peer_id);
    }

    /// Decodes a handshake; a wrong protocol string is an error as soon as
    /// the bytes seen differ from it.
    pub fn decode(buf: &[u8]) -> Result<Option<Handshake>, DecodeError> {
        let seen = buf.len().min(PROTOCOL.len());
        if buf[..seen] != PROTOCOL[..seen] {
            return Err(DecodeError::Malformed("not a BitTorrent handshake"));
        }
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let mut h = Handshake::new([0; 20], [0; 20]);
        h.reserved.copy_from_slice(&buf[20..28]);
        h.info_hash.copy_from_slice(&buf[28..48]);
        h.peer_id.copy_from_slice(&buf[48..68]);
        Ok(Some(h))
    }
}

/// A peer message, borrowing its payload from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(&'a [u8]),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        data: &'a [u8],
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    /// BEP 10: `id` 0 is the extension handshake, others as agreed in it.
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    HashRequest(HashRequest),
    /// The request's fields, then hashes (requested ones, then proof).
    Hashes {
        req: HashRequest,
        hashes: &'a [u8],
    },
    HashReject(HashRequest),
    /// A message this client ignores (its id).
    Other(u8),
}

const CHOKE: u8 = 0;
const UNCHOKE: u8 = 1;
const INTERESTED: u8 = 2;
const NOT_INTERESTED: u8 = 3;
const HAVE: u8 = 4;
const BITFIELD: u8 = 5;
const REQUEST: u8 = 6;
const PIECE: u8 = 7;
const CANCEL: u8 = 8;
const EXTENDED: u8 = 20;
const HASH_REQUEST: u8 = 21;
const HASHES: u8 = 22;
const HASH_REJECT: u8 = 23;
/// Bytes of a hash request's fields.
const HASH_REQ_LEN: usize = 48;

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

fn hash_req(b: &[u8]) -> HashRequest {
    HashRequest {
        pieces_root: b[..32].try_into().unwrap_or_default(),
        base: u32_at(b, 32),
        index: u32_at(b, 36),
        count: u32_at(b, 40),
        proof_layers: u32_at(b, 44),
    }
}

/// Decodes one message from the start of `buf`.
pub fn decode(buf: &[u8]) -> Result<Option<(Msg<'_>, usize)>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32_at(buf, 0) as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLarge {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let used = 4 + len;
    let Some((&id, p)) = body.split_first() else {
        return Ok(Some((Msg::KeepAlive, used)));
    };
    let fixed = |n: usize| {
        if p.len() == n {
            Ok(())
        } else {
            Err(DecodeError::Malformed("message of the wrong length"))
        }
    };
    let msg = match id {
        CHOKE => fixed(0).map(|_| Msg::Choke)?,
        UNCHOKE => fixed(0).map(|_| Msg::Unchoke)?,
        INTERESTED => fixed(0).map(|_| Msg::Interested)?,
        NOT_INTERESTED => fixed(0).map(|_| Msg::NotInterested)?,
        HAVE => fixed(4).map(|_| Msg::Have(u32_at(p, 0)))?,
        BITFIELD => Msg::Bitfield(p),
        REQUEST | CANCEL => {
            fixed(12)?;
            let (index, begin, length) = (u32_at(p, 0), u32_at(p, 4), u32_at(p, 8));
            if id == REQUEST {
                Msg::Request { index, begin, length }
            } else {
                Msg::Cancel { index, begin, length }
            }
        }
        PIECE => {
            if p.len() < 8 {
                return Err(DecodeError::Malformed("piece message too short"));
            }
            Msg::Piece {
                index: u32_at(p, 0),
                begin: u32_at(p, 4),
                data: &p[8..],
            }
        }
        EXTENDED => {
            let (&ext, payload) = p
                .split_first()
                .ok_or(DecodeError::Malformed("empty extended message"))?;
            Msg::Extended { id: ext, payload }
        }
        HASH_REQUEST | HASH_REJECT => {
            fixed(HASH_REQ_LEN)?;
            if id == HASH_REQUEST {
                Msg::HashRequest(hash_req(p))
            } else {
                Msg::HashReject(hash_req(p))
            }
        }
        HASHES => {
            if p.len() < HASH_REQ_LEN || !(p.len() - HASH_REQ_LEN).is_multiple_of(32) {
                return Err(DecodeError::Malformed("hashes message of the wrong length"));
            }
            Msg::Hashes {
                req: hash_req(p),
                hashes: &p[HASH_REQ_LEN..],
            }
        }
        other => Msg::Other(other),
    };
    Ok(Some((msg, used)))
}

fn put_header(out: &mut Vec<u8>, len: usize, id: u8) {
    out.extend_from_slice(&(len as u32 + 1).to_be_bytes());
    out.push(id);
}

fn put_hash_req(out: &mut Vec<u8>, r: &HashRequest) {
    out.extend_from_slice(&r.pieces_root);
    for n in [r.base, r.index, r.count, r.proof_layers] {
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends `msg`. [`Msg::Other`] is never sent (it appends nothing).
pub fn encode(msg: &Msg<'_>, out: &mut Vec<u8>) {
    match msg {
        Msg::KeepAlive => out.extend_from_slice(&[0; 4]),
        Msg::Choke => put_header(out, 0, CHOKE),
        Msg::Unchoke => put_header(out, 0, UNCHOKE),
        Msg::Interested => put_header(out, 0, INTERESTED),
        Msg::NotInterested => put_header(out, 0, NOT_INTERESTED),
        Msg::Have(i) => {
            put_header(out, 4, HAVE);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Msg::Bitfield(b) => {
            put_header(out, b.len(), BITFIELD);
            out.extend_from_slice(b);
        }
        Msg::Request { index, begin, length } | Msg::Cancel { index, begin, length } => {
            let id = if matches!(msg, Msg::Request { .. }) {
                REQUEST
            } else {
                CANCEL
            };
            put_header(out, 12, id);
            for n in [index, begin, length] {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Msg::Piece { index, begin, data } => {
            put_piece_header(out, *index, *begin, data.len());
            out.extend_from_slice(data);
        }
        Msg::Extended { id, payload } => {
            put_header(out, 1 + payload.len(), EXTENDED);
            out.push(*id);
            out.extend_from_slice(payload);
        }
        Msg::HashRequest(r) => {
            put_header(out, HASH_REQ_LEN, HASH_REQUEST);
            put_hash_req(out, r);
        }
        Msg::HashReject(r) => {
            put_header(out, HASH_REQ_LEN, HASH_REJECT);
            put_hash_req(out, r);
        }
        Msg::Hashes { req, hashes } => {
            put_header(out, HASH_REQ_LEN + hashes.len(), HASHES);
            put_hash_req(out, req);
            out.extend_from_slice(hashes);
        }
        Msg::Other(_) => {}
    }
}

/// The header of a piece message whose `len` data bytes the caller
/// appends (read straight from a file into the output buffer).
pub fn put_piece_header(out: &mut Vec<u8>, index: u32, begin: u32, len: usize) {
    put_header(out, 8 + len, PIECE);
    out.extend_from_slice(&index.to_be_bytes());
    out.extend_from_slice(&begin.to_be_bytes());
}

/// Bytes of a `hashes` message for `hashes` hashes (for bounding output).
pub fn hashes_len(hashes: usize) -> usize {
    5 + HASH_REQ_LEN + 32 * hashes
}

/// The hashes of a `hashes` message as 32-byte arrays.
pub fn split_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks_exact(32).filter_map(|h| h.try_into().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Msg<'static>> {
        let req = HashRequest {
            pieces_root: [7; 32],
            base: 2,
            index: 512,
            count: 512,
            proof_layers: 11,
        };
        vec![
            Msg::KeepAlive,
            Msg::Choke,
            Msg::Unchoke,
            Msg::Interested,
            Msg::NotInterested,
            Msg::Have(9),
            Msg::Bitfield(&[0xf0, 0x01]),
            Msg::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Msg::Piece {
                index: 1,
                begin: 0,
                data: &[1, 2, 3],
            },
            Msg::Cancel {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Msg::Extended {
                id: 0,
                payload: b"d1:md11:ut_metadatai3eee",
            },
            Msg::HashRequest(req),
            Msg::Hashes {
                req,
                hashes: &[5; 64],
            },
            Msg::HashReject(req),
        ]
    }

    #[test]
    fn every_message_round_trips_whole_and_in_two_halves() {
        for msg in samples() {
            let mut buf = Vec::new();
            encode(&msg, &mut buf);
            assert_eq!(decode(&buf), Ok(Some((msg.clone(), buf.len()))));
            for cut in 0..buf.len() {
                assert_eq!(decode(&buf[..cut]), Ok(None), "{msg:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn lengths_are_checked_and_unknown_messages_skipped() {
        let huge = ((MAX_MESSAGE_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(decode(&huge), Err(DecodeError::TooLarge { .. })));
        assert!(decode(&[0, 0, 0, 2, HAVE, 0]).is_err());
        assert!(decode(&[0, 0, 0, 3, PIECE, 0, 0]).is_err());
        assert!(decode(&[0, 0, 0, 1, EXTENDED]).is_err());
        assert_eq!(decode(&[0, 0, 0, 3, 9, 0x1a, 0xe1]), Ok(Some((Msg::Other(9), 7))));
        let mut hashes = vec![0, 0, 0, 50, HASHES];
        hashes.extend_from_slice(&[0; 49]);
        assert!(decode(&hashes).is_err());
    }

    #[test]
    fn handshakes_round_trip_and_others_are_refused_early() {
        let h = Handshake::new([1; 20], [2; 20]);
        assert!(h.supports_extensions());
        assert_eq!(h.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        let mut buf = Vec::new();
        h.encode(&mut buf);
        assert_eq!(buf.len(), HANDSHAKE_LEN);
        assert_eq!(Handshake::decode(&buf), Ok(Some(h)));
        assert_eq!(Handshake::decode(&buf[..30]), Ok(None));
        assert!(Handshake::decode(b"PYT\x01").is_err());
        assert!(Handshake::decode(b"\x13BitTorrent protocoX").is_err());
    }
}
