//! Counters the tracker keeps, and their Prometheus text exposition (format 0.0.4): a
//! `# HELP` and a `# TYPE` line per metric, then `name{label="value"} number` lines;
//! label values escape `\`, `"` and newlines.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Native request kinds, in the order of [`Metrics::native`].
pub const NATIVE_KINDS: [&str; 8] =
    ["register", "announce", "list_files", "search", "leave", "start_download", "stop_download", "leechers"];

/// Counters shared by the native and HTTP listeners.
#[derive(Debug, Default)]
pub struct Metrics {
    pub native: [AtomicU64; 8],
    pub native_errors: AtomicU64,
    pub http_announces: AtomicU64,
    pub http_scrapes: AtomicU64,
    pub http_failures: AtomicU64,
    pub http_pages: AtomicU64,
}

/// Gauges read from the state when the metrics are asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub native_peers: usize,
    pub bittorrent_peers: usize,
    pub files: usize,
    pub swarms: usize,
    /// Connections refused by the caps, native and HTTP listeners.
    pub refused_native: u64,
    pub refused_http: u64,
}

impl Metrics {
    /// Counts one native request of `kind` (one of [`NATIVE_KINDS`]).
    pub fn native_request(&self, kind: &str) {
        if let Some(i) = NATIVE_KINDS.iter().position(|k| *k == kind) {
            self.native[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        metric(
            &mut out,
            "p2p_share_peers",
            "gauge",
            "Peers the tracker knows, by kind.",
            &[
                (&[("kind", "native")], g.native_peers as u64),
                (&[("kind", "bittorrent")], g.bittorrent_peers as u64),
            ],
        );
        metric(
            &mut out,
            "p2p_share_files",
            "gauge",
            "Files (native claims and BitTorrent-only swarms).",
            &[(&[], g.files as u64)],
        );
        metric(
            &mut out,
            "p2p_share_bittorrent_swarms",
            "gauge",
            "Info-hashes BitTorrent clients announced.",
            &[(&[], g.swarms as u64)],
        );
        let native: Vec<([(&str, &str); 1], u64)> =
            NATIVE_KINDS.iter().zip(&self.native).map(|(k, c)| ([("kind", *k)], get(c))).collect();
        let native_rows: Vec<(&[(&str, &str)], u64)> = native.iter().map(|(l, n)| (&l[..], *n)).collect();
        metric(
            &mut out,
            "p2p_share_native_requests_total",
            "counter",
            "Native protocol requests, by kind.",
            &native_rows,
        );
        metric(
            &mut out,
            "p2p_share_native_errors_total",
            "counter",
            "Native requests answered with an error.",
            &[(&[], get(&self.native_errors))],
        );
        metric(
            &mut out,
            "p2p_share_http_requests_total",
            "counter",
            "HTTP requests, by endpoint.",
            &[
                (&[("endpoint", "announce")], get(&self.http_announces)),
                (&[("endpoint", "scrape")], get(&self.http_scrapes)),
                (&[("endpoint", "page")], get(&self.http_pages)),
            ],
        );
        metric(
            &mut out,
            "p2p_share_http_failures_total",
            "counter",
            "Announces and scrapes answered with a failure reason.",
            &[(&[], get(&self.http_failures))],
        );
        metric(
            &mut out,
            "p2p_share_refused_connections_total",
            "counter",
            "Connections refused by the per-address and total caps.",
            &[(&[("listener", "native")], g.refused_native), (&[("listener", "http")], g.refused_http)],
        );
        out
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, rows: &[(&[(&str, &str)], u64)]) {
    let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in rows {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = writeln!(out, "{name}{{{}}} {value}", l.join(","));
        }
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The format's rules: every sample line is `name{labels} value` with a valid name,
    /// its metric declared by HELP and TYPE lines first, values numbers.
    fn check_exposition(text: &str) {
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut w = rest.split(' ');
                declared.insert(w.next().unwrap().to_string());
                assert!(matches!(w.next(), Some("counter" | "gauge")), "{line}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap_or_else(|_| panic!("value in {line}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':'),
                "{line}"
            );
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{line}");
            assert!(declared.contains(name), "{name} used before its TYPE line");
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            }
            if name.ends_with("_total") {
                assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
            }
        }
    }

    #[test]
    fn renders_valid_exposition_text() {
        let m = Metrics::default();
        m.native_request("search");
        m.native_request("search");
        m.native_request("no such kind");
        m.http_announces.fetch_add(3, Ordering::Relaxed);
        let g = Gauges {
            native_peers: 2,
            bittorrent_peers: 1,
            files: 4,
            swarms: 1,
            refused_native: 5,
            refused_http: 0,
        };
        let text = m.render(&g);
        check_exposition(&text);
        assert!(text.contains("p2p_share_native_requests_total{kind=\"search\"} 2\n"), "{text}");
        assert!(text.contains("p2p_share_http_requests_total{endpoint=\"announce\"} 3\n"));
        assert!(text.contains("p2p_share_peers{kind=\"bittorrent\"} 1\n"));
        assert!(text.contains("p2p_share_refused_connections_total{listener=\"native\"} 5\n"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
