//! `SecretBytes` takes a vector of exactly its length as it is, and copies one with spare
//! capacity into an exact buffer (wiping the vector) rather than letting it shrink in place
//! through a reallocation that would leave a freed copy. Counted with dhat's heap
//! statistics; one test per binary, since the allocator is process-wide.

use strongroom_crypto::SecretBytes;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn a_secret_keeps_an_exact_vector_and_copies_one_with_spare_capacity_once() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let len = 4096;

    let exact = vec![7u8; len];
    assert_eq!(exact.capacity(), len);
    let ptr = exact.as_ptr();
    let before = dhat::HeapStats::get();
    let secret = SecretBytes::from(exact);
    let after = dhat::HeapStats::get();
    assert_eq!(
        after.total_blocks, before.total_blocks,
        "an exact vector was copied"
    );
    assert_eq!(secret.expose_secret().as_ptr(), ptr);
    assert_eq!(secret.expose_secret(), &[7u8; 4096][..]);

    let mut spare = Vec::with_capacity(2 * len);
    spare.extend_from_slice(&[9u8; 4096]);
    let ptr = spare.as_ptr();
    let before = dhat::HeapStats::get();
    let secret = SecretBytes::from(spare);
    let after = dhat::HeapStats::get();
    assert_eq!(after.total_blocks - before.total_blocks, 1);
    assert_eq!(after.total_bytes - before.total_bytes, len as u64);
    assert_ne!(
        secret.expose_secret().as_ptr(),
        ptr,
        "shrunk in place, not copied"
    );
    assert_eq!(secret.expose_secret(), &[9u8; 4096][..]);
}
