//! Message Stream Encryption (MSE, also "protocol encryption", PE), the handshake
//! libtorrent, Transmission, qBittorrent and Vuze speak to hide BitTorrent from traffic
//! shapers: a Diffie-Hellman exchange on a 768-bit prime, then RC4 keyed from the shared
//! secret and the torrent's info-hash (`SKEY`).
//!
//! ```text
//! A -> B  Ya, PadA
//! B -> A  Yb, PadB
//! A -> B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!         ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! B -> A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the payload stream
//! ```
//!
//! A is the side that dials. Pads are 0-512 random bytes, so each side finds where the
//! other's pad ends by scanning for a value both can compute: B for `HASH('req1', S)`, A
//! for the encrypted verification constant (`VC`, eight zero bytes). Both scans stop after
//! 512 bytes, and the whole handshake runs under one deadline, so garbage, a sync that
//! never comes, or a peer dripping bytes cannot hold a thread past it. B learns which
//! torrent A wants from `HASH('req2', SKEY)` (unmasked with `HASH('req3', S)`); we look it
//! up among our shares. `IA` (A's initial payload, always RC4) carries A's BitTorrent
//! handshake, as libtorrent and Transmission send it: no round trip is added beyond the
//! key exchange.
//!
//! `crypto_select`: the payload after the handshake is RC4 (`0x02`) or plain text (`0x01`,
//! the handshake alone obfuscated). See `Encryption` for which we offer and pick.

use super::stream::{cipher, Cipher, PeerStream};
use crate::hash::ContentId;
use crate::wire::deadline::{DeadlineStream, GiveWay};
use crate::wire::send_deadline::DeadlineWriter;
use num_bigint::BigUint;
use rc4::StreamCipher;
use sha1::{Digest, Sha1};
use std::fmt;
use std::io::{self, Read};
use std::net::TcpStream;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `crypto_provide` / `crypto_select` bits.
pub const CRYPTO_PLAIN: u32 = 0x01;
pub const CRYPTO_RC4: u32 = 0x02;
/// The longest pad either side may send (PadA-PadD).
pub const MAX_PAD: usize = 512;
/// The longest initial payload we take: a BitTorrent handshake is 68 bytes, and a client
/// may put its first messages behind it.
pub const MAX_IA: usize = 1024;
/// A Diffie-Hellman public key's length in bytes (768 bits).
pub const KEY_LEN: usize = 96;
const VC: [u8; 8] = [0; 8];

/// What a peer does about encryption (`--encryption`, INI `encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    /// Accepts both; dials encrypted first, offering RC4 or plain text after the
    /// handshake, and retries plain when the other side closes the encrypted attempt.
    /// Accepting, picks plain text when offered (libtorrent's default): the handshake is
    /// hidden either way, and the payload is not run through RC4 for nothing.
    #[default]
    Prefer,
    /// Encrypted only, RC4 on the whole stream, both ways: plain handshakes are refused.
    Require,
    /// Plain only, as before MSE: encrypted handshakes are refused.
    Off,
}

impl FromStr for Encryption {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            "off" => Ok(Encryption::Off),
            other => Err(format!("encryption '{other}' is not one of prefer, require, off")),
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encryption::Prefer => "prefer",
            Encryption::Require => "require",
            Encryption::Off => "off",
        })
    }
}

impl Encryption {
    /// What we offer when we dial encrypted.
    pub fn provide(self) -> u32 {
        match self {
            Encryption::Require => CRYPTO_RC4,
            _ => CRYPTO_RC4 | CRYPTO_PLAIN,
        }
    }

    /// What we pick from what a dialer offers; `None`: nothing we allow.
    pub fn select(self, provided: u32) -> Option<u32> {
        match self {
            Encryption::Off => None,
            Encryption::Require => (provided & CRYPTO_RC4 != 0).then_some(CRYPTO_RC4),
            Encryption::Prefer if provided & CRYPTO_PLAIN != 0 => Some(CRYPTO_PLAIN),
            Encryption::Prefer => (provided & CRYPTO_RC4 != 0).then_some(CRYPTO_RC4),
        }
    }
}

