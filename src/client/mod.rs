//! The client `pytorrent`: one thread, one mio poll loop that seeds the
//! shared files over TCP and downloads files in verified chunks from
//! several peers at once.
//!
//! - [`options`]: flags over the config file, validated.
//! - [`check`]: `--check FILE --id ID`, a file on disk against an id.
//! - [`engine`]: every decision, as a pure state machine (no sockets, no
//!   clock, downloads' bytes behind a storage trait).
//! - [`io`]: the mio reactor that owns the sockets and runs the engine,
//!   and the real storage.
//! - [`frontend`]: the two frontends (headless and interactive) that drive
//!   the engine, reading it through a view; the terminal interface.

pub mod check;
pub mod engine;
pub mod frontend;
pub mod io;
pub mod options;
