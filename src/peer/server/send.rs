//! Sending what `decide` planned: the bytes copied from the file, under the upload limit in
//! the one upload line (`crate::peer::upload`), and `busy` when the line is full
//! (`PROTOCOL.md` section 4.3).

use super::decide::{Plan, Standing};
use crate::peer::upload::{Turn, UploadLine};
use crate::storage::Stretch;
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
        Plan::Chunk { index, stretches, len, shared } => {
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
            match send_stretches(stretches, conn.writer(), turn.as_ref())? {
                n if n == len => {
                    shared.sent(conn.peer_addr(), len as u64);
                    Ok(())
                }
                // The file shrank under us: the promised bytes cannot be sent, so close.
                n => Err(WireError::Frame(FrameError::Truncated { expected: len, got: n })),
            }
        }
    }
}

/// Sends a chunk's stretches (of one file, or of several and padding's zeros): straight
/// from the page cache when there is no upload limit, else in slices in its turn. Returns
/// how many bytes went (fewer only if a file shrank).
fn send_stretches<S: Socket>(
    stretches: Vec<Stretch>,
    out: &mut DeadlineWriter<S>,
    turn: Option<&Turn>,
) -> io::Result<usize> {
    let total: usize = stretches
        .iter()
        .map(|s| match s {
            Stretch::File { len, .. } => *len,
            Stretch::Zeros(n) => *n,
        })
        .sum();
    let mut done = 0;
    for s in stretches {
        let (want, sent) = match s {
            Stretch::File { file, at, len } => match turn {
                None => (len, out.send_file(&file, at, len)?),
                Some(turn) => (len, copy_range_limited(&file, at, len, out, turn, total - done - len)?),
            },
            Stretch::Zeros(n) => {
                if let Some(turn) = turn {
                    turn.take(n);
                }
                out.send(&vec![0u8; n])?;
                (n, n)
            }
        };
        done += sent;
        if sent < want {
            break;
        }
    }
    Ok(done)
}

/// Copies a file range in slices, taking tokens from the shared upload limit first, in
/// its turn; `after` bytes of the chunk follow this range.
fn copy_range_limited<S: Socket>(
    file: &File,
    offset: u64,
    len: usize,
    out: &mut DeadlineWriter<S>,
    turn: &Turn,
    after: usize,
) -> io::Result<usize> {
    const SLICE: usize = 64 * 1024;
    let mut buf = vec![0u8; SLICE];
    let mut done = 0;
    while done < len {
        let n = SLICE.min(len - done);
        turn.take(n);
        turn.left(len - done - n + after);
        let got = file.read_at(&mut buf[..n], offset + done as u64)?;
        if got == 0 {
            break;
        }
        out.send(&buf[..got])?;
        done += got;
    }
    Ok(done)
}
