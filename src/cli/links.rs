//! `peer magnet NAME` and `peer torrent NAME`: a shared file's BitTorrent identity for
//! people and for BitTorrent clients. They run beside the peer serving DIR (in their own
//! process, as `list` does) and name it in the link (`x.pe`) and its tracker (`tr`) when
//! one serves; else they ask the `--tracker` given for its HTTP announce URL, and say so
//! when the link has no way to find peers.

use crate::holdings::found::Found;
use crate::holdings::manifest_cache::ManifestCache;
use crate::magnet::Magnet;
use crate::manifest::Manifest;
use crate::names::{validate_name, BadName};
use crate::peer::node::serving;
use crate::torrent::torrent_file;
use crate::tracker_client::TrackerClient;
use log::warn;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why no link could be made.
#[derive(Debug)]
pub enum LinkError {
    BadName(BadName),
    NotShared(PathBuf),
    Io { path: PathBuf, err: io::Error },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::BadName(e) => write!(f, "{e}"),
            LinkError::NotShared(p) => write!(f, "{} is not a file shared here", p.display()),
            LinkError::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for LinkError {}

/// The manifest of `DIR/files/NAME`, a file or a folder (cached, else hashed), and its
/// magnet link; `tracker` is asked for its announce URL when no peer serves DIR.
pub fn magnet_of(dir: &Path, name: &str, tracker: SocketAddr) -> Result<(Manifest, Magnet), LinkError> {
    validate_name(name).map_err(LinkError::BadName)?;
    let path = dir.join("files").join(name);
    // A regular file or folder, not a link: the same rule as for sharing.
    let found = match Found::look(&path) {
        Ok(Some(found)) if !found.files.is_empty() => found,
        _ => return Err(LinkError::NotShared(path)),
    };
    let chunks = dir.join("chunks");
    std::fs::create_dir_all(&chunks).map_err(|err| LinkError::Io { path: chunks.clone(), err })?;
    let (m, _) = found
        .manifest(&ManifestCache::new(&chunks), &path, name)
        .map_err(|err| LinkError::Io { path: path.clone(), err })?;
    let serving = serving(dir);
    let trackers: Vec<String> = match &serving {
        Some(s) => s.announce.iter().cloned().collect(),
        None => match TrackerClient::asking(tracker).search(name) {
            Ok(page) => page.http_announce.into_iter().collect(),
            Err(e) => {
                warn!("no tracker named in the link: {e}");
                Vec::new()
            }
        },
    };
    let magnet = Magnet {
        id: m.content_id(),
        name: Some(m.name.clone()),
        size: Some(m.size),
        peers: serving.iter().map(|s| s.addr).collect(),
        trackers,
        web_seeds: Vec::new(),
    };
    if magnet.peers.is_empty() && magnet.trackers.is_empty() {
        warn!(
            "the link names no peer and no tracker: no peer serves {} and the tracker has no HTTP announce URL (start it with --http); clients can find peers only on the DHT",
            dir.display()
        );
    } else if magnet.peers.is_empty() {
        warn!(
            "no peer serves {} now: the link names the tracker only; start `peer serve` to seed",
            dir.display()
        );
    }
    Ok((m, magnet))
}

/// `magnet NAME`: prints the magnet link.
pub fn magnet(dir: &Path, name: &str, tracker: SocketAddr, out: &mut impl Write) -> Result<(), LinkError> {
    let (_, link) = magnet_of(dir, name, tracker)?;
    let _ = writeln!(out, "{link}");
    Ok(())
}

/// `torrent NAME [--out FILE]`: writes the `.torrent` (default `DIR/NAME.torrent`), prints
/// its path and the magnet link; returns the path.
pub fn torrent(
    dir: &Path,
    name: &str,
    dest: Option<&Path>,
    tracker: SocketAddr,
    out: &mut impl Write,
) -> Result<PathBuf, LinkError> {
    let (m, link) = magnet_of(dir, name, tracker)?;
    let dest = dest.map_or_else(|| dir.join(format!("{name}.torrent")), Path::to_path_buf);
    let bytes = torrent_file(&m, link.trackers.first().map(String::as_str));
    crate::atomic_file::write_atomic(&dest, &bytes, crate::atomic_file::Durability::Synced)
        .map_err(|err| LinkError::Io { path: dest.clone(), err })?;
    let _ = writeln!(out, "{}", dest.display());
    let _ = writeln!(out, "{link}");
    Ok(dest)
}
