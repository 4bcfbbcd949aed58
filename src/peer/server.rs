//! The peer server: an accept loop that spawns one thread per connection, serving
//! manifests, have-sets and chunks of complete and partial files.

use crate::conn_limit::{ConnGuard, ConnLimiter};
use crate::hash::ContentId;
use crate::holdings::shares::{Holding, Shared, Shares};
use crate::manifest::ChunkIndex;
use crate::names::validate_name;
use crate::rate_limit::RateLimiter;
use crate::shutdown::{ConnRegistry, Shutdown};
use crate::wire::conn::Conn;
use crate::wire::peer_msg::{PeerReply, PeerRequest};
use crate::wire::{FrameError, WireError};
use log::{debug, info, warn};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Files one connection keeps open (one per content id it asked about, the oldest closed).
pub const MAX_OPEN_FILES_PER_CONN: usize = 4;
/// Files the whole server keeps open.
pub const MAX_OPEN_FILES: usize = 256;

/// Limits of the peer server.
#[derive(Clone)]
pub struct ServerOptions {
    /// Connections served at once; past it, hoarders give way (see `conn_limit`).
    pub max_conns: usize,
    /// Connections admitted beyond `max_conns` while hoarders give way.
    pub headroom: usize,
    pub max_conns_per_ip: usize,
    /// How long a connection may wait for its next request.
    pub io_timeout: Duration,
    /// A request must arrive whole within this once its first byte came.
    pub message_deadline: Duration,
    /// Caps the sum of all uploads.
    pub upload_limit: Option<Arc<RateLimiter>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_conns: 128,
            headroom: 64,
            max_conns_per_ip: 16,
            io_timeout: Duration::from_secs(30),
            message_deadline: Duration::from_secs(10),
            upload_limit: None,
        }
    }
}

/// The files one connection has open, within its own cap and the server's.
struct OpenFiles<'a> {
    files: Vec<(ContentId, File)>,
    server_total: &'a AtomicUsize,
}

impl OpenFiles<'_> {
    /// The open file of `id`: the one kept from an earlier request if `still_valid` accepts
    /// it (else it is closed and the error returned), or a new one from `open`.
    fn get_or_open(
        &mut self,
        id: ContentId,
        still_valid: impl FnOnce(&File) -> io::Result<()>,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<&File> {
        if let Some(i) = self.files.iter().position(|(k, _)| *k == id) {
            if let Err(e) = still_valid(&self.files[i].1) {
                self.files.remove(i);
                self.server_total.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
            return Ok(&self.files[i].1);
        }
        let file = open()?;
        self.insert(id, file)
    }

    /// Keeps `file` open for `id`, closing this connection's oldest if it has too many.
    fn insert(&mut self, id: ContentId, file: File) -> io::Result<&File> {
        if self.files.len() >= MAX_OPEN_FILES_PER_CONN {
            self.files.remove(0);
            self.server_total.fetch_sub(1, Ordering::SeqCst);
        }
        if self.server_total.fetch_add(1, Ordering::SeqCst) >= MAX_OPEN_FILES {
            self.server_total.fetch_sub(1, Ordering::SeqCst);
            return Err(io::Error::other(format!("too many files open here ({MAX_OPEN_FILES}); try again")));
        }
        self.files.push((id, file));
        Ok(&self.files[self.files.len() - 1].1)
    }
}

impl Drop for OpenFiles<'_> {
    fn drop(&mut self) {
        self.server_total.fetch_sub(self.files.len(), Ordering::SeqCst);
    }
}

/// A running peer server.
pub struct PeerServer {
    shutdown: Shutdown,
    conns: ConnRegistry,
    thread: Option<thread::JoinHandle<()>>,
}

/// A request that cannot be served; the connection stays open.
struct Refusal(String);

