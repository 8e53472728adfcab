//! Parses arbitrary bytes as a membership log entry, a grant, a chain link, pins and a
//! keyholder record, and verifies them as a one-entry log: must never panic, and whatever
//! parses must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_sharing::{ChainLink, Grant, KeyholderRecord, LogEntry, Membership, Pins};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = LogEntry::decode(data) {
        assert_eq!(e.encode(), data);
        let _ = (e.hash(), e.seq(), e.signer(), e.body().action());
    }
    let _ = Membership::verify([data]);
    if let Some(mid) = data.len().checked_div(2) {
        let _ = Membership::verify([&data[..mid], &data[mid..]]);
    }
    if let Ok(g) = Grant::decode(data) {
        assert_eq!(g.encode(), data);
    }
    if let Ok(l) = ChainLink::decode(data) {
        assert_eq!(l.encode(), data);
    }
    if let Ok(p) = Pins::decode(data) {
        assert_eq!(p.encode(), data);
    }
    if let Ok(r) = KeyholderRecord::decode(data) {
        assert_eq!(r.encode(), data);
    }
});
