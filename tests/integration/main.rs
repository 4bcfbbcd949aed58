//! Integration tests: real `tracker` and `peer` processes, or in-process servers, on free
//! ports with temporary folders.

mod attacks;
mod bt_hostile;
mod dht;
mod dht_steer;
mod dial_abuse;
mod fake;
mod faults;
mod folders;
mod helpers;
mod hostile;
mod http_tracker;
mod links;
mod local;
mod menu;
mod never_read;
mod new_user;
mod props;
mod props_bt;
mod running_peer;
mod soak;
#[path = "../support/mod.rs"]
mod support;
mod swarm;
mod tracker;
