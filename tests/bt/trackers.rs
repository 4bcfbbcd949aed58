//! A torrent's own trackers: Debian's opentracker (HTTP, HTTPS through nginx, UDP: BEP 15)
//! serving a swarm of libtorrent, Transmission and p2p-share. p2p-share finds a libtorrent
//! seed only through the tracker the torrent names (our tracker is down, no `--peer`, no
//! DHT), then seeds it to a libtorrent and a Transmission that find it the same way.

use crate::libtorrent::{all_output, bin, lt, lt_seed, sha1, Killed};
use crate::nginx::{nginx, tls_files, Site};
use crate::support::{free_port, test_bytes};
use crate::transmission::Transmission;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// opentracker on 127.0.0.1:`port` (TCP and UDP) answering for the info-hashes in
/// `whitelist` only, as Debian builds it.
fn opentracker(port: u16, whitelist: &Path) -> Killed {
    let p = port.to_string();
    let child = Command::new("opentracker")
        .args(["-i", "127.0.0.1", "-p", &p, "-P", &p, "-w"])
        .arg(whitelist)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("opentracker is installed (apt-get install opentracker; the .ci/run script does)");
    let t = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "opentracker did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    t
}

/// libtorrent seeds a torrent whose only tracker is opentracker at `scheme://`; p2p-share
/// downloads it from the `.torrent` (or a magnet link naming only the tracker).
fn found_through(scheme: &str, magnet: bool) {
    found_through_with(scheme, magnet, false, "127.0.0.1:1");
}

/// A download made through a torrent's own tracker, which is still up.
struct Fetched {
    info_hash: String,
    /// `ours` holds the download; `t.torrent` the torrent.
    root: tempfile::TempDir,
    data: Vec<u8>,
    _tracker: Killed,
    /// nginx, the TLS front of an https tracker.
    _front: Option<Killed>,
}

fn found_through_with(scheme: &str, magnet: bool, private: bool, our_tracker: &str) -> Fetched {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = test_bytes(3 << 20, 77);
    std::fs::write(seed_dir.join("t.bin"), &data).unwrap();
    let port = free_port();
    let kind = if private { "private" } else { "public" };
    // libtorrent's torrent names opentracker over plain HTTP or UDP; ours the same tracker
    // as `scheme` (for https, through a TLS front): the info dictionary, and so the
    // info-hash, is the same.
    let (url, lt_url, front) = if scheme == "https" {
        let front = free_port();
        (
            format!("https://127.0.0.1:{front}/announce"),
            format!("http://127.0.0.1:{port}/announce"),
            Some(front),
        )
    } else {
        let url = format!("{scheme}://127.0.0.1:{port}/announce");
        (url.clone(), url, None)
    };
    let make = |url: &str, out: &Path| {
        let made = lt(&[
            "torrent",
            seed_dir.join("t.bin").to_str().unwrap(),
            out.to_str().unwrap(),
            url,
            "1048576",
            kind,
        ]);
        assert!(made.status.success(), "{}", all_output(&made));
        String::from_utf8_lossy(&made.stdout).trim().to_string()
    };
    let torrent = root.path().join("t.torrent");
    let info_hash = make(&url, &torrent);
    let lt_torrent = root.path().join("lt.torrent");
    assert_eq!(make(&lt_url, &lt_torrent), info_hash);
    let whitelist = root.path().join("whitelist");
    std::fs::write(&whitelist, format!("{info_hash}\n")).unwrap();
    let tracker = opentracker(port, &whitelist);
    let work = root.path().join("nginx");
    let tls = front.map(|_| tls_files(&work));
    let front = front.map(|f| nginx(&work, &[Site::tls_proxy(f, port, tls.as_ref().unwrap())]));
    let (_lt, _) = lt_seed(&lt_torrent, &seed_dir, None);
    let dir = root.path().join("ours");
    let target = if magnet {
        format!("magnet:?xt=urn:btih:{info_hash}&tr={}", url.replace(':', "%3A").replace('/', "%2F"))
    } else {
        torrent.to_str().unwrap().to_string()
    };
    let mut cmd = bin("peer");
    if let Some(tls) = &tls {
        cmd.env("SSL_CERT_FILE", &tls.ca);
    }
    let out = cmd
        .args(["--tracker", our_tracker, "--dir", dir.to_str().unwrap(), "--port", "0", "download", &target])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{scheme}: {text}");
    assert!(text.contains(&format!("Tracker {url} named")), "{scheme}: {text}");
    assert!(sha1(&std::fs::read(dir.join("files/t.bin")).unwrap()) == sha1(&data), "{scheme}: bytes differ");
    Fetched { info_hash, root, data, _tracker: tracker, _front: front }
}

