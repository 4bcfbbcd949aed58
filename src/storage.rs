//! A torrent's bytes where they are on disk: one file, or the files of a folder
//! ([`Layout`]), read and written by their offset in the torrent's byte stream, a piece that
//! crosses files cut at the boundaries and padding read as zeros, never written.
//!
//! [`Place`] says where (the top: the file itself, or the folder) and, for a complete file
//! shared from `DIR/files`, which version of each file was hashed. [`Handles`] opens the
//! files as they are needed, keeps at most [`MAX_OPEN`] of them open and never follows a
//! symbolic link: each folder on the way must be a real folder, and the file is opened with
//! `O_NOFOLLOW`. A complete file must still be the version that was hashed (device, inode,
//! size, mtime), checked on every use, so a link or a changed file put in its place is
//! refused even if it appeared after the folders were looked at.

use crate::layout::{Layout, Span};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files one [`Handles`] keeps open (a piece crosses few files; a folder may have many).
pub const MAX_OPEN: usize = 4;

/// Which file on disk, in which version: what was hashed must be what is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
}

impl FileIdentity {
    pub fn of(meta: &Metadata) -> FileIdentity {
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        FileIdentity { dev: meta.dev(), ino: meta.ino(), size: meta.len(), mtime_ns }
    }

    /// Opens `path` for reading without following a symbolic link, and only if it is still
    /// this file in this version.
    pub fn open(&self, path: &Path) -> io::Result<File> {
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)?;
        self.check(&file)?;
        Ok(file)
    }

    /// Fails unless the open `file` is still this file in this version (one `fstat`).
    pub fn check(&self, file: &File) -> io::Result<()> {
        let now = FileIdentity::of(&file.metadata()?);
        if now != *self {
            return Err(io::Error::other("it changed on disk since it was hashed"));
        }
        Ok(())
    }
}

/// Where a torrent's files are.
#[derive(Debug, Clone)]
pub struct Place {
    top: PathBuf,
    layout: Arc<Layout>,
    /// For a complete share: each file's version as hashed (`None` for padding).
    versions: Option<Arc<[Option<FileIdentity>]>>,
}

impl Place {
    /// Files this side writes (a download in progress).
    pub fn partial(top: PathBuf, layout: Arc<Layout>) -> Place {
        Place { top, layout, versions: None }
    }

    /// Complete files as they were when hashed: `versions` names each real file's identity,
    /// in the layout's order (padding left out).
    pub fn complete(top: PathBuf, layout: Arc<Layout>, versions: Vec<FileIdentity>) -> io::Result<Place> {
        let mut given = versions.into_iter();
        let all: Vec<Option<FileIdentity>> =
            layout.entries().iter().map(|f| if f.pad { None } else { given.next() }).collect();
        if all.iter().zip(layout.entries()).any(|(v, f)| v.is_none() != f.pad) || given.next().is_some() {
            return Err(io::Error::other("a version for each file is needed"));
        }
        Ok(Place { top, layout, versions: Some(all.into()) })
    }

    /// One complete file as it is now.
    pub fn file(path: PathBuf) -> io::Result<Place> {
        let version = FileIdentity::of(&fs::symlink_metadata(&path)?);
        Place::complete(path, Arc::new(Layout::single(version.size)), vec![version])
    }

    /// The file itself, or the torrent's folder.
    pub fn top(&self) -> &Path {
        &self.top
    }

    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// The path of file `i` of the layout.
    pub fn path_of(&self, i: usize) -> PathBuf {
        self.top.join(self.layout.entries()[i].rel_path())
    }

    /// Each real file's current identity, in the layout's order (for a [`Place::complete`]).
    pub fn identities(&self) -> io::Result<Vec<FileIdentity>> {
        self.layout
            .real()
            .map(|(i, _)| Ok(FileIdentity::of(&fs::symlink_metadata(self.path_of(i))?)))
            .collect()
    }

