//! Peer exchange (BEP 11) with libtorrent, both ways: a seeder our downloader is never told
//! of, but a libtorrent it is connected to names it, gives us pieces; a libtorrent that
//! knows only us hears of a seeder from us and gets the file from it; and two libtorrents
//! that dialed our seeder hear of each other from it.

use crate::libtorrent::{all_output, bin, chunks_from, lt_seed, our_magnet, sha1, start_until, Killed};
use crate::support::test_bytes;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A libtorrent seeding 4 MiB (256 KiB pieces) under `root` at `rate` bytes a second:
/// its torrent, the bytes, the process and its port.
fn slow_seeder(root: &Path, seed: u64, rate: u64) -> (PathBuf, Vec<u8>, Killed, u16) {
    let seed_dir = root.join("seed");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = test_bytes(4 << 20, seed);
    std::fs::write(seed_dir.join("t.bin"), &data).unwrap();
    let torrent = root.join("t.torrent");
    let file = seed_dir.join("t.bin");
    let made =
        crate::libtorrent::lt(&["torrent", file.to_str().unwrap(), torrent.to_str().unwrap(), "-", "262144"]);
    assert!(made.status.success(), "{}", all_output(&made));
    let (seeder, port) = lt_seed(&torrent, &seed_dir, Some(rate));
    (torrent, data, seeder, port)
}

#[test]
fn a_seeder_known_only_through_peer_exchange_gives_us_pieces() {
    let root = tempfile::tempdir().unwrap();
    // The seeder, slow, so the libtorrent downloading from it is still at it when we come.
    let (torrent, data, _seed, seed_port) = slow_seeder(root.path(), 31, 512 << 10);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let mut middle = Command::new("/usr/bin/python3");
    // It says it listens once a piece came from the seeder: past the handshake, so the
    // seeder is in the first peer exchange message it sends us.
    middle.env("LT_LISTENING_AFTER_A_PIECE", "1").arg(script).args([
        "get",
        torrent.to_str().unwrap(),
        root.path().join("middle").to_str().unwrap(),
    ]);
    middle.args(["120", &format!("127.0.0.1:{seed_port}")]);
    let (_middle, line) = start_until(middle, "listening");
    let middle_port: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    // We are told of the middle one only: no tracker, no DHT.
    let dir = root.path().join("ours");
    let out = bin("peer")
        .args(["--tracker", "127.0.0.1:1", "--dir", dir.to_str().unwrap(), "--port", "0", "download"])
        .arg(&torrent)
        .args(["--peer", &format!("127.0.0.1:{middle_port}"), "--stall-timeout", "60"])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(sha1(&std::fs::read(dir.join("files/t.bin")).unwrap()) == sha1(&data), "bytes differ");
    assert!(text.contains("Peer exchange named"), "{text}");
    let from_seed = chunks_from(&text).iter().find(|(p, _)| *p == seed_port).map_or(0, |(_, n)| *n);
    assert!(from_seed > 0, "pieces from the seeder only peer exchange named (port {seed_port}):\n{text}");
}

#[test]
fn a_libtorrent_that_knows_only_us_hears_of_a_seeder_from_us() {
    let root = tempfile::tempdir().unwrap();
    let (torrent, data, _seed, seed_port) = slow_seeder(root.path(), 32, 1 << 20);
    // A libtorrent told of no peer at all: it can only be dialed, and hear of others.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let save = root.path().join("lonely");
    let lonely = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["get", torrent.to_str().unwrap(), save.to_str().unwrap(), "60"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lonely = Killed(lonely);
    let mut out = std::io::BufReader::new(lonely.0.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let lonely_port: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    // We are told of both, and tell the lonely one of the seeder. Our connection to it
    // gives pieces too, but at 64 KiB/s: it must go to the seeder it hears of to finish.
    let dir = root.path().join("ours");
    let ours = bin("peer")
        .args(["--tracker", "127.0.0.1:1", "--dir", dir.to_str().unwrap(), "--port", "0"])
        .args(["--upload-limit", "64K", "download"])
        .arg(&torrent)
        .args(["--peer", &format!("127.0.0.1:{lonely_port}"), "--peer", &format!("127.0.0.1:{seed_port}")])
        .output()
        .unwrap();
    assert!(ours.status.success(), "{}", all_output(&ours));
    let status = lonely.0.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "the lonely libtorrent did not finish:\n{rest}");
    // Told of nobody, it was reached by us alone; any second peer that sent it bytes came
    // through our peer exchange: it dialed the seeder we named (from its listening port), or
    // the seeder dialed it after we named it to the seeder.
    let senders = rest
        .lines()
        .filter_map(|l| l.strip_prefix("from "))
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|n| n != "0"))
        .count();
    assert!(senders >= 2, "bytes from a peer only peer exchange named (seeder port {seed_port}):\n{rest}");
    assert!(sha1(&std::fs::read(save.join("t.bin")).unwrap()) == sha1(&data), "libtorrent got other bytes");
}

#[test]
fn our_seeder_tells_two_libtorrents_of_each_other() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("seed");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let data = test_bytes(8 << 20, 33);
    std::fs::write(dir.join("files/shared.bin"), &data).unwrap();
    // Our seeder uploads one copy in 32 s (time for the leechers to trade once they meet). The leechers are given its link without the
    // tracker (and have no DHT): whoever they meet, they heard of from our seeder.
    let (_tracker, tracker) = crate::libtorrent::tracker();
    let (_seeder, port) = crate::libtorrent::serve(tracker, &dir, &["--upload-limit", "256K"]);
    let link = our_magnet(&dir, "shared.bin");
    let link: Vec<&str> = link.split('&').filter(|p| !p.starts_with("tr=")).collect();
    let link = link.join("&");
    assert!(link.contains("x.pe="), "{link}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let leecher = |name: &str| {
        let save = root.path().join(name);
        let child = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["get", &link, save.to_str().unwrap(), "90", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (save, Killed(child))
    };
    let (a_save, mut a) = leecher("a");
    let (b_save, mut b) = leecher("b");
    let mut from_each_other = 0;
    for (save, proc) in [(&a_save, &mut a), (&b_save, &mut b)] {
        let status = proc.0.wait().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(proc.0.stdout.as_mut().unwrap(), &mut text).unwrap();
        assert!(status.success(), "a libtorrent leecher did not finish:\n{text}");
        assert!(sha1(&std::fs::read(save.join("shared.bin")).unwrap()) == sha1(&data), "bytes differ");
        from_each_other += text
            .lines()
            .filter_map(|l| l.strip_prefix("from "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(addr, _)| *addr != format!("127.0.0.1:{port}"))
            .map(|(_, n)| n.parse::<u64>().unwrap())
            .sum::<u64>();
    }
    assert!(from_each_other >= 2 << 20, "the leechers gave each other {from_each_other} bytes");
}
