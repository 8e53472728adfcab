//! Parses arbitrary bytes as a public identity (binary and text form) and as a sealed
//! identity, verifies and opens what parses: must never panic, and whatever parses must
//! re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::Key256;
use strongroom_sharing::{Identity, PublicIdentity, SealedIdentity};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = PublicIdentity::decode(data) {
        assert_eq!(p.encode(), data);
        let _ = p.verify();
        let fp = p.fingerprint();
        assert!(p.confirm_fingerprint(&fp.to_string()).is_ok());
        let _ = PublicIdentity::from_text(&p.to_text());
    }
    let text = String::from_utf8_lossy(data);
    let _ = PublicIdentity::from_text(&text);
    let _ = PublicIdentity::from_text(&format!("{}{text}", PublicIdentity::TEXT_PREFIX));
    if let Ok(s) = SealedIdentity::decode(data) {
        assert_eq!(s.encode(), data);
        let key = Key256::from_slice(&[7; 32]).unwrap();
        assert!(Identity::open(&s, &key).is_err());
    }
});
