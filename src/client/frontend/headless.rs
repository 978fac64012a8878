//! The headless frontend: `--seed`, `--get`, `--list` and `--peers`, for
//! scripts and machines without a person. Results go to stdout as plain
//! lines, errors to stderr; the exit code says how it went (0 success,
//! 1 failure). Two things go to stderr for whoever watches: a tracker that
//! does not answer (and when it answers again), and, when stderr is a
//! terminal, `--get`'s progress bars, redrawn in place twice a second and
//! erased before any other line is printed.

use super::scripting::{files_json, peers_json, OnComplete};
use super::table::{count, human_bytes, render, role_name, PEER_HEADERS};
use super::terminal::stderr_columns;
use super::ui::rate::Rates;
use super::ui::render::progress_bars;
use super::ui::to_ansi;
use super::{resumed_text, Command, Cx, Event, Frontend};
use crate::bt::merkle::Tree;
use crate::bt::metainfo::Metainfo;
use crate::bt::torrent::MAX_TORRENT_LEN;
use crate::client::engine::bittorrent::fetch::BtSource;
use crate::client::engine::Listed;
use crate::meta::hex;
use crate::names;
use crate::wire::tracker::{FileInfo, FileQuery, PeerInfo};
use crate::wire::FileId;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A seeder not ready this long after start, with indexing done, says the
/// tracker has not answered yet (the link itself gives up much later).
const TRACKER_SILENT: Duration = Duration::from_secs(3);
/// How often `--get`'s progress is redrawn on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Serve until a signal.
    Seed,
    /// Downloading; then exit, or seed.
    Get,
    List,
    Peers,
    /// Leaving.
    Done,
}

/// The headless run's state.
pub struct Headless {
    goal: Goal,
    /// `--get` names waiting for the tracker's lookup.
    names: Vec<String>,
    /// `--get` ids given as such.
    ids: Vec<FileId>,
    /// Ids of the downloads started: two targets naming one file (a name
    /// and its id prefix) start it once, and the run waits for it once.
    started_ids: Vec<FileId>,
    running: usize,
    failed: usize,
    seed_after: bool,
    banner_shown: bool,
    /// When the run started (the clock of the rate windows).
    started: Option<Instant>,
    /// When to look whether a seeder still waits on the tracker.
    silent_check: Option<Instant>,
    /// Stderr said the tracker is silent, and has not said it answers.
    told_silent: bool,
    /// `--get` progress on stderr: only when it is a terminal.
    progress: Option<StderrProgress>,
    /// `--get` BitTorrent targets (magnet links, `.torrent` files), and
    /// the `--peer`s to try for them.
    bt: Vec<String>,
    bt_peers: Vec<SocketAddr>,
    /// `--only` patterns for multi-file torrents.
    bt_only: Vec<String>,
    /// Files to seed over BitTorrent too (`--seed --torrent NAME`).
    bt_shares: Vec<BtShare>,
    /// `--json`: listings as JSON.
    json: bool,
    /// `--on-complete CMD`.
    on_complete: OnComplete,
    /// `--output NAME` of the one `--get`.
    output: Option<String>,
}

/// A file or folder offered as a BitTorrent torrent (`--torrent NAME
/// --seed`), with its files' trees (per entry of its layout).
pub struct BtShare {
    pub torrent: Metainfo,
    pub trees: Vec<Option<Tree>>,
    pub path: std::path::PathBuf,
}

/// Progress bars drawn on a terminal's stderr.
struct StderrProgress {
    /// Lines drawn (erased before anything else is printed).
    drawn: usize,
    next: Instant,
    rates: Rates,
}

impl Headless {
    pub fn new(seed: bool, get: Vec<String>, list: bool, peers: bool) -> Headless {
        let goal = match (get.is_empty(), list, peers) {
            (false, _, _) => Goal::Get,
            (true, true, _) => Goal::List,
            (true, _, true) => Goal::Peers,
            _ => Goal::Seed,
        };
        let (mut names, mut ids) = (Vec::new(), Vec::new());
        let mut bt = Vec::new();
        for target in get {
            if is_bt_target(&target) {
                bt.push(target);
                continue;
            }
            match parse_file_id(&target) {
                Some(id) if !ids.contains(&id) => ids.push(id),
                Some(_) => {}
                None if !names.contains(&target) => names.push(target),
                None => {}
            }
        }
        Headless {
            goal,
            names,
            ids,
            started_ids: Vec::new(),
            running: 0,
            failed: 0,
            seed_after: seed,
            banner_shown: false,
            started: None,
            silent_check: None,
            told_silent: false,
            progress: None,
            bt,
            bt_peers: Vec::new(),
            bt_only: Vec::new(),
            bt_shares: Vec::new(),
            json: false,
            on_complete: OnComplete::default(),
            output: None,
        }
    }

