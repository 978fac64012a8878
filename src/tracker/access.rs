//! The access list: which info hashes the tracker serves over BEP 15. An
//! operator keeps the hashes in a file (40 hex digits a line, `#` starts a
//! comment, blank lines ignored) and picks a mode: `allow` serves only the
//! listed hashes, `deny` serves every hash but the listed ones. The server
//! loads it at start (an error stops the start) and again on SIGHUP (an
//! error keeps the old list, so a typo never opens or closes the tracker).
//!
//! Invariant: the file is read through a bounded reader
//! ([`MAX_FILE_BYTES`]), so a huge or endless file (a FIFO, /dev/zero)
//! cannot exhaust memory.

use crate::wire::bep15::InfoHash;
use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest access-list file read: 64 MiB, about 1.5 million hashes.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only listed hashes are served.
    Allow,
    /// Listed hashes are refused.
    Deny,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "allow" => Some(Mode::Allow),
            "deny" => Some(Mode::Deny),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Allow => "allow",
            Mode::Deny => "deny",
        })
    }
}

/// A loaded list and where it came from.
#[derive(Debug, Clone)]
pub struct AccessList {
    path: PathBuf,
    mode: Mode,
    hashes: HashSet<InfoHash>,
}

impl AccessList {
    /// Reads `path`; the error names the file and the first bad line.
    pub fn load(path: &Path, mode: Mode) -> Result<AccessList, String> {
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| format!("access list {}: {e}", path.display()))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "access list {}: larger than {MAX_FILE_BYTES} bytes",
                path.display()
            ));
        }
        let hashes = parse(&text).map_err(|e| format!("access list {}: {e}", path.display()))?;
        Ok(AccessList {
            path: path.to_owned(),
            mode,
            hashes,
        })
    }

    /// The same file read again, in the same mode.
    pub fn reload(&self) -> Result<AccessList, String> {
        AccessList::load(&self.path, self.mode)
    }

    pub fn allows(&self, hash: &InfoHash) -> bool {
        self.hashes.contains(hash) == (self.mode == Mode::Allow)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Parses the file's text: one 40-hex-digit hash a line.
fn parse(text: &str) -> Result<HashSet<InfoHash>, String> {
    let mut hashes = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let hash = parse_hex(line).ok_or_else(|| {
            format!(
                "line {}: expected 40 hex digits, found '{}'",
                n + 1,
                crate::names::escape(&line.chars().take(60).collect::<String>())
            )
        })?;
        hashes.insert(hash);
    }
    Ok(hashes)
}

/// 40 hex digits (either case) as 20 bytes.
pub fn parse_hex(s: &str) -> Option<InfoHash> {
    let b = s.as_bytes();
    if b.len() != 40 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 20];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_parsing() {
        let dir = crate::testutil::TempDir::new("access");
        let path = dir.path().join("list");
        let a = "aa".repeat(20);
        std::fs::write(
            &path,
            format!("# comment\n\n{a}  # trailing\n{}\n", "0B".repeat(20)),
        )
        .unwrap();
        let allow = AccessList::load(&path, Mode::Allow).unwrap();
        assert_eq!(allow.len(), 2);
        assert!(allow.allows(&[0xaa; 20]) && allow.allows(&[0x0b; 20]));
        assert!(!allow.allows(&[1; 20]));
        let deny = AccessList::load(&path, Mode::Deny).unwrap();
        assert!(!deny.allows(&[0xaa; 20]) && deny.allows(&[1; 20]));
        // A bad line names itself; a reload keeps the mode.
        std::fs::write(&path, format!("{a}\nnot a hash\n")).unwrap();
        let err = allow.reload().unwrap_err();
        assert!(err.contains("line 2") && err.contains("not a hash"), "{err}");
        std::fs::write(&path, format!("{}\n", "cc".repeat(20))).unwrap();
        let again = allow.reload().unwrap();
        assert_eq!(again.mode(), Mode::Allow);
        assert!(again.allows(&[0xcc; 20]) && !again.allows(&[0xaa; 20]));
        assert!(AccessList::load(&dir.path().join("missing"), Mode::Deny).is_err());
        assert_eq!(parse_hex(&"g".repeat(40)), None);
        assert_eq!(parse_hex("ab"), None);
        assert_eq!(Mode::parse("allow"), Some(Mode::Allow));
        assert_eq!(Mode::parse("white"), None);
    }
}
