//! A download gives back over the connections it dialed: a libtorrent leecher that knows
//! no peer at all (nobody told it of anyone, and it takes none from peer exchange)
//! gets the whole file from a p2p-share downloader that dialed it, while that downloader
//! itself fetches the file from a capped libtorrent seed (which takes no peers from peer
//! exchange either, so it cannot dial the leecher itself).

use crate::libtorrent::{lt, sha1, start_until, Killed};
use crate::support::{test_bytes, PeerProc};
use parking_lot::Mutex;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

#[test]
fn a_leecher_nobody_told_of_us_gets_the_file_over_the_connection_our_download_dialed() {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt-seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = test_bytes(8 * MIB + 3, 41);
    std::fs::write(seed_dir.join("given.bin"), &data).unwrap();
    let torrent = root.path().join("given.torrent");
    let made = lt(&["torrent", seed_dir.join("given.bin").to_str().unwrap(), torrent.to_str().unwrap(), "-"]);
    assert!(made.status.success());
    // The seed is capped at 2 MiB/s: our download takes about 4 s, time for the leecher to
    // ask us for pieces as they come.
    // It takes no peers from peer exchange either (we tell it of the leecher).
    let mut seed = Command::new("/usr/bin/python3");
    seed.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py"))
        .args(["seed", torrent.to_str().unwrap(), seed_dir.to_str().unwrap(), "120", &(2 * MIB).to_string()])
        .env("LT_NO_PEX", "1");
    let (_seed, line) = start_until(seed, "seeding");
    let seed_port: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();

    // The leecher: told of no peer.
    let save = root.path().join("lt-leech");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py"))
        .args(["get", torrent.to_str().unwrap(), save.to_str().unwrap(), "90"])
        .env("LT_NO_PEX", "1")
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().push(l);
            }
        })
    };
    let mut leecher = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    let leech_port: u16 = loop {
        if let Some(l) = lines.lock().iter().find(|l| l.starts_with("listening ")) {
            break l["listening ".len()..].trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "the leecher never listened");
        std::thread::sleep(Duration::from_millis(50));
    };

    let dir = root.path().join("ours");
    let ours = PeerProc::spawn_to(
        "127.0.0.1:1",
        &dir,
        &[
            "download",
            torrent.to_str().unwrap(),
            "--peer",
            &format!("127.0.0.1:{seed_port}"),
            "--peer",
            &format!("127.0.0.1:{leech_port}"),
            "--stay",
        ],
    );
    let our_port = ours.port();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = leecher.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the leecher did not finish:\n{}", ours.proc.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    reader.join().unwrap();
    let text = lines.lock().join("\n");
    assert!(status.success(), "the leecher got the file:\n{text}\n--- ours:\n{}", ours.proc.output());
    assert_eq!(sha1(&std::fs::read(save.join("given.bin")).unwrap()), sha1(&data));
    assert_eq!(sha1(&std::fs::read(dir.join("files/given.bin")).unwrap()), sha1(&data));
    // It heard of nobody, so every byte came over connections it was dialed on: ours,
    // from our outgoing port (not the port our server listens on).
    let from: Vec<&str> = text.lines().filter(|l| l.starts_with("from ")).collect();
    assert!(!from.is_empty(), "{text}");
    assert!(
        from.iter().all(|l| !l.contains(&format!(":{our_port} ")) && !l.contains(&format!(":{seed_port} "))),
        "{text}"
    );
}
