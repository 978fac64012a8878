//! The interactive frontend: the terminal client a person uses. A state
//! machine over screens (first-run username, "press any key", the menu and
//! its five actions, plus typed commands that `help` lists: the downloads
//! view, cancel, unshare, rescan), fed by key bytes and engine events, that never
//! blocks: the typewriter effect and the progress bars are paced by the
//! loop's poll timeout ([`Frontend::deadline`]), so transfers go on while
//! the user reads or types.
//!
//! Invariants: everything from the network (usernames, file names) is
//! shown through [`crate::names::escape`] (the renderers do it); the
//! username is written to the config file only after the tracker accepted
//! it; every way out (Disconnect, Ctrl-C, Ctrl-D, a signal, end of input)
//! withdraws from the tracker and leaves unfinished downloads as `.part`.

use super::scripting::OnComplete;
use super::table::count;
use super::terminal::Terminal;
use super::ui::input::{
    parse_menu_choice, parse_pick, parse_yes_no, InputEvent, LineEditor, MenuChoice, Pick,
};
use super::ui::rate::Rates;
use super::ui::render::{
    done_line, downloads_table, error_line, help, logo, menu, network_files_table, peers_table,
    progress_bars, random_emoji, shared_table, DownloadRow, FileRow, SharedRow,
};
use super::ui::typewriter::{Typewriter, DEFAULT_RATE};
use super::ui::{line_width, tail_width, take_width, width as text_width, Line, Span, Style};
use super::{resumed_text, Command, Cx, Event, Frontend};
use crate::client::engine::{Listed, RequestKind};
use crate::config;
use crate::meta::hex;
use crate::meta::FileMeta;
use crate::names;
use crate::rand::Rng;
use crate::wire::tracker::FileInfo;
use crate::wire::FileId;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Progress bars redraw at most this often.
const FRAME: Duration = Duration::from_millis(100);
/// How often the terminal's width is looked at while nothing else is due,
/// so a resize is redrawn soon even when idle.
const RESIZE_CHECK: Duration = Duration::from_millis(250);
/// Finished downloads waiting for their "share it?" answer.
const MAX_PENDING_SHARES: usize = 64;
/// Lines typed (or piped) ahead while the tracker is being asked, kept to
/// run in order once it answers.
const MAX_TYPEAHEAD: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Screen {
    /// First run: asking for a username.
    Username,
    /// "Press any key to continue".
    AnyKey,
    Menu,
    WaitPeers,
    WaitFiles,
    /// Picking a file from `files`.
    Pick,
    NewName,
    WaitName,
    /// Asking whether to share the first of `shares`.
    Share,
    /// At start: asking whether to resume `unfinished`.
    Resume,
    /// Disconnect chosen while downloads run: asking to confirm.
    ConfirmQuit,
    Leaving,
}

/// What the interactive client needs to know at start.
pub struct Setup {
    pub config_path: PathBuf,
    pub shared_dir: PathBuf,
    pub download_dir: PathBuf,
    /// False when the config has no username yet (first run).
    pub has_username: bool,
    /// `--no-effects`: no typewriter.
    pub no_effects: bool,
    /// `--on-complete CMD`.
    pub on_complete: Option<String>,
}

/// The interactive client's state.
pub struct Interactive {
    term: Terminal,
    editor: LineEditor,
    typer: Typewriter,
    t0: Instant,
    rng: Rng,
    screen: Screen,
    setup: Setup,
    /// The last file list shown for picking.
    files: Vec<FileInfo>,
    /// The rows of the last pick table (all files, or a search's results)
    /// as indices into `files`: number N picks `files[shown[N - 1]]`, so a
    /// number always means the row that showed it.
    shown: Vec<usize>,
    /// `get NAME` typed at the menu: picked once the file list arrives.
    pending_get: Option<String>,
    on_complete: OnComplete,
    /// The menu is on screen already: it is printed once (and on `menu`
    /// or `clear`), not after every command, so a 24-row screen keeps
    /// the output of the commands.
    menu_shown: bool,
    shares: VecDeque<(FileMeta, PathBuf)>,
    /// A name sent to the tracker, waiting for its answer.
    wanted_name: Option<String>,
    /// Downloads an earlier run left unfinished: id and name.
    unfinished: Vec<(crate::wire::FileId, String)>,
    /// Downloads in progress at the last frame (for the deadline).
    active: usize,
    /// Each running download's recent byte counts, for its rate.
    rates: Rates,
    next_frame: Instant,
    /// The live region must be drawn again.
    dirty: bool,
    /// Input asked the engine for something: draw again on the next loop
    /// turn, once the engine has acted on it (a download started by a key
    /// press has no progress bar until then).
    redraw_next_turn: bool,
    /// The terminal's width at the last draw (a change redraws), and when
    /// to look at it again.
    drawn_width: usize,
    next_resize_check: Instant,
    /// Downloads still running when the user left (for the goodbye).
    left_unfinished: usize,
    /// Lines that came while waiting for the tracker, oldest first.
    typeahead: VecDeque<String>,
    /// Stdin ended (a script ran out): leave once the queued lines ran,
    /// the tracker answered and the downloads ended.
    input_ended: bool,
    /// The rows of the last downloads view and shared files view (id and
    /// name as shown), so `cancel N` and `unshare N` mean what was on
    /// screen even if the lists changed since.
    listed_downloads: Vec<(FileId, String)>,
    listed_shared: Vec<(FileId, String)>,
}

