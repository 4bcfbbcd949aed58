//! Compact peer addresses, as trackers (BEP 23, BEP 7) and peer exchange (BEP 11) send them:
//! an IPv4 address and port in 6 bytes, an IPv6 address and port in 18, big-endian.

use std::net::{IpAddr, SocketAddr};

/// The compact form of `peers`, one after another (the caller keeps IPv4 and IPv6 apart).
pub fn encode<'a>(peers: impl IntoIterator<Item = &'a SocketAddr>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in peers {
        match p.ip() {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
        out.extend_from_slice(&p.port().to_be_bytes());
    }
    out
}

/// The peers in `bytes` (IPv6 ones when `v6`) added to `out`: only usable addresses
/// ([`usable`](crate::announce::usable)), each once, until `out` holds `most`. A short
/// entry at the end is ignored.
pub fn decode(bytes: &[u8], v6: bool, most: usize, out: &mut Vec<SocketAddr>) {
    let width = if v6 { 18 } else { 6 };
    for c in bytes.chunks_exact(width) {
        if out.len() >= most {
            return;
        }
        let port = u16::from_be_bytes([c[width - 2], c[width - 1]]);
        let ip: IpAddr = if v6 {
            let o: [u8; 16] = c[..16].try_into().expect("16 bytes");
            o.into()
        } else {
            let o: [u8; 4] = c[..4].try_into().expect("4 bytes");
            o.into()
        };
        let addr = SocketAddr::new(ip, port);
        if crate::announce::usable(&addr) && !out.contains(&addr) {
            out.push(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usable_peers_are_taken_each_once_and_at_most_as_many_as_asked() {
        let mut out = Vec::new();
        let mut bytes = Vec::new();
        for (ip, port) in
            [([0, 0, 0, 0], 1), ([224, 0, 0, 1], 2), ([255, 255, 255, 255], 3), ([10, 0, 0, 1], 0)]
        {
            bytes.extend_from_slice(&ip);
            bytes.extend_from_slice(&u16::to_be_bytes(port));
        }
        bytes.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        bytes.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]); // twice
        decode(&bytes, false, 200, &mut out);
        assert_eq!(out, vec!["127.0.0.1:6881".parse().unwrap()]);
        let many: Vec<u8> = (0..1000u32).flat_map(|i| [10, (i >> 8) as u8, i as u8, 1, 0x1a, 0xe1]).collect();
        let mut out = Vec::new();
        decode(&many, false, 200, &mut out);
        assert_eq!(out.len(), 200);
        let mut out = Vec::new();
        decode(&[0; 17], true, 200, &mut out);
        assert!(out.is_empty(), "a short entry is ignored");
    }

    #[test]
    fn what_is_encoded_decodes_back() {
        let peers: Vec<SocketAddr> =
            vec!["10.1.2.3:6881".parse().unwrap(), "[2001:db8::7]:51413".parse().unwrap()];
        let (v4, v6) = (encode(&peers[..1]), encode(&peers[1..]));
        assert_eq!((v4.len(), v6.len()), (6, 18));
        let mut out = Vec::new();
        decode(&v4, false, 10, &mut out);
        decode(&v6, true, 10, &mut out);
        assert_eq!(out, peers);
    }
}
