//! Super-seeding for our own protocol: while several downloaders ask a peer that has the
//! whole file at once, it sends each chunk to the swarm once before it sends any chunk
//! twice (BitTorrent's BEP 16 has the same aim).
//!
//! Without it a flash crowd wastes the seeder: every downloader keeps requests open at the
//! one source that has everything and picks the rarest chunks it knows of, without knowing
//! that another downloader already has them on the way, so the seeder sends the file two
//! or three times before the swarm holds one copy.
//!
//! Here a downloader's have request carries the chunks it already has, and the seeder
//! answers with an *offer* instead of "complete": a few chunks the asker lacks that the
//! seeder has sent least often, each offered to one downloader at a time. The downloader
//! fetches those from the seeder and everything else from the other downloaders (it asks
//! again for a new offer as its pipe drains). A downloader alone at the seeder is offered
//! everything it lacks, so one download runs as fast as before. Pure logic: the server
//! calls [`SuperSeed::offer`] for each have request and [`SuperSeed::sent`] for each chunk.

use crate::bitfield::Bitfield;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Chunks offered to one downloader at once while others ask too: enough to keep its
/// requests to the seeder in flight while it asks for the next offer.
pub const QUOTA: usize = 4;
/// A downloader counts as present until its connection ends ([`SuperSeed::gone`]), or
/// this long after its last request (a chunk can take many seconds under an upload cap).
pub const PRESENT: Duration = Duration::from_secs(30);
/// An offered chunk stays reserved for its downloader this long unless sent sooner.
pub const HOLD: Duration = Duration::from_secs(15);

/// Who asks: the server's connection number.
pub type Asker = u64;

/// A seeder's record of one file: how often each chunk went out, and what is offered to
/// whom.
#[derive(Debug)]
pub struct SuperSeed {
    sent: Vec<u32>,
    /// chunk → (the downloader it is offered to, since when).
    reserved: HashMap<u32, (Asker, Instant)>,
    /// Downloaders that asked lately, and when they last did.
    present: HashMap<Asker, Instant>,
    /// Where the next scan for fresh chunks starts, so offers spread over the file.
    cursor: u32,
    /// Chunks never sent.
    never_sent: u32,
}

impl SuperSeed {
    pub fn new(chunks: u32) -> SuperSeed {
        SuperSeed {
            sent: vec![0; chunks as usize],
            reserved: HashMap::new(),
            present: HashMap::new(),
            cursor: 0,
            never_sent: chunks,
        }
    }

    /// The chunks to offer `asker`, which has `has`: all it lacks while it is the only
    /// downloader present; otherwise what is reserved for it plus fresh picks up to
    /// [`QUOTA`]: chunks it lacks, sent no more often than any other chunk it lacks, and
    /// offered to no one else. Only when that leaves it nothing at all, and every chunk
    /// went out at least once, is it offered the least-sent chunks it lacks, whoever they
    /// are offered to.
    pub fn offer(&mut self, asker: Asker, has: &Bitfield, now: Instant) -> Bitfield {
        let n = self.sent.len() as u32;
        self.present.insert(asker, now);
        self.present.retain(|_, last| now.duration_since(*last) < PRESENT);
        let present = &self.present;
        self.reserved.retain(|chunk, (who, since)| {
            present.contains_key(who)
                && now.duration_since(*since) < HOLD
                && !(*who == asker && has.get(*chunk))
        });
        let mut offer = Bitfield::new(n);
        if self.present.len() == 1 {
            for i in (0..n).filter(|i| !has.get(*i)) {
                offer.set(i);
            }
            return offer;
        }
        let mut held = 0;
        for (&chunk, &(who, _)) in &self.reserved {
            if who == asker {
                offer.set(chunk);
                held += 1;
            }
        }
        // Fresh picks: chunks sent as rarely as any chunk it lacks, not offered to another.
        let fewest = (0..n).filter(|i| !has.get(*i)).map(|i| self.sent[i as usize]).min();
        let want = QUOTA.saturating_sub(held);
        let mut picks =
            self.least_sent(want, |i| !has.get(i) && !offer.get(i) && !self.reserved.contains_key(&i));
        picks.retain(|i| Some(self.sent[*i as usize]) == fewest);
        for &i in &picks {
            offer.set(i);
            self.reserved.insert(i, (asker, now));
        }
        if held + picks.len() == 0 && self.never_sent == 0 {
            // Every chunk went out once, and the ones it lacks that went out least are
            // offered to others: rather than leave it idle, the least-sent chunks it lacks.
            // (While a chunk was never sent, it gets nothing here: the others' chunks
            // reach it from them.)
            for i in self.least_sent(QUOTA, |i| !has.get(i)) {
                offer.set(i);
            }
        }
        if let Some(&last) = picks.last() {
            self.cursor = (last + 1) % n.max(1);
        }
        offer
    }