    /// Creates the folders and every file at its length (zero-length ones too; never
    /// padding), keeping what a resumed download already wrote. Nothing is followed
    /// through a link.
    pub fn create_all(&self) -> io::Result<()> {
        if !self.layout.is_single() {
            mkdir_no_link(&self.top)?;
        }
        for (_, f) in self.layout.real() {
            let file = open_beneath(&self.top, &f.path, true)?;
            if file.metadata()?.len() != f.length {
                file.set_len(f.length)?;
            }
        }
        Ok(())
    }
}

/// A folder made if missing; an existing link or file in its place is an error.
fn mkdir_no_link(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::other(format!("{} is in the way: not a folder", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(path),
        Err(e) => Err(e),
    }
}

/// Opens `top/parts...` (the top itself when `parts` is empty) without following a link:
/// each folder on the way must be a real folder (made when `create`), the file is opened
/// with `O_NOFOLLOW`, for reading and writing when `create` (and created if missing).
fn open_beneath(top: &Path, parts: &[String], create: bool) -> io::Result<File> {
    let mut path = top.to_path_buf();
    if let Some((last, folders)) = parts.split_last() {
        for c in folders {
            path.push(c);
            if create {
                mkdir_no_link(&path)?;
            } else if !fs::symlink_metadata(&path)?.is_dir() {
                return Err(io::Error::other(format!("{} is not a folder", path.display())));
            }
        }
        path.push(last);
    }
    let mut opts = OpenOptions::new();
    opts.read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if create {
        opts.write(true).create(true).truncate(false);
    }
    let file = opts.open(&path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!("{} is not a plain file", path.display())));
    }
    Ok(file)
}

/// What to send for a stretch of the stream: bytes of an open file, or padding's zeros.
pub enum Stretch {
    File { file: Arc<File>, at: u64, len: usize },
    Zeros(usize),
}

/// The files of a [`Place`] opened as they are needed, at most [`MAX_OPEN`] at a time.
pub struct Handles {
    place: Place,
    write: bool,
    /// (file index, handle), the most recently used last.
    open: Vec<(usize, Arc<File>)>,
}

impl Handles {
    /// Handles for reading (and writing, with `write`; only a partial place is written).
    pub fn new(place: Place, write: bool) -> Handles {
        debug_assert!(!(write && place.versions.is_some()), "complete files are never written");
        Handles { place, write, open: Vec::new() }
    }

    pub fn place(&self) -> &Place {
        &self.place
    }

    /// File `i`, open (and, for a complete share, still the version hashed).
    fn file(&mut self, i: usize) -> io::Result<Arc<File>> {
        let version = self.place.versions.as_ref().and_then(|v| v[i]);
        if let Some(at) = self.open.iter().position(|(k, _)| *k == i) {
            let entry = self.open.remove(at);
            if let Some(version) = version {
                version.check(&entry.1)?; // dropped, so a changed file is opened afresh next time
            }
            self.open.push(entry);
            return Ok(Arc::clone(&self.open[self.open.len() - 1].1));
        }
        let file = open_beneath(&self.place.top, &self.place.layout.entries()[i].path, self.write)?;
        if let Some(version) = version {
            version.check(&file)?;
        }
        if self.open.len() >= MAX_OPEN {
            self.open.remove(0);
        }
        let file = Arc::new(file);
        self.open.push((i, Arc::clone(&file)));
        Ok(file)
    }

    /// The stretches of open files (or zeros) that hold `len` bytes from `offset`.
    pub fn stretches(&mut self, offset: u64, len: usize) -> io::Result<Vec<Stretch>> {
        let spans: Vec<Span> = self.place.layout.spans(offset, len);
        let mut out = Vec::with_capacity(spans.len());
        for s in spans {
            if self.place.layout.entries()[s.file].pad {
                out.push(Stretch::Zeros(s.len));
            } else {
                out.push(Stretch::File { file: self.file(s.file)?, at: s.at, len: s.len });
            }
        }
        Ok(out)
    }

