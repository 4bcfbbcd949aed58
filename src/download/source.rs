//! One native source (`PROTOCOL.md` sections 4.1-4.4): a thread that asks the scheduler for
//! chunks this source has and fetches them, and a checker thread (`verify`) that checks each
//! chunk's SHA-1 meanwhile. How the source is asked is one small state machine, [`State`]:
//! pipelined requests until its upload line says `busy`, then one chunk at a time in turns.

use super::ctx::{DownloadCtx, SourceEnd, MAX_BAD_CHUNKS};
use super::shunned::Shunned;
use super::verify::{self, Unchecked};
use crate::bitfield::Bitfield;
use crate::wire::conn::Conn;
use crate::wire::deadline::Socket;
use crate::wire::peer_msg::{Abilities, PeerReply, PeerRequest};
use crossbeam_channel::Sender;
use log::debug;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A source that is not complete is asked what it has at least this often while chunks
/// flow from it (a seeder's offer follows the crowd: see `super_seed`), ...
const REFRESH: Duration = Duration::from_secs(1);
/// ... and this often while it has nothing we need.
const IDLE_REFRESH: Duration = Duration::from_millis(200);
/// How often a source thread with nothing to ask looks again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// A turn that found no chunk to name is followed by this pause, so a source whose
/// have-sets disagree cannot make us spin.
const PASS_PAUSE: Duration = Duration::from_millis(20);
/// A chunk's payload is read in slices of this size, each under its own deadline and
/// counted as it arrives.
const SLICE: usize = 64 * 1024;

/// The clock a fetcher reads (the real one, or a test's).
pub type Clock<'a> = &'a dyn Fn() -> Instant;

/// Fetches over our own protocol from `addr`; the chunks are checked on a thread of their
/// own (`verify`) while the next ones arrive.
pub fn run(ctx: &DownloadCtx, addr: SocketAddr, tx: &Sender<super::ctx::Arrival>) -> SourceEnd {
    let mut conn = match Conn::connect(addr, ctx.io_timeout) {
        Ok(conn) => conn,
        Err(e) => return SourceEnd::Failed(format!("cannot connect: {e}")),
    };
    let _registered = ctx.conns.register(conn.stream());
    let peer = match conn.call(&PeerRequest::Hello { abilities: Abilities::ALL }) {
        Ok(PeerReply::Hello { abilities }) => abilities,
        Ok(PeerReply::Error { reason }) => return SourceEnd::Failed(reason),
        Ok(other) => return SourceEnd::Failed(format!("answered hello with a '{}' reply", other.kind())),
        Err(e) => return e.into(),
    };
    verify::with_checker(ctx, addr, tx, |check, bad| {
        Fetcher::new(ctx, conn, peer, check, bad, &Instant::now).run()
    })
}

/// How a source is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Chunk requests up to the budget's depth (two 1 MiB chunks, so the link never idles
    /// between chunks; as many bytes' worth of smaller ones), and for a source still downloading a have
    /// request among them when news is due (section 4.1).
    Pipelined,
    /// Its upload line was full (`busy`): nothing more is asked until the replies to what
    /// was asked are read, ...
    Leaving,
    /// ... then one chunk at a time, each in a place in its line that a turn request waits
    /// for (section 4.4), for the rest of the download.
    InTurns,
}

impl State {
    /// After a `busy` reply to a chunk request: a source that takes turns is asked in
    /// turns. `None` if it may not say that: it takes no turns, or it was asked for the
    /// chunk in a place in its line that had come.
    fn busy(self, takes_turns: bool) -> Option<State> {
        match self {
            State::Pipelined | State::Leaving if takes_turns => Some(State::Leaving),
            _ => None,
        }
    }

    /// Once every reply asked for was read.
    fn drained(self) -> State {
        match self {
            State::Leaving => State::InTurns,
            other => other,
        }
    }
}

