//! Downloading one file from every peer that can help at once.
//!
//! Anatomy of a download: resolve the name at the tracker; tell it we download (it answers
//! with the holders and the other downloaders); fetch `file.ini` from a source and check
//! its SHA-1 against the content id; open the partial state (resuming verified chunks);
//! start one [`source`] thread per peer; the [`reassembler`] writes chunks in place; every
//! second ask the tracker again and add new sources; at the end check the whole file's
//! SHA-1 and move it atomically into `DIR/files`.

pub mod reassembler;
pub mod scheduler;
pub mod source;

use crate::chunk_store::ChunkStore;
use crate::hash::{ContentId, Sha1Hash};
use crate::manifest::{Manifest, MAX_MANIFEST_BYTES};
use crate::names::{validate_name, BadName};
use crate::peer::manifest_cache::{ManifestCache, Stamp};
use crate::peer::shares::Shares;
use crate::peer::tracker_client::{Sources, TrackerClient, TrackerError};
use crate::wire::conn::Conn;
use crate::wire::peer_msg::{PeerReply, PeerRequest};
use crate::wire::tracker_msg::{FileInfo, FileListing};
use crossbeam_channel::{bounded, select, unbounded};
use log::{info, warn};
use parking_lot::Mutex;
use reassembler::{Assembly, ProgressFn};
use scheduler::Scheduler;
use source::{BufferPool, SourceEnd};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Most sources one download fetches from at once (one thread each).
pub const MAX_SOURCES: usize = 32;

/// What a download needs from its peer.
pub struct Context<'a> {
    pub tracker: &'a TrackerClient,
    pub shares: &'a Arc<Shares>,
    pub cache: &'a ManifestCache,
    pub files_dir: &'a Path,
    pub chunks_dir: &'a Path,
}

/// Knobs of a download.
#[derive(Clone)]
pub struct Options {
    /// Read/write time-out on a source; a source silent this long loses its chunks.
    pub io_timeout: Duration,
    /// Give up when no chunk arrived for this long and no source is left.
    pub stall_timeout: Duration,
    pub progress: Option<ProgressFn>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            io_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            progress: None,
        }
    }
}

/// A finished download.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub content_id: ContentId,
    pub path: PathBuf,
    pub size: u64,
    pub took: Duration,
    pub chunks: u32,
    /// Chunks already in place when the download started (resumed).
    pub resumed: u32,
    pub assembly: Assembly,
}

/// Why a download failed. The partial state stays on disk unless said otherwise.
#[derive(Debug)]
pub enum DownloadError {
    Tracker(TrackerError),
    BadName(BadName),
    NotFound(String),
    Ambiguous { name: String, choices: Vec<FileListing> },
    UnknownSource(String),
    NoManifest { id: ContentId, why: String },
    Disk { path: PathBuf, err: io::Error },
    Stalled { name: String, have: u32, total: u32 },
    WholeHashMismatch { name: String, want: Sha1Hash, got: Sha1Hash },
    Exists(PathBuf),
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownloadError::Tracker(e) => write!(f, "{e}"),
            DownloadError::BadName(e) => write!(f, "{e}"),
            DownloadError::NotFound(name) => write!(f, "no peer shares '{name}'"),
            DownloadError::Ambiguous { name, choices } => {
                let ids: Vec<String> = choices.iter().map(|c| format!("{} ({} bytes)", c.info.content_id, c.info.size)).collect();
                write!(f, "several different files are named '{name}'; download one by id: {}", ids.join(", "))
            }
            DownloadError::UnknownSource(s) => write!(f, "'{s}' is not a peer that has this file"),
            DownloadError::NoManifest { id, why } => write!(f, "could not get the manifest of {id} from any source: {why}"),
            DownloadError::Disk { path, err } => write!(f, "{}: {err} (partial download kept)", path.display()),
            DownloadError::Stalled { name, have, total } => write!(
                f,
                "download of '{name}' stalled: no source has the missing chunks ({have} of {total} kept; run the command again to resume)"
            ),
            DownloadError::WholeHashMismatch { name, want, got } => {
                write!(f, "'{name}' assembled but its SHA-1 is {got}, not {want}: the manifest lies")
            }
            DownloadError::Exists(path) => write!(f, "{} already exists with different content", path.display()),
        }
    }
}

impl std::error::Error for DownloadError {}

impl From<TrackerError> for DownloadError {
    fn from(e: TrackerError) -> Self {
        DownloadError::Tracker(e)
    }
}

fn disk(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
    move |err| DownloadError::Disk { path: path.to_path_buf(), err }
}

