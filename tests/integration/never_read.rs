//! Clients that never read (issue 26, items 1-4): they pipeline requests and leave every
//! reply in the socket, or take a few bytes now and then. Each test does what the attacker
//! did, from a few loopback addresses, and checks what an honest user notices: answers
//! within the targets, and no serving thread held past its write deadline.

use crate::helpers::{attack_bound, peer_dir, test_bytes, wait_until, PeerProc, TrackerProc, IO};
use crate::http_tracker::http_tracker;
use p2p_share::bt::metadata::{self, MetadataMsg, OUR_UT_METADATA};
use p2p_share::bt::msg::{self, Handshake, Message};
use p2p_share::hash::ContentId;
use p2p_share::holdings::shares::Shares;
use p2p_share::manifest::hash_file;
use p2p_share::peer::options::ServerOptions;
use p2p_share::peer::server::PeerServer;
use p2p_share::storage::Place;
use p2p_share::wire::conn::Conn;
use p2p_share::wire::encode_request;
use p2p_share::wire::peer_msg::{PeerReply, PeerRequest};
use p2p_share::wire::tracker_msg::{FileListing, TrackerReply, TrackerRequest};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

/// Opens `per_ip` connections from each of `ips` to `target`, each of which sends
/// `opening` once and then `request` over and over, and never reads. A connection the
/// server closes is opened again, until `stop`. Returns how many threads connected.
fn never_reading(
    target: SocketAddr,
    ips: std::ops::Range<u8>,
    per_ip: usize,
    opening: Vec<u8>,
    request: Vec<u8>,
    stop: &Arc<AtomicBool>,
) -> Arc<AtomicUsize> {
    let connected = Arc::new(AtomicUsize::new(0));
    let batch: Arc<Vec<u8>> = Arc::new(request.repeat((16 * 1024 / request.len()).max(1)));
    let opening = Arc::new(opening);
    for last in ips {
        for _ in 0..per_ip {
            let (stop, connected) = (Arc::clone(stop), Arc::clone(&connected));
            let (opening, batch) = (Arc::clone(&opening), Arc::clone(&batch));
            thread::spawn(move || {
                let mut counted = false;
                while !stop.load(Ordering::SeqCst) {
                    let Some(mut s) = connect_from(IpAddr::from([127, 0, 0, last]), target) else {
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    if !counted {
                        connected.fetch_add(1, Ordering::SeqCst);
                        counted = true;
                    }
                    let _ = s.set_write_timeout(Some(Duration::from_millis(300)));
                    if s.write_all(&opening).is_err() {
                        continue;
                    }
                    while !stop.load(Ordering::SeqCst) {
                        match s.write(&batch) {
                            Ok(0) => break,
                            Ok(_) => {}
                            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                            Err(_) => break, // closed by the server: connect again
                        }
                    }
                }
            });
        }
    }
    connected
}

/// A connection from `from`, with a small receive buffer as a client that means to block
/// the server's writes would choose.
fn connect_from(from: IpAddr, to: SocketAddr) -> Option<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    s.set_recv_buffer_size(4096).ok()?;
    s.bind(&SocketAddr::new(from, 0).into()).ok()?;
    s.connect_timeout(&to.into(), IO).ok()?;
    Some(s.into())
}

/// Runs `probe` `n` times, half a second apart; returns the slowest time it took.
fn slowest_of(n: usize, mut probe: impl FnMut() -> Result<(), String>) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let started = Instant::now();
        if let Err(e) = probe() {
            panic!("honest probe {i} failed after {:?}: {e}", started.elapsed());
        }
        slowest = slowest.max(started.elapsed());
        thread::sleep(Duration::from_millis(500));
    }
    eprintln!("the slowest of {n} honest probes took {slowest:?}");
    slowest
}

