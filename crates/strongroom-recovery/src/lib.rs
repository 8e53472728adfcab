//! strongroom-recovery (being written).
#![forbid(unsafe_code)]

mod keyholder;

pub use keyholder::{Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, unwrap_any};
