//! One thread per source: asks the scheduler for chunks this source has and fetches them
//! with two requests in flight (or, from a capped source whose line was full, one at a
//! time in turns); a checker thread per source (`verify`) checks each chunk's SHA-1
//! meanwhile and passes good ones to the reassembler over a bounded channel.

use super::scheduler::Scheduler;
use super::verify::{self, Unchecked};
use crate::bitfield::Bitfield;
use crate::chunk_store::ChunkStore;
use crate::dht::PeerDht;
use crate::manifest::{ChunkIndex, CHUNK_SIZE};
use crate::wire::conn::Conn;
use crate::wire::peer_msg::{Abilities, PeerReply, PeerRequest};
use crate::wire::WireError;
use crossbeam_channel::{bounded, Receiver, Sender};
use log::debug;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Chunk requests kept in flight per source, so the link never idles between chunks.
const DEPTH: usize = 2;
/// A source that is not complete is asked what it has at least this often while chunks
/// flow from it (a seeder's offer follows the crowd: see `super_seed`), ...
const REFRESH: Duration = Duration::from_secs(1);
/// ... and this often while it has nothing we need.
const IDLE_REFRESH: Duration = Duration::from_millis(200);
/// A chunk a source answered `elsewhere` is asked of other sources for this long.
const SHUN: Duration = Duration::from_millis(500);
/// Shunned chunks remembered per source.
const MAX_SHUNNED: usize = 64;
/// A source whose upload line is full is asked for no chunk for the time it names, within
/// these bounds: a peer that names no time again and again cannot make us spin, one that
/// names an hour cannot idle its connection.
const MIN_REST: Duration = Duration::from_millis(20);
const MAX_REST: Duration = Duration::from_secs(1);
/// A source that is still downloading and said its upload line was full this recently is
/// sent one chunk request at a time: the others' requests keep it busy, and a second one of
/// ours would only wait unread behind the first, holding a chunk another source could send.
const FULL_LINE_MEMORY: Duration = Duration::from_secs(2);
/// How often a source thread with nothing to ask looks again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// A source that sends this many chunks failing their check is dropped for the download.
pub const MAX_BAD_CHUNKS: u32 = 3;

/// A verified chunk on its way to the reassembler.
pub struct Arrival {
    pub index: ChunkIndex,
    pub buf: Vec<u8>,
    pub from: SocketAddr,
}

/// Recycled chunk buffers, so that a download allocates a handful of them in all.
#[derive(Clone)]
pub struct BufferPool {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
}

impl BufferPool {
    pub fn new(cap: usize) -> BufferPool {
        let (tx, rx) = bounded(cap);
        BufferPool { tx, rx }
    }

    pub fn get(&self) -> Vec<u8> {
        self.rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK_SIZE as usize))
    }

    pub fn put(&self, buf: Vec<u8>) {
        let _ = self.tx.try_send(buf);
    }
}

/// What the source threads of one download share.
pub struct DownloadCtx {
    pub store: Arc<ChunkStore>,
    pub sched: Mutex<Scheduler>,
    pub cancel: AtomicBool,
    pub pool: BufferPool,
    pub io_timeout: Duration,
    /// Payload bytes received from all sources (verified or not): the stall clock's input.
    pub received: AtomicU64,
    /// Our peer id towards BitTorrent sources.
    pub peer_id: [u8; 20],
    /// Sources given directly (`--peer`, `x.pe`): BitTorrent clients or p2p-share peers.
    pub direct: Mutex<Vec<SocketAddr>>,
    /// Our DHT node, when on: BitTorrent sources are told its port and may name theirs.
    pub dht: Option<PeerDht>,
}

/// A chunk's payload is read in slices of this size, each under its own deadline and
/// counted as it arrives.
const SLICE: usize = 64 * 1024;

/// Why a source thread ended.
#[derive(Debug)]
pub enum SourceEnd {
    /// Nothing more to fetch (the download is complete or cancelled).
    Finished,
    /// The source failed (unreachable, vanished, stalled or broke the protocol).
    Failed(String),
    /// The source sent too many corrupt chunks.
    Banned(u32),
    /// The source claims chunks it does not have.
    Lying(String),
}

