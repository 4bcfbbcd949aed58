//! One accept loop for every server (the tracker, the peer server): accept, apply the
//! per-address and total caps, refuse in the server's own protocol, hand the connection
//! on, and stop when the server's [`Shutdown`] is signalled. Refusals are logged in summary
//! (see [`refusals`](crate::refusals)).

use crate::conn_limit::{ConnGuard, ConnLimiter};
use crate::refusals::RefusalLog;
use crate::shutdown::{ConnRegistry, Registered, Shutdown};
use log::{debug, warn};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// A connection that passed the caps.
pub struct Admitted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Keep it as long as the connection is served.
    pub hold: Hold,
}

/// A served connection's slot under the caps and its place in the registry a shutdown
/// closes; both are given back when it is dropped.
pub struct Hold {
    pub guard: ConnGuard,
    _registered: Option<Registered>,
}

/// What a server plugs into the accept loop.
pub trait Service {
    /// The server's name in log lines.
    fn name(&self) -> &str;
    /// Whether to log every connection at info level (the tracker's console shows them).
    fn log_connects(&self) -> bool {
        false
    }
    /// Tells a refused client why, in the server's protocol, within [`REFUSE_TIMEOUT`].
    fn refuse(&self, stream: TcpStream, reason: &str);
    /// Serves the connection (on a worker or a thread of its own); hands the stream back
    /// with the reason when it cannot be served now (its slot is given back).
    fn dispatch(&self, conn: Admitted) -> Result<(), (TcpStream, String)>;
}

/// How long a refusal may take to write.
pub const REFUSE_TIMEOUT: Duration = Duration::from_millis(200);

/// Accepts until `stop` is signalled.
pub fn run(
    listener: &TcpListener,
    limiter: &ConnLimiter,
    conns: &ConnRegistry,
    stop: &Shutdown,
    service: &impl Service,
) {
    widen_backlog(listener, service);
    let mut refusals = RefusalLog::new(Instant::now());
    for stream in listener.incoming() {
        if stop.is_stopping() {
            break;
        }
        match stream {
            Ok(stream) => admit(stream, limiter, conns, service, &mut refusals),
            Err(e) => {
                // Out of descriptors, mostly: wait a little rather than spin.
                warn!("{}: accept failed: {e}", service.name());
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Connections the kernel queues for `accept` (std asks for 128). Clients refused in a loop
/// keep the queue full; past it, a new client's SYN is dropped and it retries only after a
/// second, so an honest client waited 1-3 s behind a reconnect loop. The kernel caps the
/// figure at `net.core.somaxconn` (4096 here).
pub const BACKLOG: i32 = 1024;

fn widen_backlog(listener: &TcpListener, service: &impl Service) {
    let widened = nix::sys::socket::Backlog::new(BACKLOG).and_then(|b| nix::sys::socket::listen(listener, b));
    if let Err(e) = widened {
        warn!("{}: cannot widen the accept queue to {BACKLOG}: {e}", service.name());
    }
}

fn admit(
    stream: TcpStream,
    limiter: &ConnLimiter,
    conns: &ConnRegistry,
    service: &impl Service,
    refusals: &mut RefusalLog,
) {
    let Ok(peer) = stream.peer_addr() else { return };
    for line in refusals.flush(Instant::now()) {
        warn!("{}: {line}", service.name());
    }
    let guard = match limiter.try_acquire(peer.ip()) {
        Ok(g) => g,
        Err(e) => return refuse(service, stream, peer, &e.to_string(), refusals),
    };
    if service.log_connects() {
        debug!("Client connected from {} on port: {}", peer.ip(), peer.port());
    }
    let hold = Hold { guard, _registered: conns.register(&stream) };
    let conn = Admitted { stream, peer, hold };
    if let Err((stream, reason)) = service.dispatch(conn) {
        refuse(service, stream, peer, &reason, refusals);
    }
}

fn refuse(service: &impl Service, stream: TcpStream, peer: SocketAddr, reason: &str, log: &mut RefusalLog) {
    for line in log.refused(peer.ip(), reason, Instant::now()) {
        warn!("{}: {line}", service.name());
    }
    service.refuse(stream, reason);
}
