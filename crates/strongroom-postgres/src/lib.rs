#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod connect;
mod conninfo;
mod options;
mod schema;
mod store;
#[cfg(feature = "test-server")]
pub mod test_server;
mod tls;

pub use connect::{ConnectionSecurity, TlsSession};
pub use conninfo::SslMode;
pub use options::PostgresOptions;
pub use store::PostgresStore;
pub use strongroom_store;