/// Why an MSE handshake failed.
#[derive(Debug)]
pub enum MseError {
    /// The other side broke the protocol (named).
    Protocol(String),
    /// Closed, reset, or the deadline passed.
    Io(io::Error),
}

impl fmt::Display for MseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MseError::Protocol(why) => write!(f, "encrypted handshake: {why}"),
            MseError::Io(e) => write!(f, "encrypted handshake: {e}"),
        }
    }
}

impl std::error::Error for MseError {}

impl From<io::Error> for MseError {
    fn from(e: io::Error) -> Self {
        MseError::Io(e)
    }
}

fn bad(why: impl Into<String>) -> MseError {
    MseError::Protocol(why.into())
}

/// The 768-bit MSE prime (the Oakley group 1 prime); the generator is 2.
fn prime() -> &'static BigUint {
    static P: OnceLock<BigUint> = OnceLock::new();
    P.get_or_init(|| {
        BigUint::parse_bytes(
            b"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A\
              08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A6\
              3A36210000000000090563",
            16,
        )
        .expect("the prime parses")
    })
}

/// One side's Diffie-Hellman key pair (a 160-bit secret, as the spec advises).
pub struct KeyPair {
    secret: BigUint,
    pub public: [u8; KEY_LEN],
}

impl KeyPair {
    pub fn new() -> KeyPair {
        let secret = BigUint::from_bytes_be(&crate::random::bytes::<20>());
        let public = to_key(&BigUint::from(2u32).modpow(&secret, prime()));
        KeyPair { secret, public }
    }

    /// The shared secret `S` from the other side's public key; keys outside [2, P-2]
    /// (which would force S into a tiny subgroup) are refused, as libtorrent does.
    pub fn shared(&self, theirs: &[u8]) -> Result<[u8; KEY_LEN], MseError> {
        let y = BigUint::from_bytes_be(theirs);
        let p = prime();
        if y < BigUint::from(2u32) || y >= p - 1u32 {
            return Err(bad("a degenerate public key"));
        }
        Ok(to_key(&y.modpow(&self.secret, p)))
    }
}

impl Default for KeyPair {
    fn default() -> Self {
        KeyPair::new()
    }
}

/// A number as 96 big-endian bytes.
fn to_key(n: &BigUint) -> [u8; KEY_LEN] {
    let bytes = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    out[KEY_LEN - bytes.len()..].copy_from_slice(&bytes);
    out
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    parts.iter().for_each(|p| h.update(p));
    h.finalize().into()
}

/// `HASH('req2', SKEY)`: how a dialer names the torrent, before masking.
pub fn req2(skey: &ContentId) -> [u8; 20] {
    hash(&[b"req2", skey.as_bytes()])
}

/// The ciphers of the side that dialed (`a`) or answered: (decrypt, encrypt).
fn ciphers(s: &[u8; KEY_LEN], skey: &ContentId, a: bool) -> (Cipher, Cipher) {
    let key_a = cipher(&hash(&[b"keyA", s, skey.as_bytes()]));
    let key_b = cipher(&hash(&[b"keyB", s, skey.as_bytes()]));
    if a {
        (key_b, key_a)
    } else {
        (key_a, key_b)
    }
}

/// A random pad of 0..=[`MAX_PAD`] bytes.
fn pad() -> Vec<u8> {
    let len = usize::from(u16::from_le_bytes(crate::random::bytes::<2>())) % (MAX_PAD + 1);
    let mut p = vec![0u8; len];
    crate::random::fill(&mut p);
    p
}

/// The bytes of one handshake as they arrive, read in blocks (what is read past the
/// handshake is handed to the stream after it).
struct Incoming {
    stream: DeadlineStream<TcpStream>,
    buf: Vec<u8>,
    at: usize,
}

