//! An in-memory [`Socket`]: the input is fixed up front, the output is collected. Request
//! handling runs over it in unit tests, without a network.

use super::deadline::Socket;
use parking_lot::Mutex;
use std::io::{self, Cursor, Read, Write};
use std::sync::Arc;
use std::time::Duration;

/// Both halves of a scripted connection; clones share them.
#[derive(Clone, Default)]
pub struct MemSocket {
    input: Arc<Mutex<Cursor<Vec<u8>>>>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl MemSocket {
    /// A socket that reads `input`, then end of stream.
    pub fn new(input: Vec<u8>) -> MemSocket {
        MemSocket { input: Arc::new(Mutex::new(Cursor::new(input))), output: Default::default() }
    }

    /// Everything written so far.
    pub fn written(&self) -> Vec<u8> {
        self.output.lock().clone()
    }
}

impl Read for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.lock().read(buf)
    }
}

impl Write for MemSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for MemSocket {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(self.clone())
    }

    fn set_read_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }

    fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(())
    }
}

/// A connected loopback TCP pair (dialer, accepted), for tests that need real sockets:
/// time-outs, short writes.
#[cfg(test)]
pub fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    (a, l.accept().unwrap().0)
}
