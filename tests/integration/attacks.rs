//! What an attacker with a few source addresses tries (issue 9): escaping DIR, serving
//! half-written or swapped files, speaking for other peers, blocking claims, holding every
//! connection slot, slow and silent sources, exhausting files and the tracker's memory.
//! Each test does what the attacker did and checks what a user would notice.

use crate::fake::{lying_peer, Lie};
use crate::helpers::{attack_bound, peer_dir, test_bytes, wait_until, PeerProc, TrackerProc, IO};
use crate::local::{LocalPeer, LocalTracker};
use crate::tracker::{announce, register};
use p2p_share::hash::ContentId;
use p2p_share::manifest::hash_file;
use p2p_share::wire::conn::Conn;
use p2p_share::wire::peer_msg::{PeerReply, PeerRequest};
use p2p_share::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const LONG: Duration = Duration::from_secs(60);

fn listings(tracker: SocketAddr, req: TrackerRequest) -> Vec<FileListing> {
    match Conn::connect(tracker, IO).unwrap().call(&req).unwrap() {
        TrackerReply::Files { files, .. } => files,
        other => panic!("{other:?}"),
    }
}

fn shared_id(tracker: SocketAddr, name: &str) -> Option<ContentId> {
    listings(tracker, TrackerRequest::Search { name: name.into() })
        .into_iter()
        .find(|l| l.info.name == name)
        .map(|l| l.info.content_id)
}

fn chunk0(peer: SocketAddr, id: ContentId) -> Result<Vec<u8>, String> {
    let mut conn = Conn::connect(peer, IO).unwrap();
    match conn.call(&PeerRequest::Chunk { content_id: id, index: 0 }).unwrap() {
        PeerReply::Chunk { len, .. } => {
            let mut buf = vec![0u8; len as usize];
            conn.read_raw(&mut buf).map_err(|e| e.to_string())?;
            Ok(buf)
        }
        PeerReply::Error { reason } => Err(reason),
        other => Err(format!("a '{}' reply", other.kind())),
    }
}

/// Item 1: a shared file replaced by a symlink to a file outside DIR, or rewritten in
/// place, is not served; the outside bytes never leave.
#[test]
fn a_swapped_or_changed_file_is_never_served() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * MIB, 90);
    let dir = peer_dir(root.path(), "src", &[("doc.bin", &data)]);
    let secret = root.path().join("secret.bin");
    fs::write(&secret, test_bytes(2 * MIB, 91)).unwrap();
    let p = LocalPeer::start(t.addr, &dir);
    let port = p.addr();
    let id = shared_id(t.addr, "doc.bin").expect("shared");
    let shared = dir.join("files/doc.bin");
    for round in 0..5 {
        fs::remove_file(&shared).unwrap();
        std::os::unix::fs::symlink(&secret, &shared).unwrap();
        let got = chunk0(port, id);
        assert!(got.is_err(), "round {round}: the outside file's bytes were served");
        fs::remove_file(&shared).unwrap();
        fs::write(&shared, &data).unwrap(); // a new inode with the same bytes
        let again = chunk0(port, id);
        assert!(again.as_ref().map_or(true, |b| b[..] == data[..MIB]), "round {round}: wrong bytes");
    }
    // Rewritten in place with other bytes of the same size: refused, not sent.
    let wait = wait_until(Duration::from_secs(5), || chunk0(port, id).is_ok());
    assert!(wait, "the restored file is served again");
    let mut f = fs::OpenOptions::new().write(true).open(&shared).unwrap();
    f.write_all(&test_bytes(MIB, 92)).unwrap();
    drop(f);
    let err = chunk0(port, id).unwrap_err();
    assert!(err.contains("changed on disk"), "{err}");
}

/// Item 2: a file copied in slowly is announced once, whole, and downloads of it are right.
#[test]
fn a_file_being_written_is_shared_only_once_it_settles() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "src", &[]);
    let _p = LocalPeer::start(t.addr, &dir);
    let data = test_bytes(8 * MIB, 93);
    let path = dir.join("files/big.bin");
    let mut f = fs::File::create(&path).unwrap();
    let mut seen_sizes = std::collections::BTreeSet::new();
    for part in data.chunks(MIB / 2) {
        f.write_all(part).unwrap();
        f.flush().unwrap();
        for l in listings(t.addr, TrackerRequest::Search { name: "big.bin".into() }) {
            seen_sizes.insert(l.info.size);
        }
        thread::sleep(Duration::from_millis(150));
    }
    drop(f);
    assert!(seen_sizes.is_empty(), "announced while being written: {seen_sizes:?}");
    assert!(wait_until(Duration::from_secs(5), || shared_id(t.addr, "big.bin").is_some()));
    let all = listings(t.addr, TrackerRequest::Search { name: "big.bin".into() });
    assert_eq!(all.len(), 1, "one version: {all:?}");
    assert_eq!(all[0].info.size, data.len() as u64);
    let down = peer_dir(root.path(), "down", &[]);
    LocalPeer::start(t.addr, &down).download("big.bin").unwrap();
    assert!(fs::read(down.join("files/big.bin")).unwrap() == data);
}

