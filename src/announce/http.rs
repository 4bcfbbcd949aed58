//! HTTP and HTTPS trackers (BEP 3 announce, BEP 23 compact peers, BEP 7 `peers6`): one GET
//! over HTTP/1.0 (in TLS for `https://`: [`crate::tls`]), the answer read whole within the
//! deadline and at most [`MAX_ANSWER`] bytes.

use super::{host_port, interval, usable, Announce, AnnounceError, Answer, Event, MAX_PEERS_PER_ANSWER};
use crate::compact;
use crate::info_dict::check_depth;
use crate::tls::Stream;
use percent_encoding::{percent_encode, NON_ALPHANUMERIC};
use serde_bencode::value::Value;
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest answer read (a few hundred peers fit many times over).
const MAX_ANSWER: usize = 256 * 1024;

pub(super) fn announce(
    rest: &str,
    tls: bool,
    a: &Announce,
    within: Duration,
) -> Result<Answer, AnnounceError> {
    let deadline = Instant::now() + within;
    let (host_port, path) = host_port(rest, if tls { 443 } else { 80 })?;
    let addr = resolve(&host_port)?;
    let left = |d: Instant| d.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut s = Stream::connect(addr, &host_port, tls, left(deadline))?;
    let sep = if path.contains('?') { '&' } else { '?' };
    let event = match a.event {
        Event::Started => "&event=started",
        Event::Completed => "&event=completed",
        Event::Stopped => "&event=stopped",
        Event::None => "",
    };
    let request = format!(
        "GET {path}{sep}info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}{event} HTTP/1.0\r\nHost: {host_port}\r\nUser-Agent: p2p-share/{}\r\nConnection: close\r\n\r\n",
        percent_encode(a.info_hash.as_bytes(), NON_ALPHANUMERIC),
        percent_encode(&a.peer_id, NON_ALPHANUMERIC),
        a.port,
        a.uploaded,
        a.downloaded,
        a.left,
        MAX_PEERS_PER_ANSWER,
        env!("CARGO_PKG_VERSION"),
    );
    s.tcp().set_write_timeout(Some(left(deadline)))?;
    s.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read_by(&mut buf, deadline, "the tracker")? {
            0 => break,
            n if answer.len() + n > MAX_ANSWER => {
                return Err(AnnounceError::Malformed(format!("an answer over {} KiB", MAX_ANSWER / 1024)))
            }
            n => answer.extend_from_slice(&buf[..n]),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let body_at = match response.parse(&answer) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(AnnounceError::Malformed("not an HTTP response".into())),
    };
    match response.code {
        Some(200) => parse_body(&answer[body_at..]),
        code => Err(AnnounceError::Failure(format!("HTTP {}", code.unwrap_or(0)))),
    }
}

fn resolve(host_port: &str) -> Result<SocketAddr, AnnounceError> {
    host_port
        .to_socket_addrs()
        .map_err(|e| AnnounceError::Url(format!("{host_port}: {e}")))?
        .next()
        .ok_or_else(|| AnnounceError::Url(format!("{host_port}: no address")))
}

