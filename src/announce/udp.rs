//! UDP trackers (BEP 15): a connect exchange gives a connection id, then an announce. Each
//! request is sent again after 15 × 2^n seconds without an answer, as BEP 15 says, until
//! the deadline; answers whose transaction id or action do not match are ignored.

use super::{host_port, interval, Announce, AnnounceError, Answer, Event, MAX_PEERS_PER_ANSWER};
use crate::compact;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

const PROTOCOL_ID: u64 = 0x0417_2710_1980;
const CONNECT: u32 = 0;
const ANNOUNCE: u32 = 1;
const ERROR: u32 = 3;
/// BEP 15's first wait for an answer; it doubles after each retransmission.
const FIRST_WAIT: Duration = Duration::from_secs(15);

pub(super) fn announce(rest: &str, a: &Announce, within: Duration) -> Result<Answer, AnnounceError> {
    let deadline = Instant::now() + within;
    let (host_port, _) = host_port(rest, 6969)?;
    let addr: SocketAddr = host_port
        .to_socket_addrs()
        .map_err(|e| AnnounceError::Url(format!("{host_port}: {e}")))?
        .next()
        .ok_or_else(|| AnnounceError::Url(format!("{host_port}: no address")))?;
    let sock = UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    sock.connect(addr)?;
    let tx = u32::from_le_bytes(crate::random::bytes());
    let mut req = Vec::with_capacity(16);
    req.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
    req.extend_from_slice(&CONNECT.to_be_bytes());
    req.extend_from_slice(&tx.to_be_bytes());
    let conn_id = exchange(&sock, &req, deadline, |r| {
        answer_to(r, CONNECT, tx, 16)
            .map(|body| body.map(|b| u64::from_be_bytes(b[..8].try_into().expect("8"))))
    })?;
    let tx = tx.wrapping_add(1);
    let event: u32 = match a.event {
        Event::None => 0,
        Event::Completed => 1,
        Event::Started => 2,
        Event::Stopped => 3,
    };
    let mut req = Vec::with_capacity(98);
    req.extend_from_slice(&conn_id.to_be_bytes());
    req.extend_from_slice(&ANNOUNCE.to_be_bytes());
    req.extend_from_slice(&tx.to_be_bytes());
    req.extend_from_slice(a.info_hash.as_bytes());
    req.extend_from_slice(&a.peer_id);
    for n in [a.downloaded, a.left, a.uploaded] {
        req.extend_from_slice(&n.to_be_bytes());
    }
    req.extend_from_slice(&event.to_be_bytes());
    req.extend_from_slice(&0u32.to_be_bytes()); // our address: the one the packet came from
    req.extend_from_slice(&crate::random::bytes::<4>()); // key
    req.extend_from_slice(&(MAX_PEERS_PER_ANSWER as i32).to_be_bytes());
    req.extend_from_slice(&a.port.to_be_bytes());
    let v6 = addr.is_ipv6();
    exchange(&sock, &req, deadline, |r| {
        answer_to(r, ANNOUNCE, tx, 20).map(|body| {
            body.map(|b| {
                let secs = u32::from_be_bytes(b[..4].try_into().expect("4"));
                let mut peers = Vec::new();
                compact::decode(&b[12..], v6, MAX_PEERS_PER_ANSWER, &mut peers);
                Answer { interval: interval(u64::from(secs)), peers, warning: None }
            })
        })
    })
}

/// The body of `answer` (after action and transaction id) if it answers `action` of
/// transaction `tx` and is at least `len` bytes long; an error if the tracker said one;
/// `None` if it is not an answer to this request.
fn answer_to(answer: &[u8], action: u32, tx: u32, len: usize) -> Option<Result<&[u8], AnnounceError>> {
    if answer.len() < 8 || u32::from_be_bytes(answer[4..8].try_into().expect("4")) != tx {
        return None;
    }
    match u32::from_be_bytes(answer[..4].try_into().expect("4")) {
        ERROR => Some(Err(AnnounceError::Failure(
            String::from_utf8_lossy(&answer[8..]).chars().take(200).collect(),
        ))),
        a if a == action && answer.len() >= len => Some(Ok(&answer[8..])),
        _ => None,
    }
}

/// Sends `req` and waits for the answer `parse` accepts, sending again after 15 × 2^n s,
/// until `deadline`.
fn exchange<T>(
    sock: &UdpSocket,
    req: &[u8],
    deadline: Instant,
    parse: impl Fn(&[u8]) -> Option<Result<T, AnnounceError>>,
) -> Result<T, AnnounceError> {
    let mut buf = vec![0u8; 8 + 12 + 18 * MAX_PEERS_PER_ANSWER + 64];
    let mut wait = FIRST_WAIT;
    loop {
        sock.send(req)?;
        let resend_at = (Instant::now() + wait).min(deadline);
        loop {
            let left = resend_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(answer) = parse(&buf[..n]) {
                        return answer;
                    }
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    break
                }
                Err(e) => return Err(e.into()),
            }
        }
        if Instant::now() >= deadline {
            return Err(AnnounceError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")));
        }
        wait = (wait * 2).min(Duration::from_secs(15 * 256));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    /// A UDP tracker that answers each request with what `answer` makes of it (or nothing).
    fn tracker(answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                for reply in answer(&buf[..n]) {
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        addr
    }

    fn header(action: u32, tx: &[u8]) -> Vec<u8> {
        [action.to_be_bytes().as_slice(), tx].concat()
    }

    /// Answers connect and announce as BEP 15 says, after a junk packet and one with
    /// another transaction id each time.
    fn honest(req: &[u8]) -> Vec<Vec<u8>> {
        let junk = vec![vec![1, 2, 3], header(CONNECT, &[9, 9, 9, 9])];
        if req.len() == 16 {
            let mut ok = header(CONNECT, &req[12..16]);
            ok.extend_from_slice(&77u64.to_be_bytes());
            return [junk, vec![ok]].concat();
        }
        assert_eq!(u64::from_be_bytes(req[..8].try_into().unwrap()), 77, "the connection id");
        assert_eq!(u32::from_be_bytes(req[80..84].try_into().unwrap()), 2, "started");
        let mut ok = header(ANNOUNCE, &req[12..16]);
        ok.extend_from_slice(&5u32.to_be_bytes()); // interval
        ok.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        ok.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 0, 0, 0, 0, 0, 1]);
        [junk, vec![ok]].concat()
    }

    #[test]
    fn connect_then_announce_ignoring_answers_to_other_requests() {
        let addr = tracker(honest);
        let a = super::super::announce(&format!("udp://{addr}/announce"), &sample(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(a.peers, vec!["127.0.0.1:6881".parse().unwrap()], "the unusable 0.0.0.0:1 dropped");
        assert_eq!(a.interval, super::super::MIN_INTERVAL);
    }

    #[test]
    fn an_error_is_shown_and_silence_ends_at_the_deadline() {
        let addr = tracker(|req| {
            let mut e = header(ERROR, &req[12..16]);
            e.extend_from_slice(b"Requested download is not authorized");
            vec![e]
        });
        let e =
            super::super::announce(&format!("udp://{addr}"), &sample(), Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.to_string(), "the tracker refused: Requested download is not authorized");
        let silent = tracker(|_| Vec::new());
        let started = Instant::now();
        assert!(super::super::announce(&format!("udp://{silent}"), &sample(), Duration::from_millis(300))
            .is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
