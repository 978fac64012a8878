//! The one layer that owns the terminal: raw mode, non-blocking stdin,
//! and every byte written to stdout by the interactive client.
//!
//! The screen is a scrolling log of lines with a *live region* under it:
//! one progress bar per download and the prompt with what the user is
//! typing. Printing a line first erases the live region, writes the line,
//! then draws the region again, so progress bars update in place and never
//! garble the user's typing. Everything for one update goes out in one
//! write. The region's lines are drawn narrower than the terminal; if the
//! terminal shrinks, a terminal that re-wraps them (tmux, VTE, kitty, ...)
//! shows each on several rows, so the erase counts rows at the width of
//! the moment ([`rows_on_screen`]) and leaves no stale fragments.
//!
//! Invariants: raw mode and stdin's file flags are restored on every way
//! out ([`Terminal::restore`], also run on drop, so a panic restores them
//! too). Without a terminal (a pipe, a script) there is no raw mode, no
//! colour, no live region: lines are plain text and each new prompt is
//! printed once on a line of its own. Without colour (no terminal, or
//! `NO_COLOR`) the text is plain: no escape codes and no emoji.

use super::ui::{line_width, plain_marks, strip_emoji, to_ansi, width, Line, Span};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use termion::raw::{IntoRawMode, RawTerminal};

/// The terminal, in raw mode when it is one.
pub struct Terminal {
    raw: Option<RawTerminal<io::Stdout>>,
    /// stdin's file status flags before we made it non-blocking.
    stdin_flags: Option<libc::c_int>,
    colour: bool,
    /// Live region, raw mode: stdin and stdout are a terminal.
    fancy: bool,
    /// Stdout is a terminal; when not (a pipe, a file), lines are plain
    /// text for scripts: no ✔/✘ marks (words instead), no logo.
    tty: bool,
    /// Display width of each line of the live region on screen (empty:
    /// none drawn).
    live: Vec<usize>,
    /// The typewriter left the cursor inside a line.
    mid_line: bool,
    /// Plain mode: the last prompt printed.
    last_prompt: String,
}

