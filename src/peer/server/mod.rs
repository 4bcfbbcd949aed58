//! The peer server: an accept loop that spawns one thread per connection, which tells the
//! native protocol from BitTorrent by the first byte ([`bt_serve`] serves the latter), and
//! serves manifests, have-sets (offers, when super-seeding) and chunks of complete and
//! partial files, under the upload limit in turns; and a dialer that opens uploads to
//! BitTorrent leechers that will not dial us.
//! The native protocol's requests are answered in `native` (the loop), `decide` (which
//! reply), `send` (the bytes, `busy`) and `turn` (a place in the upload line).

use super::bt_serve::{self, BtServer, Greeting, Opened};
use super::open_files::OpenFiles;
use super::options::ServerOptions;
use crate::accept::{self, Admitted, Service, REFUSE_TIMEOUT};
use crate::bt::choke::{next_conn_id, Slots};
use crate::bt::mse::{self, Encryption};
use crate::bt::new_peer_id;
use crate::bt::pex::Book;
use crate::bt::stream::PeerStream;
use crate::bt::{dial, mse::req2};
use crate::conn_limit::ConnLimiter;
use crate::hash::ContentId;
use crate::holdings::shares::Shares;
use crate::shutdown::{ConnRegistry, Shutdown};
use crate::wire::conn::Conn;
use crate::wire::deadline::{GiveWay, POLL};
use crate::wire::peer_msg::PeerReply;
use log::{debug, warn};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

mod decide;
mod native;
mod send;
mod turn;

use native::serve_requests;

/// BitTorrent peers unchoked at once (one more holds the optimistic slot).
pub const UPLOAD_SLOTS: usize = 16;

/// A running peer server.
pub struct PeerServer {
    shutdown: Shutdown,
    conns: ConnRegistry,
    thread: Option<thread::JoinHandle<()>>,
    ctx: Arc<PeerCtx>,
}

/// Uploads we dial out for at once (to downloaders that do not dial us, see `dial`).
pub const MAX_DIALED: usize = 32;
/// Of those, to one IP address: 40 fake leechers on one address answering the handshake
/// held all 32 and a real leecher was never dialed.
pub const MAX_DIALED_PER_IP: usize = 4;

impl PeerServer {
    /// Serves `shares` on `listener` from a new thread.
    pub fn start(listener: TcpListener, shares: Arc<Shares>, opts: ServerOptions) -> io::Result<PeerServer> {
        let shutdown = Shutdown::new(listener.local_addr()?);
        let conns = ConnRegistry::default();
        let (stop, registry) = (shutdown.clone(), conns.clone());
        let limiter = ConnLimiter::new(opts.max_conns_per_ip, opts.max_conns, opts.headroom);
        let ctx = Arc::new(PeerCtx {
            shares,
            opts,
            open_files: Arc::new(AtomicUsize::new(0)),
            slots: Arc::new(Slots::new(UPLOAD_SLOTS)),
            peer_id: new_peer_id(),
            dialed: Mutex::new(HashSet::new()),
            conns: conns.clone(),
            book: Arc::default(),
            port: shutdown.addr().port(),
        });
        let service = Accepting(Arc::clone(&ctx));
        let thread = thread::Builder::new()
            .name("peer-server".into())
            .spawn(move || accept::run(&listener, &limiter, &registry, &stop, &service))?;
        Ok(PeerServer { shutdown, conns, thread: Some(thread), ctx })
    }

    /// What a download's BitTorrent connections give back with (see [`Uploads`]).
    pub fn uploads(&self) -> Uploads {
        Uploads {
            shares: Arc::clone(&self.ctx.shares),
            slots: Arc::clone(&self.ctx.slots),
            limit: self.ctx.opts.upload_limit.clone(),
            open_files: Arc::clone(&self.ctx.open_files),
            book: Arc::clone(&self.ctx.book),
        }
    }

