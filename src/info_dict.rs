//! A torrent's info dictionary (BEP 3), read from bytes others made and kept as they came:
//! the info-hash is the SHA-1 of those bytes, never of a re-encoding, so keys this side
//! does not use (`private`, `source`, a hybrid torrent's v2 `file tree`, anything else)
//! stay in the hash. Our own shares use one canonical form ([`canonical`]).
//!
//! Everything here is hostile input: the size, the nesting depth (checked before a recursive
//! decoder sees it), the name, the piece length (a power of two from 16 KiB to 64 MiB) and
//! the piece count are checked. Torrents of several files and pure v2 torrents are refused
//! with a line that says so.

use crate::hash::Sha1Hash;
use crate::layout::{Layout, LayoutError};
use crate::names::{validate_name, BadName};
use serde::Serialize;
use serde_bencode::value::Value;
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::fmt;

/// Most pieces a file may have (1 TiB at 1 MiB pieces).
pub const MAX_PIECES: u64 = 1 << 20;
/// Largest info dictionary accepted: 20 bytes per piece, and room for the rest.
pub const MAX_INFO_BYTES: usize = MAX_PIECES as usize * 20 + 64 * 1024;
/// Deepest nesting of lists and dictionaries accepted in bencode from others.
pub const MAX_DEPTH: usize = 16;
/// Smallest and largest piece lengths accepted (BEP 3 in practice; BEP 52 sets 16 KiB).
pub const MIN_PIECE: u64 = 16 << 10;
pub const MAX_PIECE: u64 = 64 << 20;

/// What this side uses of an info dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoDict {
    pub name: String,
    /// All files' bytes together.
    pub length: u64,
    /// One file, or a folder's files (`files`).
    pub layout: Layout,
    pub piece_length: u64,
    pub pieces: Vec<Sha1Hash>,
    /// `private = 1` (BEP 27): peers come only from the torrent's own trackers.
    pub private: bool,
}

