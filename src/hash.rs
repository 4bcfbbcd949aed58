//! SHA-1 digests as a validated newtype, shown and sent as 40 lowercase hex digits.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha1::{Digest, Sha1};
use std::fmt;
use std::str::FromStr;

/// A SHA-1 digest. Chunks, whole files and manifests are all named by one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha1Hash(pub [u8; 20]);

impl Sha1Hash {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha1Hash {
        Sha1Hash(Sha1::digest(bytes).into())
    }

    /// Finishes an incremental hasher.
    pub fn from_hasher(hasher: Sha1) -> Sha1Hash {
        Sha1Hash(hasher.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

/// A hex string that is not a SHA-1 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHash(pub String);

impl fmt::Display for BadHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(48).collect();
        write!(f, "'{shown}' is not a SHA-1 digest (40 hex digits)")
    }
}

impl std::error::Error for BadHash {}

impl FromStr for Sha1Hash {
    type Err = BadHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex(s).filter(|b| b.len() == 20).ok_or_else(|| BadHash(s.to_string()))?;
        Ok(Sha1Hash(bytes.try_into().expect("20 bytes")))
    }
}

/// The bytes `s` spells in hex (either case), or `None` if it is not whole hex pairs.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes.chunks_exact(2).map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?)).collect()
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Sha1Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha1Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha1Hash({self})")
    }
}

impl Serialize for Sha1Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sha1Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The id of a shared file: its BitTorrent v1 info-hash (the SHA-1 of the info dictionary
/// the manifest rebuilds). Two files with the same name but different bytes have different
/// ids and never mix. A type of its own, so a content id and a chunk hash cannot be swapped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentId(Sha1Hash);

impl ContentId {
    /// The id whose info dictionary is `info` (bencoded, as it appears in a torrent).
    pub fn of(info: &[u8]) -> ContentId {
        ContentId(Sha1Hash::of(info))
    }

    /// The id these 20 bytes spell (an info-hash read from a handshake, a DHT answer, an
    /// HTTP announce).
    pub fn from_bytes(bytes: [u8; 20]) -> ContentId {
        ContentId(Sha1Hash(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0 .0
    }

    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }
}

impl FromStr for ContentId {
    type Err = BadHash;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(ContentId)
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = Sha1Hash::of(b"abc");
        assert_eq!(h.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(h.to_string().parse::<Sha1Hash>().unwrap(), h);
        assert_eq!("A9993E364706816ABA3E25717850C26C9CD0D89D".parse::<Sha1Hash>().unwrap(), h);
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("abc".parse::<Sha1Hash>().is_err());
        assert!("g9993e364706816aba3e25717850c26c9cd0d89d".parse::<Sha1Hash>().is_err());
        assert!("a9993e364706816aba3e25717850c26c9cd0d89d0".parse::<Sha1Hash>().is_err());
        // multi-byte characters must not panic
        assert!("é".repeat(20).parse::<Sha1Hash>().is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let h = Sha1Hash::of(b"x");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{h}\""));
        assert_eq!(serde_json::from_str::<Sha1Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Sha1Hash>("\"zz\"").is_err());
    }
}
