//! Known-answer vectors: sealing with fixed DEKs and nonces must reproduce
//! `tests/data/envelope_pass.json` byte for byte. Run with
//! `STRONGROOM_REGENERATE_VECTORS=1` to rewrite the files after a deliberate format change
//! (which must also bump a version byte).

use serde_json::{Value, json};
use strongroom_crypto::{Key256, RecordId, VaultId};

use crate::record::seal_with;
use crate::{Epoch, RecordContext, SEGMENT_LEN, Suite, VaultKey};

struct Case {
    name: &'static str,
    suite: Suite,
    epoch: u32,
    version: u64,
    plaintext: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let text = |s: &str| s.as_bytes().to_vec();
    vec![
        Case {
            name: "aes256gcm_empty",
            suite: Suite::Aes256Gcm,
            epoch: 1,
            version: 1,
            plaintext: vec![],
        },
        Case {
            name: "aes256gcm_short",
            suite: Suite::Aes256Gcm,
            epoch: 1,
            version: 1,
            plaintext: text("hunter2"),
        },
        Case {
            name: "aes256gcm_epoch7_version42",
            suite: Suite::Aes256Gcm,
            epoch: 7,
            version: 42,
            plaintext: text("postgres://app:pw@db:5432/app"),
        },
        Case {
            name: "chacha20poly1305_short",
            suite: Suite::ChaCha20Poly1305,
            epoch: 3,
            version: 2,
            plaintext: text("sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        },
        Case {
            name: "aes256gcm_two_segments",
            suite: Suite::Aes256Gcm,
            epoch: 2,
            version: 5,
            plaintext: (0..SEGMENT_LEN + 100).map(|i| (i % 256) as u8).collect(),
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
        let vk_bytes = fixed(0x11, i);
        let dek_bytes = fixed(0x22, i);
        let nonce = [0x33u8 ^ i as u8; 24];
        let vk = VaultKey::from_key(Epoch(c.epoch), Key256::from_slice(&vk_bytes).unwrap());
        let ctx = RecordContext {
            vault_id: VaultId::from_bytes([0x44; 16]),
            record_id: RecordId::from_bytes([0x55 ^ i as u8; 16]),
            version: c.version,
        };
        let dek = Key256::from_slice(&dek_bytes).unwrap();
        let s = seal_with(&vk, c.suite, &ctx, &c.plaintext, &dek, &nonce).unwrap();
        out.push(json!({
            "name": c.name,
            "vault_key": hex::encode(vk_bytes),
            "epoch": c.epoch,
            "key_id": vk.id().to_string(),
            "vault_id": ctx.vault_id.to_string(),
            "record_id": ctx.record_id.to_string(),
            "version": c.version,
            "suite": c.suite.id(),
            "dek": hex::encode(dek_bytes),
            "wrap_nonce": hex::encode(nonce),
            "plaintext": hex::encode(&c.plaintext),
            "body": hex::encode(&s.body),
            "wrapped_dek": hex::encode(s.wrapped_dek.as_bytes()),
        }));
    }
    json!({
        "description": "strongroom envelope v1 known-answer vectors: fixed vault key, DEK and wrap nonce; see the crate README for the layout. Test data, not secrets.",
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
        "decrypt",
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
        flip(&wrapped, 40),
        none.clone(),
    );
    add(
        "wrapped_tag_bit_flip",
        "decrypt",
        body.clone(),
        flip(&wrapped, 85),
        none.clone(),
    );
    add(
        "wrapped_nonce_bit_flip",
        "decrypt",
        body.clone(),
        flip(&wrapped, 20),
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
        wrapped[..85].to_vec(),
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
        "description": "strongroom envelope v1 rejection cases, derived from pass vector 'aes256gcm_short'; 'context' overrides fields of that vector.",
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
