//! A fixed pool of named worker threads fed by a bounded crossbeam queue.

use crossbeam_channel::{bounded, Sender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

/// Workers that each run `handler` on jobs taken from one queue.
pub struct WorkerPool<T: Send + 'static> {
    tx: Option<Sender<T>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> WorkerPool<T> {
    /// Starts `n` threads named `name-0`, `name-1`, ...; the queue holds `queue` jobs.
    pub fn new(
        n: usize,
        queue: usize,
        name: &str,
        handler: impl Fn(T) + Send + Sync + 'static,
    ) -> WorkerPool<T> {
        let (tx, rx) = bounded::<T>(queue);
        let handler = Arc::new(handler);
        let workers = (0..n.max(1))
            .map(|i| {
                let rx = rx.clone();
                let handler = Arc::clone(&handler);
                thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        for job in rx {
                            handler(job);
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        WorkerPool { tx: Some(tx), workers }
    }

    /// Queues a job, or hands it back when the queue is full.
    pub fn try_submit(&self, job: T) -> Result<(), T> {
        let tx = self.tx.as_ref().expect("pool is running");
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }

    /// Closes the queue and waits for the workers to finish their jobs.
    pub fn join(mut self) {
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_job_and_refuses_when_full() {
        let done = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&done);
        let pool = WorkerPool::new(2, 64, "t", move |n: usize| {
            d.fetch_add(n, Ordering::SeqCst);
        });
        for _ in 0..10 {
            pool.try_submit(1).unwrap();
        }
        pool.join();
        assert_eq!(done.load(Ordering::SeqCst), 10);

        let (hold_tx, hold_rx) = bounded::<()>(0);
        let (took_tx, took_rx) = bounded::<u8>(1);
        let busy = WorkerPool::new(1, 1, "b", move |n: u8| {
            let _ = took_tx.send(n);
            let _ = hold_rx.recv();
        });
        busy.try_submit(1).unwrap();
        assert_eq!(took_rx.recv().unwrap(), 1, "the worker took the first job and blocks");
        busy.try_submit(2).unwrap(); // fills the queue
        assert_eq!(busy.try_submit(3), Err(3));
        drop(hold_tx);
        busy.join();
    }
}
