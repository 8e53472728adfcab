//! Known-answer vectors: sealing with fixed DEKs and nonces must reproduce
//! `tests/data/envelope_pass.json` (format version 2) byte for byte. Run with
//! `STRONGROOM_REGENERATE_VECTORS=1` to rewrite the files after a deliberate format change
//! (which must also bump a version byte). The version-1 files in `tests/data/v1/` are
//! frozen: every release must open them, nothing regenerates them.

use serde_json::{Value, json};
use strongroom_crypto::{Key256, RecordId, VaultId};

use crate::record::{rewrap_with_nonce, seal_body, seal_with};
use crate::{Epoch, RecordContext, SEGMENT_LEN, Suite, VaultKey};

struct Case {
    name: &'static str,
    suite: Suite,
    /// The epoch the record is sealed in.
    epoch: u32,
    /// When set, the wrap is rewrapped to this epoch's key (the body keeps `epoch`).
    rewrap_to: Option<u32>,
    version: u64,
    plaintext: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let text = |s: &str| s.as_bytes().to_vec();
    let pattern = |n: usize| (0..n).map(|i| (i % 256) as u8).collect::<Vec<u8>>();
    vec![
        Case {
            name: "aes256gcm_empty",
            suite: Suite::Aes256Gcm,
            epoch: 1,
            rewrap_to: None,
            version: 1,
            plaintext: vec![],
        },
        Case {
            name: "aes256gcm_short",
            suite: Suite::Aes256Gcm,
            epoch: 1,
            rewrap_to: None,
            version: 1,
            plaintext: text("hunter2"),
        },
        Case {
            name: "aes256gcm_epoch7_version42",
            suite: Suite::Aes256Gcm,
            epoch: 7,
            rewrap_to: None,
            version: 42,
            plaintext: text("postgres://app:pw@db:5432/app"),
        },
        Case {
            name: "chacha20poly1305_short",
            suite: Suite::ChaCha20Poly1305,
            epoch: 3,
            rewrap_to: None,
            version: 2,
            plaintext: text("sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        },
        Case {
            name: "aes256gcm_two_segments",
            suite: Suite::Aes256Gcm,
            epoch: 2,
            rewrap_to: None,
            version: 5,
            plaintext: pattern(SEGMENT_LEN + 100),
        },
        Case {
            name: "aes256gcm_exactly_one_full_segment",
            suite: Suite::Aes256Gcm,
            epoch: 1,
            rewrap_to: None,
            version: 1,
            plaintext: pattern(SEGMENT_LEN),
        },
        Case {
            name: "chacha20poly1305_empty",
            suite: Suite::ChaCha20Poly1305,
            epoch: 1,
            rewrap_to: None,
            version: 1,
            plaintext: vec![],
        },
        Case {
            name: "chacha20poly1305_two_segments",
            suite: Suite::ChaCha20Poly1305,
            epoch: 4,
            rewrap_to: None,
            version: 9,
            plaintext: pattern(SEGMENT_LEN + 1),
        },
        Case {
            name: "aes256gcm_sealed_epoch2_rewrapped_to_epoch5",
            suite: Suite::Aes256Gcm,
            epoch: 2,
            rewrap_to: Some(5),
            version: 3,
            plaintext: text("rotated twice, sealed once"),
        },
    ]
}

fn fixed(byte: u8, i: usize) -> [u8; 32] {
    let mut k = [byte; 32];
    k[0] = i as u8;
    k
}

fn path(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn pass_vectors() -> Value {
    let mut out = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let sealing_bytes = fixed(0x11, i);
        let dek_bytes = fixed(0x22, i);
        let nonce = [0x33u8 ^ i as u8; 24];
        let sealing =
            VaultKey::from_key(Epoch(c.epoch), Key256::from_slice(&sealing_bytes).unwrap());
        let ctx = RecordContext {
            vault_id: VaultId::from_bytes([0x44; 16]),
            record_id: RecordId::from_bytes([0x55 ^ i as u8; 16]),
            version: c.version,
        };
        let dek = Key256::from_slice(&dek_bytes).unwrap();
        let s = seal_with(
            &sealing,
            sealing.epoch(),
            c.suite,
            &ctx,
            &c.plaintext,
            &dek,
            &nonce,
        )
        .unwrap();
        // A rewrapped vector: the final key is another one, the final wrap nonce too.
        let (vk_bytes, vk, wrapped) = match c.rewrap_to {
            None => (sealing_bytes, sealing, s.wrapped_dek),
            Some(epoch) => {
                let bytes = fixed(0x66, i);
                let to = VaultKey::from_key(Epoch(epoch), Key256::from_slice(&bytes).unwrap());
                let w =
                    rewrap_with_nonce(&sealing, &to, &ctx, s.wrapped_dek.as_bytes(), &[0x77; 24])
                        .unwrap();
                (bytes, to, w)
            }
        };
        let (nonce_hex, epoch) = match c.rewrap_to {
            None => (hex::encode(nonce), c.epoch),
            Some(e) => (hex::encode([0x77u8; 24]), e),
        };
        out.push(json!({
            "name": c.name,
            "vault_key": hex::encode(vk_bytes),
            "epoch": epoch,
            "sealed_epoch": c.epoch,
            "key_id": vk.id().to_string(),
            "vault_id": ctx.vault_id.to_string(),
            "record_id": ctx.record_id.to_string(),
            "version": c.version,
            "suite": c.suite.id(),
            "dek": hex::encode(dek_bytes),
            "wrap_nonce": nonce_hex,
            "plaintext": hex::encode(&c.plaintext),
            "body": hex::encode(&s.body),
            "body_digest": hex::encode(crate::body_digest(&s.body)),
            "wrapped_dek": hex::encode(wrapped.as_bytes()),
        }));
    }
    json!({
        "description": "strongroom envelope v2 known-answer vectors (body format 1, wrapped data key format 2): fixed vault key, DEK and wrap nonce; 'sealed_epoch' is the epoch the body was sealed in, 'epoch' the epoch of the key that wraps it now; see the crate README for the layout. Test data, not secrets.",
        "vectors": out,
    })
}

/// Rejection cases derived from the first short vector, each named `<area>_<condition>`.
pub(crate) fn fail_vectors(pass: &Value) -> Value {
    let v = &pass["vectors"][1];
    let body = hex::decode(v["body"].as_str().unwrap()).unwrap();
    let wrapped = hex::decode(v["wrapped_dek"].as_str().unwrap()).unwrap();
    let mut cases = Vec::new();
    let mut add =
        |name: &str, error: &str, body: Vec<u8>, wrapped: Vec<u8>, ctx_override: Value| {
            cases.push(json!({
                "name": name,
                "error": error,
                "body": hex::encode(body),
                "wrapped_dek": hex::encode(wrapped),
                "context": ctx_override,
            }));
        };
    let none = json!({});
    let flip = |b: &[u8], i: usize| {
        let mut b = b.to_vec();
        b[i] ^= 0x01;
        b
    };
    add(
        "header_bad_commitment",
        "decrypt",
        flip(&body, 20),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "header_unknown_version",
        "unknown_version",
        {
            let mut b = body.clone();
            b[0] = 2;
            b
        },
        wrapped.clone(),
        none.clone(),
    );
    add(
        "header_unknown_suite",
        "unknown_suite",
        {
            let mut b = body.clone();
            b[1] = 9;
            b
        },
        wrapped.clone(),
        none.clone(),
    );
    add(
        "header_flags_set",
        "invalid",
        {
            let mut b = body.clone();
            b[2] = 1;
            b
        },
        wrapped.clone(),
        none.clone(),
    );
    add(
        "header_epoch_changed",
        "sealed_epoch_mismatch",
        flip(&body, 6),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "header_version_changed",
        "version_mismatch",
        flip(&body, 14),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "header_truncated",
        "truncated",
        body[..30].to_vec(),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "body_ciphertext_bit_flip",
        "decrypt",
        flip(&body, 50),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "body_tag_bit_flip",
        "decrypt",
        flip(&body, body.len() - 1),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "body_truncated",
        "decrypt",
        body[..body.len() - 1].to_vec(),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "body_no_segments",
        "decrypt",
        body[..47].to_vec(),
        wrapped.clone(),
        none.clone(),
    );
    add(
        "body_extended",
        "decrypt",
        {
            let mut b = body.clone();
            b.push(0);
            b
        },
        wrapped.clone(),
        none.clone(),
    );
    add(
        "wrapped_bit_flip",
        "decrypt",
        body.clone(),
        flip(&wrapped, 80),
        none.clone(),
    );
    add(
        "wrapped_tag_bit_flip",
        "decrypt",
        body.clone(),
        flip(&wrapped, 121),
        none.clone(),
    );
    add(
        "wrapped_nonce_bit_flip",
        "decrypt",
        body.clone(),
        flip(&wrapped, 60),
        none.clone(),
    );
    add(
        "wrapped_epoch_changed",
        "wrong_vault_key",
        body.clone(),
        flip(&wrapped, 5),
        none.clone(),
    );
    add(
        "wrapped_key_id_changed",
        "wrong_vault_key",
        body.clone(),
        flip(&wrapped, 10),
        none.clone(),
    );
    add(
        "wrapped_unknown_version",
        "unknown_version",
        body.clone(),
        {
            let mut w = wrapped.clone();
            w[0] = 9;
            w
        },
        none.clone(),
    );
    add(
        "wrapped_unknown_algorithm",
        "invalid",
        body.clone(),
        {
            let mut w = wrapped.clone();
            w[1] = 2;
            w
        },
        none.clone(),
    );
    add(
        "wrapped_truncated",
        "truncated",
        body.clone(),
        wrapped[..121].to_vec(),
        none.clone(),
    );
    add(
        "wrapped_extended",
        "trailing",
        body.clone(),
        {
            let mut w = wrapped.clone();
            w.push(0);
            w
        },
        none.clone(),
    );
    add(
        "wrapped_sealed_epoch_changed",
        "decrypt",
        body.clone(),
        flip(&wrapped, 17),
        none.clone(),
    );
    add(
        "wrapped_body_digest_changed",
        "decrypt",
        body.clone(),
        flip(&wrapped, 30),
        none.clone(),
    );
    add(
        "header_suite_swapped",
        "decrypt",
        {
            let mut b = body.clone();
            b[1] = Suite::ChaCha20Poly1305.id();
            b
        },
        wrapped.clone(),
        none.clone(),
    );
    for rem in [1usize, 15] {
        add(
            &format!("body_remainder_{rem}_bytes"),
            "decrypt",
            body[..47 + rem].to_vec(),
            wrapped.clone(),
            none.clone(),
        );
    }
    // The attack format version 2 closes: a body sealed by someone who knows the data key
    // (it authenticates under the key commitment and the AEAD) in place of the real one.
    let dek = Key256::from_slice(&hex::decode(v["dek"].as_str().unwrap()).unwrap()).unwrap();
    let ctx = RecordContext {
        vault_id: v["vault_id"].as_str().unwrap().parse().unwrap(),
        record_id: v["record_id"].as_str().unwrap().parse().unwrap(),
        version: v["version"].as_u64().unwrap(),
    };
    let forged = seal_body(&dek, Suite::Aes256Gcm, Epoch(1), &ctx, b"attacker.example").unwrap();
    add(
        "body_replaced_by_a_holder_of_the_data_key",
        "body_mismatch",
        forged,
        wrapped.clone(),
        none.clone(),
    );
    add(
        "context_other_record",
        "decrypt",
        body.clone(),
        wrapped.clone(),
        json!({"record_id": "66666666666666666666666666666666"}),
    );
    add(
        "context_other_vault",
        "decrypt",
        body.clone(),
        wrapped.clone(),
        json!({"vault_id": "77777777777777777777777777777777"}),
    );
    add(
        "context_other_version",
        "version_mismatch",
        body.clone(),
        wrapped.clone(),
        json!({"version": 2}),
    );
    add(
        "key_wrong_vault_key",
        "wrong_vault_key",
        body.clone(),
        wrapped.clone(),
        json!({"vault_key": hex::encode([0x99u8; 32])}),
    );
    json!({
        "description": "strongroom envelope v2 rejection cases, derived from pass vector 'aes256gcm_short'; 'context' overrides fields of that vector; 'error' names the error the specification's order of checks reaches first.",
        "base": v["name"],
        "cases": cases,
    })
}

#[test]
fn vectors_match_files() {
    let pass = pass_vectors();
    let fail = fail_vectors(&pass);
    if std::env::var_os("STRONGROOM_REGENERATE_VECTORS").is_some() {
        std::fs::write(
            path("envelope_pass.json"),
            serde_json::to_string_pretty(&pass).unwrap() + "\n",
        )
        .unwrap();
        std::fs::write(
            path("envelope_fail.json"),
            serde_json::to_string_pretty(&fail).unwrap() + "\n",
        )
        .unwrap();
    }
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(path("envelope_pass.json")).unwrap())
            .unwrap();
    assert_eq!(
        on_disk, pass,
        "sealing no longer reproduces tests/data/envelope_pass.json"
    );
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(path("envelope_fail.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, fail);
}
