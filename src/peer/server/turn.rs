//! A turn (`PROTOCOL.md` section 4.4): an asker that was told `busy` waits for a place in
//! the upload line holding no chunk, and names the chunk when the place comes.

use super::decide::{decide, have_reply, not_shared, Standing};
use super::send::send;
use crate::hash::ContentId;
use crate::holdings::shares::Shares;
use crate::peer::open_files::{OpenFiles, Refusal};
use crate::peer::options::ServerOptions;
use crate::wire::conn::Conn;
use crate::wire::deadline::Socket;
use crate::wire::peer_msg::{PeerReply, PeerRequest};
use crate::wire::WireError;
use std::time::{Duration, Instant};

/// How long a turn request waits for its place before it is answered `later` (well inside
/// a downloader's 10 s reply time-out): the asker hears what this peer has now, and keeps
/// its place by asking for the same turn again.
pub(super) const TURN_WAIT: Duration = Duration::from_secs(2);
/// The most a turn comes before the chunk ahead of it is sent: a round trip that long
/// is a slow link, and the place holds the chunk named no longer than this ahead.
pub(super) const MAX_LEAD: Duration = Duration::from_millis(500);
/// How long a place that came is kept for the chunk request that names its chunk.
pub(super) const TURN_ANSWER: Duration = Duration::from_secs(2);

/// Answers a turn request (see [`Standing`]): waits until the asker is first in the upload
/// line, or second while the chunk being sent is due within the asker's answer time;
/// answers with what this peer has; and sends the chunk the next request names in that
/// place. Returns the next request when it is not a chunk request (the place is given up).
pub(super) fn serve_turn<S: Socket>(
    conn: &mut Conn<S>,
    shares: &Shares,
    opts: &ServerOptions,
    files: &mut OpenFiles,
    asker: &mut Standing,
    content_id: &ContentId,
    mine: Option<&str>,
) -> Result<Option<PeerRequest>, WireError> {
    let Some(shared) = shares.get(content_id) else {
        let Refusal(reason) = not_shared(content_id);
        conn.send_reply(&PeerReply::Error { reason })?;
        return Ok(None);
    };
    let limit = opts.upload_limit.as_ref();
    let turn = limit.map(|l| l.turn());
    let mut mine = mine.map(str::to_string);
    loop {
        let came = turn.as_ref().is_none_or(|t| t.wait_place(asker.answer_time, Instant::now() + TURN_WAIT));
        let mut reply = have_reply(&shared, mine.as_deref(), asker)
            .unwrap_or_else(|Refusal(reason)| PeerReply::Error { reason });
        if let PeerReply::Have { later, .. } | PeerReply::Offer { later, .. } = &mut reply {
            *later = !came;
        }
        let answered = Instant::now();
        conn.send_reply(&reply)?;
        let req: PeerRequest = conn.read_request_within(TURN_ANSWER)?;
        asker.answer_time = answered.elapsed().min(MAX_LEAD);
        match req {
            // Not yet its place: the same turn asked again keeps it.
            PeerRequest::Turn { content_id: again, mine: now_mine } if !came && again == *content_id => {
                mine = now_mine;
            }
            PeerRequest::Chunk { .. } if came => {
                let plan = decide(&req, shares, files, conn.peer_addr(), asker);
                send(conn, plan, limit, asker, turn)?;
                return Ok(None);
            }
            other => return Ok(Some(other)),
        }
    }
}
