//! The client's command line: flags (getopts) over the config file over the
//! defaults, validated into one [`Options`] before anything runs.
//!
//! Invariants: every value in an [`Options`] is valid (addresses resolved,
//! username checked, chunk size in range); a mistake is reported as an
//! [`ArgsError`] naming the flag or the config line, never a panic.

use crate::bt::create::Kind;
use crate::cli::{getopts_error, parse_in_range, parse_rate, resolve};
use crate::config::{self, ClientConfig, MAX_CONFIG_BYTES};
use crate::names;
use getopts::Matches;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_CONFIG: &str = "config/config.txt";
pub const DEFAULT_LOG: &str = "logs/download.log";

/// What the client was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The interactive terminal client.
    Interactive,
    /// Without a person at the keyboard.
    Headless {
        /// Index, announce and serve the shared files until a signal.
        seed: bool,
        /// Download these files (names, file ids or unique id prefixes), at once.
        get: Vec<String>,
        /// Print the files on the network and exit.
        list: bool,
        /// Print the peers on the network and exit.
        peers: bool,
    },
}

/// Everything the client needs to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub config_path: PathBuf,
    pub username: Option<String>,
    pub tracker: SocketAddr,
    pub listen: SocketAddr,
    pub shared_dir: PathBuf,
    pub download_dir: PathBuf,
    pub chunk_size: u32,
    /// The log file; `None` for `--list` and `--peers` without `--log`,
    /// which only ask and must leave no file behind.
    pub log_file: Option<PathBuf>,
    pub max_inbound: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    /// How long a headless download waits with no peer before giving up.
    pub peer_wait: Duration,
    /// Interactive: no typewriter effect.
    pub no_effects: bool,
    /// BitTorrent peers for `--get FILE.torrent` and magnet links.
    pub bt_peers: Vec<SocketAddr>,
    /// `--only` patterns for multi-file torrents.
    pub bt_only: Vec<String>,
    /// `--torrent NAME` (repeatable): shared files or folders to write
    /// torrents for (and, with `--seed`, single files to seed over
    /// BitTorrent).
    pub bt_torrent: Vec<String>,
    /// What `--torrent` writes: hybrid v1+v2, or with `--v2-only` or
    /// `--v1-only` one half.
    pub bt_kind: Kind,
    /// Its piece length in bytes (`None`: chosen from the size).
    pub piece_size: Option<u32>,
    /// `--list` / `--peers` as JSON (exact bytes, whole ids) for scripts.
    pub json: bool,
    /// `--output NAME`: the name the one `--get` is saved as.
    pub output: Option<String>,
    /// `--on-complete CMD`: run by `sh -c` after each verified download.
    pub on_complete: Option<String>,
    /// `--check FILE --id ID`: the file and the id (hex digits) to check
    /// it against, then exit.
    pub check: Option<(PathBuf, String)>,
    /// Bytes per second over all peer connections (`None`: unlimited).
    pub max_upload_rate: Option<u64>,
    pub max_download_rate: Option<u64>,
}

/// A bad command line or config file (exit code 2).
#[derive(Debug)]
pub struct ArgsError(pub String);

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
    Version,
}

