//! What this peer can serve: complete files in `DIR/files`, and the chunks it has of files
//! it is downloading. Looked up by content id (and complete files by name).

use crate::chunk_store::ChunkStore;
use crate::hash::ContentId;
use crate::manifest::Manifest;
use crate::names::validate_name;
use crate::storage::Place;
use crate::super_seed::SuperSeed;
use crate::wire::tracker_msg::FileInfo;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::storage::FileIdentity;

/// Where a shared file's bytes are.
pub enum Holding {
    /// All of it, in `DIR/files` (a file, or a folder's files), as it was when hashed.
    Complete(Place),
    /// The chunks downloaded so far.
    Partial(Arc<ChunkStore>),
}

/// One file this peer serves.
pub struct Share {
    pub manifest: Arc<Manifest>,
    pub content_id: ContentId,
    pub holding: Holding,
    /// What went out to whom, for super-seeding a complete file.
    pub seeding: Mutex<SuperSeed>,
    /// Payload bytes uploaded, over every protocol (kept when a download completes).
    pub uploaded: Arc<AtomicU64>,
    /// The peers sent a piece lately, and when (at most [`MAX_RECENT`]).
    recent: Mutex<HashMap<SocketAddr, Instant>>,
}

/// Peers remembered per share for [`Share::uploading_to`].
const MAX_RECENT: usize = 256;

impl Share {
    fn new(
        manifest: Arc<Manifest>,
        content_id: ContentId,
        holding: Holding,
        uploaded: Arc<AtomicU64>,
    ) -> Share {
        let seeding = Mutex::new(SuperSeed::new(manifest.chunk_count()));
        Share { manifest, content_id, holding, seeding, uploaded, recent: Mutex::default() }
    }

    /// Counts `bytes` of payload sent to `to`.
    pub fn sent(&self, to: SocketAddr, bytes: u64) {
        self.uploaded.fetch_add(bytes, Ordering::Relaxed);
        // Blocks go out from many connections at once: none waits for this map. One skipped
        // while another connection updates it is recorded with the peer's next block.
        let Some(mut recent) = self.recent.try_lock() else { return };
        let now = Instant::now();
        if recent.len() >= MAX_RECENT && !recent.contains_key(&to) {
            // The one sent to longest ago makes room.
            if let Some(oldest) = recent.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a) {
                recent.remove(&oldest);
            }
        }
        recent.insert(to, now);
    }

    /// Peers sent a piece within `within` of `now` (at most [`MAX_RECENT`] are kept).
    pub fn uploading_to(&self, now: Instant, within: Duration) -> usize {
        self.recent.lock().values().filter(|t| now.saturating_duration_since(**t) < within).count()
    }

    pub fn info(&self) -> FileInfo {
        FileInfo { name: self.manifest.name.clone(), size: self.manifest.size, content_id: self.content_id }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.holding, Holding::Complete(..))
    }
}

/// The catalogue of served files. Lookups are cheap clones of an `Arc`; no lock is held
/// while a file is read.
#[derive(Default)]
pub struct Shares {
    by_id: RwLock<HashMap<ContentId, Arc<Share>>>,
    /// Names in `DIR/files` the user chose not to share.
    withheld: RwLock<std::collections::BTreeSet<String>>,
    /// Where the withheld names are kept across restarts (one per line), if anywhere.
    withheld_file: Option<PathBuf>,
}

impl Shares {
    /// Shares that keep the names the user chose not to share in `file`, and start with
    /// those it holds (names that are not valid file names are skipped).
    pub fn remembering(file: PathBuf) -> Shares {
        let names = std::fs::read_to_string(&file).unwrap_or_default();
        let withheld = names.lines().filter(|n| validate_name(n).is_ok()).map(String::from).collect();
        Shares { withheld: RwLock::new(withheld), withheld_file: Some(file), ..Shares::default() }
    }

    /// Stops sharing the complete file `name` (it stays on disk, and stays unshared after a
    /// restart); returns its id if shared.
    pub fn withhold(&self, name: &str) -> Option<ContentId> {
        if self.withheld.write().insert(name.to_string()) {
            self.save_withheld();
        }
        let shared = self.complete_by_name(name)?;
        self.remove(&shared.content_id);
        Some(shared.content_id)
    }

    /// Shares `name` again when it appears in `DIR/files` (after its data was deleted).
    pub fn share_again(&self, name: &str) {
        if self.withheld.write().remove(name) {
            self.save_withheld();
        }
    }