/// Why an info dictionary was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InfoError {
    TooLarge(usize),
    TooDeep,
    /// Not bencode, or not the expected dictionary (the decoder's reason).
    Bencode(String),
    Missing(&'static str),
    Layout(LayoutError),
    V2Only,
    PieceLength(u64),
    PieceCount {
        size: u64,
        pieces: usize,
    },
    TooManyPieces(u64),
    BadName(BadName),
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoError::TooLarge(n) => write!(f, "torrent data of {n} bytes is too large"),
            InfoError::TooDeep => write!(f, "bencode nested deeper than {MAX_DEPTH} levels"),
            InfoError::Bencode(e) => write!(f, "not a valid torrent: {}", crate::text::one_line(e)),
            InfoError::Missing(key) => write!(f, "not a valid torrent: the info dictionary has no '{key}'"),
            InfoError::Layout(e) => write!(f, "{e}"),
            InfoError::V2Only => {
                write!(
                    f,
                    "a BitTorrent v2 torrent without a v1 part; p2p-share speaks v1 (and hybrids) so far"
                )
            }
            InfoError::PieceLength(n) => write!(
                f,
                "piece length {n}: not a power of two from {} KiB to {} MiB",
                MIN_PIECE >> 10,
                MAX_PIECE >> 20
            ),
            InfoError::PieceCount { size, pieces } => {
                write!(f, "{pieces} piece hash bytes do not fit a file of {size} bytes")
            }
            InfoError::TooManyPieces(n) => write!(f, "{n} pieces: more than {MAX_PIECES}"),
            InfoError::BadName(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for InfoError {}

fn bencode_error(e: serde_bencode::Error) -> InfoError {
    InfoError::Bencode(e.to_string())
}

/// How many pieces of `piece_length` a file of `size` bytes has.
pub fn pieces_for(size: u64, piece_length: u64) -> u64 {
    size.div_ceil(piece_length)
}

/// Whether `n` is a piece length this side accepts.
pub fn valid_piece_length(n: u64) -> bool {
    n.is_power_of_two() && (MIN_PIECE..=MAX_PIECE).contains(&n)
}

/// Reads an info dictionary received from others (ut_metadata, a `.torrent`, a peer's
/// `file.ini`).
pub fn parse(raw: &[u8]) -> Result<InfoDict, InfoError> {
    if raw.len() > MAX_INFO_BYTES {
        return Err(InfoError::TooLarge(raw.len()));
    }
    check_depth(raw)?;
    let dict: HashMap<Vec<u8>, Value> =
        match serde_bencode::from_bytes::<Value>(raw).map_err(bencode_error)? {
            Value::Dict(d) => d,
            _ => return Err(InfoError::Bencode("the info is not a dictionary".into())),
        };
    let int = |key: &'static str| match dict.get(key.as_bytes()) {
        Some(Value::Int(n)) => {
            u64::try_from(*n).map_err(|_| InfoError::Bencode(format!("'{key}' is negative")))
        }
        Some(_) => Err(InfoError::Bencode(format!("'{key}' is not an integer"))),
        None => Err(InfoError::Missing(key)),
    };
    let pieces = match dict.get(b"pieces".as_slice()) {
        Some(Value::Bytes(p)) => p,
        Some(_) => return Err(InfoError::Bencode("'pieces' is not a string".into())),
        None if dict.contains_key(b"file tree".as_slice()) => return Err(InfoError::V2Only),
        None => return Err(InfoError::Missing("pieces")),
    };
    let name = match dict.get(b"name".as_slice()) {
        Some(Value::Bytes(n)) => {
            String::from_utf8(n.clone()).map_err(|_| InfoError::Bencode("the name is not UTF-8".into()))?
        }
        _ => return Err(InfoError::Missing("name")),
    };
    validate_name(&name).map_err(InfoError::BadName)?;
    let layout = match dict.get(b"files".as_slice()) {
        Some(files) => Layout::files(file_list(files)?).map_err(InfoError::Layout)?,
        None => Layout::single(int("length")?),
    };
    let (length, piece_length) = (layout.total(), int("piece length")?);
    if !valid_piece_length(piece_length) {
        return Err(InfoError::PieceLength(piece_length));
    }
    let count = pieces_for(length, piece_length);
    if count > MAX_PIECES {
        return Err(InfoError::TooManyPieces(count));
    }
    if pieces.len() as u64 != count * 20 {
        return Err(InfoError::PieceCount { size: length, pieces: pieces.len() });
    }
    let private = matches!(dict.get(b"private".as_slice()), Some(Value::Int(1)));
    let pieces = pieces.chunks_exact(20).map(|c| Sha1Hash(c.try_into().expect("20 bytes"))).collect();
    Ok(InfoDict { name, length, layout, piece_length, pieces, private })
}

/// A folder torrent's `files`: each `{length, path, attr?}`, `attr` holding `p` for a BEP 47
/// padding file. Paths must be UTF-8 (`path.utf-8` is not read); [`Layout::files`] checks
/// the rest.
fn file_list(files: &Value) -> Result<Vec<(Vec<String>, u64, bool)>, InfoError> {
    let bad = |why: &str| InfoError::Bencode(format!("'files': {why}"));
    let Value::List(files) = files else { return Err(bad("not a list")) };
    let mut out = Vec::with_capacity(files.len().min(crate::layout::MAX_FILES));
    for file in files {
        let Value::Dict(file) = file else { return Err(bad("an entry is not a dictionary")) };
        let length = match file.get(b"length".as_slice()) {
            Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| bad("a negative length"))?,
            _ => return Err(bad("an entry has no length")),
        };
        let Some(Value::List(parts)) = file.get(b"path".as_slice()) else {
            return Err(bad("an entry has no path list"));
        };
        let path = parts
            .iter()
            .map(|p| match p {
                Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| bad("a path is not UTF-8")),
                _ => Err(bad("a path component is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pad = matches!(file.get(b"attr".as_slice()), Some(Value::Bytes(a)) if a.contains(&b'p'));
        out.push((path, length, pad));
    }
    Ok(out)
}

/// One file of [`CanonicalFolder`].
#[derive(Serialize)]
struct CanonicalFile<'a> {
    length: u64,
    path: &'a [String],
}

/// The info dictionary of a folder torrent as BEP 3 names its keys, in the form this side
/// writes for its own shared folders.
#[derive(Serialize)]
struct CanonicalFolder<'a> {
    files: Vec<CanonicalFile<'a>>,
    name: &'a str,
    #[serde(rename = "piece length")]
    piece_length: u64,
    pieces: ByteBuf,
}

/// `{files: [{length, path}], name, piece length, pieces}`, bencoded with sorted keys, for a
/// folder shared from `DIR/files/` (no padding files).
pub fn canonical_folder(
    name: &str,
    files: &[(Vec<String>, u64)],
    piece_length: u64,
    pieces: &[Sha1Hash],
) -> Vec<u8> {
    let pieces = ByteBuf::from(pieces.iter().flat_map(|h| h.0).collect::<Vec<u8>>());
    let files = files.iter().map(|(path, length)| CanonicalFile { length: *length, path }).collect();
    serde_bencode::to_bytes(&CanonicalFolder { files, name, piece_length, pieces })
        .expect("an info dictionary always encodes")
}

/// The info dictionary of a single-file torrent as BEP 3 names its keys, in the form this
/// side writes for its own shares.
#[derive(Serialize)]
struct Canonical<'a> {
    length: u64,
    name: &'a str,
    #[serde(rename = "piece length")]
    piece_length: u64,
    pieces: ByteBuf,
}

