//! The client's I/O: the mio reactor that owns every socket and runs the
//! engine ([`reactor`]), the upload and download rate limits it enforces
//! ([`rate_limit`]), the real download storage ([`part_file`]; a multi-file
//! torrent's working folder, [`part_folder`]), and the
//! client's secret file ([`secret`]).
//! Everything that touches the operating system for the client's
//! transfers lives here; decisions live in [`super::engine`].

pub mod part_file;
pub mod part_folder;
pub mod rate_limit;
pub mod reactor;
pub mod secret;
