//! Keyboard input as a pure state machine: raw key bytes in (the terminal is
//! in raw mode the whole session), events out; and the parsers for what the
//! user types at each prompt.
//!
//! The editor knows the keys people expect: left/right arrows, Home/End
//! (and Ctrl-A/Ctrl-E), Backspace and Delete at the cursor, Ctrl-U, and
//! a history of entered lines on up/down.
//!
//! Invariants: [`LineEditor`] never holds more than its maximum number of
//! characters, and never a control character (so its text is safe to echo);
//! the cursor is always on a character boundary of the text; a UTF-8
//! character split across reads is joined, an invalid one dropped; escape
//! sequences are acted on (the keys above) or swallowed whole, never
//! inserted; every state is bounded (at most 3 pending UTF-8 bytes, escape
//! sequences cut after [`MAX_ESCAPE`] bytes, [`MAX_HISTORY`] lines kept).

use std::collections::VecDeque;

/// Default longest line, in characters.
pub const MAX_LINE_CHARS: usize = 256;
/// Longest escape sequence we wait for the end of; a longer one is dropped
/// and the bytes after it are read as keys again.
pub const MAX_ESCAPE: usize = 32;
/// Entered lines kept for up/down.
pub const MAX_HISTORY: usize = 100;

const CTRL_A: u8 = 0x01;
const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const CTRL_E: u8 = 0x05;
const BACKSPACE: u8 = 0x08;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
const DEL: u8 = 0x7f;

/// What a batch of key bytes meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// Enter (`\r` or `\n`; `\r\n` counts once): the finished line. The
    /// editor is empty again.
    Line(String),
    /// Ctrl-C. Reported in any-key mode too, which it does not end.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    /// In any-key mode: the first key of any kind (its bytes are not
    /// inserted). The mode ends.
    AnyKey,
    /// The edited line changed: redraw the prompt. Consecutive changes in
    /// one batch are reported once.
    Changed,
}

/// Where the editor is inside a multi-byte key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    /// Not in an escape sequence.
    None,
    /// After ESC.
    Start,
    /// After `ESC [`: parameters until a final byte 0x40..=0x7e; the count
    /// of bytes seen bounds it, and the first parameter's value (`3` of
    /// `ESC [ 3 ~`, Delete) names the key.
    Csi(usize, u16),
    /// After `ESC O`: one more byte.
    Ss3,
}

/// A one-line editor over raw key bytes.
#[derive(Debug, Clone)]
pub struct LineEditor {
    text: String,
    chars: usize,
    max_chars: usize,
    /// Bytes of an unfinished UTF-8 character (at most 3 held).
    utf8: Vec<u8>,
    /// Its expected length.
    utf8_len: usize,
    /// Drop the UTF-8 character when it completes (it was an any-key press).
    utf8_discard: bool,
    esc: Esc,
    /// The escape sequence being read is a key to act on (false for the
    /// key that answered "press any key").
    esc_acts: bool,
    /// Byte offset of the cursor in `text`.
    cursor: usize,
    /// Entered lines, oldest first, and the one shown by up/down (with
    /// the line being typed before browsing began).
    history: VecDeque<String>,
    browsing: Option<(usize, String)>,
    /// The previous byte was `\r`, so a `\n` right after it is the same Enter.
    after_cr: bool,
    any_key: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        LineEditor::new()
    }
}

impl LineEditor {
    /// An empty editor for lines of up to [`MAX_LINE_CHARS`] characters.
    pub fn new() -> LineEditor {
        LineEditor::with_max(MAX_LINE_CHARS)
    }

    /// An empty editor for lines of up to `max_chars` characters; further
    /// typing is ignored.
    pub fn with_max(max_chars: usize) -> LineEditor {
        LineEditor {
            text: String::new(),
            chars: 0,
            max_chars,
            utf8: Vec::with_capacity(4),
            utf8_len: 0,
            utf8_discard: false,
            esc: Esc::None,
            esc_acts: false,
            cursor: 0,
            history: VecDeque::new(),
            browsing: None,
            after_cr: false,
            any_key: false,
        }
    }

    /// The line being edited.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where the cursor is: a byte offset into [`LineEditor::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Empties the line (e.g. when a prompt is abandoned).
    pub fn clear(&mut self) {
        self.set_text(String::new());
    }

