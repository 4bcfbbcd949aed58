//! Getting a file's manifest: from an interrupted download's folder, or from a source,
//! checked against the content id.

use super::{candidates, DownloadError, Options};
use crate::bt::client::BtConn;
use crate::bt::msg::BtError;
use crate::bt::new_peer_id;
use crate::hash::ContentId;
use crate::manifest::{Manifest, ManifestError, MAX_MANIFEST_BYTES};
use crate::torrent::{manifest_from_info, TorrentError};
use crate::tracker_client::TrackerClient;
use crate::wire::conn::Conn;
use crate::wire::peer_msg::{PeerReply, PeerRequest};
use crate::wire::WireError;
use log::{info, warn};
use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// A manifest saved by an earlier, interrupted download of `id`.
pub(super) fn local_manifest(chunks_dir: &Path, id: ContentId) -> Option<Manifest> {
    let text = fs::read_to_string(chunks_dir.join(id.to_hex()).join("file.ini")).ok()?;
    Manifest::parse(&text).ok().filter(|m| m.content_id() == id)
}

/// Most sources asked for the manifest at once.
const MAX_ASKED: usize = 16;

/// Asks the sources for the manifest, and asks the tracker for sources again every second
/// (peers come back after a restart) until the stall time-out.
pub(super) fn manifest_until(
    tracker: &TrackerClient,
    id: ContentId,
    from: Option<SocketAddr>,
    mut sources: Vec<SocketAddr>,
    opts: &Options,
) -> Result<Manifest, DownloadError> {
    let deadline = Instant::now() + opts.stall_timeout;
    loop {
        match remote_manifest(&sources, &opts.peers, id, opts.io_timeout, deadline) {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_secs(1)),
        }
        if let Ok(s) = tracker.start_download(id) {
            sources = candidates(from, s);
        }
    }
}

/// Asks up to [`MAX_ASKED`] sources for `file.ini` at once; the first that gives one
/// matching `id` wins, so a silent or dripping source costs nothing while an honest one
/// answers. Gives up at `deadline`; the threads still asking end by their own deadlines.
fn remote_manifest(
    sources: &[SocketAddr],
    direct: &[SocketAddr],
    id: ContentId,
    timeout: Duration,
    deadline: Instant,
) -> Result<Manifest, DownloadError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for &addr in sources.iter().take(MAX_ASKED) {
        let tx = tx.clone();
        let bt_first = direct.contains(&addr);
        let spawned = thread::Builder::new()
            .name(format!("manifest-{addr}"))
            .spawn(move || drop(tx.send((addr, manifest_from(addr, id, timeout, bt_first)))));
        if let Err(e) = spawned {
            warn!("cannot ask {addr} for the manifest: {e}");
        }
    }
    drop(tx);
    let mut why = String::from("no source");
    while let Ok((addr, answer)) = rx.recv_deadline(deadline.max(Instant::now() + timeout)) {
        match answer {
            Ok(m) => {
                info!("Received file.ini from {addr}");
                return Ok(m);
            }
            Err(e) => {
                warn!("no manifest from {addr}: {e}");
                why = format!("{addr}: {e}");
            }
        }
    }
    Err(DownloadError::NoManifest { id, why })
}

/// Why one source gave no manifest.
#[derive(Debug)]
pub enum FetchError {
    Connect(io::Error),
    Wire(WireError),
    /// It sent another file's manifest, or one too large to be any.
    WrongManifest {
        content_id: ContentId,
        len: u32,
    },
    Refused(String),
    Unexpected(&'static str),
    IdMismatch,
    NotUtf8,
    Invalid(ManifestError),
    Bt(BtError),
    Torrent(TorrentError),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect(e) => write!(f, "{e}"),
            FetchError::Wire(e) => write!(f, "{e}"),
            FetchError::WrongManifest { content_id, len } => {
                write!(f, "sent manifest {content_id} of {len} bytes")
            }
            FetchError::Refused(reason) => write!(f, "{reason}"),
            FetchError::Unexpected(kind) => write!(f, "answered with a '{kind}' reply"),
            FetchError::IdMismatch => write!(f, "its manifest does not match the file's id"),
            FetchError::NotUtf8 => write!(f, "its manifest is not UTF-8"),
            FetchError::Invalid(e) => write!(f, "{e}"),
            FetchError::Bt(e) => write!(f, "over BitTorrent: {e}"),
            FetchError::Torrent(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// The manifest from one source: `file.ini` in our protocol from a p2p-share peer, the
/// info dictionary over ut_metadata from a BitTorrent client. A source given directly
/// (`bt_first`) may be either: it is greeted in BitTorrent, and one whose peer id says
/// p2p-share is asked in our protocol instead.
fn manifest_from(
    addr: SocketAddr,
    id: ContentId,
    timeout: Duration,
    bt_first: bool,
) -> Result<Manifest, FetchError> {
    if !bt_first {
        return native_manifest(addr, id, timeout);
    }
    let mut conn = BtConn::connect(addr, id, new_peer_id(), timeout, None).map_err(FetchError::Bt)?;
    if conn.is_p2p_share() {
        drop(conn);
        return native_manifest(addr, id, timeout);
    }
    let info = conn.fetch_info(id, timeout).map_err(FetchError::Bt)?;
    manifest_from_info(&info).map_err(FetchError::Torrent)
}

fn native_manifest(addr: SocketAddr, id: ContentId, timeout: Duration) -> Result<Manifest, FetchError> {
    let mut conn = Conn::connect(addr, timeout).map_err(FetchError::Connect)?;
    let req = PeerRequest::Manifest { content_id: Some(id), name: None };
    let len = match conn.call(&req).map_err(FetchError::Wire)? {
        PeerReply::Manifest { content_id, len }
            if content_id == id && (len as usize) <= MAX_MANIFEST_BYTES =>
        {
            len
        }
        PeerReply::Manifest { content_id, len } => return Err(FetchError::WrongManifest { content_id, len }),
        PeerReply::Error { reason } => return Err(FetchError::Refused(reason)),
        other => return Err(FetchError::Unexpected(other.kind())),
    };
    let mut text = vec![0u8; len as usize];
    conn.read_raw(&mut text).map_err(FetchError::Wire)?;
    // The text is not the identity; the info dictionary rebuilt from it is.
    let text = String::from_utf8(text).map_err(|_| FetchError::NotUtf8)?;
    let m = Manifest::parse(&text).map_err(FetchError::Invalid)?;
    if m.content_id() != id {
        return Err(FetchError::IdMismatch);
    }
    Ok(m)
}