impl Terminal {
    /// Takes the terminal: raw mode if stdin and stdout are a terminal,
    /// colour unless `NO_COLOR` is set or stdout is not a terminal, and
    /// stdin non-blocking (it is read from the poll loop).
    pub fn open() -> Terminal {
        let stdout_tty = termion::is_tty(&io::stdout());
        let stdin_tty = termion::is_tty(&io::stdin());
        let colour = stdout_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let raw = if stdout_tty && stdin_tty {
            io::stdout().into_raw_mode().ok()
        } else {
            None
        };
        let fd = io::stdin().as_raw_fd();
        // SAFETY: fcntl on our own stdin; the old flags are restored later.
        let stdin_flags = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            (flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0).then_some(flags)
        };
        Terminal {
            fancy: raw.is_some(),
            tty: stdout_tty,
            raw,
            stdin_flags,
            colour,
            live: Vec::new(),
            mid_line: false,
            last_prompt: String::new(),
        }
    }

    /// Whether colours (and, with them, effects) are on.
    pub fn colour(&self) -> bool {
        self.colour
    }

    /// Whether stdout is a terminal (else output is for scripts).
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// Whether there is a live region (raw mode on a terminal).
    pub fn fancy(&self) -> bool {
        self.fancy
    }

    /// Columns available (80 when unknown).
    pub fn width(&self) -> usize {
        match termion::terminal_size() {
            Ok((w, _)) if w > 0 => usize::from(w),
            _ => 80,
        }
    }

    pub fn clear_screen(&mut self) {
        if self.fancy {
            self.live.clear();
            self.mid_line = false;
            self.emit(format!("{}{}", termion::clear::All, termion::cursor::Goto(1, 1)));
        }
    }

    /// Prints whole lines above the live region.
    pub fn print_lines(&mut self, lines: &[Line]) {
        let mut out = self.erase_live();
        if self.mid_line {
            out.push_str(self.newline());
            self.mid_line = false;
        }
        for line in lines {
            out.push_str(&self.text(line));
            out.push_str(self.newline());
        }
        self.emit(out);
    }

    /// Writes typewriter output where the cursor is (the live region is
    /// erased first); `\n` in a span ends the line.
    pub fn type_spans(&mut self, spans: &[Span]) {
        if spans.is_empty() {
            return;
        }
        let mut out = self.erase_live();
        let text = self.text(spans);
        if self.fancy {
            out.push_str(&text.replace('\n', "\r\n"));
        } else {
            out.push_str(&text);
        }
        self.mid_line = !text.ends_with('\n');
        self.emit(out);
    }

    /// Draws the live region: `rows` (progress bars), then `prompt` and
    /// the user's `input`, leaving the cursor `back` columns before the
    /// input's end (where the user is editing). In plain mode only a
    /// prompt that changed is printed.
    pub fn draw_live(&mut self, rows: &[Line], prompt: &Line, input: &str, back: usize) {
        if !self.fancy {
            let text = self.text(prompt);
            if !text.is_empty() && text != self.last_prompt {
                self.last_prompt = text.clone();
                self.emit(format!("{text}\n"));
            }
            return;
        }
        let mut out = self.erase_live();
        if self.mid_line {
            out.push_str("\r\n");
            self.mid_line = false;
        }
        for row in rows {
            let text = self.text(row);
            out.push_str(&text);
            out.push_str("\r\n");
            self.live.push(self.shown_width(row));
        }
        out.push_str(&self.text(prompt));
        out.push_str(input);
        if back > 0 {
            let back = u16::try_from(back).unwrap_or(u16::MAX);
            out.push_str(&termion::cursor::Left(back).to_string());
        }
        self.live.push(self.shown_width(prompt) + width(input));
        self.emit(out);
    }

    /// Erases the live region (before typing, or when leaving).
    pub fn hide_live(&mut self) {
        let out = self.erase_live();
        self.emit(out);
    }

    /// Leaves raw mode and gives stdin its flags back. Safe to call twice.
    pub fn restore(&mut self) {
        self.hide_live();
        if let Some(raw) = self.raw.take() {
            let _ = raw.suspend_raw_mode();
        }
        if let Some(flags) = self.stdin_flags.take() {
            // SAFETY: restores the flags read in `open`.
            unsafe {
                libc::fcntl(io::stdin().as_raw_fd(), libc::F_SETFL, flags);
            }
        }
    }

    /// A line as written: coloured, or plain text without emoji (and,
    /// when stdout is not a terminal, with words for the ✔/✘ marks).
    fn text(&self, line: &[Span]) -> String {
        if self.colour {
            to_ansi(line, true)
        } else if self.tty {
            strip_emoji(&to_ansi(line, false))
        } else {
            plain_marks(&strip_emoji(&to_ansi(line, false)))
        }
    }

    /// Columns a line takes on screen as [`Terminal::text`] writes it.
    fn shown_width(&self, line: &[Span]) -> usize {
        if self.colour {
            line_width(line)
        } else {
            width(&self.text(line))
        }
    }

    fn newline(&self) -> &'static str {
        if self.fancy {
            "\r\n"
        } else {
            "\n"
        }
    }

    /// The escape codes that erase the live region (empty if none).
    fn erase_live(&mut self) -> String {
        let mut out = String::new();
        if self.fancy && !self.live.is_empty() {
            let rows = rows_on_screen(&self.live, self.width());
            if rows > 1 {
                let up = u16::try_from(rows - 1).unwrap_or(u16::MAX);
                out.push_str(&termion::cursor::Up(up).to_string());
            }
            out.push('\r');
            out.push_str(termion::clear::AfterCursor.as_ref());
            self.live.clear();
        }
        out
    }

    fn emit(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        let mut out = io::stdout().lock();
        // A terminal that went away cannot be written to; there is nobody
        // left to tell.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Columns of the terminal on stderr, if stderr is one (the headless
/// progress lines go there, whatever stdout is).
pub fn stderr_columns() -> Option<usize> {
    if !termion::is_tty(&io::stderr()) {
        return None;
    }
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    Some(if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    })
}

/// Rows that lines of these display widths take on a terminal `cols`
/// wide that re-wraps them: each at least one, more if it is now wider than
/// the terminal (after a shrink).
pub fn rows_on_screen(widths: &[usize], cols: usize) -> usize {
    let cols = cols.max(1);
    widths.iter().map(|&w| w.div_ceil(cols).max(1)).sum()
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_after_a_resize() {
        // Drawn at 120 columns (lines of at most 119), seen at 120: one
        // row each.
        assert_eq!(rows_on_screen(&[119, 60, 11], 120), 3);
        // Shrunk to 40: the long bar now takes three rows, the prompt one.
        assert_eq!(rows_on_screen(&[119, 11], 40), 4);
        assert_eq!(rows_on_screen(&[80, 40, 0], 40), 4);
        assert_eq!(rows_on_screen(&[], 40), 0);
        assert_eq!(rows_on_screen(&[5], 0), 5, "a zero width counts as one column");
    }
}
