//! The client's config file, `config/config.txt`: `key=value` lines and
//! blank lines; `#` at the start of a line, or after a space or tab,
//! starts a comment (so `a#b` is a value, `a #b` is `a` and a comment).
//! The source ships `config/config.example.txt`; `config/config.txt` is
//! the user's and not in git, so a first run modifies no tracked file.
//!
//! Invariants: parsing reports every mistake at once, each naming its line;
//! an unknown key is a warning, never an error (a newer config still loads);
//! writing a value back changes only that key's line (keeping its inline
//! comment) and every other line and comment byte for byte, through an
//! atomic replace of the file; a missing file and its directory are
//! created, starting from the example beside it when there is one.

use crate::meta::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use crate::names;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Longest config file we read (it is a handful of lines).
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// The example config shipped beside the real one; a config file created
/// by [`write_value`] starts as a copy of it, comments and all.
pub const EXAMPLE_NAME: &str = "config.example.txt";

/// `line` without its comment: from a `#` that starts the line or follows
/// a space or tab, to the end.
fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c == ' ' || c == '\t';
    }
    line
}

/// The client's settings, each with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `None` until the user picks one.
    pub username: Option<String>,
    /// `HOST:PORT` of the tracker (resolved when used).
    pub tracker: String,
    pub listen: SocketAddr,
    pub shared_dir: PathBuf,
    pub download_dir: PathBuf,
    pub chunk_size_kib: u32,
    /// Rate limits in bytes per second (`None` or 0: none).
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            username: None,
            tracker: "127.0.0.1:17380".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            shared_dir: "user/shared_files".into(),
            download_dir: "user/downloads".into(),
            chunk_size_kib: 1024,
            max_upload_rate: None,
            max_download_rate: None,
        }
    }
}

/// One mistake in the file, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What parsing found: the settings and any warnings, or every error.
#[derive(Debug)]
pub struct Parsed {
    pub config: ClientConfig,
    pub warnings: Vec<LineError>,
}

/// A config file with mistakes: every error, and the warnings found
/// beside them (so one run reports everything).
#[derive(Debug)]
pub struct Invalid {
    pub errors: Vec<LineError>,
    pub warnings: Vec<LineError>,
}

/// Parses the text of a config file, starting from the defaults.
pub fn parse(text: &str) -> Result<Parsed, Invalid> {
    let mut config = ClientConfig::default();
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let mut seen: Vec<(&str, usize)> = Vec::new();
    if text.len() > MAX_CONFIG_BYTES {
        errors.push(LineError {
            line: 1,
            message: format!("the file is larger than {MAX_CONFIG_BYTES} bytes"),
        });
        return Err(Invalid { errors, warnings });
    }
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = strip_comment(raw).trim();
        if trimmed.is_empty() {
            continue;
        }
        let mut err = |message: String| errors.push(LineError { line, message });
        let Some((key, value)) = trimmed.split_once('=') else {
            err(format!("expected key=value, found '{}'", names::escape(trimmed)));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(&(_, first)) = seen.iter().find(|(k, _)| *k == key) {
            err(format!("'{}' is already set on line {first}", names::escape(key)));
            continue;
        }
        seen.push((key, line));
        if let Err(message) = apply(&mut config, key, value) {
            match message {
                Problem::UnknownKey => warnings.push(LineError {
                    line,
                    message: format!("unknown key '{}' ignored", names::escape(key)),
                }),
                Problem::BadValue(why) => err(format!("{key}: {why}")),
            }
        }
    }
    if errors.is_empty() {
        Ok(Parsed { config, warnings })
    } else {
        Err(Invalid { errors, warnings })
    }
}

enum Problem {
    UnknownKey,
    BadValue(String),
}

fn apply(config: &mut ClientConfig, key: &str, value: &str) -> Result<(), Problem> {
    let bad = |why: String| Problem::BadValue(why);
    match key {
        "username" if value.is_empty() => config.username = None,
        "username" => {
            names::check_username(value).map_err(|e| bad(format!("the username {e}")))?;
            config.username = Some(value.to_string());
        }
        "tracker" => {
            let port = value.rsplit_once(':').and_then(|(host, port)| {
                (!host.is_empty()).then_some(())?;
                port.parse::<u16>().ok().filter(|&p| p > 0)
            });
            if port.is_none() {
                return Err(bad(format!(
                    "expected HOST:PORT, found '{}'",
                    names::escape(value)
                )));
            }
            config.tracker = value.to_string();
        }
        "max_upload_rate" | "max_download_rate" => {
            let rate = if value.is_empty() {
                0
            } else {
                crate::cli::parse_rate(&key.replace('_', "-"), value).map_err(bad)?
            };
            match key {
                "max_upload_rate" => config.max_upload_rate = Some(rate),
                _ => config.max_download_rate = Some(rate),
            }
        }
        "listen" => {
            config.listen = value.parse().map_err(|_| {
                bad(format!(
                    "expected an address like 0.0.0.0:0, found '{}'",
                    names::escape(value)
                ))
            })?;
        }
        "shared_dir" | "download_dir" => {
            if value.is_empty() || value.contains('\0') {
                return Err(bad("expected a directory path".into()));
            }
            let dir = PathBuf::from(value);
            if key == "shared_dir" {
                config.shared_dir = dir;
            } else {
                config.download_dir = dir;
            }
        }
        "chunk_size_kib" => {
            let (min, max) = (MIN_CHUNK_SIZE / 1024, MAX_CHUNK_SIZE / 1024);
            config.chunk_size_kib = value
                .parse()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| bad(format!("expected a whole number from {min} to {max}")))?;
        }
        _ => return Err(Problem::UnknownKey),
    }
    Ok(())
}

