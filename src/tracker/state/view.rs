//! The status view of the tracker's state: what the HTTP status page and `/api/status`
//! show (files, peers and totals, each list cut at `MAX_ROWS`).

use super::*;

impl TrackerState {
    /// Everything the status page shows.
    pub fn status(&self, now: Instant) -> Status {
        let mut files: Vec<FileRow> = Vec::new();
        let mut named: HashSet<ContentId> = HashSet::new();
        let mut infos: Vec<&FileInfo> = self.claims.keys().collect();
        infos.sort_by(|a, b| (&a.name, a.content_id).cmp(&(&b.name, b.content_id)));
        for info in &infos {
            named.insert(info.content_id);
            if files.len() >= MAX_ROWS {
                continue;
            }
            let swarm = self.bt.get(&info.content_id);
            let (_, downloaders) = self.seeders_and_leechers(&info.content_id);
            let bt_seeders = swarm.into_iter().flat_map(|s| s.peers.iter()).filter(|(_, p)| p.left == 0);
            let claim = &self.claims[*info];
            let holders = &claim.holders;
            files.push(FileRow {
                name: info.name.clone(),
                info_hash: info.content_id.to_hex(),
                size: info.size,
                holders: holders.len() + bt_seeders.filter(|(a, _)| !holders.contains(a)).count(),
                downloaders,
                completed: swarm.map_or(0, |s| s.completed) + claim.completed,
            });
        }
        let mut bt_only: Vec<(&ContentId, &crate::tracker::swarms::BtSwarm)> =
            self.bt.iter().filter(|(id, _)| !named.contains(*id)).collect();
        bt_only.sort_by_key(|(id, _)| **id);
        let swarm_rows = bt_only.iter().map(|(id, s)| FileRow {
            name: String::new(),
            info_hash: id.to_hex(),
            size: 0,
            holders: s.seeders(),
            downloaders: s.leechers(),
            completed: s.completed,
        });
        files.extend(swarm_rows.take(MAX_ROWS.saturating_sub(files.len())));
        let secs = |t: Instant| now.saturating_duration_since(t).as_secs();
        let native = self.peers.iter().map(|(a, p)| PeerRow {
            address: a.to_string(),
            kind: "native",
            files: p.files.len(),
            last_seen_secs: secs(p.last_seen),
        });
        let mut bt: BTreeMap<SocketAddr, (usize, Instant)> = BTreeMap::new();
        for (_, s) in self.bt.iter() {
            for (a, p) in &s.peers {
                let e = bt.entry(*a).or_insert((0, p.last_seen));
                e.0 += 1;
                e.1 = e.1.max(p.last_seen);
            }
        }
        let bittorrent = bt.iter().map(|(a, (n, t))| PeerRow {
            address: a.to_string(),
            kind: "bittorrent",
            files: *n,
            last_seen_secs: secs(*t),
        });
        let peers = native.chain(bittorrent).take(MAX_ROWS).collect();
        let totals = Totals {
            native_peers: self.peers.len(),
            bittorrent_peers: bt.len(),
            files: self.file_count(),
            swarms: self.bt.len(),
        };
        Status { totals, files, peers }
    }
}
