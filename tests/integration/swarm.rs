//! Real peers swarm-downloading files; every test checks the downloaded bytes.

use crate::fake::{counted_lying_peer, Lie};
use crate::helpers::{
    chunk_sources, peer_dir, test_bytes, wait_chunks, wait_until, PeerProc, TrackerProc, IO,
};
use crate::local::{LocalPeer, LocalTracker};
use p2p_share::download::Report;
use p2p_share::hash::ContentId;
use p2p_share::manifest::CHUNK_SIZE;
use p2p_share::wire::conn::Conn;
use p2p_share::wire::peer_msg::{PeerReply, PeerRequest};
use p2p_share::wire::tracker_msg::{FileInfo, TrackerReply, TrackerRequest};
use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

const MIB: usize = CHUNK_SIZE as usize;
const LONG: Duration = Duration::from_secs(60);

fn downloaded(dir: &std::path::Path, name: &str) -> Vec<u8> {
    fs::read(dir.join("files").join(name)).unwrap_or_default()
}

/// Chunks per source of a finished download.
fn per_source(r: &Report) -> Vec<(SocketAddr, u32)> {
    r.assembly.per_source.iter().map(|(a, n)| (*a, *n)).collect()
}

#[test]
fn one_source_to_one_downloader() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(3 * MIB + 12345, 1);
    let src = LocalPeer::start(t.addr, &peer_dir(root.path(), "c1", &[("test.pdf", &data)]));
    let dir = peer_dir(root.path(), "c2", &[]);
    let report = LocalPeer::start(t.addr, &dir).download("test.pdf").unwrap();
    assert_eq!(per_source(&report), vec![(src.addr(), 4)]);
    assert!(downloaded(&dir, "test.pdf") == data, "bytes differ");
    assert!(
        fs::read_dir(dir.join("chunks")).unwrap().all(|e| e.unwrap().file_name() == "manifests"),
        "no partial left"
    );
}

#[test]
fn three_sources_each_contribute() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(12 * MIB, 2);
    let sources: Vec<LocalPeer> = ["c1", "c2", "c3"]
        .iter()
        .map(|name| {
            LocalPeer::limited(t.addr, &peer_dir(root.path(), name, &[("big.bin", &data)]), Some(3 << 20))
        })
        .collect();
    let addrs: Vec<SocketAddr> = sources.iter().map(LocalPeer::addr).collect();
    assert!(wait_until(IO, || t.search("big.bin").first().is_some_and(|l| l.holders.len() == 3)));
    let dir = peer_dir(root.path(), "c4", &[]);
    let report = LocalPeer::start(t.addr, &dir).download("big.bin").unwrap();
    let got = per_source(&report);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|(a, n)| addrs.contains(a) && *n > 0), "{got:?}");
    assert_eq!(got.iter().map(|s| s.1).sum::<u32>(), 12);
    assert!(downloaded(&dir, "big.bin") == data);
}

#[test]
fn late_joiner_and_earlier_downloader_help_each_other() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(16 * MIB, 3);
    let (_origin, origin_port) = PeerProc::serve(
        t.addr,
        &peer_dir(root.path(), "c1", &[("shared.bin", &data)]),
        &["--upload-limit", "2M"],
    );
    let a_dir = peer_dir(root.path(), "c2", &[]);
    let a = PeerProc::spawn(t.addr, &a_dir, &["download", "shared.bin"]);
    let a_port = a.port();
    wait_chunks(&a, "shared.bin", 2, Duration::from_secs(20));
    let b_dir = peer_dir(root.path(), "c3", &[]);
    let b = PeerProc::spawn(t.addr, &b_dir, &["download", "shared.bin"]);
    let b_port = b.port();
    let (a_code, a_out) = a.finish(LONG);
    let (b_code, b_out) = b.finish(LONG);
    assert_eq!((a_code, b_code), (Some(0), Some(0)), "{a_out}\n{b_out}");
    let (a_src, _) = chunk_sources(&a_out);
    let (b_src, _) = chunk_sources(&b_out);
    let from = |src: &[(u16, u32)], port| src.iter().find(|s| s.0 == port).map_or(0, |s| s.1);
    assert!(from(&b_src, a_port) > 0, "the late joiner got chunks from the earlier downloader: {b_src:?}");
    assert!(from(&a_src, b_port) > 0, "the earlier downloader got chunks from the late joiner: {a_src:?}");
    assert!(from(&a_src, origin_port) > 0 && from(&b_src, origin_port) > 0);
    assert!(downloaded(&a_dir, "shared.bin") == data && downloaded(&b_dir, "shared.bin") == data);
}

