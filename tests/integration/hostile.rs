//! Hostile peers and trackers: the download completes from honest sources or fails with a
//! clear error, and nothing is written outside the peer's folder.

use crate::fake::{fake_tracker, lying_peer, Lie};
use crate::helpers::{peer_dir, test_bytes, PeerProc, TrackerProc, IO};
use crate::local::LocalPeer;
use p2p_share::hash::{ContentId, Sha1Hash};
use p2p_share::manifest::{hash_file, Manifest};
use p2p_share::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const LONG: Duration = Duration::from_secs(60);

fn info_of(m: &Manifest) -> FileInfo {
    FileInfo { name: m.name.clone(), size: m.size, content_id: m.content_id() }
}

/// An honest source of `name` (capped at 3 MiB/s) and the manifest of its file.
fn honest(tracker: SocketAddr, root: &Path, name: &str, data: &[u8]) -> (LocalPeer, Manifest) {
    let dir = peer_dir(root, "honest", &[(name, data)]);
    let m = hash_file(&dir.join("files").join(name), name, true).unwrap();
    (LocalPeer::limited(tracker, &dir, Some(3 << 20)), m)
}

fn only_peer_folders(root: &Path, expected: &[&str]) {
    let mut top: Vec<String> =
        fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, expected, "nothing written outside the peer folders");
}

#[test]
fn liars_wrong_lengths_and_stalls_do_not_stop_the_download() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(8 * MIB, 41);
    let (_h, m) = honest(t.addr, root.path(), "x.bin", &data);
    let text = m.to_ini();
    let refuser = lying_peer(t.addr, info_of(&m), text.clone(), Lie::Refuse);
    let short = lying_peer(t.addr, info_of(&m), text.clone(), Lie::WrongLength);
    let _staller = lying_peer(t.addr, info_of(&m), text, Lie::Stall);
    let dir = peer_dir(root.path(), "down", &[]);
    let started = Instant::now();
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "x.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(fs::read(dir.join("files/x.bin")).unwrap() == data);
    assert!(
        out.contains(&format!("source 127.0.0.1:{refuser} dropped: claimed chunks it then refused")),
        "{out}"
    );
    assert!(out.contains(&format!("source 127.0.0.1:{short} left: sent chunk")), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a stalled source does not hold the finish: {:?}",
        started.elapsed()
    );
    only_peer_folders(root.path(), &["down", "honest"]);
}

#[test]
fn manifests_that_lie_are_refused_with_a_clear_error() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let good =
        Manifest::new("m.bin".into(), 3 * MIB as u64, Some(Sha1Hash::of(b"w")), vec![Sha1Hash::of(b"0"); 3]);
    let cases = [
        (
            good.to_ini().replace("size = 3145728", "size = 99999999"),
            "manifest says 99999999 bytes but 3 chunks",
        ),
        (
            good.to_ini().replace("chunks_count = 3", "chunks_count = 1099511627776"),
            "manifest has 1099511627776 chunks",
        ),
        (good.to_ini().replace("[chunks]", "[nothing]"), "manifest lacks a [chunks] section"),
    ];
    for (i, (text, expect)) in cases.into_iter().enumerate() {
        let info = FileInfo {
            name: format!("m{i}.bin"),
            size: 3 * MIB as u64,
            content_id: ContentId::of(text.as_bytes()),
        };
        lying_peer(t.addr, info.clone(), text, Lie::Corrupt);
        let dir = peer_dir(root.path(), &format!("d{i}"), &[]);
        let (code, out) =
            PeerProc::spawn(t.addr, &dir, &["download", &info.name, "--stall-timeout", "1"]).finish(LONG);
        assert_eq!(code, Some(1), "{out}");
        let err = out.lines().find(|l| l.starts_with("peer: ")).unwrap_or_else(|| panic!("{out}"));
        assert!(err.contains("could not get the manifest") && err.contains(expect), "{err}");
    }
    // A manifest that names another file than the tracker does.
    let other = Manifest { name: "../../etc/passwd".into(), ..good.clone() }.to_ini();
    let info =
        FileInfo { name: "n.bin".into(), size: 3 * MIB as u64, content_id: ContentId::of(other.as_bytes()) };
    lying_peer(t.addr, info, other, Lie::Corrupt);
    let dir = peer_dir(root.path(), "d9", &[]);
    let (code, out) =
        PeerProc::spawn(t.addr, &dir, &["download", "n.bin", "--stall-timeout", "1"]).finish(LONG);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("invalid file name"), "{out}");
    assert!(fs::read_dir(root.path()).unwrap().count() == 4);
}

