//! The tracker's state and the handling of every request, without sockets.
//!
//! Invariants:
//! - a file entry exists while at least one peer holds it or downloads it;
//! - `by_name` names exactly the entries in `files`;
//! - a peer's `files` / `downloading` sets mirror the `holders` / `downloaders` of entries.

use crate::hash::ContentId;
use crate::names::{validate_name, MAX_NAME_LEN};
use crate::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Most listings one `list_files` or `search` reply carries (keeps it under the frame limit).
pub const MAX_LISTINGS: usize = 1000;
/// Most holders named per listing.
pub const MAX_HOLDERS_SHOWN: usize = 200;

/// Settings of the tracker's rules.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// The first port handed to a peer that brings none (then +1, +2, ...).
    pub first_peer_port: u16,
    /// How often peers announce; a peer silent for 3 intervals is dropped.
    pub announce_interval: Duration,
    /// Most files one peer may share.
    pub max_files_per_peer: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            first_peer_port: 6000,
            announce_interval: Duration::from_secs(10),
            max_files_per_peer: 10_000,
        }
    }
}

struct PeerEntry {
    last_seen: Instant,
    files: HashSet<ContentId>,
    downloading: HashSet<ContentId>,
}

struct FileEntry {
    info: FileInfo,
    lower_name: String,
    holders: BTreeSet<SocketAddr>,
    downloaders: BTreeSet<SocketAddr>,
}

/// What handling a request produced: the reply, and lines for the console.
#[derive(Debug)]
pub struct Outcome {
    pub reply: TrackerReply,
    pub notes: Vec<String>,
}

/// Which peers have which files, and who downloads what.
pub struct TrackerState {
    cfg: TrackerConfig,
    peers: BTreeMap<SocketAddr, PeerEntry>,
    files: HashMap<ContentId, FileEntry>,
    by_name: HashMap<String, BTreeSet<ContentId>>,
}

/// How a peer is shown on the console: its port when it is on 127.0.0.1 (as the original
/// showed), else its full address.
pub fn peer_label(addr: &SocketAddr) -> String {
    if addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        addr.port().to_string()
    } else {
        addr.to_string()
    }
}

fn error(reason: impl Into<String>) -> Outcome {
    Outcome { reply: TrackerReply::Error { reason: reason.into() }, notes: Vec::new() }
}

fn reply(reply: TrackerReply) -> Outcome {
    Outcome { reply, notes: Vec::new() }
}

impl TrackerState {
    pub fn new(cfg: TrackerConfig) -> TrackerState {
        TrackerState { cfg, peers: BTreeMap::new(), files: HashMap::new(), by_name: HashMap::new() }
    }

    /// Answers a read-only request (`list_files`, `search`).
    pub fn handle_read(&self, req: &TrackerRequest) -> TrackerReply {
        match req {
            TrackerRequest::ListFiles => {
                let mut all: Vec<&FileEntry> = self.files.values().collect();
                all.sort_by(|a, b| (&a.info.name, a.info.content_id).cmp(&(&b.info.name, b.info.content_id)));
                self.listings(all)
            }
            TrackerRequest::Search { name } => self.search(name),
            _ => TrackerReply::Error { reason: "not a read-only request".into() },
        }
    }

    /// Handles a request that changes the state. `from` is the address the connection
    /// came from; a peer is `from` plus the port it names.
    pub fn handle_write(&mut self, req: &TrackerRequest, from: IpAddr, now: Instant) -> Outcome {
        match req {
            TrackerRequest::Register { port } => self.register(from, *port, now),
            TrackerRequest::Announce { port, full, added, removed } => {
                self.announce(SocketAddr::new(from, *port), full.as_deref(), added, removed, now)
            }
            TrackerRequest::Leave { port } => self.leave(SocketAddr::new(from, *port)),
            TrackerRequest::StartDownload { port, content_id } => {
                self.start_download(SocketAddr::new(from, *port), *content_id, now)
            }
            TrackerRequest::StopDownload { port, content_id } => {
                self.stop_download(SocketAddr::new(from, *port), *content_id)
            }
            TrackerRequest::ListFiles | TrackerRequest::Search { .. } => reply(self.handle_read(req)),
        }
    }

