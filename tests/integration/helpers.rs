//! Starting real processes on free ports, and waiting for conditions without bare sleeps.

use p2p_share::wire::conn::Conn;
use parking_lot::Mutex;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub const IO: Duration = Duration::from_secs(5);

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
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
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start process");
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = Arc::clone(&output);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = out.lock();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Proc { child, output }
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

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
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
