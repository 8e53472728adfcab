//! Known-answer tests: frozen version-1 stanzas in `tests/data/v1/` that every release must
//! keep opening, and fixed recovery-key and KEK encodings.

use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use strongroom_crypto::Key256;
use strongroom_recovery::{
    KekKeyholder, Keyholder, KeyholderKind, PassphraseKeyholder, Profile, RawKek, RecoveryKey,
    Stanza, StanzaInfo, WrapContext,
};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/v1/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(v[field].as_str().unwrap()).unwrap()
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap()
}

fn check_opens(kh: &dyn Keyholder, v: &Value, stanza_field: &str) -> Stanza {
    let subject = bytes(v, "subject_hex");
    assert_eq!(text(v, "purpose"), "strongroom/v1/member-key");
    let ctx = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: &subject,
    };
    let stanza = Stanza::decode(&bytes(v, stanza_field)).unwrap();
    let key = kh
        .unwrap(&ctx, &stanza)
        .unwrap()
        .expect("the frozen stanza is this keyholder's");
    assert_eq!(key.expose_secret().as_slice(), bytes(v, "key_hex"));
    stanza
}

#[test]
fn frozen_passphrase_stanzas_open() {
    let data = load("passphrase.json");
    for v in data["vectors"].as_array().unwrap() {
        for field in ["passphrase", "passphrase_nfd"] {
            let kh =
                PassphraseKeyholder::new(&SecretString::from(text(v, field)), Profile::Constrained)
                    .unwrap();
            let s = check_opens(&kh, v, "stanza_hex");
            assert!(matches!(
                StanzaInfo::of(&s).unwrap(),
                StanzaInfo::Passphrase { .. }
            ));
        }
    }
}

#[test]
fn frozen_recovery_key_vector() {
    let v = load("recovery_key.json");
    let rk = RecoveryKey::parse(text(&v, "text")).unwrap();
    assert_eq!(rk.key_id().to_string(), text(&v, "key_id"));
    assert_eq!(rk.to_text().expose_secret(), text(&v, "text"));
    assert_eq!(rk.to_words().expose_secret(), text(&v, "words"));
    let from_words = RecoveryKey::parse_words(text(&v, "words")).unwrap();
    assert_eq!(from_words.to_text().expose_secret(), text(&v, "text"));
    let s = check_opens(&rk, &v, "stanza_hex");
    assert_eq!(s.kind, KeyholderKind::RecoveryKey);
    check_opens(&from_words, &v, "stanza_hex");
}

#[test]
fn frozen_raw_kek_vector() {
    let v = load("raw_kek.json");
    let kek = RawKek::from_hex(text(&v, "kek_hex")).unwrap();
    assert_eq!(kek.key_id().to_string(), text(&v, "key_id"));
    assert_eq!(kek.to_base64().expose_secret(), text(&v, "kek_base64"));
    assert_eq!(
        RawKek::from_text(text(&v, "kek_base64")).unwrap().key_id(),
        kek.key_id()
    );
    let s = check_opens(&kek, &v, "raw_kek_stanza_hex");
    assert_eq!(s.id, *kek.key_id().as_bytes());

    let locator = bytes(&v, "os_keyring_locator_hex");
    let kh = KekKeyholder::new(
        Key256::from_slice(&bytes(&v, "kek_hex")).unwrap(),
        KeyholderKind::OsKeyring,
        &locator,
    )
    .unwrap();
    let s = check_opens(&kh, &v, "os_keyring_stanza_hex");
    assert_eq!(
        StanzaInfo::of(&s).unwrap(),
        StanzaInfo::Kek {
            kind: KeyholderKind::OsKeyring,
            key_id: kek.key_id(),
            locator
        }
    );
}

/// A frozen stanza must not open in another context or with its bytes edited.
#[test]
fn frozen_stanzas_are_bound() {
    let v = load("recovery_key.json");
    let rk = RecoveryKey::parse(text(&v, "text")).unwrap();
    let stanza = Stanza::decode(&bytes(&v, "stanza_hex")).unwrap();
    let ctx = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"another subject",
    };
    assert!(rk.unwrap(&ctx, &stanza).is_err());
}

proptest! {
    /// Stanza and body decoding on arbitrary bytes never panics.
    #[test]
    fn decoding_garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200),
                                     kind in 1u8..=5) {
        let _ = Stanza::decode(&raw);
        let mut framed = vec![1, kind];
        framed.extend_from_slice(&[0; 8]);
        framed.extend_from_slice(&(raw.len() as u32).to_be_bytes());
        framed.extend_from_slice(&raw);
        if let Ok(s) = Stanza::decode(&framed) {
            let _ = StanzaInfo::of(&s);
            let kek = RawKek::from_key(Key256::from_slice(&[7; 32]).unwrap());
            let ctx = WrapContext { purpose: "p", subject: b"s" };
            let mut mine = s.clone();
            mine.id = *kek.key_id().as_bytes();
            mine.kind = KeyholderKind::RawKek;
            let _ = kek.unwrap(&ctx, &mine);
        }
    }
}

/// `tests/data/recovery_key_text_fail.json`: inputs that must be refused, with the error
/// and the groups it must name.
#[test]
fn recovery_key_text_fail_cases() {
    use strongroom_recovery::ParseRecoveryKeyError as E;
    let path = format!(
        "{}/tests/data/recovery_key_text_fail.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let name = text(case, "name");
        let err = RecoveryKey::parse(text(case, "input")).expect_err(name);
        let (variant, groups) = match &err {
            E::Checksum { groups } => ("Checksum", Some(groups.clone())),
            E::WrongLength { groups, .. } => ("WrongLength", Some(groups.clone())),
            E::InvalidCharacter { group } => ("InvalidCharacter", Some(vec![*group])),
            E::NotARecoveryKey => ("NotARecoveryKey", None),
            E::LooksLikeWords => ("LooksLikeWords", None),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(variant, text(case, "error"), "{name}: {err}");
        if let Some(expected) = case.get("groups") {
            let expected: Vec<usize> = expected
                .as_array()
                .unwrap()
                .iter()
                .map(|g| usize::try_from(g.as_u64().unwrap()).unwrap())
                .collect();
            assert_eq!(groups.unwrap(), expected, "{name}: {err}");
        }
    }
}
