//! The downloads a running peer was handed (through its control API): each runs on a
//! thread of its own with a stop flag; it can be paused (stopped, its verified chunks
//! kept), resumed (started again from those chunks), or removed. A finished download stays
//! listed, and its file shared, until removed.

use super::rates::Rate;
use crate::download::reassembler::Progress;
use crate::download::summary::Summary;
use crate::download::{DownloadError, Options, Report};
use crate::text::peer_label;
use crate::timeline_svg::Arrival;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// Chunk arrivals kept per download for its picture.
const MAX_TIMELINE: usize = 1 << 20;

/// Downloads listed at once (finished ones included); past it, an add is refused until one
/// is removed.
pub const MAX_JOBS: usize = 256;

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Downloading,
    /// Asked to pause; its sources are being closed.
    Pausing,
    Paused,
    Done,
    Failed,
}

/// One download as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    pub id: u64,
    /// What was asked for: a name, an id, a magnet link or a torrent.
    pub target: String,
    /// The file's name, once known.
    pub name: String,
    pub state: State,
    pub size: u64,
    pub done_bytes: u64,
    pub chunks_done: u32,
    pub chunks_total: u32,
    /// Sources sending now.
    pub sources: usize,
    /// Bytes a second over the last few seconds.
    pub down_rate: u64,
    /// Seconds left at that rate.
    pub eta_secs: Option<u64>,
    pub error: Option<String>,
    pub report: Option<Summary>,
}

/// Runs one download: the peer's `Node::download`, given the target and options.
pub type Runner = Arc<dyn Fn(&str, &Options) -> Result<Report, DownloadError> + Send + Sync>;

struct Job {
    view: JobView,
    stop: Arc<AtomicBool>,
    rate: Rate,
    thread: Option<JoinHandle<()>>,
    /// When each chunk arrived and from whom, as it goes (the page draws it).
    timeline: Vec<Arrival>,
}

/// The running peer's downloads.
#[derive(Clone)]
pub struct Jobs {
    list: Arc<Mutex<Vec<Job>>>,
    next: Arc<Mutex<u64>>,
    run: Runner,
    opts: Options,
}

impl Jobs {
    /// Downloads run by `run` with `opts` (each gets its own stop flag and progress).
    pub fn new(run: Runner, opts: Options) -> Jobs {
        Jobs { list: Arc::default(), next: Arc::new(Mutex::new(1)), run, opts }
    }

    /// Starts downloading `target`; its job number, or why not.
    pub fn add(&self, target: &str) -> Result<u64, String> {
        let mut list = self.list.lock();
        if let Some(j) = list.iter().find(|j| j.view.target == target && j.view.state != State::Failed) {
            return Ok(j.view.id); // asked twice: the same download
        }
        if list.len() >= MAX_JOBS {
            return Err(format!("{MAX_JOBS} downloads are listed; remove some first"));
        }
        let id = {
            let mut next = self.next.lock();
            *next += 1;
            *next - 1
        };
        let view = JobView {
            id,
            target: target.to_string(),
            name: shown_target(target),
            state: State::Downloading,
            size: 0,
            done_bytes: 0,
            chunks_done: 0,
            chunks_total: 0,
            sources: 0,
            down_rate: 0,
            eta_secs: None,
            error: None,
            report: None,
        };
        list.push(Job {
            view,
            stop: Arc::default(),
            rate: Rate::default(),
            thread: None,
            timeline: Vec::new(),
        });
        let job = list.last_mut().expect("just pushed");
        job.thread = Some(self.spawn(id, target.to_string(), Arc::clone(&job.stop)));
        Ok(id)
    }

