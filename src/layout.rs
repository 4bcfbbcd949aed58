//! Where a torrent's bytes go: one file, or the files of a folder laid end to end (BEP 3's
//! `files`), pieces crossing from one into the next. BEP 47 padding files take up room in
//! the byte stream (zeros) but are never written as files.
//!
//! Every path in a torrent is hostile input. [`Layout::files`] refuses the torrent unless
//! every path is a plain relative path of valid names ([`validate_name`]: no `..`, `.`,
//! empty components, NUL, separators inside a component, control or invisible characters),
//! at most [`MAX_PATH_DEPTH`] components and [`MAX_PATH_BYTES`] bytes, and no two paths
//! collide (the same path, the same path in another case, or a file where another path
//! needs a folder). Paths are relative to the torrent's own folder, `DIR/files/<name>/`.

use crate::names::{validate_name, BadName};
use std::fmt;
use std::path::PathBuf;

/// Most files one torrent may have.
pub const MAX_FILES: usize = 100_000;
/// Most components in one path inside a torrent.
pub const MAX_PATH_DEPTH: usize = 32;
/// Longest path inside a torrent, in bytes with its separators (PATH_MAX is 4096, and the
/// folder it goes into takes some).
pub const MAX_PATH_BYTES: usize = 2048;

/// One file of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Components below the torrent's folder; empty for a single-file torrent (the file is
    /// the top itself).
    pub path: Vec<String>,
    pub length: u64,
    /// Where the file starts in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 padding file: zeros, never written.
    pub pad: bool,
}

impl FileEntry {
    /// The path below the top, as a relative `PathBuf`.
    pub fn rel_path(&self) -> PathBuf {
        self.path.iter().collect()
    }
}

/// The files of a torrent in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    files: Vec<FileEntry>,
    total: u64,
    single: bool,
}

/// A stretch of one file that a range of the byte stream covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index into [`Layout::entries`].
    pub file: usize,
    /// Offset within that file.
    pub at: u64,
    pub len: usize,
}

/// Why a torrent's file list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    NoFiles,
    TooManyFiles(usize),
    EmptyPath,
    BadComponent { path: String, why: BadName },
    TooDeep(String),
    TooLong(usize),
    Collides(String, String),
    TooLarge,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::NoFiles => write!(f, "the torrent's file list is empty"),
            LayoutError::TooManyFiles(n) => write!(f, "{n} files: more than {MAX_FILES}"),
            LayoutError::EmptyPath => write!(f, "a file has an empty path"),
            LayoutError::BadComponent { path, why } => write!(f, "the path '{}': {why}", shown(path)),
            LayoutError::TooDeep(p) => {
                write!(f, "the path '{}' is deeper than {MAX_PATH_DEPTH} folders", shown(p))
            }
            LayoutError::TooLong(n) => write!(f, "a path of {n} bytes: longer than {MAX_PATH_BYTES}"),
            LayoutError::Collides(a, b) => {
                write!(f, "the paths '{}' and '{}' collide", shown(a), shown(b))
            }
            LayoutError::TooLarge => write!(f, "the files add up to more bytes than a torrent can hold"),
        }
    }
}

impl std::error::Error for LayoutError {}

/// A path as a user may see it in one line: at most 80 characters, escaped.
fn shown(p: &str) -> String {
    let cut: String = p.chars().take(80).collect();
    let more = if p.chars().count() > 80 { "..." } else { "" };
    format!("{}{more}", cut.escape_debug())
}

impl Layout {
    /// One file of `length` bytes.
    pub fn single(length: u64) -> Layout {
        let entry = FileEntry { path: Vec::new(), length, offset: 0, pad: false };
        Layout { files: vec![entry], total: length, single: true }
    }

