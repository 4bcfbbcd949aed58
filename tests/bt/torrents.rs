//! Torrents as the usual tools make them with their defaults, not as we make them: each is
//! seeded by libtorrent, downloaded by p2p-share from its `.torrent`, then served by
//! p2p-share to a libtorrent that has only our magnet link (so the info dictionary we serve
//! over ut_metadata must be the tool's own bytes, and the pieces its piece length).

use crate::libtorrent::{all_output, bin, chunks_from, download_torrent, lt, lt_seed, serve, sha1, tracker};
use crate::support::test_bytes;
use std::path::Path;
use std::process::Command;

const MIB: usize = 1 << 20;

/// The tool's torrent of `file` (in its own folder) into `out`.
fn make(tool: &str, file: &Path, out: &Path) {
    let made = match tool {
        "libtorrent" => lt(&["torrent-default", file.to_str().unwrap(), out.to_str().unwrap()]),
        "transmission-create" => {
            Command::new("transmission-create").arg("-o").arg(out).arg(file).output().unwrap()
        }
        "mktorrent" => Command::new("mktorrent")
            .args(["-a", "http://127.0.0.1:1/announce", "-o"])
            .arg(out)
            .arg(file)
            .output()
            .expect("mktorrent is installed (apt-get install mktorrent; the .ci/run script does)"),
        _ => unreachable!(),
    };
    assert!(made.status.success(), "{tool}: {}", all_output(&made));
}

/// Seeds `tool`'s torrent of a file of `size` bytes with libtorrent; p2p-share downloads
/// it, then serves it to a libtorrent that has only the magnet link.
fn round_trip(tool: &str, size: usize) {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let name = format!("{tool}.bin");
    let data = test_bytes(size, size as u64);
    std::fs::write(seed_dir.join(&name), &data).unwrap();
    let torrent = root.path().join(format!("{tool}.torrent"));
    make(tool, &seed_dir.join(&name), &torrent);
    let (_lt, lt_port) = lt_seed(&torrent, &seed_dir, None);
    let dir = root.path().join("ours");
    download_torrent("127.0.0.1:1", &dir, &torrent, lt_port);
    assert!(
        sha1(&std::fs::read(dir.join("files").join(&name)).unwrap()) == sha1(&data),
        "{tool}: bytes differ"
    );

    // Now we seed it: our magnet link names the torrent's own info-hash.
    let (_t, tracker) = tracker();
    let (_ours, port) = serve(tracker, &dir, &[]);
    let out = bin("peer").args(["--dir", dir.to_str().unwrap(), "magnet", &name]).output().unwrap();
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let v1 = lt(&["infohash-of", torrent.to_str().unwrap()]);
    let v1 = String::from_utf8_lossy(&v1.stdout).trim().to_string();
    assert!(link.contains(&v1), "{tool}: our magnet link {link} names another info-hash than {v1}");
    let save = root.path().join("lt2");
    let got = lt(&["get", &link, save.to_str().unwrap(), "60", &format!("127.0.0.1:{port}")]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{tool}: {text}\n{}", String::from_utf8_lossy(&got.stderr));
    assert!(
        sha1(&std::fs::read(save.join(&name)).unwrap()) == sha1(&data),
        "{tool}: libtorrent got other bytes"
    );

    // And a second p2p-share peer finds it at our tracker under its name, and fetches it
    // from ours in our own protocol, every chunk of the torrent's piece length.
    let third = root.path().join("third");
    let out = bin("peer")
        .args(["--tracker", &tracker.to_string(), "--dir", third.to_str().unwrap(), "--port", "0"])
        .args(["download", &name])
        .output()
        .unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{tool}: {text}");
    let chunks: u32 = chunks_from(&text).iter().map(|(_, n)| n).sum();
    assert_eq!(chunks as usize, size.div_ceil(piece_length(&torrent)), "{tool}: {text}");
    assert!(
        sha1(&std::fs::read(third.join("files").join(&name)).unwrap()) == sha1(&data),
        "{tool}: bytes differ"
    );
}

/// The piece length a `.torrent` names.
fn piece_length(torrent: &Path) -> usize {
    let t = p2p_share::torrent::read_torrent(&std::fs::read(torrent).unwrap()).unwrap();
    t.manifest.piece_length as usize
}

/// libtorrent's default: a hybrid v1+v2 torrent (`file tree`, `meta version`, `piece
/// layers`), 32 KiB pieces for this size.
#[test]
fn a_libtorrent_default_hybrid_torrent() {
    round_trip("libtorrent", 5 * MIB + 3);
}

/// Transmission's default: `private: 0` in the info dictionary, its own piece size.
#[test]
fn a_transmission_create_default_torrent() {
    round_trip("transmission-create", 5 * MIB + 3);
}

/// mktorrent's default: 256 KiB pieces.
#[test]
fn a_mktorrent_default_torrent() {
    round_trip("mktorrent", 3 * MIB + 100);
}
