//! Ratio cases of the envelope: strongroom against the raw primitives it is built from, and
//! against the `cocoon` crate (a published single-key container) as a peer.

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use strongroom_crypto::{RecordId, VaultId};
use strongroom_envelope::{
    BodyCheck, Epoch, RecordContext, Suite, VaultKey, open, open_with, rewrap, seal,
};

use crate::{Ratio, compare, size_label};

/// Sizes measured for seal and open.
pub const SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1 << 20];

fn ctx() -> RecordContext {
    RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([2; 16]),
        version: 1,
    }
}

/// The raw composed limit of a seal: a fresh DEK from the OS, AES-256-GCM over the body with
/// a fresh key schedule, and an XChaCha20-Poly1305 wrap of the DEK under a prepared KEK with a
/// random nonce.
fn raw_seal(rng: &SystemRandom, kek: &XChaCha20Poly1305, pt: &[u8]) -> (Vec<u8>, [u8; 72]) {
    let mut dek = [0u8; 32];
    rng.fill(&mut dek).unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek).unwrap());
    let mut body = Vec::with_capacity(pt.len() + 16);
    body.extend_from_slice(pt);
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::empty(),
        &mut body,
    )
    .unwrap();
    let mut wrapped = [0u8; 72];
    rng.fill(&mut wrapped[..24]).unwrap();
    wrapped[24..56].copy_from_slice(&dek);
    let (n, rest) = wrapped.split_at_mut(24);
    let tag = kek
        .encrypt_in_place_detached(XNonce::from_slice(n), b"", &mut rest[..32])
        .unwrap();
    rest[32..].copy_from_slice(&tag);
    (body, wrapped)
}

/// The fastest raw XChaCha20-Poly1305 available here: HChaCha20 (`chacha20`) then ring's
/// ChaCha20-Poly1305, the composition strongroom itself uses. Seals 32 bytes in place.
fn ring_xchacha_seal(kek: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8; 32]) -> ring::aead::Tag {
    let sub = chacha20::hchacha::<chacha20::cipher::consts::U10>(
        kek.into(),
        chacha20::cipher::generic_array::GenericArray::from_slice(&nonce[..16]),
    );
    let key = LessSafeKey::new(UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &sub).unwrap());
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&nonce[16..]);
    key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), buf)
        .unwrap()
}

fn ring_xchacha_open(kek: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8; 32], tag: ring::aead::Tag) {
    let sub = chacha20::hchacha::<chacha20::cipher::consts::U10>(
        kek.into(),
        chacha20::cipher::generic_array::GenericArray::from_slice(&nonce[..16]),
    );
    let key = LessSafeKey::new(UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &sub).unwrap());
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&nonce[16..]);
    key.open_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), tag, buf, 0..)
        .unwrap();
}

