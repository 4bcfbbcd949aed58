//! Each source's chunks are checked on a thread of their own, so a source's socket reads,
//! the SHA-1 of the chunk before, and the reassembler's write of the one before that all
//! run at once. A chunk reaches the reassembler only after its check; one that fails is
//! counted against its source, which is dropped after [`MAX_BAD_CHUNKS`].

use super::check::{check, Verdict};
use super::ctx::SourceEnd;
use super::ctx::{Arrival, DownloadCtx, MAX_BAD_CHUNKS};
use crate::manifest::ChunkIndex;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

/// A chunk as the source sent it.
pub struct Unchecked {
    pub index: ChunkIndex,
    pub buf: Vec<u8>,
}

/// Runs `fetch` (a source's reading loop) beside a checker thread for the chunks it hands
/// over: at most [`AHEAD`](super::budget::AHEAD) wait. `fetch` gets the channel and the
/// count of chunks that failed; the source ends banned once too many did.
pub fn with_checker(
    shared: &DownloadCtx,
    addr: SocketAddr,
    tx: &Sender<Arrival>,
    fetch: impl FnOnce(Sender<Unchecked>, &AtomicU32) -> SourceEnd,
) -> SourceEnd {
    let bad = AtomicU32::new(0);
    let (check, unchecked) = bounded(super::budget::AHEAD);
    let end = thread::scope(|s| {
        let checker = thread::Builder::new()
            .name(format!("verify-{addr}"))
            .spawn_scoped(s, || run(shared, addr, unchecked, tx, &bad));
        if let Err(e) = checker {
            return SourceEnd::Failed(format!("cannot start a thread: {e}"));
        }
        fetch(check, &bad)
        // Leaving the scope closes `check`; the checker finishes what it holds first.
    });
    match bad.load(Ordering::Relaxed) {
        n if n >= MAX_BAD_CHUNKS => SourceEnd::Banned(n),
        _ => end,
    }
}

/// Checks the chunks `addr` sent until the source closes `rx`; good ones go to the
/// reassembler over `tx`. `bad` counts the ones that failed.
pub fn run(
    shared: &DownloadCtx,
    addr: SocketAddr,
    rx: Receiver<Unchecked>,
    tx: &Sender<Arrival>,
    bad: &AtomicU32,
) {
    for Unchecked { index, buf } in rx {
        match check(shared, addr, index, buf, tx) {
            Verdict::Failed(n) => {
                bad.store(n, Ordering::Relaxed);
                if n >= MAX_BAD_CHUNKS {
                    return;
                }
            }
            Verdict::Closed => return,
            Verdict::Passed | Verdict::Duplicate => {}
        }
    }
}
