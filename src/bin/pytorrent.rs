//! `pytorrent`: the client. The transfer engine and the terminal interface
//! arrive with the next issues; for now it answers --help and --version.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-V" | "--version") => println!("pytorrent {}", env!("CARGO_PKG_VERSION")),
        Some("-h" | "--help") | None => {
            println!("Usage: pytorrent\n\nThe PyTorrent client is not built yet: run pytorrent-tracker for the tracker.")
        }
        Some(_) => {
            eprintln!("pytorrent: the client is not built yet; see pytorrent --help");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
