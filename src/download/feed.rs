//! The peers of one download that do not come from our tracker: the DHT's (looked up on a
//! thread of their own from the start of the download, before its metadata is known, one
//! lookup every [`LOOKUP_EVERY`]) and the torrent's own trackers' (announced to on another
//! thread, again after each answer's interval). Every answer is merged into one list (at
//! most [`MAX_FEED_PEERS`]). The metadata fetch and the source roster take new peers as soon
//! as they come and read the whole list every second, so a source that failed once, or
//! found every slot taken, is tried again with its back-off; and no single answer, first or
//! not, decides whom we ask.

use crate::announce::{self, Announce, Event, Tiers};
use crate::dht::{PeerDht, MAX_DHT_PEERS};
use crate::hash::ContentId;
use log::{info, warn};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Pause between two lookups of the same info-hash.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(5);
/// Peers a download keeps from the DHT and the trackers together.
pub const MAX_FEED_PEERS: usize = MAX_DHT_PEERS;
/// Trackers of one torrent asked, at most (a torrent may list hundreds).
pub const MAX_TRACKERS: usize = 16;
/// The longest one announce may take, the connection and every retransmission included.
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(15);

/// A running feed; its threads stop when it is dropped (the trackers hear `completed` if
/// the download finished, else `stopped`).
pub struct PeerFeed {
    found: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
}

impl Default for PeerFeed {
    fn default() -> Self {
        PeerFeed::new()
    }
}

impl PeerFeed {
    /// A feed with no source yet.
    pub fn new() -> PeerFeed {
        PeerFeed {
            found: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
            done: Default::default(),
        }
    }

    /// The download finished: the trackers hear `completed` when the feed ends (this peer
    /// goes on serving the file on the port it announced).
    pub fn completed(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// Looks `id` up on `dht`.
    pub fn add_dht(&self, dht: PeerDht, id: ContentId) {
        let (list, halt) = (Arc::clone(&self.found), Arc::clone(&self.stop));
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
                if !pause(&halt, LOOKUP_EVERY) {
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            warn!("cannot start the DHT lookups: {e}");
        }
    }

    /// Announces to the torrent's own trackers (`http://`, `https://` and `udp://`, the first
    /// [`MAX_TRACKERS`]) in their BEP 12 tiers: each time, the first that answers gives its
    /// peers and says when to ask again, and is asked first in its tier from then on.
    pub fn add_trackers(&self, tiers: Vec<Vec<String>>, first: Announce) {
        let mut tiers = Tiers::new(tiers, MAX_TRACKERS);
        if tiers.is_empty() {
            return;
        }
        let (list, halt, done) = (Arc::clone(&self.found), Arc::clone(&self.stop), Arc::clone(&self.done));
        let spawned = thread::Builder::new().name("tracker-announces".into()).spawn(move || {
            let mut a = first;
            let mut answered: Option<String> = None;
            while !halt.load(Ordering::Relaxed) {
                let mut wait = announce::MIN_INTERVAL;
                if let Some((url, answer)) = tiers.announce(&a, ANNOUNCE_WITHIN) {
                    let added = merge(&mut list.lock(), answer.peers);
                    info!("Tracker {url} named {added} new peer(s)");
                    wait = answer.interval;
                    answered = Some(url);
                    a.event = Event::None;
                }
                if !pause(&halt, wait) {
                    break;
                }
            }
            if let Some(url) = answered {
                if done.load(Ordering::Relaxed) {
                    (a.event, a.left, a.downloaded) = (Event::Completed, 0, a.left);
                } else {
                    a.event = Event::Stopped;
                }
                let _ = announce::announce(&url, &a, Duration::from_secs(2));
            }
        });
        if let Err(e) = spawned {
            warn!("cannot start the tracker announces: {e}");
        }
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

impl Drop for PeerFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleeps `d` in short steps; false if `halt` came first.
fn pause(halt: &AtomicBool, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if halt.load(Ordering::Relaxed) {
            return false;
        }
        thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
    }
    !halt.load(Ordering::Relaxed)
}

/// Adds the new peers of `answer` to `list`, up to [`MAX_FEED_PEERS`]; returns how many.
fn merge(list: &mut Vec<SocketAddr>, answer: Vec<SocketAddr>) -> usize {
    let before = list.len();
    for p in answer {
        if list.len() >= MAX_FEED_PEERS {
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
        assert_eq!(list.len(), MAX_FEED_PEERS);
    }

    #[test]
    fn new_peers_are_handed_out_once() {
        let feed = PeerFeed::new();
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
