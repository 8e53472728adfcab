//! Hybrid (X-Wing) grants: new identities are hybrid, classical members keep working next to
//! hybrid ones, a classical member upgrades (signed log entry) after which their grants are
//! hybrid only, an owner makes hybrid grants mandatory, and a storage that tries to take a
//! member back to a classical grant is refused.

#[path = "helpers/common.rs"]
mod common;

use common::{Person, add_and_join, confirmed, grant_key, new_vault};
use strongroom_crypto::MemberId;
use strongroom_sharing::{
    EntryBody, Epoch, Grant, Identity, KemKind, LogEntry, Role, SharingError, VerifyError,
};
use strongroom_store::{AdversarialStore, Batch, Expect, MemoryStore, ReadView, Store, Table};

fn classical(name: &str) -> Person {
    Person::with_identity(
        Identity::generate_kind(MemberId::generate().unwrap(), name, KemKind::X25519).unwrap(),
    )
}

fn grant_at(store: &dyn ReadView, epoch: u32, member: MemberId) -> Option<Grant> {
    store
        .get(Table::Wraps, &grant_key(epoch, member))
        .unwrap()
        .map(|row| Grant::decode(&row.value).unwrap())
}

fn grants_of(store: &dyn ReadView, member: MemberId) -> Vec<Grant> {
    strongroom_store::scan_all(
        store,
        Table::Wraps,
        &strongroom_store::ScanRange::prefix(vec![b'g']),
    )
    .unwrap()
    .into_iter()
    .map(|row| Grant::decode(&row.value).unwrap())
    .filter(|g| g.member_id() == member)
    .collect()
}

#[test]
fn new_identities_get_hybrid_grants_and_mix_with_classical_members() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    assert_eq!(alice.identity.kem(), KemKind::XWing);
    assert_eq!(alice.identity.name(), "alice");
    assert_eq!(alice.identity.public().name(), "alice");
    assert_eq!(
        (KemKind::XWing.to_string(), KemKind::X25519.to_string()),
        ("x-wing".to_owned(), "x25519".to_owned())
    );
    let (vault, mut a) = new_vault(&store, &mut alice);
    assert_eq!(
        grant_at(&store, 1, alice.id()).unwrap().kem(),
        KemKind::XWing
    );
    // A classical member (an identity made by the first release) joins the hybrid vault.
    let mut bob = classical("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    assert_eq!(
        grant_at(&store, 1, bob.id()).unwrap().kem(),
        KemKind::X25519
    );
    assert_eq!(b.current_key().id(), a.current_key().id());
    // A rotation grants each member with their own KEM.
    a.rekey(&store).unwrap();
    assert_eq!(
        grant_at(&store, 2, alice.id()).unwrap().kem(),
        KemKind::XWing
    );
    assert_eq!(
        grant_at(&store, 2, bob.id()).unwrap().kem(),
        KemKind::X25519
    );
    let b = bob.unlock(&store, vault).unwrap();
    assert_eq!(b.current_key().id(), a.current_key().id());
    let classical: Vec<MemberId> = a
        .membership()
        .classical_members()
        .iter()
        .map(|m| m.id())
        .collect();
    assert_eq!(classical, [bob.id()]);
}

#[test]
fn a_classical_member_upgrades_and_then_gets_hybrid_grants_only() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = classical("bob");
    let mut b = add_and_join(&store, vault, &mut a, &mut bob, Role::ReadOnly);
    a.rekey(&store).unwrap();
    b.refresh(&store).unwrap();
    assert_eq!(grants_of(&store, bob.id()).len(), 2);
    let old_fingerprint = b.identity().public().fingerprint();

    // Bob (read-only: upgrading changes nobody else) upgrades himself.
    b.upgrade_identity(&store).unwrap();
    assert_eq!(b.identity().kem(), KemKind::XWing);
    assert_eq!(b.identity().member_id(), bob.id());
    assert_ne!(b.identity().public().fingerprint(), old_fingerprint);
    let grants = grants_of(&store, bob.id());
    assert_eq!(grants.len(), 1, "the classical grants are gone");
    assert_eq!(grants[0].kem(), KemKind::XWing);
    assert_eq!(grants[0].epoch(), Epoch(2));
    assert!(b.membership().classical_members().is_empty());
    assert!(matches!(
        b.membership().member(bob.id()).map(|m| m.identity().kem()),
        Some(KemKind::XWing)
    ));

    // His keyholder still unlocks him (same member key), with every epoch's key, and his
    // pinned log accepts the upgrade.
    let again = bob.unlock(&store, vault).unwrap();
    assert_eq!(again.identity().kem(), KemKind::XWing);
    assert_eq!(again.keys().len(), 2);
    // Alice sees the upgrade, and the next epoch is hybrid for both.
    a.refresh(&store).unwrap();
    a.rekey(&store).unwrap();
    assert_eq!(grant_at(&store, 3, bob.id()).unwrap().kem(), KemKind::XWing);
    let b3 = bob.unlock(&store, vault).unwrap();
    assert_eq!(b3.current_key().id(), a.current_key().id());

    // Upgrading twice is refused; so is upgrading someone else.
    let mut b3 = b3;
    assert!(matches!(
        b3.upgrade_identity(&store),
        Err(SharingError::InvalidChange { .. })
    ));
}

