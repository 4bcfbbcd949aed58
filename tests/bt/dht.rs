//! libtorrent finds our seeder through a private Mainline DHT of our nodes alone.

use crate::libtorrent::{lt, serve, sha1};
use crate::support::test_bytes;
use std::net::{Ipv4Addr, SocketAddr};

const MIB: usize = 1024 * 1024;

/// libtorrent, given only a bare magnet link (no tracker, no peer address) and one node of
/// a private DHT on loopback, finds our seeder on the DHT, takes the info dict from it and
/// downloads the file. It needs both patches of `vendor/mainline`: libtorrent's 2-byte
/// KRPC transaction ids (6.1.1 dropped those queries), and our seeder adding libtorrent's
/// node when libtorrent's `port` message names it.
#[test]
fn libtorrent_finds_our_seeder_through_our_dht() {
    let net = mainline::Testnet::builder(8).bind_address(Ipv4Addr::LOCALHOST).build().expect("a DHT testnet");
    let boot = net.bootstrap.join(",");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("seed");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let data = test_bytes(6 * MIB + 3, 7);
    std::fs::write(dir.join("files/found.bin"), &data).unwrap();
    // The tracker address leads nowhere: the DHT is the only way to our seeder.
    let nowhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
    // Capped, so the download lasts long enough (about 1.5 s) for libtorrent's per-peer
    // byte counts to be sampled while the connection is open.
    let (_seed, port) = serve(nowhere, &dir, &["--dht-bootstrap", &boot, "--upload-limit", "4M"]);
    let id =
        String::from_utf8(lt(&["infohash", dir.join("files/found.bin").to_str().unwrap()]).stdout).unwrap();
    let link = format!("magnet:?xt=urn:btih:{}", id.trim());
    let save = root.path().join("lt");
    // Our announce may still be on its way when libtorrent asks; libtorrent asks again.
    let got = lt(&["get", &link, save.to_str().unwrap(), "90", &format!("dht:{}", net.bootstrap[0])]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{text}\n{}", String::from_utf8_lossy(&got.stderr));
    assert!(text.contains("metadata True"), "{text}");
    assert!(text.contains(&format!("from 127.0.0.1:{port} ")), "the bytes came from our seeder: {text}");
    assert_eq!(sha1(&std::fs::read(save.join("found.bin")).unwrap()), sha1(&data));
}
