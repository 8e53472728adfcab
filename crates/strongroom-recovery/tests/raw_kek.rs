//! Raw KEK keyholder: loading, wrong-KEK detection, rotation, key files, KEK stanzas with
//! a locator.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose;
use proptest::prelude::*;
use secrecy::ExposeSecret;
use strongroom_crypto::Key256;
/// The KEK's bytes as a key, for the KEK wrapping shared with custody keyholders.
fn key_of(kek: &RawKek) -> Key256 {
    Key256::from_slice(kek.expose_secret()).unwrap()
}

use strongroom_recovery::{
    KekKeyholder, Keyholder, KeyholderError, KeyholderKind, LoadKekError, RawKek, StanzaInfo,
    WrapContext, unwrap_any,
};

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/vault-key",
        subject: b"vault-1",
    }
}

#[test]
fn round_trip_and_layout() {
    let kek = RawKek::generate().unwrap();
    let key = Key256::generate().unwrap();
    let s = kek.wrap(&ctx(), &key).unwrap();
    assert_eq!(s.kind, KeyholderKind::RawKek);
    assert_eq!(&s.id, kek.key_id().as_bytes());
    assert_eq!(s.body.len(), 77);
    assert_eq!(s.body[..5], [1, 0, 0, 0, 0]);
    assert!(bool::from(
        kek.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
    ));
    assert_eq!(
        StanzaInfo::of(&s).unwrap(),
        StanzaInfo::Kek {
            kind: KeyholderKind::RawKek,
            key_id: kek.key_id(),
            locator: vec![]
        }
    );
    assert!(kek.describe().contains(&kek.key_id().to_string()));
}

/// A mismatched ENCRYPTION_KEY is recognised by its id before any decryption, and the
/// caller-facing error names the id of the key that was tried.
#[test]
fn wrong_kek_is_named() {
    let right = RawKek::generate().unwrap();
    let wrong = RawKek::generate().unwrap();
    let s = right.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    assert!(wrong.unwrap(&ctx(), &s).unwrap().is_none());
    let err = unwrap_any(&wrong, &ctx(), &[s]).unwrap_err();
    match &err {
        KeyholderError::WrongKek { key_id } => assert_eq!(key_id, &wrong.key_id().to_string()),
        e => panic!("{e:?}"),
    }
    assert!(
        err.to_string().contains(&wrong.key_id().to_string()),
        "{err}"
    );
    // No raw-KEK stanza at all is a different situation.
    assert!(matches!(
        unwrap_any(&wrong, &ctx(), &[]),
        Err(KeyholderError::NoMatchingStanza {
            kind: KeyholderKind::RawKek
        })
    ));
}

#[test]
fn tampering_and_context_fail() {
    let kek = RawKek::generate().unwrap();
    let s = kek.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
    for i in 5..s.body.len() {
        let mut t = s.clone();
        t.body[i] ^= 0x80;
        assert!(
            matches!(kek.unwrap(&ctx(), &t), Err(KeyholderError::Crypto(_))),
            "{i}"
        );
    }
    let mut t = s.clone();
    t.body[4] = 1; // locator length now 1: body no longer parses
    assert!(matches!(
        kek.unwrap(&ctx(), &t),
        Err(KeyholderError::Malformed(_))
    ));
    let other = WrapContext {
        purpose: "strongroom/v1/vault-key",
        subject: b"vault-2",
    };
    assert!(matches!(
        kek.unwrap(&other, &s),
        Err(KeyholderError::Crypto(_))
    ));
    // Relabelled as another kind: the raw KEK ignores it, and a keyring keyholder with the
    // same KEK cannot open it (the kind is bound into the key and the associated data).
    let mut relabelled = s.clone();
    relabelled.kind = KeyholderKind::OsKeyring;
    assert!(kek.unwrap(&ctx(), &relabelled).unwrap().is_none());
    let same_kek = RawKek::from_key(Key256::from_slice(kek.expose_secret()).unwrap());
    let kh = KekKeyholder::new(key_of(&same_kek), KeyholderKind::OsKeyring, b"").unwrap();
    assert!(matches!(
        kh.unwrap(&ctx(), &relabelled),
        Err(KeyholderError::Crypto(_))
    ));
}

