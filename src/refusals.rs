//! Refused connections, logged in summary: the first refusal of an address in a window is
//! one warning line, the rest of that window are counted and reported in one line when it
//! ends. A reconnect loop from a few addresses used to write a warning per attempt (249 554
//! lines, 27.7 MB in 45 s from 19 addresses); now it writes about two lines per address per
//! window. Pure logic: the caller passes the time and logs the lines.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long refusals are gathered before their counts are reported.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Addresses counted one by one in a window; refusals from more are counted together.
pub const MAX_ADDRESSES: usize = 1024;

/// Refusals gathered in the current window.
pub struct RefusalLog {
    window: Duration,
    started: Instant,
    /// Refusals after the first, by address, with the last reason given.
    by_ip: HashMap<IpAddr, (u64, String)>,
    /// Refusals from addresses past [`MAX_ADDRESSES`].
    others: u64,
}

impl RefusalLog {
    pub fn new(now: Instant) -> RefusalLog {
        RefusalLog::with_window(WINDOW, now)
    }

    pub fn with_window(window: Duration, now: Instant) -> RefusalLog {
        RefusalLog { window, started: now, by_ip: HashMap::new(), others: 0 }
    }

    /// Records a refusal of `ip` for `reason`. Returns the lines to log now: the summary of
    /// a window that ended, and this refusal itself when it is its address's first in the
    /// window.
    pub fn refused(&mut self, ip: IpAddr, reason: &str, now: Instant) -> Vec<String> {
        let mut lines = self.flush(now);
        let full = self.by_ip.len() >= MAX_ADDRESSES;
        match self.by_ip.get_mut(&ip) {
            Some((n, last)) => {
                *n += 1;
                if last != reason {
                    *last = reason.to_string();
                }
            }
            None if full => self.others += 1,
            None => {
                self.by_ip.insert(ip, (0, reason.to_string()));
                lines.push(format!("refusing {ip}: {reason}"));
            }
        }
        lines
    }

    /// The summary of the window, once it has ended (and a new one begins).
    pub fn flush(&mut self, now: Instant) -> Vec<String> {
        if now.saturating_duration_since(self.started) < self.window {
            return Vec::new();
        }
        let secs = now.saturating_duration_since(self.started).as_secs();
        let mut counted: Vec<(IpAddr, (u64, String))> =
            self.by_ip.drain().filter(|(_, (n, _))| *n > 0).collect();
        counted.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
        let mut lines: Vec<String> = counted
            .into_iter()
            .map(|(ip, (n, reason))| format!("refused {n} more connections from {ip} in {secs} s ({reason})"))
            .collect();
        if self.others > 0 {
            lines.push(format!("refused {} connections from other addresses in {secs} s", self.others));
        }
        self.others = 0;
        self.started = now;
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_reconnect_loop_is_one_line_then_one_count_per_window() {
        let t0 = Instant::now();
        let mut log = RefusalLog::with_window(Duration::from_secs(10), t0);
        let mut lines = Vec::new();
        for k in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(k) * 3); // 30 s of attempts
            lines.extend(log.refused(ip((k % 19) as u8 + 1), "too many connections", now));
        }
        lines.extend(log.flush(t0 + Duration::from_secs(40)));
        // Per address: a first line and a count in each of the 3 windows (plus the last).
        assert!(lines.len() <= 19 * 2 * 4, "{} lines", lines.len());
        let counted: u64 = lines
            .iter()
            .filter_map(|l| l.strip_prefix("refused ")?.split(' ').next()?.parse::<u64>().ok())
            .sum();
        let firsts = lines.iter().filter(|l| l.starts_with("refusing ")).count() as u64;
        assert_eq!(counted + firsts, 10_000, "every refusal is counted once");
        assert!(lines.iter().any(|l| l.contains("more connections from 127.0.0.1 in 10 s")), "{lines:?}");
    }

    #[test]
    fn addresses_past_the_cap_are_counted_together() {
        let t0 = Instant::now();
        let mut log = RefusalLog::with_window(Duration::from_secs(1), t0);
        let mut firsts = 0;
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let addr = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            firsts += log.refused(addr, "busy", t0).len();
        }
        assert_eq!(firsts, MAX_ADDRESSES);
        let summary = log.flush(t0 + Duration::from_secs(1));
        assert_eq!(summary, vec!["refused 500 connections from other addresses in 1 s".to_string()]);
    }
}
