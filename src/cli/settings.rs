//! Peer settings from the command line and an optional INI file (`--config`); flags win.
//!
//! ```ini
//! [peer]
//! tracker = 127.0.0.1:5000
//! dir = ./client1
//! port = 6000
//! upload_limit = 4M
//! encryption = prefer
//! port_forward = no
//! ```

use crate::bt::mse::Encryption;
use crate::cli::rate::{parse_rate, BadRate};
use crate::dht::PUBLIC_BOOTSTRAP;
use crate::peer::node::DhtSettings;
use crate::peer::options::ServerOptions;
use crate::peer::NodeConfig;
use configparser::ini::Ini;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Why the settings cannot be used.
#[derive(Debug)]
pub enum SettingsError {
    /// The config file could not be read or parsed (the INI parser's reason).
    Config {
        path: PathBuf,
        reason: String,
    },
    BadPort(String),
    BadRate(BadRate),
    BadAddr(String),
    BadEncryption(String),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Config { path, reason } => {
                write!(f, "cannot read config {}: {reason}", path.display())
            }
            SettingsError::BadPort(p) => write!(f, "config: port '{p}' is not a port number"),
            SettingsError::BadRate(e) => write!(f, "{e}"),
            SettingsError::BadAddr(s) => write!(f, "'{s}' is not an address like 127.0.0.1:5000"),
            SettingsError::BadEncryption(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for SettingsError {}

/// Settings as given on the command line (all optional).
#[derive(Debug, Default, Clone)]
pub struct Given {
    pub tracker: Option<String>,
    pub dir: Option<PathBuf>,
    pub port: Option<u16>,
    pub upload_limit: Option<String>,
    pub config: Option<PathBuf>,
    /// `--dht`: join the public DHT.
    pub dht: bool,
    /// `--dht-bootstrap ADDR:PORT,...`: join a private DHT through these nodes.
    pub dht_bootstrap: Option<String>,
    pub dht_port: Option<u16>,
    /// `--encryption prefer|require|off`.
    pub encryption: Option<String>,
    /// `--port-forward`: ask the home router to forward our ports.
    pub port_forward: bool,
}

/// Resolves flags, then the config file, then defaults, into a node configuration.
pub fn resolve(given: &Given) -> Result<NodeConfig, SettingsError> {
    let ini = match &given.config {
        Some(path) => Some(load(path)?),
        None => None,
    };
    let from_ini = |key: &str| ini.as_ref().and_then(|i| i.get("peer", key));
    let tracker =
        given.tracker.clone().or_else(|| from_ini("tracker")).unwrap_or_else(|| "127.0.0.1:5000".into());
    let tracker = parse_addr(&tracker)?;
    let dir = given
        .dir
        .clone()
        .or_else(|| from_ini("dir").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let port = match (given.port, from_ini("port")) {
        (Some(p), _) => Some(p),
        (None, Some(p)) => Some(p.parse().map_err(|_| SettingsError::BadPort(p))?),
        (None, None) => None,
    };
    let upload_limit = match given.upload_limit.clone().or_else(|| from_ini("upload_limit")) {
        Some(r) => Some(parse_rate(&r).map_err(SettingsError::BadRate)?),
        None => None,
    };
    let dht = dht_settings(given, &from_ini)?;
    let encryption = match given.encryption.clone().or_else(|| from_ini("encryption")) {
        Some(e) => e.parse().map_err(SettingsError::BadEncryption)?,
        None => Encryption::default(),
    };
    Ok(NodeConfig {
        tracker,
        dir,
        port,
        upload_limit,
        tracker_optional: false,
        dht,
        max_conns_per_ip: ServerOptions::default().max_conns_per_ip,
        encryption,
        port_forward: given.port_forward || from_ini("port_forward").is_some_and(|v| is_yes(&v)),
    })
}

/// An INI switch that is on.
fn is_yes(v: &str) -> bool {
    matches!(v.trim(), "true" | "yes" | "1" | "on")
}

/// The DHT settings: a private DHT's bootstrap nodes win over `--dht` (the public ones);
/// neither, in flags or the INI file: the DHT stays off.
fn dht_settings(
    given: &Given,
    from_ini: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<DhtSettings>, SettingsError> {
    let port = match (given.dht_port, from_ini("dht_port")) {
        (Some(p), _) => Some(p),
        (None, Some(p)) => Some(p.parse().map_err(|_| SettingsError::BadPort(p))?),
        (None, None) => None,
    };
    let bootstrap = given.dht_bootstrap.clone().or_else(|| from_ini("dht_bootstrap"));
    let public = given.dht || from_ini("dht").is_some_and(|v| is_yes(&v));
    let bootstrap: Vec<String> = match bootstrap {
        Some(list) => {
            let nodes: Vec<String> =
                list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            for n in &nodes {
                parse_addr(n)?;
            }
            nodes
        }
        None if public => PUBLIC_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
        None => return Ok(None),
    };
    Ok(Some(DhtSettings { bootstrap, port }))
}

/// The keys a `[peer]` section may hold.
pub const KEYS: [&str; 9] = [
    "tracker",
    "dir",
    "port",
    "upload_limit",
    "dht",
    "dht_bootstrap",
    "dht_port",
    "encryption",
    "port_forward",
];

fn load(path: &Path) -> Result<Ini, SettingsError> {
    let bad = |reason: String| SettingsError::Config { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    check_ini(&text).map_err(bad)?;
    let mut ini = Ini::new();
    ini.read(text).map_err(bad)?;
    Ok(ini)
}

/// Refuses what a config file should not hold, naming the line: a section other than
/// `[peer]`, a setting outside it, a key we do not know (a typo would be ignored otherwise),
/// a line that is not `key = value`.
fn check_ini(text: &str) -> Result<(), String> {
    let mut in_peer = false;
    let mut seen_peer = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = n + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_peer = name.trim().eq_ignore_ascii_case("peer");
            seen_peer |= in_peer;
            if !in_peer {
                return Err(format!(
                    "line {n}: section [{}] is not known; settings go in [peer]",
                    name.trim()
                ));
            }
            continue;
        }
        let Some((key, _)) = line.split_once(['=', ':']) else {
            return Err(format!("line {n}: '{}' is not 'key = value'", crate::text::one_line(line)));
        };
        let key = key.trim().to_ascii_lowercase();
        if !in_peer {
            return Err(format!("line {n}: '{key}' is outside a [peer] section"));
        }
        if !KEYS.contains(&key.as_str()) {
            return Err(format!("line {n}: '{key}' is not a setting (known: {})", KEYS.join(", ")));
        }
    }
    if !seen_peer {
        return Err("no [peer] section".into());
    }
    Ok(())
}

/// `ADDR:PORT`, or a host name with a port.
pub fn parse_addr(s: &str) -> Result<SocketAddr, SettingsError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| SettingsError::BadAddr(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_with_a_typo_an_odd_section_or_no_section_is_refused_by_line() {
        assert!(check_ini("# mine\n[peer]\ntracker = 127.0.0.1:5000\n\n; note\nport: 6000\n").is_ok());
        assert_eq!(
            check_ini("[peer]\ntraker = x\n").unwrap_err().split(" (").next(),
            Some("line 2: 'traker' is not a setting")
        );
        assert_eq!(check_ini("tracker = x\n").unwrap_err(), "line 1: 'tracker' is outside a [peer] section");
        assert!(check_ini("[peer]\n[tracker]\nbind = x\n")
            .unwrap_err()
            .starts_with("line 2: section [tracker]"));
        assert!(check_ini("[peer]\njust words\n").unwrap_err().starts_with("line 2:"));
        assert_eq!(check_ini("\n# nothing\n").unwrap_err(), "no [peer] section");
        let dir = tempfile::tempdir().unwrap();
        let missing = Given { config: Some(dir.path().join("x.ini")), ..Given::default() };
        let e = resolve(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read config ") && e.ends_with("No such file or directory (os error 2)"),
            "{e}"
        );
    }

    #[test]
    fn flags_win_over_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("peer.ini");
        std::fs::write(
            &cfg,
            "[peer]\ntracker = 127.0.0.1:7000\nport = 6005\nupload_limit = 4M\ndir = /tmp/x\n",
        )
        .unwrap();
        let given = Given { config: Some(cfg.clone()), port: Some(6100), ..Given::default() };
        let c = resolve(&given).unwrap();
        assert_eq!(c.tracker, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(c.port, Some(6100));
        assert_eq!(c.upload_limit, Some(4 << 20));
        assert_eq!(c.dir, PathBuf::from("/tmp/x"));
        let bad = Given { upload_limit: Some("fast".into()), ..Given::default() };
        assert!(resolve(&bad).unwrap_err().to_string().contains("invalid rate"));
        let bad_mode = Given { encryption: Some("always".into()), ..Given::default() };
        assert!(resolve(&bad_mode).unwrap_err().to_string().contains("not one of prefer, require, off"));
        std::fs::write(&cfg, "[peer]\nencryption = require\n").unwrap();
        let from_ini = Given { config: Some(cfg.clone()), ..Given::default() };
        assert_eq!(resolve(&from_ini).unwrap().encryption, Encryption::Require);
        let flag = Given { encryption: Some("off".into()), ..from_ini };
        assert_eq!(resolve(&flag).unwrap().encryption, Encryption::Off);
        let missing = Given { config: Some(dir.path().join("nope.ini")), ..Given::default() };
        assert!(resolve(&missing).unwrap_err().to_string().contains("cannot read config"));
    }

    #[test]
    fn port_forwarding_is_off_unless_asked_for_by_flag_or_ini() {
        assert!(!resolve(&Given::default()).unwrap().port_forward);
        assert!(resolve(&Given { port_forward: true, ..Given::default() }).unwrap().port_forward);
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("p.ini");
        std::fs::write(&ini, "[peer]\nport_forward = yes\n").unwrap();
        assert!(resolve(&Given { config: Some(ini), ..Given::default() }).unwrap().port_forward);
    }

    #[test]
    fn the_dht_is_off_unless_asked_for() {
        assert_eq!(resolve(&Given::default()).unwrap().dht, None);
        let public = resolve(&Given { dht: true, ..Given::default() }).unwrap().dht.unwrap();
        assert_eq!(public.bootstrap.len(), PUBLIC_BOOTSTRAP.len());
        let private = Given {
            dht: true,
            dht_bootstrap: Some("127.0.0.1:7000, 127.0.0.2:7001".into()),
            dht_port: Some(7002),
            ..Given::default()
        };
        let d = resolve(&private).unwrap().dht.unwrap();
        assert_eq!(
            d.bootstrap,
            vec!["127.0.0.1:7000", "127.0.0.2:7001"],
            "a private DHT wins over the public one"
        );
        assert_eq!(d.port, Some(7002));
        let dir = tempfile::tempdir().unwrap();
        let ini = dir.path().join("p.ini");
        std::fs::write(&ini, "[peer]\ndht_bootstrap = 10.0.0.1:6881\ndht_port = 6882\n").unwrap();
        let d = resolve(&Given { config: Some(ini), ..Given::default() }).unwrap().dht.unwrap();
        assert_eq!((d.bootstrap, d.port), (vec!["10.0.0.1:6881".to_string()], Some(6882)));
        let bad = Given { dht_bootstrap: Some("nowhere".into()), ..Given::default() };
        assert!(resolve(&bad).is_err());
    }
}
