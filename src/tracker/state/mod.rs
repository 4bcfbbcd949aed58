//! The tracker's state and the handling of every request, without sockets.
//!
//! Every peer has a session: registering hands it a secret token, and every later request
//! for that peer must bring it, so another process on the same address cannot speak for it.
//! A peer's files are its own claims (content id, name, size): one peer's claim never
//! blocks another's, and a downloader verifies what it gets against the content id.
//!
//! Invariants (checked by [`TrackerState::check_invariants`] in the property tests):
//! - a claim exists in `claims` exactly while at least one peer holds it, and that peer's
//!   `files` maps the claim's content id to the claim;
//! - `by_id` and `by_name` index exactly the claims in `claims`;
//! - `downloads[id]` exists exactly while a peer downloads `id`, and names exactly the
//!   peers whose `downloading` set has `id`;
//! - `per_ip` counts exactly the peers, and the files they claim, of each address.

mod bridge;
mod caps;
mod console;
pub mod invariants;
mod view;

use caps::{CapExceeded, Limits, Wanted};

use super::status::{FileRow, PeerRow, Status, Totals, MAX_ROWS};
use super::swarms::{AnnounceAnswer, AnnounceQuery, Refused, ScrapeCounts, Swarms};
use crate::hash::ContentId;
use crate::names::{validate_name, MAX_NAME_LEN};
use crate::text::peer_label;
use crate::wire::tracker_msg::{FileInfo, FileListing, TrackerReply, TrackerRequest};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Most listings one `list_files` or `search` reply carries.
pub const MAX_LISTINGS: usize = 1000;
/// Most holders named per listing.
pub const MAX_HOLDERS_SHOWN: usize = 200;
/// Bytes of listings one reply may carry (well under the 1 MiB frame limit).
pub const MAX_REPLY_BYTES: usize = 768 * 1024;
/// The most bytes of a list reply that swarms only BitTorrent clients announced may take
/// (beside the [`MAX_REPLY_BYTES`] of p2p-share files), so junk info-hashes cannot crowd
/// out a reply.
pub const MAX_BT_LISTING_BYTES: usize = 64 * 1024;

/// Settings of the tracker's rules.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// The first port handed to a peer that brings none (then +1, +2, ...).
    pub first_peer_port: u16,
    /// How often peers announce; a peer silent for 3 intervals is dropped, and one that
    /// never announced after registering is dropped after one.
    pub announce_interval: Duration,
    /// Most files one peer may share.
    pub max_files_per_peer: usize,
    /// Most peers registered from one address.
    pub max_peers_per_ip: usize,
    /// Most files the peers of one address may share together.
    pub max_files_per_ip: usize,
    /// Most peers in all.
    pub max_peers: usize,
    /// Most distinct claims (content id, name, size) in all.
    pub max_claims: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            first_peer_port: 6000,
            announce_interval: Duration::from_secs(10),
            max_files_per_peer: 10_000,
            max_peers_per_ip: 64,
            max_files_per_ip: 20_000,
            max_peers: 50_000,
            max_claims: 200_000,
        }
    }
}

struct PeerEntry {
    token: String,
    last_seen: Instant,
    /// False until the first authorized request after registering.
    active: bool,
    files: HashMap<ContentId, FileInfo>,
    downloading: HashSet<ContentId>,
}

struct ClaimEntry {
    lower_name: String,
    holders: BTreeSet<SocketAddr>,
    /// Native downloads of it that completed here (a peer that was downloading it began
    /// to share it); BitTorrent ones are counted in its swarm.
    completed: u64,
}

/// Who downloads one content id, and what it is (the best claim seen while they do).
struct Downloads {
    info: Option<FileInfo>,
    peers: BTreeSet<SocketAddr>,
}

#[derive(Default, Debug, PartialEq, Eq)]
struct IpUse {
    peers: usize,
    files: usize,
}

/// What handling a request produced: the reply, and lines for the console.
#[derive(Debug)]
pub struct Outcome {
    pub reply: TrackerReply,
    pub notes: Vec<String>,
}

/// Why a request for a peer was not let through.
enum Denied {
    /// No such peer: it should register (again).
    Unknown,
    /// The peer exists, but the request did not bring its session token.
    WrongToken(SocketAddr),
}

impl From<Denied> for Outcome {
    fn from(d: Denied) -> Outcome {
        match d {
            Denied::Unknown => reply(TrackerReply::UnknownPeer),
            Denied::WrongToken(addr) => error(format!("wrong session token for peer {addr}")),
        }
    }
}

type TokenSource = Box<dyn FnMut() -> String + Send + Sync>;

/// Which peers have which files, and who downloads what.
pub struct TrackerState {
    cfg: TrackerConfig,
    peers: BTreeMap<SocketAddr, PeerEntry>,
    claims: HashMap<FileInfo, ClaimEntry>,
    by_id: HashMap<ContentId, BTreeSet<FileInfo>>,
    by_name: HashMap<String, BTreeSet<FileInfo>>,
    downloads: HashMap<ContentId, Downloads>,
    per_ip: HashMap<IpAddr, IpUse>,
    tokens: TokenSource,
    /// BitTorrent clients that announced over HTTP, by info-hash.
    bt: Swarms,
}

