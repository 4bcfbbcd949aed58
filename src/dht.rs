//! Finding peers without a tracker: the Mainline DHT (BEP 5), through the `mainline` crate
//! (6.1.1, its blocking API). Off unless asked for: `--dht` joins the public DHT through its
//! well-known bootstrap nodes, `--dht-bootstrap ADDR:PORT,...` a private one. Every node we
//! run answers queries (server mode), so a DHT made only of our peers works.
//!
//! What the DHT hands us is checked here, as anyone's answer may name a third party it
//! wants us to flood: an address of 0.0.0.0, a multicast or broadcast address, or port 0 is
//! dropped; on the public DHT so are private, loopback, link-local and shared (CGNAT)
//! addresses; one answer yields at most [`MAX_PER_ANSWER`] peers, at most
//! [`MAX_PORTS_PER_IP`] ports of one address; a download keeps at most [`MAX_DHT_PEERS`].

use crate::hash::ContentId;
use log::{debug, info};
use mainline::{Dht, Id};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Most DHT peers one download keeps (its lookups merge every answer up to this).
pub const MAX_DHT_PEERS: usize = 300;
/// Most peers taken from one answer (an honest node sends what fits in one UDP packet,
/// about 100; one 2 KB answer of 336 ports of one third party made a downloader open 336
/// connections to it).
pub const MAX_PER_ANSWER: usize = 50;
/// Most ports of one IP address taken from one answer.
pub const MAX_PORTS_PER_IP: usize = 4;

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
    /// The public DHT: peers at private, loopback and link-local addresses are dropped.
    pub public: bool,
}

impl DhtConfig {
    /// Whether `bootstrap` joins the public DHT (it names one of its well-known nodes).
    pub fn is_public(bootstrap: &[String]) -> bool {
        bootstrap.iter().any(|b| PUBLIC_BOOTSTRAP.contains(&b.as_str()))
    }
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
    public: bool,
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
        Ok(PeerDht { dht, addr, public: cfg.public })
    }

    /// The UDP address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        SocketAddr::V4(self.addr)
    }

    /// Says that this peer serves `id` on TCP `port` (blocks a few seconds).
    pub fn announce(&self, id: ContentId, port: u16) -> bool {
        match self.dht.announce_peer(Id::from(*id.as_bytes()), Some(port)) {
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

    /// Runs one lookup of `id`, handing `each` the checked peers of every answer as it
    /// comes (see [`checked_answer`]); stops early when `each` returns false.
    pub fn lookup_each(&self, id: ContentId, mut each: impl FnMut(Vec<SocketAddr>) -> bool) {
        for batch in self.dht.get_peers(Id::from(*id.as_bytes())) {
            let found = checked_answer(&batch, self.public);
            if !found.is_empty() && !each(found) {
                break;
            }
        }
    }
}

/// The peers of one DHT answer worth trying: usable ones (on the public DHT, public ones
/// only), at most [`MAX_PORTS_PER_IP`] ports of one address and [`MAX_PER_ANSWER`] in all.
pub fn checked_answer(answer: &[SocketAddrV4], public: bool) -> Vec<SocketAddr> {
    let mut per_ip: std::collections::HashMap<Ipv4Addr, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for a in answer {
        if !usable(a) || (public && !is_global(a.ip())) {
            continue;
        }
        let n = per_ip.entry(*a.ip()).or_insert(0);
        let addr = SocketAddr::V4(*a);
        if *n < MAX_PORTS_PER_IP && !out.contains(&addr) {
            *n += 1;
            out.push(addr);
            if out.len() == MAX_PER_ANSWER {
                break;
            }
        }
    }
    out
}

/// An address on the public Internet: not private, loopback, link-local, shared (CGNAT,
/// 100.64.0.0/10) or documentation.
fn is_global(ip: &Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_private() || ip.is_loopback() || ip.is_link_local() || ip.is_documentation() || shared)
}