    /// `--output NAME`: the name the one `--get` is saved as.
    pub fn with_output(mut self, output: Option<String>) -> Headless {
        self.output = output;
        self
    }

    /// `--json` and `--on-complete CMD`.
    pub fn with_scripting(mut self, json: bool, on_complete: Option<String>) -> Headless {
        self.json = json;
        self.on_complete = OnComplete::new(on_complete);
        self
    }

    /// Files to seed over BitTorrent as well.
    pub fn with_bt_shares(mut self, shares: Vec<BtShare>) -> Headless {
        self.bt_shares = shares;
        self
    }

    /// Peers for the BitTorrent downloads (`--peer`).
    pub fn with_bt_peers(mut self, peers: Vec<SocketAddr>) -> Headless {
        self.bt_peers = peers;
        self
    }

    /// The files wanted of multi-file torrents (`--only`).
    pub fn with_bt_only(mut self, only: Vec<String>) -> Headless {
        self.bt_only = only;
        self
    }

    /// Starts the BitTorrent downloads: a `.torrent` file is read here
    /// (bounded), parsed and checked by the engine.
    fn start_bt(&mut self, out: &mut Vec<Command>) {
        for s in std::mem::take(&mut self.bt_shares) {
            out.push(Command::BtShare {
                torrent: Box::new(s.torrent),
                trees: s.trees,
                path: s.path,
            });
        }
        for target in std::mem::take(&mut self.bt) {
            let source = if target.starts_with("magnet:") {
                BtSource::Magnet(target)
            } else {
                match read_torrent(&target) {
                    Ok(bytes) => BtSource::Torrent(bytes),
                    Err(e) => {
                        self.get_failed(&format!("cannot read {}: {e}", names::escape(&target)));
                        continue;
                    }
                }
            };
            self.running += 1;
            out.push(Command::BtDownload {
                source,
                peers: self.bt_peers.clone(),
                only: self.bt_only.clone(),
            });
        }
    }

    /// Erases the progress lines on stderr, so a line can be printed.
    fn clear_progress(&mut self) {
        if let Some(p) = self.progress.as_mut().filter(|p| p.drawn > 0) {
            eprint!("\x1b[{}A\r\x1b[J", p.drawn);
            p.drawn = 0;
        }
    }

    /// Redraws `--get`'s progress bars on stderr (a terminal).
    fn draw_progress(&mut self, cx: &Cx<'_>) {
        let Some(cols) = stderr_columns() else {
            return;
        };
        self.clear_progress();
        let Some(p) = self.progress.as_mut() else {
            return;
        };
        p.next = cx.now + PROGRESS_EVERY;
        let now_ms = self
            .started
            .map_or(0, |t| cx.now.duration_since(t).as_millis() as u64);
        let mut text = String::new();
        let bars = p.rates.progress(&cx.client.downloads(), now_ms);
        for line in progress_bars(&bars, cols.saturating_sub(1)) {
            text.push_str(&to_ansi(&line, false));
            text.push('\n');
        }
        p.drawn = bars.len();
        eprint!("{text}");
    }

    fn quit(&mut self, code: u8, why: &str, out: &mut Vec<Command>) {
        if self.goal == Goal::Done {
            return;
        }
        if code != 0 {
            eprintln!("pytorrent: error: {why}");
        }
        self.goal = Goal::Done;
        out.push(Command::Quit { code });
    }

    fn download(&mut self, id: FileId, label: String, listed: Option<Listed>, out: &mut Vec<Command>) {
        if self.started_ids.contains(&id) {
            return;
        }
        self.started_ids.push(id);
        self.running += 1;
        // `--output` names the one download there is (options checked).
        let output = self.output.clone();
        out.push(Command::Download {
            id,
            label,
            listed,
            output,
        });
    }

    fn banner(&mut self, cx: &Cx<'_>) {
        if self.goal != Goal::Seed || self.banner_shown || !cx.client.is_ready() {
            return;
        }
        self.banner_shown = true;
        println!(
            "seeding {} as {} on tcp {} (tracker {})",
            count(cx.client.shared_count(), "file"),
            names::escape(cx.client.username()),
            cx.client.listen_addr(),
            cx.client.tracker()
        );
        let _ = io::stdout().flush();
    }

