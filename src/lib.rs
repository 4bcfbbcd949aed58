//! p2p-share: a tracker that indexes who has which file, and peers that share files in
//! 1 MiB SHA-1-verified chunks and download from every peer that can help at once.
//!
//! Synchronous by design: `std::net` and one thread per connection, crossbeam channels
//! between threads, rayon for hashing.

#![forbid(unsafe_code)]

// Public: what the binaries, the tests and the bench use. The rest is the library's own.

mod accept;
pub(crate) mod announce;
mod atomic_file;
pub mod bitfield;
pub mod bt;
mod chunk_store;
pub mod cli;
pub mod compact;
mod conn_limit;
pub mod control;
pub mod dht;
pub mod download;
pub mod hash;
pub mod holdings;
pub mod info_dict;
pub mod layout;
pub mod logging;
mod magnet;
pub mod manifest;
pub mod names;
pub mod peer;
pub mod port_map;
mod random;
mod refusals;
pub mod shutdown;
pub mod storage;
mod super_seed;
mod text;
pub mod timeline_svg;
mod tls;
pub mod torrent;
pub mod tracker;
mod tracker_client;
pub mod wire;