impl fmt::Display for SourceEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceEnd::Finished => write!(f, "finished"),
            SourceEnd::Failed(why) => write!(f, "{why}"),
            SourceEnd::Banned(n) => write!(f, "dropped after {n} chunks that failed their SHA-1 check"),
            SourceEnd::Lying(why) => write!(f, "dropped: {why}"),
        }
    }
}

impl From<WireError> for SourceEnd {
    fn from(e: WireError) -> Self {
        SourceEnd::Failed(e.to_string())
    }
}

/// Fetches from `addr` until nothing is left to fetch there; its chunks go back to the
/// others when it ends.
/// Sources from the tracker are p2p-share peers and speak our protocol. A source given
/// directly may be a BitTorrent client: it is greeted in BitTorrent, and fetched from over
/// BitTorrent unless its peer id says it is a p2p-share peer.
pub fn run(shared: &DownloadCtx, addr: SocketAddr, tx: &Sender<Arrival>) -> SourceEnd {
    let end = if shared.direct.lock().contains(&addr) {
        super::bt_source::run(shared, addr, tx).unwrap_or_else(|| native(shared, addr, tx))
    } else {
        native(shared, addr, tx)
    };
    shared.sched.lock().remove_source(addr);
    end
}

/// Fetches over our own protocol; the chunks are checked on a thread of their own
/// (`verify`) while the next ones arrive.
fn native(shared: &DownloadCtx, addr: SocketAddr, tx: &Sender<Arrival>) -> SourceEnd {
    let mut conn = match Conn::connect(addr, shared.io_timeout) {
        Ok(conn) => conn,
        Err(e) => return SourceEnd::Failed(format!("cannot connect: {e}")),
    };
    let peer = match conn.call(&PeerRequest::Hello { abilities: Abilities::ALL }) {
        Ok(PeerReply::Hello { abilities }) => abilities,
        Ok(PeerReply::Error { reason }) => return SourceEnd::Failed(reason),
        Ok(other) => return SourceEnd::Failed(format!("answered hello with a '{}' reply", other.kind())),
        Err(e) => return e.into(),
    };
    let bad = AtomicU32::new(0);
    let (check, unchecked) = bounded(verify::AHEAD);
    let end = thread::scope(|s| {
        let checker = thread::Builder::new()
            .name(format!("verify-{addr}"))
            .spawn_scoped(s, || verify::run(shared, addr, unchecked, tx, &bad));
        if let Err(e) = checker {
            return SourceEnd::Failed(format!("cannot start a thread: {e}"));
        }
        let mut f = Fetcher {
            shared,
            addr,
            conn,
            complete: false,
            last_have: Instant::now(),
            refused: 0,
            check,
            bad: &bad,
            shunned: Shunned::default(),
            resting_until: None,
            line_full_at: None,
            turns: false,
            peer,
        };
        match f.refresh_have() {
            Ok(()) => f.run(),
            Err(end) => end,
        }
        // Leaving the scope closes `check`; the checker finishes what it holds first.
    });
    match bad.load(Ordering::Relaxed) {
        n if n >= MAX_BAD_CHUNKS => SourceEnd::Banned(n),
        _ => end,
    }
}

/// What a source connection waits for, in the order asked.
enum Pending {
    Chunk(u32),
    Have,
}

struct Fetcher<'a> {
    shared: &'a DownloadCtx,
    addr: SocketAddr,
    conn: Conn,
    complete: bool,
    last_have: Instant,
    /// Chunk requests it refused although it claimed to have them.
    refused: u32,
    /// To the checker (`verify`), which passes good chunks on.
    check: Sender<Unchecked>,
    /// Chunks of this source that failed their check.
    bad: &'a AtomicU32,
    /// Chunks it answered `elsewhere`.
    shunned: Shunned,
    /// Its upload line was full: no chunk requests to it until then.
    resting_until: Option<Instant>,
    /// When it last said its upload line was full.
    line_full_at: Option<Instant>,
    /// It takes turn requests, and its line was full: chunks are asked of it in turns
    /// (see [`run_turns`](Self::run_turns)), for the rest of the download.
    turns: bool,
    /// What the source said it does (its answer to our `hello`).
    peer: Abilities,
}

/// Chunk requests to keep in flight at a source (see [`FULL_LINE_MEMORY`]).
fn depth(complete: bool, line_full_at: Option<Instant>, now: Instant) -> usize {
    match line_full_at {
        Some(t) if !complete && now.duration_since(t) < FULL_LINE_MEMORY => 1,
        _ => DEPTH,
    }
}