impl Incoming {
    /// Until at least `n` unread bytes are in hand.
    fn fill(&mut self, n: usize) -> Result<(), MseError> {
        let mut block = [0u8; 1024];
        while self.buf.len() - self.at < n {
            let got = self.stream.read(&mut block)?;
            if got == 0 {
                return Err(MseError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "closed")));
            }
            self.buf.extend_from_slice(&block[..got]);
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, MseError> {
        self.fill(n)?;
        let out = self.buf[self.at..self.at + n].to_vec();
        self.at += n;
        Ok(out)
    }

    /// Skips up to `max_skip` bytes to just past `mark`; `what` names it in the error.
    fn sync(&mut self, mark: &[u8], max_skip: usize, what: &str) -> Result<(), MseError> {
        let mut from = 0;
        loop {
            let unread = &self.buf[self.at..];
            if let Some(pos) = unread[from..].windows(mark.len()).position(|w| w == mark) {
                self.at += from + pos + mark.len();
                return Ok(());
            }
            let scanned = unread.len().saturating_sub(mark.len() - 1);
            if scanned > max_skip {
                return Err(bad(format!("no {what} within {max_skip} bytes of padding")));
            }
            from = scanned;
            self.fill(unread.len() + 1)?;
        }
    }

    fn rest(self) -> Vec<u8> {
        self.buf[self.at..].to_vec()
    }
}

fn u16_at(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Dials' side: runs the handshake on `tcp` for torrent `skey`, sending `ia` (our
/// BitTorrent handshake) as the initial payload; `provide` is what we offer. By
/// `deadline`, or fails.
pub fn initiate(
    tcp: &TcpStream,
    skey: &ContentId,
    ia: &[u8],
    provide: u32,
    deadline: Instant,
) -> Result<PeerStream, MseError> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut out = DeadlineWriter::new(tcp.try_clone()?, left);
    let mut stream = DeadlineStream::new(tcp.try_clone()?);
    stream.set_deadline(deadline);
    let mut inc = Incoming { stream, buf: Vec::new(), at: 0 };
    let keys = KeyPair::new();
    out.send(&[&keys.public[..], &pad()].concat())?;
    let yb = inc.take(KEY_LEN)?;
    let s = keys.shared(&yb)?;
    let (mut dec, mut enc) = ciphers(&s, skey, true);
    let mask = hash(&[b"req3", &s]);
    let obfuscated: Vec<u8> = req2(skey).iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    let pad_c = pad();
    let mut secret = Vec::with_capacity(16 + pad_c.len() + ia.len());
    secret.extend_from_slice(&VC);
    secret.extend_from_slice(&provide.to_be_bytes());
    secret.extend_from_slice(&(pad_c.len() as u16).to_be_bytes());
    secret.extend_from_slice(&pad_c);
    secret.extend_from_slice(&(ia.len() as u16).to_be_bytes());
    secret.extend_from_slice(ia);
    enc.apply_keystream(&mut secret);
    out.send(&[&hash(&[b"req1", &s])[..], &obfuscated, &secret].concat())?;
    // B's encrypted VC ends its PadB.
    let mut vc = VC;
    dec.apply_keystream(&mut vc);
    inc.sync(&vc, MAX_PAD, "verification constant")?;
    let mut head = inc.take(6)?;
    dec.apply_keystream(&mut head);
    let select = u32_at(&head);
    if !matches!(select, CRYPTO_PLAIN | CRYPTO_RC4) || select & provide == 0 {
        return Err(bad(format!("it chose method {select:#x}, we offered {provide:#x}")));
    }
    let pad_d = u16_at(&head[4..]);
    if pad_d > MAX_PAD {
        return Err(bad(format!("a pad of {pad_d} bytes")));
    }
    let mut skipped = inc.take(pad_d)?;
    dec.apply_keystream(&mut skipped);
    let mut rest = inc.rest();
    let tcp = tcp.try_clone()?;
    if select == CRYPTO_RC4 {
        dec.apply_keystream(&mut rest);
        Ok(PeerStream::after_handshake(tcp, rest, Some((dec, enc))))
    } else {
        Ok(PeerStream::after_handshake(tcp, rest, None))
    }
}