    /// Replaces the line, cursor at its end.
    fn set_text(&mut self, text: String) {
        self.chars = text.chars().count();
        self.cursor = text.len();
        self.text = text;
    }

    /// In any-key mode the next key press yields [`InputEvent::AnyKey`]
    /// instead of editing the line ("press any key to continue").
    pub fn set_any_key(&mut self, on: bool) {
        self.any_key = on;
    }

    /// Whether any-key mode is on.
    pub fn any_key(&self) -> bool {
        self.any_key
    }

    /// Reads key bytes (any split of the input gives the same events).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<InputEvent> {
        let mut events = Vec::new();
        for &b in bytes {
            self.byte(b, &mut events);
        }
        events
    }

    fn byte(&mut self, b: u8, events: &mut Vec<InputEvent>) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        // Inside a UTF-8 character: continuation bytes complete it; any
        // other byte drops it and is read on its own.
        if !self.utf8.is_empty() {
            if (0x80..=0xbf).contains(&b) {
                self.utf8.push(b);
                if self.utf8.len() == self.utf8_len {
                    self.finish_utf8(events);
                }
                return;
            }
            self.utf8.clear();
        }
        match self.esc {
            Esc::None => {}
            Esc::Start => {
                self.esc = match b {
                    b'[' => Esc::Csi(0, 0),
                    b'O' => Esc::Ss3,
                    // A lone Escape key followed by another key (or Alt+key):
                    // read that key normally.
                    _ => Esc::None,
                };
                if self.esc != Esc::None {
                    return;
                }
            }
            Esc::Csi(n, param) => {
                match b {
                    // Final byte: the sequence is over.
                    0x40..=0x7e => {
                        self.esc = Esc::None;
                        if self.esc_acts {
                            self.escape_key(b, param, events);
                        }
                    }
                    // Parameter digits (a modifier after `;` only makes
                    // the number unknown, so such a key is ignored).
                    b'0'..=b'9' if n + 1 < MAX_ESCAPE => {
                        let param = param.saturating_mul(10).saturating_add(u16::from(b - b'0'));
                        self.esc = Esc::Csi(n + 1, param);
                    }
                    // Other parameter and intermediate bytes.
                    0x20..=0x3f if n + 1 < MAX_ESCAPE => self.esc = Esc::Csi(n + 1, param),
                    // Not a CSI byte, or far too long: give up on it and
                    // read this byte as a key.
                    _ => {
                        self.esc = Esc::None;
                        self.key(b, after_cr, events);
                    }
                }
                return;
            }
            Esc::Ss3 => {
                self.esc = Esc::None;
                if self.esc_acts {
                    self.escape_key(b, 0, events);
                }
                return;
            }
        }
        self.key(b, after_cr, events);
    }

    /// The first byte of a key.
    fn key(&mut self, b: u8, after_cr: bool, events: &mut Vec<InputEvent>) {
        if b == CTRL_C {
            events.push(InputEvent::Interrupt);
            return;
        }
        if b == b'\n' && after_cr {
            return;
        }
        if self.any_key {
            self.any_key = false;
            events.push(InputEvent::AnyKey);
            // Swallow the rest of this key, if it has more bytes.
            match b {
                ESC => {
                    self.esc = Esc::Start;
                    self.esc_acts = false;
                }
                b'\r' => self.after_cr = true,
                _ => {
                    if self.start_utf8(b) {
                        self.utf8_discard = true;
                    }
                }
            }
            return;
        }
        match b {
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                let line = std::mem::take(&mut self.text);
                self.clear();
                self.browsing = None;
                if !line.trim().is_empty() && self.history.back() != Some(&line) {
                    if self.history.len() == MAX_HISTORY {
                        self.history.pop_front();
                    }
                    self.history.push_back(line.clone());
                }
                events.push(InputEvent::Line(line));
            }
            CTRL_A => self.move_to(0, events),
            CTRL_E => self.move_to(self.text.len(), events),
            CTRL_D => {
                if self.text.is_empty() {
                    events.push(InputEvent::Eof);
                }
            }
            DEL | BACKSPACE => {
                if let Some(c) = self.text[..self.cursor].chars().next_back() {
                    self.cursor -= c.len_utf8();
                    self.text.remove(self.cursor);
                    self.chars -= 1;
                    changed(events);
                }
            }
            CTRL_U => {
                if !self.text.is_empty() {
                    self.clear();
                    changed(events);
                }
            }
            ESC => {
                self.esc = Esc::Start;
                self.esc_acts = true;
            }
            0x20..=0x7e => self.insert(b as char, events),
            _ => {
                if self.start_utf8(b) {
                    self.utf8_discard = false;
                }
                // Other control bytes and stray UTF-8 bytes are ignored.
            }
        }
    }

    /// Starts a multi-byte UTF-8 character if `b` is a lead byte.
    fn start_utf8(&mut self, b: u8) -> bool {
        self.utf8_len = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return false,
        };
        self.utf8.clear();
        self.utf8.push(b);
        true
    }

    fn finish_utf8(&mut self, events: &mut Vec<InputEvent>) {
        // from_utf8 refuses overlong forms, surrogates and values past
        // U+10FFFF that the lead-byte ranges alone let through.
        let c = std::str::from_utf8(&self.utf8)
            .ok()
            .and_then(|s| s.chars().next());
        self.utf8.clear();
        if let Some(c) = c {
            if !self.utf8_discard {
                self.insert(c, events);
            }
        }
    }

    fn insert(&mut self, c: char, events: &mut Vec<InputEvent>) {
        // C1 controls (U+0080..U+009F) arrive as UTF-8 too.
        if c.is_control() || self.chars >= self.max_chars {
            return;
        }
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
        self.chars += 1;
        changed(events);
    }

    /// The key an escape sequence names, by its final byte (and first
    /// parameter): arrows, Home, End, Delete; others are ignored.
    fn escape_key(&mut self, last: u8, param: u16, events: &mut Vec<InputEvent>) {
        match (last, param) {
            (b'D', _) => {
                let left = self.text[..self.cursor]
                    .chars()
                    .next_back()
                    .map_or(0, char::len_utf8);
                self.move_to(self.cursor - left, events);
            }
            (b'C', _) => {
                let right = self.text[self.cursor..].chars().next().map_or(0, char::len_utf8);
                self.move_to(self.cursor + right, events);
            }
            (b'H', _) | (b'~', 1 | 7) => self.move_to(0, events),
            (b'F', _) | (b'~', 4 | 8) => self.move_to(self.text.len(), events),
            (b'~', 3) if self.cursor < self.text.len() => {
                self.text.remove(self.cursor);
                self.chars -= 1;
                changed(events);
            }
            (b'A', _) => self.browse(true, events),
            (b'B', _) => self.browse(false, events),
            _ => {}
        }
    }

    fn move_to(&mut self, cursor: usize, events: &mut Vec<InputEvent>) {
        if cursor != self.cursor {
            self.cursor = cursor;
            changed(events);
        }
    }

    /// Up (`older`) or down through the history; down past the newest
    /// line gives back what was being typed.
    fn browse(&mut self, older: bool, events: &mut Vec<InputEvent>) {
        let len = self.history.len();
        let next = match (&self.browsing, older) {
            (None, true) if len > 0 => Some(len - 1),
            (Some((i, _)), true) => Some(i.saturating_sub(1)),
            (Some((i, _)), false) if i + 1 < len => Some(i + 1),
            (Some(_), false) => None,
            (None, _) => return,
        };
        let text = match next {
            Some(i) => {
                let draft = match self.browsing.take() {
                    Some((_, draft)) => draft,
                    None => self.text.clone(),
                };
                self.browsing = Some((i, draft));
                self.history[i].clone()
            }
            None => self.browsing.take().map(|(_, draft)| draft).unwrap_or_default(),
        };
        self.set_text(text);
        changed(events);
    }
}

