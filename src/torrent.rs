//! Torrents from others, read and checked: an info dictionary received over ut_metadata or
//! in a `.torrent` becomes a manifest only after its nesting depth, size, name, piece length
//! and file count are checked, and our own encoding of it gives back the very bytes that
//! were hashed. The info dictionary of a manifest and its info-hash (the content id) live
//! with the manifest (`manifest.rs`); this file also writes `.torrent` files.

use crate::hash::Sha1Hash;
use crate::manifest::{chunks_for, info_bytes, info_of, Info, Manifest, CHUNK_SIZE, MAX_CHUNKS};
use crate::names::{validate_name, BadName};
use serde::Serialize;
use serde_bencode::value::Value;
use std::collections::HashMap;
use std::fmt;

/// Largest info dictionary accepted: 20 bytes per piece of a 1 TiB file, and room for the rest.
pub const MAX_INFO_BYTES: usize = MAX_CHUNKS as usize * 20 + 64 * 1024;
/// Largest `.torrent` file accepted.
pub const MAX_TORRENT_BYTES: usize = MAX_INFO_BYTES + 64 * 1024;
/// Deepest nesting of lists and dictionaries accepted in bencode from others.
const MAX_DEPTH: usize = 16;

/// A `.torrent` file as this side writes it.
#[derive(Serialize)]
struct MetaInfo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    announce: Option<&'a str>,
    #[serde(rename = "created by")]
    created_by: &'a str,
    info: Info,
}

/// Why an info dictionary or a `.torrent` file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentError {
    TooLarge(usize),
    TooDeep,
    /// Not bencode, or not the expected dictionary (the decoder's reason).
    Bencode(String),
    NoInfo,
    MultiFile,
    /// Keys this side does not keep (e.g. `private`), so it could not serve the same info-hash.
    ExtraKeys(Vec<String>),
    PieceLength(u64),
    PieceCount {
        size: u64,
        pieces: usize,
    },
    TooManyPieces(u64),
    BadName(BadName),
}

impl fmt::Display for TorrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TorrentError::TooLarge(n) => write!(f, "torrent data of {n} bytes is too large"),
            TorrentError::TooDeep => write!(f, "bencode nested deeper than {MAX_DEPTH} levels"),
            TorrentError::Bencode(e) => write!(f, "not a valid torrent: {}", crate::text::one_line(e)),
            TorrentError::NoInfo => write!(f, "not a valid torrent: no info dictionary"),
            TorrentError::MultiFile => write!(f, "a torrent of several files; p2p-share shares single files"),
            TorrentError::ExtraKeys(keys) => {
                let keys = crate::text::one_line(&keys.join(", "));
                write!(f, "the info dictionary has keys p2p-share does not keep: {keys}")
            }
            TorrentError::PieceLength(n) => {
                write!(f, "piece length {n}; p2p-share uses pieces of {CHUNK_SIZE} bytes (mktorrent -l 20)")
            }
            TorrentError::PieceCount { size, pieces } => {
                write!(f, "{pieces} piece hash bytes do not fit a file of {size} bytes")
            }
            TorrentError::TooManyPieces(n) => write!(f, "{n} pieces: larger than 1 TiB"),
            TorrentError::BadName(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TorrentError {}

fn bencode_error(e: serde_bencode::Error) -> TorrentError {
    TorrentError::Bencode(e.to_string())
}

/// The manifest an info dictionary describes (as received over ut_metadata, or from a
/// `.torrent`). The whole-file SHA-1 is not part of a torrent, so it is unknown.
pub fn manifest_from_info(raw: &[u8]) -> Result<Manifest, TorrentError> {
    if raw.len() > MAX_INFO_BYTES {
        return Err(TorrentError::TooLarge(raw.len()));
    }
    check_depth(raw)?;
    let dict: HashMap<Vec<u8>, Value> =
        match serde_bencode::from_bytes::<Value>(raw).map_err(bencode_error)? {
            Value::Dict(d) => d,
            _ => return Err(TorrentError::Bencode("the info is not a dictionary".into())),
        };
    if dict.contains_key(b"files".as_slice()) {
        return Err(TorrentError::MultiFile);
    }
    let known: [&[u8]; 4] = [b"length", b"name", b"piece length", b"pieces"];
    let mut extra: Vec<String> = dict
        .keys()
        .filter(|k| !known.contains(&k.as_slice()))
        .map(|k| String::from_utf8_lossy(k).into())
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(TorrentError::ExtraKeys(extra));
    }
    let info: Info = serde_bencode::from_bytes(raw).map_err(bencode_error)?;
    validate_name(&info.name).map_err(TorrentError::BadName)?;
    if info.piece_length != CHUNK_SIZE {
        return Err(TorrentError::PieceLength(info.piece_length));
    }
    let count = chunks_for(info.length);
    if count > MAX_CHUNKS {
        return Err(TorrentError::TooManyPieces(count));
    }
    if info.pieces.len() as u64 != count * 20 {
        return Err(TorrentError::PieceCount { size: info.length, pieces: info.pieces.len() });
    }
    let chunks = info.pieces.chunks_exact(20).map(|c| Sha1Hash(c.try_into().expect("20 bytes"))).collect();
    let m = Manifest { name: info.name, size: info.length, sha1: None, chunks };
    // Our encoding must give back the bytes that were hashed (sorted keys, no leading
    // zeros), or this side would serve another info-hash than the one asked for.
    if info_bytes(&m) != raw {
        return Err(TorrentError::Bencode("the info dictionary is not in canonical bencode".into()));
    }
    Ok(m)
}