    fn spawn(&self, id: u64, target: String, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        let (list, run) = (Arc::clone(&self.list), Arc::clone(&self.run));
        let progress_list = Arc::clone(&self.list);
        let progress = Arc::new(move |p: &Progress| {
            if let Some(j) = progress_list.lock().iter_mut().find(|j| j.view.id == id) {
                j.rate.sample(Instant::now(), p.done_bytes);
                if let Some((chunk, seconds, from)) = p.arrived {
                    if j.timeline.len() < MAX_TIMELINE {
                        j.timeline.push(Arrival { chunk, seconds, source: peer_label(&from) });
                    }
                }
                let v = &mut j.view;
                (v.name, v.size, v.done_bytes) = (p.name.clone(), p.total_bytes, p.done_bytes);
                (v.chunks_done, v.chunks_total, v.sources) = (p.chunks_done, p.chunks_total, p.sources);
            }
        });
        let opts = Options { progress: Some(progress), stop: Some(stop), ..self.opts.clone() };
        thread::Builder::new()
            .name(format!("job-{id}"))
            .spawn(move || {
                let result = run(&target, &opts);
                let mut list = list.lock();
                let Some(j) = list.iter_mut().find(|j| j.view.id == id) else { return };
                if let Ok(report) = &result {
                    j.timeline = report
                        .assembly
                        .timeline
                        .iter()
                        .map(|(chunk, seconds, from)| Arrival {
                            chunk: *chunk,
                            seconds: *seconds,
                            source: peer_label(from),
                        })
                        .collect();
                }
                let v = &mut j.view;
                match result {
                    Ok(report) => {
                        let s = report.summary();
                        (v.name, v.size, v.done_bytes) = (s.name.clone(), s.size, s.size);
                        v.chunks_done = v.chunks_total.max(report.chunks);
                        v.chunks_total = v.chunks_done;
                        (v.state, v.report, v.error) = (State::Done, Some(s), None);
                    }
                    Err(DownloadError::Stopped { .. }) => v.state = State::Paused,
                    Err(e) => (v.state, v.error) = (State::Failed, Some(e.to_string())),
                }
                v.sources = 0;
            })
            .expect("spawning a download thread")
    }

    /// Every download, first added first.
    pub fn views(&self) -> Vec<JobView> {
        let now = Instant::now();
        self.list
            .lock()
            .iter()
            .map(|j| {
                let mut v = j.view.clone();
                if matches!(v.state, State::Downloading | State::Pausing) {
                    v.down_rate = j.rate.per_sec(now);
                    v.eta_secs = (v.down_rate > 0).then(|| v.size.saturating_sub(v.done_bytes) / v.down_rate);
                }
                v
            })
            .collect()
    }

    /// The picture of a download's swarm so far (see `timeline_svg`).
    pub fn timeline_svg(&self, id: u64) -> Option<String> {
        let list = self.list.lock();
        let j = list.iter().find(|j| j.view.id == id && !j.timeline.is_empty())?;
        Some(crate::timeline_svg::render(&[(j.view.name.clone(), j.timeline.clone())]))
    }

    pub fn view(&self, id: u64) -> Option<JobView> {
        self.views().into_iter().find(|v| v.id == id)
    }

    /// The job `key` names: its number, its file's name, or its target.
    pub fn find(&self, key: &str) -> Option<u64> {
        let list = self.list.lock();
        let by_number = key.parse::<u64>().ok().and_then(|n| list.iter().find(|j| j.view.id == n));
        by_number
            .or_else(|| list.iter().find(|j| j.view.name == key || j.view.target == key))
            .map(|j| j.view.id)
    }

    /// Pauses a download in progress; its verified chunks stay.
    pub fn pause(&self, id: u64) -> Result<JobView, String> {
        let mut list = self.list.lock();
        let j = list.iter_mut().find(|j| j.view.id == id).ok_or_else(|| format!("no download {id}"))?;
        match j.view.state {
            State::Downloading => {
                j.stop.store(true, Ordering::SeqCst);
                j.view.state = State::Pausing;
                Ok(j.view.clone())
            }
            State::Pausing | State::Paused => Ok(j.view.clone()),
            other => Err(format!("download {id} is {}, not downloading", state_word(other))),
        }
    }

    /// Starts a paused (or failed) download again from the chunks it has.
    pub fn resume(&self, id: u64) -> Result<JobView, String> {
        let mut list = self.list.lock();
        let j = list.iter_mut().find(|j| j.view.id == id).ok_or_else(|| format!("no download {id}"))?;
        match j.view.state {
            State::Paused | State::Failed => {
                if let Some(t) = j.thread.take() {
                    let _ = t.join(); // it has ended: its state says so
                }
                j.stop = Arc::default();
                j.rate = Rate::default();
                j.timeline.clear(); // the picture is of one run: its seconds start with it
                (j.view.state, j.view.error) = (State::Downloading, None);
                let (target, stop) = (j.view.target.clone(), Arc::clone(&j.stop));
                j.thread = Some(self.spawn(id, target, stop));
                Ok(j.view.clone())
            }
            State::Downloading => Ok(j.view.clone()),
            other => Err(format!("download {id} is {}; it cannot be resumed", state_word(other))),
        }
    }

    /// Stops a download (if running) and takes it off the list; returns it as it ended.
    pub fn remove(&self, id: u64) -> Result<JobView, String> {
        let thread = {
            let mut list = self.list.lock();
            let j = list.iter_mut().find(|j| j.view.id == id).ok_or_else(|| format!("no download {id}"))?;
            j.stop.store(true, Ordering::SeqCst);
            j.thread.take()
        };
        if let Some(t) = thread {
            let _ = t.join(); // a stopped download ends within a second
        }
        let mut list = self.list.lock();
        let pos = list.iter().position(|j| j.view.id == id).ok_or_else(|| format!("no download {id}"))?;
        Ok(list.remove(pos).view)
    }