/// Item 1: 16 connections from each of 16 addresses (the report used 2) pipeline
/// `GET /status.js` and never read; honest HTTP announces are still answered about as fast
/// as before (`attack_bound`).
#[test]
fn http_clients_that_never_read_cannot_stop_announces() {
    let (t, http) = http_tracker();
    let id = ContentId::of(b"an honest torrent");
    let query = format!(
        "/announce?info_hash={}&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=5&compact=1",
        id.as_bytes().iter().map(|b| format!("%{b:02x}")).collect::<String>()
    );
    let announce = || {
        let mut s = TcpStream::connect(http).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).map_err(|e| format!("{e} with {} bytes", all.len()))?;
        let text = String::from_utf8_lossy(&all);
        match text.starts_with("HTTP/1.1 200") && text.contains("8:interval") {
            true => Ok(()),
            false => Err(text.into_owned()),
        }
    };
    let before = slowest_of(3, announce);
    let stop = Arc::new(AtomicBool::new(false));
    let get = b"GET /status.js HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let attackers = never_reading(http, 40..56, 16, Vec::new(), get, &stop);
    assert!(wait_until(Duration::from_secs(10), || attackers.load(Ordering::SeqCst) >= 256));
    thread::sleep(Duration::from_secs(2)); // every reply queue full, every writer blocked
    let slowest = slowest_of(6, announce);
    stop.store(true, Ordering::SeqCst);
    assert!(slowest < attack_bound(before), "an honest announce took {slowest:?} ({before:?} before)");
    drop(t);
}

/// Item 4: a wave of 16 addresses at their cap asking for the file list and never reading
/// the answers; an honest `peer list` is answered about as fast as before the wave.
#[test]
fn tracker_clients_that_never_read_cannot_hold_every_worker() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    // Enough files that each list answer is tens of KiB.
    let names: Vec<String> = (0..300).map(|i| format!("file-{i:03}-{}.bin", "x".repeat(60))).collect();
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"some bytes"[..])).collect();
    let (_p, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &files), &[]);
    let listed = || {
        let mut c = Conn::connect(t.addr, IO).unwrap();
        matches!(c.call(&TrackerRequest::ListFiles), Ok(TrackerReply::Files { files, .. }) if files.len() == 300)
    };
    assert!(wait_until(IO, listed), "the 300 files were announced");
    let peer_list = || {
        let out = Command::new(env!("CARGO_BIN_EXE_peer"))
            .args(["--tracker", &t.addr.to_string(), "list"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        match out.status.success() && text.contains("file-299") {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    };
    let before = slowest_of(3, peer_list);
    let stop = Arc::new(AtomicBool::new(false));
    let mut list = Vec::new();
    encode_request(&mut list, &TrackerRequest::ListFiles);
    let attackers = never_reading(t.addr, 50..66, 16, Vec::new(), list, &stop);
    assert!(wait_until(Duration::from_secs(10), || attackers.load(Ordering::SeqCst) >= 256));
    let slowest = slowest_of(8, peer_list);
    stop.store(true, Ordering::SeqCst);
    assert!(slowest < attack_bound(before), "an honest list took {slowest:?} ({before:?} before)");
}

/// A BitTorrent client's opening for `id` with the extension protocol, then its extension
/// handshake naming ut_metadata.
fn bt_opening(id: ContentId) -> Vec<u8> {
    let mut out = Handshake::ours(id, *b"-XX0000-never-reads!").to_bytes().to_vec();
    out[20 + 5] |= 0x10;
    let theirs = b"d1:md11:ut_metadatai3eee".to_vec();
    msg::encode(&Message::Extended { id: metadata::HANDSHAKE_ID, payload: theirs }, &mut out);
    out
}

/// Item 2: 16 addresses at their cap ask a peer for chunks (native) or for the metadata
/// (BitTorrent, ut_metadata) and never read; honest probes are answered, and a download from
/// the besieged peer starts and ends, about as fast as before the siege.
#[test]
fn peer_clients_that_never_read_cannot_hold_every_slot() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 << 20, 301);
    let (_p, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("x.bin", &data)]), &[]);
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let id = match t.conn().call(&TrackerRequest::Search { name: "x.bin".into() }).unwrap() {
        TrackerReply::Files { files, .. } => {
            files.iter().map(|l: &FileListing| l.info.content_id).next().unwrap()
        }
        other => panic!("{other:?}"),
    };
    let probe = || {
        let mut c = Conn::connect(target, IO).map_err(|e| e.to_string())?;
        match c.call(&PeerRequest::Have { content_id: id, mine: None }) {
            Ok(PeerReply::Have { complete: true, .. }) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    };
    let download = |name: &str| {
        let dir = peer_dir(root.path(), name, &[]);
        let started = Instant::now();
        let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "x.bin"]).finish(LONG);
        assert_eq!(code, Some(0), "{out}");
        assert!(std::fs::read(dir.join("files/x.bin")).unwrap() == data);
        started.elapsed()
    };
    let (probe_before, download_before) = (slowest_of(3, probe), download("before"));
    let stop = Arc::new(AtomicBool::new(false));
    let mut chunk = Vec::new();
    encode_request(&mut chunk, &PeerRequest::Chunk { content_id: id, index: 1 });
    let native = never_reading(target, 70..78, 16, Vec::new(), chunk, &stop);
    let mut ut = Vec::new();
    msg::encode(
        &Message::Extended { id: OUR_UT_METADATA, payload: metadata::encode(&MetadataMsg::Request(0)) },
        &mut ut,
    );
    let bt = never_reading(target, 78..86, 16, bt_opening(id), ut, &stop);
    let all_in = || native.load(Ordering::SeqCst) + bt.load(Ordering::SeqCst) >= 256;
    assert!(wait_until(Duration::from_secs(10), all_in), "the siege never had its connections");
    thread::sleep(Duration::from_secs(4)); // every writer blocked
    let slowest = slowest_of(6, probe);
    let took = download("during");
    stop.store(true, Ordering::SeqCst);
    eprintln!("the download from the besieged peer took {took:?} ({download_before:?} before)");
    assert!(
        slowest < attack_bound(probe_before),
        "an honest probe took {slowest:?} ({probe_before:?} before)"
    );
    assert!(took < attack_bound(download_before), "the download took {took:?} ({download_before:?} before)");
}

