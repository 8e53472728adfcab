#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod format;
#[cfg(test)]
mod kat;
mod keys;
mod record;
mod stream;

pub use error::EnvelopeError;
pub use format::{
    BodyHeader, RecordContext, SEGMENT_CT_LEN, SEGMENT_LEN, TAG_LEN, WrappedDek, body_len,
};
pub use keys::{Epoch, VaultKey};
pub use record::{SealedRecord, open, reencrypt, rewrap, rewrap_batch, seal};
pub use stream::{SegmentReader, StreamOpener, StreamSealer};
pub use strongroom_crypto::aead::Suite;