impl Interactive {
    pub fn new(setup: Setup) -> Interactive {
        let term = Terminal::open();
        let effects = term.colour() && !setup.no_effects;
        let on_complete = OnComplete::new(setup.on_complete.clone());
        let now = Instant::now();
        Interactive {
            term,
            editor: LineEditor::new(),
            typer: Typewriter::new(if effects { DEFAULT_RATE } else { 0 }),
            t0: now,
            rng: Rng::from_entropy(),
            screen: Screen::AnyKey,
            setup,
            files: Vec::new(),
            shown: Vec::new(),
            pending_get: None,
            on_complete,
            menu_shown: false,
            shares: VecDeque::new(),
            wanted_name: None,
            unfinished: Vec::new(),
            active: 0,
            rates: Rates::default(),
            next_frame: now,
            dirty: true,
            redraw_next_turn: false,
            drawn_width: 0,
            next_resize_check: now,
            left_unfinished: 0,
            typeahead: VecDeque::new(),
            input_ended: false,
            listed_downloads: Vec::new(),
            listed_shared: Vec::new(),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.duration_since(self.t0).as_millis() as u64
    }

    fn emoji(&mut self) -> &'static str {
        random_emoji(&mut self.rng)
    }

    /// Queues a line for the typewriter (typed out, or at once without
    /// effects).
    fn say(&mut self, line: Line) {
        self.typer.push(line);
        self.dirty = true;
    }

    /// Prints lines at once (tables, menus), after anything being typed.
    fn show(&mut self, lines: Vec<Line>) {
        for line in lines {
            self.typer.push(line);
        }
        self.dirty = true;
    }

    fn error(&mut self, msg: &str) {
        self.show(vec![error_line(msg)]);
    }

    fn status(&mut self, text: String) {
        let emoji = self.emoji();
        self.say(vec![Span::new(Style::Ok, format!("{text} {emoji}"))]);
    }

    /// Back to the menu's prompt, printing the menu the first time.
    fn show_menu(&mut self) {
        if !self.menu_shown {
            self.menu_shown = true;
            let seed = self.rng.next_u64();
            self.show(menu(seed));
        }
        self.screen = Screen::Menu;
        self.ask_share_if_due();
    }

    /// Moves to the share question if a finished download waits for one
    /// and the user is at the menu with nothing typed.
    fn ask_share_if_due(&mut self) {
        if self.screen == Screen::Menu && self.editor.text().is_empty() && !self.shares.is_empty() {
            self.screen = Screen::Share;
            self.dirty = true;
        }
    }

    /// "Hi, NAME!", what we share, and "press any key". `joining` is the
    /// name just chosen (the engine learns it with this turn's commands).
    fn greet(&mut self, cx: &Cx<'_>, joining: Option<&str>) {
        let name = names::escape(joining.unwrap_or(cx.client.username()));
        let emoji = self.emoji();
        self.say(vec![
            Span::new(Style::Title, format!("Hi, {name}! ")),
            Span::plain(emoji),
        ]);
        let (queued, _) = cx.client.indexing();
        let sharing = cx.client.shared_count() + queued;
        let dir = self.setup.shared_dir.display().to_string();
        if sharing > 0 {
            let files = count(sharing, "file");
            self.status(format!("You are seeding {files} from {dir}"));
        } else {
            self.status(format!("You are only downloading (no files in {dir} yet)"));
        }
        let unfinished = cx.client.unfinished();
        if !unfinished.is_empty() {
            self.show(vec![vec![Span::new(
                Style::Title,
                "Unfinished downloads from last time:",
            )]]);
            for (_, name, verified, total) in &unfinished {
                let pct = if *total == 0 { 100 } else { verified * 100 / total };
                self.show(vec![vec![Span::plain(format!(
                    "  {name}: {verified} of {} ({pct}%)",
                    count(*total, "chunk")
                ))]]);
            }
            self.unfinished = unfinished.into_iter().map(|(id, name, ..)| (id, name)).collect();
        }
        self.screen = Screen::AnyKey;
        self.editor.set_any_key(true);
    }

    /// After "press any key": the resume question if there is something
    /// to resume, else the menu.
    fn after_any_key(&mut self) {
        if self.unfinished.is_empty() {
            self.show_menu();
        } else {
            self.screen = Screen::Resume;
            self.dirty = true;
        }
    }

    fn quit(&mut self, cx: &Cx<'_>, out: &mut Vec<Command>) {
        if self.screen == Screen::Leaving {
            return;
        }
        self.screen = Screen::Leaving;
        self.left_unfinished = cx.client.downloads().len();
        self.status("Disconnecting from the network".into());
        out.push(Command::Quit { code: 0 });
    }

