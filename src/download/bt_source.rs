//! A source that speaks BitTorrent (a BitTorrent client): the same scheduler, checks and
//! reassembler as a native source, fed by 16 KiB block requests pipelined a few pieces
//! deep. A piece is checked against its SHA-1 before it goes to the reassembler.
//!
//! What the spec asks of a downloader is followed: nothing is requested while choked;
//! a choke without the fast extension drops every pending request (their pieces go back
//! to the scheduler), a reject drops one; a bitfield of the wrong length ends the
//! connection; blocks nobody asked for are read and thrown away, and too many of them end
//! the connection. No byte from this source reaches the file unverified. Pieces are checked
//! on a thread of their own (`verify`, as for a native source), so the socket is read while
//! the piece before is hashed.
//!
//! The connection gives too ([`Giving`]): our pieces go to the other side under the
//! server's slots and upload line, and once the download is complete the connection stays
//! while the other side still wants pieces.

use super::bt_give::Giving;
use super::ctx::{Arrival, DownloadCtx, SourceEnd, MAX_BAD_CHUNKS};
use super::request_depth::RequestDepth;
use super::verify::{self, Unchecked};
use crate::bitfield::Bitfield;
use crate::bt::client::BtConn;
use crate::bt::msg::{Block, BtError, Message};
use crate::bt::{metadata, pex};
use crossbeam_channel::Sender;
use log::debug;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Clients ask for, and serve, 16 KiB blocks.
pub const BLOCK: u32 = 16 * 1024;
/// Unasked-for blocks tolerated (late ones after a reject or choke) before giving up.
const MAX_UNASKED: u32 = 256;
/// Block requests kept at a peer that has not said how many it queues (BEP 10's `reqq`;
/// libtorrent's default).
pub const DEFAULT_REQQ: usize = 250;

/// A piece being fetched.
struct Fetching {
    index: u32,
    buf: Vec<u8>,
    /// Blocks received, by number.
    got: Vec<bool>,
    missing: usize,
    /// Blocks asked for so far (the first `asked`, in order).
    asked: usize,
}

impl Fetching {
    /// Whether `b` is a block of this piece that was asked for and has not come yet: at a
    /// block boundary, of the block's length (the last may be short), not a repeat.
    fn awaits(&self, b: &Block) -> bool {
        let n = (b.begin / BLOCK) as usize;
        b.begin.is_multiple_of(BLOCK)
            && n < self.asked
            && !self.got[n]
            && b.length == BLOCK.min(self.buf.len() as u32 - b.begin)
    }

    /// Blocks asked for and not come yet.
    fn outstanding(&self) -> usize {
        self.asked - (self.got.len() - self.missing)
    }

    /// The requests for the next `n` blocks not asked for yet (fewer at the piece's end).
    fn ask(&mut self, n: usize) -> Vec<Message> {
        let len = self.buf.len() as u32;
        let end = (self.asked + n).min(self.got.len());
        let out = (self.asked..end)
            .map(|b| {
                let begin = b as u32 * BLOCK;
                Message::Request(Block { index: self.index, begin, length: BLOCK.min(len - begin) })
            })
            .collect();
        self.asked = end;
        out
    }
}

/// The requests for every block of piece `index` of `len` bytes, in order.
#[cfg(test)]
fn block_requests(index: u32, len: u32) -> Vec<Message> {
    let blocks = len.div_ceil(BLOCK) as usize;
    let mut f =
        Fetching { index, buf: vec![0; len as usize], got: vec![false; blocks], missing: blocks, asked: 0 };
    f.ask(blocks)
}

/// Fetches from a BitTorrent source at `addr` until nothing is left to fetch there;
/// `None` when the other side turns out to be a p2p-share peer (fetch natively instead).
pub fn run(shared: &DownloadCtx, addr: SocketAddr, tx: &Sender<Arrival>) -> Option<SourceEnd> {
    let id = shared.store.content_id;
    let dht_port = shared.dht.as_ref().map(|d| d.local_addr().port());
    // No listen port (`p`): our server is another BitTorrent peer (its own peer id), and a
    // client that learnt it from us and dialed it would take this connection for a
    // duplicate of that one and close one of them, maybe this one.
    let offer =
        metadata::Offer { metadata_size: None, pex: !shared.store.manifest.private, listen_port: None };
    let conn = match BtConn::connect(
        addr,
        id,
        shared.peer_id,
        shared.io_timeout,
        dht_port,
        offer,
        shared.encryption,
    ) {
        Ok(conn) if conn.is_p2p_share() => return None,
        Ok(conn) => conn,
        Err(e) => return Some(SourceEnd::Failed(format!("over BitTorrent: {e}"))),
    };
    let _registered = shared.conns.register(conn.tcp());
    Some(verify::with_checker(shared, addr, tx, |check, bad| {
        BtFetcher::new(shared, conn, check, bad).run().unwrap_or_else(|e| match e {
            BtError::Protocol(why) => SourceEnd::Lying(format!("over BitTorrent: {why}")),
            other => SourceEnd::Failed(format!("over BitTorrent: {other}")),
        })
    }))
}

