//! Peer exchange (BEP 11, `ut_pex`): a connected peer tells us, about once a minute, which
//! peers of the torrent it has met (`added`, `added6`, compact) and lost (`dropped`). What it
//! says is hostile input: at most [`MAX_PER_MESSAGE`] peers are taken from one message, only
//! usable addresses (no 0.0.0.0, multicast, broadcast or port 0), and a message that comes
//! sooner than [`MIN_GAP`] after the last from the same peer is ignored; the download keeps at
//! most `MAX_FEED_PEERS` in all. Never for a private torrent (BEP 27): it is not offered in
//! our extension handshake then, and what comes anyway is ignored.

use super::msg::BtError;
use crate::compact;
use crate::info_dict::check_depth;
use serde_bencode::value::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The id we ask peers to use for ut_pex messages to us.
pub const OUR_UT_PEX: u8 = 2;
/// Peers taken from one message.
pub const MAX_PER_MESSAGE: usize = 50;
/// The shortest gap between two messages from one peer that are read (BEP 11 asks for a
/// minute; some clients send the first ones sooner).
pub const MIN_GAP: Duration = Duration::from_secs(20);
/// Largest message read.
const MAX_MESSAGE: usize = 16 * 1024;
/// How often we tell a peer what changed (BEP 11: at most once a minute).
pub const SEND_EVERY: Duration = Duration::from_secs(60);

/// A ut_pex message: `added` (with no flags) and `dropped`, IPv4 and IPv6 apart, at most
/// [`MAX_PER_MESSAGE`] of each.
pub fn message(added: &[SocketAddr], dropped: &[SocketAddr]) -> Vec<u8> {
    let compact = |peers: &[SocketAddr], v6: bool| {
        compact::encode(peers.iter().filter(|p| p.is_ipv6() == v6).take(MAX_PER_MESSAGE))
    };
    let (a4, a6, d4, d6) =
        (compact(added, false), compact(added, true), compact(dropped, false), compact(dropped, true));
    let mut m = b"d".to_vec();
    let mut put = |key: &str, value: &[u8]| {
        m.extend_from_slice(format!("{}:{key}{}:", key.len(), value.len()).as_bytes());
        m.extend_from_slice(value);
    };
    // Keys in byte order, as bencode asks.
    put("added", &a4);
    put("added.f", &vec![0; a4.len() / 6]);
    put("added6", &a6);
    put("added6.f", &vec![0; a6.len() / 18]);
    put("dropped", &d4);
    put("dropped6", &d6);
    m.push(b'e');
    m
}

/// The peers a ut_pex message adds (dropped ones are not taken from the list: a peer we
/// could not reach fails and backs off on its own).
pub fn added(payload: &[u8]) -> Result<Vec<SocketAddr>, BtError> {
    if payload.len() > MAX_MESSAGE {
        return Err(BtError::Protocol(format!("a ut_pex message of {} bytes", payload.len())));
    }
    check_depth(payload).map_err(|e| BtError::Protocol(e.to_string()))?;
    let dict: HashMap<Vec<u8>, Value> = match serde_bencode::from_bytes::<Value>(payload) {
        Ok(Value::Dict(d)) => d,
        _ => return Err(BtError::Protocol("a ut_pex message that is not a dictionary".into())),
    };
    let mut out = Vec::new();
    for (key, v6) in [(b"added".as_slice(), false), (b"added6".as_slice(), true)] {
        if let Some(Value::Bytes(b)) = dict.get(key) {
            compact::decode(b, v6, MAX_PER_MESSAGE, &mut out);
        }
    }
    Ok(out)
}

/// When a peer's last ut_pex message was read.
#[derive(Debug, Default)]
pub struct Gap(Option<Instant>);

impl Gap {
    /// Whether a message that came at `now` is read (and if so, it counts as the last).
    pub fn admits(&mut self, now: Instant) -> bool {
        if self.0.is_some_and(|t| now.saturating_duration_since(t) < MIN_GAP) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(added: &[u8], added6: &[u8]) -> Vec<u8> {
        let mut m = b"d5:added".to_vec();
        m.extend_from_slice(format!("{}:", added.len()).as_bytes());
        m.extend_from_slice(added);
        m.extend_from_slice(b"7:added.f");
        m.extend_from_slice(format!("{}:", added.len() / 6).as_bytes());
        m.extend(std::iter::repeat_n(0u8, added.len() / 6));
        m.extend_from_slice(b"6:added6");
        m.extend_from_slice(format!("{}:", added6.len()).as_bytes());
        m.extend_from_slice(added6);
        m.extend_from_slice(b"7:dropped0:e");
        m
    }

    #[test]
    fn added_peers_are_read_v4_and_v6_and_unusable_ones_dropped() {
        let v4 = [127, 0, 0, 1, 0x1a, 0xe1, 0, 0, 0, 0, 0, 1, 224, 0, 0, 1, 0, 2, 10, 0, 0, 2, 0, 0];
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[16..].copy_from_slice(&6881u16.to_be_bytes());
        let got = added(&msg(&v4, &v6)).unwrap();
        assert_eq!(got, vec!["127.0.0.1:6881".parse().unwrap(), "[::1]:6881".parse().unwrap()]);
    }

    #[test]
    fn a_message_is_capped_and_hostile_ones_refused() {
        let many: Vec<u8> = (0..500u32).flat_map(|i| [10, 0, (i >> 8) as u8, i as u8, 0x1a, 0xe1]).collect();
        assert_eq!(added(&msg(&many, &[])).unwrap().len(), MAX_PER_MESSAGE);
        assert!(added(b"le").is_err());
        assert!(added(&[b'l'; 100]).is_err());
        assert!(added(&[b'x'; MAX_MESSAGE + 1]).is_err());
        assert!(added(b"d5:addedi3ee").unwrap().is_empty(), "a wrong type is no peers");
        assert!(added(b"d5:added5:12345e").unwrap().is_empty(), "a partial entry is skipped");
    }

    #[test]
    fn a_message_we_write_reads_back() {
        let peers: Vec<SocketAddr> =
            vec!["10.0.0.1:6881".parse().unwrap(), "[2001:db8::1]:51413".parse().unwrap()];
        let m = message(&peers, &["10.0.0.2:1".parse().unwrap()]);
        assert_eq!(added(&m).unwrap(), peers);
        assert!(serde_bencode::from_bytes::<Value>(&m).is_ok());
    }

    #[test]
    fn messages_closer_than_the_gap_are_ignored() {
        let t0 = Instant::now();
        let mut g = Gap::default();
        assert!(g.admits(t0));
        assert!(!g.admits(t0 + Duration::from_secs(5)));
        assert!(g.admits(t0 + MIN_GAP));
    }
}