fn changed(events: &mut Vec<InputEvent>) {
    if events.last() != Some(&InputEvent::Changed) {
        events.push(InputEvent::Changed);
    }
}

/// A main-menu choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuChoice {
    Peers,
    SharedFiles,
    Download,
    ChangeUsername,
    Disconnect,
    Help,
    Clear,
    /// Print the menu again.
    Menu,
    /// The running downloads.
    Downloads,
    /// Cancel a download: its number in the downloads view, or its name
    /// (empty: show the downloads).
    Cancel(String),
    /// Stop sharing a file: its number in the shared files view, or its
    /// name (empty: show the shared files).
    Unshare(String),
    /// `get NAME` / `download NAME`: download the file of that name (or
    /// search for it), as if picked from the list.
    Get(String),
    /// List the shared folder again now.
    Rescan,
    /// An empty line: redraw, nothing else.
    Empty,
    /// Anything else, trimmed (typed by the user; still print it escaped).
    Unknown(String),
}

/// The main-menu choice for a typed line: `1`..`5` or a word (`peers`,
/// `files`/`shared`, `download`/`get`, `username`/`name`,
/// `disconnect`/`quit`/`exit`, `help`/`?`, `clear`, `downloads`/`d`,
/// `rescan`), or `cancel` / `unshare` / `get` / `download` followed by what
/// to act on, ignoring
/// case (of the command word) and surrounding spaces.
pub fn parse_menu_choice(line: &str) -> MenuChoice {
    let t = line.trim();
    let (word, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    match word.to_lowercase().as_str() {
        "cancel" => return MenuChoice::Cancel(rest.trim().to_string()),
        "unshare" => return MenuChoice::Unshare(rest.trim().to_string()),
        "get" | "download" if !rest.trim().is_empty() => return MenuChoice::Get(rest.trim().to_string()),
        _ => {}
    }
    match t.to_lowercase().as_str() {
        "downloads" | "d" => MenuChoice::Downloads,
        "rescan" => MenuChoice::Rescan,
        "" => MenuChoice::Empty,
        "1" | "peers" => MenuChoice::Peers,
        "2" | "files" | "shared" => MenuChoice::SharedFiles,
        "3" | "download" | "get" => MenuChoice::Download,
        "4" | "username" | "name" => MenuChoice::ChangeUsername,
        "5" | "disconnect" | "quit" | "exit" => MenuChoice::Disconnect,
        "help" | "?" => MenuChoice::Help,
        "clear" => MenuChoice::Clear,
        "menu" | "m" => MenuChoice::Menu,
        _ => MenuChoice::Unknown(t.to_string()),
    }
}

/// The answer to "which file?" over a numbered list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The chosen entry (0-based).
    Index(usize),
    /// An empty line: go back to the menu.
    Back,
    /// No entry has that number or name.
    NotFound,
    /// Several entries have that name (0-based indices): ask for a number.
    Ambiguous(Vec<usize>),
}

