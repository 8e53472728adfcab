//! Property tests of every encoding: round trips, and no panic on arbitrary bytes.

use std::sync::LazyLock;

use proptest::prelude::*;
use strongroom_crypto::{Key256, KeyId, MemberId, ScopeId, VaultId};
use strongroom_recovery::{KeyholderKind, Stanza};
use strongroom_sharing::{
    ChainLink, EntryBody, Epoch, Grant, Identity, KemKind, KeyBinding, KeyholderRecord, LogEntry,
    Pins, PublicIdentity, Role, SealedIdentity, VaultKey,
};

static SIGNER: LazyLock<Identity> = LazyLock::new(|| Identity::generate(&"n".repeat(128)).unwrap());

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._@-]{0,40}[a-z]".prop_map(|s| s.chars().take(128).collect())
}

fn kem() -> impl Strategy<Value = KemKind> {
    prop::sample::select(vec![KemKind::X25519, KemKind::XWing])
}

fn identity(name: &str, kem: KemKind) -> Identity {
    Identity::generate_kind(MemberId::generate().unwrap(), name, kem).unwrap()
}

fn role() -> impl Strategy<Value = Role> {
    prop::sample::select(Role::ALL.to_vec())
}

/// A key binding as format v1 (id only) or v2 (id and commitment) logs it: a real key's
/// commitment cannot be chosen, so arbitrary bytes stand for one in the encoding tests.
fn binding(id: [u8; 8], commitment: Option<[u8; 32]>) -> KeyBinding {
    let legacy = KeyBinding::legacy(KeyId::from_bytes(id));
    match commitment {
        None => legacy,
        Some(c) => KeyBinding::from_parts(KeyId::from_bytes(id), c),
    }
}

fn body(identity: PublicIdentity) -> impl Strategy<Value = EntryBody> {
    let i2 = identity.clone();
    let i3 = identity.clone();
    let i4 = identity.clone();
    prop_oneof![
        (any::<[u8; 8]>(), any::<Option<[u8; 32]>>()).prop_map(move |(k, c)| EntryBody::Genesis {
            owner: identity.clone(),
            key: binding(k, c)
        }),
        role().prop_map(move |role| EntryBody::Add {
            identity: i2.clone(),
            role
        }),
        (
            any::<[u8; 16]>(),
            1u32..,
            any::<[u8; 8]>(),
            any::<Option<[u8; 32]>>()
        )
            .prop_map(|(m, e, k, c)| EntryBody::Remove {
                member: MemberId::from_bytes(m),
                epoch: Epoch(e),
                key: binding(k, c)
            }),
        (1u32.., any::<[u8; 8]>(), any::<Option<[u8; 32]>>()).prop_map(|(e, k, c)| {
            EntryBody::Rekey {
                epoch: Epoch(e),
                key: binding(k, c),
            }
        }),
        any::<[u8; 16]>().prop_map(move |m| EntryBody::Regrant {
            member: MemberId::from_bytes(m),
            identity: i3.clone()
        }),
        (any::<[u8; 16]>(), role()).prop_map(|(m, role)| EntryBody::RoleChange {
            member: MemberId::from_bytes(m),
            role
        }),
        (1u32..).prop_map(|e| EntryBody::Retire { below: Epoch(e) }),
        Just(()).prop_map(move |()| EntryBody::Upgrade {
            identity: i4.clone()
        }),
        Just(EntryBody::RequireHybrid),
        Just(EntryBody::RequireSignedWrites),
        (any::<[u8; 16]>(), any::<u64>()).prop_map(|(m, lost_at)| EntryBody::Reattested {
            member: MemberId::from_bytes(m),
            lost_at
        }),
        scope_body(),
    ]
}

