//! The peer server's BitTorrent side: one connection from a BitTorrent client (or a
//! p2p-share peer speaking BitTorrent), served on its own thread like a native one.
//!
//! Handshake (the info-hash must be a file shared here, complete or still downloading),
//! our availability (have_all / have_none with the fast extension, else a bitfield), the
//! extension handshake with ut_metadata, then requests answered in order: a block is read
//! at its offset from the same file a native request would read (identity checked, links
//! not followed), under the same upload limit. Interested peers get an upload slot from
//! [`Slots`]; new pieces of a partial file are announced with `have`.

use super::open_files::{open_for_chunk, OpenFiles, Refusal};
use super::options::ServerOptions;
use super::upload::{Turn, QUANTUM};
use crate::bitfield::Bitfield;
use crate::bt::choke::Slots;
use crate::bt::metadata::{self, MetadataMsg, OUR_UT_METADATA};
use crate::bt::msg::{self, reserved, Block, BtError, Handshake, Message, MAX_BLOCK};
use crate::bt::pex::{self, Book, Gap, Teller, OUR_UT_PEX};
use crate::hash::ContentId;
use crate::holdings::shares::{Holding, Share, Shares};
use crate::wire::deadline::{gave_way, DeadlineStream, GiveWay, Socket};
use crate::wire::send_deadline::DeadlineWriter;
use log::{debug, info, warn};
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a waiting connection looks after its chores (haves, slots, keep-alives).
const TICK: Duration = Duration::from_secs(1);
/// A peer silent this long is gone (clients send a keep-alive every two minutes).
const IDLE: Duration = Duration::from_secs(150);
/// We send a keep-alive after this much silence of our own.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(60);
/// Metadata pieces one connection is sent, as a multiple of the pieces there are: a client
/// that lost a piece may ask again, one that asks for ever is rejected. ut_metadata is
/// answered to choked peers too (a magnet-only client asks before it knows what to want),
/// so this is what bounds the work a peer that never reads can ask of us.
const METADATA_ANSWERS_PER_PIECE: usize = 2;
/// A connection we dialed to upload that has not said it is interested, nor asked for a
/// block, for this long is closed: the dial slot goes to a leecher that wants something.
pub const DIALED_IDLE: Duration = Duration::from_secs(20);
/// Metadata requests past those answered that are rejected before the connection is
/// closed: a peer that keeps asking after it was refused only makes us work.
const METADATA_REJECTS: usize = 8;
/// Under an upload limit, a connection keeps its place in the upload line while its next
/// request comes within this (a pipelining client's is already here), up to [`QUANTUM`]
/// bytes; else it leaves the line to the others. Shorter than `upload::STUCK`.
const TURN_GRACE: Duration = Duration::from_millis(20);

/// What one BitTorrent connection needs from its server.
pub struct BtServer<'a> {
    pub shares: &'a Shares,
    pub opts: &'a ServerOptions,
    pub slots: &'a Slots,
    pub peer_id: [u8; 20],
    /// This connection's number, for the slots and the book.
    pub conn_id: u64,
    /// Every BitTorrent connection of the process, for peer exchange.
    pub book: &'a Book,
    /// The port we listen on (told in our extension handshake).
    pub listen_port: u16,
}

/// The state of one served connection.
struct Session<'a, S: Socket> {
    server: &'a BtServer<'a>,
    reader: BufReader<DeadlineStream<S>>,
    writer: DeadlineWriter<S>,
    peer: SocketAddr,
    id: ContentId,
    fast: bool,
    /// Their id for ut_metadata messages, once their extension handshake said it.
    their_ut_metadata: Option<u8>,
    /// Metadata requests this connection made.
    metadata_asked: usize,
    /// Peer exchange, unless the torrent is private: their id for ut_pex messages, once
    /// their extension handshake says it, what we told them and when they last told us.
    pex: bool,
    their_pex: Option<u8>,
    teller: Teller,
    pex_gap: Gap,
    info: Vec<u8>,
    pieces: u32,
    interested: bool,
    choked: bool,
    /// We dialed it to upload (see [`DIALED_IDLE`]).
    dialed: bool,
    /// When it last said it is interested or asked for a block.
    last_wanted: Instant,
    /// The pieces the other side has been told we have.
    announced: Bitfield,
    last_heard: Instant,
    last_sent: Instant,
    out: Vec<u8>,
    block: Vec<u8>,
    /// Its place in the upload line, and the bytes sent in it.
    turn: Option<(Turn, usize)>,
}

