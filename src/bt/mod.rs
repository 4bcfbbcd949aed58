//! The BitTorrent peer wire protocol (BEP 3), beside our own on the same port: a
//! connection that opens with `\x13BitTorrent protocol` is a plain BitTorrent one, one
//! that opens with neither that nor one of our frames an encrypted one (MSE).
//!
//! - [`msg`]: the handshake and the length-prefixed messages, with the fast extension
//!   (BEP 6) and the extension protocol (BEP 10);
//! - [`metadata`]: the extension handshake and ut_metadata (BEP 9), so a client that starts
//!   from a magnet link gets the info dictionary from us;
//! - [`choke`]: who gets an upload slot;
//! - [`mse`]: Message Stream Encryption's handshake, [`stream`] the (maybe RC4) stream after
//!   it, and [`dial`] how a connection is opened under `--encryption`.
//!
//! The peer server serves BitTorrent connections in `peer::bt_serve`.

pub mod announce;
pub mod choke;
pub mod client;
pub mod dial;
pub mod metadata;
pub mod mse;
pub mod msg;
pub mod pex;
pub mod stream;

/// Our peer id prefix (Azureus style: client code and version), then 12 random bytes.
pub const PEER_ID_PREFIX: &[u8; 8] = b"-PS0100-";

/// A new peer id: the prefix, then 48 random bits as 12 hex digits (printable, as most
/// clients' are).
pub fn new_peer_id() -> [u8; 20] {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(PEER_ID_PREFIX);
    let hex: String = crate::random::bytes::<6>().iter().map(|b| format!("{b:02x}")).collect();
    id[8..].copy_from_slice(hex.as_bytes());
    id
}
