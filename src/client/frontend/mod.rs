//! The frontends: whoever drives the engine ([`super::engine`], run by the
//! poll loop in [`super::io`]): the headless modes or the interactive
//! terminal.
//!
//! The engine reports what happened as [`Event`]s; a [`Frontend`] answers
//! with [`Command`]s and reads the engine's state through the read-only
//! [`EngineView`] it is handed. A frontend never touches a socket or a file,
//! and the engine never prints: each side can change without the other.
//!
//! - [`headless`]: `--seed`, `--get`, `--list`, `--peers`.
//! - [`interactive`]: the terminal client: screens, prompts, menu.
//! - [`terminal`]: the one layer that writes to the terminal.
//! - [`table`]: plain-text tables for the listings.
//! - [`scripting`]: JSON listings and the `--on-complete` command.
//! - [`ui`]: the terminal interface's pure parts: input, pacing, screens.

pub mod headless;
pub mod interactive;
pub mod scripting;
pub mod table;
pub mod terminal;
pub mod ui;

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
    let total = table::count(total, "chunk");
    format!("{how} {name}: {verified} of {total} already verified")
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

#[cfg(test)]
mod tests {
    //! The frontends' event handling against a hand-made view: no engine,
    //! no socket.
    use super::headless::{answer_finds, Headless};
    use super::*;
    use crate::client::engine::{DownloadView, SharedView};
    use crate::meta::{FileMeta, MIN_CHUNK_SIZE};
    use crate::wire::tracker::{FileInfo, FileQuery};
    use crate::wire::FileId;
    use std::net::SocketAddr;

    /// A view of an engine with nothing going on.
    struct View;

