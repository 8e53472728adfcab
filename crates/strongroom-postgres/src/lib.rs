#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod options;
mod schema;
mod store;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use options::PostgresOptions;
pub use store::PostgresStore;
pub use strongroom_store;
