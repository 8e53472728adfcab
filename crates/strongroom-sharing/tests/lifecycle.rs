//! Member lifecycle through the public API: create, unlock, add, join, roles, rekey,
//! removal, teammate restore, keyholders, recoverability, conflicts and crashes.

#[path = "helpers/common.rs"]
mod common;

use common::{Person, add_and_join, confirmed, kek, new_vault};
use strongroom_crypto::VaultId;
use strongroom_recovery::secrecy::SecretString;
use strongroom_recovery::{
    KeyholderError, KeyholderKind, PassphraseKeyholder, Profile, RecoveryKey,
};
use strongroom_sharing::{
    Epoch, FingerprintConfirmed, Identity, Pins, Role, SharingError, Warning, create, join,
    list_keyholders, recoverability, unlock,
};
use strongroom_store::{FaultyStore, MemoryStore, ReadView, Table};

fn same_keys(a: &strongroom_sharing::Session, b: &strongroom_sharing::Session) -> bool {
    a.keys().len() == b.keys().len()
        && a.keys()
            .iter()
            .all(|(e, k)| b.key(*e).is_some_and(|o| o.id() == k.id()))
}

#[test]
fn create_then_unlock_with_trust_on_first_use() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let vault = VaultId::generate().unwrap();
    let (session, warnings) = create(&store, vault, &alice.identity, &[&alice.kek]).unwrap();
    assert_eq!(session.epoch(), Epoch::FIRST);
    assert_eq!(session.role(), Some(Role::Owner));
    assert!(
        matches!(&warnings[..], [Warning::SinglePointOfFailure(r)] if r.single_point_of_failure)
    );
    assert!(warnings[0].to_string().contains("lost for good"));

    // A fresh device: empty pins, the only member with credentials here.
    let mut pins = Pins::new();
    let again = unlock(&store, vault, None, &alice.kek, &mut pins).unwrap();
    assert!(same_keys(&session, &again));
    assert_eq!(again.member_id(), alice.id());
    assert_eq!(pins.vault_id(), Some(vault));
    assert_eq!(pins.high_water().unwrap().seq, 0);
    assert_eq!(&pins, session.pins());
    assert_eq!(again.membership().members().len(), 1);

    // Wrong keyholder: the keyholder's error passes through.
    let err = unlock(&store, vault, None, &common::kek(), &mut pins).unwrap_err();
    assert!(matches!(err, SharingError::Keyholder(_)), "{err}");
    // Pins of another vault are refused before anything is read.
    let other = VaultId::generate().unwrap();
    let err = unlock(&store, other, None, &alice.kek, &mut pins).unwrap_err();
    assert!(
        matches!(err, SharingError::PinsForOtherVault { .. }),
        "{err}"
    );
    // Without pins, the log itself names another vault.
    let err = unlock(&store, other, None, &alice.kek, &mut alice.pins).unwrap_err();
    assert!(matches!(err, SharingError::Verify(_)), "{err}");
    // A second create on the same store is refused.
    let err = create(&store, vault, &alice.identity, &[&alice.kek]).unwrap_err();
    assert!(matches!(err, SharingError::VaultExists), "{err}");
    // No vault at all.
    let empty = MemoryStore::new();
    let err = unlock(&empty, vault, None, &alice.kek, &mut Pins::new()).unwrap_err();
    assert!(matches!(err, SharingError::NoVault { .. }), "{err}");
    let err = create(&store, vault, &alice.identity, &[]).unwrap_err();
    assert!(matches!(err, SharingError::VaultExists), "{err}");
    let err = create(&empty, vault, &alice.identity, &[]).unwrap_err();
    assert!(matches!(err, SharingError::NoKeyholder), "{err}");
    assert!(
        empty.log_head(Table::MemberLog).unwrap().is_none(),
        "nothing written"
    );
}

