//! Real BitTorrent clients against p2p-share: libtorrent 2.0 through its Python binding
//! (`tests/bt/lt.py`). `make test-bt` runs these; CI installs `python3-libtorrent` first.
//! Loopback only; every client is told its peers directly (no DHT, no LSD).

mod libtorrent;
