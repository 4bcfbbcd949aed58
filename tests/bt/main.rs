//! Real BitTorrent clients against p2p-share: libtorrent 2.0 through its Python binding
//! (`tests/bt/lt.py`). `make test-bt` runs these; CI installs `python3-libtorrent` first.
//! Loopback only; clients are told their peers directly, by our tracker, or by a private DHT
//! of our nodes on 127.0.0.1 (never the public DHT; no LSD).
//! Headless Chromium (Debian `chromium`) renders the tracker's status page, and drives the
//! running peer's page through Selenium (`chromium-driver`, `python3-selenium`).

mod dht;
mod encryption;
mod giving;
mod libtorrent;
mod nginx;
mod page;
mod pex;
#[path = "../support/mod.rs"]
mod support;
mod torrents;
mod tracker_http;
mod trackers;
mod transmission;
mod webseeds;