#[test]
fn upgrade_entries_are_checked_by_every_verifier() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = classical("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    let head = |s: &MemoryStore| {
        let seq = s.log_head(Table::MemberLog).unwrap().unwrap();
        let row = s
            .get(Table::MemberLog, &common::log_key(seq))
            .unwrap()
            .unwrap();
        LogEntry::decode(&row.value).unwrap()
    };
    let forge = |signer: &Identity, body: EntryBody| {
        let h = head(&store);
        LogEntry::sign(h.seq() + 1, h.hash(), vault, signer, body)
    };
    let try_append = |entry: LogEntry| {
        let s2 = common::copy_store(&store);
        let mut batch = Batch::new();
        batch.append(Table::MemberLog, entry.seq(), entry.encode());
        s2.commit(&batch).unwrap();
        let mut pins = alice.pins.clone();
        match strongroom_sharing::unlock(&s2, vault, Some(alice.id()), &alice.kek, &mut pins) {
            Err(SharingError::Verify(v)) => v,
            other => panic!("accepted: {other:?}"),
        }
    };
    let up = bob.identity.upgraded_to_hybrid().unwrap();
    // Alice signs Bob's upgrade: refused (only the member holds the new secret).
    let v = try_append(forge(
        &alice.identity,
        EntryBody::Upgrade {
            identity: up.public().clone(),
        },
    ));
    assert!(matches!(v, VerifyError::InvalidEntry { .. }), "{v}");
    // An "upgrade" to a classical key is refused.
    let other = Identity::generate_kind(bob.id(), "bob", KemKind::X25519).unwrap();
    let v = try_append(forge(
        &bob.identity,
        EntryBody::Upgrade {
            identity: other.public().clone(),
        },
    ));
    assert!(matches!(v, VerifyError::InvalidEntry { .. }), "{v}");
    // A hybrid identity with another Ed25519 key (a takeover of Bob's slot) is refused.
    let takeover = Identity::generate_with_id(bob.id(), "bob").unwrap();
    let v = try_append(forge(
        &bob.identity,
        EntryBody::Upgrade {
            identity: takeover.public().clone(),
        },
    ));
    assert!(matches!(v, VerifyError::InvalidEntry { .. }), "{v}");
    // A hybrid member cannot "upgrade" again.
    let v = try_append(forge(
        &alice.identity,
        EntryBody::Upgrade {
            identity: alice.identity.public().clone(),
        },
    ));
    assert!(matches!(v, VerifyError::InvalidEntry { .. }), "{v}");
    drop(b);
}

#[test]
fn storage_cannot_take_an_upgraded_member_back_to_a_classical_grant() {
    let store = AdversarialStore::new(MemoryStore::new());
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = classical("bob");
    let mut b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    let classical_grant = store
        .inner()
        .get(Table::Wraps, &grant_key(1, bob.id()))
        .unwrap()
        .unwrap()
        .value;
    b.upgrade_identity(&store).unwrap();
    // The storage puts Bob's old classical grant back in place of the hybrid one: it names
    // a key the log no longer lists for him.
    let mut batch = Batch::new();
    batch.put(
        Table::Wraps,
        grant_key(1, bob.id()),
        classical_grant,
        Expect::Any,
    );
    store.inner().commit(&batch).unwrap();
    for who in [&mut alice, &mut bob] {
        let err = who.unlock(&store, vault).unwrap_err();
        assert!(
            matches!(
                err,
                SharingError::Verify(VerifyError::GrantKeyMismatch { .. })
            ),
            "{err}"
        );
    }
}