    /// Drops peers silent for 3 announce intervals; returns console lines.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let limit = self.cfg.announce_interval * 3;
        let silent: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) > limit)
            .map(|(a, _)| *a)
            .collect();
        let mut notes = Vec::new();
        for addr in silent {
            self.remove_peer(addr);
            notes.push(format!("Peer {} expired: silent for over {} s", peer_label(&addr), limit.as_secs()));
        }
        if !notes.is_empty() {
            notes.push(self.clients_line());
        }
        notes
    }

    /// `There are 2 clients now: ['6000', '6001']`, as the original printed.
    pub fn clients_line(&self) -> String {
        let labels: Vec<String> = self.peers.keys().map(|a| format!("'{}'", peer_label(a))).collect();
        format!("There are {} clients now: [{}]", self.peers.len(), labels.join(", "))
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn register(&mut self, from: IpAddr, port: Option<u16>, now: Instant) -> Outcome {
        let port = match port {
            Some(0) => return error("port 0 is not a listening port"),
            Some(p) => p,
            None => match self.free_port(from) {
                Some(p) => p,
                None => return error("no free port left to assign"),
            },
        };
        let addr = SocketAddr::new(from, port);
        let mut notes = vec!["Registering peer...".to_string()];
        if self.peers.contains_key(&addr) {
            // Registering again (e.g. after a restart of the peer): start from a clean slate.
            self.remove_peer(addr);
        }
        let entry = PeerEntry { last_seen: now, files: HashSet::new(), downloading: HashSet::new() };
        self.peers.insert(addr, entry);
        notes.push("Success! Peer is now connected on the tracker!".into());
        notes.push(self.clients_line());
        let interval = self.cfg.announce_interval.as_secs().max(1);
        Outcome { reply: TrackerReply::Registered { peer: addr, announce_interval_secs: interval }, notes }
    }

    fn free_port(&self, ip: IpAddr) -> Option<u16> {
        (self.cfg.first_peer_port..=u16::MAX).find(|p| !self.peers.contains_key(&SocketAddr::new(ip, *p)))
    }

    fn announce(
        &mut self,
        addr: SocketAddr,
        full: Option<&[FileInfo]>,
        added: &[FileInfo],
        removed: &[ContentId],
        now: Instant,
    ) -> Outcome {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return reply(TrackerReply::UnknownPeer);
        };
        peer.last_seen = now;
        let incoming = full.unwrap_or_default().iter().chain(added);
        for info in incoming.clone() {
            if let Err(reason) = self.check_file(info) {
                return error(reason);
            }
        }
        let current = &self.peers[&addr].files;
        let mut next: HashSet<ContentId> = if full.is_some() { HashSet::new() } else { current.clone() };
        next.extend(incoming.clone().map(|f| f.content_id));
        for id in removed {
            next.remove(id);
        }
        if next.len() > self.cfg.max_files_per_peer {
            return error(format!("too many files: {} (limit {})", next.len(), self.cfg.max_files_per_peer));
        }
        let gone: Vec<ContentId> = current.difference(&next).copied().collect();
        let mut notes = Vec::new();
        for id in gone {
            self.remove_holder(addr, id);
        }
        for info in incoming {
            if next.contains(&info.content_id) && self.add_holder(addr, info) {
                notes.push(format!(
                    "Peer {} shares '{}' ({} bytes)",
                    peer_label(&addr),
                    info.name,
                    info.size
                ));
            }
        }
        Outcome { reply: TrackerReply::Ok, notes }
    }

    /// A file may be indexed if its name is valid and it agrees with an existing entry.
    fn check_file(&self, info: &FileInfo) -> Result<(), String> {
        validate_name(&info.name).map_err(|e| e.to_string())?;
        match self.files.get(&info.content_id) {
            Some(f) if f.info != *info => Err(format!(
                "file {} announced as '{}' ({} bytes) but indexed as '{}' ({} bytes)",
                info.content_id.short(),
                info.name,
                info.size,
                f.info.name,
                f.info.size
            )),
            _ => Ok(()),
        }
    }

    /// Returns true when `addr` did not hold the file before.
    fn add_holder(&mut self, addr: SocketAddr, info: &FileInfo) -> bool {
        let entry = self.entry(info);
        let new = entry.holders.insert(addr);
        if let Some(p) = self.peers.get_mut(&addr) {
            p.files.insert(info.content_id);
        }
        new
    }

    fn entry(&mut self, info: &FileInfo) -> &mut FileEntry {
        let by_name = &mut self.by_name;
        self.files.entry(info.content_id).or_insert_with(|| {
            by_name.entry(info.name.clone()).or_default().insert(info.content_id);
            FileEntry {
                info: info.clone(),
                lower_name: info.name.to_lowercase(),
                holders: BTreeSet::new(),
                downloaders: BTreeSet::new(),
            }
        })
    }

    fn remove_holder(&mut self, addr: SocketAddr, id: ContentId) {
        if let Some(p) = self.peers.get_mut(&addr) {
            p.files.remove(&id);
        }
        if let Some(f) = self.files.get_mut(&id) {
            f.holders.remove(&addr);
        }
        self.drop_if_unused(id);
    }

    fn drop_if_unused(&mut self, id: ContentId) {
        let Some(f) = self.files.get(&id) else { return };
        if !f.holders.is_empty() || !f.downloaders.is_empty() {
            return;
        }
        let name = f.info.name.clone();
        self.files.remove(&id);
        if let Some(ids) = self.by_name.get_mut(&name) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_name.remove(&name);
            }
        }
    }

    fn leave(&mut self, addr: SocketAddr) -> Outcome {
        if !self.peers.contains_key(&addr) {
            return reply(TrackerReply::Ok);
        }
        self.remove_peer(addr);
        let notes = vec![
            "Removing peer...".to_string(),
            format!("Peer {} removed!", peer_label(&addr)),
            self.clients_line(),
        ];
        Outcome { reply: TrackerReply::Ok, notes }
    }

    fn remove_peer(&mut self, addr: SocketAddr) {
        let Some(peer) = self.peers.remove(&addr) else { return };
        for id in peer.files.iter().chain(&peer.downloading) {
            if let Some(f) = self.files.get_mut(id) {
                f.holders.remove(&addr);
                f.downloaders.remove(&addr);
            }
            self.drop_if_unused(*id);
        }
    }

    fn start_download(&mut self, addr: SocketAddr, id: ContentId, now: Instant) -> Outcome {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return reply(TrackerReply::UnknownPeer);
        };
        peer.last_seen = now;
        let Some(file) = self.files.get_mut(&id) else {
            return error(format!("no peer shares or downloads file {id}"));
        };
        let mut notes = Vec::new();
        if file.downloaders.insert(addr) {
            notes.push("Adding client to the downloading list...".to_string());
            notes.push("Add success!".to_string());
            notes.push(downloading_line(file));
        }
        if let Some(p) = self.peers.get_mut(&addr) {
            p.downloading.insert(id);
        }
        let file = &self.files[&id];
        let others = |set: &BTreeSet<SocketAddr>| -> Vec<SocketAddr> {
            set.iter().filter(|a| **a != addr).take(MAX_HOLDERS_SHOWN).copied().collect()
        };
        let sources = TrackerReply::Sources {
            file: Some(file.info.clone()),
            holders: others(&file.holders),
            downloaders: others(&file.downloaders),
        };
        Outcome { reply: sources, notes }
    }

    fn stop_download(&mut self, addr: SocketAddr, id: ContentId) -> Outcome {
        if let Some(p) = self.peers.get_mut(&addr) {
            p.downloading.remove(&id);
        }
        let Some(file) = self.files.get_mut(&id) else { return reply(TrackerReply::Ok) };
        let mut notes = Vec::new();
        if file.downloaders.remove(&addr) {
            notes.push("Removing client from the downloading list...".to_string());
            notes.push("Remove success!".to_string());
            notes.push(downloading_line(file));
        }
        self.drop_if_unused(id);
        Outcome { reply: TrackerReply::Ok, notes }
    }

    fn search(&self, name: &str) -> TrackerReply {
        if name.len() > MAX_NAME_LEN {
            return TrackerReply::Error { reason: format!("search name longer than {MAX_NAME_LEN} bytes") };
        }
        if let Some(ids) = self.by_name.get(name) {
            let exact: Vec<&FileEntry> = ids.iter().filter_map(|id| self.files.get(id)).collect();
            if exact.iter().any(|f| !f.holders.is_empty()) {
                return self.listings(exact);
            }
        }
        let needle = name.to_lowercase();
        let mut found: Vec<&FileEntry> =
            self.files.values().filter(|f| f.lower_name.contains(&needle)).collect();
        found.sort_by(|a, b| (&a.info.name, a.info.content_id).cmp(&(&b.info.name, b.info.content_id)));
        self.listings(found)
    }

    fn listings(&self, entries: Vec<&FileEntry>) -> TrackerReply {
        let files = entries
            .into_iter()
            .filter(|f| !f.holders.is_empty())
            .take(MAX_LISTINGS)
            .map(|f| FileListing {
                info: f.info.clone(),
                holders: f.holders.iter().take(MAX_HOLDERS_SHOWN).copied().collect(),
            })
            .collect();
        TrackerReply::Files { files }
    }
}