/// A reply a source connection waits for, in the order asked.
#[derive(Debug, PartialEq, Eq)]
enum Pending {
    Chunk(u32),
    Have,
}

/// Whether to ask a source that is not complete what it has now, with `chunks` of `depth`
/// chunk requests in flight and `since` the last have-set: when its pipe cannot be filled
/// (after each chunk that still flows; every [`IDLE_REFRESH`] when none flows), and at
/// least every [`REFRESH`].
fn wants_news(chunks: usize, depth: usize, since: Duration) -> bool {
    (chunks < depth && (chunks > 0 || since > IDLE_REFRESH)) || since > REFRESH
}

struct Fetcher<'a, S: Socket> {
    ctx: &'a DownloadCtx,
    addr: SocketAddr,
    conn: Conn<S>,
    clock: Clock<'a>,
    state: State,
    /// Replies still to read, in the order asked (empty in turns).
    pending: VecDeque<Pending>,
    /// It said it has every chunk (then it is never asked again).
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
    /// What the source said it does (its answer to our `hello`).
    peer: Abilities,
}

impl<'a, S: Socket> Fetcher<'a, S> {
    fn new(
        ctx: &'a DownloadCtx,
        conn: Conn<S>,
        peer: Abilities,
        check: Sender<Unchecked>,
        bad: &'a AtomicU32,
        clock: Clock<'a>,
    ) -> Self {
        Fetcher {
            ctx,
            addr: conn.peer_addr(),
            conn,
            clock,
            state: State::Pipelined,
            pending: VecDeque::new(),
            complete: false,
            last_have: clock(),
            refused: 0,
            check,
            bad,
            shunned: Shunned::default(),
            peer,
        }
    }

    /// Asks what the source has, then fetches until nothing is left to fetch there.
    fn run(&mut self) -> SourceEnd {
        if let Err(end) = self.refresh_have() {
            return end;
        }
        loop {
            if self.ctx.cancel.load(Ordering::Relaxed) || self.bad.load(Ordering::Relaxed) >= MAX_BAD_CHUNKS {
                return SourceEnd::Finished; // `run` reports a banned source as banned
            }
            let pass = match self.state {
                State::Pipelined | State::Leaving => self.pipeline_pass(),
                State::InTurns => self.turn_pass(),
            };
            if let Err(end) = pass {
                return end;
            }
        }
    }

    /// Fills the pipeline (chunk requests and, when news is due, a have request share
    /// it: news of what the source has arrives while chunks still flow), then reads one
    /// reply.
    fn pipeline_pass(&mut self) -> Result<(), SourceEnd> {
        if self.state == State::Pipelined {
            while self.chunks_asked() < self.ctx.budget.native_depth {
                let Some(i) = self.ctx.sched.lock().assign_at(self.addr, (self.clock)()) else { break };
                let req = PeerRequest::Chunk { content_id: self.ctx.store.content_id, index: i };
                self.conn.send_request(&req)?;
                self.pending.push_back(Pending::Chunk(i));
            }
            let since = (self.clock)().saturating_duration_since(self.last_have);
            if !self.complete
                && !self.pending.contains(&Pending::Have)
                && wants_news(self.chunks_asked(), self.ctx.budget.native_depth, since)
            {
                self.conn.send_request(&self.have_request())?;
                self.pending.push_back(Pending::Have);
            }
        }
        match self.pending.pop_front() {
            Some(Pending::Chunk(i)) => self.receive(i),
            Some(Pending::Have) => {
                let reply = self.conn.read_reply::<PeerReply>()?;
                self.apply_have(reply)
            }
            None if self.state == State::Leaving => {
                self.state = self.state.drained();
                Ok(())
            }
            None if self.ctx.sched.lock().is_done() => Err(SourceEnd::Finished),
            None => {
                thread::sleep(IDLE_POLL);
                Ok(())
            }
        }
    }

    fn chunks_asked(&self) -> usize {
        self.pending.iter().filter(|p| matches!(p, Pending::Chunk(_))).count()
    }

