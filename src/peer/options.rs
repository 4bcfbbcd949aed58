//! What a peer server is told at start: its caps, deadlines, upload limit and DHT node.
//! Apart from the server so the BitTorrent side (`bt_serve`) reads them without importing
//! the native server.

use crate::bt::mse::Encryption;
use crate::dht::PeerDht;
use crate::peer::upload::UploadLine;
use std::sync::Arc;
use std::time::Duration;

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
    pub upload_limit: Option<Arc<UploadLine>>,
    /// Our DHT node, when the DHT is on: its port is told to BitTorrent peers, and the
    /// nodes their `port` messages name join its routing table (BEP 5).
    pub dht: Option<PeerDht>,
    /// Encrypted (MSE) and plain BitTorrent handshakes: which are taken, and how we dial.
    pub encryption: Encryption,
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
            dht: None,
            encryption: Encryption::default(),
        }
    }
}
