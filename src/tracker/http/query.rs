//! The query strings of `GET /announce` (BEP 3, 23, 7) and `GET /scrape` (BEP 48), parsed
//! into checked values; and the bencoded answers. Pure, unit- and property-tested.
//!
//! `info_hash` and `peer_id` are 20 raw bytes, percent-encoded; every number must fit a
//! u64; a key given twice is refused (but `info_hash` in a scrape, which lists several).
//! A client's own `ip=` is ignored: peers are known by the address they connect from.

use crate::hash::ContentId;
use crate::tracker::swarms::{Announce, Event};
use crate::tracker::swarms::{AnnounceAnswer, AnnounceQuery, ScrapeCounts};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_bencode::value::Value;
use std::collections::HashMap;
use std::fmt;

/// Peers returned when the client asks for none in particular, and the most it may ask.
pub const DEFAULT_NUMWANT: usize = 50;
pub const MAX_NUMWANT: usize = 200;
/// Most info-hashes one scrape may ask about.
pub const MAX_SCRAPE: usize = 64;
/// Most parameters one query may carry.
const MAX_PARAMS: usize = 64;

/// Why a query was refused; it goes back as the `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Missing(&'static str),
    Repeated(String),
    BadValue { key: &'static str, why: &'static str },
    TooManyParams,
    TooManyHashes,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Missing(k) => write!(f, "missing {k}"),
            QueryError::Repeated(k) => write!(f, "{} given more than once", crate::text::one_line(k)),
            QueryError::BadValue { key, why } => write!(f, "{key} {why}"),
            QueryError::TooManyParams => write!(f, "more than {MAX_PARAMS} parameters"),
            QueryError::TooManyHashes => write!(f, "more than {MAX_SCRAPE} info_hash values"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Splits a query into raw (percent-decoded) keys and values.
fn params(query: &str) -> Result<Vec<(String, Vec<u8>)>, QueryError> {
    let pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if pairs.len() > MAX_PARAMS {
        return Err(QueryError::TooManyParams);
    }
    Ok(pairs
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let key = percent_decode_str(k).decode_utf8_lossy().into_owned();
            (key, percent_decode_str(v).collect())
        })
        .collect())
}

/// Values by key, each at most once.
fn unique(params: Vec<(String, Vec<u8>)>) -> Result<HashMap<String, Vec<u8>>, QueryError> {
    let mut map = HashMap::new();
    for (k, v) in params {
        if map.insert(k.clone(), v).is_some() {
            return Err(QueryError::Repeated(k));
        }
    }
    Ok(map)
}

fn twenty(key: &'static str, v: &[u8]) -> Result<[u8; 20], QueryError> {
    v.try_into().map_err(|_| QueryError::BadValue { key, why: "is not 20 bytes" })
}

fn number(map: &HashMap<String, Vec<u8>>, key: &'static str) -> Result<Option<u64>, QueryError> {
    let Some(v) = map.get(key) else { return Ok(None) };
    let bad = QueryError::BadValue { key, why: "is not a number" };
    let s = std::str::from_utf8(v).map_err(|_| bad.clone())?;
    s.parse::<u64>().map(Some).map_err(|_| bad)
}

/// Parses an announce's query string.
pub fn parse_announce(query: &str) -> Result<AnnounceQuery, QueryError> {
    let map = unique(params(query)?)?;
    let info_hash = ContentId::from_bytes(twenty(
        "info_hash",
        map.get("info_hash").ok_or(QueryError::Missing("info_hash"))?,
    )?);
    let peer_id = twenty("peer_id", map.get("peer_id").ok_or(QueryError::Missing("peer_id"))?)?;
    let port = number(&map, "port")?.ok_or(QueryError::Missing("port"))?;
    if port == 0 || port > u64::from(u16::MAX) {
        return Err(QueryError::BadValue { key: "port", why: "is not a port (1-65535)" });
    }
    let event = match map.get("event").map(Vec::as_slice) {
        None | Some(b"") | Some(b"empty") => Event::None,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(_) => {
            return Err(QueryError::BadValue { key: "event", why: "is not started, completed or stopped" })
        }
    };
    let compact = match map.get("compact").map(Vec::as_slice) {
        None | Some(b"1") => true,
        Some(b"0") => false,
        Some(_) => return Err(QueryError::BadValue { key: "compact", why: "is not 0 or 1" }),
    };
    let numwant = number(&map, "numwant")?.map_or(DEFAULT_NUMWANT, |n| (n as usize).min(MAX_NUMWANT));
    let announce = Announce {
        info_hash,
        peer_id,
        port: port as u16,
        uploaded: number(&map, "uploaded")?.unwrap_or(0),
        downloaded: number(&map, "downloaded")?.unwrap_or(0),
        left: number(&map, "left")?.ok_or(QueryError::Missing("left"))?,
        event,
    };
    Ok(AnnounceQuery { announce, compact, numwant })
}

