//! `--upload-limit` and the INI file's `upload_limit`: a rate as a person writes it
//! (`4M`, `500K`, `1.5MiB/s`), read into bytes per second.

use std::fmt;

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
}