/// A `.torrent` file for `m`, with `announce` when a tracker speaks HTTP.
pub fn torrent_file(m: &Manifest, announce: Option<&str>) -> Vec<u8> {
    let info = info_of(m);
    let created_by = concat!("p2p-share ", env!("CARGO_PKG_VERSION"));
    serde_bencode::to_bytes(&MetaInfo { announce, created_by, info }).expect("a torrent always encodes")
}

/// What a `.torrent` file holds: the file's manifest and the trackers it names.
#[derive(Debug, Clone)]
pub struct TorrentFile {
    pub manifest: Manifest,
    pub trackers: Vec<String>,
}

/// Reads a `.torrent` file.
pub fn read_torrent(bytes: &[u8]) -> Result<TorrentFile, TorrentError> {
    if bytes.len() > MAX_TORRENT_BYTES {
        return Err(TorrentError::TooLarge(bytes.len()));
    }
    check_depth(bytes)?;
    let mut dict = match serde_bencode::from_bytes::<Value>(bytes).map_err(bencode_error)? {
        Value::Dict(d) => d,
        _ => return Err(TorrentError::Bencode("a torrent is a dictionary".into())),
    };
    let info = dict.remove(b"info".as_slice()).ok_or(TorrentError::NoInfo)?;
    let raw = serde_bencode::to_bytes(&info).map_err(bencode_error)?;
    let manifest = manifest_from_info(&raw)?;
    let mut trackers = Vec::new();
    if let Some(Value::Bytes(url)) = dict.get(b"announce".as_slice()) {
        trackers.push(String::from_utf8_lossy(url).into_owned());
    }
    if let Some(Value::List(tiers)) = dict.get(b"announce-list".as_slice()) {
        for tier in tiers {
            if let Value::List(urls) = tier {
                for url in urls {
                    if let Value::Bytes(u) = url {
                        let u = String::from_utf8_lossy(u).into_owned();
                        if !trackers.contains(&u) {
                            trackers.push(u);
                        }
                    }
                }
            }
        }
    }
    Ok(TorrentFile { manifest, trackers })
}