    /// Whether the screen waits for the tracker's answer (lines typed now
    /// are queued).
    fn waiting(&self) -> bool {
        matches!(
            self.screen,
            Screen::WaitPeers | Screen::WaitFiles | Screen::WaitName
        )
    }

    /// Runs the lines typed ahead while the screen takes input, then, if
    /// stdin has ended and nothing is left to do, leaves. A share question
    /// with nobody left to answer it is answered no.
    fn run_typeahead(&mut self, cx: &Cx<'_>, out: &mut Vec<Command>) {
        while !self.waiting() && self.screen != Screen::Leaving {
            let Some(line) = self.typeahead.pop_front() else {
                break;
            };
            self.on_line(line, cx, out);
        }
        if !self.input_ended || !self.typeahead.is_empty() || self.waiting() {
            return;
        }
        while self.screen == Screen::Share {
            self.on_line("n".into(), cx, out);
        }
        if !out.is_empty() {
            // A download asked for is not in the engine yet: look again
            // next turn, once the commands are applied.
            self.redraw_next_turn = true;
        } else if cx.client.downloads().is_empty() {
            self.quit(cx, out);
        }
    }

    fn on_line(&mut self, line: String, cx: &Cx<'_>, out: &mut Vec<Command>) {
        if self.waiting() && self.typeahead.is_empty() && is_local(&line) {
            // Needs nothing from the tracker: done now, and the wait goes
            // on (a silent tracker must not hold up `help`).
            let wait = self.screen;
            self.screen = Screen::Menu;
            self.on_menu(&line, cx, out);
            if matches!(self.screen, Screen::Menu | Screen::Share) {
                self.screen = wait;
            }
            return;
        }
        if self.waiting() {
            if self.typeahead.len() < MAX_TYPEAHEAD {
                self.typeahead.push_back(line);
            } else {
                self.error("Still waiting for the tracker; that line was dropped.");
            }
            return;
        }
        match self.screen {
            Screen::Username => match names::check_username(line.trim()) {
                Ok(()) => {
                    let name = line.trim().to_string();
                    if let Err(e) = config::write_value(&self.setup.config_path, "username", &name) {
                        self.error(&format!(
                            "could not save the username in {}: {e}",
                            self.setup.config_path.display()
                        ));
                    }
                    out.push(Command::Join(name.clone()));
                    self.greet(cx, Some(&name));
                }
                Err(e) => self.error(&format!(
                    "That username {e}; 1-32 characters, no spaces. Try again."
                )),
            },
            Screen::Menu => self.on_menu(&line, cx, out),
            Screen::Pick => self.on_pick(&line, cx, out),
            Screen::NewName => {
                let name = line.trim();
                if name.is_empty() {
                    self.show_menu();
                } else if let Err(e) = names::check_username(name) {
                    self.error(&format!(
                        "That username {e}; 1-32 characters, no spaces. Try again."
                    ));
                } else {
                    self.wanted_name = Some(name.to_string());
                    out.push(Command::ChangeUsername(name.to_string()));
                    self.screen = Screen::WaitName;
                }
            }
            Screen::Share => match parse_yes_no(&line) {
                Some(yes) => {
                    if let Some((meta, path)) = self.shares.pop_front() {
                        if yes {
                            out.push(Command::Share { meta, path });
                        } else {
                            let dir = self.setup.download_dir.display().to_string();
                            self.say(vec![Span::new(
                                Style::Dim,
                                format!("Kept {} in {dir}, not shared.", names::escape(&meta.name)),
                            )]);
                        }
                    }
                    self.show_menu();
                }
                None => self.error("Please answer y or n."),
            },
            Screen::AnyKey => self.after_any_key(),
            Screen::Resume => match parse_yes_no(&line) {
                Some(yes) => {
                    for (id, name) in std::mem::take(&mut self.unfinished) {
                        if yes {
                            // Resumed from our own record: no listing.
                            out.push(Command::Download {
                                id,
                                label: name,
                                listed: None,
                                output: None,
                            });
                        }
                    }
                    if !yes {
                        self.say(vec![Span::new(
                            Style::Dim,
                            "Left as they are; choose them again in Download a file to resume.",
                        )]);
                    }
                    self.show_menu();
                }
                None => self.error("Please answer y or n."),
            },
            Screen::ConfirmQuit => match parse_yes_no(&line) {
                Some(true) => self.quit(cx, out),
                Some(false) => self.show_menu(),
                None => self.error("Please answer y or n."),
            },
            Screen::WaitPeers | Screen::WaitFiles | Screen::WaitName | Screen::Leaving => {
                self.dirty = true;
            }
        }
    }

