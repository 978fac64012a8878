//! Upload and download rate limits (`--max-upload-rate`,
//! `--max-download-rate`): one token bucket per direction, shared by every
//! peer connection of both protocols, enforced where the reactor hands a
//! socket to the engine. The engine reads and writes through a
//! [`Throttled`] stream that lets through at most the tokens in the bucket
//! and otherwise answers `WouldBlock`, as a full socket would; the engine
//! already handles that everywhere, so no protocol code knows of limits.
//!
//! Invariants: a bucket never holds more than its burst (a twentieth of a
//! second of its rate, at least [`MIN_BURST`]), so over any stretch longer
//! than that the bytes through it stay within the rate plus one burst;
//! a connection turned away for want of tokens is remembered by the
//! reactor and driven again once the bucket has refilled
//! ([`RateLimits::next_refill`]), since edge-triggered readiness will not
//! wake it again for bytes already waiting in the kernel.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Smallest burst: one BitTorrent block (and a native protocol block
/// header), so a transfer never stalls on a bucket too small to pass one.
pub const MIN_BURST: f64 = 16.0 * 1024.0;
/// The burst is this fraction of a second of the rate.
const BURST_SECS: f64 = 0.05;

/// A token bucket of bytes: `rate` per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket for `rate` bytes per second, full at `now`.
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        let rate = rate as f64;
        let burst = (rate * BURST_SECS).max(MIN_BURST);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Adds what accrued since the last look.
    fn refill(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + secs * self.rate).min(self.burst);
        self.last = now;
    }

    /// Whole bytes that may pass now.
    pub fn available(&mut self, now: Instant) -> usize {
        self.refill(now);
        self.tokens.max(0.0) as usize
    }

    /// Counts `n` bytes that passed.
    pub fn take(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// When a hundredth of a second's worth of tokens (at least 1 KiB) is
    /// there again, now if it is: small enough that a slow limit still
    /// moves bytes every second or so (a peer silent for 10 s counts as
    /// stalled), large enough not to wake the loop for a few bytes.
    fn refilled_at(&self) -> Instant {
        let quantum = (self.rate / 100.0).max(1024.0).min(self.burst);
        let want = quantum - self.tokens;
        if want <= 0.0 {
            return self.last;
        }
        self.last + Duration::from_secs_f64(want / self.rate)
    }
}

/// The two limits; `None` is unlimited.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    pub up: Option<TokenBucket>,
    pub down: Option<TokenBucket>,
}

impl RateLimits {
    /// Limits of `up` and `down` bytes per second (`None`: unlimited).
    pub fn new(up: Option<u64>, down: Option<u64>, now: Instant) -> RateLimits {
        RateLimits {
            up: up.map(|r| TokenBucket::new(r, now)),
            down: down.map(|r| TokenBucket::new(r, now)),
        }
    }

    /// When connections turned away for want of tokens should be driven
    /// again: once every limited bucket has a little again.
    pub fn next_refill(&self) -> Option<Instant> {
        self.up
            .iter()
            .chain(&self.down)
            .map(TokenBucket::refilled_at)
            .max()
    }
}

/// A socket seen through the limits for one engine turn.
pub struct Throttled<'a, S> {
    inner: &'a mut S,
    limits: &'a mut RateLimits,
    now: Instant,
    /// A read or write was turned away for want of tokens.
    starved: bool,
}

impl<'a, S> Throttled<'a, S> {
    pub fn new(inner: &'a mut S, limits: &'a mut RateLimits, now: Instant) -> Throttled<'a, S> {
        Throttled {
            inner,
            limits,
            now,
            starved: false,
        }
    }

    /// Whether the connection was turned away and must be driven again
    /// once the buckets refill.
    pub fn starved(&self) -> bool {
        self.starved
    }
}

/// What a bucket allows of `wanted` bytes: all without a bucket.
fn allowance(bucket: Option<&mut TokenBucket>, wanted: usize, now: Instant) -> usize {
    match bucket {
        Some(b) => wanted.min(b.available(now)),
        None => wanted,
    }
}

fn would_block() -> io::Error {
    io::Error::from(io::ErrorKind::WouldBlock)
}

impl<S: Read> Read for Throttled<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = allowance(self.limits.down.as_mut(), buf.len(), self.now);
        if n == 0 && !buf.is_empty() {
            self.starved = true;
            return Err(would_block());
        }
        let got = self.inner.read(&mut buf[..n])?;
        if let Some(b) = self.limits.down.as_mut() {
            b.take(got);
        }
        Ok(got)
    }
}

impl<S: Write> Write for Throttled<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = allowance(self.limits.up.as_mut(), buf.len(), self.now);
        if n == 0 && !buf.is_empty() {
            self.starved = true;
            return Err(would_block());
        }
        let sent = self.inner.write(&buf[..n])?;
        if let Some(b) = self.limits.up.as_mut() {
            b.take(sent);
        }
        Ok(sent)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_rate_plus_one_burst() {
        let t0 = Instant::now();
        let rate = 1_000_000;
        let mut b = TokenBucket::new(rate, t0);
        let mut passed = 0usize;
        // Ten seconds in 1 ms steps, taking everything offered each time.
        for ms in 0..=10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            let n = b.available(now);
            b.take(n);
            passed += n;
        }
        let burst = (rate as f64 * BURST_SECS).max(MIN_BURST) as usize;
        let want = 10 * rate as usize + burst;
        assert!(passed.abs_diff(want) < 1000, "{passed} vs {want}");
    }

    #[test]
    fn throttled_streams_stop_at_the_tokens_and_say_so() {
        let t0 = Instant::now();
        let mut limits = RateLimits::new(Some(100_000), Some(100_000), t0);
        let mut sink: Vec<u8> = Vec::new();
        let mut t = Throttled::new(&mut sink, &mut limits, t0);
        let big = vec![7u8; 1 << 20];
        let first = t.write(&big).unwrap();
        assert_eq!(first, MIN_BURST as usize);
        assert_eq!(t.write(&big).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(t.starved());
        // A little later the same bucket passes a little again: at 100 KB/s,
        // 1 KiB after about 10 ms.
        let again = limits.next_refill().unwrap();
        assert!(
            again > t0 && again <= t0 + Duration::from_millis(20),
            "{:?}",
            again - t0
        );
        let mut t = Throttled::new(&mut sink, &mut limits, again);
        let passed = t.write(&big).unwrap();
        assert!((1000..=1100).contains(&passed), "{passed}");
        // A slow limit still moves bytes every second or so (a peer silent
        // for 10 s counts as stalled).
        let mut slow = RateLimits::new(Some(1024), None, t0);
        let mut t = Throttled::new(&mut sink, &mut slow, t0);
        while t.write(&big).is_ok() {}
        let next = slow.next_refill().unwrap();
        assert!(next <= t0 + Duration::from_millis(1100), "{:?}", next - t0);
        // Reads likewise.
        let mut src: &[u8] = &big;
        let mut limits = RateLimits::new(None, Some(50_000), t0);
        let mut t = Throttled::new(&mut src, &mut limits, t0);
        let mut buf = vec![0u8; 1 << 20];
        assert_eq!(t.read(&mut buf).unwrap(), MIN_BURST as usize);
        assert_eq!(t.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // Unlimited: everything.
        let mut limits = RateLimits::default();
        let mut t = Throttled::new(&mut sink, &mut limits, t0);
        assert_eq!(t.write(&big).unwrap(), big.len());
        assert!(limits.next_refill().is_none());
    }
}