#[test]
fn added_member_joins_and_reads_history() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    a.rekey(&store).unwrap();
    let mut bob = Person::new("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    assert_eq!(b.role(), Some(Role::Member));
    assert_eq!(b.epoch(), Epoch(2));
    assert!(same_keys(&a, &b), "bob reads epoch 1 through the chain");
    let member = b.membership().member(bob.id()).unwrap();
    assert_eq!(member.fingerprint(), bob.identity.public().fingerprint());
    assert_eq!(member.since_epoch(), Epoch(2));

    // Later, with just his keyholder (two members have credentials now: name him).
    let b2 = bob.unlock(&store, vault).unwrap();
    assert!(same_keys(&a, &b2));
    let err = unlock(&store, vault, None, &bob.kek, &mut Pins::new()).unwrap_err();
    assert!(
        matches!(err, SharingError::AmbiguousMember { count: 2 }),
        "{err}"
    );

    // Joining twice, joining unlisted, joining with another key under a listed id.
    let err = join(&store, vault, &bob.identity, &[&bob.kek], &mut bob.pins).unwrap_err();
    assert!(matches!(err, SharingError::AlreadyJoined { .. }), "{err}");
    let carol = Identity::generate("carol").unwrap();
    let err = join(&store, vault, &carol, &[&bob.kek], &mut Pins::new()).unwrap_err();
    assert!(matches!(err, SharingError::NotAMember { .. }), "{err}");
    let fake_bob = Identity::generate_with_id(bob.id(), "bob").unwrap();
    let err = join(&store, vault, &fake_bob, &[&bob.kek], &mut Pins::new()).unwrap_err();
    assert!(
        matches!(err, SharingError::IdentityNotLogged { .. }),
        "{err}"
    );

    // Adding the same member twice.
    let err = a
        .add_member(
            &store,
            bob.identity.public(),
            Role::Member,
            confirmed(bob.identity.public()),
        )
        .unwrap_err();
    assert!(matches!(err, SharingError::AlreadyMember { .. }), "{err}");
}

#[test]
fn fingerprint_confirmation_is_bound_to_the_identity() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (_, mut a) = new_vault(&store, &mut alice);
    let bob = Identity::generate("bob").unwrap();
    let mallory = Identity::generate("bob").unwrap();
    // The fingerprint Bob reads over the phone does not match Mallory's substitute.
    let told = bob.public().fingerprint().to_string();
    assert!(matches!(
        mallory.public().confirm_fingerprint(&told),
        Err(SharingError::FingerprintMismatch)
    ));
    // A confirmation made for Bob cannot be used to add Mallory.
    let err = a
        .add_member(
            &store,
            mallory.public(),
            Role::Member,
            confirmed(bob.public()),
        )
        .unwrap_err();
    assert!(
        matches!(err, SharingError::ConfirmationForOtherIdentity),
        "{err}"
    );
    // Skipping is possible, but only by name.
    a.add_member(
        &store,
        bob.public(),
        Role::Member,
        FingerprintConfirmed::skip_verification_i_accept_the_risk(bob.public()),
    )
    .unwrap();
    assert!(a.membership().member(bob.member_id()).is_some());
}

#[test]
fn rekey_and_refresh() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = Person::new("bob");
    let mut b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    let mut rita = Person::new("rita");
    let mut r = add_and_join(&store, vault, &mut a, &mut rita, Role::ReadOnly);

    // Bob's session predates Rita: his change conflicts until he refreshes.
    assert!(b.rekey(&store).unwrap_err().is_conflict());
    b.refresh(&store).unwrap();
    assert_eq!(b.rekey(&store).unwrap(), Epoch(2));
    assert_eq!(b.epoch(), Epoch(2));
    let err = r.rekey(&store).unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::PermissionDenied {
                role: Role::ReadOnly,
                ..
            }
        ),
        "{err}"
    );

    // Alice's session is behind: her next change conflicts, refresh catches up.
    let err = a.rekey(&store).unwrap_err();
    assert!(err.is_conflict() && !err.is_tampering(), "{err}");
    a.refresh(&store).unwrap();
    r.refresh(&store).unwrap();
    assert!(same_keys(&a, &b) && same_keys(&a, &r));
    assert_eq!(a.pins().high_water().unwrap().epoch, Epoch(2));
    assert_eq!(a.rekey(&store).unwrap(), Epoch(3));
    b.refresh(&store).unwrap();
    assert_eq!(b.keys().len(), 3);
    assert_eq!(b.current_key().id(), a.current_key().id());
    assert_eq!(b.membership().key_id(Epoch(3)), Some(a.current_key().id()));
}

