//! libtorrent and p2p-share agree on identity and exchange files both ways.

use p2p_share::manifest::hash_file;
use std::path::Path;
use std::process::Command;

/// Runs `lt.py ARGS` with the system Python (where the Debian binding lives).
fn lt(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let out = Command::new("/usr/bin/python3").arg(script).args(args).output().expect("run /usr/bin/python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named 'libtorrent'"),
        "libtorrent is missing: apt-get install python3-libtorrent (the .ci/run script does)"
    );
    out
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn the_content_id_is_the_info_hash_libtorrent_computes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("one.bin", 1), ("exact.bin", 2 << 20), ("odd size.dat", 3 * (1 << 20) + 7)] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes(len, len as u64)).unwrap();
        let out = lt(&["infohash", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let ours = hash_file(&path, name, true).unwrap().content_id();
        assert_eq!(ours.to_hex(), theirs, "{name} ({len} bytes)");
    }
}
