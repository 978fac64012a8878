//! The wire protocol: message types and their codecs. No I/O happens here.
//!
//! Every UDP datagram and every TCP frame starts with [`MAGIC`] and
//! [`VERSION`], so a stray packet or a peer speaking another protocol version
//! is recognised before anything else is read. Bodies are serde types encoded
//! with bincode 2 through [`codec`], always with an explicit byte limit, so a
//! hostile length field can never make the decoder allocate past that limit.
//!
//! Decoding is a pure function over bytes: it never panics and reports what
//! went wrong as a [`DecodeError`], typed so the caller can decide whether to
//! drop the input, answer with an error, or close a connection.
//!
//! - [`tracker`]: the client <-> tracker datagrams (each at most
//!   [`MAX_DATAGRAM`] bytes, so they cross any IPv6 path unfragmented).
//! - [`frame`]: length-prefixed TCP frames (a serde header plus a raw
//!   payload), the framing of the peer protocol.
//! - [`peer`]: the peer protocol between a leecher and a seeder (TCP).
//! - [`bep15`]: BitTorrent's UDP tracker protocol, which the tracker speaks
//!   on the same socket; fixed big-endian layouts, no magic of ours (a
//!   datagram not starting with [`MAGIC`] is taken for BEP 15).

pub mod bep15;
pub mod codec;
pub mod frame;
pub mod peer;
pub mod tracker;

use std::fmt;

/// First bytes of every datagram and frame: "PYT" plus a format byte.
pub const MAGIC: [u8; 4] = *b"PYT\x01";
/// The protocol version this build speaks. Peers speaking another version
/// get [`DecodeError::UnsupportedVersion`]. Version 2 made file ids
/// verifiable; version 3 added the client secret to `Register` and the
/// indexed `FindFiles` lookup.
pub const VERSION: u8 = 3;
/// Length of the magic + version prefix.
pub const PREFIX_LEN: usize = MAGIC.len() + 1;
/// Largest tracker datagram: 1280-byte IPv6 minimum MTU minus 40 (IPv6) and
/// 8 (UDP) header bytes.
pub const MAX_DATAGRAM: usize = 1232;

/// A file's identity: SHA-256 of its metadata (see [`crate::meta`]).
pub type FileId = [u8; 32];

/// Why bytes could not be decoded. Every variant is cheap and carries no
/// input bytes, so an error can be logged without printing hostile data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends before the message does.
    Truncated,
    /// A length (of a frame, a datagram or a field) exceeds its limit.
    TooLarge { len: usize, max: usize },
    /// The input does not start with [`MAGIC`]: not our protocol.
    BadMagic,
    /// The peer speaks another protocol version.
    UnsupportedVersion(u8),
    /// The bytes are in our format but do not form a valid message.
    Malformed(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "message truncated"),
            DecodeError::TooLarge { len, max } => {
                write!(f, "message too large ({len} bytes, limit {max})")
            }
            DecodeError::BadMagic => write!(f, "not a PyTorrent message (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "unsupported protocol version {v} (this build speaks version {VERSION})"
            ),
            DecodeError::Malformed(what) => write!(f, "malformed message: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Checks the magic + version prefix. `Ok(())` means the rest of `buf`
/// (from [`PREFIX_LEN`]) is ours to decode.
pub fn check_prefix(buf: &[u8]) -> Result<(), DecodeError> {
    let magic_seen = buf.len().min(MAGIC.len());
    if buf[..magic_seen] != MAGIC[..magic_seen] {
        return Err(DecodeError::BadMagic);
    }
    match buf.get(MAGIC.len()) {
        None => Err(DecodeError::Truncated),
        Some(&VERSION) => Ok(()),
        Some(&other) => Err(DecodeError::UnsupportedVersion(other)),
    }
}

/// Appends the magic + version prefix.
pub fn put_prefix(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_checks() {
        let mut ok = Vec::new();
        put_prefix(&mut ok);
        assert_eq!(check_prefix(&ok), Ok(()));
        assert_eq!(check_prefix(&ok[..2]), Err(DecodeError::Truncated));
        assert_eq!(check_prefix(&[]), Err(DecodeError::Truncated));
        assert_eq!(check_prefix(b"GET / HTTP"), Err(DecodeError::BadMagic));
        assert_eq!(
            check_prefix(b"PYT\x01\x07"),
            Err(DecodeError::UnsupportedVersion(7))
        );
        assert!(DecodeError::UnsupportedVersion(7)
            .to_string()
            .contains("version 7"));
    }
}