#[test]
fn roles_are_enforced() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut adam = Person::new("adam");
    let mut ad = add_and_join(&store, vault, &mut a, &mut adam, Role::Admin);
    let mut mia = Person::new("mia");
    let mut m = add_and_join(&store, vault, &mut ad, &mut mia, Role::Member);
    a.refresh(&store).unwrap();

    let x = Identity::generate("x").unwrap();
    let err = ad
        .add_member(&store, x.public(), Role::Owner, confirmed(x.public()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::PermissionDenied {
                role: Role::Admin,
                action: "add a member",
            }
        ),
        "{err}"
    );
    let err = m
        .add_member(&store, x.public(), Role::ReadOnly, confirmed(x.public()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::PermissionDenied {
                role: Role::Member,
                ..
            }
        ),
        "{err}"
    );
    let err = ad.remove_member(&store, alice.id()).unwrap_err();
    assert!(
        matches!(err, SharingError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(!err.is_conflict() && !err.is_tampering(), "{err}");
    let err = a.set_role(&store, alice.id(), Role::Admin).unwrap_err();
    assert!(matches!(err, SharingError::LastOwner), "{err}");
    let err = a.remove_member(&store, alice.id()).unwrap_err();
    assert!(matches!(err, SharingError::InvalidChange { .. }), "{err}");

    ad.set_role(&store, mia.id(), Role::ReadOnly).unwrap();
    m.refresh(&store).unwrap();
    assert_eq!(m.role(), Some(Role::ReadOnly));
    a.refresh(&store).unwrap();
    a.set_role(&store, adam.id(), Role::Owner).unwrap();
    // Two owners now: Alice may step down.
    a.set_role(&store, alice.id(), Role::Member).unwrap();
    let fresh = alice.unlock(&store, vault).unwrap();
    assert_eq!(fresh.role(), Some(Role::Member));
    assert_eq!(
        fresh.membership().member(adam.id()).unwrap().role(),
        Role::Owner
    );
}

#[test]
fn removal_excludes_the_member_from_new_epochs() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = Person::new("bob");
    let mut b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    let mut carol = Person::new("carol");
    let mut c = add_and_join(&store, vault, &mut a, &mut carol, Role::Member);
    a.rekey(&store).unwrap();
    b.refresh(&store).unwrap();
    let bob_keys: Vec<_> = b
        .keys()
        .values()
        .map(strongroom_sharing::VaultKey::id)
        .collect();

    let removal = a.remove_member(&store, bob.id()).unwrap();
    assert_eq!(removal.member, bob.id());
    assert_eq!(removal.new_epoch, Epoch(3));
    assert_eq!(removal.readable_epochs, Epoch(1)..=Epoch(2));
    assert!(removal.warnings.is_empty(), "two members remain");
    assert_eq!(bob_keys.len(), 2);

    // Bob's credentials are gone and his stale session cannot refresh or write.
    let err = bob.unlock(&store, vault).unwrap_err();
    assert!(matches!(err, SharingError::NoCredentials { .. }), "{err}");
    let err = b.refresh(&store).unwrap_err();
    assert!(matches!(err, SharingError::NotAMember { .. }), "{err}");
    let err = b.rekey(&store).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(list_keyholders(&store, bob.id()).unwrap().is_empty());

    // Carol gets the new epoch; the log remembers Bob as a former member.
    c.refresh(&store).unwrap();
    assert!(same_keys(&a, &c));
    let former = &c.membership().former_members()[&bob.id()];
    assert_eq!(former.last_epoch(), Epoch(2));
    assert_eq!(former.replaced_by(), None);

    // Removing the second-to-last member warns.
    let removal = a.remove_member(&store, carol.id()).unwrap();
    assert!(matches!(
        &removal.warnings[..],
        [Warning::SinglePointOfFailure(_)]
    ));
    let err = a.remove_member(&store, carol.id()).unwrap_err();
    assert!(matches!(err, SharingError::NotAMember { .. }), "{err}");
}