    /// Once every `--get` has ended: exit, or go on seeding.
    fn check_gets(&mut self, cx: &Cx<'_>, out: &mut Vec<Command>) {
        if self.goal != Goal::Get || !self.names.is_empty() || self.running > 0 {
            return;
        }
        if self.failed > 0 {
            let why = format!("{} of the requested downloads failed", self.failed);
            self.quit(1, &why, out);
        } else if self.seed_after {
            self.goal = Goal::Seed;
            self.banner(cx);
        } else {
            self.quit(0, "", out);
        }
    }

    fn get_failed(&mut self, why: &str) {
        eprintln!("pytorrent: error: {why}");
        self.failed += 1;
    }

    /// Whether the run cannot go on without the tracker's answer.
    fn waits_on_tracker(&self) -> bool {
        matches!(self.goal, Goal::List | Goal::Peers) || (self.goal == Goal::Get && !self.names.is_empty())
    }

    /// The tracker's answer to one `--get` name's lookup: the name first,
    /// then (no file by that name) the id prefix it may be, like the ones
    /// `--list` shows.
    fn on_found(&mut self, query: FileQuery, files: &[FileInfo], out: &mut Vec<Command>) {
        let asked = |name: &String| match &query {
            FileQuery::Name(n) => n == name,
            FileQuery::IdPrefix { .. } => prefix_query(name).as_ref() == Some(&query),
        };
        let Some(i) = self.names.iter().position(asked) else {
            return;
        };
        if files.is_empty() && matches!(query, FileQuery::Name(_)) {
            if let Some(q) = prefix_query(&self.names[i]) {
                out.push(Command::Find(q));
                return;
            }
        }
        let name = self.names.remove(i);
        match files {
            [one] => {
                let listed = Listed {
                    name: one.name.clone(),
                    size: one.size,
                };
                self.download(one.id, names::escape(&one.name), Some(listed), out)
            }
            // Meant as a torrent file: say the path is wrong first.
            [] if name.ends_with(".torrent") => self.get_failed(&format!(
                "cannot read {}: no such file (nor a file of that name on the network)",
                names::escape(&name)
            )),
            [] if parse_file_id(&name).is_some() => self.get_failed(&format!(
                "no peer has it: the tracker lists no file with id {name} (see --list)"
            )),
            [] => self.get_failed(&format!(
                "no file named '{}' on the network, nor one whose id starts so (see --list)",
                names::escape(&name)
            )),
            many => {
                let ids: Vec<String> = many.iter().map(|f| hex(&f.id)).collect();
                self.get_failed(&format!(
                    "{} files match '{}'; pick one by its id: {}",
                    many.len(),
                    names::escape(&name),
                    ids.join(", ")
                ));
            }
        }
    }
}

impl Frontend for Headless {
    fn start(&mut self, cx: &Cx<'_>, out: &mut Vec<Command>) {
        self.started = Some(cx.now);
        if self.goal == Goal::Seed {
            self.silent_check = Some(cx.now + TRACKER_SILENT);
        }
        if self.goal == Goal::Get && stderr_columns().is_some() {
            self.progress = Some(StderrProgress {
                drawn: 0,
                next: cx.now + PROGRESS_EVERY,
                rates: Rates::default(),
            });
        }
        // Torrents to seed are offered whatever the goal.
        self.start_bt(out);
        match self.goal {
            Goal::Get => {
                // Each name is looked up in the tracker's index: found
                // however long the network's file list is.
                for name in &self.names {
                    out.push(Command::Find(FileQuery::Name(name.clone())));
                }
                // Whole ids too, so every download knows the size the
                // tracker lists, which bounds its metadata (and the
                // memory a peer can make it hold).
                for id in std::mem::take(&mut self.ids) {
                    out.push(Command::Find(FileQuery::IdPrefix { id, digits: 64 }));
                    self.names.push(hex(&id));
                }
                self.check_gets(cx, out);
            }
            Goal::List => out.push(Command::ListFiles),
            Goal::Peers => out.push(Command::ListPeers),
            Goal::Seed | Goal::Done => {}
        }
    }

