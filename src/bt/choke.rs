//! Who may download from us over BitTorrent: every interested peer up to a limit of
//! regular slots, plus one optimistic slot that passes from waiter to waiter every
//! [`OPTIMISTIC_TURN`], so a newcomer always gets a chance (as BEP 3 suggests). Pure
//! decision logic behind one mutex; each connection asks for itself.

use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long the optimistic slot stays with one peer while others wait.
pub const OPTIMISTIC_TURN: Duration = Duration::from_secs(30);

/// The upload slots of one peer server, shared by its BitTorrent connections.
pub struct Slots {
    inner: Mutex<State>,
}

struct State {
    limit: usize,
    regular: HashSet<u64>,
    optimistic: Option<(u64, Instant)>,
    waiting: VecDeque<u64>,
}

impl Slots {
    pub fn new(regular: usize) -> Slots {
        let state =
            State { limit: regular, regular: HashSet::new(), optimistic: None, waiting: VecDeque::new() };
        Slots { inner: Mutex::new(state) }
    }

    /// Connection `id` is interested and choked: true if it may be unchoked now, else it
    /// waits its turn.
    pub fn want(&self, id: u64, now: Instant) -> bool {
        let mut s = self.inner.lock();
        if s.holds(id) {
            return true;
        }
        if s.regular.len() < s.limit {
            s.waiting.retain(|w| *w != id);
            s.regular.insert(id);
            return true;
        }
        if !s.waiting.contains(&id) {
            s.waiting.push_back(id);
        }
        s.rotate(now);
        s.holds(id)
    }

    /// Whether `id` still holds a slot (an optimistic one passes on after its turn).
    pub fn check(&self, id: u64, now: Instant) -> bool {
        let mut s = self.inner.lock();
        s.rotate(now);
        s.holds(id)
    }

    /// `id` is not interested any more, or closed.
    pub fn release(&self, id: u64) {
        let mut s = self.inner.lock();
        s.regular.remove(&id);
        s.waiting.retain(|w| *w != id);
        if s.optimistic.is_some_and(|(o, _)| o == id) {
            s.optimistic = None;
        }
        // A freed regular slot goes to the longest waiter.
        while s.regular.len() < s.limit {
            let Some(next) = s.waiting.pop_front() else { break };
            s.regular.insert(next);
        }
    }
}

impl State {
    fn holds(&self, id: u64) -> bool {
        self.regular.contains(&id) || self.optimistic.is_some_and(|(o, _)| o == id)
    }

    /// Gives the optimistic slot to the longest waiter when it is free or its holder's turn
    /// is over; the old holder waits at the back.
    fn rotate(&mut self, now: Instant) {
        let turn_over = self.optimistic.is_none_or(|(_, since)| now.duration_since(since) >= OPTIMISTIC_TURN);
        if !turn_over {
            return;
        }
        let Some(next) = self.waiting.pop_front() else { return };
        if let Some((old, _)) = self.optimistic.take() {
            self.waiting.push_back(old);
        }
        self.optimistic = Some((next, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_slots_then_one_optimistic_that_rotates() {
        let s = Slots::new(2);
        let t0 = Instant::now();
        assert!(s.want(1, t0) && s.want(2, t0), "two regular slots");
        assert!(s.want(3, t0), "the optimistic slot");
        assert!(!s.want(4, t0), "full: 4 waits");
        assert!(s.check(3, t0 + Duration::from_secs(10)), "3 keeps its turn");
        let later = t0 + OPTIMISTIC_TURN;
        assert!(s.check(4, later), "after a turn the optimistic slot passes to 4");
        assert!(!s.check(3, later), "and 3 waits again");
        assert!(s.check(1, later) && s.check(2, later), "regular slots stay");
    }

    #[test]
    fn a_freed_slot_goes_to_the_longest_waiter() {
        let s = Slots::new(1);
        let t0 = Instant::now();
        assert!(s.want(1, t0));
        assert!(s.want(2, t0), "optimistic");
        assert!(!s.want(3, t0) && !s.want(4, t0));
        s.release(1);
        assert!(s.check(3, t0), "3 waited longest");
        assert!(!s.check(4, t0));
        s.release(2);
        assert!(s.check(4, t0), "the optimistic slot is free again");
    }
}
