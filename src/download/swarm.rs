//! The source threads and the reassembler of one download, and the roster that decides
//! which sources run: at most [`MAX_SOURCES`] at once and [`MAX_STARTS_PER_SEC`] new ones a
//! second, none banned, failed ones retried after their back-off (see `backoff`).

use super::backoff::Backoff;
use super::budget::Budget;
use super::context::{candidates, Context, Options};
use super::ctx::{Arrival, BufferPool, DownloadCtx, SourceEnd};
use super::error::disk;
use super::error::DownloadError;
use super::feed::PeerFeed;
use super::reassembler::{self, Assembly};
use super::scheduler::Scheduler;
use super::web_seed::{self, WebSeed, MAX_WEB_SEEDS};
use super::{bt_source, source};
use crate::chunk_store::ChunkStore;
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use log::{info, warn};
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use super::budget::MAX_SOURCES;
/// Bytes the sources must send within the stall time-out for a download to go on.
pub const STALL_PROGRESS: u64 = 64 * 1024;
/// New source connections a second, at most: the DHT or a magnet link may name hundreds
/// of addresses of a third party, which we must not flood.
pub const MAX_STARTS_PER_SEC: usize = 16;

/// Which sources run, which are banned for this download, which wait to be retried.
pub struct Roster {
    /// Sources at once, at most ([`MAX_SOURCES`], fewer for big pieces: `budget`).
    most: usize,
    active: HashSet<SocketAddr>,
    banned: HashSet<SocketAddr>,
    backoff: Backoff,
    /// When the sources of the last second started.
    starts: VecDeque<Instant>,
}

impl Default for Roster {
    fn default() -> Self {
        Roster::with_most(MAX_SOURCES)
    }
}

impl Roster {
    pub fn with_most(most: usize) -> Roster {
        Roster {
            most,
            active: HashSet::new(),
            banned: HashSet::new(),
            backoff: Backoff::default(),
            starts: VecDeque::new(),
        }
    }

    /// Whether a thread for `addr` may start now (`me` is this peer).
    pub fn admits(&self, addr: SocketAddr, me: Option<SocketAddr>, now: Instant) -> bool {
        let recent =
            self.starts.iter().filter(|t| now.saturating_duration_since(**t) < Duration::from_secs(1));
        !me.is_some_and(|me| is_me(addr, me))
            && !self.active.contains(&addr)
            && !self.banned.contains(&addr)
            && self.backoff.ready(addr, now)
            && self.active.len() < self.most
            && recent.count() < MAX_STARTS_PER_SEC
    }

    pub fn started(&mut self, addr: SocketAddr, now: Instant) {
        self.active.insert(addr);
        while self.starts.front().is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(1))
        {
            self.starts.pop_front();
        }
        self.starts.push_back(now);
    }

    /// Records how a source thread ended.
    pub fn ended(&mut self, addr: SocketAddr, end: &SourceEnd, now: Instant) {
        self.active.remove(&addr);
        match end {
            SourceEnd::Finished => self.backoff.served(addr),
            SourceEnd::Banned(_) | SourceEnd::Lying(_) => {
                self.banned.insert(addr);
            }
            SourceEnd::Failed(_) => self.backoff.failed(addr, now),
        }
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }
}

/// Whether `addr` is this peer: its own address, or (when it listens on every interface) a
/// loopback address with its port, as the DHT or a magnet link may name it.
fn is_me(addr: SocketAddr, me: SocketAddr) -> bool {
    addr == me
        || (addr.port() == me.port()
            && (me.ip().is_unspecified() || me.ip().is_loopback())
            && addr.ip().is_loopback())
}

/// The source threads and the reassembler of one download.
pub(super) struct Swarm<'a> {
    ctx: &'a Context<'a>,
    shared: Arc<DownloadCtx>,
    from: Option<SocketAddr>,
    opts: &'a Options,
    started: Instant,
    /// The tracker failed once already (said once, not every second).
    tracker_failed: std::cell::Cell<bool>,
    /// The DHT's peers for this download, when the DHT is on.
    dht: Option<&'a PeerFeed>,
}

