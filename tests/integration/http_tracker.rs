//! The tracker's HTTP side against a raw HTTP client: announce and scrape in one index with
//! p2p-share peers, the announce URL in magnet links and torrents, failures, the status
//! JSON and the metrics.

use crate::helpers::{peer_dir, test_bytes, PeerProc, TrackerProc, IO};
use p2p_share::hash::ContentId;
use p2p_share::manifest::hash_file;
use p2p_share::torrent::read_torrent;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

/// A tracker with HTTP on; returns it and the HTTP address.
pub fn http_tracker() -> (TrackerProc, SocketAddr) {
    let t = TrackerProc::start(&["--http", "127.0.0.1:0"]);
    let line = t.proc.wait_for_line("HTTP tracker on http://", IO);
    let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
    (t, addr)
}

/// `GET path` over a fresh connection; returns (status, body).
pub fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let status = std::str::from_utf8(&all[9..12]).unwrap().parse().unwrap();
    (status, all[end..].to_vec())
}

fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

/// Compact peers (6 bytes each) out of an announce answer.
fn compact_peers(body: &[u8]) -> Vec<SocketAddr> {
    let at = body.windows(7).position(|w| w == b"5:peers").expect("peers") + 7;
    let colon = at + body[at..].iter().position(|b| *b == b':').unwrap();
    let n: usize = std::str::from_utf8(&body[at..colon]).unwrap().parse().unwrap();
    body[colon + 1..colon + 1 + n]
        .chunks(6)
        .map(|c| SocketAddr::from(([c[0], c[1], c[2], c[3]], u16::from_be_bytes([c[4], c[5]]))))
        .collect()
}

#[test]
fn bittorrent_clients_and_our_peers_share_one_index() {
    let (t, http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * 1024 * 1024 + 3, 50);
    let dir = peer_dir(root.path(), "seed", &[("shared.bin", &data)]);
    let (_p, port) = PeerProc::serve(t.addr, &dir, &[]);
    let id = hash_file(&dir.join("files/shared.bin"), "shared.bin", true).unwrap().content_id();
    let announce_url = format!("http://{http}/announce");

    // The serving peer learned the announce URL: it is in the magnet link and the torrent.
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--dir", dir.to_str().unwrap(), "torrent", "shared.bin"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let link = text.lines().nth(1).unwrap_or_default();
    assert!(link.contains(&format!("&tr=http%3A%2F%2F{}%3A{}%2Fannounce", http.ip(), http.port())), "{text}");
    let torrent = read_torrent(&std::fs::read(dir.join("shared.bin.torrent")).unwrap()).unwrap();
    assert_eq!(torrent.trackers, vec![announce_url]);

    // A BitTorrent client announcing the same info-hash hears of our peer.
    let leech = format!(
        "/announce?info_hash={}&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left={}&event=started&compact=1",
        pct(id.as_bytes()),
        data.len()
    );
    let (status, body) = get(http, &leech);
    assert_eq!(status, 200);
    assert!(body.starts_with(b"d8:completei1e10:incompletei1e"), "{}", String::from_utf8_lossy(&body));
    assert_eq!(compact_peers(&body), vec![SocketAddr::from(([127, 0, 0, 1], port))]);

    // A seeder announcing from another port: the first client now hears of both.
    let seed = leech.replace("port=51413", "port=51414").replace(&format!("left={}", data.len()), "left=0");
    let (_, seeded) = get(http, &seed);
    assert!(seeded.starts_with(b"d8:complete"), "{}: {}", seed, String::from_utf8_lossy(&seeded));
    let (_, body) = get(http, &leech.replace("&event=started", ""));
    let peers = compact_peers(&body);
    assert!(peers.contains(&SocketAddr::from(([127, 0, 0, 1], 51414))) && peers.len() == 2, "{peers:?}");
    assert!(body.starts_with(b"d8:completei2e10:incompletei1e"), "{}", String::from_utf8_lossy(&body));

    // Scrape counts both worlds; a completed event counts a download.
    get(
        http,
        &format!(
            "{}&event=completed",
            leech.replace("&event=started", "").replace(&format!("left={}", data.len()), "left=0")
        ),
    );
    let (_, body) = get(http, &format!("/scrape?info_hash={}", pct(id.as_bytes())));
    let expected = [
        b"d5:filesd20:".to_vec(),
        id.as_bytes().to_vec(),
        b"d8:completei3e10:downloadedi1e10:incompletei0eeee".to_vec(),
    ]
    .concat();
    assert_eq!(body, expected, "{}", String::from_utf8_lossy(&body));

    // Bad requests get a failure reason, and the tracker goes on.
    for (query, why) in [
        ("/announce?port=1", "missing info_hash"),
        (
            &format!("/announce?info_hash={}&peer_id=x&port=1&left=0", pct(id.as_bytes())),
            "peer_id is not 20 bytes",
        ),
        (&format!("{leech}&port=2"), "port given more than once"),
    ] {
        let (status, body) = get(http, query);
        assert_eq!(status, 200);
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with("d14:failure reason") && text.contains(why), "{query}: {text}");
    }
    assert_eq!(get(http, "/nothing").0, 404);

    // The status JSON and the metrics see it all.
    let (_, json) = get(http, "/api/status");
    let status: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(status["totals"]["native_peers"], 1);
    assert_eq!(status["totals"]["bittorrent_peers"], 2);
    let row = status["files"].as_array().unwrap().iter().find(|f| f["name"] == "shared.bin").unwrap().clone();
    assert_eq!((row["holders"].as_u64(), row["completed"].as_u64()), (Some(3), Some(1)), "{row}");
    let (_, metrics) = get(http, "/metrics");
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("p2p_share_peers{kind=\"bittorrent\"} 2"), "{metrics}");
    assert!(metrics.contains("p2p_share_http_failures_total 3"), "{metrics}");
    assert!(metrics.contains("p2p_share_native_requests_total{kind=\"register\"} 1"), "{metrics}");

    // A stopped event takes a client out.
    get(http, &format!("{}&event=stopped", seed.replace("&event=started", "")));
    let (_, json) = get(http, "/api/status");
    let status: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(status["totals"]["bittorrent_peers"], 1);

    // A swarm only BitTorrent clients know is listed natively under its info-hash.
    let only = ContentId::of(b"only BitTorrent clients have this");
    get(
        http,
        &format!(
            "/announce?info_hash={}&peer_id=-TR3000-zzzzzzzzzzzz&port=6881&left=0",
            pct(only.as_bytes())
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_peer"))
        .args(["--tracker", &t.addr.to_string(), "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains(&format!("{only} : ['6881']")), "{list}");
}
