#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cache;
mod error;
mod kek;
mod keyholder;
mod kind;
mod stanza;

pub use cache::UnwrapCache;
pub use error::{CustodyError, CustodyProblem, KeyholderError};
pub use kek::{KekKeyholder, MAX_LOCATOR};
pub use keyholder::{Keyholder, unwrap_any};
pub use kind::KeyholderKind;
pub use stanza::{Stanza, WrapContext, stanza_aad};