fn error(reason: impl Into<String>) -> Outcome {
    Outcome { reply: TrackerReply::Error { reason: reason.into() }, notes: Vec::new() }
}

fn reply(reply: TrackerReply) -> Outcome {
    Outcome { reply, notes: Vec::new() }
}

/// Compares tokens without stopping at the first difference.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The JSON size of a listing, roughly (names may double when escaped).
fn listing_bytes(l: &FileListing) -> usize {
    120 + 2 * l.info.name.len() + l.holders.iter().map(|h| h.to_string().len() + 3).sum::<usize>()
}

impl TrackerState {
    pub fn new(cfg: TrackerConfig) -> TrackerState {
        TrackerState {
            cfg,
            peers: BTreeMap::new(),
            claims: HashMap::new(),
            by_id: HashMap::new(),
            by_name: HashMap::new(),
            downloads: HashMap::new(),
            per_ip: HashMap::new(),
            tokens: Box::new(crate::random::token),
            bt: Swarms::default(),
        }
    }

    /// Uses `tokens` to make session tokens (for tests that need to know them).
    pub fn with_tokens(mut self, tokens: impl FnMut() -> String + Send + Sync + 'static) -> TrackerState {
        self.tokens = Box::new(tokens);
        self
    }

    /// Answers a read-only request (`list_files`, `search`).
    pub fn handle_read(&self, req: &TrackerRequest) -> TrackerReply {
        match req {
            TrackerRequest::ListFiles => {
                let mut all: Vec<&FileInfo> = self.claims.keys().collect();
                all.sort_by(|a, b| (&a.name, a.content_id, a.size).cmp(&(&b.name, b.content_id, b.size)));
                let mut reply = self.listings(all);
                if let TrackerReply::Files { files, total, .. } = &mut reply {
                    let swarms = self.bt_only_listings();
                    *total += self.bt.iter().filter(|(id, _)| !self.by_id.contains_key(*id)).count() as u32;
                    let room = MAX_LISTINGS.saturating_sub(files.len());
                    files.extend(swarms.into_iter().take(room));
                }
                reply
            }
            TrackerRequest::Search { name } => self.search(name),
            _ => TrackerReply::Error { reason: "not a read-only request".into() },
        }
    }

    /// Handles a request that changes the state. `from` is the address the connection
    /// came from; a peer is `from` plus the port it names, and must bring its token.
    pub fn handle_write(&mut self, req: &TrackerRequest, from: IpAddr, now: Instant) -> Outcome {
        let at = |port: &u16| SocketAddr::new(from, *port);
        match req {
            TrackerRequest::Register { port, token } => self.register(from, *port, token.as_deref(), now),
            TrackerRequest::Announce { port, token, full, added, removed } => {
                self.announce(at(port), token, full.as_deref(), added, removed, now)
            }
            TrackerRequest::Leave { port, token } => self.leave(at(port), token),
            TrackerRequest::StartDownload { port, token, content_id } => {
                self.start_download(at(port), token, *content_id, now)
            }
            TrackerRequest::StopDownload { port, token, content_id } => {
                self.stop_download(at(port), token, *content_id, now)
            }
            TrackerRequest::Leechers { port, token } => self.leechers(at(port), token, now),
            TrackerRequest::ListFiles | TrackerRequest::Search { .. } => reply(self.handle_read(req)),
        }
    }

