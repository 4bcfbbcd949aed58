//! `make bench`: throughput and latency figures, each against a baseline measured in the
//! same run where one applies. `cargo bench --bench bench -- NAME` runs only sections whose
//! name contains NAME (tracker, transfer, swarm, hashing, scheduler, big, crowd, bittorrent).

mod crowd;
mod scheduler;
#[path = "../support/mod.rs"]
mod support;
mod tracker;
mod transfer;

use std::time::Duration;

/// Latency percentiles, in microseconds, from per-request samples.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wants("tracker") {
        tracker::run();
    }
    if wants("transfer") || wants("hashing") {
        transfer::one_to_one();
    }
    if wants("swarm") {
        transfer::swarm_efficiency();
    }
    if wants("scheduler") {
        scheduler::run();
    }
    if wants("big") {
        transfer::big_file();
    }
    if wants("crowd") {
        crowd::run();
    }
    if wants("bittorrent") {
        transfer::over_bittorrent();
    }
}
