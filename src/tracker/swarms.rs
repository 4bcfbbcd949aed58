//! The BitTorrent side of the tracker's index: for each info-hash, the BitTorrent clients
//! that announced it over HTTP (BEP 3), with what they have left and when they were last
//! heard. Pure, without sockets; the tracker's state holds one and merges it with the
//! p2p-share peers of the same content id (an info-hash too).
//!
//! Caps: peers per swarm, swarms, and announcing peers per address; a peer silent for
//! three announce intervals is dropped, and a swarm with no peer left is forgotten (its
//! completed count with it).

use crate::hash::ContentId;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Limits of the BitTorrent index.
#[derive(Debug, Clone)]
pub struct SwarmLimits {
    pub max_swarms: usize,
    pub max_peers_per_swarm: usize,
    /// Peers one address may have across all swarms.
    pub max_peers_per_ip: usize,
}

impl Default for SwarmLimits {
    fn default() -> Self {
        SwarmLimits { max_swarms: 100_000, max_peers_per_swarm: 2_000, max_peers_per_ip: 256 }
    }
}

/// One client in one swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtPeer {
    pub peer_id: [u8; 20],
    /// Bytes it still needs: 0 for a seeder.
    pub left: u64,
    pub uploaded: u64,
    pub downloaded: u64,
    pub last_seen: Instant,
}

/// Everyone announcing one info-hash.
#[derive(Debug, Default)]
pub struct BtSwarm {
    pub peers: BTreeMap<SocketAddr, BtPeer>,
    /// `event=completed` announces seen.
    pub completed: u64,
}

impl BtSwarm {
    pub fn seeders(&self) -> usize {
        self.peers.values().filter(|p| p.left == 0).count()
    }

    pub fn leechers(&self) -> usize {
        self.peers.len() - self.seeders()
    }
}

pub use crate::bt::announce::{Announce, Event};

/// An announce and how the client wants its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceQuery {
    pub announce: Announce,
    pub compact: bool,
    pub numwant: usize,
}

/// What an announce is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceAnswer {
    pub interval_secs: u64,
    pub complete: usize,
    pub incomplete: usize,
    pub peers: Vec<SocketAddr>,
}

/// Counts for one scraped info-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeCounts {
    pub complete: usize,
    pub downloaded: u64,
    pub incomplete: usize,
}

/// Why an announce was refused (sent back as the `failure reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    TooManySwarms(usize),
    SwarmFull(usize),
    TooManyFromAddress { ip: IpAddr, limit: usize },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooManySwarms(n) => write!(f, "the tracker's index is full ({n} torrents)"),
            Refused::SwarmFull(n) => write!(f, "this torrent has the most peers the tracker keeps ({n})"),
            Refused::TooManyFromAddress { ip, limit } => {
                write!(f, "too many peers from {ip} (limit {limit})")
            }
        }
    }
}

