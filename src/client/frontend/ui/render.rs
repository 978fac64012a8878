//! The screens as pure functions of state: logo, menu, help, the three
//! tables, the progress bar and status lines, each returned as styled
//! [`Line`]s for the one layer that writes to the terminal.
//!
//! Invariants: network text (usernames, file names, error messages) is shown
//! only through [`names::escape`], so no control character (ESC, CSI, ...)
//! reaches the terminal from a peer; a function given a `width` returns
//! lines of at most `width` characters (cut with `…`), for any width
//! including 0; tables are built on [`table::render`] and sizes on
//! [`table::human_bytes`], like the headless listings.

use super::{fit, fit_line, width as text_width, Line, Span, Style};
use crate::client::engine::DownloadState;
use crate::client::frontend::table;
use crate::names;
use crate::rand::Rng;
use crate::wire::tracker::{FileInfo, PeerInfo};

/// Cheerful emojis for status lines, in the spirit of the original client.
pub const EMOJIS: [&str; 12] = [
    "🚀", "✨", "🎉", "🌟", "🔥", "💫", "🙌", "🎈", "🍀", "⚡", "🎊", "😎",
];

/// A random emoji from [`EMOJIS`].
pub fn random_emoji(rng: &mut Rng) -> &'static str {
    EMOJIS[rng.below(EMOJIS.len())]
}

/// The PyTorrent logo: three lines of box-drawing letters and a tagline,
/// 28 characters wide.
pub fn logo() -> Vec<Line> {
    // "Py" in the Python yellow, "Torrent" in the title colour; each letter
    // is three columns wide, so "Py" is the first six.
    const ART: [&str; 3] = [
        "╔═╗┬ ┬╔╦╗┌─┐┬─┐┬─┐┌─┐┌┐┌┌┬┐",
        "╠═╝└┬┘ ║ │ │├┬┘├┬┘├┤ │││ │",
        "╩   ┴  ╩ └─┘┴└─┴└─└─┘┘└┘ ┴",
    ];
    let mut lines: Vec<Line> = ART
        .iter()
        .map(|row| {
            let split = row.char_indices().nth(6).map_or(row.len(), |(i, _)| i);
            vec![
                Span::new(Style::Accent, &row[..split]),
                Span::new(Style::Title, &row[split..]),
            ]
        })
        .collect();
    lines.push(vec![Span::new(Style::Dim, "simplified peer-to-peer sharing")]);
    lines
}

/// The main menu's items, numbered from 1, with their emojis.
pub const MENU_ITEMS: [(&str, &str); 5] = [
    ("🔍", "View connected peers"),
    ("📁", "View shared files"),
    ("📥", "Download a file"),
    ("✏️", "Change username"),
    ("❌", "Disconnect"),
];

/// The main menu: a title with an emoji chosen by `emoji_seed`, the five
/// numbered items and a hint.
pub fn menu(emoji_seed: u64) -> Vec<Line> {
    let emoji = random_emoji(&mut Rng::seeded(emoji_seed));
    let mut lines = vec![vec![Span::new(Style::Title, format!("{emoji} Main menu"))]];
    for (i, (icon, label)) in MENU_ITEMS.iter().enumerate() {
        lines.push(vec![
            Span::plain(format!("  {icon} ")),
            Span::new(Style::Accent, format!("{}.", i + 1)),
            Span::plain(format!(" {label}")),
        ]);
    }
    lines.push(vec![Span::new(
        Style::Dim,
        "Type a number, or help for all commands",
    )]);
    lines
}

/// What can be typed at the main menu.
pub fn help() -> Vec<Line> {
    const WORDS: [(&str, &str); 14] = [
        ("1, peers", "who is online, their address, role and files"),
        ("2, files, shared", "what you share and who is downloading it"),
        ("3, download, get", "pick a file on the network and fetch it"),
        ("get NAME", "fetch the file of that name (or search for it)"),
        ("4, username, name", "change the name others see"),
        ("5, disconnect, quit", "leave the network (Ctrl-C or Ctrl-D too)"),
        ("downloads, d", "running downloads: progress, peers, rate, state"),
        ("cancel N|NAME", "stop download N (its .part is kept to resume)"),
        ("cancel --delete N", "stop download N and delete its .part file"),
        ("unshare N|NAME", "stop sharing file N of 2 (the file stays)"),
        ("rescan", "look for new files in the shared folder now"),
        ("help", "this list"),
        ("menu, m", "show the menu again"),
        ("clear", "clear the screen"),
    ];
    let mut lines = vec![vec![Span::new(Style::Title, "Commands")]];
    for (keys, what) in WORDS {
        lines.push(vec![
            Span::new(Style::Accent, format!("  {keys:<21}")),
            Span::plain(what),
        ]);
    }
    lines
}

/// Narrowest a table's flexible (name) column is cut to.
const MIN_NAME_COLUMN: usize = 8;
/// Columns a name may keep before other columns are left out for it: on
/// a narrow terminal a name people can read matters more than a count.
const NAME_KEEP: usize = 20;