#[test]
fn owners_require_hybrid_grants_once_everyone_is_hybrid() {
    let store = AdversarialStore::new(MemoryStore::new());
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = classical("bob");
    let mut b = add_and_join(&store, vault, &mut a, &mut bob, Role::Admin);
    let mut carol = classical("carol");
    add_and_join(&store, vault, &mut a, &mut carol, Role::Member);
    a.remove_member(&store, carol.id()).unwrap();
    // Bob is still classical: the policy is refused and says why.
    let err = a.require_hybrid(&store).unwrap_err();
    assert!(err.to_string().contains("must upgrade first"), "{err}");
    b.refresh(&store).unwrap();
    b.upgrade_identity(&store).unwrap();
    // An admin may not set it; an owner may.
    assert!(matches!(
        b.require_hybrid(&store),
        Err(SharingError::PermissionDenied { .. })
    ));
    a.refresh(&store).unwrap();
    let carol_grant = store
        .inner()
        .get(Table::Wraps, &grant_key(1, carol.id()))
        .unwrap()
        .expect("the former member's classical grant is still stored before the policy")
        .value;
    a.require_hybrid(&store).unwrap();
    assert!(a.membership().hybrid_required());
    assert!(
        grants_of(&store, carol.id()).is_empty(),
        "the policy deleted the leftover classical grants"
    );
    // Classical identities can no longer be added, nor re-granted.
    let dave = classical("dave");
    let err = a
        .add_member(
            &store,
            dave.identity.public(),
            Role::Member,
            confirmed(dave.identity.public()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("hybrid"), "{err}");
    let new_bob =
        Identity::generate_kind(MemberId::generate().unwrap(), "bob", KemKind::X25519).unwrap();
    assert!(
        a.regrant(
            &store,
            bob.id(),
            new_bob.public(),
            confirmed(new_bob.public())
        )
        .is_err()
    );
    // A hybrid newcomer is fine.
    let mut erin = Person::new("erin");
    add_and_join(&store, vault, &mut a, &mut erin, Role::Member);
    // Under the policy a classical grant anywhere is refused: the storage puts back the
    // former member's classical grant (addressed to her logged key, in her epochs).
    let mut batch = Batch::new();
    batch.put(
        Table::Wraps,
        grant_key(1, carol.id()),
        carol_grant,
        Expect::Any,
    );
    store.inner().commit(&batch).unwrap();
    let err = alice.unlock(&store, vault).unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::Verify(VerifyError::ClassicalGrant {
                epoch: Epoch(1),
                ..
            })
        ),
        "{err}"
    );
}

/// The largest identity (hybrid, a name of `MAX_NAME_LEN` bytes) encodes to exactly
/// `PublicIdentity::MAX_LEN` bytes, and a log entry adding it fits `LogEntry::MAX_LEN`.
#[test]
fn the_largest_identity_and_the_entry_adding_it_fit_their_limits() {
    let name = "n".repeat(strongroom_sharing::MAX_NAME_LEN);
    let id = Identity::generate(&name).unwrap();
    assert_eq!(id.kem(), KemKind::XWing);
    let bytes = id.public().encode();
    assert_eq!(bytes.len(), strongroom_sharing::PublicIdentity::MAX_LEN);
    assert_eq!(
        strongroom_sharing::PublicIdentity::decode(&bytes).unwrap(),
        *id.public()
    );
    let owner = Identity::generate("owner").unwrap();
    let entry = LogEntry::sign(
        1,
        [0; 32],
        strongroom_crypto::VaultId::generate().unwrap(),
        &owner,
        EntryBody::Add {
            identity: id.public().clone(),
            role: Role::Member,
        },
    );
    let encoded = entry.encode();
    assert!(encoded.len() <= LogEntry::MAX_LEN, "{}", encoded.len());
    assert_eq!(LogEntry::decode(&encoded).unwrap(), entry);

    // The largest entry: a genesis naming that identity and a 256-bit key commitment.
    let genesis = LogEntry::sign(
        0,
        [0; 32],
        strongroom_crypto::VaultId::generate().unwrap(),
        &id,
        EntryBody::Genesis {
            owner: id.public().clone(),
            key: strongroom_sharing::KeyBinding::of(
                &strongroom_sharing::VaultKey::generate(strongroom_sharing::Epoch(1)).unwrap(),
            ),
        },
    );
    let encoded = genesis.encode();
    assert!(encoded.len() > bytes.len() + 170, "{}", encoded.len());
    assert!(encoded.len() <= LogEntry::MAX_LEN, "{}", encoded.len());
    assert_eq!(LogEntry::decode(&encoded).unwrap(), genesis);

    // The size limits of docs/spec/identity.md and membership-log.md; the entry's is
    // checked first, at exactly 1651 bytes.
    assert_eq!(
        (
            strongroom_sharing::PublicIdentity::MAX_LEN,
            LogEntry::MAX_LEN
        ),
        (1461, 1651)
    );
    let too_long = |len: usize| {
        matches!(
            LogEntry::decode(&vec![1; len]),
            Err(strongroom_crypto::DecodeError::TooLong { field: "entry", .. })
        )
    };
    assert!(!too_long(1651));
    assert!(too_long(1652));
}
