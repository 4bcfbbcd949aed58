//! Torrents as the usual tools make them with their defaults, not as we make them (files
//! and folders): each is
//! seeded by libtorrent, downloaded by p2p-share from its `.torrent`, then served by
//! p2p-share to a libtorrent that has only our magnet link (so the info dictionary we serve
//! over ut_metadata must be the tool's own bytes, and the pieces its piece length).

use crate::libtorrent::{
    all_output, bin, chunks_from, download_torrent, lt, lt_seed, our_magnet, serve, sha1, tracker,
};
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

/// What a test shares: one file, or a folder of files.
struct Content {
    name: String,
    /// Paths below the folder (the name itself for a file) and bytes.
    files: Vec<(String, Vec<u8>)>,
    folder: bool,
}

impl Content {
    fn file(name: &str, size: usize) -> Content {
        Content {
            name: name.into(),
            files: vec![(name.into(), test_bytes(size, size as u64))],
            folder: false,
        }
    }

    fn folder(name: &str, files: &[(&str, usize)]) -> Content {
        let files = files.iter().map(|(p, n)| (p.to_string(), test_bytes(*n, *n as u64 + 1))).collect();
        Content { name: name.into(), files, folder: true }
    }

    fn path_in(&self, root: &Path, file: &str) -> std::path::PathBuf {
        if self.folder {
            root.join(&self.name).join(file)
        } else {
            root.join(file)
        }
    }

    fn write(&self, root: &Path) {
        for (path, bytes) in &self.files {
            let at = self.path_in(root, path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, bytes).unwrap();
        }
    }

    /// Every file under `root` holds its bytes, and nothing else is in the folder.
    fn check(&self, root: &Path, who: &str) {
        for (path, bytes) in &self.files {
            let got =
                std::fs::read(self.path_in(root, path)).unwrap_or_else(|e| panic!("{who}: {path}: {e}"));
            assert!(sha1(&got) == sha1(bytes), "{who}: {path}: bytes differ");
        }
        if self.folder {
            let mut found = Vec::new();
            walk(&root.join(&self.name), "", &mut found);
            found.sort();
            let mut want: Vec<String> = self.files.iter().map(|(p, _)| p.clone()).collect();
            want.sort();
            assert_eq!(found, want, "{who}: the folder holds other files (padding written?)");
        }
    }
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), &format!("{name}/"), out);
        } else {
            out.push(name);
        }
    }
}

/// Seeds `tool`'s torrent of `content` with libtorrent; p2p-share downloads it, then serves
/// it to a libtorrent that has only the magnet link, and to a second p2p-share peer.
fn round_trip(tool: &str, content: Content) {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    content.write(&seed_dir);
    let name = content.name.clone();
    let torrent = root.path().join(format!("{tool}.torrent"));
    make(tool, &seed_dir.join(&name), &torrent);
    let (_lt, lt_port) = lt_seed(&torrent, &seed_dir, None);
    let dir = root.path().join("ours");
    download_torrent("127.0.0.1:1", &dir, &torrent, lt_port);
    content.check(&dir.join("files"), tool);

    // Now we seed it: our magnet link names the torrent's own info-hash.
    let (_t, tracker) = tracker();
    let (_ours, port) = serve(tracker, &dir, &[]);
    let link = our_magnet(&dir, &name);
    let v1 = lt(&["infohash-of", torrent.to_str().unwrap()]);
    let v1 = String::from_utf8_lossy(&v1.stdout).trim().to_string();
    assert!(link.contains(&v1), "{tool}: our magnet link {link} names another info-hash than {v1}");
    let save = root.path().join("lt2");
    let got = lt(&["get", &link, save.to_str().unwrap(), "60", &format!("127.0.0.1:{port}")]);
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{tool}: {text}\n{}", String::from_utf8_lossy(&got.stderr));
    content.check(&save, &format!("{tool}, libtorrent from us"));

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
    assert_eq!(chunks, pieces(&torrent), "{tool}: {text}");
    content.check(&third.join("files"), &format!("{tool}, second p2p-share peer"));
}

/// How many pieces a `.torrent` names.
fn pieces(torrent: &Path) -> u32 {
    let t = p2p_share::torrent::read_torrent(&std::fs::read(torrent).unwrap()).unwrap();
    t.manifest.chunk_count()
}

/// A folder with nesting, a file smaller than a piece and, if `empty`, an empty file
/// (transmission-create leaves empty files out of its torrents).
fn album(empty: bool) -> Content {
    let mut files =
        vec![("a.txt", 100 * 1024 + 7), ("sub/b.bin", 2 * MIB + 5), ("sub/deeper/c.dat", MIB - 3)];
    if empty {
        files.push(("empty", 0));
    }
    Content::folder("album", &files)
}

/// libtorrent's default: a hybrid v1+v2 torrent (`file tree`, `meta version`, `piece
/// layers`), 32 KiB pieces for this size.
#[test]
fn a_libtorrent_default_hybrid_torrent() {
    round_trip("libtorrent", Content::file("libtorrent.bin", 5 * MIB + 3));
}

/// Transmission's default: `private: 0` in the info dictionary, its own piece size.
#[test]
fn a_transmission_create_default_torrent() {
    round_trip("transmission-create", Content::file("transmission-create.bin", 5 * MIB + 3));
}

/// mktorrent's default: 256 KiB pieces.
#[test]
fn a_mktorrent_default_torrent() {
    round_trip("mktorrent", Content::file("mktorrent.bin", 3 * MIB + 100));
}

/// transmission-create's default for a folder: several files, pieces across them.
#[test]
fn a_transmission_create_folder_torrent() {
    round_trip("transmission-create", album(false));
}

/// libtorrent's default for a folder: a hybrid, so BEP 47 padding files align each file to
/// a piece (they are in the byte stream, never on disk).
#[test]
fn a_libtorrent_default_folder_torrent_with_padding() {
    round_trip("libtorrent", album(true));
}

/// The largest piece length accepted, 64 MiB: 4096 blocks a piece, more than libtorrent
/// queues (2000), so the blocks of a piece are asked for as earlier ones come.
#[test]
fn a_torrent_with_64_mib_pieces() {
    let root = tempfile::tempdir().unwrap();
    let seed_dir = root.path().join("lt");
    std::fs::create_dir_all(&seed_dir).unwrap();
    let data = test_bytes(130 * MIB + 7, 64);
    std::fs::write(seed_dir.join("big.bin"), &data).unwrap();
    let torrent = root.path().join("big.torrent");
    let file = seed_dir.join("big.bin");
    let made = lt(&["torrent", file.to_str().unwrap(), torrent.to_str().unwrap(), "-", "67108864"]);
    assert!(made.status.success(), "{}", all_output(&made));
    assert_eq!(pieces(&torrent), 3);
    let (_lt, lt_port) = lt_seed(&torrent, &seed_dir, None);
    let dir = root.path().join("ours");
    let text = download_torrent("127.0.0.1:1", &dir, &torrent, lt_port);
    assert_eq!(chunks_from(&text), vec![(lt_port, 3)], "{text}");
    assert!(sha1(&std::fs::read(dir.join("files/big.bin")).unwrap()) == sha1(&data), "bytes differ");
}
