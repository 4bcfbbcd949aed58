//! The long-running peer of a folder (`peer serve`) and the commands that talk to it
//! through its control API: `status`, `download` handed over (followed or `--detach`),
//! `pause`, `resume`, `remove [--delete]`, `stop`; and the API's refusals.

use crate::helpers::{listed, peer_dir, test_bytes, wait_until, PeerProc, TrackerProc, IO};
use p2p_share::control::client::Remote;
use p2p_share::control::server::Status;
use p2p_share::peer::node::serving;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// `peer --dir DIR ARGS...` (with the tracker, for `download`), run to its end.
fn peer(tracker: &TrackerProc, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", &tracker.addr.to_string(), "--dir", dir.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The status line of `name` in `peer status`.
fn status_of(tracker: &TrackerProc, dir: &Path, name: &str) -> String {
    let o = peer(tracker, dir, &["status"]);
    assert!(o.status.success(), "{}", text(&o));
    text(&o).lines().find(|l| l.ends_with(&format!("  {name}"))).unwrap_or_default().to_string()
}

#[test]
fn commands_drive_the_running_peer_from_add_to_stop() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(6 * MIB, 51);
    let seed = peer_dir(root.path(), "seed", &[("six.bin", &data)]);
    let (_seed, _) = PeerProc::serve(t.addr, &seed, &["--upload-limit", "1M"]);
    let dir = peer_dir(root.path(), "mine", &[]);
    let (mut running, _) = PeerProc::serve(t.addr, &dir, &[]);
    let none = peer(&t, &dir, &["status"]);
    assert!(text(&none).contains("(nothing shared or downloading)"), "{}", text(&none));

    // Another `download` on the folder is handed over, not refused.
    let o = peer(&t, &dir, &["download", "six.bin", "--detach"]);
    assert!(o.status.success() && text(&o).contains("as download 1"), "{}", text(&o));
    // Paused once a chunk or two are in.
    let some_done = || {
        let line = status_of(&t, &dir, "six.bin");
        line.contains("downloading") && line.split_whitespace().nth(2).is_some_and(|p| p != "0%")
    };
    assert!(wait_until(Duration::from_secs(10), some_done), "{}", status_of(&t, &dir, "six.bin"));
    // The seeder, a running peer too, says it uploads to one peer.
    let seeder = serving(&seed).and_then(|s| s.control).expect("the seeder's API");
    let uploads = || seeder.get::<Status>("/api/status").map_or(0, |s| s.shares[0].uploads);
    assert!(wait_until(IO, || uploads() == 1), "uploads: {}", uploads());
    let o = peer(&t, &dir, &["pause", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        wait_until(IO, || status_of(&t, &dir, "six.bin").contains("paused")),
        "{}",
        status_of(&t, &dir, "six.bin")
    );
    let o = peer(&t, &dir, &["resume", "six.bin"]);
    assert!(text(&o).contains("six.bin is downloading"), "{}", text(&o));

    // Followed: the same lines as a download of its own, the paused chunks kept.
    let o = peer(&t, &dir, &["download", "six.bin"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Download time is: ") && out.contains("resumed from disk"), "{out}");
    assert!(std::fs::read(dir.join("files/six.bin")).unwrap() == data);
    assert!(status_of(&t, &dir, "six.bin").contains("done"));
    // The seeder, a running peer too, counted what it sent.
    let seeding = text(&peer(&t, &seed, &["status"]));
    assert!(seeding.contains("Uploaded 6.3 MB since the peer started"), "{seeding}");
    assert!(wait_until(Duration::from_secs(5), || listed(&t, "six.bin") == 2), "the finished file is shared");

    let o = peer(&t, &dir, &["remove", "six.bin", "--delete"]);
    assert!(text(&o).contains("Deleted"), "{}", text(&o));
    assert!(!dir.join("files/six.bin").exists());
    assert!(wait_until(Duration::from_secs(5), || listed(&t, "six.bin") == 1), "no longer shared");
    assert_eq!(status_of(&t, &dir, "six.bin"), "");
    let o = peer(&t, &dir, &["remove", "nothing.bin"]);
    assert!(!o.status.success() && text(&o).contains("nothing here is called 'nothing.bin'"), "{}", text(&o));

    let o = peer(&t, &dir, &["stop"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(running.proc.wait_exit(IO), Some(0));
    let o = peer(&t, &dir, &["status"]);
    assert!(!o.status.success() && text(&o).contains("no peer is running on"), "{}", text(&o));
}

#[test]
fn a_download_with_options_the_running_peer_cannot_take_is_refused_with_a_reason() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "mine", &[]);
    let (_running, _) = PeerProc::serve(t.addr, &dir, &[]);
    let o = peer(&t, &dir, &["download", "x.bin", "--from", "6000"]);
    assert!(!o.status.success() && text(&o).contains("--from is not handed over"), "{}", text(&o));
    let o = peer(&t, &dir, &["download", "x.bin", "--detach"]);
    assert!(o.status.success(), "a name nobody shares yet is still taken: {}", text(&o));
    let o = peer(&t, &dir, &["download", "/etc/passwd.torrent"]);
    assert!(!o.status.success(), "{}", text(&o));
}

/// Sends `raw` to the API; its status and body.
fn raw(remote: &Remote, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(remote.addr).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn the_control_api_refuses_strangers_rebinding_and_cross_site_changes() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "mine", &[("kept.bin", b"keep me")]);
    let (running, _) = PeerProc::serve(t.addr, &dir, &[]);
    let remote = serving(&dir).and_then(|s| s.control).expect("the lock file names the API");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(".p2p-share.lock")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "only its owner reads the secret");
    let host = format!("Host: {}\r\n", remote.addr);
    let bearer = format!("Authorization: Bearer {}\r\n", remote.secret);
    let get =
        |extra: &str| raw(&remote, &format!("GET /api/status HTTP/1.1\r\n{extra}Connection: close\r\n\r\n"));

    assert_eq!(get(&host).0, 401, "no secret");
    assert_eq!(get(&format!("{host}Authorization: Bearer {}\r\n", "0".repeat(32))).0, 401, "a wrong secret");
    assert_eq!(get(&format!("Host: evil.example:{}\r\n{bearer}", remote.addr.port())).0, 421, "rebinding");
    assert_eq!(get(&format!("Host: localhost:{}\r\n{bearer}", remote.addr.port())).0, 421);
    let (ok, body) = get(&format!("{host}{bearer}"));
    assert!(ok == 200 && body.contains("kept.bin"), "{body}");

    let post = |path: &str, extra: &str| {
        raw(
            &remote,
            &format!("POST {path} HTTP/1.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"),
        )
    };
    let pause_by_get = raw(
        &remote,
        &format!("GET /api/downloads/kept.bin/remove HTTP/1.1\r\n{host}{bearer}Connection: close\r\n\r\n"),
    );
    assert_eq!(pause_by_get.0, 405, "a change by GET");
    let evil = "Origin: http://evil.example\r\n";
    assert_eq!(post("/api/stop", &format!("{host}{bearer}{evil}")).0, 403, "a foreign origin");
    let cookie = format!("Cookie: p2p_share={}\r\n", remote.secret);
    assert_eq!(
        post("/api/stop", &format!("{host}{cookie}")).0,
        403,
        "the page's cookie without its CSRF token"
    );
    // The page's way in: /login sets the cookie; /api/session gives the token.
    let (login, answer) = raw(
        &remote,
        &format!("GET /login?secret={} HTTP/1.1\r\n{host}Connection: close\r\n\r\n", remote.secret),
    );
    assert!(login == 303 && answer.contains("HttpOnly; SameSite=Strict"), "{answer}");
    assert_eq!(
        raw(&remote, &format!("GET /login?secret=nope HTTP/1.1\r\n{host}Connection: close\r\n\r\n")).0,
        401
    );
    let (_, session) =
        raw(&remote, &format!("GET /api/session HTTP/1.1\r\n{host}{cookie}Connection: close\r\n\r\n"));
    let token = session.rsplit("\"csrf\":\"").next().unwrap().split('"').next().unwrap().to_string();
    // Garbage and a huge body get an error; the API goes on serving.
    assert_eq!(raw(&remote, "\x13BitTorrent protocol\r\n\r\n").0, 400);
    let huge = format!("POST /api/downloads HTTP/1.1\r\n{host}{bearer}Content-Length: 99999999\r\n\r\n");
    assert_eq!(raw(&remote, &huge).0, 413);
    let with_token = format!("{host}{cookie}X-CSRF-Token: {token}\r\nOrigin: http://{}\r\n", remote.addr);
    let (removed, body) = post("/api/downloads/kept.bin/remove", &with_token);
    assert!(removed == 200 && body.contains("\"removed\":\"kept.bin\""), "{body}");
    assert!(dir.join("files/kept.bin").exists(), "removed without --delete: the data stays");
    // And it stays unshared after the peer restarts.
    assert!(wait_until(IO, || listed(&t, "kept.bin") == 0));
    drop(running);
    let (_again, _) = PeerProc::serve(t.addr, &dir, &[]);
    let o = peer(&t, &dir, &["status"]);
    assert!(!text(&o).contains("kept.bin"), "{}", text(&o));
    assert_eq!(listed(&t, "kept.bin"), 0);
}
