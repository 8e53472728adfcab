#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "testing")]
mod adversarial;
pub mod backend;
mod batch;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "testing")]
mod counting;
mod error;
#[cfg(feature = "testing")]
mod faulty;
mod generation;
mod memory;
mod scan;
mod store;
mod table;

#[cfg(feature = "testing")]
pub use adversarial::{AdversarialStore, ReadHook};
pub use batch::{Batch, Committed, Expect, MAX_KEY_LEN, MAX_VALUE_LEN, Op, log_key, parse_log_key};
#[cfg(feature = "testing")]
pub use counting::{Calls, CountingStore};
pub use error::StoreError;
#[cfg(feature = "testing")]
pub use faulty::FaultyStore;
pub use generation::Generation;
pub use memory::MemoryStore;
pub use scan::{Cursor, MAX_SCAN_LIMIT, Page, ScanRange};
pub use store::{
    ReadView, Row, SCHEMA_VERSION, Snapshot, Store, TableRow, Versioned, for_each_row, scan_all,
};
pub use table::Table;
