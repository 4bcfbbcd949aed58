//! What the source threads of one download share, and what they hand on: the context, the
//! recycled buffers, a verified chunk, and why a source ended. Native and BitTorrent
//! sources (`source`, `bt_source`) and the swarm that starts them all use these.

use super::budget::Budget;
use super::scheduler::Scheduler;
use super::web_seed::WebSeed;
use crate::bt::mse::Encryption;
use crate::chunk_store::ChunkStore;
use crate::dht::PeerDht;
use crate::manifest::ChunkIndex;
use crate::peer::server::Uploads;
use crate::wire::WireError;
use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// A source that sends this many chunks failing their check is dropped for the download.
pub const MAX_BAD_CHUNKS: u32 = 3;

/// A verified chunk on its way to the reassembler.
pub struct Arrival {
    pub index: ChunkIndex,
    pub buf: Vec<u8>,
    pub from: SocketAddr,
}

/// Recycled chunk buffers, so that a download allocates a handful of them in all (fresh
/// buffers cost page faults and zeroing: with 256 KiB pieces and too small a pool, a fifth
/// of the download's speed).
#[derive(Clone)]
pub struct BufferPool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    /// The capacity of a fresh buffer: one chunk.
    chunk: usize,
}

impl BufferPool {
    /// Keeps up to `cap` buffers of `chunk` bytes.
    pub fn new(cap: usize, chunk: usize) -> BufferPool {
        let (tx, rx) = bounded(cap);
        BufferPool { tx, rx, chunk }
    }

    pub fn get(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(self.chunk))
    }

    pub fn put(&self, buf: Vec<u8>) {
        let _ = self.tx.try_send(buf);
    }
}

/// What the source threads of one download share.
pub struct DownloadCtx {
    pub store: Arc<ChunkStore>,
    pub sched: Mutex<Scheduler>,
    pub cancel: AtomicBool,
    pub pool: BufferPool,
    pub io_timeout: Duration,
    /// Payload bytes received from all sources (verified or not): the stall clock's input.
    pub received: AtomicU64,
    /// Our peer id towards BitTorrent sources.
    pub peer_id: [u8; 20],
    /// Sources given directly (`--peer`, `x.pe`): BitTorrent clients or p2p-share peers.
    pub direct: Mutex<Vec<SocketAddr>>,
    /// Our DHT node, when on: BitTorrent sources are told its port and may name theirs.
    pub dht: Option<PeerDht>,
    /// Counts that follow from the piece length.
    pub budget: Budget,
    /// Web seeds, one per server (their addresses are their keys among the sources).
    pub web_seeds: Vec<WebSeed>,
    /// Peers BitTorrent sources named by peer exchange (BEP 11), first named first.
    pub pex: Mutex<Vec<SocketAddr>>,
    /// The BitTorrent connections of this process by torrent (the server's, when there is
    /// one): what peer exchange tells, and peers the server's connections heard of.
    pub book: Arc<crate::bt::pex::Book>,
    /// How BitTorrent sources are dialed.
    pub encryption: Encryption,
    /// What BitTorrent connections give back with (none: they only take).
    pub uploads: Option<Uploads>,
    /// The sources' connections, shut down when the download is stopped so that a chunk
    /// arriving slowly does not hold the stop up.
    pub conns: crate::shutdown::ConnRegistry,
}

impl DownloadCtx {
    /// Adds the peers a source named by peer exchange, up to
    /// [`MAX_FEED_PEERS`](super::feed::MAX_FEED_PEERS) in all; returns how many were new.
    pub fn add_pex(&self, peers: &[SocketAddr]) -> usize {
        let mut list = self.pex.lock();
        let before = list.len();
        for p in peers {
            if list.len() >= super::feed::MAX_FEED_PEERS {
                break;
            }
            if !list.contains(p) {
                list.push(*p);
            }
        }
        list.len() - before
    }
}

/// Why a source thread ended.
#[derive(Debug)]
pub enum SourceEnd {
    /// Nothing more to fetch (the download is complete or cancelled).
    Finished,
    /// The source failed (unreachable, vanished, stalled or broke the protocol).
    Failed(String),
    /// The source sent too many corrupt chunks.
    Banned(u32),
    /// The source claims chunks it does not have.
    Lying(String),
}

impl fmt::Display for SourceEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceEnd::Finished => write!(f, "finished"),
            SourceEnd::Failed(why) => write!(f, "{why}"),
            SourceEnd::Banned(n) => write!(f, "dropped after {n} chunks that failed their SHA-1 check"),
            SourceEnd::Lying(why) => write!(f, "dropped: {why}"),
        }
    }
}

impl From<WireError> for SourceEnd {
    fn from(e: WireError) -> Self {
        SourceEnd::Failed(e.to_string())
    }
}
