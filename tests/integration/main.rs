//! Integration tests: real `tracker` and `peer` processes, or in-process servers, on free
//! ports with temporary folders.

mod faults;
mod helpers;
mod menu;
mod props;
mod swarm;
mod tracker;