    fn on_menu(&mut self, line: &str, cx: &Cx<'_>, out: &mut Vec<Command>) {
        match parse_menu_choice(line) {
            MenuChoice::Peers => {
                out.push(Command::ListPeers);
                self.screen = Screen::WaitPeers;
            }
            MenuChoice::SharedFiles => {
                self.show_shared(cx);
                self.show_menu();
            }
            MenuChoice::Downloads => {
                self.show_downloads(cx);
                self.show_menu();
            }
            MenuChoice::Cancel(what) => self.cancel(&what, cx, out),
            MenuChoice::Unshare(what) => self.unshare(&what, cx, out),
            MenuChoice::Rescan => out.push(Command::Rescan),
            MenuChoice::Download => {
                out.push(Command::ListFiles);
                self.screen = Screen::WaitFiles;
            }
            MenuChoice::Get(what) => {
                self.pending_get = Some(what);
                out.push(Command::ListFiles);
                self.screen = Screen::WaitFiles;
            }
            MenuChoice::ChangeUsername => self.screen = Screen::NewName,
            MenuChoice::Disconnect if !cx.client.downloads().is_empty() => {
                self.screen = Screen::ConfirmQuit;
            }
            MenuChoice::Disconnect => self.quit(cx, out),
            MenuChoice::Help => {
                self.show(help());
                self.show_menu();
            }
            MenuChoice::Clear => {
                self.term.clear_screen();
                self.menu_shown = false;
                self.show_menu();
            }
            MenuChoice::Menu => {
                self.menu_shown = false;
                self.show_menu();
            }
            MenuChoice::Empty => self.dirty = true,
            MenuChoice::Unknown(what) => {
                self.error(&format!(
                    "Unknown choice '{}': type 1-5, or help.",
                    names::escape(&what)
                ));
            }
        }
        self.dirty = true;
    }

    /// The shared files view, numbered for `unshare N`.
    fn show_shared(&mut self, cx: &Cx<'_>) {
        let shared = cx.client.shared();
        self.listed_shared = shared.iter().map(|f| (f.id, f.name.clone())).collect();
        let rows: Vec<SharedRow> = shared
            .into_iter()
            .map(|f| SharedRow {
                name: f.name,
                size: f.size,
                chunks: f.chunks,
                sha256: f.sha256,
                leechers: f.leechers,
                uploaded: f.uploaded,
            })
            .collect();
        let width = self.term.width();
        let dir = self.setup.shared_dir.display().to_string();
        self.show(shared_table(&rows, &dir, width));
        let (queued, _) = cx.client.indexing();
        if queued > 0 {
            self.show(vec![vec![Span::new(
                Style::Dim,
                format!("({queued} more being indexed)"),
            )]]);
        }
        // Short enough for 40 columns.
        let hint = if rows.is_empty() {
            "Files put there are shared within 10 s."
        } else {
            "unshare N: stop sharing file N"
        };
        self.show(vec![vec![Span::new(Style::Dim, hint)]]);
    }

    /// The downloads view, numbered for `cancel N`.
    fn show_downloads(&mut self, cx: &Cx<'_>) {
        let downloads = cx.client.downloads();
        self.listed_downloads = downloads.iter().map(|d| (d.id, d.name.clone())).collect();
        let progress = self.rates.progress(&downloads, self.now_ms(cx.now));
        let rows: Vec<DownloadRow> = progress
            .into_iter()
            .zip(&downloads)
            .map(|(progress, d)| DownloadRow {
                progress,
                state: d.state,
            })
            .collect();
        let width = self.term.width().saturating_sub(1);
        self.show(downloads_table(&rows, width));
        if !rows.is_empty() {
            self.show(vec![vec![Span::new(
                Style::Dim,
                "cancel N: stop it, keeping its .part",
            )]]);
        }
    }

