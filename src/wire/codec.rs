//! The one bincode codec every message goes through.
//!
//! Invariants: encode and decode use the same configuration (bincode's
//! standard varint encoding). Two limits apply to every message: its size on
//! the wire (`max_wire`, checked on both sides) and the memory decoding it
//! may claim (`ALLOC`, enforced by bincode *before* it allocates: a hostile
//! length field cannot make us reserve more). bincode counts containers at
//! their in-memory size, which is up to about 6x their wire size for our
//! types (a 32-byte `SocketAddr` can travel in 6 bytes), so callers set
//! `ALLOC` to [`ALLOC_PER_WIRE_BYTE`] times the wire limit.

use super::DecodeError;
use bincode::config::{self, Config};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Memory a decoded message may claim per byte of its wire limit.
pub const ALLOC_PER_WIRE_BYTE: usize = 8;

fn decode_config<const ALLOC: usize>() -> impl Config {
    config::standard().with_limit::<ALLOC>()
}

/// A message that cannot be encoded within its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// The limit the message exceeded.
    pub max: usize,
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message does not fit in {} bytes", self.max)
    }
}

impl std::error::Error for EncodeError {}

/// Appends `msg` to `out` if it encodes to at most `max_wire` bytes. On
/// error `out` is left as it was.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>, max_wire: usize) -> Result<(), EncodeError> {
    let start = out.len();
    let written = bincode::serde::encode_into_std_write(msg, out, config::standard());
    match written {
        Ok(n) if n <= max_wire => Ok(()),
        _ => {
            out.truncate(start);
            Err(EncodeError { max: max_wire })
        }
    }
}

/// Number of bytes `msg` encodes to (used to pack lists into a datagram).
pub fn encoded_len<T: Serialize>(msg: &T) -> usize {
    let mut counter = bincode::enc::write::SizeWriter::default();
    // A SizeWriter cannot fail, and our types only hold serializable data.
    match bincode::serde::encode_into_writer(msg, &mut counter, config::standard()) {
        Ok(()) => counter.bytes_written,
        Err(_) => usize::MAX,
    }
}

/// Decodes exactly one `T` that must fill the whole of `buf` (at most
/// `max_wire` bytes) and may claim at most `ALLOC` bytes of memory.
pub fn decode_exact<T: DeserializeOwned, const ALLOC: usize>(
    buf: &[u8],
    max_wire: usize,
) -> Result<T, DecodeError> {
    if buf.len() > max_wire {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            max: max_wire,
        });
    }
    let (msg, used) =
        bincode::serde::decode_from_slice::<T, _>(buf, decode_config::<ALLOC>()).map_err(map_error)?;
    if used != buf.len() {
        return Err(DecodeError::Malformed("trailing bytes after message"));
    }
    Ok(msg)
}

fn map_error(e: bincode::error::DecodeError) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        B::LimitExceeded => DecodeError::Malformed("declares more data than its limit allows"),
        B::UnexpectedVariant { .. } => DecodeError::Malformed("unknown message or field variant"),
        B::Utf8 { .. } | B::InvalidCharEncoding(_) => DecodeError::Malformed("text is not UTF-8"),
        B::InvalidIntegerType { .. } | B::OutsideUsizeRange(_) => {
            DecodeError::Malformed("integer out of range")
        }
        B::InvalidBooleanValue(_) => DecodeError::Malformed("invalid boolean"),
        _ => DecodeError::Malformed("invalid encoding"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let msg = (7u32, String::from("héllo"), vec![1u16, 2, 3]);
        let mut out = vec![0xAA];
        encode(&msg, &mut out, 64).unwrap();
        assert_eq!(out[0], 0xAA);
        assert_eq!(encoded_len(&msg), out.len() - 1);
        let back: (u32, String, Vec<u16>) = decode_exact::<_, 512>(&out[1..], 64).unwrap();
        assert_eq!(back, msg);

        // Too large to encode: output untouched.
        let big = vec![0u8; 100];
        let mut out2 = vec![1, 2];
        assert_eq!(encode(&big, &mut out2, 64), Err(EncodeError { max: 64 }));
        assert_eq!(out2, vec![1, 2]);

        // Trailing bytes are refused.
        let mut extra = out[1..].to_vec();
        extra.push(0);
        assert!(matches!(
            decode_exact::<(u32, String, Vec<u16>), 512>(&extra, 64),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn hostile_length_is_refused_before_allocation() {
        // These would abort the test process if the decoder tried to
        // allocate what they claim.
        // A Vec<u8> claiming u64::MAX elements: varint tag 253 + 8 bytes.
        let mut buf = vec![253u8];
        buf.extend_from_slice(&u64::MAX.to_le_bytes());
        let r = decode_exact::<Vec<u8>, 4096>(&buf, 1232);
        assert!(
            matches!(r, Err(DecodeError::Malformed(_)) | Err(DecodeError::Truncated)),
            "{r:?}"
        );
        // A String claiming 1 GiB.
        let mut buf = vec![252u8];
        buf.extend_from_slice(&(1u32 << 30).to_le_bytes());
        let r = decode_exact::<String, 4096>(&buf, 1232);
        assert!(
            matches!(r, Err(DecodeError::Malformed(_)) | Err(DecodeError::Truncated)),
            "{r:?}"
        );
        // More elements than the memory limit allows, all present on the wire.
        let mut buf = vec![100u8];
        buf.extend_from_slice(&[7u8; 100]);
        let r = decode_exact::<Vec<u64>, 256>(&buf, 4096);
        assert!(matches!(r, Err(DecodeError::Malformed(_))), "{r:?}");
        // Input longer than the limit is refused before bincode sees it.
        let r = decode_exact::<Vec<u8>, 4096>(&[0u8; 17], 16);
        assert_eq!(r, Err(DecodeError::TooLarge { len: 17, max: 16 }));
    }
}
