//! Deciding the answer to one native request from the shares alone (`PROTOCOL.md` section
//! 3): which reply, and which bytes of which file. No byte moves here, so every decision is
//! tested in memory (`native.rs`).

use crate::bitfield::Bitfield;
use crate::hash::ContentId;
use crate::holdings::shares::{Holding, Share, Shares};
use crate::names::validate_name;
use crate::peer::open_files::{open_for_chunk, OpenFiles, Refusal};
use crate::storage::Stretch;
use crate::wire::peer_msg::{Abilities, PeerReply, PeerRequest};
use log::{debug, info, warn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One connection's standing with this server. Under an upload limit, a peer keeps one
/// place to wait in its upload line, right behind the upload being sent. A chunk request
/// that finds that place taken, or that does not get its turn within one chunk's sending
/// time, is answered `busy` when other peers have the chunk too (this peer is still
/// downloading, or has sent that chunk before) and the asker takes turns. In a crowd,
/// everyone asks a peer for the chunk it just got: queued there, their requests would hold
/// chunks that idle peers could send.
///
/// From then on the asker waits for a place in the line with a turn request, holding no
/// chunk, and names the chunk when its place comes, picked from what this peer has then
/// (the turn's answer is the have-set). The line never empties while someone waits, and a
/// chunk this peer just got goes out in the next turn, not behind one named a chunk's time
/// earlier. `PROTOCOL.md` sections 4.3 and 4.4; `cargo bench --bench bench -- crowd`
/// measures it.
pub(super) struct Standing {
    /// Names the connection to super-seeding.
    pub id: u64,
    /// What it said it understands (`hello`); nothing until it says.
    pub abilities: Abilities,
    /// How long it took to name a chunk when its last turn came (a round trip and its
    /// pick): its next turn comes that much before the chunk ahead of it is sent, so the
    /// upload does not pause for the round trip.
    pub answer_time: Duration,
}

/// What to send for one request, decided from the shares alone; no byte moved yet.
pub(super) enum Plan {
    /// A reply alone (a have-set, or a refusal: the connection stays open).
    Reply(PeerReply),
    /// The manifest reply, then its text.
    Manifest { content_id: ContentId, text: String },
    /// The chunk reply, then its `len` bytes: the stretches of its files (opened, and each
    /// file's version checked) or padding. `shared` counts what went out (super-seeding)
    /// and says whether others have it.
    Chunk { index: u32, stretches: Vec<Stretch>, len: usize, shared: Arc<Share> },
}

/// Decides the answer to `req` from `asker`.
pub(super) fn decide(
    req: &PeerRequest,
    shares: &Shares,
    files: &mut OpenFiles,
    from: SocketAddr,
    asker: &Standing,
) -> Plan {
    let planned = match req {
        PeerRequest::Hello { .. } => Ok(Plan::Reply(PeerReply::Hello { abilities: Abilities::ALL })),
        PeerRequest::Manifest { content_id, name } => {
            find(shares, content_id.as_ref(), name.as_deref()).map(|shared| {
                info!("Sending file.ini of '{}' to {from}", shared.manifest.name);
                Plan::Manifest { content_id: shared.content_id, text: shared.manifest.to_ini() }
            })
        }
        PeerRequest::Have { content_id, mine } | PeerRequest::Turn { content_id, mine } => {
            let shared = shares.get(content_id).ok_or_else(|| not_shared(content_id));
            shared.and_then(|shared| have_reply(&shared, mine.as_deref(), asker)).map(Plan::Reply)
        }
        PeerRequest::Chunk { content_id, index } => match shares.get(content_id) {
            None => Err(not_shared(content_id)),
            Some(shared) if shared.is_complete() => {
                if !shared.seeding.lock().may_send(*index, asker.id) {
                    return Plan::Reply(PeerReply::Elsewhere { index: *index });
                }
                plan_chunk(&shared, *index, files)
            }
            Some(shared) => plan_chunk(&shared, *index, files),
        },
    };
    planned.unwrap_or_else(|Refusal(reason)| {
        debug!("peer server: {from}: {reason}");
        Plan::Reply(PeerReply::Error { reason })
    })
}

/// Which chunks we have: a partial file's bitfield; for a complete file, `complete`, or,
/// to an asker that takes offers and says what it has, an offer (super-seeding).
pub(super) fn have_reply(shared: &Share, mine: Option<&str>, asker: &Standing) -> Result<PeerReply, Refusal> {
    Ok(match (&shared.holding, mine) {
        (Holding::Partial(store), _) => {
            PeerReply::Have { complete: false, bitfield: store.bitfield().to_hex(), later: false }
        }
        (Holding::Complete(..), Some(mine)) if asker.abilities.offers => {
            let has = Bitfield::from_hex(mine, shared.manifest.chunk_count())
                .map_err(|e| Refusal(format!("the have-set sent: {e}")))?;
            let offer = shared.seeding.lock().offer(asker.id, &has, Instant::now());
            debug!(
                "super-seeding '{}': connection {} has {}, is offered {}",
                shared.manifest.name,
                asker.id,
                has.count(),
                offer.count()
            );
            PeerReply::Offer { bitfield: offer.to_hex(), later: false }
        }
        (Holding::Complete(..), _) => {
            PeerReply::Have { complete: true, bitfield: String::new(), later: false }
        }
    })
}

pub(super) fn not_shared(id: &ContentId) -> Refusal {
    Refusal(format!("file {id} is not shared here"))
}

fn find(shares: &Shares, id: Option<&ContentId>, name: Option<&str>) -> Result<Arc<Share>, Refusal> {
    match (id, name) {
        (Some(id), _) => shares.get(id).ok_or_else(|| not_shared(id)),
        (None, Some(name)) => {
            validate_name(name).map_err(|e| Refusal(e.to_string()))?;
            shares.complete_by_name(name).ok_or_else(|| Refusal(format!("'{name}' is not shared here")))
        }
        (None, None) => Err(Refusal("a manifest request must name a file".into())),
    }
}

fn plan_chunk(shared: &Arc<Share>, index: u32, files: &mut OpenFiles) -> Result<Plan, Refusal> {
    let m = &shared.manifest;
    let Some(idx) = m.index(index) else {
        return Err(Refusal(format!(
            "chunk {index} is out of range: '{}' has {} chunks",
            m.name,
            m.chunk_count()
        )));
    };
    let len = m.chunk_len(idx);
    let stretches = open_for_chunk(shared, idx, files)?.stretches(m.offset(idx), len).map_err(|e| {
        warn!("not serving '{}': {e}", m.name);
        Refusal(format!("cannot serve '{}': {e}", m.name))
    })?;
    Ok(Plan::Chunk { index, stretches, len, shared: Arc::clone(shared) })
}
