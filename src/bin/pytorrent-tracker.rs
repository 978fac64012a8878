//! `pytorrent-tracker`: flags -> validated [`Config`] -> [`Tracker::run`].

use getopts::Options;
use pytorrent::cli::{init_stderr_logging, parse_in_range, resolve, EXIT_FAILURE, EXIT_USAGE};
use pytorrent::tracker::access::Mode;
use pytorrent::tracker::registry::{Fairness, Limits};
use pytorrent::tracker::swarms::SwarmLimits;
use pytorrent::tracker::{Config, Tracker};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_BIND: &str = "0.0.0.0:17380";

fn options() -> Options {
    let mut o = Options::new();
    o.optopt(
        "b",
        "bind",
        &format!("UDP address to listen on (default {DEFAULT_BIND}); IPv6 as [::]:17380"),
        "ADDR",
    );
    o.optopt(
        "i",
        "interval",
        "keep-alive interval in seconds; peers silent for 3 intervals expire (default 30)",
        "SECS",
    );
    o.optopt(
        "",
        "max-peers",
        "most peers registered at once (default 10000)",
        "N",
    );
    o.optopt(
        "",
        "max-files",
        "most distinct files tracked at once (default 1000000)",
        "N",
    );
    o.optopt(
        "",
        "max-peers-per-host",
        "most peers one IPv4 address or IPv6 /64 may register at once (default 64)",
        "N",
    );
    o.optopt(
        "",
        "max-files-per-host",
        "most files the peers of one IPv4 address or IPv6 /64 may share, counted per peer (default 16384)",
        "N",
    );
    o.optopt(
        "",
        "max-peers-per-network",
        "most peers one IPv4 /24 or IPv6 /48 may register at once (default 256)",
        "N",
    );
    o.optopt(
        "",
        "max-files-per-network",
        "most files the peers of one IPv4 /24 or IPv6 /48 may share, counted per peer (default 65536)",
        "N",
    );
    o.optopt(
        "",
        "reserved-peers",
        "of --max-peers, the last N are kept for networks with fewer than 4 peers (default 5% of --max-peers)",
        "N",
    );
    o.optopt(
        "",
        "reserved-files",
        "of --max-files, the last N are kept for networks sharing fewer than 64 files (default 5% of --max-files)",
        "N",
    );
    o.optopt(
        "",
        "id-lifetime",
        "seconds a connection id stays valid, at least (default 120)",
        "SECS",
    );
    o.optopt(
        "",
        "bt-interval",
        "BitTorrent (BEP 15) announce interval in seconds, 300-10800; peers silent for 2 intervals expire (default 1800)",
        "SECS",
    );
    o.optopt(
        "",
        "max-torrents",
        "most BitTorrent swarms tracked at once (default 1000000)",
        "N",
    );
    o.optopt(
        "",
        "max-bt-peers",
        "most BitTorrent peers tracked at once, all swarms together (default 4000000)",
        "N",
    );
    o.optopt(
        "",
        "max-peers-per-torrent",
        "most peers recorded in one swarm; past it announces are answered but not recorded (default 100000)",
        "N",
    );
    o.optopt(
        "",
        "max-per-ip",
        "most BitTorrent peer entries one IPv4 address or IPv6 /64 may hold (default 1000)",
        "N",
    );
    o.optopt(
        "",
        "access-list",
        "file of BitTorrent info hashes, 40 hex digits a line; reloaded on SIGHUP (needs --access-mode)",
        "FILE",
    );
    o.optopt(
        "",
        "access-mode",
        "allow: serve only the listed hashes; deny: serve all but them",
        "allow|deny",
    );
    o.optopt(
        "",
        "stats",
        "write the counters as JSON to FILE every 10 s and on exit",
        "FILE",
    );
    o.optflag("q", "quiet", "log warnings and errors only (RUST_LOG overrides)");
    o.optflag("h", "help", "print this help and exit");
    o.optflag("V", "version", "print the version and exit");
    o
}

fn usage(o: &Options) -> String {
    o.usage("Usage: pytorrent-tracker [options]\n\nThe PyTorrent tracker: a UDP server that knows which peers are online\nand which files they share. On the same port it is a BitTorrent UDP tracker\n(BEP 15): udp://HOST:PORT/announce. SIGHUP reloads --access-list.")
}

enum Parsed {
    Run(Config, bool),
    Exit(ExitCode),
}

