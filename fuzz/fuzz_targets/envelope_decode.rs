//! Parses arbitrary bytes as a body header and as a wrapped DEK: must never panic, and
//! whatever parses must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_envelope::{BodyHeader, WrappedDek};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = BodyHeader::decode(data) {
        assert_eq!(&h.encode()[..], &data[..BodyHeader::LEN]);
    }
    if let Ok(w) = WrappedDek::from_bytes(data) {
        assert_eq!(&w.as_bytes()[..], data);
        let _ = (w.epoch(), w.key_id(), w.version(), w.sealed_epoch(), w.body_digest());
    }
});