/// A table of `rows` under `headers` in `width` characters. When the
/// `flex` column (names) would be cut below its width (up to `name_keep`
/// columns), columns are left out from the right (never the first,
/// which holds the number people type, nor the name); then the name is
/// cut with `…` so the other columns stay whole, and every line is cut to
/// `width` as a last resort.
fn table_lines(
    headers: &[&str],
    rows: Vec<Vec<String>>,
    right: &[usize],
    flex: usize,
    name_keep: usize,
    width: usize,
) -> Vec<String> {
    let col_width = |i: usize| {
        rows.iter()
            .map(|r| text_width(&r[i]))
            .chain([text_width(headers[i])])
            .max()
            .unwrap_or(0)
    };
    let name_need = col_width(flex).min(name_keep);
    let mut shown: Vec<usize> = (0..headers.len()).collect();
    let others = |shown: &[usize]| -> usize {
        shown
            .iter()
            .filter(|&&i| i != flex)
            .map(|&i| col_width(i))
            .sum::<usize>()
            + 2 * shown.len().saturating_sub(1)
    };
    while others(&shown) + name_need > width {
        match shown.iter().rposition(|&i| i != flex && i != 0) {
            Some(pos) => {
                shown.remove(pos);
            }
            None => break,
        }
    }
    let flex_max = width
        .saturating_sub(others(&shown))
        .max(MIN_NAME_COLUMN)
        .max(text_width(headers[flex]));
    let headers: Vec<&str> = shown.iter().map(|&i| headers[i]).collect();
    let right: Vec<usize> = (0..shown.len()).filter(|&k| right.contains(&shown[k])).collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| {
            shown
                .iter()
                .map(|&i| {
                    if i == flex {
                        fit(&row[i], flex_max)
                    } else {
                        row[i].clone()
                    }
                })
                .collect()
        })
        .collect();
    table::render(&headers, &rows, &right)
        .lines()
        .map(|l| fit(l, width))
        .collect()
}

/// Styles a table: the header in the title style, each row in its own.
fn styled(lines: Vec<String>, row_styles: &[Style]) -> Vec<Line> {
    lines
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let style = match i {
                0 => Style::Title,
                _ => row_styles.get(i - 1).copied().unwrap_or(Style::Plain),
            };
            vec![Span::new(style, text)]
        })
        .collect()
}

/// A dim line saying a list is empty, cut to `width`.
fn empty_note(text: &str, width: usize) -> Line {
    vec![Span::new(Style::Dim, fit(text, width))]
}

/// The peers online: username (yours marked `(you)` and highlighted),
/// address, role, number of files shared.
pub fn peers_table(peers: &[PeerInfo], width: usize) -> Vec<Line> {
    let rows = peers
        .iter()
        .map(|p| {
            let mut name = names::escape(&p.username);
            if p.is_you {
                name.push_str(" (you)");
            }
            let role = table::role_name(p.role, p.files);
            vec![name, p.addr.to_string(), role.to_string(), p.files.to_string()]
        })
        .collect();
    let styles: Vec<Style> = peers
        .iter()
        .map(|p| if p.is_you { Style::Accent } else { Style::Plain })
        .collect();
    let mut lines = styled(
        table_lines(&table::PEER_HEADERS, rows, &[3], 0, NAME_KEEP, width),
        &styles,
    );
    if peers.is_empty() {
        lines.push(empty_note("no peers online", width));
    }
    lines
}

/// One of your shared files, for [`shared_table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedRow {
    pub name: String,
    pub size: u64,
    pub chunks: usize,
    pub sha256: [u8; 32],
    /// Peers downloading from you now.
    pub leechers: usize,
    /// Bytes sent to peers so far.
    pub uploaded: u64,
}

/// Hex digits of a SHA-256 shown in the shared-files table.
pub const SHORT_HASH: usize = 12;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Your shared files: name, size, chunks, short SHA-256, peers downloading
/// now (highlighted when any), bytes uploaded. `shared_dir` is named in
/// the hint when there are none.
pub fn shared_table(rows: &[SharedRow], shared_dir: &str, width: usize) -> Vec<Line> {
    let cells = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut short = hex(&r.sha256);
            short.truncate(SHORT_HASH);
            vec![
                (i + 1).to_string(),
                names::escape(&r.name),
                table::human_bytes(r.size),
                r.chunks.to_string(),
                short,
                r.leechers.to_string(),
                table::human_bytes(r.uploaded),
            ]
        })
        .collect();
    let styles: Vec<Style> = rows
        .iter()
        .map(|r| {
            if r.leechers > 0 {
                Style::Accent
            } else {
                Style::Plain
            }
        })
        .collect();
    let headers = [
        "#",
        "NAME",
        "SIZE",
        "CHUNKS",
        "SHA-256",
        "DOWNLOADING",
        "UPLOADED",
    ];
    let mut lines = styled(
        table_lines(&headers, cells, &[0, 2, 3, 5, 6], 1, NAME_KEEP, width),
        &styles,
    );
    if rows.is_empty() {
        let hint = format!("no shared files (put some in {})", names::escape(shared_dir));
        lines.push(empty_note(&hint, width));
    }
    lines
}

/// A file on the network as the pick list shows it.
#[derive(Debug, Clone, Copy)]
pub struct FileRow<'a> {
    /// Its number in the table shown (what the user types to pick it).
    pub number: usize,
    pub file: &'a FileInfo,
    /// What you have to do with it: `sharing`, `downloading`, or nothing.
    pub yours: Option<&'static str>,
}

/// The files on the network for [`super::input::parse_pick`]: `#`, name,
/// size, seeders, partial holders, and whether you share or download it
/// (those rows are dimmed, like files no seeder holds whole). Two files of
/// one name are told apart by the start of their ids (`notes.txt
/// [ab12cd34]`), which `--get` also takes.
pub fn network_files_table(files: &[FileRow<'_>], width: usize) -> Vec<Line> {
    let rows = files
        .iter()
        .map(|r| {
            let mut name = names::escape(&r.file.name);
            if files.iter().filter(|o| o.file.name == r.file.name).count() > 1 {
                name.push_str(&format!(" [{}]", hex(&r.file.id[..4])));
            }
            vec![
                r.number.to_string(),
                name,
                table::human_bytes(r.file.size),
                r.file.seeders.to_string(),
                r.file.partial.to_string(),
                r.yours.unwrap_or_default().to_string(),
            ]
        })
        .collect();
    let styles: Vec<Style> = files
        .iter()
        .map(|r| {
            if r.file.seeders == 0 || r.yours.is_some() {
                Style::Dim
            } else {
                Style::Plain
            }
        })
        .collect();
    let headers = ["#", "NAME", "SIZE", "SEEDERS", "PARTIAL", "YOU"];
    let mut lines = styled(
        table_lines(&headers, rows, &[0, 2, 3, 4], 1, NAME_KEEP, width),
        &styles,
    );
    if files.is_empty() {
        lines.push(empty_note("no files on the network yet", width));
    }
    lines
}

/// One running download, for [`downloads_table`].
#[derive(Debug, Clone, PartialEq)]
pub struct DownloadRow {
    pub progress: Progress,
    pub state: DownloadState,
}

/// What a download is doing, in words: the engine's state, refined by
/// what its peers and rate say while it fetches.
pub fn state_text(r: &DownloadRow) -> &'static str {
    match r.state {
        DownloadState::Metadata => "fetching metadata",
        DownloadState::Rechecking => "re-checking .part",
        DownloadState::Verifying => "verifying",
        DownloadState::Fetching if r.progress.peers == 0 => "waiting for peers",
        DownloadState::Fetching if r.progress.stalled => "stalled",
        DownloadState::Fetching => "downloading",
    }
}

