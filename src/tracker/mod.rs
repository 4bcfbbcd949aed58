//! The tracker: which peers hold which files, and who downloads what. It holds no files.

pub mod http;
pub mod metrics;
pub mod pool;
pub mod server;
pub mod state;
pub mod status;
pub mod swarms;

pub use server::{Tracker, TrackerOptions};
pub use state::{TrackerConfig, TrackerState};
