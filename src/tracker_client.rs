//! The peer's side of the tracker protocol: one short connection per request, and a
//! re-registration by itself when the tracker forgot this peer (restart or expiry).

use crate::hash::ContentId;
use crate::wire::conn::Conn;
use crate::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use crate::wire::{FrameError, WireError};
use log::{debug, info};
use parking_lot::Mutex;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const TRACKER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request is asked again while the tracker answers `busy` (it did not read the
/// request, so asking again is safe): first after [`FIRST_RETRY`], then twice as long each
/// time, with jitter so the peers behind one address do not come back together.
const BUSY_PATIENCE: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_millis(20);

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
    /// It stayed busy for [`BUSY_PATIENCE`].
    Busy(String),
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
            TrackerError::Busy(reason) => {
                write!(f, "the tracker stayed busy for {} s: {reason}", BUSY_PATIENCE.as_secs())
            }
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

/// How one request reaches the tracker and its reply comes back.
pub trait Transport: Send + Sync {
    fn call(&self, addr: SocketAddr, req: &TrackerRequest) -> Result<TrackerReply, TrackerError>;
}

/// One short TCP connection per request, within [`TRACKER_TIMEOUT`].
struct Tcp;

impl Transport for Tcp {
    fn call(&self, addr: SocketAddr, req: &TrackerRequest) -> Result<TrackerReply, TrackerError> {
        let mut conn =
            Conn::connect(addr, TRACKER_TIMEOUT).map_err(|err| TrackerError::Unreachable { addr, err })?;
        match conn.call(req) {
            Ok(reply) => Ok(reply),
            Err(err) if speaks_another_protocol(&err) => Err(TrackerError::NotATracker { addr, err }),
            Err(err) => Err(TrackerError::Protocol { addr, err }),
        }
    }
}

/// Talks to one tracker on behalf of one peer.
pub struct TrackerClient {
    addr: SocketAddr,
    transport: Box<dyn Transport>,
    /// [`BUSY_PATIENCE`], shorter in tests.
    busy_patience: Duration,
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
    /// The tracker's BitTorrent announce URL, when it speaks HTTP.
    pub http_announce: Option<String>,
}

impl TrackerClient {
    /// A client for the tracker at `addr`; `full_list` gives the files to announce when
    /// the tracker forgot this peer and it registers again.
    pub fn new(addr: SocketAddr, full_list: FullList) -> TrackerClient {
        TrackerClient::over(Box::new(Tcp), addr, full_list)
    }

    /// A client whose requests go over `transport` (a test's script).
    pub fn over(transport: Box<dyn Transport>, addr: SocketAddr, full_list: FullList) -> TrackerClient {
        TrackerClient {
            addr,
            transport,
            busy_patience: BUSY_PATIENCE,
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

    /// Sends `req`; asks again while the tracker is busy, for up to [`BUSY_PATIENCE`].
    fn call(&self, req: &TrackerRequest) -> Result<TrackerReply, TrackerError> {
        let give_up = Instant::now() + self.busy_patience;
        let mut wait = FIRST_RETRY;
        loop {
            match self.transport.call(self.addr, req)? {
                TrackerReply::Error { reason } => return Err(TrackerError::Refused(reason)),
                TrackerReply::Busy { reason } => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(TrackerError::Busy(reason));
                    }
                    debug!("the tracker is busy ({reason}); asking again");
                    let jittered = wait.mul_f64(0.5 + crate::random::unit());
                    std::thread::sleep(jittered.min(give_up - now));
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                reply => return Ok(reply),
            }
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
            TrackerReply::Files { files, total, http_announce } => {
                let total = total.max(files.len() as u32);
                Ok(FilePage { files, total, http_announce })
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
        WireError::Frame(FrameError::TooLarge { .. } | FrameError::Http(_))
            | WireError::InvalidJson(_)
            | WireError::BadMessage(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Arc;

    /// A tracker that answers from a script and keeps what it was asked.
    #[derive(Clone, Default)]
    struct Script {
        replies: Arc<Mutex<VecDeque<TrackerReply>>>,
        asked: Arc<Mutex<Vec<TrackerRequest>>>,
    }

    impl Transport for Script {
        fn call(&self, _: SocketAddr, req: &TrackerRequest) -> Result<TrackerReply, TrackerError> {
            self.asked.lock().push(req.clone());
            self.replies.lock().pop_front().ok_or_else(|| TrackerError::Unexpected("script ended".into()))
        }
    }

    const ME: &str = "127.0.0.5:6001";

    fn registered(interval: u64) -> TrackerReply {
        TrackerReply::Registered {
            peer: ME.parse().unwrap(),
            announce_interval_secs: interval,
            token: "t1".into(),
            http_announce: None,
        }
    }

    fn file(name: &str) -> FileInfo {
        FileInfo { name: name.into(), size: 1, content_id: ContentId::of(name.as_bytes()) }
    }

    /// A client over `replies`, whose full list is one file, "held.bin".
    fn client(replies: Vec<TrackerReply>) -> (TrackerClient, Script) {
        let script = Script::default();
        script.replies.lock().extend(replies);
        let tracker = "127.0.0.1:5000".parse().unwrap();
        let c = TrackerClient::over(Box::new(script.clone()), tracker, Box::new(|| vec![file("held.bin")]));
        (c, script)
    }

    #[test]
    fn a_tracker_that_forgot_the_peer_hears_everything_again_and_then_the_request() {
        let (c, script) = client(vec![
            registered(10),
            TrackerReply::UnknownPeer,
            registered(10),
            TrackerReply::Ok,
            TrackerReply::Ok,
        ]);
        c.register(None).unwrap();
        c.announce(vec![file("new.bin")], vec![]).unwrap();
        let asked = script.asked.lock().clone();
        let announce = |full: Option<Vec<FileInfo>>, added: Vec<FileInfo>| TrackerRequest::Announce {
            port: 6001,
            token: "t1".into(),
            full,
            added,
            removed: vec![],
        };
        assert_eq!(
            asked,
            vec![
                TrackerRequest::Register { port: None, token: None },
                announce(None, vec![file("new.bin")]),
                // The same port with its token: the tracker may keep the address for us.
                TrackerRequest::Register { port: Some(6001), token: Some("t1".into()) },
                announce(Some(vec![file("held.bin")]), vec![]),
                announce(None, vec![file("new.bin")]),
            ]
        );
    }

    #[test]
    fn a_tracker_that_forgets_the_peer_twice_in_a_row_is_an_error_not_a_loop() {
        let (c, script) = client(vec![
            registered(10),
            TrackerReply::UnknownPeer,
            registered(10),
            TrackerReply::Ok,
            TrackerReply::UnknownPeer,
        ]);
        c.register(None).unwrap();
        let e = c.start_download(ContentId::of(b"x")).unwrap_err();
        assert!(e.to_string().contains("forgot this peer again"), "{e}");
        assert_eq!(script.asked.lock().len(), 5);
    }

    #[test]
    fn the_announce_interval_is_kept_within_a_second_and_an_hour() {
        for (said, kept) in [(0, 1), (30, 30), (1_000_000, 3600)] {
            let (c, _) = client(vec![registered(said)]);
            c.register(None).unwrap();
            assert_eq!(c.announce_interval(), Duration::from_secs(kept));
        }
    }

    #[test]
    fn a_reply_of_the_wrong_kind_is_named_by_its_kind_and_a_short_total_is_raised() {
        let (c, _) = client(vec![TrackerReply::Ok]);
        let e = c.list().unwrap_err();
        assert_eq!(e.to_string(), "unexpected answer from the tracker: a 'ok' reply where another was due");
        let (c, _) = client(vec![TrackerReply::Files { files: vec![], total: 0, http_announce: None }]);
        assert_eq!(c.search("x").unwrap().total, 0);
        let listing = FileListing { info: file("a"), holders: vec![], holder_count: 0, hosts: 0 };
        let (c, _) =
            client(vec![TrackerReply::Files { files: vec![listing], total: 0, http_announce: None }]);
        assert_eq!(c.list().unwrap().total, 1, "never fewer than were sent");
    }

    #[test]
    fn requests_for_the_peer_need_a_registration_first() {
        let (c, script) = client(vec![]);
        assert!(c.leave().is_err());
        assert!(script.asked.lock().is_empty(), "nothing was sent without a session");
    }

    #[test]
    fn a_busy_tracker_is_asked_again_until_it_answers_or_patience_ends() {
        let busy = || TrackerReply::Busy { reason: "too many connections from 127.0.0.5 (limit 16)".into() };
        let (c, script) = client(vec![busy(), busy(), registered(10)]);
        assert_eq!(c.register(None).unwrap(), ME.parse().unwrap());
        assert_eq!(script.asked.lock().len(), 3, "asked again twice");

        let (mut c, script) = client((0..1000).map(|_| busy()).collect());
        c.busy_patience = Duration::from_millis(200);
        let e = c.list().unwrap_err();
        assert!(matches!(e, TrackerError::Busy(ref why) if why.contains("too many")), "{e}");
        let asked = script.asked.lock().len();
        assert!((2..=10).contains(&asked), "asked {asked} times in 200 ms: backing off, not spinning");
        // A refusal that is not `busy` is final at once.
        let (c, script) = client(vec![TrackerReply::Error { reason: "wrong session token".into() }]);
        assert!(matches!(c.list(), Err(TrackerError::Refused(_))));
        assert_eq!(script.asked.lock().len(), 1);
    }

    #[test]
    fn text_where_a_frame_was_due_means_another_protocol() {
        assert!(speaks_another_protocol(&WireError::Frame(FrameError::TooLarge {
            len: 1_213_486_160,
            limit: 1 << 20
        })));
        assert!(!speaks_another_protocol(&WireError::Frame(FrameError::Truncated { expected: 4, got: 1 })));
    }
}
