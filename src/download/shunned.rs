//! Chunks a source answered `elsewhere` (a super-seeding peer offers them to another
//! downloader now), and when: other sources are asked for them for [`SHUN`].

use crate::bitfield::Bitfield;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A chunk answered `elsewhere` is asked of other sources for this long.
pub const SHUN: Duration = Duration::from_millis(500);
/// Shunned chunks remembered per source.
const MAX_SHUNNED: usize = 64;

#[derive(Default)]
pub struct Shunned(VecDeque<(u32, Instant)>);

impl Shunned {
    pub fn add(&mut self, i: u32, now: Instant) {
        if self.0.len() >= MAX_SHUNNED {
            self.0.pop_front();
        }
        self.0.push_back((i, now));
    }

    /// Clears from `have` the chunks still shunned at `now`.
    pub fn mask(&mut self, have: &mut Bitfield, now: Instant) {
        while self.0.front().is_some_and(|(_, t)| now.duration_since(*t) >= SHUN) {
            self.0.pop_front();
        }
        for (i, _) in &self.0 {
            have.clear(*i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turned_away_chunk_is_asked_elsewhere_for_a_while() {
        let t0 = Instant::now();
        let mut shunned = Shunned::default();
        shunned.add(3, t0);
        let mut have = Bitfield::full(8);
        shunned.mask(&mut have, t0 + SHUN / 2);
        assert!(!have.get(3), "still shunned");
        assert_eq!(have.count(), 7);
        let mut have = Bitfield::full(8);
        shunned.mask(&mut have, t0 + SHUN);
        assert_eq!(have.count(), 8, "asked of it again");
    }

    #[test]
    fn only_the_latest_are_remembered() {
        let t0 = Instant::now();
        let mut shunned = Shunned::default();
        for i in 0..=MAX_SHUNNED as u32 {
            shunned.add(i, t0);
        }
        let mut have = Bitfield::full(MAX_SHUNNED as u32 + 1);
        shunned.mask(&mut have, t0);
        assert_eq!(have.ones().collect::<Vec<_>>(), vec![0], "the oldest was forgotten");
    }
}