    /// Drops peers silent for 3 announce intervals, and registrations that never made a
    /// request after one interval; returns console lines.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let limit = self.cfg.announce_interval * 3;
        let bt_gone = self.bt.expire(now, limit);
        let silent: Vec<(SocketAddr, bool)> = self
            .peers
            .iter()
            .filter_map(|(a, p)| {
                let quiet = now.saturating_duration_since(p.last_seen);
                let never = !p.active && quiet > self.cfg.announce_interval;
                (quiet > limit || never).then_some((*a, p.active))
            })
            .collect();
        let mut notes = Vec::new();
        for (addr, active) in &silent {
            self.remove_peer(*addr);
            if *active {
                notes.push(format!(
                    "Peer {} expired: silent for over {} s",
                    peer_label(addr),
                    limit.as_secs()
                ));
            }
        }
        let unused = silent.iter().filter(|(_, active)| !active).count();
        if unused > 0 {
            notes.push(format!("{unused} registration(s) never used expired"));
        }
        if bt_gone > 0 {
            notes
                .push(format!("{bt_gone} BitTorrent peer(s) expired: silent for over {} s", limit.as_secs()));
        }
        if !notes.is_empty() {
            notes.push(self.clients_line());
            self.compact();
        }
        notes
    }

    /// Gives back the memory of tables that shrank to a quarter of their size or less
    /// (after a burst of peers expired).
    fn compact(&mut self) {
        fn shrink<K: Eq + std::hash::Hash, V>(m: &mut HashMap<K, V>) {
            if m.capacity() > 64 && m.len() < m.capacity() / 4 {
                m.shrink_to_fit();
            }
        }
        shrink(&mut self.claims);
        shrink(&mut self.by_id);
        shrink(&mut self.by_name);
        shrink(&mut self.downloads);
        shrink(&mut self.per_ip);
    }

    /// `There are 2 clients now: ['6000', '6001']`, as the original printed (cut after a few).
    pub fn clients_line(&self) -> String {
        format!("There are {} clients now: [{}]", self.peers.len(), console::labels(self.peers.keys(), true))
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Distinct claims indexed.
    pub fn claim_count(&self) -> usize {
        self.claims.len()
    }

    /// Files the tracker knows: each claim, and each BitTorrent swarm no claim names (what
    /// the status page lists and `/metrics` counts).
    pub fn file_count(&self) -> usize {
        self.claims.len() + self.bt.iter().filter(|(id, _)| !self.by_id.contains_key(*id)).count()
    }

    fn register(&mut self, from: IpAddr, port: Option<u16>, token: Option<&str>, now: Instant) -> Outcome {
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
        if let Some(old) = self.peers.get(&addr) {
            if !token.is_some_and(|t| same_token(t, &old.token)) {
                let free_after = self.cfg.announce_interval.as_secs() * 3;
                return error(format!(
                    "{addr} belongs to a live peer session; it is free again after {free_after} s of silence"
                ));
            }
            // The same session registering again (after a restart of its server): clean slate.
            self.remove_peer(addr);
        }
        if self.peers.len() >= self.cfg.max_peers {
            return error(format!("the tracker is full: {} peers (limit)", self.cfg.max_peers));
        }
        let on_ip = self.per_ip.get(&from).map_or(0, |u| u.peers);
        if on_ip >= self.cfg.max_peers_per_ip {
            return error(format!("too many peers from {from} (limit {})", self.cfg.max_peers_per_ip));
        }
        let token = token.map(str::to_string).unwrap_or_else(|| (self.tokens)());
        let entry = PeerEntry {
            token: token.clone(),
            last_seen: now,
            active: false,
            files: HashMap::new(),
            downloading: HashSet::new(),
        };
        self.peers.insert(addr, entry);
        self.per_ip.entry(from).or_default().peers += 1;
        notes.push("Success! Peer is now connected on the tracker!".into());
        notes.push(self.clients_line());
        let interval = self.cfg.announce_interval.as_secs().max(1);
        Outcome {
            reply: TrackerReply::Registered {
                peer: addr,
                announce_interval_secs: interval,
                token,
                http_announce: None,
            },
            notes,
        }
    }

    fn free_port(&self, ip: IpAddr) -> Option<u16> {
        (self.cfg.first_peer_port..=u16::MAX).find(|p| !self.peers.contains_key(&SocketAddr::new(ip, *p)))
    }

    /// The peer at `addr` if `token` is its session's; marks it alive at `now`.
    fn authorize(&mut self, addr: SocketAddr, token: &str, now: Instant) -> Result<&mut PeerEntry, Denied> {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return Err(Denied::Unknown);
        };
        if !same_token(token, &peer.token) {
            return Err(Denied::WrongToken(addr));
        }
        peer.last_seen = now;
        peer.active = true;
        Ok(peer)
    }

    fn announce(
        &mut self,
        addr: SocketAddr,
        token: &str,
        full: Option<&[FileInfo]>,
        added: &[FileInfo],
        removed: &[ContentId],
        now: Instant,
    ) -> Outcome {
        if let Err(denied) = self.authorize(addr, token, now) {
            return denied.into();
        }
        if full.is_none() && added.is_empty() && removed.is_empty() {
            return reply(TrackerReply::Ok); // a heartbeat
        }
        let current = &self.peers[&addr].files.clone();
        let incoming = full.unwrap_or_default().iter().chain(added);
        for info in incoming.clone() {
            if let Err(e) = validate_name(&info.name) {
                return error(e.to_string());
            }
        }
        let mut next: HashMap<ContentId, FileInfo> =
            if full.is_some() { HashMap::new() } else { current.clone() };
        next.extend(incoming.map(|f| (f.content_id, f.clone())));
        for id in removed {
            next.remove(id);
        }
        if let Err(cap) = self.check_caps(addr, current, &next) {
            return error(cap.to_string());
        }
        let gone: Vec<FileInfo> = current
            .iter()
            .filter(|(id, info)| next.get(*id) != Some(*info))
            .map(|(_, i)| i.clone())
            .collect();
        let new: Vec<FileInfo> = next
            .iter()
            .filter(|(id, info)| current.get(*id) != Some(*info))
            .map(|(_, i)| i.clone())
            .collect();
        for info in gone {
            self.remove_holder(addr, &info);
        }
        let mut notes = Vec::new();
        for info in new {
            notes.push(format!("Peer {} shares '{}' ({} bytes)", peer_label(&addr), info.name, info.size));
            let finished = self.peers.get(&addr).is_some_and(|p| p.downloading.contains(&info.content_id));
            self.add_holder(addr, info.clone());
            if let (true, Some(claim)) = (finished, self.claims.get_mut(&info)) {
                claim.completed += 1;
            }
        }
        Outcome { reply: TrackerReply::Ok, notes }
    }

    /// Refuses a new file set that would pass a cap: per peer, per address, or in all.
    fn check_caps(
        &self,
        addr: SocketAddr,
        current: &HashMap<ContentId, FileInfo>,
        next: &HashMap<ContentId, FileInfo>,
    ) -> Result<(), CapExceeded> {
        let wanted = Wanted {
            ip: addr.ip(),
            peer_files: next.len(),
            ip_files: self.per_ip.get(&addr.ip()).map_or(0, |u| u.files) - current.len() + next.len(),
            new_claims: next.values().filter(|i| !self.claims.contains_key(*i)).count(),
            claims: self.claims.len(),
        };
        let limits = Limits {
            files_per_peer: self.cfg.max_files_per_peer,
            files_per_ip: self.cfg.max_files_per_ip,
            claims: self.cfg.max_claims,
        };
        caps::check(&wanted, &limits)
    }

    fn add_holder(&mut self, addr: SocketAddr, info: FileInfo) {
        let (by_id, by_name) = (&mut self.by_id, &mut self.by_name);
        let claim = self.claims.entry(info.clone()).or_insert_with(|| {
            by_id.entry(info.content_id).or_default().insert(info.clone());
            by_name.entry(info.name.clone()).or_default().insert(info.clone());
            ClaimEntry { lower_name: info.name.to_lowercase(), holders: BTreeSet::new(), completed: 0 }
        });
        claim.holders.insert(addr);
        if let Some(p) = self.peers.get_mut(&addr) {
            p.files.insert(info.content_id, info);
            self.per_ip.entry(addr.ip()).or_default().files += 1;
        }
    }

    fn remove_holder(&mut self, addr: SocketAddr, info: &FileInfo) {
        if let Some(p) = self.peers.get_mut(&addr) {
            if p.files.remove(&info.content_id).is_some() {
                if let Some(u) = self.per_ip.get_mut(&addr.ip()) {
                    u.files -= 1;
                }
            }
        }
        self.drop_holder(addr, info);
    }

    /// Takes `addr` off the claim's holders, and the claim off the index when none is left.
    fn drop_holder(&mut self, addr: SocketAddr, info: &FileInfo) {
        let Some(claim) = self.claims.get_mut(info) else { return };
        claim.holders.remove(&addr);
        if !claim.holders.is_empty() {
            return;
        }
        self.claims.remove(info);
        unindex(&mut self.by_id, &info.content_id, info);
        unindex(&mut self.by_name, &info.name, info);
    }

    fn leave(&mut self, addr: SocketAddr, token: &str) -> Outcome {
        match self.authorize(addr, token, Instant::now()) {
            Ok(_) => {}
            Err(Denied::Unknown) => return reply(TrackerReply::Ok),
            Err(denied) => return denied.into(),
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
        if let Some(u) = self.per_ip.get_mut(&addr.ip()) {
            u.peers -= 1;
            u.files -= peer.files.len();
            if u.peers == 0 {
                self.per_ip.remove(&addr.ip());
            }
        }
        for info in peer.files.values() {
            self.drop_holder(addr, info);
        }
        for id in &peer.downloading {
            self.drop_downloader(addr, *id);
        }
    }

    fn drop_downloader(&mut self, addr: SocketAddr, id: ContentId) -> bool {
        let Some(d) = self.downloads.get_mut(&id) else { return false };
        let was = d.peers.remove(&addr);
        if d.peers.is_empty() {
            self.downloads.remove(&id);
        }
        was
    }

    /// The claim of `id` that the most distinct hosts share (then the most holders).
    fn best_claim(&self, id: &ContentId) -> Option<&FileInfo> {
        self.by_id.get(id)?.iter().max_by_key(|info| {
            let c = &self.claims[*info];
            (hosts(&c.holders), c.holders.len(), std::cmp::Reverse(*info))
        })
    }

    fn start_download(&mut self, addr: SocketAddr, token: &str, id: ContentId, now: Instant) -> Outcome {
        if let Err(denied) = self.authorize(addr, token, now) {
            return denied.into();
        }
        let best = self.best_claim(&id).cloned();
        if best.is_none() && !self.downloads.contains_key(&id) && self.bt.get(&id).is_none() {
            return error(format!("no peer shares or downloads file {id}"));
        }
        let d = self.downloads.entry(id).or_insert(Downloads { info: None, peers: BTreeSet::new() });
        if best.is_some() {
            d.info = best;
        }
        let mut notes = Vec::new();
        if d.peers.insert(addr) {
            notes.push("Adding client to the downloading list...".to_string());
            notes.push("Add success!".to_string());
            notes.push(console::downloading_line(d.info.as_ref(), &id, d.peers.iter()));
        }
        if let Some(p) = self.peers.get_mut(&addr) {
            p.downloading.insert(id);
        }
        let d = &self.downloads[&id];
        let file = d.info.clone();
        // The best claim's holders first, then those of other claims of the same content id:
        // the downloader checks the manifest against the id, so a liar costs only a connection.
        let claims = self.by_id.get(&id).into_iter().flatten();
        let mut ordered: Vec<&FileInfo> = claims.collect();
        ordered.sort_by_key(|info| Some(*info) != file.as_ref());
        let mut holders: Vec<SocketAddr> = Vec::new();
        for info in ordered {
            for h in &self.claims[info].holders {
                if *h != addr && !holders.contains(h) && holders.len() < MAX_HOLDERS_SHOWN {
                    holders.push(*h);
                }
            }
        }
        let downloaders = d.peers.iter().filter(|a| **a != addr).take(MAX_HOLDERS_SHOWN).copied().collect();
        let bt_peers = self
            .bt
            .get(&id)
            .map_or_else(Vec::new, |s| s.peers.keys().take(MAX_HOLDERS_SHOWN).copied().collect());
        Outcome { reply: TrackerReply::Sources { file, holders, downloaders, bt_peers }, notes }
    }

    fn stop_download(&mut self, addr: SocketAddr, token: &str, id: ContentId, now: Instant) -> Outcome {
        match self.authorize(addr, token, now) {
            Ok(peer) => {
                peer.downloading.remove(&id);
            }
            Err(denied) => return denied.into(),
        }
        let mut notes = Vec::new();
        if self.downloads.get(&id).is_some_and(|d| d.peers.contains(&addr)) {
            notes.push("Removing client from the downloading list...".to_string());
            notes.push("Remove success!".to_string());
            self.drop_downloader(addr, id);
            let empty = Downloads { info: None, peers: BTreeSet::new() };
            let d = self.downloads.get(&id).unwrap_or(&empty);
            notes.push(console::downloading_line(d.info.as_ref(), &id, d.peers.iter()));
        }
        Outcome { reply: TrackerReply::Ok, notes }
    }

    fn search(&self, name: &str) -> TrackerReply {
        if name.len() > MAX_NAME_LEN {
            return TrackerReply::Error { reason: format!("search name longer than {MAX_NAME_LEN} bytes") };
        }
        if let Some(exact) = self.by_name.get(name) {
            return self.listings(exact.iter().collect());
        }
        let needle = name.to_lowercase();
        let mut found: Vec<&FileInfo> =
            self.claims.iter().filter(|(_, c)| c.lower_name.contains(&needle)).map(|(i, _)| i).collect();
        found.sort_by(|a, b| (&a.name, a.content_id, a.size).cmp(&(&b.name, b.content_id, b.size)));
        self.listings(found)
    }

    /// The listings of `infos`, as many as fit in one reply; `total` says how many matched.
    fn listings(&self, infos: Vec<&FileInfo>) -> TrackerReply {
        let total = infos.len() as u32;
        let mut bytes = 0;
        let mut files = Vec::new();
        for info in infos.into_iter().take(MAX_LISTINGS) {
            let c = &self.claims[info];
            let l = FileListing {
                info: info.clone(),
                holders: c.holders.iter().take(MAX_HOLDERS_SHOWN).copied().collect(),
                holder_count: c.holders.len() as u32,
                hosts: hosts(&c.holders) as u32,
            };
            bytes += listing_bytes(&l);
            if bytes > MAX_REPLY_BYTES {
                break;
            }
            files.push(l);
        }
        TrackerReply::Files { files, total, http_announce: None }
    }
}

