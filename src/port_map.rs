//! Port forwarding on a home router (`--port-forward`, off by default): a peer behind NAT
//! asks the router to forward a public port to its own, so peers outside can dial it.
//!
//! NAT-PMP (RFC 6886) is asked first, at the default gateway: one UDP request, answered in
//! milliseconds by routers that speak it (miniupnpd answers PCP clients the same way). Then
//! UPnP IGD: an SSDP search on the LAN, the router's description over HTTP, a SOAP
//! `AddPortMapping`. Both have a total deadline ([`ASK_WITHIN`] for NAT-PMP and the
//! search; the crate's 10 s per HTTP request, 1 MiB per answer, for UPnP). We ask for the
//! same public port as ours; NAT-PMP may grant another, and UPnP is asked for any port when
//! ours is taken. A mapping is renewed at half its lease and removed when the peer stops
//! (a peer killed outright leaves it to expire with its lease, [`LEASE`]).
//!
//! What a router answers is trusted only for the port it forwards; the public address we
//! tell others is the one the tracker sees, never the router's claim.

use crossbeam_channel::{after, never, select, Receiver};
use igd_next::{PortMappingProtocol, SearchOptions};
use log::{debug, info, warn};
use natpmp::{Natpmp, Response};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The lease we ask for (libtorrent and Transmission ask for an hour too).
pub const LEASE: Duration = Duration::from_secs(3600);
/// How long a router has to answer NAT-PMP, and the UPnP search.
pub const ASK_WITHIN: Duration = Duration::from_secs(3);
/// A lease is never renewed sooner than this, whatever a router grants.
const SHORTEST_RENEWAL: Duration = Duration::from_secs(30);
/// What the router's table says the mapping is for.
const DESCRIPTION: &str = "p2p-share";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        })
    }
}

/// Why no router forwards the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError(pub String);

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MapError {}

/// The router that forwards, and how it is asked.
#[derive(Debug, Clone)]
enum Router {
    NatPmp(Ipv4Addr),
    /// The gateway found, and our address on its LAN (where it forwards to).
    Upnp(Box<igd_next::Gateway>, IpAddr),
}

/// A port the router forwards to us.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub proto: Proto,
    /// Our port.
    pub internal: u16,
    /// The router's public address, as it says, and the port it forwards.
    pub external: SocketAddr,
    /// The lease the router granted.
    pub lease: Duration,
    router: Router,
}

impl Mapping {
    /// "NAT-PMP" or "UPnP".
    pub fn via(&self) -> &'static str {
        match self.router {
            Router::NatPmp(_) => "NAT-PMP",
            Router::Upnp(..) => "UPnP",
        }
    }

    /// Asks for the same mapping again; the router may answer with another port.
    fn renew(&mut self) -> Result<(), MapError> {
        let fresh = match &self.router {
            Router::NatPmp(gw) => natpmp_map(*gw, self.proto, self.internal, self.external.port(), LEASE),
            Router::Upnp(gw, local) => upnp_map(gw, *local, self.proto, self.internal, self.external.port()),
        }?;
        if fresh.external.port() != self.external.port() {
            warn!(
                "port forwarding: the router now forwards port {} instead of {} to our {} port {}; \
                 peers that knew the old one cannot dial us until we announce again",
                fresh.external.port(),
                self.external.port(),
                self.proto,
                self.internal
            );
        }
        *self = fresh;
        Ok(())
    }

    /// Asks the router to forward no more (best effort: a router that does not answer keeps
    /// it until its lease ends).
    pub fn remove(&self) {
        let done = match &self.router {
            Router::NatPmp(gw) => natpmp_map(*gw, self.proto, self.internal, 0, Duration::ZERO).map(|_| ()),
            Router::Upnp(gw, _) => gw
                .remove_port(upnp_proto(self.proto), self.external.port())
                .map_err(|e| MapError(e.to_string())),
        };
        match done {
            Ok(()) => {
                info!("Port forwarding: {} port {} is no longer forwarded", self.proto, self.external.port())
            }
            Err(e) => {
                warn!("port forwarding: could not remove {} port {}: {e}", self.proto, self.external.port())
            }
        }
    }
}

