//! p2p-share: a tracker that indexes who has which file, and peers that share files in
//! 1 MiB SHA-1-verified chunks and download from every peer that can help at once.
//!
//! Synchronous by design: `std::net` and one thread per connection, crossbeam channels
//! between threads, rayon for hashing.

pub mod conn_limit;
pub mod hash;
pub mod logging;
pub mod manifest;
pub mod names;
pub mod shutdown;
pub mod tracker;
pub mod wire;
