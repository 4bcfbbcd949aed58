//! p2p-share: a tracker that indexes who has which file, and peers that share files in
//! 1 MiB SHA-1-verified chunks and download from every peer that can help at once.
//!
//! Synchronous by design: `std::net` and one thread per connection, crossbeam channels
//! between threads, rayon for hashing.

#![forbid(unsafe_code)]

pub mod accept;
pub mod atomic_file;
pub mod bitfield;
pub mod bt;
pub mod chunk_store;
pub mod cli;
pub mod conn_limit;
pub mod dht;
pub mod download;
pub mod hash;
pub mod holdings;
pub mod logging;
pub mod magnet;
pub mod manifest;
pub mod names;
pub mod peer;
pub mod random;
pub mod rate_limit;
pub mod refusals;
pub mod shutdown;
pub mod super_seed;
pub mod text;
pub mod timeline_svg;
pub mod torrent;
pub mod tracker;
pub mod tracker_client;
pub mod wire;
