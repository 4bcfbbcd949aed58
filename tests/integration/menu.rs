//! The interactive menu of the original, driven through stdin.

use crate::helpers::{peer_dir, test_bytes, PeerProc, Proc, TrackerProc, IO};
use std::process::Command;
use std::time::Duration;

#[test]
fn menu_lists_searches_downloads_and_answers_bad_input() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * 1024 * 1024 + 3, 21);
    let (_src, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("test.pdf", &data)]), &[]);
    let dir = peer_dir(root.path(), "c2", &[]);
    let script = format!("x\n1\n2\ntest\n3\nnope.pdf\n3\ntest.pdf\n9\n3\ntest.pdf\n{port}\nY\nY\n");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args(["--tracker", &t.addr.to_string(), "--dir", dir.to_str().unwrap(), "--port", "0"]);
    let mut p = Proc::spawn_with_input(cmd, Some(script));
    assert_eq!(p.wait_exit(Duration::from_secs(60)), Some(0), "end of input leaves cleanly:\n{}", p.output());
    let out = p.output();
    for expected in [
        "Tracker is running on port : ",
        "1 - List all the files.",
        "Press ctrl + c to shutdown this peer.",
        "Invalid choice 'x': enter 1, 2 or 3.",
        "These are all files from the tracker:",
        &format!("test.pdf : ['{port}']"),
        "Enter file name:",
        "Following peers have the file:",
        "No peer has 'nope.pdf'.",
        "'9' does not have 'test.pdf'.",
        "From which peer you want to download?",
        "File is 2.1 Mbs, downloaded? (Y/N)? ->",
        "Download time is: ",
        "Do you want to continue as a server to help others? (Y/N)?",
        "Shutting down this peer!",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(std::fs::read(dir.join("files/test.pdf")).unwrap() == data);
}

/// The menu on a folder sharing a.txt, its stdin kept open; returned once it is ready.
fn menu(t: &TrackerProc, dir: &std::path::Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args(["--tracker", &t.addr.to_string(), "--dir", dir.to_str().unwrap(), "--port", "0"]);
    let p = Proc::spawn_with_open_stdin(cmd);
    p.wait_for_line("Press ctrl + c to shutdown this peer.", Duration::from_secs(20));
    p
}

#[test]
fn ctrl_c_in_the_menu_leaves_the_swarm_cleanly() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "c1", &[("a.txt", b"hello")]);
    let mut p = menu(&t, &dir);
    let port = p.wait_for_line("You are running on port", IO).rsplit(':').next().unwrap().trim().to_string();
    p.signal("-INT");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "Ctrl+C ends the menu:\n{}", p.output());
    let out = p.output();
    assert!(out.contains("Shutting down this peer!"), "{out}");
    // The same leave as `serve`: the node's own goodbye, then the tracker drops the peer.
    assert!(out.contains("[INFO] Removing peer..."), "{out}");
    t.proc.wait_for_line(&format!("Peer {port} removed!"), IO);
}

#[test]
fn the_menus_peer_is_the_running_peer_of_its_folder() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "c1", &[("a.txt", b"hello")]);
    let mut p = menu(&t, &dir);
    let peer = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_peer")).arg("--dir").arg(&dir).args(args).output().unwrap()
    };
    let status = peer(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success() && text.contains("sharing") && text.contains("a.txt"), "{text}");
    assert!(peer(&["stop"]).status.success());
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "peer stop ends the menu:\n{}", p.output());
    assert!(p.output().contains("Shutting down this peer!"), "{}", p.output());
}
