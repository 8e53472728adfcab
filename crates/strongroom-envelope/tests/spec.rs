//! Checks the crate against the independent implementation of the specification
//! (`docs/spec/envelope.md`) in `reference/`, in both directions, for the current format
//! (wrapped data key version 2) and the frozen version 1. If the specification and the
//! code ever disagree, this test fails.

mod reference;

use reference::*;
use serde_json::Value;
use strongroom_crypto::{Key256, RecordId, VaultId};
use strongroom_envelope::{Epoch, RecordContext, Suite, VaultKey, seal};

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn reference_seal_reproduces_the_vectors() {
    for file in ["envelope_pass.json", "v1/envelope_pass.json"] {
        let p = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
        let f: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        for v in f["vectors"].as_array().unwrap() {
            let c = Ctx {
                vault: h(&v["vault_id"]).try_into().unwrap(),
                record: h(&v["record_id"]).try_into().unwrap(),
                version: v["version"].as_u64().unwrap(),
            };
            let vk: [u8; 32] = h(&v["vault_key"]).try_into().unwrap();
            let epoch = u32::try_from(v["epoch"].as_u64().unwrap()).unwrap();
            let suite = u8::try_from(v["suite"].as_u64().unwrap()).unwrap();
            let dek: [u8; 32] = h(&v["dek"]).try_into().unwrap();
            let wn: [u8; 24] = h(&v["wrap_nonce"]).try_into().unwrap();
            let pt = h(&v["plaintext"]);
            let (body, w) = match v.get("sealed_epoch") {
                Some(sealed) => {
                    let sealed = u32::try_from(sealed.as_u64().unwrap()).unwrap();
                    ref_seal_v2(&vk, epoch, sealed, suite, &c, &dek, &wn, &pt)
                }
                None => ref_seal(&vk, epoch, suite, &c, &dek, &wn, &pt),
            };
            let name = &v["name"];
            assert_eq!(
                hex::encode(&body),
                v["body"].as_str().unwrap(),
                "{file} {name}"
            );
            assert_eq!(
                hex::encode(&w),
                v["wrapped_dek"].as_str().unwrap(),
                "{file} {name}"
            );
            assert_eq!(hex::encode(key_id(&vk)), v["key_id"].as_str().unwrap());
            assert_eq!(ref_open(&vk, &c, &body, &w), pt, "{file} {name}");
        }
    }
}

#[test]
fn reference_open_reads_what_the_crate_seals() {
    for (suite, n) in [
        (Suite::Aes256Gcm, 0),
        (Suite::Aes256Gcm, 1000),
        (Suite::ChaCha20Poly1305, 3 * SEG),
        (Suite::Aes256Gcm, 2 * SEG + 1),
    ] {
        let raw: [u8; 32] = strongroom_crypto::random::array().unwrap();
        let vk = VaultKey::from_key(Epoch(9), Key256::from_slice(&raw).unwrap());
        let ctx = RecordContext {
            vault_id: VaultId::generate().unwrap(),
            record_id: RecordId::generate().unwrap(),
            version: 77,
        };
        let pt: Vec<u8> = (0..n).map(|i| (i % 241) as u8).collect();
        let s = seal(&vk, suite, &ctx, &pt).unwrap();
        let c = Ctx {
            vault: *ctx.vault_id.as_bytes(),
            record: *ctx.record_id.as_bytes(),
            version: 77,
        };
        assert_eq!(ref_open(&raw, &c, &s.body, s.wrapped_dek.as_bytes()), pt);
    }
}

/// The attack of a former member who kept a record's data key (they could unwrap it while
/// they held the epoch's vault key): after they are removed and the vault key is rotated,
/// they seal a body of their choice under the old data key and put it in storage in place
/// of the real one. The rotated wrap must not accept it.
#[test]
fn a_former_holder_of_the_data_key_cannot_replace_the_body_after_a_rotation() {
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        let raw1: [u8; 32] = strongroom_crypto::random::array().unwrap();
        let vk1 = VaultKey::from_key(Epoch(1), Key256::from_slice(&raw1).unwrap());
        let vk2 = VaultKey::generate(Epoch(2)).unwrap();
        let ctx = RecordContext {
            vault_id: VaultId::generate().unwrap(),
            record_id: RecordId::generate().unwrap(),
            version: 1,
        };
        let c = Ctx {
            vault: *ctx.vault_id.as_bytes(),
            record: *ctx.record_id.as_bytes(),
            version: 1,
        };
        let sealed = seal(&vk1, suite, &ctx, b"db.internal:5432").unwrap();
        // Bob, a member at epoch 1, learns the data key.
        let dek = ref_unwrap(&raw1, &c, sealed.wrapped_dek.as_bytes());
        // Bob is removed; the vault key is rotated: the data key is rewrapped under epoch 2,
        // which Bob never holds.
        let rotated =
            strongroom_envelope::rewrap(&vk1, &vk2, &ctx, sealed.wrapped_dek.as_bytes()).unwrap();
        assert!(strongroom_envelope::open(&vk2, &ctx, &sealed.body, rotated.as_bytes()).is_ok());
        // Bob, with write access to the storage, replaces the body.
        let forged = ref_body(1, suite.id(), &c, &dek, b"attacker.example:5432");
        let opened = strongroom_envelope::open(&vk2, &ctx, &forged, rotated.as_bytes());
        assert!(
            opened.is_err(),
            "{suite:?}: a body sealed by a former holder of the data key was accepted"
        );
    }
}
