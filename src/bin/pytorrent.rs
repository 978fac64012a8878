//! `pytorrent`: the client. Flags and the config file -> validated
//! [`Options`] -> [`Client::run`] -> exit code (0 success, 1 failure,
//! 2 a bad command line or config).

use pytorrent::cli::{init_file_logging, EXIT_FAILURE, EXIT_USAGE};
use pytorrent::client::frontend::headless::Headless;
use pytorrent::client::frontend::interactive::{Interactive, Setup};
use pytorrent::client::frontend::Frontend;
use pytorrent::client::io::reactor::Client;
use pytorrent::client::options::{parse, usage, ArgsError, Mode, Parsed};
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
    if let Err(e) = init_file_logging(&opts.log_file) {
        eprintln!(
            "pytorrent: warning: cannot write the log {}: {e}",
            opts.log_file.display()
        );
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    let mode = opts.mode.clone();
    let bt_peers = opts.bt_peers.clone();
    let setup = Setup {
        config_path: opts.config_path.clone(),
        shared_dir: opts.shared_dir.clone(),
        download_dir: opts.download_dir.clone(),
        has_username: opts.username.is_some(),
        no_effects: opts.no_effects,
    };
    let result = Client::bind(*opts).and_then(|mut client| {
        // The terminal is taken (raw mode) only once the client is bound,
        // and given back (on drop) before any error is printed.
        let mut frontend: Box<dyn Frontend> = match mode {
            Mode::Headless {
                seed,
                get,
                list,
                peers,
            } => Box::new(Headless::new(seed, get, list, peers).with_bt_peers(bt_peers)),
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
