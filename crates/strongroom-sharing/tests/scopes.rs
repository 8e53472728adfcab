//! Scopes: a scoped member (a service account) holds the keys of the scopes granted to it
//! and of nothing else; revoking a scope rotates that scope only; removing a full member
//! rotates every scope under the new vault key; the log's rules hold; and a storage that
//! plants, swaps or drops scope key rows is refused.

#[path = "helpers/common.rs"]
mod common;

use common::{Person, add_and_join, confirmed, copy_store, grant_key, new_vault};
use strongroom_crypto::{MemberId, VaultId};
use strongroom_sharing::{
    EntryBody, Epoch, Grant, Identity, KemKind, LogEntry, Role, Scope, ScopeGrant, ScopeId,
    ScopeLink, ScopedSession, Session, SharingError, VaultKey, VerifyError, WriterRefused,
    join_scoped, unlock_scoped,
};
use strongroom_store::{Batch, Expect, MemoryStore, ReadView, Store, Table};

fn grant_row(scope: ScopeId, epoch: u32, member: MemberId) -> Vec<u8> {
    [
        &b"h"[..],
        scope.as_bytes(),
        &epoch.to_be_bytes(),
        member.as_bytes(),
    ]
    .concat()
}

fn link_row(scope: ScopeId) -> Vec<u8> {
    [&b"s"[..], scope.as_bytes()].concat()
}

/// `admin` adds `who` as a scoped member, grants it `scopes`, and `who` joins.
fn add_scoped(
    store: &dyn Store,
    vault: VaultId,
    admin: &mut Session,
    who: &mut Person,
    scopes: &[(ScopeId, Role)],
) -> ScopedSession {
    let public = who.identity.public().clone();
    admin
        .add_member(store, &public, Role::Scoped, confirmed(&public))
        .unwrap();
    for (scope, role) in scopes {
        admin.grant_scope(store, who.id(), *scope, *role).unwrap();
    }
    join_scoped(store, vault, &who.identity, &[&who.kek], &mut who.pins).unwrap()
}

fn unlock_as_scoped(
    who: &mut Person,
    store: &dyn Store,
    vault: VaultId,
) -> Result<ScopedSession, SharingError> {
    unlock_scoped(store, vault, Some(who.id()), &who.kek, &mut who.pins)
}

struct Setup {
    store: MemoryStore,
    vault: VaultId,
    alice: Person,
    a: Session,
    billing: ScopeId,
    auth: ScopeId,
}

fn setup() -> Setup {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let billing = a.create_scope(&store, "core/billing").unwrap();
    let auth = a.create_scope(&store, "core/auth").unwrap();
    Setup {
        store,
        vault,
        alice,
        a,
        billing,
        auth,
    }
}

#[test]
fn a_scoped_member_holds_the_keys_of_its_scopes_and_nothing_else() {
    let Setup {
        store,
        vault,
        mut alice,
        mut a,
        billing,
        auth,
    } = setup();
    let mut svc = Person::new("billing-service");
    let s = add_scoped(&store, vault, &mut a, &mut svc, &[(billing, Role::Member)]);
    // Only the billing scope's key, the same the owner holds.
    assert_eq!(
        s.scope_keys().keys().copied().collect::<Vec<_>>(),
        vec![billing]
    );
    assert_eq!(
        s.current_scope_key(billing).unwrap().id(),
        a.current_scope_key(billing).unwrap().id()
    );
    assert!(s.current_scope_key(auth).is_none());
    assert_eq!(s.scope_role(billing), Some(Role::Member));
    assert_eq!(s.scope_role(auth), None);
    // No vault grant was made to it, and it cannot open as a full member.
    let vault_grants = strongroom_store::scan_all(
        &store,
        Table::Wraps,
        &strongroom_store::ScanRange::prefix(vec![b'g']),
    )
    .unwrap();
    assert!(
        vault_grants
            .iter()
            .all(|r| !r.key.ends_with(svc.id().as_bytes()))
    );
    assert!(matches!(
        svc.unlock(&store, vault),
        Err(SharingError::WrongKindOfMember { scoped: true, .. })
    ));
    assert!(matches!(
        unlock_as_scoped(&mut alice, &store, vault),
        Err(SharingError::WrongKindOfMember { scoped: false, .. })
    ));
    // Unlocking again from the keyholder alone gives the same keys.
    let again = unlock_as_scoped(&mut svc, &store, vault).unwrap();
    assert_eq!(again.scope_keys().len(), 1);
    // A scoped member does not count as a second member who can open the vault.
    let report = strongroom_sharing::recoverability(&store).unwrap();
    assert_eq!(report.members, 1);
    assert!(report.single_point_of_failure);
    // The owner reads every scope's key, and so does a fresh unlock.
    let fresh = alice.unlock(&store, vault).unwrap();
    assert_eq!(fresh.scope_keys().len(), 2);
    // Which scope covers a namespace: whole segments only.
    let log = a.membership();
    assert_eq!(log.scope_of("core/billing").map(Scope::id), Some(billing));
    assert_eq!(
        log.scope_of("core/billing/eu").map(Scope::id),
        Some(billing)
    );
    assert_eq!(log.scope_of("core/auth").map(Scope::id), Some(auth));
    assert!(log.scope_of("core/billingx").is_none());
    assert!(log.scope_of("core").is_none());
}

