//! Decodes arbitrary bytes as a keyholder stanza and its body (every kind), and tries a
//! fixed recovery key and raw KEK on it: must never panic; a decoded stanza re-encodes to
//! the same bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::Key256;
use strongroom_recovery::{
    Keyholder, KeyholderKind, RawKek, RecoveryKey, RecoveryKeyId, Stanza, StanzaInfo, WrapContext,
};

fn keys() -> &'static (RecoveryKey, RawKek) {
    static KEYS: OnceLock<(RecoveryKey, RawKek)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            RecoveryKey::parse(
                "SRK1Q-YJFRJ-2Q59R-QVSK7-UNXFU-W2QFY-5ERTU-7AYVS-VGSZP-LA70F-TX80N-DJCE4-M4QSY-8LD5V",
            )
            .expect("fixed key"),
            RawKek::from_key(Key256::from_slice(&[0x40; 32]).expect("32 bytes")),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let ctx = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"fuzz",
    };
    if let Ok(s) = Stanza::decode(data) {
        assert_eq!(s.encode(), data);
        let _ = StanzaInfo::of(&s);
        let _ = RecoveryKeyId::of_stanza(&s);
    }
    // The body alone, as each kind, with the fixed keys' stanza ids so their unwrap paths
    // (body parsing, AEAD) run.
    let (rk, kek) = keys();
    for kind in KeyholderKind::ALL {
        let mut s = Stanza {
            kind,
            id: [0; 8],
            body: data.to_vec(),
        };
        let _ = StanzaInfo::of(&s);
        s.id = rk.stanza_id();
        let _ = rk.unwrap(&ctx, &s);
        s.id = *kek.key_id().as_bytes();
        let _ = kek.unwrap(&ctx, &s);
    }
});