/// Every swarm the tracker keeps for BitTorrent clients.
#[derive(Debug, Default)]
pub struct Swarms {
    limits: SwarmLimits,
    swarms: HashMap<ContentId, BtSwarm>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Swarms {
    pub fn new(limits: SwarmLimits) -> Swarms {
        Swarms { limits, ..Swarms::default() }
    }

    /// Records an announce from `addr` (its address and announced port).
    pub fn announce(&mut self, a: &Announce, addr: SocketAddr, now: Instant) -> Result<(), Refused> {
        if a.event == Event::Stopped {
            self.remove(&a.info_hash, addr);
            return Ok(());
        }
        let known = self.swarms.get(&a.info_hash).is_some_and(|s| s.peers.contains_key(&addr));
        if !known {
            if !self.swarms.contains_key(&a.info_hash) && self.swarms.len() >= self.limits.max_swarms {
                return Err(Refused::TooManySwarms(self.limits.max_swarms));
            }
            if self.swarms.get(&a.info_hash).is_some_and(|s| s.peers.len() >= self.limits.max_peers_per_swarm)
            {
                return Err(Refused::SwarmFull(self.limits.max_peers_per_swarm));
            }
            let on_ip = self.per_ip.get(&addr.ip()).copied().unwrap_or(0);
            if on_ip >= self.limits.max_peers_per_ip {
                return Err(Refused::TooManyFromAddress {
                    ip: addr.ip(),
                    limit: self.limits.max_peers_per_ip,
                });
            }
            *self.per_ip.entry(addr.ip()).or_default() += 1;
        }
        let swarm = self.swarms.entry(a.info_hash).or_default();
        if a.event == Event::Completed {
            swarm.completed += 1;
        }
        let peer = BtPeer {
            peer_id: a.peer_id,
            left: a.left,
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            last_seen: now,
        };
        swarm.peers.insert(addr, peer);
        Ok(())
    }

    fn remove(&mut self, id: &ContentId, addr: SocketAddr) {
        let Some(swarm) = self.swarms.get_mut(id) else { return };
        let removed = swarm.peers.remove(&addr).is_some();
        if swarm.peers.is_empty() {
            self.swarms.remove(id);
        }
        if removed {
            self.unuse(addr.ip());
        }
    }

    fn unuse(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Drops peers silent for longer than `silence`; returns how many.
    pub fn expire(&mut self, now: Instant, silence: Duration) -> usize {
        let mut gone = Vec::new();
        for (id, s) in &self.swarms {
            for (addr, p) in &s.peers {
                if now.saturating_duration_since(p.last_seen) > silence {
                    gone.push((*id, *addr));
                }
            }
        }
        for (id, addr) in &gone {
            self.remove(id, *addr);
        }
        gone.len()
    }

    pub fn get(&self, id: &ContentId) -> Option<&BtSwarm> {
        self.swarms.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ContentId, &BtSwarm)> {
        self.swarms.iter()
    }

    pub fn peer_count(&self) -> usize {
        self.swarms.values().map(|s| s.peers.len()).sum()
    }

    pub fn len(&self) -> usize {
        self.swarms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.swarms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(id: u8, left: u64, event: Event) -> Announce {
        Announce {
            info_hash: ContentId::of(&[id]),
            peer_id: [id; 20],
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left,
            event,
        }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, last], port))
    }

    #[test]
    fn seeders_leechers_completed_and_stopped() {
        let mut s = Swarms::default();
        let now = Instant::now();
        s.announce(&ann(1, 0, Event::Started), addr(2, 1), now).unwrap();
        s.announce(&ann(1, 500, Event::Started), addr(3, 1), now).unwrap();
        let w = s.get(&ContentId::of(&[1])).unwrap();
        assert_eq!((w.seeders(), w.leechers(), w.completed), (1, 1, 0));
        s.announce(&ann(1, 0, Event::Completed), addr(3, 1), now).unwrap();
        let w = s.get(&ContentId::of(&[1])).unwrap();
        assert_eq!((w.seeders(), w.leechers(), w.completed), (2, 0, 1));
        s.announce(&ann(1, 0, Event::Stopped), addr(2, 1), now).unwrap();
        s.announce(&ann(1, 0, Event::Stopped), addr(3, 1), now).unwrap();
        assert!(s.is_empty(), "a swarm with nobody left is forgotten");
        assert!(s.per_ip.is_empty());
    }

    #[test]
    fn caps_and_expiry() {
        let limits = SwarmLimits { max_swarms: 2, max_peers_per_swarm: 2, max_peers_per_ip: 3 };
        let mut s = Swarms::new(limits);
        let t0 = Instant::now();
        s.announce(&ann(1, 0, Event::None), addr(2, 1), t0).unwrap();
        s.announce(&ann(1, 0, Event::None), addr(2, 2), t0).unwrap();
        assert_eq!(s.announce(&ann(1, 0, Event::None), addr(3, 1), t0), Err(Refused::SwarmFull(2)));
        s.announce(&ann(2, 0, Event::None), addr(2, 3), t0).unwrap();
        assert_eq!(s.announce(&ann(3, 0, Event::None), addr(4, 1), t0), Err(Refused::TooManySwarms(2)));
        assert!(matches!(
            s.announce(&ann(2, 0, Event::None), addr(2, 4), t0),
            Err(Refused::TooManyFromAddress { .. })
        ));
        s.announce(&ann(1, 0, Event::None), addr(2, 1), t0).unwrap(); // a known peer again: no cap
        let later = t0 + Duration::from_secs(31);
        s.announce(&ann(2, 0, Event::None), addr(2, 3), later).unwrap();
        assert_eq!(s.expire(later, Duration::from_secs(30)), 2, "the two silent ones");
        assert_eq!((s.len(), s.peer_count()), (1, 1));
        assert_eq!(s.per_ip.get(&IpAddr::from([127, 0, 0, 2])), Some(&1));
    }
}
