//! `peer magnet`, `peer torrent`, and downloads of a magnet link or a `.torrent` file,
//! with the tracker up and down.

use crate::helpers::{peer_dir, test_bytes, PeerProc, TrackerProc};
use p2p_share::manifest::hash_file;
use p2p_share::torrent::read_torrent;
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

fn peer(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peer")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn magnet_and_torrent_name_the_file_and_its_peer_and_download_without_a_tracker() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(3 * 1024 * 1024 + 11, 40);
    let src = peer_dir(root.path(), "c1", &[("a b.bin", &data)]);
    let (_p, port) = PeerProc::serve(t.addr, &src, &[]);
    let id = hash_file(&src.join("files/a b.bin"), "a b.bin", true).unwrap().content_id();

    let (code, link) = peer(&["--dir", src.to_str().unwrap(), "magnet", "a b.bin"]);
    assert_eq!(code, Some(0), "{link}");
    let link = link.trim().to_string();
    assert_eq!(
        link,
        format!("magnet:?xt=urn:btih:{id}&dn=a%20b.bin&xl={}&x.pe=127.0.0.1%3A{port}", data.len()),
        "info-hash, name, size and the serving peer"
    );
    let out_file = root.path().join("a.torrent");
    let (code, text) =
        peer(&["--dir", src.to_str().unwrap(), "torrent", "a b.bin", "--out", out_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.lines().collect::<Vec<_>>(), vec![out_file.to_str().unwrap(), link.as_str()]);
    let torrent = read_torrent(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(torrent.manifest.content_id(), id);

    // A folder nobody serves: no x.pe (and the tracker has no HTTP announce URL to name).
    let idle = peer_dir(root.path(), "idle", &[("a b.bin", &data)]);
    let tracker = t.addr.to_string();
    let (_, idle_out) = peer(&["--tracker", &tracker, "--dir", idle.to_str().unwrap(), "magnet", "a b.bin"]);
    let idle_link = idle_out.lines().find(|l| l.starts_with("magnet:")).unwrap_or_default();
    assert!(idle_link.ends_with(&format!("xl={}", data.len())), "{idle_out}");

    // The tracker goes away: the magnet link's peer and --peer are enough.
    drop(t);
    let nowhere = "127.0.0.1:1";
    let d2 = peer_dir(root.path(), "c2", &[]);
    let (code, text) = PeerProc::spawn_to(nowhere, &d2, &["download", &link]).finish(LONG);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("going on without it"), "a warning, not an error:\n{text}");
    assert!(std::fs::read(d2.join("files/a b.bin")).unwrap() == data);
    let d3 = peer_dir(root.path(), "c3", &[]);
    let given = format!("127.0.0.1:{port}");
    let (code, text) =
        PeerProc::spawn_to(nowhere, &d3, &["download", out_file.to_str().unwrap(), "--peer", &given])
            .finish(LONG);
    assert_eq!(code, Some(0), "{text}");
    assert!(std::fs::read(d3.join("files/a b.bin")).unwrap() == data);

    // Without a tracker and without any peer, the clear error of today.
    let d4 = peer_dir(root.path(), "c4", &[]);
    let bare = format!("magnet:?xt=urn:btih:{id}");
    let (code, text) = PeerProc::spawn_to(nowhere, &d4, &["download", &bare]).finish(LONG);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("cannot reach the tracker"), "{text}");
}

#[test]
fn bad_links_and_torrents_get_one_clear_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "c1", &[("x.bin", b"x")]);
    let junk = root.path().join("junk.torrent");
    std::fs::write(&junk, b"d4:infoi3ee").unwrap();
    let deep = root.path().join("deep.torrent");
    std::fs::write(&deep, "l".repeat(100_000)).unwrap();
    for (target, expected) in [
        ("magnet:?xt=urn:btih:zz", "is not a v1 info-hash"),
        ("magnet:?dn=x", "no xt=urn:btih: info-hash"),
        (junk.to_str().unwrap(), "not a valid torrent"),
        (deep.to_str().unwrap(), "nested deeper than"),
    ] {
        let (code, text) = peer(&[
            "--tracker",
            "127.0.0.1:1",
            "--dir",
            dir.to_str().unwrap(),
            "--port",
            "0",
            "download",
            target,
        ]);
        assert_eq!(code, Some(1), "{target}: {text}");
        let err =
            text.lines().find(|l| l.starts_with("peer: ")).unwrap_or_else(|| panic!("{target}: {text}"));
        assert!(err.contains(expected), "{target}: {err}");
    }
    let (code, text) = peer(&["--dir", dir.to_str().unwrap(), "magnet", "../x.bin"]);
    assert_eq!(code, Some(1));
    assert!(text.contains("invalid file name"), "{text}");
    let (code, text) = peer(&["--dir", dir.to_str().unwrap(), "magnet", "missing.bin"]);
    assert_eq!(code, Some(1));
    assert!(text.contains("is not a file shared here"), "{text}");
}