impl PeerServer {
    /// Serves `shares` on `listener` from a new thread.
    pub fn start(listener: TcpListener, shares: Arc<Shares>, opts: ServerOptions) -> io::Result<PeerServer> {
        let shutdown = Shutdown::new(listener.local_addr()?);
        let conns = ConnRegistry::default();
        let (stop, registry) = (shutdown.clone(), conns.clone());
        let thread = thread::Builder::new()
            .name("peer-server".into())
            .spawn(move || accept_loop(listener, shares, opts, stop, registry))?;
        Ok(PeerServer { shutdown, conns, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shutdown.addr()
    }

    /// Stops accepting and closes open connections.
    pub fn stop(&mut self) {
        self.shutdown.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.conns.close_all();
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    shares: Arc<Shares>,
    opts: ServerOptions,
    stop: Shutdown,
    conns: ConnRegistry,
) {
    let limiter = ConnLimiter::new(opts.max_conns_per_ip, opts.max_conns, opts.headroom);
    let open_files = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.is_stopping() {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!("peer server: accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Ok(peer) = stream.peer_addr() else { continue };
        let guard = match limiter.try_acquire(peer.ip()) {
            Ok(g) => g,
            Err(e) => {
                warn!("peer server: refusing {peer}: {e}");
                refuse(stream, &e.to_string());
                continue;
            }
        };
        let (shares, opts, conns) = (Arc::clone(&shares), opts.clone(), conns.clone());
        let open_files = Arc::clone(&open_files);
        let spawned = thread::Builder::new()
            .name(format!("serve-{peer}"))
            .spawn(move || serve_connection(stream, guard, &shares, &opts, &conns, &open_files));
        if let Err(e) = spawned {
            warn!("peer server: cannot start a thread for {peer}: {e}");
        }
    }
}

fn refuse(stream: TcpStream, reason: &str) {
    if let Ok(mut conn) = Conn::new(stream, Duration::from_millis(200)) {
        let _ = conn.send_reply(&PeerReply::Error { reason: reason.to_string() });
    }
}

fn serve_connection(
    stream: TcpStream,
    guard: ConnGuard,
    shares: &Shares,
    opts: &ServerOptions,
    conns: &ConnRegistry,
    server_files: &AtomicUsize,
) {
    let Ok(conn) = Conn::new(stream, opts.io_timeout) else { return };
    let mut conn = conn.with_message_deadline(opts.message_deadline).with_give_way(guard.give_way_test());
    let _registered = conns.register(conn.stream());
    let mut open_files = OpenFiles { files: Vec::new(), server_total: server_files };
    loop {
        let req: PeerRequest = match conn.read_request() {
            Ok(r) => r,
            Err(e) => return conn.end_after("peer server", e, |reason| PeerReply::Error { reason }),
        };
        let result = match answer(&mut conn, &req, shares, opts, &mut open_files) {
            Ok(r) => r,
            Err(e) => {
                debug!("peer server: {}: {e}", conn.peer_addr());
                return;
            }
        };
        if let Err(Refusal(reason)) = result {
            debug!("peer server: {}: {reason}", conn.peer_addr());
            if conn.send_reply(&PeerReply::Error { reason }).is_err() {
                return;
            }
        }
    }
}

type Answer = Result<Result<(), Refusal>, WireError>;

fn answer(
    conn: &mut Conn,
    req: &PeerRequest,
    shares: &Shares,
    opts: &ServerOptions,
    files: &mut OpenFiles,
) -> Answer {
    match req {
        PeerRequest::Manifest { content_id, name } => {
            let shared = match find(shares, content_id.as_ref(), name.as_deref()) {
                Ok(s) => s,
                Err(r) => return Ok(Err(r)),
            };
            info!("Sending file.ini of '{}' to {}", shared.manifest.name, conn.peer_addr());
            let text = shared.manifest.to_ini();
            conn.send_reply(&PeerReply::Manifest { content_id: shared.content_id, len: text.len() as u32 })?;
            conn.write_raw(text.as_bytes())?;
            Ok(Ok(()))
        }
        PeerRequest::Have { content_id } => {
            let Some(shared) = shares.get(content_id) else { return Ok(Err(not_shared(content_id))) };
            let reply = match &shared.holding {
                Holding::Complete(..) => PeerReply::Have { complete: true, bitfield: String::new() },
                Holding::Partial(store) => {
                    PeerReply::Have { complete: false, bitfield: store.bitfield().to_hex() }
                }
            };
            conn.send_reply(&reply)?;
            Ok(Ok(()))
        }
        PeerRequest::Chunk { content_id, index } => {
            let Some(shared) = shares.get(content_id) else { return Ok(Err(not_shared(content_id))) };
            send_chunk(conn, &shared, *index, opts, files)
        }
    }
}

fn not_shared(id: &ContentId) -> Refusal {
    Refusal(format!("file {id} is not shared here"))
}

fn find(shares: &Shares, id: Option<&ContentId>, name: Option<&str>) -> Result<Arc<Shared>, Refusal> {
    match (id, name) {
        (Some(id), _) => shares.get(id).ok_or_else(|| not_shared(id)),
        (None, Some(name)) => {
            validate_name(name).map_err(|e| Refusal(e.to_string()))?;
            shares.complete_by_name(name).ok_or_else(|| Refusal(format!("'{name}' is not shared here")))
        }
        (None, None) => Err(Refusal("a manifest request must name a file".into())),
    }
}

fn send_chunk(
    conn: &mut Conn,
    shared: &Shared,
    index: u32,
    opts: &ServerOptions,
    files: &mut OpenFiles,
) -> Answer {
    let m = &shared.manifest;
    let Some(idx) = m.index(index) else {
        return Ok(Err(Refusal(format!(
            "chunk {index} is out of range: '{}' has {} chunks",
            m.name,
            m.chunk_count()
        ))));
    };
    let file = match open_for_chunk(shared, idx, files) {
        Ok(f) => f,
        Err(r) => return Ok(Err(r)),
    };
    let len = m.chunk_len(idx);
    conn.send_reply(&PeerReply::Chunk { index, len: len as u32 })?;
    debug!("sending chunk {index} of '{}' to {}", m.name, conn.peer_addr());
    let sent = match &opts.upload_limit {
        None => copy_range(file, idx.offset(), len, conn),
        Some(limit) => copy_range_limited(file, idx.offset(), len, conn, limit),
    };
    match sent {
        Ok(n) if n == len => Ok(Ok(())),
        // The file shrank under us: the promised bytes cannot be sent, so close.
        Ok(n) => Err(WireError::Frame(FrameError::Truncated { expected: len, got: n })),
        Err(e) => Err(e.into()),
    }
}

/// The open file to read chunk `idx` of `shared` from. A complete file is opened without
/// following links and must still be the file that was hashed (device, inode, size,
/// mtime), checked again before every chunk; a partial one is read through the download's
/// own handle, and only for chunks already verified.
fn open_for_chunk<'f>(
    shared: &Shared,
    idx: ChunkIndex,
    files: &'f mut OpenFiles,
) -> Result<&'f File, Refusal> {
    let name = &shared.manifest.name;
    let opened = match &shared.holding {
        Holding::Complete(path, identity) => {
            files.get_or_open(shared.content_id, |f| identity.check(f), || identity.open(path))
        }
        Holding::Partial(store) if store.has(idx) => {
            files.get_or_open(shared.content_id, |_| Ok(()), || store.reader())
        }
        Holding::Partial(_) => {
            return Err(Refusal(format!("chunk {} of '{name}' is not here yet", idx.get())))
        }
    };
    opened.map_err(|e| {
        warn!("not serving '{name}': {e}");
        Refusal(format!("cannot serve '{name}': {e}"))
    })
}

/// Copies a file range into the socket; std uses sendfile(2) here, so no user-space copy.
fn copy_range(mut file: &File, offset: u64, len: usize, conn: &mut Conn) -> io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let n = io::copy(&mut file.take(len as u64), conn.writer())?;
    Ok(n as usize)
}

/// Copies a file range in slices, taking tokens from the shared upload limit first.
fn copy_range_limited(
    file: &File,
    offset: u64,
    len: usize,
    conn: &mut Conn,
    limit: &RateLimiter,
) -> io::Result<usize> {
    const SLICE: usize = 64 * 1024;
    let mut buf = vec![0u8; SLICE];
    let mut done = 0;
    while done < len {
        let n = SLICE.min(len - done);
        limit.take(n);
        let got = file.read_at(&mut buf[..n], offset + done as u64)?;
        if got == 0 {
            break;
        }
        conn.write_raw(&buf[..got])?;
        done += got;
    }
    Ok(done)
}
