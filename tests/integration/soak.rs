//! `make soak`: 8 peers and a tracker, 40 downloads while sources (and some downloaders)
//! are killed and restarted at random. Every finished file must be byte-correct; none may be lost. Ignored by
//! `make test` (it takes minutes).

use crate::helpers::{peer_dir, test_bytes, PeerProc, TrackerProc};
use p2p_share::hash::Sha1Hash;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const PEERS: usize = 8;
const FILES: usize = 4;
const DOWNLOADS: usize = 40;
const AT_ONCE: usize = 4;
const LIMIT: Duration = Duration::from_secs(300);

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

struct Job {
    proc: PeerProc,
    dir: PathBuf,
    file: usize,
    attempt: u32,
}

#[test]
#[ignore = "minutes long: run with make soak"]
fn soak_random_kills_lose_and_corrupt_nothing() {
    let seed = std::env::var("SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("soak: seed {seed} (SOAK_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let t = TrackerProc::start(&["--announce-interval", "2"]);
    let root = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> =
        (0..FILES).map(|i| test_bytes((3 + 2 * i) * MIB + 1000 * i, 100 + i as u64)).collect();
    let hashes: Vec<Sha1Hash> = files.iter().map(|f| Sha1Hash::of(f)).collect();
    let name = |i: usize| format!("file{i}.bin");
    let dirs: Vec<PathBuf> = (0..PEERS)
        .map(|p| {
            let f = p % FILES;
            peer_dir(root.path(), &format!("seed{p}"), &[(&name(f), &files[f])])
        })
        .collect();
    let serve = |d: &PathBuf| PeerProc::serve(t.addr, d, &["--upload-limit", "3M"]).0;
    let mut seeds: Vec<Option<PeerProc>> = dirs.iter().map(|d| Some(serve(d))).collect();
    let mut dead: Vec<(usize, Instant)> = Vec::new();

    let started = Instant::now();
    let (mut begun, mut done, mut corrupt, mut lost, mut retried, mut kills, mut downloader_kills) =
        (0, 0, 0, 0, 0, 0, 0);
    let mut jobs: Vec<Job> = Vec::new();
    while (begun < DOWNLOADS || !jobs.is_empty()) && started.elapsed() < LIMIT {
        while jobs.len() < AT_ONCE && begun < DOWNLOADS {
            let file = rng.next(FILES);
            let dir = peer_dir(root.path(), &format!("down{begun}"), &[]);
            jobs.push(Job {
                proc: PeerProc::spawn(t.addr, &dir, &["download", &name(file)]),
                dir,
                file,
                attempt: 1,
            });
            begun += 1;
        }
        // Kill a serving peer now and then; bring the dead back after a second or two.
        if rng.next(5) == 0 {
            let p = rng.next(PEERS);
            if let Some(mut victim) = seeds[p].take() {
                let _ = victim.proc.child.kill();
                kills += 1;
                dead.push((p, Instant::now() + Duration::from_millis(1000 + 200 * rng.next(6) as u64)));
            }
        }
        // Now and then kill a downloader too; started again, it resumes.
        if !jobs.is_empty() && rng.next(15) == 0 {
            let j = rng.next(jobs.len());
            let _ = jobs[j].proc.proc.child.kill();
            let _ = jobs[j].proc.proc.child.wait();
            jobs[j].proc = PeerProc::spawn(t.addr, &jobs[j].dir, &["download", &name(jobs[j].file)]);
            downloader_kills += 1;
        }
        dead.retain(|(p, at)| {
            if Instant::now() < *at {
                return true;
            }
            seeds[*p] = Some(serve(&dirs[*p]));
            false
        });
        let mut still = Vec::new();
        for mut job in jobs.drain(..) {
            match job.proc.proc.child.try_wait() {
                Ok(Some(status)) if status.success() => {
                    let got = fs::read(job.dir.join("files").join(name(job.file))).unwrap_or_default();
                    if Sha1Hash::of(&got) == hashes[job.file] {
                        done += 1;
                    } else {
                        corrupt += 1;
                        eprintln!("soak: CORRUPT {} in {}", name(job.file), job.dir.display());
                    }
                }
                Ok(Some(_)) if job.attempt < 3 => {
                    retried += 1;
                    job.proc.proc.wait_exit(Duration::from_secs(5)); // collects all its output
                    let out = job.proc.proc.output();
                    eprintln!(
                        "soak: retrying {}: {}",
                        name(job.file),
                        out.lines().filter(|l| l.starts_with("peer:")).collect::<Vec<_>>().join(" | ")
                    );
                    let args = ["download", &name(job.file)];
                    job.proc = PeerProc::spawn(t.addr, &job.dir, &args);
                    job.attempt += 1;
                    still.push(job);
                }
                Ok(Some(_)) => {
                    lost += 1;
                    job.proc.proc.wait_exit(Duration::from_secs(5)); // collects all its output
                    eprintln!(
                        "soak: LOST {} in {}:\n{}",
                        name(job.file),
                        job.dir.display(),
                        job.proc.proc.output()
                    );
                }
                _ => still.push(job),
            }
        }
        jobs = still;
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "soak: {done} of {DOWNLOADS} downloads correct, {corrupt} corrupt, {lost} lost, {retried} retried after a failure, \
         {kills} sources and {downloader_kills} downloaders killed and restarted, {secs:.0} s"
    );
    let mut top: Vec<String> =
        fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.retain(|n| !n.starts_with("seed") && !n.starts_with("down"));
    assert!(top.is_empty(), "written outside the peer folders: {top:?}");
    assert_eq!(corrupt, 0, "corrupt files");
    assert_eq!(lost, 0, "lost downloads");
    assert_eq!(done, DOWNLOADS, "all downloads finished within {LIMIT:?}");
}
