//! What only the integration tests use beside `tests/support` (re-exported here, so the
//! tests import one module).

pub use crate::support::*;
use std::time::Duration;

/// "Chunks: 4 from 6000, 3 from 6001" → [(6000, 4), (6001, 3)]; resumed count separately.
pub fn chunk_sources(output: &str) -> (Vec<(u16, u32)>, u32) {
    let line = output
        .lines()
        .find(|l| l.starts_with("Chunks: "))
        .unwrap_or_else(|| panic!("no Chunks line in:\n{output}"));
    let mut sources = Vec::new();
    let mut resumed = 0;
    for part in line["Chunks: ".len()..].split(", ") {
        let words: Vec<&str> = part.split(' ').collect();
        if part.contains("resumed") {
            resumed = words[0].parse().unwrap();
        } else if words.len() == 3 && words[1] == "from" {
            let port = words[2].rsplit(':').next().unwrap().parse().unwrap();
            sources.push((port, words[0].parse().unwrap()));
        }
    }
    (sources, resumed)
}

/// How many holders the tracker lists for files named (or named like) `name`.
pub fn listed(t: &TrackerProc, name: &str) -> usize {
    use p2p_share::wire::tracker_msg::{TrackerReply, TrackerRequest};
    match t.conn().call::<_, TrackerReply>(&TrackerRequest::Search { name: name.into() }) {
        Ok(TrackerReply::Files { files, .. }) => files.iter().map(|f| f.holders.len()).sum(),
        _ => 0,
    }
}

/// Waits until a downloader's progress lines show at least `n` chunks of `name`.
pub fn wait_chunks(p: &PeerProc, name: &str, n: u32, limit: Duration) {
    let prefix = format!("{name}: ");
    let reached = wait_until(limit, || {
        p.proc.output().lines().filter_map(|l| l.strip_prefix(&prefix)).any(|rest| {
            rest.split_once("% (")
                .and_then(|(_, r)| r.split(' ').next()?.parse::<u32>().ok())
                .is_some_and(|k| k >= n)
        })
    });
    assert!(reached, "{name} never reached {n} chunks:\n{}", p.proc.output());
}