/// How long a source thread with nothing to ask sleeps: until the source's rest ends, if
/// it is resting, and at most [`IDLE_POLL`].
fn nap(resting_until: Option<Instant>, now: Instant) -> Duration {
    match resting_until.map(|t| t.saturating_duration_since(now)) {
        Some(left) if !left.is_zero() => left.min(IDLE_POLL),
        _ => IDLE_POLL,
    }
}

/// Chunks a source answered `elsewhere` without naming a time, and when: other sources are
/// asked for them for [`SHUN`] (a super-seeding peer offers them to others).
#[derive(Default)]
struct Shunned(VecDeque<(u32, Instant)>);

impl Shunned {
    fn add(&mut self, i: u32, now: Instant) {
        if self.0.len() >= MAX_SHUNNED {
            self.0.pop_front();
        }
        self.0.push_back((i, now));
    }

    /// Clears from `have` the chunks still shunned at `now`.
    fn mask(&mut self, have: &mut Bitfield, now: Instant) {
        while self.0.front().is_some_and(|(_, t)| now.duration_since(*t) >= SHUN) {
            self.0.pop_front();
        }
        for (i, _) in &self.0 {
            have.clear(*i);
        }
    }
}

impl Fetcher<'_> {
    /// Runs after the first have-set arrived.
    /// Chunk requests and, for a source that is not complete, have requests share one
    /// pipeline: news of what the source has arrives while chunks still flow.
    fn run(&mut self) -> SourceEnd {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let (mut chunks, mut asked_have) = (0, false);
        loop {
            if self.shared.cancel.load(Ordering::Relaxed) {
                return SourceEnd::Finished;
            }
            if self.bad.load(Ordering::Relaxed) >= MAX_BAD_CHUNKS {
                return SourceEnd::Finished; // `native` reports it as banned
            }
            if self.turns && pending.is_empty() {
                return self.run_turns();
            }
            while chunks < self.depth() && !self.resting() && !self.turns {
                let Some(i) = self.shared.sched.lock().assign(self.addr) else { break };
                let req = PeerRequest::Chunk { content_id: self.shared.store.content_id, index: i };
                if let Err(e) = self.conn.send_request(&req) {
                    return e.into();
                }
                pending.push_back(Pending::Chunk(i));
                chunks += 1;
            }
            if !self.complete && !asked_have && self.wants_news(chunks) {
                if let Err(e) = self.conn.send_request(&self.have_request()) {
                    return e.into();
                }
                pending.push_back(Pending::Have);
                asked_have = true;
            }
            let got = match pending.pop_front() {
                Some(Pending::Chunk(i)) => {
                    chunks -= 1;
                    self.receive(i)
                }
                Some(Pending::Have) => {
                    asked_have = false;
                    self.conn
                        .read_reply::<PeerReply>()
                        .map_err(SourceEnd::from)
                        .and_then(|r| self.apply_have(r))
                }
                None if self.shared.sched.lock().is_done() => return SourceEnd::Finished,
                None => {
                    thread::sleep(nap(self.resting_until, Instant::now()));
                    Ok(())
                }
            };
            if let Err(end) = got {
                return end;
            }
        }
    }

    /// Fetches from a source whose upload line was full, one chunk at a time: waits for a
    /// place in its line with a turn request, and picks the chunk when the place comes,
    /// from what the source has then. No chunk is held while waiting, so other sources
    /// may send any of them meanwhile.
    fn run_turns(&mut self) -> SourceEnd {
        loop {
            if self.shared.cancel.load(Ordering::Relaxed)
                || self.bad.load(Ordering::Relaxed) >= MAX_BAD_CHUNKS
            {
                return SourceEnd::Finished;
            }
            let useful = {
                let sched = self.shared.sched.lock();
                if sched.is_done() {
                    return SourceEnd::Finished;
                }
                sched.has_unfetched_at(self.addr, Instant::now())
            };
            let got = if self.resting() || !useful {
                if !self.complete && !self.resting() && self.last_have.elapsed() > IDLE_REFRESH {
                    self.refresh_have()
                } else {
                    thread::sleep(nap(self.resting_until, Instant::now()));
                    Ok(())
                }
            } else {
                self.take_turn()
            };
            if let Err(end) = got {
                return end;
            }
        }
    }

    /// One turn: waits for the place (hearing what the source has every couple of seconds
    /// meanwhile, see `later`), then asks for the rarest chunk the source has then
    /// that no other source is sending (unless overdue: no end game in turns), or gives
    /// the place up with a have request when it has none we need.
    fn take_turn(&mut self) -> Result<(), SourceEnd> {
        let store = &self.shared.store;
        loop {
            let req =
                PeerRequest::Turn { content_id: store.content_id, mine: Some(store.bitfield().to_hex()) };
            let reply: PeerReply = self.conn.call(&req)?;
            let later =
                matches!(reply, PeerReply::Have { later: true, .. } | PeerReply::Offer { later: true, .. });
            self.apply_have(reply)?;
            if !later {
                break;
            }
            // Not our place yet: keep it (by asking again) while the source has a chunk we
            // could ask for; else give it up.
            let keep = !self.shared.cancel.load(Ordering::Relaxed)
                && self.shared.sched.lock().has_unfetched_at(self.addr, Instant::now());
            if !keep {
                return self.refresh_have();
            }
        }
        let picked = self.shared.sched.lock().assign_unless_fetched_at(self.addr, Instant::now());
        match picked {
            Some(i) => {
                self.conn.send_request(&PeerRequest::Chunk { content_id: store.content_id, index: i })?;
                self.receive(i)
            }
            None => {
                // What it has changed, or it said otherwise before: rest a moment, so a
                // source whose have-sets disagree cannot make us spin.
                self.resting_until = Some(Instant::now() + MIN_REST);
                self.refresh_have()
            }
        }
    }

    fn depth(&self) -> usize {
        depth(self.complete, self.line_full_at, Instant::now())
    }

    fn resting(&self) -> bool {
        self.resting_until.is_some_and(|t| Instant::now() < t)
    }

    /// Whether to ask a source that is not complete what it has now: when its pipe cannot
    /// be filled to [`DEPTH`] (after each chunk that still flows, so also after each chunk
    /// of a source sent one request at a time; every [`IDLE_REFRESH`] when none flows),
    /// and at least every [`REFRESH`].
    fn wants_news(&self, chunks_in_flight: usize) -> bool {
        let since = self.last_have.elapsed();
        (chunks_in_flight < DEPTH && (chunks_in_flight > 0 || since > IDLE_REFRESH)) || since > REFRESH
    }

    /// A have request that says what we have, so a seeder can offer what we lack.
    fn have_request(&self) -> PeerRequest {
        let store = &self.shared.store;
        PeerRequest::Have { content_id: store.content_id, mine: Some(store.bitfield().to_hex()) }
    }

    /// Asks which chunks the source has and tells the scheduler.
    fn refresh_have(&mut self) -> Result<(), SourceEnd> {
        let reply = self.conn.call(&self.have_request())?;
        self.apply_have(reply)
    }

    fn apply_have(&mut self, reply: PeerReply) -> Result<(), SourceEnd> {
        let store = &self.shared.store;
        let have = match reply {
            PeerReply::Have { complete: true, .. } => None,
            PeerReply::Have { complete: false, bitfield, .. } | PeerReply::Offer { bitfield, .. } => Some(
                Bitfield::from_hex(&bitfield, store.manifest.chunk_count())
                    .map_err(|e| SourceEnd::Failed(e.to_string()))?,
            ),
            PeerReply::Error { reason } => return Err(SourceEnd::Failed(reason)),
            other => {
                return Err(SourceEnd::Failed(format!(
                    "answered a have request with a '{}' reply",
                    other.kind()
                )))
            }
        };
        self.complete = have.is_none();
        self.last_have = Instant::now();
        let mut have = have;
        if let Some(b) = have.as_mut() {
            self.shunned.mask(b, Instant::now());
        }
        self.shared.sched.lock().update_source(self.addr, have);
        Ok(())
    }

    /// Reads the answer to the request for chunk `i`.
    fn receive(&mut self, i: u32) -> Result<(), SourceEnd> {
        let m = &self.shared.store.manifest;
        let idx = m.index(i).ok_or_else(|| SourceEnd::Failed(format!("chunk {i} out of range")))?;
        let len = match self.conn.read_reply::<PeerReply>()? {
            PeerReply::Chunk { index, len } if index == i && len as usize == m.chunk_len(idx) => len as usize,
            PeerReply::Chunk { index, len } => {
                return Err(SourceEnd::Failed(format!(
                    "sent chunk {index} of {len} bytes when asked for chunk {i}"
                )))
            }
            PeerReply::Busy { index, retry_ms } if index == i => {
                // Its upload line is full: another source may send the chunk while this one
                // rests, and from now on we wait for places in its line, when it takes turns.
                self.shared.sched.lock().release(self.addr, i);
                self.turns |= self.peer.turns;
                let rest = Duration::from_millis(u64::from(retry_ms)).clamp(MIN_REST, MAX_REST);
                self.resting_until = Some(Instant::now() + rest);
                self.line_full_at = Some(Instant::now());
                return Ok(());
            }
            PeerReply::Elsewhere { index } if index == i => {
                // A super-seeding peer offers it to another downloader now (its new offer
                // comes with the next have request, which goes out at once): another source
                // sends it.
                let mut sched = self.shared.sched.lock();
                sched.release(self.addr, i);
                sched.source_lacks(self.addr, i);
                self.shunned.add(i, Instant::now());
                self.last_have = Instant::now().checked_sub(REFRESH).unwrap_or(self.last_have);
                return Ok(());
            }
            PeerReply::Error { reason } => {
                debug!("{}: {reason}", self.addr);
                self.shared.sched.lock().release(self.addr, i);
                // It claimed this chunk (the scheduler only asks for claimed chunks), and a
                // peer's chunks never go away: a refusal is a lie, or a restart.
                self.refused += 1;
                if self.refused >= MAX_BAD_CHUNKS {
                    return Err(SourceEnd::Lying(format!(
                        "claimed chunks it then refused ({}): {reason}",
                        self.refused
                    )));
                }
                return Ok(());
            }
            other => {
                return Err(SourceEnd::Failed(format!(
                    "answered a chunk request with a '{}' reply",
                    other.kind()
                )))
            }
        };
        let mut buf = self.shared.pool.get();
        buf.resize(len, 0);
        for slice in buf.chunks_mut(SLICE) {
            self.conn.read_raw(slice)?;
            self.shared.received.fetch_add(slice.len() as u64, Ordering::Relaxed);
        }
        self.check.send(Unchecked { index: idx, buf }).map_err(|_| SourceEnd::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downloading_source_with_a_full_line_gets_one_request_at_a_time_for_a_while() {
        let t0 = Instant::now();
        assert_eq!(depth(false, None, t0), DEPTH);
        assert_eq!(depth(false, Some(t0), t0 + FULL_LINE_MEMORY / 2), 1);
        assert_eq!(depth(false, Some(t0), t0 + FULL_LINE_MEMORY), DEPTH, "then two again");
        assert_eq!(depth(true, Some(t0), t0), DEPTH, "a seeder keeps two");
    }

    #[test]
    fn an_idle_source_thread_wakes_when_the_rest_ends_and_otherwise_polls_slowly() {
        let t0 = Instant::now();
        assert_eq!(nap(None, t0), IDLE_POLL);
        assert_eq!(nap(Some(t0 + Duration::from_millis(30)), t0), Duration::from_millis(30));
        assert_eq!(nap(Some(t0 + 2 * IDLE_POLL), t0), IDLE_POLL);
        assert_eq!(nap(Some(t0), t0 + Duration::from_secs(1)), IDLE_POLL, "a rest that ended");
    }

    #[test]
    fn a_turned_away_chunk_is_asked_elsewhere_for_a_while() {
        let t0 = Instant::now();
        let mut shunned = Shunned::default();
        shunned.add(3, t0);
        let mut have = Bitfield::full(8);
        shunned.mask(&mut have, t0 + SHUN / 2);
        assert!(!have.get(3), "still shunned");
        assert_eq!(have.count(), 7);
        let mut have = Bitfield::full(8);
        shunned.mask(&mut have, t0 + SHUN);
        assert_eq!(have.count(), 8, "asked of it again");
    }

    #[test]
    fn the_resting_constants_keep_their_order() {
        // PROTOCOL.md section 5: a rest is shorter than a shunned chunk stays shunned, which
        // is shorter than the refresh of what a source has; an idle source is asked sooner.
        assert!(MIN_REST < SHUN && SHUN < REFRESH && MAX_REST <= REFRESH);
        assert!(IDLE_REFRESH < REFRESH && IDLE_POLL < IDLE_REFRESH);
    }
}
