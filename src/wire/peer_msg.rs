//! Messages between two peers (`PROTOCOL.md` sections 3 and 4).
//!
//! A downloader asks for the manifest, for the set of chunks a peer has (sending its own,
//! it is offered chunks by a super-seeding peer), for chunks, and under an upload cap for a
//! turn in the peer's upload line. A `chunk` reply is followed by exactly `len` raw bytes
//! (at most one chunk, 1 MiB), and a `manifest` reply by the manifest text (at most 64 MiB,
//! so files up to 1 TiB fit); `elsewhere` sends a chunk request to another peer.

use crate::hash::ContentId;
use serde::{Deserialize, Serialize};

/// What a downloader asks a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerRequest {
    /// The manifest (`file.ini`) of a file, by content id or by name (complete files only).
    Manifest {
        #[serde(default)]
        content_id: Option<ContentId>,
        #[serde(default)]
        name: Option<String>,
    },
    /// Which chunks of the file the peer has. `mine`: hex of the chunks the asker has
    /// (same format as the reply's bitfield); with it, a peer that has the whole file may
    /// answer with an offer instead of `complete` (super-seeding, see `super_seed`).
    Have {
        content_id: ContentId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mine: Option<String>,
    },
    /// One chunk's bytes.
    Chunk { content_id: ContentId, index: u32 },
    /// A place in a capped peer's upload line, the chunk to be named when it comes: the
    /// peer answers as to `have` once the place is ours (or `later`, while it has not come
    /// for a while), then sends the chunk the next request names in that place. Only to a
    /// peer that said it takes turns (`elsewhere`).
    Turn {
        content_id: ContentId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mine: Option<String>,
    },
}

/// A peer's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerReply {
    /// Followed by `len` raw bytes: the manifest text.
    Manifest {
        content_id: ContentId,
        len: u32,
    },
    /// `bitfield`: hex of one bit per chunk, most significant bit first; `complete` when all.
    /// `later`, in the answer to a turn: the place has not come yet; the same turn asked
    /// again keeps it, anything else gives it up.
    Have {
        complete: bool,
        bitfield: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        later: bool,
    },
    /// Followed by `len` raw bytes.
    Chunk {
        index: u32,
        len: u32,
    },
    /// Not this chunk from here now: get it from another peer (only to a downloader that
    /// sent its have-set). A super-seeding peer offers it to someone else (ask it what it
    /// offers now), or, with `retry_ms`, a capped peer's upload line is full and others
    /// have the chunk: ask it for no chunk for about `retry_ms`, when a place in its line
    /// should be free (the chunk may come from another peer meanwhile).
    Elsewhere {
        index: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_ms: Option<u32>,
        /// The peer takes `turn` requests: wait for a place in its line with one of those,
        /// and name the chunk when the place comes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        turns: bool,
    },
    Error {
        reason: String,
    },
}

impl PeerReply {
    /// The reply's kind, for a message that says what came instead of what was due.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerReply::Manifest { .. } => "manifest",
            PeerReply::Have { .. } => "have",
            PeerReply::Chunk { .. } => "chunk",
            PeerReply::Elsewhere { .. } => "elsewhere",
            PeerReply::Error { .. } => "error",
        }
    }
}
