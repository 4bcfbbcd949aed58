//! The demo's picture of the swarm: for each downloader, when each chunk arrived and from
//! which peer, from the CSV timelines `peer download --timeline` writes.

use std::collections::BTreeSet;
use std::fmt::{self, Write};

/// One chunk's arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub chunk: u32,
    pub seconds: f64,
    pub source: String,
}

/// A timeline that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTimeline {
    pub line: usize,
    pub reason: &'static str,
}

impl fmt::Display for BadTimeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for BadTimeline {}

/// Reads `file,chunk,seconds,source` rows (the header line first).
pub fn parse(csv: &str) -> Result<Vec<Arrival>, BadTimeline> {
    let mut lines = csv.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == "file,chunk,seconds,source" => {}
        _ => return Err(BadTimeline { line: 1, reason: "the header is not file,chunk,seconds,source" }),
    }
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let bad = |reason| BadTimeline { line: i + 1, reason };
            // The file name may hold commas; the last three fields cannot.
            let mut fields = l.rsplitn(4, ',');
            let source = fields.next().ok_or(bad("no source"))?.to_string();
            let seconds =
                fields.next().and_then(|s| s.parse::<f64>().ok()).ok_or(bad("seconds is not a number"))?;
            let chunk =
                fields.next().and_then(|s| s.parse::<u32>().ok()).ok_or(bad("chunk is not a number"))?;
            if !seconds.is_finite() || seconds < 0.0 {
                return Err(bad("seconds is negative or not finite"));
            }
            Ok(Arrival { chunk, seconds, source })
        })
        .collect()
}

const COLORS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];

/// Draws one lane per `(name, arrivals)`: x is seconds, y the chunk, colour the source.
pub fn render(lanes: &[(String, Vec<Arrival>)]) -> String {
    let all = || lanes.iter().flat_map(|(_, rows)| rows.iter());
    let sources: BTreeSet<&str> = all().map(|r| r.source.as_str()).collect();
    let color = |s: &str| COLORS[sources.iter().position(|x| *x == s).unwrap_or(0) % COLORS.len()];
    let t_max = all().map(|r| r.seconds).fold(0.0, f64::max);
    let t_max = if t_max > 0.0 { t_max } else { 1.0 };
    let n_max = all().map(|r| r.chunk).max().map_or(1, |n| n + 1) as f64;
    let (width, lane, left, top) = (900.0, 160.0, 90.0, 48.0);
    let height = top + lane * lanes.len() as f64 + 60.0;
    let plot_w = width - left - 20.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="16" font-size="14">p2p-share demo: when each chunk arrived, coloured by the peer it came from</text>"#
    );
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="32" fill="#555">x: seconds since the download began; y: chunk number</text>"##
    );
    for (k, (name, rows)) in lanes.iter().enumerate() {
        let y0 = top + k as f64 * lane;
        let mid = y0 + lane / 2.0;
        let _ = writeln!(svg, r#"<text x="8" y="{mid}">{}</text>"#, escape(name));
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{y0}" width="{plot_w}" height="{}" fill="none" stroke="#ccc"/>"##,
            lane - 20.0
        );
        for r in rows {
            let x = left + r.seconds / t_max * plot_w;
            let y = y0 + (lane - 20.0) * (1.0 - (r.chunk as f64 + 0.5) / n_max);
            let _ = writeln!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{}"><title>chunk {} from {} at {:.3} s</title></circle>"#,
                color(&r.source),
                r.chunk,
                escape(&r.source),
                r.seconds
            );
        }
        let total = rows.iter().map(|r| r.seconds).fold(0.0, f64::max);
        let _ = writeln!(svg, r##"<text x="8" y="{}" fill="#555">{} chunks</text>"##, mid + 16.0, rows.len());
        let _ = writeln!(svg, r##"<text x="8" y="{}" fill="#555">in {total:.1} s</text>"##, mid + 32.0);
    }
    let y = top + lane * lanes.len() as f64 + 10.0;
    for (i, s) in sources.iter().enumerate() {
        let x = left + i as f64 * 130.0;
        let _ = writeln!(
            svg,
            r#"<circle cx="{}" cy="{y}" r="5" fill="{}"/><text x="{}" y="{}">from {}</text>"#,
            x + 6.0,
            color(s),
            x + 16.0,
            y + 4.0,
            escape(s)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="{}" fill="#555">0 s</text><text x="{}" y="{}" fill="#555">{t_max:.1} s</text>"##,
        y + 30.0,
        width - 60.0,
        y + 30.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// Text made safe to put between SVG tags.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "file,chunk,seconds,source\na,b.bin,0,0.5000,6001\na,b.bin,1,1.2500,6002\n";

    #[test]
    fn reads_rows_even_with_commas_in_the_name() {
        let rows = parse(CSV).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1], Arrival { chunk: 1, seconds: 1.25, source: "6002".into() });
    }

    #[test]
    fn refuses_what_is_not_a_timeline() {
        assert_eq!(parse("name,size\n").unwrap_err().line, 1);
        let err = parse("file,chunk,seconds,source\nx,one,0.1,6001\n").unwrap_err();
        assert_eq!((err.line, err.reason), (2, "chunk is not a number"));
        assert!(parse("file,chunk,seconds,source\nx,1,-3,6001\n").is_err());
    }

    #[test]
    fn draws_a_dot_per_chunk_a_lane_per_client_and_a_legend_per_source() {
        let rows = parse(CSV).unwrap();
        let svg = render(&[("client2".into(), rows.clone()), ("client<3>".into(), rows)]);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<circle cx").count(), 4 + 2, "four chunks and two legend dots");
        assert!(svg.contains(">client&lt;3&gt;</text>"), "names are escaped");
        assert!(svg.contains("from 6001</text>") && svg.contains("from 6002</text>"));
        assert!(svg.contains(">1.2 s</text>"), "the time axis ends at the last arrival");
    }
}
