//! Magnet links for v2 torrents (BEP 9, BEP 52):
//! `magnet:?xt=urn:btmh:1220<64 hex digits>&dn=NAME&tr=URL&x.pe=HOST:PORT`.
//!
//! Only the v2 hash (`btmh`, multihash SHA-256: `12` `20`) identifies the
//! torrent; a `btih` (v1) of a hybrid link is ignored. The display name is
//! only a label: the file's name comes from the verified info dictionary.
//! Limits: [`MAX_MAGNET_LEN`] bytes, at most `MAX_TRACKERS` trackers and
//! [`MAX_PEERS`] peers kept.

use super::merkle::Hash;
use super::torrent::MAX_TRACKERS;
use std::fmt;

/// Longest magnet link accepted.
pub const MAX_MAGNET_LEN: usize = 8 << 10;
/// Most `x.pe` peers kept.
pub const MAX_PEERS: usize = 16;

/// What a magnet link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: Hash,
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
    NoV2Hash,
    /// An `xt=urn:btmh:` that is not a SHA-256 multihash of 64 hex digits.
    BadV2Hash,
    BadEscape,
}

impl fmt::Display for MagnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MagnetError::NotMagnet => "not a magnet link",
            MagnetError::TooLong => "magnet link too long",
            MagnetError::NoV2Hash => "the magnet link has no v2 hash (xt=urn:btmh:1220...)",
            MagnetError::BadV2Hash => {
                "the magnet link's v2 hash is malformed (want xt=urn:btmh:1220 and 64 hex digits)"
            }
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
            info_hash: [0; 32],
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        };
        let mut found = false;
        let mut malformed = false;
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = unescape(value)?;
            match key {
                "xt" => {
                    if let Some(h) = value.strip_prefix("urn:btmh:1220").and_then(parse_hex) {
                        m.info_hash = h;
                        found = true;
                    } else if value.starts_with("urn:btmh:") {
                        malformed = true;
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
        if !found && malformed {
            return Err(MagnetError::BadV2Hash);
        }
        if !found {
            return Err(MagnetError::NoV2Hash);
        }
        Ok(m)
    }

    /// The link for a torrent (what `--torrent` prints).
    pub fn link(info_hash: &Hash, name: &str, trackers: &[String]) -> String {
        let mut s = format!("magnet:?xt=urn:btmh:1220{}", crate::meta::hex(info_hash));
        s.push_str("&dn=");
        s.push_str(&escape(name));
        for t in trackers {
            s.push_str("&tr=");
            s.push_str(&escape(t));
        }
        s
    }
}

fn parse_hex(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut h = [0; 32];
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

    #[test]
    fn a_link_round_trips() {
        let h = [0xab; 32];
        let trackers = vec!["udp://127.0.0.1:6969/announce".to_string()];
        let link = Magnet::link(&h, "my file&.bin", &trackers);
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, h);
        assert_eq!(m.name.as_deref(), Some("my file&.bin"));
        assert_eq!(m.trackers, trackers);
    }

    #[test]
    fn hybrid_links_and_peers_are_read() {
        let link = format!(
            "magnet:?xt=urn:btih:{}&xt=urn:btmh:1220{}&dn=a+b&x.pe=127.0.0.1:6881&tr=udp%3A%2F%2Fx%3A1",
            "c".repeat(40),
            "0f".repeat(32)
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash, [0x0f; 32]);
        assert_eq!(m.name.as_deref(), Some("a b"));
        assert_eq!(m.peers, vec!["127.0.0.1:6881"]);
        assert_eq!(m.trackers, vec!["udp://x:1"]);
    }

    #[test]
    fn bad_links_are_refused() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        let v1 = format!("magnet:?xt=urn:btih:{}", "c".repeat(40));
        assert_eq!(Magnet::parse(&v1), Err(MagnetError::NoV2Hash));
        // Issue 20, defect 11: a malformed btmh is said to be malformed.
        let short = format!("magnet:?xt=urn:btmh:1220{}", "c".repeat(62));
        assert_eq!(Magnet::parse(&short), Err(MagnetError::BadV2Hash));
        let sha1 = format!("magnet:?xt=urn:btmh:1114{}", "c".repeat(40));
        assert_eq!(Magnet::parse(&sha1), Err(MagnetError::BadV2Hash));
        let bad = format!("magnet:?xt=urn:btmh:1220{}&dn=%zz", "c".repeat(64));
        assert_eq!(Magnet::parse(&bad), Err(MagnetError::BadEscape));
        let long = format!("magnet:?{}", "a".repeat(MAX_MAGNET_LEN));
        assert_eq!(Magnet::parse(&long), Err(MagnetError::TooLong));
    }
}