    /// The files of a folder torrent, each `(path, length, pad)` in the torrent's order,
    /// checked as the module says. Padding files' paths are not checked: they are never
    /// written.
    pub fn files(list: Vec<(Vec<String>, u64, bool)>) -> Result<Layout, LayoutError> {
        if list.is_empty() {
            return Err(LayoutError::NoFiles);
        }
        if list.len() > MAX_FILES {
            return Err(LayoutError::TooManyFiles(list.len()));
        }
        let mut files = Vec::with_capacity(list.len());
        let mut offset = 0u64;
        for (path, length, pad) in list {
            if !pad {
                check_path(&path)?;
            }
            files.push(FileEntry { path, length, offset, pad });
            offset = offset.checked_add(length).ok_or(LayoutError::TooLarge)?;
        }
        check_collisions(&files)?;
        Ok(Layout { files, total: offset, single: false })
    }

    /// A single file (its path is the top itself), not a folder.
    pub fn is_single(&self) -> bool {
        self.single
    }

    pub fn entries(&self) -> &[FileEntry] {
        &self.files
    }

    /// The bytes of all files together.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The files that are written: not padding.
    pub fn real(&self) -> impl Iterator<Item = (usize, &FileEntry)> {
        self.files.iter().enumerate().filter(|(_, f)| !f.pad)
    }

    /// The stretches of files that bytes `offset..offset + len` of the stream cover, in
    /// order; zero-length files are skipped. The range must lie within [`total`](Self::total).
    pub fn spans(&self, offset: u64, len: usize) -> Vec<Span> {
        let end = offset + len as u64;
        debug_assert!(end <= self.total, "range {offset}+{len} past {}", self.total);
        // The first file that ends after `offset`.
        let first = self.files.partition_point(|f| f.offset + f.length <= offset);
        let mut out = Vec::new();
        for (i, f) in self.files.iter().enumerate().skip(first) {
            if f.offset >= end || offset == end {
                break; // past the range, or an empty range: no span at all
            }
            if f.length == 0 {
                continue;
            }
            let from = offset.max(f.offset);
            let to = end.min(f.offset + f.length);
            out.push(Span { file: i, at: from - f.offset, len: (to - from) as usize });
        }
        out
    }
}

/// One path's own rules: components, depth and length.
fn check_path(path: &[String]) -> Result<(), LayoutError> {
    if path.is_empty() {
        return Err(LayoutError::EmptyPath);
    }
    let joined = path.join("/");
    if path.len() > MAX_PATH_DEPTH {
        return Err(LayoutError::TooDeep(joined));
    }
    if joined.len() > MAX_PATH_BYTES {
        return Err(LayoutError::TooLong(joined.len()));
    }
    for c in path {
        validate_name(c).map_err(|why| LayoutError::BadComponent { path: joined.clone(), why })?;
    }
    Ok(())
}

