//! A running peer: registered with the tracker, serving its files, watching its folder,
//! announcing periodically, and able to download.

use super::monitor::FileMonitor;
use super::options::ServerOptions;
use super::seeding;
use super::server::{Dialer, PeerServer};
use crate::bt::mse::Encryption;
use crate::control::client::Remote;
use crate::dht::{DhtConfig, PeerDht};
use crate::download::{self, DownloadError, Options, Report};
use crate::holdings::manifest_cache::ManifestCache;
use crate::holdings::shares::Shares;
use crate::holdings::tracker_lists::TrackerLists;
use crate::peer::upload::UploadLine;
use crate::port_map::{self, Mapping, Proto};
use crate::tracker_client::{TrackerClient, TrackerError};
use crossbeam_channel::{bounded, select, tick, Sender};
use log::{debug, info, warn};
use parking_lot::Mutex;
use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How a peer runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub tracker: SocketAddr,
    /// The peer's folder: `files/` and `chunks/` live here.
    pub dir: PathBuf,
    /// `None`: the tracker assigns a port; `Some(0)`: any free port.
    pub port: Option<u16>,
    /// Bytes per second, across all uploads.
    pub upload_limit: Option<u64>,
    /// Start even when the tracker cannot be reached (a download from peers given
    /// directly); the peer joins the tracker once it answers.
    pub tracker_optional: bool,
    /// Join the Mainline DHT (off unless asked for).
    pub dht: Option<DhtSettings>,
    /// Connections the peer server takes from one address.
    pub max_conns_per_ip: usize,
    /// BitTorrent encryption (MSE): what the server takes, how downloads dial.
    pub encryption: Encryption,
    /// Ask the home router to forward our ports (NAT-PMP, then UPnP; see `port_map`).
    pub port_forward: bool,
}

/// How a peer joins the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtSettings {
    /// Bootstrap nodes (`--dht`: the public ones; `--dht-bootstrap`: a private DHT's).
    pub bootstrap: Vec<String>,
    /// UDP port; `None`: the same number as the peer's TCP port.
    pub port: Option<u16>,
}

