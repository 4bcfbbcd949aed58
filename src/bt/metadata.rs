//! The extension protocol's handshake (BEP 10) and ut_metadata (BEP 9): the info
//! dictionary sent in 16 KiB pieces, so a client that has only a magnet link gets it.

use super::msg::BtError;
use crate::info_dict::{check_depth, MAX_INFO_BYTES};
use serde::Serialize;
use serde_bencode::value::Value;
use std::collections::BTreeMap;

/// ut_metadata sends the info dictionary in pieces of this size.
pub const METADATA_PIECE: usize = 16 * 1024;
/// The id we ask peers to use for ut_metadata messages to us.
pub const OUR_UT_METADATA: u8 = 1;
/// Extended message id 0 is the extension handshake.
pub const HANDSHAKE_ID: u8 = 0;

/// What the other side said in its extension handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// Its id for ut_metadata messages (0 or absent: it does not speak it).
    pub ut_metadata: Option<u8>,
    pub metadata_size: Option<usize>,
    /// Its id for ut_pex messages (BEP 11), if it speaks it.
    pub ut_pex: Option<u8>,
    /// How many requests it queues (`reqq`), if it says.
    pub reqq: Option<usize>,
    /// Its client name (`v`), for logs.
    pub client: Option<String>,
    /// The port it listens on (`p`), which a client that dialed us names.
    pub listen_port: Option<u16>,
}

#[derive(Serialize)]
struct OurHandshake<'a> {
    m: BTreeMap<&'a str, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<i64>,
    reqq: i64,
    v: &'a str,
}

/// What our extension handshake offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offer {
    /// The size of the info dictionary, when we have it (ut_metadata answers then).
    pub metadata_size: Option<usize>,
    /// ut_pex under [`OUR_UT_PEX`](super::pex::OUR_UT_PEX): we read and tell peers.
    pub pex: bool,
    /// The port our peer server listens on (`p`), so a peer we dialed can name us to
    /// others in its peer exchange.
    pub listen_port: Option<u16>,
}

/// Our extension handshake: ut_metadata under [`OUR_UT_METADATA`], and what `offer` says.
pub fn our_handshake(offer: Offer) -> Vec<u8> {
    let mut m = BTreeMap::from([("ut_metadata", OUR_UT_METADATA as i64)]);
    if offer.pex {
        m.insert("ut_pex", super::pex::OUR_UT_PEX as i64);
    }
    let v = concat!("p2p-share ", env!("CARGO_PKG_VERSION"));
    let h = OurHandshake {
        m,
        metadata_size: offer.metadata_size.map(|n| n as i64),
        p: offer.listen_port.filter(|p| *p != 0).map(i64::from),
        reqq: 250,
        v,
    };
    serde_bencode::to_bytes(&h).expect("a handshake always encodes")
}

fn dict(bytes: &[u8]) -> Result<BTreeMap<Vec<u8>, Value>, BtError> {
    check_depth(bytes).map_err(|e| BtError::Protocol(e.to_string()))?;
    match serde_bencode::from_bytes::<Value>(bytes) {
        Ok(Value::Dict(d)) => Ok(d.into_iter().collect()),
        Ok(_) => Err(BtError::Protocol("an extension message that is not a dictionary".into())),
        Err(e) => Err(BtError::Protocol(format!("bad bencode in an extension message: {e}"))),
    }
}

fn int(d: &BTreeMap<Vec<u8>, Value>, key: &str) -> Option<i64> {
    match d.get(key.as_bytes()) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Reads the other side's extension handshake; keys we do not use are ignored.
pub fn parse_handshake(payload: &[u8]) -> Result<ExtHandshake, BtError> {
    let d = dict(payload)?;
    let id_of = |name: &str| match d.get(b"m".as_slice()) {
        Some(Value::Dict(m)) => match m.get(name.as_bytes()) {
            Some(Value::Int(id)) if (1..=255).contains(id) => Some(*id as u8),
            _ => None,
        },
        _ => None,
    };
    let (ut_metadata, ut_pex) = (id_of("ut_metadata"), id_of("ut_pex"));
    let metadata_size =
        int(&d, "metadata_size").filter(|n| *n > 0 && *n as usize <= MAX_INFO_BYTES).map(|n| n as usize);
    let client = match d.get(b"v".as_slice()) {
        Some(Value::Bytes(v)) => Some(crate::text::one_line(&String::from_utf8_lossy(&v[..v.len().min(64)]))),
        _ => None,
    };
    let reqq = int(&d, "reqq").filter(|n| (1..=1_000_000).contains(n)).map(|n| n as usize);
    let listen_port = int(&d, "p").and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0);
    Ok(ExtHandshake { ut_metadata, metadata_size, ut_pex, reqq, client, listen_port })
}

/// A ut_metadata message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMsg {
    Request(u32),
    /// A piece of the info dictionary, and its total size.
    Data {
        piece: u32,
        total_size: usize,
        data: Vec<u8>,
    },
    Reject(u32),
}

#[derive(Serialize)]
struct Header {
    msg_type: i64,
    piece: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_size: Option<i64>,
}

/// Encodes a ut_metadata message (the payload of an extended message).
pub fn encode(m: &MetadataMsg) -> Vec<u8> {
    let (msg_type, piece, total_size, data): (i64, u32, Option<i64>, &[u8]) = match m {
        MetadataMsg::Request(p) => (0, *p, None, &[]),
        MetadataMsg::Data { piece, total_size, data } => (1, *piece, Some(*total_size as i64), data),
        MetadataMsg::Reject(p) => (2, *p, None, &[]),
    };
    let mut out = serde_bencode::to_bytes(&Header { msg_type, piece: piece as i64, total_size })
        .expect("a header always encodes");
    out.extend_from_slice(data);
    out
}