pub fn flags() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optflag(
        "",
        "seed",
        "share the files in the shared directory (files added later are picked up within 10 s) until SIGINT/SIGTERM",
    );
    o.optmulti(
        "",
        "get",
        "download a file by name (unique on the network), file id, or unique id prefix (8+ hex digits, as --list shows), or a BitTorrent FILE.torrent (v1, v2 or hybrid; a multi-file torrent lands as a folder) or magnet link (btih or btmh), then exit; repeat to download several at once; with --seed, keep seeding afterwards",
        "NAME_OR_ID",
    );
    o.optmulti(
        "",
        "peer",
        "a BitTorrent peer for --get FILE.torrent or --get 'magnet:?...' (repeatable)",
        "HOST:PORT",
    );
    o.optmulti(
        "",
        "only",
        "of a multi-file torrent, download only the files whose path inside it matches GLOB (* within a folder, ** across folders, ?); repeatable",
        "GLOB",
    );
    o.optmulti(
        "",
        "torrent",
        "write NAME.torrent (hybrid BitTorrent v1+v2) for a file or folder in the shared directory and print its magnet link; with --seed, also seed it to BitTorrent clients (repeatable)",
        "NAME",
    );
    o.optflag(
        "",
        "v2-only",
        "--torrent writes BitTorrent v2 torrents only (read by libtorrent 2 and few others)",
    );
    o.optflag(
        "",
        "v1-only",
        "--torrent writes BitTorrent v1 torrents only (for aria2c 1.36 and Transmission 3.00, which cannot use hybrids)",
    );
    o.optopt(
        "",
        "piece-size-kib",
        "piece size of --torrent, a power of two from 16 to 65536 (default: at most 2048 pieces)",
        "KIB",
    );
    o.optflag("", "list", "print the files on the network and exit");
    o.optflag("", "peers", "print the peers on the network and exit");
    o.optflag(
        "",
        "json",
        "with --list or --peers: print one JSON array (exact sizes, whole ids) for scripts",
    );
    o.optopt(
        "",
        "output",
        "with one --get of the network's files: save it as NAME in the downloads directory (NAME.1.ext, ... if taken)",
        "NAME",
    );
    o.optopt(
        "",
        "check",
        "whether FILE is the file --id ID names (hashed with --chunk-size-kib first, then every other chunk size), then exit: 0 it is, 1 it is not",
        "FILE",
    );
    o.optopt(
        "",
        "id",
        "with --check: the file id, whole or its first 8+ hex digits as --list shows",
        "ID",
    );
    o.optopt(
        "",
        "max-upload-rate",
        "most bytes per second sent to peers, all together: 500K, 2M, 1.5M (K = 1024 bytes; 0 = no limit; default: the config's, else none)",
        "RATE",
    );
    o.optopt(
        "",
        "max-download-rate",
        "most bytes per second received from peers, all together (as --max-upload-rate)",
        "RATE",
    );
    o.optopt(
        "",
        "on-complete",
        "run CMD with sh -c after each verified download, with PYTORRENT_PATH, PYTORRENT_NAME, PYTORRENT_SIZE and PYTORRENT_SHA256 set (not waited for)",
        "CMD",
    );
    o.optopt(
        "c",
        "config",
        &format!("config file (default {DEFAULT_CONFIG})"),
        "FILE",
    );
    o.optopt(
        "t",
        "tracker",
        "tracker address (default 127.0.0.1:17380)",
        "HOST:PORT",
    );
    o.optopt(
        "u",
        "username",
        "your name on the network (1-32 characters, no spaces)",
        "NAME",
    );
    o.optopt(
        "s",
        "shared",
        "directory of files to share (default user/shared_files)",
        "DIR",
    );
    o.optopt(
        "d",
        "downloads",
        "directory downloads land in (default user/downloads)",
        "DIR",
    );
    o.optopt(
        "l",
        "listen",
        "TCP address to serve chunks on (default 0.0.0.0:0: any port)",
        "ADDR",
    );
    o.optopt("", "log", &format!("log file (default {DEFAULT_LOG})"), "FILE");
    o.optopt(
        "",
        "chunk-size-kib",
        "chunk size for files you share, 16-65536 (default 1024)",
        "KIB",
    );
    o.optopt("", "max-inbound", "most peers served at once (default 128)", "N");
    o.optopt(
        "",
        "idle-timeout",
        "seconds before an idle inbound connection is closed (default 60)",
        "SECS",
    );
    o.optopt(
        "",
        "request-timeout",
        "seconds a peer may stall a request before its chunks go elsewhere (default 10)",
        "SECS",
    );
    o.optopt(
        "",
        "peer-wait",
        "seconds --get waits with no peer, or with no peer delivering anything, before giving up (default 60)",
        "SECS",
    );
    o.optflag("", "no-effects", "interactive: no typewriter effect (colours and effects are off anyway when stdout is not a terminal or NO_COLOR is set)");
    o.optflag("h", "help", "print this help and exit");
    o.optflag("V", "version", "print the version and exit");
    o
}

pub fn usage() -> String {
    flags().usage(
        "Usage: pytorrent [--seed] [--get NAME_OR_ID] [--list] [--peers] [options]\n\n\
         The PyTorrent client. Without a mode flag it starts the interactive client\n\
         (a menu of five; type help there for all commands: downloads, cancel,\n\
         unshare, rescan); --seed, --get, --list and --peers run without a person\n\
         at the keyboard.",
    )
}

