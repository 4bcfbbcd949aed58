//! A token bucket shared by every upload of a peer: `--upload-limit 4M` caps the sum.

use parking_lot::Mutex;
use std::fmt;
use std::time::{Duration, Instant};

/// Caps a byte rate across threads. Callers take bytes before sending them and sleep when
/// the bucket is in debt, so the long-run rate never exceeds the limit.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `bytes_per_sec` with a burst of 1/20 s worth (at least 64 KiB).
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate / 20.0).max(64.0 * 1024.0);
        RateLimiter { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Takes `n` bytes' worth of tokens, sleeping as long as needed.
    pub fn take(&self, n: usize) {
        let wait = {
            let mut st = self.state.lock();
            let now = Instant::now();
            let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
            st.0 = (st.0 + refill).min(self.burst) - n as f64;
            st.1 = now;
            if st.0 >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-st.0 / self.rate)
        };
        std::thread::sleep(wait);
    }
}

/// A rate that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRate(pub String);

impl fmt::Display for BadRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid rate '{}': use bytes per second from 16K to 1T, e.g. 500K, 4M or 1G", self.0)
    }
}

impl std::error::Error for BadRate {}

/// Reads `4M` (4 MiB/s), `500K`, `1G` or plain bytes per second; `K`, `M`, `G` are binary.
pub fn parse_rate(s: &str) -> Result<u64, BadRate> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let t = t.strip_suffix(['i']).unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let value: f64 = num.trim().parse().map_err(|_| BadRate(s.to_string()))?;
    let bytes = value * mult as f64;
    if !value.is_finite() || !(MIN_RATE as f64..=MAX_RATE as f64).contains(&bytes) {
        return Err(BadRate(s.to_string()));
    }
    Ok(bytes as u64)
}

/// The smallest rate accepted: 16 KiB/s (a 1 MiB chunk then takes a minute to send).
pub const MIN_RATE: u64 = 16 << 10;
/// The largest: 1 TiB/s, which is no limit at all.
pub const MAX_RATE: u64 = 1 << 40;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_suffixes() {
        assert_eq!(parse_rate("4M"), Ok(4 << 20));
        assert_eq!(parse_rate("500K"), Ok(500 << 10));
        assert_eq!(parse_rate("1G"), Ok(1 << 30));
        assert_eq!(parse_rate("1.5MiB/s"), Ok(3 << 19));
        assert_eq!(parse_rate("20000"), Ok(20000));
        for bad in ["", "M", "-1M", "0", "1", "15K", "fast", "1e400", "2T"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debt_makes_callers_wait() {
        let lim = RateLimiter::new(1 << 20);
        let t = Instant::now();
        lim.take(64 * 1024); // the burst
        lim.take(256 * 1024); // a quarter second of debt
        assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    }
}
