//! What this peer holds: the files it shares (complete or being downloaded) and the cache
//! of their manifests. The peer server reads from it, the downloader and the file monitor
//! write to it.

pub mod found;
pub mod manifest_cache;
pub mod shares;
pub mod tracker_lists;
