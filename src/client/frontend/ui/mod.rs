//! The pure parts of the interactive terminal client: styled text, the line
//! editor, typewriter pacing and the screens.
//!
//! Role: everything here is a function of its arguments (key bytes, widths,
//! times in milliseconds, a seeded [`crate::rand::Rng`]); nothing reads the
//! clock, the terminal or a socket, so all of it is tested without a terminal.
//! The event loop feeds stdin bytes to [`input::LineEditor`], paces output
//! with [`typewriter::Typewriter`] through its poll timeout, and writes what
//! [`to_ansi`] returns.
//!
//! Invariants: styled text is a [`Line`] of [`Span`]s; [`to_ansi`] is the
//! only place in this module tree that produces colour escape codes; network
//! text (usernames, file names) reaches a `Span` only through
//! [`crate::names::escape`]; widths are display columns ([`width`]: an emoji
//! or a CJK character takes two, a combining mark none) and text wider than
//! its room is cut with `…` by [`fit`].
//!
//! - [`input`]: a line editor over raw key bytes, and menu/pick/yes-no parsing.
//! - [`typewriter`]: when each character of queued text is due.
//! - [`rate`]: a download's recent transfer rate.
//! - [`render`]: logo, menu, tables, progress bar, status lines.

pub mod input;
pub mod rate;
pub mod render;
pub mod typewriter;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// How a piece of text is shown. Kept abstract so that the screens do not
/// know about escape codes; [`to_ansi`] maps each style to one SGR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// Default colour.
    Plain,
    /// Headings and the logo: bold cyan.
    Title,
    /// Success: green.
    Ok,
    /// Failure: bold red.
    Error,
    /// Secondary text, hints: dim.
    Dim,
    /// Highlights (numbers, your own row): yellow.
    Accent,
}

impl Style {
    /// The SGR escape that switches to this style, or `None` for plain text.
    fn sgr(self) -> Option<&'static str> {
        match self {
            Style::Plain => None,
            Style::Title => Some("\x1b[1;36m"),
            Style::Ok => Some("\x1b[32m"),
            Style::Error => Some("\x1b[1;31m"),
            Style::Dim => Some("\x1b[2m"),
            Style::Accent => Some("\x1b[33m"),
        }
    }
}

/// The SGR escape that ends a styled span.
const RESET: &str = "\x1b[0m";

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub style: Style,
    pub text: String,
}

impl Span {
    /// A span of `text` in `style`. The caller escapes network text first.
    pub fn new(style: Style, text: impl Into<String>) -> Span {
        Span {
            style,
            text: text.into(),
        }
    }

    /// A plain span.
    pub fn plain(text: impl Into<String>) -> Span {
        Span::new(Style::Plain, text)
    }
}

/// One line of styled text, without its line ending.
pub type Line = Vec<Span>;

/// The width of `text` in terminal columns (escaped text has no control
/// characters, whose width would be undefined).
pub fn width(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// The width of a styled line in terminal columns.
pub fn line_width(line: &[Span]) -> usize {
    line.iter().map(|s| width(&s.text)).sum()
}

/// The text of a line without styles.
pub fn plain_text(line: &[Span]) -> String {
    line.iter().map(|s| s.text.as_str()).collect()
}

/// The longest start of `text` that is at most `max` columns wide, and its
/// width. Never splits a character; a wide character that would straddle
/// the limit is left out whole.
pub fn take_width(text: &str, max: usize) -> (&str, usize) {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        let w = UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > max {
            return (&text[..i], used);
        }
        used += w;
    }
    (text, used)
}

/// `text` cut to at most `max` columns: if it is wider, as much of its
/// start as fits in `max - 1` columns followed by `…` (just `…` for `max`
/// 1, nothing for 0).
pub fn fit(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = take_width(text, max - 1).0.to_string();
    out.push('…');
    out
}

/// A styled line cut to at most `max` columns, keeping styles; the cut is
/// marked with `…` as in [`fit`].
pub fn fit_line(line: &[Span], max: usize) -> Line {
    if line_width(line) <= max {
        return line.to_vec();
    }
    let mut out = Line::new();
    let mut room = max;
    for span in line {
        let w = width(&span.text);
        if w < room {
            out.push(span.clone());
            room -= w;
        } else {
            // This span holds the cut (w >= room and the line is too wide,
            // so something follows even when w == room): keep what fits in
            // room - 1 columns and mark the cut.
            if room > 0 {
                let mut text = take_width(&span.text, room - 1).0.to_string();
                text.push('…');
                out.push(Span::new(span.style, text));
            }
            break;
        }
    }
    out
}

/// The end of `text` that fits in `max` columns (what shows of a long
/// input line: the part being typed).
pub fn tail_width(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices().rev() {
        let w = UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w > max {
            return &text[i + c.len_utf8()..];
        }
        used += w;
    }
    text
}

/// A styled line as terminal text: with `colour`, each non-plain span is
/// wrapped in its SGR code and a reset; without, just the text. No line
/// ending is added.
pub fn to_ansi(line: &[Span], colour: bool) -> String {
    let mut out = String::new();
    for span in line {
        match span.style.sgr() {
            Some(code) if colour && !span.text.is_empty() => {
                out.push_str(code);
                out.push_str(&span.text);
                out.push_str(RESET);
            }
            _ => out.push_str(&span.text),
        }
    }
    out
}

