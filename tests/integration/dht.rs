//! Finding peers through a private Mainline DHT on loopback, with no tracker at all, and
//! after the tracker died.

use crate::helpers::{peer_dir, test_bytes, PeerProc, TrackerProc, IO};
use p2p_share::manifest::hash_file;
use std::net::Ipv4Addr;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(90);
const NOWHERE: &str = "127.0.0.1:1";

/// Eight DHT nodes on 127.0.0.1 (the crate's test network); returns it and its bootstrap
/// list as a flag value.
fn testnet() -> (mainline::Testnet, String) {
    let net = mainline::Testnet::builder(8).bind_address(Ipv4Addr::LOCALHOST).build().expect("a DHT testnet");
    let boot = net.bootstrap.join(",");
    (net, boot)
}

fn magnet_of(dir: &std::path::Path, name: &str) -> String {
    let id = hash_file(&dir.join("files").join(name), name, true).unwrap().content_id();
    format!("magnet:?xt=urn:btih:{id}")
}

#[test]
fn a_magnet_link_and_a_private_dht_are_enough() {
    let (_net, boot) = testnet();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(5 * 1024 * 1024 + 9, 60);
    let seed_dir = peer_dir(root.path(), "seed", &[("dht.bin", &data)]);
    // No tracker exists: the seeder starts without one and announces on the DHT.
    let seed = PeerProc::spawn_to(NOWHERE, &seed_dir, &["--dht-bootstrap", &boot, "serve"]);
    seed.proc.wait_for_line("on the DHT", Duration::from_secs(30));
    let link = magnet_of(&seed_dir, "dht.bin");
    let down = peer_dir(root.path(), "down", &[]);
    let (code, out) =
        PeerProc::spawn_to(NOWHERE, &down, &["--dht-bootstrap", &boot, "download", &link]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("The DHT named"), "{out}");
    assert!(std::fs::read(down.join("files/dht.bin")).unwrap() == data);
}

#[test]
fn with_the_tracker_dead_the_dht_finishes_the_download_and_without_it_the_error_is_clear() {
    let (_net, boot) = testnet();
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(3 * 1024 * 1024 + 1, 61);
    let seed_dir = peer_dir(root.path(), "seed", &[("t.bin", &data)]);
    let (seed, _) = PeerProc::serve(t.addr, &seed_dir, &["--dht-bootstrap", &boot]);
    seed.proc.wait_for_line("on the DHT", Duration::from_secs(30));
    let tracker = t.addr.to_string();
    drop(t); // killed before the downloads start
    let link = magnet_of(&seed_dir, "t.bin");
    let with = peer_dir(root.path(), "with", &[]);
    let (code, out) =
        PeerProc::spawn_to(&tracker, &with, &["--dht-bootstrap", &boot, "download", &link]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(std::fs::read(with.join("files/t.bin")).unwrap() == data);
    let without = peer_dir(root.path(), "without", &[]);
    let (code, out) = PeerProc::spawn_to(&tracker, &without, &["download", &link]).finish(IO * 4);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot reach the tracker"), "{out}");
}
