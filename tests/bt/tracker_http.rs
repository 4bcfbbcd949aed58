//! Real clients against the tracker's HTTP side: libtorrent finds our peer through an
//! HTTP announce; headless Chromium renders the status page of a running swarm.

use crate::libtorrent::{bin, lt, serve, sha1};
use crate::support::{test_bytes, TrackerProc};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A tracker with HTTP on: (process, native address, HTTP address).
pub fn http_tracker() -> (TrackerProc, SocketAddr, SocketAddr) {
    let t = TrackerProc::start(&["--http", "127.0.0.1:0", "--announce-interval", "2"]);
    let line = t.proc.wait_for_line("HTTP tracker on http://", Duration::from_secs(10));
    let http = line.split("http://").nth(1).and_then(|a| a.split('/').next()?.parse().ok());
    let native = t.addr;
    (t, native, http.expect("the HTTP address"))
}

/// libtorrent, given only the .torrent `peer torrent` wrote (its announce URL is our
/// tracker), finds our peer through the HTTP announce and downloads from it.
#[test]
fn libtorrent_finds_our_peer_through_the_http_tracker() {
    let (_t, tracker, http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("seed");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let data = test_bytes(8 << 20, 9);
    std::fs::write(dir.join("files/via-tracker.bin"), &data).unwrap();
    let (_seed, _port) = serve(tracker, &dir, &[]);
    let out =
        bin("peer").args(["--dir", dir.to_str().unwrap(), "torrent", "via-tracker.bin"]).output().unwrap();
    assert!(out.status.success());
    let torrent = dir.join("via-tracker.bin.torrent");
    let t = p2p_share::torrent::read_torrent(&std::fs::read(&torrent).unwrap()).unwrap();
    assert_eq!(t.trackers, vec![format!("http://{http}/announce")]);
    let save = root.path().join("lt");
    let got = lt(&["get", torrent.to_str().unwrap(), save.to_str().unwrap(), "60"]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{text}");
    assert_eq!(sha1(&std::fs::read(save.join("via-tracker.bin")).unwrap()), sha1(&data));
}

/// Chromium loads the status page of a tracker with a running swarm; after it polled, the
/// DOM shows the files and peers, and a hostile file name only as text.
#[test]
fn the_status_page_renders_the_swarm_in_a_browser() {
    let (_t, tracker, http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let hostile = "<img src=x onerror=alert(1)>.txt";
    let dir = root.path().join("seed");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(dir.join("files").join(hostile), b"not a picture").unwrap();
    std::fs::write(dir.join("files/plain.bin"), test_bytes(3 << 20, 4)).unwrap();
    let (_seed, port) = serve(tracker, &dir, &[]);
    // Wait until both files are announced.
    let api = format!("http://{http}/api/status");
    let mut ok = false;
    for _ in 0..50 {
        let out = Command::new("/usr/bin/python3")
            .args(["-c", &format!("import urllib.request as u; print(u.urlopen('{api}').read().decode())")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("plain.bin")
            && String::from_utf8_lossy(&out.stdout).contains("onerror")
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "the files were announced");
    let shot = root.path().join("status.png");
    let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"];
    let dom = Command::new("chromium")
        .args(flags)
        .arg("--dump-dom")
        .arg(format!("http://{http}/"))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    assert!(dom.contains("plain.bin") && dom.contains("3.0 MiB"), "the files table is filled:\n{dom}");
    assert!(
        dom.contains(&format!("127.0.0.1:{port}")) && dom.contains(">native<"),
        "the peers table:\n{dom}"
    );
    assert!(dom.contains("2 files, 1 p2p-share peers"), "the totals:\n{dom}");
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;.txt"), "the hostile name as text:\n{dom}");
    assert!(!dom.contains("<img"), "no element made from a name:\n{dom}");
    let status = Command::new("chromium")
        .args(flags)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1100,700")
        .arg(format!("http://{http}/"))
        .output()
        .unwrap();
    assert!(status.status.success() && Path::new(&shot).exists(), "a screenshot was taken");
    if let Ok(keep) = std::env::var("P2P_SHARE_SCREENSHOT") {
        let _ = std::fs::copy(&shot, keep);
    }
}