struct BtFetcher<'a> {
    shared: &'a DownloadCtx,
    conn: BtConn,
    addr: SocketAddr,
    pieces: u32,
    /// What the source said it has.
    has: Bitfield,
    choked: bool,
    fetching: Vec<Fetching>,
    unasked: u32,
    last_data: Instant,
    /// Pieces to keep asked, from the rate this source sends at.
    depth: RequestDepth,
    /// When its last ut_pex message was read.
    pex_gap: pex::Gap,
    /// Its id for ut_pex messages, once its extension handshake said it speaks it.
    their_pex: Option<u8>,
    /// Block requests it queues ([`DEFAULT_REQQ`] until its extension handshake says).
    reqq: usize,
    /// What peer exchange told it, and when it may tell again.
    teller: pex::Teller,
    /// This connection in the process's book of connections (see [`pex::Book`]).
    book_id: u64,
    /// To the checker thread.
    check: Sender<Unchecked>,
    /// Pieces that failed their check so far.
    bad: &'a AtomicU32,
    /// Our uploading half, when this peer uploads.
    give: Option<Giving<'a>>,
}

impl<'a> BtFetcher<'a> {
    fn new(
        shared: &'a DownloadCtx,
        conn: BtConn,
        check: Sender<Unchecked>,
        bad: &'a AtomicU32,
    ) -> BtFetcher<'a> {
        let pieces = shared.store.manifest.chunk_count();
        let addr = conn.addr;
        BtFetcher {
            shared,
            conn,
            addr,
            pieces,
            has: Bitfield::new(pieces),
            choked: true,
            fetching: Vec::new(),
            unasked: 0,
            last_data: Instant::now(),
            pex_gap: pex::Gap::default(),
            their_pex: None,
            reqq: DEFAULT_REQQ,
            teller: pex::Teller::new(Instant::now()),
            book_id: crate::bt::choke::next_conn_id(),
            depth: RequestDepth::new(
                shared.store.manifest.piece_length,
                shared.budget.bt_depth,
                Instant::now(),
            ),
            check,
            bad,
            give: shared.uploads.as_ref().map(|u| Giving::new(u, shared.store.content_id, pieces)),
        }
    }

    fn run(&mut self) -> Result<SourceEnd, BtError> {
        let id = self.shared.store.content_id;
        self.shared.book.join(id, self.book_id, Some(self.addr));
        let end = self.fetch();
        self.shared.book.leave(id, self.book_id);
        end
    }

    /// Tells the source which other BitTorrent peers of the torrent this process is
    /// connected to (BEP 11), the server's included; never for a private torrent.
    fn tell_pex(&mut self) -> Result<(), BtError> {
        let Some(their_id) = self.their_pex else { return Ok(()) };
        if self.shared.store.manifest.private {
            return Ok(());
        }
        let (book, id, conn) = (&self.shared.book, self.shared.store.content_id, self.book_id);
        if let Some(payload) = self.teller.due(Instant::now(), || book.others(id, conn)) {
            self.conn.send(&Message::Extended { id: their_id, payload })?;
        }
        Ok(())
    }

    fn fetch(&mut self) -> Result<SourceEnd, BtError> {
        if let Some(g) = &mut self.give {
            g.start(&mut self.conn)?;
        }
        self.conn.send(&Message::Interested)?;
        self.shared.sched.lock().update_source(self.addr, Some(Bitfield::new(self.pieces)));
        let mut taking = true;
        loop {
            if taking && self.nothing_left_to_take() {
                // Done taking. A complete download goes on giving while it is wanted; an
                // unfinished one (stalled, cancelled) stops: its reassembler waits for us.
                taking = false;
                self.drop_all();
                let complete = self.shared.store.count() == self.pieces;
                if !complete || self.give.is_none() {
                    return Ok(SourceEnd::Finished);
                }
                self.conn.send(&Message::NotInterested)?;
            }
            if !taking && !self.give.as_ref().is_some_and(Giving::still_wanted) {
                return Ok(SourceEnd::Finished);
            }
            if taking && !self.choked {
                self.request_more()?;
            }
            if let Some(g) = &mut self.give {
                g.chores(&mut self.conn)?;
            }
            self.tell_pex()?;
            match self.conn.next(Duration::from_millis(200))? {
                Some(m) => {
                    if let Some(end) = self.handle(m)? {
                        return Ok(end);
                    }
                }
                None => {
                    if !self.fetching.is_empty() && self.last_data.elapsed() > self.shared.io_timeout {
                        return Ok(SourceEnd::Failed("over BitTorrent: stalled".into()));
                    }
                    self.conn.keep_alive()?;
                }
            }
        }
    }

    /// Asks for every block of new pieces until as many are on the way as this source sends
    /// in two seconds ([`RequestDepth`]; at most the budget's: eight of 1 MiB, as many bytes'
    /// worth of smaller ones).
    ///
    /// No more block requests are kept at it than it queues (its `reqq`): the blocks of a
    /// piece are asked for as earlier ones come, so a piece of more blocks than that (a
    /// 64 MiB piece is 4096) is fetched too.
    fn request_more(&mut self) -> Result<(), BtError> {
        let mut room = self.reqq.saturating_sub(self.fetching.iter().map(Fetching::outstanding).sum());
        let mut requests = Vec::new();
        for f in &mut self.fetching {
            if room == 0 {
                break;
            }
            let asked = f.ask(room);
            room -= asked.len();
            requests.extend(asked);
        }
        while room > 0 && self.fetching.len() < self.depth.get() {
            let Some(i) = self.shared.sched.lock().assign(self.addr) else { break };
            let Some(idx) = self.shared.store.manifest.index(i) else { break };
            let len = self.shared.store.manifest.chunk_len(idx) as u32;
            let blocks = len.div_ceil(BLOCK) as usize;
            let mut buf = self.shared.pool.get();
            buf.resize(len as usize, 0);
            let mut f = Fetching { index: i, buf, got: vec![false; blocks], missing: blocks, asked: 0 };
            let asked = f.ask(room);
            room -= asked.len();
            requests.extend(asked);
            self.fetching.push(f);
        }
        if !requests.is_empty() {
            self.conn.send_all(&requests)?;
        }
        Ok(())
    }

    /// The download ended, or has nothing left to fetch from here.
    fn nothing_left_to_take(&self) -> bool {
        self.shared.cancel.load(Ordering::Relaxed)
            || (self.fetching.is_empty() && self.shared.sched.lock().is_done())
    }

    /// Gives every piece on the way back to the scheduler (a choke dropped its requests).
    fn drop_all(&mut self) {
        let mut sched = self.shared.sched.lock();
        for f in self.fetching.drain(..) {
            sched.release(self.addr, f.index);
            self.shared.pool.put(f.buf);
        }
    }

    fn tell_scheduler(&self) {
        let view = if self.has.is_complete() { None } else { Some(self.has.clone()) };
        self.shared.sched.lock().update_source(self.addr, view);
    }

    fn handle(&mut self, m: Message) -> Result<Option<SourceEnd>, BtError> {
        if let Some(g) = &mut self.give {
            g.heard();
            match m {
                Message::Interested | Message::NotInterested => {
                    g.interested(&mut self.conn, m == Message::Interested)?;
                    return Ok(None);
                }
                Message::Request(b) => {
                    g.request(&mut self.conn, b)?;
                    return Ok(None);
                }
                _ => {}
            }
        }
        match m {
            Message::Bitfield(bits) => {
                self.has = Bitfield::from_bytes(&bits, self.pieces)
                    .map_err(|e| BtError::Protocol(format!("sent a bitfield that does not fit: {e}")))?;
                self.tell_scheduler();
            }
            Message::HaveAll => {
                self.has = Bitfield::full(self.pieces);
                self.tell_scheduler();
            }
            Message::HaveNone => {
                self.has = Bitfield::new(self.pieces);
                self.tell_scheduler();
            }
            Message::Have(i) => {
                if i >= self.pieces {
                    return Err(BtError::Protocol(format!("have of piece {i} of {}", self.pieces)));
                }
                if self.has.set(i) {
                    self.shared.sched.lock().source_has(self.addr, i);
                }
            }
            Message::Choke => {
                self.choked = true;
                if !self.conn.fast() {
                    self.drop_all();
                }
            }
            Message::Unchoke => self.choked = false,
            Message::Port(port) => {
                if let Some(dht) = &self.shared.dht {
                    dht.add_node(self.addr.ip(), port);
                }
            }
            Message::RejectRequest(b) => {
                if let Some(pos) = self.fetching.iter().position(|f| f.index == b.index) {
                    let f = self.fetching.swap_remove(pos);
                    self.shared.sched.lock().release(self.addr, f.index);
                    self.shared.pool.put(f.buf);
                }
            }
            Message::Piece(b) => return self.block(b),
            Message::Extended { id: metadata::HANDSHAKE_ID, payload } => {
                // Its ut_pex id and request queue; a handshake that does not parse offers none.
                let theirs = metadata::parse_handshake(&payload).ok();
                self.their_pex = theirs.as_ref().and_then(|h| h.ut_pex);
                self.reqq = theirs.and_then(|h| h.reqq).unwrap_or(DEFAULT_REQQ);
            }
            Message::Extended { id: pex::OUR_UT_PEX, payload }
                if !self.shared.store.manifest.private && self.pex_gap.admits(Instant::now()) =>
            {
                let peers = pex::added(&payload)?;
                let new = self.shared.add_pex(&peers);
                if new > 0 {
                    debug!("{}: peer exchange named {new} new peer(s)", self.addr);
                }
            }
            Message::Request(b) if self.conn.fast() => self.conn.send(&Message::RejectRequest(b))?,
            _ => {}
        }
        Ok(None)
    }

    /// Reads one block's data into its piece; a complete piece is checked and passed on.
    fn block(&mut self, b: Block) -> Result<Option<SourceEnd>, BtError> {
        let pos = self.fetching.iter().position(|f| f.index == b.index);
        let Some(pos) = pos.filter(|p| self.fetching[*p].awaits(&b)) else {
            let mut sink = vec![0u8; b.length as usize];
            self.conn.read_data(&mut sink)?;
            self.unasked += 1;
            debug!("{}: a block we did not ask for (piece {}, at {})", self.addr, b.index, b.begin);
            if self.unasked > MAX_UNASKED {
                return Err(BtError::Protocol(format!("sent {} blocks nobody asked for", self.unasked)));
            }
            return Ok(None);
        };
        let f = &mut self.fetching[pos];
        let range = b.begin as usize..(b.begin + b.length) as usize;
        self.conn.read_data(&mut f.buf[range])?;
        f.got[(b.begin / BLOCK) as usize] = true;
        f.missing -= 1;
        self.last_data = Instant::now();
        self.depth.received(u64::from(b.length), self.last_data);
        self.shared.received.fetch_add(u64::from(b.length), Ordering::Relaxed);
        if let Some(g) = &self.give {
            g.received(u64::from(b.length));
        }
        if self.fetching[pos].missing > 0 {
            return Ok(None);
        }
        let f = self.fetching.swap_remove(pos);
        let idx = self.shared.store.manifest.index(f.index).expect("assigned pieces are in range");
        if self.check.send(Unchecked { index: idx, buf: f.buf }).is_err() {
            return Ok(Some(SourceEnd::Finished)); // the checker stopped: banned, or the download ended
        }
        Ok(match self.bad.load(Ordering::Relaxed) {
            n if n >= MAX_BAD_CHUNKS => Some(SourceEnd::Banned(n)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(begin: u32, length: u32) -> Block {
        Block { index: 4, begin, length }
    }

    #[test]
    fn a_piece_is_asked_for_in_16_kib_blocks_the_last_one_short() {
        let reqs = block_requests(4, 2 * BLOCK + 100);
        assert_eq!(
            reqs,
            vec![
                Message::Request(block(0, BLOCK)),
                Message::Request(block(BLOCK, BLOCK)),
                Message::Request(block(2 * BLOCK, 100)),
            ]
        );
        assert_eq!(block_requests(4, BLOCK).len(), 1);
    }

    #[test]
    fn a_piece_of_more_blocks_than_the_peer_queues_is_asked_for_in_parts() {
        let len = 10 * BLOCK + 5;
        let mut f =
            Fetching { index: 7, buf: vec![0; len as usize], got: vec![false; 11], missing: 11, asked: 0 };
        let first = f.ask(4);
        assert_eq!((first.len(), f.outstanding()), (4, 4));
        assert!(!f.awaits(&Block { index: 7, begin: 4 * BLOCK, length: BLOCK }), "not asked yet");
        f.got[0] = true;
        f.missing -= 1;
        assert_eq!(f.outstanding(), 3);
        let rest = f.ask(100);
        assert_eq!(rest.len(), 7, "only the blocks left");
        assert_eq!(rest.last(), Some(&Message::Request(Block { index: 7, begin: 10 * BLOCK, length: 5 })));
        assert!(f.ask(5).is_empty());
    }

    #[test]
    fn only_blocks_asked_for_and_not_yet_come_are_taken() {
        let len = 2 * BLOCK + 100;
        let mut f =
            Fetching { index: 4, buf: vec![0; len as usize], got: vec![false; 3], missing: 3, asked: 3 };
        assert!(f.awaits(&block(0, BLOCK)) && f.awaits(&block(2 * BLOCK, 100)));
        assert!(!f.awaits(&block(1, BLOCK)), "not at a block boundary");
        assert!(!f.awaits(&block(BLOCK, 100)), "short of a whole block");
        assert!(!f.awaits(&block(2 * BLOCK, BLOCK)), "past the piece's end");
        assert!(!f.awaits(&block(3 * BLOCK, 1)), "no such block");
        assert!(!f.awaits(&block(u32::MAX / BLOCK * BLOCK, 10)), "far past the end");
        f.got[0] = true;
        assert!(!f.awaits(&block(0, BLOCK)), "a repeat");
    }
}
