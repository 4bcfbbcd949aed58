//! `tracker`: indexes which peers have which files. Holds no files itself.

use clap::Parser;
use p2p_share::dht::{DhtConfig, PeerDht};
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
    /// Worker threads answering requests (1-1024).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
    /// First port handed to peers that bring none (then +1, +2, ...; 1-65535).
    #[arg(long, default_value_t = 6000, value_parser = clap::value_parser!(u16).range(1..))]
    first_peer_port: u16,
    /// Seconds between peer announces (1-3600); a peer silent for 3 intervals is dropped.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    announce_interval: u64,
    /// Open connections allowed from one address (1-1024).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_conns_per_ip: u16,
    /// Also serve HTTP here: BitTorrent announce and scrape, a status page at /, and
    /// Prometheus metrics at /metrics (e.g. 127.0.0.1:8080; off by default).
    #[arg(long, value_name = "ADDR:PORT")]
    http: Option<SocketAddr>,
    /// Also run a Mainline DHT node on this UDP port: the first node of a private DHT (or
    /// one joining --dht-bootstrap), so a deployment has one well-known bootstrap address.
    #[arg(long, value_name = "P")]
    dht_port: Option<u16>,
    /// With --dht-port: join an existing DHT through these nodes.
    #[arg(long, value_name = "ADDR:PORT[,ADDR:PORT...]")]
    dht_bootstrap: Option<String>,
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
    let opts = TrackerOptions {
        bind: args.bind,
        workers: usize::from(args.workers),
        rules: TrackerConfig {
            first_peer_port: args.first_peer_port,
            announce_interval: Duration::from_secs(args.announce_interval),
            ..TrackerConfig::default()
        },
        max_conns_per_ip: usize::from(args.max_conns_per_ip),
        http: args.http,
        ..TrackerOptions::default()
    };
    bound_malloc_arenas();
    let where_ = args.http.map_or(args.bind.to_string(), |h| format!("{} or {h}", args.bind));
    let tracker = Tracker::bind(opts).map_err(|e| format!("cannot listen on {where_}: {e}"))?;
    // The DHT node lives as long as the tracker runs.
    let _dht = match args.dht_port {
        None => None,
        Some(port) => {
            let bind = match args.bind.ip() {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
            };
            let bootstrap: Vec<String> = args
                .dht_bootstrap
                .iter()
                .flat_map(|l| l.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let public = DhtConfig::is_public(&bootstrap);
            Some(PeerDht::start(&DhtConfig { bootstrap, port, bind, public }).map_err(|e| e.to_string())?)
        }
    };
    let stop = tracker.shutdown_handle();
    ctrlc::set_handler(move || stop.stop()).map_err(|e| format!("cannot install Ctrl+C handler: {e}"))?;
    tracker.run().map_err(|e| e.to_string())
}

/// glibc gives each busy thread its own malloc arena and keeps freed memory in them, so
/// after a burst of large announces the tracker's RSS stayed at its peak long after the
/// peers expired. Two arenas, and a trim every few seconds, give it back.
fn bound_malloc_arenas() {
    // SAFETY: mallopt and malloc_trim only tune and trim glibc's allocator; both are
    // thread-safe and take no pointers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let _ = std::thread::Builder::new().name("malloc-trim".into()).spawn(|| loop {
        std::thread::sleep(Duration::from_secs(5));
        // SAFETY: as above.
        unsafe {
            libc::malloc_trim(0);
        }
    });
}
