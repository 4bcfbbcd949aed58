//! The peer's side of the tracker protocol: one short connection per request, and a
//! re-registration by itself when the tracker forgot this peer (restart or expiry).

use crate::hash::ContentId;
use crate::wire::conn::Conn;
use crate::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use crate::wire::{FrameError, WireError};
use log::info;
use parking_lot::Mutex;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

const TRACKER_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed exchange with the tracker.
#[derive(Debug)]
pub enum TrackerError {
    Unreachable {
        addr: SocketAddr,
        err: std::io::Error,
    },
    Protocol {
        addr: SocketAddr,
        err: WireError,
    },
    /// The other side answered, but not in the tracker protocol (e.g. an HTTP server).
    NotATracker {
        addr: SocketAddr,
        err: WireError,
    },
    Refused(String),
    Unexpected(String),
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrackerError::Unreachable { addr, err } => write!(f, "cannot reach the tracker at {addr}: {err}"),
            TrackerError::Protocol { addr, err } => write!(f, "tracker at {addr}: {err}"),
            TrackerError::NotATracker { addr, err } => {
                write!(f, "{addr} does not speak the p2p-share tracker protocol ({err})")
            }
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
    /// BitTorrent clients of the same swarm.
    pub bt_peers: Vec<SocketAddr>,
}

/// This peer's session at the tracker: its address as the tracker sees it, and the
/// secret token every request for it brings.
#[derive(Debug, Clone)]
struct Session {
    me: SocketAddr,
    token: String,
}

/// What a peer tells a tracker that forgot it: every file it holds whole.
pub type FullList = Box<dyn Fn() -> Vec<FileInfo> + Send + Sync>;

/// Talks to one tracker on behalf of one peer.
pub struct TrackerClient {
    addr: SocketAddr,
    session: Mutex<Option<Session>>,
    interval: Mutex<Duration>,
    /// Called on re-joining, to announce everything again.
    full_list: FullList,
    /// The tracker's BitTorrent announce URL, as it said at registration.
    http_announce: Mutex<Option<String>>,
}

/// A page of the tracker's file list: `total` matched, `files` are those that fit.
#[derive(Debug, Clone, Default)]
pub struct FilePage {
    pub files: Vec<FileListing>,
    pub total: u32,
}

impl TrackerClient {
    /// A client for the tracker at `addr`; `full_list` gives the files to announce when
    /// the tracker forgot this peer and it registers again.
    pub fn new(addr: SocketAddr, full_list: FullList) -> TrackerClient {
        TrackerClient {
            addr,
            session: Mutex::new(None),
            interval: Mutex::new(Duration::from_secs(10)),
            full_list,
            http_announce: Mutex::new(None),
        }
    }

    /// A client that only asks (list, search) and never announces files.
    pub fn asking(addr: SocketAddr) -> TrackerClient {
        TrackerClient::new(addr, Box::new(Vec::new))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This peer as the tracker sees it (after registering).
    pub fn me(&self) -> Option<SocketAddr> {
        self.session.lock().as_ref().map(|s| s.me)
    }

    /// The tracker's BitTorrent announce URL, when it has HTTP on.
    pub fn http_announce(&self) -> Option<String> {
        self.http_announce.lock().clone()
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
            Err(err) if speaks_another_protocol(&err) => Err(TrackerError::NotATracker { addr, err }),
            Err(err) => Err(TrackerError::Protocol { addr, err }),
        }
    }

    /// Registers with `port` (or lets the tracker assign one); returns this peer's address
    /// as the tracker sees it.
    pub fn register(&self, port: Option<u16>) -> Result<SocketAddr, TrackerError> {
        let token =
            self.session.lock().as_ref().filter(|s| Some(s.me.port()) == port).map(|s| s.token.clone());
        match self.call(&TrackerRequest::Register { port, token })? {
            TrackerReply::Registered { peer, announce_interval_secs, token, http_announce } => {
                *self.session.lock() = Some(Session { me: peer, token });
                *self.http_announce.lock() = http_announce;
                *self.interval.lock() = Duration::from_secs(announce_interval_secs.clamp(1, 3600));
                Ok(peer)
            }
            other => Err(unexpected(&other)),
        }
    }

