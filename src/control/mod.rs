//! The running peer's control API: a local HTTP API (JSON) through which `peer status`,
//! `pause`, `resume`, `remove`, `stop` and a `download` handed over reach the peer that
//! serves a folder. Bound to 127.0.0.1 on a port the OS picks unless `--control` names
//! another address; its address and a random secret are written into the folder's lock
//! file, which only its owner can read.

pub mod auth;
pub mod client;
pub mod jobs;
pub mod rates;
pub mod server;
