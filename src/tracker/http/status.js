// Fills the status page from /api/status every 1.5 s. Every value goes in as text
// (textContent), never as markup, so a file or peer name cannot inject anything.
"use strict";

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}

function size(n) {
  if (!n) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fill(id, rows, make) {
  const body = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  rows.forEach(r => { const tr = document.createElement("tr"); make(tr, r); fresh.appendChild(tr); });
  body.replaceWith(fresh);
}

async function refresh() {
  try {
    const s = await (await fetch("/api/status", { cache: "no-store" })).json();
    const t = s.totals;
    document.getElementById("totals").textContent =
      t.files + " files, " + t.native_peers + " p2p-share peers, " + t.bittorrent_peers +
      " BitTorrent peers, " + t.swarms + " BitTorrent swarms";
    fill("files", s.files, (tr, f) => {
      cell(tr, f.name || "(BitTorrent only)");
      cell(tr, f.info_hash, "hash");
      cell(tr, size(f.size), "num");
      cell(tr, f.holders, "num");
      cell(tr, f.downloaders, "num");
      cell(tr, f.completed, "num");
    });
    fill("peers", s.peers, (tr, p) => {
      cell(tr, p.address);
      cell(tr, p.kind, p.kind);
      cell(tr, p.files, "num");
      cell(tr, p.last_seen_secs + " s ago", "num");
    });
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = "tracker unreachable: " + e;
  }
}

refresh();
setInterval(refresh, 1500);