    fn on_event(&mut self, event: Event, cx: &Cx<'_>, out: &mut Vec<Command>) {
        self.clear_progress();
        match event {
            Event::Ready => {
                if std::mem::take(&mut self.told_silent) {
                    eprintln!("pytorrent: the tracker {} answers", cx.client.tracker());
                }
                self.banner(cx);
            }
            Event::FileList(files) => {
                if self.goal == Goal::List {
                    if self.json {
                        println!("{}", files_json(&files));
                        self.quit(0, "", out);
                        return;
                    }
                    print!("{}", files_table(&files));
                    println!("{} on the network", count(files.len(), "file"));
                    self.quit(0, "", out);
                }
            }
            Event::Found { query, files } => {
                if self.goal == Goal::Get {
                    self.on_found(query, &files, out);
                    self.check_gets(cx, out);
                }
            }
            Event::PeerList(mut peers) => {
                if self.goal == Goal::Peers {
                    // The caller registered only to ask: it is not one of
                    // the peers a user asks about.
                    peers.retain(|p| !p.is_you);
                    if self.json {
                        println!("{}", peers_json(&peers));
                    } else {
                        print!("{}", peers_table(&peers));
                        println!("{} on the network", count(peers.len(), "peer"));
                    }
                    self.quit(0, "", out);
                }
            }
            Event::DownloadDone { meta, path } => {
                println!(
                    "downloaded {} ({} bytes) sha256 {} -> {}",
                    names::escape(&meta.name),
                    meta.size,
                    hex(&meta.sha256),
                    path.display()
                );
                let _ = io::stdout().flush();
                if let Err(w) = self.on_complete.run(&meta, &path) {
                    eprintln!("pytorrent: warning: {w}");
                }
                if self.seed_after {
                    out.push(Command::Share { meta, path });
                }
                self.running = self.running.saturating_sub(1);
                self.check_gets(cx, out);
            }
            Event::FolderDone {
                name,
                files,
                size,
                path,
            } => {
                println!(
                    "downloaded {}/ ({files} files, {size} bytes) -> {}",
                    names::escape(&name),
                    path.display()
                );
                let _ = io::stdout().flush();
                self.running = self.running.saturating_sub(1);
                self.check_gets(cx, out);
            }
            Event::DownloadFailed { label, why } => {
                self.get_failed(&format!("download of {label} failed: {why}"));
                self.running = self.running.saturating_sub(1);
                self.check_gets(cx, out);
            }
            Event::TrackerFailed { what, error } => {
                let what = what.as_str();
                if self.waits_on_tracker() {
                    let why = format!("tracker {what} failed: {error}");
                    self.quit(1, &why, out);
                } else {
                    // A seed or announce the tracker refused: the network
                    // does not know what we share, which a user must hear.
                    eprintln!("pytorrent: warning: tracker {what} failed: {error}");
                }
            }
            Event::TrackerUnreachable => {
                if self.waits_on_tracker() {
                    let why = format!("the tracker {} does not answer", cx.client.tracker());
                    self.quit(1, &why, out);
                } else if self.goal != Goal::Done {
                    self.told_silent = true;
                    eprintln!(
                        "pytorrent: the tracker {} does not answer; still trying (peers that know us are still served)",
                        cx.client.tracker()
                    );
                }
            }
            Event::Warning(w) => eprintln!("pytorrent: warning: {w}"),
            Event::Resumed {
                name,
                verified,
                total,
                rechecked,
            } => {
                println!("{}", resumed_text(&name, verified, total, rechecked));
                let _ = io::stdout().flush();
            }
            Event::Signal => {
                if self.goal == Goal::Seed {
                    println!("pytorrent: signal received, withdrawing and leaving the network; goodbye");
                    self.quit(0, "", out);
                } else {
                    self.quit(
                        1,
                        "interrupted by a signal; unfinished downloads keep their .part file",
                        out,
                    );
                }
            }
            Event::TrackerReachable => {
                if std::mem::take(&mut self.told_silent) {
                    eprintln!("pytorrent: the tracker {} answers again", cx.client.tracker());
                }
            }
            // The log has these; a script sees the result in --list.
            Event::Shared { .. }
            | Event::UsernameChanged(_)
            | Event::DownloadCancelled { .. }
            | Event::Unshared { .. }
            | Event::Rescanned { .. } => {}
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let progress = self.progress.as_ref().map(|p| p.next);
        self.silent_check.into_iter().chain(progress).min()
    }

    fn on_timeout(&mut self, cx: &Cx<'_>, _out: &mut Vec<Command>) {
        if self.silent_check.is_some_and(|t| cx.now >= t) {
            self.silent_check = None;
            if self.goal != Goal::Seed || cx.client.is_ready() {
                // Ready: later silences come as TrackerUnreachable.
            } else if cx.client.indexing().0 > 0 {
                // Still indexing, so the wait is ours, not the tracker's.
                self.silent_check = Some(cx.now + Duration::from_secs(1));
            } else {
                self.clear_progress();
                self.told_silent = true;
                eprintln!(
                    "pytorrent: no answer from the tracker {} yet; still trying",
                    cx.client.tracker()
                );
            }
        }
        if self.goal == Goal::Get && self.progress.as_ref().is_some_and(|p| cx.now >= p.next) {
            self.draw_progress(cx);
        }
    }

    fn stop(&mut self, _code: u8) {
        self.clear_progress();
    }
}

fn files_table(files: &[FileInfo]) -> String {
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                hex(&f.id[..8]),
                names::escape(&f.name),
                human_bytes(f.size),
                f.seeders.to_string(),
                f.partial.to_string(),
            ]
        })
        .collect();
    render(&["ID", "NAME", "SIZE", "SEEDERS", "PARTIAL"], &rows, &[2, 3, 4])
}

