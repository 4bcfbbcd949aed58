//! How things are shown to people: one-line messages and peer labels.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Cuts a message to one line of reasonable length, for error replies and logs.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect()
}

/// How a peer is shown on the console: its port when it is on 127.0.0.1 (as the original
/// showed), else its full address.
pub fn peer_label(addr: &SocketAddr) -> String {
    if addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        addr.port().to_string()
    } else {
        addr.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_one_line() {
        assert_eq!(one_line("a\nb"), "a b");
        assert_eq!(one_line(&"x".repeat(1000)).len(), 300);
    }

    #[test]
    fn local_peers_are_shown_by_port() {
        assert_eq!(peer_label(&"127.0.0.1:6001".parse().unwrap()), "6001");
        assert_eq!(peer_label(&"10.0.0.2:6001".parse().unwrap()), "10.0.0.2:6001");
        assert_eq!(peer_label(&"[::1]:6001".parse().unwrap()), "[::1]:6001");
    }
}
