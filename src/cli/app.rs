//! The `peer` binary's work, behind its argument parsing: start a node when the command
//! needs one, run the command, leave cleanly on Ctrl+C or at the end.

use super::commands;
use super::links::{self, LinkError};
use super::menu;
use super::settings::SettingsError;
use crate::download::{DownloadError, Options, Target};
use crate::peer::{Node, NodeConfig, NodeError};
use crate::tracker_client::TrackerError;
use crossbeam_channel::{bounded, select, Receiver};
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// What the user asked the peer to do.
#[derive(Clone)]
pub enum Action {
    /// Share and serve until Ctrl+C.
    Serve,
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
        Action::Magnet(name) => {
            links::magnet(&cfg.dir, &name, out).map_err(CliError::Link)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Torrent { name, out: dest } => {
            links::torrent(&cfg.dir, &name, dest.as_deref(), out).map_err(CliError::Link)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Serve => {
            // On the DHT, a peer serves whether or not the tracker is up.
            let cfg = &NodeConfig { tracker_optional: cfg.dht.is_some(), ..cfg.clone() };
            let (node, ctrl_c) = start(cfg)?;
            let _ = ctrl_c.recv();
            node.leave();
            Ok(ExitCode::SUCCESS)
        }
        Action::Download { names, from, stay, timeline, opts } => {
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

/// The menu reads stdin on its own thread; this one waits for it to end or for Ctrl+C,
/// and either way the peer leaves as `serve` does (the tracker is told, the server stops).
fn menu_until_done(cfg: &NodeConfig) -> Result<ExitCode, CliError> {
    let (node, ctrl_c) = start(cfg)?;
    let node = Arc::new(node);
    let (done_tx, done_rx) = bounded::<()>(1);
    let menu_node = Arc::clone(&node);
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
    }
    println!("Removing peer...\n-----\nShutting down this peer!\n-----");
    // The menu thread may still wait for input; the process ends when this returns.
    node.leave();
    Ok(ExitCode::SUCCESS)
}

/// Starts the node and a Ctrl+C handler whose signal arrives on the returned channel.
fn start(cfg: &NodeConfig) -> Result<(Node, Receiver<()>), CliError> {
    let node = Node::start(cfg).map_err(CliError::Node)?;
    println!("Tracker is running on port : {}", cfg.tracker.port());
    println!("You are running on port    : {}", node.addr().port());
    let (tx, rx) = bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    })
    .map_err(CliError::CtrlC)?;
    Ok((node, rx))
}