/// Downloads `target` (a file name, or a content id) into `DIR/files`. `from` (a port or
/// an address) is the first source, as in the original; otherwise every holder is one.
pub fn download(
    ctx: &Context,
    target: &str,
    from: Option<&str>,
    opts: &Options,
) -> Result<Report, DownloadError> {
    let started = Instant::now();
    let (listing, from) = resolve(ctx.tracker, target, from)?;
    let id = listing.info.content_id;
    let name = listing.info.name.clone();
    let dest = ctx.files_dir.join(&name);
    if let Some(s) = ctx.shares.get(&id).filter(|s| s.is_complete()) {
        info!("'{name}' is already here");
        return Ok(Report::already_here(&s.manifest, id, dest));
    }
    if dest.exists() {
        return Err(DownloadError::Exists(dest));
    }
    info!("Searching the file from active peers...");
    let sources = ctx.tracker.start_download(id)?;
    let late = !sources.downloaders.is_empty();
    let initial = candidates(from, sources);
    let result = fetch(ctx, &listing, from, initial, late, opts, started);
    if result.is_err() {
        ctx.shares.remove_partial(&id);
    }
    if let Err(e) = ctx.tracker.stop_download(id) {
        warn!("could not tell the tracker the download of '{name}' ended: {e}");
    }
    result
}

impl Report {
    fn already_here(m: &Manifest, content_id: ContentId, path: PathBuf) -> Report {
        let (name, size, chunks) = (m.name.clone(), m.size, m.chunk_count());
        Report {
            name,
            content_id,
            path,
            size,
            took: Duration::ZERO,
            chunks,
            resumed: chunks,
            assembly: Assembly::default(),
        }
    }
}

/// Finds the file the user means, and the `--from` peer among its holders.
fn resolve(
    tracker: &TrackerClient,
    target: &str,
    from: Option<&str>,
) -> Result<(FileListing, Option<SocketAddr>), DownloadError> {
    let mut found: Vec<FileListing> = if let Ok(id) = target.parse::<ContentId>() {
        let s = tracker.start_download(id)?;
        let file = s.file.ok_or_else(|| DownloadError::NotFound(target.to_string()))?;
        vec![FileListing { info: file, holders: s.holders }]
    } else {
        validate_name(target).map_err(DownloadError::BadName)?;
        tracker.search(target)?.into_iter().filter(|l| l.info.name == target).collect()
    };
    let from = match from {
        None => None,
        Some(f) => {
            let holders: Vec<SocketAddr> = found.iter().flat_map(|l| l.holders.iter().copied()).collect();
            let addr = match f.parse::<u16>() {
                Ok(port) => holders.iter().copied().find(|h| h.port() == port),
                Err(_) => f.parse::<SocketAddr>().ok(),
            };
            let addr = addr.ok_or_else(|| DownloadError::UnknownSource(f.to_string()))?;
            found.retain(|l| l.holders.contains(&addr));
            if found.is_empty() {
                return Err(DownloadError::UnknownSource(f.to_string()));
            }
            Some(addr)
        }
    };
    match found.len() {
        0 => Err(DownloadError::NotFound(target.to_string())),
        1 => Ok((found.remove(0), from)),
        _ => Err(DownloadError::Ambiguous { name: target.to_string(), choices: found }),
    }
}

fn fetch(
    ctx: &Context,
    listing: &FileListing,
    from: Option<SocketAddr>,
    initial: Vec<SocketAddr>,
    late: bool,
    opts: &Options,
    started: Instant,
) -> Result<Report, DownloadError> {
    let id = listing.info.content_id;
    let manifest = match local_manifest(ctx.chunks_dir, id) {
        Some(m) => m,
        None => manifest_until(ctx.tracker, id, from, initial.clone(), opts)?,
    };
    if manifest.name != listing.info.name || manifest.size != listing.info.size {
        let why = format!(
            "manifest names '{}' ({} bytes), the tracker '{}'",
            manifest.name, manifest.size, listing.info.name
        );
        return Err(DownloadError::NoManifest { id, why });
    }
    let (store, resumed) = ChunkStore::open(ctx.chunks_dir, manifest).map_err(disk(ctx.chunks_dir))?;
    if resumed > 0 {
        info!(
            "Resuming '{}': {resumed} of {} chunks already here",
            listing.info.name,
            store.manifest.chunk_count()
        );
    }
    let store = Arc::new(store);
    ctx.shares.add_partial(Arc::clone(&store));
    let seed = late.then(random_seed);
    let assembly = Swarm::new(ctx, Arc::clone(&store), from, opts, started, seed).run(initial)?;
    finish(ctx, &store, assembly, resumed, started)
}

