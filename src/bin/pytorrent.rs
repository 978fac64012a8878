//! `pytorrent`: the client. Flags and the config file -> validated
//! [`Options`] -> [`Client::run`] -> exit code (0 success, 1 failure,
//! 2 a bad command line or config).

use pytorrent::atomic_file;
use pytorrent::bt::magnet::Magnet;
use pytorrent::bt::merkle::{Layout, Tree};
use pytorrent::bt::torrent::Torrent;
use pytorrent::cli::{init_file_logging, EXIT_FAILURE, EXIT_USAGE};
use pytorrent::client::check::{check_file, Checked};
use pytorrent::client::frontend::headless::BtShare;
use pytorrent::client::frontend::headless::Headless;
use pytorrent::client::frontend::interactive::{Interactive, Setup};
use pytorrent::client::frontend::Frontend;
use pytorrent::client::io::reactor::Client;
use pytorrent::client::options::{parse, usage, ArgsError, Mode, Parsed};
use pytorrent::meta::hex;
use std::fs::File;
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
    let mut bt_shares = Vec::new();
    for name in &opts.bt_torrent {
        let trackers = vec![format!("udp://{}/announce", opts.tracker)];
        let piece = opts.piece_size.map(u64::from);
        match make_torrent(&opts.shared_dir.join(name), name, piece, &trackers) {
            Ok(share) => bt_shares.push(share),
            Err(e) => {
                eprintln!("pytorrent: error: {e}");
                return ExitCode::from(EXIT_FAILURE);
            }
        }
    }
    if !bt_shares.is_empty() && !matches!(mode, Mode::Headless { seed: true, .. }) {
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

/// `--torrent NAME`: hashes the shared file into its BEP 52 tree, writes
/// `NAME.torrent` in the current directory and prints where, the v2 info
/// hash and the magnet link (a line of its own).
fn make_torrent(path: &Path, name: &str, piece: Option<u64>, trackers: &[String]) -> Result<BtShare, String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size == 0 {
        return Err(format!("{shown} is empty: BitTorrent v2 has no torrent for it"));
    }
    let piece_len = piece.unwrap_or_else(|| Torrent::auto_piece_len(size));
    let layout = Layout { size, piece_len };
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let tree = Tree::from_reader(layout, reader).map_err(|e| format!("cannot hash {shown}: {e}"))?;
    let (torrent, bytes) = Torrent::for_tree(name, &tree, trackers).map_err(|e| e.to_string())?;
    let out = PathBuf::from(format!("{name}.torrent"));
    atomic_file::write(&out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "wrote {} (v2 info hash {}, {} pieces of {} KiB)",
        out.display(),
        hex(&torrent.info_hash),
        layout.pieces(),
        piece_len >> 10
    );
    println!("{}", Magnet::link(&torrent.info_hash, name, trackers));
    Ok(BtShare {
        torrent,
        tree,
        path: path.to_path_buf(),
    })
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
