//! The typewriter effect as pacing arithmetic: which characters of queued
//! text are due at a given time. The event loop asks [`Typewriter::next_deadline`]
//! for its poll timeout and prints what [`Typewriter::take_due`] returns; no
//! `sleep`, no clock read here (times are milliseconds on the caller's
//! monotonic clock).
//!
//! Invariants: characters come out in order, whole (a UTF-8 character is
//! never split) and with their styles; the pace restarts whenever the queue
//! runs dry, so idle time never turns into a burst; the queue holds at most
//! [`MAX_QUEUED`] bytes of text, past which everything queued is due at once
//! (a long listing is not worth a long wait).

use super::{Line, Span};
use std::collections::VecDeque;
use std::time::Duration;

/// Default pace, in characters per second.
pub const DEFAULT_RATE: u32 = 400;
/// Most text (bytes) paced at once; beyond it the queue is flushed whole.
pub const MAX_QUEUED: usize = 64 * 1024;

/// How many characters are due `elapsed` after the start of a run at
/// `rate_per_sec` characters per second (rounded down).
pub fn chars_due(elapsed: Duration, rate_per_sec: u32) -> usize {
    let due = elapsed.as_nanos() * u128::from(rate_per_sec) / 1_000_000_000;
    usize::try_from(due).unwrap_or(usize::MAX)
}

/// Queued styled text, released a few characters at a time.
#[derive(Debug, Clone)]
pub struct Typewriter {
    /// Characters per second; 0 means no effect (everything due at once).
    rate: u32,
    queue: VecDeque<Span>,
    queued_bytes: usize,
    /// The queue overflowed [`MAX_QUEUED`]: release everything.
    rush: bool,
    /// When the current run started (the first `take_due` after the queue
    /// was empty), and how many characters it has released.
    start_ms: Option<u64>,
    released: usize,
}

impl Default for Typewriter {
    fn default() -> Self {
        Typewriter::new(DEFAULT_RATE)
    }
}

impl Typewriter {
    /// An idle typewriter at `rate` characters per second (0: no effect).
    pub fn new(rate: u32) -> Typewriter {
        Typewriter {
            rate,
            queue: VecDeque::new(),
            queued_bytes: 0,
            rush: false,
            start_ms: None,
            released: 0,
        }
    }

    /// Changes the pace (0 turns the effect off) from the next character.
    pub fn set_rate(&mut self, rate: u32) {
        self.rate = rate;
        self.start_ms = None;
        self.released = 0;
    }

    /// Queues `line` followed by a line break (a plain `"\n"` span, which
    /// the writer turns into `"\r\n"` in raw mode).
    pub fn push(&mut self, line: Line) {
        self.push_spans(line);
        self.push_span(Span::plain("\n"));
    }

    /// Queues styled text without a line break (a prompt, say).
    pub fn push_spans(&mut self, spans: Line) {
        for span in spans {
            self.push_span(span);
        }
    }

    fn push_span(&mut self, span: Span) {
        if span.text.is_empty() {
            return;
        }
        self.queued_bytes += span.text.len();
        if self.queued_bytes > MAX_QUEUED {
            self.rush = true;
        }
        // Merge with the last span of the same style, so output comes in
        // fewer, longer pieces.
        match self.queue.back_mut() {
            Some(last) if last.style == span.style => last.text.push_str(&span.text),
            _ => self.queue.push_back(span),
        }
    }

    /// True when nothing is queued.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// The text due by `now_ms`, in order. The first call after the queue
    /// was empty starts the run at `now_ms` (so it returns nothing unless
    /// the effect is off or the queue overflowed).
    pub fn take_due(&mut self, now_ms: u64) -> Vec<Span> {
        if self.queue.is_empty() {
            return Vec::new();
        }
        if self.rush || self.rate == 0 {
            return self.finish_all();
        }
        let start = *self.start_ms.get_or_insert(now_ms);
        let elapsed = Duration::from_millis(now_ms.saturating_sub(start));
        let due = chars_due(elapsed, self.rate).saturating_sub(self.released);
        let out = self.take_chars(due);
        if self.queue.is_empty() {
            self.reset();
        }
        out
    }

    /// When the next character is due: `None` when idle, `now_ms` when it
    /// is due already (or the run has not started).
    pub fn next_deadline(&self, now_ms: u64) -> Option<u64> {
        if self.queue.is_empty() {
            return None;
        }
        let Some(start) = self.start_ms else {
            return Some(now_ms);
        };
        if self.rush || self.rate == 0 {
            return Some(now_ms);
        }
        // The smallest whole millisecond m with m * rate / 1000 >= released + 1.
        let rate = u64::from(self.rate);
        let next = self.released as u64 + 1;
        let at = start.saturating_add((next.saturating_mul(1000)).div_ceil(rate));
        Some(at.max(now_ms))
    }

    /// Everything queued, at once (effects off, or a key pressed to skip).
    pub fn finish_all(&mut self) -> Vec<Span> {
        let out = self.queue.drain(..).collect();
        self.reset();
        out
    }

    fn reset(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.rush = false;
        self.start_ms = None;
        self.released = 0;
    }

    /// Takes up to `n` characters off the front of the queue.
    fn take_chars(&mut self, mut n: usize) -> Vec<Span> {
        let mut out = Vec::new();
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            // Byte offset just after the n-th character, or the whole span.
            match front.text.char_indices().nth(n) {
                Some((cut, _)) => {
                    let rest = front.text.split_off(cut);
                    let head = std::mem::replace(&mut front.text, rest);
                    self.queued_bytes -= head.len();
                    self.released += n;
                    out.push(Span::new(front.style, head));
                    n = 0;
                }
                None => {
                    let span = self.queue.pop_front().expect("front exists");
                    let count = span.text.chars().count();
                    self.queued_bytes -= span.text.len();
                    self.released += count;
                    n -= count;
                    out.push(span);
                }
            }
        }
        out
    }
}