    /// `cancel [--delete] N|NAME`: N as numbered in the last downloads
    /// view (or now, if none was shown), NAME as shown, in any case, or a
    /// part of it that only one download has; `--delete` deletes its
    /// `.part` file too. Nothing given: the downloads view.
    fn cancel(&mut self, what: &str, cx: &Cx<'_>, out: &mut Vec<Command>) {
        let (delete, what) = match what.strip_prefix("--delete") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => (true, rest.trim()),
            _ => (false, what),
        };
        let running: Vec<(FileId, String)> = cx
            .client
            .downloads()
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect();
        if what.is_empty() || running.is_empty() {
            self.show_downloads(cx);
            if !running.is_empty() {
                self.error("Which one? Type cancel and its number or name.");
            }
            return self.show_menu();
        }
        // Done: the engine's answer is a status line at the prompt, like
        // rescan's (no menu in between).
        match choose(what, &self.listed_downloads, &running) {
            Ok(id) if delete => out.push(Command::CancelDelete(id)),
            Ok(id) => out.push(Command::Cancel(id)),
            Err(e) => {
                self.error(&format!("{e} (type downloads to see them)"));
                self.show_menu();
            }
        }
    }

    /// `unshare N|NAME`, like [`Self::cancel`] over the shared files.
    fn unshare(&mut self, what: &str, cx: &Cx<'_>, out: &mut Vec<Command>) {
        let shared: Vec<(FileId, String)> = cx.client.shared().into_iter().map(|f| (f.id, f.name)).collect();
        if what.is_empty() || shared.is_empty() {
            self.show_shared(cx);
            if !shared.is_empty() {
                self.error("Which one? Type unshare and its number or name.");
            }
            return self.show_menu();
        }
        match choose(what, &self.listed_shared, &shared) {
            Ok(id) => out.push(Command::Unshare(id)),
            Err(e) => {
                self.error(&format!("{e} (type 2 to see your shared files)"));
                self.show_menu();
            }
        }
    }

    /// Indices into `files` of every file (sorted), or of those whose
    /// name contains `filter` (ignoring case).
    fn matching(&self, filter: Option<&str>) -> Vec<usize> {
        let filter = filter.map(str::to_lowercase);
        (0..self.files.len())
            .filter(|&i| {
                filter
                    .as_ref()
                    .is_none_or(|w| self.files[i].name.to_lowercase().contains(w.as_str()))
            })
            .collect()
    }

    /// Shows the pick table of `files[i]` for each `i` in `indices`,
    /// numbered from 1, and remembers them for [`Self::on_pick`].
    fn show_pick_table(&mut self, indices: Vec<usize>, cx: &Cx<'_>) {
        let shared: Vec<_> = cx.client.shared().into_iter().map(|f| f.id).collect();
        let downloading: Vec<_> = cx.client.downloads().into_iter().map(|d| d.id).collect();
        let rows: Vec<FileRow<'_>> = indices
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let file = &self.files[i];
                FileRow {
                    number: k + 1,
                    file,
                    yours: if shared.contains(&file.id) {
                        Some("sharing")
                    } else if downloading.contains(&file.id) {
                        Some("downloading")
                    } else {
                        None
                    },
                }
            })
            .collect();
        let table = network_files_table(&rows, self.term.width());
        self.show(table);
        self.shown = indices;
    }

    fn on_pick(&mut self, line: &str, cx: &Cx<'_>, out: &mut Vec<Command>) {
        // A number is a row of the table on screen (a search's results are
        // numbered from 1 too); anything else is a name of any file.
        let picked = match line.trim().parse::<usize>() {
            Ok(n) => match n.checked_sub(1).and_then(|k| self.shown.get(k)) {
                Some(&i) => Pick::Index(i),
                None => {
                    let rows = self.shown.len();
                    return self.error(&format!(
                        "No number {n} in the list shown (1-{rows}): type a number, a name, part of a name to search, or Enter to go back."
                    ));
                }
            },
            Err(_) => {
                let names_list: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
                parse_pick(line, &names_list)
            }
        };
        match picked {
            Pick::Index(i) => {
                let file = &self.files[i];
                let (id, name) = (file.id, names::escape(&file.name));
                if cx.client.shared().iter().any(|f| f.id == id) {
                    // Refused here, before the engine hears of it.
                    self.error(&format!("You share {name} already."));
                } else if cx.client.downloads().iter().any(|d| d.id == id) {
                    self.error(&format!("{name} is downloading already."));
                } else {
                    let listed = Some(Listed {
                        name: file.name.clone(),
                        size: file.size,
                    });
                    out.push(Command::Download {
                        id,
                        label: name.clone(),
                        listed,
                        output: None,
                    });
                    self.status(format!("Downloading {name} in the background"));
                }
                self.show_menu();
            }
            Pick::Back => self.show_menu(),
            Pick::NotFound => {
                let wanted = line.trim();
                let found = self.matching(Some(wanted));
                if found.is_empty() {
                    self.error(&format!(
                        "No file '{}' in the list: type its number or name, part of a name to search, or Enter to go back.",
                        names::escape(wanted)
                    ));
                } else {
                    let note = format!(
                        "{} with '{}' in the name (numbered anew):",
                        count(found.len(), "file"),
                        names::escape(wanted)
                    );
                    self.show(vec![vec![Span::new(Style::Title, note)]]);
                    self.show_pick_table(found, cx);
                }
            }
            Pick::Ambiguous(_) => self.error("Several files have that name: pick one by its number."),
        }
    }

    fn prompt(&self, cx: &Cx<'_>) -> Line {
        let text = match self.screen {
            Screen::Leaving => String::new(),
            Screen::Username => "Choose a username: ".into(),
            Screen::AnyKey => "Press any key to continue".into(),
            Screen::Menu => "pytorrent> ".into(),
            Screen::WaitPeers | Screen::WaitFiles | Screen::WaitName => "(asking the tracker...) ".into(),
            Screen::Pick => "File number, name or part of one (Enter to go back): ".into(),
            Screen::NewName => format!(
                "New username (Enter to keep {}): ",
                names::escape(cx.client.username())
            ),
            Screen::Resume => "Resume them now? (y/n): ".into(),
            Screen::ConfirmQuit => format!(
                "{} running; leave anyway? (kept as .part files to resume) (y/n): ",
                count(cx.client.downloads().len(), "download")
            ),
            Screen::Share => match self.shares.front() {
                Some((meta, _)) => format!("Share {} with other peers? (y/n): ", names::escape(&meta.name)),
                None => "pytorrent> ".into(),
            },
        };
        vec![Span::new(Style::Accent, text)]
    }

    /// Types what is due, then draws the live region when something
    /// changed or a progress frame is due.
    fn render(&mut self, cx: &Cx<'_>) {
        let now = cx.now;
        if !self.typer.is_idle() {
            let spans = self.typer.take_due(self.now_ms(now));
            self.term.type_spans(&spans);
            if !self.typer.is_idle() {
                return;
            }
            self.dirty = true;
        }
        let downloads = cx.client.downloads();
        self.active = downloads.len();
        let now_ms = self.now_ms(now);
        let bars = self.rates.progress(&downloads, now_ms);
        let term_width = self.term.width();
        self.next_resize_check = now + RESIZE_CHECK;
        if term_width != self.drawn_width {
            self.dirty = true;
        }
        if !self.dirty && (self.active == 0 || now < self.next_frame) {
            return;
        }
        self.dirty = false;
        self.drawn_width = term_width;
        self.next_frame = now + FRAME;
        if self.screen == Screen::Leaving {
            self.term.hide_live();
            return;
        }
        // One column spare, so no line ever reaches the last column (where
        // terminals differ on wrapping).
        let width = term_width.saturating_sub(1);
        let rows: Vec<Line> = if self.term.fancy() {
            progress_bars(&bars, width)
        } else {
            Vec::new()
        };
        let prompt = self.prompt(cx);
        let room = width.saturating_sub(line_width(&prompt));
        // Only the tail of a long input shows, so the prompt never wraps
        // (the live region is erased by counting rows).
        // The part of a long input around the cursor shows; the cursor is
        // moved back over what follows it.
        let (input, back) = if self.screen == Screen::AnyKey {
            (String::new(), 0)
        } else {
            let (before, after) = self.editor.text().split_at(self.editor.cursor());
            let before = tail_width(before, room);
            let (after, after_width) = take_width(after, room - text_width(before));
            (format!("{before}{after}"), after_width)
        };
        self.term.draw_live(&rows, &prompt, &input, back);
    }

    fn handle_input(&mut self, events: Vec<InputEvent>, cx: &Cx<'_>, out: &mut Vec<Command>) {
        for ev in events {
            match ev {
                InputEvent::Interrupt | InputEvent::Eof => self.quit(cx, out),
                InputEvent::AnyKey => {
                    if self.screen == Screen::AnyKey {
                        self.after_any_key();
                    }
                }
                InputEvent::Changed => self.dirty = true,
                InputEvent::Line(line) => {
                    // The typed line stays on screen above the output.
                    let prompt = self.prompt(cx);
                    if self.term.fancy() && self.screen != Screen::Leaving {
                        let mut echoed = prompt;
                        echoed.push(Span::plain(names::escape(&line)));
                        self.term.print_lines(&[echoed]);
                    }
                    self.on_line(line, cx, out);
                }
            }
        }
    }
}