/// Why a peer could not start.
#[derive(Debug)]
pub enum NodeError {
    Folder {
        path: PathBuf,
        err: io::Error,
    },
    /// Another peer process already uses this folder.
    Busy {
        dir: PathBuf,
    },
    Tracker(TrackerError),
    Listen {
        addr: SocketAddr,
        err: io::Error,
    },
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Folder { path, err } => write!(f, "cannot use folder {}: {err}", path.display()),
            NodeError::Busy { dir } => write!(
                f,
                "another peer is already using {} (it holds {}); stop it or choose another --dir",
                dir.display(),
                dir.join(LOCK_FILE).display()
            ),
            NodeError::Tracker(e) => write!(f, "{e}"),
            NodeError::Listen { addr, err } => write!(f, "cannot listen on {addr}: {err}"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<TrackerError> for NodeError {
    fn from(e: TrackerError) -> Self {
        NodeError::Tracker(e)
    }
}

/// The lock file that keeps two peers from writing to one folder.
pub const LOCK_FILE: &str = ".p2p-share.lock";

/// The peer serving a folder, as it wrote itself into the folder's lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    pub addr: SocketAddr,
    /// Its tracker's BitTorrent announce URL, when the tracker speaks HTTP.
    pub announce: Option<String>,
    /// Its control API, when it runs one (`peer serve`).
    pub control: Option<Remote>,
}

/// The peer serving `dir` right now; `None` when no peer holds the folder's lock.
pub fn serving(dir: &Path) -> Option<Serving> {
    let file = File::open(dir.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None, // nobody holds it
        Err(TryLockError::WouldBlock) => {
            let text = fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
            let mut lines = text.lines();
            let addr = lines.next()?.trim().parse().ok()?;
            let announce = lines.next().map(str::trim).filter(|u| u.starts_with("http")).map(String::from);
            let control = lines.next().and_then(|l| {
                let mut w = l.split_whitespace();
                match (w.next(), w.next().and_then(|a| a.parse().ok()), w.next()) {
                    (Some("control"), Some(addr), Some(secret)) => {
                        Some(Remote { addr, secret: secret.to_string() })
                    }
                    _ => None,
                }
            });
            Some(Serving { addr, announce, control })
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// Writes the address this peer serves on, its tracker's announce URL and its control API
/// into its lock file (for [`serving`]).
fn record_addr(
    lock: &File,
    addr: SocketAddr,
    announce: Option<&str>,
    control: Option<&Remote>,
) -> io::Result<()> {
    let mut text = format!("{addr}\n{}\n", announce.unwrap_or(""));
    if let Some(c) = control {
        text.push_str(&format!("control {} {}\n", c.addr, c.secret));
    }
    lock.set_len(0)?;
    lock.write_all_at(text.as_bytes(), 0)
}

/// Takes the folder's lock (an OS file lock, released when the process ends), or says
/// that another peer holds it.
pub fn lock_dir(dir: &Path) -> Result<File, NodeError> {
    let path = dir.join(LOCK_FILE);
    // Readable by its owner only: it holds the control API's secret.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|err| NodeError::Folder { path: path.clone(), err })?;
    let _ = file.set_permissions(fs::Permissions::from_mode(0o600));
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(NodeError::Busy { dir: dir.to_path_buf() }),
        Err(TryLockError::Error(err)) => Err(NodeError::Folder { path, err }),
    }
}

/// A peer in the swarm. [`leave`](Node::leave) tells the tracker it goes.
pub struct Node {
    pub shares: Arc<Shares>,
    pub tracker: Arc<TrackerClient>,
    cache: ManifestCache,
    files_dir: PathBuf,
    chunks_dir: PathBuf,
    server_addr: SocketAddr,
    /// The server and background threads, until the peer leaves.
    running: Mutex<Option<Running>>,
    dht: Option<PeerDht>,
    encryption: Encryption,
    /// The folder's lock, held while the peer runs; it says where the peer is.
    lock: File,
}

struct Running {
    server: PeerServer,
    stop: Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    fn stop(mut self) {
        drop(self.stop);
        self.server.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Node {
    /// Scans the folder, registers, starts the server, the file monitor and announces.
    pub fn start(cfg: &NodeConfig) -> Result<Node, NodeError> {
        let files_dir = cfg.dir.join("files");
        let chunks_dir = cfg.dir.join("chunks");
        let existed = cfg.dir.is_dir();
        for d in [&files_dir, &chunks_dir] {
            fs::create_dir_all(d).map_err(|err| NodeError::Folder { path: d.clone(), err })?;
        }
        if !existed {
            warn!("{} did not exist: created it, with an empty {}", cfg.dir.display(), files_dir.display());
        }
        let lock = lock_dir(&cfg.dir)?;
        // Files the user removed from sharing stay unshared across restarts.
        let shares = Arc::new(Shares::remembering(chunks_dir.join("withheld")));
        let full_list = {
            let shares = Arc::clone(&shares);
            Box::new(move || shares.complete_files())
        };
        let tracker = Arc::new(TrackerClient::new(cfg.tracker, full_list));
        let mut monitor =
            FileMonitor::new(files_dir.clone(), ManifestCache::new(&chunks_dir), Arc::clone(&shares));
        monitor.initial_scan();
        let shared = shares.complete_ids();
        let bytes: u64 = shared.iter().filter_map(|id| shares.get(id)).map(|s| s.manifest.size).sum();
        let s = if shared.len() == 1 { "" } else { "s" };
        info!("Sharing {} file{s}, {bytes} bytes, from {}", shared.len(), files_dir.display());
        debug!("Registering peer from tracker...");
        let mut mappings = Vec::new();
        let listener = bind_and_register(&tracker, cfg, &mut mappings)?;
        debug!("Setting peer as a server...");
        let unknown = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let addr = listener.local_addr().map_err(|err| NodeError::Listen { addr: unknown, err })?;
        let dht = match &cfg.dht {
            None => None,
            Some(d) => {
                let bind = match addr.ip() {
                    IpAddr::V4(ip) => ip,
                    IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
                };
                let c = DhtConfig {
                    bootstrap: d.bootstrap.clone(),
                    port: d.port.unwrap_or(addr.port()),
                    bind,
                    public: DhtConfig::is_public(&d.bootstrap),
                };
                let dht = PeerDht::start(&c).map_err(|e| NodeError::Listen { addr, err: e.0 })?;
                if cfg.port_forward {
                    forward(Proto::Udp, dht.local_addr().port(), &mut mappings);
                }
                Some(dht)
            }
        };
        // The port others dial: the one the router forwards, or ours.
        let public_port =
            mappings.first().filter(|m| m.proto == Proto::Tcp).map_or(addr.port(), |m| m.external.port());
        let opts = ServerOptions {
            upload_limit: cfg.upload_limit.map(UploadLine::new),
            dht: dht.clone(),
            max_conns_per_ip: cfg.max_conns_per_ip,
            encryption: cfg.encryption,
            ..Default::default()
        };
        let server = PeerServer::start(listener, Arc::clone(&shares), opts)
            .map_err(|err| NodeError::Listen { addr, err })?;
        debug!("Peer server started on {addr}!");
        let reachable = tracker.me().unwrap_or(addr);
        if let Err(e) = record_addr(&lock, reachable, tracker.http_announce().as_deref(), None) {
            warn!("cannot record this peer's address in {}: {e}", cfg.dir.join(LOCK_FILE).display());
        }
        if tracker.me().is_some() {
            tracker.announce(shares.complete_files(), vec![])?;
        }
        debug!("Start file monitor system...");
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let mut threads = vec![monitor.spawn(Arc::clone(&tracker), stop_rx.clone())];
        debug!("File monitor system started!");
        if let Some(d) = &dht {
            threads.push(spawn_dht_announcer(d.clone(), Arc::clone(&shares), public_port, stop_rx.clone()));
        }
        let lists = TrackerLists::new(&chunks_dir);
        threads.push(seeding::spawn(
            Arc::clone(&shares),
            lists,
            public_port,
            server.dialer(),
            stop_rx.clone(),
        ));
        if !mappings.is_empty() {
            threads.push(port_map::keep(mappings, stop_rx.clone()));
        }
        threads.push(spawn_announcer(Arc::clone(&tracker), public_port, server.dialer(), stop_rx));
        let cache = ManifestCache::new(&chunks_dir);
        Ok(Node {
            shares,
            tracker,
            cache,
            files_dir,
            chunks_dir,
            server_addr: addr,
            running: Mutex::new(Some(Running { server, stop: stop_tx, threads })),
            dht,
            encryption: cfg.encryption,
            lock,
        })
    }

    /// This peer as others reach it.
    pub fn addr(&self) -> SocketAddr {
        self.tracker.me().unwrap_or(self.server_addr)
    }

    /// Writes the control API's address and secret into the folder's lock file, where the
    /// `peer` commands find them.
    pub fn record_control(&self, control: &Remote) -> io::Result<()> {
        record_addr(&self.lock, self.addr(), self.tracker.http_announce().as_deref(), Some(control))
    }

    /// Downloads a file (by name or content id) into `DIR/files`.
    pub fn download(
        &self,
        target: &str,
        from: Option<&str>,
        opts: &Options,
    ) -> Result<Report, DownloadError> {
        let ctx = download::Context {
            tracker: &self.tracker,
            shares: &self.shares,
            cache: &self.cache,
            files_dir: &self.files_dir,
            chunks_dir: &self.chunks_dir,
            dht: self.dht.as_ref(),
            me: Some(self.server_addr),
            uploads: self.running.lock().as_ref().map(|r| r.server.uploads()),
        };
        let opts = &Options { encryption: self.encryption, ..opts.clone() };
        download::download(&ctx, target, from, opts)
    }

    /// Leaves the swarm: tells the tracker, stops serving. Only the first call does
    /// anything, so a Ctrl+C handler and the normal end may both call it.
    pub fn leave(&self) {
        let Some(running) = self.running.lock().take() else { return };
        info!("Removing peer...");
        if self.tracker.me().is_some() {
            if let Err(e) = self.tracker.leave() {
                warn!("could not tell the tracker this peer leaves: {e}");
            }
        }
        running.stop();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(running) = self.running.lock().take() {
            running.stop();
        }
    }
}

/// Binds the peer's listening socket on the address the tracker reaches it by, and
/// registers it. A port the tracker assigns that is taken here is swapped for a free one.
/// With port forwarding, the port registered is the one the router forwards (its mapping
/// is pushed onto `mappings`).
fn bind_and_register(
    tracker: &TrackerClient,
    cfg: &NodeConfig,
    mappings: &mut Vec<Mapping>,
) -> Result<TcpListener, NodeError> {
    match bind_and_register_at(tracker, cfg, mappings) {
        Err(NodeError::Tracker(e @ TrackerError::Unreachable { .. })) if cfg.tracker_optional => {
            warn!("{e}; going on without it (it is asked again every announce interval)");
            let any = SocketAddr::from(([0, 0, 0, 0], cfg.port.unwrap_or(0)));
            let l = TcpListener::bind(any).map_err(|err| NodeError::Listen { addr: any, err })?;
            if cfg.port_forward && mappings.is_empty() {
                forward(Proto::Tcp, l.local_addr().map(|a| a.port()).unwrap_or(0), mappings);
            }
            Ok(l)
        }
        other => other,
    }
}

fn bind_and_register_at(
    tracker: &TrackerClient,
    cfg: &NodeConfig,
    mappings: &mut Vec<Mapping>,
) -> Result<TcpListener, NodeError> {
    // The port to register for the one we listen on.
    let mut public = |port: u16| match cfg.port_forward {
        true => forward(Proto::Tcp, port, mappings).unwrap_or(port),
        false => port,
    };
    match cfg.port {
        None => {
            let me = tracker.register(None)?;
            let l = match bind(me.ip(), me.port()) {
                Ok(l) => l,
                Err(_) => {
                    warn!("port {} is taken here; using another", me.port());
                    bind(me.ip(), 0)
                        .map_err(|err| NodeError::Listen { addr: SocketAddr::new(me.ip(), 0), err })?
                }
            };
            let port = l.local_addr().map(|a| a.port()).unwrap_or(0);
            let announced = public(port);
            if announced != me.port() {
                let _ = tracker.leave();
                tracker.register(Some(announced))?;
            }
            Ok(l)
        }
        Some(port) => {
            let ip = local_ip_towards(cfg.tracker)
                .map_err(|err| TrackerError::Unreachable { addr: cfg.tracker, err })?;
            let l =
                bind(ip, port).map_err(|err| NodeError::Listen { addr: SocketAddr::new(ip, port), err })?;
            let port = l.local_addr().map(|a| a.port()).unwrap_or(port);
            tracker.register(Some(public(port)))?;
            Ok(l)
        }
    }
}

/// Asks the router to forward `port`; on success the mapping joins `mappings` and its
/// public port is returned, else a warning says why and peers outside cannot dial us.
fn forward(proto: Proto, port: u16, mappings: &mut Vec<Mapping>) -> Option<u16> {
    match port_map::map(proto, port) {
        Ok(m) => {
            info!(
                "Port forwarding: the router forwards {proto} {} to our port {port} ({}, lease {} s)",
                m.external,
                m.via(),
                m.lease.as_secs()
            );
            let public = m.external.port();
            mappings.push(m);
            Some(public)
        }
        Err(e) => {
            warn!(
                "port forwarding: {e}; peers outside the router cannot dial this peer on {proto} port {port}"
            );
            None
        }
    }
}

fn bind(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, port))
}

/// The local address this host uses to reach `tracker`.
fn local_ip_towards(tracker: SocketAddr) -> io::Result<IpAddr> {
    let s = TcpStream::connect_timeout(&tracker, Duration::from_secs(5))?;
    Ok(s.local_addr()?.ip())
}

/// Heartbeats every announce interval; the tracker client registers again by itself when
/// the tracker forgot this peer, and joins (on `port`) when it started without one.
fn spawn_announcer(
    tracker: Arc<TrackerClient>,
    port: u16,
    dialer: Dialer,
    stop: crossbeam_channel::Receiver<()>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("announcer".into())
        .spawn(move || {
            let ticker = tick(tracker.announce_interval());
            loop {
                select! {
                    recv(stop) -> _ => break,
                    recv(ticker) -> _ => {
                        let beat = if tracker.me().is_some() { tracker.announce(vec![], vec![]) } else { tracker.join(port) };
                        if let Err(e) = beat {
                            warn!("tracker unreachable: {e}");
                        } else if tracker.http_announce().is_some() {
                            // BitTorrent clients in our swarms that will not dial us.
                            for (id, to) in tracker.leechers().unwrap_or_default() {
                                if dialable(to, tracker.addr()) {
                                    dialer.dial(id, to);
                                }
                            }
                        }
                    },
                }
            }
        })
        .expect("spawning the announcer")
}

/// Whether to dial a BitTorrent leecher the tracker named. One it heard from a loopback
/// address is on the tracker's host, or behind a reverse proxy there (every announce through
/// nginx comes from 127.0.0.1): dialed only when this peer reaches the tracker over loopback
/// too, so seeders elsewhere never dial their own loopback.
fn dialable(leecher: SocketAddr, tracker: SocketAddr) -> bool {
    let ip = leecher.ip();
    leecher.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && (!ip.is_loopback() || tracker.ip().is_loopback())
}

/// How often every share is announced on the DHT again (stored peers expire after about
/// 30 minutes; BEP 5 suggests re-announcing well within that).
const DHT_REANNOUNCE: Duration = Duration::from_secs(15 * 60);

/// Announces every share (complete or downloading) on the DHT when it appears, and again
/// every [`DHT_REANNOUNCE`].
fn spawn_dht_announcer(
    dht: PeerDht,
    shares: Arc<Shares>,
    port: u16,
    stop: crossbeam_channel::Receiver<()>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("dht-announcer".into())
        .spawn(move || {
            let mut announced: std::collections::HashMap<crate::hash::ContentId, std::time::Instant> =
                std::collections::HashMap::new();
            let ticker = tick(Duration::from_secs(1));
            loop {
                let due: Vec<_> = shares
                    .public_ids()
                    .into_iter()
                    .filter(|id| announced.get(id).is_none_or(|t| t.elapsed() >= DHT_REANNOUNCE))
                    .collect();
                for id in due {
                    if stop.try_recv() != Err(crossbeam_channel::TryRecvError::Empty) {
                        return;
                    }
                    if dht.announce(id, port) {
                        info!("Announced {id} on the DHT");
                        announced.insert(id, std::time::Instant::now());
                    }
                }
                select! {
                    recv(stop) -> _ => break,
                    recv(ticker) -> _ => {}
                }
            }
        })
        .expect("spawning the DHT announcer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_leechers_are_dialed_only_over_a_loopback_tracker() {
        let proxied: SocketAddr = "127.0.0.1:51413".parse().unwrap();
        let remote: SocketAddr = "10.0.0.7:6881".parse().unwrap();
        let tracker_here: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let tracker_there: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert!(dialable(proxied, tracker_here));
        assert!(!dialable(proxied, tracker_there), "a seeder elsewhere dialed its own loopback");
        assert!(dialable(remote, tracker_there) && dialable(remote, tracker_here));
        for bad in ["0.0.0.0:6881", "224.0.0.1:6881", "10.0.0.7:0"] {
            assert!(!dialable(bad.parse().unwrap(), tracker_there), "{bad}");
        }
    }
}