/// When a lease granted now should be renewed: at half of it, not sooner than
/// [`SHORTEST_RENEWAL`].
pub fn renewal_due(granted_at: Instant, lease: Duration) -> Instant {
    granted_at + (lease / 2).max(SHORTEST_RENEWAL)
}

/// Asks the router to forward a public port to our `internal` one: NAT-PMP at the default
/// gateway first, then UPnP IGD. The error names why each failed.
pub fn map(proto: Proto, internal: u16) -> Result<Mapping, MapError> {
    let pmp = match natpmp::get_default_gateway() {
        Ok(gw) => match natpmp_map(gw, proto, internal, internal, LEASE) {
            Ok(m) => return Ok(m),
            Err(e) => format!("NAT-PMP at {gw}: {e}"),
        },
        Err(_) => "NAT-PMP: no default gateway".to_string(),
    };
    debug!("port forwarding: {pmp}; trying UPnP");
    let mut opts = SearchOptions::default();
    opts.timeout = Some(ASK_WITHIN);
    opts.single_search_timeout = Some(ASK_WITHIN);
    let upnp = match igd_next::search_gateway(opts) {
        Ok(gw) => match local_ip_towards(gw.addr) {
            Ok(local) => match upnp_map(&gw, local, proto, internal, internal) {
                Ok(m) => return Ok(m),
                Err(e) => format!("UPnP at {}: {e}", gw.addr),
            },
            Err(e) => format!("UPnP: cannot reach the router at {}: {e}", gw.addr),
        },
        Err(igd_next::SearchError::NoResponseWithinTimeout) => {
            format!("UPnP: no router answered the search in {} s", ASK_WITHIN.as_secs())
        }
        Err(e) => format!("UPnP: {e}"),
    };
    Err(MapError(format!("no router forwards {proto} port {internal} ({pmp}; {upnp})")))
}

/// One NAT-PMP mapping request (a `lifetime` of zero removes it), answered within
/// [`ASK_WITHIN`], then the public address.
fn natpmp_map(
    gw: Ipv4Addr,
    proto: Proto,
    internal: u16,
    external: u16,
    lifetime: Duration,
) -> Result<Mapping, MapError> {
    let err = |e: natpmp::Error| MapError(format!("{e:?}"));
    let mut n = Natpmp::new_with(gw).map_err(err)?;
    let p = match proto {
        Proto::Tcp => natpmp::Protocol::TCP,
        Proto::Udp => natpmp::Protocol::UDP,
    };
    n.send_port_mapping_request(p, internal, external, lifetime.as_secs() as u32).map_err(err)?;
    let granted = match answer(&mut n)? {
        Response::TCP(m) | Response::UDP(m) => m,
        Response::Gateway(_) => return Err(MapError("answered a mapping with an address".into())),
    };
    if lifetime.is_zero() {
        return Ok(Mapping {
            proto,
            internal,
            external: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            lease: Duration::ZERO,
            router: Router::NatPmp(gw),
        });
    }
    n.send_public_address_request().map_err(err)?;
    let ip = match answer(&mut n)? {
        Response::Gateway(g) => *g.public_address(),
        _ => return Err(MapError("answered the address request with a mapping".into())),
    };
    if granted.public_port() == 0 {
        return Err(MapError("granted port 0".into()));
    }
    Ok(Mapping {
        proto,
        internal,
        external: SocketAddr::from((ip, granted.public_port())),
        lease: *granted.lifetime(),
        router: Router::NatPmp(gw),
    })
}

/// The router's answer to the request pending on `n`, resent as RFC 6886 says, within
/// [`ASK_WITHIN`].
fn answer(n: &mut Natpmp) -> Result<Response, MapError> {
    let deadline = Instant::now() + ASK_WITHIN;
    loop {
        match n.read_response_or_retry() {
            Ok(r) => return Ok(r),
            Err(natpmp::Error::NATPMP_TRYAGAIN) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(natpmp::Error::NATPMP_TRYAGAIN) => {
                return Err(MapError(format!("no answer in {} s", ASK_WITHIN.as_secs())));
            }
            Err(e) => return Err(MapError(natpmp_reason(e))),
        }
    }
}

