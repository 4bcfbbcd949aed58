//! Replacing a small file whole: readers see the old bytes or the new, never a mix.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// How much a write must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the call returns, the rename too (manifests, which a restart trusts).
    Synced,
    /// Atomic but not synced: a hint checked again before use (the `have` list of a
    /// partial download, rewritten every second), where an fsync would stall the download.
    Hint,
}

/// Writes `bytes` to `path` through a uniquely named temporary file in the same folder
/// and a rename, so two writers never share a temporary and a crash leaves no half file.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if durability == Durability::Synced {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    if durability == Durability::Synced {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.ini");
        write_atomic(&path, b"old", Durability::Synced).unwrap();
        write_atomic(&path, b"new", Durability::Hint).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("file.ini")]);
    }

    #[test]
    fn concurrent_writers_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("have");
        std::thread::scope(|s| {
            for i in 0..4u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[i; 4096], Durability::Hint).unwrap();
                    }
                });
            }
        });
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|b| *b == bytes[0]), "bytes of two writers mixed");
    }
}
