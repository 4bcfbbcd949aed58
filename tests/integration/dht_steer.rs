//! DHT answers that try to steer a download (issue 26, items 5 and 6): a node that answers
//! first with peers that are all dead, and a seeder the DHT names while it is down for a
//! moment. A private DHT on loopback; the downloader knows only the lying node at first.

use crate::helpers::{fixed_free_port, peer_dir, test_bytes, Proc};
use p2p_share::manifest::hash_file;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(90);
const NOWHERE: &str = "127.0.0.1:1";

/// A DHT node that answers every query at once: `find_node` with no nodes, `get_peers`
/// with `dead` peers as values and the `honest` nodes as closer nodes. Stops when dropped.
struct LyingNode {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for LyingNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn bstr(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("{}:", b.len()).as_bytes());
    out.extend_from_slice(b);
}

fn lying_node(dead: Vec<SocketAddr>, honest: Vec<SocketAddr>) -> LyingNode {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let halt = Arc::clone(&stop);
    thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !halt.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            let Ok(serde_bencode::value::Value::Dict(q)) = serde_bencode::from_bytes(&buf[..n]) else {
                continue;
            };
            let (Some(serde_bencode::value::Value::Bytes(t)), Some(serde_bencode::value::Value::Bytes(kind))) =
                (q.get(&b"t"[..]), q.get(&b"q"[..]))
            else {
                continue;
            };
            let mut r = b"d1:rd2:id20:".to_vec();
            r.extend_from_slice(&[0x66; 20]);
            if kind == b"get_peers" {
                let nodes: Vec<u8> =
                    honest.iter().enumerate().flat_map(|(i, a)| compact_node(i as u8, *a)).collect();
                r.extend_from_slice(b"5:nodes");
                bstr(&mut r, &nodes);
                r.extend_from_slice(b"5:token");
                bstr(&mut r, b"tok");
                r.extend_from_slice(b"6:valuesl");
                for d in &dead {
                    bstr(&mut r, &compact(*d));
                }
                r.push(b'e');
            } else if kind == b"find_node" {
                r.extend_from_slice(b"5:nodes0:");
            }
            r.extend_from_slice(b"e1:t");
            bstr(&mut r, t);
            r.extend_from_slice(b"1:y1:re");
            let _ = sock.send_to(&r, from);
        }
    });
    LyingNode { addr, stop }
}

fn compact(a: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(a) = a else { panic!("IPv4 only") };
    [a.ip().octets().to_vec(), a.port().to_be_bytes().to_vec()].concat()
}

fn compact_node(k: u8, a: SocketAddr) -> Vec<u8> {
    let mut id = vec![0x11u8; 20];
    id[19] = k;
    [id, compact(a)].concat()
}

/// 150 addresses where nothing listens (each refuses at once).
fn dead_peers() -> Vec<SocketAddr> {
    (1..=150u8).map(|i| SocketAddr::from(([127, 0, 1, i], 6881))).collect()
}

fn testnet() -> (mainline::Testnet, Vec<SocketAddr>) {
    let net = mainline::Testnet::builder(8).bind_address(Ipv4Addr::LOCALHOST).build().expect("a DHT testnet");
    let nodes = net.bootstrap.iter().map(|s| s.parse().unwrap()).collect();
    (net, nodes)
}

fn peer(dir: &std::path::Path, args: &[&str]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
    cmd.args(["--tracker", NOWHERE, "--dir", dir.to_str().unwrap()]).args(args);
    Proc::spawn(cmd)
}

/// `peer download TARGET` into `dir`, knowing only `liar` on the DHT at first.
fn download_via(liar: &LyingNode, dir: &std::path::Path, target: &str, stall_secs: &str) -> Proc {
    let boot = liar.addr.to_string();
    peer(dir, &["--port", "0", "--dht-bootstrap", &boot, "download", target, "--stall-timeout", stall_secs])
}

/// A seeder on the testnet DHT serving `dir` on TCP `port`, once it announced.
fn dht_seeder(dir: &std::path::Path, boot: &str, port: u16) -> Proc {
    let p = peer(dir, &["--port", &port.to_string(), "--dht-bootstrap", boot, "serve"]);
    p.wait_for_line("on the DHT", Duration::from_secs(30));
    p
}

fn join(addrs: &[SocketAddr]) -> String {
    addrs.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(",")
}

/// Item 5: the first answer names 150 dead peers; the honest seeder, named by the nodes
/// that answer after it, still gives the metadata and the file.
#[test]
fn a_first_answer_of_dead_peers_does_not_stop_a_magnet_download() {
    let (_net, nodes) = testnet();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 << 20, 320);
    let seed_dir = peer_dir(root.path(), "seed", &[("steer.bin", &data)]);
    let _seed = dht_seeder(&seed_dir, &join(&nodes), fixed_free_port());
    let liar = lying_node(dead_peers(), nodes);
    let id = hash_file(&seed_dir.join("files/steer.bin"), "steer.bin", true).unwrap().content_id();
    let down = peer_dir(root.path(), "down", &[]);
    let started = Instant::now();
    let link = format!("magnet:?xt=urn:btih:{id}");
    let mut p = download_via(&liar, &down, &link, "20");
    let code = p.wait_exit(LONG);
    let out = p.output();
    eprintln!("the magnet download took {:?}", started.elapsed());
    assert_eq!(code, Some(0), "{out}");
    assert!(std::fs::read(down.join("files/steer.bin")).unwrap() == data);
}

/// Item 6: the DHT names the seeder while it is down; it comes back on the same port a few
/// seconds later and the download finishes from it.
#[test]
fn a_dht_source_that_failed_once_is_tried_again() {
    let (_net, nodes) = testnet();
    let boot = join(&nodes);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 << 20, 321);
    let seed_dir = peer_dir(root.path(), "seed", &[("back.bin", &data)]);
    let torrent = root.path().join("back.torrent");
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", NOWHERE, "--dir", seed_dir.to_str().unwrap()])
        .args(["torrent", "back.bin", "--out", torrent.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = fixed_free_port(); // the seeder comes back on it
    drop(dht_seeder(&seed_dir, &boot, port)); // announced, then gone
    let liar = lying_node(vec![SocketAddr::from(([127, 0, 1, 1], 6881))], nodes);
    let down = peer_dir(root.path(), "down", &[]);
    let mut p = download_via(&liar, &down, torrent.to_str().unwrap(), "25");
    // Long enough for the lookups to name the seeder while it is down, and fail on it.
    thread::sleep(Duration::from_secs(6));
    let _back = dht_seeder(&seed_dir, &boot, port);
    let code = p.wait_exit(LONG);
    let out = p.output();
    assert_eq!(code, Some(0), "{out}");
    assert!(std::fs::read(down.join("files/back.bin")).unwrap() == data);
}
