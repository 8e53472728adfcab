//! An independent implementation of the envelope specification in `docs/spec/envelope.md`,
//! written directly on `ring`, `hkdf`, `sha2` and `chacha20poly1305` (no strongroom code):
//! used by `tests/spec.rs` to check the crate in both directions, and by other crates' tests
//! to act as someone who knows keys (a former member) without any private helper.
#![allow(dead_code, unreachable_pub)]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

pub const SEG: usize = 65536;

pub fn hkdf(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    hkdf::Hkdf::<sha2::Sha256>::new(None, ikm)
        .expand(info, out)
        .unwrap();
}

pub fn key_id(vk: &[u8; 32]) -> [u8; 8] {
    let mut id = [0u8; 8];
    hkdf(vk, b"strongroom/v1/vault-key-id", &mut id);
    id
}

pub struct Ctx {
    pub vault: [u8; 16],
    pub record: [u8; 16],
    pub version: u64,
}

pub fn record_keys(dek: &[u8; 32], suite: u8, c: &Ctx) -> ([u8; 32], [u8; 32]) {
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

pub fn ring_key(suite: u8, k: &[u8; 32]) -> LessSafeKey {
    let alg = if suite == 1 {
        &AES_256_GCM
    } else {
        &CHACHA20_POLY1305
    };
    LessSafeKey::new(UnboundKey::new(alg, k).unwrap())
}

pub fn nonce(i: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

pub fn dek_aad_v2(head: &[u8], c: &Ctx) -> Vec<u8> {
    let mut aad = b"strongroom/v2/dek".to_vec();
    aad.extend_from_slice(head);
    aad.extend_from_slice(&c.vault);
    aad.extend_from_slice(&c.record);
    aad.extend_from_slice(&c.version.to_be_bytes());
    aad
}

pub fn dek_aad(head: &[u8], c: &Ctx) -> Vec<u8> {
    let mut aad = b"strongroom/v1/dek".to_vec();
    aad.extend_from_slice(head);
    aad.extend_from_slice(&c.vault);
    aad.extend_from_slice(&c.record);
    aad.extend_from_slice(&c.version.to_be_bytes());
    aad
}

/// `SHA-256("strongroom/v2/body-digest" ‖ body)`.
pub fn ref_digest(body: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"strongroom/v2/body-digest");
    h.update(body);
    h.finalize().into()
}

/// Reference seal of the current format: the body sealed at `sealed_epoch`, its DEK wrapped
/// (version 2) under `vk` of `epoch`, binding the sealed epoch and the body digest.
#[allow(clippy::too_many_arguments)]
pub fn ref_seal_v2(
    vk: &[u8; 32],
    epoch: u32,
    sealed_epoch: u32,
    suite: u8,
    c: &Ctx,
    dek: &[u8; 32],
    wn: &[u8; 24],
    pt: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let body = ref_body(sealed_epoch, suite, c, dek, pt);
    let mut w = vec![2, 1];
    w.extend_from_slice(&epoch.to_be_bytes());
    w.extend_from_slice(&key_id(vk));
    w.extend_from_slice(&sealed_epoch.to_be_bytes());
    w.extend_from_slice(&ref_digest(&body));
    let aad = dek_aad_v2(&w, c);
    w.extend_from_slice(wn);
    let mut d = dek.to_vec();
    let tag = XChaCha20Poly1305::new(vk.into())
        .encrypt_in_place_detached(XNonce::from_slice(wn), &aad, &mut d)
        .unwrap();
    w.extend_from_slice(&d);
    w.extend_from_slice(&tag);
    (body, w)
}

/// Reference seal of format version 1 (frozen), following the specification step by step.
pub fn ref_seal(
    vk: &[u8; 32],
    epoch: u32,
    suite: u8,
    c: &Ctx,
    dek: &[u8; 32],
    wn: &[u8; 24],
    pt: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let body = ref_body(epoch, suite, c, dek, pt);
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

/// A reference body sealed under `dek` (what anyone who knows a record's data key can make).
pub fn ref_body(epoch: u32, suite: u8, c: &Ctx, dek: &[u8; 32], pt: &[u8]) -> Vec<u8> {
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
    body
}

/// Reference open of either wrap version, following the specification's order of checks.
pub fn ref_open(vk: &[u8; 32], c: &Ctx, body: &[u8], w: &[u8]) -> Vec<u8> {
    let head_len = match w[0] {
        1 => 14,
        2 => 50,
        v => panic!("unknown wrap version {v}"),
    };
    assert_eq!(w.len(), head_len + 24 + 32 + 16);
    assert_eq!(&w[6..14], &key_id(vk));
    let dek = ref_unwrap(vk, c, w);
    let suite = body[1];
    assert_eq!(
        u64::from_be_bytes(body[7..15].try_into().unwrap()),
        c.version
    );
    if w[0] == 2 {
        assert_eq!(&w[14..18], &body[3..7], "sealed epoch");
    }
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
    if w[0] == 2 {
        assert_eq!(&w[18..50], &ref_digest(body), "body digest");
    }
    out
}

/// The data key inside a wrap, for whoever holds the wrapping vault key.
pub fn ref_unwrap(vk: &[u8; 32], c: &Ctx, w: &[u8]) -> [u8; 32] {
    let (head, nonce, ct, tag) = match w[0] {
        1 => (&w[..14], &w[14..38], &w[38..70], &w[70..86]),
        2 => (&w[..50], &w[50..74], &w[74..106], &w[106..122]),
        v => panic!("unknown wrap version {v}"),
    };
    let aad = match w[0] {
        1 => dek_aad(head, c),
        _ => dek_aad_v2(head, c),
    };
    let mut dek = ct.to_vec();
    XChaCha20Poly1305::new(vk.into())
        .decrypt_in_place_detached(XNonce::from_slice(nonce), &aad, &mut dek, tag.into())
        .unwrap();
    dek.try_into().unwrap()
}
