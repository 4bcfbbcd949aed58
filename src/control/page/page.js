// The running peer's page: its downloads and shares from /api/status every second, and
// the changes (add, pause, resume, remove, stop) as POSTs with the session's CSRF token.
// Every value goes in as text (textContent), never as markup: a file name cannot inject
// anything.
"use strict";

let csrf = null;

function size(n) {
  if (!n) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function button(td, label, action, key, extra) {
  const b = document.createElement("button");
  b.textContent = label;
  b.dataset.action = action;
  b.dataset.key = key;
  b.addEventListener("click", () => act(action, key, extra));
  td.appendChild(b);
}

function say(text, error) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

async function post(path, body, type) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf, "Content-Type": type || "text/plain" },
    body: body || "",
  });
  const answer = await r.json();
  if (!r.ok) throw new Error(answer.error || r.statusText);
  return answer;
}

async function act(action, key, extra) {
  let query = "";
  if (action === "remove") {
    if (!confirm("Stop sharing '" + extra + "'?")) return;
    if (confirm("Also delete its data from the folder? (Cancel keeps the file.)")) query = "?delete=1";
  }
  try {
    await post("/api/downloads/" + encodeURIComponent(key) + "/" + action + query);
    say(action + ": done");
  } catch (e) {
    say(action + ": " + e.message, true);
  }
  refresh();
}

function fill(id, rows, make) {
  const body = document.querySelector("#" + id + " tbody");
  const fresh = document.createElement("tbody");
  rows.forEach(r => { const tr = document.createElement("tr"); make(tr, r); fresh.appendChild(tr); });
  body.replaceWith(fresh);
}

function left(secs) {
  if (secs === null || secs === undefined) return "";
  return Math.floor(secs / 60) + ":" + String(secs % 60).padStart(2, "0");
}

// The swarm picture of each download with chunks in, redrawn as chunks arrive.
const pictures = new Map();

function picture(d) {
  if (!d.chunks_done) return;
  let img = pictures.get(d.id);
  if (!img) {
    img = document.createElement("img");
    img.alt = "when each chunk of " + d.name + " arrived";
    pictures.set(d.id, img);
    document.getElementById("pictures").appendChild(img);
  }
  const src = "/api/downloads/" + d.id + "/timeline.svg?chunks=" + d.chunks_done + "&state=" + d.state;
  if (img.dataset.src !== src) {
    img.dataset.src = src;
    img.src = src;
  }
}

async function refresh() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (!r.ok) throw new Error((await r.json()).error);
    const s = await r.json();
    document.getElementById("peer").textContent = "reached at " + s.peer + ", folder " + s.dir;
    fill("downloads", s.downloads, (tr, d) => {
      tr.dataset.name = d.name;
      tr.dataset.state = d.state;
      cell(tr, d.id, "num");
      cell(tr, d.name, "name");
      const state = cell(tr, d.state, "state " + d.state);
      if (d.error) state.title = d.error;
      const p = document.createElement("progress");
      p.max = d.size || 1;
      p.value = d.done_bytes;
      cell(tr, "").appendChild(p);
      cell(tr, size(d.size), "num");
      cell(tr, d.down_rate ? size(d.down_rate) + "/s" : "", "num");
      cell(tr, d.sources, "num");
      cell(tr, left(d.eta_secs), "num");
      const actions = cell(tr, "");
      if (d.state === "downloading") button(actions, "Pause", "pause", String(d.id));
      if (d.state === "paused" || d.state === "failed") button(actions, "Resume", "resume", String(d.id));
      button(actions, "Remove", "remove", String(d.id), d.name);
      picture(d);
    });
    const listed = new Set(s.downloads.map(d => d.id));
    for (const [id, img] of pictures) {
      if (!listed.has(id)) { img.remove(); pictures.delete(id); }
    }
    fill("shares", s.shares, (tr, f) => {
      tr.dataset.name = f.name;
      cell(tr, f.name, "name");
      cell(tr, size(f.size), "num");
      cell(tr, f.complete ? "complete" : "downloading");
      cell(tr, f.up_rate ? size(f.up_rate) + "/s" : "", "num");
      cell(tr, f.uploads, "num");
      cell(tr, size(f.uploaded), "num");
      cell(tr, f.content_id, "hash");
      button(cell(tr, ""), "Remove", "remove", f.content_id, f.name);
    });
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    document.getElementById("updated").textContent = "the peer is unreachable: " + e.message;
  }
}

document.getElementById("add").addEventListener("submit", async ev => {
  ev.preventDefault();
  const target = document.getElementById("target").value.trim();
  if (!target) return;
  try {
    const a = await post("/api/downloads", target);
    say("added as download " + a.id);
    document.getElementById("target").value = "";
  } catch (e) {
    say("not added: " + e.message, true);
  }
  refresh();
});

document.getElementById("torrent").addEventListener("change", async ev => {
  const file = ev.target.files[0];
  if (!file) return;
  try {
    const a = await post("/api/downloads", await file.arrayBuffer(), "application/x-bittorrent");
    say("added " + file.name + " as download " + a.id);
  } catch (e) {
    say("not added: " + e.message, true);
  }
  ev.target.value = "";
  refresh();
});

document.getElementById("stop").addEventListener("click", async () => {
  if (!confirm("Stop the peer? It leaves the swarm and exits.")) return;
  try {
    await post("/api/stop");
    say("the peer is leaving");
  } catch (e) {
    say("not stopped: " + e.message, true);
  }
});

(async () => {
  try {
    csrf = (await (await fetch("/api/session", { cache: "no-store" })).json()).csrf;
  } catch (e) {
    say("no session: open the link `peer page` prints", true);
  }
  refresh();
  setInterval(refresh, 1000);
})();
