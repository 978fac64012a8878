//! The boundary between the engine (the poll loop in [`super::reactor`])
//! and whoever drives it: the headless modes or the interactive terminal.
//!
//! The engine reports what happened as [`Event`]s; a [`Frontend`] answers
//! with [`Command`]s and reads the engine's state through the read-only
//! [`Client`] it is handed. A frontend never touches a socket or a file,
//! and the engine never prints: each side can change without the other.

use super::reactor::Client;
use crate::meta::FileMeta;
use crate::wire::tracker::{FileInfo, PeerInfo};
use crate::wire::FileId;
use std::path::PathBuf;
use std::time::Instant;

/// Something the engine reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Indexing is done, the tracker knows us and has acknowledged every
    /// file we share (again, after a later share or re-registration).
    Ready,
    PeerList(Vec<PeerInfo>),
    FileList(Vec<FileInfo>),
    /// A download was verified and moved into place.
    DownloadDone {
        meta: FileMeta,
        path: PathBuf,
    },
    /// A download stopped for good; `label` and `why` are safe to print.
    DownloadFailed {
        label: String,
        why: String,
    },
    /// A download picked up an earlier run's verified chunks (from the
    /// sidecar, or by re-checking a `.part` file without one).
    Resumed {
        name: String,
        verified: usize,
        total: usize,
        rechecked: bool,
    },
    /// A finished download is now shared.
    Shared {
        name: String,
    },
    /// The tracker accepted a new username.
    UsernameChanged(String),
    /// A tracker request failed; `error` is safe to print.
    TrackerFailed {
        what: &'static str,
        error: String,
    },
    TrackerUnreachable,
    TrackerReachable,
    /// Something worth telling the user that changes nothing (a skipped
    /// file, for instance); safe to print.
    Warning(String),
    /// SIGINT or SIGTERM arrived.
    Signal,
}

/// The sentence for an [`Event::Resumed`], as both frontends say it
/// (capitalise it to start a line).
pub fn resumed_text(name: &str, verified: usize, total: usize, rechecked: bool) -> String {
    let how = if rechecked {
        "re-checked the .part file of"
    } else {
        "resuming"
    };
    let total = super::table::count(total, "chunk");
    format!("{how} {name}: {verified} of {total} already verified")
}

/// Something a frontend asks the engine to do.
#[derive(Debug, Clone)]
pub enum Command {
    ListPeers,
    ListFiles,
    /// Download a file; `label` names it until its metadata is known.
    Download {
        id: FileId,
        label: String,
    },
    /// Share a verified download: hard-linked into the shared directory
    /// when possible, else shared where it is; never copied.
    Share {
        meta: FileMeta,
        path: PathBuf,
    },
    ChangeUsername(String),
    /// Register with the tracker under this name (the interactive client's
    /// first run, once the user picked one); a no-op rename afterwards.
    Join(String),
    /// Leave the network (withdrawing our files) and exit with `code`.
    Quit {
        code: u8,
    },
}

/// What a frontend sees of the engine when it is called.
pub struct Cx<'a> {
    pub now: Instant,
    pub client: &'a Client,
}

/// A driver of the engine.
pub trait Frontend {
    /// Called once, before the loop starts.
    fn start(&mut self, cx: &Cx<'_>, out: &mut Vec<Command>);
    fn on_event(&mut self, event: Event, cx: &Cx<'_>, out: &mut Vec<Command>);
    /// Whether stdin should be polled (and fed to [`Frontend::on_input`]).
    fn wants_stdin(&self) -> bool {
        false
    }
    /// Bytes read from stdin; an empty slice means end of input.
    fn on_input(&mut self, _bytes: &[u8], _cx: &Cx<'_>, _out: &mut Vec<Command>) {}
    /// Called on every loop turn once [`Frontend::deadline`] has passed.
    fn on_timeout(&mut self, _cx: &Cx<'_>, _out: &mut Vec<Command>) {}
    /// When the frontend next needs [`Frontend::on_timeout`].
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Called once when the loop ends (restore the terminal, say goodbye).
    fn stop(&mut self, _code: u8) {}
}
