#!/usr/bin/env python3
"""Draws the demo's swarm: for each client, when each chunk arrived and from which peer.

usage: swarm_svg.py OUT.svg client2=path.csv client3=path.csv ...
Each CSV has columns file,chunk,seconds,source (as `peer download --timeline` writes).
"""
import csv
import sys

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def main():
    out, pairs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    rows = {name: list(csv.DictReader(open(path))) for name, path in pairs}
    sources = sorted({r["source"] for rs in rows.values() for r in rs})
    color = {s: COLORS[i % len(COLORS)] for i, s in enumerate(sources)}
    t_max = max((float(r["seconds"]) for rs in rows.values() for r in rs), default=1.0) or 1.0
    n_max = max((int(r["chunk"]) for rs in rows.values() for r in rs), default=0) + 1
    width, lane, left, top = 900, 160, 90, 48
    height = top + lane * len(rows) + 60
    plot_w = width - left - 20
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="16" font-size="14">p2p-share demo: when each chunk arrived, coloured by the peer it came from</text>',
           f'<text x="{left}" y="32" fill="#555">x: seconds since the download began; y: chunk number</text>']
    for k, (name, rs) in enumerate(rows.items()):
        y0 = top + k * lane
        svg.append(f'<text x="8" y="{y0 + lane / 2}">{name}</text>')
        svg.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{lane - 20}" fill="none" stroke="#ccc"/>')
        for r in rs:
            x = left + float(r["seconds"]) / t_max * plot_w
            y = y0 + (lane - 20) * (1 - (int(r["chunk"]) + 0.5) / n_max)
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color[r["source"]]}"><title>chunk {r["chunk"]} from {r["source"]} at {r["seconds"]} s</title></circle>')
        total = max((float(r["seconds"]) for r in rs), default=0)
        svg.append(f'<text x="8" y="{y0 + lane / 2 + 16}" fill="#555">{len(rs)} chunks</text>')
        svg.append(f'<text x="8" y="{y0 + lane / 2 + 32}" fill="#555">in {total:.1f} s</text>')
    y = top + lane * len(rows) + 10
    for i, s in enumerate(sources):
        label = f"from {s}"
        svg.append(f'<circle cx="{left + i * 130 + 6}" cy="{y}" r="5" fill="{color[s]}"/><text x="{left + i * 130 + 16}" y="{y + 4}">{label}</text>')
    svg.append(f'<text x="{left}" y="{y + 30}" fill="#555">0 s</text><text x="{width - 60}" y="{y + 30}" fill="#555">{t_max:.1f} s</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg))


if __name__ == "__main__":
    main()
