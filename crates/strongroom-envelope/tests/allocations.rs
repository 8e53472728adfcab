//! Opening a record puts its plaintext in one buffer of exactly the plaintext's size, which
//! becomes the returned secret: a buffer that grew (reallocated) or was copied would leave
//! freed, unzeroized copies of the plaintext on the heap. Counted with dhat's heap
//! statistics; one test per binary, since the allocator is process-wide.

use strongroom_crypto::{RecordId, VaultId};
use strongroom_envelope::{Epoch, RecordContext, SEGMENT_LEN, Suite, VaultKey, open, seal};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn opening_a_record_allocates_its_plaintext_exactly_once() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    let ctx = RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([2; 16]),
        version: 1,
    };
    // One segment, several full segments plus a remainder, several full segments exactly.
    for len in [100, 3 * SEGMENT_LEN + 100, 2 * SEGMENT_LEN] {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let plaintext = vec![0x5a; len];
            let sealed = seal(&vk, suite, &ctx, &plaintext).unwrap();
            let before = dhat::HeapStats::get();
            let plain = open(&vk, &ctx, &sealed.body, sealed.wrapped_dek.as_bytes()).unwrap();
            let after = dhat::HeapStats::get();
            assert_eq!(plain.expose_secret(), &plaintext[..]);
            // Every allocation of at least the plaintext's size: only the plaintext's own.
            let bytes = after.total_bytes - before.total_bytes;
            let blocks = after.total_blocks - before.total_blocks;
            assert!(
                bytes >= len as u64 && bytes < len as u64 + 1024,
                "{len} bytes ({suite:?}) opened with {bytes} bytes allocated in {blocks} blocks"
            );
            assert!(
                after.curr_bytes - before.curr_bytes == len,
                "{len} bytes ({suite:?}): {} bytes still held",
                after.curr_bytes - before.curr_bytes
            );
        }
    }
}