/// Rotation at this level: old KEK wraps K, new KEK wraps K, old stanza removed: the old
/// KEK no longer opens, the new one does; in between, both do.
#[test]
fn rotation() {
    let key = Key256::generate().unwrap();
    let old = RawKek::generate().unwrap();
    let new = RawKek::generate().unwrap();
    let mut stanzas = vec![old.wrap(&ctx(), &key).unwrap()];

    let (k, _) = unwrap_any(&old, &ctx(), &stanzas).unwrap();
    stanzas.push(new.wrap(&ctx(), &k).unwrap());
    // Crash here: both open.
    assert!(bool::from(
        unwrap_any(&old, &ctx(), &stanzas).unwrap().0.ct_eq(&key)
    ));
    let (k2, i) = unwrap_any(&new, &ctx(), &stanzas).unwrap();
    assert!(bool::from(k2.ct_eq(&key)));
    assert_eq!(i, 1);
    // Remove the old stanza, found by the old KEK's id (no key needed).
    let old_id = *old.key_id().as_bytes();
    stanzas.retain(|s| s.id != old_id);

    assert!(bool::from(
        unwrap_any(&new, &ctx(), &stanzas).unwrap().0.ct_eq(&key)
    ));
    assert!(matches!(
        unwrap_any(&old, &ctx(), &stanzas),
        Err(KeyholderError::WrongKek { .. })
    ));
}

#[test]
fn keyring_style_stanza_carries_its_locator() {
    let kek = RawKek::generate().unwrap();
    let id = kek.key_id();
    let kh = KekKeyholder::new(
        key_of(&kek),
        KeyholderKind::OsKeyring,
        b"strongroom/vault-1",
    )
    .unwrap();
    assert_eq!(kh.kind(), KeyholderKind::OsKeyring);
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    assert_eq!(s.kind, KeyholderKind::OsKeyring);
    assert_eq!(
        StanzaInfo::of(&s).unwrap(),
        StanzaInfo::Kek {
            kind: KeyholderKind::OsKeyring,
            key_id: id,
            locator: b"strongroom/vault-1".to_vec()
        }
    );
    assert!(bool::from(
        kh.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
    ));
    // The locator is authenticated: redirecting the stanza to another entry fails.
    let mut t = s.clone();
    let pos = 5 + b"strongroom/vault-".len();
    t.body[pos] = b'2';
    assert!(matches!(
        kh.unwrap(&ctx(), &t),
        Err(KeyholderError::Crypto(_))
    ));
    // A raw KEK of the same bytes does not claim an os-keyring stanza.
    let raw = RawKek::from_key(Key256::from_slice(kh.expose_secret()).unwrap());
    assert!(raw.unwrap(&ctx(), &s).unwrap().is_none());
    assert!(matches!(
        unwrap_any(&kh, &ctx(), &[]),
        Err(KeyholderError::NoMatchingStanza { .. })
    ));
    let other =
        KekKeyholder::new(Key256::generate().unwrap(), KeyholderKind::OsKeyring, b"x").unwrap();
    assert!(matches!(
        unwrap_any(&other, &ctx(), &[s]),
        Err(KeyholderError::WrongKek { .. })
    ));
}

fn key_file(contents: &str, mode: u32) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
    f
}

#[test]
fn key_files() {
    let kek = RawKek::generate().unwrap();
    let text = format!("{}\n", kek.to_base64().expose_secret());
    for mode in [0o600, 0o400, 0o640] {
        let f = key_file(&text, mode);
        assert_eq!(
            RawKek::from_file(f.path()).unwrap().key_id(),
            kek.key_id(),
            "{mode:o}"
        );
    }
    let f = key_file(&text, 0o644);
    match RawKek::from_file(f.path()).unwrap_err() {
        LoadKekError::WorldReadable { mode, path } => {
            assert_eq!(mode, 0o644);
            assert_eq!(path, f.path());
        }
        e => panic!("{e:?}"),
    }
    let msg = RawKek::from_file(f.path()).unwrap_err().to_string();
    assert!(msg.contains("chmod 600") && msg.contains("0644"), "{msg}");
    assert!(!msg.contains(kek.to_base64().expose_secret()));
    assert_eq!(
        RawKek::from_file_allow_world_readable(f.path())
            .unwrap()
            .key_id(),
        kek.key_id()
    );

    let hex_file = key_file(&format!("{}\n", hex::encode(kek.expose_secret())), 0o600);
    assert_eq!(
        RawKek::from_file(hex_file.path()).unwrap().key_id(),
        kek.key_id()
    );

    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        RawKek::from_file(dir.path()),
        Err(LoadKekError::NotAFile { .. })
    ));
    assert!(matches!(
        RawKek::from_file(dir.path().join("missing")),
        Err(LoadKekError::Io { .. })
    ));
    let big = key_file(&"A".repeat(5000), 0o600);
    assert!(matches!(
        RawKek::from_file(big.path()),
        Err(LoadKekError::FileTooLarge { max: 4096, .. })
    ));
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), [0xff, 0xfe, 0x00]).unwrap();
    std::fs::set_permissions(garbage.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        RawKek::from_file(garbage.path()),
        Err(LoadKekError::NotBase64)
    ));
    let err: KeyholderError = LoadKekError::Empty.into();
    assert!(matches!(err, KeyholderError::InvalidKeyText(_)));
}

