//! The peer's commands for scripts: `serve`, `list`, `search`, `download`. What the user
//! reads goes to stdout; logs go to stderr.

use crate::download::reassembler::{Progress, ProgressFn};
use crate::download::summary::Summary;
use crate::download::{DownloadError, Options, Report};
use crate::peer::{Node, NodeConfig};
use crate::text::peer_label;
use crate::tracker_client::{FilePage, TrackerClient, TrackerError};
use crate::wire::tracker_msg::FileListing;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// `['6000', '6001']`, as the original printed holders.
pub fn holders_line(l: &FileListing) -> String {
    let labels: Vec<String> = l.holders.iter().map(|h| format!("'{}'", peer_label(h))).collect();
    format!("[{}]", labels.join(", "))
}

fn client(cfg: &NodeConfig) -> TrackerClient {
    TrackerClient::asking(cfg.tracker)
}

/// `list`: every file and who has it.
pub fn list(cfg: &NodeConfig, out: &mut impl Write) -> Result<(), TrackerError> {
    let page = client(cfg).list()?;
    print_list(&page, out);
    Ok(())
}

/// `name : ['6000', '6001']` for every file, as the original printed its list.
pub fn print_list(page: &FilePage, out: &mut impl Write) {
    let _ = writeln!(out, "These are all files from the tracker:\n");
    for f in &page.files {
        let _ = writeln!(out, "{} : {}", f.info.name, holders_line(f));
    }
    if page.files.is_empty() {
        let _ = writeln!(out, "(no files shared yet)");
    }
    print_cut(page, out);
}

/// "(showing 1000 of 30000 files ...)" when the tracker's reply could not hold them all.
fn print_cut(page: &FilePage, out: &mut impl Write) {
    if (page.files.len() as u32) < page.total {
        let _ = writeln!(
            out,
            "(showing {} of {} files; search for a name to see the others)",
            page.files.len(),
            page.total
        );
    }
}

/// `search NAME`: who has it.
pub fn search(cfg: &NodeConfig, name: &str, out: &mut impl Write) -> Result<usize, TrackerError> {
    let page = client(cfg).search(name)?;
    print_search(&page, out);
    Ok(page.files.len())
}

/// Each match with its size, id and how many peers on how many hosts hold it.
pub fn print_search(page: &FilePage, out: &mut impl Write) {
    if page.files.is_empty() {
        let _ = writeln!(out, "No peer has a file like that.");
        return;
    }
    for f in &page.files {
        let _ = writeln!(
            out,
            "{} ({} bytes, id {}, {}):",
            f.info.name,
            f.info.size,
            f.info.content_id,
            holder_count_text(f)
        );
        let _ = writeln!(out, "Following peers have the file:");
        for h in &f.holders {
            let _ = writeln!(out, "{}", peer_label(h));
        }
    }
    print_cut(page, out);
}

/// "3 holders on 2 hosts".
pub fn holder_count_text(f: &FileListing) -> String {
    let n = f.holder_count.max(f.holders.len() as u32);
    let hosts = f.hosts.max(1);
    let s = |k: u32| if k == 1 { "" } else { "s" };
    format!("{n} holder{} on {hosts} host{}", s(n), s(hosts))
}

/// A progress printer: a line every 10% (for pipes and logs).
pub fn progress_lines() -> ProgressFn {
    let last = Mutex::new(std::collections::HashMap::<String, u64>::new());
    Arc::new(move |p: &Progress| {
        let pct = (p.done_bytes * 100).checked_div(p.total_bytes).unwrap_or(100);
        let mut last = last.lock();
        let prev = last.entry(p.name.clone()).or_insert(0);
        if pct / 10 > *prev / 10 || (pct == 100 && *prev != 100) {
            *prev = pct;
            let rate = p.done_bytes as f64 / 1e6 / p.elapsed.as_secs_f64().max(1e-3);
            println!("{}: {pct}% ({} of {} chunks, {rate:.1} MB/s)", p.name, p.chunks_done, p.chunks_total);
        }
    })
}

