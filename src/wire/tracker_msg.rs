//! Messages between a peer and the tracker (`PROTOCOL.md` section 2).

use crate::hash::ContentId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// A shared file as a peer claims it. `content_id` is the SHA-1 of its manifest, so two
/// files with one name but different bytes are two entries; the name and size are the
/// holder's claim, which a downloader checks against the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    pub content_id: ContentId,
}

/// A file and the peers that hold all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileListing {
    #[serde(flatten)]
    pub info: FileInfo,
    /// The holders (at most a few hundred are named).
    pub holders: Vec<SocketAddr>,
    /// How many peers hold it in all.
    #[serde(default)]
    pub holder_count: u32,
    /// On how many distinct addresses (hosts) they are.
    #[serde(default)]
    pub hosts: u32,
}

/// What a peer asks the tracker. A peer is known by the address the tracker sees its
/// connection come from plus the listening `port` it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrackerRequest {
    /// Join the swarm. Without a port the tracker assigns one (6000, 6001, ...). The reply
    /// carries a session token that every later request of this peer must bring; taking
    /// over a port whose session is alive needs that session's token.
    Register {
        port: Option<u16>,
        #[serde(default)]
        token: Option<String>,
    },
    /// The peer's shared files: the full list (`full`), or changes. Also a heartbeat.
    Announce {
        port: u16,
        #[serde(default)]
        token: String,
        #[serde(default)]
        full: Option<Vec<FileInfo>>,
        #[serde(default)]
        added: Vec<FileInfo>,
        #[serde(default)]
        removed: Vec<ContentId>,
    },
    /// Every file and who has it.
    ListFiles,
    /// Files named exactly `name`, else those whose name contains it (ignoring case).
    Search { name: String },
    /// The peer leaves the swarm.
    Leave {
        port: u16,
        #[serde(default)]
        token: String,
    },
    /// The peer downloads `content_id`; repeated while it runs, as a refresh of its sources.
    StartDownload {
        port: u16,
        #[serde(default)]
        token: String,
        content_id: ContentId,
    },
    /// The peer stopped downloading `content_id`.
    StopDownload {
        port: u16,
        #[serde(default)]
        token: String,
        content_id: ContentId,
    },
    /// Which BitTorrent clients (from HTTP announces) download files this peer holds: it
    /// dials them, since some clients never dial a loopback or LAN peer themselves.
    Leechers {
        port: u16,
        #[serde(default)]
        token: String,
    },
}

impl TrackerRequest {
    /// The request's kind, as its `type` tag says it.
    pub fn kind(&self) -> &'static str {
        match self {
            TrackerRequest::Register { .. } => "register",
            TrackerRequest::Announce { .. } => "announce",
            TrackerRequest::ListFiles => "list_files",
            TrackerRequest::Search { .. } => "search",
            TrackerRequest::Leave { .. } => "leave",
            TrackerRequest::StartDownload { .. } => "start_download",
            TrackerRequest::StopDownload { .. } => "stop_download",
            TrackerRequest::Leechers { .. } => "leechers",
        }
    }

    /// Requests that only read the tracker's state.
    pub fn is_read_only(&self) -> bool {
        matches!(self, TrackerRequest::ListFiles | TrackerRequest::Search { .. })
    }
}

/// The tracker's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TrackerReply {
    Registered {
        peer: SocketAddr,
        announce_interval_secs: u64,
        /// The session token: every later request of this peer brings it.
        #[serde(default)]
        token: String,
        /// The tracker's BitTorrent announce URL, when it speaks HTTP.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_announce: Option<String>,
    },
    Ok,
    /// The tracker does not know this peer (it restarted, or dropped a silent peer):
    /// register again and announce the full file list.
    UnknownPeer,
    /// Files, sorted by name; `total` counts all that matched, of which only the first
    /// `files.len()` fit in the reply.
    Files {
        files: Vec<FileListing>,
        #[serde(default)]
        total: u32,
        /// The tracker's BitTorrent announce URL, when it speaks HTTP (as in `registered`),
        /// so a link made while no peer runs can name it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_announce: Option<String>,
    },
    /// Who can give chunks of a file: peers holding all of it, and other downloaders.
    Sources {
        file: Option<FileInfo>,
        holders: Vec<SocketAddr>,
        downloaders: Vec<SocketAddr>,
        /// BitTorrent clients in the same swarm (they announced over HTTP): to be spoken
        /// to in BitTorrent.
        #[serde(default)]
        bt_peers: Vec<SocketAddr>,
    },
    Error {
        reason: String,
    },
    /// The tracker did not read the request: it holds its most connections from this
    /// address or in all, or every worker is taken. Ask again a little later.
    Busy {
        reason: String,
    },
    /// BitTorrent downloaders of this peer's files: (content id, address).
    Leechers {
        peers: Vec<(ContentId, SocketAddr)>,
    },
}

impl TrackerReply {
    /// The reply's kind, for a message that says what came instead of what was due.
    pub fn kind(&self) -> &'static str {
        match self {
            TrackerReply::Registered { .. } => "registered",
            TrackerReply::Ok => "ok",
            TrackerReply::UnknownPeer => "unknown_peer",
            TrackerReply::Files { .. } => "files",
            TrackerReply::Sources { .. } => "sources",
            TrackerReply::Error { .. } => "error",
            TrackerReply::Busy { .. } => "busy",
            TrackerReply::Leechers { .. } => "leechers",
        }
    }
}