/// How a served connection was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// It dialed us, in plain text: its handshake names the torrent.
    Accepted,
    /// It dialed us with an MSE handshake for this torrent; its BitTorrent handshake must
    /// name the same one.
    AcceptedEncrypted(ContentId),
    /// We dialed it to upload this torrent to a downloader that will not dial us; our
    /// handshake has gone out (see `bt::dial`).
    Dialed(ContentId),
}

/// Serves one BitTorrent connection until it closes, idles out, gives way or breaks the
/// protocol (a warning names what it did).
pub fn serve<S: Socket>(
    stream: S,
    peer: SocketAddr,
    give_way: Option<GiveWay>,
    server: &BtServer,
    files: &mut OpenFiles,
    opened: Opened,
) {
    let result = run(stream, peer, give_way, server, files, opened);
    server.slots.release(server.conn_id);
    match result {
        Ok(()) => debug!("bt: {peer}: closed"),
        Err(BtError::Io(e)) => debug!("bt: {peer}: {e}; closed"),
        Err(e) => warn!("bt: {peer}: {e}; closing the connection"),
    }
}

fn run<S: Socket>(
    stream: S,
    peer: SocketAddr,
    give_way: Option<GiveWay>,
    server: &BtServer,
    files: &mut OpenFiles,
    opened: Opened,
) -> Result<(), BtError> {
    let mut writer = DeadlineWriter::new(stream.try_clone()?, server.opts.message_deadline);
    let mut reader = BufReader::with_capacity(64 * 1024, DeadlineStream::new(stream));
    if let Some(g) = give_way {
        reader.get_mut().set_give_way(g.clone());
        writer.set_give_way(g);
    }
    reader.get_mut().set_deadline(Instant::now() + server.opts.message_deadline);
    let theirs = Handshake::read(&mut reader)?;
    let dialed = matches!(opened, Opened::Dialed(_));
    if let Opened::Dialed(id) | Opened::AcceptedEncrypted(id) = opened {
        if id != theirs.info_hash {
            return Err(BtError::Protocol(format!("named {} after {id}", theirs.info_hash)));
        }
    }
    let Some(shared) = server.shares.get(&theirs.info_hash) else {
        return Err(BtError::Protocol(format!("asked for {}, which is not shared here", theirs.info_hash)));
    };
    let m = &shared.manifest;
    let pieces = m.chunk_count();
    let mut s = Session {
        server,
        reader,
        writer,
        peer,
        id: theirs.info_hash,
        fast: theirs.supports(reserved::FAST),
        their_ut_metadata: None,
        metadata_asked: 0,
        pex: !m.private,
        their_pex: None,
        teller: Teller::new(Instant::now()),
        pex_gap: Gap::default(),
        info: m.info_bytes().into_owned(),
        pieces,
        interested: false,
        choked: true,
        dialed,
        last_wanted: Instant::now(),
        announced: Bitfield::new(pieces),
        last_heard: Instant::now(),
        last_sent: Instant::now(),
        out: Vec::with_capacity(64),
        block: Vec::new(),
        turn: None,
    };
    let how = match opened {
        Opened::AcceptedEncrypted(_) => " (encrypted handshake)",
        _ => "",
    };
    info!("BitTorrent peer {peer} connected for '{}'{how}", m.name);
    if !dialed {
        s.writer.send(&our_handshake(server.opts, server.peer_id, theirs.info_hash).to_bytes())?;
    }
    if theirs.supports(reserved::EXTENSIONS) {
        let offer = metadata::Offer {
            metadata_size: Some(s.info.len()),
            pex: s.pex,
            listen_port: Some(server.listen_port),
        };
        let payload = metadata::our_handshake(offer);
        s.send(&Message::Extended { id: metadata::HANDSHAKE_ID, payload })?;
    }
    s.send_availability(&shared)?;
    if let (Some(dht), true) = (&server.opts.dht, theirs.supports(reserved::DHT)) {
        s.send(&Message::Port(dht.local_addr().port()))?;
    }
    // In the book while served: one we dialed is dialed again where we reached it; one that
    // dialed us, at the listen port its extension handshake names.
    server.book.join(s.id, server.conn_id, dialed.then_some(peer));
    let served = s.serve(files);
    server.book.leave(s.id, server.conn_id);
    served
}

