//! A web seed (BEP 19): an HTTP server holding the torrent's files, asked for pieces with
//! range requests and fed through the same scheduler and check as any peer. A single-file
//! torrent's URL is the file (the torrent's name is added when it ends in `/`); a folder's is
//! the folder above it (`URL/name/path...`). A piece that crosses files takes one request
//! per file; padding is zeros and never asked for.
//!
//! Every answer is hostile input: the head is capped at [`MAX_HEAD`] bytes, the status must
//! be 206 with the very range asked for (or 200 with the whole file when the whole file was
//! asked), the length must be the range's, and each request has a total deadline
//! (`io_timeout` + the bytes at 16 KiB/s). A server that breaks any of it, or answers
//! anything else, fails as a source (and is retried after its back-off); one whose pieces
//! fail their SHA-1 check is struck out like a lying peer. One keep-alive connection per
//! web seed, `http://` or `https://` ([`crate::tls`]); redirects are not followed.

use super::check::{check, Verdict};
use super::ctx::{Arrival, DownloadCtx, SourceEnd, MAX_BAD_CHUNKS};
use crate::layout::FileEntry;
use crate::manifest::Manifest;
use crate::tls::Stream;
use crate::wire::deadline::MIN_PAYLOAD_RATE;
use crossbeam_channel::Sender;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Largest response head read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Web seeds of one torrent used, at most.
pub const MAX_WEB_SEEDS: usize = 8;

/// What a path component keeps as it is (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A web seed's URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSeed {
    pub url: String,
    /// Where it is (the source's key in the scheduler: one web seed per server).
    pub addr: SocketAddr,
    /// `host:port` as the URL names them (the default port added): the `Host:` header, and
    /// the name its certificate must carry.
    host: String,
    /// `https://`.
    tls: bool,
    /// The path as the URL gives it (already percent-encoded), starting with `/`.
    path: String,
}

/// Why a web seed's answer was refused.
#[derive(Debug)]
pub enum WebSeedError {
    Io(io::Error),
    /// The server said other than what was asked (status, range, length).
    Answer(String),
}

impl fmt::Display for WebSeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebSeedError::Io(e) => write!(f, "{e}"),
            WebSeedError::Answer(why) => write!(f, "{}", crate::text::one_line(why)),
        }
    }
}

impl From<io::Error> for WebSeedError {
    fn from(e: io::Error) -> Self {
        WebSeedError::Io(e)
    }
}

impl WebSeed {
    /// An `http://` or `https://` URL, its host resolved; `None` for any other.
    pub fn parse(url: &str) -> Option<WebSeed> {
        let (rest, tls) = match url.strip_prefix("https://") {
            Some(rest) => (rest, true),
            None => (url.strip_prefix("http://")?, false),
        };
        // Taken apart as a tracker's URL is (no user info; the default port added).
        let (host, path) = crate::announce::host_port(rest, if tls { 443 } else { 80 }).ok()?;
        if path.contains(['?', '#']) {
            return None;
        }
        let addr = host.to_socket_addrs().ok()?.next()?;
        Some(WebSeed { url: url.to_string(), addr, path: path.to_string(), host, tls })
    }

    /// The path of `file` of torrent `m` on this server (BEP 19).
    pub fn path_of(&self, m: &Manifest, file: &FileEntry) -> String {
        let enc = |c: &str| utf8_percent_encode(c, COMPONENT).to_string();
        if !m.is_folder() {
            return if self.path.ends_with('/') {
                format!("{}{}", self.path, enc(&m.name))
            } else {
                self.path.clone()
            };
        }
        let mut p = self.path.clone();
        if !p.ends_with('/') {
            p.push('/');
        }
        p.push_str(&enc(&m.name));
        for c in &file.path {
            p.push('/');
            p.push_str(&enc(c));
        }
        p
    }

    /// The request for bytes `at..at + len` of `path`.
    pub fn request(&self, path: &str, at: u64, len: usize) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nRange: bytes={at}-{}\r\nUser-Agent: p2p-share\r\nAccept-Encoding: identity\r\n\r\n",
            self.host,
            at + len as u64 - 1
        )
    }
}

/// What a response head says that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub length: Option<u64>,
    /// `Content-Range: bytes A-B/TOTAL` as (A, B).
    pub range: Option<(u64, u64)>,
    /// The server closes the connection after this answer.
    pub close: bool,
    /// How many bytes the head took.
    pub size: usize,
}

