//! Membership log entries of kinds 13 (RequireSignedWrites) and 14 (Reattested), decoded
//! and their signatures checked by a decoder written from `docs/spec/membership-log.md`
//! alone (`ed25519-dalek` for the signature), and an entry built the same way from the
//! specification accepted by `Membership::verify`.

use ed25519_dalek::{Signature, VerifyingKey};
use strongroom_crypto::VaultId;
use strongroom_sharing::{
    EntryBody, Epoch, Identity, KeyBinding, LogEntry, Membership, RightEnded, Role, VaultKey,
};

const DOMAIN: &[u8] = b"strongroom/v1/member-log\0";

/// The fields of an entry, as the specification lays them out.
struct Spec<'a> {
    seq: u64,
    prev_hash: [u8; 32],
    vault: [u8; 16],
    signer: [u8; 16],
    kind: u8,
    body: &'a [u8],
}

/// Decodes `bytes` by the specification and checks its signature under `key`.
fn spec_decode<'a>(bytes: &'a [u8], key: &[u8; 32]) -> Spec<'a> {
    assert_eq!(bytes[0], 1, "version");
    let (signed, signature) = bytes.split_at(bytes.len() - 64);
    let vk = VerifyingKey::from_bytes(key).unwrap();
    vk.verify_strict(
        &[DOMAIN, signed].concat(),
        &Signature::from_bytes(signature.try_into().unwrap()),
    )
    .expect("the signature verifies as the specification says");
    Spec {
        seq: u64::from_be_bytes(bytes[1..9].try_into().unwrap()),
        prev_hash: bytes[9..41].try_into().unwrap(),
        vault: bytes[41..57].try_into().unwrap(),
        signer: bytes[57..73].try_into().unwrap(),
        kind: bytes[73],
        body: &signed[74..],
    }
}

#[test]
fn kinds_13_and_14_decode_by_the_specification() {
    let owner = Identity::generate("owner").unwrap();
    let bob = Identity::generate("bob").unwrap();
    let vault = VaultId::generate().unwrap();
    let key = VaultKey::generate(Epoch::FIRST).unwrap();
    let genesis = LogEntry::sign(
        0,
        [0; 32],
        vault,
        &owner,
        EntryBody::Genesis {
            owner: owner.public().clone(),
            key: KeyBinding::of(&key),
        },
    );
    let signed = LogEntry::sign(
        1,
        genesis.hash(),
        vault,
        &owner,
        EntryBody::RequireSignedWrites,
    );
    let add = LogEntry::sign(
        2,
        signed.hash(),
        vault,
        &owner,
        EntryBody::Add {
            identity: bob.public().clone(),
            role: Role::Member,
        },
    );
    let demote = LogEntry::sign(
        3,
        add.hash(),
        vault,
        &owner,
        EntryBody::RoleChange {
            member: bob.member_id(),
            role: Role::ReadOnly,
        },
    );
    let done = LogEntry::sign(
        4,
        demote.hash(),
        vault,
        &owner,
        EntryBody::Reattested {
            member: bob.member_id(),
            lost_at: 3,
        },
    );
    let key = owner.public().signing_key();

    let signed_bytes = signed.encode();
    let s = spec_decode(&signed_bytes, key);
    assert_eq!((s.seq, s.kind, s.body), (1, 13, &[][..]));
    assert_eq!(s.prev_hash, genesis.hash());
    assert_eq!(&s.vault, vault.as_bytes());
    assert_eq!(&s.signer, owner.member_id().as_bytes());

    let bytes = done.encode();
    let s = spec_decode(&bytes, key);
    assert_eq!((s.seq, s.kind), (4, 14));
    assert_eq!(s.prev_hash, demote.hash());
    assert_eq!(s.body.len(), 16 + 8);
    assert_eq!(&s.body[..16], bob.member_id().as_bytes());
    assert_eq!(u64::from_be_bytes(s.body[16..].try_into().unwrap()), 3);
    assert_eq!(LogEntry::decode(&bytes).unwrap(), done);

    // In the log, strongroom applies it.
    let entries = [
        genesis.encode(),
        signed.encode(),
        add.encode(),
        demote.encode(),
    ];
    let before = Membership::verify(entries.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(
        before.write_right_lost(bob.member_id(), 2),
        Some(RightEnded {
            at: 3,
            reattested_at: None
        })
    );
    let all = entries.iter().chain([&bytes]);
    let after = Membership::verify(all.map(Vec::as_slice)).unwrap();
    assert_eq!(
        after.write_right_lost(bob.member_id(), 2),
        Some(RightEnded {
            at: 3,
            reattested_at: Some(4)
        })
    );
    // A body one byte short is refused by strongroom's decoder.
    let mut short = bytes[..bytes.len() - 65].to_vec();
    short.extend_from_slice(&bytes[bytes.len() - 64..]);
    assert!(LogEntry::decode(&short).is_err());
}