/// The pieces of `shared` in place here.
pub(crate) fn have_of(shared: &Share, pieces: u32) -> Bitfield {
    match &shared.holding {
        Holding::Complete(..) => Bitfield::full(pieces),
        Holding::Partial(store) => store.bitfield(),
    }
}

/// What tells a peer the pieces in `have`, the shortest way it understands; `None`: say
/// nothing (without the fast extension, no bitfield at all means "nothing yet").
pub(crate) fn availability(have: &Bitfield, fast: bool) -> Option<Message> {
    if fast && have.is_complete() {
        Some(Message::HaveAll)
    } else if fast && have.count() == 0 {
        Some(Message::HaveNone)
    } else if have.count() == 0 {
        None
    } else {
        Some(Message::Bitfield(have.as_bytes().to_vec()))
    }
}

/// The pieces of `shared` in place since `announced`, which is brought up to date. The
/// bitfield is built only when the count says there is something new, not every tick.
pub(crate) fn news(shared: &Share, announced: &mut Bitfield) -> Vec<u32> {
    let more = match &shared.holding {
        Holding::Complete(..) => !announced.is_complete(),
        Holding::Partial(store) => store.count() > announced.count(),
    };
    if !more {
        return Vec::new();
    }
    let now_have = have_of(shared, announced.len());
    let fresh = now_have.ones().filter(|i| !announced.get(*i)).collect();
    *announced = now_have;
    fresh
}

/// Our handshake for `id`, with the DHT bit when our DHT node runs.
pub(super) fn our_handshake(opts: &ServerOptions, peer_id: [u8; 20], id: ContentId) -> Handshake {
    let h = Handshake::ours(id, peer_id);
    if opts.dht.is_some() {
        h.with_dht()
    } else {
        h
    }
}

