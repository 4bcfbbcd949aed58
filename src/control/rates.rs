//! Rates over the last few seconds: a download's from its progress, a share's uploads from
//! a sampler the control API runs every second.

use crate::hash::ContentId;
use crate::holdings::shares::Shares;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Bytes a second over the last [`RATE_WINDOW`], from (time, total) samples.
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

/// The span a rate is measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

impl Rate {
    pub fn sample(&mut self, at: Instant, total: u64) {
        self.samples.push_back((at, total));
        while self.samples.len() > 2
            && self.samples.front().is_some_and(|(t, _)| at.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// The rate at `now`: nothing for a window with no sample in it.
    pub fn per_sec(&self, now: Instant) -> u64 {
        let (Some((t0, b0)), Some((t1, b1))) = (self.samples.front(), self.samples.back()) else { return 0 };
        if now.duration_since(*t1) > RATE_WINDOW {
            return 0;
        }
        let span = now.duration_since(*t0).max(Duration::from_millis(500)).as_secs_f64();
        (b1.saturating_sub(*b0) as f64 / span) as u64
    }
}

/// The upload rate of every share, from its byte counter.
#[derive(Default)]
pub struct UpRates {
    by_id: Mutex<HashMap<ContentId, Rate>>,
}

impl UpRates {
    /// Samples every share's uploaded bytes at `now`; forgets shares that went away.
    pub fn sample(&self, shares: &Shares, now: Instant) {
        let mut by_id = self.by_id.lock();
        let ids = shares.ids();
        by_id.retain(|id, _| ids.contains(id));
        for id in ids {
            if let Some(s) = shares.get(&id) {
                by_id.entry(id).or_default().sample(now, s.uploaded.load(Ordering::Relaxed));
            }
        }
    }

    /// Bytes a second share `id` uploads at.
    pub fn of(&self, id: &ContentId, now: Instant) -> u64 {
        self.by_id.lock().get(id).map_or(0, |r| r.per_sec(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_bytes_over_the_last_seconds() {
        let t = Instant::now();
        let mut r = Rate::default();
        assert_eq!(r.per_sec(t), 0);
        for s in 0..=10u64 {
            r.sample(t + Duration::from_secs(s), s * 1000);
        }
        let rate = r.per_sec(t + Duration::from_secs(10));
        assert!((900..=1100).contains(&rate), "{rate}");
        assert_eq!(r.per_sec(t + Duration::from_secs(20)), 0, "nothing came for a while");
    }
}
