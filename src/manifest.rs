//! The manifest of a shared file, `file.ini` as in the original:
//!
//! ```ini
//! [file]
//! name = test.pdf
//! size = 36700160
//! chunk_size = 1048576
//! chunks_count = 35
//! sha1 = <SHA-1 of the whole file>
//!
//! [chunks]
//! 0 = <SHA-1 of chunk 0>
//! ...
//! ```
//!
//! The file's content id is not the text's hash but the BitTorrent v1 info-hash of the same
//! facts (name, size, piece length, chunk hashes; see [`info_dict`](crate::info_dict)): a
//! peer that receives a `file.ini` rebuilds the info dictionary from it and checks that
//! hash. The whole-file `sha1` line is informational (a torrent has none, so it may be
//! missing). Chunks are hashed in parallel with rayon.
//!
//! Our own files have 1 MiB chunks and the canonical info dictionary. A file that came from
//! someone else's torrent keeps that torrent's piece length (`chunk_size`, any power of two
//! from 16 KiB to 64 MiB) and, when its info dictionary is not the canonical one (extra keys
//! such as `private` or `source`, a hybrid's v2 part), the dictionary's own bytes as hex in
//! an `info` line; the `[chunks]` section is then left out, the piece hashes being in it.
//!
//! A folder (a torrent's `files`, or a folder put into `DIR/files/`) always travels as its
//! `info` line: the file list is in the dictionary. `name` is the folder's, `size` all its
//! files' bytes together, and a `files` line says how many files it has.

use crate::hash::{ContentId, Sha1Hash};
use crate::info_dict::{self, InfoDict, InfoError, MAX_INFO_BYTES};
use crate::layout::Layout;
use crate::names::{validate_name, BadName};
use configparser::ini::{Ini, IniDefault};
use rayon::prelude::*;
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Our own files' chunks are 1 MiB, but the last, which may be shorter (a torrent's may be
/// another power of two: [`Manifest::piece_length`]).
pub const CHUNK_SIZE: u64 = 1 << 20;
/// Largest file a manifest may describe: 2^20 chunks, 1 TiB at 1 MiB.
pub const MAX_CHUNKS: u64 = info_dict::MAX_PIECES;
/// Largest manifest text accepted from a peer.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// A chunk number checked against a manifest: only [`Manifest::index`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkIndex(u32);

impl ChunkIndex {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A file's name, size, whole-file SHA-1 (when known), chunk length and the SHA-1 of each
/// chunk; for a file from someone else's torrent, that torrent's info dictionary too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub size: u64,
    /// Informational: known for a file hashed here, unknown for one from a torrent.
    pub sha1: Option<Sha1Hash>,
    pub chunks: Vec<Sha1Hash>,
    /// [`CHUNK_SIZE`] for our own files; a torrent's piece length for others.
    pub piece_length: u64,
    /// The info dictionary's own bytes, when they are not the canonical form of the facts
    /// above (the content id is their SHA-1).
    pub info: Option<RawInfo>,
    /// `private = 1` in that dictionary: peers come only from the torrent's own trackers.
    pub private: bool,
    /// One file, or the files of a folder, laid end to end.
    pub layout: Arc<Layout>,
}

/// An info dictionary's bytes as they came.
#[derive(Clone, PartialEq, Eq)]
pub struct RawInfo(pub Arc<[u8]>);

impl fmt::Debug for RawInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawInfo({} bytes)", self.0.len())
    }
}

