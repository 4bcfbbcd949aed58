//! Messages between two peers (`PROTOCOL.md` sections 3 and 4).
//!
//! A downloader says what it understands (`hello`), then asks for the manifest, for the
//! set of chunks a peer has (sending its own, it is offered chunks by a super-seeding peer),
//! for chunks, and under an upload cap for a turn in the peer's upload line. A `chunk` reply
//! is followed by exactly `len` raw bytes (one chunk: 1 MiB, or a torrent's piece length up
//! to 64 MiB), and a `manifest` reply by the manifest text (at most 64 MiB, so files up to
//! 1 TiB fit). Each reply means one
//! thing: `have` what the peer has, `offer` what it offers, `elsewhere` a chunk offered to
//! another, `busy` a full upload line (ask for a turn instead).

use crate::hash::ContentId;
use serde::{Deserialize, Serialize};

/// What one side of a connection understands, said once in `hello`: on the wire, a list of
/// names (`"offers"`, `"turns"`); names this build does not know are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct Abilities {
    /// Takes (downloader) or makes (peer) offers: a have request carrying `mine` may be
    /// answered `offer`, and a chunk offered to another `elsewhere`.
    pub offers: bool,
    /// Sends (downloader) or takes (peer) `turn` requests: a chunk request that finds the
    /// upload line full may be answered `busy`, and then the asker waits for its turns.
    pub turns: bool,
}

impl Abilities {
    /// Everything this build understands.
    pub const ALL: Abilities = Abilities { offers: true, turns: true };
}

impl From<Vec<String>> for Abilities {
    fn from(names: Vec<String>) -> Abilities {
        let has = |n: &str| names.iter().any(|x| x == n);
        Abilities { offers: has("offers"), turns: has("turns") }
    }
}

impl From<Abilities> for Vec<String> {
    fn from(a: Abilities) -> Vec<String> {
        [(a.offers, "offers"), (a.turns, "turns")]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

/// What a downloader asks a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PeerRequest {
    /// What the asker understands; first on a connection, or never (then it understands
    /// none of it). Answered `hello` with what the peer does.
    Hello { abilities: Abilities },
    /// The manifest (`file.ini`) of a file, by content id or by name (complete files only).
    Manifest {
        #[serde(default)]
        content_id: Option<ContentId>,
        #[serde(default)]
        name: Option<String>,
    },
    /// Which chunks of the file the peer has. `mine`: hex of the chunks the asker has
    /// (same format as the reply's bitfield); with it, to an asker that takes offers, a
    /// peer that has the whole file answers `offer` instead (super-seeding, see
    /// `super_seed`).
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
    /// peer whose `hello` says it takes turns.
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
    /// What the peer does (the answer to `hello`).
    Hello {
        abilities: Abilities,
    },
    /// Followed by `len` raw bytes: the manifest text.
    Manifest {
        content_id: ContentId,
        len: u32,
    },
    /// What the peer has: `bitfield`, hex of one bit per chunk, most significant bit
    /// first; `complete` when it has all (then `bitfield` is empty). `later`, in the answer
    /// to a turn: the place has not come yet; the same turn asked again keeps it, anything
    /// else gives it up.
    Have {
        complete: bool,
        bitfield: String,
        later: bool,
    },
    /// A super-seeding peer's offer: chunks the asker lacks, to fetch from this peer (it has
    /// them all); everything else from others. `later` as for `have`.
    Offer {
        bitfield: String,
        later: bool,
    },
    /// Followed by `len` raw bytes.
    Chunk {
        index: u32,
        len: u32,
    },
    /// This chunk is offered to another downloader now: ask this peer for its new offer,
    /// and others for the chunk. Only to an asker that takes offers.
    Elsewhere {
        index: u32,
    },
    /// The peer's upload line is full and others have this chunk: ask others for it, and
    /// this peer from now on for turns (`PROTOCOL.md` section 4.3). Only to an asker that
    /// takes turns.
    Busy {
        index: u32,
    },
    Error {
        reason: String,
    },
}

impl PeerReply {
    /// The reply's kind, for a message that says what came instead of what was due.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerReply::Hello { .. } => "hello",
            PeerReply::Manifest { .. } => "manifest",
            PeerReply::Have { .. } => "have",
            PeerReply::Offer { .. } => "offer",
            PeerReply::Chunk { .. } => "chunk",
            PeerReply::Elsewhere { .. } => "elsewhere",
            PeerReply::Busy { .. } => "busy",
            PeerReply::Error { .. } => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abilities_travel_as_names_and_unknown_ones_are_ignored() {
        let json = serde_json::to_string(&PeerRequest::Hello { abilities: Abilities::ALL }).unwrap();
        assert_eq!(json, r#"{"type":"hello","abilities":["offers","turns"]}"#);
        let r: PeerRequest =
            serde_json::from_str(r#"{"type":"hello","abilities":["turns","teleport"]}"#).unwrap();
        assert_eq!(r, PeerRequest::Hello { abilities: Abilities { turns: true, ..Abilities::default() } });
        let none: PeerReply = serde_json::from_str(r#"{"type":"hello","abilities":[]}"#).unwrap();
        assert_eq!(none, PeerReply::Hello { abilities: Abilities::default() });
    }
}