/// A progress bar per file on a terminal (bytes, rate, sources, time left); plain lines
/// every 10% elsewhere.
pub fn progress_display() -> ProgressFn {
    if !std::io::stdout().is_terminal() {
        return progress_lines();
    }
    let multi = MultiProgress::new();
    let bars = Mutex::new(std::collections::HashMap::<String, ProgressBar>::new());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    Arc::new(move |p: &Progress| {
        let mut bars = bars.lock();
        let bar = bars.entry(p.name.clone()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(p.total_bytes));
            b.set_style(style.clone());
            b
        });
        let plural = if p.sources == 1 { "" } else { "s" };
        bar.set_message(format!("{} ({} source{plural})", p.name, p.sources));
        bar.set_position(p.done_bytes);
        if p.chunks_done == p.chunks_total {
            bar.finish();
        }
    })
}

/// What a finished download prints, in the original's words plus where chunks came from.
pub fn print_report(r: &Summary, out: &mut impl Write) {
    if r.already_here {
        let _ = writeln!(out, "'{}' is already here: {}", r.name, r.path);
        return;
    }
    let _ = writeln!(out, "Chunks downloaded!");
    let _ = writeln!(out, "Creating File...");
    let _ = writeln!(out, "Download time is: {:.6} seconds", r.took_secs);
    let mb = r.size as f64 / 1e6;
    let _ = writeln!(out, "File downloaded: {} ({mb:.1} MB, {:.1} MB/s)", r.path, mb / r.took_secs.max(1e-6));
    let sources: Vec<String> =
        r.per_source.iter().map(|(a, n)| format!("{n} from {}", peer_label(a))).collect();
    let resumed = if r.resumed > 0 { format!(", {} resumed from disk", r.resumed) } else { String::new() };
    let _ = writeln!(
        out,
        "Chunks: {}{resumed}",
        if sources.is_empty() { "none fetched".into() } else { sources.join(", ") }
    );
}

/// `download NAME...`: fetches each (in parallel), prints reports; true if all succeeded.
pub fn download(
    node: &Node,
    names: &[String],
    from: Option<&str>,
    timeline: Option<&Path>,
    opts: Options,
) -> bool {
    let opts = Options { progress: Some(progress_display()), ..opts };
    let started = Instant::now();
    let results: Vec<(String, Result<Report, DownloadError>)> = thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                let opts = opts.clone();
                (n, s.spawn(move || node.download(n, from, &opts)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(n, h)| (n.clone(), h.join().unwrap_or(Err(DownloadError::Crashed("download")))))
            .collect()
    });
    let mut ok = true;
    let stdout = &mut std::io::stdout();
    if let Some(path) = timeline {
        let reports: Vec<&Report> = results.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
        if let Err(e) = write_timeline(path, &reports, started) {
            eprintln!("peer: cannot write {}: {e}", path.display());
            ok = false;
        }
    }
    for (name, r) in results {
        match r {
            Ok(report) => print_report(&report.summary(), stdout),
            Err(e) => {
                eprintln!("peer: {name}: {e}");
                ok = false;
            }
        }
    }
    if names.len() > 1 {
        println!("All downloads took {:.3} seconds", started.elapsed().as_secs_f64());
    }
    ok
}

/// Writes `file,chunk,seconds,source` for every chunk fetched, in seconds since the
/// command started (so the downloads of one command share one clock).
fn write_timeline(path: &Path, reports: &[&Report], started: Instant) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(w, "file,chunk,seconds,source")?;
    for r in reports {
        let offset = r.assembly.started.map_or(0.0, |s| s.saturating_duration_since(started).as_secs_f64());
        for (chunk, secs, from) in &r.assembly.timeline {
            let secs = secs + offset;
            writeln!(w, "{},{chunk},{secs:.4},{}", r.name.replace(',', "_"), peer_label(from))?;
        }
    }
    w.flush()
}