/// Refuses bencode nested deeper than [`MAX_DEPTH`] before a recursive decoder sees it.
/// Only the structure is followed: integers are skipped to their `e`, strings by their
/// length; anything malformed is left for the decoder to name.
pub fn check_depth(bytes: &[u8]) -> Result<(), TorrentError> {
    let (mut i, mut depth) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'l' | b'd' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(TorrentError::TooDeep);
                }
                i += 1;
            }
            b'e' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'i' => i += bytes[i..].iter().position(|&b| b == b'e').map_or(bytes.len(), |p| p + 1),
            b'0'..=b'9' => {
                let colon = bytes[i..].iter().position(|&b| b == b':').map(|p| i + p);
                let len = colon.and_then(|c| std::str::from_utf8(&bytes[i..c]).ok()?.parse::<usize>().ok());
                match (colon, len) {
                    (Some(c), Some(len)) => i = c.saturating_add(1).saturating_add(len),
                    _ => return Ok(()),
                }
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(size: u64) -> Manifest {
        let n = chunks_for(size) as u8;
        Manifest {
            name: "a file.bin".into(),
            size,
            sha1: None,
            chunks: (0..n).map(|i| Sha1Hash::of(&[i])).collect(),
        }
    }

    #[test]
    fn info_dict_is_canonical_bencode_with_sorted_keys() {
        let m = manifest(3 * CHUNK_SIZE - 5);
        let raw = info_bytes(&m);
        let head = b"d6:lengthi3145723e4:name10:a file.bin12:piece lengthi1048576e6:pieces60:";
        assert!(raw.starts_with(head), "{}", String::from_utf8_lossy(&raw));
        assert!(raw.ends_with(b"e"));
        assert_eq!(manifest_from_info(&raw).unwrap(), m, "a round trip");
    }

    #[test]
    fn refuses_what_this_side_could_not_serve_under_the_same_hash() {
        let m = manifest(CHUNK_SIZE + 1);
        let raw = info_bytes(&m);
        let mut private = raw[..raw.len() - 1].to_vec();
        private.extend_from_slice(b"7:privatei1ee");
        assert!(matches!(manifest_from_info(&private), Err(TorrentError::ExtraKeys(k)) if k == ["private"]));
        let other_pieces = replace(&raw, b"i1048576e", b"i262144e");
        assert_eq!(manifest_from_info(&other_pieces), Err(TorrentError::PieceLength(262_144)));
        let files = b"d5:filesle4:name1:x12:piece lengthi1048576e6:pieces0:e";
        assert_eq!(manifest_from_info(files), Err(TorrentError::MultiFile));
        let evil = replace(&raw, b"10:a file.bin", b"5:../ab");
        assert!(matches!(manifest_from_info(&evil), Err(TorrentError::BadName(_))));
        let short = replace(&raw, b"i1048577e", b"i9999999e");
        assert!(matches!(manifest_from_info(&short), Err(TorrentError::PieceCount { .. })));
    }

    /// `bytes` with the first `from` replaced by `to`.
    fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes.windows(from.len()).position(|w| w == from).expect("present");
        [&bytes[..at], to, &bytes[at + from.len()..]].concat()
    }

    #[test]
    fn deep_nesting_and_junk_are_refused_without_recursion() {
        let deep = "l".repeat(100_000) + &"e".repeat(100_000);
        assert_eq!(manifest_from_info(deep.as_bytes()), Err(TorrentError::TooDeep));
        assert_eq!(read_torrent(deep.as_bytes()).unwrap_err(), TorrentError::TooDeep);
        for junk in [&b""[..], b"d", b"i12", b"99999999999:x", b"de", b"le"] {
            assert!(manifest_from_info(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_torrent_file_round_trips_with_its_tracker() {
        let m = manifest(5);
        let bytes = torrent_file(&m, Some("http://127.0.0.1:8080/announce"));
        let t = read_torrent(&bytes).unwrap();
        assert_eq!(t.manifest, m);
        assert_eq!(t.trackers, vec!["http://127.0.0.1:8080/announce".to_string()]);
        assert_eq!(t.manifest.content_id(), m.content_id());
    }
}
