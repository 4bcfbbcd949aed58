//! Web seeds (BEP 19) served by a real HTTP server with range support, Debian's nginx:
//! a file and a folder fetched from the web seed alone, a web seed and a libtorrent peer
//! sharing one download, and a web seed serving corrupt bytes struck out while a libtorrent
//! peer finishes the download.

use crate::libtorrent::{all_output, bin, chunks_from, lt_seed, sha1};
use crate::nginx::{nginx, tls_files, Site};
use crate::support::{free_port, test_bytes};
use std::path::Path;
use std::process::Command;

const MIB: usize = 1 << 20;

/// mktorrent's torrent of `path` with the web seed `url` (256 KiB pieces, its default).
fn torrent_with_web_seed(path: &Path, url: &str, out: &Path) {
    let made = Command::new("mktorrent").args(["-w", url, "-o"]).arg(out).arg(path).output().unwrap();
    assert!(made.status.success(), "{}", all_output(&made));
}

/// `peer download TORRENT` into `dir` with no tracker, and `extra` arguments.
fn download(dir: &Path, torrent: &Path, extra: &[&str]) -> String {
    download_trusting(dir, torrent, extra, None)
}

/// The same, trusting the certificates of the CA in `ca` (`SSL_CERT_FILE`).
fn download_trusting(dir: &Path, torrent: &Path, extra: &[&str], ca: Option<&Path>) -> String {
    let mut cmd = bin("peer");
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca);
    }
    let out = cmd
        .args(["--tracker", "127.0.0.1:1", "--dir", dir.to_str().unwrap(), "--port", "0", "download"])
        .arg(torrent)
        .args(extra)
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn a_file_and_a_folder_come_from_a_web_seed_alone() {
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    std::fs::create_dir_all(www.join("album/cd 2")).unwrap();
    let iso = test_bytes(3 * MIB + 5, 90);
    std::fs::write(www.join("image.iso"), &iso).unwrap();
    let files = [("album/a.flac", test_bytes(MIB + 9, 91)), ("album/cd 2/b#1.flac", test_bytes(700_000, 92))];
    for (p, bytes) in &files {
        std::fs::write(www.join(p), bytes).unwrap();
    }
    let port = free_port();
    let _nginx = nginx(&root.path().join("nginx"), &[Site::files(port, &www, "0")]);
    let url = format!("http://127.0.0.1:{port}/");

    let file_torrent = root.path().join("image.torrent");
    torrent_with_web_seed(&www.join("image.iso"), &url, &file_torrent);
    let dir = root.path().join("ours");
    let text = download(&dir, &file_torrent, &[]);
    assert!(sha1(&std::fs::read(dir.join("files/image.iso")).unwrap()) == sha1(&iso), "bytes differ");
    assert_eq!(chunks_from(&text), vec![(port, 13)], "every 256 KiB piece from the web seed:\n{text}");

    // A folder: the URL names the folder above it; names are percent-encoded.
    let folder_torrent = root.path().join("album.torrent");
    torrent_with_web_seed(&www.join("album"), &url, &folder_torrent);
    download(&dir, &folder_torrent, &[]);
    for (p, bytes) in &files {
        assert!(sha1(&std::fs::read(dir.join("files").join(p)).unwrap()) == sha1(bytes), "{p} differs");
    }
}

