//! The `peer` binary's work, behind its argument parsing: start a node when the command
//! needs one, run the command, leave cleanly on Ctrl+C or at the end.

use super::commands;
use super::links::{self, LinkError};
use super::menu;
use super::remote;
use super::settings::SettingsError;
use crate::control::auth::Guard;
use crate::control::client::{Remote, RemoteError};
use crate::control::jobs::{Jobs, Runner};
use crate::control::server::{Control, ControlServer};
use crate::download::{DownloadError, Options, Target};
use crate::peer::node::{serving, LOCK_FILE};
use crate::peer::{Node, NodeConfig, NodeError};
use crate::tracker_client::TrackerError;
use crossbeam_channel::{bounded, select, Receiver};
use log::info;
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// What the user asked the peer to do.
#[derive(Clone)]
pub enum Action {
    /// Share and serve until Ctrl+C (or `peer stop`), with the control API on this address.
    Serve {
        control: SocketAddr,
    },
    /// The running peer's shares and downloads.
    Status,
    /// Pause, resume or remove (`delete`: with its data) a download or share of the running peer.
    Remote {
        action: &'static str,
        key: String,
        delete: bool,
    },
    /// The running peer leaves.
    Stop,
    /// The link to the running peer's page.
    Page,
    List,
    Search(String),
    Magnet(String),
    Torrent {
        name: String,
        out: Option<PathBuf>,
    },
    Download {
        names: Vec<String>,
        from: Option<String>,
        stay: bool,
        timeline: Option<PathBuf>,
        opts: Options,
        /// With a running peer: hand the downloads over and return at once.
        detach: bool,
    },
    /// The original's interactive menu on stdin.
    Menu,
}

