//! A framed connection over TCP, used by both sides: requests out, replies in (or the
//! reverse on a server), with time-outs on every read and write.

use super::frame::{is_timeout, read_frame, read_full, MAX_CONTROL_FRAME};
use super::{decode_reply, decode_request, encode_reply, encode_request, FrameError, WireError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One TCP connection that speaks frames.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

impl Conn {
    /// Connects with a time-out, and sets `io_timeout` on every later read and write.
    pub fn connect(addr: SocketAddr, io_timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, io_timeout)?;
        Conn::new(stream, io_timeout)
    }

    /// Wraps an accepted stream.
    pub fn new(stream: TcpStream, io_timeout: Duration) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        let peer = stream.peer_addr()?;
        let writer = stream.try_clone()?;
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, stream),
            writer,
            peer,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
        })
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Sends one request.
    pub fn send_request<T: Serialize>(&mut self, req: &T) -> Result<(), WireError> {
        self.outbuf.clear();
        encode_request(&mut self.outbuf, req);
        self.writer.write_all(&self.outbuf)?;
        Ok(())
    }

    /// Sends one reply.
    pub fn send_reply<T: Serialize>(&mut self, reply: &T) -> Result<(), WireError> {
        self.outbuf.clear();
        encode_reply(&mut self.outbuf, reply);
        self.writer.write_all(&self.outbuf)?;
        Ok(())
    }

    /// Reads one reply.
    pub fn read_reply<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        read_frame(&mut self.reader, &mut self.inbuf, MAX_CONTROL_FRAME)?;
        decode_reply(&self.inbuf)
    }

    /// Reads one request (with its version envelope).
    pub fn read_request<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        read_frame(&mut self.reader, &mut self.inbuf, MAX_CONTROL_FRAME)?;
        decode_request(&self.inbuf)
    }

    /// Sends a request and reads its reply.
    pub fn call<Req: Serialize, Rep: DeserializeOwned>(&mut self, req: &Req) -> Result<Rep, WireError> {
        self.send_request(req)?;
        self.read_reply()
    }

    /// Reads exactly `buf.len()` raw bytes (a chunk's payload).
    pub fn read_raw(&mut self, buf: &mut [u8]) -> Result<(), WireError> {
        let got = read_full(&mut self.reader, buf)?;
        if got < buf.len() {
            return Err(WireError::Frame(FrameError::Truncated { expected: buf.len(), got }));
        }
        Ok(())
    }

    /// Writes raw bytes (a chunk's payload).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Ends a connection whose request could not be read: nothing for a clean close, a
    /// debug line for an idle time-out, and for malformed input a warning and an error reply
    /// (`error_reply` makes it from the one-line reason) before the connection is dropped.
    pub fn end_after<R: Serialize>(
        &mut self,
        who: &str,
        e: WireError,
        error_reply: impl FnOnce(String) -> R,
    ) {
        let from = self.peer;
        match &e {
            _ if e.is_closed() => {}
            WireError::Frame(FrameError::Io(io)) if is_timeout(io) => {
                log::debug!("{who}: {from} idle, closing")
            }
            _ if e.deserves_reply() => {
                log::warn!("{who}: {from}: {e}; closing the connection");
                let _ = self.send_reply(&error_reply(e.to_string()));
            }
            _ => log::debug!("{who}: {from}: {e}"),
        }
    }

    /// The write half, for copying a file straight into the socket.
    pub fn writer(&mut self) -> &mut TcpStream {
        &mut self.writer
    }
}
