//! Who may download from us over BitTorrent: interested peers up to a limit of regular
//! slots, plus one optimistic slot that passes from waiter to waiter every
//! [`OPTIMISTIC_TURN`], so a newcomer always gets a chance (as BEP 3 suggests).
//!
//! Every [`RECHOKE`] the regular slots go to the peers that gave us the most since the
//! last time (tit-for-tat, while we download over their connections), then, among equals,
//! to those we sent the most to (the upload rate, which is all a seeder can go by, as
//! libtorrent's default choker); ties keep the peers that hold a slot. Pure decision logic
//! behind one mutex; each connection asks for itself and reports its bytes.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the optimistic slot stays with one peer while others wait.
pub const OPTIMISTIC_TURN: Duration = Duration::from_secs(30);
/// How often the regular slots are given again by what each peer gave and took.
pub const RECHOKE: Duration = Duration::from_secs(10);

/// A number for a new BitTorrent connection, unique in this process: the slots know
/// connections by it, the server's and a download's alike.
pub fn next_conn_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The upload slots of one peer server, shared by its BitTorrent connections.
pub struct Slots {
    inner: Mutex<State>,
}

struct State {
    limit: usize,
    regular: HashSet<u64>,
    optimistic: Option<(u64, Instant)>,
    waiting: VecDeque<u64>,
    /// Bytes (received from, sent to) each connection since the last rechoke.
    credit: HashMap<u64, (u64, u64)>,
    rechoked: Option<Instant>,
}

impl Slots {
    pub fn new(regular: usize) -> Slots {
        let state = State {
            limit: regular,
            regular: HashSet::new(),
            optimistic: None,
            waiting: VecDeque::new(),
            credit: HashMap::new(),
            rechoked: None,
        };
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

    /// Connection `id` received `received` payload bytes from its peer and sent `sent`.
    pub fn credit(&self, id: u64, received: u64, sent: u64) {
        let mut s = self.inner.lock();
        let c = s.credit.entry(id).or_default();
        c.0 += received;
        c.1 += sent;
    }

    /// `id` is not interested any more, or closed.
    pub fn release(&self, id: u64) {
        let mut s = self.inner.lock();
        s.credit.remove(&id);
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

    /// Every [`RECHOKE`]: the regular slots to the interested peers that gave the most,
    /// then took the most; ties keep holders. Those left out wait, behind the waiters.
    fn rechoke(&mut self, now: Instant) {
        let since = *self.rechoked.get_or_insert(now);
        if now.duration_since(since) < RECHOKE {
            return;
        }
        self.rechoked = Some(now);
        let mut all: Vec<u64> = self.regular.iter().copied().collect();
        all.sort_unstable(); // a fixed order among holders that tie
        all.extend(self.optimistic.map(|(o, _)| o));
        all.extend(self.waiting.iter().copied());
        let credit = std::mem::take(&mut self.credit);
        let score = |id: &u64| {
            let (got, sent) = credit.get(id).copied().unwrap_or_default();
            (std::cmp::Reverse(got), std::cmp::Reverse(sent))
        };
        // A stable sort: holders first among equals, then the waiters in their order.
        all.sort_by_key(score);
        let winners: HashSet<u64> = all.iter().take(self.limit).copied().collect();
        let demoted: Vec<u64> = self.regular.iter().filter(|id| !winners.contains(id)).copied().collect();
        self.waiting.retain(|w| !winners.contains(w));
        self.waiting.extend(demoted);
        if self.optimistic.is_some_and(|(o, _)| winners.contains(&o)) {
            self.optimistic = None;
        }
        self.regular = winners;
    }

    /// Gives the optimistic slot to the longest waiter when it is free or its holder's turn
    /// is over; the old holder waits at the back.
    fn rotate(&mut self, now: Instant) {
        self.rechoke(now);
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
    fn at_the_rechoke_the_peer_that_gave_most_takes_a_regular_slot() {
        let s = Slots::new(1);
        let t0 = Instant::now();
        assert!(s.want(1, t0), "regular");
        assert!(s.want(2, t0), "optimistic");
        assert!(!s.want(3, t0), "waits");
        s.credit(3, 4 << 20, 0);
        s.credit(1, 0, 8 << 20);
        let t1 = t0 + RECHOKE;
        assert!(s.check(3, t1), "3 sent us 4 MiB: it takes the regular slot");
        assert!(!s.check(1, t1), "1 only took from us: it waits");
        assert!(s.check(2, t1), "the optimistic slot keeps its turn");
        // Seeding (nobody gives): the one we upload to fastest keeps its slot.
        s.credit(3, 0, 1 << 20);
        s.credit(1, 0, 2 << 20);
        let t2 = t1 + RECHOKE;
        assert!(s.check(1, t2) && !s.check(3, t2), "by upload rate when nobody gives");
        // Nothing at all reported: 1 keeps its regular slot; 2's optimistic turn is over
        // (30 s), so that slot passes to 3, which waited longest.
        let t3 = t2 + RECHOKE;
        assert!(s.check(1, t3), "a holder keeps its slot when nobody reports bytes");
        assert!(s.check(3, t3) && !s.check(2, t3), "the optimistic slot rotated");
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
