//! The one bincode codec every message goes through.
//!
//! Invariant: encode and decode use the same configuration (bincode's
//! standard varint encoding) and the same explicit byte limit `N`, so what
//! one side may send the other may read, and a hostile length field inside a
//! message is refused by bincode before it allocates more than `N` bytes.

use super::DecodeError;
use bincode::config::{self, Config};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn config<const N: usize>() -> impl Config {
    config::standard().with_limit::<N>()
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

/// Appends `msg` to `out`. On error `out` is left as it was.
pub fn encode<T: Serialize, const N: usize>(msg: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let written = bincode::serde::encode_into_std_write(msg, out, config::<N>());
    match written {
        Ok(n) if n <= N => Ok(()),
        _ => {
            out.truncate(start);
            Err(EncodeError { max: N })
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

/// Decodes exactly one `T` that must fill the whole of `buf`.
pub fn decode_exact<T: DeserializeOwned, const N: usize>(buf: &[u8]) -> Result<T, DecodeError> {
    if buf.len() > N {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            max: N,
        });
    }
    let (msg, used) = bincode::serde::decode_from_slice::<T, _>(buf, config::<N>())
        .map_err(|e| map_error(e, buf.len(), N))?;
    if used != buf.len() {
        return Err(DecodeError::Malformed("trailing bytes after message"));
    }
    Ok(msg)
}

fn map_error(e: bincode::error::DecodeError, len: usize, max: usize) -> DecodeError {
    use bincode::error::DecodeError as B;
    match e {
        B::UnexpectedEnd { .. } => DecodeError::Truncated,
        B::LimitExceeded => DecodeError::TooLarge { len, max },
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
        encode::<_, 64>(&msg, &mut out).unwrap();
        assert_eq!(out[0], 0xAA);
        assert_eq!(encoded_len(&msg), out.len() - 1);
        let back: (u32, String, Vec<u16>) = decode_exact::<_, 64>(&out[1..]).unwrap();
        assert_eq!(back, msg);

        // Too large to encode: output untouched.
        let big = vec![0u8; 100];
        let mut out2 = vec![1, 2];
        assert_eq!(encode::<_, 64>(&big, &mut out2), Err(EncodeError { max: 64 }));
        assert_eq!(out2, vec![1, 2]);

        // Trailing bytes are refused.
        let mut extra = out[1..].to_vec();
        extra.push(0);
        assert!(matches!(
            decode_exact::<(u32, String, Vec<u16>), 64>(&extra),
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
        let r = decode_exact::<Vec<u8>, 1232>(&buf);
        assert!(
            matches!(r, Err(DecodeError::TooLarge { .. }) | Err(DecodeError::Truncated)),
            "{r:?}"
        );
        // A String claiming 1 GiB.
        let mut buf = vec![252u8];
        buf.extend_from_slice(&(1u32 << 30).to_le_bytes());
        let r = decode_exact::<String, 1232>(&buf);
        assert!(
            matches!(r, Err(DecodeError::TooLarge { .. }) | Err(DecodeError::Truncated)),
            "{r:?}"
        );
        // Input longer than the limit is refused before bincode sees it.
        let r = decode_exact::<Vec<u8>, 16>(&[0u8; 17]);
        assert_eq!(r, Err(DecodeError::TooLarge { len: 17, max: 16 }));
    }
}