    /// Up to `want` chunks that pass `wanted`, least-sent first, then in order from the
    /// cursor on.
    fn least_sent(&self, want: usize, wanted: impl Fn(u32) -> bool) -> Vec<u32> {
        if want == 0 {
            return Vec::new();
        }
        let n = self.sent.len() as u32;
        // (times sent, distance from the cursor, chunk): the smallest tuples win.
        let mut found: Vec<(u32, u32, u32)> = (0..n)
            .filter(|&i| wanted(i))
            .map(|i| (self.sent[i as usize], (i + n - self.cursor) % n, i))
            .collect();
        if found.len() > want {
            found.select_nth_unstable(want);
            found.truncate(want);
        }
        found.sort_unstable();
        found.into_iter().map(|(_, _, i)| i).collect()
    }

    /// `asker`'s connection ended: its offers go to the others.
    pub fn gone(&mut self, asker: Asker) {
        self.present.remove(&asker);
        self.reserved.retain(|_, (who, _)| *who != asker);
    }

    /// Whether chunk `index` may go to `asker` now. A downloader that takes offers (it
    /// asked with its have-set) among others gets a chunk offered to it, or one offered to
    /// no one unless that chunk went out already while another never did: a request made
    /// from an offer that has since changed (asked for before a crowd came) is turned away
    /// rather than send a chunk twice while another never went out.
    pub fn may_send(&self, index: u32, asker: Asker) -> bool {
        if !self.present.contains_key(&asker) || self.present.len() == 1 {
            return true;
        }
        match self.reserved.get(&index) {
            Some((who, _)) => *who == asker,
            None => self.never_sent == 0 || self.sent.get(index as usize) == Some(&0),
        }
    }

    /// Chunk `index` is being sent to `asker`.
    pub fn sent(&mut self, index: u32, asker: Asker) {
        if let Some(last) = self.present.get_mut(&asker) {
            *last = Instant::now();
        }
        if let Some(count) = self.sent.get_mut(index as usize) {
            if *count == 0 {
                self.never_sent -= 1;
            }
            *count += 1;
        }
        if self.reserved.get(&index).is_some_and(|(who, _)| *who == asker) {
            self.reserved.remove(&index);
        }
    }

