//! Sending what `decide` planned: the bytes copied from the file, under the upload limit in
//! the one upload line (`crate::peer::upload`), and `busy` when the line is full
//! (`PROTOCOL.md` section 4.3).

use super::decide::{Plan, Standing};
use crate::peer::upload::{Turn, UploadLine};
use crate::wire::conn::Conn;
use crate::wire::deadline::Socket;
use crate::wire::peer_msg::PeerReply;
use crate::wire::send_deadline::DeadlineWriter;
use crate::wire::{FrameError, WireError};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether a chunk request in `turn` must go elsewhere (see [`Standing`]): more than one
/// upload is ahead of it, or its turn did not come within `chunk_time`.
fn line_full(turn: &Turn, chunk_time: Duration) -> bool {
    turn.ahead() >= 2 || !turn.wait_until(Instant::now() + chunk_time)
}

/// Sends what [`decide`] planned.
pub(super) fn send<S: Socket>(
    conn: &mut Conn<S>,
    plan: Plan,
    limit: Option<&Arc<UploadLine>>,
    asker: &mut Standing,
    place: Option<Turn>,
) -> Result<(), WireError> {
    match plan {
        Plan::Reply(reply) => conn.send_reply(&reply),
        Plan::Manifest { content_id, text } => {
            conn.send_reply(&PeerReply::Manifest { content_id, len: text.len() as u32 })?;
            Ok(conn.write_raw(text.as_bytes())?)
        }
        Plan::Chunk { index, file, offset, len, shared } => {
            let complete = shared.is_complete();
            let in_place = place.is_some();
            let turn = place.or_else(|| limit.map(|l| l.turn()));
            if let (Some(turn), Some(limit), false) = (&turn, limit, in_place) {
                // Only a chunk others have too: a seeder's chunk that never went out waits.
                let elsewhere = !complete || shared.seeding.lock().times_sent(index) > 0;
                if elsewhere && asker.abilities.turns && line_full(turn, limit.time_for(len)) {
                    return conn.send_reply(&PeerReply::Busy { index });
                }
            }
            if complete {
                shared.seeding.lock().sent(index, asker.id);
            }
            conn.send_reply(&PeerReply::Chunk { index, len: len as u32 })?;
            let sent = match turn {
                None => conn.writer().send_file(file, offset, len),
                Some(turn) => copy_range_limited(file, offset, len, conn.writer(), &turn),
            };
            match sent? {
                n if n == len => Ok(()),
                // The file shrank under us: the promised bytes cannot be sent, so close.
                n => Err(WireError::Frame(FrameError::Truncated { expected: len, got: n })),
            }
        }
    }
}

/// Copies a file range in slices, taking tokens from the shared upload limit first, in
/// its turn.
fn copy_range_limited<S: Socket>(
    file: &File,
    offset: u64,
    len: usize,
    out: &mut DeadlineWriter<S>,
    turn: &Turn,
) -> io::Result<usize> {
    const SLICE: usize = 64 * 1024;
    let mut buf = vec![0u8; SLICE];
    let mut done = 0;
    while done < len {
        let n = SLICE.min(len - done);
        turn.take(n);
        turn.left(len - done - n);
        let got = file.read_at(&mut buf[..n], offset + done as u64)?;
        if got == 0 {
            break;
        }
        out.send(&buf[..got])?;
        done += got;
    }
    Ok(done)
}