#[test]
fn teammate_restore_regrants_a_new_identity() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = Person::new("bob");
    add_and_join(&store, vault, &mut a, &mut bob, Role::Admin);
    a.rekey(&store).unwrap();

    // Bob loses his device: passphrase and recovery key gone. He makes a new identity
    // and sends its text form; Alice compares the fingerprint with him by phone.
    let mut bob2 = Person::new("bob");
    let text = bob2.identity.public().to_text();
    let received = strongroom_sharing::PublicIdentity::from_text(&text).unwrap();
    let ok = received
        .confirm_fingerprint(&bob2.identity.public().fingerprint().digits())
        .unwrap();
    a.regrant(&store, bob.id(), &received, ok).unwrap();
    let b2 = bob2.join(&store, vault);
    assert_eq!(b2.role(), Some(Role::Admin), "the role carries over");
    assert!(same_keys(&a, &b2), "all history readable again");
    let former = &b2.membership().former_members()[&bob.id()];
    assert_eq!(former.replaced_by(), Some(bob2.id()));

    // The old identity is dead: no credentials, not a member, signatures refused.
    assert!(matches!(
        bob.unlock(&store, vault).unwrap_err(),
        SharingError::NoCredentials { .. }
    ));
    assert!(matches!(
        join(&store, vault, &bob.identity, &[&bob.kek], &mut Pins::new()).unwrap_err(),
        SharingError::NotAMember { .. }
    ));

    // Rules: nobody re-grants themselves; an admin cannot take over an owner's slot.
    let mut b2 = b2;
    let x = Identity::generate("x").unwrap();
    let err = b2
        .regrant(&store, bob2.id(), x.public(), confirmed(x.public()))
        .unwrap_err();
    assert!(matches!(err, SharingError::SelfRegrant), "{err}");
    let err = b2
        .regrant(&store, alice.id(), x.public(), confirmed(x.public()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::PermissionDenied {
                role: Role::Admin,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn single_member_vault_with_both_secrets_lost_stays_lost() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, a) = new_vault(&store, &mut alice);
    let recovery = RecoveryKey::generate().unwrap();
    a.add_keyholder(&store, &recovery).unwrap();
    let report = recoverability(&store).unwrap();
    assert!(report.single_point_of_failure);
    assert_eq!(report.members_with_recovery_key, 1);
    drop(a);

    // Both the KEK (standing for the passphrase) and the recovery key are lost.
    drop(recovery);
    let mut alice2 = Person::new("alice");
    // No keyholder she still has opens anything.
    let err = unlock(&store, vault, None, &alice2.kek, &mut alice.pins).unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::Keyholder(KeyholderError::WrongKek { .. })
        ),
        "{err}"
    );
    let err = unlock(
        &store,
        vault,
        None,
        &RecoveryKey::generate().unwrap(),
        &mut alice.pins,
    )
    .unwrap_err();
    assert!(matches!(err, SharingError::Keyholder(_)), "{err}");
    // A new identity is not a member, and there is nobody to re-grant it: no escrow.
    let err = join(
        &store,
        vault,
        &alice2.identity,
        &[&alice2.kek],
        &mut alice2.pins,
    )
    .unwrap_err();
    assert!(matches!(err, SharingError::NotAMember { .. }), "{err}");
    let err = create(&store, vault, &alice2.identity, &[&alice2.kek]).unwrap_err();
    assert!(matches!(err, SharingError::VaultExists), "{err}");
}