/// The entries of scopes (kinds 15 to 19): their key bindings always carry a commitment.
fn scope_body() -> impl Strategy<Value = EntryBody> {
    let scope = || any::<[u8; 16]>().prop_map(ScopeId::from_bytes);
    let member = || any::<[u8; 16]>().prop_map(MemberId::from_bytes);
    let bound = || (any::<[u8; 8]>(), any::<[u8; 32]>()).prop_map(|(k, c)| binding(k, Some(c)));
    prop_oneof![
        (
            scope(),
            "[a-z0-9._-]{1,16}(/[a-z0-9._-]{1,16}){0,4}",
            bound()
        )
            .prop_map(|(scope, prefix, key)| EntryBody::ScopeCreate { scope, prefix, key }),
        (member(), scope(), role()).prop_map(|(member, scope, role)| EntryBody::ScopeGrant {
            member,
            scope,
            role
        }),
        (member(), scope(), 1u32.., bound()).prop_map(|(member, scope, e, key)| {
            EntryBody::ScopeRevoke {
                member,
                scope,
                epoch: Epoch(e),
                key,
            }
        }),
        (scope(), 1u32.., bound()).prop_map(|(scope, e, key)| EntryBody::ScopeRekey {
            scope,
            epoch: Epoch(e),
            key
        }),
        member().prop_map(|member| EntryBody::RemoveScoped { member }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn public_identity_round_trips(name in name(), kem in kem()) {
        let id = identity(&name, kem);
        let p = id.public();
        prop_assert_eq!(&PublicIdentity::decode(&p.encode()).unwrap(), p);
        prop_assert_eq!(&PublicIdentity::from_text(&p.to_text()).unwrap(), p);
        prop_assert_eq!(p.name(), name.as_str());
        prop_assert!(p.confirm_fingerprint(&p.fingerprint().to_string()).is_ok());
    }

    #[test]
    fn sealed_identity_round_trips(name in name(), vault in any::<[u8; 16]>(), kem in kem()) {
        let id = identity(&name, kem);
        let key = Key256::generate().unwrap();
        let sealed = id.seal(VaultId::from_bytes(vault), &key).unwrap();
        let back = SealedIdentity::decode(&sealed.encode()).unwrap();
        prop_assert_eq!(&back, &sealed);
        let opened = Identity::open(&back, &key).unwrap();
        prop_assert_eq!(opened.public(), id.public());
    }

    #[test]
    fn log_entries_round_trip(
        seq in any::<u64>(),
        prev in any::<[u8; 32]>(),
        vault in any::<[u8; 16]>(),
        b in body(SIGNER.public().clone()),
    ) {
        let e = LogEntry::sign(seq, prev, VaultId::from_bytes(vault), &SIGNER, b.clone());
        let bytes = e.encode();
        prop_assert!(bytes.len() <= LogEntry::MAX_LEN);
        let back = LogEntry::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(back.body(), &b);
        prop_assert_eq!(back.hash(), e.hash());
    }

    #[test]
    fn grants_and_links_round_trip(
        vault in any::<[u8; 16]>(),
        epoch in 2u32..1_000_000,
        kem in kem(),
    ) {
        let vault = VaultId::from_bytes(vault);
        let id = identity("m", kem);
        let vk = VaultKey::generate(Epoch(epoch)).unwrap();
        let prev = VaultKey::generate(Epoch(epoch - 1)).unwrap();
        let g = Grant::seal(vault, &vk, id.public()).unwrap();
        prop_assert_eq!(g.kem(), kem);
        prop_assert_eq!(&Grant::decode(&g.encode()).unwrap(), &g);
        prop_assert_eq!(g.open(vault, &id).unwrap().id(), vk.id());
        let l = ChainLink::seal(vault, &vk, &prev).unwrap();
        prop_assert_eq!(&ChainLink::decode(&l.encode()).unwrap(), &l);
        prop_assert_eq!(l.open(vault, &vk).unwrap().id(), prev.id());
    }

    #[test]
    fn pins_round_trip(
        vault in any::<[u8; 16]>(),
        signer in any::<[u8; 32]>(),
        seq in any::<u64>(),
        epoch in 1u32..,
        head in any::<[u8; 32]>(),
    ) {
        let mut bytes = vec![1, 1];
        bytes.extend_from_slice(&vault);
        bytes.extend_from_slice(&signer);
        bytes.extend_from_slice(&seq.to_be_bytes());
        bytes.extend_from_slice(&epoch.to_be_bytes());
        bytes.extend_from_slice(&head);
        let pins = Pins::decode(&bytes).unwrap();
        prop_assert_eq!(pins.encode(), bytes);
        let hw = pins.high_water().unwrap();
        prop_assert_eq!((hw.seq, hw.epoch, hw.head), (seq, Epoch(epoch), head));
        prop_assert_eq!(pins.vault_id(), Some(VaultId::from_bytes(vault)));
    }

    #[test]
    fn keyholder_records_round_trip(
        kind in prop::sample::select(KeyholderKind::ALL.to_vec()),
        id in any::<[u8; 8]>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        created in any::<u64>(),
        used in any::<u64>(),
    ) {
        let r = KeyholderRecord { stanza: Stanza { kind, id, body }, created_at: created, last_used_at: used };
        prop_assert_eq!(KeyholderRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1400)) {
        let _ = PublicIdentity::decode(&bytes);
        let _ = SealedIdentity::decode(&bytes);
        let _ = LogEntry::decode(&bytes);
        let _ = Grant::decode(&bytes);
        let _ = ChainLink::decode(&bytes);
        let _ = Pins::decode(&bytes);
        let _ = KeyholderRecord::decode(&bytes);
        let _ = PublicIdentity::from_text(&String::from_utf8_lossy(&bytes));
        let mut text = PublicIdentity::TEXT_PREFIX.to_owned();
        text.push_str(&String::from_utf8_lossy(&bytes));
        let _ = PublicIdentity::from_text(&text);
    }

    #[test]
    fn truncated_or_extended_encodings_are_refused(cut in 1usize..60, extra in any::<u8>()) {
        let id = Identity::generate("zed").unwrap();
        let p = id.public().encode();
        let cut = cut.min(p.len());
        prop_assert!(PublicIdentity::decode(&p[..p.len() - cut]).is_err());
        let mut longer = p.clone();
        longer.push(extra);
        prop_assert!(PublicIdentity::decode(&longer).is_err());
        let e = LogEntry::sign(0, [0; 32], VaultId::from_bytes([1; 16]), &id, EntryBody::Rekey {
            epoch: Epoch(2), key: KeyBinding::legacy(KeyId::from_bytes([0; 8])) });
        let b = e.encode();
        prop_assert!(LogEntry::decode(&b[..b.len() - cut.min(b.len())]).is_err());
    }
}