/// The text with `key` set to `value`: the first `key=` line is replaced
/// (an inline comment on it is kept), or a line is appended; every other
/// line is kept as it was.
pub fn with_value(text: &str, key: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + key.len() + value.len() + 2);
    let mut done = false;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim_end_matches(['\n', '\r']);
        let setting = strip_comment(line);
        let is_key = setting.split_once('=').is_some_and(|(k, _)| k.trim() == key);
        if is_key && !done {
            out.push_str(&format!("{key}={value}"));
            let comment = &line[setting.len()..];
            if !comment.is_empty() {
                out.push(' ');
                out.push_str(comment);
            }
            out.push_str(if raw.ends_with("\r\n") {
                "\r\n"
            } else if raw.ends_with('\n') {
                "\n"
            } else {
                ""
            });
            done = true;
        } else {
            out.push_str(raw);
        }
    }
    if !done {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{key}={value}\n"));
    }
    out
}

/// Sets `key=value` in the file at `path`, replacing it atomically: a crash
/// leaves the old file or the new one, never half. A missing file is
/// created (and its directory), from [`EXAMPLE_NAME`] beside it if that
/// exists, so the user's new config keeps the example's comments.
pub fn write_value(path: &Path, key: &str, value: &str) -> io::Result<()> {
    if value.contains(['\n', '\r']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a config value cannot span lines",
        ));
    }
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::read_to_string(path.with_file_name(EXAMPLE_NAME)).unwrap_or_default()
        }
        Err(e) => return Err(e),
    };
    crate::atomic_file::write(path, with_value(&old, key, value).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "# PyTorrent\nusername=\n\n# the tracker\ntracker = example.org:17380  \nchunk_size_kib=64\n";

    #[test]
    fn parses_with_defaults() {
        let p = parse(SAMPLE).unwrap();
        assert!(p.warnings.is_empty());
        assert_eq!(p.config.username, None);
        assert_eq!(p.config.tracker, "example.org:17380");
        assert_eq!(p.config.chunk_size_kib, 64);
        assert_eq!(p.config.shared_dir, PathBuf::from("user/shared_files"));
        // The shipped example parses cleanly.
        let shipped = include_str!("../config/config.example.txt");
        let p = parse(shipped).unwrap();
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = "username=two words\nno equals sign\ntracker=nohost\nlisten=here\nchunk_size_kib=1\n\
                    colour=blue\nshared_dir=\ntracker=a:1\n";
        let invalid = parse(text).unwrap_err();
        let errors = invalid.errors;
        // The unknown key on line 6 is reported beside the errors.
        assert_eq!(invalid.warnings.len(), 1);
        assert_eq!(invalid.warnings[0].line, 6);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5, 7, 8], "{errors:?}");
        assert!(errors[0].to_string().starts_with("line 1: username"));
        assert!(errors[6].message.contains("already set on line 3"));
        let p = parse("colour=blue\n").unwrap();
        assert_eq!(p.warnings[0].line, 1);
        assert!(p.warnings[0].message.contains("unknown key"));
    }

    #[test]
    fn hostile_text_is_escaped_in_messages() {
        let errors = parse("listen=\u{1b}[2J\n").unwrap_err().errors;
        assert!(!errors[0].message.contains('\u{1b}'));
    }

    #[test]
    fn writing_back_keeps_everything_else() {
        let updated = with_value(SAMPLE, "username", "alice");
        assert_eq!(updated, SAMPLE.replace("username=\n", "username=alice\n"));
        assert_eq!(parse(&updated).unwrap().config.username.as_deref(), Some("alice"));
        // Commented-out keys are left alone; a missing key is appended.
        let text = "# username=old\ntracker=h:1";
        assert_eq!(
            with_value(text, "username", "bob"),
            "# username=old\ntracker=h:1\nusername=bob\n"
        );
    }

    #[test]
    fn inline_comments_after_a_space() {
        let p = parse("username=ann # me\ntracker=h:1\t# there\nshared_dir=a#b\n  # indented\n").unwrap();
        assert_eq!(p.config.username.as_deref(), Some("ann"));
        assert_eq!(p.config.tracker, "h:1");
        assert_eq!(
            p.config.shared_dir,
            PathBuf::from("a#b"),
            "no space: part of the value"
        );
        // Writing back keeps the comment.
        assert_eq!(
            with_value("username=ann # me\r\n", "username", "bo"),
            "username=bo # me\r\n"
        );
        assert_eq!(
            with_value("# username=x\nusername= # none yet\n", "username", "cy"),
            "# username=x\nusername=cy # none yet\n"
        );
    }

    #[test]
    fn write_value_creates_the_file_and_its_directory() {
        let dir = std::env::temp_dir().join(format!("pytorrent-config-new-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // No directory at all: created, with just the key.
        let path = dir.join("config").join("config.txt");
        write_value(&path, "username", "dan").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "username=dan\n");
        // Beside an example: a copy of it with the key set.
        let path = dir.join("other").join("config.txt");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path.with_file_name(EXAMPLE_NAME), SAMPLE).unwrap();
        write_value(&path, "username", "eve").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            SAMPLE.replace("username=\n", "username=eve\n")
        );
        assert_eq!(
            std::fs::read_to_string(path.with_file_name(EXAMPLE_NAME)).unwrap(),
            SAMPLE
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_value_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("pytorrent-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.txt");
        std::fs::write(&path, SAMPLE).unwrap();
        write_value(&path, "username", "carol").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# PyTorrent\nusername=carol\n"));
        assert!(write_value(&path, "username", "x\ny").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