    /// A handle that dials BitTorrent downloaders for this server (see [`Dialer::dial`]).
    pub fn dialer(&self) -> Dialer {
        Dialer { ctx: Arc::clone(&self.ctx) }
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

/// What the BitTorrent connections a download dials need to upload over them too, under
/// the same rules as the server's: the shares (a partial download is one), the upload
/// slots and the upload line, and the count of files open.
#[derive(Clone)]
pub struct Uploads {
    pub shares: Arc<Shares>,
    pub slots: Arc<Slots>,
    pub limit: Option<Arc<super::upload::UploadLine>>,
    pub open_files: Arc<AtomicUsize>,
    /// Every BitTorrent connection of the process, for peer exchange.
    pub book: Arc<Book>,
}

/// Opens uploads to BitTorrent downloaders on behalf of a peer server.
#[derive(Clone)]
pub struct Dialer {
    ctx: Arc<PeerCtx>,
}

impl Dialer {
    /// Connects to a BitTorrent downloader of `id` and uploads to it over BitTorrent: some
    /// clients (Transmission) never dial a loopback or LAN peer they hear of, so a seeder
    /// dials them, as BitTorrent seeders do. At most one connection per (file, address),
    /// [`MAX_DIALED_PER_IP`] per IP address and [`MAX_DIALED`] in all at once; a dialed
    /// connection that asks for nothing is closed (see `bt_serve`).
    pub fn dial(&self, id: ContentId, to: SocketAddr) {
        let ctx = Arc::clone(&self.ctx);
        {
            let mut dialed = ctx.dialed.lock();
            let same_ip = dialed.iter().filter(|(_, a)| a.ip() == to.ip()).count();
            if dialed.len() >= MAX_DIALED || same_ip >= MAX_DIALED_PER_IP || !dialed.insert((id, to)) {
                return;
            }
        }
        let spawned = thread::Builder::new().name(format!("dial-{to}")).spawn({
            let ctx = Arc::clone(&ctx);
            move || {
                let ours = bt_serve::our_handshake(&ctx.opts, ctx.peer_id, id);
                match dial::open(to, &ours, ctx.opts.encryption, ctx.opts.io_timeout) {
                    Ok(stream) => {
                        let _registered = ctx.conns.register(stream.tcp());
                        ctx.serve_bittorrent(stream, to, None, Opened::Dialed(id));
                    }
                    Err(e) => debug!("peer server: cannot dial {to}: {e}"),
                }
                ctx.dialed.lock().remove(&(id, to));
            }
        });
        if spawned.is_err() {
            ctx.dialed.lock().remove(&(id, to));
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What every connection of the peer server shares, accepted or dialed.
struct PeerCtx {
    shares: Arc<Shares>,
    opts: ServerOptions,
    open_files: Arc<AtomicUsize>,
    slots: Arc<Slots>,
    peer_id: [u8; 20],
    /// Uploads we dialed out for, running now.
    dialed: Mutex<HashSet<(ContentId, SocketAddr)>>,
    conns: ConnRegistry,
    /// Every BitTorrent connection of the process, for peer exchange.
    book: Arc<Book>,
    /// The port we listen on.
    port: u16,
}

impl PeerCtx {
    /// Serves one BitTorrent connection (accepted, or dialed to upload a file).
    fn serve_bittorrent(
        &self,
        stream: PeerStream,
        peer: SocketAddr,
        give_way: Option<GiveWay>,
        opened: Opened,
    ) {
        let _ = stream.tcp().set_nodelay(true);
        let conn_id = next_conn_id();
        let server = BtServer {
            shares: &self.shares,
            opts: &self.opts,
            slots: &self.slots,
            peer_id: self.peer_id,
            conn_id,
            book: &self.book,
            listen_port: self.port,
        };
        let mut files = OpenFiles::new(&self.open_files);
        bt_serve::serve(stream, peer, give_way, &server, &mut files, opened);
    }

    /// Answers an encrypted handshake (MSE) and serves what follows, unless encryption is
    /// off here. The whole handshake has the message deadline.
    fn serve_encrypted(&self, stream: TcpStream, peer: SocketAddr, give_way: GiveWay) {
        let policy = self.opts.encryption;
        if policy == Encryption::Off {
            debug!("peer server: {peer}: an encrypted BitTorrent handshake (or neither protocol), encryption is off; closing");
            return;
        }
        // The torrent a dialer names is found by hashing each shared id the same way.
        let shares = &self.shares;
        let find = |h: &[u8; 20]| shares.ids().into_iter().find(|id| req2(id) == *h);
        let deadline = Instant::now() + self.opts.message_deadline;
        match mse::accept(&stream, &find, policy, deadline, Some(give_way.clone())) {
            Ok((peer_stream, id)) => {
                debug!(
                    "peer server: {peer}: encrypted handshake for {id} (RC4 payload: {})",
                    peer_stream.is_encrypted()
                );
                self.serve_bittorrent(peer_stream, peer, Some(give_way), Opened::AcceptedEncrypted(id));
            }
            Err(mse::MseError::Io(e)) => debug!("peer server: {peer}: {e} in the encrypted handshake"),
            Err(e) => warn!("peer server: {peer}: {e}; closing"),
        }
    }
}

/// The peer server as the accept loop sees it: one thread per connection, which serves
/// the native protocol or BitTorrent, told apart by the first byte.
struct Accepting(Arc<PeerCtx>);

impl Service for Accepting {
    fn name(&self) -> &str {
        "peer server"
    }

    fn refuse(&self, stream: TcpStream, reason: &str) {
        if let Ok(mut conn) = Conn::new(stream, REFUSE_TIMEOUT) {
            let _ = conn.send_reply(&PeerReply::Error { reason: reason.to_string() });
        }
    }

    fn dispatch(&self, conn: Admitted) -> Result<(), (TcpStream, String)> {
        let ctx = Arc::clone(&self.0);
        let Admitted { stream, peer, hold } = conn;
        // The stream goes into the thread; a second handle stays to refuse with if the
        // thread cannot start.
        let Ok(spare) = stream.try_clone() else { return Ok(()) };
        let spawned = thread::Builder::new().name(format!("serve-{peer}")).spawn(move || {
            let give_way = hold.guard.give_way_test();
            let opts = &ctx.opts;
            let deadline = Instant::now() + opts.io_timeout;
            match bt_serve::greeting(&stream, deadline, &give_way, POLL) {
                Ok(Some(Greeting::BitTorrent)) if opts.encryption == Encryption::Require => {
                    debug!(
                        "peer server: {peer}: a plain BitTorrent handshake, encryption is required; closing"
                    );
                }
                Ok(Some(Greeting::BitTorrent)) => {
                    ctx.serve_bittorrent(PeerStream::plain(stream), peer, Some(give_way), Opened::Accepted)
                }
                Ok(Some(Greeting::Encrypted)) => ctx.serve_encrypted(stream, peer, give_way),
                Ok(Some(Greeting::Native)) => {
                    let Ok(conn) = Conn::new(stream, opts.io_timeout) else { return };
                    let mut conn = conn.with_message_deadline(opts.message_deadline).with_give_way(give_way);
                    let mut files = OpenFiles::new(&ctx.open_files);
                    let conn_id = next_conn_id();
                    serve_requests(&mut conn, &ctx.shares, opts, &mut files, conn_id);
                }
                Ok(None) | Err(_) => debug!("peer server: {peer}: closed before its first byte"),
            }
            drop(hold);
        });
        match spawned {
            Ok(_) => Ok(()),
            Err(e) => Err((spare, format!("cannot start a thread: {e}"))),
        }
    }
}
