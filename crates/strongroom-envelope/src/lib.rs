#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cache;
mod error;
mod format;
#[cfg(test)]
mod kat;
mod keys;
mod record;
mod stream;

pub use cache::OpenCache;
pub use error::EnvelopeError;
pub use format::{
    BodyHeader, RecordContext, SEGMENT_CT_LEN, SEGMENT_LEN, TAG_LEN, WrappedDek, body_digest,
    body_len,
};
pub use keys::{Epoch, VaultKey};
pub use record::{
    BodyCheck, SealedRecord, open, open_with, reencrypt, rewrap, rewrap_batch, rewrap_with_body,
    seal, seal_in,
};
pub use stream::{SegmentReader, StreamOpener, StreamSealer};
pub use strongroom_crypto::aead::Suite;
