//! Transfers: one source to one downloader (1 GiB, vs a plain TCP copy of the same file in
//! the same run), the downloader's peak memory, swarm efficiency under upload caps, and
//! manifest hashing with rayon vs one thread.

use crate::mb_per_s;
use p2p_share::manifest::{hash_file, CHUNK_SIZE};
use p2p_share::tracker::{Tracker, TrackerOptions};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = CHUNK_SIZE;

/// Writes `size` bytes where every chunk differs (a counter in each 4 KiB block).
pub fn make_file(path: &Path, size: u64) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(MIB as usize, File::create(path)?);
    let mut block = crate::support::test_bytes(4096, 0x2545_F491_4F6C_DD1D);
    for n in 0..size / 4096 {
        block[..8].copy_from_slice(&n.to_le_bytes());
        w.write_all(&block)?;
    }
    w.flush()?;
    w.get_ref().sync_all()
}

/// The fastest honest TCP copy of `src` to `dst` over loopback this bench knows: the
/// sender uses sendfile(2), the receiver writes what each read into a 4 MiB buffer got;
/// with `sync`, one fsync at the end, as a download does.
fn plain_copy(src: &Path, dst: &Path, sync: bool) -> io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let dst = dst.to_path_buf();
    let receiver = thread::spawn(move || -> io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut out = File::create(&dst)?;
        let mut buf = vec![0u8; 4 << 20];
        // Each read is written at once. Filling the whole buffer before writing made this
        // copy 2-5x slower (receiving and writing took turns instead of overlapping; the
        // same pattern in Python is as slow).
        loop {
            match s.read(&mut buf)? {
                0 => break,
                n => out.write_all(&buf[..n])?,
            }
        }
        if sync {
            out.sync_all()?;
        }
        Ok(())
    });
    let start = Instant::now();
    let s = TcpStream::connect(addr)?;
    let file = File::open(src)?;
    let len = file.metadata()?.len() as usize;
    let mut off: i64 = 0;
    while (off as usize) < len {
        let left = len - off as usize;
        match nix::sys::sendfile::sendfile64(&s, &file, Some(&mut off), left) {
            Ok(0) => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    drop(s);
    receiver.join().expect("receiver thread")?;
    Ok(start.elapsed())
}

/// The same copy in Python (`socket.sendfile`, `recv_into` a 4 MiB buffer, one fsync), as a
/// second opinion on the baseline; `None` when python3 is missing.
fn python_copy(src: &Path, dst: &Path) -> Option<Duration> {
    let script = r#"
import os, socket, sys, threading, time
src, dst = sys.argv[1], sys.argv[2]
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
def recv():
    c, _ = l.accept(); buf = bytearray(4 << 20); mv = memoryview(buf)
    with open(dst, "wb") as f:
        while True:
            n = c.recv_into(mv)
            if not n: break
            f.write(mv[:n])
        f.flush(); os.fsync(f.fileno())
t = threading.Thread(target=recv); t.start()
t0 = time.perf_counter()
s = socket.create_connection(l.getsockname())
with open(src, "rb") as f: s.sendfile(f)
s.close(); t.join()
print(time.perf_counter() - t0)
"#;
    let out = std::process::Command::new("python3").args(["-c", script]).arg(src).arg(dst).output().ok()?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

pub struct Swarm {
    pub tracker: SocketAddr,
    pub root: tempfile::TempDir,
    pub children: Vec<Child>,
}

impl Swarm {
    pub fn new() -> Swarm {
        let opts = TrackerOptions { bind: "127.0.0.1:0".parse().unwrap(), ..TrackerOptions::default() };
        let tracker = Tracker::bind(opts).expect("bind tracker");
        let addr = tracker.local_addr();
        thread::spawn(move || tracker.run());
        Swarm {
            tracker: addr,
            root: tempfile::tempdir_in(".").or_else(|_| tempfile::tempdir()).unwrap(),
            children: Vec::new(),
        }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.root.path().join(name);
        fs::create_dir_all(d.join("files")).unwrap();
        d
    }

    /// Starts `peer serve` in `dir` and waits until the tracker lists `file` from it.
    fn source(&mut self, dir: &Path, limit: Option<&str>) {
        let limit: Vec<&str> = limit.map(|l| vec!["--upload-limit", l]).unwrap_or_default();
        self.source_args(dir, &limit);
    }

    /// Starts `peer ARGS... serve` in `dir`.
    pub fn source_args(&mut self, dir: &Path, args: &[&str]) {
        self.source_args_with(Path::new(env!("CARGO_BIN_EXE_peer")), dir, args);
    }

    /// [`source_args`](Self::source_args) with another build of the peer (A/B runs).
    pub fn source_args_with(&mut self, peer: &Path, dir: &Path, args: &[&str]) {
        let mut cmd = peer_cmd_of(peer, self.tracker, dir);
        cmd.args(args).arg("serve").stdout(Stdio::null()).stderr(Stdio::null());
        self.children.push(cmd.spawn().expect("start source"));
    }

    pub fn wait_holders(&self, name: &str, n: usize) {
        use p2p_share::wire::conn::Conn;
        use p2p_share::wire::tracker_msg::{TrackerReply, TrackerRequest};
        for _ in 0..600 {
            let mut c = Conn::connect(self.tracker, Duration::from_secs(5)).unwrap();
            if let Ok(TrackerReply::Files { files, .. }) =
                c.call(&TrackerRequest::Search { name: name.into() })
            {
                if files.first().is_some_and(|f| f.holders.len() >= n) {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("sources never announced {name}");
    }

    /// Waits until the tracker lists `name` under content id `id`.
    fn wait_for_id(&self, name: &str, id: p2p_share::hash::ContentId) {
        use p2p_share::wire::conn::Conn;
        use p2p_share::wire::tracker_msg::{TrackerReply, TrackerRequest};
        for _ in 0..600 {
            let mut c = Conn::connect(self.tracker, Duration::from_secs(5)).unwrap();
            if let Ok(TrackerReply::Files { files, .. }) =
                c.call(&TrackerRequest::Search { name: name.into() })
            {
                if files.iter().any(|f| f.info.content_id == id && !f.holders.is_empty()) {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("nobody announced {name} as {id}");
    }

    /// Runs `peer download` in `dir`; returns (seconds it reports, peak RSS in KiB).
    fn download(&self, dir: &Path, name: &str) -> (f64, u64) {
        self.download_args(dir, &[name])
    }

    /// Runs `peer download ARGS...` in `dir`.
    fn download_args(&self, dir: &Path, args: &[&str]) -> (f64, u64) {
        let (secs, _, peak) = self.download_timed(dir, args);
        (secs, peak)
    }

    /// Runs `peer download ARGS...`; returns (seconds it reports, seconds the whole process
    /// took from spawn to exit, peak RSS in KiB).
    fn download_timed(&self, dir: &Path, args: &[&str]) -> (f64, f64, u64) {
        let mut cmd = peer_cmd(self.tracker, dir);
        cmd.arg("download").args(args).stdout(Stdio::piped()).stderr(Stdio::null());
        let started = Instant::now();
        let mut child = cmd.spawn().expect("start downloader");
        let pid = child.id();
        let mut peak = 0;
        let mut polls = 0u32;
        while child.try_wait().unwrap().is_none() {
            if polls.is_multiple_of(10) {
                peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
            }
            polls += 1;
            thread::sleep(Duration::from_millis(2));
        }
        let whole = started.elapsed().as_secs_f64();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "download failed:\n{text}");
        let secs = text
            .lines()
            .find_map(|l| l.strip_prefix("Download time is: ")?.split(' ').next()?.parse().ok())
            .expect("a download time");
        (secs, whole, peak)
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn peer_cmd(tracker: SocketAddr, dir: &Path) -> Command {
    peer_cmd_of(Path::new(env!("CARGO_BIN_EXE_peer")), tracker, dir)
}

/// [`peer_cmd`] with another build of the peer.
pub fn peer_cmd_of(peer: &Path, tracker: SocketAddr, dir: &Path) -> Command {
    let mut cmd = Command::new(peer);
    cmd.args([
        "--tracker",
        &tracker.to_string(),
        "--dir",
        dir.to_str().unwrap(),
        "--port",
        "0",
        "--log-level",
        "warn",
    ]);
    cmd
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Rounds of each 1 GiB measurement; the median is reported (the disk is noisy).
const ROUNDS: usize = 3;

/// The median of `xs` and its range, as "median (min-max)".
fn median_range(mut xs: Vec<f64>) -> (f64, String) {
    xs.sort_by(f64::total_cmp);
    let med = xs[xs.len() / 2];
    (med, format!("{med:>7.1} MB/s  ({:.0}-{:.0})", xs[0], xs[xs.len() - 1]))
}

pub fn one_to_one() {
    let mut swarm = Swarm::new();
    let size = 1024 * MIB;
    let src = swarm.dir("c1");
    let file = src.join("files/big.bin");
    make_file(&file, size).expect("make 1 GiB file");
    let copy_target = swarm.root.path().join("plain-copy.bin");
    swarm.source(&src, None);
    swarm.wait_holders("big.bin", 1);
    let (mut synced, mut loose, mut python) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours, mut reported, mut peak_kib) = (Vec::new(), Vec::new(), 0);
    // Round by round, each contender starts on a quiet disk: the dirty pages of the one
    // before are written out first. The order turns each round, because this virtual
    // disk is slowest for the first big write after a pause.
    for round in 0..ROUNDS {
        for step in 0..4 {
            nix::unistd::sync();
            match (step + round) % 4 {
                0 => synced.push(mb_per_s(size, plain_copy(&file, &copy_target, true).expect("plain copy"))),
                1 => loose.push(mb_per_s(size, plain_copy(&file, &copy_target, false).expect("plain copy"))),
                2 => python.extend(python_copy(&file, &copy_target).map(|t| mb_per_s(size, t))),
                _ => {
                    let dir = swarm.dir(&format!("down{round}"));
                    let (secs, whole, peak) = swarm.download_timed(&dir, &["big.bin"]);
                    ours.push(size as f64 / 1e6 / whole);
                    reported.push(size as f64 / 1e6 / secs);
                    peak_kib = peak_kib.max(peak);
                    let _ = fs::remove_dir_all(&dir);
                }
            }
            let _ = fs::remove_file(&copy_target);
        }
    }
    let (synced, synced_text) = median_range(synced);
    let (loose, loose_text) = median_range(loose);
    let (rate, ours_text) = median_range(ours);
    println!(
        "transfer: 1 GiB, one source to one downloader, loopback, no limits; median of {ROUNDS} (range)"
    );
    println!("  TCP copy (sendfile, write per read), synced {synced_text}");
    println!("  the same, not synced                 {loose_text}");
    let mut baseline = synced;
    if !python.is_empty() {
        let (py, py_text) = median_range(python);
        let faster = if py > synced { "Python" } else { "Rust" };
        println!("  the same in Python, synced           {py_text}  (the {faster} copy is faster)");
        baseline = baseline.max(py);
    }
    println!("  p2p-share download, whole process    {ours_text}");
    println!("  (as it reports, without start-up)    {}", median_range(reported).1);
    println!(
        "  ratio to the faster synced copy {:.2} (target 0.8), to the unsynced copy {:.2}",
        rate / baseline,
        rate / loose
    );
    println!("  downloader peak RSS                  {:>7.1} MiB", peak_kib as f64 / 1024.0);
    match libtorrent_rate(&swarm, &file, size) {
        Some((lt, text)) => println!(
            "  libtorrent to libtorrent, whole process {text}\n  p2p-share / libtorrent {:.2} (target at least 1.5)",
            rate / lt
        ),
        None => println!("  libtorrent: not installed"),
    }
    hashing(&file, size);
}

/// A big file: 8 GiB from one source, against 1 GiB from the same source in the same run
/// (both sparse files, so both hash and send the same kind of bytes); the scheduler and
/// buffers must not grow with the file. Whole processes, synced, median of the rounds.
pub fn big_file() {
    let mut swarm = Swarm::new();
    let src = swarm.dir("src");
    let sizes = [(1u64 << 30, "1 GiB", "one.bin", ROUNDS), (8u64 << 30, "8 GiB", "eight.bin", 1)];
    for (size, _, name, _) in sizes {
        File::create(src.join("files").join(name)).and_then(|f| f.set_len(size)).expect("a sparse file");
    }
    swarm.source(&src, None);
    swarm.wait_holders("one.bin", 1);
    swarm.wait_holders("eight.bin", 1);
    println!("big file: one source, loopback, no limits, sparse source files, whole process");
    let mut rates = Vec::new();
    for (size, label, name, rounds) in sizes {
        let mut got = Vec::new();
        let mut peak_kib = 0;
        for round in 0..rounds {
            let dir = swarm.dir(&format!("{name}-{round}"));
            let (_, whole, peak) = swarm.download_timed(&dir, &[name]);
            got.push(size as f64 / 1e6 / whole);
            peak_kib = peak_kib.max(peak);
            let _ = fs::remove_dir_all(&dir);
        }
        let (rate, text) = median_range(got);
        // The disk's share: the plain synced copy of the same file, in the same run.
        let target = swarm.root.path().join("plain-copy.bin");
        let file = src.join("files").join(name);
        let copy = mb_per_s(size, plain_copy(&file, &target, true).expect("plain copy"));
        let _ = fs::remove_file(&target);
        println!(
            "  {label}: {text}   downloader peak RSS {:.1} MiB   plain synced copy {copy:.1} MB/s",
            peak_kib as f64 / 1024.0
        );
        rates.push((rate, copy));
    }
    println!(
        "  8 GiB rate / 1 GiB rate {:.2} (target at least 0.9; RSS target under 32 MiB); \
         the plain copy's 8 GiB / 1 GiB {:.2}",
        rates[1].0 / rates[0].0,
        rates[1].1 / rates[0].1
    );
}

fn hashing(file: &Path, size: u64) {
    let _ = hash_file(file, "big.bin", true); // warm the page cache
    let t = Instant::now();
    let one = hash_file(file, "big.bin", false).expect("hash");
    let single = t.elapsed();
    let t = Instant::now();
    let par = hash_file(file, "big.bin", true).expect("hash");
    let parallel = t.elapsed();
    assert_eq!(one, par);
    println!("hashing: manifest of 1 GiB (chunk SHA-1s + whole-file SHA-1), warm cache");
    println!("  one thread   {:>8.1} MB/s   ({:.2} s)", mb_per_s(size, single), single.as_secs_f64());
    println!(
        "  rayon        {:>8.1} MB/s   ({:.2} s)   speedup {:.2}x on {} threads",
        mb_per_s(size, parallel),
        parallel.as_secs_f64(),
        single.as_secs_f64() / parallel.as_secs_f64(),
        rayon::current_num_threads()
    );
}

pub fn swarm_efficiency() {
    println!("swarm: 256 MiB file, each source capped at 20 MiB/s");
    for k in [1usize, 4] {
        let mut swarm = Swarm::new();
        let size = 256 * MIB;
        let first = swarm.dir("s0");
        make_file(&first.join("files/s.bin"), size).unwrap();
        for i in 0..k {
            let d = swarm.dir(&format!("s{i}"));
            if i > 0 {
                fs::copy(first.join("files/s.bin"), d.join("files/s.bin")).unwrap();
            }
            swarm.source(&d, Some("20M"));
        }
        swarm.wait_holders("s.bin", k);
        let (secs, _) = swarm.download(&swarm.dir("down"), "s.bin");
        let rate = size as f64 / (1 << 20) as f64 / secs;
        let ideal = 20.0 * k as f64;
        println!(
            "  k = {k}: {rate:>6.1} MiB/s of {ideal:.0} MiB/s ({secs:.2} s)   efficiency {:.3}",
            rate / ideal
        );
    }
}

/// Our download of 1 GiB from one libtorrent seeder over BitTorrent, against the same file
/// from one p2p-share seeder over our own protocol, in the same run.
pub fn over_bittorrent() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let has_lt = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .status()
        .is_ok_and(|s| s.success());
    println!("bittorrent: 1 GiB from one seeder on loopback, median of {ROUNDS} (range)");
    if !has_lt {
        println!("  libtorrent: not installed (apt-get install python3-libtorrent); skipped");
        return;
    }
    let mut swarm = Swarm::new();
    let size = 1024 * MIB;
    let src = swarm.dir("ours");
    let file = src.join("files/big.bin");
    make_file(&file, size).expect("make 1 GiB file");
    let (torrent, lt_port, _) = lt_seeder(&mut swarm, &file, "lt", &[]);
    // The same file as mktorrent makes it by default (256 KiB pieces), seeded by a second
    // libtorrent: a torrent made the usual way, not our 1 MiB form.
    let (torrent256, lt256_port, lt256_pid) = lt_seeder(&mut swarm, &file, "lt256", &["-", "262144"]);
    swarm.source(&src, None);
    swarm.wait_holders("big.bin", 1);
    let (mut bt, mut bt256, mut native) = (Vec::new(), Vec::new(), Vec::new());
    let peer = format!("127.0.0.1:{lt_port}");
    let peer256 = format!("127.0.0.1:{lt256_port}");
    // The 256 KiB-piece torrent held by a p2p-share peer too (fetched once from libtorrent,
    // untimed), fetched from it in our protocol: the same pieces without libtorrent's send.
    let held256 = swarm.dir("held256");
    swarm.download_args(&held256, &[torrent256.to_str().unwrap(), "--peer", &peer256]);
    let id256 =
        p2p_share::torrent::read_torrent(&fs::read(&torrent256).unwrap()).unwrap().manifest.content_id();
    swarm.source(&held256, None);
    swarm.wait_for_id("big.bin", id256);
    // Two files named big.bin now: each is asked for by its id.
    let own_id = p2p_share::manifest::hash_file(&file, "big.bin", true).unwrap().content_id();
    let (mut native256, mut lt256_busy) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Each after a sync, so none pays for the write-back of the one before.
        nix::unistd::sync();
        let dir = swarm.dir(&format!("bt{round}"));
        let (secs, _) = swarm.download_args(&dir, &[torrent.to_str().unwrap(), "--peer", &peer]);
        bt.push(size as f64 / 1e6 / secs);
        let _ = fs::remove_dir_all(&dir);
        nix::unistd::sync();
        let dir = swarm.dir(&format!("bt256-{round}"));
        let cpu = cpu_seconds(lt256_pid);
        let (secs, _) = swarm.download_args(&dir, &[torrent256.to_str().unwrap(), "--peer", &peer256]);
        bt256.push(size as f64 / 1e6 / secs);
        lt256_busy.push((cpu_seconds(lt256_pid) - cpu) / secs);
        let _ = fs::remove_dir_all(&dir);
        nix::unistd::sync();
        let dir = swarm.dir(&format!("native256-{round}"));
        let (secs, _) = swarm.download(&dir, &id256.to_hex());
        native256.push(size as f64 / 1e6 / secs);
        let _ = fs::remove_dir_all(&dir);
        nix::unistd::sync();
        let dir = swarm.dir(&format!("native{round}"));
        let (secs, _) = swarm.download(&dir, &own_id.to_hex());
        native.push(size as f64 / 1e6 / secs);
        let _ = fs::remove_dir_all(&dir);
    }
    // libtorrent downloading from the same seeders: how fast each can send.
    let (mut lt_own, mut lt_own256) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for (t, p, out) in [(&torrent, &peer, &mut lt_own), (&torrent256, &peer256, &mut lt_own256)] {
            let save = swarm.root.path().join(format!("lt-down{round}"));
            let got = Command::new("/usr/bin/python3")
                .arg(&script)
                .args(["get", t.to_str().unwrap(), save.to_str().unwrap(), "300", p])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&got.stdout);
            let secs: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("done ")?.parse().ok())
                .expect("libtorrent finished");
            out.push(size as f64 / 1e6 / secs);
            let _ = fs::remove_dir_all(&save);
        }
    }
    let (bt, bt_text) = median_range(bt);
    let (bt256, bt256_text) = median_range(bt256);
    let (native256, native256_text) = median_range(native256);
    let (busy, _) = median_range(lt256_busy.clone());
    let (lt256_rate, lt256_text) = median_range(lt_own256);
    let (native, native_text) = median_range(native);
    let (lt_rate, lt_text) = median_range(lt_own);
    println!("  p2p-share from libtorrent, BitTorrent {bt_text}");
    println!("  the same, 256 KiB pieces (mktorrent) {bt256_text}");
    let (lo, hi) = lt256_busy.iter().fold((f64::MAX, 0f64), |(l, h), x| (l.min(*x), h.max(*x)));
    println!("    its libtorrent seeder's CPU-seconds a second meanwhile {busy:.2} ({lo:.2}-{hi:.2})");
    println!("  that 256 KiB torrent from a p2p-share peer holding it, our protocol {native256_text}");
    println!("  p2p-share from p2p-share, our protocol{native_text}");
    println!("  libtorrent from the same libtorrent   {lt_text}");
    println!("  libtorrent from the 256 KiB seeder    {lt256_text}");
    println!(
        "  ratio BitTorrent / our protocol {:.2} (target at least 0.8); ours / libtorrent's own {:.2}",
        bt / native,
        bt / lt_rate
    );
    println!(
        "  ratio 256 KiB-piece torrent / our 1 MiB share over our protocol: from libtorrent {:.2}, from p2p-share {:.2} (target at least 0.9)",
        bt256 / native,
        native256 / native
    );
    println!(
        "  libtorrent's own downloads, 256 KiB / 1 MiB seeder {:.2}; ours {:.2}",
        lt256_rate / lt_rate,
        bt256 / bt
    );
}

/// A libtorrent session seeding `file` (linked into `dir`) from a torrent `lt.py torrent`
/// makes with `args` after the paths; returns the torrent and the session's port.
/// CPU seconds (user and system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    let ticks = 100.0; // USER_HZ: what /proc counts in on Linux
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / ticks
}

fn lt_seeder(swarm: &mut Swarm, file: &Path, dir: &str, args: &[&str]) -> (PathBuf, u16, u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let lt_dir = swarm.root.path().join(dir);
    fs::create_dir_all(&lt_dir).unwrap();
    fs::hard_link(file, lt_dir.join("big.bin")).expect("link the file for libtorrent");
    let torrent = swarm.root.path().join(format!("{dir}.torrent"));
    let made = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["torrent", lt_dir.join("big.bin").to_str().unwrap(), torrent.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut seed = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["seed", torrent.to_str().unwrap(), lt_dir.to_str().unwrap(), "3600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(seed.stdout.take().unwrap()), &mut line)
        .unwrap();
    let port = line.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("libtorrent seeding");
    let pid = seed.id();
    swarm.children.push(seed);
    (torrent, port, pid)
}

/// libtorrent's own download of `file` between two libtorrent sessions on loopback
/// (v1 torrent, 1 MiB pieces), median of [`ROUNDS`]; `None` without the Python binding.
fn libtorrent_rate(swarm: &Swarm, file: &Path, size: u64) -> Option<(f64, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let installed =
        Command::new("/usr/bin/python3").args(["-c", "import libtorrent"]).status().ok()?.success();
    if !installed {
        return None;
    }
    let dir = swarm.root.path().join("lt-seed");
    fs::create_dir_all(&dir).ok()?;
    let name = file.file_name()?.to_str()?.to_string();
    fs::hard_link(file, dir.join(&name)).ok()?;
    let torrent = swarm.root.path().join("lt.torrent");
    let made = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["torrent"])
        .arg(dir.join(&name))
        .arg(&torrent)
        .output()
        .ok()?;
    if !made.status.success() {
        return None;
    }
    let mut seed = Command::new("/usr/bin/python3")
        .arg(&script)
        .args(["seed", torrent.to_str()?, dir.to_str()?, "3600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(seed.stdout.take()?), &mut line).ok()?;
    let port: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
    let mut rates = Vec::new();
    for round in 0..ROUNDS {
        let save = swarm.root.path().join(format!("lt-get{round}"));
        let started = Instant::now();
        let out = Command::new("/usr/bin/python3")
            .arg(&script)
            .args(["get", torrent.to_str()?, save.to_str()?, "600", &format!("127.0.0.1:{port}")])
            .output()
            .ok()?;
        let whole = started.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().find(|l| l.starts_with("done "))?; // it finished
        rates.push(size as f64 / 1e6 / whole);
        let _ = fs::remove_dir_all(&save);
    }
    let _ = seed.kill();
    let _ = seed.wait();
    Some(median_range(rates))
}