/// The plain text of some spans (handy for tests and logs).
pub fn concat(spans: &[Span]) -> String {
    spans.iter().map(|s| s.text.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::frontend::ui::Style;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn chars_due_at_rate() {
        assert_eq!(chars_due(ms(0), 100), 0);
        assert_eq!(chars_due(ms(9), 100), 0);
        assert_eq!(chars_due(ms(10), 100), 1);
        assert_eq!(chars_due(ms(1000), 100), 100);
        assert_eq!(chars_due(ms(1000), 400), 400);
        assert_eq!(chars_due(Duration::from_micros(2500), 400), 1);
        assert_eq!(chars_due(ms(1000), 0), 0);
        assert_eq!(chars_due(Duration::MAX, u32::MAX), usize::MAX);
    }

    #[test]
    fn paces_from_the_first_take() {
        let mut tw = Typewriter::new(100);
        assert!(tw.is_idle());
        assert_eq!(tw.next_deadline(0), None);
        tw.push_spans(vec![Span::plain("abcdefghij")]);
        assert!(!tw.is_idle());
        assert_eq!(tw.next_deadline(500), Some(500), "not started: due now");
        assert_eq!(tw.take_due(500), vec![], "0 ms -> 0 chars");
        assert_eq!(tw.next_deadline(500), Some(510));
        assert_eq!(concat(&tw.take_due(509)), "");
        assert_eq!(concat(&tw.take_due(510)), "a", "10 ms -> 1 char");
        assert_eq!(tw.next_deadline(510), Some(520));
        assert_eq!(concat(&tw.take_due(515)), "");
        assert_eq!(tw.next_deadline(515), Some(520));
        assert_eq!(concat(&tw.take_due(545)), "bcd");
        assert_eq!(tw.next_deadline(545), Some(550));
        assert_eq!(concat(&tw.take_due(10_000)), "efghij");
        assert!(tw.is_idle());
        assert_eq!(tw.next_deadline(10_000), None);
    }

    #[test]
    fn one_second_is_rate_chars() {
        let mut tw = Typewriter::new(100);
        tw.push_spans(vec![Span::plain("x".repeat(300))]);
        tw.take_due(0);
        assert_eq!(concat(&tw.take_due(1000)).len(), 100);
        assert_eq!(concat(&tw.take_due(2000)).len(), 100);
    }

    #[test]
    fn never_splits_a_char() {
        let text = "ñé🚀";
        let mut tw = Typewriter::new(100);
        tw.push_spans(vec![Span::new(Style::Accent, text)]);
        tw.take_due(0);
        let mut got = Vec::new();
        for t in [10, 20, 30] {
            let out = tw.take_due(t);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].style, Style::Accent);
            got.push(out[0].text.clone());
        }
        assert_eq!(got, ["ñ", "é", "🚀"]);
        assert!(tw.is_idle());
    }

    #[test]
    fn keeps_styles_and_line_breaks() {
        let mut tw = Typewriter::new(100);
        tw.push(vec![Span::new(Style::Title, "ab"), Span::plain("c")]);
        tw.take_due(0);
        let out = tw.take_due(30);
        assert_eq!(out, vec![Span::new(Style::Title, "ab"), Span::plain("c")]);
        assert_eq!(tw.take_due(40), vec![Span::plain("\n")]);
    }

    #[test]
    fn idle_time_does_not_burst() {
        let mut tw = Typewriter::new(100);
        tw.push_spans(vec![Span::plain("ab")]);
        tw.take_due(0);
        assert_eq!(concat(&tw.take_due(100)), "ab");
        // Long idle, then more text: the run restarts.
        tw.push_spans(vec![Span::plain("cdef")]);
        assert_eq!(concat(&tw.take_due(60_000)), "");
        assert_eq!(concat(&tw.take_due(60_010)), "c");
    }

    #[test]
    fn finish_all_empties() {
        let mut tw = Typewriter::new(100);
        tw.push(vec![Span::plain("hello")]);
        tw.push(vec![Span::new(Style::Ok, "world")]);
        tw.take_due(0);
        assert_eq!(concat(&tw.take_due(20)), "he");
        assert_eq!(concat(&tw.finish_all()), "llo\nworld\n");
        assert!(tw.is_idle());
        assert_eq!(tw.next_deadline(20), None);
        assert_eq!(tw.take_due(1000), vec![]);
    }

    #[test]
    fn rate_zero_is_instant() {
        let mut tw = Typewriter::new(0);
        tw.push(vec![Span::plain("all at once")]);
        assert_eq!(tw.next_deadline(7), Some(7));
        assert_eq!(concat(&tw.take_due(7)), "all at once\n");
    }

    #[test]
    fn overflow_flushes_at_once() {
        let mut tw = Typewriter::new(100);
        tw.push_spans(vec![Span::plain("x".repeat(MAX_QUEUED))]);
        tw.take_due(0);
        assert_eq!(concat(&tw.take_due(10)), "x");
        tw.push_spans(vec![Span::plain("yy")]);
        assert_eq!(tw.next_deadline(11), Some(11));
        let all = concat(&tw.take_due(11));
        assert_eq!(all.len(), MAX_QUEUED - 1 + 2);
        assert!(tw.is_idle());
        // And pacing is back afterwards.
        tw.push_spans(vec![Span::plain("z")]);
        assert_eq!(concat(&tw.take_due(12)), "");
    }
}
