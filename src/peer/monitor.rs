//! The file monitor: looks at `DIR/files` every [`SCAN_EVERY`] (no `chdir`), hashes new or
//! changed files and folders (or takes their cached manifest) and tells the tracker what
//! changed. A folder is shared as one torrent of its files ([`Found`]).
//!
//! A file is shared only once it has settled: not modified for [`SETTLE`], and the same
//! file (device, inode, size, mtime) before and after hashing. A file being copied in is
//! therefore never announced half-written; a changed file stops being shared at once.

use crate::hash::ContentId;
use crate::holdings::found::Found;
use crate::holdings::manifest_cache::ManifestCache;
use crate::holdings::shares::Shares;
use crate::names::validate_name;
use crate::storage::FileIdentity;
use crate::tracker_client::TrackerClient;
use crate::wire::tracker_msg::FileInfo;
use crossbeam_channel::{select, tick, Receiver};
use log::{info, warn};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

/// How often the folder is looked at.
pub const SCAN_EVERY: Duration = Duration::from_millis(500);
/// How long a file must go unmodified before it is hashed and shared.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Keeps `Shares` in step with the files in one folder.
pub struct FileMonitor {
    files_dir: PathBuf,
    cache: ManifestCache,
    shares: Arc<Shares>,
    /// Each name's file versions when last shared, and its id.
    known: HashMap<String, (Vec<FileIdentity>, ContentId)>,
    warned: HashSet<String>,
}

/// True when the file (a folder's most recently changed one) was last modified at least
/// [`SETTLE`] ago.
fn settled(modified: SystemTime) -> bool {
    SystemTime::now().duration_since(modified).is_ok_and(|age| age >= SETTLE)
}

/// True when `path` still holds the files `found` describes, in the same versions.
fn still(path: &Path, found: &Found) -> bool {
    Found::look(path).is_ok_and(|now| now.as_ref() == Some(found))
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<FileInfo>,
    pub removed: Vec<ContentId>,
    /// Files seen that have not settled yet (not shared until they do).
    pub unsettled: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl FileMonitor {
    pub fn new(files_dir: PathBuf, cache: ManifestCache, shares: Arc<Shares>) -> FileMonitor {
        FileMonitor { files_dir, cache, shares, known: HashMap::new(), warned: HashSet::new() }
    }

    /// Looks at the folder once and updates the shares.
    pub fn scan(&mut self) -> Changes {
        let mut changes = Changes::default();
        let entries = match fs::read_dir(&self.files_dir) {
            Ok(e) => e,
            Err(e) => {
                self.warn_once("<dir>", format!("cannot read {}: {e}", self.files_dir.display()));
                return changes;
            }
        };
        let mut seen = HashSet::new();
        for entry in entries.flatten() {
            let Some(name) = self.shareable_name(entry.file_name()) else { continue };
            if self.shares.is_withheld(&name) {
                continue;
            }
            // Links are not followed (here or inside a folder): nothing outside is read.
            let path = entry.path();
            let Ok(Some(found)) = Found::look(&path) else { continue };
            if found.files.is_empty() {
                continue; // an empty folder
            }
            for why in &found.skipped {
                self.warn_once(&format!("{name}/{why}"), format!("'{name}': leaving out {why}"));
            }
            let versions = found.versions();
            if self.known.get(&name).is_some_and(|(s, _)| *s == versions) {
                seen.insert(name.clone());
                continue;
            }
            if !settled(found.modified) {
                changes.unsettled += 1;
                continue; // still being written: not seen, so an older version stops being shared
            }
            let hashed = found.manifest(&self.cache, &path, &name);
            let placed = hashed.and_then(|(m, cached)| Ok((found.place(&path, &m)?, m, cached)));
            match placed {
                Ok(_) if !still(&path, &found) => {} // changed while hashed: next scan
                Ok((place, manifest, cached)) => {
                    seen.insert(name.clone());
                    let id = manifest.content_id();
                    if !cached {
                        info!("Hashed '{name}': {} chunks", manifest.chunk_count());
                    }
                    if let Some((_, old)) = self.known.insert(name.clone(), (versions, id)) {
                        if old != id {
                            self.shares.remove(&old);
                            changes.removed.push(old);
                        }
                    }
                    if !manifest.private {
                        // A private torrent's peers come only from its own trackers.
                        changes.added.push(FileInfo {
                            name: name.clone(),
                            size: manifest.size,
                            content_id: id,
                        });
                    }
                    self.shares.add_complete(Arc::new(manifest), id, place);
                }
                Err(e) => self.warn_once(&name, format!("cannot share '{name}': {e}")),
            }
        }
        let gone: Vec<String> = self.known.keys().filter(|n| !seen.contains(*n)).cloned().collect();
        for name in gone {
            if let Some((_, id)) = self.known.remove(&name) {
                self.shares.remove(&id);
                changes.removed.push(id);
            }
        }
        changes
    }

    fn shareable_name(&mut self, raw: std::ffi::OsString) -> Option<String> {
        let Some(name) = raw.to_str().map(str::to_string) else {
            self.warn_once(&raw.to_string_lossy(), format!("not sharing {raw:?}: the name is not UTF-8"));
            return None;
        };
        if name.ends_with(".tmp") && name.starts_with(".p2p-") {
            return None;
        }
        if let Err(e) = validate_name(&name) {
            self.warn_once(&name, format!("not sharing: {e}"));
            return None;
        }
        Some(name)
    }

    /// Scans until every file has settled (at most a little over [`SETTLE`]), so a peer
    /// started right after its files were written shares them from the start.
    pub fn initial_scan(&mut self) {
        let deadline = std::time::Instant::now() + SETTLE + SCAN_EVERY;
        while self.scan().unsettled > 0 && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn warn_once(&mut self, key: &str, msg: String) {
        if self.warned.insert(key.to_string()) {
            warn!("{msg}");
        }
    }

    /// Scans every [`SCAN_EVERY`] until `stop` fires, announcing changes to the tracker.
    pub fn spawn(mut self, tracker: Arc<TrackerClient>, stop: Receiver<()>) -> thread::JoinHandle<()> {
        thread::Builder::new()
            .name("file-monitor".into())
            .spawn(move || {
                let ticker = tick(SCAN_EVERY);
                let mut pending = Changes::default();
                loop {
                    select! {
                        recv(stop) -> _ => break,
                        recv(ticker) -> _ => {
                            let c = self.scan();
                            pending.added.extend(c.added);
                            pending.removed.extend(c.removed);
                            if pending.is_empty() {
                                continue;
                            }
                            let (added, removed) = (pending.added.clone(), pending.removed.clone());
                            match tracker.announce(added, removed) {
                                Ok(()) => pending = Changes::default(),
                                Err(e) => warn!("could not tell the tracker about file changes: {e}"),
                            }
                        }
                    }
                }
            })
            .expect("spawning the file monitor")
    }
}