#[test]
fn keyholders_add_list_touch_remove() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, a) = new_vault(&store, &mut alice);
    let passphrase = PassphraseKeyholder::new(
        &SecretString::from("correct horse battery staple"),
        Profile::Constrained,
    )
    .unwrap();
    let recovery = RecoveryKey::generate().unwrap();
    let p_info = a.add_keyholder(&store, &passphrase).unwrap();
    let r_info = a.add_keyholder(&store, &recovery).unwrap();
    assert_eq!(p_info.kind, KeyholderKind::Passphrase);
    let err = a.add_keyholder(&store, &alice.kek).unwrap_err();
    assert!(matches!(err, SharingError::KeyholderExists { .. }), "{err}");
    let listed = a.keyholders(&store).unwrap();
    assert_eq!(listed.len(), 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        listed
            .iter()
            .all(|i| i.last_used_at.is_none() && i.created_at.abs_diff(now) < 600),
        "{listed:?}"
    );

    // A vault created with two keyholders records both; the same keyholder twice is refused.
    let other = MemoryStore::new();
    let second = kek();
    let (two, _) = create(
        &other,
        VaultId::generate().unwrap(),
        &alice.identity,
        &[&alice.kek, &second],
    )
    .unwrap();
    assert_eq!(two.keyholders(&other).unwrap().len(), 2);
    let err = create(
        &MemoryStore::new(),
        VaultId::generate().unwrap(),
        &alice.identity,
        &[&second, &second],
    )
    .unwrap_err();
    assert!(matches!(err, SharingError::KeyholderExists { .. }), "{err}");

    // Changing the passphrase is O(1): a new stanza, the old one removed.
    let mut pins = alice.pins.clone();
    let s = unlock(&store, vault, None, &passphrase, &mut pins).unwrap();
    let touched = s.keyholders(&store).unwrap();
    let p_now = touched.iter().find(|i| i.id == p_info.id).unwrap();
    assert!(p_now.last_used_at.is_some(), "last use recorded");
    let wrong =
        PassphraseKeyholder::new(&SecretString::from("tr0ub4dor"), Profile::Constrained).unwrap();
    let err = unlock(&store, vault, None, &wrong, &mut pins).unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::Keyholder(KeyholderError::WrongPassphrase)
        ),
        "{err}"
    );
    let new_pass = PassphraseKeyholder::new(
        &SecretString::from("new passphrase here"),
        Profile::Constrained,
    )
    .unwrap();
    s.add_keyholder(&store, &new_pass).unwrap();
    s.remove_keyholder(&store, &p_info.id).unwrap();
    assert!(matches!(
        unlock(&store, vault, None, &passphrase, &mut pins).unwrap_err(),
        SharingError::Keyholder(_)
    ));
    unlock(&store, vault, None, &new_pass, &mut pins).unwrap();
    unlock(&store, vault, None, &recovery, &mut pins).unwrap();

    // Removing down to one, then refusing the last.
    let err = s.remove_keyholder(&store, &[9; 8]).unwrap_err();
    assert!(
        matches!(err, SharingError::KeyholderNotFound { .. }),
        "{err}"
    );
    for info in s.keyholders(&store).unwrap() {
        if info.id != r_info.id {
            s.remove_keyholder(&store, &info.id).unwrap();
        }
    }
    let err = s.remove_keyholder(&store, &r_info.id).unwrap_err();
    assert!(matches!(err, SharingError::LastKeyholder { .. }), "{err}");
    assert!(err.to_string().contains("last keyholder"));
    assert_eq!(list_keyholders(&store, alice.id()).unwrap().len(), 1);
}