/// Why the peer could not do what was asked.
#[derive(Debug)]
pub enum CliError {
    Settings(SettingsError),
    Log(std::io::Error),
    Tracker(TrackerError),
    Node(NodeError),
    Link(LinkError),
    Target(String, DownloadError),
    CtrlC(ctrlc::Error),
    Thread(std::io::Error),
    /// No peer runs on the folder (a command that needs one).
    NotRunning(PathBuf),
    /// The folder a command reads does not exist.
    NoFolder(PathBuf),
    Remote(RemoteError),
    /// An option the running peer cannot take over.
    NotHandedOver(&'static str),
    Control(std::io::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Settings(e) => write!(f, "{e}"),
            CliError::Log(e) => write!(f, "cannot open log file: {e}"),
            CliError::Tracker(e) => write!(f, "{e}"),
            CliError::Node(e) => write!(f, "{e}"),
            CliError::Link(e) => write!(f, "{e}"),
            CliError::Target(name, e) => write!(f, "{}: {e}", crate::text::one_line(name)),
            CliError::CtrlC(e) => write!(f, "cannot install Ctrl+C handler: {e}"),
            CliError::Thread(e) => write!(f, "cannot start a thread: {e}"),
            CliError::NotRunning(dir) => write!(
                f,
                "no peer is running on {} (start one with `peer --dir {} serve`)",
                dir.display(),
                dir.display()
            ),
            CliError::Remote(e) => write!(f, "{e}"),
            CliError::NoFolder(dir) => write!(f, "folder {} does not exist (give --dir the peer's folder)", dir.display()),
            CliError::NotHandedOver(opt) => write!(
                f,
                "a peer is running on this folder and {opt} is not handed over to it: stop it (`peer stop`) or use another --dir"
            ),
            CliError::Control(e) => write!(f, "cannot start the control API: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<SettingsError> for CliError {
    fn from(e: SettingsError) -> Self {
        CliError::Settings(e)
    }
}

impl From<TrackerError> for CliError {
    fn from(e: TrackerError) -> Self {
        CliError::Tracker(e)
    }
}

/// Runs `action` for a peer configured by `cfg`; the exit code says how it went.
pub fn run(action: Action, cfg: &NodeConfig) -> Result<ExitCode, CliError> {
    let out = &mut std::io::stdout();
    match action {
        Action::List => commands::list(cfg, out).map(|_| ExitCode::SUCCESS).map_err(CliError::from),
        Action::Search(name) => {
            let n = commands::search(cfg, &name, out)?;
            Ok(if n > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Action::Magnet(_) | Action::Torrent { .. } if !cfg.dir.is_dir() => {
            Err(CliError::NoFolder(cfg.dir.clone()))
        }
        Action::Magnet(name) => {
            links::magnet(&cfg.dir, &name, cfg.tracker, out).map_err(CliError::Link)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Torrent { name, out: dest } => {
            links::torrent(&cfg.dir, &name, dest.as_deref(), cfg.tracker, out).map_err(CliError::Link)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Serve { control } => serve(cfg, control),
        Action::Status => {
            remote::status(&remote_of(cfg)?, out).map_err(CliError::Remote)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Remote { action, key, delete } => {
            remote::act(&remote_of(cfg)?, &key, action, delete, out).map_err(CliError::Remote)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Page => {
            let r = remote_of(cfg)?;
            println!("http://{}/login?secret={}", r.addr, r.secret);
            Ok(ExitCode::SUCCESS)
        }
        Action::Stop => {
            remote::stop(&remote_of(cfg)?).map_err(CliError::Remote)?;
            println!("The peer on {} is leaving", cfg.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Action::Download { names, from, stay: _, timeline, opts, detach }
            if serving(&cfg.dir).is_some_and(|s| s.control.is_some()) =>
        {
            let remote = remote_of(cfg)?;
            for (given, what) in [
                (from.is_some(), "--from"),
                (!opts.peers.is_empty(), "--peer"),
                (timeline.is_some(), "--timeline"),
            ] {
                if given {
                    return Err(CliError::NotHandedOver(what));
                }
            }
            hand_over(&remote, &names, detach)
        }
        Action::Download { names, from, stay, timeline, opts, detach: _ } => {
            // Bad targets are named before anything starts.
            let mut targets = Vec::new();
            for n in &names {
                targets.push(Target::parse(n).map_err(|e| CliError::Target(n.clone(), e))?);
            }
            // Downloads that name their file by info-hash and know a source need no tracker.
            let offline_ok = targets.iter().all(|t| t.needs_no_tracker(opts.peers.len(), cfg.dht.is_some()));
            let cfg = &NodeConfig { tracker_optional: offline_ok, ..cfg.clone() };
            let (node, ctrl_c) = start(cfg)?;
            // Ctrl+C stops the downloads within a second, their verified chunks kept.
            let stop = Arc::new(AtomicBool::new(false));
            let (done_tx, done_rx) = bounded::<()>(0);
            let watcher = {
                let (stop, ctrl_c) = (Arc::clone(&stop), ctrl_c.clone());
                thread::Builder::new()
                    .name("ctrl-c".into())
                    .spawn(move || {
                        select! {
                            recv(ctrl_c) -> _ => {
                                eprintln!("peer: stopping the download (its chunks are kept)...");
                                stop.store(true, Ordering::SeqCst);
                            }
                            recv(done_rx) -> _ => {}
                        }
                    })
                    .map_err(CliError::Thread)?
            };
            let opts = Options { stop: Some(Arc::clone(&stop)), ..opts };
            let ok = commands::download(&node, &names, from.as_deref(), timeline.as_deref(), opts);
            drop(done_tx);
            let _ = watcher.join();
            let stopped = stop.load(Ordering::SeqCst);
            if stay && !stopped {
                println!("Serving as a peer to help others; press ctrl + c to leave.");
                let _ = ctrl_c.recv();
            }
            node.leave();
            Ok(match (ok, stopped) {
                (_, true) => ExitCode::from(130),
                (true, false) => ExitCode::SUCCESS,
                (false, false) => ExitCode::FAILURE,
            })
        }
        Action::Menu => menu_until_done(cfg),
    }
}

/// The control API of the peer running on the folder.
fn remote_of(cfg: &NodeConfig) -> Result<Remote, CliError> {
    serving(&cfg.dir).and_then(|s| s.control).ok_or_else(|| CliError::NotRunning(cfg.dir.clone()))
}

/// `serve`: the long-running peer of the folder, with its control API; until Ctrl+C or
/// `peer stop`.
fn serve(cfg: &NodeConfig, control_addr: SocketAddr) -> Result<ExitCode, CliError> {
    // On the DHT, a peer serves whether or not the tracker is up.
    let cfg = &NodeConfig { tracker_optional: cfg.dht.is_some(), ..cfg.clone() };
    let running = Running::start(cfg, control_addr)?;
    say_ready(cfg, &running.node);
    let ctrl_c = ctrl_c_channel()?;
    select! {
        recv(ctrl_c) -> _ => {}
        recv(running.stop_asked) -> _ => {}
    }
    running.leave();
    Ok(ExitCode::SUCCESS)
}

/// The long-running peer of a folder (`serve`, the menu): its node, the downloads handed
/// to it, and its control API, whose address the lock file names.
struct Running {
    node: Arc<Node>,
    jobs: Jobs,
    server: ControlServer,
    /// Signalled when `peer stop` asks it to leave.
    stop_asked: Receiver<()>,
}

impl Running {
    fn start(cfg: &NodeConfig, control_addr: SocketAddr) -> Result<Running, CliError> {
        let listener = TcpListener::bind(control_addr).map_err(CliError::Control)?;
        let addr = listener.local_addr().map_err(CliError::Control)?;
        let remote = Remote { addr, secret: crate::random::token() };
        let (stop_tx, stop_asked) = bounded::<()>(1);
        let node = Arc::new(Node::start(cfg).map_err(CliError::Node)?);
        let runner: Runner = {
            let node = Arc::clone(&node);
            Arc::new(move |target: &str, opts: &Options| node.download(target, None, opts))
        };
        let jobs = Jobs::new(runner, Options::default());
        let control = Control {
            guard: Guard::new(addr, remote.secret.clone()),
            jobs: jobs.clone(),
            shares: Arc::clone(&node.shares),
            tracker: Arc::clone(&node.tracker),
            peer: node.addr(),
            dir: cfg.dir.clone(),
            stop: stop_tx,
            up_rates: Default::default(),
        };
        let server = ControlServer::start(listener, control).map_err(CliError::Control)?;
        // The lock file names the API before the peer says it is ready.
        node.record_control(&remote).map_err(CliError::Control)?;
        info!("Control API on http://{addr}/ (its secret is in {})", cfg.dir.join(LOCK_FILE).display());
        Ok(Running { node, jobs, server, stop_asked })
    }

    /// Stops the downloads (their chunks kept) and the API, and leaves the swarm.
    fn leave(mut self) {
        self.jobs.stop_all();
        self.server.stop();
        self.node.leave();
    }
}

/// `download` with a peer running on the folder: the downloads are added to it; unless
/// `detach`, followed until they end (Ctrl+C pauses them), as a download of our own prints.
fn hand_over(remote: &Remote, names: &[String], detach: bool) -> Result<ExitCode, CliError> {
    let mut ids = Vec::new();
    for n in names {
        let id = remote::add(remote, n).map_err(CliError::Remote)?;
        println!("Handed '{n}' to the running peer as download {id}");
        ids.push(id);
    }
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    let (tx, ctrl_c) = bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(CliError::CtrlC)?;
    let out = &mut std::io::stdout();
    let mut ok = true;
    for id in ids {
        ok &= remote::follow(remote, id, &ctrl_c, out).map_err(CliError::Remote)?;
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The menu reads stdin on its own thread; this one waits for it to end or for Ctrl+C,
/// and either way the peer leaves as `serve` does (the tracker is told, the server stops).
fn menu_until_done(cfg: &NodeConfig) -> Result<ExitCode, CliError> {
    // The menu's peer is the running peer of its folder too: `peer status` and the others
    // reach it.
    let running = Running::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    say_ready(cfg, &running.node);
    let ctrl_c = ctrl_c_channel()?;
    let (done_tx, done_rx) = bounded::<()>(1);
    let menu_node = Arc::clone(&running.node);
    thread::Builder::new()
        .name("menu".into())
        .spawn(move || {
            println!();
            menu::run(&menu_node, &mut std::io::stdin().lock(), &mut std::io::stdout());
            let _ = done_tx.send(());
        })
        .map_err(CliError::Thread)?;
    select! {
        recv(done_rx) -> _ => {}
        recv(ctrl_c) -> _ => println!(),
        recv(running.stop_asked) -> _ => println!(),
    }
    println!("Removing peer...\n-----\nShutting down this peer!\n-----");
    // The menu thread may still wait for input; the process ends when this returns.
    running.leave();
    Ok(ExitCode::SUCCESS)
}

/// Starts the node and a Ctrl+C handler whose signal arrives on the returned channel.
fn start(cfg: &NodeConfig) -> Result<(Node, Receiver<()>), CliError> {
    let node = Node::start(cfg).map_err(CliError::Node)?;
    say_ready(cfg, &node);
    Ok((node, ctrl_c_channel()?))
}

/// The lines that tell scripts and people the peer is ready.
fn say_ready(cfg: &NodeConfig, node: &Node) {
    println!("Tracker is running on port : {}", cfg.tracker.port());
    println!("You are running on port    : {}", node.addr().port());
}

/// A channel Ctrl+C is signalled on.
fn ctrl_c_channel() -> Result<Receiver<()>, CliError> {
    let (tx, rx) = bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(CliError::CtrlC)?;
    Ok(rx)
}