/// Decodes a ut_metadata message: a bencoded dictionary, then (for data) the piece's bytes.
pub fn decode(payload: &[u8]) -> Result<MetadataMsg, BtError> {
    let end = dict_end(payload)
        .ok_or_else(|| BtError::Protocol("a ut_metadata message without its dictionary".into()))?;
    let d = dict(&payload[..end])?;
    let bad = || BtError::Protocol("a ut_metadata message with a bad msg_type or piece".into());
    let piece = int(&d, "piece").filter(|p| (0..=u32::MAX as i64).contains(p)).ok_or_else(bad)? as u32;
    match int(&d, "msg_type").ok_or_else(bad)? {
        0 => Ok(MetadataMsg::Request(piece)),
        1 => {
            let total = int(&d, "total_size").filter(|n| *n > 0 && *n as usize <= MAX_INFO_BYTES);
            let total_size = total
                .ok_or_else(|| BtError::Protocol("a ut_metadata total_size out of range".into()))?
                as usize;
            Ok(MetadataMsg::Data { piece, total_size, data: payload[end..].to_vec() })
        }
        2 => Ok(MetadataMsg::Reject(piece)),
        _ => Err(bad()),
    }
}

/// Where the bencoded dictionary at the start of `b` ends (one past its `e`).
fn dict_end(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'd') {
        return None;
    }
    let (mut i, mut depth) = (0usize, 0usize);
    while i < b.len() {
        match b[i] {
            b'd' | b'l' => {
                depth += 1;
                i += 1;
            }
            b'e' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'i' => i += b[i..].iter().position(|&c| c == b'e')? + 1,
            b'0'..=b'9' => {
                let colon = i + b[i..].iter().position(|&c| c == b':')?;
                let len: usize = std::str::from_utf8(&b[i..colon]).ok()?.parse().ok()?;
                i = colon.checked_add(1)?.checked_add(len)?;
            }
            _ => return None,
        }
    }
    None
}

/// The piece `piece` of `info` to send, or `None` when it is out of range.
pub fn piece_of(info: &[u8], piece: u32) -> Option<&[u8]> {
    let start = (piece as usize).checked_mul(METADATA_PIECE)?;
    (start < info.len()).then(|| &info[start..(start + METADATA_PIECE).min(info.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_handshake_reads_back() {
        let offer = Offer { metadata_size: Some(4321), pex: true, listen_port: Some(6881) };
        let h = parse_handshake(&our_handshake(offer)).unwrap();
        assert_eq!(h.ut_metadata, Some(OUR_UT_METADATA));
        assert_eq!(h.metadata_size, Some(4321));
        assert_eq!((h.ut_pex, h.listen_port), (Some(super::super::pex::OUR_UT_PEX), Some(6881)));
        assert!(h.client.unwrap().starts_with("p2p-share"));
    }

    #[test]
    fn a_libtorrent_style_handshake_and_hostile_ones() {
        let lt = b"d1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei12345e4:reqqi500e1:v16:libtorrent/2.0.8e";
        let h = parse_handshake(lt).unwrap();
        assert_eq!(
            (h.ut_metadata, h.metadata_size, h.ut_pex, h.reqq),
            (Some(2), Some(12345), Some(1), Some(500))
        );
        let port = b"d1:md6:ut_pexi1ee1:pi51413ee";
        assert_eq!(parse_handshake(port).unwrap().listen_port, Some(51413));
        for bad in [&b"d1:pi0ee"[..], b"d1:pi70000ee", b"d1:pi-1ee", b"d1:p4:6881e"] {
            assert_eq!(parse_handshake(bad).unwrap().listen_port, None, "{}", String::from_utf8_lossy(bad));
        }
        let huge = b"d1:md11:ut_metadatai3ee13:metadata_sizei20000000000ee";
        assert_eq!(parse_handshake(huge).unwrap().metadata_size, None, "a 20 GB claim is ignored");
        assert!(parse_handshake(b"li1ee").is_err());
        assert!(parse_handshake(&[b'd'; 5000]).is_err());
    }

    #[test]
    fn metadata_messages_round_trip() {
        for m in [
            MetadataMsg::Request(3),
            MetadataMsg::Reject(9),
            MetadataMsg::Data { piece: 1, total_size: 20000, data: b"d5:ab".to_vec() },
        ] {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
        assert!(decode(b"d8:msg_typei7e5:piecei0ee").is_err());
        assert!(decode(b"d8:msg_typei1e5:piecei0e10:total_sizei20000000000ee").is_err(), "20 GB");
        assert!(decode(b"d8:msg_typei0e5:piecei-1ee").is_err());
        assert!(decode(b"").is_err() && decode(b"d").is_err() && decode(b"d99999999999:x").is_err());
    }

    #[test]
    fn pieces_cover_the_info_dict_exactly() {
        let info = vec![7u8; METADATA_PIECE * 2 + 5];
        assert_eq!(piece_of(&info, 0).unwrap().len(), METADATA_PIECE);
        assert_eq!(piece_of(&info, 2).unwrap().len(), 5);
        assert!(piece_of(&info, 3).is_none() && piece_of(&info, u32::MAX).is_none());
    }
}
