//! The boundary between the engine ([`super::engine`], run by the poll
//! loop in [`super::io`]) and whoever drives it: the headless modes or the
//! interactive terminal.
//!
//! The engine reports what happened as [`Event`]s; a [`Frontend`] answers
//! with [`Command`]s and reads the engine's state through the read-only
//! [`EngineView`] it is handed. A frontend never touches a socket or a file,
//! and the engine never prints: each side can change without the other.

use super::engine::EngineView;
pub use super::engine::{Command, Event};
use std::time::Instant;

/// The sentence for an [`Event::Resumed`], as both frontends say it
/// (capitalise it to start a line).
pub fn resumed_text(name: &str, verified: usize, total: usize, rechecked: bool) -> String {
    let how = if rechecked {
        "re-checked the .part file of"
    } else {
        "resuming"
    };
    format!("{how} {name}: {verified} of {total} chunks already verified")
}

/// What a frontend sees of the engine when it is called.
pub struct Cx<'a> {
    pub now: Instant,
    pub client: &'a dyn EngineView,
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