    fn session(&self) -> Result<(u16, String), TrackerError> {
        let s = self.session.lock();
        let s = s.as_ref().ok_or_else(|| TrackerError::Unexpected("this peer is not registered".into()))?;
        Ok((s.me.port(), s.token.clone()))
    }

    /// Registers again under the same port and announces every complete file.
    pub fn rejoin(&self) -> Result<(), TrackerError> {
        let (port, _) = self.session()?;
        self.join(port)
    }

    /// Registers on `port` and announces every complete file (a peer that started while
    /// the tracker was down, or one the tracker forgot).
    pub fn join(&self, port: u16) -> Result<(), TrackerError> {
        self.register(Some(port))?;
        info!("Registered with the tracker at {}", self.addr);
        let (port, token) = self.session()?;
        let full = Some((self.full_list)());
        self.expect_ok(&TrackerRequest::Announce { port, token, full, added: vec![], removed: vec![] })
    }

    /// Sends a request made for this peer's port and token; registers again once if the
    /// tracker does not know the peer.
    fn as_peer(&self, make: impl Fn(u16, String) -> TrackerRequest) -> Result<TrackerReply, TrackerError> {
        let (port, token) = self.session()?;
        match self.call(&make(port, token))? {
            TrackerReply::UnknownPeer => {
                self.rejoin()?;
                let (port, token) = self.session()?;
                match self.call(&make(port, token))? {
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
            other => Err(unexpected(&other)),
        }
    }

    /// Announces changes to the shared files (an empty change is a heartbeat).
    pub fn announce(&self, added: Vec<FileInfo>, removed: Vec<ContentId>) -> Result<(), TrackerError> {
        let reply = self.as_peer(|port, token| TrackerRequest::Announce {
            port,
            token,
            full: None,
            added: added.clone(),
            removed: removed.clone(),
        })?;
        match reply {
            TrackerReply::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    pub fn list(&self) -> Result<FilePage, TrackerError> {
        self.files(&TrackerRequest::ListFiles)
    }

    pub fn search(&self, name: &str) -> Result<FilePage, TrackerError> {
        self.files(&TrackerRequest::Search { name: name.to_string() })
    }

    fn files(&self, req: &TrackerRequest) -> Result<FilePage, TrackerError> {
        match self.call(req)? {
            TrackerReply::Files { files, total } => {
                let total = total.max(files.len() as u32);
                Ok(FilePage { files, total })
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Tells the tracker this peer downloads `id`; returns who can help.
    pub fn start_download(&self, id: ContentId) -> Result<Sources, TrackerError> {
        match self.as_peer(|port, token| TrackerRequest::StartDownload { port, token, content_id: id })? {
            TrackerReply::Sources { file, holders, downloaders, bt_peers } => {
                Ok(Sources { file, holders, downloaders, bt_peers })
            }
            other => Err(unexpected(&other)),
        }
    }

    pub fn stop_download(&self, id: ContentId) -> Result<(), TrackerError> {
        let (port, token) = self.session()?;
        self.expect_ok(&TrackerRequest::StopDownload { port, token, content_id: id })
    }

    /// BitTorrent clients downloading files this peer holds, to dial.
    pub fn leechers(&self) -> Result<Vec<(ContentId, SocketAddr)>, TrackerError> {
        match self.as_peer(|port, token| TrackerRequest::Leechers { port, token })? {
            TrackerReply::Leechers { peers } => Ok(peers),
            other => Err(unexpected(&other)),
        }
    }

    /// Leaves the swarm.
    pub fn leave(&self) -> Result<(), TrackerError> {
        let (port, token) = self.session()?;
        self.expect_ok(&TrackerRequest::Leave { port, token })
    }
}

/// A reply of the wrong kind, named by its kind only (never the whole reply).
fn unexpected(reply: &TrackerReply) -> TrackerError {
    TrackerError::Unexpected(format!("a '{}' reply where another was due", reply.kind()))
}

/// True when a reply could not be read because the other side speaks something else: a
/// length prefix that is really text (`HTTP`...), or a body that is not our JSON.
fn speaks_another_protocol(e: &WireError) -> bool {
    matches!(
        e,
        WireError::Frame(FrameError::TooLarge { .. }) | WireError::InvalidJson(_) | WireError::BadMessage(_)
    )
}
