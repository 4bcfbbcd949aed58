//! Folders: one put into `DIR/files/` is shared as one torrent of its files and fetched by
//! another p2p-share peer in our protocol; a torrent whose paths are hostile is refused
//! with one line, and nothing is written anywhere.

use crate::helpers::{peer_dir, test_bytes, PeerProc, TrackerProc};
use p2p_share::hash::Sha1Hash;
use p2p_share::info_dict::canonical_folder;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// Every file below `dir`, as (path, bytes), in path order; links are listed as links.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                walk(&e.path(), &format!("{name}/"), out);
            } else if kind.is_symlink() {
                out.push((format!("{name} (link)"), Vec::new()));
            } else {
                out.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    walk(dir, "", &mut out);
    out.sort();
    out
}

#[test]
fn a_folder_in_files_is_shared_as_one_torrent_and_fetched_in_our_protocol() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let src = peer_dir(root.path(), "c1", &[]);
    let album = src.join("files/album");
    std::fs::create_dir_all(album.join("disc 2")).unwrap();
    std::fs::write(album.join("notes.txt"), b"liner notes").unwrap();
    std::fs::write(album.join("01.flac"), test_bytes(2 * 1024 * 1024 + 3, 1)).unwrap();
    std::fs::write(album.join("disc 2/01.flac"), test_bytes(1024 * 1024 - 1, 2)).unwrap();
    std::fs::write(album.join("disc 2/empty.cue"), b"").unwrap();
    // A link inside points out of DIR: it is left out, never followed.
    let secret = root.path().join("secret.txt");
    std::fs::write(&secret, b"not for sharing").unwrap();
    std::os::unix::fs::symlink(&secret, album.join("disc 2/secret.txt")).unwrap();
    let (seeder, _port) = PeerProc::serve(t.addr, &src, &[]);
    seeder.proc.wait_for_line("leaving out disc 2/secret.txt", LONG);

    let (code, list) = PeerProc::spawn(t.addr, &peer_dir(root.path(), "lister", &[]), &["list"]).finish(LONG);
    assert_eq!(code, Some(0), "{list}");
    assert!(list.contains("album : "), "listed under its name:\n{list}");

    let dst = peer_dir(root.path(), "c2", &[]);
    let (code, text) = PeerProc::spawn(t.addr, &dst, &["download", "album"]).finish(LONG);
    assert_eq!(code, Some(0), "{text}");
    let mut want = tree(&album);
    want.retain(|(p, _)| !p.ends_with("(link)"));
    assert_eq!(tree(&dst.join("files/album")), want, "every file, the empty one too, and no link");
    assert!(text.contains("Chunks: 4 from"), "1 MiB pieces across the files:\n{text}");
}

/// A `.torrent` of one folder whose files have these paths.
fn torrent_with(paths: &[&[&str]]) -> Vec<u8> {
    let files: Vec<(Vec<String>, u64)> =
        paths.iter().map(|p| (p.iter().map(|c| c.to_string()).collect(), 5)).collect();
    let total = 5 * paths.len() as u64;
    let pieces = vec![Sha1Hash::of(b"x"); total.div_ceil(16384) as usize];
    let info = canonical_folder("evil", &files, 16384, &pieces);
    [b"d4:info".as_slice(), &info, b"e"].concat()
}

#[test]
fn a_torrent_with_a_hostile_path_is_refused_with_one_line_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let dir = peer_dir(root.path(), "c1", &[]);
    let cases: [(&[&[&str]], &str); 9] = [
        (&[&["..", "..", "escaped"]], "names a folder"),
        (&[&["ok", "..", "..", "x"]], "names a folder"),
        (&[&["/etc", "passwd"]], "path separator"),
        (&[&["a/../../b"]], "path separator"),
        (&[&[""]], "empty"),
        (&[&["."]], "names a folder"),
        (&[&["nul\0byte"]], "NUL"),
        (&[&["Song.mp3"], &["song.MP3"]], "collide"),
        (&[&["a"], &["a", "b"]], "collide"),
    ];
    for (i, (paths, expected)) in cases.iter().enumerate() {
        let file = root.path().join(format!("evil{i}.torrent"));
        std::fs::write(&file, torrent_with(paths)).unwrap();
        let (code, text) = PeerProc::spawn_to(
            "127.0.0.1:1",
            &dir,
            &["download", file.to_str().unwrap(), "--peer", "127.0.0.1:1"],
        )
        .finish(LONG);
        assert_eq!(code, Some(1), "{paths:?}: {text}");
        let err =
            text.lines().find(|l| l.starts_with("peer: ")).unwrap_or_else(|| panic!("{paths:?}: {text}"));
        assert!(err.contains(expected), "{paths:?}: {err}");
    }
    let deep: Vec<&str> = vec!["d"; 40];
    std::fs::write(root.path().join("deep.torrent"), torrent_with(&[&deep])).unwrap();
    let (code, text) = PeerProc::spawn_to(
        "127.0.0.1:1",
        &dir,
        &["download", root.path().join("deep.torrent").to_str().unwrap()],
    )
    .finish(LONG);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("deeper than"), "{text}");
    assert!(tree(&dir.join("files")).is_empty(), "nothing in files/");
    let outside: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".torrent") && n != "c1")
        .collect();
    assert!(outside.is_empty(), "nothing written beside DIR: {outside:?}");
    assert!(
        !dir.join("chunks").exists() || tree(&dir.join("chunks")).iter().all(|(p, _)| !p.contains("escaped"))
    );
}
