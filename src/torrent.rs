//! `.torrent` files: reading others' (the info dictionary's exact bytes are found in the
//! file and handed to [`Manifest::from_info`], so the info-hash is of those bytes, never of a
//! re-encoding) and writing ours.

use crate::info_dict::{self, InfoError, MAX_INFO_BYTES};
use crate::manifest::Manifest;
use serde_bencode::value::Value;
use std::collections::HashMap;
use std::fmt;

/// Largest `.torrent` file accepted.
pub const MAX_TORRENT_BYTES: usize = MAX_INFO_BYTES + 64 * 1024;

/// Why a `.torrent` file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentError {
    TooLarge(usize),
    /// Not bencode, or not a dictionary (the decoder's reason).
    Bencode(String),
    NoInfo,
    Info(InfoError),
}

impl fmt::Display for TorrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TorrentError::TooLarge(n) => write!(f, "a .torrent of {n} bytes is too large"),
            TorrentError::Bencode(e) => write!(f, "not a valid torrent: {}", crate::text::one_line(e)),
            TorrentError::NoInfo => write!(f, "not a valid torrent: no info dictionary"),
            TorrentError::Info(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TorrentError {}

impl From<InfoError> for TorrentError {
    fn from(e: InfoError) -> Self {
        TorrentError::Info(e)
    }
}

/// A `.torrent` file for `m`, with `announce` when a tracker speaks HTTP. The info
/// dictionary goes in byte for byte, so the file names the same info-hash.
pub fn torrent_file(m: &Manifest, announce: Option<&str>) -> Vec<u8> {
    let string = |s: &str| format!("{}:{s}", s.len()).into_bytes();
    let mut out = b"d".to_vec();
    if let Some(url) = announce {
        out.extend(string("announce"));
        out.extend(string(url));
    }
    out.extend(string("created by"));
    out.extend(string(concat!("p2p-share ", env!("CARGO_PKG_VERSION"))));
    out.extend(string("info"));
    out.extend_from_slice(&m.info_bytes());
    out.push(b'e');
    out
}

/// What a `.torrent` file holds: the file's manifest and the trackers it names.
#[derive(Debug, Clone)]
pub struct TorrentFile {
    pub manifest: Manifest,
    /// Every tracker named, once each, in order.
    pub trackers: Vec<String>,
    /// The same in BEP 12 tiers: `announce-list` when there is one, else `announce`.
    pub tiers: Vec<Vec<String>>,
    /// Web seeds (BEP 19 `url-list`: one URL or a list), at most [`MAX_URLS`].
    pub web_seeds: Vec<String>,
}

/// URLs taken from a `url-list` (Arch's torrents list hundreds).
pub const MAX_URLS: usize = 64;

/// Reads a `.torrent` file.
pub fn read_torrent(bytes: &[u8]) -> Result<TorrentFile, TorrentError> {
    if bytes.len() > MAX_TORRENT_BYTES {
        return Err(TorrentError::TooLarge(bytes.len()));
    }
    info_dict::check_depth(bytes)?;
    let dict: HashMap<Vec<u8>, Value> =
        match serde_bencode::from_bytes::<Value>(bytes).map_err(|e| TorrentError::Bencode(e.to_string()))? {
            Value::Dict(d) => d,
            _ => return Err(TorrentError::Bencode("a torrent is a dictionary".into())),
        };
    let raw = info_span(bytes).ok_or(TorrentError::NoInfo)?;
    let manifest = Manifest::from_info(raw)?;
    let mut trackers = Vec::new();
    let mut tiers: Vec<Vec<String>> = Vec::new();
    if let Some(Value::List(list)) = dict.get(b"announce-list".as_slice()) {
        for tier in list {
            let Value::List(urls) = tier else { continue };
            let mut t = Vec::new();
            for url in urls {
                if let Value::Bytes(u) = url {
                    let u = String::from_utf8_lossy(u).into_owned();
                    if !trackers.contains(&u) {
                        trackers.push(u.clone());
                        t.push(u);
                    }
                }
            }
            if !t.is_empty() {
                tiers.push(t);
            }
        }
    }
    if let Some(Value::Bytes(url)) = dict.get(b"announce".as_slice()) {
        let u = String::from_utf8_lossy(url).into_owned();
        if tiers.is_empty() {
            tiers.push(vec![u.clone()]);
        }
        if !trackers.contains(&u) {
            trackers.insert(0, u);
        }
    }
    let text = |v: &Value| match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    };
    let web_seeds = match dict.get(b"url-list".as_slice()) {
        Some(Value::List(urls)) => urls.iter().filter_map(text).take(MAX_URLS).collect(),
        Some(one) => text(one).into_iter().filter(|u| !u.is_empty()).collect(),
        None => Vec::new(),
    };
    Ok(TorrentFile { manifest, trackers, tiers, web_seeds })
}