/// Narrower than this, the downloads view leaves out bytes, peers and rate
/// (the progress bars above the prompt have them) so the state still fits.
const DOWNLOADS_NARROW: usize = 70;

/// The running downloads: number (what `cancel N` takes), name, percent,
/// bytes, peers, recent rate and state (on a narrow terminal number, name,
/// percent and state). Names are cut with `…`, never dropped.
pub fn downloads_table(rows: &[DownloadRow], width: usize) -> Vec<Line> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let p = &r.progress;
            let (pct, bytes) = match p.total {
                Some(total) => (
                    format!("{}%", per_mille(p.done, total) / 10),
                    format!("{}/{}", table::human_bytes(p.done), table::human_bytes(total)),
                ),
                None => ("-".into(), "-".into()),
            };
            vec![
                (i + 1).to_string(),
                // Already escaped by the engine's view.
                p.name.clone(),
                pct,
                bytes,
                p.peers.to_string(),
                human_rate(p.rate_bps),
                state_text(r).to_string(),
            ]
        })
        .collect();
    let styles: Vec<Style> = rows
        .iter()
        .map(|r| match state_text(r) {
            "downloading" | "verifying" => Style::Plain,
            _ => Style::Dim,
        })
        .collect();
    let headers = ["#", "NAME", "DONE", "BYTES", "PEERS", "RATE", "STATE"];
    let table = if width < DOWNLOADS_NARROW {
        let keep = [0, 1, 2, 6];
        let pick = |row: &[String]| keep.iter().map(|&i| row[i].clone()).collect::<Vec<String>>();
        let headers: Vec<&str> = keep.iter().map(|&i| headers[i]).collect();
        let cells = cells.iter().map(|r| pick(r)).collect();
        // Chosen for a narrow screen already: the state stays.
        table_lines(&headers, cells, &[0, 2], 1, MIN_NAME_COLUMN, width)
    } else {
        table_lines(&headers, cells, &[0, 2, 3, 4, 5], 1, NAME_KEEP, width)
    };
    let mut lines = styled(table, &styles);
    if rows.is_empty() {
        lines.push(empty_note("no downloads running", width));
    }
    lines
}

/// One download's state, for [`progress_bar`].
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub name: String,
    pub done: u64,
    /// `None` until the metadata has arrived (the size is not known).
    pub total: Option<u64>,
    /// Recent transfer rate, bytes per second.
    pub rate_bps: f64,
    /// Nothing arrived for a while (the ETA says "stalled").
    pub stalled: bool,
    /// Peers in use.
    pub peers: usize,
}

/// Remaining time at the current rate: `None` when the rate is 0 (or not a
/// number) or the size unknown, `Some(0)` when done.
pub fn eta_secs(p: &Progress) -> Option<u64> {
    let left = p.total?.saturating_sub(p.done);
    if left == 0 {
        return Some(0);
    }
    if !(p.rate_bps.is_finite() && p.rate_bps > 0.0) {
        return None;
    }
    // `as` saturates, so an absurd ETA stays a big number.
    Some((left as f64 / p.rate_bps).ceil() as u64)
}

/// `mm:ss` under an hour, `h:mm:ss` up to 99 hours, `>99h` beyond, `--:--`
/// for unknown.
pub fn format_eta(secs: Option<u64>) -> String {
    match secs {
        None => "--:--".to_string(),
        Some(s) if s < 3600 => format!("{:02}:{:02}", s / 60, s % 60),
        Some(s) if s < 100 * 3600 => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        Some(_) => ">99h".to_string(),
    }
}

/// A rate for people: `0 B/s`, `1.5 KiB/s`, ... (negative or not-a-number
/// rates read as 0).
pub fn human_rate(bps: f64) -> String {
    let n = if bps.is_finite() && bps > 0.0 {
        bps as u64
    } else {
        0
    };
    format!("{}/s", table::human_bytes(n))
}

/// Fraction done in `0..=1000` (per mille), floored so 100% means
/// complete; an empty file counts as complete.
fn per_mille(done: u64, total: u64) -> u64 {
    if total == 0 {
        return 1000;
    }
    (u128::from(done.min(total)) * 1000 / u128::from(total)) as u64
}

/// Narrowest bar worth drawing, and widest.
const BAR_MIN: usize = 5;
const BAR_MAX: usize = 40;
/// Columns a long name keeps before the optional fields get room, and the
/// most it takes.
const NAME_MIN: usize = 16;
const NAME_MAX: usize = 40;

/// Widest the rate, peers and ETA fields of a progress bar can be
/// (`1023.9 KiB/s`, `99 peers`, `ETA 99:59:59`): each is padded to it, so
/// a bar keeps its length from one redraw to the next (a rate going from
/// `9.5 KiB/s` to `10.0 KiB/s` must not shorten it).
const RATE_COLS: usize = 12;
const PEERS_COLS: usize = 8;
const ETA_COLS: usize = 12;

