//! An independent implementation of the README's specification, written directly on
//! `ring`, `hkdf` and `chacha20poly1305`, checked against the crate in both directions.
//! If the README and the code ever disagree, this test fails.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde_json::Value;
use strongroom_crypto::{Key256, RecordId, VaultId};
use strongroom_envelope::{Epoch, RecordContext, Suite, VaultKey, seal};

const SEG: usize = 65536;

fn hkdf(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    hkdf::Hkdf::<sha2::Sha256>::new(None, ikm)
        .expand(info, out)
        .unwrap();
}

fn key_id(vk: &[u8; 32]) -> [u8; 8] {
    let mut id = [0u8; 8];
    hkdf(vk, b"strongroom/v1/vault-key-id", &mut id);
    id
}

struct Ctx {
    vault: [u8; 16],
    record: [u8; 16],
    version: u64,
}

fn record_keys(dek: &[u8; 32], suite: u8, c: &Ctx) -> ([u8; 32], [u8; 32]) {
    let mut info = b"strongroom/v1/record".to_vec();
    info.push(suite);
    info.extend_from_slice(&c.vault);
    info.extend_from_slice(&c.record);
    info.extend_from_slice(&c.version.to_be_bytes());
    let mut okm = [0u8; 64];
    hkdf::Hkdf::<sha2::Sha256>::from_prk(dek)
        .unwrap()
        .expand(&info, &mut okm)
        .unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn ring_key(suite: u8, k: &[u8; 32]) -> LessSafeKey {
    let alg = if suite == 1 {
        &AES_256_GCM
    } else {
        &CHACHA20_POLY1305
    };
    LessSafeKey::new(UnboundKey::new(alg, k).unwrap())
}

fn nonce(i: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn dek_aad(head: &[u8], c: &Ctx) -> Vec<u8> {
    let mut aad = b"strongroom/v1/dek".to_vec();
    aad.extend_from_slice(head);
    aad.extend_from_slice(&c.vault);
    aad.extend_from_slice(&c.record);
    aad.extend_from_slice(&c.version.to_be_bytes());
    aad
}

/// Reference seal, following the README step by step.
fn ref_seal(
    vk: &[u8; 32],
    epoch: u32,
    suite: u8,
    c: &Ctx,
    dek: &[u8; 32],
    wn: &[u8; 24],
    pt: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (bk, commitment) = record_keys(dek, suite, c);
    let mut body = vec![1, suite, 0];
    body.extend_from_slice(&epoch.to_be_bytes());
    body.extend_from_slice(&c.version.to_be_bytes());
    body.extend_from_slice(&commitment);
    let mut aad = b"strongroom/v1/body".to_vec();
    aad.extend_from_slice(&body);
    aad.extend_from_slice(&c.vault);
    aad.extend_from_slice(&c.record);
    let key = ring_key(suite, &bk);
    let chunks: Vec<&[u8]> = if pt.is_empty() {
        vec![&[][..]]
    } else {
        pt.chunks(SEG).collect()
    };
    for (i, ch) in chunks.iter().enumerate() {
        let mut buf = ch.to_vec();
        key.seal_in_place_append_tag(
            nonce(i as u64, i + 1 == chunks.len()),
            Aad::from(&aad),
            &mut buf,
        )
        .unwrap();
        body.extend_from_slice(&buf);
    }
    let mut w = vec![1, 1];
    w.extend_from_slice(&epoch.to_be_bytes());
    w.extend_from_slice(&key_id(vk));
    w.extend_from_slice(wn);
    let aad = dek_aad(&w[..14], c);
    let mut d = dek.to_vec();
    let tag = XChaCha20Poly1305::new(vk.into())
        .encrypt_in_place_detached(XNonce::from_slice(wn), &aad, &mut d)
        .unwrap();
    w.extend_from_slice(&d);
    w.extend_from_slice(&tag);
    (body, w)
}

/// Reference open, following the README step by step.
fn ref_open(vk: &[u8; 32], c: &Ctx, body: &[u8], w: &[u8]) -> Vec<u8> {
    assert_eq!(w.len(), 86);
    assert_eq!(&w[6..14], &key_id(vk));
    let aad = dek_aad(&w[..14], c);
    let mut dek = w[38..70].to_vec();
    XChaCha20Poly1305::new(vk.into())
        .decrypt_in_place_detached(
            XNonce::from_slice(&w[14..38]),
            &aad,
            &mut dek,
            w[70..86].into(),
        )
        .unwrap();
    let dek: [u8; 32] = dek.try_into().unwrap();
    let suite = body[1];
    assert_eq!(
        u64::from_be_bytes(body[7..15].try_into().unwrap()),
        c.version
    );
    let (bk, commitment) = record_keys(&dek, suite, c);
    assert_eq!(&body[15..47], &commitment);
    let mut aad = b"strongroom/v1/body".to_vec();
    aad.extend_from_slice(&body[..47]);
    aad.extend_from_slice(&c.vault);
    aad.extend_from_slice(&c.record);
    let key = ring_key(suite, &bk);
    let segs: Vec<&[u8]> = body[47..].chunks(SEG + 16).collect();
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let mut buf = s.to_vec();
        let p = key
            .open_in_place(
                nonce(i as u64, i + 1 == segs.len()),
                Aad::from(&aad),
                &mut buf,
            )
            .unwrap();
        out.extend_from_slice(p);
    }
    out
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn reference_seal_reproduces_the_vectors() {
    let p = format!(
        "{}/tests/data/envelope_pass.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let f: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    for v in f["vectors"].as_array().unwrap() {
        let c = Ctx {
            vault: h(&v["vault_id"]).try_into().unwrap(),
            record: h(&v["record_id"]).try_into().unwrap(),
            version: v["version"].as_u64().unwrap(),
        };
        let vk: [u8; 32] = h(&v["vault_key"]).try_into().unwrap();
        let (body, w) = ref_seal(
            &vk,
            u32::try_from(v["epoch"].as_u64().unwrap()).unwrap(),
            u8::try_from(v["suite"].as_u64().unwrap()).unwrap(),
            &c,
            &h(&v["dek"]).try_into().unwrap(),
            &h(&v["wrap_nonce"]).try_into().unwrap(),
            &h(&v["plaintext"]),
        );
        assert_eq!(
            hex::encode(&body),
            v["body"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert_eq!(
            hex::encode(&w),
            v["wrapped_dek"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert_eq!(hex::encode(key_id(&vk)), v["key_id"].as_str().unwrap());
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
