//! Peer exchange (BEP 11, `ut_pex`): a connected peer tells us, about once a minute, which
//! peers of the torrent it has met (`added`, `added6`, compact) and lost (`dropped`). What it
//! says is hostile input: at most [`MAX_PER_MESSAGE`] peers are taken from one message, only
//! usable addresses (no 0.0.0.0, multicast, broadcast or port 0), and a message that comes
//! sooner than [`MIN_GAP`] after the last from the same peer is ignored; the download keeps at
//! most `MAX_FEED_PEERS` in all. Never for a private torrent (BEP 27): it is not offered in
//! our extension handshake then, and what comes anyway is ignored.
//!
//! Every BitTorrent connection of the process, served or dialed, download or upload, joins
//! one [`Book`] under its torrent with the address it can be dialed at (the one we dialed,
//! or its address with the listen port its extension handshake named); what a connection
//! tells is the others of the same torrent ([`Teller`]). Peers heard on a connection wait in
//! the book, a few per torrent, until a download of that torrent takes them.

use super::msg::BtError;
use crate::compact;
use crate::hash::ContentId;
use crate::info_dict::check_depth;
use parking_lot::Mutex;
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
/// Peers heard of for one torrent that wait in the [`Book`] for a download to take them;
/// past it, what is heard is dropped until one does.
pub const MAX_HEARD: usize = 4 * MAX_PER_MESSAGE;

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

/// The BitTorrent connections of this process by torrent, and the peers heard of.
/// Bounded by the connections: an entry lives while a connection of its torrent does, and
/// holds at most [`MAX_HEARD`] peers heard.
#[derive(Default)]
pub struct Book {
    torrents: Mutex<HashMap<ContentId, Entry>>,
}

#[derive(Default)]
struct Entry {
    /// Each connection, and where it can be dialed (unknown for one that dialed us and did
    /// not name its listen port).
    connected: Vec<(u64, Option<SocketAddr>)>,
    heard: Vec<SocketAddr>,
}

impl Book {
    /// Connection `conn` of torrent `id` is open, dialable at `at`; again with a new `at`
    /// once its listen port is known.
    pub fn join(&self, id: ContentId, conn: u64, at: Option<SocketAddr>) {
        let mut torrents = self.torrents.lock();
        let entry = torrents.entry(id).or_default();
        match entry.connected.iter_mut().find(|(c, _)| *c == conn) {
            Some(slot) => slot.1 = at,
            None => entry.connected.push((conn, at)),
        }
    }

    /// Connection `conn` closed; the last one of a torrent takes its entry along.
    pub fn leave(&self, id: ContentId, conn: u64) {
        let mut torrents = self.torrents.lock();
        if let Some(entry) = torrents.get_mut(&id) {
            entry.connected.retain(|(c, _)| *c != conn);
            if entry.connected.is_empty() {
                torrents.remove(&id);
            }
        }
    }

    /// Where the other connections of torrent `id` than `conn` can be dialed, once each, at
    /// most [`MAX_PER_MESSAGE`].
    pub fn others(&self, id: ContentId, conn: u64) -> Vec<SocketAddr> {
        let torrents = self.torrents.lock();
        let mut out: Vec<SocketAddr> = Vec::new();
        let Some(entry) = torrents.get(&id) else { return out };
        let own = entry.connected.iter().find(|(c, _)| *c == conn).and_then(|(_, a)| *a);
        for a in entry.connected.iter().filter(|(c, _)| *c != conn).filter_map(|(_, a)| *a) {
            if Some(a) != own && !out.contains(&a) && out.len() < MAX_PER_MESSAGE {
                out.push(a);
            }
        }
        out
    }

    /// Peers a connection of torrent `id` heard of; kept while one of its connections is
    /// open, up to [`MAX_HEARD`].
    pub fn heard(&self, id: ContentId, peers: &[SocketAddr]) {
        let mut torrents = self.torrents.lock();
        let Some(entry) = torrents.get_mut(&id) else { return };
        for p in peers {
            if entry.heard.len() < MAX_HEARD && !entry.heard.contains(p) {
                entry.heard.push(*p);
            }
        }
    }

    /// Takes the peers heard of for torrent `id` (a download does, to dial them).
    pub fn take_heard(&self, id: ContentId) -> Vec<SocketAddr> {
        self.torrents.lock().get_mut(&id).map(|e| std::mem::take(&mut e.heard)).unwrap_or_default()
    }
}