/// Why a manifest text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    Syntax(String),
    Missing(&'static str),
    BadValue {
        key: String,
        value: String,
    },
    BadName(BadName),
    CountMismatch {
        size: u64,
        chunks_count: u64,
    },
    TooManyChunks(u64),
    TooLarge(usize),
    UnsupportedChunkSize(u64),
    /// Its `info` line does not hold a usable info dictionary.
    Info(InfoError),
    /// Its fields say other than its `info` line.
    Disagrees(&'static str),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Syntax(e) => write!(f, "manifest is not INI: {e}"),
            ManifestError::Missing(key) => write!(f, "manifest lacks {key}"),
            ManifestError::BadValue { key, value } => {
                let v: String = value.chars().take(60).collect();
                write!(f, "manifest has a bad {key}: '{v}'")
            }
            ManifestError::BadName(e) => write!(f, "manifest names a bad file: {e}"),
            ManifestError::CountMismatch { size, chunks_count } => {
                write!(f, "manifest says {size} bytes but {chunks_count} chunks")
            }
            ManifestError::TooManyChunks(n) => write!(f, "manifest has {n} chunks (limit {MAX_CHUNKS})"),
            ManifestError::TooLarge(n) => write!(f, "manifest of {n} bytes is over the limit"),
            ManifestError::UnsupportedChunkSize(n) => write!(f, "chunk size {n} is not supported"),
            ManifestError::Info(e) => write!(f, "manifest's info dictionary: {e}"),
            ManifestError::Disagrees(key) => write!(f, "manifest's {key} disagrees with its info dictionary"),
        }
    }
}

impl std::error::Error for ManifestError {}

/// How many 1 MiB chunks a file of `size` bytes has.
pub fn chunks_for(size: u64) -> u64 {
    info_dict::pieces_for(size, CHUNK_SIZE)
}

impl Manifest {
    /// One of our own files: 1 MiB chunks, the canonical info dictionary.
    pub fn new(name: String, size: u64, sha1: Option<Sha1Hash>, chunks: Vec<Sha1Hash>) -> Manifest {
        let layout = Arc::new(Layout::single(size));
        Manifest { name, size, sha1, chunks, piece_length: CHUNK_SIZE, info: None, private: false, layout }
    }

    /// The file an info dictionary describes (received over ut_metadata, in a `.torrent` or
    /// a peer's `file.ini`), checked by [`info_dict::parse`]. The bytes are kept unless they
    /// are the canonical form of what they say.
    pub fn from_info(raw: &[u8]) -> Result<Manifest, InfoError> {
        let InfoDict { name, length, layout, piece_length, pieces, private } = info_dict::parse(raw)?;
        let canonical =
            layout.is_single() && info_dict::canonical(&name, length, piece_length, &pieces) == raw;
        let info = (!canonical).then(|| RawInfo(Arc::from(raw)));
        let layout = Arc::new(layout);
        Ok(Manifest { name, size: length, sha1: None, chunks: pieces, piece_length, info, private, layout })
    }

    /// A folder's files, not a single file.
    pub fn is_folder(&self) -> bool {
        !self.layout.is_single()
    }

