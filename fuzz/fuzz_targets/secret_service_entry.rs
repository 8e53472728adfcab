//! Parses arbitrary bytes as the Secret Service item locator a stanza carries (collection,
//! service, entry): must never panic; a parsed locator re-encodes to the same bytes, and its
//! next generation (the item a rotation moves to) is again a valid locator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_secret_service::SecretServiceEntry;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = SecretServiceEntry::from_locator(data) {
        assert_eq!(entry.to_locator(), data);
        let _ = entry.to_string();
        let next = entry.next_generation();
        assert!(next.generation() > entry.generation() || entry.generation() == u32::MAX);
        assert_eq!(
            SecretServiceEntry::from_locator(&next.to_locator()).ok(),
            Some(next)
        );
    }
});