impl<'a> Swarm<'a> {
    pub(super) fn new(
        ctx: &'a Context<'a>,
        store: Arc<ChunkStore>,
        from: Option<SocketAddr>,
        opts: &'a Options,
        started: Instant,
        seed: Option<u64>,
        dht: Option<&'a PeerFeed>,
    ) -> Self {
        let mut sched = Scheduler::new(store.manifest.chunk_count(), &store.bitfield());
        if let Some(seed) = seed {
            sched = sched.with_random_picks(seed);
        }
        let piece = store.manifest.piece_length;
        let budget = Budget::for_piece(piece);
        let shared = DownloadCtx {
            store,
            sched: Mutex::new(sched),
            cancel: Default::default(),
            pool: BufferPool::new(budget.pool, piece as usize),
            io_timeout: opts.io_timeout,
            received: Default::default(),
            peer_id: crate::bt::new_peer_id(),
            direct: Mutex::new(opts.peers.clone()),
            dht: ctx.dht.cloned(),
            budget,
            web_seeds: web_seeds(&opts.web_seeds),
            pex: Mutex::new(Vec::new()),
            book: ctx.uploads.as_ref().map_or_else(Default::default, |u| Arc::clone(&u.book)),
            encryption: opts.encryption,
            uploads: ctx.uploads.clone(),
            conns: Default::default(),
        };
        Swarm { ctx, shared: Arc::new(shared), from, opts, started, tracker_failed: Default::default(), dht }
    }

    /// Fetches until the file is complete, or until the sources together sent less than
    /// [`STALL_PROGRESS`] bytes in the stall time-out (a source that drips bytes, or that
    /// only holds a connection open, keeps nothing alive).
    pub(super) fn run(self, mut initial: Vec<SocketAddr>) -> Result<Assembly, DownloadError> {
        initial.extend(self.shared.web_seeds.iter().map(|w| w.addr));
        let (tx, rx) = bounded(self.shared.budget.queue);
        let running = Arc::new(AtomicUsize::new(0));
        let reassembler = self.spawn_reassembler(rx, Arc::clone(&running))?;
        let (ev_tx, ev_rx) = unbounded::<(SocketAddr, SourceEnd)>();
        let mut roster = Roster::with_most(self.shared.budget.sources);
        let mut candidates = initial;
        let mut dht_seen = 0;
        let mut pex_seen = 0;
        let mut last_refresh = Instant::now();
        let mut last_progress = (0u64, Instant::now());
        let stalled = loop {
            // The DHT's new peers at once; all of them again with every refresh.
            if let Some(feed) = self.dht {
                let fresh = feed.new_since(&mut dht_seen);
                self.greet_in_bittorrent(&fresh);
                candidates.extend(fresh);
            }
            // Peer exchange's new peers at once too (BitTorrent clients, greeted as such),
            // those our server's connections heard of included.
            self.shared.add_pex(&self.shared.book.take_heard(self.shared.store.content_id));
            let fresh: Vec<SocketAddr> = self.shared.pex.lock().get(pex_seen..).unwrap_or_default().to_vec();
            if !fresh.is_empty() {
                pex_seen += fresh.len();
                info!("Peer exchange named {} new peer(s)", fresh.len());
                self.greet_in_bittorrent(&fresh);
                candidates.extend(fresh);
            }
            for addr in candidates.drain(..) {
                let now = Instant::now();
                if roster.admits(addr, self.ctx.tracker.me().or(self.ctx.me), now)
                    && self.spawn_source(addr, &tx, &ev_tx)
                {
                    roster.started(addr, now);
                }
            }
            running.store(roster.active(), Ordering::Relaxed);
            if reassembler.is_finished() {
                break false;
            }
            select! {
                recv(ev_rx) -> ev => if let Ok((addr, end)) = ev {
                    match end {
                        SourceEnd::Finished => {}
                        SourceEnd::Failed(_) => info!("source {addr} left: {end}"),
                        SourceEnd::Banned(_) | SourceEnd::Lying(_) => warn!("source {addr} {end}"),
                    }
                    roster.ended(addr, &end, Instant::now());
                },
                default(Duration::from_millis(200)) => {}
            }
            let received = self.shared.received.load(Ordering::Relaxed);
            if received >= last_progress.0 + STALL_PROGRESS {
                last_progress = (received, Instant::now());
            }
            if last_progress.1.elapsed() > self.opts.stall_timeout {
                break true;
            }
            if self.opts.stopped() {
                break false;
            }
            if last_refresh.elapsed() >= Duration::from_secs(1) {
                last_refresh = Instant::now();
                candidates = self.refresh();
            }
        };
        self.shared.cancel.store(true, Ordering::SeqCst);
        if self.opts.stopped() {
            self.shared.conns.close_all();
        }
        drop(tx);
        self.conclude(reassembler, stalled)
    }

