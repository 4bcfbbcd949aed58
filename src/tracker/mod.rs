//! The tracker: which peers hold which files, and who downloads what. It holds no files.

pub mod pool;
pub mod server;
pub mod session;
pub mod state;

pub use server::{Tracker, TrackerOptions};
pub use state::{TrackerConfig, TrackerState};
