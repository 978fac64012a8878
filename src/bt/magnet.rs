//! Magnet links (BEP 9, BEP 52):
//! `magnet:?xt=urn:btih:HASH&xt=urn:btmh:1220HASH&dn=NAME&tr=URL&x.pe=HOST:PORT`.
//!
//! A link names a v1 hash (`btih`: 40 hex digits or 32 base32 letters), a
//! v2 hash (`btmh`: multihash SHA-256, `12` `20` then 64 hex digits), or
//! both (a hybrid). A hash that is there but malformed is reported as
//! malformed, not as missing; two different hashes of one kind are
//! refused. The display name is only a label: the file's name comes from
//! the verified info dictionary. Limits: [`MAX_MAGNET_LEN`] bytes, at most
//! `MAX_TRACKERS` trackers and [`MAX_PEERS`] peers kept.

use super::layout::Sha1Hash;
use super::metainfo::InfoHashes;
use super::torrent::MAX_TRACKERS;
use std::fmt;

/// Longest magnet link accepted.
pub const MAX_MAGNET_LEN: usize = 8 << 10;
/// Most `x.pe` peers kept.
pub const MAX_PEERS: usize = 16;

/// What a magnet link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// At least one of the two.
    pub hashes: InfoHashes,
    /// `dn`, when present (unchecked: print it through `names::escape`).
    pub name: Option<String>,
    pub trackers: Vec<String>,
    /// `x.pe` peers, as written (resolved by the caller).
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagnetError {
    NotMagnet,
    TooLong,
    NoHash,
    BadV1Hash,
    BadV2Hash,
    /// Two different hashes of one kind.
    TwoHashes,
    BadEscape,
}

impl fmt::Display for MagnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MagnetError::NotMagnet => "not a magnet link",
            MagnetError::TooLong => "magnet link too long",
            MagnetError::NoHash => {
                "the magnet link has no info hash (xt=urn:btih:... or xt=urn:btmh:1220...)"
            }
            MagnetError::BadV1Hash => {
                "malformed v1 hash in the magnet link (btih: 40 hex digits or 32 base32 letters)"
            }
            MagnetError::BadV2Hash => "malformed v2 hash in the magnet link (btmh: 1220 and 64 hex digits)",
            MagnetError::TwoHashes => "the magnet link names two different torrents",
            MagnetError::BadEscape => "bad %-escape in the magnet link",
        })
    }
}

impl std::error::Error for MagnetError {}

impl Magnet {
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        if link.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong);
        }
        let query = link.strip_prefix("magnet:?").ok_or(MagnetError::NotMagnet)?;
        let mut m = Magnet {
            hashes: InfoHashes { v1: None, v2: None },
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        };
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = unescape(value)?;
            match key {
                "xt" => {
                    if let Some(h) = value.strip_prefix("urn:btih:") {
                        let h = parse_v1(h).ok_or(MagnetError::BadV1Hash)?;
                        set_once(&mut m.hashes.v1, h)?;
                    } else if let Some(h) = value.strip_prefix("urn:btmh:") {
                        let h = h
                            .strip_prefix("1220")
                            .and_then(parse_hex)
                            .ok_or(MagnetError::BadV2Hash)?;
                        set_once(&mut m.hashes.v2, h)?;
                    }
                }
                "dn" => m.name = Some(value),
                "tr" if m.trackers.len() < MAX_TRACKERS && !m.trackers.contains(&value) => {
                    m.trackers.push(value)
                }
                "x.pe" if m.peers.len() < MAX_PEERS => m.peers.push(value),
                _ => {}
            }
        }
        if m.hashes.v1.is_none() && m.hashes.v2.is_none() {
            return Err(MagnetError::NoHash);
        }
        Ok(m)
    }

    /// The link for a torrent (what `--torrent` prints): each hash it has,
    /// the name, the trackers.
    pub fn link(hashes: &InfoHashes, name: &str, trackers: &[String]) -> String {
        let mut s = String::from("magnet:?");
        if let Some(h) = hashes.v1 {
            s.push_str(&format!("xt=urn:btih:{}&", crate::meta::hex(&h)));
        }
        if let Some(h) = hashes.v2 {
            s.push_str(&format!("xt=urn:btmh:1220{}&", crate::meta::hex(&h)));
        }
        s.push_str("dn=");
        s.push_str(&escape(name));
        for t in trackers {
            s.push_str("&tr=");
            s.push_str(&escape(t));
        }
        s
    }
}

/// Keeps the first hash of a kind; a different second one is an error.
fn set_once<const N: usize>(slot: &mut Option<[u8; N]>, h: [u8; N]) -> Result<(), MagnetError> {
    match slot {
        Some(old) if *old != h => Err(MagnetError::TwoHashes),
        _ => {
            *slot = Some(h);
            Ok(())
        }
    }
}