/// `{length, name, piece length, pieces}`, bencoded with sorted keys: the same bytes
/// libtorrent's `create_torrent` (v1 only) or `mktorrent` write for that file and name.
pub fn canonical(name: &str, length: u64, piece_length: u64, pieces: &[Sha1Hash]) -> Vec<u8> {
    let pieces = ByteBuf::from(pieces.iter().flat_map(|h| h.0).collect::<Vec<u8>>());
    serde_bencode::to_bytes(&Canonical { length, name, piece_length, pieces })
        .expect("an info dictionary always encodes")
}

/// The end of the bencoded value that starts at `at` (exclusive), or `None` if it is cut
/// short or malformed. Iterative, so depth costs nothing; used to find the exact bytes of a
/// `.torrent`'s info dictionary.
pub fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    let (mut i, mut depth) = (at, 0usize);
    loop {
        match *bytes.get(i)? {
            b'l' | b'd' => {
                depth += 1;
                i += 1;
                continue;
            }
            b'e' if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            b'i' => i += bytes[i..].iter().position(|&b| b == b'e')? + 1,
            b'0'..=b'9' => {
                let colon = i + bytes[i..].iter().position(|&b| b == b':')?;
                let len: usize = std::str::from_utf8(&bytes[i..colon]).ok()?.parse().ok()?;
                i = colon.checked_add(1)?.checked_add(len)?;
                if i > bytes.len() {
                    return None;
                }
            }
            _ => return None,
        }
        if depth == 0 {
            return Some(i);
        }
    }
}

