//! Abuse of a seeder's dialing and of its log (issue 26, items 9 and 10): fake leechers
//! from one address that answer the handshake and then ask for nothing, and a reconnect
//! loop against the per-address cap. (Item 12, leechers heard on the tracker's loopback,
//! needs a second host: `tracker::state` and `peer::node` test its decisions.)

use crate::helpers::{peer_dir, test_bytes, wait_until, PeerProc, TrackerProc, IO};
use p2p_share::bt::msg::{self, Handshake, Message, HANDSHAKE_LEN};
use p2p_share::hash::ContentId;
use p2p_share::manifest::hash_file;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A BitTorrent "leecher" listening on `ip`: answers a seeder's handshake for `id`, then
/// either only sends keep-alives (a fake) or says it is interested (a real one). Counts the
/// connections it was dialed on, and those the seeder closed.
struct Leecher {
    addr: SocketAddr,
    dialed: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

fn leecher(ip: IpAddr, id: ContentId, interested: bool, stop: &Arc<AtomicBool>) -> Leecher {
    let l = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    let (dialed, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (d, c, stop) = (Arc::clone(&dialed), Arc::clone(&closed), Arc::clone(stop));
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            d.fetch_add(1, Ordering::SeqCst);
            let (c, stop) = (Arc::clone(&c), Arc::clone(&stop));
            thread::spawn(move || {
                if serve_leecher(s, id, interested, &stop) {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    Leecher { addr, dialed, closed }
}

/// True when the seeder closed the connection.
fn serve_leecher(mut s: TcpStream, id: ContentId, interested: bool, stop: &AtomicBool) -> bool {
    let mut theirs = [0u8; HANDSHAKE_LEN];
    if s.read_exact(&mut theirs).is_err() {
        return true;
    }
    let mut out = Handshake::ours(id, *b"-XX0000-leecher-0001").to_bytes().to_vec();
    if interested {
        msg::encode(&Message::Interested, &mut out);
    }
    if s.write_all(&out).is_err() {
        return true;
    }
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                let mut keep_alive = Vec::new();
                msg::encode(&Message::KeepAlive, &mut keep_alive);
                if s.write_all(&keep_alive).is_err() {
                    return true;
                }
            }
            Err(_) => return true,
        }
    }
    false
}

/// Announces `at` (its address and port) as a leecher of `id` to the HTTP tracker, from
/// `at`'s own address.
fn announce_leecher(http: SocketAddr, id: ContentId, at: SocketAddr) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(at.ip(), 0).into()).unwrap();
    s.connect_timeout(&http.into(), IO).unwrap();
    let mut s: TcpStream = s.into();
    let hash: String = id.as_bytes().iter().map(|b| format!("%{b:02x}")).collect();
    let peer_id = format!("-XX0000-{:012}", at.port());
    write!(
        s,
        "GET /announce?info_hash={hash}&peer_id={peer_id}&port={}&uploaded=0&downloaded=0&left=1000&event=started&compact=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        at.port()
    )
    .unwrap();
    let mut reply = Vec::new();
    s.set_read_timeout(Some(IO)).unwrap();
    let read = s.read_to_end(&mut reply);
    assert!(reply.windows(10).any(|w| w == b"8:interval"), "{read:?} {}", String::from_utf8_lossy(&reply));
}

