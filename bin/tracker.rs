//! `tracker`: indexes which peers have which files. Holds no files itself.

use clap::Parser;
use p2p_share::logging;
use p2p_share::tracker::{Tracker, TrackerConfig, TrackerOptions};
use simplelog::LevelFilter;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The p2p-share tracker: knows which peers share which files and who is downloading what.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address and port to listen on ([::1]:5000 for IPv6).
    #[arg(long, default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Worker threads answering requests.
    #[arg(long, default_value_t = 128)]
    workers: usize,
    /// First port handed to peers that bring none (then +1, +2, ...).
    #[arg(long, default_value_t = 6000)]
    first_peer_port: u16,
    /// Seconds between peer announces; a peer silent for 3 intervals is dropped.
    #[arg(long, default_value_t = 10)]
    announce_interval: u64,
    /// Open connections allowed from one address.
    #[arg(long, default_value_t = 64)]
    max_conns_per_ip: usize,
    /// Also write the log to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log level: error, warn, info or debug.
    #[arg(long, default_value = "info")]
    log_level: LevelFilter,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    logging::init(args.log_level, args.log.as_deref()).map_err(|e| format!("cannot open log file: {e}"))?;
    if args.announce_interval == 0 {
        return Err("--announce-interval must be at least 1 second".into());
    }
    let opts = TrackerOptions {
        bind: args.bind,
        workers: args.workers.max(1),
        rules: TrackerConfig {
            first_peer_port: args.first_peer_port,
            announce_interval: Duration::from_secs(args.announce_interval),
            ..TrackerConfig::default()
        },
        max_conns_per_ip: args.max_conns_per_ip.max(1),
        ..TrackerOptions::default()
    };
    let tracker = Tracker::bind(opts).map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let stop = tracker.shutdown_handle();
    ctrlc::set_handler(move || stop.stop()).map_err(|e| format!("cannot install Ctrl+C handler: {e}"))?;
    tracker.run().map_err(|e| e.to_string())
}
