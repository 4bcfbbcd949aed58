//! A seeder's announces: every complete torrent whose trackers are known
//! ([`TrackerLists`]) is announced to them while this peer serves it, as a BitTorrent
//! seeder does: `started` (with nothing left) when it begins, again after each answer's
//! interval, `stopped` when the peer leaves or the file stops being shared. That is how
//! peers that find a torrent through its own trackers (and a private torrent's peers, who
//! have no other way) find this one. The peers a tracker names are dialed and uploaded to
//! (the server's [`Dialer`], within its caps): some clients (Transmission) never dial a
//! loopback or LAN peer they hear of.
//!
//! [`Schedule`] decides who is due (pure: the time is passed in); [`spawn`] runs it with
//! [`WORKERS`] threads asking trackers, so a slow tracker holds up no other torrent.

use crate::announce::{self, Announce, Event, Tiers, MIN_INTERVAL};
use crate::download::feed::MAX_TRACKERS;
use crate::hash::ContentId;
use crate::holdings::shares::Shares;
use crate::holdings::tracker_lists::TrackerLists;
use crate::peer::server::Dialer;
use crossbeam_channel::{bounded, select, tick, unbounded, Receiver};
use log::info;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Threads asking trackers at once.
pub const WORKERS: usize = 4;
/// How often the shares are looked at for torrents to start or stop announcing.
pub const SCAN_EVERY: Duration = Duration::from_secs(2);
/// The longest one announce may take (as a download's).
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(15);
/// All `stopped` announces together when the peer leaves.
const STOPPING_WITHIN: Duration = Duration::from_secs(3);

/// One torrent being announced.
#[derive(Debug)]
struct Job {
    /// `None` while a worker has them.
    tiers: Option<Tiers>,
    next: Instant,
    /// The tracker that answered last, told `stopped` at the end.
    answered: Option<String>,
    started: bool,
}

/// Which torrents are announced, and when next.
#[derive(Debug, Default)]
pub struct Schedule {
    jobs: HashMap<ContentId, Job>,
    /// Complete torrents with no tracker this side can ask (not looked up again).
    unlisted: std::collections::HashSet<ContentId>,
}

/// An announce for a worker to make.
#[derive(Debug)]
pub struct Due {
    pub id: ContentId,
    pub tiers: Tiers,
    pub event: Event,
}

impl Schedule {
    /// Starts announcing the torrents in `seeding` that are new (their trackers looked up
    /// with `trackers_of`, once), and stops those no longer there: returns (id, tracker
    /// that answered) for each stopped.
    pub fn sync(
        &mut self,
        seeding: &[ContentId],
        trackers_of: impl Fn(&ContentId) -> Vec<Vec<String>>,
        now: Instant,
    ) -> Vec<(ContentId, String)> {
        let wanted: std::collections::HashSet<&ContentId> = seeding.iter().collect();
        self.unlisted.retain(|id| wanted.contains(id));
        let gone: Vec<ContentId> = self.jobs.keys().filter(|id| !wanted.contains(id)).copied().collect();
        let mut stopped = Vec::new();
        for id in gone {
            if let Some(url) = self.jobs.remove(&id).and_then(|j| j.answered) {
                stopped.push((id, url));
            }
        }
        for id in seeding {
            if self.jobs.contains_key(id) || self.unlisted.contains(id) {
                continue;
            }
            let tiers = Tiers::new(trackers_of(id), MAX_TRACKERS);
            if tiers.is_empty() {
                self.unlisted.insert(*id);
            } else {
                self.jobs.insert(*id, Job { tiers: Some(tiers), next: now, answered: None, started: false });
            }
        }
        stopped
    }

