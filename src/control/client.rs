//! Talking to a running peer's control API: one HTTP/1.1 request per connection, the
//! secret as a bearer token, a deadline on the whole exchange and a cap on the answer.

use serde::de::DeserializeOwned;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The whole exchange, connect to last byte.
const DEADLINE: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER: usize = 16 << 20;

/// A running peer's API: where, and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub addr: SocketAddr,
    pub secret: String,
}

/// Why the running peer could not be asked, or what it refused.
#[derive(Debug)]
pub enum RemoteError {
    Io(io::Error),
    /// It answered with an error status: the status and its reason.
    Refused(u16, String),
    Garbled(String),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Io(e) => write!(f, "cannot reach the running peer: {e}"),
            RemoteError::Refused(_, why) => write!(f, "the running peer refused: {why}"),
            RemoteError::Garbled(why) => write!(f, "the running peer's answer is garbled: {why}"),
        }
    }
}

impl std::error::Error for RemoteError {}

impl From<io::Error> for RemoteError {
    fn from(e: io::Error) -> Self {
        RemoteError::Io(e)
    }
}

impl Remote {
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        self.call("GET", path, None)
    }

    /// POSTs `body` (with its content type).
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<T, RemoteError> {
        self.call("POST", path, body)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<T, RemoteError> {
        let deadline = Instant::now() + DEADLINE;
        let mut s = TcpStream::connect_timeout(&self.addr, DEADLINE)?;
        let (kind, bytes) = body.unwrap_or(("text/plain", b""));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            self.secret,
            bytes.len()
        );
        s.set_write_timeout(Some(DEADLINE))?;
        s.write_all(head.as_bytes())?;
        s.write_all(bytes)?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RemoteError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no whole answer in 10 s",
                )));
            }
            s.set_read_timeout(Some(left))?;
            match s.read(&mut buf)? {
                0 => break,
                n if answer.len() + n > MAX_ANSWER => return Err(RemoteError::Garbled("too long".into())),
                n => answer.extend_from_slice(&buf[..n]),
            }
        }
        let (status, body) = split(&answer)?;
        if status >= 400 {
            let why = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
            return Err(RemoteError::Refused(status, why));
        }
        serde_json::from_slice(body).map_err(|e| RemoteError::Garbled(e.to_string()))
    }
}

/// The status and body of a whole `Connection: close` answer.
fn split(answer: &[u8]) -> Result<(u16, &[u8]), RemoteError> {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| RemoteError::Garbled("no end of head".into()))?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| RemoteError::Garbled("no status".into()))?;
    Ok((status, &answer[end + 4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_splits_into_status_and_body() {
        let (status, body) = split(b"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((status, body), (409, &b"{}"[..]));
        assert!(split(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(split(b"garbage\r\n\r\n").is_err());
    }
}
