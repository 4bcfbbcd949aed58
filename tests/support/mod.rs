//! What every test binary shares (`tests/integration`, `tests/bt` and the bench include it
//! with `#[path]`): real `tracker` and `peer` processes on free ports with their output
//! collected, waiting for conditions without bare sleeps, deterministic test bytes, peer
//! folders and free ports. Each binary uses a part, hence `dead_code` is allowed.
#![allow(dead_code)]

use p2p_share::wire::conn::Conn;
use parking_lot::Mutex;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub const IO: Duration = Duration::from_secs(5);

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
/// The most an honest request may take during an attack, from what the same request took
/// in the same test before the attack began: ten times that, and a quarter of the 10 s
/// deadline that each attack these tests repeat used to make honest requests wait out (or
/// fail at). A loaded machine slows the baseline as the measurement under attack, so the
/// bound moves with it; the quarter deadline covers what the attack's own load adds to a
/// sub-millisecond baseline (an honest probe took 1.9 s under siege once, with `make test`
/// running the other tests beside it).
pub fn attack_bound(baseline: Duration) -> Duration {
    baseline * 10 + Duration::from_millis(2500)
}

pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process whose stderr and stdout are collected; killed when dropped.
pub struct Proc {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
    /// The threads collecting stdout and stderr; they end when the process closes them.
    readers: Vec<thread::JoinHandle<()>>,
    /// Stdin, when it is kept open (see [`Proc::spawn_with_open_stdin`]).
    _stdin: Option<ChildStdin>,
}

impl Proc {
    pub fn spawn(cmd: Command) -> Proc {
        Self::spawn_with_input(cmd, None)
    }

    /// Starts `cmd`, writing `input` to its stdin and then closing it.
    pub fn spawn_with_input(cmd: Command, input: Option<String>) -> Proc {
        let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
        let mut p = Self::start(cmd, stdin);
        if let (Some(text), Some(mut pipe)) = (input, p.child.stdin.take()) {
            thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(text.as_bytes());
            });
        }
        p
    }

    /// Starts `cmd` with a stdin that stays open (and empty) while the `Proc` lives.
    pub fn spawn_with_open_stdin(cmd: Command) -> Proc {
        let mut p = Self::start(cmd, Stdio::piped());
        p._stdin = p.child.stdin.take();
        p
    }

    fn start(mut cmd: Command, stdin: Stdio) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(stdin);
        let mut child = cmd.spawn().expect("start process");
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = Arc::clone(&output);
            readers.push(thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = out.lock();
                    o.push_str(&line);
                    o.push('\n');
                }
            }));
        }
        Proc { child, output, readers, _stdin: None }
    }

    /// Waits until the exited process's output was all collected.
    fn drain(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().clone()
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> String {
        let mut found = None;
        let ok = wait_until(limit, || {
            found = self.output().lines().find(|l| l.contains(needle)).map(str::to_string);
            found.is_some()
        });
        assert!(ok, "no line with {needle:?} within {limit:?}; output:\n{}", self.output());
        found.unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.pid().to_string()]).status();
    }

    /// Waits for the process to exit; returns its exit code. Once it has exited, all of
    /// its output has been collected.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `tracker` process on a free port.
pub struct TrackerProc {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl TrackerProc {
    pub fn start(extra: &[&str]) -> TrackerProc {
        Self::start_on("127.0.0.1:0", extra)
    }

    pub fn start_on(bind: &str, extra: &[&str]) -> TrackerProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracker"));
        cmd.args(["--bind", bind]).args(extra);
        let proc = Proc::spawn(cmd);
        let line = proc.wait_for_line("Server started on port: ", Duration::from_secs(10));
        let port: u16 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
        let mut addr: SocketAddr = bind.parse().unwrap();
        addr.set_port(port);
        TrackerProc { proc, addr }
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.addr, IO).expect("connect to tracker")
    }
}

/// Deterministic pseudo-random bytes (differ by `seed`).
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
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

/// A peer folder with `files` put in `files/`.
pub fn peer_dir(root: &std::path::Path, name: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for (n, bytes) in files {
        std::fs::write(dir.join("files").join(n), bytes).unwrap();
    }
    dir
}

/// A real `peer` process on a free port.
pub struct PeerProc {
    pub proc: Proc,
}

impl PeerProc {
    /// `peer --tracker T --dir DIR --port 0 ARGS...`
    pub fn spawn(tracker: SocketAddr, dir: &std::path::Path, args: &[&str]) -> PeerProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
        cmd.args(["--tracker", &tracker.to_string(), "--dir", dir.to_str().unwrap(), "--port", "0"])
            .args(args);
        PeerProc { proc: Proc::spawn(cmd) }
    }

    /// `peer --tracker TRACKER --dir DIR --port 0 ARGS...`, with the tracker as written.
    pub fn spawn_to(tracker: &str, dir: &std::path::Path, args: &[&str]) -> PeerProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peer"));
        cmd.args(["--tracker", tracker, "--dir", dir.to_str().unwrap(), "--port", "0"]).args(args);
        PeerProc { proc: Proc::spawn(cmd) }
    }

    /// Starts `serve` and waits until it is registered; returns it with its port.
    pub fn serve(tracker: SocketAddr, dir: &std::path::Path, extra: &[&str]) -> (PeerProc, u16) {
        let mut args = extra.to_vec();
        args.push("serve");
        let p = PeerProc::spawn(tracker, dir, &args);
        let port = p.port();
        (p, port)
    }

    pub fn port(&self) -> u16 {
        let line = self.proc.wait_for_line("You are running on port", Duration::from_secs(20));
        line.rsplit(':').next().unwrap().trim().parse().unwrap()
    }

    /// Waits for the process to end; returns (exit code, all its output).
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let code = self.proc.wait_exit(limit);
        (code, self.proc.output())
    }
}

/// A port free for TCP and UDP on every address, below the kernel's ephemeral range
/// (32768-60999 here), for a process that must come back on the same port: a port the
/// kernel hands out for `:0` could be taken by another test meanwhile.
pub fn fixed_free_port() -> u16 {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new();
    for i in 0u32.. {
        let port = 20_000 + (random.hash_one(i) % 12_000) as u16;
        let tcp = std::net::TcpListener::bind(("0.0.0.0", port));
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    unreachable!("some port below 32000 is free")
}

/// A port that was free a moment ago (bound to 127.0.0.1:0 and let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
