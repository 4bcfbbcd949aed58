//! How many pieces to keep asked of one BitTorrent source: as many as it sends in
//! [`QUEUE_TIME`] at the rate it has been sending, from [`START_BYTES`] worth at first, never
//! more than the budget's `bt_depth`. A slow peer so holds only the pieces it will send soon,
//! and the rest stay free for faster sources (a fixed 8 MiB let a 1 MiB/s peer take every
//! piece of a small torrent while a faster web seed only duplicated them in the end game);
//! a fast one is asked for as much as the budget allows. Pure: the time is passed in.

use std::time::{Duration, Instant};

/// How long the pieces asked of a source should take it to send (libtorrent's
/// `request_queue_time` is 3 s).
pub const QUEUE_TIME: Duration = Duration::from_secs(2);
/// Bytes asked at first, before any rate is known.
pub const START_BYTES: u64 = 2 << 20;
/// How often the rate estimate takes in what came.
const WINDOW: Duration = Duration::from_millis(250);

/// The request depth of one source.
#[derive(Debug, Clone)]
pub struct RequestDepth {
    piece: u64,
    max: usize,
    /// Bytes a second, once a window has passed.
    rate: Option<f64>,
    window_start: Instant,
    window_bytes: u64,
}

impl RequestDepth {
    /// For pieces of `piece` bytes, at most `max` in flight, measuring from `now`.
    pub fn new(piece: u64, max: usize, now: Instant) -> RequestDepth {
        RequestDepth { piece: piece.max(1), max: max.max(1), rate: None, window_start: now, window_bytes: 0 }
    }

    /// `bytes` of piece data came at `now`.
    pub fn received(&mut self, bytes: u64, now: Instant) {
        self.window_bytes += bytes;
        let span = now.saturating_duration_since(self.window_start);
        if span >= WINDOW {
            let sample = self.window_bytes as f64 / span.as_secs_f64();
            self.rate = Some(self.rate.map_or(sample, |r| 0.5 * r + 0.5 * sample));
            self.window_start = now;
            self.window_bytes = 0;
        }
    }

    /// Pieces to keep asked now: at least 2 (one arriving, one asked behind it).
    pub fn get(&self) -> usize {
        let bytes = match self.rate {
            Some(rate) => rate * QUEUE_TIME.as_secs_f64(),
            None => START_BYTES as f64,
        };
        ((bytes / self.piece as f64).ceil() as usize).clamp(2.min(self.max), self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1 << 20;

    /// Feeds `rate` bytes a second for `secs`, in 16 KiB blocks.
    fn feed(d: &mut RequestDepth, t0: Instant, rate: u64, secs: u64) -> Instant {
        let blocks = rate * secs / (16 * KIB);
        let gap = Duration::from_secs(secs) / blocks as u32;
        let mut t = t0;
        for _ in 0..blocks {
            t += gap;
            d.received(16 * KIB, t);
        }
        t
    }

    #[test]
    fn a_slow_source_is_asked_for_what_it_sends_in_two_seconds_a_fast_one_for_the_budget() {
        let t0 = Instant::now();
        let mut slow = RequestDepth::new(256 * KIB, 32, t0);
        assert_eq!(slow.get(), 8, "2 MiB before any rate is known");
        feed(&mut slow, t0, MIB, 3);
        assert_eq!(slow.get(), 8, "1 MiB/s: 2 MiB, eight 256 KiB pieces");
        let mut fast = RequestDepth::new(256 * KIB, 32, t0);
        feed(&mut fast, t0, 500 * MIB, 1);
        assert_eq!(fast.get(), 32, "the budget's cap");
        let mut trickle = RequestDepth::new(MIB, 8, t0);
        feed(&mut trickle, t0, 16 * KIB, 4);
        assert_eq!(trickle.get(), 2, "never under two pieces");
        let mut one = RequestDepth::new(64 * MIB, 1, t0);
        feed(&mut one, t0, 16 * KIB, 2);
        assert_eq!(one.get(), 1, "never over the budget, even under two");
    }

    #[test]
    fn the_depth_follows_a_source_that_speeds_up_or_slows_down() {
        let t0 = Instant::now();
        let mut d = RequestDepth::new(256 * KIB, 256, t0);
        let t = feed(&mut d, t0, MIB, 2);
        assert_eq!(d.get(), 8);
        let t = feed(&mut d, t, 20 * MIB, 2);
        assert!((150..=160).contains(&d.get()), "20 MiB/s: about 160 pieces, got {}", d.get());
        feed(&mut d, t, 2 * MIB, 3);
        assert!((16..=18).contains(&d.get()), "back to 2 MiB/s: about 16, got {}", d.get());
    }
}
