//! A token bucket shared by every upload of a peer: `--upload-limit 4M` caps the sum.
//!
//! Whole chunks take turns ([`RateLimiter::turn`]): the chunk that started first gets the
//! bandwidth until it is sent, instead of every chunk in progress getting a slice. The rate
//! is the same, but under a cap each chunk arrives sooner (16 requesters at 4 MiB/s: the
//! first chunk after 0.25 s instead of all sixteen after 4 s), so a swarm can pass chunks
//! on while the seeder is still sending. A chunk whose reader stops reading loses its turn
//! after [`STUCK`], so a slow reader cannot hold up the others.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A chunk that has its turn but takes no bytes for this long goes to the back of the line.
pub const STUCK: Duration = Duration::from_millis(100);

/// Caps a byte rate across threads. Callers take bytes before sending them and sleep when
/// the bucket is in debt, so the long-run rate never exceeds the limit.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
    turns: Mutex<Line>,
    moved: Condvar,
}

/// Chunks waiting for their turn, first in line first.
struct Line {
    queue: VecDeque<u64>,
    next: u64,
    /// When the first in line last took bytes (or got to the front).
    front_active: Instant,
    /// When the first in line should be done, once it said how much it has left.
    front_due: Option<Instant>,
}

/// One chunk's place in line; leaving it (drop) lets the next one go.
pub struct Turn<'a> {
    limiter: &'a RateLimiter,
    ticket: u64,
}

impl Turn<'_> {
    /// Waits for this chunk's turn, then takes `n` bytes' worth of tokens.
    pub fn take(&self, n: usize) {
        self.limiter.wait_turn(self.ticket, Duration::ZERO, None);
        let wait = self.limiter.debit(n);
        // Paying off the debt is not being stuck: the others wait that long too.
        self.limiter.turns.lock().front_active = Instant::now() + wait;
        std::thread::sleep(wait);
    }

    /// How many chunks are ahead of this one in line; the first of them is being sent.
    pub fn ahead(&self) -> usize {
        let line = self.limiter.turns.lock();
        line.queue.iter().position(|t| *t == self.ticket).unwrap_or(0)
    }

    /// Says how many bytes this turn's chunk has left to send after what it took, so the
    /// next in line knows when its turn comes (see [`wait_place`](Self::wait_place)).
    pub fn left(&self, bytes: usize) {
        let mut line = self.limiter.turns.lock();
        if line.queue.front() == Some(&self.ticket) {
            line.front_due = Some(Instant::now() + self.limiter.time_for(bytes));
            drop(line);
            self.limiter.moved.notify_all();
        }
    }

    /// Waits for this chunk's turn until `deadline`; false if it has not come by then.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.limiter.wait_turn(self.ticket, Duration::ZERO, Some(deadline))
    }

    /// Waits until this turn comes within `lead`: it is first in line, or second while the
    /// first should be done within `lead`. False at `deadline` if neither came by then.
    pub fn wait_place(&self, lead: Duration, deadline: Instant) -> bool {
        self.limiter.wait_turn(self.ticket, lead, Some(deadline))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut line = self.limiter.turns.lock();
        if line.queue.front() == Some(&self.ticket) {
            line.front_active = Instant::now();
            line.front_due = None;
        }
        line.queue.retain(|t| *t != self.ticket);
        drop(line);
        self.limiter.moved.notify_all();
    }
}