    impl EngineView for View {
        fn listen_addr(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 7000))
        }
        fn tracker(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 17380))
        }
        fn username(&self) -> &str {
            "tester"
        }
        fn indexing(&self) -> (usize, u64) {
            (0, 0)
        }
        fn shared_count(&self) -> usize {
            0
        }
        fn is_ready(&self) -> bool {
            true
        }
        fn downloads(&self) -> Vec<DownloadView> {
            Vec::new()
        }
        fn shared(&self) -> Vec<SharedView> {
            Vec::new()
        }
        fn unfinished(&self) -> Vec<(FileId, String, usize, usize)> {
            Vec::new()
        }
    }

    fn cx(view: &View) -> Cx<'_> {
        Cx {
            now: Instant::now(),
            client: view,
        }
    }

    fn info(name: &str, id: u8) -> FileInfo {
        FileInfo {
            id: [id; 32],
            name: name.into(),
            size: 10,
            seeders: 1,
            partial: 0,
        }
    }

    fn meta(name: &str) -> FileMeta {
        FileMeta::from_reader(name, &b"some bytes"[..], MIN_CHUNK_SIZE).unwrap()
    }

    fn downloads(out: &[Command]) -> Vec<FileId> {
        out.iter()
            .filter_map(|c| match c {
                Command::Download { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }

    fn quit_code(out: &[Command]) -> Option<u8> {
        out.iter().find_map(|c| match c {
            Command::Quit { code } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn headless_get_resolves_names_downloads_and_exits_zero() {
        let view = View;
        let mut h = Headless::new(false, vec!["a.bin".into(), "b.bin".into()], false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        assert!(
            matches!(out.as_slice(), [Command::Find(FileQuery::Name(a)), Command::Find(FileQuery::Name(b))] if a == "a.bin" && b == "b.bin"),
            "{out:?}"
        );
        let files = vec![info("a.bin", 1), info("b.bin", 2), info("c.bin", 3)];
        answer_finds(&mut h, &files, &cx(&view), &mut out);
        let ids = downloads(&out);
        assert_eq!(ids, vec![[1; 32], [2; 32]]);
        out.clear();
        let done = |name: &str| Event::DownloadDone {
            meta: meta(name),
            path: name.into(),
        };
        h.on_event(done("a.bin"), &cx(&view), &mut out);
        assert_eq!(quit_code(&out), None, "one download is still running");
        h.on_event(done("b.bin"), &cx(&view), &mut out);
        assert_eq!(quit_code(&out), Some(0));
    }

    #[test]
    fn headless_get_takes_a_unique_id_prefix_as_list_shows_it() {
        let view = View;
        let mut files = vec![info("a.bin", 0xab), info("b.bin", 0xcd)];
        files[1].id[4] = 0x11;
        let mut h = Headless::new(false, vec!["CDCDCDCD".into()], false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        answer_finds(&mut h, &files, &cx(&view), &mut out);
        assert!(
            out.iter()
                .any(|c| matches!(c, Command::Download { id, .. } if id[0] == 0xcd)),
            "{out:?}"
        );
        // Too short to be an id prefix: a name, and no file has it.
        let mut h = Headless::new(false, vec!["abab".into()], false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        answer_finds(&mut h, &files, &cx(&view), &mut out);
        assert_eq!(quit_code(&out), Some(1));
        // A prefix two ids share is refused, not guessed.
        files[1].id = [0xab; 32];
        files[1].id[31] = 0;
        let mut h = Headless::new(false, vec!["abababab".into()], false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        answer_finds(&mut h, &files, &cx(&view), &mut out);
        assert_eq!(quit_code(&out), Some(1));
    }

    #[test]
    fn headless_get_asks_a_name_first_then_the_prefix_it_may_be() {
        let view = View;
        let files = [info("a.bin", 0xab), info("b.bin", 0xac), info("12121212", 0x12)];
        let targets = vec!["ABABABAB".into(), "abababababab".into(), "12121212".into()];
        let mut h = Headless::new(false, targets, false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        answer_finds(&mut h, &files, &cx(&view), &mut out);
        let ids = downloads(&out);
        // Both prefixes name a.bin, which starts once (the run waits for
        // one result per download: issue 20, defect 1); a name that looks
        // like a prefix is a name first.
        assert_eq!(ids, vec![[0x12; 32], [0xab; 32]]);
        let prefix_finds = out
            .iter()
            .filter(|c| matches!(c, Command::Find(FileQuery::IdPrefix { .. })))
            .count();
        assert_eq!(prefix_finds, 2);
    }

    #[test]
    fn headless_get_fails_with_one_for_a_missing_name_or_a_failed_download() {
        let view = View;
        let mut h = Headless::new(false, vec!["nope".into(), "a.bin".into()], false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        answer_finds(&mut h, &[info("a.bin", 1)], &cx(&view), &mut out);
        assert_eq!(quit_code(&out), None);
        let failed = Event::DownloadFailed {
            label: "a.bin".into(),
            why: "no peer has it".into(),
        };
        h.on_event(failed, &cx(&view), &mut out);
        assert_eq!(quit_code(&out), Some(1));
    }

    #[test]
    fn headless_get_then_seed_shares_and_keeps_running() {
        let view = View;
        let mut h = Headless::new(true, vec!["a.bin".into()], false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        answer_finds(&mut h, &[info("a.bin", 1)], &cx(&view), &mut out);
        out.clear();
        let done = Event::DownloadDone {
            meta: meta("a.bin"),
            path: "a.bin".into(),
        };
        h.on_event(done, &cx(&view), &mut out);
        assert!(out.iter().any(|c| matches!(c, Command::Share { .. })), "{out:?}");
        assert_eq!(quit_code(&out), None, "--seed keeps serving");
        h.on_event(Event::Signal, &cx(&view), &mut out);
        assert_eq!(quit_code(&out), Some(0), "a signal while seeding is a clean exit");
    }

    #[test]
    fn headless_seed_goes_on_when_the_tracker_refuses_an_announce() {
        let view = View;
        let mut h = Headless::new(true, Vec::new(), false, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        let refused = Event::TrackerFailed {
            what: crate::client::engine::RequestKind::Announce,
            error: "too many files".into(),
        };
        h.on_event(refused, &cx(&view), &mut out);
        assert_eq!(quit_code(&out), None, "warned on stderr, still seeding");
    }

    #[test]
    fn headless_list_gives_up_when_the_tracker_does_not_answer() {
        let view = View;
        let mut h = Headless::new(false, Vec::new(), true, false);
        let mut out = Vec::new();
        h.start(&cx(&view), &mut out);
        h.on_event(Event::TrackerUnreachable, &cx(&view), &mut out);
        assert_eq!(quit_code(&out), Some(1));
    }
}
