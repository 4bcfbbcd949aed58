//! Downloading one file from every peer that can help at once.
//!
//! Anatomy of a download: resolve the name at the tracker (or take a content id, a magnet
//! link or a `.torrent`); tell the tracker we download (it answers with the holders, the
//! other downloaders and the BitTorrent clients of the swarm) and, with the DHT on, start
//! looking the id up there (`feed`); get the manifest (`file.ini` from a p2p-share
//! peer, the info dictionary from a BitTorrent client), rebuild the info dictionary and
//! check its info-hash against the content id; open the partial state (resuming verified
//! chunks); start one thread per peer (`swarm` picks the protocol: `source` for ours,
//! `bt_source` for BitTorrent; what they share is in [`ctx`]), every chunk passing the one
//! check in `check` (for native sources on a checker thread, `verify`); the [`reassembler`]
//! writes chunks in place; every second ask the
//! tracker again and take every source that may help; at the end move the file atomically
//! into `DIR/files`. No whole-file hash: the chunk hashes are what the content id covers.

mod backoff;
mod bt_give;
mod bt_source;
mod budget;
mod check;
mod context;
pub mod ctx;
mod error;
pub(crate) mod feed;
mod manifest_fetch;
pub mod reassembler;
mod request_depth;
pub mod scheduler;
mod shunned;
mod source;
pub mod summary;
pub mod swarm;
mod verify;
mod web_seed;

pub use context::{Context, Options};
pub use error::DownloadError;

use context::candidates;

use crate::announce::{askable, Announce, Event};
use error::disk;
use feed::PeerFeed;
use manifest_fetch::{local_manifest, manifest_until};
use swarm::Swarm;

use crate::chunk_store::ChunkStore;
use crate::hash::ContentId;
use crate::holdings::found::Found;
use crate::holdings::tracker_lists::TrackerLists;
use crate::magnet::Magnet;
use crate::manifest::Manifest;
use crate::names::validate_name;
use crate::torrent::{read_torrent, TorrentFile, MAX_TORRENT_BYTES};
use crate::tracker_client::{Sources, TrackerClient, TrackerError};
use crate::wire::tracker_msg::{FileInfo, FileListing};
use log::{debug, info, warn};
use reassembler::Assembly;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The file was complete in `DIR/files` already; nothing was fetched.
    pub already_here: bool,
    pub assembly: Assembly,
}

/// What the user asked to download.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file name, resolved at the tracker.
    Name(String),
    /// A content id (info-hash) in hex.
    Id(ContentId),
    Magnet(Magnet),
    /// A `.torrent` file's contents.
    Torrent(TorrentFile),
}

impl Target {
    /// A magnet link, the path of a `.torrent` file, a 40-hex content id, or a name.
    pub fn parse(s: &str) -> Result<Target, DownloadError> {
        if s.starts_with("magnet:") {
            return Magnet::parse(s).map(Target::Magnet).map_err(DownloadError::Magnet);
        }
        if s.to_ascii_lowercase().ends_with(".torrent") && Path::new(s).is_file() {
            let path = Path::new(s);
            let bytes = read_capped(path, MAX_TORRENT_BYTES).map_err(disk(path))?;
            let t = read_torrent(&bytes).map_err(DownloadError::Torrent)?;
            if t.manifest.private && !t.trackers.iter().any(|u| askable(u)) {
                return Err(DownloadError::Private(t.manifest.name));
            }
            return Ok(Target::Torrent(t));
        }
        Ok(s.parse().map_or_else(|_| Target::Name(s.to_string()), Target::Id))
    }

    /// Whether this target can go without a tracker: it names its file by info-hash and
    /// some source is known without asking one, or the DHT can name sources.
    pub fn needs_no_tracker(&self, direct_peers: usize, dht: bool) -> bool {
        match self {
            Target::Magnet(m) => {
                dht || direct_peers + m.peers.len() > 0 || m.trackers.iter().any(|u| askable(u))
            }
            Target::Torrent(t) => {
                dht || direct_peers > 0 || t.trackers.iter().any(|u| askable(u)) || !t.web_seeds.is_empty()
            }
            Target::Id(_) => dht,
            Target::Name(_) => false,
        }
    }
}

/// Whether a file can be made in `dir` (one is made and removed; its name is one the
/// folder monitor leaves alone).
fn writable(dir: &Path) -> std::io::Result<()> {
    tempfile::Builder::new().prefix(".p2p-").suffix(".tmp").tempfile_in(dir).map(drop)
}

/// Reads a file of at most `cap` bytes.
fn read_capped(path: &Path, cap: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(cap as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Err(std::io::Error::other(format!("larger than {cap} bytes")));
    }
    Ok(bytes)
}