impl Frontend for Interactive {
    fn start(&mut self, cx: &Cx<'_>, _out: &mut Vec<Command>) {
        self.term.clear_screen();
        // The box-drawing logo is for a person at a terminal; a script
        // reading a pipe gets the tagline in plain words.
        let mut logo = logo();
        if !self.term.tty() {
            logo = vec![vec![Span::plain("PyTorrent: simplified peer-to-peer sharing")]];
        }
        self.show(logo);
        let emoji = self.emoji();
        self.say(vec![Span::plain(format!("Welcome to PyTorrent {emoji}"))]);
        self.status(format!("Tracker at {}", cx.client.tracker()));
        self.status(format!("Serving chunks on tcp {}", cx.client.listen_addr()));
        if self.setup.has_username {
            self.greet(cx, None);
        } else {
            self.say(vec![Span::new(
                Style::Title,
                "First time here? Pick the name other peers will see you by.",
            )]);
            self.screen = Screen::Username;
        }
    }

    fn on_event(&mut self, event: Event, cx: &Cx<'_>, out: &mut Vec<Command>) {
        match event {
            // The interactive client picks files from the list; it asks
            // no finds.
            Event::Ready | Event::Found { .. } => {}
            Event::PeerList(peers) => {
                if self.screen == Screen::WaitPeers {
                    let width = self.term.width();
                    self.show(peers_table(&peers, width));
                    self.show_menu();
                }
            }
            Event::FileList(files) => {
                if self.screen == Screen::WaitFiles {
                    let get = self.pending_get.take();
                    if files.is_empty() {
                        self.show(vec![vec![Span::new(Style::Dim, "No files on the network yet.")]]);
                        self.show_menu();
                    } else {
                        // Sorted, so a number means the same file from one
                        // listing to the next (the tracker's order varies).
                        let mut files = files;
                        files.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                        self.files = files;
                        self.screen = Screen::Pick;
                        match get {
                            // `get NAME`: picked as if typed at the list
                            // (a part of a name shows what matches). A
                            // number picks from the list, which is shown
                            // first so the user sees what it meant.
                            Some(what) if what.bytes().all(|b| b.is_ascii_digit()) => {
                                self.show_pick_table(self.matching(None), cx);
                                self.on_pick(&what, cx, out);
                            }
                            Some(what) => {
                                self.shown = self.matching(None);
                                self.on_pick(&what, cx, out);
                            }
                            None => self.show_pick_table(self.matching(None), cx),
                        }
                    }
                }
            }
            Event::DownloadDone { meta, path } => {
                let saved_at = path.display().to_string();
                self.show(vec![done_line(&meta.name, &saved_at, &hex(&meta.sha256))]);
                if let Err(e) = self.on_complete.run(&meta, &path) {
                    self.error(&e);
                }
                if self.shares.len() < MAX_PENDING_SHARES {
                    self.shares.push_back((meta, path));
                }
                self.ask_share_if_due();
            }
            Event::FolderDone {
                name, files, path, ..
            } => {
                let saved_at = path.display().to_string();
                let what = format!("{}/ ({files} files)", names::escape(&name));
                self.status(format!("Downloaded {what} -> {saved_at}"));
            }
            Event::DownloadFailed { label, why } => self.error(&format!("Download of {label} failed: {why}")),
            Event::Shared { name } => self.status(format!("Now sharing {name}")),
            Event::DownloadCancelled {
                name, deleted: true, ..
            } => self.status(format!("Cancelled {name} and deleted its .part file")),
            Event::DownloadCancelled { name, kept: true, .. } => self.status(format!(
                "Cancelled {name}; its .part file is kept: download it again to resume"
            )),
            Event::DownloadCancelled {
                name, kept: false, ..
            } => self.status(format!("Cancelled {name} (nothing of it had arrived)")),
            Event::Unshared { name } => self.status(format!(
                "Stopped sharing {name} (the file is untouched; shared again at the next start)"
            )),
            Event::Rescanned { queued, gone, asked } => {
                let dir = self.setup.shared_dir.display().to_string();
                if queued > 0 {
                    let files = count(queued, "new file");
                    self.status(format!("Found {files} in {dir}; sharing once indexed"));
                } else if asked {
                    self.status(format!("No new files in {dir}"));
                }
                if gone > 0 {
                    let files = count(gone, "shared file");
                    self.show(vec![vec![Span::new(
                        Style::Dim,
                        format!("{files} vanished or changed on disk; withdrawn"),
                    )]]);
                }
            }
            Event::Resumed {
                name,
                verified,
                total,
                rechecked,
            } => {
                let text = resumed_text(&name, verified, total, rechecked);
                let mut chars = text.chars();
                let first = chars
                    .next()
                    .map(|c| c.to_uppercase().collect::<String>())
                    .unwrap_or_default();
                self.status(first + chars.as_str());
            }
            Event::UsernameChanged(name) => {
                if self.wanted_name.take().is_some() {
                    match config::write_value(&self.setup.config_path, "username", &name) {
                        Ok(()) => self.status(format!("You are now {}", names::escape(&name))),
                        Err(e) => self.error(&format!(
                            "The tracker knows you as {} now, but the config could not be saved: {e}",
                            names::escape(&name)
                        )),
                    }
                    if self.screen == Screen::WaitName {
                        self.show_menu();
                    }
                }
            }
            Event::TrackerFailed { what, error } => {
                self.error(&format!("The tracker could not {}: {error}", what.as_str()));
                if what == RequestKind::ChangeUsername {
                    self.wanted_name = None;
                }
                if matches!(
                    self.screen,
                    Screen::WaitPeers | Screen::WaitFiles | Screen::WaitName
                ) {
                    self.pending_get = None;
                    self.show_menu();
                }
            }
            Event::TrackerUnreachable => {
                // A question being asked stays asked: the link answers it
                // if the tracker comes back in time, or fails it (a
                // TrackerFailed) after its retries; leaving the wait here
                // would drop an answer that may come a moment later.
                let addr = cx.client.tracker();
                self.error(&format!("The tracker at {addr} is not answering; still trying."));
            }
            Event::TrackerReachable => self.status("The tracker answers again".into()),
            Event::Warning(w) => self.show(vec![vec![Span::new(Style::Dim, w)]]),
            Event::Signal => self.quit(cx, out),
        }
        self.run_typeahead(cx, out);
        self.render(cx);
    }

