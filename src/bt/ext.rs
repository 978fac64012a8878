//! BEP 10 extension messages this client speaks: the extension handshake
//! and BEP 9 `ut_metadata` (fetching the info dictionary of a magnet link
//! in 16 KiB pieces).
//!
//! Our extension ids are fixed ([`UT_METADATA_ID`]); the peer's come from
//! its handshake. Sizes are checked against [`MAX_INFO_LEN`] so a peer
//! cannot announce metadata larger than the client will hold.

use super::bencode::{self, Dict, Value};
use super::torrent::MAX_INFO_LEN;

/// The id we ask peers to use for `ut_metadata` messages to us.
pub const UT_METADATA_ID: u8 = 3;
/// Bytes of one metadata piece.
pub const METADATA_PIECE: usize = 16 << 10;

/// What a peer's extension handshake says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtHandshake {
    /// The id the peer wants for `ut_metadata` messages sent to it.
    pub ut_metadata: Option<u8>,
    /// The info dictionary's size, when the peer has it (and it is within
    /// limits).
    pub metadata_size: Option<usize>,
}

impl ExtHandshake {
    pub fn decode(payload: &[u8]) -> Option<ExtHandshake> {
        let Ok((Value::Dict(d), _)) = bencode::decode_prefix(payload) else {
            return None;
        };
        let ut_metadata = d
            .dict(b"m")
            .and_then(|m| m.int(b"ut_metadata"))
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&n| n != 0);
        let metadata_size = d
            .int(b"metadata_size")
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0 && n <= MAX_INFO_LEN);
        Some(ExtHandshake {
            ut_metadata,
            metadata_size,
        })
    }

    /// Ours: `ut_metadata` under [`UT_METADATA_ID`], and the metadata size
    /// when we have the info dictionary.
    pub fn encode(metadata_size: Option<usize>, out: &mut Vec<u8>) {
        let m = Dict::from_entries(vec![(&b"ut_metadata"[..], Value::Int(i64::from(UT_METADATA_ID)))]);
        let mut entries = vec![
            (&b"m"[..], Value::Dict(m)),
            (
                &b"v"[..],
                Value::Bytes(concat!("pytorrent ", env!("CARGO_PKG_VERSION")).as_bytes()),
            ),
            (&b"reqq"[..], Value::Int(250)),
        ];
        if let Some(n) = metadata_size {
            entries.push((&b"metadata_size"[..], Value::Int(n as i64)));
        }
        bencode::encode(&Value::Dict(Dict::from_entries(entries)), out);
    }
}

/// A `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metadata<'a> {
    Request(u32),
    Data {
        piece: u32,
        total_size: usize,
        data: &'a [u8],
    },
    Reject(u32),
}

impl<'a> Metadata<'a> {
    pub fn decode(payload: &'a [u8]) -> Option<Metadata<'a>> {
        let (Value::Dict(d), used) = bencode::decode_prefix(payload).ok()? else {
            return None;
        };
        let piece = u32::try_from(d.int(b"piece")?).ok()?;
        let rest = &payload[used..];
        match d.int(b"msg_type")? {
            0 if rest.is_empty() => Some(Metadata::Request(piece)),
            1 => {
                let total_size = usize::try_from(d.int(b"total_size")?).ok()?;
                (rest.len() <= METADATA_PIECE).then_some(Metadata::Data {
                    piece,
                    total_size,
                    data: rest,
                })
            }
            2 if rest.is_empty() => Some(Metadata::Reject(piece)),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, piece) = match self {
            Metadata::Request(p) => (0, p),
            Metadata::Data { piece, .. } => (1, piece),
            Metadata::Reject(p) => (2, p),
        };
        let mut entries = vec![
            (&b"msg_type"[..], Value::Int(kind)),
            (&b"piece"[..], Value::Int(i64::from(*piece))),
        ];
        if let Metadata::Data { total_size, .. } = self {
            entries.push((&b"total_size"[..], Value::Int(*total_size as i64)));
        }
        bencode::encode(&Value::Dict(Dict::from_entries(entries)), out);
        if let Metadata::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_round_trip_and_bad_sizes_are_dropped() {
        let mut out = Vec::new();
        ExtHandshake::encode(Some(1234), &mut out);
        let h = ExtHandshake::decode(&out).unwrap();
        assert_eq!(h.ut_metadata, Some(UT_METADATA_ID));
        assert_eq!(h.metadata_size, Some(1234));
        let big = format!("d1:md11:ut_metadatai2ee13:metadata_sizei{}ee", MAX_INFO_LEN + 1);
        let h = ExtHandshake::decode(big.as_bytes()).unwrap();
        assert_eq!((h.ut_metadata, h.metadata_size), (Some(2), None));
        assert_eq!(
            ExtHandshake::decode(b"d1:md11:ut_metadatai0eee")
                .unwrap()
                .ut_metadata,
            None
        );
        assert!(ExtHandshake::decode(b"x").is_none());
    }

    #[test]
    fn metadata_messages_round_trip() {
        for m in [
            Metadata::Request(2),
            Metadata::Reject(1),
            Metadata::Data {
                piece: 0,
                total_size: 5,
                data: b"hello",
            },
        ] {
            let mut out = Vec::new();
            m.encode(&mut out);
            assert_eq!(Metadata::decode(&out), Some(m));
        }
        assert_eq!(Metadata::decode(b"d8:msg_typei0e5:piecei0eeX"), None);
        assert_eq!(Metadata::decode(b"d8:msg_typei7e5:piecei0ee"), None);
    }
}