impl RateLimiter {
    /// `bytes_per_sec` with a burst of 1/20 s worth (at least 64 KiB).
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 20.0).max(64.0 * 1024.0);
        let line = Line { queue: VecDeque::new(), next: 0, front_active: Instant::now(), front_due: None };
        RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
            turns: Mutex::new(line),
            moved: Condvar::new(),
        }
    }

    /// A place in line for one chunk's bytes.
    pub fn turn(&self) -> Turn<'_> {
        let mut line = self.turns.lock();
        let ticket = line.next;
        line.next += 1;
        if line.queue.is_empty() {
            line.front_active = Instant::now();
        }
        line.queue.push_back(ticket);
        Turn { limiter: self, ticket }
    }

    /// Chunks in line now, the one being sent included.
    pub fn waiting(&self) -> usize {
        self.turns.lock().queue.len()
    }

    /// How long `bytes` take to send at the limit.
    pub fn time_for(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate)
    }

    /// Returns true once `ticket` is first in line, or second while the first should be
    /// done within `lead`; false at `deadline` if that comes first. A first that took
    /// nothing for [`STUCK`] goes to the back.
    fn wait_turn(&self, ticket: u64, lead: Duration, deadline: Option<Instant>) -> bool {
        let mut line = self.turns.lock();
        loop {
            let now = Instant::now();
            // How long until the first in line should be done, when `ticket` is second.
            let mut due_in = None;
            match line.queue.iter().position(|t| *t == ticket) {
                Some(0) => return true,
                Some(1) if !lead.is_zero() => {
                    due_in = line.front_due.map(|d| d.saturating_duration_since(now));
                    if due_in.is_some_and(|d| d <= lead) {
                        return true;
                    }
                }
                _ => {}
            }
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            let idle = line.front_active.elapsed();
            if idle >= STUCK {
                if let Some(stuck) = line.queue.pop_front() {
                    line.queue.push_back(stuck);
                }
                line.front_active = Instant::now();
                line.front_due = None;
                self.moved.notify_all();
                continue;
            }
            let mut nap = STUCK - idle;
            if let Some(d) = due_in {
                nap = nap.min(d - lead);
            }
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            self.moved.wait_for(&mut line, nap);
        }
    }

    /// Takes `n` bytes' worth of tokens, sleeping as long as needed.
    pub fn take(&self, n: usize) {
        std::thread::sleep(self.debit(n));
    }

    /// Takes `n` bytes' worth of tokens; returns how long the caller must wait before it
    /// sends them (zero unless the bucket is in debt).
    fn debit(&self, n: usize) -> Duration {
        let mut st = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
        st.0 = (st.0 + refill).min(self.burst) - n as f64;
        st.1 = now;
        if st.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-st.0 / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_that_started_first_is_sent_first() {
        // 512 KiB/s: each 64 KiB slice waits 125 ms for its tokens, longer than STUCK, and
        // that wait does not cost a chunk its turn.
        let lim = std::sync::Arc::new(RateLimiter::new(512 << 10));
        let finished = std::sync::Arc::new(Mutex::new(Vec::new()));
        let turns: Vec<Turn> = (0..3).map(|_| lim.turn()).collect();
        std::thread::scope(|s| {
            for (i, turn) in turns.into_iter().enumerate().rev() {
                let finished = &finished;
                s.spawn(move || {
                    // The first chunk is the biggest: taking turns slice by slice, the
                    // others would finish before it.
                    for _ in 0..if i == 0 { 3 } else { 1 } {
                        turn.take(64 * 1024);
                    }
                    finished.lock().push(i);
                    drop(turn);
                });
            }
        });
        assert_eq!(*finished.lock(), vec![0, 1, 2]);
    }

    #[test]
    fn a_turn_knows_how_many_chunks_are_ahead() {
        let lim = RateLimiter::new(1 << 20);
        let (first, second, third) = (lim.turn(), lim.turn(), lim.turn());
        assert_eq!((first.ahead(), second.ahead(), third.ahead()), (0, 1, 2));
        drop(second);
        assert_eq!(third.ahead(), 1);
        drop(first);
        assert_eq!(third.ahead(), 0);
    }

    #[test]
    fn a_place_comes_its_lead_before_the_chunk_ahead_is_sent() {
        // 1 MiB/s: the first sends 1 MiB (after the burst) in about a second, saying what
        // it has left after each slice; with a lead of 0.4 s the second's place comes
        // after about 0.6 s.
        let lim = RateLimiter::new(1 << 20);
        let (front, second) = (lim.turn(), lim.turn());
        let lead = Duration::from_millis(400);
        assert!(!second.wait_place(lead, Instant::now() + Duration::from_millis(30)), "nothing said yet");
        let start = Instant::now();
        let (came, sent) = std::thread::scope(|s| {
            let sender = s.spawn(|| {
                for left in (0..17).rev() {
                    front.take(64 << 10);
                    front.left(left * (64 << 10));
                }
                start.elapsed()
            });
            assert!(second.wait_place(lead, start + Duration::from_secs(3)));
            let came = start.elapsed();
            // Without a lead, only the first place counts.
            assert!(!second.wait_place(Duration::ZERO, Instant::now() + Duration::from_millis(20)));
            (came, sender.join().unwrap())
        });
        assert!(came + Duration::from_millis(250) < sent, "came {came:?}, the first done {sent:?}");
        assert!(came >= Duration::from_millis(450), "came {came:?}, not a lead's time before the end");
        drop(front);
        assert!(second.wait_place(Duration::ZERO, Instant::now()));
    }

    #[test]
    fn a_chunk_that_stops_taking_loses_its_turn() {
        let lim = RateLimiter::new(64 << 20);
        let stuck = lim.turn();
        stuck.take(1024); // first in line, then its reader stops reading
        let next = lim.turn();
        let t = Instant::now();
        next.take(1024);
        assert!(t.elapsed() < STUCK * 20, "waited {:?}", t.elapsed());
        drop(stuck);
    }

    #[test]
    fn debt_makes_callers_wait() {
        let lim = RateLimiter::new(1 << 20);
        let t = Instant::now();
        lim.take(64 * 1024); // the burst
        lim.take(256 * 1024); // a quarter second of debt
        assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    }
}