    /// The bencoded info dictionary: the bytes kept, or the canonical form.
    pub fn info_bytes(&self) -> Cow<'_, [u8]> {
        match &self.info {
            Some(RawInfo(raw)) => Cow::Borrowed(raw),
            None => Cow::Owned(info_dict::canonical(&self.name, self.size, self.piece_length, &self.chunks)),
        }
    }

    /// Where chunk `i` starts in the file.
    pub fn offset(&self, i: ChunkIndex) -> u64 {
        u64::from(i.0) * self.piece_length
    }

    pub fn chunk_count(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// Checks `i` against this manifest.
    pub fn index(&self, i: u32) -> Option<ChunkIndex> {
        ((i as usize) < self.chunks.len()).then_some(ChunkIndex(i))
    }

    /// The length of chunk `i` (the last may be short).
    pub fn chunk_len(&self, i: ChunkIndex) -> usize {
        (self.size - self.offset(i)).min(self.piece_length) as usize
    }

    pub fn chunk_hash(&self, i: ChunkIndex) -> Sha1Hash {
        self.chunks[i.0 as usize]
    }

    /// The canonical `file.ini` text.
    pub fn to_ini(&self) -> String {
        let mut s = String::with_capacity(200 + self.chunks.len() * 52);
        let _ = write!(
            s,
            "[file]\nname = {}\nsize = {}\nchunk_size = {}\nchunks_count = {}\n",
            self.name,
            self.size,
            self.piece_length,
            self.chunks.len(),
        );
        if let Some(sha1) = self.sha1 {
            let _ = writeln!(s, "sha1 = {sha1}");
        }
        if self.is_folder() {
            let _ = writeln!(s, "files = {}", self.layout.entries().len());
        }
        if let Some(RawInfo(raw)) = &self.info {
            s.push_str("info = ");
            for b in raw.iter() {
                let _ = write!(s, "{b:02x}");
            }
            s.push('\n');
            return s; // the piece hashes are in the info dictionary
        }
        s.push_str("\n[chunks]\n");
        for (i, h) in self.chunks.iter().enumerate() {
            let _ = writeln!(s, "{i} = {h}");
        }
        s
    }

    /// The file's id: its BitTorrent v1 info-hash (see [`info_bytes`](Self::info_bytes)).
    pub fn content_id(&self) -> ContentId {
        ContentId::of(&self.info_bytes())
    }

    /// Parses and checks a `file.ini` text: a valid name, sizes and counts that agree,
    /// chunk keys exactly `0..chunks_count`, every hash valid.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(text.len()));
        }
        let mut defaults = IniDefault::default();
        defaults.case_sensitive = true;
        defaults.enable_inline_comments = false;
        let mut ini = Ini::new_from_defaults(defaults);
        let mut map =
            ini.read(text.to_string()).map_err(|e| ManifestError::Syntax(crate::text::one_line(&e)))?;
        let file = map.remove("file").ok_or(ManifestError::Missing("a [file] section"))?;
        let get = |key: &'static str| -> Result<String, ManifestError> {
            file.get(key).cloned().flatten().ok_or(ManifestError::Missing(key))
        };
        let num = |key: &'static str| -> Result<u64, ManifestError> {
            let v = get(key)?;
            v.parse().map_err(|_| ManifestError::BadValue { key: key.into(), value: v })
        };
        let name = get("name")?;
        validate_name(&name).map_err(ManifestError::BadName)?;
        let size = num("size")?;
        let chunk_size = num("chunk_size")?;
        if !info_dict::valid_piece_length(chunk_size) {
            return Err(ManifestError::UnsupportedChunkSize(chunk_size));
        }
        let count = num("chunks_count")?;
        if count > MAX_CHUNKS {
            return Err(ManifestError::TooManyChunks(count));
        }
        if count != info_dict::pieces_for(size, chunk_size) {
            return Err(ManifestError::CountMismatch { size, chunks_count: count });
        }
        let sha1 = match file.get("sha1").cloned().flatten() {
            Some(v) => Some(parse_hash("sha1", &v)?),
            None => None,
        };
        if let Some(hex) = file.get("info").cloned().flatten() {
            let mut m = Manifest::from_info(&from_hex(&hex)?).map_err(ManifestError::Info)?;
            for (key, agrees) in [
                ("name", m.name == name),
                ("size", m.size == size),
                ("chunk_size", m.piece_length == chunk_size),
            ] {
                if !agrees {
                    return Err(ManifestError::Disagrees(key));
                }
            }
            let files = file.get("files").cloned().flatten();
            if m.is_folder() && files != Some(m.layout.entries().len().to_string()) {
                return Err(ManifestError::Disagrees("files"));
            }
            m.sha1 = sha1;
            return Ok(m);
        }
        if file.contains_key("files") {
            return Err(ManifestError::Missing("the info line of a folder"));
        }
        let chunks = map.remove("chunks").ok_or(ManifestError::Missing("a [chunks] section"))?;
        let chunks = chunk_list(chunks, count)?;
        let mut m = Manifest::new(name, size, sha1, chunks);
        m.piece_length = chunk_size;
        Ok(m)
    }
}

/// The bytes an `info` line spells in hex.
fn from_hex(hex: &str) -> Result<Vec<u8>, ManifestError> {
    let bad = || ManifestError::BadValue { key: "info".into(), value: hex.chars().take(60).collect() };
    if hex.len() > 2 * MAX_INFO_BYTES {
        return Err(bad());
    }
    crate::hash::decode_hex(hex).ok_or_else(bad)
}

fn parse_hash(key: &str, value: &str) -> Result<Sha1Hash, ManifestError> {
    value.parse().map_err(|_| ManifestError::BadValue { key: key.into(), value: value.into() })
}