/// A seed for a late joiner's random chunk picks (clock and process id; no crypto needed).
fn random_seed() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (std::process::id() as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A manifest saved by an earlier, interrupted download of `id`.
fn local_manifest(chunks_dir: &Path, id: ContentId) -> Option<Manifest> {
    let text = fs::read_to_string(chunks_dir.join(id.to_hex()).join("file.ini")).ok()?;
    (ContentId::of(text.as_bytes()) == id).then(|| Manifest::parse(&text).ok()).flatten()
}

/// Asks the sources for the manifest, and asks the tracker for sources again every second
/// (peers come back after a restart) until the stall time-out.
fn manifest_until(
    tracker: &TrackerClient,
    id: ContentId,
    from: Option<SocketAddr>,
    mut sources: Vec<SocketAddr>,
    opts: &Options,
) -> Result<Manifest, DownloadError> {
    let deadline = Instant::now() + opts.stall_timeout;
    loop {
        match remote_manifest(&sources, id, opts.io_timeout) {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_secs(1)),
        }
        if let Ok(s) = tracker.start_download(id) {
            sources = candidates(from, s);
        }
    }
}

/// The peers to fetch from: `--from` (or else every holder) and every other downloader.
fn candidates(from: Option<SocketAddr>, s: Sources) -> Vec<SocketAddr> {
    match from {
        Some(f) => std::iter::once(f).chain(s.downloaders).collect(),
        None => s.holders.into_iter().chain(s.downloaders).collect(),
    }
}

/// Fetches `file.ini` from the first source that gives one matching `id`.
fn remote_manifest(
    sources: &[SocketAddr],
    id: ContentId,
    timeout: Duration,
) -> Result<Manifest, DownloadError> {
    let mut why = String::from("no source");
    for addr in sources {
        match manifest_from(*addr, id, timeout) {
            Ok(m) => {
                info!("Received file.ini from {addr}");
                return Ok(m);
            }
            Err(e) => {
                warn!("no manifest from {addr}: {e}");
                why = format!("{addr}: {e}");
            }
        }
    }
    Err(DownloadError::NoManifest { id, why })
}

fn manifest_from(addr: SocketAddr, id: ContentId, timeout: Duration) -> Result<Manifest, String> {
    let mut conn = Conn::connect(addr, timeout).map_err(|e| e.to_string())?;
    let req = PeerRequest::Manifest { content_id: Some(id), name: None };
    let len = match conn.call(&req).map_err(|e| e.to_string())? {
        PeerReply::Manifest { content_id, len }
            if content_id == id && (len as usize) <= MAX_MANIFEST_BYTES =>
        {
            len
        }
        PeerReply::Manifest { content_id, len } => {
            return Err(format!("sent manifest {content_id} of {len} bytes"))
        }
        PeerReply::Error { reason } => return Err(reason),
        other => return Err(format!("answered with {other:?}")),
    };
    let mut text = vec![0u8; len as usize];
    conn.read_raw(&mut text).map_err(|e| e.to_string())?;
    if ContentId::of(&text) != id {
        return Err("its manifest does not match the file's id".into());
    }
    let text = String::from_utf8(text).map_err(|_| "its manifest is not UTF-8".to_string())?;
    Manifest::parse(&text).map_err(|e| e.to_string())
}

/// The source threads and the reassembler of one download.
struct Swarm<'a> {
    ctx: &'a Context<'a>,
    shared: Arc<source::Shared>,
    from: Option<SocketAddr>,
    opts: &'a Options,
    started: Instant,
}

impl<'a> Swarm<'a> {
    fn new(
        ctx: &'a Context<'a>,
        store: Arc<ChunkStore>,
        from: Option<SocketAddr>,
        opts: &'a Options,
        started: Instant,
        seed: Option<u64>,
    ) -> Self {
        let mut sched = Scheduler::new(store.manifest.chunk_count(), &store.bitfield());
        if let Some(seed) = seed {
            sched = sched.with_random_picks(seed);
        }
        let shared = source::Shared {
            store,
            sched: Mutex::new(sched),
            cancel: Default::default(),
            pool: BufferPool::new(16),
            io_timeout: opts.io_timeout,
        };
        Swarm { ctx, shared: Arc::new(shared), from, opts, started }
    }

