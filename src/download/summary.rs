//! What a finished download reports, in a form that crosses the control API: the running
//! peer sends it to the `peer download` that handed the download over, which prints it as
//! a download of its own would.

use super::Report;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub took_secs: f64,
    /// Chunks already in place when the download started.
    pub resumed: u32,
    /// The file was complete here already; nothing was fetched.
    pub already_here: bool,
    /// Chunks written, by source.
    pub per_source: Vec<(SocketAddr, u32)>,
}

impl Report {
    pub fn summary(&self) -> Summary {
        Summary {
            name: self.name.clone(),
            path: self.path.display().to_string(),
            size: self.size,
            took_secs: self.took.as_secs_f64(),
            resumed: self.resumed,
            already_here: self.already_here,
            per_source: self.assembly.per_source.iter().map(|(a, n)| (*a, *n)).collect(),
        }
    }
}
