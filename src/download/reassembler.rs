//! The reassembler: one thread that receives verified chunks from every source over a
//! crossbeam channel, writes each in place, and computes the whole file's SHA-1 as the
//! chunks line up (reading back from disk only chunks that arrived out of order).

use super::source::{Arrival, BufferPool};
use crate::chunk_store::ChunkStore;
use crate::hash::Sha1Hash;
use crate::manifest::CHUNK_SIZE;
use crossbeam_channel::{bounded, Receiver};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a download stands, for progress displays.
#[derive(Debug, Clone)]
pub struct Progress {
    pub name: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
    pub chunks_done: u32,
    pub chunks_total: u32,
    pub elapsed: Duration,
    /// Sources fetching right now.
    pub sources: usize,
}

/// Written bytes after which a background flush to disk starts.
const FLUSH_EVERY: usize = 32 << 20;

/// Called after every chunk written.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What the reassembler saw.
#[derive(Debug, Default, Clone)]
pub struct Assembly {
    /// Chunks written, by source.
    pub per_source: BTreeMap<SocketAddr, u32>,
    /// (chunk, seconds since `started`, source) for each chunk written.
    pub timeline: Vec<(u32, f64, SocketAddr)>,
    /// When the download started (the timeline's zero).
    pub started: Option<Instant>,
    /// The whole file's SHA-1, once every chunk is in place.
    pub sha1: Option<Sha1Hash>,
}

/// Writes arrivals until the file is complete or every sender is gone.
pub fn run(
    store: &ChunkStore,
    rx: Receiver<Arrival>,
    pool: BufferPool,
    progress: Option<ProgressFn>,
    sources: Arc<AtomicUsize>,
    started: Instant,
) -> io::Result<Assembly> {
    let m = &store.manifest;
    let n = m.chunk_count();
    let mut out = Assembly { started: Some(started), ..Assembly::default() };
    let mut whole = WholeHash::new();
    whole.catch_up(store, None)?;
    let mut last_save = Instant::now();
    let mut unsynced = 0usize;
    let (flush_tx, flush_rx) = bounded::<()>(1);
    let result = std::thread::scope(|scope| {
        // Start write-back early: the last sync then has at most FLUSH_EVERY bytes to write.
        scope.spawn(move || {
            for () in flush_rx {
                let _ = store.sync();
            }
        });
        while store.count() < n {
            let Ok(a) = rx.recv() else { break };
            store.write_chunk(a.index, &a.buf)?;
            *out.per_source.entry(a.from).or_default() += 1;
            out.timeline.push((a.index.get(), started.elapsed().as_secs_f64(), a.from));
            whole.catch_up(store, Some((a.index.get(), &a.buf)))?;
            unsynced += a.buf.len();
            pool.put(a.buf);
            if unsynced >= FLUSH_EVERY {
                let _ = flush_tx.try_send(());
                unsynced = 0;
            }
            if last_save.elapsed() > Duration::from_secs(1) {
                store.save_have()?;
                last_save = Instant::now();
            }
            if let Some(p) = &progress {
                let chunks_done = store.count();
                let done_bytes = (chunks_done as u64 * CHUNK_SIZE).min(m.size);
                let total_bytes = m.size;
                let (name, chunks_total, elapsed) = (m.name.clone(), n, started.elapsed());
                let sources = sources.load(Ordering::Relaxed);
                p(&Progress { name, done_bytes, total_bytes, chunks_done, chunks_total, elapsed, sources });
            }
        }
        drop(flush_tx);
        Ok::<_, io::Error>(())
    });
    result?;
    store.save_have()?;
    if store.count() == n {
        whole.catch_up(store, None)?;
        out.sha1 = Some(whole.finish());
    }
    Ok(out)
}

/// The whole-file hash, fed with the longest run of chunks in place from the start.
struct WholeHash {
    hasher: Sha1,
    next: u32,
    scratch: Vec<u8>,
}

impl WholeHash {
    fn new() -> WholeHash {
        WholeHash { hasher: Sha1::new(), next: 0, scratch: Vec::new() }
    }

    /// Feeds every chunk from `next` on that is in place; `just` is the chunk just written.
    fn catch_up(&mut self, store: &ChunkStore, just: Option<(u32, &[u8])>) -> io::Result<()> {
        let m = &store.manifest;
        while let Some(idx) = m.index(self.next).filter(|i| store.has(*i)) {
            match just {
                Some((j, bytes)) if j == self.next => self.hasher.update(bytes),
                _ => {
                    self.scratch.resize(m.chunk_len(idx), 0);
                    store.read_chunk(idx, &mut self.scratch)?;
                    self.hasher.update(&self.scratch);
                }
            }
            self.next += 1;
        }
        Ok(())
    }

    fn finish(self) -> Sha1Hash {
        Sha1Hash::from_hasher(self.hasher)
    }
}
