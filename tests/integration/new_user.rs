//! What a new user tripped over (issue 24's list), each as the user meets it: global
//! options after the subcommand, the tracker's HTTP port given for its native one, a host
//! name for the tracker, a folder that does not exist, a config file with a typo.

use crate::helpers::{peer_dir, PeerProc, TrackerProc};
use crate::http_tracker::http_tracker;
use std::process::{Command, Output};

fn peer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peer")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn options_go_before_or_after_the_command_and_the_tracker_may_be_a_host_name() {
    let t = TrackerProc::start(&[]);
    let after = peer(&["list", "--tracker", &t.addr.to_string(), "--log-level", "warn"]);
    assert!(after.status.success() && text(&after).contains("These are all files"), "{}", text(&after));
    let by_name = peer(&["--tracker", &format!("localhost:{}", t.addr.port()), "list"]);
    assert!(by_name.status.success(), "{}", text(&by_name));
}

#[test]
fn the_trackers_http_port_given_as_its_native_one_is_named_at_once() {
    let (t, http) = http_tracker();
    let o = peer(&["--tracker", &http.to_string(), "list"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("this is an HTTP server") && out.contains(&format!("its native port, {}", t.addr)),
        "{out}"
    );
    assert!(!out.contains("timed out") && !out.contains("1213486160"), "{out}");
}

#[test]
fn a_missing_folder_is_refused_where_it_is_read_and_said_where_it_is_made() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("x/y/z");
    let o = peer(&["--dir", missing.to_str().unwrap(), "magnet", "a.bin"]);
    assert!(!o.status.success() && text(&o).contains("does not exist"), "{}", text(&o));
    assert!(!missing.exists(), "nothing was created");
    let (p, _) = PeerProc::serve(t.addr, &missing, &[]);
    let line = p.proc.wait_for_line("did not exist", crate::helpers::IO);
    assert!(line.contains("created it"), "{line}");
    let full = peer_dir(root.path(), "full", &[("a.bin", b"hello"), ("b.bin", b"world!")]);
    let (q, _) = PeerProc::serve(t.addr, &full, &[]);
    q.proc.wait_for_line("Sharing 2 files, 11 bytes, from ", crate::helpers::IO);
}

#[test]
fn info_lines_are_events_not_every_connection_or_start_up_step() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let (p, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "a", &[("a.bin", b"a")]), &[]);
    for _ in 0..5 {
        assert!(peer(&["--tracker", &t.addr.to_string(), "list"]).status.success());
    }
    t.proc.wait_for_line("shares 'a.bin'", crate::helpers::IO);
    let tracker_log = t.proc.output();
    assert!(!tracker_log.contains("Client connected"), "{tracker_log}");
    let peer_log = p.proc.output();
    for step in ["Registering peer from tracker", "Setting peer as a server", "File monitor system started"] {
        assert!(!peer_log.contains(step), "{peer_log}");
    }
    assert!(peer_log.contains("Sharing 1 file, 1 bytes"), "{peer_log}");
}

#[test]
fn a_config_file_with_a_typo_is_refused_with_its_line() {
    let root = tempfile::tempdir().unwrap();
    let ini = root.path().join("peer.ini");
    std::fs::write(&ini, "[peer]\ntracker = 127.0.0.1:5000\nuplaod_limit = 4M\n").unwrap();
    let o = peer(&["--config", ini.to_str().unwrap(), "list"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("line 3: 'uplaod_limit' is not a setting"), "{}", text(&o));
    let o = peer(&["--config", root.path().join("none.ini").to_str().unwrap(), "list"]);
    let out = text(&o);
    assert!(out.contains("cannot read config") && !out.contains("couldn't read"), "{out}");
}

#[test]
fn links_made_while_no_peer_serves_name_the_trackers_announce_url_or_say_they_cannot_find_peers() {
    let (t, http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "d", &[("a.bin", b"hello links")]);
    let d = dir.to_str().unwrap();
    let o = peer(&["--tracker", &t.addr.to_string(), "--dir", d, "magnet", "a.bin"]);
    let link = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert!(link.contains(&format!("tr=http%3A%2F%2F{}%3A{}%2Fannounce", http.ip(), http.port())), "{link}");
    assert!(text(&o).contains("no peer serves"), "{}", text(&o));
    let o = peer(&["--tracker", &t.addr.to_string(), "--dir", d, "torrent", "a.bin"]);
    assert!(o.status.success(), "{}", text(&o));
    let torrent = std::fs::read(dir.join("a.bin.torrent")).unwrap();
    let announce = format!("http://{http}/announce");
    assert!(
        torrent.windows(announce.len()).any(|w| w == announce.as_bytes()),
        "the torrent names {announce}"
    );
    // A tracker without HTTP: nothing to name, and the user is told.
    let plain = TrackerProc::start(&[]);
    let o = peer(&["--tracker", &plain.addr.to_string(), "--dir", d, "magnet", "a.bin"]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("tr="), "{}", text(&o));
    assert!(text(&o).contains("names no peer and no tracker"), "{}", text(&o));
}
