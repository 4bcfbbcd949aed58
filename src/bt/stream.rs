//! A BitTorrent connection's byte stream: a TCP stream, plain or under Message Stream
//! Encryption ([`mse`](super::mse)). Reads are decrypted and writes encrypted with RC4 when
//! the handshake chose it; bytes the handshake read past its end (the other side's
//! BitTorrent handshake, sent as its initial payload) are read first.
//!
//! A write takes only the keystream of the bytes the socket took: the keystream is made
//! ahead into a buffer and used as bytes go, so a write the socket's time-out cuts short
//! leaves the cipher where the other side's is, and the caller may send the rest later.

use crate::wire::deadline::Socket;
use parking_lot::Mutex;
use rc4::{consts::U20, KeyInit, Rc4, StreamCipher};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// RC4 keyed with 20 bytes (a SHA-1), as MSE keys it.
pub type Cipher = Rc4<U20>;

/// The most bytes one write encrypts (and so the most keystream made ahead).
const WRITE_CHUNK: usize = 64 * 1024;

/// A new RC4 cipher keyed with `key`, its first 1024 bytes of keystream dropped (MSE does).
pub fn cipher(key: &[u8; 20]) -> Cipher {
    let mut c = Cipher::new(key.into());
    c.apply_keystream(&mut [0u8; 1024]);
    c
}

/// The read side: bytes already in hand (plain), then the socket's, decrypted when `rc4`.
struct Rx {
    leftover: Vec<u8>,
    at: usize,
    rc4: Option<Cipher>,
}

/// The write side, encrypting: keystream made ahead and not used yet is `ks[ks_at..]`.
struct Tx {
    rc4: Cipher,
    ks: Vec<u8>,
    ks_at: usize,
    scratch: Vec<u8>,
}

/// A BitTorrent connection's stream (clones share the ciphers: one reads, one writes).
pub struct PeerStream {
    tcp: TcpStream,
    rx: Option<Arc<Mutex<Rx>>>,
    tx: Option<Arc<Mutex<Tx>>>,
}

impl PeerStream {
    /// A plain-text stream.
    pub fn plain(tcp: TcpStream) -> PeerStream {
        PeerStream { tcp, rx: None, tx: None }
    }

    /// The stream after an MSE handshake: `leftover` (plain) is read first; `ciphers`
    /// (decrypt, encrypt) when RC4 was chosen, else the rest is plain text.
    pub fn after_handshake(
        tcp: TcpStream,
        leftover: Vec<u8>,
        ciphers: Option<(Cipher, Cipher)>,
    ) -> PeerStream {
        let (dec, enc) = match ciphers {
            Some((d, e)) => (Some(d), Some(e)),
            None => (None, None),
        };
        let rx = (!leftover.is_empty() || dec.is_some())
            .then(|| Arc::new(Mutex::new(Rx { leftover, at: 0, rc4: dec })));
        let tx =
            enc.map(|rc4| Arc::new(Mutex::new(Tx { rc4, ks: Vec::new(), ks_at: 0, scratch: Vec::new() })));
        PeerStream { tcp, rx, tx }
    }

    /// Whether the payload is RC4-encrypted (not only the handshake obfuscated).
    pub fn is_encrypted(&self) -> bool {
        self.tx.is_some()
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }
}

impl std::fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStream").field("tcp", &self.tcp).field("encrypted", &self.is_encrypted()).finish()
    }
}

impl Read for PeerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(rx) = &self.rx else { return self.tcp.read(buf) };
        let mut rx = rx.lock();
        if rx.at < rx.leftover.len() {
            let n = (rx.leftover.len() - rx.at).min(buf.len());
            buf[..n].copy_from_slice(&rx.leftover[rx.at..rx.at + n]);
            rx.at += n;
            if rx.at == rx.leftover.len() {
                rx.leftover = Vec::new();
                rx.at = 0;
            }
            return Ok(n);
        }
        let n = self.tcp.read(buf)?;
        if let Some(rc4) = &mut rx.rc4 {
            rc4.apply_keystream(&mut buf[..n]);
        }
        Ok(n)
    }
}