/// All envelope cases.
pub fn cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let mut out = Vec::new();
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    let vk2 = VaultKey::generate(Epoch(2)).unwrap();
    let rng = SystemRandom::new();
    let kek = XChaCha20Poly1305::new(vk.expose_secret().expose_secret().into());
    let c = ctx();

    for &n in &SIZES {
        let pt = vec![0x5au8; n];
        let m = compare(
            rounds,
            budget,
            || (1, seal(&vk, Suite::Aes256Gcm, &c, &pt).unwrap()),
            || (1, raw_seal(&rng, &kek, &pt)),
        );
        let target = (n == 1024).then_some(0.70);
        out.push(Ratio::measured(
            format!("envelope/seal/{}", size_label(n)),
            "raw-composed(ring-aes256gcm+xchacha-wrap)",
            &m,
            target,
        ));
        if n == 1024 {
            // The stricter limit: the raw composition with the fastest XChaCha here.
            let k = *vk.expose_secret().expose_secret();
            let m = compare(
                rounds,
                budget,
                || (1, seal(&vk, Suite::Aes256Gcm, &c, &pt).unwrap()),
                || {
                    let mut dek = [0u8; 32];
                    rng.fill(&mut dek).unwrap();
                    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek).unwrap());
                    let mut body = Vec::with_capacity(pt.len() + 16);
                    body.extend_from_slice(&pt);
                    key.seal_in_place_append_tag(
                        Nonce::assume_unique_for_key([0; 12]),
                        Aad::empty(),
                        &mut body,
                    )
                    .unwrap();
                    let mut n = [0u8; 24];
                    rng.fill(&mut n).unwrap();
                    (1, (body, ring_xchacha_seal(&k, &n, &mut dek)))
                },
            );
            out.push(Ratio::measured(
                "envelope/seal/1KiB-vs-ring-xchacha",
                "raw-composed(ring-aes256gcm+hchacha20+ring-chacha20poly1305)",
                &m,
                None,
            ));
        }
    }

    for &n in &SIZES {
        let pt = vec![0x5au8; n];
        let sealed = seal(&vk, Suite::Aes256Gcm, &c, &pt).unwrap();
        let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9; 32]).unwrap());
        let mut raw_ct = pt.clone();
        raw_key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut raw_ct,
            )
            .unwrap();
        let raw_open = || {
            let mut buf = raw_ct.clone();
            let len = raw_key
                .open_in_place(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    &mut buf,
                )
                .unwrap()
                .len();
            buf.truncate(len);
            (1, buf)
        };
        // The common read: a record sealed since the last member removal, whose data key
        // only current members ever held (no body digest to check).
        let trusted = BodyCheck::SealedBefore(Epoch::FIRST);
        let m = compare(
            rounds,
            budget,
            || {
                let w = sealed.wrapped_dek.as_bytes();
                (1, open_with(&vk, &c, &sealed.body, w, trusted).unwrap())
            },
            raw_open,
        );
        let target = (n == 64 * 1024).then_some(0.60);
        out.push(Ratio::measured(
            format!("envelope/open/{}", size_label(n)),
            "ring-aes256gcm-open",
            &m,
            target,
        ));
        // A record sealed before a member removal: its body digest (SHA-256 of the body)
        // is checked too.
        let m = compare(
            rounds,
            budget,
            || {
                (
                    1,
                    open(&vk, &c, &sealed.body, sealed.wrapped_dek.as_bytes()).unwrap(),
                )
            },
            raw_open,
        );
        out.push(Ratio::measured(
            format!("envelope/open-digest-checked/{}", size_label(n)),
            "ring-aes256gcm-open",
            &m,
            None,
        ));
    }

    {
        let sealed = seal(&vk, Suite::Aes256Gcm, &c, b"x").unwrap();
        let w = sealed.wrapped_dek.as_bytes().to_vec();
        let kek2 = XChaCha20Poly1305::new(vk2.expose_secret().expose_secret().into());
        let mut raw_blob = [0u8; 72];
        raw_blob[..24].copy_from_slice(&[3; 24]);
        let tag = kek
            .encrypt_in_place_detached(XNonce::from_slice(&[3; 24]), b"", &mut raw_blob[24..56])
            .unwrap();
        raw_blob[56..].copy_from_slice(&tag);
        let m = compare(
            rounds,
            budget,
            || (1, rewrap(&vk, &vk2, &c, &w).unwrap()),
            || {
                let mut k = [0u8; 32];
                k.copy_from_slice(&raw_blob[24..56]);
                kek.decrypt_in_place_detached(
                    XNonce::from_slice(&raw_blob[..24]),
                    b"",
                    &mut k,
                    raw_blob[56..].into(),
                )
                .unwrap();
                let mut n = [0u8; 24];
                rng.fill(&mut n).unwrap();
                let t = kek2
                    .encrypt_in_place_detached(XNonce::from_slice(&n), b"", &mut k)
                    .unwrap();
                (1, (k, t))
            },
        );
        out.push(Ratio::measured(
            "envelope/rewrap",
            "raw-xchacha20poly1305-open+seal",
            &m,
            Some(0.80),
        ));

        // The stricter limit: the same open+seal on the fastest raw XChaCha here.
        let k1 = *vk.expose_secret().expose_secret();
        let k2 = *vk2.expose_secret().expose_secret();
        let mut sealed_raw = [7u8; 32];
        let tag = ring_xchacha_seal(&k1, &[3; 24], &mut sealed_raw);
        let tag_bytes: [u8; 16] = tag.as_ref().try_into().unwrap();
        let m = compare(
            rounds,
            budget,
            || (1, rewrap(&vk, &vk2, &c, &w).unwrap()),
            || {
                let mut k = sealed_raw;
                ring_xchacha_open(&k1, &[3; 24], &mut k, ring::aead::Tag::from(tag_bytes));
                let mut n = [0u8; 24];
                rng.fill(&mut n).unwrap();
                (1, ring_xchacha_seal(&k2, &n, &mut k))
            },
        );
        out.push(Ratio::measured(
            "envelope/rewrap-vs-ring-xchacha",
            "raw-hchacha20+ring-chacha20poly1305-open+seal",
            &m,
            None,
        ));
    }

    // Peer: cocoon's MiniCocoon (one key, AES-256-GCM, no per-record DEK, no rotation).
    for &n in &SIZES {
        let pt = vec![0x5au8; n];
        let mut mini = cocoon::MiniCocoon::from_key(&[7; 32], &[8; 32])
            .with_cipher(cocoon::CocoonCipher::Aes256Gcm);
        let m = compare(
            rounds,
            budget,
            || (1, seal(&vk, Suite::Aes256Gcm, &c, &pt).unwrap()),
            || (1, mini.wrap(black_box(&pt)).unwrap()),
        );
        out.push(
            Ratio::measured(
                format!("envelope/seal-vs-cocoon/{}", size_label(n)),
                "cocoon-minicocoon-wrap",
                &m,
                None,
            )
            .peer(),
        );
        let sealed = seal(&vk, Suite::Aes256Gcm, &c, &pt).unwrap();
        let container = mini.wrap(&pt).unwrap();
        let m = compare(
            rounds,
            budget,
            || {
                (
                    1,
                    open(&vk, &c, &sealed.body, sealed.wrapped_dek.as_bytes()).unwrap(),
                )
            },
            || (1, mini.unwrap(black_box(&container)).unwrap()),
        );
        out.push(
            Ratio::measured(
                format!("envelope/open-vs-cocoon/{}", size_label(n)),
                "cocoon-minicocoon-unwrap",
                &m,
                None,
            )
            .peer(),
        );
    }
    out
}