/// Whether `c` is an emoji or part of one (the variation selector and the
/// joiner that build emoji sequences). The plain dingbats ✔ and ✘ are
/// text, not emoji, and are kept.
fn is_emoji(c: char) -> bool {
    matches!(c,
        '\u{1F000}'..='\u{1FAFF}' | '\u{2600}'..='\u{26FF}' | '\u{FE0F}' | '\u{200D}')
        || (('\u{2700}'..='\u{27BF}').contains(&c) && c != '✔' && c != '✘')
}

/// `text` without emoji, for plain output (no colour: not a terminal, or
/// `NO_COLOR`): an emoji goes with the space that separated it from the
/// rest, so `"  🔍 1. Peers"` becomes `"  1. Peers"` and `"Hi! 🎉"`
/// becomes `"Hi!"`.
pub fn strip_emoji(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !is_emoji(c) {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // An icon before its label: drop the space after it when one
            // is already there (or the line starts here).
            Some(' ') if out.is_empty() || out.ends_with([' ', '\n']) => {
                chars.next();
            }
            // An emoji ending a line: drop the space before it.
            None | Some('\n') | Some('\r') if out.ends_with(' ') => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `text` with the marks of done and error lines in words, for output
/// that is not a terminal: `✔ x` becomes `done: x`, `✘ x` `error: x`.
pub fn plain_marks(text: &str) -> String {
    text.replace("✔ ", "done: ").replace("✘ ", "error: ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_ansi_plain_has_no_escapes() {
        let line = vec![
            Span::new(Style::Title, "Py"),
            Span::plain("Torrent"),
            Span::new(Style::Error, "!"),
        ];
        assert_eq!(to_ansi(&line, false), "PyTorrent!");
    }

    #[test]
    fn to_ansi_colour_wraps_styled_spans() {
        let line = vec![
            Span::new(Style::Title, "Py"),
            Span::plain("Torrent"),
            Span::new(Style::Ok, "ok"),
            Span::new(Style::Dim, ""),
        ];
        assert_eq!(
            to_ansi(&line, true),
            "\x1b[1;36mPy\x1b[0mTorrent\x1b[32mok\x1b[0m"
        );
    }

    #[test]
    fn fit_cuts_by_chars_with_ellipsis() {
        assert_eq!(fit("héllo", 5), "héllo");
        assert_eq!(fit("héllo", 4), "hél…");
        assert_eq!(fit("héllo", 1), "…");
        assert_eq!(fit("héllo", 0), "");
        assert_eq!(fit("", 0), "");
    }

    #[test]
    fn plain_text_has_no_emoji() {
        assert_eq!(
            strip_emoji("  🔍 1. View connected peers"),
            "  1. View connected peers"
        );
        assert_eq!(strip_emoji("  ✏️ 4. Change username"), "  4. Change username");
        assert_eq!(strip_emoji("🔥 Main menu"), "Main menu");
        assert_eq!(strip_emoji("Hi, bob! 🎉"), "Hi, bob!");
        assert_eq!(strip_emoji("Now sharing x ⚡\n"), "Now sharing x\n");
        assert_eq!(strip_emoji("✔ a.bin sha256 00"), "✔ a.bin sha256 00");
        assert_eq!(strip_emoji("✘ no ❌"), "✘ no");
        assert_eq!(strip_emoji("日本語 ñ"), "日本語 ñ");
    }

    #[test]
    fn widths_are_display_columns() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("ñandú"), 5);
        assert_eq!(width("🚀"), 2);
        assert_eq!(width("日本語"), 6);
        assert_eq!(width("e\u{301}"), 1, "a combining accent takes no column");
        // Wide characters are never split: one that would straddle the
        // limit is left out.
        assert_eq!(fit("日本語.txt", 6), "日本…");
        assert_eq!(fit("日本語.txt", 5), "日本…");
        assert_eq!(fit("日本語.txt", 4), "日…");
        assert_eq!(fit("🚀🚀🚀", 2), "…");
        for max in 0..12 {
            assert!(width(&fit("🚀日本x語🎉", max)) <= max, "{max}");
        }
        assert_eq!(tail_width("ab日本", 4), "日本");
        assert_eq!(tail_width("ab日本", 3), "本");
        assert_eq!(tail_width("ab日本", 9), "ab日本");
        assert_eq!(tail_width("ab", 0), "");
    }

    #[test]
    fn fit_line_keeps_styles_and_width() {
        let line = vec![Span::new(Style::Title, "abc"), Span::plain("défg")];
        for max in 0..10 {
            let cut = fit_line(&line, max);
            assert!(line_width(&cut) <= max, "max {max}: {cut:?}");
            if max < 7 && max > 0 {
                assert!(plain_text(&cut).ends_with('…'), "max {max}: {cut:?}");
            }
        }
        assert_eq!(fit_line(&line, 3), vec![Span::new(Style::Title, "ab…")]);
        assert_eq!(
            fit_line(&line, 5),
            vec![Span::new(Style::Title, "abc"), Span::plain("d…")]
        );
        assert_eq!(fit_line(&line, 7), line);
    }
}