    /// How many times chunk `index` was sent.
    pub fn times_sent(&self, index: u32) -> u32 {
        self.sent.get(index as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(n: u32) -> Bitfield {
        Bitfield::new(n)
    }

    #[test]
    fn a_lone_downloader_is_offered_everything_it_lacks() {
        let mut s = SuperSeed::new(10);
        let mut has = none(10);
        has.set(3);
        let offer = s.offer(1, &has, Instant::now());
        assert_eq!(offer.count(), 9);
        assert!(!offer.get(3));
    }

    #[test]
    fn a_crowd_is_offered_distinct_chunks_and_each_chunk_goes_out_once_before_any_twice() {
        let n = 64;
        let mut s = SuperSeed::new(n);
        let now = Instant::now();
        // 16 downloaders with nothing ask; then each takes what it was offered, and asks
        // again, until every chunk was sent once.
        let askers: Vec<Asker> = (1..=16).collect();
        for &a in &askers {
            s.offer(a, &none(n), now);
        }
        let mut offered_to: HashMap<u32, Asker> = HashMap::new();
        let mut haves: HashMap<Asker, Bitfield> = askers.iter().map(|&a| (a, none(n))).collect();
        for round in 0..8 {
            for &a in &askers {
                let offer = s.offer(a, &haves[&a], now);
                assert!(offer.count() as usize <= QUOTA, "round {round}: {} offered", offer.count());
                for i in offer.ones() {
                    if s.times_sent(i) == 0 {
                        if let Some(other) = offered_to.insert(i, a) {
                            assert_eq!(other, a, "fresh chunk {i} offered to two downloaders");
                        }
                    }
                }
                // It fetches one offered chunk.
                let first = offer.ones().next();
                if let Some(i) = first {
                    let min = (0..n).map(|c| s.times_sent(c)).min().unwrap();
                    assert_eq!(
                        s.times_sent(i),
                        min,
                        "chunk {i} sent again while a chunk was sent {min} times"
                    );
                    s.sent(i, a);
                    haves.get_mut(&a).unwrap().set(i);
                }
            }
        }
        assert!((0..n).all(|c| s.times_sent(c) == 2), "8 rounds x 16 = 128 = every chunk twice");
    }

    #[test]
    fn a_request_from_a_stale_offer_is_turned_away() {
        let mut s = SuperSeed::new(8);
        let now = Instant::now();
        let alone = s.offer(1, &none(8), now);
        assert_eq!(alone.count(), 8, "alone: offered everything");
        assert!(s.may_send(0, 1));
        s.sent(0, 1);
        // 1 also asked for chunk 1; before the seeder reads that request, 2 comes and is
        // offered chunk 1.
        let second = s.offer(2, &none(8), now);
        assert!(second.get(1), "{second:?}");
        assert!(!s.may_send(1, 1), "chunk 1 is offered to 2 now");
        assert!(s.may_send(1, 2));
        assert!(!s.may_send(0, 2), "chunk 0 went out once; others never did");
        assert!(s.may_send(0, 99), "a downloader that never asked with its have-set is served");
    }

    #[test]
    fn an_offer_keeps_what_was_reserved_and_forgets_what_the_downloader_got_elsewhere() {
        let mut s = SuperSeed::new(32);
        let now = Instant::now();
        s.offer(1, &none(32), now);
        let first = s.offer(2, &none(32), now);
        assert_eq!(first.count() as usize, QUOTA);
        assert_eq!(s.offer(2, &none(32), now).ones().collect::<Vec<_>>(), first.ones().collect::<Vec<_>>());
        // It got one of them from another peer: that reservation goes, a fresh chunk comes.
        let mut has = none(32);
        let got = first.ones().next().unwrap();
        has.set(got);
        let again = s.offer(2, &has, now);
        assert_eq!(again.count() as usize, QUOTA);
        assert!(!again.get(got));
    }

    #[test]
    fn nothing_goes_out_twice_while_a_chunk_never_went_out_and_leavers_free_their_chunks() {
        let n = QUOTA as u32; // one downloader's quota is the whole file
        let mut s = SuperSeed::new(n);
        let t0 = Instant::now();
        s.offer(1, &none(n), t0);
        assert_eq!(s.offer(2, &none(n), t0).count(), n, "2 is offered (and holds) the whole file");
        assert_eq!(s.offer(3, &none(n), t0).count(), 0, "nothing fresh is left for 3");
        s.sent(0, 2);
        assert_eq!(s.offer(3, &none(n), t0).count(), 0, "chunk 0 went out, but the others never did");
        for i in 1..n {
            s.sent(i, 2);
        }
        assert_eq!(s.offer(3, &none(n), t0).count(), n, "every chunk went out once");
        // 3 holds the whole file now; its connection ends: its chunks go to the next asker.
        s.gone(3);
        assert_eq!(s.offer(4, &none(n), t0).count(), n);
        assert!(s.reserved.values().all(|(who, _)| *who == 4), "{:?}", s.reserved);
        // 4 says nothing for PRESENT: it is taken for gone too.
        let later = t0 + PRESENT + Duration::from_millis(1);
        s.offer(1, &none(n), later);
        assert_eq!(s.offer(5, &none(n), later).count(), n);
        assert!(s.reserved.values().all(|(who, _)| *who == 5), "{:?}", s.reserved);
    }
}
