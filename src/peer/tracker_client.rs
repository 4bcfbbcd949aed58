//! The peer's side of the tracker protocol: one short connection per request, and a
//! re-registration by itself when the tracker forgot this peer (restart or expiry).

use super::shares::Shares;
use crate::hash::ContentId;
use crate::wire::conn::Conn;
use crate::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use crate::wire::WireError;
use log::info;
use parking_lot::Mutex;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const TRACKER_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed exchange with the tracker.
#[derive(Debug)]
pub enum TrackerError {
    Unreachable { addr: SocketAddr, err: std::io::Error },
    Protocol { addr: SocketAddr, err: WireError },
    Refused(String),
    Unexpected(String),
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerError::Unreachable { addr, err } => write!(f, "cannot reach the tracker at {addr}: {err}"),
            TrackerError::Protocol { addr, err } => write!(f, "tracker at {addr}: {err}"),
            TrackerError::Refused(reason) => write!(f, "the tracker refused: {reason}"),
            TrackerError::Unexpected(what) => write!(f, "unexpected answer from the tracker: {what}"),
        }
    }
}

impl std::error::Error for TrackerError {}

/// Who can give chunks of a file.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<FileInfo>,
    pub holders: Vec<SocketAddr>,
    pub downloaders: Vec<SocketAddr>,
}

/// Talks to one tracker on behalf of one peer.
pub struct TrackerClient {
    addr: SocketAddr,
    port: Mutex<Option<u16>>,
    me: Mutex<Option<SocketAddr>>,
    interval: Mutex<Duration>,
    shares: Arc<Shares>,
}

impl TrackerClient {
    pub fn new(addr: SocketAddr, shares: Arc<Shares>) -> TrackerClient {
        TrackerClient {
            addr,
            port: Mutex::new(None),
            me: Mutex::new(None),
            interval: Mutex::new(Duration::from_secs(10)),
            shares,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This peer as the tracker sees it (after registering).
    pub fn me(&self) -> Option<SocketAddr> {
        *self.me.lock()
    }

    /// How often the tracker wants to hear from this peer.
    pub fn announce_interval(&self) -> Duration {
        *self.interval.lock()
    }

    fn call(&self, req: &TrackerRequest) -> Result<TrackerReply, TrackerError> {
        let addr = self.addr;
        let mut conn =
            Conn::connect(addr, TRACKER_TIMEOUT).map_err(|err| TrackerError::Unreachable { addr, err })?;
        match conn.call(req) {
            Ok(TrackerReply::Error { reason }) => Err(TrackerError::Refused(reason)),
            Ok(reply) => Ok(reply),
            Err(err) => Err(TrackerError::Protocol { addr, err }),
        }
    }

    /// Registers with `port` (or lets the tracker assign one); returns this peer's address
    /// as the tracker sees it.
    pub fn register(&self, port: Option<u16>) -> Result<SocketAddr, TrackerError> {
        match self.call(&TrackerRequest::Register { port })? {
            TrackerReply::Registered { peer, announce_interval_secs } => {
                *self.port.lock() = Some(peer.port());
                *self.me.lock() = Some(peer);
                *self.interval.lock() = Duration::from_secs(announce_interval_secs.clamp(1, 3600));
                Ok(peer)
            }
            other => Err(TrackerError::Unexpected(format!("{other:?}"))),
        }
    }

    fn port(&self) -> Result<u16, TrackerError> {
        self.port.lock().ok_or_else(|| TrackerError::Unexpected("this peer is not registered".into()))
    }

    /// Registers again under the same port and announces every complete file.
    pub fn rejoin(&self) -> Result<(), TrackerError> {
        let port = self.port()?;
        self.register(Some(port))?;
        info!("Registered again with the tracker at {}", self.addr);
        let full = Some(self.shares.complete_files());
        self.expect_ok(&TrackerRequest::Announce { port, full, added: vec![], removed: vec![] })
    }

    /// Sends a request made for this peer's port; registers again once if the tracker
    /// does not know the peer.
    fn as_peer(&self, make: impl Fn(u16) -> TrackerRequest) -> Result<TrackerReply, TrackerError> {
        let port = self.port()?;
        match self.call(&make(port))? {
            TrackerReply::UnknownPeer => {
                self.rejoin()?;
                match self.call(&make(port))? {
                    TrackerReply::UnknownPeer => {
                        Err(TrackerError::Unexpected("the tracker forgot this peer again".into()))
                    }
                    reply => Ok(reply),
                }
            }
            reply => Ok(reply),
        }
    }

    fn expect_ok(&self, req: &TrackerRequest) -> Result<(), TrackerError> {
        match self.call(req)? {
            TrackerReply::Ok => Ok(()),
            other => Err(TrackerError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Announces changes to the shared files (an empty change is a heartbeat).
    pub fn announce(&self, added: Vec<FileInfo>, removed: Vec<ContentId>) -> Result<(), TrackerError> {
        let reply = self.as_peer(|port| TrackerRequest::Announce {
            port,
            full: None,
            added: added.clone(),
            removed: removed.clone(),
        })?;
        match reply {
            TrackerReply::Ok => Ok(()),
            other => Err(TrackerError::Unexpected(format!("{other:?}"))),
        }
    }

    pub fn list(&self) -> Result<Vec<FileListing>, TrackerError> {
        self.files(&TrackerRequest::ListFiles)
    }

    pub fn search(&self, name: &str) -> Result<Vec<FileListing>, TrackerError> {
        self.files(&TrackerRequest::Search { name: name.to_string() })
    }

    fn files(&self, req: &TrackerRequest) -> Result<Vec<FileListing>, TrackerError> {
        match self.call(req)? {
            TrackerReply::Files { files } => Ok(files),
            other => Err(TrackerError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Tells the tracker this peer downloads `id`; returns who can help.
    pub fn start_download(&self, id: ContentId) -> Result<Sources, TrackerError> {
        match self.as_peer(|port| TrackerRequest::StartDownload { port, content_id: id })? {
            TrackerReply::Sources { file, holders, downloaders } => {
                Ok(Sources { file, holders, downloaders })
            }
            other => Err(TrackerError::Unexpected(format!("{other:?}"))),
        }
    }

    pub fn stop_download(&self, id: ContentId) -> Result<(), TrackerError> {
        let port = self.port()?;
        self.expect_ok(&TrackerRequest::StopDownload { port, content_id: id })
    }

    /// Leaves the swarm.
    pub fn leave(&self) -> Result<(), TrackerError> {
        let port = self.port()?;
        self.expect_ok(&TrackerRequest::Leave { port })
    }
}