/// Progress bars for several downloads, in at most `width` columns each,
/// that line up: every name gets the same column (the widest name's, up
/// to [`NAME_MAX`]) and the sizes field the widest one's, so the bars
/// start and end at the same place.
pub fn progress_bars(ps: &[Progress], width: usize) -> Vec<Line> {
    let name_col = ps
        .iter()
        .map(|p| text_width(&names::escape(&p.name)))
        .max()
        .unwrap_or(1)
        .clamp(1, NAME_MAX);
    let sizes_col = ps
        .iter()
        .filter_map(|p| p.total.map(|t| text_width(&sizes(t, t))))
        .max()
        .unwrap_or(0);
    ps.iter()
        .map(|p| bar_line(p, width, name_col, sizes_col))
        .collect()
}

/// `done/total` in the unit of `total` (`0.5/2.0 MiB`, `12/700 B`), the
/// done part as wide as the total's, so the field's width depends only on
/// the total.
fn sizes(done: u64, total: u64) -> String {
    let total_text = table::human_bytes(total);
    let (number, unit) = total_text.split_once(' ').unwrap_or((&total_text, ""));
    let done_text = if total < 1024 {
        done.to_string()
    } else {
        // The unit human_bytes chose for the total.
        let mut unit_bytes = 1024u64;
        while total / unit_bytes >= 1024 && unit_bytes < 1 << 50 {
            unit_bytes <<= 10;
        }
        format!("{:.1}", done as f64 / unit_bytes as f64)
    };
    format!("{done_text:>w$}/{number} {unit}", w = number.len())
}

/// One download's progress in at most `width` columns:
/// `name ███░░░ 50% 1.0/2.0 MiB 512.0 KiB/s 3 peers ETA 00:02`, or
/// `name fetching metadata 1 peer` before the size is known.
/// The name is never dropped, only shortened with `…` (to [`NAME_MIN`]
/// columns while other fields need the room); when room is short the bar
/// goes first, then the ETA, the peers, the rate and the sizes; the
/// percentage stays.
pub fn progress_bar(p: &Progress, width: usize) -> Line {
    progress_bars(std::slice::from_ref(p), width).remove(0)
}

/// [`progress_bar`] with the name in a column `name_col` wide and the
/// sizes in one `sizes_col` wide (padded when shorter): the layout depends
/// only on these widths, never on the numbers shown.
fn bar_line(p: &Progress, width: usize, name_col: usize, sizes_col: usize) -> Line {
    let escaped = names::escape(&p.name);
    let name_want = name_col;
    let name_min = name_want.min(NAME_MIN);
    let peers = table::count(p.peers, "peer");
    let Some(total) = p.total else {
        let name_want = text_width(&escaped).clamp(1, NAME_MAX);
        let mut line = vec![Span::plain(fit(&escaped, name_want)), Span::plain(" ")];
        line.push(Span::new(Style::Dim, "fetching metadata"));
        line.push(Span::plain(" "));
        line.push(Span::new(Style::Dim, peers));
        let fixed = text_width(" fetching metadata ") + text_width(&line[4].text);
        // Shorten the name first, so the state stays readable.
        let name_w = width
            .saturating_sub(fixed)
            .clamp(name_want.min(NAME_MIN / 2), name_want);
        line[0] = Span::plain(fit(&escaped, name_w));
        return fit_line(&line, width);
    };
    let pm = per_mille(p.done, total);
    let pct = format!("{:>3}%", pm / 10);
    let pct_w = text_width(&pct);
    if width < pct_w + 2 {
        return vec![Span::new(Style::Accent, fit(pct.trim_start(), width))];
    }
    let eta = if p.stalled && p.done < total {
        "stalled".to_string()
    } else {
        format!("ETA {}", format_eta(eta_secs(p)))
    };
    // Optional fields in the order they are kept, each padded to its
    // widest (sizes and rate to the right, like numbers); each costs its
    // width plus a separating space.
    let optional = [
        (Style::Plain, pad_left(sizes(p.done, total), sizes_col)),
        (Style::Plain, pad_left(human_rate(p.rate_bps), RATE_COLS)),
        (Style::Dim, pad_right(peers, PEERS_COLS)),
        (Style::Dim, pad_right(eta, ETA_COLS)),
    ];
    // What is left once the name has its minimum and the percentage its place.
    let name_min = name_min.min(width - pct_w - 1);
    let mut room = width - pct_w - name_min - 1;
    let mut kept = [false; 4];
    for (i, (_, text)) in optional.iter().enumerate() {
        let cost = text_width(text) + 1;
        if cost <= room {
            kept[i] = true;
            room -= cost;
        } else {
            // Keep the order of importance: once one is dropped, the less
            // important ones go too.
            break;
        }
    }
    let mut bar = 0;
    if kept.iter().all(|&k| k) && room > BAR_MIN {
        bar = BAR_MIN;
        room -= BAR_MIN + 1;
    }
    // The name grows to its full width first, then the bar.
    let grow = room.min(name_want - name_min);
    room -= grow;
    let name = pad_right(fit(&escaped, name_min + grow), name_min + grow);
    if bar > 0 {
        bar += room.min(BAR_MAX - BAR_MIN);
    }
    let mut line = vec![Span::plain(name), Span::plain(" ")];
    if bar > 0 {
        let filled = (pm as usize * bar) / 1000;
        line.push(Span::new(Style::Ok, "█".repeat(filled)));
        line.push(Span::new(Style::Dim, "░".repeat(bar - filled)));
        line.push(Span::plain(" "));
    }
    line.push(Span::new(Style::Accent, pct));
    for ((style, text), _) in optional.into_iter().zip(kept).filter(|(_, k)| *k) {
        line.push(Span::plain(" "));
        line.push(Span::new(style, text));
    }
    // Padding at the end of the line shows nothing.
    if let Some(last) = line.last_mut() {
        last.text = last.text.trim_end().to_string();
    }
    line.retain(|s| !s.text.is_empty());
    // Already within width by construction; the cut is a safety net.
    fit_line(&line, width)
}