fn chunk_list(section: HashMap<String, Option<String>>, count: u64) -> Result<Vec<Sha1Hash>, ManifestError> {
    if section.len() as u64 != count {
        let key = "chunk list".to_string();
        return Err(ManifestError::BadValue {
            key,
            value: format!("{} entries for {count} chunks", section.len()),
        });
    }
    let mut out = vec![Sha1Hash([0; 20]); count as usize];
    for (key, value) in section {
        let i: u64 = key
            .parse()
            .map_err(|_| ManifestError::BadValue { key: "chunk key".into(), value: key.clone() })?;
        if i >= count || key != i.to_string() {
            return Err(ManifestError::BadValue { key: "chunk key".into(), value: key });
        }
        let value = value.unwrap_or_default();
        out[i as usize] = parse_hash(&format!("chunk {i}"), &value)?;
    }
    Ok(out)
}

/// Reads and hashes a file into its manifest. With `parallel`, chunks are hashed by rayon
/// while one thread computes the whole-file SHA-1; without, one pass does both.
pub fn hash_file(path: &Path, name: &str, parallel: bool) -> io::Result<Manifest> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let count = chunks_for(size);
    if count > MAX_CHUNKS {
        return Err(io::Error::other(format!("{} is larger than 1 TiB", path.display())));
    }
    let (sha1, chunks) = if parallel {
        let (whole, chunks) = rayon::join(|| whole_file_sha1(&file), || hash_chunks_parallel(&file, size));
        (whole?, chunks?)
    } else {
        hash_sequential(&file, size)?
    };
    Ok(Manifest::new(name.to_string(), size, Some(sha1), chunks))
}

fn chunk_range(size: u64, i: u64) -> (u64, usize) {
    let off = i * CHUNK_SIZE;
    (off, (size - off).min(CHUNK_SIZE) as usize)
}

fn hash_chunks_parallel(file: &File, size: u64) -> io::Result<Vec<Sha1Hash>> {
    (0..chunks_for(size))
        .into_par_iter()
        .map_init(
            || vec![0u8; CHUNK_SIZE as usize],
            |buf, i| {
                let (off, len) = chunk_range(size, i);
                file.read_exact_at(&mut buf[..len], off)?;
                Ok(Sha1Hash::of(&buf[..len]))
            },
        )
        .collect()
}

/// The SHA-1 of everything `file` holds, read from the start.
pub fn whole_file_sha1(file: &File) -> io::Result<Sha1Hash> {
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    let mut off = 0u64;
    loop {
        let n = file.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        off += n as u64;
    }
    Ok(Sha1Hash::from_hasher(hasher))
}