/// Downloads `target` (a file name, a content id, a magnet link or a `.torrent` path) into
/// `DIR/files`. `from` (a port or an address) is the first source, as in the original;
/// otherwise every holder is one, and every peer in `opts.peers`.
pub fn download(
    ctx: &Context,
    target: &str,
    from: Option<&str>,
    opts: &Options,
) -> Result<Report, DownloadError> {
    let target_parsed = Target::parse(target)?;
    // A folder the file cannot go into fails now, not after the whole download.
    for dir in [ctx.files_dir, ctx.chunks_dir] {
        writable(dir).map_err(|err| DownloadError::NotWritable { path: dir.to_path_buf(), err })?;
    }
    match target_parsed {
        Target::Name(_) => download_listed(ctx, target, from, opts),
        // An id no p2p-share peer names may still be a swarm of BitTorrent clients.
        Target::Id(id) => match download_listed(ctx, target, from, opts) {
            Err(DownloadError::NotFound(_)) if from.is_none() => {
                download_by_hash(ctx, id, None, None, opts, Vec::new())
            }
            // With the DHT, the tracker is not the only way to find sources.
            Err(DownloadError::Tracker(e)) if from.is_none() && ctx.dht.is_some() => {
                warn!("{e}; looking on the DHT");
                download_by_hash(ctx, id, None, None, opts, Vec::new())
            }
            other => other,
        },
        Target::Magnet(m) => {
            let mut opts = opts.clone();
            opts.peers.extend(m.peers.iter().copied());
            opts.web_seeds.extend(m.web_seeds.iter().cloned());
            let tiers = m.trackers.iter().map(|u| vec![u.clone()]).collect();
            download_by_hash(ctx, m.id, None, m.name.as_deref(), &opts, tiers)
        }
        Target::Torrent(t) => {
            let (id, name) = (t.manifest.content_id(), t.manifest.name.clone());
            let mut opts = opts.clone();
            opts.web_seeds.extend(t.web_seeds);
            download_by_hash(ctx, id, Some(t.manifest), Some(&name), &opts, t.tiers)
        }
    }
}

/// A download the tracker resolves (by name or content id).
fn download_listed(
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
    // BitTorrent clients the tracker names are spoken to in BitTorrent, like --peer ones.
    let mut opts = opts.clone();
    opts.peers.extend(sources.bt_peers.iter().copied());
    let mut initial = candidates(from, sources);
    initial.extend(opts.peers.iter().copied());
    let by_id = target.parse::<ContentId>().is_ok();
    let job = Job { listing: &listing, from, initial, late, by_id, known: None, trackers: Vec::new() };
    let result = fetch(ctx, job, &opts, started);
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
            already_here: true,
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
        vec![FileListing { info: file, holder_count: s.holders.len() as u32, hosts: 0, holders: s.holders }]
    } else {
        validate_name(target).map_err(DownloadError::BadName)?;
        tracker.search(target)?.files.into_iter().filter(|l| l.info.name == target).collect()
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
    match most_hosts(&found) {
        _ if found.is_empty() => Err(DownloadError::NotFound(target.to_string())),
        Some(i) => Ok((found.swap_remove(i), from)),
        None => Err(DownloadError::Ambiguous { name: target.to_string(), choices: found }),
    }
}

/// The listing that strictly more distinct hosts share than any other, if there is one: a
/// name several files claim goes to the one most hosts vouch for.
fn most_hosts(found: &[FileListing]) -> Option<usize> {
    let best = found.iter().map(|l| l.hosts).max()?;
    let mut at_best = found.iter().enumerate().filter(|(_, l)| l.hosts == best);
    let (i, _) = at_best.next()?;
    at_best.next().is_none().then_some(i)
}

