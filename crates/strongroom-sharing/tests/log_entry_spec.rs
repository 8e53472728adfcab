//! Membership log entries of kinds 13 (RequireSignedWrites), 14 (Reattested) and 15 to 19
//! (scopes), decoded and their signatures checked by a decoder written from
//! `docs/spec/membership-log.md` alone (`ed25519-dalek` for the signature), and an entry built the same way from the
//! specification accepted by `Membership::verify`.

use ed25519_dalek::{Signature, VerifyingKey};
use strongroom_crypto::{ScopeId, VaultId};
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

#[test]
fn kinds_15_to_19_decode_by_the_specification() {
    let owner = Identity::generate("owner").unwrap();
    let svc = Identity::generate("svc").unwrap();
    let vault = VaultId::generate().unwrap();
    let scope = ScopeId::generate().unwrap();
    let vk = VaultKey::generate(Epoch::FIRST).unwrap();
    let (sk1, sk2, sk3) = (
        VaultKey::generate(Epoch(1)).unwrap(),
        VaultKey::generate(Epoch(2)).unwrap(),
        VaultKey::generate(Epoch(3)).unwrap(),
    );
    let bodies = [
        EntryBody::Add {
            identity: svc.public().clone(),
            role: Role::Scoped,
        },
        EntryBody::ScopeCreate {
            scope,
            prefix: "core/billing".into(),
            key: KeyBinding::of(&sk1),
        },
        EntryBody::ScopeGrant {
            member: svc.member_id(),
            scope,
            role: Role::Member,
        },
        EntryBody::ScopeRekey {
            scope,
            epoch: Epoch(2),
            key: KeyBinding::of(&sk2),
        },
        EntryBody::ScopeRevoke {
            member: svc.member_id(),
            scope,
            epoch: Epoch(3),
            key: KeyBinding::of(&sk3),
        },
        EntryBody::RemoveScoped {
            member: svc.member_id(),
        },
    ];
    let mut entries = vec![LogEntry::sign(
        0,
        [0; 32],
        vault,
        &owner,
        EntryBody::Genesis {
            owner: owner.public().clone(),
            key: KeyBinding::of(&vk),
        },
    )];
    for body in bodies {
        let last = entries.last().unwrap();
        let next = LogEntry::sign(last.seq() + 1, last.hash(), vault, &owner, body);
        entries.push(next);
    }
    let encoded: Vec<Vec<u8>> = entries.iter().map(LogEntry::encode).collect();
    let key = owner.public().signing_key();
    let binding = |k: &VaultKey| [k.id().as_bytes().as_slice(), k.commitment()].concat();

    let s = spec_decode(&encoded[1], key);
    assert_eq!(s.kind, 2);
    assert_eq!(*s.body.last().unwrap(), 5, "role 5: scoped");

    let s = spec_decode(&encoded[2], key);
    assert_eq!(s.kind, 15);
    assert_eq!(&s.body[..16], scope.as_bytes());
    assert_eq!(u32::from_be_bytes(s.body[16..20].try_into().unwrap()), 12);
    assert_eq!(&s.body[20..32], b"core/billing");
    assert_eq!(s.body[32..], binding(&sk1));

    let s = spec_decode(&encoded[3], key);
    assert_eq!(s.kind, 16);
    assert_eq!(&s.body[..16], svc.member_id().as_bytes());
    assert_eq!(&s.body[16..32], scope.as_bytes());
    assert_eq!(s.body[32..], [3], "role 3: member");

    let s = spec_decode(&encoded[4], key);
    assert_eq!(s.kind, 18);
    assert_eq!(&s.body[..16], scope.as_bytes());
    assert_eq!(u32::from_be_bytes(s.body[16..20].try_into().unwrap()), 2);
    assert_eq!(s.body[20..], binding(&sk2));

    let s = spec_decode(&encoded[5], key);
    assert_eq!(s.kind, 17);
    assert_eq!(&s.body[..16], svc.member_id().as_bytes());
    assert_eq!(&s.body[16..32], scope.as_bytes());
    assert_eq!(u32::from_be_bytes(s.body[32..36].try_into().unwrap()), 3);
    assert_eq!(s.body[36..], binding(&sk3));

    let s = spec_decode(&encoded[6], key);
    assert_eq!(
        (s.kind, s.body),
        (19, svc.member_id().as_bytes().as_slice())
    );

    // strongroom's decoder reads them back and its verifier applies them.
    for (bytes, entry) in encoded.iter().zip(&entries) {
        assert_eq!(&LogEntry::decode(bytes).unwrap(), entry);
    }
    let log = Membership::verify(encoded.iter().map(Vec::as_slice)).unwrap();
    assert_eq!(log.scope(scope).unwrap().epoch(), Epoch(3));
    assert!(log.member(svc.member_id()).is_none());
    // A prefix that is not a namespace is refused by the decoder's verifier.
    let bad = LogEntry::sign(
        1,
        entries[0].hash(),
        vault,
        &owner,
        EntryBody::ScopeCreate {
            scope,
            prefix: "core/../auth".into(),
            key: KeyBinding::of(&sk1),
        },
    );
    assert!(Membership::verify([encoded[0].as_slice(), &bad.encode()]).is_err());
}
