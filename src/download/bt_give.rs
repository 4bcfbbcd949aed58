//! Giving back over a BitTorrent connection a download dialed: the connection is full
//! duplex whoever opened it, so the pieces we have go to the other side under the same
//! rules as the server's connections (`peer::bt_serve`): our availability, then `have` as
//! pieces are verified; the server's upload slots decide who is unchoked, blocks wait in
//! the one upload line, and files are opened the one way a chunk's files are
//! ([`open_for_chunk`]). A peer behind NAT, which nobody can dial, gets pieces this way.
//!
//! The connection outlives the download while the other side still wants pieces (see
//! [`Giving::still_wanted`]): the last pieces we got go on to it, as they would from the
//! server.

use crate::bitfield::Bitfield;
use crate::bt::client::BtConn;
use crate::bt::msg::{Block, BtError, Message, MAX_BLOCK};
use crate::hash::ContentId;
use crate::peer::bt_serve::{availability, have_of, news};
use crate::peer::open_files::{open_for_chunk, OpenFiles, Refusal};
use crate::peer::server::Uploads;
use crate::peer::upload::{Turn, QUANTUM};
use log::debug;
use std::time::{Duration, Instant};

/// After the download, a connection stays while the other side said it is interested or
/// asked for a block within this.
pub const WANTED_WITHIN: Duration = Duration::from_secs(20);
/// A peer silent this long is gone (clients send a keep-alive every two minutes).
const SILENT: Duration = Duration::from_secs(150);

/// The uploading half of one download connection.
pub struct Giving<'a> {
    up: &'a Uploads,
    id: ContentId,
    conn_id: u64,
    pieces: u32,
    /// They said they are interested, and we choke them or not.
    interested: bool,
    choked: bool,
    /// The pieces they have been told we have.
    announced: Bitfield,
    files: OpenFiles<'a>,
    block: Vec<u8>,
    turn: Option<(Turn, usize)>,
    last_wanted: Instant,
    last_heard: Instant,
}

impl<'a> Giving<'a> {
    pub fn new(up: &'a Uploads, id: ContentId, pieces: u32) -> Giving<'a> {
        Giving {
            up,
            id,
            conn_id: crate::bt::choke::next_conn_id(),
            pieces,
            interested: false,
            choked: true,
            announced: Bitfield::new(pieces),
            files: OpenFiles::new(&up.open_files),
            block: Vec::new(),
            turn: None,
            last_wanted: Instant::now(),
            last_heard: Instant::now(),
        }
    }

    /// Tells the other side what we have so far, as the server's connections do.
    pub fn start(&mut self, conn: &mut BtConn) -> Result<(), BtError> {
        let Some(shared) = self.up.shares.get(&self.id) else { return Ok(()) };
        let have = have_of(&shared, self.pieces);
        if let Some(m) = availability(&have, conn.fast()) {
            conn.send(&m)?;
        }
        self.announced = have;
        Ok(())
    }

    /// Between messages: `have` for pieces verified since, and the slot (unchoke when one
    /// is ours, choke when it passed on).
    pub fn chores(&mut self, conn: &mut BtConn) -> Result<(), BtError> {
        let Some(shared) = self.up.shares.get(&self.id) else { return Ok(()) };
        for i in news(&shared, &mut self.announced) {
            conn.send(&Message::Have(i))?;
        }
        let now = Instant::now();
        let slots = &self.up.slots;
        if self.interested && self.choked && slots.want(self.conn_id, now) {
            self.choked = false;
            conn.send(&Message::Unchoke)?;
        } else if !self.choked && !slots.check(self.conn_id, now) {
            self.choked = true;
            self.turn = None;
            conn.send(&Message::Choke)?;
        }
        Ok(())
    }

    /// They sent us `bytes` of a piece we asked for: what tit-for-tat rewards.
    pub fn received(&self, bytes: u64) {
        self.up.slots.credit(self.conn_id, bytes, 0);
    }

    /// Any message came from them.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// They said they are (or are not) interested in what we have.
    pub fn interested(&mut self, conn: &mut BtConn, yes: bool) -> Result<(), BtError> {
        self.interested = yes;
        if yes {
            self.last_wanted = Instant::now();
            return self.chores(conn);
        }
        self.up.slots.release(self.conn_id);
        if !self.choked {
            self.choked = true;
            self.turn = None;
            conn.send(&Message::Choke)?;
        }
        Ok(())
    }

    /// Answers a block request, or rejects it (fast extension) or drops it (without it)
    /// when it cannot be served; a request out of the piece's bounds ends the connection.
    pub fn request(&mut self, conn: &mut BtConn, b: Block) -> Result<(), BtError> {
        self.last_wanted = Instant::now();
        if self.choked {
            return self.refuse(conn, b, "asked while choked");
        }
        let Some(shared) = self.up.shares.get(&self.id) else { return self.refuse(conn, b, "not shared") };
        let m = &shared.manifest;
        let Some(idx) = m.index(b.index) else { return self.refuse(conn, b, "piece out of range") };
        let plen = m.chunk_len(idx) as u64;
        if b.length == 0 || b.length > MAX_BLOCK || u64::from(b.begin) + u64::from(b.length) > plen {
            return Err(BtError::Protocol(format!(
                "asked for {} bytes at {} of piece {} ({plen} bytes)",
                b.length, b.begin, b.index
            )));
        }
        let file = match open_for_chunk(&shared, idx, &mut self.files) {
            Ok(f) => f,
            Err(Refusal(why)) => return self.refuse(conn, b, &why),
        };
        self.block.resize(b.length as usize, 0);
        file.read_exact_at(&mut self.block, m.offset(idx) + u64::from(b.begin))?;
        if let Some(limit) = &self.up.limit {
            let (turn, sent) = self.turn.get_or_insert_with(|| (limit.turn(), 0));
            turn.take(self.block.len());
            *sent += self.block.len();
            turn.left(QUANTUM.saturating_sub(*sent));
        }
        conn.send_block(b, &self.block)?;
        self.up.slots.credit(self.conn_id, 0, u64::from(b.length));
        shared.sent(conn.addr, u64::from(b.length));
        let more_asked = conn.has_buffered();
        if !more_asked || self.turn.as_ref().is_some_and(|(_, sent)| *sent >= QUANTUM) {
            self.turn = None; // to the back of the line, or out of it while nothing is asked
        }
        Ok(())
    }

    fn refuse(&mut self, conn: &mut BtConn, b: Block, why: &str) -> Result<(), BtError> {
        debug!("bt: {}: not serving piece {} ({why})", conn.addr, b.index);
        if conn.fast() {
            conn.send(&Message::RejectRequest(b))?;
        }
        Ok(())
    }

    /// After our download: whether the connection should stay to give (they wanted
    /// something within [`WANTED_WITHIN`] and are not silent).
    pub fn still_wanted(&self) -> bool {
        (self.interested || self.last_wanted.elapsed() < WANTED_WITHIN) && self.last_heard.elapsed() < SILENT
    }
}

impl Drop for Giving<'_> {
    fn drop(&mut self) {
        self.up.slots.release(self.conn_id);
    }
}