#[test]
fn recoverability_report() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let r = recoverability(&store).unwrap();
    assert!(r.single_point_of_failure);
    assert_eq!((r.members, r.members_with_recovery_key), (1, 0));
    assert!(r.message.contains("no recovery key"), "{}", r.message);

    let mut bob = Person::new("bob");
    add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    a.add_keyholder(&store, &RecoveryKey::generate().unwrap())
        .unwrap();
    let r = a.recoverability(&store).unwrap();
    assert!(!r.single_point_of_failure);
    assert_eq!((r.members, r.members_with_recovery_key), (2, 1));
    assert!(r.message.contains("second owner"), "{}", r.message);
    let alice_row = r.details.iter().find(|d| d.member == alice.id()).unwrap();
    assert!(alice_row.has_recovery_key);
    assert_eq!(alice_row.keyholders.len(), 2);
    assert_eq!(
        (alice_row.name.as_str(), alice_row.role),
        ("alice", Role::Owner)
    );
    let bob_row = r.details.iter().find(|d| d.member == bob.id()).unwrap();
    assert_eq!((bob_row.name.as_str(), bob_row.role), ("bob", Role::Member));
    assert!(!bob_row.has_recovery_key);
    assert!(
        r.message
            .starts_with("2 members can open this vault; 1 of them have"),
        "{}",
        r.message
    );
    // A second manager: the warning about a single one goes.
    a.set_role(&store, bob.id(), Role::Admin).unwrap();
    let r = a.recoverability(&store).unwrap();
    assert!(!r.message.contains("second owner"), "{}", r.message);

    // A single member with a recovery key is told there is no escrow, by name.
    let solo = MemoryStore::new();
    let mut carol = Person::new("carol");
    let (_, c) = new_vault(&solo, &mut carol);
    c.add_keyholder(&solo, &RecoveryKey::generate().unwrap())
        .unwrap();
    let r = recoverability(&solo).unwrap();
    assert!(r.single_point_of_failure);
    assert_eq!((r.members, r.members_with_recovery_key), (1, 1));
    assert!(
        r.message
            .starts_with("Only one member (carol) can open this vault. If both")
            && r.message.contains("no escrow"),
        "{}",
        r.message
    );
    assert!(matches!(
        recoverability(&MemoryStore::new()),
        Err(SharingError::NoVault { .. })
    ));
}

#[test]
fn concurrent_admins_one_wins_the_other_retries() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut adam = Person::new("adam");
    let mut ad = add_and_join(&store, vault, &mut a, &mut adam, Role::Admin);
    a.refresh(&store).unwrap();
    let carol = Identity::generate("carol").unwrap();
    let dave = Identity::generate("dave").unwrap();

    std::thread::scope(|s| {
        let t1 = s.spawn(|| {
            a.add_member(
                &store,
                carol.public(),
                Role::Member,
                confirmed(carol.public()),
            )
        });
        let t2 = s.spawn(|| {
            ad.add_member(
                &store,
                dave.public(),
                Role::Member,
                confirmed(dave.public()),
            )
        });
        let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
        assert!(r1.is_ok() != r2.is_ok(), "exactly one wins: {r1:?} {r2:?}");
        for r in [r1, r2] {
            if let Err(e) = r {
                assert!(e.is_conflict(), "{e}");
            }
        }
    });
    // The loser refreshes and retries.
    for (session, who) in [(&mut a, &carol), (&mut ad, &dave)] {
        session.refresh(&store).unwrap();
        if session.membership().member(who.member_id()).is_none() {
            session
                .add_member(&store, who.public(), Role::Member, confirmed(who.public()))
                .unwrap();
        }
    }
    let fresh = alice.unlock(&store, vault).unwrap();
    assert_eq!(fresh.membership().members().len(), 4);
    assert_eq!(fresh.membership().len(), 4);
}

