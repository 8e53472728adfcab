//! Parses arbitrary text as a recovery key (text form, word form, either), a recovery key
//! id and a raw KEK: must never panic, and whatever parses must round-trip through its
//! canonical form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_recovery::secrecy::ExposeSecret;
use strongroom_recovery::{RawKek, RecoveryKey, RecoveryKeyId};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = RecoveryKey::parse(s) {
        let again = RecoveryKey::parse(k.to_text().expose_secret()).expect("canonical text parses");
        assert_eq!(again.key_id(), k.key_id());
    }
    if let Ok(k) = RecoveryKey::parse_words(s) {
        let again = RecoveryKey::parse_words(k.to_words().expose_secret()).expect("words parse");
        assert_eq!(again.key_id(), k.key_id());
    }
    if let Ok(k) = RecoveryKey::parse_any(s) {
        let _ = k.key_id().to_string();
    }
    if let Ok(id) = s.parse::<RecoveryKeyId>() {
        assert_eq!(id.to_string().parse::<RecoveryKeyId>().ok(), Some(id));
    }
    if let Ok(kek) = RawKek::from_text(s) {
        let again = RawKek::from_base64(kek.to_base64().expose_secret()).expect("base64 parses");
        assert_eq!(again.key_id(), kek.key_id());
    }
});