/// A download by info-hash (a magnet link or a `.torrent`): the tracker is one source of
/// sources among others, and may be down when peers are known directly.
fn download_by_hash(
    ctx: &Context,
    id: ContentId,
    known: Option<Manifest>,
    name: Option<&str>,
    opts: &Options,
    trackers: Vec<Vec<String>>,
) -> Result<Report, DownloadError> {
    let started = Instant::now();
    if let Some(s) = ctx.shares.get(&id).filter(|s| s.is_complete()) {
        info!("'{}' is already here", s.manifest.name);
        return Ok(Report::already_here(&s.manifest, id, ctx.files_dir.join(&s.manifest.name)));
    }
    if let Some(name) = name {
        validate_name(name).map_err(DownloadError::BadName)?;
    }
    let mut opts = opts.clone();
    let private = known.as_ref().is_some_and(|m| m.private);
    // A private torrent (BEP 27) is not told to our tracker: its own trackers name its peers.
    let ours = if private { Ok(Sources::default()) } else { ctx.tracker.start_download(id) };
    let (mut initial, late) = match ours {
        Ok(s) => {
            let late = !s.downloaders.is_empty();
            opts.peers.extend(s.bt_peers.iter().copied());
            (candidates(None, s), late)
        }
        Err(e)
            if !opts.peers.is_empty()
                || ctx.dht.is_some()
                || !trackers.is_empty()
                || !opts.web_seeds.is_empty() =>
        {
            warn!("{e}; going on with the peers given directly, the torrent's trackers and the DHT");
            (Vec::new(), false)
        }
        // Nobody in the swarm yet (a BitTorrent seeder may announce any moment): keep
        // asking until the stall time-out, as a BitTorrent client would.
        Err(TrackerError::Refused(why)) => {
            warn!("{why}; asking again every second for {} s", opts.stall_timeout.as_secs());
            (Vec::new(), false)
        }
        Err(e) => return Err(e.into()),
    };
    initial.extend(opts.peers.iter().copied());
    let info = match &known {
        Some(m) => FileInfo { name: m.name.clone(), size: m.size, content_id: id },
        None => FileInfo { name: name.unwrap_or_default().to_string(), size: 0, content_id: id },
    };
    let listing = FileListing { info, holders: Vec::new(), holder_count: 0, hosts: 0 };
    let job = Job { listing: &listing, from: None, initial, late, by_id: true, known, trackers };
    let result = fetch(ctx, job, &opts, started);
    if result.is_err() {
        ctx.shares.remove_partial(&id);
    }
    if !private {
        if let Err(e) = ctx.tracker.stop_download(id) {
            debug!("could not tell the tracker the download of {id} ended: {e}");
        }
    }
    result
}

/// One download's plan: the file, its first sources, and what is already known.
struct Job<'a> {
    listing: &'a FileListing,
    /// `--from`: the first source, as in the original.
    from: Option<SocketAddr>,
    initial: Vec<SocketAddr>,
    /// Other downloaders were already at work (pick chunks at random among the rarest).
    late: bool,
    /// Asked for by content id: the manifest, which the id authenticates, decides the name.
    by_id: bool,
    /// The manifest, when a `.torrent` gave it.
    known: Option<Manifest>,
    /// The torrent's own trackers in BEP 12 tiers (a `.torrent`'s `announce-list` or
    /// `announce`, a magnet link's `tr` each a tier).
    trackers: Vec<Vec<String>>,
}