    fn save_withheld(&self) {
        let Some(file) = &self.withheld_file else { return };
        let text: String = self.withheld.read().iter().map(|n| format!("{n}\n")).collect();
        let written =
            crate::atomic_file::write_atomic(file, text.as_bytes(), crate::atomic_file::Durability::Synced);
        if let Err(e) = written {
            log::warn!("cannot keep the list of unshared files in {}: {e}", file.display());
        }
    }

    pub fn is_withheld(&self, name: &str) -> bool {
        self.withheld.read().contains(name)
    }

    pub fn get(&self, id: &ContentId) -> Option<Arc<Share>> {
        self.by_id.read().get(id).cloned()
    }

    /// A complete file named `name` (the first by id if several).
    pub fn complete_by_name(&self, name: &str) -> Option<Arc<Share>> {
        let map = self.by_id.read();
        let mut found: Vec<&Arc<Share>> =
            map.values().filter(|s| s.is_complete() && s.manifest.name == name).collect();
        found.sort_by_key(|s| s.content_id);
        found.first().map(|s| Arc::clone(s))
    }

    pub fn add_complete(&self, manifest: Arc<Manifest>, content_id: ContentId, place: Place) {
        let mut map = self.by_id.write();
        let uploaded = map.get(&content_id).map(|s| Arc::clone(&s.uploaded)).unwrap_or_default();
        let shared = Share::new(manifest, content_id, Holding::Complete(place), uploaded);
        map.insert(content_id, Arc::new(shared));
    }

    /// Serves the chunks of a download in progress (unless the file is already complete).
    pub fn add_partial(&self, store: Arc<ChunkStore>) {
        let id = store.content_id;
        let manifest = Arc::new(store.manifest.clone());
        let mut map = self.by_id.write();
        if map.get(&id).is_some_and(|s| s.is_complete()) {
            return;
        }
        let uploaded = map.get(&id).map(|s| Arc::clone(&s.uploaded)).unwrap_or_default();
        map.insert(id, Arc::new(Share::new(manifest, id, Holding::Partial(store), uploaded)));
    }

    pub fn remove(&self, id: &ContentId) {
        self.by_id.write().remove(id);
    }

    /// Removes a download's partial entry (a complete entry stays).
    pub fn remove_partial(&self, id: &ContentId) {
        let mut map = self.by_id.write();
        if map.get(id).is_some_and(|s| !s.is_complete()) {
            map.remove(id);
        }
    }

    /// Every content id shared, complete or still downloading, but private torrents' (BEP
    /// 27: their peers come only from their own trackers): what the DHT hears of.
    pub fn public_ids(&self) -> Vec<ContentId> {
        self.by_id.read().values().filter(|s| !s.manifest.private).map(|s| s.content_id).collect()
    }

    /// Every share's id: complete or partial, private or not.
    pub fn ids(&self) -> Vec<ContentId> {
        self.by_id.read().keys().copied().collect()
    }

    /// Every complete share's id, private torrents' too.
    pub fn complete_ids(&self) -> Vec<ContentId> {
        self.by_id.read().values().filter(|s| s.is_complete()).map(|s| s.content_id).collect()
    }

    /// Complete files, as the tracker indexes them (private torrents are not).
    pub fn complete_files(&self) -> Vec<FileInfo> {
        let mut v: Vec<FileInfo> = self
            .by_id
            .read()
            .values()
            .filter(|s| s.is_complete() && !s.manifest.private)
            .map(|s| s.info())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_counted_and_the_peers_sent_to_lately_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"some bytes").unwrap();
        let m = crate::manifest::hash_file(&path, "f.bin", false).unwrap();
        let id = m.content_id();
        let shares = Shares::default();
        shares.add_complete(Arc::new(m), id, Place::file(path).unwrap());
        let s = shares.get(&id).unwrap();
        for i in 0..300u16 {
            s.sent(SocketAddr::from(([10, 0, 0, 1], 1000 + i)), 10);
        }
        s.sent(SocketAddr::from(([10, 0, 0, 1], 1000)), 5);
        assert_eq!(s.uploaded.load(Ordering::Relaxed), 3005);
        let now = Instant::now();
        assert_eq!(s.uploading_to(now, Duration::from_secs(5)), MAX_RECENT);
        assert_eq!(s.uploading_to(now + Duration::from_secs(10), Duration::from_secs(5)), 0);
    }
}
