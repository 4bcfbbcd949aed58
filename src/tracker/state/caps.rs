//! The tracker's caps on what peers may claim: files per peer, per address, and in all.

use std::fmt;
use std::net::IpAddr;

/// What a new file set of one peer would make.
pub struct Wanted {
    pub ip: IpAddr,
    /// Files the peer would claim.
    pub peer_files: usize,
    /// Files every peer of its address would claim.
    pub ip_files: usize,
    /// Claims the index does not hold yet.
    pub new_claims: usize,
    /// Claims the index holds now.
    pub claims: usize,
}

/// The caps (`TrackerConfig`).
pub struct Limits {
    pub files_per_peer: usize,
    pub files_per_ip: usize,
    pub claims: usize,
}

/// A request that would pass one of the tracker's caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapExceeded {
    PerPeer { files: usize, limit: usize },
    PerAddress { ip: IpAddr, files: usize, limit: usize },
    Index { limit: usize },
}

impl fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapExceeded::PerPeer { files, limit } => write!(f, "too many files: {files} (limit {limit})"),
            CapExceeded::PerAddress { ip, files, limit } => {
                write!(f, "too many files from {ip}: {files} (limit {limit} per address)")
            }
            CapExceeded::Index { limit } => write!(f, "the tracker's index is full ({limit} files)"),
        }
    }
}

/// Refuses what would pass a cap: per peer, per address, or in all (a set that adds no
/// claim passes a full index).
pub fn check(w: &Wanted, l: &Limits) -> Result<(), CapExceeded> {
    if w.peer_files > l.files_per_peer {
        return Err(CapExceeded::PerPeer { files: w.peer_files, limit: l.files_per_peer });
    }
    if w.ip_files > l.files_per_ip {
        return Err(CapExceeded::PerAddress { ip: w.ip, files: w.ip_files, limit: l.files_per_ip });
    }
    if w.new_claims > 0 && w.claims + w.new_claims > l.claims {
        return Err(CapExceeded::Index { limit: l.claims });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_is_checked_and_a_full_index_still_takes_known_claims() {
        let l = Limits { files_per_peer: 10, files_per_ip: 20, claims: 100 };
        let w = |peer_files, ip_files, new_claims| Wanted {
            ip: [10, 0, 0, 1].into(),
            peer_files,
            ip_files,
            new_claims,
            claims: 100,
        };
        assert_eq!(check(&w(11, 11, 0), &l), Err(CapExceeded::PerPeer { files: 11, limit: 10 }));
        assert!(matches!(check(&w(10, 21, 0), &l), Err(CapExceeded::PerAddress { files: 21, .. })));
        assert_eq!(check(&w(10, 20, 1), &l), Err(CapExceeded::Index { limit: 100 }));
        assert_eq!(check(&w(10, 20, 0), &l), Ok(()), "claims the index holds already");
    }
}
