//! Opening a BitTorrent connection under the peer's [`Encryption`] policy: the TCP
//! connect, then our handshake, sent plain or as the initial payload of an MSE handshake.
//!
//! `prefer` dials encrypted first, as libtorrent (`pe_enabled`) and Transmission ("prefer
//! encryption") do: every client that takes plain text but encryption too (all of them by
//! default) accepts it, and a peer that requires encryption is reached at the first
//! attempt. When the other side closes the encrypted attempt (a client with encryption
//! off reads our key as a broken handshake), one plain attempt follows on a new
//! connection. A time-out is not retried: that peer is slow or gone, not picky.

use super::mse::{self, Encryption, MseError};
use super::msg::{BtError, Handshake};
use super::stream::PeerStream;
use crate::wire::send_deadline::DeadlineWriter;
use log::debug;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

impl From<MseError> for BtError {
    fn from(e: MseError) -> Self {
        match e {
            MseError::Io(e) => BtError::Io(e),
            other => BtError::Protocol(other.to_string()),
        }
    }
}

/// Connects to `addr` and sends `ours` (plain, or inside MSE), each attempt within
/// `timeout`. The other side's handshake is read next, from the stream returned.
pub fn open(
    addr: SocketAddr,
    ours: &Handshake,
    policy: Encryption,
    timeout: Duration,
) -> Result<PeerStream, BtError> {
    let hello = ours.to_bytes();
    match policy {
        Encryption::Off => plain(addr, &hello, timeout),
        Encryption::Require => Ok(encrypted(addr, ours, &hello, policy, timeout)?),
        Encryption::Prefer => match encrypted(addr, ours, &hello, policy, timeout) {
            Ok(s) => Ok(s),
            Err(Refused::Connect(e)) => Err(BtError::Io(e)),
            Err(Refused::Handshake(MseError::Io(e))) if is_timeout(&e) => Err(BtError::Io(e)),
            Err(Refused::Handshake(e)) => {
                debug!("bt: {addr}: {e}; trying plain text");
                plain(addr, &hello, timeout)
            }
        },
    }
}

/// Why an encrypted attempt failed: no connection at all, or the handshake.
enum Refused {
    Connect(io::Error),
    Handshake(MseError),
}

impl From<Refused> for BtError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Connect(e) => BtError::Io(e),
            Refused::Handshake(e) => e.into(),
        }
    }
}

fn encrypted(
    addr: SocketAddr,
    ours: &Handshake,
    hello: &[u8],
    policy: Encryption,
    timeout: Duration,
) -> Result<PeerStream, Refused> {
    let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(Refused::Connect)?;
    let _ = tcp.set_nodelay(true);
    mse::initiate(&tcp, &ours.info_hash, hello, policy.provide(), Instant::now() + timeout)
        .map_err(Refused::Handshake)
}

fn plain(addr: SocketAddr, hello: &[u8], timeout: Duration) -> Result<PeerStream, BtError> {
    let tcp = TcpStream::connect_timeout(&addr, timeout)?;
    tcp.set_nodelay(true)?;
    DeadlineWriter::new(tcp.try_clone()?, timeout).send(hello)?;
    Ok(PeerStream::plain(tcp))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}