/// No two written files may land on the same place, even on a file system that ignores
/// case, and no file may stand where another path needs a folder.
fn check_collisions(files: &[FileEntry]) -> Result<(), LayoutError> {
    use std::collections::HashMap;
    let folded = |parts: &[String]| parts.iter().map(|c| c.to_lowercase()).collect::<Vec<_>>().join("/");
    let mut taken: HashMap<String, &FileEntry> = HashMap::new();
    for f in files.iter().filter(|f| !f.pad) {
        if let Some(other) = taken.insert(folded(&f.path), f) {
            return Err(LayoutError::Collides(other.path.join("/"), f.path.join("/")));
        }
    }
    for f in files.iter().filter(|f| !f.pad) {
        for depth in 1..f.path.len() {
            if let Some(file) = taken.get(&folded(&f.path[..depth])) {
                return Err(LayoutError::Collides(file.path.join("/"), f.path.join("/")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Vec<String> {
        s.split('/').map(str::to_string).collect()
    }

    fn layout(files: &[(&str, u64)]) -> Result<Layout, LayoutError> {
        Layout::files(files.iter().map(|(path, len)| (p(path), *len, false)).collect())
    }

    #[test]
    fn pieces_that_span_files_are_cut_at_the_boundaries_and_empty_files_skipped() {
        let l = Layout::files(vec![
            (p("a"), 10, false),
            (p("empty"), 0, false),
            (p(".pad/6"), 6, true),
            (p("d/b"), 20, false),
        ])
        .unwrap();
        assert_eq!(l.total(), 36);
        assert_eq!(
            l.spans(8, 10),
            vec![
                Span { file: 0, at: 8, len: 2 },
                Span { file: 2, at: 0, len: 6 },
                Span { file: 3, at: 0, len: 2 }
            ]
        );
        assert_eq!(l.spans(16, 20), vec![Span { file: 3, at: 0, len: 20 }]);
        assert_eq!(l.spans(0, 10), vec![Span { file: 0, at: 0, len: 10 }]);
        assert_eq!(l.real().map(|(i, _)| i).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(Layout::single(5).spans(1, 3), vec![Span { file: 0, at: 1, len: 3 }]);
    }

    #[test]
    fn hostile_paths_are_refused_with_the_path_named() {
        for bad in
            ["../x", "a/../../x", "./x", "a//b", "", "a/\0b", "a\\..\\b", "a/.", "x/\u{202E}gpj.exe", " "]
        {
            let err = layout(&[(bad, 1)]).unwrap_err();
            assert!(
                matches!(err, LayoutError::BadComponent { .. } | LayoutError::EmptyPath),
                "{bad:?} gave {err:?}"
            );
        }
        assert_eq!(Layout::files(vec![(vec![], 1, false)]), Err(LayoutError::EmptyPath));
        let deep = vec!["d"; MAX_PATH_DEPTH + 1].join("/");
        assert!(matches!(layout(&[(&deep, 1)]), Err(LayoutError::TooDeep(_))));
        let long = vec!["x".repeat(200); 11].join("/");
        assert!(matches!(layout(&[(&long, 1)]), Err(LayoutError::TooLong(_))));
        assert_eq!(Layout::files(vec![]), Err(LayoutError::NoFiles));
        assert_eq!(layout(&[("a", u64::MAX), ("b", 1)]), Err(LayoutError::TooLarge));
        let msg = layout(&[("ok/../../etc/passwd", 1)]).unwrap_err().to_string();
        assert!(msg.contains("ok/../../etc/passwd"), "{msg}");
    }

    #[test]
    fn paths_that_land_on_the_same_place_collide() {
        for pair in [["a/b", "a/b"], ["Song.mp3", "song.MP3"], ["a", "a/b"], ["x/y/z", "x/Y"]] {
            let err = layout(&[(pair[0], 1), (pair[1], 1)]).unwrap_err();
            assert!(matches!(err, LayoutError::Collides(..)), "{pair:?}: {err:?}");
        }
        layout(&[("a/b", 1), ("a/c", 1), ("ab", 0)]).unwrap();
        // Padding files may share a name: they are never written.
        Layout::files(vec![(p(".pad/1"), 1, true), (p("a"), 1, false), (p(".pad/1"), 1, true)]).unwrap();
    }

    proptest! {
        /// The spans of any range cover it exactly, in order, within their files.
        #[test]
        fn spans_cover_a_range_exactly(lens in prop::collection::vec(0u64..50, 1..12), a in 0u64..600, b in 0u64..600) {
            let files = lens.iter().enumerate().map(|(i, &l)| (vec![format!("f{i}")], l, false)).collect();
            let l = Layout::files(files).unwrap();
            let (lo, hi) = (a.min(b).min(l.total()), a.max(b).min(l.total()));
            let spans = l.spans(lo, (hi - lo) as usize);
            let mut at = lo;
            for s in &spans {
                let f = &l.entries()[s.file];
                prop_assert_eq!(f.offset + s.at, at);
                prop_assert!(s.len > 0 && s.at + s.len as u64 <= f.length);
                at += s.len as u64;
            }
            prop_assert_eq!(at, hi);
        }

        /// Whatever a torrent's path list holds, every path accepted stays below its folder.
        #[test]
        fn no_accepted_path_leaves_its_folder(parts in prop::collection::vec(
            prop::sample::select(vec!["..", ".", "", "a", "b/c", "\0", "/", "C:", "~", " x", "é"]), 1..5)) {
            let path: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            if let Ok(l) = Layout::files(vec![(path, 1, false)]) {
                let rel = l.entries()[0].rel_path();
                prop_assert!(rel.is_relative());
                prop_assert!(rel.components().all(|c| matches!(c, std::path::Component::Normal(_))));
                prop_assert_eq!(rel.components().count(), l.entries()[0].path.len());
            }
        }
    }
}