/// Item 3: a reader that takes 8 KiB every second (far below the payload floor of
/// 16 KiB/s) of a pipeline of chunk requests is cut off once a reply passes its write
/// deadline; before, each 8 KiB it took reset the socket's time-out and the connection
/// was served for as long as it asked.
#[test]
fn a_slow_reader_is_cut_off_at_its_write_deadline() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("small.bin");
    // One chunk of 48 KiB: a reply owes its bytes within 1 s + 48 KiB / 16 KiB/s = 4 s.
    std::fs::write(&path, test_bytes(48 * 1024, 302)).unwrap();
    let m = hash_file(&path, "small.bin", true).unwrap();
    let id = m.content_id();
    let shares = Arc::new(Shares::default());
    shares.add_complete(Arc::new(m), id, Place::file(path.clone()).unwrap());
    let opts = ServerOptions { message_deadline: Duration::from_secs(1), ..ServerOptions::default() };
    let server = PeerServer::start(TcpListener::bind("127.0.0.1:0").unwrap(), shares, opts).unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(8 * 1024).unwrap();
    s.connect(&server.local_addr().into()).unwrap();
    let mut s: TcpStream = s.into();
    let mut reqs = Vec::new();
    let asked = 300; // 14 MiB of replies, more than the kernel's buffers hold
    (0..asked).for_each(|_| encode_request(&mut reqs, &PeerRequest::Chunk { content_id: id, index: 0 }));
    s.write_all(&reqs).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 8 * 1024];
    let started = Instant::now();
    let mut ended = false;
    while !ended && started.elapsed() < Duration::from_secs(12) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => ended = true,
            Ok(n) => got += n,
        }
        thread::sleep(Duration::from_secs(1));
    }
    // Then read what is left as fast as it comes: a connection the server ended runs out
    // (with a reset, as it closes with our requests unread).
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    while !ended {
        match s.read(&mut buf) {
            Ok(0) => ended = true,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => ended = true,
            Err(_) => break,
        }
    }
    let reply = 48 * 1024 + 40; // a chunk and its reply frame, about
    eprintln!("the slow reader got {} of {asked} replies, ended: {ended}", got / reply);
    assert!(ended, "the server still served the slow reader after 12 s ({} replies read)", got / reply);
    assert!(got < asked * reply / 2, "{got} bytes of {} were sent", asked * reply);
}
