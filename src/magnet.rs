//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<info-hash>&dn=<name>&xl=<size>&x.pe=<peer>&tr=<tracker>`.

use crate::hash::ContentId;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::net::SocketAddr;

/// What a magnet link says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub id: ContentId,
    pub name: Option<String>,
    pub size: Option<u64>,
    /// Peers to ask directly (`x.pe`).
    pub peers: Vec<SocketAddr>,
    /// Tracker announce URLs (`tr`).
    pub trackers: Vec<String>,
    /// Web seeds (`ws`, BEP 19), used once the metadata came from a peer.
    pub web_seeds: Vec<String>,
}

/// Bytes kept as they are in a query value (RFC 3986 unreserved).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Most peers and trackers taken from one link.
const MAX_ENTRIES: usize = 64;

/// Why a text is not a magnet link this side can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MagnetError {
    NotMagnet,
    NoInfoHash,
    BadInfoHash(String),
    BadValue { key: String, value: String },
}

impl fmt::Display for MagnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MagnetError::NotMagnet => write!(f, "not a magnet link (it starts with magnet:?)"),
            MagnetError::NoInfoHash => write!(f, "the magnet link has no xt=urn:btih: info-hash"),
            MagnetError::BadInfoHash(h) => {
                write!(f, "'{}' is not a v1 info-hash (40 hex or 32 base32 digits)", short(h))
            }
            MagnetError::BadValue { key, value } => {
                write!(f, "the magnet link's {key} '{}' is not valid", short(value))
            }
        }
    }
}

impl std::error::Error for MagnetError {}

fn short(s: &str) -> String {
    crate::text::one_line(&s.chars().take(64).collect::<String>())
}

impl Magnet {
    /// Reads a magnet link; unknown keys are ignored, as BEP 9 asks.
    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        let query = link.strip_prefix("magnet:?").ok_or(MagnetError::NotMagnet)?;
        let (mut id, mut name, mut size, mut peers, mut trackers, mut web_seeds) =
            (None, None, None, Vec::new(), Vec::new(), Vec::new());
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(&raw.replace('+', " ")).decode_utf8_lossy().into_owned();
            let bad = || MagnetError::BadValue { key: key.to_string(), value: value.clone() };
            match key {
                "xt" => {
                    if let Some(hash) = value.strip_prefix("urn:btih:") {
                        id = Some(parse_btih(hash)?);
                    }
                }
                "dn" => name = Some(value.clone()),
                "xl" => size = Some(value.parse().map_err(|_| bad())?),
                "x.pe" if peers.len() < MAX_ENTRIES => peers.push(value.parse().map_err(|_| bad())?),
                "tr" if trackers.len() < MAX_ENTRIES => trackers.push(value.clone()),
                "ws" if web_seeds.len() < MAX_ENTRIES => web_seeds.push(value.clone()),
                _ => {}
            }
        }
        let id = id.ok_or(MagnetError::NoInfoHash)?;
        Ok(Magnet { id, name, size, peers, trackers, web_seeds })
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "magnet:?xt=urn:btih:{}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, "&dn={}", utf8_percent_encode(name, VALUE))?;
        }
        if let Some(size) = self.size {
            write!(f, "&xl={size}")?;
        }
        for tr in &self.trackers {
            write!(f, "&tr={}", utf8_percent_encode(tr, VALUE))?;
        }
        for pe in &self.peers {
            write!(f, "&x.pe={}", utf8_percent_encode(&pe.to_string(), VALUE))?;
        }
        for ws in &self.web_seeds {
            write!(f, "&ws={}", utf8_percent_encode(ws, VALUE))?;
        }
        Ok(())
    }
}

/// A v1 info-hash: 40 hex digits, or 32 base32 digits (RFC 4648, as older links carry).
fn parse_btih(s: &str) -> Result<ContentId, MagnetError> {
    let bad = || MagnetError::BadInfoHash(s.to_string());
    match s.len() {
        40 => s.to_ascii_lowercase().parse().map_err(|_| bad()),
        32 => {
            let mut bits: u64 = 0;
            let (mut nbits, mut out) = (0u32, Vec::with_capacity(20));
            for c in s.bytes() {
                let v = match c.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(bad()),
                };
                bits = bits << 5 | v as u64;
                nbits += 5;
                if nbits >= 8 {
                    nbits -= 8;
                    out.push((bits >> nbits) as u8);
                }
            }
            Ok(ContentId::from_bytes(out.try_into().map_err(|_| bad())?))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_every_part() {
        let m = Magnet {
            id: ContentId::of(b"x"),
            name: Some("a file & more.pdf".into()),
            size: Some(36_700_160),
            peers: vec!["127.0.0.1:6001".parse().unwrap(), "[::1]:7000".parse().unwrap()],
            trackers: vec!["http://127.0.0.1:8080/announce".into()],
            web_seeds: vec!["http://127.0.0.1:8081/pub/".into()],
        };
        let link = m.to_string();
        assert!(link
            .starts_with(&format!("magnet:?xt=urn:btih:{}&dn=a%20file%20%26%20more.pdf&xl=36700160", m.id)));
        assert!(link.contains("&x.pe=127.0.0.1%3A6001"), "{link}");
        assert_eq!(Magnet::parse(&link).unwrap(), m);
    }

    #[test]
    fn reads_base32_and_uppercase_hashes_and_ignores_unknown_keys() {
        let id = ContentId::of(b"x");
        let upper = format!("magnet:?xt=urn:btih:{}&x.xyz=http://x&so=1", id.to_hex().to_uppercase());
        assert_eq!(Magnet::parse(&upper).unwrap().id, id);
        // RFC 4648 base32 of the same 20 bytes.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let bits: String = id.as_bytes().iter().map(|b| format!("{b:08b}")).collect();
        let b32: String = bits
            .as_bytes()
            .chunks(5)
            .map(|c| ALPHABET[usize::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap()] as char)
            .collect();
        assert_eq!(Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}")).unwrap().id, id);
    }

    #[test]
    fn refuses_what_is_not_usable() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("magnet:?dn=x"), Err(MagnetError::NoInfoHash));
        assert!(matches!(Magnet::parse("magnet:?xt=urn:btih:zz"), Err(MagnetError::BadInfoHash(_))));
        let id = ContentId::of(b"x");
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{id}&x.pe=nowhere")),
            Err(MagnetError::BadValue { .. })
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{id}&xl=-1")),
            Err(MagnetError::BadValue { .. })
        ));
    }
}