/// Parses the command line (without the program name) and the config file.
/// Returns the config file's warnings (unknown keys) beside the options.
pub fn parse(args: &[String]) -> Result<(Parsed, Vec<String>), ArgsError> {
    let m = flags().parse(args).map_err(|e| ArgsError(getopts_error(&e)))?;
    if m.opt_present("help") {
        return Ok((Parsed::Help, Vec::new()));
    }
    if m.opt_present("version") {
        return Ok((Parsed::Version, Vec::new()));
    }
    if let Some(extra) = m.free.first() {
        return Err(ArgsError(format!(
            "unexpected argument '{}'",
            names::escape(extra)
        )));
    }
    let config_path = PathBuf::from(m.opt_str("config").unwrap_or_else(|| DEFAULT_CONFIG.into()));
    let (file, warnings) = read_config(&config_path, m.opt_present("config"))?;
    let opts = merge(&m, file, config_path)?;
    Ok((Parsed::Run(Box::new(opts)), warnings))
}

/// Reads the config file; a missing file is fine unless it was named.
fn read_config(path: &Path, named: bool) -> Result<(ClientConfig, Vec<String>), ArgsError> {
    let shown = path.display();
    let text = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {
            return Ok((ClientConfig::default(), Vec::new()))
        }
        Err(e) => return Err(ArgsError(format!("cannot read {shown}: {e}"))),
        Ok(m) if m.len() > MAX_CONFIG_BYTES as u64 => {
            return Err(ArgsError(format!(
                "{shown}: larger than {MAX_CONFIG_BYTES} bytes"
            )))
        }
        Ok(_) => std::fs::read(path).map_err(|e| ArgsError(format!("cannot read {shown}: {e}")))?,
    };
    let text = String::from_utf8(text).map_err(|_| ArgsError(format!("{shown}: not UTF-8 text")))?;
    match config::parse(&text) {
        Ok(p) => Ok((
            p.config,
            p.warnings.iter().map(|w| format!("{shown}: {w}")).collect(),
        )),
        Err(invalid) => {
            let errors = invalid.errors.iter().map(|e| format!("{shown}: {e}"));
            let warnings = invalid.warnings.iter().map(|w| format!("{shown}: warning: {w}"));
            let lines: Vec<String> = errors.chain(warnings).collect();
            Err(ArgsError(lines.join("\n")))
        }
    }
}

