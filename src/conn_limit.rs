//! Caps on open connections, in all and per source address, so one noisy address cannot
//! starve the others.

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
    total: usize,
}

struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    PerIp { ip: IpAddr, limit: usize },
    Total { limit: usize },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitError::PerIp { ip, limit } => {
                write!(f, "too many connections from {ip} (limit {limit})")
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

impl ConnLimiter {
    pub fn new(per_ip: usize, total: usize) -> ConnLimiter {
        let counts = Counts { total: 0, by_ip: HashMap::new() };
        ConnLimiter { inner: Arc::new(Mutex::new(counts)), per_ip, total }
    }

    /// Takes a place for a connection from `ip`, or says which limit is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnGuard, LimitError> {
        let mut counts = self.inner.lock();
        if counts.total >= self.total {
            return Err(LimitError::Total { limit: self.total });
        }
        let n = counts.by_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            return Err(LimitError::PerIp { ip, limit: self.per_ip });
        }
        *n += 1;
        counts.total += 1;
        Ok(ConnGuard { limiter: self.clone(), ip })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.lock().total
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

    #[test]
    fn caps_per_ip_and_total() {
        let lim = ConnLimiter::new(2, 3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let g1 = lim.try_acquire(a).unwrap();
        let _g2 = lim.try_acquire(a).unwrap();
        assert_eq!(lim.try_acquire(a).err(), Some(LimitError::PerIp { ip: a, limit: 2 }));
        let _g3 = lim.try_acquire(b).unwrap();
        assert_eq!(lim.try_acquire(b).err(), Some(LimitError::Total { limit: 3 }));
        drop(g1);
        let _g4 = lim.try_acquire(a).expect("a place was given back");
        assert_eq!(lim.open(), 3);
    }
}
