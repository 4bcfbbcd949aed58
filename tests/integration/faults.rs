//! Faults: the tracker restarting under a swarm, Ctrl+C, a disk that fills up.

use crate::helpers::{listed, peer_dir, test_bytes, wait_chunks, wait_until, PeerProc, TrackerProc, IO};
use std::fs;
use std::process::Command;
use std::time::Duration;

const MIB: usize = 1 << 20;

#[test]
fn tracker_restart_mid_swarm_download_goes_on_and_peers_reregister() {
    let t = TrackerProc::start(&["--announce-interval", "1"]);
    let bind = t.addr.to_string();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(10 * MIB, 31);
    let (_src, _) =
        PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("f.bin", &data)]), &["--upload-limit", "2M"]);
    let dir = peer_dir(root.path(), "c2", &[]);
    let d = PeerProc::spawn(t.addr, &dir, &["download", "f.bin", "--stay"]);
    wait_chunks(&d, "f.bin", 2, Duration::from_secs(20));
    drop(t); // killed
             // The downloader noticed (its heartbeat failed) before the tracker comes back.
    d.proc.wait_for_line("tracker unreachable", Duration::from_secs(5));
    let t = TrackerProc::start_on(&bind, &["--announce-interval", "1"]);
    d.proc.wait_for_line("Download time is: ", Duration::from_secs(60));
    assert!(fs::read(dir.join("files/f.bin")).unwrap() == data, "the download went on peer to peer");
    let back = wait_until(Duration::from_secs(3), || listed(&t, "f.bin") == 2);
    assert!(back, "both peers re-registered within two announce intervals and list again");
    t.proc.wait_for_line("There are 2 clients now", IO);
}

#[test]
fn ctrl_c_tells_the_tracker_the_peer_leaves() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let (mut p, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("a.txt", b"a")]), &[]);
    assert!(wait_until(IO, || listed(&t, "a.txt") == 1));
    p.proc.signal("-INT");
    assert_eq!(p.proc.wait_exit(IO), Some(0));
    t.proc.wait_for_line(&format!("Peer {port} removed!"), IO);
    assert_eq!(listed(&t, "a.txt"), 0);
}

#[test]
fn ctrl_c_during_a_download_stops_it_at_once_keeps_its_chunks_and_tells_the_tracker() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(8 * MIB, 32);
    let (_src, _) = PeerProc::serve(
        t.addr,
        &peer_dir(root.path(), "c1", &[("slow.bin", &data)]),
        &["--upload-limit", "1M"],
    );
    let dir = peer_dir(root.path(), "c2", &[]);
    let mut d = PeerProc::spawn(t.addr, &dir, &["download", "slow.bin"]);
    let port = d.port();
    wait_chunks(&d, "slow.bin", 2, Duration::from_secs(20));
    d.proc.signal("-INT");
    let asked = std::time::Instant::now();
    // The whole file takes 8 s at this rate; stopped, the command ends at once.
    let code = d.proc.wait_exit(Duration::from_secs(5));
    let took = asked.elapsed();
    let out = d.proc.output();
    assert_eq!(code, Some(130), "{out}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(out.contains("download of 'slow.bin' stopped") && out.contains("chunks kept"), "{out}");
    assert!(!out.contains("Download time is"), "{out}");
    // The tracker heard the peer leave; the chunks are there for the next run.
    t.proc.wait_for_line(&format!("Peer {port} removed!"), IO);
    let again = PeerProc::spawn(t.addr, &dir, &["download", "slow.bin"]);
    let line = again.proc.wait_for_line("Chunks: ", Duration::from_secs(30));
    assert!(line.contains("resumed from disk"), "{line}");
    assert!(fs::read(dir.join("files/slow.bin")).unwrap() == data);
}

/// Mounts a tmpfs of `mib` MiB at `path` (needs root); false where that is not possible.
fn mount_tmpfs(path: &std::path::Path, mib: u32) -> bool {
    fs::create_dir_all(path).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs", path.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root to mount a read-only tmpfs; `make test-privileged` runs it (CI does)"]
fn a_read_only_files_folder_is_refused_before_the_first_byte() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(8 * MIB, 33);
    let (_src, _) = PeerProc::serve(
        t.addr,
        &peer_dir(root.path(), "c1", &[("ro.bin", &data)]),
        &["--upload-limit", "1M"],
    );
    let dir = peer_dir(root.path(), "c2", &[]);
    let files = dir.join("files");
    assert!(mount_tmpfs(&files, 16), "cannot mount a tmpfs here: this test needs root");
    let _unmount = Unmount(files.clone());
    let ro = Command::new("mount").args(["-o", "remount,ro"]).arg(&files).status().unwrap();
    assert!(ro.success());
    // At 1 MiB/s the whole file takes 8 s: refused before it, nothing fetched.
    let started = std::time::Instant::now();
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "ro.bin"]).finish(Duration::from_secs(30));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot write into") && out.contains("nothing was downloaded"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(!out.contains("Chunks"), "{out}");
}

#[test]
#[ignore = "needs root to mount a small tmpfs; `make test-privileged` runs it (CI does)"]
fn full_disk_gives_a_clear_error_keeps_partial_and_resumes_after_space_is_freed() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(8 * MIB, 32);
    let (_src, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("big.bin", &data)]), &[]);
    let small = root.path().join("small");
    assert!(mount_tmpfs(&small, 5), "cannot mount a tmpfs here: this test needs root");
    let _unmount = Unmount(small.clone());
    let (code, out) =
        PeerProc::spawn(t.addr, &small, &["download", "big.bin"]).finish(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{out}");
    let err = out
        .lines()
        .find(|l| l.starts_with("peer: big.bin: "))
        .unwrap_or_else(|| panic!("no error line:\n{out}"));
    assert!(
        err.contains("data.part: No space left on device") && err.ends_with("(partial download kept)"),
        "{err}"
    );
    let partial: Vec<_> = fs::read_dir(small.join("chunks"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != "manifests")
        .collect();
    assert_eq!(partial.len(), 1, "the partial state is kept");
    assert!(partial[0].path().join("data.part").exists() && partial[0].path().join("file.ini").exists());
    assert!(!small.join("files/big.bin").exists(), "nothing half-written under the final name");

    let grown = Command::new("mount").args(["-o", "remount,size=32m"]).arg(&small).status().unwrap();
    assert!(grown.success());
    let (code, out) =
        PeerProc::spawn(t.addr, &small, &["download", "big.bin"]).finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(fs::read(small.join("files/big.bin")).unwrap() == data);
}

#[test]
fn the_from_peer_leaving_mid_download_leaves_it_to_the_other_holders() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(8 * MIB, 34);
    let capped = ["--upload-limit", "1M"];
    let (first, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("f.bin", &data)]), &capped);
    let (_other, other_port) =
        PeerProc::serve(t.addr, &peer_dir(root.path(), "c2", &[("f.bin", &data)]), &capped);
    assert!(wait_until(IO, || listed(&t, "f.bin") == 2));
    let dir = peer_dir(root.path(), "c3", &[]);
    let d = PeerProc::spawn(t.addr, &dir, &["download", "f.bin", "--from", &port.to_string()]);
    wait_chunks(&d, "f.bin", 2, Duration::from_secs(20));
    drop(first); // the --from peer is killed
    let (code, out) = d.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(fs::read(dir.join("files/f.bin")).unwrap() == data);
    let line = out.lines().find(|l| l.starts_with("Chunks: ")).unwrap_or_default();
    assert!(line.contains(&format!("from {other_port}")), "the other holder took over: {line}");
}