fn merge(m: &Matches, file: ClientConfig, config_path: PathBuf) -> Result<Options, ArgsError> {
    let err = ArgsError;
    let asks_only = m.opt_present("list") || m.opt_present("peers");
    let username = match m.opt_str("username") {
        Some(u) => {
            names::check_username(&u).map_err(|e| err(format!("--username: the username {e}")))?;
            Some(u)
        }
        // --list and --peers only ask: the config's name may be online
        // already (the interactive client of the same checkout), and
        // usernames are unique, so they go as a passing `peer-XXXX`.
        None if asks_only => None,
        None => file.username,
    };
    let tracker = resolve("tracker", &m.opt_str("tracker").unwrap_or(file.tracker)).map_err(err)?;
    let listen = match m.opt_str("listen") {
        Some(l) => l.parse().map_err(|_| {
            err(format!(
                "--listen: expected an address like 0.0.0.0:0, found '{}'",
                names::escape(&l)
            ))
        })?,
        None => file.listen,
    };
    let kib = match m.opt_str("chunk-size-kib") {
        Some(v) => parse_in_range("chunk-size-kib", &v, 16, 65536).map_err(err)?,
        None => file.chunk_size_kib,
    };
    let secs = |flag: &str, default: u64| -> Result<Duration, ArgsError> {
        m.opt_str(flag).map_or(Ok(Duration::from_secs(default)), |v| {
            parse_in_range(flag, &v, 1, 86_400)
                .map(Duration::from_secs)
                .map_err(ArgsError)
        })
    };
    let get = m.opt_strs("get");
    if get.iter().any(String::is_empty) {
        return Err(err("--get: give a file name or id".into()));
    }
    let (seed, list, peers) = (
        m.opt_present("seed"),
        m.opt_present("list"),
        m.opt_present("peers"),
    );
    if (list || peers) && (seed || !get.is_empty()) || (list && peers) {
        return Err(err(
            "--list and --peers run alone, without --seed, --get or each other".into(),
        ));
    }
    // A flag wins over the config; 0 means no limit either way.
    let rate = |flag: &str, from_file: Option<u64>| -> Result<Option<u64>, ArgsError> {
        let r = match m.opt_str(flag) {
            Some(v) => Some(parse_rate(flag, &v).map_err(ArgsError)?),
            None => from_file,
        };
        Ok(r.filter(|&r| r > 0))
    };
    let check = match (m.opt_str("check"), m.opt_str("id")) {
        (None, None) => None,
        (Some(file), Some(id)) => {
            if !(8..=64).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err("--id: expected 8 to 64 hex digits of a file id".into()));
            }
            if seed || list || peers || !get.is_empty() {
                return Err(err(
                    "--check runs alone, without --seed, --get, --list or --peers".into(),
                ));
            }
            Some((PathBuf::from(file), id))
        }
        (Some(_), None) => return Err(err("--check needs --id ID (the file id to check against)".into())),
        (None, Some(_)) => return Err(err("--id goes with --check FILE".into())),
    };
    let output = match m.opt_str("output") {
        None => None,
        Some(name) => {
            names::check_file_name(&name).map_err(|e| err(format!("--output: the name {e}")))?;
            let one_native =
                get.len() == 1 && !get[0].starts_with("magnet:") && !get[0].ends_with(".torrent");
            if !one_native {
                return Err(err(
                    "--output goes with one --get of a file on the network (not a torrent or magnet link)"
                        .into(),
                ));
            }
            Some(name)
        }
    };
    let json = m.opt_present("json");
    if json && !(list || peers) {
        return Err(err("--json goes with --list or --peers".into()));
    }
    let on_complete = m.opt_str("on-complete");
    if on_complete.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(err("--on-complete: give a command".into()));
    }
    let bt_torrent = m.opt_strs("torrent");
    for name in &bt_torrent {
        names::check_file_name(name).map_err(|e| err(format!("--torrent: the name {e}")))?;
    }
    let piece_size = match m.opt_str("piece-size-kib") {
        Some(v) => {
            let kib: u32 = parse_in_range("piece-size-kib", &v, 16u32, 65536).map_err(err)?;
            if !kib.is_power_of_two() {
                return Err(err("--piece-size-kib: must be a power of two".into()));
            }
            Some(kib * 1024)
        }
        None => None,
    };
    let bt_kind = match (m.opt_present("v1-only"), m.opt_present("v2-only")) {
        (true, true) => return Err(err("--v1-only and --v2-only exclude each other".into())),
        (true, false) => Kind::V1Only,
        (false, true) => Kind::V2Only,
        (false, false) => Kind::Hybrid,
    };
    let mode = if seed || !get.is_empty() || list || peers || !bt_torrent.is_empty() {
        Mode::Headless {
            seed,
            get,
            list,
            peers,
        }
    } else {
        Mode::Interactive
    };
    let max_inbound = match m.opt_str("max-inbound") {
        Some(v) => parse_in_range("max-inbound", &v, 1usize, 10_000).map_err(err)?,
        None => 128,
    };
    Ok(Options {
        mode,
        config_path,
        username,
        tracker,
        listen,
        shared_dir: m.opt_str("shared").map_or(file.shared_dir, PathBuf::from),
        download_dir: m.opt_str("downloads").map_or(file.download_dir, PathBuf::from),
        chunk_size: kib * 1024,
        log_file: match m.opt_str("log") {
            Some(path) => Some(PathBuf::from(path)),
            None if list || peers => None,
            None => Some(PathBuf::from(DEFAULT_LOG)),
        },
        max_inbound,
        idle_timeout: secs("idle-timeout", 60)?,
        request_timeout: secs("request-timeout", 10)?,
        peer_wait: secs("peer-wait", 60)?,
        no_effects: m.opt_present("no-effects"),
        bt_peers: m
            .opt_strs("peer")
            .iter()
            .map(|p| resolve("peer", p))
            .collect::<Result<_, _>>()
            .map_err(err)?,
        bt_only: {
            let only = m.opt_strs("only");
            if only.len() > crate::bt::select::MAX_PATTERNS
                || only.iter().any(|p| p.len() > crate::bt::select::MAX_PATTERN_LEN)
            {
                return Err(err(format!(
                    "--only: at most {} patterns of {} bytes each",
                    crate::bt::select::MAX_PATTERNS,
                    crate::bt::select::MAX_PATTERN_LEN
                )));
            }
            only
        },
        bt_torrent,
        bt_kind,
        piece_size,
        json,
        on_complete,
        check,
        output,
        max_upload_rate: rate("max-upload-rate", file.max_upload_rate)?,
        max_download_rate: rate("max-download-rate", file.max_download_rate)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> Result<Options, String> {
        match parse(&args(list)) {
            Ok((Parsed::Run(o), _)) => Ok(*o),
            Ok(other) => Err(format!("{other:?}")),
            Err(ArgsError(e)) => Err(e),
        }
    }

    fn temp_config(text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pytorrent-opts-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.txt");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_override_the_config_file() {
        let path = temp_config("username=alice\nchunk_size_kib=64\ntracker=127.0.0.1:9\n");
        let p = path.to_str().unwrap();
        let o = run(&["-c", p, "--seed"]).unwrap();
        assert_eq!(o.username.as_deref(), Some("alice"));
        assert_eq!(o.chunk_size, 64 * 1024);
        assert_eq!(o.tracker.port(), 9);
        let o = run(&[
            "-c",
            p,
            "-u",
            "bob",
            "--chunk-size-kib",
            "16",
            "-t",
            "127.0.0.1:10",
            "--get",
            "x",
        ])
        .unwrap();
        assert_eq!(o.username.as_deref(), Some("bob"));
        assert_eq!(o.chunk_size, 16 * 1024);
        assert_eq!(o.tracker.port(), 10);
        assert_eq!(
            o.mode,
            Mode::Headless {
                seed: false,
                get: vec!["x".into()],
                list: false,
                peers: false
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        let path = temp_config("username=a b\nchunk_size_kib=3\n");
        let e = run(&["-c", path.to_str().unwrap()]).unwrap_err();
        assert!(e.contains("line 1") && e.contains("line 2"), "{e}");
        assert!(run(&["-c", "/nonexistent/pytorrent.txt"])
            .unwrap_err()
            .contains("cannot read"));
        assert!(run(&["-u", "has space"]).unwrap_err().contains("--username"));
        assert!(run(&["--listen", "nowhere"]).unwrap_err().contains("--listen"));
        assert!(run(&["--list", "--seed"]).unwrap_err().contains("alone"));
        assert!(run(&["--max-inbound", "0"]).unwrap_err().contains("max-inbound"));
        assert!(run(&["stray"]).unwrap_err().contains("unexpected"));
    }

    #[test]
    fn bittorrent_flags_are_checked() {
        let o = run(&[
            "--seed",
            "--torrent",
            "a.bin",
            "--torrent",
            "b.bin",
            "--peer",
            "127.0.0.1:6881",
        ])
        .unwrap();
        assert_eq!(o.bt_torrent, vec!["a.bin".to_string(), "b.bin".to_string()]);
        assert_eq!(o.bt_kind, Kind::Hybrid);
        assert_eq!(
            run(&["--torrent", "a", "--v2-only"]).unwrap().bt_kind,
            Kind::V2Only
        );
        assert_eq!(
            run(&["--torrent", "a", "--v1-only"]).unwrap().bt_kind,
            Kind::V1Only
        );
        assert!(run(&["--torrent", "a", "--v1-only", "--v2-only"])
            .unwrap_err()
            .contains("exclude"));
        assert_eq!(o.bt_peers, vec![SocketAddr::from(([127, 0, 0, 1], 6881))]);
        assert_eq!(
            run(&["--torrent", "a.bin", "--piece-size-kib", "64"])
                .unwrap()
                .piece_size,
            Some(64 << 10)
        );
        assert!(run(&["--torrent", "../x"]).unwrap_err().contains("--torrent"));
        assert!(run(&["--torrent", "a", "--piece-size-kib", "48"])
            .unwrap_err()
            .contains("power of two"));
        assert!(run(&["--torrent", "a", "--piece-size-kib", "8"])
            .unwrap_err()
            .contains("piece-size-kib"));
        assert!(run(&["--get", "x", "--peer", "nowhere"])
            .unwrap_err()
            .contains("--peer"));
    }
}