/// `text` with spaces before it up to `cols` display columns.
fn pad_left(text: String, cols: usize) -> String {
    let pad = cols.saturating_sub(text_width(&text));
    format!("{}{text}", " ".repeat(pad))
}

/// `text` with spaces after it up to `cols` display columns.
fn pad_right(text: String, cols: usize) -> String {
    let pad = cols.saturating_sub(text_width(&text));
    format!("{text}{}", " ".repeat(pad))
}

/// A finished, verified download: a tick, the name, where it was saved
/// and its full SHA-256.
pub fn done_line(name: &str, saved_at: &str, sha256_hex: &str) -> Line {
    vec![
        Span::new(Style::Ok, "✔ "),
        Span::plain(names::escape(name)),
        Span::new(Style::Dim, " saved as "),
        Span::plain(names::escape(saved_at)),
        Span::new(Style::Dim, " sha256 "),
        Span::plain(names::escape(sha256_hex)),
    ]
}

/// An error for the user, in the error style. The message is escaped, so it
/// may quote network text.
pub fn error_line(msg: &str) -> Line {
    vec![Span::new(Style::Error, format!("✘ {}", names::escape(msg)))]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The picker's rows for `files`, numbered from 1, none ours.
    fn numbered(files: &[FileInfo]) -> Vec<FileRow<'_>> {
        let rows = files.iter().enumerate().map(|(i, file)| FileRow {
            number: i + 1,
            file,
            yours: None,
        });
        rows.collect()
    }
    use crate::client::frontend::ui::{line_width, plain_text, to_ansi};
    use crate::wire::tracker::Role;
    use std::net::SocketAddr;

    const HOSTILE: &str = "evil\u{1b}[2J\u{9b}31m\u{7}.bin";

    fn text(lines: &[Line]) -> String {
        lines.iter().map(|l| plain_text(l) + "\n").collect()
    }

    fn assert_safe(lines: &[Line]) {
        let t = text(lines);
        assert!(!t.contains('\u{1b}'), "raw ESC in {t:?}");
        assert!(!t.contains('\u{9b}'), "raw CSI in {t:?}");
        assert!(!t.contains('\u{7}'), "raw BEL in {t:?}");
        assert!(t.contains("evil"), "{t:?}");
        // With colour on, the only escapes are our own SGR codes.
        for l in lines {
            let a = to_ansi(l, true);
            let stripped = a
                .replace("\x1b[0m", "")
                .replace("\x1b[1;36m", "")
                .replace("\x1b[32m", "");
            let stripped = stripped
                .replace("\x1b[1;31m", "")
                .replace("\x1b[2m", "")
                .replace("\x1b[33m", "");
            assert!(!stripped.contains('\u{1b}'), "{a:?}");
        }
    }

    fn assert_within(lines: &[Line], width: usize) {
        for l in lines {
            assert!(line_width(l) <= width, "wider than {width}: {:?}", plain_text(l));
        }
    }

    fn peer(name: &str, port: u16, is_you: bool) -> PeerInfo {
        PeerInfo {
            username: name.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            role: if port.is_multiple_of(2) {
                Role::Seeder
            } else {
                Role::Leecher
            },
            files: u32::from(port % 7),
            is_you,
        }
    }

    fn progress(done: u64, total: u64, rate_bps: f64) -> Progress {
        Progress {
            name: "holiday-photos.zip".to_string(),
            done,
            total: Some(total),
            rate_bps,
            stalled: false,
            peers: 3,
        }
    }

    #[test]
    fn logo_fits_sixty_columns() {
        let l = logo();
        assert!(l.len() >= 3);
        assert_within(&l, 60);
        assert!(text(&l).contains("╔═╗"));
        for row in &l[..3] {
            assert_eq!(row[0].style, Style::Accent);
            assert_eq!(row[1].style, Style::Title);
            assert!(!plain_text(row).ends_with(' '));
        }
    }

    #[test]
    fn menu_has_the_five_items() {
        let m = menu(7);
        let t = text(&m);
        for item in [
            "1. View connected peers",
            "2. View shared files",
            "3. Download a file",
            "4. Change username",
            "5. Disconnect",
        ] {
            assert_eq!(t.matches(item).count(), 1, "{item} in {t}");
        }
        for icon in ["🔍", "📁", "📥", "✏️", "❌"] {
            assert!(t.contains(icon), "{icon}");
        }
        assert!(t.contains("Type a number, or help for all commands"));
        assert_eq!(menu(7), m, "same seed, same menu");
        assert!(EMOJIS.iter().any(|e| plain_text(&m[0]).starts_with(e)));
    }

    #[test]
    fn random_emojis_vary() {
        let mut rng = Rng::seeded(3);
        let picked: std::collections::HashSet<_> = (0..200).map(|_| random_emoji(&mut rng)).collect();
        assert!(picked.len() > EMOJIS.len() / 2, "{picked:?}");
        assert!(picked.iter().all(|e| EMOJIS.contains(e)));
    }

    #[test]
    fn help_lists_every_command() {
        let t = text(&help());
        for w in ["peers", "files", "download", "username", "quit", "help", "clear"] {
            assert!(t.contains(w), "{w}");
        }
    }

    #[test]
    fn peers_table_marks_you_and_escapes() {
        let peers = [
            peer("alice", 6000, false),
            peer(HOSTILE, 6001, false),
            peer("me", 6002, true),
        ];
        let lines = peers_table(&peers, 80);
        assert_safe(&lines);
        assert_within(&lines, 80);
        assert_eq!(lines.len(), 4);
        assert_eq!(
            plain_text(&lines[0]),
            "USERNAME                         ADDRESS         ROLE     FILES"
        );
        assert_eq!(lines[0][0].style, Style::Title);
        let me = plain_text(&lines[3]);
        assert!(me.starts_with("me (you)"), "{me}");
        assert!(me.contains("127.0.0.1:6002") && me.contains("seeder"));
        assert_eq!(lines[3][0].style, Style::Accent);
        assert_eq!(lines[1][0].style, Style::Plain);
        assert!(plain_text(&lines[2]).contains("leecher"));
    }

    #[test]
    fn tables_cut_long_names_not_columns() {
        let long = "x".repeat(300);
        let lines = peers_table(&[peer(&long, 6000, false)], 60);
        assert_within(&lines, 60);
        let row = plain_text(&lines[1]);
        assert!(row.contains('…') && row.contains("127.0.0.1:6000"), "{row}");
        for w in [0, 1, 10, 30] {
            assert_within(&peers_table(&[peer(&long, 6000, true)], w), w);
        }
    }

    #[test]
    fn narrow_tables_leave_out_columns_before_cutting_names() {
        // Issue 20, defect 4: at 40 columns names shrank to 7 characters
        // while count columns stayed, cut to `…`.
        let lines = peers_table(&[peer("alice", 40000, true), peer("bob", 40001, false)], 39);
        assert_within(&lines, 39);
        let t = text(&lines);
        assert!(t.contains("alice (you)") && t.contains("127.0.0.1:40000"), "{t}");
        assert!(!t.contains('…'), "{t}");
        let info = |name: &str, seeders| FileInfo {
            id: [seeders as u8; 32],
            name: name.into(),
            size: 1,
            seeders,
            partial: 0,
        };
        let files = [info("ubuntu-24.04.iso", 1), info("notes.txt", 2)];
        let rows = numbered(&files);
        let lines = network_files_table(&rows, 39);
        assert_within(&lines, 39);
        let t = text(&lines);
        assert!(t.contains("ubuntu-24.04.iso") && !t.contains('…'), "{t}");
        assert!(plain_text(&lines[1]).starts_with("1  ubuntu"), "{t}");
        // A longer name keeps NAME_KEEP columns before it is cut.
        let long = [info("ubuntu-24.04-desktop-amd64.iso", 1)];
        let row = [FileRow {
            number: 1,
            file: &long[0],
            yours: None,
        }];
        let t = text(&network_files_table(&row, 39));
        assert!(t.contains("ubuntu-24.04-deskto"), "{t}");
    }

    #[test]
    fn empty_tables_say_so() {
        assert!(text(&peers_table(&[], 80)).contains("no peers online"));
        let hint = text(&shared_table(&[], "/srv/share", 80));
        assert!(
            hint.contains("no shared files (put some in /srv/share)"),
            "{hint}"
        );
        assert!(text(&network_files_table(&[], 80)).contains("no files"));
        assert_within(&network_files_table(&[], 5), 5);
    }

    #[test]
    fn shared_table_columns() {
        let mut sha256 = [0u8; 32];
        sha256[0] = 0xab;
        sha256[5] = 0x01;
        sha256[6] = 0xff;
        let rows = [
            SharedRow {
                name: "ñandú.txt".into(),
                size: 1536,
                chunks: 1,
                sha256,
                leechers: 2,
                uploaded: 3 << 20,
            },
            SharedRow {
                name: HOSTILE.into(),
                size: 0,
                chunks: 0,
                sha256: [0; 32],
                leechers: 0,
                uploaded: 0,
            },
        ];
        let lines = shared_table(&rows, "shared", 120);
        assert_safe(&lines);
        assert_within(&lines, 120);
        let t = text(&lines);
        assert!(t.starts_with("#  NAME"), "{t}");
        assert!(plain_text(&lines[2]).starts_with("2 "), "numbered");
        for h in ["SIZE", "CHUNKS", "SHA-256", "DOWNLOADING", "UPLOADED"] {
            assert!(plain_text(&lines[0]).contains(h), "{h}");
        }
        let first = plain_text(&lines[1]);
        assert!(first.contains("ñandú.txt") && first.contains("1.5 KiB") && first.contains("3.0 MiB"));
        assert!(
            first.contains(" ab0000000001 ") && !first.contains("ab0000000001f"),
            "{first}"
        );
        assert_eq!(lines[1][0].style, Style::Accent, "being downloaded");
        assert_eq!(lines[2][0].style, Style::Plain);
    }

    #[test]
    fn downloads_table_says_each_state() {
        let row = |name: &str, total, done, peers, stalled, state| DownloadRow {
            progress: Progress {
                name: name.into(),
                done,
                total,
                rate_bps: if stalled { 0.0 } else { 2048.0 },
                stalled,
                peers,
            },
            state,
        };
        use DownloadState::*;
        let rows = [
            row("meta.bin", None, 0, 1, false, Metadata),
            row("going.bin", Some(4 << 20), 1 << 20, 2, false, Fetching),
            row("stuck.bin", Some(100), 50, 1, true, Fetching),
            row("alone.bin", Some(100), 50, 0, true, Fetching),
            row("old.bin", Some(100), 0, 0, false, Rechecking),
            row("end.bin", Some(100), 100, 1, false, Verifying),
            row(&"long name ".repeat(20), Some(100), 0, 1, false, Fetching),
        ];
        let lines = downloads_table(&rows, 120);
        assert_within(&lines, 120);
        let t = text(&lines);
        assert!(t.starts_with("#  NAME"), "{t}");
        let line = |i: usize| plain_text(&lines[i]);
        assert!(line(1).starts_with("1  meta.bin") && line(1).ends_with("fetching metadata"));
        assert!(
            line(2).contains(" 25% ") && line(2).contains("1.0 MiB/4.0 MiB"),
            "{}",
            line(2)
        );
        assert!(line(2).contains("2.0 KiB/s") && line(2).ends_with("downloading"));
        assert!(line(3).ends_with("stalled") && line(4).ends_with("waiting for peers"));
        assert!(line(5).ends_with("re-checking .part") && line(6).ends_with("verifying"));
        // Narrow: the name is cut with an ellipsis, the state still shows.
        let narrow = downloads_table(&rows, 39);
        assert_within(&narrow, 39);
        assert_eq!(plain_text(&narrow[0]), "#  NAME         DONE  STATE");
        let long = plain_text(&narrow[7]);
        assert!(long.starts_with("7  long name") && long.contains('…'), "{long}");
        assert!(plain_text(&narrow[4]).ends_with("waiting for peers"));
        assert!(text(&downloads_table(&[], 80)).contains("no downloads running"));
    }

    #[test]
    fn network_files_are_numbered_and_escaped() {
        let f = |name: &str, seeders, partial| FileInfo {
            id: [0; 32],
            name: name.to_string(),
            size: 20 << 20,
            seeders,
            partial,
        };
        let files = [f("a.iso", 2, 1), f(HOSTILE, 1, 0), f("partial-only", 0, 3)];
        let rows = numbered(&files);
        let lines = network_files_table(&rows, 80);
        assert_safe(&lines);
        assert_within(&lines, 80);
        assert_eq!(
            plain_text(&lines[0]),
            "#  NAME                                 SIZE  SEEDERS  PARTIAL  YOU"
        );
        assert!(plain_text(&lines[1]).starts_with("1  a.iso"));
        assert!(plain_text(&lines[1]).contains("20.0 MiB"));
        assert!(plain_text(&lines[3]).starts_with("3  partial-only"));
        assert_eq!(lines[3][0].style, Style::Dim, "no seeder");
        assert_eq!(lines[1][0].style, Style::Plain);
    }

    #[test]
    fn eta_and_rate_formats() {
        assert_eq!(format_eta(None), "--:--");
        assert_eq!(format_eta(Some(0)), "00:00");
        assert_eq!(format_eta(Some(83)), "01:23");
        assert_eq!(format_eta(Some(3599)), "59:59");
        assert_eq!(format_eta(Some(3600)), "1:00:00");
        assert_eq!(format_eta(Some(99 * 3600 + 3599)), "99:59:59");
        assert_eq!(format_eta(Some(u64::MAX)), ">99h");
        assert_eq!(human_rate(0.0), "0 B/s");
        assert_eq!(human_rate(-5.0), "0 B/s");
        assert_eq!(human_rate(f64::NAN), "0 B/s");
        assert_eq!(human_rate(1536.0), "1.5 KiB/s");
        assert_eq!(human_rate(f64::INFINITY), "0 B/s");
        assert_eq!(eta_secs(&progress(0, 1000, 100.0)), Some(10));
        assert_eq!(eta_secs(&progress(0, 1000, 0.0)), None);
        assert_eq!(eta_secs(&progress(1000, 1000, 0.0)), Some(0));
        assert_eq!(eta_secs(&progress(0, 1001, 100.0)), Some(11));
    }

    #[test]
    fn progress_bar_widths() {
        let cases = [
            progress(0, 2 << 20, 0.0),
            progress(1 << 20, 2 << 20, 512.0 * 1024.0),
            progress(2 << 20, 2 << 20, 1e9),
            progress(0, 0, 0.0),
            progress(u64::MAX / 2, u64::MAX, f64::MAX),
        ];
        for p in &cases {
            for width in 0..=130 {
                let line = progress_bar(p, width);
                assert!(line_width(&line) <= width, "{width}: {:?}", plain_text(&line));
            }
        }
        assert!(progress_bar(&cases[0], 0).iter().all(|s| s.text.is_empty()));
        assert_eq!(plain_text(&progress_bar(&cases[1], 3)), "50%");
    }

    #[test]
    fn progress_bar_percentages() {
        let half = progress(1 << 20, 2 << 20, 512.0 * 1024.0);
        let t = plain_text(&progress_bar(&half, 120));
        assert!(t.starts_with("holiday-photos.zip "), "{t}");
        assert!(
            t.contains(" 50% 1.0/2.0 MiB  512.0 KiB/s 3 peers  ETA 00:02"),
            "{t}"
        );
        let filled = t.matches('█').count();
        let empty = t.matches('░').count();
        assert_eq!(filled, empty, "{t}");
        assert!(filled > 0);

        let zero = plain_text(&progress_bar(&progress(0, 2 << 20, 0.0), 80));
        assert!(zero.contains("  0%") && zero.contains("ETA --:--"), "{zero}");
        assert_eq!(zero.matches('█').count(), 0);
        assert!(zero.contains('░'));

        let full = plain_text(&progress_bar(&progress(2 << 20, 2 << 20, 0.0), 80));
        assert!(full.contains("100%") && full.contains("ETA 00:00"), "{full}");
        assert_eq!(full.matches('░').count(), 0);
        assert!(full.contains('█'));

        let empty_file = plain_text(&progress_bar(&progress(0, 0, 0.0), 80));
        assert!(empty_file.contains("100%"), "{empty_file}");

        // 99.9% is not 100%.
        let almost = plain_text(&progress_bar(&progress(999, 1000, 1.0), 80));
        assert!(almost.contains(" 99%"), "{almost}");
    }

    #[test]
    fn progress_bar_keeps_the_name_and_drops_the_bar_first() {
        let p = progress(1 << 20, 2 << 20, 512.0 * 1024.0);
        let w120 = plain_text(&progress_bar(&p, 120));
        assert!(
            w120.starts_with("holiday-photos.zip █") && w120.contains("ETA 00:02"),
            "{w120}"
        );
        // 40 columns: the whole name, the percentage and the sizes; no bar.
        let w40 = plain_text(&progress_bar(&p, 40));
        assert_eq!(w40, "holiday-photos.zip  50% 1.0/2.0 MiB");
        // Narrower: the name is shortened, never dropped.
        let w20 = plain_text(&progress_bar(&p, 20));
        assert_eq!(w20, "holiday-photos…  50%");
        let w10 = plain_text(&progress_bar(&p, 10));
        assert!(w10.contains('…') && w10.ends_with("50%"), "{w10}");
        let w60 = plain_text(&progress_bar(&p, 60));
        assert_eq!(w60, "holiday-photos.zip  50% 1.0/2.0 MiB  512.0 KiB/s 3 peers");
        // A long name is cut with an ellipsis at any width.
        let mut long = p.clone();
        long.name = "a-very-long-name-for-a-holiday-photo-archive.zip".into();
        for w in [40, 60, 80, 120] {
            let t = plain_text(&progress_bar(&long, w));
            assert!(t.starts_with("a-very") && t.contains('…'), "{w}: {t}");
        }
    }

    /// Where the bar ends: the column after its last cell.
    fn bar_end(line: &Line) -> usize {
        let t = plain_text(line);
        let cut = t.rfind(['█', '░']).expect("a bar");
        text_width(&t[..cut]) + 1
    }

    #[test]
    fn progress_bars_keep_their_length_and_line_up() {
        // Issue 20, defect 5: a bar was 14 cells, then 9, as the rate and
        // ETA changed; the bars of one --get did not line up.
        let frames = [
            progress(0, 2 << 20, 0.0),
            progress(1 << 20, 2 << 20, 9.5 * 1024.0),
            progress(1 << 20, 2 << 20, 10.0 * 1024.0 * 1024.0),
            progress(2 << 20, 2 << 20, 1.0),
        ];
        for width in [90, 100, 120] {
            let ends: Vec<usize> = frames.iter().map(|p| bar_end(&progress_bar(p, width))).collect();
            assert!(ends.iter().all(|&e| e == ends[0]), "{width}: {ends:?}");
        }
        let mut short = progress(3 << 10, 900 << 10, 1e6);
        short.name = "a.bin".into();
        let mut stalled = progress(5 << 30, 7 << 30, 0.0);
        stalled.stalled = true;
        stalled.peers = 12;
        let all = [progress(1 << 20, 2 << 20, 512.0), short, stalled];
        for width in [95, 120] {
            let lines = progress_bars(&all, width);
            let ends: Vec<usize> = lines.iter().map(bar_end).collect();
            assert!(ends.iter().all(|&e| e == ends[0]), "{width}: {ends:?}");
            let pcts: Vec<usize> = lines.iter().map(|l| plain_text(l).find('%').unwrap()).collect();
            assert!(pcts.iter().all(|&p| p == pcts[0]), "{width}: {pcts:?}");
            assert!(lines.iter().all(|l| line_width(l) <= width));
        }
        assert_eq!(sizes(300, 700), "300/700 B");
        assert_eq!(sizes(5, 700), "  5/700 B");
        assert_eq!(sizes(1 << 20, 2 << 20), "1.0/2.0 MiB");
        assert_eq!(sizes(0, 200 << 20), "  0.0/200.0 MiB");
    }

    #[test]
    fn progress_bar_before_the_metadata_says_so() {
        let mut p = progress(0, 0, 0.0);
        p.total = None;
        p.peers = 1;
        let t = plain_text(&progress_bar(&p, 120));
        assert_eq!(t, "holiday-photos.zip fetching metadata 1 peer");
        let t = plain_text(&progress_bar(&p, 40));
        assert_eq!(t, "holiday-photos… fetching metadata 1 peer");
        let t = plain_text(&progress_bar(&p, 30));
        assert!(t.starts_with("holiday") && t.contains("fetching"), "{t}");
        for w in 0..50 {
            assert!(line_width(&progress_bar(&p, w)) <= w);
        }
        assert_eq!(eta_secs(&p), None);
    }

    #[test]
    fn progress_bar_says_stalled() {
        let mut p = progress(1 << 20, 2 << 20, 0.0);
        p.stalled = true;
        let t = plain_text(&progress_bar(&p, 120));
        assert!(t.contains(" 0 B/s 3 peers  stalled"), "{t}");
        assert!(!t.contains("ETA"), "{t}");
    }

    #[test]
    fn progress_bar_aligns_wide_names_by_display_width() {
        let mut p = progress(1 << 20, 2 << 20, 1024.0);
        p.name = "日本語の写真🎉.zip".into();
        for w in [0, 10, 20, 40, 80, 120] {
            let line = progress_bar(&p, w);
            assert!(line_width(&line) <= w, "{w}: {:?}", plain_text(&line));
        }
        let t = plain_text(&progress_bar(&p, 120));
        assert!(t.starts_with("日本語の写真🎉.zip █"), "{t}");
        let t = plain_text(&progress_bar(&p, 40));
        assert!(t.starts_with("日本語") && t.contains("50%"), "{t}");
    }

    #[test]
    fn progress_bar_shortens_and_escapes_the_name() {
        let mut p = progress(1, 2, 1.0);
        p.name = format!("{HOSTILE}{}", "y".repeat(200));
        for width in [20, 40, 80, 120] {
            let line = progress_bar(&p, width);
            assert_safe_line(&line);
            assert!(line_width(&line) <= width);
        }
        let t = plain_text(&progress_bar(&p, 120));
        assert!(t.starts_with("evil\\u{1b}") && t.contains('…'), "{t}");
    }

    fn assert_safe_line(line: &Line) {
        let t = plain_text(line);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{9b}'), "{t:?}");
    }

    #[test]
    fn done_and_error_lines() {
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let d = done_line(HOSTILE, "downloads/x", sha);
        assert_safe_line(&d);
        let t = plain_text(&d);
        assert!(t.starts_with("✔ evil") && t.ends_with(sha), "{t}");
        assert!(t.contains(" saved as downloads/x sha256 "), "{t}");
        assert_eq!(d[0].style, Style::Ok);
        let e = error_line(&format!("peer {HOSTILE} refused"));
        assert_safe_line(&e);
        assert_eq!(e[0].style, Style::Error);
        assert!(plain_text(&e).contains("refused"));
    }
}
