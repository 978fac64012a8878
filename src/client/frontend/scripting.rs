//! What the client offers scripts beyond plain lines: `--list --json` and
//! `--peers --json` (one JSON array: exact sizes, whole ids), and
//! `--on-complete CMD` (a command run after each verified download, like
//! aria2c's `--on-download-complete`).
//!
//! Invariants: JSON strings escape every character outside printable
//! ASCII (`\uXXXX`), so a name from the network can carry no control
//! character, bidi override or invalid sequence to whoever reads it; a
//! completion command gets the file as environment variables, never
//! spliced into the command text, and at most [`MAX_RUNNING`] run at once
//! (they are not waited for, and reaped as they end).

use crate::meta::{hex, FileMeta};
use crate::wire::tracker::{FileInfo, PeerInfo};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::table::role_name;

/// Completion commands running at once; past it one is skipped with a
/// warning (a stuck command must not pile up processes).
pub const MAX_RUNNING: usize = 16;

/// `text` as a JSON string, everything outside printable ASCII escaped.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// The file list as a JSON array: whole id, name, exact size, seeders and
/// partial holders of each file.
pub fn files_json(files: &[FileInfo]) -> String {
    let rows: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "{{\"id\":\"{}\",\"name\":{},\"size\":{},\"seeders\":{},\"partial\":{}}}",
                hex(&f.id),
                json_string(&f.name),
                f.size,
                f.seeders,
                f.partial
            )
        })
        .collect();
    format!("[{}]", rows.join(",\n "))
}

/// The peer list as a JSON array: username, address, role and number of
/// files of each peer.
pub fn peers_json(peers: &[PeerInfo]) -> String {
    let rows: Vec<String> = peers
        .iter()
        .map(|p| {
            format!(
                "{{\"username\":{},\"address\":\"{}\",\"role\":\"{}\",\"files\":{}}}",
                json_string(&p.username),
                p.addr,
                role_name(p.role, p.files),
                p.files
            )
        })
        .collect();
    format!("[{}]", rows.join(",\n "))
}

/// `--on-complete CMD`: runs CMD per verified download, without waiting.
#[derive(Default)]
pub struct OnComplete {
    command: Option<String>,
    running: Vec<Child>,
}

impl OnComplete {
    pub fn new(command: Option<String>) -> OnComplete {
        OnComplete {
            command,
            running: Vec::new(),
        }
    }

    /// Starts the command for a download saved at `path`; `Err` says why
    /// it did not start (for a warning). Nothing to do without a command.
    pub fn run(&mut self, meta: &FileMeta, path: &Path) -> Result<(), String> {
        let Some(command) = &self.command else {
            return Ok(());
        };
        // Reap the ones that ended, so the limit counts live processes.
        self.running.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        if self.running.len() >= MAX_RUNNING {
            return Err(format!(
                "--on-complete not run for {}: {MAX_RUNNING} still running",
                path.display()
            ));
        }
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .env("PYTORRENT_PATH", path)
            .env("PYTORRENT_NAME", &meta.name)
            .env("PYTORRENT_SIZE", meta.size.to_string())
            .env("PYTORRENT_SHA256", hex(&meta.sha256))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("--on-complete could not start: {e}"))?;
        self.running.push(child);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tracker::Role;

    #[test]
    fn json_strings_escape_all_but_printable_ascii() {
        assert_eq!(json_string("a \"b\" \\ c"), r#""a \"b\" \\ c""#);
        assert_eq!(json_string("é\u{1b}[2J"), r#""\u00e9\u001b[2J""#);
        assert_eq!(json_string("\u{202e}🎉"), r#""\u202e\ud83c\udf89""#);
    }

    #[test]
    fn listings_are_json_arrays_with_exact_numbers() {
        let files = [FileInfo {
            id: [0xab; 32],
            name: "big \"one\".iso".into(),
            size: 5_000_000_001,
            seeders: 2,
            partial: 1,
        }];
        let j = files_json(&files);
        assert_eq!(
            j,
            format!(
                r#"[{{"id":"{}","name":"big \"one\".iso","size":5000000001,"seeders":2,"partial":1}}]"#,
                "ab".repeat(32)
            )
        );
        let peers = [PeerInfo {
            username: "alice".into(),
            addr: "127.0.0.1:6000".parse().unwrap(),
            role: Role::Seeder,
            files: 3,
            is_you: false,
        }];
        assert_eq!(
            peers_json(&peers),
            r#"[{"username":"alice","address":"127.0.0.1:6000","role":"seeder","files":3}]"#
        );
        assert_eq!(files_json(&[]), "[]");
    }
}