/// A v1 hash: 40 hex digits, or 32 base32 letters (RFC 4648, either case).
fn parse_v1(s: &str) -> Option<Sha1Hash> {
    match s.len() {
        40 => parse_hex(s),
        32 => {
            let mut out = [0u8; 20];
            let mut acc = 0u64;
            let mut bits = 0;
            let mut at = 0;
            for c in s.bytes() {
                let v = match c.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return None,
                };
                acc = (acc << 5) | u64::from(v);
                bits += 5;
                if bits >= 8 {
                    bits -= 8;
                    out[at] = (acc >> bits) as u8;
                    at += 1;
                }
            }
            Some(out)
        }
        _ => None,
    }
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut h = [0; N];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(h)
}

/// Percent-decoding (and `+` as a space, as browsers write query strings).
fn unescape(s: &str) -> Result<String, MagnetError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or(MagnetError::BadEscape)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| MagnetError::BadEscape)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| MagnetError::BadEscape)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~:/".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bt::merkle::Hash;

    fn both(v1: Sha1Hash, v2: Hash) -> InfoHashes {
        InfoHashes {
            v1: Some(v1),
            v2: Some(v2),
        }
    }

    #[test]
    fn links_round_trip_with_either_hash_or_both() {
        let trackers = vec![
            "udp://127.0.0.1:6969/announce".to_string(),
            "http://localhost:80/a?b=c&d".to_string(),
        ];
        for hashes in [
            both([0xcd; 20], [0xab; 32]),
            InfoHashes {
                v1: Some([1; 20]),
                v2: None,
            },
            InfoHashes {
                v1: None,
                v2: Some([2; 32]),
            },
        ] {
            let link = Magnet::link(&hashes, "my file&.bin", &trackers);
            let m = Magnet::parse(&link).unwrap();
            assert_eq!(m.hashes, hashes);
            assert_eq!(m.name.as_deref(), Some("my file&.bin"));
            assert_eq!(m.trackers, trackers);
        }
    }

    #[test]
    fn hybrid_links_base32_and_peers_are_read() {
        let link = format!(
            "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}&dn=a+b&x.pe=127.0.0.1:6881&tr=udp%3A%2F%2Fx%3A1&tr=udp://x:1&tr=udp://y:2",
            "c".repeat(40),
            "0f".repeat(32)
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.hashes, both([0xcc; 20], [0x0f; 32]));
        assert_eq!(m.name.as_deref(), Some("a b"));
        assert_eq!(m.peers, vec!["127.0.0.1:6881"]);
        assert_eq!(m.trackers, vec!["udp://x:1", "udp://y:2"]);
        // base32 of 20 bytes of 0xcc, in both cases.
        for b32 in [
            "ZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTGM",
            "ztgmztgmztgmztgmztgmztgmztgmztgm",
        ] {
            let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap();
            assert_eq!(m.hashes.v1, Some([0xcc; 20]));
            assert_eq!(m.hashes.v2, None);
        }
        let m = Magnet::parse("magnet:?xt=urn:btih:AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT").unwrap();
        let want: Vec<u8> = (0..20).collect();
        assert_eq!(m.hashes.v1.unwrap()[..], want[..]);
    }

    #[test]
    fn bad_links_are_refused_with_the_reason() {
        let hex40 = "c".repeat(40);
        let hex64 = "c".repeat(64);
        for (link, why) in [
            ("http://x".to_string(), MagnetError::NotMagnet),
            ("magnet:?dn=x".into(), MagnetError::NoHash),
            ("magnet:?xt=urn:sha1:abc".into(), MagnetError::NoHash),
            (
                format!("magnet:?xt=urn:btmh:1220{}", &hex64[2..]),
                MagnetError::BadV2Hash,
            ),
            (format!("magnet:?xt=urn:btmh:1114{hex64}"), MagnetError::BadV2Hash),
            (
                format!("magnet:?xt=urn:btmh:1220{}zz", &hex64[2..]),
                MagnetError::BadV2Hash,
            ),
            (
                format!("magnet:?xt=urn:btih:{}", &hex40[1..]),
                MagnetError::BadV1Hash,
            ),
            (
                "magnet:?xt=urn:btih:ZTGMZTGMZTGMZTGMZTGMZTGMZTGMZTG1".into(),
                MagnetError::BadV1Hash,
            ),
            (
                format!("magnet:?xt=urn:btih:{hex40}&xt=urn:btih:{}", "d".repeat(40)),
                MagnetError::TwoHashes,
            ),
            (
                format!("magnet:?xt=urn:btmh:1220{hex64}&dn=%zz"),
                MagnetError::BadEscape,
            ),
            (
                format!("magnet:?xt=urn:btmh:1220{hex64}&dn=%c3"),
                MagnetError::BadEscape,
            ),
            (
                format!("magnet:?{}", "a".repeat(MAX_MAGNET_LEN)),
                MagnetError::TooLong,
            ),
        ] {
            assert_eq!(Magnet::parse(&link), Err(why), "{link}");
        }
        // The same hash twice is one hash.
        let twice = format!("magnet:?xt=urn:btih:{hex40}&xt=urn:btih:{}", hex40.to_uppercase());
        assert_eq!(Magnet::parse(&twice).unwrap().hashes.v1, Some([0xcc; 20]));
    }
}