/// Item 3: another process on the same address cannot wipe, add to or remove a peer.
#[test]
fn only_the_peers_own_session_speaks_for_it() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(MIB, 94);
    let (_p, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("mine.bin", &data)]), &[]);
    assert!(shared_id(t.addr, "mine.bin").is_some());
    let forged = |req: TrackerRequest| -> TrackerReply { t.conn().call(&req).unwrap() };
    let fake = FileInfo { name: "planted.exe".into(), size: 1, content_id: ContentId::of(b"p") };
    for token in [String::new(), "0".repeat(32)] {
        let wipe = forged(TrackerRequest::Announce {
            port,
            token: token.clone(),
            full: Some(vec![]),
            added: vec![fake.clone()],
            removed: vec![],
        });
        assert!(matches!(wipe, TrackerReply::Error { ref reason } if reason.contains("wrong session token")));
        let leave = forged(TrackerRequest::Leave { port, token: token.clone() });
        assert!(matches!(leave, TrackerReply::Error { .. }), "{leave:?}");
        let take = forged(TrackerRequest::Register { port: Some(port), token: Some(token) });
        assert!(matches!(take, TrackerReply::Error { ref reason } if reason.contains("live peer session")));
    }
    let all = listings(t.addr, TrackerRequest::ListFiles);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].info.name.as_str(), all[0].holders[0].port()), ("mine.bin", port));
}

/// Item 4: a false claim of a real content id blocks nobody; a fake id under a real name
/// loses to the id more hosts share.
#[test]
fn false_claims_block_no_one() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * MIB, 95);
    let src = peer_dir(root.path(), "src", &[]);
    let m = hash_file(
        &{
            let p = root.path().join("real.bin");
            fs::write(&p, &data).unwrap();
            p
        },
        "real.bin",
        true,
    )
    .unwrap();
    let real = FileInfo { name: "real.bin".into(), size: data.len() as u64, content_id: m.content_id() };
    // 127.0.0.2 claims the real id under another name, and a fake id under the real name.
    let evil = raw_peer(t.addr, "127.0.0.2");
    let lie = FileInfo { name: "evil.txt".into(), size: 1, content_id: real.content_id };
    let fake = FileInfo { name: "real.bin".into(), size: 5, content_id: ContentId::of(b"fake") };
    assert_eq!(evil.announce(vec![lie, fake]), TrackerReply::Ok);
    // The real holder starts afterwards, with another file in the same batch.
    fs::write(src.join("files/real.bin"), &data).unwrap();
    fs::write(src.join("files/other.txt"), b"other").unwrap();
    let (_p, _) = PeerProc::serve(t.addr, &src, &[]);
    let names: Vec<String> =
        listings(t.addr, TrackerRequest::ListFiles).into_iter().map(|l| l.info.name).collect();
    assert!(names.contains(&"other.txt".to_string()), "the batch was taken: {names:?}");
    // A second host vouches for the real file.
    let second = raw_peer(t.addr, "127.0.0.3");
    assert_eq!(second.announce(vec![real.clone()]), TrackerReply::Ok);
    let down = peer_dir(root.path(), "down", &[]);
    let (code, out) = PeerProc::spawn(t.addr, &down, &["download", "real.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(fs::read(down.join("files/real.bin")).unwrap() == data);
    let (code, out) = PeerProc::spawn(t.addr, &down, &["search", "real.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 holders on 2 hosts") || out.contains("3 holders on 3 hosts"), "{out}");
    assert!(out.contains("1 holder on 1 host"), "the fake is shown with its count: {out}");
}

/// A registered peer driven by hand from a chosen loopback address.
struct RawPeer {
    tracker: SocketAddr,
    from: IpAddr,
    port: u16,
    token: String,
}

fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(from, 0).into()).unwrap();
    s.connect_timeout(&to.into(), IO).unwrap();
    s.into()
}

