//! Passphrase keyholder: round trips, wrong passphrase, downgrade and tampering.

use secrecy::SecretString;
use strongroom_crypto::{Argon2idParams, CryptoError, Key256};
use strongroom_recovery::{
    Keyholder, KeyholderError, KeyholderKind, PassphraseKeyholder, Profile, Stanza, StanzaInfo,
    WrapContext, unwrap_any,
};

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-1/member-1",
    }
}

fn holder(pass: &str) -> PassphraseKeyholder {
    PassphraseKeyholder::new(&SecretString::from(pass), Profile::Constrained).unwrap()
}

fn same(a: &Key256, b: &Key256) -> bool {
    bool::from(a.ct_eq(b))
}

/// Rewrites the m, t, p fields of a stored stanza, as a malicious storage could.
fn with_params(stanza: &Stanza, p: Argon2idParams) -> Stanza {
    let mut s = stanza.clone();
    s.body[1..5].copy_from_slice(&p.memory_kib.to_be_bytes());
    s.body[5..9].copy_from_slice(&p.iterations.to_be_bytes());
    s.body[9..13].copy_from_slice(&p.parallelism.to_be_bytes());
    s
}

#[test]
fn constrained_round_trip_and_fresh_wraps() {
    let kh = holder("correct horse battery staple");
    let key = Key256::generate().unwrap();
    let a = kh.wrap(&ctx(), &key).unwrap();
    let b = kh.wrap(&ctx(), &key).unwrap();
    assert_eq!(a.kind, KeyholderKind::Passphrase);
    assert_ne!(a.id, b.id, "stanza ids are random");
    assert_ne!(a.body[13..29], b.body[13..29], "salts are fresh");
    assert!(same(&kh.unwrap(&ctx(), &a).unwrap().unwrap(), &key));
    assert!(same(&kh.unwrap(&ctx(), &b).unwrap().unwrap(), &key));
    assert_eq!(
        StanzaInfo::of(&a).unwrap(),
        StanzaInfo::Passphrase {
            params: Argon2idParams::CONSTRAINED
        }
    );
}

#[test]
fn default_profile_round_trip() {
    let kh = PassphraseKeyholder::new(&SecretString::from("hunter2 but longer"), Profile::Default)
        .unwrap();
    assert_eq!(kh.params(), Argon2idParams::DEFAULT);
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    assert_eq!(
        StanzaInfo::of(&s).unwrap(),
        StanzaInfo::Passphrase {
            params: Argon2idParams::DEFAULT
        }
    );
    // Unwrapping uses the stanza's parameters, whatever the keyholder's own profile.
    let other_profile = holder("hunter2 but longer");
    assert!(same(
        &other_profile.unwrap(&ctx(), &s).unwrap().unwrap(),
        &key
    ));
}

#[test]
fn custom_profile_is_used_and_checked() {
    let p = Argon2idParams {
        memory_kib: 20 * 1024,
        iterations: 2,
        parallelism: 2,
    };
    let kh = PassphraseKeyholder::new(&SecretString::from("pw"), Profile::Custom(p)).unwrap();
    let s = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    assert_eq!(
        StanzaInfo::of(&s).unwrap(),
        StanzaInfo::Passphrase { params: p }
    );
    let low = Argon2idParams { iterations: 1, ..p };
    let err =
        PassphraseKeyholder::new(&SecretString::from("pw"), Profile::Custom(low)).unwrap_err();
    assert!(
        err.to_string().contains("below the enforced floor"),
        "{err}"
    );
}

#[test]
fn wrong_passphrase_is_its_own_error() {
    let key = Key256::generate().unwrap();
    let s = holder("right").wrap(&ctx(), &key).unwrap();
    let err = holder("wrong").unwrap(&ctx(), &s).unwrap_err();
    assert!(matches!(err, KeyholderError::WrongPassphrase), "{err}");
    let err = unwrap_any(&holder("Right"), &ctx(), &[s]).unwrap_err();
    assert!(matches!(err, KeyholderError::WrongPassphrase), "{err}");
    assert_eq!(err.to_string(), "wrong passphrase");
}

#[test]
fn nfc_forms_open_the_same_stanza() {
    let key = Key256::generate().unwrap();
    let s = holder("cr\u{e8}me br\u{fb}l\u{e9}e")
        .wrap(&ctx(), &key)
        .unwrap();
    let decomposed = holder("cre\u{300}me bru\u{302}le\u{301}e");
    assert!(same(&decomposed.unwrap(&ctx(), &s).unwrap().unwrap(), &key));
}

#[test]
fn context_is_bound() {
    let kh = holder("pw");
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    let other = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-2/member-1",
    };
    assert!(matches!(
        kh.unwrap(&other, &s),
        Err(KeyholderError::WrongPassphrase)
    ));
}

