#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod options;
mod schema;
mod store;

pub use options::{SqliteOptions, Synchronous};
pub use store::SqliteStore;
pub use strongroom_store;
