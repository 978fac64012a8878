//! `pytorrent`: the client. Flags and the config file -> validated
//! [`Options`] -> [`Client::run`] -> exit code (0 success, 1 failure,
//! 2 a bad command line or config).

use pytorrent::atomic_file;
use pytorrent::bt::magnet::Magnet;
use pytorrent::cli::{init_file_logging, EXIT_FAILURE, EXIT_USAGE};
use pytorrent::client::check::{check_file, Checked};
use pytorrent::client::frontend::headless::BtShare;
use pytorrent::client::frontend::headless::Headless;
use pytorrent::client::frontend::interactive::{Interactive, Setup};
use pytorrent::client::frontend::Frontend;
use pytorrent::client::io::reactor::Client;
use pytorrent::client::options::{parse, usage, ArgsError, Mode, Parsed};
use pytorrent::make_torrent;
use pytorrent::meta::hex;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A file-size limit (ulimit -f) must show up as a write error with a
    // clear message, not kill the process.
    // SAFETY: setting a signal's disposition to "ignore" at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, warnings) = match parse(&args) {
        Ok((Parsed::Run(opts), warnings)) => (opts, warnings),
        Ok((Parsed::Help, _)) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Ok((Parsed::Version, _)) => {
            println!("pytorrent {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(ArgsError(e)) => {
            eprintln!("pytorrent: {e}\n\nRun pytorrent --help for the options.");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for w in &warnings {
        eprintln!("pytorrent: warning: {w}");
    }
    if let Some((file, id)) = &opts.check {
        return check(file, id, opts.chunk_size);
    }
    if let Some(path) = &opts.log_file {
        if let Err(e) = init_file_logging(path) {
            eprintln!("pytorrent: warning: cannot write the log {}: {e}", path.display());
        }
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    let mode = opts.mode.clone();
    let bt_peers = opts.bt_peers.clone();
    let bt_only = opts.bt_only.clone();
    let mut bt_shares = Vec::new();
    for name in &opts.bt_torrent {
        let trackers = vec![format!("udp://{}/announce", opts.tracker)];
        let piece = opts.piece_size.map(u64::from);
        let seed = matches!(mode, Mode::Headless { seed: true, .. });
        match make_torrent(&opts.shared_dir.join(name), name, piece, opts.bt_kind, &trackers) {
            Ok(Some(share)) => bt_shares.push(share),
            Ok(None) if seed => {
                eprintln!(
                    "pytorrent: error: {name}: only single-file torrents with a v2 half are seeded so far (the torrent is written)"
                );
                return ExitCode::from(EXIT_FAILURE);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("pytorrent: error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    if !opts.bt_torrent.is_empty() && !matches!(mode, Mode::Headless { seed: true, .. }) {
        return ExitCode::SUCCESS;
    }
    let setup = Setup {
        config_path: opts.config_path.clone(),
        shared_dir: opts.shared_dir.clone(),
        download_dir: opts.download_dir.clone(),
        has_username: opts.username.is_some(),
        no_effects: opts.no_effects,
        on_complete: opts.on_complete.clone(),
    };
    let (json, on_complete, output) = (opts.json, opts.on_complete.clone(), opts.output.clone());
    let result = Client::bind(*opts).and_then(|mut client| {
        // The terminal is taken (raw mode) only once the client is bound,
        // and given back (on drop) before any error is printed.
        let mut frontend: Box<dyn Frontend> = match mode {
            Mode::Headless {
                seed,
                get,
                list,
                peers,
            } => Box::new(
                Headless::new(seed, get, list, peers)
                    .with_bt_peers(bt_peers)
                    .with_bt_only(bt_only)
                    .with_bt_shares(bt_shares)
                    .with_scripting(json, on_complete)
                    .with_output(output),
            ),
            Mode::Interactive => Box::new(Interactive::new(setup)),
        };
        client.run(frontend.as_mut())
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!("{e}");
            eprintln!("pytorrent: error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `--torrent NAME`: hashes the shared file or folder, writes
/// `NAME.torrent` in the current directory (hybrid v1+v2 unless
/// `--v2-only` or `--v1-only`) and prints where, its info hashes and its
/// magnet link (a line of its own). Returns what to seed (with `--seed`):
/// the file or folder as that torrent.
fn make_torrent(
    path: &Path,
    name: &str,
    piece: Option<u64>,
    kind: pytorrent::bt::create::Kind,
    trackers: &[String],
) -> Result<Option<BtShare>, String> {
    let made = make_torrent::make(path, name, piece, kind, trackers)?;
    let out = PathBuf::from(format!("{name}.torrent"));
    atomic_file::write(&out, &made.bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let m = made.metainfo;
    let hashes = [
        ("v1", m.hashes.v1.map(|h| hex(&h))),
        ("v2", m.hashes.v2.map(|h| hex(&h))),
    ];
    let hashes: Vec<String> = hashes
        .iter()
        .filter_map(|(v, h)| Some(format!("{v} info hash {}", h.as_ref()?)))
        .collect();
    println!(
        "wrote {} ({}, {}, {} pieces of {} KiB)",
        out.display(),
        hashes.join(", "),
        match m.layout.files.iter().filter(|f| !f.pad).count() {
            1 => "1 file".to_string(),
            n => format!("{n} files"),
        },
        m.layout.pieces(),
        m.layout.piece_len >> 10
    );
    println!("{}", Magnet::link(&m.hashes, name, trackers));
    Ok(Some(BtShare {
        torrent: m,
        trees: made.trees,
        path: path.to_path_buf(),
    }))
}

/// `--check FILE --id ID`: prints whether FILE is the file ID names.
fn check(file: &Path, id: &str, chunk_size: u32) -> ExitCode {
    match check_file(file, id, chunk_size) {
        Ok(Checked::Matches { id, chunk_size }) => {
            println!(
                "{} matches {id} (chunks of {} KiB)",
                file.display(),
                chunk_size >> 10
            );
            ExitCode::SUCCESS
        }
        Ok(Checked::Differs { id: its }) => {
            println!(
                "{} does not match {}: its id is {its} (with --chunk-size-kib {}), and no other chunk size gives that id",
                file.display(),
                id.to_ascii_lowercase(),
                chunk_size >> 10
            );
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => {
            eprintln!("pytorrent: error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
