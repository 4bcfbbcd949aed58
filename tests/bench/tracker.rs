//! Tracker: `search` requests per second from 32 concurrent clients, on kept-open
//! connections and on one connection per request, with p50/p99 latency.

use crate::percentile;
use p2p_share::hash::ContentId;
use p2p_share::tracker::{Tracker, TrackerOptions};
use p2p_share::wire::conn::Conn;
use p2p_share::wire::tracker_msg::{FileInfo, TrackerReply, TrackerRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const IO: Duration = Duration::from_secs(5);

pub fn run() {
    // The tracker runs in this process (same code as the binary, no console logging), so
    // the figures measure request handling rather than terminal output.
    let opts = TrackerOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..TrackerOptions::default()
    };
    let tracker = Tracker::bind(opts).expect("bind tracker");
    let addr = tracker.local_addr();
    let http = tracker.http_addr().expect("http on");
    let stop = tracker.shutdown_handle();
    let server = thread::spawn(move || tracker.run());
    populate(addr);
    println!("tracker: search requests, {CLIENTS} concurrent clients on loopback");
    let (n, took, lat) = load(addr, Duration::from_secs(5), true);
    let native_rate = n as f64 / took.as_secs_f64();
    report("kept-open connections", n, took, lat);
    let (n, took, lat) = load(addr, Duration::from_secs(3), false);
    report("one connection per request", n, took, lat);
    println!("tracker: HTTP announces (BitTorrent), {CLIENTS} concurrent keep-alive clients");
    let (n, took, lat) = http_load(http, Duration::from_secs(5));
    let http_rate = n as f64 / took.as_secs_f64();
    report("kept-open connections", n, took, lat);
    println!("  HTTP announces / native searches: {:.2} (target at least 0.5)", http_rate / native_rate);
    stop.stop();
    let _ = server.join();
}

fn populate(addr: SocketAddr) {
    let mut c = Conn::connect(addr, IO).unwrap();
    for p in 0..8u16 {
        let port = 6000 + p;
        let token = match c.call(&TrackerRequest::Register { port: Some(port), token: None }).unwrap() {
            TrackerReply::Registered { token, .. } => token,
            other => panic!("{other:?}"),
        };
        let added = (0..125u32)
            .map(|i| {
                let n = p as u32 * 125 + i;
                FileInfo {
                    name: format!("file-{n}.bin"),
                    size: 1 << 20,
                    content_id: ContentId::of(&n.to_be_bytes()),
                }
            })
            .collect();
        let r: TrackerReply =
            c.call(&TrackerRequest::Announce { port, token, full: None, added, removed: vec![] }).unwrap();
        assert_eq!(r, TrackerReply::Ok);
    }
}

fn load(addr: SocketAddr, dur: Duration, keep_open: bool) -> (u64, Duration, Vec<u32>) {
    let start = Instant::now();
    let refused = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let refused = Arc::clone(&refused);
            thread::spawn(move || {
                let req = TrackerRequest::Search { name: format!("file-{}.bin", i * 31) };
                let mut lat = Vec::with_capacity(1 << 16);
                // Each client is its own host (its own loopback address), as 32 peers would be;
                // the tracker caps connections per address.
                let me = SocketAddr::from(([127, 0, 1, 10 + i as u8], 0));
                let mut conn = if keep_open { Some(connect_from(me, addr)) } else { None };
                while start.elapsed() < dur {
                    let t = Instant::now();
                    let reply: TrackerReply = match conn.as_mut() {
                        Some(c) => c.call(&req).unwrap(),
                        None => connect_from(me, addr).call(&req).unwrap(),
                    };
                    match reply {
                        TrackerReply::Files { ref files, .. } if files.len() == 1 => {
                            lat.push(t.elapsed().as_micros() as u32)
                        }
                        other => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            eprintln!("refused: {other:?}");
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u32> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let took = start.elapsed();
    all.sort_unstable();
    let refused = refused.load(Ordering::Relaxed);
    assert_eq!(refused, 0, "the tracker refused {refused} requests");
    (all.len() as u64, took, all)
}

/// A connection to `to` from the local address `from`.
fn connect_from(from: SocketAddr, to: SocketAddr) -> Conn {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&from.into()).unwrap();
    s.connect_timeout(&to.into(), IO).unwrap();
    Conn::new(s.into(), IO).unwrap()
}

fn report(what: &str, n: u64, took: Duration, lat: Vec<u32>) {
    println!(
        "  {what:<28} {:>9.0} requests/s   p50 {:>6.3} ms   p99 {:>6.3} ms   ({n} requests in {:.1} s)",
        n as f64 / took.as_secs_f64(),
        percentile(&lat, 0.50) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        took.as_secs_f64()
    );
}

/// Announces over HTTP/1.1 keep-alive from `CLIENTS` addresses, each for one of the
/// populated files; every answer must be an announce answer.
fn http_load(http: SocketAddr, dur: Duration) -> (u64, Duration, Vec<u32>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let start = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || {
                let id = ContentId::of(&((i * 31) as u32).to_be_bytes());
                let hash: String = id.as_bytes().iter().map(|b| format!("%{b:02x}")).collect();
                let req = format!(
                    "GET /announce?info_hash={hash}&peer_id=-TR3000-{i:012}&port={}&uploaded=0&downloaded=0&left=1000&compact=1 HTTP/1.1\r\nHost: t\r\n\r\n",
                    7000 + i
                );
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                s.bind(&SocketAddr::from(([127, 0, 1, 10 + i as u8], 0)).into()).unwrap();
                s.connect_timeout(&http.into(), IO).unwrap();
                let s: std::net::TcpStream = s.into();
                s.set_nodelay(true).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut lat = Vec::with_capacity(1 << 16);
                let mut line = String::new();
                while start.elapsed() < dur {
                    let t = Instant::now();
                    w.write_all(req.as_bytes()).unwrap();
                    let mut len = 0usize;
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        if let Some(v) = line.strip_prefix("Content-Length: ") {
                            len = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; len];
                    r.read_exact(&mut body).unwrap();
                    assert!(body.starts_with(b"d8:complete"), "{}", String::from_utf8_lossy(&body));
                    lat.push(t.elapsed().as_micros() as u32);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u32> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let took = start.elapsed();
    all.sort_unstable();
    (all.len() as u64, took, all)
}