    /// In turns: one turn when the source has a chunk we could ask for; else hear what it
    /// has now and then.
    fn turn_pass(&mut self) -> Result<(), SourceEnd> {
        let now = (self.clock)();
        let useful = {
            let sched = self.ctx.sched.lock();
            if sched.is_done() {
                return Err(SourceEnd::Finished);
            }
            sched.has_unfetched_at(self.addr, now)
        };
        if useful {
            self.take_turn()
        } else if !self.complete && now.saturating_duration_since(self.last_have) > IDLE_REFRESH {
            self.refresh_have()
        } else {
            thread::sleep(IDLE_POLL);
            Ok(())
        }
    }

    /// One turn: waits for the place (hearing what the source has every couple of seconds
    /// meanwhile, see `later`), then asks for the rarest chunk the source has then that no
    /// other source is sending (unless overdue: no end game in turns), or gives the place
    /// up with a have request when it has none we need. No chunk is held while waiting, so
    /// other sources may send any of them meanwhile.
    fn take_turn(&mut self) -> Result<(), SourceEnd> {
        let content_id = self.ctx.store.content_id;
        loop {
            let req = PeerRequest::Turn { content_id, mine: Some(self.ctx.store.bitfield().to_hex()) };
            let reply: PeerReply = self.conn.call(&req)?;
            let later =
                matches!(reply, PeerReply::Have { later: true, .. } | PeerReply::Offer { later: true, .. });
            self.apply_have(reply)?;
            if !later {
                break;
            }
            // Not our place yet: keep it (by asking again) while the source has a chunk we
            // could ask for; else give it up.
            let keep = !self.ctx.cancel.load(Ordering::Relaxed)
                && self.ctx.sched.lock().has_unfetched_at(self.addr, (self.clock)());
            if !keep {
                return self.refresh_have();
            }
        }
        let picked = self.ctx.sched.lock().assign_unless_fetched_at(self.addr, (self.clock)());
        match picked {
            Some(i) => {
                self.conn.send_request(&PeerRequest::Chunk { content_id, index: i })?;
                self.receive(i)
            }
            None => {
                // What it has changed, or it said otherwise before.
                thread::sleep(PASS_PAUSE);
                self.refresh_have()
            }
        }
    }

    /// A have request that says what we have, so a seeder can offer what we lack.
    fn have_request(&self) -> PeerRequest {
        let store = &self.ctx.store;
        PeerRequest::Have { content_id: store.content_id, mine: Some(store.bitfield().to_hex()) }
    }

    /// Asks which chunks the source has and tells the scheduler.
    fn refresh_have(&mut self) -> Result<(), SourceEnd> {
        let reply = self.conn.call(&self.have_request())?;
        self.apply_have(reply)
    }

    fn apply_have(&mut self, reply: PeerReply) -> Result<(), SourceEnd> {
        let store = &self.ctx.store;
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
        let now = (self.clock)();
        self.complete = have.is_none();
        self.last_have = now;
        let mut have = have;
        if let Some(b) = have.as_mut() {
            self.shunned.mask(b, now);
        }
        self.ctx.sched.lock().update_source(self.addr, have);
        Ok(())
    }