/// Reads a response head from `bytes`: `Ok(None)` while it is incomplete.
pub fn parse_head(bytes: &[u8]) -> Result<Option<Head>, WebSeedError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let size = match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD => {
            return Err(WebSeedError::Answer(format!("a response head over {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WebSeedError::Answer(format!("not HTTP: {e}"))),
    };
    let mut head = Head { status: resp.code.unwrap_or(0), length: None, range: None, close: false, size };
    head.close = resp.version == Some(0);
    for h in resp.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.length =
                Some(value.parse().map_err(|_| WebSeedError::Answer(format!("Content-Length: {value}")))?);
        } else if h.name.eq_ignore_ascii_case("content-range") {
            let range = value.strip_prefix("bytes ").and_then(|r| r.split_once('/')).and_then(|(r, _)| {
                let (a, b) = r.split_once('-')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            });
            head.range = Some(range.ok_or_else(|| WebSeedError::Answer(format!("Content-Range: {value}")))?);
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity")
        {
            return Err(WebSeedError::Answer(format!("Transfer-Encoding: {value} (a range is asked for)")));
        }
    }
    Ok(Some(head))
}

/// Whether `head` answers a request for `len` bytes at `at` of a file of `file_len`.
pub fn check_head(head: &Head, at: u64, len: usize, file_len: u64) -> Result<(), WebSeedError> {
    let bad = |why: String| Err(WebSeedError::Answer(why));
    let end = at + len as u64 - 1;
    match head.status {
        206 if head.range != Some((at, end)) => {
            bad(format!("asked for bytes {at}-{end}, got {:?}", head.range))
        }
        206 => match head.length {
            Some(n) if n == len as u64 => Ok(()),
            other => bad(format!("a range of {len} bytes with Content-Length {other:?}")),
        },
        // A server that ignores ranges: taken only when the whole file was asked for.
        200 if at == 0 && len as u64 == file_len && head.length == Some(file_len) => Ok(()),
        200 => bad("the server ignores range requests".into()),
        s => bad(format!("HTTP status {s}")),
    }
}

/// One keep-alive connection to a web seed.
struct Client<'a> {
    seed: &'a WebSeed,
    conn: Option<Stream>,
    io_timeout: Duration,
}

impl Client<'_> {
    /// Reads bytes `at..at + buf.len()` of the file at `path` (of `file_len` bytes).
    fn get(&mut self, path: &str, at: u64, buf: &mut [u8], file_len: u64) -> Result<(), WebSeedError> {
        let deadline = Instant::now()
            + self.io_timeout
            + Duration::from_secs_f64(buf.len() as f64 / MIN_PAYLOAD_RATE as f64);
        let result = self.exchange(path, at, buf, file_len, deadline);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(
        &mut self,
        path: &str,
        at: u64,
        buf: &mut [u8],
        file_len: u64,
        deadline: Instant,
    ) -> Result<(), WebSeedError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(Stream::connect(
                self.seed.addr,
                &self.seed.host,
                self.seed.tls,
                self.io_timeout,
            )?),
        };
        conn.tcp().set_write_timeout(Some(self.io_timeout))?;
        conn.write_all(self.seed.request(path, at, buf.len()).as_bytes())?;
        let mut head_bytes = Vec::with_capacity(1024);
        let head = loop {
            let mut chunk = [0u8; 4096];
            let n = read_by(conn, &mut chunk, deadline)?;
            head_bytes.extend_from_slice(&chunk[..n]);
            if let Some(h) = parse_head(&head_bytes)? {
                break h;
            }
        };
        check_head(&head, at, buf.len(), file_len)?;
        let early = &head_bytes[head.size..];
        if early.len() > buf.len() {
            return Err(WebSeedError::Answer("more bytes than the range holds".into()));
        }
        buf[..early.len()].copy_from_slice(early);
        let mut done = early.len();
        while done < buf.len() {
            done += read_by(conn, &mut buf[done..], deadline)?;
        }
        if head.close {
            self.conn = None;
        }
        Ok(())
    }
}

/// One `read` that must return by `deadline`; the end of the stream is an error.
fn read_by(conn: &mut Stream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    match conn.read_by(buf, deadline, "the web seed")? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the web seed closed the connection")),
        n => Ok(n),
    }
}