/// What one connection has told the other side, and when it may tell again.
#[derive(Debug)]
pub struct Teller {
    told: Vec<SocketAddr>,
    next: Instant,
}

impl Teller {
    pub fn new(now: Instant) -> Teller {
        Teller { told: Vec::new(), next: now }
    }

    /// The ut_pex message to send at `now`, if one is due: once there is something to tell,
    /// then at most every [`SEND_EVERY`]. `connected` lists the peers to tell of now (it is
    /// asked only when a message may go).
    pub fn due(&mut self, now: Instant, connected: impl FnOnce() -> Vec<SocketAddr>) -> Option<Vec<u8>> {
        if now < self.next {
            return None;
        }
        let now_connected = connected();
        let added: Vec<SocketAddr> =
            now_connected.iter().filter(|a| !self.told.contains(a)).copied().collect();
        let dropped: Vec<SocketAddr> =
            self.told.iter().filter(|a| !now_connected.contains(a)).copied().collect();
        if added.is_empty() && dropped.is_empty() {
            self.next = now + Duration::from_secs(1); // look again soon
            return None;
        }
        self.told = now_connected;
        self.next = now + SEND_EVERY;
        Some(message(&added, &dropped))
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

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 6881))
    }

    #[test]
    fn the_book_tells_each_connection_of_the_others_of_its_torrent() {
        let (a, b) = (ContentId::from_bytes([1; 20]), ContentId::from_bytes([2; 20]));
        let book = Book::default();
        book.join(a, 1, Some(addr(1)));
        book.join(a, 2, None); // dialed us, listen port not known yet
        book.join(a, 3, Some(addr(3)));
        book.join(b, 4, Some(addr(4)));
        assert_eq!(book.others(a, 1), vec![addr(3)]);
        book.join(a, 2, Some(addr(2))); // its extension handshake named its port
        assert_eq!(book.others(a, 1), vec![addr(2), addr(3)]);
        assert_eq!(book.others(b, 4), vec![], "other torrents are not told");
        book.join(a, 5, Some(addr(3))); // a second connection with the same peer
        assert_eq!(book.others(a, 3), vec![addr(1), addr(2)], "nobody is told of itself");
        book.leave(a, 1);
        assert_eq!(book.others(a, 2), vec![addr(3)]);
    }

    #[test]
    fn heard_peers_wait_capped_until_taken_and_go_with_the_last_connection() {
        let id = ContentId::from_bytes([1; 20]);
        let book = Book::default();
        book.heard(id, &[addr(9)]);
        assert!(book.take_heard(id).is_empty(), "nothing is kept for a torrent nobody is connected for");
        book.join(id, 1, None);
        let many: Vec<SocketAddr> = (0..=255).map(|i| SocketAddr::from(([10, 1, 0, i], 1))).collect();
        book.heard(id, &many);
        book.heard(id, &many);
        assert_eq!(book.take_heard(id).len(), MAX_HEARD);
        assert!(book.take_heard(id).is_empty());
        book.heard(id, &[addr(9)]);
        book.leave(id, 1);
        book.join(id, 2, None);
        assert!(book.take_heard(id).is_empty());
    }

    #[test]
    fn a_teller_tells_changes_at_most_once_a_minute() {
        let t0 = Instant::now();
        let mut t = Teller::new(t0);
        assert_eq!(t.due(t0, Vec::new), None, "nothing to tell");
        let first = t.due(t0 + Duration::from_secs(1), || vec![addr(1)]).unwrap();
        assert_eq!(added(&first).unwrap(), vec![addr(1)]);
        assert_eq!(t.due(t0 + Duration::from_secs(30), || panic!("not asked before the minute")), None);
        assert_eq!(t.due(t0 + Duration::from_secs(61), || vec![addr(1)]), None, "nothing changed");
        let second = t.due(t0 + Duration::from_secs(62), || vec![addr(2)]).unwrap();
        assert_eq!(added(&second).unwrap(), vec![addr(2)]);
        let d: HashMap<Vec<u8>, Value> = match serde_bencode::from_bytes(&second).unwrap() {
            Value::Dict(d) => d,
            _ => unreachable!(),
        };
        assert_eq!(d.get(b"dropped".as_slice()), Some(&Value::Bytes(compact::encode([addr(1)].iter()))));
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
