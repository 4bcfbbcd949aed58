//! Caps on open connections, in all and per source address, so a few noisy addresses
//! cannot starve the others.
//!
//! Three limits: `per_ip` connections from one address; `slots` connections served at
//! once (the tracker's workers, the peer server's threads) and `slots + headroom` in all.
//! Past `slots` the server is under pressure: an address that already holds its fair
//! share (`slots` divided by the addresses present) gets no more, and its connections that
//! wait for input give way (see [`ConnGuard::give_way_test`]). So an address with one
//! connection is always let in while others hoard idle or dripping ones.

use crate::wire::deadline::GiveWay;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Counts open connections. Cloning shares the counts.
#[derive(Clone)]
pub struct ConnLimiter {
    inner: Arc<Mutex<Counts>>,
    per_ip: usize,
    slots: usize,
    headroom: usize,
}

struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    refused: u64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    PerIp { ip: IpAddr, limit: usize },
    FairShare { ip: IpAddr, share: usize },
    Total { limit: usize },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::PerIp { ip, limit } => {
                write!(f, "too many connections from {ip} (limit {limit})")
            }
            LimitError::FairShare { ip, share } => {
                write!(f, "server busy: {ip} already holds its share of {share} connections")
            }
            LimitError::Total { limit } => write!(f, "server busy: {limit} connections open"),
        }
    }
}

impl std::error::Error for LimitError {}

/// Held while a connection is open; gives its place back when dropped.
pub struct ConnGuard {
    limiter: ConnLimiter,
    ip: IpAddr,
}

impl Counts {
    fn fair_share(&self, slots: usize) -> usize {
        (slots / self.by_ip.len().max(1)).max(1)
    }
}

impl ConnLimiter {
    /// At most `per_ip` from one address; `slots` served at once, `headroom` more admitted
    /// under pressure.
    pub fn new(per_ip: usize, slots: usize, headroom: usize) -> ConnLimiter {
        let counts = Counts { total: 0, by_ip: HashMap::new(), refused: 0 };
        ConnLimiter { inner: Arc::new(Mutex::new(counts)), per_ip, slots, headroom }
    }

    /// Takes a place for a connection from `ip`, or says which limit is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnGuard, LimitError> {
        let mut counts = self.inner.lock();
        let n = counts.by_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if n >= self.per_ip {
            Some(LimitError::PerIp { ip, limit: self.per_ip })
        } else if counts.total >= self.slots + self.headroom {
            Some(LimitError::Total { limit: self.slots + self.headroom })
        } else if counts.total >= self.slots && n >= counts.fair_share(self.slots) {
            Some(LimitError::FairShare { ip, share: counts.fair_share(self.slots) })
        } else {
            None
        };
        if let Some(e) = refusal {
            counts.refused += 1;
            return Err(e);
        }
        *counts.by_ip.entry(ip).or_insert(0) += 1;
        counts.total += 1;
        Ok(ConnGuard { limiter: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().total
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.inner.lock().refused
    }

    /// True when more connections are open than there are slots and `ip` holds more than
    /// its fair share: one of its connections waiting for input should close.
    pub fn should_give_way(&self, ip: IpAddr) -> bool {
        let counts = self.inner.lock();
        counts.total > self.slots
            && counts.by_ip.get(&ip).copied().unwrap_or(0) > counts.fair_share(self.slots)
    }
}

impl ConnGuard {
    /// The test a connection runs while it waits for input (see the module comment).
    pub fn give_way_test(&self) -> GiveWay {
        let (limiter, ip) = (self.limiter.clone(), self.ip);
        Arc::new(move || limiter.should_give_way(ip))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut counts = self.limiter.inner.lock();
        counts.total -= 1;
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn caps_per_ip_and_total() {
        let lim = ConnLimiter::new(2, 3, 0);
        let (a, b) = (ip(2), ip(1));
        let g1 = lim.try_acquire(a).unwrap();
        let _g2 = lim.try_acquire(a).unwrap();
        assert_eq!(lim.try_acquire(a).err(), Some(LimitError::PerIp { ip: a, limit: 2 }));
        let _g3 = lim.try_acquire(b).unwrap();
        assert_eq!(lim.try_acquire(b).err(), Some(LimitError::Total { limit: 3 }));
        drop(g1);
        let _g4 = lim.try_acquire(a).expect("a place was given back");
        assert_eq!(lim.open(), 3);
        assert_eq!(lim.refused(), 2);
    }

    #[test]
    fn under_pressure_hoarders_give_way_and_newcomers_get_in() {
        // 4 slots, 4 more under pressure, 4 per address.
        let lim = ConnLimiter::new(4, 4, 4);
        let hoarder: Vec<ConnGuard> = (0..4).map(|_| lim.try_acquire(ip(2)).unwrap()).collect();
        assert!(!lim.should_give_way(ip(2)), "no pressure while slots are free");
        let newcomer = lim.try_acquire(ip(3)).expect("an address with nothing open gets in");
        assert!(lim.should_give_way(ip(2)), "over its share of 4/2 = 2");
        assert!(!lim.should_give_way(ip(3)));
        assert!(!newcomer.give_way_test()());
        let more = lim.try_acquire(ip(3)).expect("below its share");
        assert!(matches!(lim.try_acquire(ip(3)), Err(LimitError::FairShare { share: 2, .. })));
        drop(hoarder);
        assert!(!lim.should_give_way(ip(3)));
        drop((newcomer, more));
        assert_eq!(lim.open(), 0);
    }
}
