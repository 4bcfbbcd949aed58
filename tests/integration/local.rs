//! A tracker and peers run inside the test process through the library, on port 0: no
//! child process to start, no port read out of anyone's stdout, and a download's
//! [`Report`] to assert on instead of its printed words. The tests of what the binaries
//! print, of Ctrl+C and of processes killed mid-way use `helpers::{TrackerProc, PeerProc}`.

use p2p_share::download::{DownloadError, Options, Report};
use p2p_share::peer::{Node, NodeConfig};
use p2p_share::shutdown::Shutdown;
use p2p_share::tracker::server::{Tracker, TrackerOptions};
use p2p_share::wire::conn::Conn;
use p2p_share::wire::tracker_msg::{FileListing, TrackerReply, TrackerRequest};
use std::net::SocketAddr;
use std::path::Path;
use std::thread::{self, JoinHandle};
use std::time::Duration;

const IO: Duration = Duration::from_secs(5);

/// A tracker on a free loopback port, stopped when dropped.
pub struct LocalTracker {
    pub addr: SocketAddr,
    stop: Shutdown,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl LocalTracker {
    pub fn start() -> LocalTracker {
        LocalTracker::with(|_| {})
    }

    /// A tracker with options changed by `tune` (the bind address is 127.0.0.1:0).
    pub fn with(tune: impl FnOnce(&mut TrackerOptions)) -> LocalTracker {
        let mut opts =
            TrackerOptions { bind: "127.0.0.1:0".parse().unwrap(), workers: 16, ..TrackerOptions::default() };
        tune(&mut opts);
        let tracker = Tracker::bind(opts).expect("bind a tracker");
        let (addr, stop) = (tracker.local_addr(), tracker.shutdown_handle());
        let thread =
            thread::Builder::new().name("local-tracker".into()).spawn(move || tracker.run()).unwrap();
        LocalTracker { addr, stop, thread: Some(thread) }
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.addr, IO).expect("connect to the tracker")
    }

    /// The listings a search for `name` returns (none when the tracker cannot be asked).
    pub fn search(&self, name: &str) -> Vec<FileListing> {
        match self.conn().call(&TrackerRequest::Search { name: name.into() }) {
            Ok(TrackerReply::Files { files, .. }) => files,
            _ => Vec::new(),
        }
    }
}

impl Drop for LocalTracker {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A peer sharing `DIR/files`, serving on a free port; it leaves when dropped.
pub struct LocalPeer {
    pub node: Node,
}

impl LocalPeer {
    pub fn start(tracker: SocketAddr, dir: &Path) -> LocalPeer {
        LocalPeer::limited(tracker, dir, None)
    }

    /// A peer whose uploads together are capped at `upload_limit` bytes per second.
    pub fn limited(tracker: SocketAddr, dir: &Path, upload_limit: Option<u64>) -> LocalPeer {
        let cfg = NodeConfig {
            tracker,
            dir: dir.to_path_buf(),
            port: Some(0),
            upload_limit,
            tracker_optional: false,
            max_conns_per_ip: 16,
            dht: None,
            encryption: Default::default(),
            port_forward: false,
        };
        LocalPeer { node: Node::start(&cfg).expect("start a peer") }
    }

    pub fn addr(&self) -> SocketAddr {
        self.node.addr()
    }

    /// Downloads `target` (a name or a content id) into this peer's `files/`.
    pub fn download(&self, target: &str) -> Result<Report, DownloadError> {
        let opts = Options { stall_timeout: Duration::from_secs(20), ..Options::default() };
        self.node.download(target, None, &opts)
    }
}

impl Drop for LocalPeer {
    fn drop(&mut self) {
        self.node.leave();
    }
}