/// Takes `info` out of `index[key]`, and the key out when its set is empty.
fn unindex<K: Eq + std::hash::Hash>(index: &mut HashMap<K, BTreeSet<FileInfo>>, key: &K, info: &FileInfo) {
    if let Some(set) = index.get_mut(key) {
        set.remove(info);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// Distinct addresses among `holders`.
fn hosts(holders: &BTreeSet<SocketAddr>) -> usize {
    holders.iter().map(SocketAddr::ip).collect::<HashSet<_>>().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::swarms::{Announce, Event};
    use std::net::Ipv4Addr;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn file(name: &str, seed: &str) -> FileInfo {
        FileInfo { name: name.into(), size: 10, content_id: ContentId::of(seed.as_bytes()) }
    }

    /// A peer as a test drives it: its address and session token.
    #[derive(Clone)]
    struct P(SocketAddr, String);

    fn register_at(state: &mut TrackerState, ip: IpAddr, port: Option<u16>, now: Instant) -> P {
        match state.handle_write(&TrackerRequest::Register { port, token: None }, ip, now).reply {
            TrackerReply::Registered { peer, token, .. } => P(peer, token),
            other => panic!("{other:?}"),
        }
    }

    fn registered(state: &mut TrackerState, now: Instant) -> P {
        register_at(state, LO, None, now)
    }

    fn share(state: &mut TrackerState, p: &P, files: Vec<FileInfo>, now: Instant) -> TrackerReply {
        let req = TrackerRequest::Announce {
            port: p.0.port(),
            token: p.1.clone(),
            full: None,
            added: files,
            removed: vec![],
        };
        let out = state.handle_write(&req, p.0.ip(), now).reply;
        state.check_invariants().unwrap();
        out
    }

    fn start(state: &mut TrackerState, p: &P, id: ContentId, now: Instant) -> Outcome {
        let req = TrackerRequest::StartDownload { port: p.0.port(), token: p.1.clone(), content_id: id };
        state.handle_write(&req, p.0.ip(), now)
    }

    fn names(reply: TrackerReply) -> Vec<(String, Vec<u16>)> {
        match reply {
            TrackerReply::Files { files, .. } => files
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
        assert_eq!(registered(&mut s, now).0.port(), 6000);
        assert_eq!(registered(&mut s, now).0.port(), 6001);
        assert_eq!(s.clients_line(), "There are 2 clients now: ['6000', '6001']");
        let own = s.handle_write(&TrackerRequest::Register { port: Some(7000), token: None }, LO, now);
        assert!(matches!(own.reply, TrackerReply::Registered { peer, .. } if peer.port() == 7000));
        assert!(own.notes.contains(&"There are 3 clients now: ['6000', '6001', '7000']".to_string()));
    }

    #[test]
    fn peers_on_other_hosts_are_known_by_their_address() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let ip: IpAddr = "10.9.0.3".parse().unwrap();
        let p = register_at(&mut s, ip, None, Instant::now());
        assert_eq!(p.0, "10.9.0.3:6000".parse().unwrap());
        assert_eq!(s.clients_line(), "There are 1 clients now: ['10.9.0.3:6000']");
    }

    #[test]
    fn only_the_session_token_speaks_for_a_peer() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        share(&mut s, &a, vec![file("real.pdf", "r")], now);
        let forged = P(a.0, "0".repeat(32));
        let wipe = TrackerRequest::Announce {
            port: a.0.port(),
            token: forged.1.clone(),
            full: Some(vec![]),
            added: vec![],
            removed: vec![],
        };
        let out = s.handle_write(&wipe, LO, now).reply;
        assert!(
            matches!(out, TrackerReply::Error { ref reason } if reason.contains("wrong session token")),
            "{out:?}"
        );
        assert!(matches!(share(&mut s, &forged, vec![file("fake", "f")], now), TrackerReply::Error { .. }));
        let leave = TrackerRequest::Leave { port: a.0.port(), token: String::new() };
        assert!(matches!(s.handle_write(&leave, LO, now).reply, TrackerReply::Error { .. }));
        let take_over = TrackerRequest::Register { port: Some(a.0.port()), token: None };
        let out = s.handle_write(&take_over, LO, now).reply;
        assert!(
            matches!(out, TrackerReply::Error { ref reason } if reason.contains("live peer session")),
            "{out:?}"
        );
        assert_eq!(names(s.handle_read(&TrackerRequest::ListFiles)), vec![("real.pdf".into(), vec![6000])]);
        // The real peer registering again with its token keeps its place.
        let again = TrackerRequest::Register { port: Some(a.0.port()), token: Some(a.1.clone()) };
        assert!(matches!(s.handle_write(&again, LO, now).reply, TrackerReply::Registered { .. }));
        s.check_invariants().unwrap();
    }

    #[test]
    fn index_list_and_search() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        let b = registered(&mut s, now);
        share(&mut s, &a, vec![file("test.pdf", "1"), file("Thesis.pdf", "2")], now);
        share(&mut s, &b, vec![file("test.pdf", "1")], now);
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
        share(&mut s, &a, vec![file("x.bin", "one")], now);
        share(&mut s, &b, vec![file("x.bin", "two")], now);
        let found = names(s.handle_read(&TrackerRequest::Search { name: "x.bin".into() }));
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, holders)| holders.len() == 1));
    }

    #[test]
    fn a_false_claim_blocks_no_one() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let evil_ip: IpAddr = "127.0.0.9".parse().unwrap();
        let evil = register_at(&mut s, evil_ip, None, now);
        let real = file("movie.mkv", "m");
        let lie = FileInfo { name: "evil.txt".into(), size: 1, content_id: real.content_id };
        assert_eq!(share(&mut s, &evil, vec![lie], now), TrackerReply::Ok);
        let (a, b) = (registered(&mut s, now), register_at(&mut s, "127.0.0.2".parse().unwrap(), None, now));
        assert_eq!(share(&mut s, &a, vec![real.clone(), file("other.txt", "o")], now), TrackerReply::Ok);
        assert_eq!(share(&mut s, &b, vec![real.clone()], now), TrackerReply::Ok);
        let listed = names(s.handle_read(&TrackerRequest::ListFiles));
        assert_eq!(listed.len(), 3, "{listed:?}");
        let c = registered(&mut s, now);
        match start(&mut s, &c, real.content_id, now).reply {
            TrackerReply::Sources { file, holders, .. } => {
                assert_eq!(file, Some(real), "the claim most hosts share");
                assert_eq!(holders.len(), 3, "every holder of the id, the liar last: {holders:?}");
                assert_eq!(holders[2], evil.0);
            }
            other => panic!("{other:?}"),
        }
        s.check_invariants().unwrap();
    }

    #[test]
    fn refuses_bad_names_and_too_many_files() {
        let cfg = TrackerConfig { max_files_per_peer: 2, max_files_per_ip: 3, ..TrackerConfig::default() };
        let mut s = TrackerState::new(cfg);
        let now = Instant::now();
        let a = registered(&mut s, now);
        let bad = share(&mut s, &a, vec![file("../etc/passwd", "1")], now);
        assert!(
            matches!(bad, TrackerReply::Error { ref reason } if reason.contains("invalid file name")),
            "{bad:?}"
        );
        let many = share(&mut s, &a, vec![file("a", "1"), file("b", "2"), file("c", "3")], now);
        assert!(
            matches!(many, TrackerReply::Error { ref reason } if reason.contains("too many files")),
            "{many:?}"
        );
        assert!(names(s.handle_read(&TrackerRequest::ListFiles)).is_empty());
        let b = registered(&mut s, now);
        assert_eq!(share(&mut s, &a, vec![file("a", "1"), file("b", "2")], now), TrackerReply::Ok);
        let per_ip = share(&mut s, &b, vec![file("c", "3"), file("d", "4")], now);
        assert!(
            matches!(per_ip, TrackerReply::Error { ref reason } if reason.contains("per address")),
            "{per_ip:?}"
        );
    }

    #[test]
    fn caps_peers_per_address_and_replies_say_what_they_leave_out() {
        let cfg = TrackerConfig { max_peers_per_ip: 2, ..TrackerConfig::default() };
        let mut s = TrackerState::new(cfg);
        let now = Instant::now();
        let a = registered(&mut s, now);
        registered(&mut s, now);
        let third = s.handle_write(&TrackerRequest::Register { port: None, token: None }, LO, now).reply;
        assert!(
            matches!(third, TrackerReply::Error { ref reason } if reason.contains("too many peers")),
            "{third:?}"
        );
        let many: Vec<FileInfo> = (0..1500).map(|i| file(&format!("f{i:04}"), &i.to_string())).collect();
        let cfg = TrackerConfig { max_files_per_peer: 2000, ..TrackerConfig::default() };
        let mut s2 = TrackerState::new(cfg);
        let b = registered(&mut s2, now);
        share(&mut s2, &b, many, now);
        match s2.handle_read(&TrackerRequest::ListFiles) {
            TrackerReply::Files { files, total, .. } => {
                assert_eq!((files.len(), total), (MAX_LISTINGS, 1500));
            }
            other => panic!("{other:?}"),
        }
        let _ = a;
    }

    #[test]
    fn unknown_peer_is_told_to_register() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let req = TrackerRequest::Announce {
            port: 6000,
            token: String::new(),
            full: None,
            added: vec![],
            removed: vec![],
        };
        assert_eq!(s.handle_write(&req, LO, Instant::now()).reply, TrackerReply::UnknownPeer);
    }

    #[test]
    fn downloading_list_is_per_file() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let (a, b, c) = (registered(&mut s, now), registered(&mut s, now), registered(&mut s, now));
        share(&mut s, &a, vec![file("f1", "1"), file("f2", "2")], now);
        let f1 = file("f1", "1").content_id;
        let f2 = file("f2", "2").content_id;
        let first = start(&mut s, &b, f1, now);
        assert!(first.notes.contains(&"Now downloading clients are [6001] for 'f1'".to_string()));
        start(&mut s, &c, f2, now);
        let again = start(&mut s, &c, f1, now);
        match again.reply {
            TrackerReply::Sources { holders, downloaders, .. } => {
                assert_eq!(holders, vec![a.0]);
                assert_eq!(downloaders, vec![b.0], "only f1's downloaders, without the asker");
            }
            other => panic!("{other:?}"),
        }
        let stop = TrackerRequest::StopDownload { port: b.0.port(), token: b.1.clone(), content_id: f1 };
        let stop = s.handle_write(&stop, LO, now);
        assert!(stop.notes.contains(&"Now downloading clients are [6002] for 'f1'".to_string()));
        s.check_invariants().unwrap();
    }

    #[test]
    fn silent_peers_and_unused_registrations_expire() {
        let cfg = TrackerConfig { announce_interval: Duration::from_secs(1), ..TrackerConfig::default() };
        let mut s = TrackerState::new(cfg);
        let t0 = Instant::now();
        let a = registered(&mut s, t0);
        let b = registered(&mut s, t0);
        let unused = registered(&mut s, t0);
        share(&mut s, &a, vec![file("f", "1")], t0);
        share(&mut s, &b, vec![], t0 + Duration::from_secs(2));
        let early = s.expire(t0 + Duration::from_millis(1100));
        assert_eq!(early[0], "1 registration(s) never used expired");
        assert_eq!(s.peer_count(), 2, "{:?} gone", unused.0);
        assert!(s.expire(t0 + Duration::from_millis(2900)).is_empty());
        let notes = s.expire(t0 + Duration::from_millis(3100));
        assert_eq!(notes[0], "Peer 6000 expired: silent for over 3 s");
        assert_eq!(s.peer_count(), 1);
        assert!(names(s.handle_read(&TrackerRequest::ListFiles)).is_empty());
        s.check_invariants().unwrap();
    }

    #[test]
    fn leave_removes_peer_and_its_files() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        share(&mut s, &a, vec![file("f", "1")], now);
        let out = s.handle_write(&TrackerRequest::Leave { port: a.0.port(), token: a.1.clone() }, LO, now);
        assert_eq!(out.notes[1], "Peer 6000 removed!");
        assert_eq!(s.clients_line(), "There are 0 clients now: []");
        assert!(names(s.handle_read(&TrackerRequest::ListFiles)).is_empty());
        s.check_invariants().unwrap();
    }

    #[test]
    fn console_lines_stay_short_with_many_peers() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        for _ in 0..50 {
            registered(&mut s, now);
        }
        let line = s.clients_line();
        assert!(line.starts_with("There are 50 clients now: ['6000', '6001'"), "{line}");
        assert!(line.ends_with("'6009', ... and 40 more]"), "{line}");
    }

    fn bt_announce(
        s: &mut TrackerState,
        id: ContentId,
        from: SocketAddr,
        left: u64,
        event: Event,
    ) -> AnnounceAnswer {
        let announce = Announce {
            info_hash: id,
            peer_id: [7; 20],
            port: from.port(),
            uploaded: 0,
            downloaded: 0,
            left,
            event,
        };
        let q = AnnounceQuery { announce, compact: true, numwant: 50 };
        s.http_announce(&q, from, Instant::now()).unwrap()
    }

    #[test]
    fn a_native_download_that_completes_is_counted_and_files_are_counted_once() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let (a, b) = (registered(&mut s, now), registered(&mut s, now));
        let f = file("shared.bin", "1");
        share(&mut s, &a, vec![f.clone()], now);
        start(&mut s, &b, f.content_id, now);
        share(&mut s, &b, vec![f.clone()], now); // its download finished: it shares the file
        let status = s.status(now);
        assert_eq!(status.files[0].completed, 1, "the native download counts");
        // The same file as a BitTorrent swarm too, and one swarm alone: three rows would be wrong.
        bt_announce(&mut s, f.content_id, SocketAddr::from(([127, 0, 0, 9], 51413)), 0, Event::Started);
        bt_announce(
            &mut s,
            ContentId::of(b"bt only"),
            SocketAddr::from(([127, 0, 0, 9], 51413)),
            0,
            Event::Started,
        );
        assert_eq!(s.status(now).totals.files, 2);
        assert_eq!(s.file_count(), 2, "/metrics says the same");
        share(&mut s, &a, vec![], now); // a seeder sharing it again is no download
        assert_eq!(s.status(now).files[0].completed, 1);
    }

    #[test]
    fn a_native_peer_announcing_over_http_too_is_counted_once() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let a = registered(&mut s, now);
        let f = file("shared.bin", "1");
        share(&mut s, &a, vec![f.clone()], now);
        // The same peer (address and port) announces the same file as a seeder over HTTP.
        let answer = bt_announce(&mut s, f.content_id, a.0, 0, Event::Started);
        assert_eq!((answer.complete, answer.incomplete), (1, 0));
        assert!(answer.peers.is_empty(), "it is not told about itself: {:?}", answer.peers);
        let other = SocketAddr::from(([127, 0, 0, 9], 51413));
        let answer = bt_announce(&mut s, f.content_id, other, 5, Event::Started);
        assert_eq!((answer.complete, answer.incomplete), (1, 1));
        assert_eq!(answer.peers, vec![a.0], "one entry for the peer known both ways");
        let scraped = s.scrape(&[f.content_id]);
        assert_eq!((scraped[0].1.complete, scraped[0].1.incomplete), (1, 1));
    }

    #[test]
    fn junk_swarms_cannot_crowd_the_list() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let swarms_before = |s: &TrackerState| s.bt_swarms().len();
        // 19 addresses announce 200 made-up info-hashes each as seeders.
        for ip in 1..20u8 {
            for k in 0..200u16 {
                let id = ContentId::of(format!("junk {ip} {k}").as_bytes());
                bt_announce(&mut s, id, SocketAddr::from(([10, 0, 0, ip], 1000 + k)), 0, Event::Started);
            }
        }
        // A real torrent: seeded once, and one download of it completed.
        let real = ContentId::of(b"a real torrent");
        bt_announce(&mut s, real, SocketAddr::from(([10, 0, 1, 1], 6881)), 0, Event::Started);
        bt_announce(&mut s, real, SocketAddr::from(([10, 0, 1, 2], 6881)), 0, Event::Completed);
        assert_eq!(swarms_before(&s), 19 * 200 + 1);
        let TrackerReply::Files { files, total, .. } = s.handle_read(&TrackerRequest::ListFiles) else {
            panic!("a file list")
        };
        assert_eq!(total as usize, 19 * 200 + 1, "the total counts them all");
        assert_eq!(files[0].info.content_id, real, "the swarm with a completed download comes first");
        let bytes: usize = files.iter().map(listing_bytes).sum();
        assert!(bytes <= MAX_BT_LISTING_BYTES, "{bytes} bytes of BitTorrent swarms");
        assert!(files.len() < 19 * 200, "{} swarms listed", files.len());
    }

    #[test]
    fn a_leecher_heard_on_loopback_is_named_only_to_seeders_on_this_host() {
        let mut s = TrackerState::new(TrackerConfig::default());
        let now = Instant::now();
        let f = file("x.bin", "1");
        let here = register_at(&mut s, LO, None, now);
        let elsewhere = register_at(&mut s, IpAddr::from([10, 0, 0, 5]), None, now);
        share(&mut s, &here, vec![f.clone()], now);
        share(&mut s, &elsewhere, vec![f.clone()], now);
        let proxied = SocketAddr::from(([127, 0, 0, 1], 51413));
        let remote = SocketAddr::from(([10, 0, 0, 7], 6881));
        bt_announce(&mut s, f.content_id, proxied, 10, Event::Started);
        bt_announce(&mut s, f.content_id, remote, 10, Event::Started);
        let leechers = |s: &mut TrackerState, p: &P| {
            let req = TrackerRequest::Leechers { port: p.0.port(), token: p.1.clone() };
            match s.handle_write(&req, p.0.ip(), now).reply {
                TrackerReply::Leechers { peers } => peers.into_iter().map(|(_, a)| a).collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(leechers(&mut s, &here), vec![remote, proxied]);
        assert_eq!(leechers(&mut s, &elsewhere), vec![remote], "it would dial its own loopback");
    }
}
