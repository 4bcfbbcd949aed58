//! One HTTP/1.1 connection: requests read under deadlines (a request head must arrive whole
//! within the message deadline once its first byte came, at most [`MAX_HEAD`] bytes; a body
//! only where the server allows one, up to its cap, with `Content-Length`, within the message
//! deadline plus its length at [`BODY_FLOOR`]), responses written whole under a deadline of
//! their own (see `send_deadline`). Keep-alive unless the client says `Connection: close`.
//! The tracker takes no bodies; the peer's control API takes small ones.

use crate::wire::deadline::{DeadlineStream, GiveWay, Socket};
use crate::wire::send_deadline::DeadlineWriter;
use std::io::{self, BufRead, BufReader, Read};
use std::time::{Duration, Instant};

/// Largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Why a request was refused at its first bytes: they cannot start an HTTP request (a
/// p2p-share frame, a BitTorrent handshake), so the client hears at once.
pub const NOT_HTTP: &str = "not HTTP";

/// The slowest a request body may arrive, in bytes a second, past the message deadline.
pub const BODY_FLOOR: u64 = 64 * 1024;

/// A request this server answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub keep_alive: bool,
    /// Its headers (at most 32), names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case), if it came.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum HttpError {
    /// The client went away between requests, or idled out: nothing to answer.
    Gone,
    /// Malformed or too large: answered with this status and reason, then closed.
    Bad(u16, &'static str),
    Io(io::Error),
}

/// A response.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Headers beyond the usual ones (`Set-Cookie`, `Location`).
    pub extra: Vec<(&'static str, String)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, body: body.into(), extra: Vec::new() }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.extra.push((name, value));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// An HTTP connection over any socket.
pub struct HttpConn<S: Socket> {
    reader: BufReader<DeadlineStream<S>>,
    writer: DeadlineWriter<S>,
    idle: Duration,
    message: Duration,
    head: Vec<u8>,
    /// Largest body taken (0: requests with a body are refused).
    max_body: usize,
}

impl<S: Socket> HttpConn<S> {
    pub fn new(
        stream: S,
        idle: Duration,
        message: Duration,
        give_way: Option<GiveWay>,
    ) -> io::Result<HttpConn<S>> {
        let mut writer = DeadlineWriter::new(stream.try_clone()?, message);
        let mut reader = BufReader::with_capacity(MAX_HEAD, DeadlineStream::new(stream));
        if let Some(g) = give_way {
            reader.get_mut().set_give_way(g.clone());
            writer.set_give_way(g);
        }
        Ok(HttpConn { reader, writer, idle, message, head: Vec::new(), max_body: 0 })
    }

    /// Takes request bodies of up to `max` bytes.
    pub fn with_max_body(mut self, max: usize) -> HttpConn<S> {
        self.max_body = max;
        self
    }

    /// Reads the next request head.
    pub fn read_request(&mut self) -> Result<Request, HttpError> {
        if self.reader.get_ref().must_give_way() {
            return Err(HttpError::Gone);
        }
        self.reader.get_mut().set_deadline(Instant::now() + self.idle);
        match self.reader.fill_buf() {
            Ok([]) => return Err(HttpError::Gone),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::ConnectionAborted) => {
                return Err(HttpError::Gone)
            }
            Err(e) => return Err(HttpError::Io(e)),
        }
        self.reader.get_mut().set_deadline(Instant::now() + self.message);
        self.head.clear();
        loop {
            let buf = match self.reader.fill_buf() {
                Ok([]) => return Err(HttpError::Gone),
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(HttpError::Bad(408, "request too slow"))
                }
                Err(e) => return Err(HttpError::Io(e)),
            };
            // Look for the blank line, counting what was taken already.
            let before = self.head.len();
            let take = buf.len().min(MAX_HEAD + 4 - before);
            self.head.extend_from_slice(&buf[..take]);
            let end = find_end(&self.head, before.saturating_sub(3));
            let used = match end {
                Some(e) => e - before,
                None => take,
            };
            self.reader.consume(used);
            if let Some(e) = end {
                self.head.truncate(e);
                break;
            }
            if self.head.len() > MAX_HEAD {
                return Err(HttpError::Bad(413, "request head too large"));
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            if let Err(httparse::Error::Token | httparse::Error::Version | httparse::Error::NewLine) =
                httparse::Request::new(&mut headers).parse(&self.head)
            {
                return Err(HttpError::Bad(400, NOT_HTTP));
            }
        }
        let (mut req, body_len) = parse(&self.head)?;
        if body_len > 0 {
            if self.max_body == 0 {
                return Err(HttpError::Bad(400, "requests with a body are not served"));
            }
            if body_len > self.max_body as u64 {
                return Err(HttpError::Bad(413, "request body too large"));
            }
            let budget = self.message + Duration::from_secs_f64(body_len as f64 / BODY_FLOOR as f64);
            self.reader.get_mut().set_deadline(Instant::now() + budget);
            req.body = vec![0; body_len as usize];
            self.reader.read_exact(&mut req.body).map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => HttpError::Bad(408, "request too slow"),
                _ => HttpError::Io(e),
            })?;
        }
        Ok(req)
    }

    /// Answers requests until the client closes, idles out or asks to close: `route`
    /// answers each; one that cannot be read gets `refusal(status, why)`, then the
    /// connection closes.
    pub fn serve_each(
        &mut self,
        refusal: impl Fn(u16, &'static str) -> Response,
        mut route: impl FnMut(&Request) -> Response,
    ) {
        loop {
            let req = match self.read_request() {
                Ok(r) => r,
                Err(HttpError::Bad(status, why)) => {
                    let _ = self.respond(&refusal(status, why), false);
                    return;
                }
                Err(HttpError::Gone) | Err(HttpError::Io(_)) => return,
            };
            let response = route(&req);
            if self.respond(&response, req.keep_alive).is_err() || !req.keep_alive {
                return;
            }
        }
    }

    /// Writes `r` whole within the message deadline plus its length at the payload floor
    /// (see `send_deadline`); `keep_alive` says whether the connection stays open.
    pub fn respond(&mut self, r: &Response, keep_alive: bool) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'self'\r\n\r\n",
            r.status,
            reason(r.status),
            r.content_type,
            r.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        let mut all = head.into_bytes();
        if !r.extra.is_empty() {
            all.truncate(all.len() - 2); // before the blank line
            for (name, value) in &r.extra {
                // Values are ours, but a line break in one would start a header of its own.
                let value: String = value.chars().filter(|c| !c.is_control()).collect();
                all.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            all.extend_from_slice(b"\r\n");
        }
        all.extend_from_slice(&r.body);
        self.writer.send(&all)
    }
}

