//! The one check every chunk passes, from whichever source and protocol it came: its SHA-1
//! against the manifest, a strike against the source when it fails, and the scheduler told
//! it is done (or that another source delivered it first, in the end game).

use super::ctx::{Arrival, DownloadCtx};
use crate::hash::Sha1Hash;
use crate::manifest::ChunkIndex;
use crossbeam_channel::Sender;
use log::warn;
use std::net::SocketAddr;

/// What became of a chunk a source sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It matched and went to the reassembler.
    Passed,
    /// Another source's copy got there first (end game); it was dropped.
    Duplicate,
    /// It failed its SHA-1 check: the source's strikes so far.
    Failed(u32),
    /// The reassembler is gone (the download ended).
    Closed,
}

/// Checks chunk `index` that `from` sent in `buf`; a good one goes on over `tx`, the buffer
/// of any other goes back to the pool.
pub fn check(
    ctx: &DownloadCtx,
    from: SocketAddr,
    index: ChunkIndex,
    buf: Vec<u8>,
    tx: &Sender<Arrival>,
) -> Verdict {
    let m = &ctx.store.manifest;
    let i = index.get();
    if Sha1Hash::of(&buf) != m.chunk_hash(index) {
        ctx.pool.put(buf);
        let strikes = ctx.sched.lock().failed(from, i);
        warn!("chunk {i} of '{}' from {from} failed its SHA-1 check ({strikes} so far)", m.name);
        return Verdict::Failed(strikes);
    }
    if !ctx.sched.lock().completed(from, i) {
        ctx.pool.put(buf);
        return Verdict::Duplicate;
    }
    match tx.send(Arrival { index, buf, from }) {
        Ok(()) => Verdict::Passed,
        Err(_) => Verdict::Closed,
    }
}
