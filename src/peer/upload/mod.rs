//! The peer's one upload line: every upload under `--upload-limit`, native chunks and
//! BitTorrent blocks alike, waits its turn here, and the first in line gets the bandwidth
//! until it is done (`PROTOCOL.md` section 4.3). The rules live in [`line`](mod@line) with the time
//! passed in; this wrapper shares them between connection threads and waits with the real
//! clock.
//!
//! Whole chunks taking turns, instead of every upload in progress getting a slice, keep the
//! rate and bring each chunk sooner: 16 requesters at 4 MiB/s get the first chunk after
//! 0.25 s instead of all sixteen after 4 s, so a swarm passes chunks on while the seeder is
//! still sending.

pub mod line;

use line::{Line, Place, Ticket};
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use line::STUCK;

/// The most one BitTorrent connection sends in one turn (a native chunk's size): then it
/// goes to the back, so its blocks share the line with chunks as fairly as chunks do.
pub const QUANTUM: usize = crate::manifest::CHUNK_SIZE as usize;

/// The line, shared by every connection of a peer.
pub struct UploadLine {
    line: Mutex<Line>,
    moved: Condvar,
}

/// One upload's place in line; dropping it lets the next one go.
pub struct Turn {
    up: Arc<UploadLine>,
    ticket: Ticket,
}

impl UploadLine {
    pub fn new(bytes_per_sec: u64) -> Arc<UploadLine> {
        Arc::new(UploadLine {
            line: Mutex::new(Line::new(bytes_per_sec, Instant::now())),
            moved: Condvar::new(),
        })
    }

    /// A place at the back of the line.
    pub fn turn(self: &Arc<Self>) -> Turn {
        let ticket = self.line.lock().join(Instant::now());
        Turn { up: Arc::clone(self), ticket }
    }

    /// Uploads in line now, the one being sent included.
    pub fn waiting(&self) -> usize {
        self.line.lock().len()
    }

    /// How long `bytes` take at the limit.
    pub fn time_for(&self, bytes: usize) -> Duration {
        self.line.lock().time_for(bytes)
    }

    /// Waits until `ticket`'s place comes (see [`Line::place`]); false at `deadline` if
    /// it has not come by then.
    fn wait(&self, ticket: Ticket, lead: Duration, deadline: Option<Instant>) -> bool {
        let mut line = self.line.lock();
        loop {
            let now = Instant::now();
            if line.rotate_stuck(now) {
                self.moved.notify_all();
            }
            let look = match line.place(ticket, lead, now) {
                Place::Come => return true,
                Place::LookAt(at) => at,
            };
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            let until = deadline.map_or(look, |d| d.min(look));
            self.moved.wait_until(&mut line, until);
        }
    }
}

impl Turn {
    /// Waits for this upload's turn, then takes `n` bytes' worth of tokens (sleeping while
    /// the bucket is in debt).
    pub fn take(&self, n: usize) {
        self.up.wait(self.ticket, Duration::ZERO, None);
        let wait = self.up.line.lock().take(n, Instant::now());
        std::thread::sleep(wait);
    }

    /// Uploads ahead of this one; the first of them is being sent.
    pub fn ahead(&self) -> usize {
        self.up.line.lock().ahead(self.ticket)
    }

    /// Says how many bytes this upload has left after what it took, so the next in line
    /// knows when its place comes (see [`wait_place`](Self::wait_place)).
    pub fn left(&self, bytes: usize) {
        if self.up.line.lock().left(self.ticket, bytes, Instant::now()) {
            self.up.moved.notify_all();
        }
    }

    /// Waits for this upload's turn until `deadline`; false if it has not come by then.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        self.up.wait(self.ticket, Duration::ZERO, Some(deadline))
    }

    /// Waits until this turn comes within `lead`: it is first in line, or second while the
    /// first should be done within `lead`. False at `deadline` if neither came by then.
    pub fn wait_place(&self, lead: Duration, deadline: Instant) -> bool {
        self.up.wait(self.ticket, lead, Some(deadline))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.up.line.lock().leave(self.ticket, Instant::now());
        self.up.moved.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_in_line_finish_in_the_order_they_asked() {
        // The rules are tested in `line`; this checks the waiting around them. The first
        // upload is the biggest: sharing the rate slice by slice, the others would finish
        // before it.
        let up = UploadLine::new(64 << 20);
        let finished = Mutex::new(Vec::new());
        let turns: Vec<Turn> = (0..3).map(|_| up.turn()).collect();
        std::thread::scope(|s| {
            for (i, turn) in turns.into_iter().enumerate().rev() {
                let finished = &finished;
                s.spawn(move || {
                    for _ in 0..if i == 0 { 64 } else { 1 } {
                        turn.take(64 << 10);
                    }
                    finished.lock().push(i);
                });
            }
        });
        assert_eq!(*finished.lock(), vec![0, 1, 2]);
        assert_eq!(up.waiting(), 0);
    }
}
