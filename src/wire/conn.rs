//! A framed connection over TCP, used by both sides: requests out, replies in (or the
//! reverse on a server). Every read has a total deadline (see [`deadline`](super::deadline)):
//! a reply must arrive whole within the connection's time-out, a request within the message
//! deadline once its first byte came, and a raw payload at a minimum rate. Every write has
//! one too (see [`send_deadline`](super::send_deadline)): a message is owed whole within the
//! message deadline plus its length at the same minimum rate.

use super::deadline::{gave_way, DeadlineStream, GiveWay, Socket};
use super::frame::{read_frame, read_full, MAX_CONTROL_FRAME};
use super::send_deadline::DeadlineWriter;
use super::{decode_reply, decode_request, encode_reply, encode_request, FrameError, WireError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::deadline::MIN_PAYLOAD_RATE;

/// One connection that speaks frames: over TCP, or over any [`Socket`] in tests.
pub struct Conn<S: Socket = TcpStream> {
    reader: BufReader<DeadlineStream<S>>,
    writer: DeadlineWriter<S>,
    peer: SocketAddr,
    /// How long a reply may take, and how long a server waits for the next request.
    io_timeout: Duration,
    /// How long a request may take once its first byte arrived.
    message_deadline: Duration,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

impl Conn {
    /// Connects with a time-out, and bounds every later read and write by `io_timeout`.
    pub fn connect(addr: SocketAddr, io_timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, io_timeout)?;
        Conn::new(stream, io_timeout)
    }

    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream, io_timeout: Duration) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        Conn::over(stream, peer, io_timeout)
    }
}

impl<S: Socket> Conn<S> {
    /// A connection over `stream` to `peer` (for TCP, [`Conn::new`] sets the socket up).
    pub fn over(stream: S, peer: SocketAddr, io_timeout: Duration) -> io::Result<Conn<S>> {
        let writer = DeadlineWriter::new(stream.try_clone()?, io_timeout);
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, DeadlineStream::new(stream)),
            writer,
            peer,
            io_timeout,
            message_deadline: io_timeout,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
        })
    }

    /// A server's bound on one request once it started arriving (the idle wait before it
    /// is the `io_timeout`), and the fixed part of every send's budget.
    pub fn with_message_deadline(mut self, d: Duration) -> Conn<S> {
        self.message_deadline = d;
        self.writer.set_base(d);
        self
    }

    /// End the connection when `test` says so: while waiting for input or for room to
    /// write, and before each request (a client that pipelines requests never waits, but
    /// still holds a slot others wait for).
    pub fn with_give_way(mut self, test: GiveWay) -> Conn<S> {
        self.reader.get_mut().set_give_way(test.clone());
        self.writer.set_give_way(test);
        self
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn stream(&self) -> &S {
        self.writer.get_ref()
    }

    fn deadline_in(&mut self, d: Duration) {
        self.reader.get_mut().set_deadline(Instant::now() + d);
    }

    /// Sends one request.
    pub fn send_request<T: Serialize>(&mut self, req: &T) -> Result<(), WireError> {
        self.outbuf.clear();
        encode_request(&mut self.outbuf, req);
        self.writer.send(&self.outbuf)?;
        Ok(())
    }

    /// Sends one reply.
    pub fn send_reply<T: Serialize>(&mut self, reply: &T) -> Result<(), WireError> {
        self.outbuf.clear();
        encode_reply(&mut self.outbuf, reply);
        self.writer.send(&self.outbuf)?;
        Ok(())
    }

    /// Reads one reply; all of it must arrive within the time-out.
    pub fn read_reply<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        self.deadline_in(self.io_timeout);
        read_frame(&mut self.reader, &mut self.inbuf, MAX_CONTROL_FRAME)?;
        decode_reply(&self.inbuf)
    }

    /// Reads one request (with its version envelope): waits up to the time-out for its
    /// first byte, then gives it the message deadline to arrive whole.
    pub fn read_request<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        self.read_request_within(self.io_timeout)
    }

    /// [`read_request`](Self::read_request), waiting only `first_byte` for its first byte.
    pub fn read_request_within<T: DeserializeOwned>(&mut self, first_byte: Duration) -> Result<T, WireError> {
        if self.reader.get_ref().must_give_way() {
            return Err(gave_way().into());
        }
        self.deadline_in(first_byte);
        if self.reader.fill_buf()?.is_empty() {
            return Err(WireError::Frame(FrameError::Closed));
        }
        self.deadline_in(self.message_deadline);
        read_frame(&mut self.reader, &mut self.inbuf, MAX_CONTROL_FRAME)?;
        decode_request(&self.inbuf)
    }

    /// Sends a request and reads its reply.
    pub fn call<Req: Serialize, Rep: DeserializeOwned>(&mut self, req: &Req) -> Result<Rep, WireError> {
        self.send_request(req)?;
        self.read_reply()
    }

    /// Reads exactly `buf.len()` raw bytes (a chunk's payload), which must arrive within the
    /// time-out plus their length at [`MIN_PAYLOAD_RATE`].
    pub fn read_raw(&mut self, buf: &mut [u8]) -> Result<(), WireError> {
        self.deadline_in(self.io_timeout + Duration::from_secs(buf.len() as u64 / MIN_PAYLOAD_RATE));
        // What the reader holds already, then straight from the socket: a payload is copied
        // once, from the kernel into `buf`, not through the reader's buffer as well.
        let held = self.reader.buffer().len().min(buf.len());
        buf[..held].copy_from_slice(&self.reader.buffer()[..held]);
        self.reader.consume(held);
        let got = held + read_full(self.reader.get_mut(), &mut buf[held..])?;
        if got < buf.len() {
            return Err(WireError::Frame(FrameError::Truncated { expected: buf.len(), got }));
        }
        Ok(())
    }

    /// Writes raw bytes (a chunk's payload) within their budget.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.send(bytes)
    }

    /// Ends a connection whose request could not be read: nothing for a clean close, a
    /// debug line for an idle time-out or a connection that gave way, and for malformed
    /// input a warning and an error reply (`error_reply` makes it from the one-line reason)
    /// before the connection is dropped.
    pub fn end_after<R: Serialize>(
        &mut self,
        who: &str,
        e: WireError,
        error_reply: impl FnOnce(String) -> R,
    ) {
        let from = self.peer;
        match &e {
            _ if e.is_closed() => {}
            _ if e.deserves_reply() => {
                log::warn!("{who}: {from}: {e}; closing the connection");
                let _ = self.send_reply(&error_reply(e.to_string()));
            }
            _ => log::debug!("{who}: {from}: {e}; closing"),
        }
    }

    /// The write half, for copying a file straight into the socket.
    pub fn writer(&mut self) -> &mut DeadlineWriter<S> {
        &mut self.writer
    }
}