fn fetch(ctx: &Context, job: Job, opts: &Options, started: Instant) -> Result<Report, DownloadError> {
    let Job { listing, from, initial, late, by_id, known, trackers } = job;
    let id = listing.info.content_id;
    // The DHT and the torrent's trackers are asked from the start, before the manifest,
    // until the download ends.
    let feed = PeerFeed::new();
    let private = known.as_ref().is_some_and(|m| m.private);
    if let (Some(d), false) = (ctx.dht, private) {
        feed.add_dht(d.clone(), id);
    }
    let port = ctx.me.or_else(|| ctx.tracker.me()).map_or(0, |a| a.port());
    let left = known.as_ref().map_or(1, |m| m.size);
    let first = Announce {
        info_hash: id,
        peer_id: crate::bt::new_peer_id(),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: Event::Started,
    };
    // Kept, so the torrent is announced to them while it is seeded (peer/seeding.rs).
    if let Err(e) = TrackerLists::new(ctx.chunks_dir).save(&id, &trackers) {
        warn!("cannot keep the trackers of {id}: {e}");
    }
    feed.add_trackers(trackers, first);
    let dht = Some(&feed);
    let manifest = match known.or_else(|| local_manifest(ctx.chunks_dir, id)) {
        Some(m) => m,
        None => manifest_until(ctx.tracker, id, from, initial.clone(), opts, dht)?,
    };
    if manifest.private && !private {
        // Learnt from the metadata (a magnet link): it was asked for in public already.
        return Err(DownloadError::Private(manifest.name));
    }
    let dest = ctx.files_dir.join(&manifest.name);
    if dest.exists() {
        return Err(DownloadError::Exists(dest));
    }
    if manifest.name != listing.info.name || manifest.size != listing.info.size {
        let why = format!(
            "manifest names '{}' ({} bytes), the tracker '{}' ({} bytes)",
            manifest.name, manifest.size, listing.info.name, listing.info.size
        );
        if !by_id {
            return Err(DownloadError::NoManifest { id, why });
        }
        // Asked for by content id: the manifest, which that id authenticates, decides.
        if !listing.info.name.is_empty() {
            warn!("{why}; going by the manifest");
        }
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
    let assembly = Swarm::new(ctx, Arc::clone(&store), from, opts, started, seed, dht).run(initial)?;
    let report = finish(ctx, &store, assembly, resumed, started)?;
    feed.completed();
    Ok(report)
}

/// A seed for a late joiner's random chunk picks (clock and process id; no crypto needed).
fn random_seed() -> u64 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (std::process::id() as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Moves the complete file into `DIR/files` atomically (every chunk was verified).
fn finish(
    ctx: &Context,
    store: &ChunkStore,
    assembly: Assembly,
    resumed: u32,
    started: Instant,
) -> Result<Report, DownloadError> {
    let m = &store.manifest;
    let dest = ctx.files_dir.join(&m.name);
    if dest.exists() {
        return Err(DownloadError::Exists(dest));
    }
    let data = store.data_path();
    let found = Found::look(data)
        .map_err(disk(data))?
        .ok_or_else(|| disk(data)(std::io::ErrorKind::NotFound.into()))?;
    let stamp = found.stamp(fs::symlink_metadata(data).ok().as_ref());
    ctx.cache.store(m, stamp).map_err(disk(ctx.chunks_dir))?;
    store.finish(&dest).map_err(disk(&dest))?;
    let id = store.content_id;
    // Renamed as a whole: every file keeps its version.
    let place = found.place(&dest, m).map_err(disk(&dest))?;
    ctx.shares.add_complete(Arc::new(m.clone()), id, place);
    let info = FileInfo { name: m.name.clone(), size: m.size, content_id: id };
    if m.private {
        info!("'{}' is a private torrent: not announced to our tracker", m.name);
    } else if let Err(e) = ctx.tracker.announce(vec![info], vec![]) {
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
        already_here: false,
        assembly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_a_magnet_an_id_or_a_name() {
        let id = ContentId::of(b"x");
        assert!(matches!(Target::parse(&id.to_hex()), Ok(Target::Id(got)) if got == id));
        let link = format!("magnet:?xt=urn:btih:{id}&x.pe=10.0.0.1:6881");
        assert!(
            matches!(Target::parse(&link), Ok(Target::Magnet(m)) if m.peers == vec![SocketAddr::from(([10, 0, 0, 1], 6881))])
        );
        assert!(matches!(Target::parse("report.pdf"), Ok(Target::Name(n)) if n == "report.pdf"));
        // A name ending in .torrent that is no file here is a name, not an error.
        assert!(matches!(Target::parse("no such.torrent"), Ok(Target::Name(_))));
        assert!(Target::parse("magnet:?xt=urn:btih:nothex").is_err());
    }

    #[test]
    fn a_private_torrent_is_refused_with_a_line_that_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let pieces = [crate::hash::Sha1Hash::of(b"p")];
        let info = crate::info_dict::canonical("p.bin", 10, 1 << 14, &pieces);
        let private = [&info[..info.len() - 1], b"7:privatei1ee"].concat();
        let public = [&info[..info.len() - 1], b"7:privatei0ee"].concat();
        let torrent = |info: &[u8]| [b"d4:info".as_slice(), info, b"e"].concat();
        let (p, q) = (dir.path().join("p.torrent"), dir.path().join("q.torrent"));
        std::fs::write(&p, torrent(&private)).unwrap();
        std::fs::write(&q, torrent(&public)).unwrap();
        let e = Target::parse(p.to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("'p.bin' is a private torrent") && e.contains("names none"), "{e}");
        assert!(matches!(Target::parse(q.to_str().unwrap()), Ok(Target::Torrent(_))), "private: 0 is public");
        // With a tracker this side can ask, it is fetched through that tracker only.
        let r = dir.path().join("r.torrent");
        std::fs::write(
            &r,
            [b"d8:announce21:udp://127.0.0.1:1/ann4:info".as_slice(), &private, b"e"].concat(),
        )
        .unwrap();
        assert!(matches!(Target::parse(r.to_str().unwrap()), Ok(Target::Torrent(t)) if t.manifest.private));
    }

    #[test]
    fn only_targets_named_by_info_hash_with_a_source_go_without_a_tracker() {
        let id = ContentId::of(b"x");
        let bare = Target::parse(&format!("magnet:?xt=urn:btih:{id}")).unwrap();
        let with_peer = Target::parse(&format!("magnet:?xt=urn:btih:{id}&x.pe=10.0.0.1:6881")).unwrap();
        assert!(!bare.needs_no_tracker(0, false), "a bare magnet link with no DHT needs a tracker");
        assert!(bare.needs_no_tracker(1, false) && bare.needs_no_tracker(0, true));
        assert!(with_peer.needs_no_tracker(0, false), "its x.pe is a source");
        assert!(Target::Id(id).needs_no_tracker(0, true) && !Target::Id(id).needs_no_tracker(3, false));
        assert!(!Target::Name("a".into()).needs_no_tracker(3, true), "a name is resolved at the tracker");
    }
}
