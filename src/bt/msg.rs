//! The BitTorrent handshake and messages (BEP 3), with the fast extension's messages (BEP 6),
//! `port` (BEP 5) and the extension protocol's envelope (BEP 10).
//!
//! Every message is a 4-byte big-endian length, an id byte and a payload; length 0 is a
//! keep-alive. Lengths are capped ([`MAX_MESSAGE`]) before anything is allocated.

use crate::hash::ContentId;
use std::fmt;
use std::io::{self, Read, Write};

/// `\x13BitTorrent protocol`.
pub const PROTOCOL: &[u8; 20] = b"\x13BitTorrent protocol";
/// A handshake's length.
pub const HANDSHAKE_LEN: usize = 68;
/// Largest block a peer may ask for; clients ask for 16 KiB.
pub const MAX_BLOCK: u32 = 128 * 1024;
/// Largest message read: a block and its header, or a bitfield of 2^20 pieces.
pub const MAX_MESSAGE: u32 = MAX_BLOCK + 64;

/// Reserved-byte bits this side sets and reads.
pub mod reserved {
    /// BEP 10, byte 5.
    pub const EXTENSIONS: (usize, u8) = (5, 0x10);
    /// BEP 6, byte 7.
    pub const FAST: (usize, u8) = (7, 0x04);
    /// BEP 5, byte 7.
    pub const DHT: (usize, u8) = (7, 0x01);
}

/// The 68-byte opening of a BitTorrent connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: ContentId,
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Ours: extension protocol and fast extension on.
    pub fn ours(info_hash: ContentId, peer_id: [u8; 20]) -> Handshake {
        let mut reserved = [0u8; 8];
        for (byte, bit) in [reserved::EXTENSIONS, reserved::FAST] {
            reserved[byte] |= bit;
        }
        Handshake { reserved, info_hash, peer_id }
    }

    /// Also says we run a DHT node (BEP 5); a `port` message follows.
    pub fn with_dht(mut self) -> Handshake {
        self.reserved[reserved::DHT.0] |= reserved::DHT.1;
        self
    }

    pub fn supports(&self, (byte, bit): (usize, u8)) -> bool {
        self.reserved[byte] & bit != 0
    }

    pub fn to_bytes(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[..20].copy_from_slice(PROTOCOL);
        b[20..28].copy_from_slice(&self.reserved);
        b[28..48].copy_from_slice(self.info_hash.as_bytes());
        b[48..].copy_from_slice(&self.peer_id);
        b
    }

    /// Reads a handshake; anything but the BitTorrent protocol string is an error.
    pub fn read(r: &mut impl Read) -> Result<Handshake, BtError> {
        let mut b = [0u8; HANDSHAKE_LEN];
        r.read_exact(&mut b)?;
        if &b[..20] != PROTOCOL {
            return Err(BtError::NotBitTorrent);
        }
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(&b[28..48]);
        let mut h =
            Handshake { reserved: [0; 8], info_hash: ContentId::from_bytes(info_hash), peer_id: [0; 20] };
        h.reserved.copy_from_slice(&b[20..28]);
        h.peer_id.copy_from_slice(&b[48..]);
        Ok(h)
    }
}

/// A block of a piece: where it starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

/// One message (a `piece`'s data is read separately, see [`read_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Vec<u8>),
    Request(Block),
    /// A block's header; its `length` data bytes follow in the stream.
    Piece(Block),
    Cancel(Block),
    Port(u16),
    SuggestPiece(u32),
    HaveAll,
    HaveNone,
    RejectRequest(Block),
    AllowedFast(u32),
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
}

/// Why a BitTorrent connection ends.
#[derive(Debug)]
pub enum BtError {
    Io(io::Error),
    NotBitTorrent,
    TooLong(u32),
    Malformed {
        id: u8,
        len: u32,
    },
    UnknownId(u8),
    /// The other side broke the protocol (what it did).
    Protocol(String),
}

