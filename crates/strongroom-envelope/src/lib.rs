//! strongroom-envelope (being written).
#![forbid(unsafe_code)]

mod keys;

pub use keys::{Epoch, VaultKey};
