//! A peer: shares `DIR/files`, serves chunks, downloads from the swarm.

pub mod bt_serve;
pub mod monitor;
pub mod node;
pub mod open_files;
pub mod options;
pub mod seeding;
pub mod server;
pub mod upload;

pub use node::{Node, NodeConfig, NodeError};