#[test]
fn revoking_a_scope_rotates_that_scope_only() {
    let Setup {
        store,
        vault,
        mut a,
        billing,
        auth,
        ..
    } = setup();
    let mut svc = Person::new("billing-service");
    let mut ro = Person::new("billing-reports");
    let mut svc_before = add_scoped(
        &store,
        vault,
        &mut a,
        &mut svc,
        &[(billing, Role::Member), (auth, Role::ReadOnly)],
    );
    add_scoped(&store, vault, &mut a, &mut ro, &[(billing, Role::ReadOnly)]);
    let vault_epoch = a.epoch();
    let new = a.revoke_scope(&store, svc.id(), billing).unwrap();
    assert_eq!(new, Epoch(2));
    assert_eq!(a.epoch(), vault_epoch, "the vault key does not change");
    assert_eq!(a.membership().scope(auth).unwrap().epoch(), Epoch::FIRST);
    // The revoked member's grants of the scope are gone; its other scope stays.
    for e in [1, 2] {
        assert!(
            store
                .get(Table::Wraps, &grant_row(billing, e, svc.id()))
                .unwrap()
                .is_none()
        );
    }
    let s = unlock_as_scoped(&mut svc, &store, vault).unwrap();
    assert_eq!(
        s.scope_keys().keys().copied().collect::<Vec<_>>(),
        vec![auth]
    );
    // A session opened before the revocation drops the scope's keys when it refreshes.
    svc_before.refresh(&store).unwrap();
    assert_eq!(
        svc_before.scope_keys().keys().copied().collect::<Vec<_>>(),
        vec![auth]
    );
    assert_eq!(svc_before.scope_role(billing), None);
    // The scope's other member reads the new key and, through the chain, the old one.
    let r = unlock_as_scoped(&mut ro, &store, vault).unwrap();
    let keys = &r.scope_keys()[&billing];
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[&Epoch(2)].id(),
        a.current_scope_key(billing).unwrap().id()
    );
    assert_eq!(
        keys[&Epoch(1)].id(),
        a.scope_key(billing, Epoch(1)).unwrap().id()
    );
    // A scope rotation without a revocation.
    assert_eq!(a.rekey_scope(&store, auth).unwrap(), Epoch(2));
    let s = unlock_as_scoped(&mut svc, &store, vault).unwrap();
    assert_eq!(s.scope_keys()[&auth].len(), 2);
}

