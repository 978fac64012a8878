//! `pytorrent`: the client. Flags and the config file -> validated
//! [`Options`] -> [`Client::run`] -> exit code (0 success, 1 failure,
//! 2 a bad command line or config).

use pytorrent::cli::{init_file_logging, EXIT_FAILURE, EXIT_USAGE};
use pytorrent::client::headless::Headless;
use pytorrent::client::options::{parse, usage, ArgsError, Mode, Parsed};
use pytorrent::client::reactor::Client;
use std::process::ExitCode;

fn main() -> ExitCode {
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
    let mut frontend = match opts.mode.clone() {
        Mode::Headless {
            seed,
            get,
            list,
            peers,
        } => Headless::new(seed, get, list, peers),
        Mode::Interactive => {
            println!("The interactive PyTorrent client is coming in the next release.");
            println!(
                "For now run it headless: pytorrent --seed, --get NAME, --list or --peers (see --help)."
            );
            return ExitCode::SUCCESS;
        }
    };
    if let Err(e) = init_file_logging(&opts.log_file) {
        eprintln!(
            "pytorrent: warning: cannot write the log {}: {e}",
            opts.log_file.display()
        );
    }
    for w in &warnings {
        log::warn!("{w}");
    }
    let result = Client::bind(*opts).and_then(|mut client| client.run(&mut frontend));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!("{e}");
            eprintln!("pytorrent: error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
