//! Finding peers without a tracker: the Mainline DHT (BEP 5), through the `mainline` crate
//! (6.1.1, its blocking API). Off unless asked for: `--dht` joins the public DHT through its
//! well-known bootstrap nodes, `--dht-bootstrap ADDR:PORT,...` a private one. Every node we
//! run answers queries (server mode), so a DHT made only of our peers works.
//!
//! What the DHT hands us is checked here: an address of 0.0.0.0, a multicast or broadcast
//! address, or port 0 is dropped, and a lookup takes at most [`MAX_DHT_PEERS`].

use crate::hash::ContentId;
use log::{debug, info, warn};
use mainline::{Dht, Id};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Most sources one lookup yields.
pub const MAX_DHT_PEERS: usize = 300;

/// The public DHT's well-known bootstrap nodes (used by `--dht`).
pub const PUBLIC_BOOTSTRAP: [&str; 3] =
    ["router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "dht.libtorrent.org:25401"];

/// How a node joins the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// Nodes to bootstrap from; empty: this is the first node of a private DHT.
    pub bootstrap: Vec<String>,
    /// UDP port (0: any free one).
    pub port: u16,
    /// Address to bind (127.0.0.1 for a loopback DHT, 0.0.0.0 for every interface).
    pub bind: Ipv4Addr,
}

/// Why the DHT could not start.
#[derive(Debug)]
pub struct DhtError(pub std::io::Error);

impl fmt::Display for DhtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot start the DHT node: {}", self.0)
    }
}

impl std::error::Error for DhtError {}

/// A running DHT node.
#[derive(Clone)]
pub struct PeerDht {
    dht: Dht,
    /// Where the node listens (fixed once bound; asking the crate's thread costs a round
    /// trip, and every BitTorrent connection tells its port).
    addr: SocketAddrV4,
}

impl PeerDht {
    /// Starts a node in server mode (it answers queries).
    pub fn start(cfg: &DhtConfig) -> Result<PeerDht, DhtError> {
        let mut b = Dht::builder();
        b.server_mode().port(cfg.port).bind_address(cfg.bind);
        if cfg.bootstrap.is_empty() {
            b.no_bootstrap();
        } else {
            b.bootstrap(&cfg.bootstrap);
        }
        let dht = b.build().map_err(DhtError)?;
        let addr = dht.info().local_addr();
        info!("DHT node on UDP {addr} ({} bootstrap nodes)", cfg.bootstrap.len());
        Ok(PeerDht { dht, addr })
    }

    /// The UDP address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.addr)
    }

    /// Says that this peer serves `id` on TCP `port` (blocks a few seconds).
    pub fn announce(&self, id: ContentId, port: u16) -> bool {
        match self.dht.announce_peer(Id::from(id.0), Some(port)) {
            Ok(_) => true,
            Err(e) => {
                debug!("DHT: announcing {id} failed: {e}");
                false
            }
        }
    }

    /// A BitTorrent peer at `ip` said (BEP 5's `port` message) its DHT node listens on
    /// `port`: ping it, and add it to the routing table if it answers. IPv4 only, like the
    /// crate; unusable addresses are ignored.
    pub fn add_node(&self, ip: IpAddr, port: u16) {
        let IpAddr::V4(ip) = ip else { return };
        let node = SocketAddrV4::new(ip, port);
        if usable(&node) && node != self.addr {
            debug!("DHT: adding node {node} (a peer's port message)");
            self.dht.add_node(node);
        }
    }

    /// The nodes in our routing table.
    pub fn routing_nodes(&self) -> Vec<String> {
        self.dht.to_bootstrap()
    }

    /// The first peers the DHT names for `id`: returns as soon as one answer brings some
    /// (or when the lookup ends empty), so a download starts without waiting for the whole
    /// lookup; the download keeps looking in the background.
    pub fn lookup_first(&self, id: ContentId) -> Vec<SocketAddr> {
        for batch in self.dht.get_peers(Id::from(id.0)) {
            let found: Vec<SocketAddr> =
                batch.into_iter().filter(usable).map(SocketAddr::V4).take(MAX_DHT_PEERS).collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    /// Peers the DHT knows for `id`, checked, at most [`MAX_DHT_PEERS`] (blocks a few
    /// seconds, until the lookup ends).
    pub fn lookup(&self, id: ContentId) -> Vec<SocketAddr> {
        let mut found = Vec::new();
        for batch in self.dht.get_peers(Id::from(id.0)) {
            for addr in batch {
                if usable(&addr) && !found.contains(&SocketAddr::V4(addr)) {
                    found.push(SocketAddr::V4(addr));
                }
            }
            if found.len() >= MAX_DHT_PEERS {
                warn!("DHT: more than {MAX_DHT_PEERS} peers for {id}; keeping the first");
                found.truncate(MAX_DHT_PEERS);
                break;
            }
        }
        found
    }
}

/// An address worth connecting to.
pub fn usable(a: &SocketAddrV4) -> bool {
    let ip = a.ip();
    a.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_addresses_are_dropped() {
        let ok = |s: &str| usable(&s.parse().unwrap());
        assert!(ok("127.0.0.1:6881") && ok("10.0.0.2:1"));
        assert!(
            !ok("0.0.0.0:6881") && !ok("224.0.0.1:6881") && !ok("255.255.255.255:6881") && !ok("1.2.3.4:0")
        );
    }

    #[test]
    fn a_private_dht_of_our_nodes_finds_an_announced_peer() {
        let first =
            PeerDht::start(&DhtConfig { bootstrap: vec![], port: 0, bind: Ipv4Addr::LOCALHOST }).unwrap();
        let boot = vec![first.local_addr().to_string()];
        let nodes: Vec<PeerDht> = (0..7)
            .map(|_| {
                PeerDht::start(&DhtConfig { bootstrap: boot.clone(), port: 0, bind: Ipv4Addr::LOCALHOST })
                    .unwrap()
            })
            .collect();
        let id = ContentId::of(b"a file");
        assert!(nodes[0].announce(id, 7777), "announced");
        let found = nodes[6].lookup(id);
        assert!(found.contains(&"127.0.0.1:7777".parse().unwrap()), "{found:?}");
    }

    #[test]
    fn a_node_named_by_a_port_message_joins_the_routing_table_once_it_answers() {
        let alone = || PeerDht::start(&DhtConfig { bootstrap: vec![], port: 0, bind: Ipv4Addr::LOCALHOST });
        let (ours, theirs) = (alone().unwrap(), alone().unwrap());
        let their_addr = theirs.local_addr();
        assert!(ours.routing_nodes().is_empty(), "a first node knows no one");
        // A port that no node answers on is not added.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        ours.add_node(their_addr.ip(), silent.local_addr().unwrap().port());
        ours.add_node(their_addr.ip(), their_addr.port());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while ours.routing_nodes().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(ours.routing_nodes(), vec![their_addr.to_string()]);
    }
}
