//! A download's recent transfer rate, from samples of its byte count.
//!
//! Role: the progress bar's speed and ETA describe the last few seconds, not
//! the average since the start, so a download that stalls shows `0 B/s` and
//! "stalled" within [`WINDOW_MS`] instead of an average that decays slowly.
//!
//! Invariants: pure arithmetic on the caller's millisecond clock; at most
//! [`MAX_SAMPLES`] samples are held (one every [`SAMPLE_MS`] at most, and
//! only those of the last window plus one before it, which is the base the
//! rate is measured from).

use super::render::Progress;
use crate::client::engine::DownloadView;
use crate::wire::FileId;
use std::collections::{HashMap, VecDeque};

/// The rate is measured over about this long.
pub const WINDOW_MS: u64 = 5_000;
/// Samples closer together than this are not kept.
pub const SAMPLE_MS: u64 = 100;
/// Most samples held (a window's worth at [`SAMPLE_MS`], with room).
pub const MAX_SAMPLES: usize = 64;
/// Under this much history the rate is not known yet.
const MIN_SPAN_MS: u64 = 500;

/// Recent samples of one download's byte count.
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    /// (time in ms, bytes so far), oldest first, times increasing.
    samples: VecDeque<(u64, u64)>,
}

impl RateWindow {
    pub fn new() -> RateWindow {
        RateWindow::default()
    }

    /// Records that `bytes` had arrived by `now_ms`.
    pub fn record(&mut self, now_ms: u64, bytes: u64) {
        match self.samples.back_mut() {
            // Too soon after the last sample: keep the newest count in it,
            // so the rate still sees every byte.
            Some(last) if now_ms < last.0 + SAMPLE_MS => last.1 = last.1.max(bytes),
            _ => self.samples.push_back((now_ms, bytes)),
        }
        // Keep one sample at or before the window's start as the base.
        let start = now_ms.saturating_sub(WINDOW_MS);
        while self.samples.len() > MAX_SAMPLES || (self.samples.len() >= 2 && self.samples[1].0 <= start) {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window up to `now_ms` (0 while less than
    /// half a second of history exists).
    pub fn rate(&self, now_ms: u64) -> f64 {
        let (Some(&(t0, b0)), Some(&(_, b1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let span = now_ms.saturating_sub(t0);
        if span < MIN_SPAN_MS {
            return 0.0;
        }
        b1.saturating_sub(b0) as f64 * 1000.0 / span as f64
    }

    /// Whether a whole window went by without a byte.
    pub fn stalled(&self, now_ms: u64) -> bool {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(_, b1))) => now_ms.saturating_sub(t0) >= WINDOW_MS && b1 == b0,
            _ => false,
        }
    }
}

/// The rate windows of the running downloads, by file id.
#[derive(Debug, Clone, Default)]
pub struct Rates {
    windows: HashMap<FileId, RateWindow>,
}

impl Rates {
    /// Records the downloads' byte counts at `now_ms` (forgetting those
    /// that ended) and returns each one's progress, in order.
    pub fn progress(&mut self, downloads: &[DownloadView], now_ms: u64) -> Vec<Progress> {
        self.windows.retain(|id, _| downloads.iter().any(|d| d.id == *id));
        downloads
            .iter()
            .map(|d| {
                let rate = self.windows.entry(d.id).or_default();
                rate.record(now_ms, d.fetched);
                Progress {
                    name: d.name.clone(),
                    done: d.done,
                    // An empty file is done as soon as its metadata is in,
                    // so a size of 0 never shows.
                    total: d.has_meta.then_some(d.total),
                    rate_bps: rate.rate(now_ms),
                    stalled: rate.stalled(now_ms),
                    peers: d.peers,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_recent_not_average() {
        let mut w = RateWindow::new();
        assert_eq!(w.rate(0), 0.0);
        // 1 MB/s for 10 s.
        for t in 0..=100u64 {
            w.record(t * 100, t * 100_000);
        }
        let r = w.rate(10_000);
        assert!((r - 1e6).abs() < 1e3, "{r}");
        assert!(!w.stalled(10_000));
        // Then nothing: the rate falls to 0 within a window, and it is
        // stalled (an average since the start would still say 0.5 MB/s
        // at 20 s).
        for t in 101..=200u64 {
            w.record(t * 100, 10_000_000);
        }
        assert_eq!(w.rate(20_000), 0.0);
        assert!(w.stalled(20_000));
        // Bytes again: no longer stalled.
        w.record(20_100, 10_100_000);
        assert!(!w.stalled(20_100));
        assert!(w.rate(20_100) > 0.0);
    }

    #[test]
    fn unknown_at_first_and_bounded() {
        let mut w = RateWindow::new();
        w.record(0, 0);
        w.record(200, 1_000);
        assert_eq!(w.rate(300), 0.0, "too little history");
        assert!(!w.stalled(300));
        // Samples every millisecond are merged; the count stays bounded.
        let mut w = RateWindow::new();
        for t in 0..100_000u64 {
            w.record(t, t);
        }
        assert!(w.samples.len() <= MAX_SAMPLES);
        let r = w.rate(99_999);
        assert!((r - 1000.0).abs() < 50.0, "{r}");
    }
}
