//! Stopping servers cleanly: a shared stop signal, waking a blocked `accept()` by connecting
//! to ourselves (as tiny_http does), and closing open connections.

use crossbeam_channel::{bounded, Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A stop signal for one listening server. Clones share it.
#[derive(Clone)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    stopping: AtomicBool,
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl Shutdown {
    /// A signal for the server listening on `addr`.
    pub fn new(addr: SocketAddr) -> Shutdown {
        let (tx, rx) = bounded(0);
        let inner = Inner { addr, stopping: AtomicBool::new(false), tx: Mutex::new(Some(tx)), rx };
        Shutdown { inner: Arc::new(inner) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// A receiver that becomes ready (disconnected) when the stop is signalled.
    pub fn subscribe(&self) -> Receiver<()> {
        self.inner.rx.clone()
    }

    /// Signals the stop and wakes the accept loop.
    pub fn stop(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        drop(self.inner.tx.lock().take());
        let mut wake = self.inner.addr;
        if wake.ip().is_unspecified() {
            let lo = match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            wake.set_ip(lo);
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(500));
    }
}

/// The connections a server has open, so that a shutdown can close them.
#[derive(Clone, Default)]
pub struct ConnRegistry {
    open: Arc<Mutex<HashMap<u64, TcpStream>>>,
    next: Arc<AtomicU64>,
}

/// Removes its connection from the registry when dropped.
pub struct Registered {
    registry: ConnRegistry,
    id: u64,
}

impl ConnRegistry {
    pub fn register(&self, stream: &TcpStream) -> Option<Registered> {
        let clone = stream.try_clone().ok()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, clone);
        Some(Registered { registry: self.clone(), id })
    }

    /// Shuts every open connection down; their threads see end of input.
    pub fn close_all(&self) {
        for (_, s) in self.open.lock().drain() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.id);
    }
}