/// Refuses bencode nested deeper than [`MAX_DEPTH`] before a recursive decoder sees it.
/// Only the structure is followed: integers are skipped to their `e`, strings by their
/// length; anything malformed is left for the decoder to name.
pub fn check_depth(bytes: &[u8]) -> Result<(), InfoError> {
    let (mut i, mut depth) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'l' | b'd' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(InfoError::TooDeep);
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

    fn pieces(n: u8) -> Vec<Sha1Hash> {
        (0..n).map(|i| Sha1Hash::of(&[i])).collect()
    }

    /// `raw` with the first `from` replaced by `to`.
    fn swap(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
        let at = raw.windows(from.len()).position(|w| w == from.as_bytes()).expect("present");
        [&raw[..at], to.as_bytes(), &raw[at + from.len()..]].concat()
    }

    /// `raw` with `extra` (bencoded key-value pairs) put before its closing `e`.
    fn with(raw: &[u8], extra: &[u8]) -> Vec<u8> {
        [&raw[..raw.len() - 1], extra, b"e"].concat()
    }

    #[test]
    fn every_power_of_two_piece_length_from_16_kib_to_64_mib_is_read() {
        let mut n = MIN_PIECE;
        while n <= MAX_PIECE {
            let raw = canonical("f.bin", 3 * n - 1, n, &pieces(3));
            let info = parse(&raw).unwrap();
            assert_eq!((info.piece_length, info.pieces.len(), info.private), (n, 3, false));
            n *= 2;
        }
        for bad in [0, 1000, 8 << 10, 3 << 20, 128 << 20] {
            let raw = canonical("f.bin", 10, bad, &pieces(1));
            assert_eq!(parse(&raw), Err(InfoError::PieceLength(bad)), "{bad}");
        }
    }

    #[test]
    fn keys_this_side_does_not_use_are_kept_in_the_bytes_and_private_is_read() {
        let raw = canonical("f.bin", 10, 1 << 18, &pieces(1));
        // `private` sorts after `pieces`, `source` after that: keys in order, as clients write.
        let private = with(&raw, b"7:privatei1e6:source3:abc");
        assert!(parse(&private).unwrap().private);
        assert!(!parse(&with(&raw, b"7:privatei0e")).unwrap().private, "private: 0 is public");
        // A hybrid's v2 part: `file tree` and `meta version` beside the v1 keys.
        let hybrid = [b"d9:file treede".as_slice(), &raw[1..raw.len() - 1], b"12:meta versioni2ee"].concat();
        assert_eq!(parse(&hybrid).unwrap().pieces, pieces(1));
        let v2_only = b"d9:file treede6:lengthi10e12:meta versioni2e4:name5:f.bin12:piece lengthi16384ee";
        assert_eq!(parse(v2_only), Err(InfoError::V2Only));
    }

    #[test]
    fn what_cannot_be_a_single_file_of_that_size_is_refused() {
        let raw = canonical("f.bin", 3 << 18, 1 << 18, &pieces(3));
        let short = canonical("f.bin", 3 << 18, 1 << 18, &pieces(2));
        assert!(matches!(parse(&short), Err(InfoError::PieceCount { .. })));
        let files = b"d5:filesle4:name1:x12:piece lengthi16384e6:pieces0:e";
        assert_eq!(parse(files), Err(InfoError::Layout(LayoutError::NoFiles)));
        let evil = canonical("../ab", 10, 1 << 18, &pieces(1));
        assert!(matches!(parse(&evil), Err(InfoError::BadName(_))));
        assert_eq!(parse(b"d4:name5:f.bine"), Err(InfoError::Missing("pieces")));
        let negative = String::from_utf8_lossy(&raw).replace("i786432e", "i-1e");
        assert!(parse(negative.as_bytes()).is_err());
        let deep = "l".repeat(100_000) + &"e".repeat(100_000);
        assert_eq!(parse(deep.as_bytes()), Err(InfoError::TooDeep));
        for junk in [&b""[..], b"d", b"i12", b"99999999999:x", b"de", b"le"] {
            assert!(parse(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn a_folder_torrent_is_read_with_its_padding_and_hostile_paths_are_refused() {
        let files = [(vec!["a.txt".to_string()], 20_000u64), (vec!["sub".into(), "b.bin".into()], 30_000)];
        let raw = canonical_folder("album", &files, MIN_PIECE, &pieces(4));
        let info = parse(&raw).unwrap();
        assert_eq!((info.length, info.layout.entries().len(), info.layout.is_single()), (50_000, 2, false));
        assert_eq!(info.layout.entries()[1].offset, 20_000);
        // BEP 47: a padding file (attr p) counts in the stream, and its path is not checked.
        let padded =
            swap(&raw, "d6:lengthi30000e", "d4:attr1:p6:lengthi12768e4:pathl4:.pad5:12768eed6:lengthi17232e");
        let info = parse(&padded).unwrap();
        assert!(info.layout.entries()[1].pad && !info.layout.entries()[2].pad);
        for evil in ["../b.bin", "/etc", "a/b"] {
            let bad = swap(&raw, "5:b.bin", &format!("{}:{evil}", evil.len()));
            assert!(matches!(parse(&bad), Err(InfoError::Layout(_))), "{evil}");
        }
        let short = canonical_folder("album", &files, MIN_PIECE, &pieces(3));
        assert!(matches!(parse(&short), Err(InfoError::PieceCount { .. })));
    }

    #[test]
    fn the_end_of_a_value_is_found_without_decoding_it() {
        let t = b"d8:announce3:url4:infod4:name1:xe3:zzzi5ee";
        let at = t.windows(5).position(|w| w == b"4:inf").unwrap() + 6;
        assert_eq!(&t[at..value_end(t, at).unwrap()], b"d4:name1:xe");
        assert_eq!(value_end(t, 0), Some(t.len()));
        for cut in [&b"d4:name"[..], b"l", b"5:ab", b"i12", b"x", b"99999999999999999999:x"] {
            assert_eq!(value_end(cut, 0), None, "{cut:?}");
        }
        let deep = "l".repeat(100_000) + &"e".repeat(100_000);
        assert_eq!(value_end(deep.as_bytes(), 0), Some(200_000), "no recursion");
    }
}