#[test]
fn removing_a_full_member_rotates_every_scope_under_the_new_vault_key() {
    let Setup {
        store,
        vault,
        mut alice,
        mut a,
        billing,
        auth,
    } = setup();
    let mut bob = Person::new("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    assert_eq!(b.scope_keys().len(), 2, "a full member reads every scope");
    let mut svc = Person::new("billing-service");
    add_scoped(&store, vault, &mut a, &mut svc, &[(billing, Role::Member)]);
    let before = a.membership().len();
    let change = a.prepare_remove_member(&store, bob.id()).unwrap();
    assert_eq!(
        change.entries().len(),
        3,
        "the removal and a rotation per scope"
    );
    assert_eq!(change.new_scope_keys().len(), 2);
    a.commit(&store, change).unwrap();
    assert_eq!(a.membership().len(), before + 3);
    for scope in [billing, auth] {
        assert_eq!(a.membership().scope(scope).unwrap().epoch(), Epoch(2));
    }
    assert!(a.membership().scopes_needing_rekey().is_empty());
    // The new scope keys are linked under the new vault key only: the keys Bob kept do not
    // open them.
    for scope in [billing, auth] {
        let row = store.get(Table::Wraps, &link_row(scope)).unwrap().unwrap();
        let link = ScopeLink::decode(&row.value).unwrap();
        for key in b.keys().values() {
            assert!(link.open(vault, key).is_none());
        }
        assert!(link.open(vault, a.current_key()).is_some());
    }
    // The scoped member reads the new billing key; a fresh unlock of the owner checks all.
    let s = unlock_as_scoped(&mut svc, &store, vault).unwrap();
    assert_eq!(s.scope_keys()[&billing].len(), 2);
    let fresh = alice.unlock(&store, vault).unwrap();
    assert_eq!(fresh.scope_keys()[&auth].len(), 2);
}

#[test]
fn a_vault_rotation_relinks_every_scope_and_retirement_keeps_them_readable() {
    let Setup {
        store,
        vault,
        mut alice,
        mut a,
        billing,
        auth,
    } = setup();
    a.rekey(&store).unwrap();
    a.rekey(&store).unwrap();
    a.retire(&store, Epoch(3)).unwrap();
    let fresh = alice.unlock(&store, vault).unwrap();
    assert_eq!(fresh.keys().len(), 1);
    for scope in [billing, auth] {
        assert_eq!(
            fresh.current_scope_key(scope).unwrap().id(),
            a.current_scope_key(scope).unwrap().id()
        );
    }
}

#[test]
fn a_scoped_member_is_removed_with_its_scopes_rotated() {
    let Setup {
        store,
        vault,
        mut alice,
        mut a,
        billing,
        auth,
        ..
    } = setup();
    let mut svc = Person::new("billing-service");
    add_scoped(&store, vault, &mut a, &mut svc, &[(billing, Role::Member)]);
    let vault_epoch = a.epoch();
    assert!(matches!(
        a.prepare_remove_member(&store, svc.id()),
        Err(SharingError::WrongKindOfMember { scoped: true, .. })
    ));
    let removal = a.remove_scoped_member(&store, svc.id()).unwrap();
    assert_eq!(removal.scopes, vec![(billing, Epoch(2))]);
    assert_eq!(a.epoch(), vault_epoch);
    assert_eq!(a.membership().scope(auth).unwrap().epoch(), Epoch::FIRST);
    assert!(a.membership().member(svc.id()).is_none());
    assert!(a.membership().former_members().contains_key(&svc.id()));
    assert!(unlock_as_scoped(&mut svc, &store, vault).is_err());
    assert!(
        store
            .get(Table::Wraps, &grant_row(billing, 1, svc.id()))
            .unwrap()
            .is_none()
    );
    // A vault grant to the former scoped member is refused as well: it never had one.
    let planted = Grant::seal(
        vault,
        &VaultKey::generate(Epoch(1)).unwrap(),
        svc.identity.public(),
    )
    .unwrap()
    .encode();
    let copy = copy_store(&store);
    let mut batch = Batch::new();
    batch.put(Table::Wraps, grant_key(1, svc.id()), planted, Expect::Any);
    copy.commit(&batch).unwrap();
    assert!(matches!(
        alice.unlock(&copy, vault),
        Err(SharingError::Verify(VerifyError::UnexpectedGrant { .. }))
    ));
    alice.unlock(&store, vault).unwrap();
}

#[test]
fn the_log_rules_of_scopes() {
    let Setup {
        store,
        vault,
        mut a,
        billing,
        auth,
        ..
    } = setup();
    let invalid = |r: Result<ScopeId, SharingError>| {
        assert!(
            matches!(r, Err(SharingError::InvalidChange { .. })),
            "{r:?}"
        );
    };
    // Scopes do not nest, and a prefix is a namespace.
    invalid(a.create_scope(&store, "core"));
    invalid(a.create_scope(&store, "core/billing/eu"));
    invalid(a.create_scope(&store, "core/billing"));
    invalid(a.create_scope(&store, "core//x"));
    a.create_scope(&store, "core/billing-eu").unwrap();
    // Joining with another identity under a listed scoped member's id is refused.
    let mut late = Person::new("late");
    let public = late.identity.public().clone();
    a.add_member(&store, &public, Role::Scoped, confirmed(&public))
        .unwrap();
    let impostor = Identity::generate_kind(late.id(), "late", KemKind::XWing).unwrap();
    assert!(matches!(
        join_scoped(&store, vault, &impostor, &[&late.kek], &mut late.pins),
        Err(SharingError::IdentityNotLogged { .. })
    ));

    // A scoped member needs a hybrid identity.
    let classical =
        Identity::generate_kind(MemberId::generate().unwrap(), "old", KemKind::X25519).unwrap();
    let p = classical.public().clone();
    assert!(matches!(
        a.add_member(&store, &p, Role::Scoped, confirmed(&p)),
        Err(SharingError::InvalidChange { .. })
    ));
    // Scopes go to scoped members only, as member or read-only, once per role.
    let mut bob = Person::new("bob");
    add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    assert!(
        a.grant_scope(&store, bob.id(), billing, Role::Member)
            .is_err()
    );
    let mut svc = Person::new("svc");
    let mut s = add_scoped(
        &store,
        vault,
        &mut a,
        &mut svc,
        &[(billing, Role::ReadOnly)],
    );
    assert!(
        a.grant_scope(&store, svc.id(), billing, Role::ReadOnly)
            .is_err()
    );
    assert!(
        a.grant_scope(&store, svc.id(), billing, Role::Admin)
            .is_err()
    );
    assert!(
        a.grant_scope(&store, svc.id(), ScopeId::generate().unwrap(), Role::Member)
            .is_err()
    );
    assert!(a.revoke_scope(&store, svc.id(), auth).is_err());
    // A scoped member who lost its keyholders is re-granted to a new hybrid identity (never
    // a classical one), which then holds its scopes.
    let p = classical.public().clone();
    assert!(matches!(
        a.regrant(&store, svc.id(), &p, confirmed(&p)),
        Err(SharingError::InvalidChange { .. })
    ));
    let mut svc2 = Person::new("svc");
    let p = svc2.identity.public().clone();
    assert_eq!(a.rekey_scope(&store, billing).unwrap(), Epoch(2));
    a.regrant(&store, svc.id(), &p, confirmed(&p)).unwrap();
    let (_, moved) = a.membership().scopes_of(svc2.id())[0];
    assert_eq!(
        moved.since_epoch(),
        Epoch(2),
        "granted from the current scope epoch"
    );
    assert_eq!(moved.granted_at(), a.membership().len() - 1);
    let s2 = join_scoped(&store, vault, &svc2.identity, &[&svc2.kek], &mut svc2.pins).unwrap();
    assert_eq!(s2.scope_role(billing), Some(Role::ReadOnly));
    assert_eq!(
        s2.current_scope_key(billing).unwrap().id(),
        a.current_scope_key(billing).unwrap().id()
    );
    assert!(unlock_as_scoped(&mut svc, &store, vault).is_err());
    assert!(
        store
            .get(Table::Wraps, &grant_row(billing, 2, svc.id()))
            .unwrap()
            .is_none()
    );
    let svc = svc2;

    // Nobody becomes scoped or stops being scoped by a role change.
    assert!(a.set_role(&store, bob.id(), Role::Scoped).is_err());
    assert!(a.set_role(&store, svc.id(), Role::Member).is_err());
    // A member (not owner or admin) cannot create or grant scopes, but may rotate one.
    let mut b = bob.unlock(&store, vault).unwrap();
    assert!(matches!(
        b.create_scope(&store, "apps/x"),
        Err(SharingError::PermissionDenied { .. })
    ));
    assert!(b.grant_scope(&store, svc.id(), auth, Role::Member).is_err());
    b.rekey_scope(&store, auth).unwrap();
    a.refresh(&store).unwrap();
    // A scoped member signs nothing: an entry it signs, planted in the log, is refused.
    let log = a.membership();
    let forged = LogEntry::sign(
        log.len(),
        log.head(),
        vault,
        &svc.identity,
        EntryBody::ScopeGrant {
            member: svc.id(),
            scope: auth,
            role: Role::Member,
        },
    );
    let mut batch = Batch::new();
    batch.append(Table::MemberLog, forged.seq(), forged.encode());
    store.commit(&batch).unwrap();
    assert!(matches!(
        s.refresh(&store),
        Err(SharingError::Verify(VerifyError::Unauthorized {
            role: Role::Scoped,
            ..
        }))
    ));
}

#[test]
fn write_rights_on_a_scope() {
    let Setup {
        store,
        vault,
        mut a,
        billing,
        auth,
        ..
    } = setup();
    a.require_signed_writes(&store).unwrap();
    let mut svc = Person::new("svc");
    add_scoped(
        &store,
        vault,
        &mut a,
        &mut svc,
        &[(billing, Role::Member), (auth, Role::ReadOnly)],
    );
    let seq = a.membership().len() - 1;
    let log = a.membership();
    let key = svc.identity.public().signing_key();
    assert_eq!(log.writer_in(svc.id(), seq, Some(billing)), Ok(key));
    assert_eq!(
        log.writer_in(svc.id(), seq, Some(auth)),
        Err(WriterRefused::NoWriteRight)
    );
    assert_eq!(
        log.writer_in(svc.id(), seq, None),
        Err(WriterRefused::NoWriteRight)
    );
    assert_eq!(
        log.writer_at(svc.id(), seq),
        Err(WriterRefused::NoWriteRight)
    );
    // A full writer writes in every scope.
    assert!(log.writer_in(a.member_id(), seq, Some(auth)).is_ok());
    // Made read-only on billing: a loss of write right, pending re-attestation.
    a.grant_scope(&store, svc.id(), billing, Role::ReadOnly)
        .unwrap();
    let lost_at = a.membership().len() - 1;
    let log = a.membership();
    let ended = log
        .write_right_lost_in(svc.id(), seq, Some(billing))
        .unwrap();
    assert_eq!((ended.at, ended.reattested_at), (lost_at, None));
    assert_eq!(log.pending_reattestation(), vec![(svc.id(), lost_at)]);
    assert!(log.write_right_lost_in(svc.id(), seq, None).is_none());
    let change = a.prepare_reattested(svc.id(), lost_at).unwrap();
    a.commit(&store, change).unwrap();
    assert!(a.membership().pending_reattestation().is_empty());
    // Revoking a scope the member could write ends that right too.
    a.grant_scope(&store, svc.id(), auth, Role::Member).unwrap();
    let seq = a.membership().len() - 1;
    a.revoke_scope(&store, svc.id(), auth).unwrap();
    let revoked_at = a.membership().len() - 1;
    assert_eq!(
        a.membership()
            .write_right_lost_in(svc.id(), seq, Some(auth))
            .map(|e| e.at),
        Some(revoked_at)
    );
    // Re-granted to a new identity, the member's write right on a scope moves with it: the
    // old identity's ends at the re-grant, the new one's starts there.
    a.grant_scope(&store, svc.id(), billing, Role::Member)
        .unwrap();
    let before = a.membership().len() - 1;
    let svc2 = Person::new("svc");
    let p = svc2.identity.public().clone();
    a.regrant(&store, svc.id(), &p, confirmed(&p)).unwrap();
    let at = a.membership().len() - 1;
    let log = a.membership();
    assert_eq!(
        log.write_right_lost_in(svc.id(), before, Some(billing))
            .map(|e| e.at),
        Some(at)
    );
    assert_eq!(
        log.writer_in(svc2.id(), at, Some(billing)),
        Ok(svc2.identity.public().signing_key())
    );
    assert_eq!(
        log.writer_in(svc2.id(), at, Some(auth)),
        Err(WriterRefused::NoWriteRight)
    );
}

/// A grant of `key` for `scope` at `epoch` to `to`, made by anyone who knows `to`'s public
/// key (the storage, or a former member).
fn forged_grant(vault: VaultId, scope: ScopeId, epoch: u32, to: &Person) -> ScopeGrant {
    let key = VaultKey::generate(Epoch(epoch)).unwrap();
    ScopeGrant::seal(vault, scope, &key, to.identity.public()).unwrap()
}

#[test]
fn storage_cannot_plant_swap_or_drop_scope_keys() {
    let Setup {
        store,
        vault,
        mut alice,
        mut a,
        billing,
        auth,
    } = setup();
    let mut bob = Person::new("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    let mut svc = Person::new("svc");
    add_scoped(&store, vault, &mut a, &mut svc, &[(billing, Role::Member)]);
    let tampered = |key: &[u8], value: Option<&[u8]>| {
        let t = copy_store(&store);
        let mut batch = Batch::new();
        match value {
            Some(v) => batch.put(Table::Wraps, key.to_vec(), v.to_vec(), Expect::Any),
            None => batch.delete(Table::Wraps, key.to_vec(), Expect::Any),
        };
        t.commit(&batch).unwrap();
        t
    };

    // A vault grant to a scoped member, which never holds one.
    let vault_grant = Grant::seal(
        vault,
        &VaultKey::generate(Epoch(1)).unwrap(),
        svc.identity.public(),
    )
    .unwrap()
    .encode();
    let t = tampered(&grant_key(1, svc.id()), Some(&vault_grant));
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(VerifyError::UnexpectedGrant { .. }))
    ));

    // A grant of a scope the member does not hold: refused by the audit, for everyone.
    let planted = forged_grant(vault, auth, 1, &svc).encode();
    let t = tampered(&grant_row(auth, 1, svc.id()), Some(&planted));
    assert!(matches!(
        unlock_as_scoped(&mut svc, &t, vault),
        Err(SharingError::Verify(
            VerifyError::UnexpectedScopeGrant { .. }
        ))
    ));
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(
            VerifyError::UnexpectedScopeGrant { .. }
        ))
    ));

    // A grant in the member's row, naming the member, but sealed to another member's key:
    // the audit refuses it for every client, full members included.
    let mut other = Person::new("other");
    add_scoped(
        &store,
        vault,
        &mut a,
        &mut other,
        &[(billing, Role::ReadOnly)],
    );
    let key = a.current_scope_key(billing).unwrap();
    let mut misaddressed = ScopeGrant::seal(vault, billing, key, other.identity.public())
        .unwrap()
        .encode();
    misaddressed[37..53].copy_from_slice(svc.id().as_bytes());
    let t = tampered(&grant_row(billing, 1, svc.id()), Some(&misaddressed));
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(
            VerifyError::UnexpectedScopeGrant { .. }
        ))
    ));

    // The member's own grant replaced by one of a storage-chosen key.
    let swapped = forged_grant(vault, billing, 1, &svc).encode();
    let t = tampered(&grant_row(billing, 1, svc.id()), Some(&swapped));
    assert!(matches!(
        unlock_as_scoped(&mut svc, &t, vault),
        Err(SharingError::Verify(VerifyError::ScopeKeyMismatch { .. }))
    ));

    // A former member who kept the vault key links a key of its choosing for full members.
    a.remove_member(&store, bob.id()).unwrap();
    let chosen = VaultKey::generate(Epoch(2)).unwrap();
    let link = ScopeLink::under_vault_key(vault, auth, &chosen, b.key(Epoch(1)).unwrap())
        .unwrap()
        .encode();
    let t = tampered(&link_row(auth), Some(&link));
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(VerifyError::ScopeKeyMismatch { .. }))
    ));

    // A dropped grant or link is reported missing, by the member and by the audit of
    // every other client.
    let t = tampered(&grant_row(billing, 2, svc.id()), None);
    assert!(matches!(
        unlock_as_scoped(&mut svc, &t, vault),
        Err(SharingError::Verify(VerifyError::MissingScopeKey { .. }))
    ));
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(VerifyError::MissingScopeKey { .. }))
    ));
    // The link of the scope's previous epoch put back: full members refuse it rather than
    // miss the current key.
    let old_link = store
        .get(Table::Wraps, &link_row(auth))
        .unwrap()
        .unwrap()
        .value;
    a.rekey_scope(&store, auth).unwrap();
    let t = tampered(&link_row(auth), Some(&old_link));
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(VerifyError::ScopeKeyUnreadable { .. }))
    ));
    let t = tampered(&link_row(billing), None);
    assert!(matches!(
        alice.unlock(&t, vault),
        Err(SharingError::Verify(VerifyError::MissingScopeKey { .. }))
    ));
    unlock_as_scoped(&mut svc, &store, vault).unwrap();
    alice.unlock(&store, vault).unwrap();
}