/// The answering side: runs the handshake of a connection whose first bytes are not a
/// plain BitTorrent handshake, by `deadline` (giving way when `give_way` says); `find`
/// names the torrent behind a dialer's `HASH('req2', SKEY)`, if shared here. Returns
/// the stream (A's BitTorrent handshake is its first bytes) and the torrent A asked for.
pub fn accept(
    tcp: &TcpStream,
    find: &dyn Fn(&[u8; 20]) -> Option<ContentId>,
    policy: Encryption,
    deadline: Instant,
    give_way: Option<GiveWay>,
) -> Result<(PeerStream, ContentId), MseError> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut out = DeadlineWriter::new(tcp.try_clone()?, left);
    let mut stream = DeadlineStream::new(tcp.try_clone()?);
    stream.set_deadline(deadline);
    if let Some(g) = give_way {
        stream.set_give_way(g.clone());
        out.set_give_way(g);
    }
    let mut inc = Incoming { stream, buf: Vec::new(), at: 0 };
    let ya = inc.take(KEY_LEN)?;
    let keys = KeyPair::new();
    let s = keys.shared(&ya)?;
    out.send(&[&keys.public[..], &pad()].concat())?;
    inc.sync(&hash(&[b"req1", &s]), MAX_PAD, "HASH('req1', S)")?;
    let masked = inc.take(20)?;
    let mask = hash(&[b"req3", &s]);
    let mut wanted = [0u8; 20];
    wanted.iter_mut().zip(masked.iter().zip(&mask)).for_each(|(w, (a, b))| *w = a ^ b);
    let skey = find(&wanted).ok_or_else(|| bad("it asked for a torrent not shared here"))?;
    let (mut dec, mut enc) = ciphers(&s, &skey, false);
    let mut head = inc.take(14)?;
    dec.apply_keystream(&mut head);
    if head[..8] != VC {
        return Err(bad("a wrong verification constant"));
    }
    let provided = u32_at(&head[8..]);
    let pad_c = u16_at(&head[12..]);
    if pad_c > MAX_PAD {
        return Err(bad(format!("a pad of {pad_c} bytes")));
    }
    let mut padded = inc.take(pad_c + 2)?;
    dec.apply_keystream(&mut padded);
    let ia_len = u16_at(&padded[pad_c..]);
    if ia_len > MAX_IA {
        return Err(bad(format!("an initial payload of {ia_len} bytes")));
    }
    let mut ia = inc.take(ia_len)?;
    dec.apply_keystream(&mut ia);
    let select = policy
        .select(provided)
        .ok_or_else(|| bad(format!("it offers methods {provided:#x}; encryption is '{policy}' here")))?;
    let pad_d = pad();
    let mut reply = Vec::with_capacity(14 + pad_d.len());
    reply.extend_from_slice(&VC);
    reply.extend_from_slice(&select.to_be_bytes());
    reply.extend_from_slice(&(pad_d.len() as u16).to_be_bytes());
    reply.extend_from_slice(&pad_d);
    enc.apply_keystream(&mut reply);
    out.send(&reply)?;
    let mut rest = inc.rest();
    let tcp = tcp.try_clone()?;
    let stream = if select == CRYPTO_RC4 {
        dec.apply_keystream(&mut rest);
        ia.extend_from_slice(&rest);
        PeerStream::after_handshake(tcp, ia, Some((dec, enc)))
    } else {
        ia.extend_from_slice(&rest);
        PeerStream::after_handshake(tcp, ia, None)
    };
    Ok((stream, skey))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::mem::tcp_pair as pair;
    use std::io::Write;

    fn id(n: u8) -> ContentId {
        ContentId::from_bytes([n; 20])
    }

    /// Dials and answers over loopback; returns both streams (or the errors).
    fn handshake(
        provide: u32,
        policy: Encryption,
    ) -> (Result<PeerStream, MseError>, Result<(PeerStream, ContentId), MseError>) {
        let (a, b) = pair();
        let deadline = Instant::now() + Duration::from_secs(5);
        let known = |h: &[u8; 20]| [id(1), id(2)].into_iter().find(|i| req2(i) == *h);
        let answer = std::thread::spawn(move || accept(&b, &known, policy, deadline, None));
        let dialed = initiate(&a, &id(2), b"our handshake", provide, deadline);
        (dialed, answer.join().unwrap())
    }

    #[test]
    fn both_sides_agree_on_the_keys_and_the_method() {
        for (provide, policy, encrypted) in [
            (CRYPTO_RC4 | CRYPTO_PLAIN, Encryption::Prefer, false),
            (CRYPTO_RC4, Encryption::Prefer, true),
            (CRYPTO_RC4 | CRYPTO_PLAIN, Encryption::Require, true),
        ] {
            let (a, b) = handshake(provide, policy);
            let (mut a, (mut b, skey)) = (a.unwrap(), b.unwrap());
            assert_eq!(skey, id(2), "the torrent is found from its masked hash");
            assert_eq!((a.is_encrypted(), b.is_encrypted()), (encrypted, encrypted));
            let mut ia = [0u8; 13];
            b.read_exact(&mut ia).unwrap();
            assert_eq!(&ia, b"our handshake", "the initial payload comes first");
            a.write_all(b"ping").unwrap();
            b.write_all(b"pong").unwrap();
            let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
            b.read_exact(&mut x).unwrap();
            a.read_exact(&mut y).unwrap();
            assert_eq!((&x, &y), (b"ping", b"pong"));
        }
    }

    #[test]
    fn a_plain_only_offer_to_a_peer_that_requires_rc4_is_refused() {
        let (a, b) = handshake(CRYPTO_PLAIN, Encryption::Require);
        assert!(matches!(b, Err(MseError::Protocol(ref why)) if why.contains("offers methods 0x1")), "{b:?}");
        assert!(a.is_err());
    }

    #[test]
    fn a_torrent_not_shared_ends_the_handshake() {
        let (a, b) = pair();
        let deadline = Instant::now() + Duration::from_secs(5);
        let none = |_: &[u8; 20]| None;
        let answer = std::thread::spawn(move || accept(&b, &none, Encryption::Prefer, deadline, None));
        assert!(initiate(&a, &id(3), b"", CRYPTO_RC4, deadline).is_err());
        let err = answer.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("not shared here"), "{err}");
    }

    #[test]
    fn garbage_after_a_key_finds_no_sync_within_the_pad_limit() {
        let (mut a, b) = pair();
        let keys = KeyPair::new();
        a.write_all(&keys.public).unwrap();
        a.write_all(&[0x55; 2000]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let none = |_: &[u8; 20]| None;
        let err = accept(&b, &none, Encryption::Prefer, deadline, None).unwrap_err();
        assert!(err.to_string().contains("within 512 bytes"), "{err}");
    }

    #[test]
    fn a_degenerate_key_is_refused() {
        let keys = KeyPair::new();
        assert!(keys.shared(&[0u8; KEY_LEN]).is_err());
        let mut one = [0u8; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        assert!(keys.shared(&one).is_err());
        assert!(keys.shared(&to_key(&(prime() - 1u32))).is_err());
        let other = KeyPair::new();
        assert_eq!(keys.shared(&other.public).unwrap(), other.shared(&keys.public).unwrap());
    }

    #[test]
    fn a_silent_peer_is_dropped_at_the_deadline() {
        let (_a, b) = pair();
        let started = Instant::now();
        let none = |_: &[u8; 20]| None;
        let err =
            accept(&b, &none, Encryption::Prefer, started + Duration::from_millis(300), None).unwrap_err();
        assert!(matches!(err, MseError::Io(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
