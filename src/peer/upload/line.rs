//! The upload line's state and rules, with the time passed in (like the scheduler's), so
//! they are tested without threads or sleeps. [`super::UploadLine`] wraps it in a lock and
//! waits on it with the real clock.
//!
//! Two things share the line: the token bucket that caps the byte rate, and the queue of
//! uploads (a native chunk, or up to [`super::QUANTUM`] bytes of BitTorrent blocks) in the
//! order they asked. The first in line gets the bandwidth until it is done; one that takes
//! no bytes for [`STUCK`] goes to the back. `PROTOCOL.md` section 4.3 tells why.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A first in line that takes no bytes for this long goes to the back.
pub const STUCK: Duration = Duration::from_millis(100);

/// One upload's place in the line.
pub type Ticket = u64;

/// What a ticket waiting for its place should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// Its place came: send.
    Come,
    /// Look again at this instant (or when the line moves before).
    LookAt(Instant),
}

/// The token bucket and the queue.
pub struct Line {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
    queue: VecDeque<Ticket>,
    next: Ticket,
    /// When the first in line last took bytes (or got to the front), or will be done
    /// paying off the bucket's debt.
    front_active: Instant,
    /// When the first in line should be done, once it said how much it has left.
    front_due: Option<Instant>,
}

impl Line {
    /// `bytes_per_sec`, with a burst of 1/20 s worth (at least 64 KiB).
    pub fn new(bytes_per_sec: u64, now: Instant) -> Line {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 20.0).max(64.0 * 1024.0);
        Line {
            rate,
            burst,
            tokens: burst,
            refilled: now,
            queue: VecDeque::new(),
            next: 0,
            front_active: now,
            front_due: None,
        }
    }

    /// A place at the back.
    pub fn join(&mut self, now: Instant) -> Ticket {
        let ticket = self.next;
        self.next += 1;
        if self.queue.is_empty() {
            self.front_active = now;
        }
        self.queue.push_back(ticket);
        ticket
    }

    /// `ticket` leaves the line; the next one's time starts now.
    pub fn leave(&mut self, ticket: Ticket, now: Instant) {
        if self.queue.front() == Some(&ticket) {
            self.front_active = now;
            self.front_due = None;
        }
        self.queue.retain(|t| *t != ticket);
    }

    /// Uploads ahead of `ticket`; the first of them is being sent.
    pub fn ahead(&self, ticket: Ticket) -> usize {
        self.queue.iter().position(|t| *t == ticket).unwrap_or(0)
    }

    /// Uploads in line, the one being sent included.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How long `bytes` take at the rate.
    pub fn time_for(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate)
    }

    /// Sends a first in line that took nothing for [`STUCK`] to the back; true if the line
    /// moved.
    pub fn rotate_stuck(&mut self, now: Instant) -> bool {
        if self.queue.len() < 2 || now.saturating_duration_since(self.front_active) < STUCK {
            return false;
        }
        if let Some(stuck) = self.queue.pop_front() {
            self.queue.push_back(stuck);
        }
        self.front_active = now;
        self.front_due = None;
        true
    }

    /// Whether `ticket`'s place came: it is first, or second while the first should be
    /// done within `lead` (a turn that needs a round trip to name its chunk gets its place
    /// that much early, `PROTOCOL.md` section 4.4). Else when to look again: when the first
    /// would count as stuck, or when the lead starts.
    pub fn place(&self, ticket: Ticket, lead: Duration, now: Instant) -> Place {
        let mut look = self.front_active + STUCK;
        match self.queue.iter().position(|t| *t == ticket) {
            Some(0) | None => return Place::Come,
            Some(1) if !lead.is_zero() => {
                if let Some(due) = self.front_due {
                    let starts = due.checked_sub(lead).unwrap_or(now);
                    if starts <= now {
                        return Place::Come;
                    }
                    look = look.min(starts);
                }
            }
            _ => {}
        }
        Place::LookAt(look)
    }

    /// The first in line takes `n` bytes' worth of tokens; returns how long it must wait
    /// before it sends them (zero unless the bucket is in debt). Paying off the debt is
    /// not being stuck: the others would wait that long too.
    pub fn take(&mut self, n: usize, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.refilled).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst) - n as f64;
        self.refilled = now;
        let wait = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        };
        self.front_active = now + wait;
        wait
    }

    /// `ticket` has `bytes` left to send after what it took: when it is first, the second
    /// learns when its place comes. True if that changed.
    pub fn left(&mut self, ticket: Ticket, bytes: usize, now: Instant) -> bool {
        if self.queue.front() != Some(&ticket) {
            return false;
        }
        self.front_due = Some(now.max(self.front_active) + self.time_for(bytes));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_upload_that_asked_first_goes_first_and_the_next_when_it_leaves() {
        let t0 = Instant::now();
        let mut line = Line::new(1 << 20, t0);
        let (a, b, c) = (line.join(t0), line.join(t0), line.join(t0));
        assert_eq!((line.ahead(a), line.ahead(b), line.ahead(c)), (0, 1, 2));
        assert_eq!(line.place(a, Duration::ZERO, t0), Place::Come);
        assert_eq!(line.place(b, Duration::ZERO, t0), Place::LookAt(t0 + STUCK));
        line.leave(a, t0 + 10 * MS);
        assert_eq!(line.place(b, Duration::ZERO, t0 + 10 * MS), Place::Come);
        assert_eq!(line.ahead(c), 1);
        line.leave(c, t0 + 10 * MS); // from the middle: nothing else moves
        assert_eq!(line.len(), 1);
    }

    #[test]
    fn a_first_that_takes_nothing_goes_to_the_back_but_one_paying_its_debt_does_not() {
        let t0 = Instant::now();
        let mut line = Line::new(512 << 10, t0);
        let (a, b) = (line.join(t0), line.join(t0));
        assert!(!line.rotate_stuck(t0 + STUCK - MS));
        assert!(line.rotate_stuck(t0 + STUCK), "a took nothing for STUCK");
        assert_eq!((line.ahead(b), line.ahead(a)), (0, 1));
        // b spends the burst, then 64 KiB more: at 512 KiB/s that is 125 ms of debt,
        // longer than STUCK, and it keeps its place meanwhile.
        let t1 = t0 + STUCK;
        assert_eq!(line.take(64 << 10, t1), Duration::ZERO);
        let wait = line.take(64 << 10, t1);
        assert_eq!(wait, Duration::from_millis(125));
        assert!(!line.rotate_stuck(t1 + wait + STUCK - MS));
        assert!(line.rotate_stuck(t1 + wait + STUCK));
        assert_eq!(line.ahead(a), 0);
    }

    #[test]
    fn a_lone_upload_is_never_stuck() {
        let t0 = Instant::now();
        let mut line = Line::new(1 << 20, t0);
        let a = line.join(t0);
        assert!(!line.rotate_stuck(t0 + Duration::from_secs(5)));
        assert_eq!(line.place(a, Duration::ZERO, t0 + Duration::from_secs(5)), Place::Come);
    }

    #[test]
    fn the_second_place_comes_its_lead_before_the_first_is_done() {
        let t0 = Instant::now();
        let mut line = Line::new(1 << 20, t0);
        let (a, b) = (line.join(t0), line.join(t0));
        let lead = Duration::from_millis(400);
        // Until the first says what it has left, only STUCK says when to look again.
        assert_eq!(line.place(b, lead, t0), Place::LookAt(t0 + STUCK));
        line.take(64 << 10, t0);
        assert!(line.left(a, 1 << 20, t0), "1 MiB left: done at t0 + 1 s");
        assert!(!line.left(b, 0, t0), "only the first says");
        let t1 = t0 + 50 * MS;
        line.take(1, t1);
        assert_eq!(line.place(b, lead, t1), Place::LookAt(t1 + STUCK), "it would be stuck first");
        let t2 = t0 + 550 * MS;
        line.take(1, t2);
        assert_eq!(line.place(b, lead, t2), Place::LookAt(t0 + 600 * MS), "the lead starts");
        assert_eq!(line.place(b, lead, t0 + 600 * MS), Place::Come);
        assert_eq!(line.place(b, Duration::ZERO, t0 + 600 * MS), Place::LookAt(t2 + STUCK), "no lead");
    }

    #[test]
    fn the_bucket_caps_the_rate_after_its_burst() {
        let t0 = Instant::now();
        let mut line = Line::new(1 << 20, t0);
        assert_eq!(line.take(64 << 10, t0), Duration::ZERO, "the burst");
        assert_eq!(line.take(256 << 10, t0), Duration::from_millis(250));
        // Half a second later the debt is paid and the burst is back, no more.
        assert_eq!(line.take(64 << 10, t0 + 500 * MS), Duration::ZERO);
        assert_eq!(
            line.take(64 << 10, t0 + 500 * MS),
            Duration::from_millis(62) + Duration::from_micros(500)
        );
        assert_eq!(line.time_for(1 << 20), Duration::from_secs(1));
    }
}