/// An address worth connecting to.
pub fn usable(a: &SocketAddrV4) -> bool {
    let ip = a.ip();
    a.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node of a private DHT on loopback, bootstrapped off `bootstrap`.
    fn node(bootstrap: Vec<String>) -> PeerDht {
        PeerDht::start(&DhtConfig { bootstrap, port: 0, bind: Ipv4Addr::LOCALHOST, public: false }).unwrap()
    }

    #[test]
    fn hostile_addresses_are_dropped() {
        let ok = |s: &str| usable(&s.parse().unwrap());
        assert!(ok("127.0.0.1:6881") && ok("10.0.0.2:1"));
        assert!(
            !ok("0.0.0.0:6881") && !ok("224.0.0.1:6881") && !ok("255.255.255.255:6881") && !ok("1.2.3.4:0")
        );
    }

    #[test]
    fn one_answer_cannot_aim_us_at_a_third_party() {
        let victim: Vec<SocketAddrV4> =
            (1000..1336).map(|p| SocketAddrV4::new([9, 9, 9, 9].into(), p)).collect();
        let got = checked_answer(&victim, true);
        assert_eq!(got.len(), MAX_PORTS_PER_IP, "336 ports of one address: {}", got.len());
        let many: Vec<SocketAddrV4> =
            (0..200u32).map(|i| SocketAddrV4::new((0x0b00_0000 + i).to_be_bytes().into(), 6881)).collect();
        assert_eq!(checked_answer(&many, true).len(), MAX_PER_ANSWER);
        let local: Vec<SocketAddrV4> =
            ["127.0.0.1:6881", "10.1.2.3:6881", "192.168.1.9:6881", "169.254.0.1:1", "100.64.0.1:1"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect();
        assert!(checked_answer(&local, true).is_empty(), "private addresses from the public DHT");
        assert_eq!(checked_answer(&local, false).len(), 5, "a private DHT may name them");
    }

    #[test]
    fn a_private_dht_of_our_nodes_finds_an_announced_peer() {
        let first = node(vec![]);
        let boot = vec![first.local_addr().to_string()];
        let nodes: Vec<PeerDht> = (0..7).map(|_| node(boot.clone())).collect();
        let id = ContentId::of(b"a file");
        assert!(nodes[0].announce(id, 7777), "announced");
        let mut found = Vec::new();
        nodes[6].lookup_each(id, |answer| {
            found.extend(answer);
            true
        });
        assert!(found.contains(&"127.0.0.1:7777".parse().unwrap()), "{found:?}");
    }

    #[test]
    fn a_node_named_by_a_port_message_joins_the_routing_table_once_it_answers() {
        let (ours, theirs) = (node(vec![]), node(vec![]));
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

    fn krpc_query(kind: &str, tid: &[u8; 2], target: Option<[u8; 20]>) -> Vec<u8> {
        let mut q = b"d1:ad2:id20:".to_vec();
        q.extend_from_slice(&[0x42; 20]);
        if let Some(t) = target {
            q.extend_from_slice(b"6:target20:");
            q.extend_from_slice(&t);
        }
        q.extend_from_slice(format!("e1:q{}:{kind}1:t2:", kind.len()).as_bytes());
        q.extend_from_slice(tid);
        q.extend_from_slice(b"1:y1:qe");
        q
    }

    #[test]
    fn one_source_cannot_make_a_node_answer_as_fast_as_it_asks() {
        let listener = node(vec![]);
        let asker = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        asker.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
        for k in 0..500u16 {
            let _ = asker.send_to(&krpc_query("ping", &k.to_be_bytes(), None), listener.local_addr());
        }
        let mut answers = 0;
        let mut buf = [0u8; 1500];
        while asker.recv_from(&mut buf).is_ok() {
            answers += 1;
        }
        // Its burst of 20 and a few more at 10 a second while the pings were sent
        // (before the limit: 257 of the 500 here, the rest lost to the socket buffer).
        assert!((20..=30).contains(&answers), "{answers} answers to 500 pings");
    }

    #[test]
    fn a_first_node_adds_a_find_node_sender_only_once_it_answers() {
        let first = node(vec![]);
        // A sender that never answers, under an id of its choosing: not added.
        let liar = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        liar.send_to(&krpc_query("find_node", b"aa", Some([7; 20])), first.local_addr()).unwrap();
        // A real node bootstrapping off the first: added once it answers the ping.
        let honest = node(vec![first.local_addr().to_string()]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while first.routing_nodes().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(first.routing_nodes(), vec![honest.local_addr().to_string()]);
    }
}
