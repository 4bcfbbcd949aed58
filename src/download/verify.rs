//! Each source's chunks are checked on a thread of their own, so a source's socket reads,
//! the SHA-1 of the chunk before, and the reassembler's write of the one before that all
//! run at once. A chunk reaches the reassembler only after its check; one that fails is
//! counted against its source, which is dropped after [`MAX_BAD_CHUNKS`].

use super::check::{check, Verdict};
use super::ctx::{Arrival, DownloadCtx, MAX_BAD_CHUNKS};
use crate::manifest::ChunkIndex;
use crossbeam_channel::{Receiver, Sender};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// A chunk as the source sent it.
pub struct Unchecked {
    pub index: ChunkIndex,
    pub buf: Vec<u8>,
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