impl Tx {
    /// Encrypts up to [`WRITE_CHUNK`] bytes of `buf` and writes them; the keystream of
    /// only the bytes the socket took is used up.
    fn write(&mut self, tcp: &mut TcpStream, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(WRITE_CHUNK);
        if self.ks.len() - self.ks_at < n {
            self.ks.drain(..self.ks_at);
            self.ks_at = 0;
            let have = self.ks.len();
            self.ks.resize(n, 0);
            self.rc4.apply_keystream(&mut self.ks[have..]);
        }
        self.scratch.clear();
        self.scratch.extend(buf[..n].iter().zip(&self.ks[self.ks_at..]).map(|(b, k)| b ^ k));
        let sent = tcp.write(&self.scratch)?;
        self.ks_at += sent;
        Ok(sent)
    }
}

impl Write for PeerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.tx {
            None => self.tcp.write(buf),
            Some(tx) => tx.lock().write(&mut self.tcp, buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

impl Socket for PeerStream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(PeerStream { tcp: self.tcp.try_clone()?, rx: self.rx.clone(), tx: self.tx.clone() })
    }

    fn set_read_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(t)
    }

    fn set_write_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.tcp.set_write_timeout(t)
    }

    /// sendfile(2) on a plain stream; encrypted, one buffer's worth through the cipher.
    fn send_file_some(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        if self.tx.is_none() {
            return self.tcp.send_file_some(file, offset, len);
        }
        let mut buf = vec![0u8; len.min(WRITE_CHUNK)];
        let got = file.read_at(&mut buf, offset)?;
        if got == 0 {
            return Ok(0);
        }
        self.write(&buf[..got])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mem::tcp_pair as pair;

    #[test]
    fn what_one_side_encrypts_the_other_reads_after_its_leftover() {
        let (a, b) = pair();
        let (ka, kb) = ([1u8; 20], [2u8; 20]);
        let mut w = PeerStream::after_handshake(a, Vec::new(), Some((cipher(&kb), cipher(&ka))));
        let mut r = PeerStream::after_handshake(b, b"left".to_vec(), Some((cipher(&ka), cipher(&kb))));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sender = {
            let data = data.clone();
            std::thread::spawn(move || {
                for part in data.chunks(7000) {
                    w.write_all(part).unwrap();
                }
                w
            })
        };
        let mut got = vec![0u8; 4 + data.len()];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got[..4], b"left");
        assert!(got[4..] == data[..]);
        // And back the other way, on a clone (the cipher is shared).
        let mut w = sender.join().unwrap();
        let mut r2 = r.try_clone().unwrap();
        r2.write_all(b"reply").unwrap();
        let mut back = [0u8; 5];
        w.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"reply");
    }

    #[test]
    fn a_short_write_uses_only_the_keystream_of_what_went() {
        let (a, b) = pair();
        let key = [9u8; 20];
        let mut w = PeerStream::after_handshake(a, Vec::new(), Some((cipher(&[0; 20]), cipher(&key))));
        // The reader does not read: the socket fills and writes come back short or time out.
        w.set_write_timeout(Some(std::time::Duration::from_millis(50))).unwrap();
        let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 241) as u8).collect();
        let mut sent = 0;
        let mut stalls = 0;
        while sent < data.len() && stalls < 3 {
            match w.write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => stalls += 1,
            }
        }
        assert!(sent < data.len(), "the socket filled");
        let reader = std::thread::spawn(move || {
            let mut r = PeerStream::after_handshake(b, Vec::new(), Some((cipher(&key), cipher(&[0; 20]))));
            let mut got = vec![0u8; 8_000_000];
            r.read_exact(&mut got).unwrap();
            got
        });
        w.set_write_timeout(None).unwrap();
        w.write_all(&data[sent..]).unwrap();
        assert!(reader.join().unwrap() == data, "the stream decrypts whole across short writes");
    }
}