    /// Stops every download (the peer is leaving) and waits for them.
    pub fn stop_all(&self) {
        let threads: Vec<JoinHandle<()>> = self
            .list
            .lock()
            .iter_mut()
            .filter_map(|j| {
                j.stop.store(true, Ordering::SeqCst);
                j.thread.take()
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Downloading => "downloading",
        State::Pausing => "pausing",
        State::Paused => "paused",
        State::Done => "done",
        State::Failed => "failed",
    }
}

/// A target as a name until the file's own is known: a magnet's `dn`, a path's file name.
fn shown_target(target: &str) -> String {
    if let Ok(m) = crate::magnet::Magnet::parse(target) {
        return m.name.unwrap_or_else(|| m.id.to_string());
    }
    let last = target.rsplit('/').next().unwrap_or(target);
    crate::text::one_line(&last.chars().take(200).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::reassembler::Assembly;
    use crate::hash::ContentId;
    use std::time::Duration;

    /// A download that waits for its stop flag (or `done`), then says so.
    fn waiting_runner(done: Arc<AtomicBool>) -> Runner {
        Arc::new(move |target: &str, opts: &Options| {
            let progress = opts.progress.clone().unwrap();
            let p = |n: u32| Progress {
                name: format!("{target}.bin"),
                done_bytes: u64::from(n) * 100,
                total_bytes: 1000,
                chunks_done: n,
                chunks_total: 10,
                elapsed: Duration::ZERO,
                sources: 1,
                arrived: Some((n - 1, 0.5, "127.0.0.1:6000".parse().unwrap())),
            };
            progress(&p(3));
            loop {
                if opts.stopped() {
                    return Err(DownloadError::Stopped { name: target.into(), have: 3, total: 10 });
                }
                if done.load(Ordering::SeqCst) {
                    return Ok(Report {
                        name: format!("{target}.bin"),
                        content_id: ContentId::of(target.as_bytes()),
                        path: format!("/x/{target}.bin").into(),
                        size: 1000,
                        took: Duration::from_secs(1),
                        chunks: 10,
                        resumed: 3,
                        already_here: false,
                        assembly: Assembly::default(),
                    });
                }
                thread::sleep(Duration::from_millis(5));
            }
        })
    }

    fn settle(jobs: &Jobs, id: u64, state: State) -> JobView {
        for _ in 0..400 {
            let v = jobs.view(id).unwrap();
            if v.state == state {
                return v;
            }
            thread::sleep(Duration::from_millis(5));
        }
        panic!("never {state:?}: {:?}", jobs.view(id));
    }

    #[test]
    fn a_download_pauses_resumes_finishes_and_is_removed() {
        let done = Arc::new(AtomicBool::new(false));
        let jobs = Jobs::new(waiting_runner(Arc::clone(&done)), Options::default());
        let id = jobs.add("a").unwrap();
        assert_eq!(jobs.add("a").unwrap(), id, "asked twice, one download");
        for _ in 0..400 {
            if jobs.view(id).unwrap().chunks_done == 3 {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        let v = jobs.view(id).unwrap();
        assert_eq!((v.name.as_str(), v.chunks_done, v.size), ("a.bin", 3, 1000));
        let picture = jobs.timeline_svg(id).expect("a picture while it downloads");
        assert!(picture.contains("<svg") && picture.contains("6000"), "{picture}");
        assert_eq!(jobs.pause(id).unwrap().state, State::Pausing);
        settle(&jobs, id, State::Paused);
        assert!(jobs.pause(id).is_ok(), "pausing twice is no error");
        assert_eq!(jobs.resume(id).unwrap().state, State::Downloading);
        done.store(true, Ordering::SeqCst);
        let v = settle(&jobs, id, State::Done);
        assert_eq!(v.report.unwrap().resumed, 3);
        assert!(jobs.pause(id).is_err(), "a finished download cannot be paused");
        assert_eq!(jobs.find("a.bin"), Some(id));
        assert_eq!(jobs.find(&id.to_string()), Some(id));
        jobs.remove(id).unwrap();
        assert!(jobs.views().is_empty());
        assert!(jobs.remove(id).is_err());
    }

    #[test]
    fn stop_all_ends_every_download() {
        let jobs = Jobs::new(waiting_runner(Arc::default()), Options::default());
        let ids: Vec<u64> = ["a", "b", "c"].iter().map(|t| jobs.add(t).unwrap()).collect();
        jobs.stop_all();
        for id in ids {
            assert_eq!(jobs.view(id).unwrap().state, State::Paused);
        }
    }
}
