//! Which chunk each source fetches next: rarest first, and an end game for the last chunks
//! so one slow source cannot stall the finish. A source with nothing left to fetch also
//! takes over chunks that a far slower source has held for too long (overdue: four times
//! the usual time a chunk takes, at least [`MIN_OVERDUE`]). Pure logic, no sockets: the
//! time comes in as an argument of the `_at` methods.
//!
//! A chunk is in exactly one state: `Missing` (nobody fetches it), `Requested` (one or more
//! sources fetch it; more than one only in the end game) or `Done` (verified). A source's
//! `assigned` set holds exactly the chunks it was handed and has not yet completed,
//! failed or released. The missing chunks are also kept in buckets by availability, so
//! the rarest one a source has is found without scanning the file: a pick costs the same
//! at 10^3 and 10^6 chunks when the source has them (see `make bench`, scheduler).

use crate::bitfield::Bitfield;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most sources fetching one chunk in the end game.
const ENDGAME_COPIES: u8 = 2;
/// A chunk requested this long ago is overdue at the least.
pub const MIN_OVERDUE: Duration = Duration::from_secs(2);
/// Before any chunk arrived, a chunk is overdue after this.
const FIRST_OVERDUE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    Requested,
    Done,
}

struct SourceView {
    /// `None` when the source has the whole file.
    have: Option<Bitfield>,
    assigned: BTreeSet<u32>,
    bad: u32,
}

impl SourceView {
    fn has(&self, i: u32) -> bool {
        self.have.as_ref().is_none_or(|b| b.get(i))
    }
}

/// The download plan of one file.
pub struct Scheduler {
    state: Vec<State>,
    requesters: Vec<u8>,
    /// When each requested chunk was first requested.
    requested_at: Vec<Option<Instant>>,
    /// A running average of how long a chunk takes from request to arrival.
    typical: Option<Duration>,
    availability: Vec<u16>,
    /// The `Missing` chunks by availability: `by_avail[a]` holds those `a` sources have.
    by_avail: Vec<BTreeSet<u32>>,
    sources: HashMap<SocketAddr, SourceView>,
    remaining: u32,
    missing: u32,
    first_open: u32,
    /// How to choose among equally rare chunks: `None` takes the lowest index, so a lone
    /// downloader streams the file in order; a late joiner picks at random (this is the
    /// generator's state), so it fetches chunks the earlier downloaders lack and can give
    /// them back, instead of racing them for the same ones.
    random: Option<u64>,
}

impl Scheduler {
    /// A plan for `count` chunks, of which `have` are already in place.
    pub fn new(count: u32, have: &Bitfield) -> Scheduler {
        let state: Vec<State> =
            (0..count).map(|i| if have.get(i) { State::Done } else { State::Missing }).collect();
        let remaining = count - have.count();
        let missing: BTreeSet<u32> = (0..count).filter(|i| state[*i as usize] == State::Missing).collect();
        Scheduler {
            state,
            requesters: vec![0; count as usize],
            requested_at: vec![None; count as usize],
            typical: None,
            availability: vec![0; count as usize],
            by_avail: vec![missing],
            sources: HashMap::new(),
            remaining,
            missing: remaining,
            first_open: 0,
            random: None,
        }
    }

    /// Chooses at random among equally rare chunks, from `seed`.
    pub fn with_random_picks(mut self, seed: u64) -> Scheduler {
        self.random = Some(seed | 1);
        self
    }