proptest! {
    #[test]
    fn every_text_form_round_trips(bytes in any::<[u8; 32]>(), pad in any::<bool>(), ws in "[ \\t\\n]{0,3}") {
        let kek = RawKek::from_key(Key256::from_slice(&bytes).unwrap());
        let forms = [
            hex::encode(bytes),
            hex::encode_upper(bytes),
            if pad { general_purpose::STANDARD.encode(bytes) } else { general_purpose::STANDARD_NO_PAD.encode(bytes) },
            if pad { general_purpose::URL_SAFE.encode(bytes) } else { general_purpose::URL_SAFE_NO_PAD.encode(bytes) },
        ];
        for f in forms {
            let parsed = RawKek::from_text(&format!("{ws}{f}{ws}")).unwrap();
            prop_assert_eq!(parsed.expose_secret(), &bytes);
        }
        prop_assert_eq!(RawKek::from_base64(kek.to_base64().expose_secret()).unwrap().key_id(), kek.key_id());
    }

    #[test]
    fn loading_never_panics(s in "\\PC{0,120}") {
        let _ = RawKek::from_text(&s);
        let _ = RawKek::from_hex(&s);
        let _ = RawKek::from_base64(&s);
    }

    #[test]
    fn kek_body_round_trips(locator in proptest::collection::vec(any::<u8>(), 0..64)) {
        let kek = RawKek::generate().unwrap();
        let id = kek.key_id();
        let kh = KekKeyholder::new(key_of(&kek), KeyholderKind::OsKeyring, &locator).unwrap();
        let key = Key256::generate().unwrap();
        let s = kh.wrap(&ctx(), &key).unwrap();
        prop_assert_eq!(s.body.len(), 77 + locator.len());
        prop_assert_eq!(StanzaInfo::of(&s).unwrap(), StanzaInfo::Kek { kind: KeyholderKind::OsKeyring, key_id: id, locator });
        prop_assert!(bool::from(kh.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)));
    }
}

#[test]
fn an_overlong_key_text_reports_the_bytes_it_would_decode_to() {
    // Up to 88 characters are decoded: 86 characters and padding decode to 64 bytes.
    let text = format!("{}==", "A".repeat(86));
    match RawKek::from_base64(&text) {
        Err(LoadKekError::WrongLength { got }) => assert_eq!(got, 64),
        other => panic!("{other:?}"),
    }
    // Longer texts are refused before decoding, with the length they stand for.
    for (len, got) in [(89, 66), (100, 75), (400, 300)] {
        match RawKek::from_base64(&"A".repeat(len)) {
            Err(LoadKekError::WrongLength { got: g }) => assert_eq!(g, got, "{len} characters"),
            other => panic!("{len} characters: {other:?}"),
        }
    }
}

#[test]
fn a_key_file_of_exactly_the_size_limit_is_read_whole() {
    // 4096 bytes: the key (hex) at the very end, after blank lines, so a read one byte
    // short would cut it.
    let kek = RawKek::generate().unwrap();
    let text = hex::encode(kek.expose_secret());
    let contents = format!("{}{text}", "\n".repeat(4096 - text.len()));
    assert_eq!(contents.len(), 4096);
    let f = key_file(&contents, 0o600);
    let loaded = RawKek::from_file(f.path()).unwrap();
    assert_eq!(loaded.expose_secret(), kek.expose_secret());
    // One byte more is refused.
    let f = key_file(&format!("\n{contents}"), 0o600);
    assert!(matches!(
        RawKek::from_file(f.path()),
        Err(LoadKekError::FileTooLarge { max: 4096, .. })
    ));
}