fn parse(args: &[String]) -> Result<Parsed, String> {
    let o = options();
    let m = o.parse(args).map_err(|e| pytorrent::cli::getopts_error(&e))?;
    if m.opt_present("help") {
        println!("{}", usage(&o));
        return Ok(Parsed::Exit(ExitCode::SUCCESS));
    }
    if m.opt_present("version") {
        println!("pytorrent-tracker {}", env!("CARGO_PKG_VERSION"));
        return Ok(Parsed::Exit(ExitCode::SUCCESS));
    }
    if let Some(extra) = m.free.first() {
        return Err(format!(
            "unexpected argument '{}'",
            pytorrent::names::escape(extra)
        ));
    }
    let num = |flag: &str, default: u32, max: u32| -> Result<u32, String> {
        m.opt_str(flag)
            .map_or(Ok(default), |v| parse_in_range(flag, &v, 1, max))
    };
    let d = Limits::DEFAULT;
    let max_peers = num("max-peers", d.max_peers as u32, 10_000_000)? as usize;
    let max_files = num("max-files", d.max_files as u32, 100_000_000)? as usize;
    // A reserve may be 0 (off), never the whole limit.
    let reserve = |flag: &str, max: usize| -> Result<usize, String> {
        m.opt_str(flag)
            .map_or(Ok(max / 20), |v| parse_in_range(flag, &v, 0, max - 1))
    };
    let fair = Fairness {
        max_peers_per_network: num(
            "max-peers-per-network",
            d.fair.max_peers_per_network as u32,
            10_000_000,
        )? as usize,
        max_files_per_network: num(
            "max-files-per-network",
            d.fair.max_files_per_network as u32,
            100_000_000,
        )? as usize,
        reserved_peers: reserve("reserved-peers", max_peers)?,
        reserved_files: reserve("reserved-files", max_files)?,
    };
    let config = Config {
        bind: resolve("bind", &m.opt_str("bind").unwrap_or_else(|| DEFAULT_BIND.into()))?,
        interval_secs: num("interval", d.interval_secs, 3600)?,
        max_peers,
        max_files,
        max_peers_per_host: num("max-peers-per-host", d.max_peers_per_host as u32, 10_000_000)? as usize,
        max_files_per_host: num("max-files-per-host", d.max_files_per_host as u32, 100_000_000)? as usize,
        fair,
        id_lifetime_secs: num("id-lifetime", 120, 3600)?,
        bt: SwarmLimits {
            interval_secs: m
                .opt_str("bt-interval")
                .map_or(Ok(1800), |v| parse_in_range("bt-interval", &v, 300, 10_800))?,
            max_torrents: num("max-torrents", 1_000_000, 100_000_000)? as usize,
            max_peers: num("max-bt-peers", 4_000_000, 1_000_000_000)? as usize,
            max_peers_per_torrent: num("max-peers-per-torrent", 100_000, 100_000_000)? as usize,
            max_per_ip: num("max-per-ip", 1000, 1_000_000_000)? as usize,
        },
        access_list: match (m.opt_str("access-list"), m.opt_str("access-mode")) {
            (None, None) => None,
            (Some(file), Some(mode)) => Some((
                PathBuf::from(file),
                Mode::parse(&mode).ok_or("--access-mode: expected allow or deny")?,
            )),
            (Some(_), None) => return Err("--access-list needs --access-mode allow or deny".into()),
            (None, Some(_)) => return Err("--access-mode needs --access-list FILE".into()),
        },
        stats_file: m.opt_str("stats").map(PathBuf::from),
    };
    // A stats file that can never be written is a mistake to hear of now,
    // not a warning every 10 s.
    if let Some(path) = &config.stats_file {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "--stats: the directory {} does not exist",
                pytorrent::names::escape(&dir.display().to_string())
            ));
        }
    }
    Ok(Parsed::Run(config, m.opt_present("quiet")))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, quiet) = match parse(&args) {
        Ok(Parsed::Run(config, quiet)) => (config, quiet),
        Ok(Parsed::Exit(code)) => return code,
        Err(e) => {
            // One line and a hint, as the client does: 40 lines of usage
            // would bury the mistake.
            eprintln!("pytorrent-tracker: {e}\nRun pytorrent-tracker --help for the options.");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_stderr_logging(if quiet { "warn" } else { "info" });
    let mut tracker = match Tracker::bind(&config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("pytorrent-tracker: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
        Err(e) => {
            eprintln!("pytorrent-tracker: cannot listen on udp {}: {e}", config.bind);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let bound = match tracker.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pytorrent-tracker: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    println!(
        "pytorrent-tracker {} listening on udp {bound} (keep-alive {} s, up to {} peers; BEP 15 on the same port{}, interval {} s{})",
        env!("CARGO_PKG_VERSION"),
        config.interval_secs,
        config.max_peers,
        if tracker.dual_stack() { ", dual-stack IPv4+IPv6" } else { "" },
        config.bt.interval_secs,
        tracker
            .access_summary()
            .map_or(String::new(), |a| format!(", access list: {a}")),
    );
    let _ = std::io::stdout().flush();
    match tracker.run() {
        Ok(signal) => {
            println!("pytorrent-tracker: signal {signal} received, goodbye");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pytorrent-tracker: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
