//! What a BitTorrent announce says (BEP 3), whoever sends it: our HTTP tracker reads it
//! from clients' queries (`tracker::http::query`), our client sends it to a torrent's own
//! trackers (`announce`).

use crate::hash::ContentId;

/// What an announce says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A regular announce.
    None,
    Started,
    Completed,
    Stopped,
}

/// One announce of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: ContentId,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
}
