//! When a source that failed may be tried again: [`FIRST`] after its first failure, twice
//! as long after each further one, at most [`LONGEST`]; a source that served well starts
//! over. The same rule for every kind of source (named by the tracker, the DHT, a magnet
//! link or `--peer`), so a dead or busy one costs a few attempts a minute, not one every
//! second, and one that comes back is found again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The wait after a first failure.
pub const FIRST: Duration = Duration::from_secs(2);
/// The longest wait.
pub const LONGEST: Duration = Duration::from_secs(60);

/// Failures and waits by address.
#[derive(Default, Debug)]
pub struct Backoff {
    waits: HashMap<SocketAddr, (u32, Instant)>,
}

impl Backoff {
    /// Records a failure of `addr` at `now`.
    pub fn failed(&mut self, addr: SocketAddr, now: Instant) {
        let fails = self.waits.get(&addr).map_or(0, |(n, _)| *n) + 1;
        let wait = FIRST.saturating_mul(1 << (fails - 1).min(16)).min(LONGEST);
        self.waits.insert(addr, (fails, now + wait));
    }

    /// `addr` served: its next failure waits [`FIRST`] again.
    pub fn served(&mut self, addr: SocketAddr) {
        self.waits.remove(&addr);
    }

    /// Whether `addr` may be tried at `now`.
    pub fn ready(&self, addr: SocketAddr, now: Instant) -> bool {
        self.waits.get(&addr).is_none_or(|(_, at)| now >= *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_longest_and_start_over_after_serving() {
        let a = SocketAddr::from(([10, 0, 0, 1], 6881));
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert!(b.ready(a, t0));
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            b.failed(a, now);
            let mut wait = Duration::ZERO;
            while !b.ready(a, now + wait) {
                wait += Duration::from_secs(1);
            }
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        b.served(a);
        b.failed(a, now);
        assert!(!b.ready(a, now + Duration::from_secs(1)) && b.ready(a, now + FIRST));
    }
}