#[test]
fn a_crash_leaves_the_old_or_the_new_state() {
    let faulty = FaultyStore::new(MemoryStore::new());
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&faulty, &mut alice);
    let mut bob = Person::new("bob");
    add_and_join(&faulty, vault, &mut a, &mut bob, Role::Member);
    let mut carol = Person::new("carol");
    add_and_join(&faulty, vault, &mut a, &mut carol, Role::Member);

    // Crash at every store operation of a removal in turn.
    let mut saw_old = false;
    for k in 0.. {
        let mut s = alice.unlock(&faulty, vault).unwrap();
        faulty.crash_at(faulty.ops() + k);
        let result = s.remove_member(&faulty, bob.id());
        faulty.revive();
        let mut pins = Pins::new();
        let fresh = unlock(&faulty, vault, Some(alice.id()), &alice.kek, &mut pins).unwrap();
        let removed = fresh.membership().member(bob.id()).is_none();
        if result.is_ok() {
            assert!(removed);
            assert_eq!(fresh.epoch(), Epoch(2));
            break;
        }
        assert!(!removed, "a failed removal left no trace");
        assert_eq!(fresh.epoch(), Epoch(1));
        saw_old = true;
        assert!(k < 50, "removal never completed");
    }
    assert!(saw_old);
    a.refresh(&faulty).unwrap();
    assert_eq!(a.epoch(), Epoch(2));

    // A lost acknowledgement: applied, the session does not know; refresh shows it.
    faulty.lose_ack(faulty.ops()); // a rekey's only store operation is its commit
    let err = a.rekey(&faulty).unwrap_err();
    assert!(matches!(err, SharingError::Store(_)), "{err}");
    assert_eq!(a.epoch(), Epoch(2));
    a.refresh(&faulty).unwrap();
    assert_eq!(a.epoch(), Epoch(3));
    let c = carol.unlock(&faulty, vault).unwrap();
    assert_eq!(c.keys().len(), 3);
    assert!(
        c.keys()
            .iter()
            .all(|(e, k)| a.key(*e).unwrap().id() == k.id())
    );
}

#[test]
fn concurrent_keyholder_removals_never_remove_the_last() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use strongroom_store::{AdversarialStore, Batch, Expect, Store as _};

    let inner = Arc::new(MemoryStore::new());
    let store = AdversarialStore::new(Arc::clone(&inner));
    let mut alice = Person::new("alice");
    let (_, a) = new_vault(&store, &mut alice);
    let second = RecoveryKey::generate().unwrap();
    let second_info = a.add_keyholder(&store, &second).unwrap();
    let listed = a.keyholders(&store).unwrap();
    assert_eq!(listed.len(), 2);
    let first_info = *listed.iter().find(|i| i.id != second_info.id).unwrap();

    // While this removal reads the keyholders, another device removes the other one.
    let fired = Arc::new(AtomicBool::new(false));
    let (racer, flag) = (Arc::clone(&inner), Arc::clone(&fired));
    let mut other_key = alice.id().as_bytes().to_vec();
    other_key.extend_from_slice(&first_info.id);
    store.on_read(move |t, _, seen| {
        if t == Table::Keyholders && !flag.swap(true, Ordering::SeqCst) {
            let mut b = Batch::new();
            b.delete(Table::Keyholders, other_key.clone(), Expect::Any);
            racer.commit(&b).unwrap();
        }
        seen
    });
    let err = a.remove_keyholder(&store, &second_info.id).unwrap_err();
    assert!(fired.load(Ordering::SeqCst));
    assert!(err.is_conflict(), "{err}");
    store.clear_rules();
    let left = a.keyholders(&store).unwrap();
    assert_eq!(left.len(), 1, "the member keeps one keyholder");
    assert_eq!(left[0].id, second_info.id);
}

