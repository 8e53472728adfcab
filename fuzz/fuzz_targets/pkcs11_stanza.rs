//! Decodes arbitrary bytes as a keyholder stanza and reads them as a PKCS#11 stanza body
//! (version 1 or 2, AES-GCM or RSA-OAEP: the token and key it names, its mechanism): must
//! never panic; a decoded stanza re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_keyholder::{KeyholderKind, Stanza};
use strongroom_pkcs11::Pkcs11Keyholder;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Stanza::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = Pkcs11Keyholder::locate(&s);
        let _ = Pkcs11Keyholder::mechanism_of(&s);
    }
    let s = Stanza {
        kind: KeyholderKind::Pkcs11,
        id: [0; 8],
        body: data.to_vec(),
    };
    let located = Pkcs11Keyholder::locate(&s);
    let mechanism = Pkcs11Keyholder::mechanism_of(&s);
    // A body that names a valid location parsed whole, so its mechanism is known.
    if let Ok(Some(at)) = located {
        assert!(!at.token_label.is_empty() && at.token_label.len() <= 32);
        assert!(mechanism.unwrap().is_some());
    }
});
