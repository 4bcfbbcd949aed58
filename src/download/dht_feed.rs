//! The DHT's peers for one download: looked up on a thread of their own from the start of
//! the download (before its metadata is known) until it ends, one lookup every
//! [`LOOKUP_EVERY`], every answer of every lookup merged into one list (at most
//! [`MAX_DHT_PEERS`]). The metadata fetch and the source roster take new peers as soon as
//! they come and read the whole list every second, so a source that failed once, or found
//! every slot taken, is tried again with its back-off; and no single answer, first or not,
//! decides whom we ask.

use crate::dht::{PeerDht, MAX_DHT_PEERS};
use crate::hash::ContentId;
use log::info;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Pause between two lookups of the same info-hash.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(5);

/// A running lookup; it stops when dropped.
pub struct DhtFeed {
    found: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl DhtFeed {
    /// Starts looking `id` up on `dht`.
    pub fn start(dht: PeerDht, id: ContentId) -> DhtFeed {
        let found: Arc<Mutex<Vec<SocketAddr>>> = Default::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (list, halt) = (Arc::clone(&found), Arc::clone(&stop));
        let spawned = thread::Builder::new().name("dht-lookups".into()).spawn(move || {
            let mut said = false;
            while !halt.load(Ordering::Relaxed) {
                dht.lookup_each(id, |answer| {
                    let added = merge(&mut list.lock(), answer);
                    if added > 0 && !said {
                        said = true;
                        info!("The DHT named {added} peer(s) for {id}");
                    }
                    !halt.load(Ordering::Relaxed)
                });
                for _ in 0..LOOKUP_EVERY.as_millis() / 100 {
                    if halt.load(Ordering::Relaxed) {
                        return;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start the DHT lookups: {e}");
        }
        DhtFeed { found, stop }
    }

    /// Every peer found so far, first found first.
    pub fn known(&self) -> Vec<SocketAddr> {
        self.found.lock().clone()
    }

    /// The peers found since the caller last looked (`seen` is how many it had seen; the
    /// list only grows), so a loop can take new ones at once and all of them now and then.
    pub fn new_since(&self, seen: &mut usize) -> Vec<SocketAddr> {
        let found = self.found.lock();
        let fresh = found.get(*seen..).unwrap_or_default().to_vec();
        *seen = found.len();
        fresh
    }
}

impl Drop for DhtFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Adds the new peers of `answer` to `list`, up to [`MAX_DHT_PEERS`]; returns how many.
fn merge(list: &mut Vec<SocketAddr>, answer: Vec<SocketAddr>) -> usize {
    let before = list.len();
    for p in answer {
        if list.len() >= MAX_DHT_PEERS {
            break;
        }
        if !list.contains(&p) {
            list.push(p);
        }
    }
    list.len() - before
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_merged_once_each_up_to_the_cap() {
        let a = |p: u16| SocketAddr::from(([10, 0, 0, 1], p));
        let mut list = Vec::new();
        assert_eq!(merge(&mut list, vec![a(1), a(2)]), 2);
        assert_eq!(merge(&mut list, vec![a(2), a(3)]), 1, "a later answer adds only what is new");
        assert_eq!(list, vec![a(1), a(2), a(3)]);
        let many: Vec<SocketAddr> = (100..1000).map(a).collect();
        merge(&mut list, many);
        assert_eq!(list.len(), MAX_DHT_PEERS);
    }

    #[test]
    fn new_peers_are_handed_out_once() {
        let feed = DhtFeed { found: Default::default(), stop: Default::default() };
        let a = |p: u16| SocketAddr::from(([10, 0, 0, 1], p));
        let mut seen = 0;
        merge(&mut feed.found.lock(), vec![a(1), a(2)]);
        assert_eq!(feed.new_since(&mut seen), vec![a(1), a(2)]);
        assert!(feed.new_since(&mut seen).is_empty());
        merge(&mut feed.found.lock(), vec![a(2), a(3)]);
        assert_eq!(feed.new_since(&mut seen), vec![a(3)]);
        assert_eq!(feed.known().len(), 3);
    }
}
