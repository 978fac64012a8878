//! The client `pytorrent`: one thread, one mio poll loop that seeds the
//! shared files over TCP and downloads files in verified chunks from
//! several peers at once.
//!
//! - [`options`]: flags over the config file, validated.
//! - [`engine`]: every decision, as a pure state machine (no sockets, no
//!   clock, downloads' bytes behind a storage trait).
//! - [`io`]: the mio reactor that owns the sockets and runs the engine,
//!   and the real storage.
//! - [`frontend`]: what a frontend sees and the trait that drives the
//!   engine; [`headless`] and [`interactive`] are the two frontends.
//! - [`terminal`]: the one layer that writes to the terminal.
//! - [`table`]: plain-text tables for the listings.
//! - [`ui`]: the terminal interface's pure parts: input, pacing, screens.

pub mod engine;
pub mod frontend;
pub mod headless;
pub mod interactive;
pub mod io;
pub mod options;
pub mod table;
pub mod terminal;
pub mod ui;