fn hash_sequential(mut file: &File, size: u64) -> io::Result<(Sha1Hash, Vec<Sha1Hash>)> {
    let mut whole = Sha1::new();
    let mut chunks = Vec::with_capacity(chunks_for(size) as usize);
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    for i in 0..chunks_for(size) {
        let (_, len) = chunk_range(size, i);
        file.read_exact(&mut buf[..len])?;
        whole.update(&buf[..len]);
        chunks.push(Sha1Hash::of(&buf[..len]));
    }
    Ok((Sha1Hash::from_hasher(whole), chunks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample(size: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        File::create(&path).unwrap().write_all(&data).unwrap();
        (dir, path, data)
    }

    #[test]
    fn hashes_chunks_and_whole_file_both_ways() {
        let (_d, path, data) = sample(2 * CHUNK_SIZE as usize + 123);
        let par = hash_file(&path, "f.bin", true).unwrap();
        let seq = hash_file(&path, "f.bin", false).unwrap();
        assert_eq!(par, seq);
        assert_eq!(par.chunks.len(), 3);
        assert_eq!(par.sha1, Some(Sha1Hash::of(&data)));
        assert_eq!(par.chunks[2], Sha1Hash::of(&data[2 * CHUNK_SIZE as usize..]));
        assert_eq!(par.chunk_len(par.index(2).unwrap()), 123);
        assert!(par.index(3).is_none());
    }

    #[test]
    fn ini_round_trip_and_stable_id() {
        let (_d, path, _) = sample(5000);
        let m = hash_file(&path, "a = b; #c.txt", true).unwrap();
        let text = m.to_ini();
        assert!(text.starts_with("[file]\nname = a = b; #c.txt\nsize = 5000\n"));
        assert!(text.contains("chunks_count = 1\n"));
        let back = Manifest::parse(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.content_id(), ContentId::of(&m.info_bytes()), "the id is the info-hash");
        let mut no_sha1 = m.clone();
        no_sha1.sha1 = None;
        assert_eq!(no_sha1.content_id(), m.content_id(), "the whole-file SHA-1 is not part of the id");
        assert_eq!(Manifest::parse(&no_sha1.to_ini()).unwrap(), no_sha1, "a file.ini without sha1 reads");
    }

    #[test]
    fn empty_file_has_no_chunks() {
        let (_d, path, _) = sample(0);
        let m = hash_file(&path, "empty", true).unwrap();
        assert_eq!(m.chunk_count(), 0);
        assert_eq!(Manifest::parse(&m.to_ini()).unwrap(), m);
    }

    fn good() -> Manifest {
        Manifest::new(
            "x".into(),
            CHUNK_SIZE + 1,
            Some(Sha1Hash::of(b"w")),
            vec![Sha1Hash::of(b"0"), Sha1Hash::of(b"1")],
        )
    }

    #[test]
    fn refuses_inconsistent_or_hostile_manifests() {
        let text = good().to_ini();
        let cases = [
            (text.replace("size = 1048577", "size = 99999999"), "bytes but"),
            (text.replace("chunks_count = 2", "chunks_count = 1099511627776"), "limit"),
            (text.replace("name = x", "name = ../../etc/passwd"), "invalid file name"),
            (text.replace("name = x", "name = /abs"), "invalid file name"),
            (text.replace("chunk_size = 1048576", "chunk_size = 4"), "not supported"),
            (text.replace("[chunks]", "[nope]"), "lacks a [chunks]"),
            (text.replace("sha1 = ", "sha1 = zz"), "bad sha1"),
            (text.replace("\n1 = ", "\n7 = "), "chunk key"),
            (text.replace("\n1 = ", "\n01 = "), "chunk key"),
            (text.replace("\n1 = ", "\n1 = bad"), "bad chunk 1"),
            (text.replace("name = x\n", ""), "lacks name"),
            ("[file\nname".to_string(), "not INI"),
            (text.replace("chunk_size = 1048576", "chunk_size = 3000000"), "not supported"),
        ];
        for (t, expect) in cases {
            let err = Manifest::parse(&t).unwrap_err().to_string();
            assert!(err.contains(expect), "expected {expect:?} in {err:?}");
        }
    }

    #[test]
    fn a_torrents_piece_length_and_info_dictionary_travel_in_file_ini() {
        let pieces: Vec<Sha1Hash> = (0..3u8).map(|i| Sha1Hash::of(&[i])).collect();
        // Canonical but with 256 KiB pieces: no info line, the chunk size says it.
        let canonical = info_dict::canonical("t.bin", 3 << 18, 1 << 18, &pieces);
        let m = Manifest::from_info(&canonical).unwrap();
        assert!(m.info.is_none());
        let text = m.to_ini();
        assert!(text.contains("chunk_size = 262144") && text.contains("[chunks]"), "{text}");
        let back = Manifest::parse(&text).unwrap();
        assert_eq!((back.content_id(), back.piece_length), (ContentId::of(&canonical), 1 << 18));
        let idx = back.index(2).unwrap();
        assert_eq!((back.offset(idx), back.chunk_len(idx)), (2 << 18, 1 << 18));
        // With a key of its own (private): the bytes travel, and the id is theirs.
        let private = [&canonical[..canonical.len() - 1], b"7:privatei1ee"].concat();
        let m = Manifest::from_info(&private).unwrap();
        assert!(m.private && m.info.is_some());
        let back = Manifest::parse(&m.to_ini()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.content_id(), ContentId::of(&private));
        // An info line whose facts differ from the fields is refused.
        let lie = m.to_ini().replace("size = 786432", "size = 786431");
        assert!(Manifest::parse(&lie).is_err());
        let lie = m.to_ini().replace("name = t.bin", "name = u.bin");
        assert_eq!(Manifest::parse(&lie), Err(ManifestError::Disagrees("name")));
        let bad_hex = m.to_ini().replace("info = 64", "info = zz");
        assert!(Manifest::parse(&bad_hex).unwrap_err().to_string().contains("bad info"));
    }
}
