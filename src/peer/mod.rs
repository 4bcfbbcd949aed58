//! A peer: shares `DIR/files`, serves chunks, downloads from the swarm.

pub mod manifest_cache;
pub mod monitor;
pub mod node;
pub mod server;
pub mod shares;
pub mod tracker_client;

pub use node::{Node, NodeConfig, NodeError};