/// Fetches pieces from `seed` until nothing is left to fetch.
pub fn run(ctx: &DownloadCtx, seed: &WebSeed, tx: &Sender<Arrival>) -> SourceEnd {
    let m = &ctx.store.manifest;
    let addr = seed.addr;
    let mut client = Client { seed, conn: None, io_timeout: ctx.io_timeout };
    ctx.sched.lock().update_source(addr, None); // a web seed has every piece
    loop {
        if ctx.cancel.load(Ordering::Relaxed) {
            return SourceEnd::Finished;
        }
        let Some(i) = ctx.sched.lock().assign(addr) else {
            if ctx.sched.lock().is_done() {
                return SourceEnd::Finished;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let idx = m.index(i).expect("assigned pieces are in range");
        let mut buf = ctx.pool.get();
        buf.resize(m.chunk_len(idx), 0);
        let mut done = 0;
        for span in m.layout.spans(m.offset(idx), buf.len()) {
            let file = &m.layout.entries()[span.file];
            let part = &mut buf[done..done + span.len];
            if file.pad {
                part.fill(0);
            } else if let Err(e) = client.get(&seed.path_of(m, file), span.at, part, file.length) {
                ctx.sched.lock().release(addr, i);
                ctx.pool.put(buf);
                return match e {
                    WebSeedError::Answer(why) => SourceEnd::Failed(format!("web seed {}: {why}", seed.url)),
                    WebSeedError::Io(e) => SourceEnd::Failed(format!("web seed {}: {e}", seed.url)),
                };
            }
            done += span.len;
            ctx.received.fetch_add(span.len as u64, Ordering::Relaxed);
        }
        match check(ctx, addr, idx, buf, tx) {
            Verdict::Failed(bad) if bad >= MAX_BAD_CHUNKS => return SourceEnd::Banned(bad),
            Verdict::Closed => return SourceEnd::Finished,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use std::io::Read;
    use std::sync::Arc;

    #[test]
    fn urls_follow_bep_19_for_a_file_and_a_folder() {
        let seed = WebSeed::parse("http://127.0.0.1:8080/pub/").unwrap();
        assert_eq!(seed.addr, "127.0.0.1:8080".parse().unwrap());
        let mut m = Manifest::new("a b.iso".into(), 10, None, vec![]);
        let single = m.layout.entries()[0].clone();
        assert_eq!(seed.path_of(&m, &single), "/pub/a%20b.iso");
        let exact = WebSeed::parse("http://127.0.0.1:8080/mirror/x.iso").unwrap();
        assert_eq!(exact.path_of(&m, &single), "/mirror/x.iso", "a URL not ending in / is the file");
        let p = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        m.layout = Arc::new(Layout::files(vec![(p("cd 1/t#1.flac"), 5, false)]).unwrap());
        let file = m.layout.entries()[0].clone();
        assert_eq!(exact.path_of(&m, &file), "/mirror/x.iso/a%20b.iso/cd%201/t%231.flac");
        assert_eq!(
            seed.request("/pub/x", 10, 5),
            "GET /pub/x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes=10-14\r\nUser-Agent: p2p-share\r\nAccept-Encoding: identity\r\n\r\n"
        );
        assert!(WebSeed::parse("https://127.0.0.1/x").is_some_and(|w| w.tls && w.addr.port() == 443));
        for bad in ["ftp://h/x", "http://", "http://u@127.0.0.1/x", "http://127.0.0.1/x?a"] {
            assert!(WebSeed::parse(bad).is_none(), "{bad}");
        }
    }

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn only_the_range_asked_for_is_taken() {
        let ok = head(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 10-14/100\r\nContent-Length: 5\r\n\r\nxx",
        );
        assert_eq!(
            (ok.status, ok.range, ok.length, ok.close, ok.size),
            (206, Some((10, 14)), Some(5), false, 83)
        );
        check_head(&ok, 10, 5, 100).unwrap();
        assert!(check_head(&ok, 11, 5, 100).is_err(), "another range");
        let long = head("HTTP/1.1 206 OK\r\nContent-Range: bytes 10-14/100\r\nContent-Length: 500\r\n\r\n");
        assert!(check_head(&long, 10, 5, 100).is_err());
        let whole = head("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
        assert!(whole.close);
        check_head(&whole, 0, 100, 100).unwrap();
        assert!(check_head(&whole, 0, 50, 100).is_err(), "ignoring the range: refused");
        let missing = head("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert!(check_head(&missing, 0, 5, 100).unwrap_err().to_string().contains("404"));
        assert!(parse_head(b"HTTP/1.1 206 OK\r\nContent-Ra").unwrap().is_none(), "not complete yet");
        assert!(parse_head(&[b'x'; MAX_HEAD]).is_err());
        assert!(parse_head(b"HTTP/1.1 206 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 206 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }

    /// A scripted server: answers each request with the next canned reply.
    fn server(replies: Vec<Vec<u8>>) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for r in replies {
                let mut req = [0u8; 4096];
                let _ = s.read(&mut req);
                let _ = s.write_all(&r);
            }
            std::thread::sleep(Duration::from_secs(3));
        });
        addr
    }

    #[test]
    fn a_client_reads_bodies_across_reads_keeps_the_connection_and_refuses_lies() {
        let body = b"hello";
        let ok =
            [b"HTTP/1.1 206 OK\r\nContent-Range: bytes 0-4/9\r\nContent-Length: 5\r\n\r\n".as_slice(), body]
                .concat();
        let lie =
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 0-4/9\r\nContent-Length: 6\r\n\r\nhello!".to_vec();
        let addr = server(vec![ok.clone(), ok, lie]);
        let seed = WebSeed::parse(&format!("http://{addr}/f")).unwrap();
        let mut c = Client { seed: &seed, conn: None, io_timeout: Duration::from_secs(2) };
        let mut buf = [0u8; 5];
        c.get("/f", 0, &mut buf, 9).unwrap();
        assert_eq!(&buf, body);
        c.get("/f", 0, &mut buf, 9).unwrap();
        assert!(c.get("/f", 0, &mut buf, 9).is_err(), "Content-Length other than the range");
        // A server that sends the head and then nothing: the deadline ends the wait.
        let addr = server(vec![
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 0-4/9\r\nContent-Length: 5\r\n\r\nhe".to_vec(),
        ]);
        let seed = WebSeed::parse(&format!("http://{addr}/f")).unwrap();
        let mut c = Client { seed: &seed, conn: None, io_timeout: Duration::from_millis(300) };
        let t = Instant::now();
        assert!(c.get("/f", 0, &mut buf, 9).is_err());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
}