fn downloading_line(file: &FileEntry) -> String {
    let labels: Vec<String> = file.downloaders.iter().map(peer_label).collect();
    format!("Now downloading clients are [{}] for '{}'", labels.join(", "), file.info.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn file(name: &str, seed: &str) -> FileInfo {
        FileInfo { name: name.into(), size: 10, content_id: ContentId::of(seed.as_bytes()) }
    }

    fn registered(state: &mut TrackerState, now: Instant) -> SocketAddr {
        match state.handle_write(&TrackerRequest::Register { port: None }, LO, now).reply {
            TrackerReply::Registered { peer, .. } => peer,
            other => panic!("{other:?}"),
        }
    }

    fn share(state: &mut TrackerState, peer: SocketAddr, files: Vec<FileInfo>, now: Instant) -> TrackerReply {
        let req = TrackerRequest::Announce { port: peer.port(), full: None, added: files, removed: vec![] };
        state.handle_write(&req, peer.ip(), now).reply
    }

    fn names(reply: TrackerReply) -> Vec<(String, Vec<u16>)> {
        match reply {
            TrackerReply::Files { files } => files
                .into_iter()
                .map(|f| (f.info.name, f.holders.iter().map(|h| h.port()).collect()))
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn assigns_ports_from_first_and_prints_clients() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        assert_eq!(registered(&mut s, now).port(), 6000);
        assert_eq!(registered(&mut s, now).port(), 6001);
        assert_eq!(s.clients_line(), "There are 2 clients now: ['6000', '6001']");
        let own = s.handle_write(&TrackerRequest::Register { port: Some(7000) }, LO, now);
        assert!(matches!(own.reply, TrackerReply::Registered { peer, .. } if peer.port() == 7000));
        assert!(own.notes.contains(&"There are 3 clients now: ['6000', '6001', '7000']".to_string()));
    }

    #[test]
    fn peers_on_other_hosts_are_known_by_their_address() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let ip: IpAddr = "10.9.0.3".parse().unwrap();
        let out = s.handle_write(&TrackerRequest::Register { port: None }, ip, Instant::now());
        assert!(
            matches!(out.reply, TrackerReply::Registered { peer, .. } if peer == "10.9.0.3:6000".parse().unwrap())
        );
        assert_eq!(s.clients_line(), "There are 1 clients now: ['10.9.0.3:6000']");
    }

    #[test]
    fn index_list_and_search() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        let b = registered(&mut s, now);
        share(&mut s, a, vec![file("test.pdf", "1"), file("Thesis.pdf", "2")], now);
        share(&mut s, b, vec![file("test.pdf", "1")], now);
        let all = names(s.handle_read(&TrackerRequest::ListFiles));
        assert_eq!(all, vec![("Thesis.pdf".into(), vec![6000]), ("test.pdf".into(), vec![6000, 6001])]);
        let exact = names(s.handle_read(&TrackerRequest::Search { name: "test.pdf".into() }));
        assert_eq!(exact, vec![("test.pdf".into(), vec![6000, 6001])]);
        let sub = names(s.handle_read(&TrackerRequest::Search { name: "PDF".into() }));
        assert_eq!(sub.len(), 2);
        assert!(names(s.handle_read(&TrackerRequest::Search { name: "nope".into() })).is_empty());
    }

    #[test]
    fn same_name_different_content_are_two_entries() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        let b = registered(&mut s, now);
        share(&mut s, a, vec![file("x.bin", "one")], now);
        share(&mut s, b, vec![file("x.bin", "two")], now);
        let found = names(s.handle_read(&TrackerRequest::Search { name: "x.bin".into() }));
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, holders)| holders.len() == 1));
    }

    #[test]
    fn removed_and_full_announce_update_index() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        share(&mut s, a, vec![file("a", "1"), file("b", "2")], now);
        let rm = TrackerRequest::Announce {
            port: a.port(),
            full: None,
            added: vec![],
            removed: vec![file("a", "1").content_id],
        };
        assert_eq!(s.handle_write(&rm, LO, now).reply, TrackerReply::Ok);
        assert_eq!(names(s.handle_read(&TrackerRequest::ListFiles)), vec![("b".into(), vec![6000])]);
        let full = TrackerRequest::Announce {
            port: a.port(),
            full: Some(vec![file("c", "3")]),
            added: vec![],
            removed: vec![],
        };
        s.handle_write(&full, LO, now);
        assert_eq!(names(s.handle_read(&TrackerRequest::ListFiles)), vec![("c".into(), vec![6000])]);
    }

    #[test]
    fn refuses_bad_names_and_too_many_files() {
        let cfg = TrackerConfig { max_files_per_peer: 2, ..TrackerConfig::default() };
        let mut s = TrackerState::new(cfg);
        let now = Instant::now();
        let a = registered(&mut s, now);
        let bad = share(&mut s, a, vec![file("../etc/passwd", "1")], now);
        assert!(
            matches!(bad, TrackerReply::Error { ref reason } if reason.contains("invalid file name")),
            "{bad:?}"
        );
        let many = share(&mut s, a, vec![file("a", "1"), file("b", "2"), file("c", "3")], now);
        assert!(
            matches!(many, TrackerReply::Error { ref reason } if reason.contains("too many files")),
            "{many:?}"
        );
        assert!(names(s.handle_read(&TrackerRequest::ListFiles)).is_empty());
    }

    #[test]
    fn unknown_peer_is_told_to_register() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let req = TrackerRequest::Announce { port: 6000, full: None, added: vec![], removed: vec![] };
        assert_eq!(s.handle_write(&req, LO, Instant::now()).reply, TrackerReply::UnknownPeer);
    }

    #[test]
    fn downloading_list_is_per_file() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let (a, b, c) = (registered(&mut s, now), registered(&mut s, now), registered(&mut s, now));
        share(&mut s, a, vec![file("f1", "1"), file("f2", "2")], now);
        let f1 = file("f1", "1").content_id;
        let f2 = file("f2", "2").content_id;
        let start = |s: &mut TrackerState, p: SocketAddr, id| {
            s.handle_write(&TrackerRequest::StartDownload { port: p.port(), content_id: id }, LO, now)
        };
        let first = start(&mut s, b, f1);
        assert!(first.notes.contains(&"Now downloading clients are [6001] for 'f1'".to_string()));
        start(&mut s, c, f2);
        let again = start(&mut s, c, f1);
        match again.reply {
            TrackerReply::Sources { holders, downloaders, .. } => {
                assert_eq!(holders, vec![a]);
                assert_eq!(downloaders, vec![b], "only f1's downloaders, without the asker");
            }
            other => panic!("{other:?}"),
        }
        let stop = s.handle_write(&TrackerRequest::StopDownload { port: b.port(), content_id: f1 }, LO, now);
        assert!(stop.notes.contains(&"Now downloading clients are [6002] for 'f1'".to_string()));
    }

    #[test]
    fn silent_peers_expire_after_three_intervals() {
        let cfg = TrackerConfig { announce_interval: Duration::from_secs(1), ..TrackerConfig::default() };
        let mut s = TrackerState::new(cfg);
        let t0 = Instant::now();
        let a = registered(&mut s, t0);
        let b = registered(&mut s, t0);
        share(&mut s, a, vec![file("f", "1")], t0);
        share(&mut s, b, vec![], t0 + Duration::from_secs(2));
        assert!(s.expire(t0 + Duration::from_millis(2900)).is_empty());
        let notes = s.expire(t0 + Duration::from_millis(3100));
        assert_eq!(notes[0], "Peer 6000 expired: silent for over 3 s");
        assert_eq!(s.peer_count(), 1);
        assert!(names(s.handle_read(&TrackerRequest::ListFiles)).is_empty());
    }

    #[test]
    fn leave_removes_peer_and_its_files() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        share(&mut s, a, vec![file("f", "1")], now);
        let out = s.handle_write(&TrackerRequest::Leave { port: a.port() }, LO, now);
        assert_eq!(out.notes[1], "Peer 6000 removed!");
        assert_eq!(s.clients_line(), "There are 0 clients now: []");
        assert!(names(s.handle_read(&TrackerRequest::ListFiles)).is_empty());
    }
}
