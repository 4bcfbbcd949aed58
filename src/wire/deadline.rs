//! Reads with a total deadline, not a time-out per `read`: a peer that drips one byte every
//! few seconds cannot hold a connection open past the deadline (as ureq's `timings.rs`).
//!
//! While it waits, the reader also asks a "give way" test every [`POLL`]: a server under
//! pressure uses it to end connections that hold a slot while sending nothing.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The slowest rate a raw payload may arrive, or be written, at: 1 MiB gets 64 s on top of
/// the time-out.
pub const MIN_PAYLOAD_RATE: u64 = 16 * 1024;

/// A byte stream a connection can run over: a `TcpStream`, or an in-memory pair in tests
/// (see [`mem`](super::mem)).
pub trait Socket: Read + Write + Send + Sized {
    /// A second handle on the same stream (the write half).
    fn try_clone(&self) -> io::Result<Self>;
    /// Bounds each `read`; `None` blocks.
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// Bounds each `write`; `None` blocks.
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()>;

    /// Sends up to `len` bytes of `file` from `offset` in one go, as `write` does for a
    /// buffer: returns how many went (0 only when the file ended), or `WouldBlock` /
    /// `TimedOut` when the write time-out passed with nothing sent. This default copies
    /// through a buffer.
    fn send_file_some(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut buf = vec![0u8; len.min(64 * 1024)];
        let got = file.read_at(&mut buf, offset)?;
        self.write_all(&buf[..got])?;
        Ok(got)
    }
}

impl Socket for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, t)
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, t)
    }

    /// sendfile(2): the kernel copies from the page cache into the socket, no user-space
    /// copy (std's `io::copy` does not do this for a file range into a socket). The
    /// socket's write time-out bounds it as it bounds `write`.
    fn send_file_some(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut off = offset as i64;
        nix::sys::sendfile::sendfile64(&*self, file, Some(&mut off), len).map_err(io::Error::from)
    }
}

/// How often a waiting read wakes to check the deadline and the give-way test.
pub const POLL: Duration = Duration::from_millis(100);

/// Says whether a connection waiting for input should give its place to others.
pub type GiveWay = Arc<dyn Fn() -> bool + Send + Sync>;

/// A socket's read half, bounded by a deadline.
pub struct DeadlineStream<S: Socket = TcpStream> {
    stream: S,
    deadline: Instant,
    give_way: Option<GiveWay>,
    /// The read time-out last set on the socket (setting it is a system call).
    timeout_set: Option<Duration>,
}

impl<S: Socket> DeadlineStream<S> {
    pub fn new(stream: S) -> DeadlineStream<S> {
        DeadlineStream { stream, deadline: far_future(), give_way: None, timeout_set: None }
    }

    /// Every read after this fails with `TimedOut` once `deadline` has passed.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    pub fn set_give_way(&mut self, test: GiveWay) {
        self.give_way = Some(test);
    }

    /// Whether the give-way test says to make room now: asked before each request too,
    /// since a client that pipelines requests never makes a read wait, yet holds a slot.
    pub fn must_give_way(&self) -> bool {
        self.give_way.as_ref().is_some_and(|f| f())
    }

    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        if self.timeout_set != Some(t) {
            Socket::set_read_timeout(&self.stream, Some(t))?;
            self.timeout_set = Some(t);
        }
        Ok(())
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// The error a passed deadline gives.
pub fn deadline_passed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
}

/// The error a connection that gave way gives.
pub fn gave_way() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room for others")
}

/// True when `e` says the connection was closed to make room for others.
pub fn is_gave_way(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionAborted && e.to_string().contains("make room")
}

impl<S: Socket> Read for DeadlineStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(deadline_passed());
            }
            // Whole POLL slices while the deadline is far, so the time-out rarely changes.
            let slice = if left > POLL { POLL } else { left.max(Duration::from_millis(1)) };
            self.set_timeout(slice)?;
            match self.stream.read(buf) {
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if self.must_give_way() {
                        return Err(gave_way());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mem::tcp_pair as pair;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_dripping_writer_cannot_pass_the_deadline() {
        let (mut w, r) = pair();
        let dripper = std::thread::spawn(move || {
            for _ in 0..20 {
                if w.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let mut s = DeadlineStream::new(r);
        let started = Instant::now();
        s.set_deadline(started + Duration::from_millis(300));
        let mut buf = [0u8; 100];
        let err = s.read_exact(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
        drop(s);
        dripper.join().unwrap();
    }

    #[test]
    fn gives_way_when_asked_while_waiting() {
        let (_w, r) = pair();
        let mut s = DeadlineStream::new(r);
        let flag = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&flag);
        s.set_give_way(Arc::new(move || f.load(Ordering::SeqCst)));
        s.set_deadline(Instant::now() + Duration::from_secs(10));
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            flag.store(true, Ordering::SeqCst);
        });
        let err = s.read(&mut [0u8; 4]).unwrap_err();
        assert!(is_gave_way(&err), "{err}");
        setter.join().unwrap();
    }
}