    /// Reads `buf.len()` bytes of the stream from `offset`.
    pub fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        for s in self.stretches(offset, buf.len())? {
            match s {
                Stretch::Zeros(n) => {
                    buf[done..done + n].fill(0);
                    done += n;
                }
                Stretch::File { file, at, len } => {
                    file.read_exact_at(&mut buf[done..done + len], at)?;
                    done += len;
                }
            }
        }
        Ok(())
    }

    /// Writes `bytes` into the stream at `offset` (padding's share is dropped).
    pub fn write_all_at(&mut self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        for s in self.stretches(offset, bytes.len())? {
            match s {
                Stretch::Zeros(n) => done += n,
                Stretch::File { file, at, len } => {
                    file.write_all_at(&bytes[done..done + len], at)?;
                    done += len;
                }
            }
        }
        Ok(())
    }

    /// The files open now.
    pub fn open_files(&self) -> Vec<Arc<File>> {
        self.open.iter().map(|(_, f)| Arc::clone(f)).collect()
    }

    /// Syncs every real file to disk (each opened in turn).
    pub fn sync_all(&mut self) -> io::Result<()> {
        let real: Vec<usize> = self.place.layout.real().map(|(i, _)| i).collect();
        for i in real {
            self.file(i)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> Arc<Layout> {
        let p = |s: &str| s.split('/').map(str::to_string).collect::<Vec<_>>();
        Arc::new(
            Layout::files(vec![
                (p("a.txt"), 5, false),
                (p("empty"), 0, false),
                (p(".pad/3"), 3, true),
                (p("sub/deeper/b.bin"), 7, false),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn a_folder_is_written_and_read_across_its_files_with_padding_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("album");
        let place = Place::partial(top.clone(), folder());
        place.create_all().unwrap();
        let mut h = Handles::new(place.clone(), true);
        h.write_all_at(b"hello\xff\xff\xffworld!!", 0).unwrap();
        assert_eq!(fs::read(top.join("a.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(top.join("empty")).unwrap(), b"");
        assert_eq!(fs::read(top.join("sub/deeper/b.bin")).unwrap(), b"world!!");
        assert!(!top.join(".pad").exists(), "padding is never written");
        let mut buf = [9u8; 8];
        h.read_exact_at(&mut buf, 3).unwrap();
        assert_eq!(&buf, b"lo\0\0\0wor");
        // Complete: every file's version is checked on use.
        let done = Place::complete(top.clone(), folder(), place.identities().unwrap()).unwrap();
        let mut r = Handles::new(done, false);
        r.read_exact_at(&mut buf, 3).unwrap();
        fs::write(top.join("sub/deeper/b.bin"), b"changed!").unwrap();
        let err = r.read_exact_at(&mut buf, 3).unwrap_err();
        assert!(err.to_string().contains("changed on disk"), "{err}");
    }

    #[test]
    fn a_link_on_the_way_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let top = dir.path().join("album");
        fs::create_dir(&top).unwrap();
        // A folder on the way that is a link out: neither created through nor read through.
        std::os::unix::fs::symlink(&outside, top.join("sub")).unwrap();
        let place = Place::partial(top.clone(), folder());
        assert!(place.create_all().is_err());
        assert!(fs::read_dir(&outside).unwrap().next().is_none(), "nothing written outside");
        let mut h = Handles::new(place, false);
        let mut buf = [0u8; 7];
        assert!(h.read_exact_at(&mut buf, 8).is_err());
        // The file itself a link: O_NOFOLLOW.
        fs::write(outside.join("secret"), b"secret!").unwrap();
        fs::remove_file(top.join("sub")).unwrap();
        fs::create_dir_all(top.join("sub/deeper")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), top.join("sub/deeper/b.bin")).unwrap();
        assert!(h.read_exact_at(&mut buf, 8).is_err());
        assert_ne!(&buf, b"secret!");
    }

    #[test]
    fn no_more_than_max_open_files_are_kept_open() {
        let dir = tempfile::tempdir().unwrap();
        let files = (0..10).map(|i| (vec![format!("f{i}")], 1, false)).collect();
        let place = Place::partial(dir.path().join("t"), Arc::new(Layout::files(files).unwrap()));
        place.create_all().unwrap();
        let mut h = Handles::new(place, true);
        h.write_all_at(&[7; 10], 0).unwrap();
        assert_eq!(h.open_files().len(), MAX_OPEN);
        let mut buf = [0u8; 10];
        h.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf, [7; 10]);
    }
}
