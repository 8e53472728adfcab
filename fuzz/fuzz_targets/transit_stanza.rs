//! Decodes arbitrary bytes as a keyholder stanza and reads them as a Transit stanza body
//! (the namespace, mount and key it names, the key version of its ciphertext): must never
//! panic; a decoded stanza re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_keyholder::{KeyholderKind, Stanza};
use strongroom_transit::TransitKeyholder;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Stanza::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = TransitKeyholder::locate(&s);
        let _ = TransitKeyholder::key_version_of(&s);
    }
    let s = Stanza {
        kind: KeyholderKind::Transit,
        id: [0; 8],
        body: data.to_vec(),
    };
    if let Ok(Some(location)) = TransitKeyholder::locate(&s) {
        assert!(!location.mount.is_empty() && !location.key.is_empty());
    }
    let _ = TransitKeyholder::key_version_of(&s);
});