/// Serves `fetched` (the libtorrent seeder is gone) and has a new libtorrent, given only
/// the `.torrent`, fetch it: it can find us only through the torrent's tracker, which only
/// our seeding announces told where we are.
fn seeded_through_its_tracker(
    fetched: &Fetched,
    our_tracker: std::net::SocketAddr,
) -> crate::support::PeerProc {
    let root = fetched.root.path();
    // Capped, so the download lasts long enough for lt.py to see who sends (3 MiB: 3 s).
    let (serving, port) =
        crate::libtorrent::serve(our_tracker, &root.join("ours"), &["--upload-limit", "1M"]);
    serving.proc.wait_for_line("announced to", Duration::from_secs(20));
    let save = root.join("lt2");
    let got = lt(&["get", root.join("t.torrent").to_str().unwrap(), save.to_str().unwrap(), "60"]);
    let text = all_output(&got);
    assert!(got.status.success(), "{text}\n{}", serving.proc.output());
    assert!(text.contains(&format!("from 127.0.0.1:{port} ")), "the bytes came from us:\n{text}");
    assert!(
        sha1(&std::fs::read(save.join("t.bin")).unwrap()) == sha1(&fetched.data),
        "libtorrent got other bytes"
    );
    serving
}

/// A finished torrent is announced to its own tracker while it is seeded.
#[test]
fn a_finished_torrent_is_seeded_to_peers_that_come_through_its_own_tracker() {
    let (_ours, addr) = crate::libtorrent::tracker();
    let fetched = found_through_with("udp", false, false, "127.0.0.1:1");
    let serving = seeded_through_its_tracker(&fetched, addr);
    drop(serving); // leaves: `stopped` (not checked here; opentracker says nothing of it)
}

#[test]
fn a_seed_found_only_through_the_torrents_http_tracker() {
    found_through("http", false);
}

/// An `https://` tracker (opentracker behind nginx's TLS), its certificate checked against
/// the CA the system trusts (here the test's own, in `SSL_CERT_FILE`).
#[test]
fn a_seed_found_only_through_the_torrents_https_tracker() {
    found_through("https", false);
}

#[test]
fn a_seed_found_only_through_the_torrents_udp_tracker() {
    found_through("udp", false);
}

#[test]
fn a_magnet_link_naming_only_a_udp_tracker() {
    found_through("udp", true);
}

/// A private torrent (BEP 27) is fetched through its own tracker only: our tracker, up and
/// reachable, never hears of it (neither the download nor the finished file).
#[test]
fn a_private_torrent_is_never_told_to_our_tracker() {
    let (ours, addr) = crate::libtorrent::tracker();
    let fetched = found_through_with("http", false, true, &addr.to_string());
    let info_hash = &fetched.info_hash;
    // Served afterwards, it is seeded to peers that come through its own tracker, and not
    // listed at ours.
    let _serving = seeded_through_its_tracker(&fetched, addr);
    ours.proc.wait_for_line("There are 1 clients now", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2)); // the file monitor's first pass and announce
    let log = ours.proc.output();
    assert!(log.contains("Registering peer..."), "the peer did talk to our tracker: {log}");
    assert!(!log.contains("t.bin") && !log.contains(info_hash.as_str()), "our tracker heard of it: {log}");
}

/// Transmission, given only the `.torrent`, gets the file from us through the torrent's own
/// tracker (opentracker): it never dials a loopback peer it hears of, so our seeder dials
/// it when the tracker names it in the answer to our announce.
#[test]
fn transmission_fetches_a_torrent_we_seed_through_its_own_tracker() {
    let (_ours, addr) = crate::libtorrent::tracker();
    let fetched = found_through_with("http", false, false, "127.0.0.1:1");
    let root = fetched.root.path();
    let tr = Transmission::start(&root.join("transmission"));
    let added = tr.remote(&["-a", root.join("t.torrent").to_str().unwrap()]);
    assert!(added.status.success(), "{}", all_output(&added));
    // Its `started` announce first, so the tracker names it to ours.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&tr.remote(&["-t", "1", "-it"]).stdout).contains("Got a list of") {
        assert!(Instant::now() < deadline, "transmission never announced");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (serving, _) = crate::libtorrent::serve(addr, &root.join("ours"), &[]);
    let done = tr.wait_done(Duration::from_secs(60));
    assert!(done, "{}\n{}", all_output(&tr.remote(&["-t", "1", "-i"])), serving.proc.output());
    assert!(
        sha1(&std::fs::read(tr.download_dir.join("t.bin")).unwrap()) == sha1(&fetched.data),
        "bytes differ"
    );
}