/// A NAT-PMP error in words.
fn natpmp_reason(e: natpmp::Error) -> String {
    use natpmp::Error as E;
    match e {
        E::NATPMP_ERR_NOGATEWAYSUPPORT | E::NATPMP_ERR_RECVFROM | E::NATPMP_ERR_CONNECTERR => {
            "the gateway does not speak it".into()
        }
        E::NATPMP_ERR_NOTAUTHORIZED => "the router refused (not authorized)".into(),
        E::NATPMP_ERR_NETWORKFAILURE => "the router has no public address yet".into(),
        E::NATPMP_ERR_OUTOFRESOURCES => "the router has no mapping left".into(),
        E::NATPMP_ERR_UNSUPPORTEDVERSION | E::NATPMP_ERR_UNSUPPORTEDOPCODE => {
            "the router does not support the request".into()
        }
        E::NATPMP_TRYAGAIN => format!("no answer in {} s", ASK_WITHIN.as_secs()),
        other => format!("{other:?}"),
    }
}

fn upnp_proto(proto: Proto) -> PortMappingProtocol {
    match proto {
        Proto::Tcp => PortMappingProtocol::TCP,
        Proto::Udp => PortMappingProtocol::UDP,
    }
}

/// Maps `external` (or, when the router says it is taken, any port) to `local:internal`.
fn upnp_map(
    gw: &igd_next::Gateway,
    local: IpAddr,
    proto: Proto,
    internal: u16,
    external: u16,
) -> Result<Mapping, MapError> {
    let to = SocketAddr::new(local, internal);
    let secs = LEASE.as_secs() as u32;
    let port = match gw.add_port(upnp_proto(proto), external, to, secs, DESCRIPTION) {
        Ok(()) => external,
        Err(igd_next::AddPortError::PortInUse) => {
            gw.add_any_port(upnp_proto(proto), to, secs, DESCRIPTION)
                .map_err(|e| MapError(format!("port {external} is taken and no other was given: {e}")))?
        }
        Err(e) => return Err(MapError(e.to_string())),
    };
    let ip = gw.get_external_ip().map_err(|e| MapError(format!("its public address: {e}")))?;
    Ok(Mapping {
        proto,
        internal,
        external: SocketAddr::new(ip, port),
        lease: LEASE,
        router: Router::Upnp(Box::new(gw.clone()), local),
    })
}

/// Our address on the LAN towards `router` (no packet is sent).
fn local_ip_towards(router: SocketAddr) -> std::io::Result<IpAddr> {
    let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    s.connect(router)?;
    Ok(s.local_addr()?.ip())
}

/// Keeps `mappings` alive from a thread: each is renewed when [`renewal_due`]; a failed
/// renewal is tried again a minute later. When `stop` closes, every mapping is removed.
pub fn keep(mut mappings: Vec<Mapping>, stop: Receiver<()>) -> JoinHandle<()> {
    thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let now = Instant::now();
            let mut due: Vec<Instant> = mappings.iter().map(|m| renewal_due(now, m.lease)).collect();
            loop {
                let next = due.iter().min().copied();
                let wake = next.map_or_else(never, |t| after(t.saturating_duration_since(Instant::now())));
                select! {
                    recv(stop) -> _ => break,
                    recv(wake) -> _ => {}
                }
                let now = Instant::now();
                for (m, when) in mappings.iter_mut().zip(due.iter_mut()) {
                    if *when > now {
                        continue;
                    }
                    *when = match m.renew() {
                        Ok(()) => renewal_due(now, m.lease),
                        Err(e) => {
                            warn!("port forwarding: renewing {} port {}: {e}", m.proto, m.internal);
                            now + Duration::from_secs(60)
                        }
                    };
                }
            }
            for m in &mappings {
                m.remove();
            }
        })
        .expect("spawning the port forwarder")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_renewed_at_half_and_never_sooner_than_the_floor() {
        let t = Instant::now();
        assert_eq!(renewal_due(t, LEASE), t + Duration::from_secs(1800));
        assert_eq!(renewal_due(t, Duration::from_secs(10)), t + SHORTEST_RENEWAL);
        assert_eq!(renewal_due(t, Duration::ZERO), t + SHORTEST_RENEWAL);
    }
}
