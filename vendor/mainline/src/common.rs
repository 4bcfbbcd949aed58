//! Miscellaneous common structs used throughout the library.

mod id;
mod immutable;
pub mod messages;
mod mutable;
mod node;
mod routing_table;

pub use id::*;
pub use immutable::*;
pub use messages::*;
pub use mutable::*;
pub use node::*;
pub use routing_table::*;
