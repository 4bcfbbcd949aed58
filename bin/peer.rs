//! `peer`: shares `DIR/files`, serves chunks to others, downloads from the swarm.

use clap::{Parser, Subcommand};
use p2p_share::cli::app::{self, Action, CliError};
use p2p_share::cli::settings::{self, Given};
use p2p_share::download::Options;
use p2p_share::logging;
use simplelog::LevelFilter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A p2p-share peer: shares the files in DIR/files and downloads files from other peers.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The tracker's address [default: 127.0.0.1:5000].
    #[arg(long, global = true, value_name = "ADDR:PORT")]
    tracker: Option<String>,
    /// The peer's folder: shares DIR/files, keeps partial downloads in DIR/chunks [default: .].
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Port to serve on (default: the tracker assigns one; 0 = any free port).
    #[arg(long, global = true, value_name = "P")]
    port: Option<u16>,
    /// Cap on all uploads, bytes per second with K, M, G suffixes (binary): 4M = 4 MiB/s.
    #[arg(long, global = true, value_name = "RATE")]
    upload_limit: Option<String>,
    /// Connections the peer server takes from one address (other peers behind one NAT,
    /// or a crowd of peers on one test host).
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_conns_per_ip: u16,
    /// Join the public Mainline DHT (its well-known bootstrap nodes) to find peers without
    /// a tracker. Off by default.
    #[arg(long, global = true)]
    dht: bool,
    /// Join a private DHT through these nodes (e.g. a tracker started with --dht-port).
    #[arg(long, global = true, value_name = "ADDR:PORT[,ADDR:PORT...]")]
    dht_bootstrap: Option<String>,
    /// UDP port of this peer's DHT node [default: the same number as its TCP port].
    #[arg(long, global = true, value_name = "P")]
    dht_port: Option<u16>,
    /// BitTorrent encryption (MSE/PE): prefer (take both, dial encrypted first, then
    /// plain), require (encrypted only, RC4 both ways), off (plain only) [default: prefer].
    #[arg(long, global = true, value_name = "MODE")]
    encryption: Option<String>,
    /// Ask the home router to forward this peer's port (and its DHT port) so peers outside
    /// can dial it: NAT-PMP, then UPnP IGD; renewed while the peer runs, removed when it
    /// stops. Off by default.
    #[arg(long, global = true)]
    port_forward: bool,
    /// Settings from an INI file ([peer] tracker, dir, port, upload_limit, dht, dht_bootstrap,
    /// dht_port, encryption, port_forward); flags win.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also write the log to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Log level: error, warn, info or debug.
    #[arg(long, global = true, default_value = "info")]
    log_level: LevelFilter,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Share DIR/files and serve until Ctrl+C or `peer stop`: the long-running peer of DIR,
    /// which `status`, `pause`, `resume`, `remove`, `stop` and `download` talk to.
    Serve {
        /// Where its control API listens (its secret is written into DIR/.p2p-share.lock).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:0")]
        control: std::net::SocketAddr,
    },
    /// Every share and download of the peer running on DIR.
    Status,
    /// Pause a download of the running peer (by number, name or what was asked for).
    Pause { key: String },
    /// Resume a paused download of the running peer from the chunks it has.
    Resume { key: String },
    /// Stop a download or a share of the running peer (by number, name or content id).
    Remove {
        key: String,
        /// Also delete its data (the file in DIR/files, the partial download).
        #[arg(long)]
        delete: bool,
    },
    /// The peer running on DIR leaves the swarm and exits.
    Stop,
    /// Print the link that opens the running peer's web page (it carries the secret: keep it
    /// to yourself).
    Page,
    /// Every file and who has it.
    List,
    /// Print the magnet link of DIR/files/NAME (naming the peer serving DIR, if one runs).
    Magnet { name: String },
    /// Write the .torrent of DIR/files/NAME (default DIR/NAME.torrent); print its path and
    /// magnet link.
    Torrent {
        name: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Who has NAME (exact, else case-insensitive substring).
    Search { name: String },
    /// Fetch files into DIR/files: by name, content id (info-hash), magnet link or the path
    /// of a .torrent file.
    Download {
        #[arg(required = true)]
        names: Vec<String>,
        /// The first source: a peer's port (as listed) or address.
        #[arg(long, value_name = "PEER")]
        from: Option<String>,
        /// Also fetch from this peer (a p2p-share peer or any BitTorrent client); repeatable.
        /// With a magnet link or a .torrent, enough to download with no tracker running.
        #[arg(long = "peer", value_name = "ADDR:PORT")]
        peers: Vec<std::net::SocketAddr>,
        /// Keep serving afterwards until Ctrl+C.
        #[arg(long)]
        stay: bool,
        /// With a peer running on DIR, hand the downloads to it and return at once (see
        /// `peer status`).
        #[arg(long)]
        detach: bool,
        /// Write when each chunk arrived and from whom to FILE (CSV: file,chunk,seconds,source).
        #[arg(long, value_name = "FILE")]
        timeline: Option<PathBuf>,
        /// Give up when the sources sent next to nothing for this many seconds (1-86400;
        /// the partial is kept).
        #[arg(long, value_name = "SECS", default_value_t = 30,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        stall_timeout: u64,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, CliError> {
    logging::init(args.log_level, args.log.as_deref()).map_err(CliError::Log)?;
    let given = Given {
        tracker: args.tracker,
        dir: args.dir,
        port: args.port,
        upload_limit: args.upload_limit,
        config: args.config,
        dht: args.dht,
        dht_bootstrap: args.dht_bootstrap,
        dht_port: args.dht_port,
        encryption: args.encryption,
        port_forward: args.port_forward,
    };
    let mut cfg = settings::resolve(&given)?;
    cfg.max_conns_per_ip = args.max_conns_per_ip.into();
    let action = match args.command {
        None => Action::Menu,
        Some(Command::Serve { control }) => Action::Serve { control },
        Some(Command::Status) => Action::Status,
        Some(Command::Pause { key }) => Action::Remote { action: "pause", key, delete: false },
        Some(Command::Resume { key }) => Action::Remote { action: "resume", key, delete: false },
        Some(Command::Remove { key, delete }) => Action::Remote { action: "remove", key, delete },
        Some(Command::Stop) => Action::Stop,
        Some(Command::Page) => Action::Page,
        Some(Command::List) => Action::List,
        Some(Command::Search { name }) => Action::Search(name),
        Some(Command::Magnet { name }) => Action::Magnet(name),
        Some(Command::Torrent { name, out }) => Action::Torrent { name, out },
        Some(Command::Download { names, from, peers, stay, detach, timeline, stall_timeout }) => {
            let opts =
                Options { stall_timeout: Duration::from_secs(stall_timeout), peers, ..Options::default() };
            Action::Download { names, from, stay, timeline, opts, detach }
        }
    };
    app::run(action, &cfg)
}
