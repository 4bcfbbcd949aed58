//! libtorrent and p2p-share agree on identity and exchange files both ways.

use crate::support::{test_bytes, PeerProc, TrackerProc};
use p2p_share::manifest::hash_file;
use std::path::Path;
use std::process::Command;

/// Runs `lt.py ARGS` with the system Python (where the Debian binding lives).
pub fn lt(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let out = Command::new("/usr/bin/python3").arg(script).args(args).output().expect("run /usr/bin/python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named 'libtorrent'"),
        "libtorrent is missing: apt-get install python3-libtorrent (the .ci/run script does)"
    );
    out
}

#[test]
fn the_content_id_is_the_info_hash_libtorrent_computes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("one.bin", 1), ("exact.bin", 2 << 20), ("odd size.dat", 3 * (1 << 20) + 7)] {
        let path = dir.path().join(name);
        std::fs::write(&path, test_bytes(len, len as u64)).unwrap();
        let out = lt(&["infohash", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = hash_file(&path, name, true).unwrap().content_id();
        assert_eq!(ours.to_hex(), theirs, "{name} ({len} bytes)");
    }
}

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd`, and returns it once a line of its stdout contains `marker` (that line).
pub fn start_until(mut cmd: Command, marker: &str) -> (Killed, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("start");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no {marker:?} line"));
    (Killed(child), line)
}

/// A finished process's stdout and stderr, as one text.
pub fn all_output(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

pub fn bin(name: &str) -> Command {
    Command::new(match name {
        "peer" => env!("CARGO_BIN_EXE_peer"),
        _ => env!("CARGO_BIN_EXE_tracker"),
    })
}

pub fn tracker() -> (TrackerProc, SocketAddr) {
    let t = TrackerProc::start(&[]);
    let addr = t.addr;
    (t, addr)
}

/// `peer serve` on DIR; returns it and its port.
pub fn serve(tracker: SocketAddr, dir: &Path, extra: &[&str]) -> (PeerProc, u16) {
    PeerProc::serve(tracker, dir, extra)
}

/// The magnet link `peer magnet NAME` prints for `dir/files/NAME` (it must print one).
pub fn our_magnet(dir: &Path, name: &str) -> String {
    let out = bin("peer").args(["--dir", dir.to_str().unwrap(), "magnet", name]).output().unwrap();
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success() && link.starts_with("magnet:"), "{}", all_output(&out));
    link
}

/// A libtorrent seeder of `torrent` over `dir`; returns it and its port.
pub fn lt_seed(torrent: &Path, dir: &Path, rate: Option<u64>) -> (Killed, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script).args(["seed", torrent.to_str().unwrap(), dir.to_str().unwrap(), "120"]);
    if let Some(r) = rate {
        cmd.arg(r.to_string());
    }
    let (p, line) = start_until(cmd, "seeding");
    (p, line.split_whitespace().nth(1).unwrap().parse().unwrap())
}

pub fn sha1(bytes: &[u8]) -> p2p_share::hash::Sha1Hash {
    p2p_share::hash::Sha1Hash::of(bytes)
}

/// `peer download TORRENT --peer 127.0.0.1:LT_PORT` into `dir`, which must succeed; its
/// output.
pub fn download_torrent(tracker: &str, dir: &Path, torrent: &Path, lt_port: u16) -> String {
    let out = bin("peer")
        .args(["--tracker", tracker, "--dir", dir.to_str().unwrap(), "--port", "0", "download"])
        .arg(torrent)
        .args(["--peer", &format!("127.0.0.1:{lt_port}")])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    text
}

/// "from 127.0.0.1:PORT BYTES" lines of `lt.py get`.
fn lt_bytes_from(out: &str) -> Vec<(u16, u64)> {
    out.lines()
        .filter_map(|l| l.strip_prefix("from "))
        .filter_map(|l| {
            let (addr, n) = l.split_once(' ')?;
            Some((addr.rsplit(':').next()?.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

/// "Chunks: 4 from 6000, 3 from 6001" of `peer download`.
pub fn chunks_from(out: &str) -> Vec<(u16, u32)> {
    let line =
        out.lines().find(|l| l.starts_with("Chunks: ")).unwrap_or_else(|| panic!("no Chunks line:\n{out}"));
    line["Chunks: ".len()..]
        .split(", ")
        .filter_map(|part| {
            let w: Vec<&str> = part.split(' ').collect();
            (w.len() == 3 && w[1] == "from")
                .then(|| (w[2].rsplit(':').next().unwrap().parse().unwrap(), w[0].parse().unwrap()))
        })
        .collect()
}

/// 1. libtorrent, given only our magnet link, gets the info dict from us (ut_metadata)
///    and the 32 MiB file.
#[test]
fn libtorrent_downloads_from_our_magnet_link() {
    let (_t, tracker) = tracker();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("seed");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let data = test_bytes(32 * MIB, 1);
    std::fs::write(dir.join("files/big.bin"), &data).unwrap();
    let (_seed, port) = serve(tracker, &dir, &[]);
    let link = our_magnet(&dir, "big.bin");
    assert!(link.contains(&format!("x.pe=127.0.0.1%3A{port}")), "{link}");
    let save = root.path().join("lt");
    let got = lt(&["get", &link, save.to_str().unwrap(), "60", &format!("127.0.0.1:{port}")]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{text}\n{}", String::from_utf8_lossy(&got.stderr));
    assert!(text.contains("metadata True"), "{text}");
    assert_eq!(sha1(&std::fs::read(save.join("big.bin")).unwrap()), sha1(&data));
}

/// 2. A p2p-share peer downloads a file only libtorrent seeds, from libtorrent's own
///    .torrent, with --peer; no tracker runs (a warning says so).
#[test]
fn we_download_from_a_libtorrent_seed_with_its_torrent() {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = test_bytes(24 * MIB + 5, 2);
    std::fs::write(seed_dir.join("only-lt.bin"), &data).unwrap();
    let torrent = root.path().join("only-lt.torrent");
    let made = lt(&["torrent", seed_dir.join("only-lt.bin").to_str().unwrap(), torrent.to_str().unwrap()]);
    assert!(made.status.success());
    let (_lt, lt_port) = lt_seed(&torrent, &seed_dir, None);
    let dir = root.path().join("ours");
    let text = download_torrent("127.0.0.1:1", &dir, &torrent, lt_port);
    assert!(text.contains("cannot reach the tracker") && text.contains("going on without it"), "{text}");
    assert_eq!(chunks_from(&text), vec![(lt_port, 25)], "{text}");
    assert_eq!(sha1(&std::fs::read(dir.join("files/only-lt.bin")).unwrap()), sha1(&data));
}

/// 3. A mixed swarm: libtorrent and p2p-share both seed one file (each capped at 4 MiB/s);
///    a p2p-share downloader and a libtorrent downloader each get pieces from both.
#[test]
fn mixed_swarm_both_kinds_of_downloader_use_both_kinds_of_seed() {
    let (_t, tracker) = tracker();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(16 * MIB, 3);
    let lt_dir = root.path().join("lt-seed");
    std::fs::create_dir_all(&lt_dir).unwrap();
    std::fs::write(lt_dir.join("mixed.bin"), &data).unwrap();
    let torrent = root.path().join("mixed.torrent");
    assert!(lt(&["torrent", lt_dir.join("mixed.bin").to_str().unwrap(), torrent.to_str().unwrap()])
        .status
        .success());
    let (_lt, lt_port) = lt_seed(&torrent, &lt_dir, Some(4 << 20));
    let ours = root.path().join("our-seed");
    std::fs::create_dir_all(ours.join("files")).unwrap();
    std::fs::write(ours.join("files/mixed.bin"), &data).unwrap();
    let (_seed, our_port) = serve(tracker, &ours, &["--upload-limit", "4M"]);

    // Ours: the tracker names our seed, --peer names libtorrent's.
    let dir = root.path().join("our-leech");
    let text = download_torrent(&tracker.to_string(), &dir, &torrent, lt_port);
    let from = chunks_from(&text);
    let n = |port| from.iter().find(|s| s.0 == port).map_or(0, |s| s.1);
    assert!(n(lt_port) > 0 && n(our_port) > 0, "chunks from both seeds: {from:?}\n{text}");
    assert_eq!(sha1(&std::fs::read(dir.join("files/mixed.bin")).unwrap()), sha1(&data));

    // libtorrent's: both seeds given directly.
    let save = root.path().join("lt-leech");
    let got = lt(&[
        "get",
        torrent.to_str().unwrap(),
        save.to_str().unwrap(),
        "60",
        &format!("127.0.0.1:{lt_port}"),
        &format!("127.0.0.1:{our_port}"),
    ]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{text}");
    let per_peer = lt_bytes_from(&text);
    let b = |port| per_peer.iter().find(|s| s.0 == port).map_or(0, |s| s.1);
    assert!(b(lt_port) > 0 && b(our_port) > 0, "bytes from both seeds: {per_peer:?}");
    assert_eq!(sha1(&std::fs::read(save.join("mixed.bin")).unwrap()), sha1(&data));
}