#[test]
fn source_killed_mid_transfer_download_completes_from_others() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(10 * MIB, 4);
    let (mut doomed, _) =
        PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("f.bin", &data)]), &["--upload-limit", "2M"]);
    let (_survivor, survivor_port) =
        PeerProc::serve(t.addr, &peer_dir(root.path(), "c2", &[("f.bin", &data)]), &["--upload-limit", "2M"]);
    let dir = peer_dir(root.path(), "c3", &[]);
    let d = PeerProc::spawn(t.addr, &dir, &["download", "f.bin"]);
    wait_chunks(&d, "f.bin", 2, Duration::from_secs(20));
    doomed.proc.child.kill().unwrap();
    let _ = doomed.proc.child.wait();
    let (code, out) = d.finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(chunk_sources(&out).0.iter().any(|(p, n)| *p == survivor_port && *n > 0));
    assert!(downloaded(&dir, "f.bin") == data);
}

/// A tracker, an honest peer sharing `name` (6 MiB, capped at 3 MiB/s, so a download
/// takes about two seconds) and a peer that claims the same file and lies as `lie` says.
struct HonestAndLiar {
    t: TrackerProc,
    root: tempfile::TempDir,
    data: Vec<u8>,
    _honest: PeerProc,
    honest_port: u16,
    liar_port: u16,
    /// Chunk and turn requests the liar got.
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn honest_and_liar(name: &str, seed: u64, lie: Lie) -> HonestAndLiar {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(6 * MIB, seed);
    let honest_dir = peer_dir(root.path(), "c1", &[(name, &data)]);
    let manifest = p2p_share::manifest::hash_file(&honest_dir.join("files").join(name), name, true).unwrap();
    let (_honest, honest_port) = PeerProc::serve(t.addr, &honest_dir, &["--upload-limit", "3M"]);
    let info =
        FileInfo { name: manifest.name.clone(), size: manifest.size, content_id: manifest.content_id() };
    let (liar_port, asked) = counted_lying_peer(t.addr, info, manifest.to_ini(), lie);
    HonestAndLiar { t, root, data, _honest, honest_port, liar_port, asked }
}

#[test]
fn a_peer_always_busy_cannot_make_a_downloader_spin() {
    // It answers every chunk request: "my line is full, ask again right away".
    let s = honest_and_liar("b.bin", 9, Lie::Busy);
    let dir = peer_dir(s.root.path(), "c2", &[]);
    let started = std::time::Instant::now();
    let (code, out) = PeerProc::spawn(s.t.addr, &dir, &["download", "b.bin"]).finish(LONG);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(chunk_sources(&out).0, vec![(s.honest_port, 6)]);
    assert!(downloaded(&dir, "b.bin") == s.data);
    // It said it takes turns, so after its first `busy` it is asked for a turn; a `busy`
    // for the chunk asked in that turn breaks the protocol and drops it until its back-off
    // (2 s, doubling) ends: a handful of requests, where asking again at once would be
    // tens of thousands in the two seconds the honest peer takes.
    let asked = s.asked.load(std::sync::atomic::Ordering::Relaxed);
    // Four per attempt (two chunks, a turn, a chunk), an attempt at most every 2 s.
    let bound = 4 * (2 + took.as_secs() as usize / 2);
    assert!(asked <= bound, "asked {asked} times in {took:?}");
}

#[test]
fn corrupt_source_is_detected_and_file_is_still_correct() {
    let s = honest_and_liar("x.bin", 5, Lie::Corrupt);
    let (liar_port, honest_port) = (s.liar_port, s.honest_port);
    let dir = peer_dir(s.root.path(), "c2", &[]);
    let (code, out) = PeerProc::spawn(s.t.addr, &dir, &["download", "x.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("failed its SHA-1 check"), "{out}");
    assert!(out.contains(&format!("source 127.0.0.1:{liar_port} dropped after 3 chunks")), "{out}");
    assert_eq!(chunk_sources(&out).0, vec![(honest_port, 6)], "no chunk from the liar was kept");
    assert!(downloaded(&dir, "x.bin") == s.data);
}

#[test]
fn killed_downloader_resumes_with_only_missing_chunks() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(12 * MIB, 6);
    let (_src, _) =
        PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("r.bin", &data)]), &["--upload-limit", "3M"]);
    let dir = peer_dir(root.path(), "c2", &[]);
    let first = PeerProc::spawn(t.addr, &dir, &["download", "r.bin"]);
    wait_chunks(&first, "r.bin", 5, Duration::from_secs(30));
    // Kill it once its have-hint on disk names at least 4 chunks.
    assert!(wait_until(Duration::from_secs(10), || have_on_disk(&dir) >= 4), "no have-hint saved");
    first.proc.signal("-KILL");
    let _ = first.finish(IO);
    let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", "r.bin"]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    let (sources, resumed) = chunk_sources(&out);
    let fetched: u32 = sources.iter().map(|s| s.1).sum();
    assert!(resumed >= 4, "resumed {resumed} chunks\n{out}");
    assert_eq!(fetched + resumed, 12, "only the missing chunks were fetched again");
    assert!(downloaded(&dir, "r.bin") == data);
}

