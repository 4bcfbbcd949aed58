//! The commands that talk to the peer running on a folder (`peer serve`), through its
//! control API: `status`, `pause`, `resume`, `remove`, `stop`, and `download` handed over.

use super::commands::{print_report, progress_lines};
use crate::control::client::{Remote, RemoteError};
use crate::control::jobs::{JobView, State};
use crate::control::server::Status;
use crate::download::reassembler::Progress;
use crossbeam_channel::Receiver;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often a handed-over download is looked at.
const POLL: Duration = Duration::from_millis(250);

/// `status`: every share and download of the running peer.
pub fn status(remote: &Remote, out: &mut impl Write) -> Result<(), RemoteError> {
    let s: Status = remote.get("/api/status")?;
    let _ = writeln!(out, "Peer {} serving {}", s.peer, s.dir);
    let _ = writeln!(
        out,
        "{:<4} {:<11} {:>7} {:>10} {:>11} {:>11} {:>7} {:>7} {:>8}  NAME",
        "ID", "STATE", "DONE", "SIZE", "DOWN", "UP", "SOURCES", "UPLOADS", "ETA"
    );
    let share_of = |name: &str| s.shares.iter().find(|sh| sh.name == name);
    let rate = |n: u64| format!("{}/s", bytes(n));
    for d in &s.downloads {
        let pct = (d.done_bytes * 100).checked_div(d.size).unwrap_or(0);
        let eta = d.eta_secs.map_or("-".to_string(), |s| format!("{}:{:02}", s / 60, s % 60));
        let state = format!("{:?}", d.state).to_lowercase();
        let (up, uploads) = share_of(&d.name).map_or((0, 0), |sh| (sh.up_rate, sh.uploads));
        let (id, size, down, up) = (d.id, bytes(d.size), rate(d.down_rate), rate(up));
        let _ = writeln!(
            out,
            "{id:<4} {state:<11} {pct:>6}% {size:>10} {down:>11} {up:>11} {:>7} {uploads:>7} {eta:>8}  {}",
            d.sources, d.name
        );
        if let Some(e) = &d.error {
            let _ = writeln!(out, "     {e}");
        }
    }
    let downloading: Vec<&str> = s.downloads.iter().map(|d| d.name.as_str()).collect();
    for sh in s.shares.iter().filter(|sh| !downloading.contains(&sh.name.as_str())) {
        let state = if sh.complete { "sharing" } else { "partial" };
        let (size, up) = (bytes(sh.size), rate(sh.up_rate));
        let _ = writeln!(
            out,
            "{:<4} {state:<11} {:>6}% {size:>10} {:>11} {up:>11} {:>7} {:>7} {:>8}  {}",
            "-", 100, "-", "-", sh.uploads, "-", sh.name
        );
    }
    if s.downloads.is_empty() && s.shares.is_empty() {
        let _ = writeln!(out, "(nothing shared or downloading)");
    }
    let uploaded: u64 = s.shares.iter().map(|sh| sh.uploaded).sum();
    if uploaded > 0 {
        let _ = writeln!(out, "Uploaded {} since the peer started", bytes(uploaded));
    }
    Ok(())
}

/// "4.2 MB".
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// `pause KEY`, `resume KEY`, `remove KEY [--delete]`.
pub fn act(
    remote: &Remote,
    key: &str,
    action: &str,
    delete: bool,
    out: &mut impl Write,
) -> Result<(), RemoteError> {
    let key = utf8_percent_encode(key, NON_ALPHANUMERIC);
    let query = if delete { "?delete=1" } else { "" };
    let answer: serde_json::Value = remote.post(&format!("/api/downloads/{key}/{action}{query}"), None)?;
    match action {
        "remove" => {
            let name = answer.get("removed").and_then(|v| v.as_str()).unwrap_or_default();
            let _ = writeln!(out, "Removed '{name}'");
            for d in answer.get("deleted").and_then(|v| v.as_array()).into_iter().flatten() {
                let _ = writeln!(out, "Deleted {}", d.as_str().unwrap_or_default());
            }
        }
        _ => {
            let v: JobView =
                serde_json::from_value(answer).map_err(|e| RemoteError::Garbled(e.to_string()))?;
            let _ = writeln!(out, "{} is {}", v.name, format!("{:?}", v.state).to_lowercase());
        }
    }
    Ok(())
}

/// `stop`: the running peer leaves the swarm and exits.
pub fn stop(remote: &Remote) -> Result<(), RemoteError> {
    let _: serde_json::Value = remote.post("/api/stop", None)?;
    Ok(())
}

/// Hands `target` to the running peer: a `.torrent` path goes as its bytes. Returns its
/// download number.
pub fn add(remote: &Remote, target: &str) -> Result<u64, RemoteError> {
    let path = Path::new(target);
    let answer: serde_json::Value = if target.to_ascii_lowercase().ends_with(".torrent") && path.is_file() {
        let bytes = std::fs::read(path)?;
        remote.post("/api/downloads", Some(("application/x-bittorrent", &bytes)))?
    } else {
        remote.post("/api/downloads", Some(("text/plain", target.as_bytes())))?
    };
    answer.get("id").and_then(|v| v.as_u64()).ok_or_else(|| RemoteError::Garbled("no download number".into()))
}

/// Follows download `id` until it ends, printing progress as a download of our own would,
/// and its report; `ctrl_c` pauses it (its chunks are kept). True when it finished.
pub fn follow(
    remote: &Remote,
    id: u64,
    ctrl_c: &Receiver<()>,
    out: &mut impl Write,
) -> Result<bool, RemoteError> {
    let started = Instant::now();
    let progress = progress_lines();
    let mut paused = false;
    loop {
        let v: JobView = remote.get(&format!("/api/downloads/{id}"))?;
        if v.chunks_total > 0 {
            progress(&Progress {
                name: v.name.clone(),
                done_bytes: v.done_bytes,
                total_bytes: v.size,
                chunks_done: v.chunks_done,
                chunks_total: v.chunks_total,
                elapsed: started.elapsed(),
                sources: v.sources,
                arrived: None,
            });
        }
        match v.state {
            State::Done => {
                if let Some(r) = &v.report {
                    print_report(r, out);
                }
                return Ok(true);
            }
            State::Failed => {
                eprintln!("peer: {}: {}", v.name, v.error.unwrap_or_default());
                return Ok(false);
            }
            State::Paused => {
                eprintln!(
                    "peer: {}: paused ({} of {} chunks kept; `peer resume {id}` goes on)",
                    v.name, v.chunks_done, v.chunks_total
                );
                return Ok(false);
            }
            State::Downloading | State::Pausing => {}
        }
        if !paused && ctrl_c.recv_timeout(POLL).is_ok() {
            eprintln!("peer: pausing the download in the running peer (its chunks are kept)...");
            let _: serde_json::Value = remote.post(&format!("/api/downloads/{id}/pause"), None)?;
            paused = true;
        } else if paused {
            std::thread::sleep(POLL);
        }
    }
}
