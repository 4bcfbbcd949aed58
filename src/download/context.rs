//! What a download is given: its peer's context, its options, and whom it may ask.

use super::reassembler::ProgressFn;
use crate::bt::mse::Encryption;
use crate::dht::PeerDht;
use crate::holdings::manifest_cache::ManifestCache;
use crate::holdings::shares::Shares;
use crate::peer::server::Uploads;
use crate::tracker_client::{Sources, TrackerClient};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a download needs from its peer.
pub struct Context<'a> {
    pub tracker: &'a TrackerClient,
    pub shares: &'a Arc<Shares>,
    pub cache: &'a ManifestCache,
    pub files_dir: &'a Path,
    pub chunks_dir: &'a Path,
    /// The DHT, when this peer is on it: another source of sources.
    pub dht: Option<&'a PeerDht>,
    /// This peer's own server address (never a source to itself).
    pub me: Option<SocketAddr>,
    /// The server's upload machinery, so the BitTorrent connections we dial give back too.
    pub uploads: Option<Uploads>,
}

/// Knobs of a download.
#[derive(Clone)]
pub struct Options {
    /// Read/write time-out on a source; a source silent this long loses its chunks.
    pub io_timeout: Duration,
    /// Give up when the sources together sent less than [`STALL_PROGRESS`](super::swarm::STALL_PROGRESS) bytes
    /// in this long (however many connections they hold open).
    pub stall_timeout: Duration,
    pub progress: Option<ProgressFn>,
    /// Sources given directly (`--peer`, a magnet link's `x.pe`): p2p-share peers or
    /// BitTorrent clients, asked beside the tracker's.
    pub peers: Vec<SocketAddr>,
    /// Web seeds (BEP 19: a `.torrent`'s `url-list`): HTTP servers holding the files.
    pub web_seeds: Vec<String>,
    /// How BitTorrent sources are dialed (MSE, see `bt::dial`).
    pub encryption: Encryption,
    /// Set to stop the download (Ctrl+C, a pause): it ends within a fraction of a second
    /// with [`DownloadError::Stopped`](super::DownloadError::Stopped), its verified chunks kept.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Options {
    /// Whether the download was asked to stop.
    pub fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            io_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            progress: None,
            peers: Vec::new(),
            web_seeds: Vec::new(),
            encryption: Encryption::default(),
            stop: None,
        }
    }
}

/// The peers to fetch from: `--from` first, every holder, every other downloader, and
/// the BitTorrent clients of the swarm.
pub(super) fn candidates(from: Option<SocketAddr>, s: Sources) -> Vec<SocketAddr> {
    // `--from` is the first source, not the only one: the other holders help, and take over
    // when it leaves.
    let first = from.into_iter().chain(s.holders.into_iter().filter(|h| Some(*h) != from));
    first.chain(s.downloaders).chain(s.bt_peers).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn from_comes_first_and_the_others_still_help() {
        let s =
            Sources { file: None, holders: vec![a(1), a(2)], downloaders: vec![a(3)], bt_peers: vec![a(4)] };
        assert_eq!(candidates(None, s.clone()), vec![a(1), a(2), a(3), a(4)]);
        assert_eq!(candidates(Some(a(2)), s.clone()), vec![a(2), a(1), a(3), a(4)]);
        assert_eq!(candidates(Some(a(9)), s), vec![a(9), a(1), a(2), a(3), a(4)]);
    }
}