/// The bencoded answer of an HTTP tracker.
pub(super) fn parse_body(body: &[u8]) -> Result<Answer, AnnounceError> {
    check_depth(body).map_err(|e| AnnounceError::Malformed(e.to_string()))?;
    let dict: HashMap<Vec<u8>, Value> = match serde_bencode::from_bytes::<Value>(body) {
        Ok(Value::Dict(d)) => d,
        Ok(_) => return Err(AnnounceError::Malformed("not a dictionary".into())),
        Err(e) => return Err(AnnounceError::Malformed(e.to_string())),
    };
    let text = |key: &str| match dict.get(key.as_bytes()) {
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).chars().take(200).collect::<String>()),
        _ => None,
    };
    if let Some(why) = text("failure reason") {
        return Err(AnnounceError::Failure(why));
    }
    let int = |key: &str| match dict.get(key.as_bytes()) {
        Some(Value::Int(n)) => u64::try_from(*n).ok(),
        _ => None,
    };
    // The interval asked for, never under the `min interval`.
    let secs = int("interval").unwrap_or(1800).max(int("min interval").unwrap_or(0));
    let mut peers = Vec::new();
    match dict.get(b"peers".as_slice()) {
        Some(Value::Bytes(b)) => compact::decode(b, false, MAX_PEERS_PER_ANSWER, &mut peers),
        Some(Value::List(list)) => {
            for entry in list {
                if peers.len() >= MAX_PEERS_PER_ANSWER {
                    break;
                }
                if let Some(addr) = dict_peer(entry) {
                    if usable(&addr) && !peers.contains(&addr) {
                        peers.push(addr);
                    }
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Bytes(b)) = dict.get(b"peers6".as_slice()) {
        compact::decode(b, true, MAX_PEERS_PER_ANSWER, &mut peers);
    }
    Ok(Answer { interval: interval(secs), peers, warning: text("warning message") })
}

/// A peer of the original (not compact) form: `{ip, port}`.
fn dict_peer(v: &Value) -> Option<SocketAddr> {
    let Value::Dict(d) = v else { return None };
    let ip = match d.get(b"ip".as_slice())? {
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok()?,
        _ => return None,
    };
    let port = match d.get(b"port".as_slice())? {
        Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn an_answer_gives_peers_of_every_form_and_a_bounded_interval() {
        let body = b"d8:intervali900e5:peers12:\x7f\x00\x00\x01\x1a\xe1\x00\x00\x00\x00\x00\x016:peers618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe215:warning message4:slowe";
        let a = parse_body(body).unwrap();
        assert_eq!(a.interval, Duration::from_secs(900));
        assert_eq!(a.peers, vec!["127.0.0.1:6881".parse().unwrap(), "[::1]:6882".parse().unwrap()]);
        assert_eq!(a.warning.as_deref(), Some("slow"));
        let listed = b"d8:intervali5e5:peersld2:ip9:127.0.0.24:porti7000eed2:ip7:0.0.0.04:porti1eeee";
        let a = parse_body(listed).unwrap();
        assert_eq!(
            (a.interval, a.peers),
            (super::super::MIN_INTERVAL, vec!["127.0.0.2:7000".parse().unwrap()])
        );
    }

    #[test]
    fn refusals_and_junk_are_errors_not_panics() {
        let failed = parse_body(b"d14:failure reason8:not heree").unwrap_err();
        assert_eq!(failed.to_string(), "the tracker refused: not here");
        for junk in [&b""[..], b"de", b"i5e", b"d5:peersi5ee"] {
            let _ = parse_body(junk); // an error or an empty answer, never a panic
        }
        let deep = "l".repeat(10_000) + &"e".repeat(10_000);
        assert!(parse_body(deep.as_bytes()).is_err());
    }

    /// A one-shot HTTP server answering `reply`; returns its address and what it was asked.
    fn server(reply: Vec<u8>) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = vec![0u8; 4096];
            let n = s.read(&mut req).unwrap();
            let _ = s.write_all(&reply);
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        (addr, h)
    }

    #[test]
    fn an_announce_asks_in_the_usual_form_and_reads_the_answer() {
        let body = b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
        let reply = [b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".as_slice(), body].concat();
        let (addr, asked) = server(reply);
        let a = super::super::announce(&format!("http://{addr}/announce"), &sample(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(a.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let asked = asked.join().unwrap();
        assert!(asked.starts_with("GET /announce?info_hash=%"), "{asked}");
        assert!(
            asked.contains("&port=6881&") && asked.contains("&left=10&") && asked.contains("&compact=1"),
            "{asked}"
        );
        assert!(asked.contains("&event=started"), "{asked}");
    }

    #[test]
    fn an_http_error_or_a_silent_server_ends_within_the_deadline() {
        let (addr, _) = server(b"HTTP/1.0 404 Not Found\r\n\r\n".to_vec());
        let e = super::super::announce(&format!("http://{addr}/x"), &sample(), Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(e.to_string(), "the tracker refused: HTTP 404");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let started = Instant::now();
        let e = super::super::announce(&format!("http://{addr}/x"), &sample(), Duration::from_millis(300));
        assert!(e.is_err());
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        drop(l);
    }
}
