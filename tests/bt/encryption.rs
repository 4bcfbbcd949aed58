//! Message Stream Encryption with clients that insist on it: libtorrent forcing RC4 both
//! ways (`out_enc_policy` and `in_enc_policy` forced) and Transmission 3.00 with
//! encryption required. Such peers refuse plain BitTorrent, so every byte here went
//! through our MSE handshake and RC4.

use crate::libtorrent::{all_output, bin, chunks_from, our_magnet, serve, sha1, start_until, tracker};
use crate::support::test_bytes;
use crate::tracker_http::http_tracker;
use crate::transmission::Transmission;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const MIB: usize = 1 << 20;

fn lt_forced(args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py")).args(args);
    cmd.env("LT_ENCRYPTION", "forced");
    cmd
}

/// libtorrent forcing encryption seeds, we download from it (dialing encrypted by
/// default); then it downloads from our magnet link (we answer its encrypted handshake).
/// With `--encryption off` we cannot reach it at all.
#[test]
fn libtorrent_forcing_encryption_both_ways() {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = test_bytes(12 * MIB + 9, 31);
    std::fs::write(seed_dir.join("secret.bin"), &data).unwrap();
    let torrent = root.path().join("secret.torrent");
    let made =
        lt_forced(&["torrent", seed_dir.join("secret.bin").to_str().unwrap(), torrent.to_str().unwrap()])
            .output()
            .unwrap();
    assert!(made.status.success());
    let (_lt, line) = start_until(
        lt_forced(&["seed", torrent.to_str().unwrap(), seed_dir.to_str().unwrap(), "120"]),
        "seeding",
    );
    let lt_port: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let lt_peer = format!("127.0.0.1:{lt_port}");

    let plain = root.path().join("plain");
    let out = bin("peer")
        .args(["--tracker", "127.0.0.1:1", "--dir", plain.to_str().unwrap(), "--port", "0"])
        .args(["--encryption", "off", "download"])
        .arg(&torrent)
        .args(["--peer", &lt_peer, "--stall-timeout", "3"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "plain text reached a client that forces encryption:\n{}",
        all_output(&out)
    );

    let ours = root.path().join("ours");
    let out = bin("peer")
        .args(["--tracker", "127.0.0.1:1", "--dir", ours.to_str().unwrap(), "--port", "0", "download"])
        .arg(&torrent)
        .args(["--peer", &lt_peer])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert_eq!(chunks_from(&text), vec![(lt_port, 13)], "{text}");
    assert_eq!(sha1(&std::fs::read(ours.join("files/secret.bin")).unwrap()), sha1(&data));

    let (_t, tracker) = tracker();
    let (seed, port) = serve(tracker, &ours, &[]);
    let link = our_magnet(&ours, "secret.bin");
    let save = root.path().join("lt-get");
    let got = lt_forced(&["get", &link, save.to_str().unwrap(), "60", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", all_output(&got));
    assert_eq!(sha1(&std::fs::read(save.join("secret.bin")).unwrap()), sha1(&data));
    assert!(seed.proc.output().contains("(encrypted handshake)"), "the log says how it connected");
}

/// Transmission with encryption required: it downloads from our seeder (which dials it,
/// encrypted, when the tracker names it), then seeds to a p2p-share downloader.
#[test]
fn transmission_requiring_encryption_both_ways() {
    let (_t, tracker, _http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ours");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let data = test_bytes(8 * MIB + 1, 32);
    std::fs::write(dir.join("files/required.bin"), &data).unwrap();
    let (_seed, _) = serve(tracker, &dir, &[]);
    let out = bin("peer").args(["--dir", dir.to_str().unwrap(), "torrent", "required.bin"]).output().unwrap();
    assert!(out.status.success(), "{}", all_output(&out));
    let tr = Transmission::start_with(&root.path().join("tr"), serde_json::json!({ "encryption": 2 }));
    tr.add_and_finish(&dir.join("required.bin.torrent"), Duration::from_secs(60));
    assert_eq!(sha1(&std::fs::read(tr.download_dir.join("required.bin")).unwrap()), sha1(&data));
    drop(_seed);
    drop(tr);

    // A second Transmission requiring encryption seeds the file it finds on disk (a fresh
    // one: Transmission remembers 127.0.0.1 as a seed and would not serve it again), and
    // a new p2p-share peer downloads from it.
    let tr = Transmission::start_with(&root.path().join("tr2"), serde_json::json!({ "encryption": 2 }));
    std::fs::write(tr.download_dir.join("required.bin"), &data).unwrap();
    tr.add_and_finish(&dir.join("required.bin.torrent"), Duration::from_secs(30)); // it checks the data
    let again = root.path().join("again");
    tr.seeds_to_our_download(tracker, &again, &dir.join("required.bin.torrent"), "required.bin", &data);
}