fn raw_peer(tracker: SocketAddr, from: &str) -> RawPeer {
    let from: IpAddr = from.parse().unwrap();
    let mut c = Conn::new(connect_from(from, tracker), IO).unwrap();
    match c.call(&TrackerRequest::Register { port: None, token: None }).unwrap() {
        TrackerReply::Registered { peer, token, .. } => RawPeer { tracker, from, port: peer.port(), token },
        other => panic!("{other:?}"),
    }
}

impl RawPeer {
    fn announce(&self, added: Vec<FileInfo>) -> TrackerReply {
        let mut c = Conn::new(connect_from(self.from, self.tracker), IO).unwrap();
        let req = TrackerRequest::Announce {
            port: self.port,
            token: self.token.clone(),
            full: None,
            added,
            removed: vec![],
        };
        c.call(&req).unwrap()
    }
}

/// Item 11: a second writer on one DIR refuses at start; readers run beside it.
#[test]
fn two_peers_cannot_share_one_folder() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "p", &[("a.bin", &test_bytes(1000, 96))]);
    let (_p, _) = PeerProc::serve(t.addr, &dir, &[]);
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["serve"]).finish(LONG);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("another peer is already using"), "{out}");
    // A download is handed to the running peer instead (tests/integration/running_peer.rs).
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "a.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("to the running peer") && out.contains("'a.bin' is already here"), "{out}");
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["list"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("a.bin"), "{out}");
}

/// Item 12: numbers outside their range are refused with one line, never a panic.
#[test]
fn out_of_range_numbers_are_refused_in_one_line() {
    let tracker = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_tracker")).args(args).output().unwrap();
    let peer = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_peer")).args(args).output().unwrap();
    let huge = "18446744073709551615";
    let cases = [
        tracker(&["--announce-interval", huge]),
        tracker(&["--announce-interval", "0"]),
        tracker(&["--workers", "100000"]),
        tracker(&["--workers", "0"]),
        tracker(&["--first-peer-port", "0"]),
        tracker(&["--max-conns-per-ip", "0"]),
        peer(&["--tracker", "127.0.0.1:1", "download", "x", "--stall-timeout", huge]),
        peer(&["--tracker", "127.0.0.1:1", "--upload-limit", "1", "serve"]),
    ];
    for out in cases {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(1 | 2)), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains("error") || first.starts_with("peer: "), "{err}");
        assert!(
            err.contains("range") || err.contains("invalid rate") || err.contains("invalid value"),
            "{err}"
        );
    }
}

/// Item 14: an HTTP server given as the tracker is named for what it is.
#[test]
fn a_tracker_that_is_not_one_is_named() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.read(&mut [0u8; 512]);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", &addr.to_string(), "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not speak the p2p-share tracker protocol"), "{err}");
}

/// Item 14 and 5, client side: a tracker that drips its reply makes `peer list` fail
/// within its deadline instead of hanging.
#[test]
fn a_tracker_dripping_its_reply_is_given_up_on() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let stop = Arc::clone(&stop2);
            thread::spawn(move || {
                let _ = s.read(&mut [0u8; 512]);
                let reply = br#"{"type":"files","files":[],"total":0}"#;
                let mut all = (reply.len() as u32).to_be_bytes().to_vec();
                all.extend_from_slice(reply);
                for b in all {
                    if stop.load(Ordering::SeqCst) || s.write_all(&[b]).is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(500));
                }
            });
        }
    });
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", &addr.to_string(), "list"])
        .output()
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(12), "gave up after {:?}", started.elapsed());
}

/// Item 10: registrations that never make a request give their port back.
#[test]
fn unused_registrations_expire_and_free_their_ports() {
    let t = TrackerProc::start(&["--announce-interval", "1"]);
    let first = register(&t, None);
    for _ in 0..20 {
        register(&t, None);
    }
    let used = register(&t, None);
    assert_eq!(announce(&t, &used, vec![]), TrackerReply::Ok);
    t.proc.wait_for_line("registration(s) never used expired", Duration::from_secs(5));
    let again = register(&t, None);
    assert_eq!(again.port, first.port, "the first unused port is free again");
    assert_eq!(announce(&t, &used, vec![]), TrackerReply::Ok, "the used one stays");
}