    fn wants_stdin(&self) -> bool {
        true
    }

    fn on_input(&mut self, bytes: &[u8], cx: &Cx<'_>, out: &mut Vec<Command>) {
        if bytes.is_empty() {
            // End of input (a script ran out): finish what it asked for,
            // then leave like Disconnect.
            self.input_ended = true;
        } else {
            // A key while text is being typed shows the rest at once.
            if !self.typer.is_idle() {
                let spans = self.typer.finish_all();
                self.term.type_spans(&spans);
            }
            let events = self.editor.feed(bytes);
            self.handle_input(events, cx, out);
        }
        self.run_typeahead(cx, out);
        if !out.is_empty() {
            self.redraw_next_turn = true;
        }
        self.render(cx);
    }

    fn on_timeout(&mut self, cx: &Cx<'_>, out: &mut Vec<Command>) {
        if std::mem::take(&mut self.redraw_next_turn) {
            self.dirty = true;
            self.run_typeahead(cx, out);
        }
        self.render(cx);
    }

    fn deadline(&self) -> Option<Instant> {
        if !self.typer.is_idle() {
            let now = Instant::now();
            let due = self.typer.next_deadline(self.now_ms(now))?;
            return Some(self.t0 + Duration::from_millis(due));
        }
        if self.dirty || self.redraw_next_turn {
            // Due already: the loop compares with the `now` it read before
            // asking, which `Instant::now()` here would always be after.
            return Some(self.t0);
        }
        if !self.term.fancy() {
            return None;
        }
        if self.active > 0 {
            return Some(self.next_frame.min(self.next_resize_check));
        }
        Some(self.next_resize_check)
    }

