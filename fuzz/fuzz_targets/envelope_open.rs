//! Opens arbitrary bytes as a record (one-shot, streaming and random access) under a fixed
//! vault key: must never panic and never succeed on anything but a valid record. Through an
//! `OpenCache`, twice (the second open may use the keys the first remembered), it gives what
//! a plain open gives.
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::{Key256, RecordId, VaultId};
use strongroom_envelope::{
    BodyCheck, Epoch, OpenCache, RecordContext, SegmentReader, StreamOpener, VaultKey, WrappedDek,
    open,
};

fuzz_target!(|data: &[u8]| {
    let vk = VaultKey::from_key(Epoch(1), Key256::from_slice(&[7; 32]).unwrap());
    let ctx = RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([2; 16]),
        version: 1,
    };
    let split = data.len().min(WrappedDek::LEN);
    let (wrapped, body) = data.split_at(split);
    let plain = open(&vk, &ctx, body, wrapped).map(|p| p.expose_secret().to_vec());
    let cache = OpenCache::new(4);
    for _ in 0..2 {
        let cached = cache
            .open(&vk, &ctx, body, wrapped, BodyCheck::Always)
            .map(|p| p.expose_secret().to_vec());
        assert_eq!(
            cached.as_ref().map_err(|e| format!("{e:?}")),
            plain.as_ref().map_err(|e| format!("{e:?}"))
        );
    }
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
