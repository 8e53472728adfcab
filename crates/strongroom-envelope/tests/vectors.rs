//! The known-answer files, checked through the public API only: every pass vector opens to
//! its plaintext, every fail vector is refused with the named error. `tests/data/` holds
//! the current format (wrapped data key version 2), `tests/data/v1/` the frozen version-1
//! files every release must still open.

use serde_json::Value;
use strongroom_crypto::{DecodeError, Key256, RecordId, VaultId};
use strongroom_envelope::{EnvelopeError, Epoch, RecordContext, VaultKey, open};

fn load(name: &str) -> Value {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn key(v: &Value, epoch: u32) -> VaultKey {
    VaultKey::from_key(Epoch(epoch), Key256::from_slice(&h(v)).unwrap())
}

fn ctx(v: &Value) -> RecordContext {
    RecordContext {
        vault_id: v["vault_id"].as_str().unwrap().parse::<VaultId>().unwrap(),
        record_id: v["record_id"]
            .as_str()
            .unwrap()
            .parse::<RecordId>()
            .unwrap(),
        version: v["version"].as_u64().unwrap(),
    }
}

#[test]
fn pass_vectors_open() {
    for file in ["envelope_pass.json", "v1/envelope_pass.json"] {
        pass_vectors_of(file);
    }
}

fn pass_vectors_of(file: &str) {
    let f = load(file);
    let vectors = f["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for v in vectors {
        if let Some(d) = v.get("body_digest") {
            assert_eq!(
                hex::encode(strongroom_envelope::body_digest(&h(&v["body"]))),
                d.as_str().unwrap()
            );
        }
        let epoch = u32::try_from(v["epoch"].as_u64().unwrap()).unwrap();
        let vk = key(&v["vault_key"], epoch);
        assert_eq!(vk.id().to_string(), v["key_id"].as_str().unwrap());
        let plain = open(&vk, &ctx(v), &h(&v["body"]), &h(&v["wrapped_dek"]))
            .unwrap_or_else(|e| panic!("{}: {e}", v["name"]));
        assert_eq!(
            plain.expose_secret(),
            &h(&v["plaintext"])[..],
            "{}",
            v["name"]
        );
    }
}

#[test]
fn fail_vectors_are_refused_with_the_named_error() {
    for dir in ["", "v1/"] {
        fail_vectors_of(dir);
    }
}

fn fail_vectors_of(dir: &str) {
    let pass = load(&format!("{dir}envelope_pass.json"));
    let fail = load(&format!("{dir}envelope_fail.json"));
    let base = pass["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == fail["base"])
        .unwrap();
    let cases = fail["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for c in cases {
        let mut v = base.clone();
        for (k, val) in c["context"].as_object().unwrap() {
            v[k] = val.clone();
        }
        let epoch = u32::try_from(v["epoch"].as_u64().unwrap()).unwrap();
        let err = open(
            &key(&v["vault_key"], epoch),
            &ctx(&v),
            &h(&c["body"]),
            &h(&c["wrapped_dek"]),
        )
        .expect_err(c["name"].as_str().unwrap());
        let kind = match &err {
            EnvelopeError::Decrypt => "decrypt",
            EnvelopeError::BodyMismatch => "body_mismatch",
            EnvelopeError::SealedEpochMismatch { .. } => "sealed_epoch_mismatch",
            EnvelopeError::WrongVaultKey { .. } => "wrong_vault_key",
            EnvelopeError::VersionMismatch { .. } => "version_mismatch",
            EnvelopeError::Crypto(strongroom_crypto::CryptoError::UnknownSuite { .. }) => {
                "unknown_suite"
            }
            EnvelopeError::Decode(DecodeError::UnknownVersion { .. }) => "unknown_version",
            EnvelopeError::Decode(DecodeError::Invalid { .. }) => "invalid",
            EnvelopeError::Decode(DecodeError::Truncated { .. }) => "truncated",
            EnvelopeError::Decode(DecodeError::TrailingBytes { .. }) => "trailing",
            other => panic!("{}: unexpected {other:?}", c["name"]),
        };
        assert_eq!(kind, c["error"].as_str().unwrap(), "{}: {err}", c["name"]);
        // every structural error names what is wrong
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn frozen_v1_records_still_open_and_upgrade() {
    // The v1 pass file is the frozen corpus: every later release must open it unchanged,
    // and a rotation upgrades each wrap to version 2 given its body.
    let f = load("v1/envelope_pass.json");
    for v in f["vectors"].as_array().unwrap() {
        assert_eq!(h(&v["body"])[0], 1, "version byte");
        assert_eq!(h(&v["wrapped_dek"])[0], 1, "version byte");
        let epoch = u32::try_from(v["epoch"].as_u64().unwrap()).unwrap();
        let old = key(&v["vault_key"], epoch);
        let new = VaultKey::generate(Epoch(epoch + 1)).unwrap();
        let (body, w) = (h(&v["body"]), h(&v["wrapped_dek"]));
        assert!(matches!(
            strongroom_envelope::rewrap(&old, &new, &ctx(v), &w),
            Err(EnvelopeError::NeedsBody)
        ));
        let up = strongroom_envelope::rewrap_with_body(&old, &new, &ctx(v), &body, &w).unwrap();
        assert_eq!(up.version(), 2);
        assert_eq!(up.sealed_epoch(), Some(Epoch(epoch)));
        assert_eq!(
            open(&new, &ctx(v), &body, up.as_bytes())
                .unwrap()
                .expose_secret(),
            &h(&v["plaintext"])[..],
            "{}",
            v["name"]
        );
    }
}