/// Parses a scrape's query: the info-hashes asked about (none: the client wants all, which
/// this tracker does not give; the answer is then empty).
pub fn parse_scrape(query: &str) -> Result<Vec<ContentId>, QueryError> {
    let mut out = Vec::new();
    for (k, v) in params(query)? {
        if k == "info_hash" {
            out.push(ContentId::from_bytes(twenty("info_hash", &v)?));
        }
    }
    if out.len() > MAX_SCRAPE {
        return Err(QueryError::TooManyHashes);
    }
    Ok(out)
}

/// `d14:failure reason...e`.
pub fn failure(reason: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Failure<'a> {
        #[serde(rename = "failure reason")]
        reason: &'a str,
    }
    serde_bencode::to_bytes(&Failure { reason }).expect("a failure always encodes")
}

/// The bencoded answer: compact `peers` (6 bytes each, BEP 23) and `peers6` (18 bytes
/// each, BEP 7), or a list of dictionaries when the client asked for `compact=0`.
pub fn announce_reply(a: &AnnounceAnswer, compact: bool) -> Vec<u8> {
    let mut d: HashMap<Vec<u8>, Value> = HashMap::new();
    let int = |n: usize| Value::Int(n as i64);
    d.insert(b"interval".to_vec(), Value::Int(a.interval_secs as i64));
    d.insert(b"min interval".to_vec(), Value::Int((a.interval_secs / 2).max(1) as i64));
    d.insert(b"complete".to_vec(), int(a.complete));
    d.insert(b"incomplete".to_vec(), int(a.incomplete));
    if compact {
        let v4 = crate::compact::encode(a.peers.iter().filter(|p| p.is_ipv4()));
        let v6 = crate::compact::encode(a.peers.iter().filter(|p| p.is_ipv6()));
        d.insert(b"peers".to_vec(), Value::Bytes(v4));
        if !v6.is_empty() {
            d.insert(b"peers6".to_vec(), Value::Bytes(v6));
        }
    } else {
        let list = a
            .peers
            .iter()
            .map(|p| {
                let mut e = HashMap::new();
                e.insert(b"ip".to_vec(), Value::Bytes(p.ip().to_string().into_bytes()));
                e.insert(b"port".to_vec(), Value::Int(i64::from(p.port())));
                Value::Dict(e)
            })
            .collect();
        d.insert(b"peers".to_vec(), Value::List(list));
    }
    serde_bencode::to_bytes(&Value::Dict(d)).expect("an answer always encodes")
}

