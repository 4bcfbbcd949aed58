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
//! facts (name, size, chunk hashes; see [`torrent`](crate::torrent)): a peer that receives a
//! `file.ini` rebuilds the info dictionary from it and checks that hash. The whole-file
//! `sha1` line is informational (a torrent has none, so it may be missing). Chunks are
//! hashed in parallel with rayon.

use crate::hash::{ContentId, Sha1Hash};
use crate::names::{validate_name, BadName};
use configparser::ini::{Ini, IniDefault};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Every chunk is 1 MiB, but the last, which may be shorter.
pub const CHUNK_SIZE: u64 = 1 << 20;
/// Largest file a manifest may describe: 2^20 chunks, 1 TiB.
pub const MAX_CHUNKS: u64 = 1 << 20;
/// Largest manifest text accepted from a peer.
pub const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// A chunk number checked against a manifest: only [`Manifest::index`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkIndex(u32);

impl ChunkIndex {
    pub fn get(self) -> u32 {
        self.0
    }

    pub fn offset(self) -> u64 {
        self.0 as u64 * CHUNK_SIZE
    }
}

impl fmt::Display for ChunkIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A file's name, size, whole-file SHA-1 (when known) and the SHA-1 of each chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub size: u64,
    /// Informational: known for a file hashed here, unknown for one from a torrent.
    pub sha1: Option<Sha1Hash>,
    pub chunks: Vec<Sha1Hash>,
}

/// Why a manifest text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    Syntax(String),
    Missing(&'static str),
    BadValue { key: String, value: String },
    BadName(BadName),
    CountMismatch { size: u64, chunks_count: u64 },
    TooManyChunks(u64),
    TooLarge(usize),
    UnsupportedChunkSize(u64),
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
        }
    }
}

impl std::error::Error for ManifestError {}

/// How many chunks a file of `size` bytes has.
pub fn chunks_for(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE)
}

impl Manifest {
    pub fn chunk_count(&self) -> u32 {
        self.chunks.len() as u32
    }

    /// Checks `i` against this manifest.
    pub fn index(&self, i: u32) -> Option<ChunkIndex> {
        ((i as usize) < self.chunks.len()).then_some(ChunkIndex(i))
    }

    /// The length of chunk `i` (the last may be short).
    pub fn chunk_len(&self, i: ChunkIndex) -> usize {
        (self.size - i.offset()).min(CHUNK_SIZE) as usize
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
            CHUNK_SIZE,
            self.chunks.len(),
        );
        if let Some(sha1) = self.sha1 {
            let _ = writeln!(s, "sha1 = {sha1}");
        }
        s.push_str("\n[chunks]\n");
        for (i, h) in self.chunks.iter().enumerate() {
            let _ = writeln!(s, "{i} = {h}");
        }
        s
    }

    /// The file's id: its BitTorrent v1 info-hash (see [`info_bytes`]).
    pub fn content_id(&self) -> ContentId {
        ContentId::of(&info_bytes(self))
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
        let chunks = map.remove("chunks").ok_or(ManifestError::Missing("a [chunks] section"))?;
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
        if chunk_size != CHUNK_SIZE {
            return Err(ManifestError::UnsupportedChunkSize(chunk_size));
        }
        let count = num("chunks_count")?;
        if count > MAX_CHUNKS {
            return Err(ManifestError::TooManyChunks(count));
        }
        if count != chunks_for(size) {
            return Err(ManifestError::CountMismatch { size, chunks_count: count });
        }
        let sha1 = match file.get("sha1").cloned().flatten() {
            Some(v) => Some(parse_hash("sha1", &v)?),
            None => None,
        };
        let chunks = chunk_list(chunks, count)?;
        Ok(Manifest { name, size, sha1, chunks })
    }
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
    let m = Manifest { name: name.to_string(), size, sha1: Some(sha1), chunks };
    Ok(m)
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

/// The info dictionary of a single-file torrent, as BEP 3 names its keys: `{length, name,
/// piece length, pieces}`, bencoded with sorted keys. It is a file's identity: its SHA-1,
/// the info-hash, is the content id, the same number libtorrent's `create_torrent` (v1,
/// 1 MiB pieces) or `mktorrent -l 20` gives the same file and name.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Info {
    pub length: u64,
    pub name: String,
    #[serde(rename = "piece length")]
    pub piece_length: u64,
    pub pieces: ByteBuf,
}

/// The info dictionary of `m`.
pub(crate) fn info_of(m: &Manifest) -> Info {
    let pieces: Vec<u8> = m.chunks.iter().flat_map(|h| h.0).collect();
    Info { length: m.size, name: m.name.clone(), piece_length: CHUNK_SIZE, pieces: ByteBuf::from(pieces) }
}

/// The bencoded info dictionary of `m`.
pub fn info_bytes(m: &Manifest) -> Vec<u8> {
    serde_bencode::to_bytes(&info_of(m)).expect("an info dictionary always encodes")
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
        assert_eq!(back.content_id(), ContentId::of(&info_bytes(&m)), "the id is the info-hash");
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
        Manifest {
            name: "x".into(),
            size: CHUNK_SIZE + 1,
            sha1: Some(Sha1Hash::of(b"w")),
            chunks: vec![Sha1Hash::of(b"0"), Sha1Hash::of(b"1")],
        }
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
        ];
        for (t, expect) in cases {
            let err = Manifest::parse(&t).unwrap_err().to_string();
            assert!(err.contains(expect), "expected {expect:?} in {err:?}");
        }
    }
}