/// Holds `per_ip` connections from each of `ips` to `target` until `stop`: idle ones, or
/// ones that drip a request one byte a second. A closed or refused one is opened again.
/// Returns how many of its threads have connected at least once.
fn siege(
    target: SocketAddr,
    ips: std::ops::Range<u8>,
    per_ip: usize,
    drip: bool,
    stop: &Arc<AtomicBool>,
) -> Arc<AtomicUsize> {
    let connected = Arc::new(AtomicUsize::new(0));
    for last in ips {
        for _ in 0..per_ip {
            let stop = Arc::clone(stop);
            let connected = Arc::clone(&connected);
            thread::spawn(move || {
                let mut counted = false;
                let from = IpAddr::from([127, 0, 0, last]);
                while !stop.load(Ordering::SeqCst) {
                    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
                    if s.bind(&SocketAddr::new(from, 0).into()).is_err()
                        || s.connect_timeout(&target.into(), IO).is_err()
                    {
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    if !counted {
                        connected.fetch_add(1, Ordering::SeqCst);
                        counted = true;
                    }
                    let mut s: TcpStream = s.into();
                    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
                    let body = [0u8, 0, 0, 40, b'{'];
                    let mut k = 0;
                    while !stop.load(Ordering::SeqCst) {
                        if drip && s.write_all(&body[k % body.len()..][..1]).is_err() {
                            break;
                        }
                        k += 1;
                        match s.read(&mut [0u8; 256]) {
                            Ok(0) => break, // closed to make room
                            Ok(_) => {}     // an error reply; the close follows
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                }
            });
        }
    }
    connected
}

/// Item 5: 16 addresses holding their most connections, idle or dripping, do not stop the
/// tracker from answering an honest `peer list` about as fast as before the siege
/// (`attack_bound`) or expire honest peers.
#[test]
fn sixteen_addresses_holding_connections_do_not_stop_the_tracker() {
    let t = TrackerProc::start(&["--announce-interval", "1"]);
    let root = tempfile::tempdir().unwrap();
    let (_p, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("x.bin", b"honest")]), &[]);
    let slowest_list = |times: usize| {
        let mut slowest = Duration::ZERO;
        for _ in 0..times {
            let started = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_peer"))
                .args(["--tracker", &t.addr.to_string(), "list"])
                .output()
                .unwrap();
            slowest = slowest.max(started.elapsed());
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            assert!(text.contains("x.bin"), "the honest peer was not expired: {text}");
            thread::sleep(Duration::from_millis(500));
        }
        slowest
    };
    let listed = || {
        let out = Command::new(env!("CARGO_BIN_EXE_peer"))
            .args(["--tracker", &t.addr.to_string(), "list"])
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("x.bin"))
    };
    assert!(wait_until(IO, listed), "the honest peer's file was listed");
    let before = slowest_list(3);
    let stop = Arc::new(AtomicBool::new(false));
    let idle = siege(t.addr, 10..18, 16, false, &stop);
    let dripping = siege(t.addr, 18..26, 16, true, &stop);
    let all_in = || idle.load(Ordering::SeqCst) + dripping.load(Ordering::SeqCst) >= 256;
    assert!(wait_until(Duration::from_secs(10), all_in), "the siege never had its 256 connections");
    let slowest = slowest_list(5);
    stop.store(true, Ordering::SeqCst);
    assert!(slowest < attack_bound(before), "an honest list took {slowest:?} ({before:?} before)");
    assert!(t.proc.output().contains("127.0.0.1"), "{}", t.proc.output());
}

/// Item 6: the same siege on a peer's server; a download from it still starts and finishes
/// about as fast as one before the siege (`attack_bound`).
#[test]
fn sixteen_addresses_holding_connections_do_not_stop_a_peer_server() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(MIB, 97);
    let (_p, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("x.bin", &data)]), &[]);
    let download = |name: &str| {
        let dir = peer_dir(root.path(), name, &[]);
        let started = Instant::now();
        let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "x.bin"]).finish(LONG);
        assert_eq!(code, Some(0), "{out}");
        assert!(fs::read(dir.join("files/x.bin")).unwrap() == data);
        started.elapsed()
    };
    let before = download("before");
    let stop = Arc::new(AtomicBool::new(false));
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let idle = siege(target, 10..18, 16, false, &stop);
    let dripping = siege(target, 18..26, 16, true, &stop);
    let all_in = || idle.load(Ordering::SeqCst) + dripping.load(Ordering::SeqCst) >= 256;
    assert!(wait_until(Duration::from_secs(10), all_in), "the siege never had its 256 connections");
    let took = download("during");
    stop.store(true, Ordering::SeqCst);
    assert!(took < attack_bound(before), "the download took {took:?} ({before:?} before)");
}

