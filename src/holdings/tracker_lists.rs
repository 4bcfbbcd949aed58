//! The trackers a torrent named (its `announce-list` or `announce`, a magnet link's `tr`),
//! kept in `DIR/chunks/trackers/<content id>.txt` from the start of its download, so the
//! finished torrent is announced to them while it is seeded, after a restart too. One URL
//! a line, a blank line between BEP 12 tiers; at most [`MAX_LISTED`] URLs of at most
//! [`MAX_URL`] bytes are written or read.

use crate::atomic_file::{write_atomic, Durability};
use crate::hash::ContentId;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// URLs kept for one torrent (a torrent may list hundreds; [`MAX_TRACKERS`] are asked).
///
/// [`MAX_TRACKERS`]: crate::download::feed::MAX_TRACKERS
pub const MAX_LISTED: usize = 64;
/// Longest URL kept.
pub const MAX_URL: usize = 1024;

/// The folder of tracker lists.
#[derive(Debug, Clone)]
pub struct TrackerLists {
    dir: PathBuf,
}

impl TrackerLists {
    pub fn new(chunks_dir: &Path) -> TrackerLists {
        TrackerLists { dir: chunks_dir.join("trackers") }
    }

    fn path(&self, id: &ContentId) -> PathBuf {
        self.dir.join(format!("{}.txt", id.to_hex()))
    }

    /// Keeps `tiers` for `id` (nothing is written for an empty list).
    pub fn save(&self, id: &ContentId, tiers: &[Vec<String>]) -> io::Result<()> {
        let tiers = capped(tiers.iter().map(|t| t.iter().map(String::as_str).collect()).collect());
        if tiers.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        let text: Vec<String> = tiers.iter().map(|t| t.join("\n")).collect();
        write_atomic(&self.path(id), (text.join("\n\n") + "\n").as_bytes(), Durability::Hint)
    }

    /// The tiers kept for `id`; empty when none were.
    pub fn load(&self, id: &ContentId) -> Vec<Vec<String>> {
        let mut text = String::new();
        let limit = ((MAX_URL + 2) * MAX_LISTED) as u64;
        let read = fs::File::open(self.path(id)).and_then(|f| f.take(limit).read_to_string(&mut text));
        if read.is_err() {
            return Vec::new();
        }
        let tiers: Vec<Vec<&str>> = text
            .split("\n\n")
            .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
            .collect();
        capped(tiers)
    }
}

/// The tiers without empty ones, control characters or over-long URLs, at most
/// [`MAX_LISTED`] URLs in all.
fn capped(tiers: Vec<Vec<&str>>) -> Vec<Vec<String>> {
    let mut left = MAX_LISTED;
    let mut out = Vec::new();
    for tier in tiers {
        let tier: Vec<String> = tier
            .into_iter()
            .filter(|u| !u.is_empty() && u.len() <= MAX_URL && !u.chars().any(char::is_control))
            .take(left)
            .map(String::from)
            .collect();
        left -= tier.len();
        if !tier.is_empty() {
            out.push(tier);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_kept_and_read_back_within_their_caps() {
        let dir = tempfile::tempdir().unwrap();
        let lists = TrackerLists::new(dir.path());
        let id = ContentId::of(b"t");
        assert!(lists.load(&id).is_empty());
        let tiers = vec![
            vec!["udp://a:1".to_string(), "http://b/announce".into()],
            vec![],
            vec!["http://c/a".into()],
        ];
        lists.save(&id, &tiers).unwrap();
        assert_eq!(lists.load(&id), vec![tiers[0].clone(), tiers[2].clone()]);
        let many: Vec<Vec<String>> = (0..100).map(|i| vec![format!("udp://t{i}:1"), "x\ny".into()]).collect();
        lists.save(&id, &many).unwrap();
        let back = lists.load(&id);
        assert_eq!(back.iter().map(Vec::len).sum::<usize>(), MAX_LISTED);
        assert!(back.iter().flatten().all(|u| u.starts_with("udp://t")), "a URL with a newline is dropped");
    }
}
