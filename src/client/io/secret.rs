//! The client's secret: 16 random bytes beside the config file
//! (`config/config.txt` keeps it in `config/config.secret`; one secret per
//! config file, so two configs are two clients), created mode 0600 on first
//! run and
//! presented with every registration, so the tracker gives a username in
//! use back only to the client that registered it (a restart), never to
//! a neighbour on the same host.
//!
//! Invariants:
//! - The file is locked (`flock`, exclusive) for as long as the client
//!   runs; the lock goes with the process, even on a crash.
//! - A second client started from the same folder (the lock is held)
//!   does not get the folder's secret: it runs with a one-run secret of
//!   its own, so it cannot take the first one's name.
//! - A file that is not a secret is an error, never silently replaced
//!   (replacing it would give the user's name away until it expires).

use crate::meta::hex;
use crate::rand::os_random;
use crate::wire::tracker::{ClientSecret, SECRET_LEN};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The secret this run presents.
#[derive(Debug)]
pub struct Secret {
    pub bytes: ClientSecret,
    /// False when another client from this folder holds the file: the
    /// bytes are then this run's own.
    pub from_file: bool,
    /// The open, locked file: the lock lasts as long as this does.
    _lock: Option<File>,
}

/// Where the secret of the client configured by `config_path` lives: the
/// config file's name with the extension `.secret`.
pub fn secret_path(config_path: &Path) -> PathBuf {
    config_path.with_extension("secret")
}

/// Opens (creating if need be) and locks the secret beside `config_path`.
pub fn load(config_path: &Path) -> io::Result<Secret> {
    let path = secret_path(config_path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    // SAFETY: a valid fd we own; flock takes no pointers.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
        let mut bytes = [0u8; SECRET_LEN];
        os_random(&mut bytes)?;
        return Ok(Secret {
            bytes,
            from_file: false,
            _lock: None,
        });
    }
    // Locked: nobody else writes it now. Whatever umask or copy made it,
    // it is ours alone.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(256)
        .read_to_string(&mut text)
        .map_err(|_| bad(&path))?;
    let bytes = if text.is_empty() {
        let mut bytes = [0u8; SECRET_LEN];
        os_random(&mut bytes)?;
        file.rewind()?;
        file.write_all(format!("{}\n", hex(&bytes)).as_bytes())?;
        file.sync_all()?;
        bytes
    } else {
        parse(text.trim()).ok_or_else(|| bad(&path))?
    };
    Ok(Secret {
        bytes,
        from_file: true,
        _lock: Some(file),
    })
}

fn bad(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not a client secret (32 hex digits); remove it to make a new one (your username is then free for others once the tracker forgets you)",
            path.display()
        ),
    )
}

fn parse(text: &str) -> Option<ClientSecret> {
    if text.len() != 2 * SECRET_LEN || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; SECRET_LEN];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn made_once_kept_private_and_locked_while_held() {
        let dir = TempDir::new("secret");
        let config = dir.path().join("config").join("config.txt");
        let first = load(&config).unwrap();
        assert!(first.from_file);
        let path = secret_path(&config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Held: a second client gets a secret of its own.
        let second = load(&config).unwrap();
        assert!(!second.from_file);
        assert_ne!(second.bytes, first.bytes);
        let kept = first.bytes;
        drop(second);
        drop(first);
        // Released: the next run gets the same secret back.
        let again = load(&config).unwrap();
        assert!(again.from_file);
        assert_eq!(again.bytes, kept);
    }

    #[test]
    fn a_file_that_is_not_a_secret_is_refused() {
        let dir = TempDir::new("secret-bad");
        let config = dir.path().join("config.txt");
        std::fs::write(secret_path(&config), "not hex\n").unwrap();
        let e = load(&config).unwrap_err();
        assert!(e.to_string().contains("is not a client secret"), "{e}");
        assert_eq!(parse(&"ab".repeat(16)), Some([0xab; 16]));
        assert_eq!(parse(&"ab".repeat(15)), None);
    }
}