    fn next_random(&mut self) -> Option<u64> {
        let x = self.random.as_mut()?;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        Some(*x)
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Adds a source, or updates what it has (`None`: the whole file).
    pub fn update_source(&mut self, src: SocketAddr, have: Option<Bitfield>) {
        let view = self.sources.entry(src).or_insert(SourceView {
            have: Some(Bitfield::new(0)),
            assigned: BTreeSet::new(),
            bad: 0,
        });
        let old = std::mem::replace(&mut view.have, have);
        let n = self.state.len() as u32;
        // A source with every chunk that joins (or leaves): every chunk's availability
        // moves by one, so the buckets move as a whole, without a pass of tree operations
        // over the file (at 10^6 chunks that pass took 70 ms under the scheduler's lock).
        let held = |b: &Option<Bitfield>| b.as_ref().map_or(n, Bitfield::count);
        match (held(&old), held(&view.have)) {
            (0, all) if all == n && n > 0 => {
                self.availability.iter_mut().for_each(|a| *a += 1);
                self.by_avail.insert(0, BTreeSet::new());
                return;
            }
            (all, 0) if all == n && n > 0 => {
                self.availability.iter_mut().for_each(|a| *a -= 1);
                self.by_avail.remove(0);
                return;
            }
            _ => {}
        }
        let before = |i: u32| old.as_ref().is_none_or(|b| b.get(i));
        let view = &self.sources[&src];
        let changed: Vec<(u32, bool)> = (0..n)
            .filter_map(|i| match (before(i), view.has(i)) {
                (false, true) => Some((i, true)),
                (true, false) => Some((i, false)),
                _ => None,
            })
            .collect();
        for (i, gained) in changed {
            self.unbucket(i);
            if gained {
                self.availability[i as usize] += 1;
            } else {
                self.availability[i as usize] -= 1;
            }
            self.bucket(i);
        }
    }

    /// `src` now has chunk `i` too (a BitTorrent `have`): one chunk's availability changes,
    /// without comparing whole bitfields.
    pub fn source_has(&mut self, src: SocketAddr, i: u32) {
        if i as usize >= self.state.len() {
            return;
        }
        let Some(view) = self.sources.get_mut(&src) else { return };
        let newly = match view.have.as_mut() {
            None => false,
            Some(b) if b.is_empty() => {
                let mut fresh = Bitfield::new(self.state.len() as u32);
                fresh.set(i);
                *b = fresh;
                true
            }
            Some(b) => b.set(i),
        };
        if newly {
            self.unbucket(i);
            self.availability[i as usize] += 1;
            self.bucket(i);
        }
    }

    /// `src` does not have chunk `i` after all (a super-seeding peer offers it to another
    /// downloader now): one chunk's availability changes.
    pub fn source_lacks(&mut self, src: SocketAddr, i: u32) {
        let n = self.state.len() as u32;
        if i >= n {
            return;
        }
        let Some(view) = self.sources.get_mut(&src) else { return };
        let had = match view.have.as_mut() {
            None => {
                let mut all = Bitfield::full(n);
                all.clear(i);
                view.have = Some(all);
                true
            }
            Some(b) => b.clear(i),
        };
        if had {
            self.unbucket(i);
            self.availability[i as usize] -= 1;
            self.bucket(i);
        }
    }

    /// Files a `Missing` chunk under its availability.
    fn bucket(&mut self, i: u32) {
        if self.state[i as usize] != State::Missing {
            return;
        }
        let a = self.availability[i as usize] as usize;
        if self.by_avail.len() <= a {
            self.by_avail.resize_with(a + 1, BTreeSet::new);
        }
        self.by_avail[a].insert(i);
    }

    /// Takes a chunk out of its availability bucket (if it is in one).
    fn unbucket(&mut self, i: u32) {
        let a = self.availability[i as usize] as usize;
        if let Some(b) = self.by_avail.get_mut(a) {
            b.remove(&i);
        }
    }

    /// The rarest missing chunk `view` has, lowest index among equals.
    fn rarest_for(&self, view: &SourceView) -> Option<(u16, u32)> {
        self.by_avail
            .iter()
            .enumerate()
            .skip(1)
            .find_map(|(a, chunks)| chunks.iter().find(|i| view.has(**i)).map(|i| (a as u16, *i)))
    }

    /// Forgets a source; its chunks go back to the others.
    pub fn remove_source(&mut self, src: SocketAddr) {
        let Some(view) = self.sources.get(&src) else { return };
        for i in view.assigned.clone() {
            self.release(src, i);
        }
        self.update_source(src, Some(Bitfield::new(self.state.len() as u32)));
        self.sources.remove(&src);
    }

    /// True when `src` has a chunk that is still needed.
    pub fn is_useful(&self, src: SocketAddr) -> bool {
        let Some(view) = self.sources.get(&src) else { return false };
        (self.first_open..self.state.len() as u32)
            .any(|i| self.state[i as usize] != State::Done && view.has(i))
    }

    /// The next chunk for `src`, if it has one that is needed: the rarest missing chunk
    /// (lowest index among equals), or in the end game a chunk another source is fetching.
    pub fn assign(&mut self, src: SocketAddr) -> Option<u32> {
        self.assign_at(src, Instant::now())
    }

    /// [`assign`](Self::assign) at time `now`: also takes over a chunk another source has
    /// held past the overdue time, when `src` has nothing missing to fetch.
    pub fn assign_at(&mut self, src: SocketAddr, now: Instant) -> Option<u32> {
        self.pick(src, now, true)
    }

    /// [`assign_at`](Self::assign_at) without the end game: a chunk another source is
    /// fetching only when it is overdue. For a source whose upload is shared in turns (see
    /// `source`): a turn spent on a second copy is a turn another downloader waited for.
    pub fn assign_unless_fetched_at(&mut self, src: SocketAddr, now: Instant) -> Option<u32> {
        self.pick(src, now, false)
    }

    /// Whether [`assign_unless_fetched_at`](Self::assign_unless_fetched_at) would hand
    /// `src` a chunk now.
    pub fn has_unfetched_at(&self, src: SocketAddr, now: Instant) -> bool {
        let Some(view) = self.sources.get(&src) else { return false };
        (self.missing > 0 && self.rarest_for(view).is_some()) || self.endgame_pick(src, now, false).is_some()
    }

    fn pick(&mut self, src: SocketAddr, now: Instant, endgame: bool) -> Option<u32> {
        self.advance_first_open();
        let view = self.sources.get(&src)?;
        let mut best: Option<(u16, u32)> = None;
        if self.missing > 0 && self.random.is_some() {
            best = self.random_rarest(src);
        } else if self.missing > 0 {
            best = self.rarest_for(view);
        }
        if best.is_none() {
            best = self.endgame_pick(src, now, endgame);
        }
        let (_, i) = best?;
        if self.state[i as usize] == State::Missing {
            self.unbucket(i);
            self.missing -= 1;
            self.requested_at[i as usize] = Some(now);
        }
        self.state[i as usize] = State::Requested;
        self.requesters[i as usize] += 1;
        self.sources.get_mut(&src)?.assigned.insert(i);
        Some(i)
    }

    /// A random pick among the rarest missing chunks `src` has (from the lowest
    /// availability bucket holding one it has).
    fn random_rarest(&mut self, src: SocketAddr) -> Option<(u16, u32)> {
        let view = self.sources.get(&src)?;
        let (rarest, picks) = self.by_avail.iter().enumerate().skip(1).find_map(|(a, chunks)| {
            let picks: Vec<u32> = chunks.iter().copied().filter(|i| view.has(*i)).collect();
            (!picks.is_empty()).then_some((a as u16, picks))
        })?;
        let r = self.next_random()? as usize;
        Some((rarest, picks[r % picks.len()]))
    }

    /// A chunk another source is fetching: any in the end game (nothing missing, and
    /// `endgame` allowed), else only an overdue one. The fewest copies first, then the
    /// oldest request.
    fn endgame_pick(&self, src: SocketAddr, now: Instant, endgame: bool) -> Option<(u16, u32)> {
        let view = self.sources.get(&src)?;
        let overdue = self.overdue_after();
        let endgame = endgame && self.missing == 0;
        (self.first_open..self.state.len() as u32)
            .filter(|&i| {
                self.state[i as usize] == State::Requested && view.has(i) && !view.assigned.contains(&i)
            })
            .filter(|&i| self.requesters[i as usize] < ENDGAME_COPIES)
            .filter(|&i| {
                endgame
                    || self.requested_at[i as usize]
                        .is_some_and(|t| now.saturating_duration_since(t) > overdue)
            })
            .min_by_key(|&i| (self.requesters[i as usize], self.requested_at[i as usize]))
            .map(|i| (0, i))
    }

    /// How long a chunk may stay with one source before another may take it over too.
    pub fn overdue_after(&self) -> Duration {
        self.typical.map_or(FIRST_OVERDUE, |t| (t * 4).max(MIN_OVERDUE))
    }

    fn advance_first_open(&mut self) {
        while (self.first_open as usize) < self.state.len()
            && self.state[self.first_open as usize] == State::Done
        {
            self.first_open += 1;
        }
    }

    /// `src` delivered chunk `i`, verified. Returns false if it was already done (an end
    /// game duplicate, to be dropped).
    pub fn completed(&mut self, src: SocketAddr, i: u32) -> bool {
        self.completed_at(src, i, Instant::now())
    }

    /// [`completed`](Self::completed) at time `now`, which also tunes the overdue time.
    pub fn completed_at(&mut self, src: SocketAddr, i: u32, now: Instant) -> bool {
        if let Some(v) = self.sources.get_mut(&src) {
            v.assigned.remove(&i);
        }
        let Some(state) = self.state.get(i as usize).copied() else { return false };
        if state == State::Done {
            return false;
        }
        if state == State::Missing {
            self.unbucket(i);
            self.missing -= 1;
        }
        self.state[i as usize] = State::Done;
        if let Some(t) = self.requested_at[i as usize].take() {
            let took = now.saturating_duration_since(t);
            self.typical = Some(self.typical.map_or(took, |avg| (avg * 7 + took) / 8));
        }
        self.requesters[i as usize] = 0;
        self.remaining -= 1;
        true
    }

    /// `src` will not deliver chunk `i` (it lacks it or went away).
    pub fn release(&mut self, src: SocketAddr, i: u32) {
        let Some(view) = self.sources.get_mut(&src) else { return };
        if !view.assigned.remove(&i) {
            return;
        }
        if self.state[i as usize] == State::Requested {
            self.requesters[i as usize] -= 1;
            if self.requesters[i as usize] == 0 {
                self.state[i as usize] = State::Missing;
                self.requested_at[i as usize] = None;
                self.missing += 1;
                self.first_open = self.first_open.min(i);
                self.bucket(i);
            }
        }
    }

    /// `src` sent bytes that failed the hash check; returns its count of bad chunks.
    pub fn failed(&mut self, src: SocketAddr, i: u32) -> u32 {
        self.release(src, i);
        self.sources.get_mut(&src).map_or(0, |v| {
            v.bad += 1;
            v.bad
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn bits(len: u32, ones: &[u32]) -> Bitfield {
        let mut b = Bitfield::new(len);
        ones.iter().for_each(|i| {
            b.set(*i);
        });
        b
    }

    #[test]
    fn one_full_source_gets_chunks_in_order() {
        let mut s = Scheduler::new(3, &Bitfield::new(3));
        s.update_source(addr(1), None);
        assert_eq!(s.assign(addr(1)), Some(0));
        assert_eq!(s.assign(addr(1)), Some(1));
        assert!(s.completed(addr(1), 0));
        assert_eq!(s.assign(addr(1)), Some(2));
        assert!(s.completed(addr(1), 1) && s.completed(addr(1), 2));
        assert!(s.is_done());
        assert_eq!(s.assign(addr(1)), None);
    }

    #[test]
    fn skips_chunks_already_present() {
        let mut s = Scheduler::new(3, &bits(3, &[0, 1]));
        s.update_source(addr(1), None);
        assert_eq!(s.remaining(), 1);
        assert_eq!(s.assign(addr(1)), Some(2), "nobody sends a chunk the receiver already has");
    }

    #[test]
    fn rarest_first() {
        let mut s = Scheduler::new(4, &Bitfield::new(4));
        s.update_source(addr(1), None);
        s.update_source(addr(2), Some(bits(4, &[0, 1, 2])));
        // chunk 3 is held by one source only: the full source fetches it first.
        assert_eq!(s.assign(addr(1)), Some(3));
        assert_eq!(s.assign(addr(2)), Some(0));
    }

    #[test]
    fn partial_source_only_gets_what_it_has() {
        let mut s = Scheduler::new(4, &Bitfield::new(4));
        s.update_source(addr(2), Some(bits(4, &[2])));
        assert_eq!(s.assign(addr(2)), Some(2));
        assert_eq!(s.assign(addr(2)), None);
        assert!(!s.is_useful(addr(3)));
    }

    #[test]
    fn released_and_failed_chunks_go_back() {
        let mut s = Scheduler::new(2, &Bitfield::new(2));
        s.update_source(addr(1), None);
        s.update_source(addr(2), None);
        assert_eq!(s.assign(addr(1)), Some(0));
        assert_eq!(s.failed(addr(1), 0), 1);
        assert_eq!(s.assign(addr(2)), Some(0), "a chunk that failed its check is fetched again");
        assert_eq!(s.assign(addr(1)), Some(1));
        s.remove_source(addr(1));
        assert_eq!(s.assign(addr(2)), Some(1), "a vanished source loses its chunks to the others");
    }

    #[test]
    fn late_joiner_picks_at_random_among_the_rarest() {
        let mut s = Scheduler::new(64, &Bitfield::new(64)).with_random_picks(7);
        s.update_source(addr(1), None);
        s.update_source(addr(2), Some(bits(64, &[0, 1, 2, 3])));
        let order: Vec<u32> = (0..60).filter_map(|_| s.assign(addr(1))).collect();
        assert_eq!(order.len(), 60);
        assert!(order.iter().all(|i| *i >= 4), "chunks held by two sources come last");
        assert_ne!(order, (4..64).collect::<Vec<u32>>(), "not in order");
        assert_eq!(s.assign(addr(1)), Some(0));
    }

    #[test]
    fn end_game_duplicates_last_chunk_once() {
        let mut s = Scheduler::new(1, &Bitfield::new(1));
        for p in 1..=3 {
            s.update_source(addr(p), None);
        }
        assert_eq!(s.assign(addr(1)), Some(0));
        assert_eq!(s.assign(addr(2)), Some(0), "end game: a second source races the slow one");
        assert_eq!(s.assign(addr(3)), None, "at most two copies");
        assert!(s.completed(addr(2), 0));
        assert!(!s.completed(addr(1), 0), "the late duplicate is dropped");
        assert!(s.is_done());
    }

    #[test]
    fn a_turn_takes_no_end_game_copy_only_an_overdue_one() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(1, &Bitfield::new(1));
        s.update_source(addr(1), None);
        s.update_source(addr(2), None);
        assert_eq!(s.assign_at(addr(1), t0), Some(0));
        assert!(!s.has_unfetched_at(addr(2), t0));
        assert_eq!(s.assign_unless_fetched_at(addr(2), t0), None, "another source sends it");
        let late = t0 + FIRST_OVERDUE + Duration::from_millis(1);
        assert!(s.has_unfetched_at(addr(2), late));
        assert_eq!(s.assign_unless_fetched_at(addr(2), late), Some(0), "overdue: taken over");
    }

    #[test]
    fn a_far_slower_source_loses_its_chunk_before_the_end_game() {
        let (slow, fast) = (addr(2), addr(1));
        let mut s = Scheduler::new(6, &Bitfield::new(6));
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        s.update_source(slow, None);
        assert_eq!(s.assign_at(slow, ms(0)), Some(0));
        s.update_source(fast, Some(bits(6, &[0, 1, 2, 3])));
        for (k, i) in [1u32, 2, 3].into_iter().enumerate() {
            let t = 100 * k as u64;
            assert_eq!(s.assign_at(fast, ms(t)), Some(i));
            assert!(s.completed_at(fast, i, ms(t + 100)));
        }
        assert_eq!(s.overdue_after(), MIN_OVERDUE, "chunks take 100 ms here");
        assert_eq!(s.assign_at(fast, ms(1000)), None, "chunk 0 is not overdue yet; 4 and 5 are missing");
        assert_eq!(s.assign_at(fast, ms(2100)), Some(0), "taken over from the slow source");
        assert!(s.completed_at(fast, 0, ms(2200)));
        assert!(!s.completed_at(slow, 0, ms(9000)), "the slow copy is dropped");
        assert_eq!(s.remaining(), 2);
    }

    /// The buckets hold exactly the missing chunks, each under its availability, and the
    /// counts agree.
    fn check(s: &Scheduler) {
        let mut bucketed = 0;
        for (a, chunks) in s.by_avail.iter().enumerate() {
            for &i in chunks {
                assert_eq!(s.state[i as usize], State::Missing, "chunk {i} bucketed but not missing");
                assert_eq!(s.availability[i as usize] as usize, a, "chunk {i} in the wrong bucket");
                bucketed += 1;
            }
        }
        let missing = s.state.iter().filter(|st| **st == State::Missing).count();
        assert_eq!(bucketed, missing, "every missing chunk is in a bucket");
        assert_eq!(s.missing as usize, missing);
        assert_eq!(s.remaining as usize, s.state.iter().filter(|st| **st != State::Done).count());
        for i in 0..s.state.len() as u32 {
            let holders = s.sources.values().filter(|v| v.has(i)).count();
            assert_eq!(s.availability[i as usize] as usize, holders, "chunk {i}'s availability");
        }
    }

    #[test]
    fn buckets_follow_every_change() {
        let n = 64;
        let mut s = Scheduler::new(n, &bits(n, &[3, 9]));
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for step in 0..5000 {
            let src = addr(1 + rnd(4) as u16);
            match rnd(6) {
                0 => {
                    let ones: Vec<u32> = (0..n).filter(|_| rnd(2) == 0).collect();
                    let have = match rnd(8) {
                        0 | 1 => None,
                        2 => Some(Bitfield::new(n)),
                        3 => Some(Bitfield::full(n)),
                        _ => Some(bits(n, &ones)),
                    };
                    s.update_source(src, have);
                }
                1 | 2 => {
                    let _ = s.assign(src);
                }
                3 => {
                    if let Some(&i) = s.sources.get(&src).and_then(|v| v.assigned.iter().next()) {
                        s.completed(src, i);
                    }
                }
                4 => {
                    if let Some(&i) = s.sources.get(&src).and_then(|v| v.assigned.iter().next()) {
                        s.release(src, i);
                        if rnd(2) == 0 {
                            s.source_lacks(src, i); // turned away by a super-seeding peer
                        }
                    }
                }
                _ => {
                    if rnd(20) == 0 {
                        s.remove_source(src);
                    }
                }
            }
            check(&s);
            if s.is_done() {
                s = Scheduler::new(n, &Bitfield::new(n));
            }
            assert!(step < 5000);
        }
    }

    #[test]
    fn a_have_counts_one_chunk() {
        let mut s = Scheduler::new(4, &Bitfield::new(4));
        s.update_source(addr(1), Some(bits(4, &[])));
        assert_eq!(s.assign(addr(1)), None);
        s.source_has(addr(1), 2);
        s.source_has(addr(1), 2);
        s.source_has(addr(1), 99);
        assert_eq!(s.availability[2], 1, "counted once");
        check(&s);
        assert_eq!(s.assign(addr(1)), Some(2));
    }

    #[test]
    fn the_rarest_chunk_wins_then_the_lowest_index() {
        let mut s = Scheduler::new(4, &Bitfield::new(4));
        s.update_source(addr(1), None);
        s.update_source(addr(2), Some(bits(4, &[0, 1, 2])));
        s.update_source(addr(3), Some(bits(4, &[0, 2])));
        // Availability: 0:3, 1:2, 2:3, 3:1.
        assert_eq!(s.assign(addr(1)), Some(3), "the only copy first");
        assert_eq!(s.assign(addr(1)), Some(1), "then the rarer of the rest");
        assert_eq!(s.assign(addr(3)), Some(0), "then the lowest index among equals");
        check(&s);
    }
}
