//! What the tracker knows, as the status page and `/api/status` show it: files (native
//! claims and BitTorrent-only swarms), peers (native and BitTorrent) and totals. Lists are
//! cut at [`MAX_ROWS`]; the totals count everything.

use serde::Serialize;

/// Most files and most peers listed.
pub const MAX_ROWS: usize = 500;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileRow {
    /// Empty for a BitTorrent-only swarm (no p2p-share peer said the name).
    pub name: String,
    pub info_hash: String,
    /// 0 when unknown (BitTorrent-only).
    pub size: u64,
    pub holders: usize,
    pub downloaders: usize,
    /// Downloads finished (BitTorrent `completed` events).
    pub completed: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerRow {
    pub address: String,
    /// "native" or "bittorrent".
    pub kind: &'static str,
    pub files: usize,
    pub last_seen_secs: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Totals {
    pub native_peers: usize,
    pub bittorrent_peers: usize,
    pub files: usize,
    pub swarms: usize,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Status {
    pub totals: Totals,
    pub files: Vec<FileRow>,
    pub peers: Vec<PeerRow>,
}