    fn spawn_reassembler(
        &self,
        rx: Receiver<Arrival>,
        running: Arc<AtomicUsize>,
    ) -> Result<JoinHandle<io::Result<Assembly>>, DownloadError> {
        let store = Arc::clone(&self.shared.store);
        let (progress, started, pool) = (self.opts.progress.clone(), self.started, self.shared.pool.clone());
        thread::Builder::new()
            .name("reassembler".into())
            .spawn(move || reassembler::run(&store, rx, pool, progress, running, started))
            .map_err(|err| DownloadError::Thread { what: "reassembler", err })
    }

    /// Starts a thread fetching from `addr`; false if no thread could be made.
    fn spawn_source(
        &self,
        addr: SocketAddr,
        tx: &Sender<Arrival>,
        ev_tx: &Sender<(SocketAddr, SourceEnd)>,
    ) -> bool {
        let (shared, tx, ev_tx) = (Arc::clone(&self.shared), tx.clone(), ev_tx.clone());
        thread::Builder::new()
            .name(format!("source-{addr}"))
            .spawn(move || {
                let end = fetch_from(&shared, addr, &tx);
                let _ = ev_tx.send((addr, end));
            })
            .is_ok()
    }

    /// Waits for the reassembler and says whether the file is complete.
    fn conclude(
        &self,
        reassembler: JoinHandle<io::Result<Assembly>>,
        stalled: bool,
    ) -> Result<Assembly, DownloadError> {
        let store = &self.shared.store;
        let data = store.data_path();
        let joined = reassembler.join().map_err(|_| DownloadError::Crashed("reassembler"))?;
        let assembly = joined.map_err(disk(data))?;
        if stalled || !assembly.complete {
            let (have, total) = (store.count(), store.manifest.chunk_count());
            let name = store.manifest.name.clone();
            if !stalled && self.opts.stopped() {
                return Err(DownloadError::Stopped { name, have, total });
            }
            return Err(DownloadError::Stalled { name, have, total });
        }
        Ok(assembly)
    }

    /// Everyone who may help now: the tracker's sources (it may be down: then the ones we
    /// have), the ones given directly, and every peer the DHT named so far. The roster
    /// decides which of them start, so one that failed or found no slot free comes back.
    fn refresh(&self) -> Vec<SocketAddr> {
        let store = &self.shared.store;
        // A private torrent's peers come only from its own trackers (in the feed).
        let ours = if store.manifest.private {
            Ok(Default::default())
        } else {
            self.ctx.tracker.start_download(store.content_id)
        };
        let mut found = match ours {
            Ok(s) => {
                self.tracker_failed.set(false);
                self.greet_in_bittorrent(&s.bt_peers);
                candidates(self.from, s)
            }
            Err(e) => {
                if !self.tracker_failed.replace(true) {
                    warn!("no new sources from the tracker ({e}); going on with the known ones");
                }
                Vec::new()
            }
        };
        found.extend(self.opts.peers.iter().copied());
        found.extend(self.shared.web_seeds.iter().map(|w| w.addr));
        found.extend(self.shared.pex.lock().iter().copied());
        let from_dht = self.dht.map(PeerFeed::known).unwrap_or_default();
        self.greet_in_bittorrent(&from_dht);
        found.extend(from_dht);
        found
    }