impl<S: Socket> Session<'_, S> {
    fn send(&mut self, m: &Message) -> io::Result<()> {
        self.out.clear();
        msg::encode(m, &mut self.out);
        self.writer.send(&self.out)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The pieces we have, the shortest way the other side understands.
    fn send_availability(&mut self, shared: &Share) -> Result<(), BtError> {
        let have = have_of(shared, self.pieces);
        if let Some(m) = availability(&have, self.fast) {
            self.send(&m)?;
        }
        self.announced = have;
        Ok(())
    }

    fn serve(&mut self, files: &mut OpenFiles) -> Result<(), BtError> {
        loop {
            if self.reader.get_ref().must_give_way() {
                return Err(gave_way().into());
            }
            if self.dialed && self.last_wanted.elapsed() > DIALED_IDLE {
                let secs = DIALED_IDLE.as_secs();
                return Err(BtError::Protocol(format!("dialed to upload, it wanted nothing for {secs} s")));
            }
            self.keep_turn_while_asked()?;
            self.chores()?;
            let now = Instant::now();
            self.reader.get_mut().set_deadline(now + TICK);
            match self.reader.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if self.last_heard.elapsed() > IDLE {
                        return Err(BtError::Protocol(format!("silent for {} s", IDLE.as_secs())));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.reader.get_mut().set_deadline(now + self.server.opts.message_deadline);
            let m = msg::read_message(&mut self.reader)?;
            self.last_heard = Instant::now();
            self.handle(m, files)?;
        }
    }

    /// Keeps this connection's place in the upload line only if its next request comes
    /// within [`TURN_GRACE`].
    fn keep_turn_while_asked(&mut self) -> Result<(), BtError> {
        if self.turn.is_none() || !self.reader.buffer().is_empty() {
            return Ok(());
        }
        self.reader.get_mut().set_deadline(Instant::now() + TURN_GRACE);
        match self.reader.fill_buf() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                self.turn = None;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Between messages: new pieces of a partial file, slot changes, keep-alives.
    fn chores(&mut self) -> Result<(), BtError> {
        let Some(shared) = self.server.shares.get(&self.id) else {
            return Err(BtError::Protocol("the file is no longer shared here".into()));
        };
        for i in news(&shared, &mut self.announced) {
            self.send(&Message::Have(i))?;
        }
        let slots = self.server.slots;
        let now = Instant::now();
        if self.interested && self.choked && slots.want(self.server.conn_id, now) {
            self.choked = false;
            self.send(&Message::Unchoke)?;
        } else if !self.choked && !slots.check(self.server.conn_id, now) {
            self.choked = true;
            self.turn = None;
            self.send(&Message::Choke)?;
        }
        if let (Some(their_id), true) = (self.their_pex, self.pex) {
            let (book, id, conn) = (self.server.book, self.id, self.server.conn_id);
            if let Some(payload) = self.teller.due(now, || book.others(id, conn)) {
                self.send(&Message::Extended { id: their_id, payload })?;
            }
        }
        if self.last_sent.elapsed() > KEEPALIVE_EVERY {
            self.send(&Message::KeepAlive)?;
        }
        Ok(())
    }

    fn handle(&mut self, m: Message, files: &mut OpenFiles) -> Result<(), BtError> {
        match m {
            Message::Interested => {
                self.interested = true;
                self.last_wanted = Instant::now();
                self.chores()?;
            }
            Message::NotInterested => {
                self.interested = false;
                self.server.slots.release(self.server.conn_id);
                if !self.choked {
                    self.choked = true;
                    self.send(&Message::Choke)?;
                }
            }
            Message::Request(b) => {
                self.last_wanted = Instant::now();
                self.request(b, files)?
            }
            Message::Bitfield(bits) => {
                Bitfield::from_bytes(&bits, self.pieces)
                    .map_err(|e| BtError::Protocol(format!("their {e}")))?;
            }
            Message::Have(i) if i >= self.pieces => {
                return Err(BtError::Protocol(format!("have of piece {i} of {}", self.pieces)));
            }
            Message::Piece(b) => {
                return Err(BtError::Protocol(format!("sent piece {} we never asked for", b.index)));
            }
            Message::Extended { id, payload } => self.extended(id, &payload)?,
            Message::Port(port) => {
                if let Some(dht) = &self.server.opts.dht {
                    dht.add_node(self.peer.ip(), port);
                }
            }
            // Requests are answered as they come, so a cancel has nothing left to cancel;
            // the rest (their choking, their pieces, hints) a server need not act on.
            _ => {}
        }
        Ok(())
    }

    /// Answers a block request, or rejects it (fast extension) or closes (without it) when
    /// it cannot be served.
    fn request(&mut self, b: Block, files: &mut OpenFiles) -> Result<(), BtError> {
        if self.choked {
            return self.refuse(b, "asked while choked");
        }
        let Some(shared) = self.server.shares.get(&self.id) else {
            return Err(BtError::Protocol("the file is no longer shared here".into()));
        };
        let m = &shared.manifest;
        let Some(idx) = m.index(b.index) else { return self.refuse(b, "piece out of range") };
        let plen = m.chunk_len(idx) as u64;
        if b.length == 0 || b.length > MAX_BLOCK || u64::from(b.begin) + u64::from(b.length) > plen {
            return Err(BtError::Protocol(format!(
                "asked for {} bytes at {} of piece {} ({plen} bytes; blocks up to {MAX_BLOCK})",
                b.length, b.begin, b.index
            )));
        }
        let file = match open_for_chunk(&shared, idx, files) {
            Ok(f) => f,
            Err(Refusal(why)) => return self.refuse(b, &why),
        };
        self.block.resize(b.length as usize, 0);
        file.read_exact_at(&mut self.block, m.offset(idx) + u64::from(b.begin))?;
        let server = self.server;
        if let Some(limit) = &server.opts.upload_limit {
            // Blocks wait in the one upload line with native chunks, up to QUANTUM bytes a turn.
            let (turn, sent) = self.turn.get_or_insert_with(|| (limit.turn(), 0));
            turn.take(self.block.len());
            *sent += self.block.len();
            turn.left(QUANTUM.saturating_sub(*sent));
        }
        self.out.clear();
        msg::encode(&Message::Piece(b), &mut self.out);
        self.out.extend_from_slice(&self.block);
        self.writer.send(&self.out)?;
        self.last_sent = Instant::now();
        server.slots.credit(server.conn_id, 0, u64::from(b.length));
        shared.sent(self.peer, u64::from(b.length));
        if self.turn.as_ref().is_some_and(|(_, sent)| *sent >= QUANTUM) {
            self.turn = None; // to the back of the line
        }
        Ok(())
    }

    fn refuse(&mut self, b: Block, why: &str) -> Result<(), BtError> {
        debug!("bt: {}: not serving piece {} ({why})", self.peer, b.index);
        if self.fast {
            Ok(self.send(&Message::RejectRequest(b))?)
        } else if self.choked {
            Ok(()) // without the fast extension a request while choked is dropped
        } else {
            Err(BtError::Protocol(format!("piece {}: {why}", b.index)))
        }
    }

    fn extended(&mut self, id: u8, payload: &[u8]) -> Result<(), BtError> {
        if id == metadata::HANDSHAKE_ID {
            let h = metadata::parse_handshake(payload)?;
            if let Some(client) = &h.client {
                debug!("bt: {} is {client}", self.peer);
            }
            self.their_ut_metadata = h.ut_metadata;
            self.their_pex = h.ut_pex;
            if let (Some(port), false) = (h.listen_port, self.dialed) {
                self.server.book.join(
                    self.id,
                    self.server.conn_id,
                    Some(SocketAddr::new(self.peer.ip(), port)),
                );
            }
            return Ok(());
        }
        if id == OUR_UT_PEX && self.pex {
            if self.pex_gap.admits(Instant::now()) {
                let peers = pex::added(payload)?;
                self.server.book.heard(self.id, &peers);
            }
            return Ok(());
        }
        if id != OUR_UT_METADATA {
            return Ok(()); // an extension we did not offer: ignored, as BEP 10 allows
        }
        let Some(theirs) = self.their_ut_metadata else { return Ok(()) };
        if let MetadataMsg::Request(piece) = metadata::decode(payload)? {
            let allowed = METADATA_ANSWERS_PER_PIECE * self.info.len().div_ceil(metadata::METADATA_PIECE);
            self.metadata_asked += 1;
            if self.metadata_asked > allowed + METADATA_REJECTS {
                return Err(BtError::Protocol(format!(
                    "asked for the metadata {} times",
                    self.metadata_asked
                )));
            }
            let reply = match metadata::piece_of(&self.info, piece) {
                Some(data) if self.metadata_asked <= allowed => {
                    MetadataMsg::Data { piece, total_size: self.info.len(), data: data.to_vec() }
                }
                _ => MetadataMsg::Reject(piece),
            };
            self.send(&Message::Extended { id: theirs, payload: metadata::encode(&reply) })?;
        }
        Ok(())
    }
}

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Greeting {
    /// `\x13BitTorrent protocol`, a plain BitTorrent handshake.
    BitTorrent,
    /// A 0 then at most 16: the length of one of our frames (at most 1 MiB).
    Native,
    /// Anything else: an encrypted BitTorrent handshake (MSE) begins with a random
    /// Diffie-Hellman key.
    Encrypted,
}

/// What the first bytes seen so far say, or `None` while they could still be either: a
/// plain BitTorrent handshake needs all 20 of its first bytes to be told from an MSE key
/// that happens to begin with 19; a native frame, two.
pub fn classify(first: &[u8]) -> Option<Greeting> {
    match first {
        [] => None,
        [0] => None,
        [0, len, ..] if *len <= 0x10 => Some(Greeting::Native),
        _ if first.len() >= msg::PROTOCOL.len() && first[..20] == msg::PROTOCOL[..] => {
            Some(Greeting::BitTorrent)
        }
        _ if msg::PROTOCOL.starts_with(first) => None,
        _ => Some(Greeting::Encrypted),
    }
}

/// Reads (without consuming) a connection's first bytes, in slices of `poll`, until they
/// tell what it speaks ([`classify`]), `deadline` passes or `give_way` says to make room;
/// `None` when nothing came or it stayed unclear.
pub fn greeting(
    stream: &std::net::TcpStream,
    deadline: Instant,
    give_way: &GiveWay,
    poll: Duration,
) -> io::Result<Option<Greeting>> {
    let mut first = [0u8; 20];
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || give_way() {
            return Ok(None);
        }
        if seen > 0 {
            // Part came: peek returns at once now, so wait a little between looks.
            std::thread::sleep(Duration::from_millis(5).min(left));
        }
        stream.set_read_timeout(Some(left.min(poll)))?;
        match stream.peek(&mut first) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                seen = n;
                if let Some(g) = classify(&first[..n]) {
                    return Ok(Some(g));
                }
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_three_protocols_apart() {
        assert_eq!(classify(&msg::PROTOCOL[..]), Some(Greeting::BitTorrent));
        assert_eq!(classify(&msg::PROTOCOL[..7]), None, "a plain handshake still arriving");
        assert_eq!(
            classify(b"\x13BitTorrent protocoX"),
            Some(Greeting::Encrypted),
            "a key that begins with 19"
        );
        assert_eq!(classify(b"\x13Q"), Some(Greeting::Encrypted));
        assert_eq!(classify(&[0, 0, 0, 40, b'{']), Some(Greeting::Native));
        assert_eq!(classify(&[0]), None);
        assert_eq!(classify(&[0, 0x11]), Some(Greeting::Encrypted), "no frame is over 1 MiB");
        assert_eq!(classify(&[0xA7, 1, 2]), Some(Greeting::Encrypted));
    }
    use crate::manifest::hash_file;
    use crate::peer::upload::UploadLine;
    use crate::storage::Place;
    use crate::wire::mem::MemSocket;
    use std::io::{Cursor, Read};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    const FROM: &str = "127.0.0.9:6881";

    /// One complete file of 3 MiB + 5 bytes, shared.
    fn shared_file() -> (tempfile::TempDir, Shares, ContentId, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let m = hash_file(&path, "f.bin", false).unwrap();
        let id = m.content_id();
        let shares = Shares::default();
        shares.add_complete(Arc::new(m), id, Place::file(path).unwrap());
        (dir, shares, id, data)
    }

    /// A client's opening: its handshake (fast and extension bits), then `then`.
    fn opening(id: ContentId, then: &[Message]) -> Vec<u8> {
        let mut out = Handshake::ours(id, *b"-XX0000-unit-test-01").to_bytes().to_vec();
        then.iter().for_each(|m| msg::encode(m, &mut out));
        out
    }

    /// The messages we wrote, each with a piece's data (empty for the others).
    type Written = Vec<(Message, Vec<u8>)>;

    /// Serves `input` on one in-memory connection; returns how it ended and the messages
    /// written after our handshake.
    fn exchange(shares: &Shares, input: Vec<u8>) -> (Result<(), BtError>, Written) {
        exchange_with(shares, input, &ServerOptions::default(), &Book::default())
    }

    fn exchange_with(
        shares: &Shares,
        input: Vec<u8>,
        opts: &ServerOptions,
        book: &Book,
    ) -> (Result<(), BtError>, Written) {
        let socket = MemSocket::new(input);
        let slots = Slots::new(4);
        let server =
            BtServer { shares, opts, slots: &slots, peer_id: [1; 20], conn_id: 7, book, listen_port: 6881 };
        let total = AtomicUsize::new(0);
        let ended = run(
            socket.clone(),
            FROM.parse().unwrap(),
            None,
            &server,
            &mut OpenFiles::new(&total),
            Opened::Accepted,
        );
        let mut out = Cursor::new(socket.written());
        Handshake::read(&mut out).expect("our handshake first");
        let mut msgs = Vec::new();
        while (out.position() as usize) < out.get_ref().len() {
            let m = msg::read_message(&mut out).unwrap();
            let mut data = Vec::new();
            if let Message::Piece(b) = &m {
                data.resize(b.length as usize, 0);
                out.read_exact(&mut data).unwrap();
            }
            msgs.push((m, data));
        }
        (ended, msgs)
    }

    fn ut_request(piece: u32) -> Message {
        Message::Extended { id: OUR_UT_METADATA, payload: metadata::encode(&MetadataMsg::Request(piece)) }
    }

    #[test]
    fn the_metadata_goes_out_twice_per_piece_then_is_refused_then_the_connection_ends() {
        let (_dir, shares, id, _) = shared_file();
        let theirs =
            Message::Extended { id: metadata::HANDSHAKE_ID, payload: b"d1:md11:ut_metadatai3eee".to_vec() };
        let asks: Vec<Message> = std::iter::once(theirs).chain((0..30).map(|_| ut_request(0))).collect();
        let (ended, msgs) = exchange(&shares, opening(id, &asks));
        let answers: Vec<MetadataMsg> = msgs
            .iter()
            .filter_map(|(m, _)| match m {
                Message::Extended { id: 3, payload } => metadata::decode(payload).ok(),
                _ => None,
            })
            .collect();
        let data = answers.iter().filter(|a| matches!(a, MetadataMsg::Data { .. })).count();
        let rejects = answers.iter().filter(|a| matches!(a, MetadataMsg::Reject(0))).count();
        assert_eq!((data, rejects), (METADATA_ANSWERS_PER_PIECE, METADATA_REJECTS));
        assert!(
            matches!(ended, Err(BtError::Protocol(ref why)) if why.contains("metadata 11 times")),
            "{ended:?}"
        );
    }

    #[test]
    fn peer_exchange_tells_of_the_other_connections_and_hears_for_a_download() {
        let (_dir, shares, id, _) = shared_file();
        let book = Book::default();
        let other: SocketAddr = "10.0.0.9:51413".parse().unwrap();
        book.join(id, 99, Some(other)); // another connection of the torrent
        let theirs = Message::Extended {
            id: metadata::HANDSHAKE_ID,
            payload: b"d1:md6:ut_pexi5ee1:pi7000ee".to_vec(),
        };
        let named: SocketAddr = "10.0.0.8:6881".parse().unwrap();
        let pex = Message::Extended { id: OUR_UT_PEX, payload: pex::message(&[named], &[]) };
        let (ended, msgs) =
            exchange_with(&shares, opening(id, &[theirs, pex]), &ServerOptions::default(), &book);
        assert!(ended.is_ok(), "{ended:?}");
        let ours = msgs.iter().find_map(|(m, _)| match m {
            Message::Extended { id: metadata::HANDSHAKE_ID, payload } => {
                metadata::parse_handshake(payload).ok()
            }
            _ => None,
        });
        let ours = ours.expect("our extension handshake");
        assert_eq!((ours.ut_pex, ours.listen_port), (Some(OUR_UT_PEX), Some(6881)));
        let told: Vec<Vec<SocketAddr>> = msgs
            .iter()
            .filter_map(|(m, _)| match m {
                Message::Extended { id: 5, payload } => pex::added(payload).ok(),
                _ => None,
            })
            .collect();
        assert_eq!(told, vec![vec![other]], "told once, of the other connection");
        assert_eq!(book.take_heard(id), vec![named], "what it named waits for a download");
        assert_eq!(book.others(id, 99), vec![], "it left the book when it closed");
    }

    #[test]
    fn a_choked_request_is_rejected_and_an_interested_peer_is_served() {
        let (_dir, shares, id, data) = shared_file();
        let block = Block { index: 2, begin: 16384, length: 16384 };
        let asks = [Message::Request(block), Message::Interested, Message::Request(block)];
        let (ended, msgs) = exchange(&shares, opening(id, &asks));
        assert!(ended.is_ok(), "{ended:?}");
        let kinds: Vec<&Message> = msgs.iter().map(|(m, _)| m).collect();
        assert!(kinds.contains(&&Message::HaveAll), "a seeder says so in one message (fast extension)");
        let reject = kinds.iter().position(|m| **m == Message::RejectRequest(block));
        let unchoke = kinds.iter().position(|m| **m == Message::Unchoke);
        let piece = msgs.iter().position(|(m, _)| *m == Message::Piece(block));
        assert!(reject < unchoke && unchoke < piece && piece.is_some(), "{kinds:?}");
        let start = (2 << 20) + 16384;
        assert!(msgs[piece.unwrap()].1 == data[start..start + 16384], "the block's bytes");
    }

    #[test]
    fn blocks_wait_in_the_one_upload_line_behind_a_chunk_being_sent() {
        let (_dir, shares, id, _) = shared_file();
        let line = UploadLine::new(16 << 20);
        let opts = ServerOptions { upload_limit: Some(Arc::clone(&line)), ..Default::default() };
        // A native chunk has the line: 2 MiB at 16 MiB/s, an eighth of a second.
        let chunk = line.turn();
        chunk.take(64 << 10);
        let asks: Vec<Message> = std::iter::once(Message::Interested)
            .chain((0..4).map(|b| Message::Request(Block { index: 0, begin: b * 16384, length: 16384 })))
            .collect();
        let (chunk_done, blocks_done, msgs) = std::thread::scope(|s| {
            let sender = s.spawn(move || {
                (0..32).for_each(|_| chunk.take(64 << 10));
                Instant::now()
            });
            let (ended, msgs) = exchange_with(&shares, opening(id, &asks), &opts, &Book::default());
            let blocks_done = Instant::now();
            assert!(ended.is_ok(), "{ended:?}");
            (sender.join().unwrap(), blocks_done, msgs)
        });
        let pieces = msgs.iter().filter(|(m, _)| matches!(m, Message::Piece(_))).count();
        assert_eq!(pieces, 4);
        // Taking tokens beside the line, the blocks (64 KiB, 4 ms) went out long before.
        assert!(blocks_done >= chunk_done, "the blocks went out while the chunk had the line");
        assert_eq!(line.waiting(), 0, "the connection left the line when it ended");
    }
}
