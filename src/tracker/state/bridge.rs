//! The BitTorrent bridge of the tracker's state: HTTP announces and scrapes answered from
//! the BitTorrent swarms and the p2p-share peers of the same content id together (each
//! address counted once), the leechers a seeder dials, and BitTorrent-only swarms in list
//! replies.

use super::*;

impl TrackerState {
    /// An HTTP announce from a BitTorrent client at `addr` (its address, announced port).
    /// The answer names the other BitTorrent clients of the swarm and every p2p-share peer
    /// holding or downloading the same content id (their port speaks BitTorrent too).
    pub fn http_announce(
        &mut self,
        q: &AnnounceQuery,
        addr: SocketAddr,
        now: Instant,
    ) -> Result<AnnounceAnswer, Refused> {
        let id = q.announce.info_hash;
        self.bt.announce(&q.announce, addr, now)?;
        let native_holders = self.native_holders(&id);
        let native_downloaders: Vec<SocketAddr> =
            self.downloads.get(&id).map_or_else(Vec::new, |d| d.peers.iter().copied().collect());
        let bt_peers = self.bt.get(&id).into_iter().flat_map(|s| s.peers.keys().copied());
        let mut named = HashSet::new();
        let peers: Vec<SocketAddr> = native_holders
            .iter()
            .copied()
            .chain(native_downloaders.iter().copied())
            .chain(bt_peers)
            .filter(|p| *p != addr && named.insert(*p))
            .take(q.numwant)
            .collect();
        let (complete, incomplete) = self.seeders_and_leechers(&id);
        Ok(AnnounceAnswer {
            interval_secs: self.cfg.announce_interval.as_secs().max(1),
            complete,
            incomplete,
            peers,
        })
    }

    /// The p2p-share peers holding `id` (under any name).
    pub(super) fn native_holders(&self, id: &ContentId) -> BTreeSet<SocketAddr> {
        let infos = self.by_id.get(id).into_iter().flatten();
        infos.flat_map(|info| self.claims[info].holders.iter().copied()).collect()
    }

    /// Seeders and leechers of `id`, p2p-share peers and BitTorrent clients together, each
    /// address counted once: a p2p-share peer that also announces over HTTP is one peer.
    pub(super) fn seeders_and_leechers(&self, id: &ContentId) -> (usize, usize) {
        let mut seeders: HashSet<SocketAddr> = self.native_holders(id).into_iter().collect();
        let mut leechers: HashSet<SocketAddr> =
            self.downloads.get(id).map_or_else(HashSet::new, |d| d.peers.iter().copied().collect());
        for (addr, p) in self.bt.get(id).into_iter().flat_map(|s| s.peers.iter()) {
            if p.left == 0 {
                seeders.insert(*addr);
            } else {
                leechers.insert(*addr);
            }
        }
        let leechers = leechers.iter().filter(|a| !seeders.contains(a)).count();
        (seeders.len(), leechers)
    }

    /// The BitTorrent clients still downloading files `addr` holds (at most
    /// [`MAX_HOLDERS_SHOWN`]).
    pub(super) fn leechers(&mut self, addr: SocketAddr, token: &str, now: Instant) -> Outcome {
        let ids: Vec<ContentId> = match self.authorize(addr, token, now) {
            Ok(peer) => peer.files.keys().copied().collect(),
            Err(denied) => return denied.into(),
        };
        // A leecher heard on loopback (on this host, or through a reverse proxy here) is no
        // use to a seeder on another host, which would dial its own loopback.
        let reachable = |a: &SocketAddr| !a.ip().is_loopback() || addr.ip().is_loopback();
        let peers = ids
            .iter()
            .filter_map(|id| self.bt.get(id).map(|s| (id, s)))
            .flat_map(|(id, s)| s.peers.iter().filter(|(_, p)| p.left > 0).map(move |(a, _)| (*id, *a)))
            .filter(|(_, a)| reachable(a))
            .take(MAX_HOLDERS_SHOWN)
            .collect();
        reply(TrackerReply::Leechers { peers })
    }

    /// Seeders, completed downloads and leechers of each info-hash asked about.
    pub fn scrape(&self, ids: &[ContentId]) -> Vec<(ContentId, ScrapeCounts)> {
        ids.iter()
            .map(|id| {
                let (complete, incomplete) = self.seeders_and_leechers(id);
                let downloaded = self.bt.get(id).map_or(0, |s| s.completed);
                (*id, ScrapeCounts { complete, downloaded, incomplete })
            })
            .collect()
    }

    /// Swarms only BitTorrent clients announced (no p2p-share peer named the file): listed
    /// under their info-hash, with their seeders as holders. Swarms a p2p-share peer is
    /// downloading or that saw a completed download come first, then those with more
    /// seeders: anyone can announce junk info-hashes, and they go last. At most
    /// [`MAX_BT_LISTING_BYTES`] of them.
    pub(super) fn bt_only_listings(&self) -> Vec<FileListing> {
        let mut swarms: Vec<(&ContentId, &crate::tracker::swarms::BtSwarm)> =
            self.bt.iter().filter(|(id, _)| !self.by_id.contains_key(*id)).collect();
        let rank = |id: &ContentId, s: &crate::tracker::swarms::BtSwarm| {
            let vouched = self.downloads.contains_key(id) || s.completed > 0;
            (!vouched, std::cmp::Reverse(s.seeders()), *id)
        };
        swarms.sort_by_cached_key(|(id, s)| rank(id, s));
        let mut bytes = 0;
        let mut out = Vec::new();
        for (id, s) in swarms {
            let holders: BTreeSet<SocketAddr> =
                s.peers.iter().filter(|(_, p)| p.left == 0).map(|(a, _)| *a).collect();
            let l = FileListing {
                info: FileInfo { name: id.to_hex(), size: 0, content_id: *id },
                holder_count: holders.len() as u32,
                hosts: hosts(&holders) as u32,
                holders: holders.into_iter().take(MAX_HOLDERS_SHOWN).collect(),
            };
            bytes += listing_bytes(&l);
            if bytes > MAX_BT_LISTING_BYTES {
                break;
            }
            out.push(l);
        }
        out
    }

    /// The BitTorrent side of the index.
    pub fn bt_swarms(&self) -> &Swarms {
        &self.bt
    }
}