#[test]
fn retire_shreds_old_epochs_and_unlock_stops_at_the_floor() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = Person::new("bob");
    let _b = add_and_join(&store, vault, &mut a, &mut bob, Role::ReadOnly);
    a.rekey(&store).unwrap();
    a.rekey(&store).unwrap();
    assert_eq!(a.epoch(), Epoch(3));
    let chain = |e: u32| {
        let mut k = b"c".to_vec();
        k.extend_from_slice(&e.to_be_bytes());
        store.get(Table::Wraps, &k).unwrap()
    };
    assert!(chain(2).is_some() && chain(3).is_some());

    // Read-only members cannot retire; the floor only moves forward, never past the
    // current epoch.
    let mut b = bob.unlock(&store, vault).unwrap();
    assert!(matches!(
        b.retire(&store, Epoch(3)),
        Err(SharingError::PermissionDenied { .. })
    ));
    assert!(a.retire(&store, Epoch(4)).is_err());

    a.retire(&store, Epoch(3)).unwrap();
    assert_eq!(a.membership().retired_below(), Epoch(3));
    assert!(a.key(Epoch(2)).is_none() && a.key(Epoch(1)).is_none());
    assert!(
        chain(2).is_none() && chain(3).is_none(),
        "links to retired keys are shredded"
    );
    let grants = store
        .scan(
            Table::Wraps,
            &strongroom_store::ScanRange::prefix(vec![b'g']),
            None,
            100,
        )
        .unwrap();
    assert!(grants.rows.len() == 2, "only epoch 3 grants remain");

    // A fresh unlock verifies the signed floor and reads exactly the live epochs.
    let again = alice.unlock(&store, vault).unwrap();
    assert_eq!(again.keys().keys().copied().collect::<Vec<_>>(), [Epoch(3)]);
    let b2 = bob.unlock(&store, vault).unwrap();
    assert_eq!(b2.keys().len(), 1);
    // Retiring at or below the floor is a no-op.
    a.retire(&store, Epoch(2)).unwrap();
    a.retire(&store, Epoch(3)).unwrap();
    assert_eq!(
        store.log_head(Table::MemberLog).unwrap(),
        alice.pins.high_water().map(|h| h.seq)
    );
}

/// Unlock records the keyholder's use in the same store; a record that loses a race with
/// another unlock (conflict), a store that refuses writes (a read-only replica) or a busy
/// one (the write lock held past its timeout) does not fail the unlock, any other write
/// error does.
#[test]
fn unlock_tolerates_only_a_lost_race_a_read_only_or_busy_store_when_recording_its_use() {
    use strongroom_store::StoreError;

    let store = FaultyStore::new(MemoryStore::new());
    let mut alice = Person::new("alice");
    let (vault, _) = new_vault(&store, &mut alice);
    let first = store.ops();
    alice.unlock(&store, vault).unwrap();
    let per_unlock = store.ops() - first;
    let applied = store.commits_applied();
    // The last operation of an unlock is the commit that records the use.
    let fail_the_record = |error: fn(u64) -> StoreError| {
        store.fail_op_with(store.ops() + per_unlock - 1, error);
    };
    let tolerated: [fn(u64) -> StoreError; 3] = [
        |_| StoreError::Conflict {
            table: Table::Keyholders,
            key: vec![1],
        },
        |_| StoreError::ReadOnly {
            reason: "a replica".to_owned(),
        },
        |_| StoreError::Unavailable {
            reason: "the write lock was held past the busy timeout".to_owned(),
        },
    ];
    for (i, error) in tolerated.into_iter().enumerate() {
        fail_the_record(error);
        let s = alice.unlock(&store, vault).unwrap();
        assert_eq!(s.member_id(), alice.id());
        assert_eq!(store.injected(), i as u64 + 1);
    }
    fail_the_record(|op| StoreError::Injected { op });
    let err = alice.unlock(&store, vault).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!((store.injected(), store.commits_applied()), (4, applied));
    alice.unlock(&store, vault).unwrap();
    assert_eq!(store.commits_applied(), applied + 1);
}

/// Without a member id, unlock takes the one member whose credentials are stored: none
/// stored is `NoCredentials` naming no member.
#[test]
fn unlock_without_a_member_id_needs_stored_credentials() {
    use strongroom_store::{Batch, Expect, Store as _};

    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, _) = new_vault(&store, &mut alice);
    let mut pins = alice.pins.clone();
    unlock(&store, vault, None, &alice.kek, &mut pins).unwrap();
    let mut batch = Batch::new();
    batch.delete(
        Table::Identities,
        alice.id().as_bytes().to_vec(),
        Expect::Any,
    );
    store.commit(&batch).unwrap();
    let err = unlock(&store, vault, None, &alice.kek, &mut pins).unwrap_err();
    assert!(
        matches!(err, SharingError::NoCredentials { member: None }),
        "{err}"
    );
    let err = unlock(&store, vault, Some(alice.id()), &alice.kek, &mut pins).unwrap_err();
    assert!(
        matches!(err, SharingError::NoCredentials { member: Some(m) } if m == alice.id()),
        "{err}"
    );
}
