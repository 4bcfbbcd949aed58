//! Answers per source (p2p-share patch): token buckets per source address and per IPv4
//! address, so one source cannot make this node answer as fast as it asks (about 1 800
//! answers a second to one source were seen, at 4.6-5.5 times the bytes of the queries: an
//! amplifier aimed at whoever the source address names). Requests over the rate are
//! dropped unanswered. Loopback addresses, which no one can forge from outside, have no
//! per-IP bucket (a test network runs all its nodes on 127.0.0.1).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

/// Answers one source address (IP and port) may get in a burst, and a second after it.
pub const BURST: f64 = 20.0;
pub const PER_SECOND: f64 = 10.0;
/// The same for all the ports of one IP address together.
pub const IP_BURST: f64 = 200.0;
pub const IP_PER_SECOND: f64 = 100.0;
/// Sources tracked at once in each table; past it, one whose bucket is full again makes
/// room, and a newcomer finding none is refused (a flood of spoofed addresses cannot grow
/// the tables).
pub const MAX_SOURCES: usize = 4096;

#[derive(Debug)]
pub struct SourceLimit {
    by_addr: Buckets<SocketAddrV4>,
    by_ip: Buckets<Ipv4Addr>,
}

impl Default for SourceLimit {
    fn default() -> Self {
        SourceLimit { by_addr: Buckets::new(BURST, PER_SECOND), by_ip: Buckets::new(IP_BURST, IP_PER_SECOND) }
    }
}

impl SourceLimit {
    /// Whether a request from `from` at `now` is answered (and takes its tokens if so).
    pub fn allow(&mut self, from: SocketAddrV4, now: Instant) -> bool {
        let ip = *from.ip();
        if !ip.is_loopback() && !self.by_ip.has_token(ip, now) {
            return false;
        }
        if !self.by_addr.take(from, now) {
            return false;
        }
        if !ip.is_loopback() {
            self.by_ip.take(ip, now);
        }
        true
    }
}

#[derive(Debug)]
struct Buckets<K> {
    burst: f64,
    per_second: f64,
    tokens: HashMap<K, (f64, Instant)>,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    fn new(burst: f64, per_second: f64) -> Self {
        Buckets { burst, per_second, tokens: HashMap::new() }
    }

    fn refill(&self, (tokens, at): (f64, Instant), now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_second).min(self.burst)
    }

    fn has_token(&self, key: K, now: Instant) -> bool {
        self.tokens.get(&key).is_none_or(|b| self.refill(*b, now) >= 1.0)
    }

    /// Takes a token for `key`; false when it has none, or there is no room for it.
    fn take(&mut self, key: K, now: Instant) -> bool {
        if !self.tokens.contains_key(&key) && self.tokens.len() >= MAX_SOURCES {
            let full = self.tokens.iter().find(|(_, b)| self.refill(**b, now) >= self.burst).map(|(k, _)| *k);
            match full {
                Some(old) => self.tokens.remove(&old),
                None => return false,
            };
        }
        let burst = self.burst;
        let bucket = *self.tokens.entry(key).or_insert((burst, now));
        let tokens = self.refill(bucket, now);
        let (left, ok) = if tokens >= 1.0 { (tokens - 1.0, true) } else { (tokens, false) };
        self.tokens.insert(key, (left, now));
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ip: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(ip.into(), port)
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let mut l = SourceLimit::default();
        let t0 = Instant::now();
        let from = at([10, 0, 0, 1], 6881);
        let answered = (0..1800).filter(|k| l.allow(from, t0 + Duration::from_micros(*k * 555))).count();
        // 1 800 requests in one second: the burst and about one second's rate.
        assert!((29..=31).contains(&answered), "{answered}");
        assert!(l.allow(at([10, 0, 0, 2], 6881), t0), "another source is not held back");
    }

    #[test]
    fn many_ports_of_one_address_share_its_bucket_but_loopback_has_none() {
        let mut l = SourceLimit::default();
        let t0 = Instant::now();
        let answered = (0..2000u16).filter(|p| l.allow(at([10, 0, 0, 1], 1000 + p), t0)).count();
        assert_eq!(answered, IP_BURST as usize);
        let local = (0..2000u16).filter(|p| l.allow(at([127, 0, 0, 1], 1000 + p), t0)).count();
        assert_eq!(local, 2000, "a loopback test network is limited per port only");
    }

    #[test]
    fn spoofed_sources_cannot_grow_the_table() {
        let mut l = SourceLimit::default();
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            l.allow(SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 1), t0);
        }
        assert!(!l.allow(at([11, 0, 0, 1], 1), t0), "a newcomer while every bucket is in use");
        assert!(l.allow(at([11, 0, 0, 1], 1), t0 + Duration::from_secs(2)), "room once one refilled");
        assert_eq!(l.by_addr.tokens.len(), MAX_SOURCES);
    }
}
