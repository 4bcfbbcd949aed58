//! Getting a file's manifest: from an interrupted download's folder, or from a source,
//! checked against the content id.

use super::backoff::Backoff;
use super::context::{candidates, Options};
use super::error::DownloadError;
use super::feed::PeerFeed;
use crate::bt::client::BtConn;
use crate::bt::mse::Encryption;
use crate::bt::msg::BtError;
use crate::bt::new_peer_id;
use crate::hash::ContentId;
use crate::info_dict::InfoError;
use crate::manifest::{Manifest, ManifestError, MAX_MANIFEST_BYTES};
use crate::tracker_client::TrackerClient;
use crate::wire::conn::Conn;
use crate::wire::peer_msg::{PeerReply, PeerRequest};
use crate::wire::WireError;
use log::{info, warn};
use std::collections::HashSet;
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

/// Asks the sources for the manifest, at most [`MAX_ASKED`] at once, the next candidate as
/// soon as one fails, until one gives a manifest matching `id` or the stall time-out
/// passes. The candidates grow by every peer the DHT names as it comes, and every second by
/// what the tracker names now; a candidate that failed is asked again after its back-off.
/// So no single answer decides whom we ask: 150 dead peers named first cost only their
/// attempts.
pub(super) fn manifest_until(
    tracker: &TrackerClient,
    id: ContentId,
    from: Option<SocketAddr>,
    sources: Vec<SocketAddr>,
    opts: &Options,
    dht: Option<&PeerFeed>,
) -> Result<Manifest, DownloadError> {
    let deadline = Instant::now() + opts.stall_timeout;
    let mut rotation = Rotation::default();
    let mut bt_first: HashSet<SocketAddr> = opts.peers.iter().copied().collect();
    rotation.add(sources.into_iter().chain(opts.peers.iter().copied()));
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut refreshed = Instant::now();
    let mut dht_seen = 0;
    let mut why = String::from("no source");
    loop {
        if let Some(feed) = dht {
            let fresh = feed.new_since(&mut dht_seen);
            bt_first.extend(fresh.iter().copied());
            rotation.add(fresh);
        }
        let now = Instant::now();
        while rotation.asking() < MAX_ASKED {
            let Some(addr) = rotation.next(now) else { break };
            if !ask(addr, id, opts, bt_first.contains(&addr), &tx) {
                rotation.failed(addr, now); // no thread: it rests like a failed candidate
            }
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((addr, Ok(m))) => {
                info!("Received file.ini from {addr}");
                return Ok(m);
            }
            Ok((addr, Err(e))) => {
                warn!("no manifest from {addr}: {e}");
                rotation.failed(addr, Instant::now());
                why = format!("{addr}: {e}");
            }
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(DownloadError::NoManifest { id, why });
        }
        if refreshed.elapsed() >= Duration::from_secs(1) {
            refreshed = Instant::now();
            if let Ok(s) = tracker.start_download(id) {
                bt_first.extend(s.bt_peers.iter().copied());
                rotation.add(candidates(from, s));
            }
        }
    }
}

/// Asks `addr` for the manifest on a thread of its own, which sends the answer on `tx` and
/// ends by its own deadlines; false if no thread could be made.
fn ask(
    addr: SocketAddr,
    id: ContentId,
    opts: &Options,
    bt_first: bool,
    tx: &crossbeam_channel::Sender<(SocketAddr, Result<Manifest, FetchError>)>,
) -> bool {
    let tx = tx.clone();
    let (timeout, encryption) = (opts.io_timeout, opts.encryption);
    let spawned = thread::Builder::new()
        .name(format!("manifest-{addr}"))
        .spawn(move || drop(tx.send((addr, manifest_from(addr, id, timeout, bt_first, encryption)))));
    if let Err(e) = &spawned {
        warn!("cannot ask {addr} for the manifest: {e}");
    }
    spawned.is_ok()
}

/// The order in which candidates are asked for a manifest: each new one once, in the
/// order they came; then, among those that failed, the one whose back-off ended first.
#[derive(Default)]
struct Rotation {
    /// Every candidate, in the order it came, with when it was last asked.
    known: Vec<(SocketAddr, Option<Instant>)>,
    backoff: Backoff,
    /// Being asked now.
    asking: HashSet<SocketAddr>,
}

impl Rotation {
    fn add(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) {
        for a in addrs {
            if !self.known.iter().any(|(k, _)| *k == a) {
                self.known.push((a, None));
            }
        }
    }

    /// The candidate to ask next at `now`, if any may be asked.
    fn next(&mut self, now: Instant) -> Option<SocketAddr> {
        let (backoff, asking) = (&self.backoff, &self.asking);
        let (addr, asked) = self
            .known
            .iter_mut()
            .filter(|(a, _)| !asking.contains(a) && backoff.ready(*a, now))
            .min_by_key(|(_, asked)| *asked)?;
        *asked = Some(now);
        self.asking.insert(*addr);
        Some(*addr)
    }

    /// Candidates being asked now.
    fn asking(&self) -> usize {
        self.asking.len()
    }

    fn failed(&mut self, addr: SocketAddr, now: Instant) {
        self.asking.remove(&addr);
        self.backoff.failed(addr, now);
    }
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
    Info(InfoError),
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
            FetchError::Info(e) => write!(f, "{e}"),
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
    encryption: Encryption,
) -> Result<Manifest, FetchError> {
    if !bt_first {
        return native_manifest(addr, id, timeout);
    }
    let mut conn = BtConn::connect(addr, id, new_peer_id(), timeout, None, Default::default(), encryption)
        .map_err(FetchError::Bt)?;
    if conn.is_p2p_share() {
        drop(conn);
        return native_manifest(addr, id, timeout);
    }
    let info = conn.fetch_info(id, timeout).map_err(FetchError::Bt)?;
    Manifest::from_info(&info).map_err(FetchError::Info)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn every_candidate_is_asked_before_any_is_asked_again() {
        let mut r = Rotation::default();
        let t0 = Instant::now();
        r.add((1..=150).map(a)); // the first answer: 150 dead peers
        let mut asked = Vec::new();
        for _ in 0..150 {
            let next = r.next(t0).unwrap();
            r.failed(next, t0);
            asked.push(next);
        }
        assert_eq!(r.next(t0), None, "all 150 rest after failing");
        r.add([a(999)]); // the honest seeder, named by a later answer
        assert_eq!(r.next(t0), Some(a(999)), "a new candidate goes first");
        assert_eq!(asked.len(), 150);
        let later = t0 + super::super::backoff::FIRST;
        assert_eq!(r.next(later), Some(a(1)), "then the one asked longest ago, after its rest");
    }

    #[test]
    fn a_candidate_being_asked_is_not_asked_twice() {
        let mut r = Rotation::default();
        let t0 = Instant::now();
        r.add([a(1), a(2), a(1)]);
        assert_eq!((r.next(t0), r.next(t0), r.next(t0)), (Some(a(1)), Some(a(2)), None));
    }
}
