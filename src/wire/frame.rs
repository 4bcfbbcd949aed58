//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of body.

use std::fmt;
use std::io::{self, Read, Write};

/// Largest control frame either side accepts (JSON bodies).
pub const MAX_CONTROL_FRAME: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The other side closed the connection between frames.
    Closed,
    /// The connection ended inside a frame.
    Truncated { expected: usize, got: usize },
    /// The length prefix exceeds the limit; the body is not read.
    TooLarge { len: usize, limit: usize },
    /// An HTTP server answered (its first bytes were `HTTP`): the first line of its body.
    Http(String),
    /// A socket error or time-out.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Closed => write!(f, "connection closed"),
            FrameError::Truncated { expected, got } => {
                write!(f, "truncated frame: expected {expected} bytes, got {got}")
            }
            FrameError::TooLarge { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the limit of {limit} bytes")
            }
            FrameError::Http(said) if said.is_empty() => {
                write!(f, "this is an HTTP server, not a p2p-share port")
            }
            FrameError::Http(said) => {
                write!(f, "this is an HTTP server, not a p2p-share port; it says: {said}")
            }
            FrameError::Io(e) if is_timeout(e) => write!(f, "timed out"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// True for the errors a socket read/write time-out produces.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Reads one frame into `buf` (replacing its contents). Refuses frames over `limit` bytes
/// without reading their body.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> Result<(), FrameError> {
    let mut len_bytes = [0u8; 4];
    let got = read_full(r, &mut len_bytes)?;
    if got == 0 {
        return Err(FrameError::Closed);
    }
    if got < 4 {
        return Err(FrameError::Truncated { expected: 4, got });
    }
    if &len_bytes == b"HTTP" {
        return Err(FrameError::Http(http_says(r)));
    }
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    buf.clear();
    buf.resize(len, 0);
    let got = read_full(r, buf)?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    Ok(())
}

/// The first line of the body of an HTTP answer whose first 4 bytes were read (what comes
/// in one read of at most 2 KiB).
fn http_says(r: &mut impl Read) -> String {
    let mut rest = [0u8; 2048];
    let n = r.read(&mut rest).unwrap_or(0);
    let text = String::from_utf8_lossy(&rest[..n]);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    crate::text::one_line(&body.lines().next().unwrap_or("").chars().take(200).collect::<String>())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    Ok(got)
}

/// Starts a frame in `out`: reserves the length prefix. Finish with [`finish_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

/// Writes the length prefix of the frame begun at `start`.
pub fn finish_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes `body` as one frame, in a single write call.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    w.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn round_trip() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        write_frame(&mut wire, b"").unwrap();
        let mut r = Cursor::new(wire);
        let mut buf = Vec::new();
        read_frame(&mut r, &mut buf, 100).unwrap();
        assert_eq!(buf, b"hello");
        read_frame(&mut r, &mut buf, 100).unwrap();
        assert_eq!(buf, b"");
        assert!(matches!(read_frame(&mut r, &mut buf, 100), Err(FrameError::Closed)));
    }

    #[test]
    fn rejects_oversized_frame_without_reading_body() {
        let mut wire = (MAX_CONTROL_FRAME as u32 + 1).to_be_bytes().to_vec();
        wire.extend_from_slice(b"xx");
        let mut buf = Vec::new();
        let err = read_frame(&mut Cursor::new(wire), &mut buf, MAX_CONTROL_FRAME).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == MAX_CONTROL_FRAME + 1));
        assert!(err.to_string().contains("exceeds the limit"));
        assert!(buf.capacity() < 1024, "must not allocate the announced size");
    }

    #[test]
    fn rejects_truncated_prefix_and_body() {
        let mut buf = Vec::new();
        let err = read_frame(&mut Cursor::new(vec![0, 0]), &mut buf, 100).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { expected: 4, got: 2 }));
        let mut wire = 10u32.to_be_bytes().to_vec();
        wire.extend_from_slice(b"abc");
        let err = read_frame(&mut Cursor::new(wire), &mut buf, 100).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { expected: 10, got: 3 }));
        assert_eq!(err.to_string(), "truncated frame: expected 10 bytes, got 3");
    }

    #[test]
    fn begin_finish_writes_prefix() {
        let mut out = Vec::new();
        let start = begin_frame(&mut out);
        out.extend_from_slice(b"abc");
        finish_frame(&mut out, start);
        assert_eq!(out, [0, 0, 0, 3, b'a', b'b', b'c']);
    }
}
