//! Small helpers shared by the binaries' command lines: typed flag values
//! with clear errors, and logging set-up. Exit codes follow one rule: 2 for
//! a usage mistake, 1 for a failure at run time, 0 for success.

use std::fmt::Display;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// Exit code for a bad command line or config.
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure while running.
pub const EXIT_FAILURE: u8 = 1;

/// Parses `--flag value` as a number in `min..=max`.
pub fn parse_in_range<T>(flag: &str, value: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    match value.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("--{flag}: expected a whole number from {min} to {max}")),
    }
}

/// Most a rate limit may be: 100 GiB/s (more is no limit at all).
pub const MAX_RATE: u64 = 100 << 30;

/// Parses a rate in bytes per second: a number with an optional unit
/// `K`, `M` or `G` (powers of 1024; `KiB`, `MB/s` and the like are read
/// the same, any case): `500K`, `1.5M`, `2000000`. 0 means no limit.
pub fn parse_rate(flag: &str, value: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "--{flag}: expected bytes per second like 500K, 2M or 1.5M (K = 1024 bytes), found '{}'",
            crate::names::escape(value)
        )
    };
    let t = value.trim().to_ascii_lowercase();
    let t = t.strip_suffix("/s").unwrap_or(&t);
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(t);
    let (number, scale) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    let bytes = n * scale as f64;
    if bytes > MAX_RATE as f64 {
        return Err(format!("--{flag}: at most 100G"));
    }
    Ok(bytes.round() as u64)
}

/// Resolves `HOST:PORT` (an IPv4 or bracketed IPv6 address, or a host name)
/// to its first address. The error says which part is wrong: the form, or
/// a name that does not resolve.
pub fn resolve(flag: &str, value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let shown = crate::names::escape(value);
    let host = match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => host,
        _ => return Err(format!("--{flag}: '{shown}' is not a HOST:PORT address")),
    };
    match value.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| {
            format!(
                "--{flag}: the name '{}' has no address",
                crate::names::escape(host)
            )
        }),
        Err(e) => Err(format!(
            "--{flag}: the name '{}' does not resolve ({e})",
            crate::names::escape(host)
        )),
    }
}

/// A getopts error as this project writes messages: starting in lower
/// case ("unrecognized option: 'x'").
pub fn getopts_error(e: &getopts::Fail) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Sends `log` records to stderr, at `default_level` unless `RUST_LOG`
/// says otherwise.
pub fn init_stderr_logging(default_level: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp_secs()
        .init();
}

/// Sends `log` records to the end of `path` (its directory is created),
/// one timestamped line each with the process id and without the module
/// path, at info level unless `RUST_LOG` says otherwise; the first line
/// marks the session's start.
pub fn init_file_logging(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let pid = std::process::id();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        // The log is for users: the module path (pytorrent::client::...)
        // says nothing to them; the pid tells apart the lines of several
        // clients run in one folder (they append to one file).
        .format(move |buf, record| {
            use std::io::Write;
            writeln!(
                buf,
                "[{} {:5} {pid}] {}",
                buf.timestamp_millis(),
                record.level(),
                record.args()
            )
        })
        .target(env_logger::Target::Pipe(Box::new(file)))
        .init();
    // Runs append to one file: mark where each starts.
    log::info!(
        "---- session started: pytorrent {} (pid {}) ----",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_addresses() {
        assert_eq!(parse_in_range("n", "5", 1u32, 10), Ok(5));
        assert!(parse_in_range("n", "0", 1u32, 10)
            .unwrap_err()
            .contains("from 1 to 10"));
        assert!(parse_in_range("n", "x", 1u32, 10).is_err());
        assert_eq!(resolve("b", "[::1]:80").unwrap().port(), 80);
        assert!(resolve("b", "127.0.0.1").is_err());
        assert!(resolve("b", "localhost:9").is_ok());
        let e = resolve("t", "no.such.host.invalid:17380").unwrap_err();
        assert!(e.contains("'no.such.host.invalid' does not resolve"), "{e}");
        assert!(resolve("t", "host:port").unwrap_err().contains("not a HOST:PORT"));
        assert!(resolve("t", ":80").unwrap_err().contains("not a HOST:PORT"));
    }

    #[test]
    fn rates_take_binary_units() {
        assert_eq!(parse_rate("r", "2000"), Ok(2000));
        assert_eq!(parse_rate("r", "500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("r", "1.5M"), Ok(3 << 19));
        assert_eq!(parse_rate("r", "2 MiB/s"), Ok(2 << 20));
        assert_eq!(parse_rate("r", "1g"), Ok(1 << 30));
        assert_eq!(parse_rate("r", "0"), Ok(0));
        for bad in ["", "fast", "-1K", "1T", "NaN", "1e30"] {
            assert!(parse_rate("r", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn getopts_errors_start_in_lower_case() {
        let e = getopts::Options::new().parse(["--nope"]).unwrap_err();
        assert_eq!(getopts_error(&e), "unrecognized option: 'nope'");
    }
}
