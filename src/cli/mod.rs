//! What the `peer` binary does, kept out of the binary so it can be tested.

pub mod app;
pub mod commands;
pub mod links;
pub mod menu;
pub mod rate;
pub mod remote;
pub mod settings;
