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

/// Resolves `HOST:PORT` (an IPv4 or bracketed IPv6 address, or a host name)
/// to its first address.
pub fn resolve(flag: &str, value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            format!(
                "--{flag}: '{}' is not a HOST:PORT address",
                crate::names::escape(value)
            )
        })
}

/// Sends `log` records to stderr, at `default_level` unless `RUST_LOG`
/// says otherwise.
pub fn init_stderr_logging(default_level: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .format_timestamp_secs()
        .init();
}

/// Sends `log` records to the end of `path` (its directory is created),
/// one timestamped line each, at info level unless `RUST_LOG` says
/// otherwise.
pub fn init_file_logging(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(file)))
        .init();
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
    }
}