/// Picks an entry of `names` (listed as 1..=len): by number, else by exact
/// name, else by a name equal ignoring case. A name that several entries
/// share is [`Pick::Ambiguous`].
pub fn parse_pick(line: &str, names: &[&str]) -> Pick {
    let t = line.trim();
    if t.is_empty() {
        return Pick::Back;
    }
    if let Ok(n) = t.parse::<usize>() {
        if (1..=names.len()).contains(&n) {
            return Pick::Index(n - 1);
        }
    }
    // The untrimmed line first: a name may begin or end with spaces.
    for wanted in [line, t] {
        let exact: Vec<usize> = (0..names.len()).filter(|&i| names[i] == wanted).collect();
        if let Some(pick) = one_of(exact) {
            return pick;
        }
    }
    let lower = t.to_lowercase();
    let folded: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].trim().to_lowercase() == lower)
        .collect();
    one_of(folded).unwrap_or(Pick::NotFound)
}

fn one_of(found: Vec<usize>) -> Option<Pick> {
    match found.len() {
        0 => None,
        1 => Some(Pick::Index(found[0])),
        _ => Some(Pick::Ambiguous(found)),
    }
}

/// `y`/`yes` -> `Some(true)`, `n`/`no` -> `Some(false)` (any case, spaces
/// around ignored); anything else -> `None` (ask again).
pub fn parse_yes_no(line: &str) -> Option<bool> {
    match line.trim().to_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::InputEvent::*;
    use super::*;

    fn feed_all(ed: &mut LineEditor, parts: &[&[u8]]) -> Vec<InputEvent> {
        parts.iter().flat_map(|p| ed.feed(p)).collect()
    }

    #[test]
    fn typing_and_enter() {
        let mut ed = LineEditor::new();
        assert_eq!(ed.feed(b"ab"), vec![Changed]);
        assert_eq!(ed.text(), "ab");
        assert_eq!(ed.feed(b"c\r"), vec![Changed, Line("abc".into())]);
        assert_eq!(ed.text(), "");
        assert_eq!(
            ed.feed(b"x\ny\r\nz"),
            vec![Changed, Line("x".into()), Changed, Line("y".into()), Changed]
        );
        // \r then \n in the next read is still one Enter.
        assert_eq!(ed.feed(b"\r"), vec![Line("z".into())]);
        assert_eq!(ed.feed(b"\n"), vec![]);
        assert_eq!(ed.feed(b"\n"), vec![Line(String::new())]);
    }

    #[test]
    fn utf8_split_across_feeds() {
        let text = "ñé🚀";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut ed = LineEditor::new();
            feed_all(&mut ed, &[&bytes[..split], &bytes[split..]]);
            assert_eq!(ed.text(), text, "split at {split}");
        }
        // One byte at a time.
        let mut ed = LineEditor::new();
        for b in bytes {
            ed.feed(std::slice::from_ref(b));
        }
        assert_eq!(ed.text(), text);
    }

    #[test]
    fn invalid_utf8_is_dropped() {
        let mut ed = LineEditor::new();
        // Stray continuation, truncated sequence then ASCII, overlong '/',
        // surrogate, C1 control U+009B.
        ed.feed(b"\x80a\xe2\x82b\xc0\xafc\xed\xa0\x80d\xc2\x9be");
        assert_eq!(ed.text(), "abcde");
    }

    #[test]
    fn backspace_removes_one_char() {
        let mut ed = LineEditor::new();
        ed.feed("añ🚀".as_bytes());
        assert_eq!(ed.feed(&[DEL]), vec![Changed]);
        assert_eq!(ed.text(), "añ");
        assert_eq!(ed.feed(&[BACKSPACE]), vec![Changed]);
        assert_eq!(ed.text(), "a");
        ed.feed(&[DEL]);
        assert_eq!(ed.feed(&[DEL]), vec![], "nothing to erase");
        assert_eq!(ed.text(), "");
    }

    #[test]
    fn ctrl_u_clears() {
        let mut ed = LineEditor::new();
        ed.feed(b"hello");
        assert_eq!(ed.feed(&[CTRL_U]), vec![Changed]);
        assert_eq!(ed.text(), "");
        assert_eq!(ed.feed(&[CTRL_U]), vec![]);
    }

    #[test]
    fn escape_sequences_edit_or_are_ignored() {
        let mut ed = LineEditor::new();
        // Left (SS3 form, split), then typing inserts at the cursor; F5
        // with modifiers is ignored; Delete removes under the cursor.
        feed_all(&mut ed, &[b"ac\x1bO", b"Db\x1b[15;2~"]);
        assert_eq!((ed.text(), ed.cursor()), ("abc", 2));
        ed.feed(b"\x1b[3~");
        assert_eq!(ed.text(), "ab");
        // Home, End (both forms), right at the end does nothing.
        ed.feed(b"\x1b[Hx\x1b[Fy\x1b[1~z\x1b[4~\x1b[C!");
        assert_eq!(ed.text(), "zxaby!");
        // Ctrl-A / Ctrl-E; Backspace deletes before the cursor.
        ed.feed(&[CTRL_A, b'[', CTRL_E, b']', 0x1b, b'[', b'D', DEL]);
        assert_eq!(ed.text(), "[zxaby]");
        assert_eq!(ed.cursor(), "[zxaby".len());
        // Multi-byte characters move as one.
        let mut ed = LineEditor::new();
        ed.feed("añ🚀".as_bytes());
        ed.feed(b"\x1b[D\x1b[D-");
        assert_eq!(ed.text(), "a-ñ🚀");
        // A lone Escape key then a letter: the letter is typed.
        ed.feed(b"\x1b[Fx\x1bq");
        assert_eq!(ed.text(), "a-ñ🚀xq");
        // A runaway CSI is dropped after MAX_ESCAPE bytes.
        let mut ed = LineEditor::new();
        let mut long = b"\x1b[".to_vec();
        long.extend(std::iter::repeat_n(b'1', 100));
        ed.feed(&long);
        let kept = 100 - (MAX_ESCAPE - 1);
        assert_eq!(ed.text(), "1".repeat(kept));
    }

    #[test]
    fn history_on_up_and_down() {
        let mut ed = LineEditor::new();
        ed.feed(b"one\rtwo\rtwo\r  \rdraft");
        ed.feed(b"\x1b[A");
        assert_eq!(ed.text(), "two", "repeats and blank lines are not kept");
        ed.feed(b"\x1b[A");
        assert_eq!(ed.text(), "one");
        ed.feed(b"\x1b[A");
        assert_eq!(ed.text(), "one", "the oldest stays");
        ed.feed(b"\x1b[B\x1b[B");
        assert_eq!(ed.text(), "draft", "back to what was typed");
        ed.feed(b"\x1b[B");
        assert_eq!(ed.text(), "draft");
        // Bounded.
        let mut ed = LineEditor::new();
        for i in 0..(MAX_HISTORY + 50) {
            ed.feed(format!("{i}\r").as_bytes());
        }
        assert_eq!(ed.history.len(), MAX_HISTORY);
        assert_eq!(ed.history[0], "50");
    }

    #[test]
    fn other_control_bytes_are_ignored() {
        let mut ed = LineEditor::new();
        assert_eq!(ed.feed(b"\x00\x01\x07\t\x0c\x1f"), vec![]);
        assert_eq!(ed.text(), "");
    }

    #[test]
    fn ctrl_c_and_ctrl_d() {
        let mut ed = LineEditor::new();
        assert_eq!(ed.feed(&[CTRL_D]), vec![Eof]);
        ed.feed(b"ab");
        assert_eq!(ed.feed(&[CTRL_D]), vec![], "not on a non-empty line");
        assert_eq!(ed.feed(&[CTRL_C]), vec![Interrupt]);
        assert_eq!(ed.text(), "ab", "the caller decides what Ctrl-C clears");
    }

    #[test]
    fn any_key_mode() {
        let mut ed = LineEditor::new();
        ed.feed(b"ab");
        ed.set_any_key(true);
        assert_eq!(ed.feed(b"x"), vec![AnyKey]);
        assert!(!ed.any_key());
        assert_eq!(ed.text(), "ab", "the key is not inserted");
        // An arrow key is one key: nothing of it leaks into the line.
        ed.set_any_key(true);
        assert_eq!(ed.feed(b"\x1b[A"), vec![AnyKey]);
        // A multi-byte character, split, is one key.
        ed.set_any_key(true);
        assert_eq!(feed_all(&mut ed, &[b"\xf0\x9f", b"\x9a\x80"]), vec![AnyKey]);
        // Enter as \r\n is one key.
        ed.set_any_key(true);
        assert_eq!(ed.feed(b"\r\n"), vec![AnyKey]);
        assert_eq!(ed.text(), "ab");
        // Ctrl-C interrupts and keeps waiting.
        ed.set_any_key(true);
        assert_eq!(ed.feed(&[CTRL_C]), vec![Interrupt]);
        assert!(ed.any_key());
        assert_eq!(ed.feed(b"yz"), vec![AnyKey, Changed]);
        assert_eq!(ed.text(), "abz");
    }

    #[test]
    fn length_is_bounded() {
        let mut ed = LineEditor::with_max(3);
        ed.feed("abcdé".as_bytes());
        assert_eq!(ed.text(), "abc");
        ed.feed(&[DEL]);
        ed.feed("éf".as_bytes());
        assert_eq!(ed.text(), "abé");
        let mut ed = LineEditor::new();
        ed.feed(&"🚀".repeat(1000).into_bytes());
        assert_eq!(ed.text().chars().count(), MAX_LINE_CHARS);
    }

    #[test]
    fn menu_choices() {
        use MenuChoice::*;
        assert_eq!(parse_menu_choice("1"), Peers);
        assert_eq!(parse_menu_choice("  2 "), SharedFiles);
        assert_eq!(parse_menu_choice("3"), Download);
        assert_eq!(parse_menu_choice("4"), ChangeUsername);
        assert_eq!(parse_menu_choice("5"), Disconnect);
        assert_eq!(parse_menu_choice("Peers"), Peers);
        assert_eq!(parse_menu_choice(" downloads "), Downloads);
        assert_eq!(parse_menu_choice("D"), Downloads);
        assert_eq!(parse_menu_choice("rescan"), Rescan);
        assert_eq!(parse_menu_choice("cancel"), Cancel(String::new()));
        assert_eq!(parse_menu_choice("Cancel  2 "), Cancel("2".into()));
        assert_eq!(
            parse_menu_choice("cancel My File.bin"),
            Cancel("My File.bin".into())
        );
        assert_eq!(parse_menu_choice("unshare\t3"), Unshare("3".into()));
        assert_eq!(parse_menu_choice("cancelled"), Unknown("cancelled".into()));
        assert_eq!(parse_menu_choice("files"), SharedFiles);
        assert_eq!(parse_menu_choice("shared"), SharedFiles);
        assert_eq!(parse_menu_choice("GET"), Download);
        assert_eq!(parse_menu_choice("download"), Download);
        assert_eq!(parse_menu_choice("get  My File.bin "), Get("My File.bin".into()));
        assert_eq!(parse_menu_choice("Download 2"), Get("2".into()));
        assert_eq!(parse_menu_choice("name"), ChangeUsername);
        assert_eq!(parse_menu_choice("username"), ChangeUsername);
        assert_eq!(parse_menu_choice("quit"), Disconnect);
        assert_eq!(parse_menu_choice("exit "), Disconnect);
        assert_eq!(parse_menu_choice("disconnect"), Disconnect);
        assert_eq!(parse_menu_choice("help"), Help);
        assert_eq!(parse_menu_choice("clear"), Clear);
        assert_eq!(parse_menu_choice("Menu"), Menu);
        assert_eq!(parse_menu_choice(""), Empty);
        assert_eq!(parse_menu_choice("   "), Empty);
        assert_eq!(parse_menu_choice("6"), Unknown("6".into()));
        assert_eq!(parse_menu_choice(" 1 2 "), Unknown("1 2".into()));
        assert_eq!(parse_menu_choice("peer"), Unknown("peer".into()));
    }

    #[test]
    fn picks() {
        let names = ["song.mp3", "Notes.txt", "notes.TXT", "3", "a b"];
        assert_eq!(parse_pick("1", &names), Pick::Index(0));
        assert_eq!(parse_pick(" 5 ", &names), Pick::Index(4));
        assert_eq!(parse_pick("0", &names), Pick::NotFound);
        assert_eq!(parse_pick("6", &names), Pick::NotFound);
        assert_eq!(parse_pick("-1", &names), Pick::NotFound);
        assert_eq!(parse_pick("song.mp3", &names), Pick::Index(0));
        assert_eq!(parse_pick("SONG.MP3", &names), Pick::Index(0));
        assert_eq!(parse_pick("Notes.txt", &names), Pick::Index(1));
        assert_eq!(parse_pick("notes.txt", &names), Pick::Ambiguous(vec![1, 2]));
        assert_eq!(parse_pick("a b", &names), Pick::Index(4));
        assert_eq!(parse_pick("nope", &names), Pick::NotFound);
        assert_eq!(parse_pick("", &names), Pick::Back);
        assert_eq!(parse_pick("  ", &names), Pick::Back);
        assert_eq!(parse_pick("1", &[]), Pick::NotFound);
        // A name that is a number out of range is still found by name.
        assert_eq!(parse_pick("7", &["x", "7"]), Pick::Index(1));
        // The same name twice (different contents): ask for a number.
        assert_eq!(parse_pick("x", &["x", "x"]), Pick::Ambiguous(vec![0, 1]));
    }

    #[test]
    fn yes_no() {
        assert_eq!(parse_yes_no("y"), Some(true));
        assert_eq!(parse_yes_no(" YES "), Some(true));
        assert_eq!(parse_yes_no("n"), Some(false));
        assert_eq!(parse_yes_no("No"), Some(false));
        assert_eq!(parse_yes_no(""), None);
        assert_eq!(parse_yes_no("yep"), None);
    }
}