impl fmt::Display for BtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtError::Io(e) => write!(f, "{e}"),
            BtError::NotBitTorrent => write!(f, "not a BitTorrent handshake"),
            BtError::TooLong(n) => write!(f, "a message of {n} bytes (limit {MAX_MESSAGE})"),
            BtError::Malformed { id, len } => write!(f, "message {id} with a payload of {len} bytes"),
            BtError::UnknownId(id) => write!(f, "unknown message id {id}"),
            BtError::Protocol(what) => write!(f, "{}", crate::text::one_line(what)),
        }
    }
}

impl std::error::Error for BtError {}

impl From<io::Error> for BtError {
    fn from(e: io::Error) -> Self {
        BtError::Io(e)
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn block(p: &[u8]) -> Block {
    Block { index: be32(&p[0..]), begin: be32(&p[4..]), length: be32(&p[8..]) }
}

/// Reads one message. For a `piece`, only its 8-byte header is read: the caller reads
/// `length` data bytes next (straight into its buffer). `scratch` is reused for payloads.
pub fn read_message(r: &mut impl Read) -> Result<Message, BtError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len == 0 {
        return Ok(Message::KeepAlive);
    }
    if len > MAX_MESSAGE {
        return Err(BtError::TooLong(len));
    }
    let mut id = [0u8; 1];
    r.read_exact(&mut id)?;
    let id = id[0];
    let plen = len - 1;
    if id == 7 {
        if plen < 8 {
            return Err(BtError::Malformed { id, len: plen });
        }
        let mut h = [0u8; 8];
        r.read_exact(&mut h)?;
        return Ok(Message::Piece(Block { index: be32(&h), begin: be32(&h[4..]), length: plen - 8 }));
    }
    let mut p = vec![0u8; plen as usize];
    r.read_exact(&mut p)?;
    let want = |n: u32| if plen == n { Ok(()) } else { Err(BtError::Malformed { id, len: plen }) };
    Ok(match id {
        0 => want(0).map(|_| Message::Choke)?,
        1 => want(0).map(|_| Message::Unchoke)?,
        2 => want(0).map(|_| Message::Interested)?,
        3 => want(0).map(|_| Message::NotInterested)?,
        4 => want(4).map(|_| Message::Have(be32(&p)))?,
        5 => Message::Bitfield(p),
        6 => want(12).map(|_| Message::Request(block(&p)))?,
        8 => want(12).map(|_| Message::Cancel(block(&p)))?,
        9 => want(2).map(|_| Message::Port(u16::from_be_bytes([p[0], p[1]])))?,
        13 => want(4).map(|_| Message::SuggestPiece(be32(&p)))?,
        14 => want(0).map(|_| Message::HaveAll)?,
        15 => want(0).map(|_| Message::HaveNone)?,
        16 => want(12).map(|_| Message::RejectRequest(block(&p)))?,
        17 => want(4).map(|_| Message::AllowedFast(be32(&p)))?,
        20 if plen >= 1 => Message::Extended { id: p[0], payload: p[1..].to_vec() },
        other => return Err(BtError::UnknownId(other)),
    })
}

/// Appends `m` to `out` (for a `piece`, only the header: the data follows).
pub fn encode(m: &Message, out: &mut Vec<u8>) {
    let mut put = |id: u8, payload: &[&[u8]], extra: u32| {
        let len = 1 + payload.iter().map(|p| p.len() as u32).sum::<u32>() + extra;
        out.extend_from_slice(&len.to_be_bytes());
        out.push(id);
        payload.iter().for_each(|p| out.extend_from_slice(p));
    };
    let blk = |b: &Block| [b.index.to_be_bytes(), b.begin.to_be_bytes(), b.length.to_be_bytes()].concat();
    match m {
        Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
        Message::Choke => put(0, &[], 0),
        Message::Unchoke => put(1, &[], 0),
        Message::Interested => put(2, &[], 0),
        Message::NotInterested => put(3, &[], 0),
        Message::Have(i) => put(4, &[&i.to_be_bytes()], 0),
        Message::Bitfield(bits) => put(5, &[bits], 0),
        Message::Request(b) => put(6, &[&blk(b)], 0),
        Message::Piece(b) => put(7, &[&b.index.to_be_bytes(), &b.begin.to_be_bytes()], b.length),
        Message::Cancel(b) => put(8, &[&blk(b)], 0),
        Message::Port(p) => put(9, &[&p.to_be_bytes()], 0),
        Message::SuggestPiece(i) => put(13, &[&i.to_be_bytes()], 0),
        Message::HaveAll => put(14, &[], 0),
        Message::HaveNone => put(15, &[], 0),
        Message::RejectRequest(b) => put(16, &[&blk(b)], 0),
        Message::AllowedFast(i) => put(17, &[&i.to_be_bytes()], 0),
        Message::Extended { id, payload } => put(20, &[&[*id], payload], 0),
    }
}

/// Writes one message.
pub fn write_message(w: &mut impl Write, m: &Message) -> io::Result<()> {
    let mut out = Vec::with_capacity(32);
    encode(m, &mut out);
    w.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn every_message_round_trips() {
        let b = Block { index: 7, begin: 16384, length: 16384 };
        let all = vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(42),
            Message::Bitfield(vec![0xff, 0x80]),
            Message::Request(b),
            Message::Cancel(b),
            Message::Port(6881),
            Message::SuggestPiece(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::RejectRequest(b),
            Message::AllowedFast(9),
            Message::Extended { id: 0, payload: b"d1:md11:ut_metadatai1eee".to_vec() },
        ];
        let mut wire = Vec::new();
        all.iter().for_each(|m| encode(m, &mut wire));
        let mut r = Cursor::new(wire);
        for m in &all {
            assert_eq!(&read_message(&mut r).unwrap(), m);
        }
    }

    #[test]
    fn a_piece_header_leaves_its_data_in_the_stream() {
        let mut wire = Vec::new();
        encode(&Message::Piece(Block { index: 1, begin: 0, length: 3 }), &mut wire);
        wire.extend_from_slice(b"abc");
        let mut r = Cursor::new(wire);
        assert_eq!(read_message(&mut r).unwrap(), Message::Piece(Block { index: 1, begin: 0, length: 3 }));
        let mut data = [0u8; 3];
        r.read_exact(&mut data).unwrap();
        assert_eq!(&data, b"abc");
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut r = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 5]);
        assert!(matches!(read_message(&mut r), Err(BtError::TooLong(_))));
        let mut r = Cursor::new(vec![0, 0, 0, 2, 4, 1]);
        assert!(matches!(read_message(&mut r), Err(BtError::Malformed { id: 4, len: 1 })));
        let mut r = Cursor::new(vec![0, 0, 0, 1, 99]);
        assert!(matches!(read_message(&mut r), Err(BtError::UnknownId(99))));
        let mut r = Cursor::new(vec![0, 0, 0, 5, 7, 0]);
        assert!(matches!(read_message(&mut r), Err(BtError::Malformed { id: 7, .. })));
    }

    #[test]
    fn handshake_round_trips_and_names_its_extensions() {
        let h = Handshake::ours(ContentId::of(b"x"), *b"-PS0100-abcdefabcdef");
        let back = Handshake::read(&mut Cursor::new(h.to_bytes())).unwrap();
        assert_eq!(back, h);
        assert!(back.supports(reserved::EXTENSIONS) && back.supports(reserved::FAST));
        assert!(!back.supports(reserved::DHT));
        let mut http = b"GET / HTTP/1.1\r\n".to_vec();
        http.resize(HANDSHAKE_LEN, b' ');
        assert!(matches!(Handshake::read(&mut Cursor::new(http)), Err(BtError::NotBitTorrent)));
    }
}
