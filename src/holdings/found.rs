//! What stands at a name in `DIR/files`: a file, or a folder shared as one torrent of its
//! files (BEP 3's `files`, 1 MiB pieces, paths in byte order, no padding).
//!
//! A folder is walked without following links: links, sockets and the like inside it are
//! left out (and named, so the user is told), as are names the name rules refuse. It is as
//! settled as its most recently changed file, and its [`Stamp`] is a digest of every file's
//! path and version, so renaming, adding or changing any file makes it a new version.

use crate::hash::Sha1Hash;
use crate::holdings::manifest_cache::{ManifestCache, Stamp};
use crate::info_dict;
use crate::layout::{Layout, MAX_FILES, MAX_PATH_DEPTH};
use crate::manifest::{Manifest, CHUNK_SIZE, MAX_CHUNKS};
use crate::names::validate_name;
use crate::storage::{FileIdentity, Handles, Place};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// A file or a folder found in `DIR/files`, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Each file's path below the top (empty for a single file) and version, in byte order.
    pub files: Vec<(Vec<String>, FileIdentity)>,
    pub folder: bool,
    /// When the most recently changed file was changed.
    pub modified: SystemTime,
    /// What was left out of a folder, and why.
    pub skipped: Vec<String>,
}

impl Found {
    /// What is at `path` now: `None` for anything but a file or a folder (a link is not
    /// followed).
    pub fn look(path: &Path) -> io::Result<Option<Found>> {
        let meta = fs::symlink_metadata(path)?;
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if meta.is_file() {
            let files = vec![(Vec::new(), FileIdentity::of(&meta))];
            return Ok(Some(Found { files, folder: false, modified, skipped: Vec::new() }));
        }
        if !meta.is_dir() {
            return Ok(None);
        }
        let mut found =
            Found { files: Vec::new(), folder: true, modified: SystemTime::UNIX_EPOCH, skipped: Vec::new() };
        walk(path, &mut Vec::new(), &mut found)?;
        found.files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(found))
    }

    /// The versions of its files, as one value to compare scans by.
    pub fn versions(&self) -> Vec<FileIdentity> {
        self.files.iter().map(|(_, v)| *v).collect()
    }

    /// All files' bytes together.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|(_, v)| v.size).sum()
    }

    /// The manifest cache's key: the size, and the file's mtime or a digest of the folder.
    pub fn stamp(&self, meta_of_file: Option<&Metadata>) -> Stamp {
        if let (false, Some(meta)) = (self.folder, meta_of_file) {
            return Stamp::of(meta);
        }
        let mut listing = Vec::new();
        for (path, v) in &self.files {
            listing.extend_from_slice(path.join("/").as_bytes());
            listing.extend_from_slice(&[0]);
            listing.extend_from_slice(format!("{} {} {} {}\n", v.dev, v.ino, v.size, v.mtime_ns).as_bytes());
        }
        let digest = Sha1Hash::of(&listing).0;
        Stamp { size: self.size(), mtime_ns: u128::from_be_bytes(digest[..16].try_into().expect("16 bytes")) }
    }

    /// Its manifest, shared as `name`: cached for this version, else hashed (and cached if
    /// nothing changed meanwhile). Says whether it came from the cache.
    pub fn manifest(&self, cache: &ManifestCache, path: &Path, name: &str) -> io::Result<(Manifest, bool)> {
        let stamp = self.stamp(fs::symlink_metadata(path).ok().as_ref());
        if !self.folder {
            return cache.manifest_for(path, name, stamp);
        }
        let now = || Ok(Found::look(path)?.map_or(Stamp { size: 0, mtime_ns: 0 }, |f| f.stamp(None)));
        cache.manifest_or(name, stamp, || self.hash_folder(path, name), now)
    }

    /// Where a share with manifest `m` found at `path` has its bytes: the files of its
    /// layout, each in the version found.
    pub fn place(&self, path: &Path, m: &Manifest) -> io::Result<Place> {
        let versions: HashMap<&Vec<String>, FileIdentity> = self.files.iter().map(|(p, v)| (p, *v)).collect();
        let ordered = m
            .layout
            .real()
            .map(|(_, f)| versions.get(&f.path).copied())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| io::Error::other("its files are not the ones its manifest names"))?;
        Place::complete(path.to_path_buf(), Arc::clone(&m.layout), ordered)
    }

    /// Hashes a folder into its manifest: 1 MiB pieces across its files in order, in
    /// parallel, each file checked to be the version found while it is read.
    pub fn hash_folder(&self, top: &Path, name: &str) -> io::Result<Manifest> {
        let list: Vec<(Vec<String>, u64)> = self.files.iter().map(|(p, v)| (p.clone(), v.size)).collect();
        let layout = Layout::files(list.iter().map(|(p, l)| (p.clone(), *l, false)).collect())
            .map_err(|e| io::Error::other(e.to_string()))?;
        let count = info_dict::pieces_for(layout.total(), CHUNK_SIZE);
        if count > MAX_CHUNKS {
            return Err(io::Error::other(format!("{} is larger than 1 TiB", top.display())));
        }
        let total = layout.total();
        let place = Place::complete(top.to_path_buf(), Arc::new(layout), self.versions())?;
        let pieces = (0..count)
            .into_par_iter()
            .map_init(
                || (Handles::new(place.clone(), false), vec![0u8; CHUNK_SIZE as usize]),
                |(files, buf), i| {
                    let off = i * CHUNK_SIZE;
                    let len = (total - off).min(CHUNK_SIZE) as usize;
                    files.read_exact_at(&mut buf[..len], off)?;
                    Ok(Sha1Hash::of(&buf[..len]))
                },
            )
            .collect::<io::Result<Vec<_>>>()?;
        let raw = info_dict::canonical_folder(name, &list, CHUNK_SIZE, &pieces);
        Manifest::from_info(&raw).map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Adds the files below `dir` (at `rel` below the top) to `found`, in no order.
fn walk(dir: &Path, rel: &mut Vec<String>, found: &mut Found) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let shown = format!("{}/{}", rel.join("/"), entry.file_name().to_string_lossy());
        let shown = shown.trim_start_matches('/').to_string();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            found.skipped.push(format!("{}: the name is not UTF-8", shown));
            continue;
        };
        if let Err(e) = validate_name(&name) {
            found.skipped.push(format!("{}: {}", shown, e.reason));
            continue;
        }
        // The entry's own type: a link is a link, never what it points at.
        let meta = fs::symlink_metadata(entry.path())?;
        rel.push(name);
        if meta.is_dir() {
            if rel.len() >= MAX_PATH_DEPTH {
                return Err(io::Error::other(format!("{} is deeper than {MAX_PATH_DEPTH} folders", shown)));
            }
            walk(&entry.path(), rel, found)?;
        } else if meta.is_file() {
            if found.files.len() >= MAX_FILES {
                return Err(io::Error::other(format!("more than {MAX_FILES} files")));
            }
            found.modified = found.modified.max(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            found.files.push((rel.clone(), FileIdentity::of(&meta)));
        } else {
            found.skipped.push(format!("{shown}: not a plain file or folder (links are not followed)"));
        }
        rel.pop();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_hashed_across_its_files_in_path_order_and_links_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("album");
        fs::create_dir_all(top.join("cd2")).unwrap();
        let a: Vec<u8> = (0..CHUNK_SIZE as usize + 10).map(|i| (i % 251) as u8).collect();
        fs::write(top.join("b.flac"), &a).unwrap();
        fs::write(top.join("a.txt"), b"liner notes").unwrap();
        fs::write(top.join("cd2/c.flac"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("cd2/passwd")).unwrap();
        let found = Found::look(&top).unwrap().unwrap();
        let paths: Vec<String> = found.files.iter().map(|(p, _)| p.join("/")).collect();
        assert_eq!(paths, ["a.txt", "b.flac", "cd2/c.flac"]);
        assert!(found.skipped.iter().any(|s| s.contains("passwd")), "{:?}", found.skipped);
        let m = found.hash_folder(&top, "album").unwrap();
        assert!(m.is_folder() && m.info.is_some());
        assert_eq!((m.size, m.chunk_count()), (11 + a.len() as u64, 2));
        let stream = [b"liner notes".as_slice(), &a].concat();
        assert_eq!(m.chunks[0], Sha1Hash::of(&stream[..CHUNK_SIZE as usize]));
        assert_eq!(m.chunks[1], Sha1Hash::of(&stream[CHUNK_SIZE as usize..]));
        // The manifest travels as file.ini and comes back the same, with the same id.
        let back = Manifest::parse(&m.to_ini()).unwrap();
        assert_eq!((back.content_id(), back.layout.entries().len()), (m.content_id(), 3));
        let before = found.stamp(None);
        fs::rename(top.join("a.txt"), top.join("a2.txt")).unwrap();
        let after = Found::look(&top).unwrap().unwrap();
        assert_ne!(after.stamp(None), before, "a rename is a new version");
    }
}
