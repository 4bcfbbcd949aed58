//! One accept loop for every server (the tracker, the peer server): accept, apply the
//! per-address and total caps, refuse in the server's own protocol, hand the connection
//! on, and stop when the server's [`Shutdown`] is signalled.

use crate::conn_limit::{ConnGuard, ConnLimiter};
use crate::shutdown::{ConnRegistry, Registered, Shutdown};
use log::{info, warn};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

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
    /// Tells a refused client why, in the server's protocol, within a short time-out.
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
    for stream in listener.incoming() {
        if stop.is_stopping() {
            break;
        }
        match stream {
            Ok(stream) => admit(stream, limiter, conns, service),
            Err(e) => {
                // Out of descriptors, mostly: wait a little rather than spin.
                warn!("{}: accept failed: {e}", service.name());
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn admit(stream: TcpStream, limiter: &ConnLimiter, conns: &ConnRegistry, service: &impl Service) {
    let Ok(peer) = stream.peer_addr() else { return };
    if service.log_connects() {
        info!("Client connected from {} on port: {}", peer.ip(), peer.port());
    }
    let guard = match limiter.try_acquire(peer.ip()) {
        Ok(g) => g,
        Err(e) => {
            warn!("{}: refusing {peer}: {e}", service.name());
            return refuse(service, stream, &e.to_string());
        }
    };
    let hold = Hold { guard, _registered: conns.register(&stream) };
    let conn = Admitted { stream, peer, hold };
    if let Err((stream, reason)) = service.dispatch(conn) {
        warn!("{}: refusing {peer}: {reason}", service.name());
        refuse(service, stream, &reason);
    }
}

fn refuse(service: &impl Service, stream: TcpStream, reason: &str) {
    let _ = stream.set_write_timeout(Some(REFUSE_TIMEOUT));
    service.refuse(stream, reason);
}