/// `d5:filesd20:<hash>d8:completei..e10:downloadedi..e10:incompletei..eeee`.
pub fn scrape_reply(files: &[(ContentId, ScrapeCounts)]) -> Vec<u8> {
    let mut map = HashMap::new();
    for (id, c) in files {
        let mut e = HashMap::new();
        e.insert(b"complete".to_vec(), Value::Int(c.complete as i64));
        e.insert(b"downloaded".to_vec(), Value::Int(c.downloaded as i64));
        e.insert(b"incomplete".to_vec(), Value::Int(c.incomplete as i64));
        map.insert(id.as_bytes().to_vec(), Value::Dict(e));
    }
    let mut top = HashMap::new();
    top.insert(b"files".to_vec(), Value::Dict(map));
    serde_bencode::to_bytes(&Value::Dict(top)).expect("a scrape always encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("%{b:02X}")).collect()
    }

    fn base(id: &ContentId) -> String {
        format!(
            "info_hash={}&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=100",
            pct(id.as_bytes())
        )
    }

    #[test]
    fn reads_binary_hashes_and_defaults() {
        let id = ContentId::of(b"x");
        let q = parse_announce(&(base(&id) + "&event=started&compact=1&key=abc&ip=10.9.9.9")).unwrap();
        assert_eq!(q.announce.info_hash, id);
        assert_eq!(&q.announce.peer_id, b"-TR3000-abcdefghijkl");
        assert_eq!((q.announce.port, q.announce.left, q.announce.event), (51413, 100, Event::Started));
        assert!(q.compact);
        assert_eq!(q.numwant, DEFAULT_NUMWANT);
        // Unreserved bytes may come unencoded, as clients send them.
        let raw: String = id
            .as_bytes()
            .iter()
            .map(|b| if b.is_ascii_alphanumeric() { (*b as char).to_string() } else { format!("%{b:02x}") })
            .collect();
        let q2 = parse_announce(&base(&id).replacen(&pct(id.as_bytes()), &raw, 1)).unwrap();
        assert_eq!(q2.announce.info_hash, id);
        assert_eq!(parse_announce(&(base(&id) + "&numwant=100000")).unwrap().numwant, MAX_NUMWANT);
    }

    #[test]
    fn refuses_missing_repeated_and_huge_values() {
        let id = ContentId::of(b"x");
        assert_eq!(parse_announce("peer_id=x&port=1"), Err(QueryError::Missing("info_hash")));
        assert_eq!(parse_announce(&(base(&id) + "&port=2")), Err(QueryError::Repeated("port".into())));
        assert!(matches!(
            parse_announce(&base(&id).replace("left=100", "left=99999999999999999999999")),
            Err(QueryError::BadValue { key: "left", .. })
        ));
        assert!(matches!(
            parse_announce(&base(&id).replace("port=51413", "port=0")),
            Err(QueryError::BadValue { key: "port", .. })
        ));
        assert!(matches!(
            parse_announce(&base(&id).replace("port=51413", "port=70000")),
            Err(QueryError::BadValue { key: "port", .. })
        ));
        assert!(matches!(
            parse_announce(&base(&id).replace(&pct(id.as_bytes()), "%41%42")),
            Err(QueryError::BadValue { key: "info_hash", .. })
        ));
        assert!(matches!(
            parse_announce(&(base(&id) + "&event=exploded")),
            Err(QueryError::BadValue { key: "event", .. })
        ));
        assert_eq!(parse_announce(&base(&id).replace("&left=100", "")), Err(QueryError::Missing("left")));
        assert_eq!(parse_announce(&"a=1&".repeat(100)), Err(QueryError::TooManyParams));
        assert!(failure("bad").starts_with(b"d14:failure reason3:bade"));
    }

    #[test]
    fn scrape_lists_several_hashes() {
        let (a, b) = (ContentId::of(b"a"), ContentId::of(b"b"));
        let q = format!("info_hash={}&info_hash={}", pct(a.as_bytes()), pct(b.as_bytes()));
        assert_eq!(parse_scrape(&q).unwrap(), vec![a, b]);
        assert!(parse_scrape("info_hash=%41").is_err());
        let many = (0..65).map(|_| format!("info_hash={}", pct(a.as_bytes()))).collect::<Vec<_>>().join("&");
        assert!(parse_scrape(&many).is_err());
        let reply = scrape_reply(&[(a, ScrapeCounts { complete: 2, downloaded: 5, incomplete: 1 })]);
        let expected = [
            b"d5:filesd20:".to_vec(),
            a.as_bytes().to_vec(),
            b"d8:completei2e10:downloadedi5e10:incompletei1eeee".to_vec(),
        ]
        .concat();
        assert_eq!(reply, expected);
    }

    #[test]
    fn compact_and_list_answers() {
        let a = AnnounceAnswer {
            interval_secs: 10,
            complete: 1,
            incomplete: 2,
            peers: vec!["127.0.0.2:6881".parse().unwrap(), "[::1]:7000".parse().unwrap()],
        };
        let c = announce_reply(&a, true);
        let text = String::from_utf8_lossy(&c);
        assert!(
            text.starts_with("d8:completei1e10:incompletei2e8:intervali10e12:min intervali5e5:peers6:"),
            "{text}"
        );
        assert!(c.windows(6).any(|w| w == [127, 0, 0, 2, 0x1a, 0xe1]), "127.0.0.2:6881 compact");
        assert!(text.contains("6:peers618:"));
        let l = String::from_utf8_lossy(&announce_reply(&a, false)).into_owned();
        assert!(l.contains("5:peersld2:ip9:127.0.0.24:porti6881eed2:ip3:::14:porti7000eee"), "{l}");
    }
}