fn peers_table(peers: &[PeerInfo]) -> String {
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            let role = role_name(p.role, p.files);
            vec![
                names::escape(&p.username),
                p.addr.to_string(),
                role.to_string(),
                p.files.to_string(),
            ]
        })
        .collect();
    render(&PEER_HEADERS, &rows, &[3])
}

/// Whether a `--get` target is BitTorrent's: a magnet link, or a
/// `.torrent` file that exists (a file on the network may be named so).
fn is_bt_target(target: &str) -> bool {
    target.starts_with("magnet:") || (target.ends_with(".torrent") && std::path::Path::new(target).is_file())
}

/// A fake tracker for tests: answers every `Find` in `out` (and those the
/// answers lead to) from `files`, as the tracker's index would.
#[cfg(test)]
pub(super) fn answer_finds(h: &mut Headless, files: &[FileInfo], cx: &Cx<'_>, out: &mut Vec<Command>) {
    let mut i = 0;
    while i < out.len() {
        if let Command::Find(query) = &out[i] {
            let query = query.clone();
            let files = files
                .iter()
                .filter(|f| query.matches(&f.id, &f.name))
                .cloned()
                .collect();
            h.on_event(Event::Found { query, files }, cx, out);
        }
        i += 1;
    }
}

/// A `.torrent` file's bytes, refusing one larger than any torrent.
fn read_torrent(path: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = MAX_TORRENT_LEN as u64 + 1;
    std::fs::File::open(path)?.take(limit).read_to_end(&mut bytes)?;
    if bytes.len() > MAX_TORRENT_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too large for a torrent",
        ));
    }
    Ok(bytes)
}

/// Fewest hex digits of a file id `--get` accepts as a prefix.
pub const MIN_ID_PREFIX: usize = 8;

/// Whether `text` can be a file id prefix: at least [`MIN_ID_PREFIX`] hex
/// digits, at most a whole id's 64.
fn is_id_prefix(text: &str) -> bool {
    (MIN_ID_PREFIX..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The tracker lookup of `text` as an id prefix, if it can be one.
fn prefix_query(text: &str) -> Option<FileQuery> {
    if !is_id_prefix(text) {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, digit) in text.bytes().enumerate() {
        let v = (digit as char).to_digit(16)? as u8;
        id[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
    }
    Some(FileQuery::IdPrefix {
        id,
        digits: text.len() as u8,
    })
}

/// A file id written as 64 hex digits.
pub fn parse_file_id(text: &str) -> Option<FileId> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_parse_from_hex_only() {
        let id: FileId = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(parse_file_id(&hex(&id)), Some(id));
        assert_eq!(parse_file_id(&hex(&id).to_uppercase()), Some(id));
        assert_eq!(parse_file_id("abc"), None);
        assert_eq!(parse_file_id(&"g".repeat(64)), None);
        assert_eq!(parse_file_id(&"é".repeat(32)), None);
    }

    #[test]
    fn targets_split_into_ids_and_names_without_repeats() {
        let id = hex(&[1; 32]);
        let h = Headless::new(
            false,
            vec![id.clone(), "a".into(), id, "a".into(), "b".into()],
            false,
            false,
        );
        assert_eq!(h.ids, vec![[1; 32]]);
        assert_eq!(h.names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(h.goal, Goal::Get);
        assert_eq!(Headless::new(true, vec![], false, false).goal, Goal::Seed);
        assert_eq!(Headless::new(false, vec![], true, false).goal, Goal::List);
    }

    #[test]
    fn tables_escape_network_text() {
        let files = vec![FileInfo {
            id: [2; 32],
            name: "evil\u{1b}[2J.txt".into(),
            size: 2048,
            seeders: 1,
            partial: 0,
        }];
        let t = files_table(&files);
        assert!(!t.contains('\u{1b}'), "{t}");
        assert!(t.contains("2.0 KiB"), "{t}");
    }
}
