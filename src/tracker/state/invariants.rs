//! The invariants of the tracker's tables (listed in the module comment of `state`),
//! checked by the property tests after every request.

use super::{IpUse, TrackerState};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;

/// Which invariant of the tracker's tables broke (a bug; found by the property tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenInvariant(pub String);

impl fmt::Display for BrokenInvariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TrackerState {
    /// Checks every invariant in the module comment; says which one broke.
    pub fn check_invariants(&self) -> Result<(), BrokenInvariant> {
        for (info, claim) in &self.claims {
            if claim.holders.is_empty() {
                return Err(BrokenInvariant(format!("claim {info:?} has no holder")));
            }
            for h in &claim.holders {
                if self.peers.get(h).and_then(|p| p.files.get(&info.content_id)) != Some(info) {
                    return Err(BrokenInvariant(format!("holder {h} of {info:?} does not claim it")));
                }
            }
            if !self.by_id.get(&info.content_id).is_some_and(|s| s.contains(info))
                || !self.by_name.get(&info.name).is_some_and(|s| s.contains(info))
            {
                return Err(BrokenInvariant(format!("claim {info:?} missing from an index")));
            }
        }
        let indexed: usize = self.by_id.values().map(BTreeSet::len).sum();
        let named: usize = self.by_name.values().map(BTreeSet::len).sum();
        if indexed != self.claims.len() || named != self.claims.len() {
            return Err(BrokenInvariant(format!(
                "indexes hold {indexed} and {named} claims, not {}",
                self.claims.len()
            )));
        }
        let mut use_by_ip: HashMap<IpAddr, IpUse> = HashMap::new();
        for (addr, p) in &self.peers {
            let u = use_by_ip.entry(addr.ip()).or_default();
            u.peers += 1;
            u.files += p.files.len();
            for info in p.files.values() {
                if !self.claims.get(info).is_some_and(|c| c.holders.contains(addr)) {
                    return Err(BrokenInvariant(format!("{addr} claims {info:?} but is not its holder")));
                }
            }
            for id in &p.downloading {
                if !self.downloads.get(id).is_some_and(|d| d.peers.contains(addr)) {
                    return Err(BrokenInvariant(format!("{addr} downloads {id} but is not listed")));
                }
            }
        }
        for (id, d) in &self.downloads {
            if d.peers.is_empty() {
                return Err(BrokenInvariant(format!("download list of {id} is empty")));
            }
            if let Some(a) =
                d.peers.iter().find(|a| !self.peers.get(a).is_some_and(|p| p.downloading.contains(id)))
            {
                return Err(BrokenInvariant(format!("{a} listed as downloading {id} but does not")));
            }
        }
        if use_by_ip != self.per_ip {
            return Err(BrokenInvariant(format!(
                "per-address counts {:?} are not {:?}",
                self.per_ip, use_by_ip
            )));
        }
        Ok(())
    }
}