/// Item 7: nine holders that accept and never answer, listed before the honest one, cost
/// the download little; a holder that drips a chunk as the only source ends in a stall.
#[test]
fn silent_and_dripping_sources_do_not_hold_a_download() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * MIB, 98);
    let path = root.path().join("s.bin");
    fs::write(&path, &data).unwrap();
    let m = hash_file(&path, "s.bin", true).unwrap();
    let info = FileInfo { name: "s.bin".into(), size: m.size, content_id: m.content_id() };
    for _ in 0..9 {
        lying_peer(t.addr, info.clone(), m.to_ini(), Lie::Silent);
    }
    let (_p, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("s.bin", &data)]), &[]);
    let dir = peer_dir(root.path(), "down", &[]);
    let started = Instant::now();
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "s.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(fs::read(dir.join("files/s.bin")).unwrap() == data);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());

    let t2 = TrackerProc::start(&[]);
    lying_peer(t2.addr, info, m.to_ini(), Lie::Drip);
    let dir = peer_dir(root.path(), "down2", &[]);
    let started = Instant::now();
    let (code, out) =
        PeerProc::spawn(t2.addr, &dir, &["download", "s.bin", "--stall-timeout", "3"]).finish(LONG);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("stalled"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(20), "gave up after {:?}", started.elapsed());
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Item 8: connections asking about many files cannot use up the server's descriptors.
#[test]
fn many_files_asked_for_keep_few_open() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("f{i}.bin")).collect();
    let blobs: Vec<Vec<u8>> = (0..40).map(|i| test_bytes(1000, 200 + i)).collect();
    let files: Vec<(&str, &[u8])> =
        names.iter().map(String::as_str).zip(blobs.iter().map(Vec::as_slice)).collect();
    let dir = peer_dir(root.path(), "src", &files);
    let (p, port) = PeerProc::serve(t.addr, &dir, &[]);
    let ids: Vec<ContentId> =
        listings(t.addr, TrackerRequest::ListFiles).iter().map(|l| l.info.content_id).collect();
    assert_eq!(ids.len(), 40);
    let before = open_fds(p.proc.pid());
    let mut held = Vec::new();
    for _ in 0..16 {
        let mut c = Conn::new(
            connect_from("127.0.0.2".parse().unwrap(), SocketAddr::from(([127, 0, 0, 1], port))),
            IO,
        )
        .unwrap();
        for id in &ids {
            match c.call(&PeerRequest::Chunk { content_id: *id, index: 0 }).unwrap() {
                PeerReply::Chunk { len, .. } => c.read_raw(&mut vec![0u8; len as usize]).unwrap(),
                other => panic!("{other:?}"),
            }
        }
        held.push(c);
    }
    let during = open_fds(p.proc.pid());
    // Each connection: its socket (3 handles: reader, writer, shutdown registry) and at most
    // 4 files; without the cap it was 40 files each.
    assert!(during <= before + 16 * (3 + 4), "{before} descriptors before, {during} with 16 connections");
    let down = peer_dir(root.path(), "down", &[]);
    let (code, out) = PeerProc::spawn(t.addr, &down, &["download", "f7.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
}

/// Item 9: one address cannot fill the index, push a reply past the frame limit or make
/// the log grow faster than the requests; a cut list says so.
#[test]
fn one_address_cannot_fill_the_tracker() {
    let t = TrackerProc::start(&[]);
    let mut refused = 0;
    for p in 0..30 {
        let evil = raw_peer(t.addr, "127.0.0.2");
        let added: Vec<FileInfo> = (0..1000u32)
            .map(|i| FileInfo {
                name: format!("{p:02}-{i:04}-{}", "n".repeat(200)),
                size: 1,
                content_id: ContentId::of(format!("{p}-{i}").as_bytes()),
            })
            .collect();
        if let TrackerReply::Error { reason } = evil.announce(added) {
            assert!(reason.contains("per address"), "{reason}");
            refused += 1;
        }
    }
    assert_eq!(refused, 10, "20 000 files per address");
    let honest = register(&t, None);
    let real = FileInfo { name: "zz-honest.txt".into(), size: 5, content_id: ContentId::of(b"h") };
    assert_eq!(announce(&t, &honest, vec![real]), TrackerReply::Ok);
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", &t.addr.to_string(), "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("(showing ") && text.contains(" of 20001 files"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", &t.addr.to_string(), "search", "honest"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("zz-honest.txt"));
    let longest = t.proc.output().lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 1000, "a log line of {longest} bytes");
}
