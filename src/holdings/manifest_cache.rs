//! Manifests of shared files and folders, cached in `DIR/chunks/manifests/` and keyed by
//! the name, the size and the modification time (for a folder, a digest of every file's
//! path and version: [`Found::stamp`](super::found::Found::stamp)), so a restart does not
//! hash unchanged files again.

use crate::atomic_file::{write_atomic, Durability};
use crate::hash::Sha1Hash;
use crate::manifest::{hash_file, Manifest};
use configparser::ini::Ini;
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The cache folder of one peer.
pub struct ManifestCache {
    dir: PathBuf,
}

/// What identifies a version of a file (or folder) on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    /// A file's mtime; a folder's listing digest.
    pub mtime_ns: u128,
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Stamp {
        let mtime_ns =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        Stamp { size: meta.len(), mtime_ns }
    }
}

impl ManifestCache {
    pub fn new(chunks_dir: &Path) -> ManifestCache {
        ManifestCache { dir: chunks_dir.join("manifests") }
    }

    fn entry_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.ini", Sha1Hash::of(name.as_bytes())))
    }

    /// The manifest of the file at `path` (shared as `name`): from the cache when the
    /// stamp matches, else hashed (in parallel) and stored.
    pub fn manifest_for(&self, path: &Path, name: &str, stamp: Stamp) -> io::Result<(Manifest, bool)> {
        self.manifest_or(name, stamp, || hash_file(path, name, true), || Ok(Stamp::of(&fs::metadata(path)?)))
    }

    /// The manifest of `name`: from the cache when the stamp matches, else made by `hash`
    /// and stored if `now` still gives the stamp after hashing.
    pub fn manifest_or(
        &self,
        name: &str,
        stamp: Stamp,
        hash: impl FnOnce() -> io::Result<Manifest>,
        now: impl FnOnce() -> io::Result<Stamp>,
    ) -> io::Result<(Manifest, bool)> {
        if let Some(m) = self.lookup(name, stamp) {
            return Ok((m, true));
        }
        let m = hash()?;
        if now()? == stamp {
            self.store(&m, stamp)?;
        }
        Ok((m, false))
    }

    /// A cached manifest for `name` if it was made from a file with this stamp.
    pub fn lookup(&self, name: &str, stamp: Stamp) -> Option<Manifest> {
        let text = fs::read_to_string(self.entry_path(name)).ok()?;
        let mut ini = Ini::new_cs();
        ini.read(text.clone()).ok()?;
        let size: u64 = ini.get("cache", "size")?.parse().ok()?;
        let mtime_ns: u128 = ini.get("cache", "mtime_ns")?.parse().ok()?;
        if (Stamp { size, mtime_ns }) != stamp {
            return None;
        }
        let m = Manifest::parse(&text).ok()?;
        // A folder's size may count padding the stamp does not; its digest says the rest.
        (m.name == name && (m.is_folder() || m.size == size)).then_some(m)
    }

    /// Records `m` as the manifest of the file version `stamp`.
    pub fn store(&self, m: &Manifest, stamp: Stamp) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let text = format!("{}\n[cache]\nsize = {}\nmtime_ns = {}\n", m.to_ini(), stamp.size, stamp.mtime_ns);
        write_atomic(&self.entry_path(&m.name), text.as_bytes(), Durability::Synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_on_same_stamp_miss_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        fs::write(&f, b"hello").unwrap();
        let cache = ManifestCache::new(dir.path());
        let stamp = Stamp::of(&fs::metadata(&f).unwrap());
        let (m, cached) = cache.manifest_for(&f, "a.txt", stamp).unwrap();
        assert!(!cached);
        let (again, cached) = cache.manifest_for(&f, "a.txt", stamp).unwrap();
        assert!(cached, "second look-up must not hash again");
        assert_eq!(again, m);
        assert_eq!(again.content_id(), m.content_id());
        let changed = Stamp { size: 6, ..stamp };
        assert!(cache.lookup("a.txt", changed).is_none());
    }
}
