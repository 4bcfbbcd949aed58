//! The reassembler: one thread that receives verified chunks from every source over a
//! crossbeam channel and writes each in place. No byte is hashed twice: each chunk was
//! checked against its SHA-1 by its source's checker thread (`verify`), and the chunk
//! hashes are covered by the content id (the info-hash), so the whole file needs no hash of
//! its own.

use super::ctx::{Arrival, BufferPool};
use crate::chunk_store::ChunkStore;
use crossbeam_channel::{bounded, Receiver};
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
    /// The chunk just written: its index, seconds since the download began, its source.
    pub arrived: Option<(u32, f64, SocketAddr)>,
}

/// Written bytes after which write-back to disk is started in the background.
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
    /// Every chunk is in place.
    pub complete: bool,
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
    let mut last_save = Instant::now();
    let mut unsynced = 0usize;
    let (flush_tx, flush_rx) = bounded::<()>(1);
    let result = std::thread::scope(|scope| {
        // Start write-back early (without waiting for it): the last sync then has little
        // left to write.
        scope.spawn(move || {
            for () in flush_rx {
                let _ = store.start_writeback();
            }
        });
        while store.count() < n {
            let Ok(a) = rx.recv() else { break };
            store.write_chunk(a.index, &a.buf)?;
            *out.per_source.entry(a.from).or_default() += 1;
            out.timeline.push((a.index.get(), started.elapsed().as_secs_f64(), a.from));
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
                let done_bytes = (chunks_done as u64 * m.piece_length).min(m.size);
                let total_bytes = m.size;
                let (name, chunks_total, elapsed) = (m.name.clone(), n, started.elapsed());
                let sources = sources.load(Ordering::Relaxed);
                let arrived = out.timeline.last().copied();
                p(&Progress {
                    name,
                    done_bytes,
                    total_bytes,
                    chunks_done,
                    chunks_total,
                    elapsed,
                    sources,
                    arrived,
                });
            }
        }
        drop(flush_tx);
        Ok::<_, io::Error>(())
    });
    result?;
    store.save_have()?;
    out.complete = store.count() == n;
    Ok(out)
}
