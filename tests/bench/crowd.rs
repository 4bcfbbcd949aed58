//! Flash crowd: one seeder of a 64 MiB file, 16 downloaders started at once, every peer's
//! upload capped at R = 4 MiB/s, downloads uncapped, everyone stays to serve. F/R = 16 s
//! is the fluid lower bound (the seeder must send the file once). Prints the first, median
//! and last finisher as multiples of F/R, ours and then 16 libtorrent sessions in the same
//! run (v1 torrent, 1 MiB pieces, every peer given every other's address, the upload cap
//! applied to loopback peers too).

use crate::transfer::{make_file, peer_cmd_of, Swarm};
use p2p_share::hash::Sha1Hash;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::channel;
use std::thread;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const DOWNLOADERS: usize = 16;
const SIZE: u64 = 64 * MIB;
const RATE: u64 = 4 * MIB;
const GIVE_UP: Duration = Duration::from_secs(240);

pub fn run() {
    let bound = SIZE as f64 / RATE as f64;
    println!(
        "crowd: 1 seeder of {} MiB, {DOWNLOADERS} downloaders at once, every upload capped at {} MiB/s; \
         F/R = {bound:.0} s",
        SIZE / MIB,
        RATE / MIB
    );
    // A/B runs: CROWD_RUNS=5 repeats ours; CROWD_PEERS=a:b alternates peer binaries run
    // by run (round robin, so the machine's mood falls on both); CROWD_LIBTORRENT=0 skips
    // libtorrent.
    let runs: usize = std::env::var("CROWD_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let peers: Vec<PathBuf> = match std::env::var_os("CROWD_PEERS") {
        Some(list) => std::env::split_paths(&list).collect(),
        None => vec![PathBuf::from(env!("CARGO_BIN_EXE_peer"))],
    };
    let mut file = None;
    for run in 0..runs {
        for peer in &peers {
            let mut swarm = Swarm::new();
            let seed = swarm.dir("seed");
            let f = seed.join("files/crowd.bin");
            make_file(&f, SIZE).expect("make the file");
            let ours = ours(&mut swarm, &f, peer);
            let who =
                if peers.len() > 1 { format!("{} #{}", peer.display(), run + 1) } else { "p2p-share".into() };
            report(&who, &ours, bound);
            file = Some((swarm, f));
        }
    }
    if std::env::var("CROWD_LIBTORRENT").is_ok_and(|v| v == "0") {
        return;
    }
    let Some((swarm, file)) = file else { return };
    match libtorrent(&swarm, &file) {
        Some(times) => report("libtorrent", &times, bound),
        None => println!("  libtorrent: not installed (apt-get install python3-libtorrent); skipped"),
    }
}

/// "first / median / last" as seconds and multiples of F/R.
fn report(who: &str, times: &[f64], bound: f64) {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let (first, median, last) = (t[0], t[t.len() / 2], t[t.len() - 1]);
    println!(
        "  {who:<10} first {first:>5.1} s ({:.2} x F/R)   median {median:>5.1} s ({:.2} x)   last {last:>5.1} s ({:.2} x)",
        first / bound,
        median / bound,
        last / bound
    );
}

/// Seconds from the start until each of our downloaders said its download was done
/// (`peer download --stay`, so every finished peer keeps serving).
fn ours(swarm: &mut Swarm, file: &Path, peer: &Path) -> Vec<f64> {
    let caps = ["--upload-limit", "4M", "--max-conns-per-ip", "64"];
    let seed_dir = file.parent().unwrap().parent().unwrap().to_path_buf();
    swarm.source_args_with(peer, &seed_dir, &caps);
    swarm.wait_holders("crowd.bin", 1);
    let (tx, rx) = channel();
    let start = Instant::now();
    let mut dirs = Vec::new();
    for i in 0..DOWNLOADERS {
        let dir = swarm.dir(&format!("d{i}"));
        let mut cmd = peer_cmd_of(peer, swarm.tracker, &dir);
        // Its log goes to a file, so a downloader that never finishes can say why.
        let log = std::fs::File::create(dir.join("stderr.log")).expect("a log file");
        cmd.args(caps).args(["download", "crowd.bin", "--stay"]).stdout(Stdio::piped()).stderr(log);
        let mut child = cmd.spawn().expect("start a downloader");
        let out = child.stdout.take().unwrap();
        swarm.children.push(child);
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("Download time is") {
                    let _ = tx.send((i, start.elapsed().as_secs_f64()));
                }
            }
        });
        dirs.push(dir);
    }
    let (mut times, mut done) = (Vec::new(), Vec::new());
    while times.len() < DOWNLOADERS {
        let left = GIVE_UP.checked_sub(start.elapsed()).unwrap_or_default();
        match rx.recv_timeout(left) {
            Ok((i, t)) => {
                done.push(i);
                times.push(t);
            }
            Err(_) => {
                let logs: Vec<String> = (0..DOWNLOADERS)
                    .filter(|i| !done.contains(i))
                    .map(|i| {
                        let text = std::fs::read_to_string(dirs[i].join("stderr.log")).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(5).collect();
                        format!("downloader {i}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
                    })
                    .collect();
                panic!("{} downloaders did not finish:\n{}", logs.len(), logs.join("\n"));
            }
        }
    }
    let want = Sha1Hash::of(&std::fs::read(file).unwrap());
    for d in &dirs {
        assert!(Sha1Hash::of(&std::fs::read(d.join("files/crowd.bin")).unwrap()) == want, "{d:?} differs");
    }
    for mut c in swarm.children.drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
    times
}

/// The same crowd of libtorrent sessions (`lt.py crowd`), or `None` where it is missing.
fn libtorrent(swarm: &Swarm, file: &Path) -> Option<Vec<f64>> {
    let python = Command::new("/usr/bin/python3").args(["-c", "import libtorrent"]).status();
    if !python.is_ok_and(|s| s.success()) {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/lt.py");
    let work = swarm.root.path().join("lt");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .args([
            "crowd",
            file.to_str().unwrap(),
            work.to_str().unwrap(),
            &DOWNLOADERS.to_string(),
            &RATE.to_string(),
            &GIVE_UP.as_secs().to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent's crowd failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(text.lines().filter_map(|l| l.strip_prefix("finished ")?.split(' ').nth(1)?.parse().ok()).collect())
}