    fn run(self, initial: Vec<SocketAddr>) -> Result<Assembly, DownloadError> {
        let store = Arc::clone(&self.shared.store);
        let (tx, rx) = bounded(4);
        let (progress, started, pool) = (self.opts.progress.clone(), self.started, self.shared.pool.clone());
        let sources = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&sources);
        let reassembler = thread::Builder::new()
            .name("reassembler".into())
            .spawn(move || reassembler::run(&store, rx, pool, progress, counter, started))
            .map_err(disk(self.ctx.chunks_dir))?;
        let (ev_tx, ev_rx) = unbounded::<(SocketAddr, SourceEnd)>();
        let me = self.ctx.tracker.me();
        let mut active: HashSet<SocketAddr> = HashSet::new();
        let mut banned: HashSet<SocketAddr> = HashSet::new();
        let mut retry_at: HashMap<SocketAddr, Instant> = HashMap::new();
        let mut candidates = initial;
        let mut last_refresh = Instant::now();
        let mut last_progress = (self.shared.store.count(), Instant::now());
        let stalled = loop {
            for addr in candidates.drain(..) {
                let waiting = retry_at.get(&addr).is_some_and(|t| Instant::now() < *t);
                if Some(addr) == me || active.contains(&addr) || banned.contains(&addr) || waiting {
                    continue;
                }
                if active.len() >= MAX_SOURCES {
                    break; // the others may come in at a later refresh
                }
                active.insert(addr);
                let (shared, tx, ev_tx) = (Arc::clone(&self.shared), tx.clone(), ev_tx.clone());
                let spawned = thread::Builder::new().name(format!("source-{addr}")).spawn(move || {
                    let end = source::run(&shared, addr, &tx);
                    let _ = ev_tx.send((addr, end));
                });
                if spawned.is_err() {
                    active.remove(&addr);
                }
            }
            sources.store(active.len(), Ordering::Relaxed);
            if reassembler.is_finished() {
                break false;
            }
            select! {
                recv(ev_rx) -> ev => if let Ok((addr, end)) = ev {
                    active.remove(&addr);
                    match end {
                        SourceEnd::Finished => {}
                        SourceEnd::Banned(_) | SourceEnd::Lying(_) => { warn!("source {addr} {end}"); banned.insert(addr); }
                        SourceEnd::Failed(_) => { info!("source {addr} left: {end}"); retry_at.insert(addr, Instant::now() + Duration::from_secs(2)); }
                    }
                },
                default(Duration::from_millis(200)) => {}
            }
            let count = self.shared.store.count();
            if count != last_progress.0 {
                last_progress = (count, Instant::now());
            }
            if active.is_empty() && last_progress.1.elapsed() > self.opts.stall_timeout {
                break true;
            }
            if last_refresh.elapsed() >= Duration::from_secs(1) {
                last_refresh = Instant::now();
                candidates = self.refresh();
            }
        };
        self.shared.cancel.store(true, Ordering::SeqCst);
        drop(tx);
        let assembly = reassembler
            .join()
            .map_err(|_| disk(self.ctx.chunks_dir)(io::Error::other("reassembler panicked")))?;
        let data = self.shared.store.data_path();
        let assembly = assembly.map_err(disk(&data))?;
        let m = &self.shared.store.manifest;
        if stalled || assembly.sha1.is_none() {
            let (have, total) = (self.shared.store.count(), m.chunk_count());
            return Err(DownloadError::Stalled { name: m.name.clone(), have, total });
        }
        Ok(assembly)
    }

    /// Asks the tracker who can help now (it may be down: then keep the sources we have).
    fn refresh(&self) -> Vec<SocketAddr> {
        match self.ctx.tracker.start_download(self.shared.store.content_id) {
            Ok(s) => candidates(self.from, s),
            Err(e) => {
                warn!("tracker unavailable, going on with known sources: {e}");
                Vec::new()
            }
        }
    }
}

/// Checks the whole file and moves it into `DIR/files` atomically.
fn finish(
    ctx: &Context,
    store: &ChunkStore,
    assembly: Assembly,
    resumed: u32,
    started: Instant,
) -> Result<Report, DownloadError> {
    let m = &store.manifest;
    let got = assembly.sha1.unwrap_or(Sha1Hash([0; 20]));
    if got != m.sha1 {
        return Err(DownloadError::WholeHashMismatch { name: m.name.clone(), want: m.sha1, got });
    }
    let dest = ctx.files_dir.join(&m.name);
    if dest.exists() {
        return Err(DownloadError::Exists(dest));
    }
    let data = store.data_path();
    let stamp = Stamp::of(&fs::metadata(&data).map_err(disk(&data))?);
    ctx.cache.store(m, stamp).map_err(disk(ctx.chunks_dir))?;
    store.finish(&dest).map_err(disk(&dest))?;
    let id = store.content_id;
    ctx.shares.add_complete(Arc::new(m.clone()), id, dest.clone());
    let info = FileInfo { name: m.name.clone(), size: m.size, content_id: id };
    if let Err(e) = ctx.tracker.announce(vec![info], vec![]) {
        warn!("could not announce '{}' to the tracker: {e}", m.name);
    }
    Ok(Report {
        name: m.name.clone(),
        content_id: id,
        path: dest,
        size: m.size,
        took: started.elapsed(),
        chunks: m.chunk_count(),
        resumed,
        assembly,
    })
}