    fn stop(&mut self, code: u8) {
        let spans = self.typer.finish_all();
        self.term.type_spans(&spans);
        self.term.hide_live();
        if code == 0 {
            let emoji = self.emoji();
            let parts = match self.left_unfinished {
                0 => String::new(),
                1 => " The unfinished download stays as a .part file to resume.".into(),
                n => format!(" The {n} unfinished downloads stay as .part files to resume."),
            };
            self.term
                .print_lines(&[vec![Span::new(Style::Title, format!("Goodbye!{parts} {emoji}"))]]);
        }
        self.term.restore();
    }
}

/// Whether a line typed while the tracker is asked runs at once: a
/// command word answered without the tracker (`help`, `downloads`,
/// `cancel 2`, `quit`, ...), so a silent tracker holds up nothing. Numbers,
/// names and empty lines wait their turn: they may be meant for the list
/// being fetched (a script types `3` then `1`).
fn is_local(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() || t.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    matches!(
        parse_menu_choice(t),
        MenuChoice::Help
            | MenuChoice::Downloads
            | MenuChoice::SharedFiles
            | MenuChoice::Clear
            | MenuChoice::Menu
            | MenuChoice::Cancel(_)
            | MenuChoice::Unshare(_)
            | MenuChoice::Rescan
            | MenuChoice::Disconnect
    )
}

/// One of `current` by its number in `listed` (what the user saw,
/// numbered from 1; `current` if nothing was shown yet), or by name:
/// exactly, ignoring case, or by a part of the name only one has. Errors
/// are ready to show (names escaped), including a number whose entry is
/// no longer current.
fn choose(what: &str, listed: &[(FileId, String)], current: &[(FileId, String)]) -> Result<FileId, String> {
    if let Ok(n) = what.parse::<usize>() {
        let listed = if listed.is_empty() { current } else { listed };
        let (id, name) = n
            .checked_sub(1)
            .and_then(|i| listed.get(i))
            .ok_or_else(|| format!("No number {n} in the list"))?;
        return match current.iter().any(|(c, _)| c == id) {
            true => Ok(*id),
            false => Err(format!("{} is no longer in that list", names::escape(name))),
        };
    }
    let names_list: Vec<&str> = current.iter().map(|(_, n)| n.as_str()).collect();
    let found = match parse_pick(what, &names_list) {
        Pick::Index(i) => Some(i),
        Pick::Ambiguous(_) => None,
        Pick::Back | Pick::NotFound => {
            let part = what.to_lowercase();
            let mut hits = (0..current.len()).filter(|&i| current[i].1.to_lowercase().contains(&part));
            match (hits.next(), hits.next()) {
                (Some(i), None) => Some(i),
                (None, _) => return Err(format!("Nothing named '{}'", names::escape(what))),
                _ => None,
            }
        }
    };
    found
        .map(|i| current[i].0)
        .ok_or_else(|| format!("Several match '{}': use the number", names::escape(what)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_by_number_name_or_part() {
        let a = ([1; 32], "Holiday.jpg".to_string());
        let b = ([2; 32], "holiday video.mp4".to_string());
        let c = ([3; 32], "notes.txt".to_string());
        let listed = vec![a.clone(), b.clone(), c.clone()];
        // Numbers are what was listed, even if the list changed since.
        let now = vec![b.clone(), c.clone()];
        assert_eq!(choose("3", &listed, &now), Ok(c.0));
        let gone = choose("1", &listed, &now).unwrap_err();
        assert!(gone.contains("Holiday.jpg is no longer"), "{gone}");
        assert!(choose("4", &listed, &now).unwrap_err().contains("No number 4"));
        assert!(choose("0", &listed, &now).is_err());
        // Nothing listed yet: the numbers of what is current.
        assert_eq!(choose("1", &[], &now), Ok(b.0));
        // Names are what runs now: exact, any case, a unique part.
        assert_eq!(choose("NOTES.TXT", &listed, &now), Ok(c.0));
        assert_eq!(choose("video", &listed, &now), Ok(b.0));
        assert!(choose("holiday", &listed, &listed)
            .unwrap_err()
            .contains("Several"));
        let err = choose("\u{1b}[2J", &listed, &now).unwrap_err();
        assert!(err.contains("Nothing named") && !err.contains('\u{1b}'), "{err}");
    }
}
