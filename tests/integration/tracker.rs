//! The real `tracker` binary driven over TCP.

use crate::helpers::{attack_bound, wait_until, TrackerProc, IO};
use p2p_share::hash::ContentId;
use p2p_share::wire::conn::Conn;
use p2p_share::wire::tracker_msg::{FileInfo, TrackerReply, TrackerRequest};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn file(name: &str, seed: &str) -> FileInfo {
    FileInfo { name: name.into(), size: 35 << 20, content_id: ContentId::of(seed.as_bytes()) }
}

/// A registered peer: its port and session token.
#[derive(Clone)]
pub struct Reg {
    pub port: u16,
    pub token: String,
}

pub fn register(t: &TrackerProc, port: Option<u16>) -> Reg {
    match t.conn().call(&TrackerRequest::Register { port, token: None }).unwrap() {
        TrackerReply::Registered { peer, token, .. } => Reg { port: peer.port(), token },
        other => panic!("{other:?}"),
    }
}

pub fn announce(t: &TrackerProc, r: &Reg, added: Vec<FileInfo>) -> TrackerReply {
    let req =
        TrackerRequest::Announce { port: r.port, token: r.token.clone(), full: None, added, removed: vec![] };
    t.conn().call(&req).unwrap()
}

/// (name, holder ports) of a files reply.
fn listing(reply: TrackerReply) -> Vec<(String, Vec<u16>)> {
    match reply {
        TrackerReply::Files { files, .. } => files
            .into_iter()
            .map(|f| (f.info.name, f.holders.iter().map(SocketAddr::port).collect()))
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn search(conn: &mut Conn, name: &str) -> Vec<(String, Vec<u16>)> {
    listing(conn.call(&TrackerRequest::Search { name: name.into() }).unwrap())
}

#[test]
fn registers_peers_indexes_lists_and_searches() {
    let t = TrackerProc::start(&[]);
    let a = register(&t, None);
    let b = register(&t, None);
    assert_eq!((a.port, b.port), (6000, 6001), "ports are assigned from 6000 up");
    t.proc.wait_for_line("There are 2 clients now: ['6000', '6001']", IO);

    assert_eq!(
        announce(&t, &a, vec![file("test.pdf", "t"), file("Thesis_Yifei_Xiao.pdf", "y")]),
        TrackerReply::Ok
    );
    assert_eq!(announce(&t, &b, vec![file("test.pdf", "t")]), TrackerReply::Ok);

    let mut conn = t.conn();
    let all = listing(conn.call(&TrackerRequest::ListFiles).unwrap());
    assert_eq!(
        all,
        vec![("Thesis_Yifei_Xiao.pdf".into(), vec![6000]), ("test.pdf".into(), vec![6000, 6001])]
    );
    assert_eq!(search(&mut conn, "test.pdf"), vec![("test.pdf".to_string(), vec![6000, 6001])]);
    let sub = search(&mut conn, "THESIS");
    assert_eq!(sub, vec![("Thesis_Yifei_Xiao.pdf".to_string(), vec![6000])], "substring, any case");
    assert!(search(&mut conn, "missing").is_empty());
}

#[test]
fn downloading_list_is_kept_per_file() {
    let t = TrackerProc::start(&[]);
    let (a, b, c) = (register(&t, None), register(&t, None), register(&t, None));
    announce(&t, &a, vec![file("one", "1"), file("two", "2")]);
    let one = file("one", "1").content_id;
    let two = file("two", "2").content_id;
    let start = |r: &Reg, id| {
        let req = TrackerRequest::StartDownload { port: r.port, token: r.token.clone(), content_id: id };
        t.conn().call::<_, TrackerReply>(&req).unwrap()
    };
    start(&b, one);
    start(&c, two);
    t.proc.wait_for_line("Now downloading clients are [6001] for 'one'", IO);
    match start(&c, one) {
        TrackerReply::Sources { holders, downloaders, file, .. } => {
            assert_eq!(file.unwrap().name, "one");
            assert_eq!(holders.iter().map(SocketAddr::port).collect::<Vec<_>>(), vec![a.port]);
            assert_eq!(downloaders.iter().map(SocketAddr::port).collect::<Vec<_>>(), vec![b.port]);
        }
        other => panic!("{other:?}"),
    }
    let stop: TrackerReply = t
        .conn()
        .call(&TrackerRequest::StopDownload { port: b.port, token: b.token.clone(), content_id: one })
        .unwrap();
    assert_eq!(stop, TrackerReply::Ok);
    t.proc.wait_for_line("Now downloading clients are [6002] for 'one'", IO);
}

#[test]
fn silent_peer_expires_and_unknown_peer_is_told() {
    let t = TrackerProc::start(&["--announce-interval", "1"]);
    let a = register(&t, None);
    announce(&t, &a, vec![file("f", "1")]);
    let gone = wait_until(Duration::from_secs(8), || {
        listing(t.conn().call(&TrackerRequest::ListFiles).unwrap()).is_empty()
    });
    assert!(gone, "a peer silent for 3 intervals is dropped with its files");
    t.proc.wait_for_line("Peer 6000 expired", IO);
    assert_eq!(announce(&t, &a, vec![]), TrackerReply::UnknownPeer, "so the peer knows to register again");
}

#[test]
fn leaving_peer_is_removed() {
    let t = TrackerProc::start(&[]);
    let a = register(&t, Some(7001));
    announce(&t, &a, vec![file("f", "1")]);
    let r: TrackerReply =
        t.conn().call(&TrackerRequest::Leave { port: a.port, token: a.token.clone() }).unwrap();
    assert_eq!(r, TrackerReply::Ok);
    t.proc.wait_for_line("Peer 7001 removed!", IO);
    assert!(listing(t.conn().call(&TrackerRequest::ListFiles).unwrap()).is_empty());
}

/// Sends raw bytes, returns the error reason the tracker answers with, and checks the
/// tracker then closed the connection.
fn error_for(t: &TrackerProc, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(t.addr).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    s.write_all(raw).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap(); // ends: the tracker closed the connection
    assert!(all.len() >= 4, "no reply to {raw:?}");
    let len = u32::from_be_bytes(all[..4].try_into().unwrap()) as usize;
    assert_eq!(all.len(), 4 + len, "exactly one reply, then close");
    match serde_json::from_slice::<TrackerReply>(&all[4..]).unwrap() {
        TrackerReply::Error { reason } => reason,
        other => panic!("{other:?}"),
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn malformed_input_gets_an_error_and_tracker_keeps_serving() {
    let t = TrackerProc::start(&[]);
    let a = register(&t, None);
    announce(&t, &a, vec![file("keep.bin", "k")]);

    let oversized = ((1u32 << 20) + 1).to_be_bytes();
    assert!(error_for(&t, &oversized).contains("exceeds the limit"));
    assert!(error_for(&t, &framed(b"{not json")).starts_with("invalid JSON"));
    assert!(error_for(&t, &framed(br#"{"version":3,"msg":{"type":"explode"}}"#))
        .contains("unknown variant `explode`"));
    assert!(error_for(&t, &framed(br#"{"version":1,"msg":{"type":"list_files"}}"#))
        .contains("unsupported protocol version 1 (this side speaks 3)"));
    assert!(
        error_for(&t, &framed(br#"{"version":3,"msg":{"type":"search"}}"#)).contains("missing field `name`")
    );
    let bad_name = framed(format!(r#"{{"version":3,"msg":{{"type":"announce","port":{},"token":"{}","added":[{{"name":"../../etc/passwd","size":1,"content_id":"{}"}}]}}}}"#, a.port, a.token, ContentId::of(b"x")).as_bytes());
    let mut conn = t.conn();
    conn.write_raw(&bad_name).unwrap();
    let reply: TrackerReply = conn.read_reply().unwrap();
    assert!(
        matches!(reply, TrackerReply::Error { ref reason } if reason.contains("invalid file name")),
        "{reply:?}"
    );

    // Truncated input (a frame of 50 bytes, one sent, then the writer closes): the tracker
    // closes the connection at once, with no reply, and its worker serves others.
    let mut s = TcpStream::connect(t.addr).unwrap();
    s.write_all(&[0, 0, 0, 50, b'{']).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the tracker closes the connection (not a time-out)");
    assert!(rest.is_empty(), "nothing is answered to half a frame: {rest:?}");
    // Half the 10 s message deadline it must not wait for.
    assert!(started.elapsed() < Duration::from_secs(5), "closed at once, not at a deadline");

    assert_eq!(search(&mut t.conn(), "keep.bin"), vec![("keep.bin".to_string(), vec![6000])]);
    assert!(t.proc.output().contains("exceeds the limit"), "the tracker logs what it refused");
}

#[test]
fn idle_flood_from_one_address_does_not_block_another() {
    let t = TrackerProc::start(&[]);
    let a = register(&t, None);
    announce(&t, &a, vec![file("x", "1")]);
    let searched = || {
        let started = Instant::now();
        let mut conn = Conn::connect(t.addr, IO).unwrap();
        assert_eq!(search(&mut conn, "x"), vec![("x".to_string(), vec![6000])]);
        started.elapsed()
    };
    let before = searched();
    let flooder: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..200 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&flooder.into()).unwrap();
        if s.connect_timeout(&t.addr.into(), IO).is_ok() {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 100, "the flood connected");
    let took = searched();
    assert!(
        took < attack_bound(before),
        "served in {took:?} despite 200 idle connections ({before:?} before)"
    );
    t.proc.wait_for_line("too many connections from 127.0.0.2", IO);
}

#[test]
#[ignore = "needs an IPv6 loopback, which not every container has; `make test-privileged` runs it (CI does)"]
fn serves_over_ipv6() {
    assert!(std::net::TcpListener::bind("[::1]:0").is_ok(), "no IPv6 loopback here: this test needs one");
    let t = TrackerProc::start_on("[::1]:0", &[]);
    let a = register(&t, None);
    announce(&t, &a, vec![file("six", "6")]);
    match t.conn().call(&TrackerRequest::Search { name: "six".into() }).unwrap() {
        TrackerReply::Files { files, .. } => {
            assert_eq!(files[0].holders, vec!["[::1]:6000".parse::<SocketAddr>().unwrap()])
        }
        other => panic!("{other:?}"),
    }
    t.proc.wait_for_line("There are 1 clients now: ['[::1]:6000']", IO);
}

#[test]
fn ctrl_c_stops_the_tracker_cleanly() {
    let mut t = TrackerProc::start(&[]);
    let _idle = t.conn();
    t.proc.signal("-INT");
    assert_eq!(t.proc.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(t.proc.output().contains("Tracker stopped."));
}

/// A tracker at its cap for our address answers `busy`; the peer asks again a little later
/// instead of failing the download (a crowd behind one address, or 16 peers on one
/// machine, used to lose downloads to the per-address cap in the crowd bench).
#[test]
fn a_busy_tracker_is_asked_again_and_the_download_goes_on() {
    use crate::helpers::{peer_dir, test_bytes, PeerProc};
    // Connections are logged at debug level.
    let t = TrackerProc::start(&["--max-conns-per-ip", "2", "--log-level", "debug"]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(3 << 20, 41);
    let (_src, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("b.bin", &data)]), &[]);
    // Two connections held from our address: the cap is reached.
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(t.addr).unwrap()).collect();
    t.proc.wait_for_line("Client connected from 127.0.0.1", IO);
    let dir = peer_dir(root.path(), "down", &[]);
    let down = PeerProc::spawn(t.addr, &dir, &["download", "b.bin"]);
    t.proc.wait_for_line("too many connections from 127.0.0.1", IO);
    drop(held); // the tracker frees our address's places (the held ones idle out anyway)
    let (code, out) = down.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(std::fs::read(dir.join("files/b.bin")).unwrap() == data);
}