/// The exact bytes of the top-level `info` value of a bencoded dictionary.
fn info_span(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&b'd') {
        return None;
    }
    let mut i = 1;
    while bytes.get(i)? != &b'e' {
        let key_end = info_dict::value_end(bytes, i)?;
        let key = &bytes[i..key_end];
        let value_end = info_dict::value_end(bytes, key_end)?;
        if key == b"4:info" {
            return Some(&bytes[key_end..value_end]);
        }
        i = value_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{ContentId, Sha1Hash};
    use crate::manifest::CHUNK_SIZE;

    fn manifest(size: u64) -> Manifest {
        let n = size.div_ceil(CHUNK_SIZE) as u8;
        Manifest::new("a file.bin".into(), size, None, (0..n).map(|i| Sha1Hash::of(&[i])).collect())
    }

    #[test]
    fn our_info_dict_is_canonical_bencode_with_sorted_keys() {
        let m = manifest(3 * CHUNK_SIZE - 5);
        let raw = m.info_bytes();
        let head = b"d6:lengthi3145723e4:name10:a file.bin12:piece lengthi1048576e6:pieces60:";
        assert!(raw.starts_with(head), "{}", String::from_utf8_lossy(&raw));
        assert_eq!(Manifest::from_info(&raw).unwrap(), m, "a round trip");
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

    #[test]
    fn the_info_hash_is_of_the_bytes_in_the_file_whatever_they_hold() {
        // As other tools write them: keys we do not use, and (wrongly, but it happens) a
        // key out of order; the hash must still be of these very bytes.
        let info = b"d6:lengthi5e4:name5:f.bin7:privatei0e12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaa6:source3:xyze";
        let file = [b"d8:announce3:url10:created by3:me!4:info".as_slice(), info, b"3:zzzi1ee"].concat();
        let t = read_torrent(&file).unwrap();
        assert_eq!(t.manifest.content_id(), ContentId::of(info));
        assert_eq!((t.manifest.piece_length, t.manifest.private), (16384, false));
        let again = torrent_file(&t.manifest, None);
        assert_eq!(
            read_torrent(&again).unwrap().manifest.content_id(),
            ContentId::of(info),
            "written back whole"
        );
        assert_eq!(t.manifest.to_ini().lines().last().map(|l| l.starts_with("info = ")), Some(true));
        let back = Manifest::parse(&t.manifest.to_ini()).unwrap();
        assert_eq!(back.content_id(), ContentId::of(info), "file.ini carries the bytes");
    }

    #[test]
    fn trackers_come_in_the_tiers_of_announce_list_or_as_announce_alone() {
        let info = manifest(5).info_bytes().into_owned();
        let with_list =
            [b"d8:announce5:udp:a13:announce-listll5:udp:a5:udp:bel5:udp:cee4:info".as_slice(), &info, b"e"]
                .concat();
        let t = read_torrent(&with_list).unwrap();
        assert_eq!(t.tiers, vec![vec!["udp:a".to_string(), "udp:b".into()], vec!["udp:c".into()]]);
        assert_eq!(t.trackers, vec!["udp:a".to_string(), "udp:b".into(), "udp:c".into()]);
        let alone = [b"d8:announce5:udp:a4:info".as_slice(), &info, b"e"].concat();
        assert_eq!(read_torrent(&alone).unwrap().tiers, vec![vec!["udp:a".to_string()]]);
    }

    #[test]
    fn a_file_without_an_info_dictionary_or_too_deep_is_refused() {
        assert_eq!(read_torrent(b"d8:announce3:urle").unwrap_err(), TorrentError::NoInfo);
        let deep = "l".repeat(100_000) + &"e".repeat(100_000);
        assert_eq!(read_torrent(deep.as_bytes()).unwrap_err(), TorrentError::Info(InfoError::TooDeep));
        assert!(matches!(read_torrent(b"d4:info").unwrap_err(), TorrentError::Bencode(_)));
    }
}