    /// The announces due at `now` (handed out: each comes back through [`done`](Self::done)).
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        for (id, job) in self.jobs.iter_mut().filter(|(_, j)| j.next <= now) {
            if let Some(tiers) = job.tiers.take() {
                let event = if job.started { Event::None } else { Event::Started };
                out.push(Due { id: *id, tiers, event });
            }
        }
        out
    }

    /// A worker is back with `tiers`: `answered` is the tracker that answered (none did:
    /// asked again after [`MIN_INTERVAL`]), `interval` its answer's.
    pub fn done(&mut self, id: ContentId, tiers: Tiers, answered: Option<(String, Duration)>, now: Instant) {
        let Some(job) = self.jobs.get_mut(&id) else { return }; // stopped meanwhile
        job.tiers = Some(tiers);
        match answered {
            Some((url, interval)) => {
                job.started = true;
                job.answered = Some(url);
                job.next = now + interval;
            }
            None => job.next = now + MIN_INTERVAL,
        }
    }

    /// Every torrent's tracker that answered, for `stopped` at the end.
    pub fn answered(&self) -> Vec<(ContentId, String)> {
        self.jobs.iter().filter_map(|(id, j)| Some((*id, j.answered.clone()?))).collect()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

/// The announce of a seeder of `id` on `port`.
fn seeder(id: ContentId, peer_id: [u8; 20], port: u16, event: Event) -> Announce {
    Announce { info_hash: id, peer_id, port, uploaded: 0, downloaded: 0, left: 0, event }
}

/// Whether `peer` is this peer itself (listening on `port` of this host).
fn is_me(peer: SocketAddr, port: u16) -> bool {
    peer.port() == port && (peer.ip().is_loopback() || peer.ip().is_unspecified())
}

/// Announces every complete share with a tracker list, until `stop` fires; the peers the
/// trackers name are dialed with `dialer`.
pub fn spawn(
    shares: Arc<Shares>,
    lists: TrackerLists,
    port: u16,
    dialer: Dialer,
    stop: Receiver<()>,
) -> JoinHandle<()> {
    thread::Builder::new()
        .name("seed-announces".into())
        .spawn(move || run(&shares, &lists, port, &Arc::new(dialer), &stop))
        .expect("spawning the seed announcer")
}

fn run(shares: &Shares, lists: &TrackerLists, port: u16, dialer: &Arc<Dialer>, stop: &Receiver<()>) {
    let peer_id = crate::bt::new_peer_id();
    let (work_tx, work_rx) = bounded::<Due>(WORKERS);
    let (back_tx, back_rx) = unbounded::<(ContentId, Tiers, Option<(String, Duration)>)>();
    let workers: Vec<JoinHandle<()>> = (0..WORKERS)
        .filter_map(|i| {
            let (rx, tx, dialer) = (work_rx.clone(), back_tx.clone(), Arc::clone(dialer));
            thread::Builder::new()
                .name(format!("seed-announce-{i}"))
                .spawn(move || {
                    for mut due in rx {
                        let answered =
                            due.tiers.announce(&seeder(due.id, peer_id, port, due.event), ANNOUNCE_WITHIN);
                        if let Some((url, answer)) = &answered {
                            if due.event == Event::Started {
                                info!("Seeding {} announced to {url}", due.id);
                            }
                            for p in answer.peers.iter().filter(|p| !is_me(**p, port)) {
                                dialer.dial(due.id, *p);
                            }
                        }
                        let _ = tx.send((
                            due.id,
                            due.tiers,
                            answered.map(|(url, answer)| (url, answer.interval)),
                        ));
                    }
                })
                .ok()
        })
        .collect();
    let mut schedule = Schedule::default();
    let ticker = tick(Duration::from_millis(500));
    let mut last_scan: Option<Instant> = None;
    let mut waiting: Vec<Due> = Vec::new();
    loop {
        select! {
            recv(stop) -> _ => break,
            recv(back_rx) -> back => {
                if let Ok((id, tiers, answered)) = back {
                    schedule.done(id, tiers, answered, Instant::now());
                }
            }
            recv(ticker) -> _ => {}
        }
        let now = Instant::now();
        if last_scan.is_none_or(|t| now.duration_since(t) >= SCAN_EVERY) {
            last_scan = Some(now);
            for (id, url) in schedule.sync(&shares.complete_ids(), |id| lists.load(id), now) {
                let _ = announce::announce(
                    &url,
                    &seeder(id, peer_id, port, Event::Stopped),
                    Duration::from_secs(2),
                );
            }
        }
        waiting.extend(schedule.due(now));
        while let Some(due) = waiting.pop() {
            if let Err(e) = work_tx.try_send(due) {
                waiting.push(e.into_inner());
                break;
            }
        }
    }
    drop(work_tx);
    // `stopped` to the trackers that answered, within a few seconds in all.
    let until = Instant::now() + STOPPING_WITHIN;
    for (id, url) in schedule.answered() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let _ = announce::announce(
            &url,
            &seeder(id, peer_id, port, Event::Stopped),
            left.min(Duration::from_secs(1)),
        );
    }
    drop(workers); // workers end when their announce does; the peer does not wait for them
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trackers() -> Vec<Vec<String>> {
        vec![vec!["udp://127.0.0.1:1".to_string()]]
    }

    fn trackers_of(_: &ContentId) -> Vec<Vec<String>> {
        trackers()
    }

    #[test]
    fn a_seeded_torrent_starts_then_follows_the_interval_and_stops_when_it_goes() {
        let t0 = Instant::now();
        let (a, b) = (ContentId::of(b"a"), ContentId::of(b"b"));
        let mut s = Schedule::default();
        let lists = |id: &ContentId| if *id == a { trackers() } else { vec![vec!["wss://x".into()]] };
        assert!(s.sync(&[a, b], lists, t0).is_empty());
        assert_eq!(s.len(), 1, "a torrent with no tracker this side can ask is not announced");
        s.sync(&[a, b], |_| panic!("looked up again"), t0);
        let due = s.due(t0);
        assert_eq!((due.len(), due[0].event), (1, Event::Started));
        assert!(s.due(t0).is_empty(), "not handed out twice while a worker has it");
        let d = due.into_iter().next().unwrap();
        s.done(a, d.tiers, Some(("udp://127.0.0.1:1".into(), Duration::from_secs(1800))), t0);
        assert!(s.due(t0 + Duration::from_secs(1799)).is_empty());
        let again = s.due(t0 + Duration::from_secs(1800));
        assert_eq!(again[0].event, Event::None);
        s.done(a, again.into_iter().next().unwrap().tiers, None, t0 + Duration::from_secs(1800));
        assert!(s.due(t0 + Duration::from_secs(1829)).is_empty(), "no answer: again after MIN_INTERVAL");
        assert_eq!(s.due(t0 + Duration::from_secs(1830)).len(), 1);
        assert_eq!(s.answered(), vec![(a, "udp://127.0.0.1:1".to_string())]);
        // The file stops being shared: `stopped` to the tracker that answered.
        assert_eq!(s.sync(&[], trackers_of, t0), vec![(a, "udp://127.0.0.1:1".to_string())]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_worker_back_after_its_torrent_stopped_changes_nothing() {
        let t0 = Instant::now();
        let a = ContentId::of(b"a");
        let mut s = Schedule::default();
        s.sync(&[a], trackers_of, t0);
        let d = s.due(t0).pop().unwrap();
        assert!(s.sync(&[], trackers_of, t0).is_empty(), "never answered: nobody to tell");
        s.done(a, d.tiers, Some(("udp://127.0.0.1:1".into(), MIN_INTERVAL)), t0);
        assert!(s.is_empty());
    }
}