/// A storage that lowers any cost parameter below the floor is refused with
/// `KdfBelowFloor` (checked before Argon2id runs), never silently used.
#[test]
fn downgrade_below_floor_is_refused() {
    let kh = holder("pw");
    let s = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    let f = Argon2idParams::FLOOR;
    for lowered in [
        Argon2idParams {
            memory_kib: f.memory_kib - 1024,
            ..f
        },
        Argon2idParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        },
        Argon2idParams { iterations: 1, ..f },
        Argon2idParams {
            parallelism: 0,
            ..f
        },
    ] {
        let err = kh.unwrap(&ctx(), &with_params(&s, lowered)).unwrap_err();
        assert!(
            matches!(
                err,
                KeyholderError::Crypto(CryptoError::KdfBelowFloor { params }) if params == lowered
            ),
            "{lowered}: {err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("below the enforced floor") && msg.contains("downgrade"),
            "{msg}"
        );
        // unwrap_any surfaces the same refusal
        let err = unwrap_any(&kh, &ctx(), &[with_params(&s, lowered)]).unwrap_err();
        assert!(matches!(
            err,
            KeyholderError::Crypto(CryptoError::KdfBelowFloor { .. })
        ));
    }
}

/// Editing the parameters without going below the floor fails authentication: they are
/// part of the associated data.
#[test]
fn parameter_edit_above_floor_fails_authentication() {
    let kh = holder("pw");
    let s = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    let raised = Argon2idParams {
        iterations: 3,
        ..Argon2idParams::FLOOR
    };
    assert!(matches!(
        kh.unwrap(&ctx(), &with_params(&s, raised)),
        Err(KeyholderError::WrongPassphrase)
    ));
    let huge = Argon2idParams {
        memory_kib: u32::MAX,
        ..Argon2idParams::FLOOR
    };
    assert!(matches!(
        kh.unwrap(&ctx(), &with_params(&s, huge)),
        Err(KeyholderError::Crypto(CryptoError::KdfAboveCeiling { .. }))
    ));
}

#[test]
fn tampering_anywhere_fails() {
    let kh = holder("pw");
    let s = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    // salt, nonce, ciphertext and tag bytes (the parameters are covered above)
    for i in [13, 28, 29, 52, 53, 84, 85, 100] {
        let mut t = s.clone();
        t.body[i] ^= 0x01;
        assert!(
            matches!(kh.unwrap(&ctx(), &t), Err(KeyholderError::WrongPassphrase)),
            "byte {i}"
        );
    }
    let mut t = s.clone();
    t.id[0] ^= 1;
    assert!(matches!(
        kh.unwrap(&ctx(), &t),
        Err(KeyholderError::WrongPassphrase)
    ));
    let mut t = s.clone();
    t.body.pop();
    assert!(matches!(
        kh.unwrap(&ctx(), &t),
        Err(KeyholderError::Malformed(_))
    ));
    let mut t = s.clone();
    t.body[0] = 2;
    let err = kh.unwrap(&ctx(), &t).unwrap_err();
    assert!(err.to_string().contains("unknown version 2"), "{err}");
}

#[test]
fn other_kinds_are_not_mine() {
    let kh = holder("pw");
    let mut s = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    s.kind = KeyholderKind::RecoveryKey;
    assert!(kh.unwrap(&ctx(), &s).unwrap().is_none());
    assert!(matches!(
        unwrap_any(&kh, &ctx(), &[s]),
        Err(KeyholderError::NoMatchingStanza {
            kind: KeyholderKind::Passphrase
        })
    ));
}

/// Changing a passphrase at this level: new stanza added, verified, old removed.
#[test]
fn change_passphrase() {
    let key = Key256::generate().unwrap();
    let old = holder("old passphrase");
    let new = holder("new passphrase");
    let mut stanzas = vec![old.wrap(&ctx(), &key).unwrap()];
    let (k, _) = unwrap_any(&old, &ctx(), &stanzas).unwrap();
    stanzas.push(new.wrap(&ctx(), &k).unwrap());
    let (_, i) = unwrap_any(&new, &ctx(), &stanzas).unwrap();
    assert_eq!(i, 1);
    let old_id = stanzas[0].id;
    stanzas.retain(|s| s.id != old_id);
    assert!(same(&unwrap_any(&new, &ctx(), &stanzas).unwrap().0, &key));
    assert!(matches!(
        unwrap_any(&old, &ctx(), &stanzas),
        Err(KeyholderError::WrongPassphrase)
    ));
}

#[test]
fn describe_shows_no_secret() {
    let kh = holder("sekrit-words");
    let d = kh.describe();
    assert!(d.starts_with("passphrase"), "{d}");
    assert!(!d.contains("sekrit"), "{d}");
}
