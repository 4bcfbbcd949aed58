//! Getting a file's manifest: from an interrupted download's folder, or from a source,
//! checked against the content id.

use super::{candidates, DownloadError, Options};
use crate::hash::ContentId;
use crate::manifest::{Manifest, MAX_MANIFEST_BYTES};
use crate::tracker_client::TrackerClient;
use crate::wire::conn::Conn;
use crate::wire::peer_msg::{PeerReply, PeerRequest};
use log::{info, warn};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// A manifest saved by an earlier, interrupted download of `id`.
pub(super) fn local_manifest(chunks_dir: &Path, id: ContentId) -> Option<Manifest> {
    let text = fs::read_to_string(chunks_dir.join(id.to_hex()).join("file.ini")).ok()?;
    (ContentId::of(text.as_bytes()) == id).then(|| Manifest::parse(&text).ok()).flatten()
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
        match remote_manifest(&sources, id, opts.io_timeout, deadline) {
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
    id: ContentId,
    timeout: Duration,
    deadline: Instant,
) -> Result<Manifest, DownloadError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for &addr in sources.iter().take(MAX_ASKED) {
        let tx = tx.clone();
        let spawned = thread::Builder::new()
            .name(format!("manifest-{addr}"))
            .spawn(move || drop(tx.send((addr, manifest_from(addr, id, timeout)))));
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

fn manifest_from(addr: SocketAddr, id: ContentId, timeout: Duration) -> Result<Manifest, String> {
    let mut conn = Conn::connect(addr, timeout).map_err(|e| e.to_string())?;
    let req = PeerRequest::Manifest { content_id: Some(id), name: None };
    let len = match conn.call(&req).map_err(|e| e.to_string())? {
        PeerReply::Manifest { content_id, len }
            if content_id == id && (len as usize) <= MAX_MANIFEST_BYTES =>
        {
            len
        }
        PeerReply::Manifest { content_id, len } => {
            return Err(format!("sent manifest {content_id} of {len} bytes"))
        }
        PeerReply::Error { reason } => return Err(reason),
        other => return Err(format!("answered with {other:?}")),
    };
    let mut text = vec![0u8; len as usize];
    conn.read_raw(&mut text).map_err(|e| e.to_string())?;
    if ContentId::of(&text) != id {
        return Err("its manifest does not match the file's id".into());
    }
    let text = String::from_utf8(text).map_err(|_| "its manifest is not UTF-8".to_string())?;
    Manifest::parse(&text).map_err(|e| e.to_string())
}
