//! Known-answer vectors of grants: sealing with fixed identities, vault keys and
//! encapsulation randomness must reproduce `tests/data/v2/grant_vectors.json` byte for byte.
//! Run with `STRONGROOM_REGENERATE_VECTORS=1` to rewrite the file after a deliberate format
//! change (which must also bump a version byte). `tests/grant_vectors.rs` opens every vector
//! with the independent decoder of `tests/reference/`.

use ed25519_dalek::SigningKey;
use hpke::Serializable as _;
use hpke::rand_core::UnwrapErr;
use serde::Serialize;
use strongroom_crypto::{Key256, MemberId, VaultId};
use strongroom_envelope::{Epoch, VaultKey};

use crate::identity::{ClassicalKem, KemKind};
use crate::wrap::tests::FixedRng;
use crate::{Grant, Identity, recipient_key_hash};

struct Case {
    name: &'static str,
    kem: KemKind,
    epoch: u32,
    member_name: &'static str,
}

fn cases() -> [Case; 4] {
    [
        Case {
            name: "classical_epoch_1",
            kem: KemKind::X25519,
            epoch: 1,
            member_name: "alice",
        },
        Case {
            name: "classical_epoch_16909060",
            kem: KemKind::X25519,
            epoch: 0x0102_0304,
            member_name: "Bob Øster",
        },
        Case {
            name: "hybrid_epoch_1",
            kem: KemKind::XWing,
            epoch: 1,
            member_name: "carol",
        },
        Case {
            name: "hybrid_epoch_3000000000",
            kem: KemKind::XWing,
            epoch: 3_000_000_000,
            member_name: "dave@example.org",
        },
    ]
}

/// One vector; fields in the order of the file. Byte strings are lowercase hex.
#[derive(Serialize)]
struct Vector {
    name: &'static str,
    kem: &'static str,
    grant_version: u8,
    vault_id: String,
    epoch: u32,
    member_id: String,
    member_name: &'static str,
    /// The X25519 private key, or the 32-byte X-Wing seed.
    kem_secret: String,
    ed25519_seed: String,
    public_identity: String,
    member_key: String,
    sealed_identity: String,
    vault_key: String,
    key_id: String,
    key_commitment: String,
    recipient_key_hash: String,
    /// What HPKE's encapsulation draws: DHKEM's `ikmE` (32) or X-Wing's `eseed` (64).
    encapsulation_randomness: String,
    info: String,
    aad: String,
    grant: String,
}

#[derive(Serialize)]
struct File {
    description: &'static str,
    vectors: Vec<Vector>,
}

/// `n` bytes `start, start + step, …` (mod 256): fixed, distinct per field and vector.
fn pattern<const N: usize>(start: u8, step: u8) -> [u8; N] {
    let mut out = [0u8; N];
    let mut b = start;
    for x in &mut out {
        *x = b;
        b = b.wrapping_add(step);
    }
    out
}

fn vectors() -> File {
    let mut out = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let i = u8::try_from(i).unwrap();
        let vault = VaultId::from_bytes(pattern(0x10 + i, 3));
        let member = MemberId::from_bytes(pattern(0x20 + i, 5));
        // The KEM secret as `generate_kem_secret` makes it: an X25519 key derived from 32
        // bytes (RFC 9180 DeriveKeyPair), or the 32 bytes themselves as the X-Wing seed.
        let ikm: [u8; 32] = pattern(0x30 + i, 7);
        let mut kem_secret: [u8; 32] = match c.kem {
            KemKind::X25519 => {
                let (sk, _) = <ClassicalKem as hpke::Kem>::derive_keypair(&ikm);
                sk.to_bytes().into()
            }
            KemKind::XWing => ikm,
        };
        let kem_secret_hex = hex::encode(kem_secret);
        let ed25519_seed: [u8; 32] = pattern(0x40 + i, 11);
        let identity = Identity::assemble_for_tests(
            member,
            c.member_name,
            c.kem,
            Key256::from_array(&mut kem_secret),
            SigningKey::from_bytes(&ed25519_seed),
        );
        let member_key_bytes: [u8; 32] = pattern(0x50 + i, 13);
        let member_key = Key256::from_slice(&member_key_bytes).unwrap();
        let sealed = identity
            .seal_with_nonce(vault, &member_key, pattern(0x60 + i, 17))
            .unwrap();
        let vault_key_bytes: [u8; 32] = pattern(0x70 + i, 19);
        let vault_key = VaultKey::from_key(
            Epoch(c.epoch),
            Key256::from_slice(&vault_key_bytes).unwrap(),
        );
        let randomness = match c.kem {
            KemKind::X25519 => pattern::<32>(0x80 + i, 23).to_vec(),
            KemKind::XWing => pattern::<64>(0x90 + i, 29).to_vec(),
        };
        let grant = Grant::seal_with_rng(
            vault,
            &vault_key,
            identity.public(),
            &mut UnwrapErr(FixedRng(randomness.clone())),
        )
        .unwrap();
        let bytes = grant.encode();
        out.push(Vector {
            name: c.name,
            kem: c.kem.name(),
            grant_version: bytes[0],
            vault_id: vault.to_string(),
            epoch: c.epoch,
            member_id: member.to_string(),
            member_name: c.member_name,
            kem_secret: kem_secret_hex,
            ed25519_seed: hex::encode(ed25519_seed),
            public_identity: hex::encode(identity.public().encode()),
            member_key: hex::encode(member_key_bytes),
            sealed_identity: hex::encode(sealed.encode()),
            vault_key: hex::encode(vault_key_bytes),
            key_id: vault_key.id().to_string(),
            key_commitment: hex::encode(vault_key.commitment()),
            recipient_key_hash: hex::encode(recipient_key_hash(identity.public())),
            encapsulation_randomness: hex::encode(&randomness),
            info: hex::encode(grant.info(identity.public().public_kem())),
            aad: hex::encode(grant.header()),
            grant: hex::encode(&bytes),
        });
    }
    File {
        description: "strongroom grant known-answer vectors: version 1 (X25519) and version 2 \
            (X-Wing) grants of a fixed vault key to a member whose identity is made of fixed \
            keys, sealed with fixed encapsulation randomness (docs/spec/grant.md, identity.md). \
            'kem_secret' is the X25519 private key or the X-Wing seed; 'sealed_identity' opens \
            with 'member_key'. Test data, not secrets.",
        vectors: out,
    }
}

fn path() -> String {
    format!(
        "{}/tests/data/v2/grant_vectors.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn grant_vectors_match_the_file_byte_for_byte() {
    let expected = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("STRONGROOM_REGENERATE_VECTORS").is_some() {
        std::fs::write(path(), &expected).unwrap();
    }
    let on_disk = std::fs::read_to_string(path()).unwrap();
    assert!(
        on_disk == expected,
        "sealing no longer reproduces tests/data/v2/grant_vectors.json"
    );
}
