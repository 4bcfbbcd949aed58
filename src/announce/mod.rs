//! A torrent's own trackers, asked as a BitTorrent client asks them: HTTP (BEP 3, 23, 7) and
//! UDP (BEP 15), in BEP 12 tiers. Every answer is hostile input: its size and every wait are
//! capped, and only usable peer addresses are taken, at most [`MAX_PEERS_PER_ANSWER`].

mod http;
mod tiers;
mod udp;

pub use tiers::Tiers;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Peers taken from one answer; a tracker cannot make us dial more.
pub const MAX_PEERS_PER_ANSWER: usize = 200;
/// The shortest interval honoured: a tracker that says 1 s is asked every 30 s.
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);
/// The longest: a tracker that says a day is asked again within the hour.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

pub use crate::bt::announce::{Announce, Event};

/// A tracker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// When to ask again (within [`MIN_INTERVAL`] and [`MAX_INTERVAL`]).
    pub interval: Duration,
    pub peers: Vec<SocketAddr>,
    /// A `warning message`, shown once.
    pub warning: Option<String>,
}

/// Why an announce got no answer.
#[derive(Debug)]
pub enum AnnounceError {
    /// A URL this side cannot ask (another scheme, no host, a bad port).
    Url(String),
    Io(std::io::Error),
    /// The tracker said no (`failure reason`, or a UDP error).
    Failure(String),
    /// The answer does not parse.
    Malformed(String),
}

impl fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnnounceError::Url(u) => write!(f, "cannot ask '{}'", crate::text::one_line(u)),
            AnnounceError::Io(e) => write!(f, "{e}"),
            AnnounceError::Failure(why) => write!(f, "the tracker refused: {}", crate::text::one_line(why)),
            AnnounceError::Malformed(why) => write!(f, "a malformed answer: {}", crate::text::one_line(why)),
        }
    }
}

impl std::error::Error for AnnounceError {}

impl From<std::io::Error> for AnnounceError {
    fn from(e: std::io::Error) -> Self {
        AnnounceError::Io(e)
    }
}

/// Whether this side can ask the tracker at `url` (`http://`, `https://` or `udp://`).
pub fn askable(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://") || url.starts_with("udp://")
}

/// Asks the tracker at `url` (`http://`, `https://` or `udp://`), all of it within `within`.
pub fn announce(url: &str, a: &Announce, within: Duration) -> Result<Answer, AnnounceError> {
    if let Some(rest) = url.strip_prefix("http://") {
        http::announce(rest, false, a, within)
    } else if let Some(rest) = url.strip_prefix("https://") {
        http::announce(rest, true, a, within)
    } else if let Some(rest) = url.strip_prefix("udp://") {
        udp::announce(rest, a, within)
    } else {
        Err(AnnounceError::Url(url.to_string()))
    }
}

/// Whether a peer a tracker named may be dialed: not unspecified, multicast or broadcast,
/// not port 0.
pub fn usable(addr: &SocketAddr) -> bool {
    let ip_ok = match addr.ip() {
        IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()),
        IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
    };
    ip_ok && addr.port() != 0
}

/// An interval a tracker named, kept within bounds.
fn interval(secs: u64) -> Duration {
    Duration::from_secs(secs).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// `host:port` and the rest of a URL after its scheme.
pub(crate) fn host_port(rest: &str, default_port: u16) -> Result<(String, &str), AnnounceError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(AnnounceError::Url(rest.to_string()));
    }
    let has_port =
        authority.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
    let hp = if has_port { authority.to_string() } else { format!("{authority}:{default_port}") };
    Ok((hp, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentId;

    #[test]
    fn intervals_are_kept_within_bounds() {
        assert_eq!(interval(1), MIN_INTERVAL);
        assert_eq!(interval(1800), Duration::from_secs(1800));
        assert_eq!(interval(u64::MAX / 2), MAX_INTERVAL);
    }

    #[test]
    fn urls_name_a_host_and_port() {
        assert_eq!(host_port("t.example:6969/announce", 80).unwrap(), ("t.example:6969".into(), "/announce"));
        assert_eq!(
            host_port("t.example/announce?x=1", 80).unwrap(),
            ("t.example:80".into(), "/announce?x=1")
        );
        assert_eq!(host_port("[::1]:6969/a", 80).unwrap().0, "[::1]:6969");
        assert!(host_port("/announce", 80).is_err());
        assert!(host_port("user@t.example/announce", 80).is_err());
        assert!(matches!(
            announce("https://t.example/a", &sample(), Duration::from_secs(1)),
            Err(AnnounceError::Url(_))
        ));
    }

    pub(super) fn sample() -> Announce {
        Announce {
            info_hash: ContentId::of(b"x"),
            peer_id: *b"-PS0100-abcdefghijkl",
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 10,
            event: Event::Started,
        }
    }
}