/// Item 9: 40 fake leechers on one address hold at most a few of the seeder's dial slots
/// and are closed once they have asked for nothing for a while; a real leecher on another
/// address is dialed at once.
#[test]
fn fake_leechers_on_one_address_cannot_hold_the_seeders_dials() {
    let (t, http) = http_tracker_with_interval();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(3 << 20, 310);
    let dir = peer_dir(root.path(), "seed", &[("x.bin", &data)]);
    let id = hash_file(&dir.join("files/x.bin"), "x.bin", true).unwrap().content_id();
    let (_seed, _) = PeerProc::serve(t.addr, &dir, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let fakes: Vec<Leecher> = (0..40).map(|_| leecher([127, 0, 0, 90].into(), id, false, &stop)).collect();
    for f in &fakes {
        announce_leecher(http, id, f.addr);
    }
    let real = leecher([127, 0, 0, 91].into(), id, true, &stop);
    announce_leecher(http, id, real.addr);
    let started = Instant::now();
    let dialed_real = wait_until(Duration::from_secs(10), || real.dialed.load(Ordering::SeqCst) > 0);
    let took = started.elapsed();
    let fakes_dialed = || fakes.iter().map(|f| f.dialed.load(Ordering::SeqCst)).sum::<usize>();
    let fakes_closed = || fakes.iter().map(|f| f.closed.load(Ordering::SeqCst)).sum::<usize>();
    let dialed_at_most = fakes_dialed();
    // Every fake dialed so far is closed within the idle limit (20 s) and a little.
    let closed_all = wait_until(Duration::from_secs(30), || fakes_closed() >= dialed_at_most);
    stop.store(true, Ordering::SeqCst);
    eprintln!("real leecher dialed after {took:?}; fakes dialed {dialed_at_most}, closed {}", fakes_closed());
    assert!(dialed_real, "the real leecher was not dialed in 10 s");
    assert!(dialed_at_most <= 4, "{dialed_at_most} fakes on one address were dialed");
    assert!(closed_all, "fakes dialed {dialed_at_most}, closed {}", fakes_closed());
}

/// A tracker with HTTP on and a one-second announce interval (seeders ask for leechers to
/// dial once per interval).
fn http_tracker_with_interval() -> (TrackerProc, SocketAddr) {
    let t = TrackerProc::start(&["--http", "127.0.0.1:0", "--announce-interval", "1"]);
    let line = t.proc.wait_for_line("HTTP tracker on http://", IO);
    let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    (t, addr)
}

/// Item 10: a reconnect loop from 19 addresses against a per-address cap of 1 writes a
/// line per address and a count per window, not a warning per refusal (before: a warning
/// per refusal, 249 554 lines in 45 s).
#[test]
fn refusals_in_a_reconnect_loop_are_logged_in_summary() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let (p, port) = PeerProc::serve(
        t.addr,
        &peer_dir(root.path(), "src", &[("x.bin", b"x")]),
        &["--max-conns-per-ip", "1"],
    );
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for last in 100..119u8 {
        for _ in 0..3 {
            let (stop, attempts) = (Arc::clone(&stop), Arc::clone(&attempts));
            threads.push(thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                    if s.bind(&SocketAddr::new(IpAddr::from([127, 0, 0, last]), 0).into()).is_ok()
                        && s.connect_timeout(&target.into(), IO).is_ok()
                    {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        let mut s: TcpStream = s.into();
                        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                        let _ = s.read(&mut [0u8; 256]); // the refusal, or nothing while held
                    }
                }
            }));
        }
    }
    // Past one 10 s window, so its counts are written.
    thread::sleep(Duration::from_secs(11));
    stop.store(true, Ordering::SeqCst);
    threads.into_iter().for_each(|h| h.join().unwrap());
    // The next connection after the window ended writes its summary.
    let next = TcpStream::connect(target).unwrap();
    let out_of_window = || p.proc.output().contains("more connections from 127.0.0.1");
    assert!(wait_until(IO, out_of_window), "no summary: {}", p.proc.output());
    drop(next);
    let out = p.proc.output();
    let lines = out.lines().filter(|l| l.contains("refus")).count();
    let attempts = attempts.load(Ordering::SeqCst);
    eprintln!("{attempts} connections in 11 s, {lines} log lines about refusals");
    assert!(attempts > 1000, "the loop made only {attempts} connections");
    let refusal_lines: Vec<&str> = out.lines().filter(|l| l.contains("refus")).collect();
    // A first line and a count per address and 10 s window: two windows here.
    assert!(lines <= 19 * 2 * 2, "{lines} lines for {attempts} connections: {refusal_lines:#?}");
}