/// One past the `\r\n\r\n` that ends a head, searching from `from`.
fn find_end(head: &[u8], from: usize) -> Option<usize> {
    head.get(from..)?.windows(4).position(|w| w == b"\r\n\r\n").map(|p| from + p + 4)
}

/// The request a head describes, and the length of the body that follows it.
fn parse(head: &[u8]) -> Result<(Request, u64), HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(HttpError::Bad(400, "malformed request")),
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some() {
        return Err(HttpError::Bad(400, "chunked request bodies are not served"));
    }
    let body_len = match header("content-length") {
        None => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| HttpError::Bad(400, "a bad Content-Length"))?,
    };
    let http10 = req.version == Some(0);
    let keep_alive = match header("connection").as_deref() {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => !http10,
    };
    let headers = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();
    let (path, query) = (path.to_string(), query.to_string());
    Ok((Request { method, path, query, keep_alive, headers, body: Vec::new() }, body_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mem::MemSocket;

    fn conn(input: &[u8]) -> (HttpConn<MemSocket>, MemSocket) {
        let s = MemSocket::new(input.to_vec());
        (HttpConn::new(s.clone(), Duration::from_secs(1), Duration::from_secs(1), None).unwrap(), s)
    }

    #[test]
    fn reads_pipelined_requests_and_their_keep_alive() {
        let (mut c, _) = conn(b"GET /announce?a=1&b=%20 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.0\r\n\r\nGET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
        let r = c.read_request().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.query.as_str(), r.keep_alive),
            ("GET", "/announce", "a=1&b=%20", true)
        );
        assert!(!c.read_request().unwrap().keep_alive, "HTTP/1.0 closes by default");
        assert!(!c.read_request().unwrap().keep_alive);
        assert!(matches!(c.read_request(), Err(HttpError::Gone)));
    }

    #[test]
    fn refuses_huge_heads_bodies_and_garbage() {
        let huge = [b"GET /".to_vec(), vec![b'a'; 10_000], b" HTTP/1.1\r\n\r\n".to_vec()].concat();
        assert!(matches!(conn(&huge).0.read_request(), Err(HttpError::Bad(413, _))));
        let body = b"POST /announce HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert!(matches!(conn(body).0.read_request(), Err(HttpError::Bad(400, _))));
        assert!(matches!(
            conn(b"\x13BitTorrent protocol\r\n\r\n").0.read_request(),
            Err(HttpError::Bad(400, _))
        ));
    }

    #[test]
    fn reads_a_body_only_where_allowed_and_up_to_its_cap() {
        let post = b"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Thing: Yes\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        let (c, _) = conn(post);
        let mut c = c.with_max_body(5);
        let r = c.read_request().unwrap();
        assert_eq!(
            (r.method.as_str(), r.body.as_slice(), r.header("x-thing")),
            ("POST", &b"hello"[..], Some("Yes"))
        );
        assert_eq!(c.read_request().unwrap().path, "/", "the next request follows the body");
        let (c, _) = conn(post);
        assert!(matches!(c.with_max_body(4).read_request(), Err(HttpError::Bad(413, _))));
        let short = b"POST / HTTP/1.1\r\nContent-Length: 50\r\n\r\nhello";
        let (c, _) = conn(short);
        assert!(c.with_max_body(100).read_request().is_err(), "a body cut short");
        let bad = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert!(matches!(conn(bad).0.with_max_body(100).read_request(), Err(HttpError::Bad(400, _))));
    }

    #[test]
    fn writes_a_whole_response() {
        let (mut c, s) = conn(b"");
        c.respond(&Response::new(200, "text/plain", "hi"), true).unwrap();
        let out = String::from_utf8(s.written()).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n")
                && out.contains("Content-Length: 2\r\n")
                && out.ends_with("\r\n\r\nhi")
        );
    }
}
