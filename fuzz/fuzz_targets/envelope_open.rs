//! Opens arbitrary bytes as a record (one-shot, streaming and random access) under a fixed
//! vault key: must never panic and never succeed on anything but a valid record.
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::{Key256, RecordId, VaultId};
use strongroom_envelope::{Epoch, RecordContext, SegmentReader, StreamOpener, VaultKey, WrappedDek, open};

fuzz_target!(|data: &[u8]| {
    let vk = VaultKey::from_key(Epoch(1), Key256::from_slice(&[7; 32]).unwrap());
    let ctx = RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([2; 16]),
        version: 1,
    };
    let split = data.len().min(WrappedDek::LEN);
    let (wrapped, body) = data.split_at(split);
    let _ = open(&vk, &ctx, body, wrapped);
    if let Ok(mut o) = StreamOpener::new(&vk, &ctx, wrapped, body) {
        let mut out = Vec::new();
        let _ = o.read_to_end(&mut out);
    }
    if let Ok(mut r) = SegmentReader::new(&vk, &ctx, wrapped, Cursor::new(body)) {
        for i in 0..r.segment_count().min(4) {
            let _ = r.segment(i);
        }
    }
});
