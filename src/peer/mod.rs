//! A peer: shares `DIR/files`, serves chunks, downloads from the swarm.

pub mod monitor;
pub mod node;
pub mod server;

pub use node::{Node, NodeConfig, NodeError};