#[test]
fn two_files_download_at_once() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let a = test_bytes(4 * MIB + 7, 7);
    let b = test_bytes(4 * MIB + 9, 8);
    // A slow source (8 MiB/s for both files) makes each download last about a second, so
    // two downloads one after the other could not overlap.
    let (_src, _) = PeerProc::serve(
        t.addr,
        &peer_dir(root.path(), "c1", &[("a.bin", &a), ("b.bin", &b)]),
        &["--upload-limit", "8M"],
    );
    let dir = peer_dir(root.path(), "c2", &[]);
    let csv = root.path().join("timeline.csv");
    let args = ["download", "a.bin", "b.bin", "--timeline", csv.to_str().unwrap()];
    let (code, out) = PeerProc::spawn(t.addr, &dir, &args).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("Download time is: ").count(), 2);
    assert!(downloaded(&dir, "a.bin") == a && downloaded(&dir, "b.bin") == b);
    // Both were in flight at once: each file's chunks arrived before the other's last.
    let span = |name: &str| {
        let times: Vec<f64> = fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| l.starts_with(&format!("{name},")))
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect();
        assert_eq!(times.len(), 5, "{name}: one timeline row per chunk");
        (times.iter().cloned().fold(f64::MAX, f64::min), times.iter().cloned().fold(0.0, f64::max))
    };
    let ((a_first, a_last), (b_first, b_last)) = (span("a.bin"), span("b.bin"));
    assert!(
        a_first < b_last && b_first < a_last,
        "the downloads ran one after the other: a.bin {a_first:.2}-{a_last:.2} s, b.bin {b_first:.2}-{b_last:.2} s"
    );
}

