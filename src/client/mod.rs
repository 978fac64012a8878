//! The client `pytorrent`: one thread, one mio poll loop that seeds the
//! shared files over TCP and downloads files in verified chunks from
//! several peers at once.
//!
//! - [`options`]: flags over the config file, validated.
//! - [`library`]: the shared files, indexed in slices and cached.
//! - [`tracker_link`]: the tracker protocol as a pure state machine.
//! - [`scheduler`]: which chunk to fetch next (pure).
//! - [`download`]: one download's metadata, `.part` file and checks.
//! - [`resume`]: the sidecar that lets an interrupted download resume.
//! - [`buf`]: the fixed buffers that bound each connection's memory.
//! - [`serve`]: an inbound connection from a leecher.
//! - [`fetch`]: an outbound connection to a seeder.
//! - [`table`]: plain-text tables for the listings.
//! - [`reactor`]: the poll loop that owns every socket and file (the engine).
//! - [`frontend`]: the engine's events and commands, and the trait that
//!   drives it; [`headless`] and [`interactive`] are the two frontends.
//! - [`terminal`]: the one layer that writes to the terminal.
//! - [`ui`]: the terminal interface's pure parts: input, pacing, screens.

pub mod buf;
pub mod download;
pub mod fetch;
pub mod frontend;
pub mod headless;
pub mod interactive;
pub mod library;
pub mod options;
pub mod reactor;
pub mod resume;
pub mod scheduler;
pub mod serve;
pub mod table;
pub mod terminal;
pub mod tracker_link;
pub mod ui;

/// How a connection's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Blocked on the socket: the next readiness event resumes it.
    Idle,
    /// Stopped by its budget with work left: drive it again soon, since
    /// edge-triggered readiness will not report it again.
    Again,
}