    /// Reads the answer to the request for chunk `i`.
    fn receive(&mut self, i: u32) -> Result<(), SourceEnd> {
        let m = &self.ctx.store.manifest;
        let idx = m.index(i).ok_or_else(|| SourceEnd::Failed(format!("chunk {i} out of range")))?;
        let len = match self.conn.read_reply::<PeerReply>()? {
            PeerReply::Chunk { index, len } if index == i && len as usize == m.chunk_len(idx) => len as usize,
            PeerReply::Chunk { index, len } => {
                return Err(SourceEnd::Failed(format!(
                    "sent chunk {index} of {len} bytes when asked for chunk {i}"
                )))
            }
            PeerReply::Busy { index } if index == i => {
                // Its upload line is full: another source may send the chunk, and from now
                // on we wait for places in its line.
                self.ctx.sched.lock().release(self.addr, i);
                return match self.state.busy(self.peer.turns) {
                    Some(next) => {
                        self.state = next;
                        Ok(())
                    }
                    None => Err(SourceEnd::Lying("said 'busy' where the protocol does not allow it".into())),
                };
            }
            PeerReply::Elsewhere { index } if index == i => {
                // A super-seeding peer offers it to another downloader now (its new offer
                // comes with the next have request, which goes out at once): another source
                // sends it.
                let now = (self.clock)();
                let mut sched = self.ctx.sched.lock();
                sched.release(self.addr, i);
                sched.source_lacks(self.addr, i);
                self.shunned.add(i, now);
                self.last_have = now.checked_sub(REFRESH).unwrap_or(self.last_have);
                return Ok(());
            }
            PeerReply::Error { reason } => {
                debug!("{}: {reason}", self.addr);
                self.ctx.sched.lock().release(self.addr, i);
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
        let mut buf = self.ctx.pool.get();
        buf.resize(len, 0);
        for slice in buf.chunks_mut(SLICE) {
            self.conn.read_raw(slice)?;
            self.ctx.received.fetch_add(slice.len() as u64, Ordering::Relaxed);
        }
        self.check.send(Unchecked { index: idx, buf }).map_err(|_| SourceEnd::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk_store::ChunkStore;
    use crate::download::ctx::BufferPool;
    use crate::download::scheduler::Scheduler;
    use crate::manifest::hash_file;
    use crate::wire::frame::read_frame;
    use crate::wire::mem::MemSocket;
    use crate::wire::{decode_request, encode_reply, MAX_CONTROL_FRAME};
    use crossbeam_channel::bounded;
    use crossbeam_channel::Receiver;
    use parking_lot::Mutex;
    use std::io::Cursor;
    use std::sync::Arc;

    /// A download of a one-chunk file that has nothing yet.
    fn one_chunk() -> (tempfile::TempDir, DownloadCtx, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.bin");
        let data: Vec<u8> = (0..300_000).map(|i| (i % 249) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let m = hash_file(&path, "s.bin", false).unwrap();
        let (store, _) = ChunkStore::open(&dir.path().join("chunks"), m).unwrap();
        let sched = Scheduler::new(1, &store.bitfield());
        let ctx = DownloadCtx {
            store: Arc::new(store),
            sched: Mutex::new(sched),
            cancel: Default::default(),
            pool: BufferPool::new(2, 1 << 20),
            io_timeout: Duration::from_secs(1),
            received: Default::default(),
            peer_id: [0; 20],
            direct: Mutex::new(Vec::new()),
            dht: None,
            budget: crate::download::budget::Budget::for_piece(1 << 20),
            web_seeds: Vec::new(),
            pex: Mutex::new(Vec::new()),
            book: Default::default(),
            encryption: Default::default(),
            uploads: None,
            conns: Default::default(),
        };
        (dir, ctx, data)
    }

    /// A scripted source: its replies, in order, each with the raw bytes that follow it.
    fn script(replies: &[(PeerReply, &[u8])]) -> MemSocket {
        let mut input = Vec::new();
        for (reply, raw) in replies {
            encode_reply(&mut input, reply);
            input.extend_from_slice(raw);
        }
        MemSocket::new(input)
    }

    /// What the fetcher asked, in order.
    fn asked(socket: &MemSocket) -> Vec<PeerRequest> {
        let written = socket.written();
        let mut out = Cursor::new(&written[..]);
        let mut reqs = Vec::new();
        while (out.position() as usize) < written.len() {
            let mut body = Vec::new();
            read_frame(&mut out, &mut body, MAX_CONTROL_FRAME).unwrap();
            reqs.push(decode_request(&body).unwrap());
        }
        reqs
    }

    /// Runs a fetcher (abilities `peer`, a clock that stands still) against `socket` until
    /// it ends or `done` says so (then the download is cancelled). Returns how it ended,
    /// its state, and the chunks it passed to the checker.
    fn fetch(
        ctx: &DownloadCtx,
        socket: &MemSocket,
        peer: Abilities,
        done: impl Fn(&Receiver<Unchecked>, &MemSocket) -> bool + Sync,
    ) -> (SourceEnd, State, Vec<u32>) {
        let (check, unchecked) = bounded(4);
        let bad = AtomicU32::new(0);
        let t0 = Instant::now();
        let clock = move || t0;
        let conn = Conn::over(socket.clone(), "127.0.0.8:5000".parse().unwrap(), ctx.io_timeout).unwrap();
        let mut fetcher = Fetcher::new(ctx, conn, peer, check, &bad, &clock);
        let ended = std::sync::atomic::AtomicBool::new(false);
        let end = thread::scope(|s| {
            let watcher = s.spawn(|| {
                let give_up = Instant::now() + Duration::from_secs(10);
                while !ended.load(Ordering::Relaxed) && !done(&unchecked, socket) && Instant::now() < give_up
                {
                    thread::sleep(Duration::from_millis(2));
                }
                ctx.cancel.store(true, Ordering::Relaxed);
            });
            let end = fetcher.run();
            ended.store(true, Ordering::Relaxed);
            watcher.join().unwrap();
            end
        });
        let got = unchecked.try_iter().map(|u| u.index.get()).collect();
        (end, fetcher.state, got)
    }

    fn chunk_reply(data: &[u8]) -> PeerReply {
        PeerReply::Chunk { index: 0, len: data.len() as u32 }
    }

    const SEEDER: PeerReply = PeerReply::Have { complete: true, bitfield: String::new(), later: false };

    fn turn_req(ctx: &DownloadCtx) -> PeerRequest {
        PeerRequest::Turn { content_id: ctx.store.content_id, mine: Some("00".into()) }
    }

    fn chunk_req(ctx: &DownloadCtx) -> PeerRequest {
        PeerRequest::Chunk { content_id: ctx.store.content_id, index: 0 }
    }

    fn have_req(ctx: &DownloadCtx) -> PeerRequest {
        PeerRequest::Have { content_id: ctx.store.content_id, mine: Some("00".into()) }
    }

    #[test]
    fn a_seeder_is_asked_for_chunks_and_never_again_what_it_has() {
        let (_dir, ctx, data) = one_chunk();
        let socket = script(&[(SEEDER, &[]), (chunk_reply(&data), &data)]);
        let (end, state, got) = fetch(&ctx, &socket, Abilities::ALL, |rx, _| !rx.is_empty());
        assert!(matches!(end, SourceEnd::Finished), "{end}");
        assert_eq!((state, got), (State::Pipelined, vec![0]));
        assert_eq!(asked(&socket), vec![have_req(&ctx), chunk_req(&ctx)]);
    }

    #[test]
    fn a_busy_source_is_asked_in_turns_and_the_chunk_is_named_when_the_place_comes() {
        let (_dir, ctx, data) = one_chunk();
        let later = PeerReply::Have { complete: true, bitfield: String::new(), later: true };
        let socket = script(&[
            (SEEDER, &[]),
            (PeerReply::Busy { index: 0 }, &[]),
            (later, &[]),
            (SEEDER, &[]),
            (chunk_reply(&data), &data),
        ]);
        let (end, state, got) = fetch(&ctx, &socket, Abilities::ALL, |rx, _| !rx.is_empty());
        assert!(matches!(end, SourceEnd::Finished), "{end}");
        assert_eq!((state, got), (State::InTurns, vec![0]));
        // The place had not come at the first turn request: asked again, it kept it; the
        // chunk was asked for only once the place came.
        let want = vec![have_req(&ctx), chunk_req(&ctx), turn_req(&ctx), turn_req(&ctx), chunk_req(&ctx)];
        assert_eq!(asked(&socket), want);
    }

    #[test]
    fn busy_in_a_place_that_came_or_from_a_source_without_turns_drops_the_source() {
        let (_dir, ctx, _) = one_chunk();
        let busy = PeerReply::Busy { index: 0 };
        let socket = script(&[(SEEDER, &[]), (busy.clone(), &[]), (SEEDER, &[]), (busy.clone(), &[])]);
        let (end, state, _) = fetch(&ctx, &socket, Abilities::ALL, |_, _| false);
        assert!(matches!(end, SourceEnd::Lying(_)), "{end}");
        assert_eq!(state, State::InTurns);
        assert_eq!(asked(&socket).len(), 4, "have, chunk, turn, chunk");

        let (_dir, ctx, _) = one_chunk();
        let socket = script(&[(SEEDER, &[]), (busy, &[])]);
        let (end, state, _) = fetch(&ctx, &socket, Abilities { offers: true, turns: false }, |_, _| false);
        assert!(matches!(end, SourceEnd::Lying(_)), "{end}");
        assert_eq!(state, State::Pipelined);
    }

    #[test]
    fn a_chunk_offered_elsewhere_is_not_asked_of_the_source_again_while_shunned() {
        let (_dir, ctx, _) = one_chunk();
        let partial = |bits: &str| PeerReply::Have { complete: false, bitfield: bits.into(), later: false };
        let offer = PeerReply::Offer { bitfield: "80".into(), later: false };
        let socket = script(&[(partial("80"), &[]), (PeerReply::Elsewhere { index: 0 }, &[]), (offer, &[])]);
        // Three requests: what it has, the chunk, and at once what it offers now.
        let (end, state, _) = fetch(&ctx, &socket, Abilities::ALL, |_, s| asked(s).len() >= 3);
        assert!(matches!(end, SourceEnd::Finished), "{end}");
        assert_eq!(state, State::Pipelined);
        assert_eq!(asked(&socket), vec![have_req(&ctx), chunk_req(&ctx), have_req(&ctx)]);
        // It offers the chunk again within SHUN: another source is asked for it meanwhile.
        assert!(!ctx.sched.lock().has_unfetched_at("127.0.0.8:5000".parse().unwrap(), Instant::now()));
    }

    #[test]
    fn a_source_that_refuses_what_it_claimed_is_dropped_on_the_third_refusal() {
        let (_dir, ctx, _) = one_chunk();
        let no = (PeerReply::Error { reason: "not here".into() }, &[][..]);
        let socket = script(&[(SEEDER, &[]), no.clone(), no.clone(), no]);
        let (end, _, got) = fetch(&ctx, &socket, Abilities::ALL, |_, _| false);
        assert!(matches!(end, SourceEnd::Lying(ref why) if why.contains("(3)")), "{end}");
        assert!(got.is_empty());
    }

    #[test]
    fn news_is_asked_when_the_pipe_is_not_full_and_at_least_every_refresh() {
        assert!(wants_news(1, 2, Duration::ZERO), "after a chunk, with the pipe not full");
        assert!(!wants_news(2, 2, REFRESH), "a full pipe: not yet");
        assert!(wants_news(2, 2, REFRESH + Duration::from_millis(1)));
        assert!(!wants_news(0, 2, IDLE_REFRESH), "nothing flows: every IDLE_REFRESH");
        assert!(wants_news(0, 2, IDLE_REFRESH + Duration::from_millis(1)));
    }

    #[test]
    fn the_refresh_constants_keep_their_order() {
        // PROTOCOL.md section 5: a shunned chunk is shunned for less than a refresh; an
        // idle source is asked sooner; a turn's pause is shorter than a poll.
        assert!(crate::download::shunned::SHUN < REFRESH);
        assert!(IDLE_REFRESH < REFRESH && IDLE_POLL < IDLE_REFRESH && PASS_PAUSE < IDLE_POLL);
    }
}