#[test]
fn two_different_files_with_the_same_name() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let one = test_bytes(MIB + 1, 9);
    let two = test_bytes(MIB + 2, 10);
    let (_p1, port1) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("same.txt", &one)]), &[]);
    let (_p2, _) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c2", &[("same.txt", &two)]), &[]);
    let search = || t.conn().call::<_, TrackerReply>(&TrackerRequest::Search { name: "same.txt".into() });
    assert!(wait_until(IO, || matches!(search(), Ok(TrackerReply::Files { files, .. }) if files.len() == 2)));

    let d1 = peer_dir(root.path(), "c3", &[]);
    let (code, out) =
        PeerProc::spawn(t.addr, &d1, &["download", "same.txt", "--from", &port1.to_string()]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(downloaded(&d1, "same.txt") == one, "--from picks that peer's file");

    let d2 = peer_dir(root.path(), "c4", &[]);
    let (code, out) = PeerProc::spawn(t.addr, &d2, &["download", "same.txt"]).finish(LONG);
    assert_eq!(code, Some(1));
    assert!(out.contains("several different files are named 'same.txt'"), "{out}");
    let id2 = p2p_share::manifest::hash_file(&root.path().join("c2/files/same.txt"), "same.txt", true)
        .unwrap()
        .content_id();
    let (code, out) = PeerProc::spawn(t.addr, &d2, &["download", &id2.to_hex()]).finish(LONG);
    assert_eq!(code, Some(0), "{out}");
    assert!(downloaded(&d2, "same.txt") == two, "chunks of the two files never mix");
}

#[test]
fn hostile_names_are_refused_and_nothing_is_written_outside_dir() {
    let t = TrackerProc::start(&[]);
    let root = tempfile::tempdir().unwrap();
    let (_src, port) = PeerProc::serve(t.addr, &peer_dir(root.path(), "c1", &[("ok.bin", b"fine")]), &[]);
    let dir = peer_dir(root.path(), "c2", &[]);
    for name in ["../x", "/etc/passwd", "a/../../b", "a\u{1}b", ".."] {
        let (code, out) = PeerProc::spawn(t.addr, &dir, &["download", name]).finish(LONG);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.contains("invalid file name"), "{name}: {out}");
    }
    // The same names asked of a peer server directly.
    let mut conn = Conn::connect(SocketAddr::from(([127, 0, 0, 1], port)), IO).unwrap();
    for name in ["../x", "/etc/passwd", "a/../../b", "a\0b", "../../../../etc/shadow"] {
        let r: PeerReply =
            conn.call(&PeerRequest::Manifest { content_id: None, name: Some(name.into()) }).unwrap();
        assert!(
            matches!(r, PeerReply::Error { ref reason } if reason.contains("invalid file name")),
            "{name}: {r:?}"
        );
    }
    let r: PeerReply =
        conn.call(&PeerRequest::Manifest { content_id: None, name: Some("missing.bin".into()) }).unwrap();
    assert!(matches!(r, PeerReply::Error { ref reason } if reason.contains("not shared")), "{r:?}");
    let id = ContentId::of(b"nothing");
    let r: PeerReply = conn.call(&PeerRequest::Chunk { content_id: id, index: 0 }).unwrap();
    assert!(matches!(r, PeerReply::Error { ref reason } if reason.contains("not shared")), "{r:?}");
    let mut top: Vec<String> =
        fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, vec!["c1", "c2"], "nothing written beside the peer folders");
    assert!(fs::read_dir(dir.join("files")).unwrap().next().is_none());
}

#[test]
fn chunk_index_out_of_range_is_refused() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(MIB + 5, 11);
    let d = peer_dir(root.path(), "c1", &[("r.bin", &data)]);
    let src = LocalPeer::start(t.addr, &d);
    let id = p2p_share::manifest::hash_file(&d.join("files/r.bin"), "r.bin", true).unwrap().content_id();
    let mut conn = Conn::connect(src.addr(), IO).unwrap();
    let r: PeerReply = conn.call(&PeerRequest::Chunk { content_id: id, index: 2 }).unwrap();
    assert!(matches!(r, PeerReply::Error { ref reason } if reason.contains("out of range")), "{r:?}");
    let r: PeerReply = conn.call(&PeerRequest::Chunk { content_id: id, index: 1 }).unwrap();
    assert_eq!(r, PeerReply::Chunk { index: 1, len: 5 }, "the connection keeps serving");
}

