//! Writes with a total deadline, the other direction of [`deadline`](super::deadline): the
//! bytes of one reply are owed by a time, `base + len / MIN_PAYLOAD_RATE` from when its
//! first byte was offered, and no write may go `base` without progress. A per-call
//! `SO_SNDTIMEO` alone is reset by a reader that takes a few bytes now and then, and a
//! reader that takes nothing held a serving thread for a whole time-out per call.
//!
//! While a write waits for room in the socket, it asks the same "give way" test reads ask
//! every [`POLL`]: a connection blocked because its peer does not read holds a slot like
//! one that sends nothing, and gives it up under pressure (see `conn_limit`).

use super::deadline::MIN_PAYLOAD_RATE;
use super::deadline::{gave_way, GiveWay, Socket, POLL};
use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What the kernel holds of a small-reply server's connection (the tracker, native and
/// HTTP; see [`cap_send_buffer`]): a client that does not read blocks its worker, which
/// then gives way under pressure, after this much instead of the 4 MiB the kernel would
/// let it grow to.
pub const SMALL_REPLIES_SEND_BUFFER: usize = 64 * 1024;

/// Caps what the kernel holds for `stream` on its way out at about `bytes` (Linux doubles
/// the figure for its bookkeeping). Without it a socket's send buffer grows to 4 MiB, and a
/// client that never reads made a server fill that much per connection before a single
/// write blocked (and its deadline or give-way test could act). For servers whose replies
/// are small (the tracker); the peer server keeps the kernel's tuning for its chunks.
pub fn cap_send_buffer(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::SndBuf, &bytes).map_err(io::Error::from)
}

/// A socket's write half, every send bounded by its deadline.
pub struct DeadlineWriter<S: Socket> {
    stream: S,
    /// The fixed part of every send's budget, and the longest a send may go without
    /// moving a byte.
    base: Duration,
    /// The slowest rate a send may go at (bytes per second).
    min_rate: u64,
    give_way: Option<GiveWay>,
    /// The write time-out last set on the socket (setting it is a system call).
    timeout_set: Option<Duration>,
}

/// How long a send of `len` bytes may take in all: `base`, plus `len` at `min_rate`.
pub fn send_budget(base: Duration, len: usize, min_rate: u64) -> Duration {
    base + Duration::from_secs_f64(len as f64 / min_rate.max(1) as f64)
}

impl<S: Socket> DeadlineWriter<S> {
    pub fn new(stream: S, base: Duration) -> DeadlineWriter<S> {
        DeadlineWriter { stream, base, min_rate: MIN_PAYLOAD_RATE, give_way: None, timeout_set: None }
    }

    /// Sets the slowest rate a send may go at (by default [`MIN_PAYLOAD_RATE`], the floor
    /// reads of a payload have too).
    pub fn set_min_rate(&mut self, bytes_per_sec: u64) {
        self.min_rate = bytes_per_sec;
    }

    pub fn set_base(&mut self, base: Duration) {
        self.base = base;
    }

    pub fn set_give_way(&mut self, test: GiveWay) {
        self.give_way = Some(test);
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Writes all of `bytes` within their budget.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let sent = self.drive(bytes.len(), |s, done| match s.write(&bytes[done..]) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes")),
            other => other,
        })?;
        debug_assert_eq!(sent, bytes.len());
        Ok(())
    }

    /// Sends `len` bytes of `file` from `offset` within their budget (sendfile(2) on TCP);
    /// returns how many went, fewer only when the file ended.
    pub fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        self.drive(len, |s, done| s.send_file_some(file, offset + done as u64, len - done))
    }

    /// Runs `step` (which sends from byte `done` on and says how many went; 0 ends) until
    /// `len` bytes went, the budget or the stall limit passed, or the connection gave way.
    fn drive(
        &mut self,
        len: usize,
        mut step: impl FnMut(&mut S, usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let started = Instant::now();
        let deadline = started + send_budget(self.base, len, self.min_rate);
        let mut moved_at = started;
        let mut done = 0;
        while done < len {
            let now = Instant::now();
            let left = deadline.min(moved_at + self.base).saturating_duration_since(now);
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "write deadline passed: {done} of {len} bytes taken in {:.1} s",
                        started.elapsed().as_secs_f64()
                    ),
                ));
            }
            self.set_timeout(left.min(POLL).max(Duration::from_millis(1)))?;
            match step(&mut self.stream, done) {
                Ok(0) => break,
                Ok(n) => {
                    done += n;
                    moved_at = Instant::now();
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if self.give_way.as_ref().is_some_and(|f| f()) {
                        return Err(gave_way());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        if self.timeout_set != Some(t) {
            Socket::set_write_timeout(&self.stream, Some(t))?;
            self.timeout_set = Some(t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A connected pair whose reading side has a small receive buffer, so a writer
    /// blocks soon.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_recv_buffer_size(4096).unwrap();
        s.connect(&l.local_addr().unwrap().into()).unwrap();
        let reader: TcpStream = s.into();
        (l.accept().unwrap().0, reader)
    }

    #[test]
    fn a_reader_taking_a_little_now_and_then_cannot_stretch_a_send() {
        let (w, mut r) = pair();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        // 4 KiB every 100 ms: progress three times per `base`, at 40 KiB/s, far below the
        // 1 MiB/s floor set here: 4 MiB owe their last byte 4.3 s after the first.
        let trickle = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                if matches!(r.read(&mut buf), Ok(0) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let base = Duration::from_millis(300);
        let mut dw = DeadlineWriter::new(w, base);
        dw.set_min_rate(1 << 20);
        let started = Instant::now();
        let err = dw.send(&vec![7u8; 4 << 20]).unwrap_err();
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("write deadline passed"), "{err}");
        let budget = send_budget(base, 4 << 20, 1 << 20);
        assert!(took >= budget && took < budget + Duration::from_secs(2), "{took:?} for {budget:?}");
        trickle.join().unwrap();
    }

    #[test]
    fn a_reader_that_takes_nothing_is_given_up_on_after_base() {
        let (w, _r) = pair();
        let mut dw = DeadlineWriter::new(w, Duration::from_millis(300));
        let started = Instant::now();
        let err = dw.send(&vec![7u8; 8 << 20]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn a_blocked_send_gives_way_when_asked() {
        let (w, _r) = pair();
        let mut dw = DeadlineWriter::new(w, Duration::from_secs(30));
        let flag = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&flag);
        dw.set_give_way(Arc::new(move || f.load(Ordering::SeqCst)));
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
        });
        let err = dw.send(&vec![7u8; 8 << 20]).unwrap_err();
        assert!(super::super::deadline::is_gave_way(&err), "{err}");
        setter.join().unwrap();
    }
}
