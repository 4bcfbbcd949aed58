//! Transmission 3 (`transmission-daemon`, driven by `transmission-remote`) with our HTTP
//! tracker, both ways. Transmission never dials a loopback peer it hears of from a
//! tracker, so our seeder dials it (the tracker names it as a leecher).

use crate::libtorrent::{all_output, bin, lt, serve, sha1, Killed};
use crate::support::{free_port, test_bytes};
use crate::tracker_http::http_tracker;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A transmission-daemon with its own config and download folder; stopped when dropped.
pub struct Transmission {
    _daemon: Killed,
    rpc: u16,
    pub peer_port: u16,
    pub download_dir: PathBuf,
}

impl Transmission {
    pub fn start(root: &Path) -> Transmission {
        Transmission::start_with(root, serde_json::json!({}))
    }

    /// Started with `extra` settings over ours (e.g. `{"encryption": 2}`: required).
    pub fn start_with(root: &Path, extra: serde_json::Value) -> Transmission {
        let (cfg, dl) = (root.join("cfg"), root.join("dl"));
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::create_dir_all(&dl).unwrap();
        let (rpc, peer_port) = (free_port(), free_port());
        let mut settings = serde_json::json!({
            "rpc-authentication-required": false, "rpc-port": rpc, "rpc-bind-address": "127.0.0.1",
            "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
            "port-forwarding-enabled": false, "peer-port": peer_port, "peer-port-random-on-start": false,
            "bind-address-ipv4": "127.0.0.1", "download-dir": dl, "incomplete-dir-enabled": false,
            "message-level": 2
        });
        if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        std::fs::write(cfg.join("settings.json"), settings.to_string()).unwrap();
        let daemon = Command::new("transmission-daemon")
            .args(["-f", "-g", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "transmission-daemon is installed (apt-get install transmission-daemon transmission-cli)",
            );
        let t = Transmission { _daemon: Killed(daemon), rpc, peer_port, download_dir: dl };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !t.remote(&["-l"]).status.success() {
            assert!(Instant::now() < deadline, "transmission's RPC never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        t
    }

    pub fn remote(&self, args: &[&str]) -> std::process::Output {
        Command::new("transmission-remote").arg(self.rpc.to_string()).args(args).output().unwrap()
    }

    /// Adds `torrent` (it must be taken) and waits until it is 100% done, which must
    /// happen within `limit` (Transmission's view of it is shown if not): a download, or
    /// the check of data already in `download_dir`.
    pub fn add_and_finish(&self, torrent: &Path, limit: Duration) {
        let added = self.remote(&["-a", torrent.to_str().unwrap()]);
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
        assert!(
            self.wait_done(limit),
            "{}",
            String::from_utf8_lossy(&self.remote(&["-t", "1", "-i"]).stdout)
        );
    }

    /// `peer download TORRENT` into `dir` through `tracker`, which names this Transmission:
    /// it must succeed, with chunks from Transmission, and `files/NAME` must hold `data`.
    pub fn seeds_to_our_download(
        &self,
        tracker: SocketAddr,
        dir: &Path,
        torrent: &Path,
        name: &str,
        data: &[u8],
    ) {
        let out = bin("peer")
            .args([
                "--tracker",
                &tracker.to_string(),
                "--dir",
                dir.to_str().unwrap(),
                "--port",
                "0",
                "download",
            ])
            .arg(torrent)
            .args(["--stall-timeout", "60"])
            .output()
            .unwrap();
        let text = all_output(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(&format!("from {}", self.peer_port)), "chunks came from transmission:\n{text}");
        assert_eq!(sha1(&std::fs::read(dir.join("files").join(name)).unwrap()), sha1(data));
    }

    /// Waits until torrent 1 is 100% done.
    pub fn wait_done(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if String::from_utf8_lossy(&self.remote(&["-l"]).stdout).contains("100%") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    }
}

/// Transmission gets the .torrent `peer torrent` wrote, hears of our peer from our HTTP
/// tracker, and downloads the file from it (our seeder dials it).
#[test]
fn transmission_downloads_from_our_peer_through_our_tracker() {
    let (_t, tracker, _http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ours");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let data = test_bytes(8 << 20, 11);
    std::fs::write(dir.join("files/to-transmission.bin"), &data).unwrap();
    let (_seed, _) = serve(tracker, &dir, &[]);
    let out = bin("peer")
        .args(["--dir", dir.to_str().unwrap(), "torrent", "to-transmission.bin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tr = Transmission::start(&root.path().join("transmission"));
    tr.add_and_finish(&dir.join("to-transmission.bin.torrent"), Duration::from_secs(60));
    assert_eq!(sha1(&std::fs::read(tr.download_dir.join("to-transmission.bin")).unwrap()), sha1(&data));
}

/// Transmission seeds a torrent whose announce URL is our tracker; a p2p-share peer given
/// that .torrent finds it through the tracker and downloads from it.
#[test]
fn we_download_from_transmission_through_our_tracker() {
    let (_t, tracker, http) = http_tracker();
    let root = tempfile::tempdir().unwrap();
    let tr = Transmission::start(&root.path().join("transmission"));
    let data = test_bytes(8 << 20 | 7, 12);
    std::fs::write(tr.download_dir.join("from-transmission.bin"), &data).unwrap();
    let torrent = root.path().join("from-transmission.torrent");
    let made = lt(&[
        "torrent",
        tr.download_dir.join("from-transmission.bin").to_str().unwrap(),
        torrent.to_str().unwrap(),
        &format!("http://{http}/announce"),
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    tr.add_and_finish(&torrent, Duration::from_secs(30)); // it checks the data it seeds
    tr.seeds_to_our_download(tracker, &root.path().join("ours"), &torrent, "from-transmission.bin", &data);
}