/// nginx serving `served` as the file at `rate`, and a libtorrent seeding `data` at 1 MiB/s
/// from a torrent naming nginx as its web seed; p2p-share downloads it from both and must
/// end with `data`. Returns its output and the ports of the web seed and of libtorrent.
fn web_seed_beside_a_peer(data: &[u8], served: &[u8], rate: &str) -> (String, u16, u16) {
    let root = tempfile::tempdir().unwrap();
    let (www, seed_dir) = (root.path().join("www"), root.path().join("lt"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&seed_dir).unwrap();
    std::fs::write(seed_dir.join("t.bin"), data).unwrap();
    std::fs::write(www.join("t.bin"), served).unwrap();
    let port = free_port();
    let _nginx = nginx(&root.path().join("nginx"), &[Site::files(port, &www, rate)]);
    let torrent = root.path().join("t.torrent");
    torrent_with_web_seed(&seed_dir.join("t.bin"), &format!("http://127.0.0.1:{port}/"), &torrent);
    let (_lt, lt_port) = lt_seed(&torrent, &seed_dir, Some(1 << 20));
    let dir = root.path().join("ours");
    let text = download(&dir, &torrent, &["--peer", &format!("127.0.0.1:{lt_port}")]);
    assert!(sha1(&std::fs::read(dir.join("files/t.bin")).unwrap()) == sha1(data), "bytes differ");
    (text, port, lt_port)
}

#[test]
fn a_web_seed_serving_corrupt_bytes_is_struck_out_and_a_peer_finishes() {
    let data = test_bytes(4 * MIB, 93);
    let mut corrupt = data.clone();
    for b in corrupt.iter_mut().step_by(4096) {
        *b ^= 0xff;
    }
    // libtorrent seeds slowly, so the web seed gets its chances to lie first.
    let (text, port, lt_port) = web_seed_beside_a_peer(&data, &corrupt, "0");
    assert!(text.contains("failed its SHA-1 check"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port} dropped after")), "the web seed is struck out:\n{text}");
    assert_eq!(chunks_from(&text), vec![(lt_port, 16)], "every piece from the peer:\n{text}");
}

#[test]
fn a_web_seed_and_a_peer_share_one_download() {
    // 24 pieces, both sources at about 1 MiB/s: libtorrent is asked for what it sends in two
    // seconds (`download/request_depth.rs`), not all 24 at once, so the web seed gets its
    // share (with a fixed 8 MiB asked of libtorrent, it took every piece and gave them all
    // while the web seed only duplicated them).
    let data = test_bytes(6 * MIB, 94);
    let (text, port, lt_port) = web_seed_beside_a_peer(&data, &data, "1m");
    let mut chunks = chunks_from(&text);
    chunks.sort();
    let ports: Vec<u16> = chunks.iter().map(|(p, _)| *p).collect();
    let mut want = vec![port, lt_port];
    want.sort();
    assert_eq!(ports, want, "pieces from both (web seed {port}, libtorrent {lt_port}):\n{text}");
    assert_eq!(chunks.iter().map(|(_, n)| n).sum::<u32>(), 24);
}

/// An `https://` web seed: TLS, its certificate checked against the CA the system trusts
/// (here, the test's own CA named in `SSL_CERT_FILE`).
#[test]
fn a_file_comes_from_an_https_web_seed_whose_certificate_is_checked() {
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let data = test_bytes(2 * MIB + 1, 95);
    std::fs::write(www.join("t.bin"), &data).unwrap();
    let work = root.path().join("nginx");
    let tls = tls_files(&work);
    let port = free_port();
    let _nginx = nginx(&work, &[Site::tls_files(port, &www, &tls)]);
    let torrent = root.path().join("t.torrent");
    torrent_with_web_seed(&www.join("t.bin"), &format!("https://127.0.0.1:{port}/"), &torrent);
    let dir = root.path().join("ours");
    let text = download_trusting(&dir, &torrent, &[], Some(&tls.ca));
    assert!(sha1(&std::fs::read(dir.join("files/t.bin")).unwrap()) == sha1(&data), "bytes differ");
    assert_eq!(chunks_from(&text), vec![(port, 9)], "{text}");
    // Not trusting that CA, the web seed is refused: no piece comes from it.
    let out = bin("peer")
        .env("SSL_CERT_FILE", "/dev/null/none")
        .args(["--tracker", "127.0.0.1:1", "--dir", root.path().join("untrusting").to_str().unwrap()])
        .args(["--port", "0", "download", torrent.to_str().unwrap(), "--stall-timeout", "3"])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("certificate") || text.contains("trusted"), "{text}");
}