#[test]
fn file_added_while_running_is_listed_within_two_seconds() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let d = peer_dir(root.path(), "c1", &[]);
    let _p = LocalPeer::start(t.addr, &d);
    fs::write(d.join("files/new.txt"), b"fresh").unwrap();
    let listed = wait_until(
        Duration::from_secs(2),
        || matches!(t.conn().call::<_, TrackerReply>(&TrackerRequest::ListFiles), Ok(TrackerReply::Files { files, .. }) if files.iter().any(|f| f.info.name == "new.txt")),
    );
    assert!(listed, "a new file is listed by the tracker within 2 s");
    fs::remove_file(d.join("files/new.txt")).unwrap();
    let gone = wait_until(
        Duration::from_secs(2),
        || matches!(t.conn().call::<_, TrackerReply>(&TrackerRequest::ListFiles), Ok(TrackerReply::Files { files, .. }) if files.is_empty()),
    );
    assert!(gone, "a removed file leaves the index");
}

/// How many chunks the have-hint of the (one) partial download in `dir` names.
fn have_on_disk(dir: &std::path::Path) -> u32 {
    let Ok(entries) = fs::read_dir(dir.join("chunks")) else { return 0 };
    entries
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("have")).ok())
        .map(|hex| {
            (0..hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
                .map(u8::count_ones)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// A flash crowd at a capped seeder: six downloaders start at once. Super-seeding makes
/// the seeder send each chunk to the swarm once before it sends any twice; the downloaders
/// trade the rest among themselves. Checked on the chunks as they arrived from the seeder,
/// in time order across the crowd: the first 12 (one copy of the file) are 12 different
/// chunks, even the ones the first downloader asked for while it was alone (a request
/// from such a stale offer is turned away, `Elsewhere`).
/// (With super-seeding off, 2-4 of the first 12 were repeats in three runs, and the seeder
/// sent 16-21 chunks in all.)
#[test]
fn a_capped_seeder_in_a_crowd_sends_each_chunk_once_before_any_twice() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(12 * MIB, 9);
    let rate = Some(3 << 20);
    let seed = LocalPeer::limited(t.addr, &peer_dir(root.path(), "seed", &[("crowd.bin", &data)]), rate);
    assert!(wait_until(IO, || !t.search("crowd.bin").is_empty()));
    let crowd: Vec<(LocalPeer, std::path::PathBuf)> = (0..6)
        .map(|i| {
            let dir = peer_dir(root.path(), &format!("d{i}"), &[]);
            (LocalPeer::limited(t.addr, &dir, rate), dir)
        })
        .collect();
    let reports: Vec<Report> = std::thread::scope(|s| {
        let running: Vec<_> = crowd.iter().map(|(p, _)| s.spawn(|| p.download("crowd.bin"))).collect();
        running.into_iter().map(|h| h.join().unwrap().expect("download")).collect()
    });
    for (_, dir) in &crowd {
        assert!(downloaded(dir, "crowd.bin") == data, "{dir:?}: bytes differ");
    }
    // (when, chunk) of every chunk that came from the seeder, on one clock.
    let mut from_seed: Vec<(std::time::Instant, u32)> = reports
        .iter()
        .flat_map(|r| {
            let start = r.assembly.started.expect("a start time");
            r.assembly
                .timeline
                .iter()
                .filter(|(_, _, src)| *src == seed.addr())
                .map(move |(chunk, secs, _)| (start + Duration::from_secs_f64(*secs), *chunk))
        })
        .collect();
    from_seed.sort();
    let first_copy: Vec<u32> = from_seed.iter().take(12).map(|(_, c)| *c).collect();
    let mut distinct = first_copy.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(
        distinct.len() == 12,
        "the seeder's first 12 chunks were {first_copy:?} ({} sent in all)",
        from_seed.len()
    );
}