#[test]
fn tracker_refuses_hostile_names_and_huge_ones() {
    let t = TrackerProc::start(&[]);
    let mut c = t.conn();
    let token = match c.call(&TrackerRequest::Register { port: Some(7000), token: None }).unwrap() {
        TrackerReply::Registered { token, .. } => token,
        other => panic!("{other:?}"),
    };
    for name in
        ["../x".to_string(), "/etc/passwd".into(), "a/../../b".into(), "a\0b".into(), "y".repeat(5000)]
            .into_iter()
            .chain(
                ["invoice\u{202E}gpj.exe", "a\u{200B}b", "\u{FEFF}x", "a\u{2028}b", "   "].map(String::from),
            )
    {
        let info = FileInfo { name: name.clone(), size: 1, content_id: ContentId::of(name.as_bytes()) };
        let r: TrackerReply = c
            .call(&TrackerRequest::Announce {
                port: 7000,
                token: token.clone(),
                full: None,
                added: vec![info],
                removed: vec![],
            })
            .unwrap();
        assert!(
            matches!(r, TrackerReply::Error { ref reason } if reason.contains("invalid file name")),
            "{r:?}"
        );
    }
    let r: TrackerReply = c.call(&TrackerRequest::Search { name: "z".repeat(5000) }).unwrap();
    assert!(matches!(r, TrackerReply::Error { ref reason } if reason.contains("longer than 255")), "{r:?}");
}

#[test]
fn connection_and_request_floods_on_a_peer_do_not_stop_its_other_clients() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * MIB, 42);
    let (_p, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "src", &[("f.bin", &data)]), &[]);
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let mut flood = Vec::new();
    for _ in 0..300 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&from.into()).unwrap();
        if s.connect_timeout(&target.into(), IO).is_ok() {
            flood.push(s);
        }
    }
    // And one connection that floods requests without ever reading a reply.
    let mut flooder = std::net::TcpStream::connect(target).unwrap();
    flooder.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut burst = Vec::new();
    let id = hash_file(&root.path().join("src/files/f.bin"), "f.bin", true).unwrap().content_id();
    for _ in 0..20_000 {
        p2p_share::wire::encode_request(
            &mut burst,
            &p2p_share::wire::peer_msg::PeerRequest::Have { content_id: id, mine: None },
        );
    }
    let _ = std::io::Write::write_all(&mut flooder, &burst); // stops when the buffers are full
    let dir = peer_dir(root.path(), "down", &[]);
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "f.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(fs::read(dir.join("files/f.bin")).unwrap() == data);
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn hostile_tracker_replies_give_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "p", &[]);
    let run = |tracker: SocketAddr, args: &[&str]| {
        let mut all = vec![
            "--tracker".to_string(),
            tracker.to_string(),
            "--dir".into(),
            dir.to_str().unwrap().into(),
            "--port".into(),
            "0".into(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_peer")).args(&all).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };

    let garbage = fake_tracker(|_| Err(frame(b"\x00\xffnot json at all")));
    let (code, err) = run(garbage, &["list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid JSON"), "{err}");

    let huge = fake_tracker(|_| {
        let holders: Vec<SocketAddr> =
            (0..100_000u32).map(|i| SocketAddr::from(([127, 0, (i >> 8) as u8, i as u8], 6000))).collect();
        let info = FileInfo { name: "f".into(), size: 1, content_id: ContentId::of(b"f") };
        Ok(TrackerReply::Files {
            files: vec![FileListing { info, holders, holder_count: 0, hosts: 0 }],
            total: 1,
            http_announce: None,
        })
    });
    let (code, err) = run(huge, &["search", "f"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("exceeds the limit"), "a 100 000-peer list is refused: {err}");

    // Holders that refuse connections.
    let closed = { TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() };
    let info = FileInfo { name: "f.bin".into(), size: 10, content_id: ContentId::of(b"f") };
    let refusing = fake_tracker(move |req| {
        Ok(match req {
            TrackerRequest::Register { .. } => TrackerReply::Registered {
                peer: "127.0.0.1:6999".parse().unwrap(),
                announce_interval_secs: 10,
                token: "t".into(),
                http_announce: None,
            },
            TrackerRequest::Search { .. } | TrackerRequest::ListFiles => {
                let l = FileListing { info: info.clone(), holders: vec![closed], holder_count: 1, hosts: 1 };
                TrackerReply::Files { files: vec![l], total: 1, http_announce: None }
            }
            TrackerRequest::StartDownload { .. } => TrackerReply::Sources {
                file: Some(info.clone()),
                holders: vec![closed; 3],
                downloaders: vec![],
                bt_peers: vec![],
            },
            _ => TrackerReply::Ok,
        })
    });
    let (code, err) = run(refusing, &["download", "f.bin", "--stall-timeout", "2"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("could not get the manifest") && err.contains("refused"), "{err}");
    assert!(fs::read_dir(dir.join("files")).unwrap().next().is_none());
}
