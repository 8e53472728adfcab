//! The grant known-answer vectors (`tests/data/v2/grant_vectors.json`, written and checked
//! byte for byte by `src/kat.rs`) through the independent decoder of `tests/reference/`:
//! every vector's identity and grant decode and open to the recorded fields and vault key,
//! the reference seal reproduces each grant from its randomness, and every field region
//! with a byte flipped is refused by the reference and by strongroom.

mod reference;

use reference::{Kem, Recipient};
use serde::Deserialize;
use strongroom_crypto::{Key256, VaultId};
use strongroom_sharing::{Grant, Identity, PublicIdentity, SealedIdentity};

#[derive(Deserialize)]
struct File {
    description: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    kem: String,
    grant_version: u8,
    vault_id: String,
    epoch: u32,
    member_id: String,
    member_name: String,
    kem_secret: String,
    ed25519_seed: String,
    public_identity: String,
    member_key: String,
    sealed_identity: String,
    vault_key: String,
    key_id: String,
    key_commitment: String,
    recipient_key_hash: String,
    encapsulation_randomness: String,
    info: String,
    aad: String,
    grant: String,
}

fn load() -> File {
    let p = format!(
        "{}/tests/data/v2/grant_vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

fn h16(s: &str) -> [u8; 16] {
    h(s).try_into().unwrap()
}

/// The recipient as the reference sees it: from the sealed identity and the public identity.
fn recipient(v: &Vector) -> Recipient {
    let secret =
        reference::open_sealed_identity(&h(&v.sealed_identity), &h32(&v.member_key)).unwrap();
    let public = reference::decode_public_identity(&h(&v.public_identity)).unwrap();
    Recipient {
        kem: secret.kem,
        member_id: secret.member_id,
        public_key: public.kem_public_key,
        kem_secret: secret.kem_secret,
    }
}

/// The recipient as strongroom sees it: its own decoders and opener of the sealed identity.
fn strongroom_identity(v: &Vector) -> Identity {
    let sealed = SealedIdentity::decode(&h(&v.sealed_identity)).unwrap();
    Identity::open(&sealed, &Key256::from_slice(&h(&v.member_key)).unwrap()).unwrap()
}

/// Whether strongroom's decoder and opener refuse `bytes` as a grant of the vector's vault to
/// `identity`.
fn strongroom_refuses(bytes: &[u8], vault: VaultId, identity: &Identity) -> bool {
    Grant::decode(bytes).map_or(true, |g| g.open(vault, identity).is_none())
}

/// The field regions of a grant: (name, start, end).
fn grant_regions(kem: Kem) -> Vec<(&'static str, usize, usize)> {
    let mut r = vec![
        ("version", 0, 1),
        ("vault id", 1, 17),
        ("epoch", 17, 21),
        ("member id", 21, 37),
        ("recipient key hash", 37, 69),
    ];
    match kem {
        Kem::X25519 => r.push(("enc (ephemeral X25519 key)", 69, 101)),
        Kem::XWing => {
            r.push(("enc (ML-KEM-768 ciphertext)", 69, 1157));
            r.push(("enc (X25519 share)", 1157, 1189));
        }
    }
    let ct = 69 + kem.enc_len();
    r.push(("ciphertext", ct, ct + 32));
    r.push(("tag", ct + 32, ct + 48));
    r
}

/// Copies of `bytes` with one byte of `start..end` flipped: its first, middle and last byte,
/// each with its low and its high bit changed.
fn flips(bytes: &[u8], start: usize, end: usize) -> Vec<(usize, Vec<u8>)> {
    let mut at = vec![start, start + (end - start) / 2, end - 1];
    at.dedup();
    let mut out = Vec::new();
    for i in at {
        for mask in [0x01, 0x80] {
            let mut b = bytes.to_vec();
            b[i] ^= mask;
            out.push((i, b));
        }
    }
    out
}

#[test]
fn the_file_holds_classical_and_hybrid_vectors() {
    let f = load();
    assert!(f.description.contains("not secrets"));
    let kinds: Vec<(&str, u8)> = f
        .vectors
        .iter()
        .map(|v| (v.kem.as_str(), v.grant_version))
        .collect();
    assert!(kinds.contains(&("x25519", 1)), "{kinds:?}");
    assert!(kinds.contains(&("x-wing", 2)), "{kinds:?}");
    assert!(f.vectors.len() >= 4);
}

#[test]
fn every_vector_opens_with_the_reference_decoder() {
    for v in &load().vectors {
        let name = &v.name;
        let kem = Kem::of_version(v.grant_version).unwrap();
        assert_eq!(
            v.kem,
            match kem {
                Kem::X25519 => "x25519",
                Kem::XWing => "x-wing",
            }
        );

        // The sealed identity: header and plaintext fields.
        let secret =
            reference::open_sealed_identity(&h(&v.sealed_identity), &h32(&v.member_key)).unwrap();
        assert_eq!(secret.kem, kem, "{name}");
        assert_eq!(secret.vault_id, h16(&v.vault_id), "{name}");
        assert_eq!(secret.member_id, h16(&v.member_id), "{name}");
        assert_eq!(secret.kem_secret, h32(&v.kem_secret), "{name}");
        assert_eq!(secret.ed25519_seed, h32(&v.ed25519_seed), "{name}");
        assert_eq!(secret.name, v.member_name, "{name}");

        // The public identity: signed, and made of the sealed identity's keys.
        let public = reference::decode_public_identity(&h(&v.public_identity)).unwrap();
        reference::verify_public_identity(&public).unwrap();
        assert_eq!(public.kem, kem, "{name}");
        assert_eq!(public.member_id, secret.member_id, "{name}");
        assert_eq!(public.name, v.member_name, "{name}");
        assert_eq!(
            public.kem_public_key,
            reference::kem_public_key(kem, &secret.kem_secret),
            "{name}"
        );
        assert_eq!(
            public.signing_key,
            ed25519_dalek::SigningKey::from_bytes(&secret.ed25519_seed)
                .verifying_key()
                .to_bytes(),
            "{name}"
        );

        // The grant: every field, the info and aad, the vault key and its binding.
        let bytes = h(&v.grant);
        assert_eq!(bytes.len(), kem.grant_len(), "{name}");
        let r = recipient(v);
        assert_eq!(
            reference::recipient_key_hash(kem, &r.public_key),
            h32(&v.recipient_key_hash),
            "{name}"
        );
        let opened = reference::open_grant(&bytes, &h16(&v.vault_id), &r)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let g = &opened.fields;
        assert_eq!(g.version, v.grant_version, "{name}");
        assert_eq!(g.kem, kem, "{name}");
        assert_eq!(g.vault_id, h16(&v.vault_id), "{name}");
        assert_eq!(g.epoch, v.epoch, "{name}");
        assert_eq!(g.member_id, h16(&v.member_id), "{name}");
        assert_eq!(g.recipient_key_hash, h32(&v.recipient_key_hash), "{name}");
        assert_eq!(g.enc.len(), kem.enc_len(), "{name}");
        assert_eq!(opened.info, h(&v.info), "{name}");
        assert_eq!(g.aad.to_vec(), h(&v.aad), "{name}");
        assert_eq!(opened.vault_key, h32(&v.vault_key), "{name}");
        assert_eq!(hex::encode(opened.key_id), v.key_id, "{name}");
        assert_eq!(opened.key_commitment, h32(&v.key_commitment), "{name}");

        // The other direction: the reference seal with the recorded randomness gives the
        // same bytes.
        let sealed = reference::seal_grant(
            kem,
            &h16(&v.vault_id),
            v.epoch,
            &h16(&v.member_id),
            &r.public_key,
            &h32(&v.vault_key),
            &h(&v.encapsulation_randomness),
        );
        assert_eq!(hex::encode(sealed), v.grant, "{name}");

        // And strongroom agrees on all of it.
        let identity = strongroom_identity(v);
        assert_eq!(identity.public().encode(), h(&v.public_identity), "{name}");
        let grant = Grant::decode(&bytes).unwrap();
        assert_eq!(grant.epoch().get(), v.epoch, "{name}");
        assert_eq!(grant.member_id().as_bytes(), &h16(&v.member_id), "{name}");
        let vault = VaultId::from_bytes(h16(&v.vault_id));
        let key = grant.open(vault, &identity).unwrap();
        assert_eq!(key.expose_secret().expose_secret(), &h(&v.vault_key)[..]);
        assert_eq!(key.id().to_string(), v.key_id, "{name}");
        assert_eq!(key.commitment(), &h32(&v.key_commitment), "{name}");
    }
}

#[test]
fn a_flipped_byte_in_any_grant_field_is_refused() {
    for v in &load().vectors {
        let kem = Kem::of_version(v.grant_version).unwrap();
        let bytes = h(&v.grant);
        let vault_id = h16(&v.vault_id);
        let vault = VaultId::from_bytes(vault_id);
        let r = recipient(v);
        let identity = strongroom_identity(v);
        assert!(reference::open_grant(&bytes, &vault_id, &r).is_ok());
        assert!(!strongroom_refuses(&bytes, vault, &identity));
        let mut tried = 0;
        for (region, start, end) in grant_regions(kem) {
            for (at, bad) in flips(&bytes, start, end) {
                let what = format!("{} {region} byte {at}", v.name);
                assert!(
                    reference::open_grant(&bad, &vault_id, &r).is_err(),
                    "reference accepts {what}"
                );
                // Where the grant still decodes, the HPKE open alone refuses it too: every
                // field is in the info or the aad, or is the enc or the ciphertext.
                if let Ok(fields) = reference::decode_grant(&bad) {
                    assert!(
                        reference::hpke_open_grant(&fields, &r).is_err(),
                        "HPKE opens {what}"
                    );
                }
                assert!(
                    strongroom_refuses(&bad, vault, &identity),
                    "strongroom accepts {what}"
                );
                tried += 1;
            }
        }
        assert!(tried >= 40, "{tried}");

        // Truncated, extended, relabelled with the other version: refused by both.
        let mut longer = bytes.clone();
        longer.push(0);
        let mut relabelled = bytes.clone();
        relabelled[0] = 3 - relabelled[0];
        for bad in [bytes[..bytes.len() - 1].to_vec(), longer, relabelled] {
            assert!(reference::decode_grant(&bad).is_err(), "{}", v.name);
            assert!(Grant::decode(&bad).is_err(), "{}", v.name);
        }
        // Opened in another vault: refused by both.
        let mut other = vault_id;
        other[0] ^= 1;
        assert!(reference::open_grant(&bytes, &other, &r).is_err());
        assert!(strongroom_refuses(
            &bytes,
            VaultId::from_bytes(other),
            &identity
        ));
    }
}

#[test]
fn a_flipped_byte_in_any_identity_field_is_refused() {
    for v in &load().vectors {
        let kem = Kem::of_version(v.grant_version).unwrap();
        let member_key = h32(&v.member_key);
        let sealed = h(&v.sealed_identity);
        let n = sealed.len();
        for (region, start, end) in [
            ("version", 0, 1),
            ("vault id", 1, 17),
            ("member id", 17, 33),
            ("nonce", 33, 57),
            ("length", 57, 61),
            ("ciphertext", 61, n - 16),
            ("tag", n - 16, n),
        ] {
            for (at, bad) in flips(&sealed, start, end) {
                let what = format!("{} sealed identity {region} byte {at}", v.name);
                assert!(
                    reference::open_sealed_identity(&bad, &member_key).is_err(),
                    "reference accepts {what}"
                );
                let key = Key256::from_slice(&member_key).unwrap();
                assert!(
                    SealedIdentity::decode(&bad)
                        .map_or(true, |s| Identity::open(&s, &key).is_err()),
                    "strongroom accepts {what}"
                );
            }
        }

        let public = h(&v.public_identity);
        let key_end = 17 + kem.public_key_len();
        let name_end = key_end + 36 + v.member_name.len();
        for (region, start, end) in [
            ("version", 0, 1),
            ("member id", 1, 17),
            ("KEM public key", 17, key_end),
            ("Ed25519 key", key_end, key_end + 32),
            ("name length", key_end + 32, key_end + 36),
            ("name", key_end + 36, name_end),
            ("signature", name_end, name_end + 64),
        ] {
            for (at, bad) in flips(&public, start, end) {
                let what = format!("{} public identity {region} byte {at}", v.name);
                assert!(
                    reference::decode_public_identity(&bad)
                        .and_then(|p| reference::verify_public_identity(&p))
                        .is_err(),
                    "reference accepts {what}"
                );
                assert!(
                    PublicIdentity::decode(&bad).map_or(true, |p| p.verify().is_err()),
                    "strongroom accepts {what}"
                );
            }
        }
    }
}

/// A hybrid grant whose X25519 share has low order (a point of order 8, the identity, the
/// point of order 2) is refused before decapsulation (grant.md, "Opening", step 4), by the
/// reference and by strongroom.
#[test]
fn a_low_order_x25519_share_is_refused_before_decapsulation() {
    let order_8: [u8; 32] = [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0xd7,
    ];
    let mut order_2 = [0u8; 32];
    order_2[0] = 1;
    let mut hybrid = 0;
    for v in load().vectors.iter().filter(|v| v.grant_version == 2) {
        let vault_id = h16(&v.vault_id);
        let r = recipient(v);
        let identity = strongroom_identity(v);
        let share = 69 + 1088;
        let bytes = h(&v.grant);
        assert!(!reference::x25519_has_low_order(
            &bytes[share..share + 32].try_into().unwrap()
        ));
        for point in [order_8, [0u8; 32], order_2] {
            assert!(reference::x25519_has_low_order(&point));
            let mut bad = bytes.clone();
            bad[share..share + 32].copy_from_slice(&point);
            let fields = reference::decode_grant(&bad).unwrap();
            assert_eq!(
                reference::hpke_open_grant(&fields, &r).err(),
                Some("low-order X25519 share"),
                "{}",
                v.name
            );
            assert!(reference::open_grant(&bad, &vault_id, &r).is_err());
            assert!(strongroom_refuses(
                &bad,
                VaultId::from_bytes(vault_id),
                &identity
            ));
        }
        hybrid += 1;
    }
    assert!(hybrid >= 2);
}
