//! The tracker's HTTP side: BitTorrent announce and scrape, the status page and its JSON,
//! and Prometheus metrics, on a listener of its own (`tracker --http ADDR:PORT`).

pub mod conn;
pub mod query;
pub mod server;