    /// Peers the DHT or the tracker's HTTP side named may be BitTorrent clients or
    /// p2p-share peers: they are greeted in BitTorrent, like peers given directly.
    fn greet_in_bittorrent(&self, peers: &[SocketAddr]) {
        if peers.is_empty() {
            return;
        }
        let mut direct = self.shared.direct.lock();
        for p in peers {
            if !direct.contains(p) {
                direct.push(*p);
            }
        }
    }
}

/// The web seeds this side can use (`http://`, resolved), one per server, at most
/// [`MAX_WEB_SEEDS`].
fn web_seeds(urls: &[String]) -> Vec<WebSeed> {
    let mut out: Vec<WebSeed> = Vec::new();
    for url in urls {
        match WebSeed::parse(url) {
            Some(w) if out.len() < MAX_WEB_SEEDS && !out.iter().any(|o| o.addr == w.addr) => out.push(w),
            Some(_) => {}
            None => warn!(
                "web seed {}: only http:// URLs of a host that resolves are used",
                crate::text::one_line(url)
            ),
        }
    }
    out
}

/// Fetches from `addr` until nothing is left to fetch there; its chunks go back to the
/// others when it ends. Sources from the tracker are p2p-share peers and speak our
/// protocol. A source given directly (`--peer`, `x.pe`) may be a BitTorrent client: it is
/// greeted in BitTorrent, and fetched from over BitTorrent unless its peer id says it is a
/// p2p-share peer (`PROTOCOL.md` section 6).
fn fetch_from(ctx: &DownloadCtx, addr: SocketAddr, tx: &Sender<Arrival>) -> SourceEnd {
    let end = if let Some(seed) = ctx.web_seeds.iter().find(|w| w.addr == addr) {
        web_seed::run(ctx, seed, tx)
    } else if ctx.direct.lock().contains(&addr) {
        bt_source::run(ctx, addr, tx).unwrap_or_else(|| source::run(ctx, addr, tx))
    } else {
        source::run(ctx, addr, tx)
    };
    ctx.sched.lock().remove_source(addr);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn roster_skips_self_running_banned_and_resting_sources() {
        let mut r = Roster::default();
        let now = Instant::now();
        assert!(!r.admits(addr(1), Some(addr(1)), now), "never fetch from ourselves");
        assert!(r.admits(addr(2), Some(addr(1)), now));
        r.started(addr(2), now);
        assert!(!r.admits(addr(2), None, now), "one thread per source");
        r.ended(addr(2), &SourceEnd::Failed("gone".into()), now);
        assert!(!r.admits(addr(2), None, now + Duration::from_secs(1)), "a failed source rests");
        assert!(r.admits(addr(2), None, now + super::super::backoff::FIRST), "then it is tried again");
        r.started(addr(3), now);
        r.ended(addr(3), &SourceEnd::Banned(3), now);
        assert!(!r.admits(addr(3), None, now + Duration::from_secs(3600)), "a banned source never returns");
    }

    #[test]
    fn roster_caps_running_sources() {
        let mut r = Roster::default();
        let now = Instant::now();
        for p in 0..MAX_SOURCES as u16 {
            let t = now + Duration::from_secs(u64::from(p)); // past the rate cap
            assert!(r.admits(addr(100 + p), None, t));
            r.started(addr(100 + p), t);
        }
        assert!(!r.admits(addr(9), None, now + Duration::from_secs(3600)));
        assert_eq!(r.active(), MAX_SOURCES);
    }

    #[test]
    fn roster_starts_at_most_so_many_sources_a_second() {
        let mut r = Roster::default();
        let now = Instant::now();
        let mut started = 0;
        for p in 0..300u16 {
            if r.admits(addr(1000 + p), None, now) {
                r.started(addr(1000 + p), now);
                r.ended(addr(1000 + p), &SourceEnd::Failed("refused".into()), now);
                started += 1;
            }
        }
        assert_eq!(started, MAX_STARTS_PER_SEC, "300 addresses named at once: 16 tried in the first second");
        assert!(r.admits(addr(2000), None, now + Duration::from_secs(1)));
    }
}
