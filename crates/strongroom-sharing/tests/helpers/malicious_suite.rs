//! The malicious-storage suite: a storage (or anyone with write access to it) that forges,
//! swaps, replays, hides or reorders rows. Each attack is detected with a typed error and
//! no key is released. Included by `tests/malicious_storage.rs` (every identity hybrid,
//! X-Wing grants) and `tests/malicious_storage_classical.rs` (X25519 grants, as the first
//! release made them), each setting `KEM`.

use crate::KEM;
use crate::common::{
    Person, add_and_join, chain_key, confirmed, copy_store, grant_key, log_key, new_vault,
};
use strongroom_crypto::{CryptoError, VaultId};
use strongroom_recovery::secrecy::SecretString;
use strongroom_recovery::{KeyholderError, PassphraseKeyholder, Profile};
use strongroom_sharing::{
    ChainLink, EntryBody, Epoch, Grant, Identity, KeyBinding, KeyholderRecord, LogEntry, Pins,
    Role, Session, SharingError, VaultKey, VerifyError, join, unlock,
};
use strongroom_store::{
    AdversarialStore, Batch, Expect, MemoryStore, ReadView, Store, Table, Versioned,
};

type Adv = AdversarialStore<MemoryStore>;

/// An identity of the suite's KEM.
fn ident(name: &str) -> Result<Identity, SharingError> {
    Identity::generate_kind(strongroom_crypto::MemberId::generate().unwrap(), name, KEM)
}

/// A person with an identity of the suite's KEM.
fn person(name: &str) -> Person {
    Person::with_identity(ident(name).unwrap())
}

/// The verification error of a refused unlock (no session, so no key, was released).
fn refused(result: Result<Session, SharingError>) -> VerifyError {
    match result {
        Ok(s) => panic!("tampering accepted: {s:?}"),
        Err(err @ SharingError::Verify(_)) => {
            assert!(err.is_tampering() && !err.is_conflict(), "{err}");
            let SharingError::Verify(v) = err else {
                unreachable!()
            };
            v
        }
        Err(other) => panic!("expected a verification error, got {other}"),
    }
}

/// A vault with Alice (owner) and Bob (member); Bob has joined.
fn two_members() -> (Adv, VaultId, Person, Session, Person, Session) {
    let store = AdversarialStore::new(MemoryStore::new());
    let mut alice = person("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = person("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    alice.pins = a.pins().clone();
    (store, vault, alice, a, bob, b)
}

/// Writes `value` at `key` of `table` behind the client's back.
fn write_raw(store: &Adv, table: Table, key: Vec<u8>, value: Vec<u8>) {
    let mut batch = Batch::new();
    batch.put(table, key, value, Expect::Any);
    store.inner().commit(&batch).unwrap();
}

/// Appends a forged log entry at the head, behind the client's back.
fn append_raw(store: &Adv, entry: &LogEntry) {
    let mut batch = Batch::new();
    batch.append(Table::MemberLog, entry.seq(), entry.encode());
    store.inner().commit(&batch).unwrap();
}

/// The entry at the head of the honest log.
fn head_entry(store: &Adv) -> LogEntry {
    let head = store.inner().log_head(Table::MemberLog).unwrap().unwrap();
    let row = store
        .inner()
        .get(Table::MemberLog, &log_key(head))
        .unwrap()
        .unwrap();
    LogEntry::decode(&row.value).unwrap()
}

/// `key` in `table` reads as `value`.
fn serve(store: &Adv, table: Table, key: Vec<u8>, value: Vec<u8>) {
    store.on_read(move |t, k, seen| {
        if t == table && k == key.as_slice() {
            Some(Versioned {
                value: value.clone(),
                version: seen.map_or(1, |v| v.version),
            })
        } else {
            seen
        }
    });
}

#[test]
fn public_key_substitution_on_add_is_refused() {
    let (store, vault, mut alice, _a, mut bob, _b) = two_members();
    // The storage swaps Bob's identity in the Add entry for Mallory's (same name length,
    // so the entry still parses): the owner's signature no longer verifies.
    let mallory = ident("bob").unwrap();
    let row = store
        .inner()
        .get(Table::MemberLog, &log_key(1))
        .unwrap()
        .unwrap();
    let bob_bytes = bob.identity.public().encode();
    let mal_bytes = mallory.public().encode();
    assert_eq!(bob_bytes.len(), mal_bytes.len());
    let at = row
        .value
        .windows(bob_bytes.len())
        .position(|w| w == bob_bytes.as_slice())
        .unwrap();
    let mut forged = row.value.clone();
    forged[at..at + mal_bytes.len()].copy_from_slice(&mal_bytes);
    serve(&store, Table::MemberLog, log_key(1), forged);
    assert_eq!(
        refused(alice.unlock(&store, vault)),
        VerifyError::BadSignature { seq: 1 }
    );
    assert_eq!(
        refused(bob.unlock(&store, vault)),
        VerifyError::BadSignature { seq: 1 }
    );

    // Before the add, a substituted identity fails the fingerprint comparison.
    let fake_bob = Identity::generate_kind(bob.id(), "bob", KEM).unwrap();
    assert!(matches!(
        fake_bob
            .public()
            .confirm_fingerprint(&bob.identity.public().fingerprint().to_string()),
        Err(SharingError::FingerprintMismatch)
    ));
}

#[test]
fn member_injection_by_the_storage_is_refused() {
    let (store, vault, mut alice, _a, _bob, _b) = two_members();
    let mallory = ident("mallory").unwrap();
    let head = head_entry(&store);
    let add = EntryBody::Add {
        identity: mallory.public().clone(),
        role: Role::Owner,
    };

    // Signed by a stranger, appended at the head behind the owner's back.
    let before = copy_store(store.inner());
    let forged = LogEntry::sign(head.seq() + 1, head.hash(), vault, &mallory, add);
    append_raw(&store, &forged);
    let err = refused(alice.unlock(&store, vault));
    assert_eq!(
        err,
        VerifyError::UnknownSigner {
            seq: 2,
            signer: mallory.member_id()
        }
    );

    // Claiming the owner as signer without the owner's key.
    let mut owner_claim = forged.encode();
    owner_claim[57..73].copy_from_slice(alice.id().as_bytes());
    let mut batch = Batch::new();
    batch.append(Table::MemberLog, 2, owner_claim);
    before.commit(&batch).unwrap();
    let err = refused(unlock(
        &before,
        vault,
        Some(alice.id()),
        &alice.kek,
        &mut alice.pins.clone(),
    ));
    assert_eq!(err, VerifyError::BadSignature { seq: 2 });

    // A grant row for someone the log does not list.
    let store4 = AdversarialStore::new(MemoryStore::new());
    let mut owner = person("owner");
    let (v4, _o) = new_vault(&store4, &mut owner);
    let fake = Grant::seal(
        v4,
        &VaultKey::generate(Epoch::FIRST).unwrap(),
        mallory.public(),
    )
    .unwrap();
    write_raw(
        &store4,
        Table::Wraps,
        grant_key(1, mallory.member_id()),
        fake.encode(),
    );
    let err = refused(owner.unlock(&store4, v4));
    assert!(matches!(err, VerifyError::UnexpectedGrant { .. }), "{err}");

    // Credentials for someone the log does not list: they open, but grant nothing.
    let store5 = MemoryStore::new();
    let mut owner5 = person("owner");
    let (v5, _o5) = new_vault(&store5, &mut owner5);
    let mal_kek = crate::common::kek();
    let mut batch = Batch::new();
    let key = strongroom_crypto::Key256::generate().unwrap();
    batch.put(
        Table::Identities,
        mallory.member_id().as_bytes().to_vec(),
        mallory.seal(v5, &key).unwrap().encode(),
        Expect::Any,
    );
    let subject = [v5.as_bytes().as_slice(), mallory.member_id().as_bytes()].concat();
    let ctx = strongroom_recovery::WrapContext {
        purpose: strongroom_sharing::MEMBER_KEY_PURPOSE,
        subject: &subject,
    };
    let stanza = strongroom_recovery::Keyholder::wrap(&mal_kek, &ctx, &key).unwrap();
    let mut rk = mallory.member_id().as_bytes().to_vec();
    rk.extend_from_slice(&stanza.id);
    batch.put(
        Table::Keyholders,
        rk,
        KeyholderRecord {
            stanza,
            created_at: 1,
            last_used_at: 0,
        }
        .encode(),
        Expect::Any,
    );
    store5.commit(&batch).unwrap();
    let err = unlock(
        &store5,
        v5,
        Some(mallory.member_id()),
        &mal_kek,
        &mut Pins::new(),
    )
    .unwrap_err();
    assert!(matches!(err, SharingError::NotAMember { .. }), "{err}");
    let err = unlock(&store5, v5, None, &owner5.kek, &mut Pins::new()).unwrap_err();
    assert!(
        matches!(err, SharingError::AmbiguousMember { count: 2 }),
        "{err}"
    );
}

#[test]
fn grant_swapped_between_members_is_refused() {
    let (store, vault, mut alice, _a, mut bob, _b) = two_members();
    store.swap_value(
        Table::Wraps,
        &grant_key(1, bob.id()),
        &grant_key(1, alice.id()),
    );
    let err = refused(bob.unlock(&store, vault));
    assert!(matches!(err, VerifyError::GrantMisplaced { .. }), "{err}");
    let err = refused(alice.unlock(&store, vault));
    assert!(matches!(err, VerifyError::GrantMisplaced { .. }), "{err}");
    store.clear_rules();

    // A grant relabelled to Bob but still addressed to Alice's key.
    let row = store
        .inner()
        .get(Table::Wraps, &grant_key(1, alice.id()))
        .unwrap()
        .unwrap();
    let mut relabelled = row.value.clone();
    relabelled[21..37].copy_from_slice(bob.id().as_bytes());
    serve(&store, Table::Wraps, grant_key(1, bob.id()), relabelled);
    let err = refused(bob.unlock(&store, vault));
    assert_eq!(
        err,
        VerifyError::GrantKeyMismatch {
            member: bob.id(),
            epoch: Epoch(1)
        }
    );
    store.clear_rules();
    bob.unlock(&store, vault).unwrap();

    // Bob's own grant of an older epoch served as his grant of the current one.
    let mut a = alice.unlock(&store, vault).unwrap();
    a.rekey(&store).unwrap();
    alice.pins = a.pins().clone();
    bob.unlock(&store, vault).unwrap();
    store.swap_value(
        Table::Wraps,
        &grant_key(2, bob.id()),
        &grant_key(1, bob.id()),
    );
    own_older_grant_refused(&store, vault, &mut bob);
}

/// Bob's unlock is refused with his epoch-1 grant named as misplaced; once the storage is
/// honest again, it succeeds.
fn own_older_grant_refused(store: &Adv, vault: VaultId, bob: &mut Person) {
    assert_eq!(
        refused(bob.unlock(store, vault)),
        VerifyError::GrantMisplaced {
            member: bob.id(),
            epoch: Epoch(1)
        }
    );
    store.clear_rules();
    bob.unlock(store, vault).unwrap();
}

#[test]
fn grant_served_differently_to_the_audit_and_to_the_read_is_refused() {
    // A storage honest while the grants are audited (one scan of every grant row), then
    // serving Bob his own epoch-1 grant when he reads his epoch-2 row: the row read is
    // checked on its own, not trusted because the audit passed.
    let (store, vault, mut alice, mut a, bob, _b) = two_members();
    a.rekey(&store).unwrap();
    alice.pins = a.pins().clone();
    let old = store
        .inner()
        .get(Table::Wraps, &grant_key(1, bob.id()))
        .unwrap()
        .unwrap();
    let target = grant_key(2, bob.id());
    let reads = std::sync::atomic::AtomicUsize::new(0);
    store.on_read(move |table, key, row| {
        let lie = table == Table::Wraps
            && key == target.as_slice()
            && reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1;
        if lie { Some(old.clone()) } else { row }
    });
    let mut bob = bob;
    own_older_grant_refused(&store, vault, &mut bob);
}

#[test]
fn storage_chosen_vault_key_is_refused() {
    let (store, vault, mut alice, mut a, mut bob, mut b) = two_members();
    // A valid HPKE grant to Bob's logged key, of a key the storage chose.
    let chosen = VaultKey::generate(Epoch(1)).unwrap();
    let fake = Grant::seal(vault, &chosen, bob.identity.public()).unwrap();
    write_raw(&store, Table::Wraps, grant_key(1, bob.id()), fake.encode());
    assert_eq!(
        refused(bob.unlock(&store, vault)),
        VerifyError::VaultKeyMismatch { epoch: Epoch(1) }
    );
    assert_eq!(
        b.refresh(&store).unwrap_err().to_string(),
        SharingError::from(VerifyError::VaultKeyMismatch { epoch: Epoch(1) }).to_string()
    );
    // Put the honest grant back (Alice re-grants by a rekey) and check the chain.
    a.rekey(&store).unwrap();
    b.refresh(&store).unwrap();
    assert_eq!(b.epoch(), Epoch(2));

    // A forged epoch-2 grant plus a chain link under the storage's key.
    let chosen2 = VaultKey::generate(Epoch(2)).unwrap();
    let fake2 = Grant::seal(vault, &chosen2, bob.identity.public()).unwrap();
    let link = ChainLink::seal(vault, &chosen2, &chosen).unwrap();
    serve(&store, Table::Wraps, grant_key(2, bob.id()), fake2.encode());
    serve(&store, Table::Wraps, chain_key(2), link.encode());
    assert_eq!(
        refused(bob.unlock(&store, vault)),
        VerifyError::VaultKeyMismatch { epoch: Epoch(2) }
    );
    store.clear_rules();
    // The honest epoch-2 key with a forged link (the storage cannot make one that opens).
    serve(&store, Table::Wraps, chain_key(2), link.encode());
    assert_eq!(
        refused(bob.unlock(&store, vault)),
        VerifyError::ChainUnreadable { epoch: Epoch(2) }
    );
    store.clear_rules();
    store.hide(Table::Wraps, &chain_key(2));
    assert_eq!(
        refused(alice.unlock(&store, vault)),
        VerifyError::MissingChainLink { epoch: Epoch(2) }
    );
    store.clear_rules();
    assert_eq!(bob.unlock(&store, vault).unwrap().keys().len(), 2);
}

#[test]
fn replay_of_an_old_log_is_refused() {
    let (store, vault, mut alice, mut a, _bob, _b) = two_members();
    let before = copy_store(store.inner());
    let mut carol = person("carol");
    add_and_join(&store, vault, &mut a, &mut carol, Role::Member);
    a.rekey(&store).unwrap();
    alice.pins = a.pins().clone();
    assert_eq!(alice.pins.high_water().unwrap().seq, 3);

    // Truncated log.
    store.truncate_log(Table::MemberLog, 2);
    assert_eq!(
        refused(alice.unlock(&store, vault)),
        VerifyError::Rollback {
            pinned: 4,
            found: 2
        }
    );
    store.clear_rules();
    // A whole older copy of the store.
    let err = refused(unlock(
        &before,
        vault,
        Some(alice.id()),
        &alice.kek,
        &mut alice.pins.clone(),
    ));
    assert_eq!(
        err,
        VerifyError::Rollback {
            pinned: 4,
            found: 2
        }
    );
    // A fork: the older copy continued differently to the same length.
    let mut old_alice = Person {
        identity: alice.identity.clone_secret(),
        kek: strongroom_recovery::RawKek::from_key(
            strongroom_crypto::Key256::from_slice(alice.kek.expose_secret()).unwrap(),
        ),
        pins: Pins::new(),
    };
    let mut fork_session = old_alice.unlock(&before, vault).unwrap();
    let mut dave = person("dave");
    add_and_join(&before, vault, &mut fork_session, &mut dave, Role::Member);
    fork_session.rekey(&before).unwrap();
    let err = refused(unlock(
        &before,
        vault,
        Some(alice.id()),
        &alice.kek,
        &mut alice.pins.clone(),
    ));
    assert_eq!(err, VerifyError::Fork { seq: 3 });
    // The pins did not move on a refused load.
    assert_eq!(alice.pins.high_water().unwrap().seq, 3);
    alice.unlock(&store, vault).unwrap();
    // Another vault's log under the same id: another genesis signer.
    let other = MemoryStore::new();
    let mut mallory = person("alice");
    strongroom_sharing::create(&other, vault, &mallory.identity, &[&mallory.kek]).unwrap();
    let err = refused(unlock(
        &other,
        vault,
        None,
        &mallory.kek,
        &mut alice.pins.clone(),
    ));
    assert_eq!(err, VerifyError::GenesisSignerMismatch);
    let _ = &mut mallory;
}

#[test]
fn deleted_log_entries_are_refused() {
    let (store, vault, mut alice, mut a, _bob, _b) = two_members();
    a.rekey(&store).unwrap();
    let mut pins = Pins::new(); // even a first use notices
    store.hide(Table::MemberLog, &log_key(1));
    let err = refused(unlock(
        &store,
        vault,
        Some(alice.id()),
        &alice.kek,
        &mut pins,
    ));
    assert_eq!(
        err,
        VerifyError::OutOfOrder {
            expected: 1,
            found: 2
        }
    );
    store.clear_rules();
    store.hide(Table::MemberLog, &log_key(2));
    let err = refused(unlock(
        &store,
        vault,
        Some(alice.id()),
        &alice.kek,
        &mut pins,
    ));
    assert_eq!(
        err,
        VerifyError::HeadMismatch {
            reported: 3,
            returned: 2
        }
    );
    store.clear_rules();
    store.hide(Table::MemberLog, &log_key(0));
    let err = refused(alice.unlock(&store, vault));
    assert!(
        matches!(
            err,
            VerifyError::OutOfOrder {
                expected: 0,
                found: 1
            }
        ),
        "{err}"
    );
    store.clear_rules();
    assert!(pins.is_empty(), "nothing pinned from a refused load");
    alice.unlock(&store, vault).unwrap();
}

#[test]
fn reordered_log_entries_are_refused() {
    let (store, vault, mut alice, mut a, _bob, _b) = two_members();
    a.rekey(&store).unwrap();
    store.swap_value(Table::MemberLog, &log_key(1), &log_key(2));
    store.swap_value(Table::MemberLog, &log_key(2), &log_key(1));
    let err = refused(alice.unlock(&store, vault));
    assert_eq!(
        err,
        VerifyError::OutOfOrder {
            expected: 1,
            found: 2
        }
    );
    store.clear_rules();
    // The same entry served twice (replayed in place of another).
    store.swap_value(Table::MemberLog, &log_key(2), &log_key(1));
    let err = refused(alice.unlock(&store, vault));
    assert_eq!(
        err,
        VerifyError::OutOfOrder {
            expected: 2,
            found: 1
        }
    );
}

#[test]
fn a_removed_members_writes_are_refused() {
    let (store, vault, _alice, mut a, bob, mut b) = two_members();
    let mut carol = person("carol");
    add_and_join(&store, vault, &mut a, &mut carol, Role::Member);
    a.remove_member(&store, bob.id()).unwrap();

    // Bob's stale session: its append loses the race; after a refresh he is out.
    let x = ident("x").unwrap();
    let err = b
        .add_member(&store, x.public(), Role::Member, confirmed(x.public()))
        .unwrap_err();
    assert!(
        err.is_conflict() || matches!(err, SharingError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(matches!(
        b.refresh(&store).unwrap_err(),
        SharingError::NotAMember { .. }
    ));

    // Bob writes to the storage directly: a log entry signed with his old key…
    let head = head_entry(&store);
    let entry = LogEntry::sign(
        head.seq() + 1,
        head.hash(),
        vault,
        &bob.identity,
        EntryBody::Rekey {
            epoch: Epoch(3),
            key: KeyBinding::of(&VaultKey::generate(Epoch(3)).unwrap()),
        },
    );
    let before = copy_store(store.inner());
    append_raw(&store, &entry);
    let err = refused(carol.unlock(&store, vault));
    assert_eq!(
        err,
        VerifyError::SignerRemoved {
            seq: entry.seq(),
            signer: bob.id()
        }
    );

    // …or a grant to himself for the epoch after his removal (of a key he chose).
    let after = AdversarialStore::new(before);
    let mine = Grant::seal(
        vault,
        &VaultKey::generate(Epoch(2)).unwrap(),
        bob.identity.public(),
    )
    .unwrap();
    write_raw(&after, Table::Wraps, grant_key(2, bob.id()), mine.encode());
    let err = refused(carol.unlock(&after, vault));
    assert_eq!(
        err,
        VerifyError::UnexpectedGrant {
            member: bob.id(),
            epoch: Epoch(2)
        }
    );
}

#[test]
fn box_audit_finds_missing_and_misaddressed_grants() {
    let (store, vault, mut alice, _a, mut bob, _b) = two_members();
    store.hide(Table::Wraps, &grant_key(1, bob.id()));
    assert_eq!(
        refused(alice.unlock(&store, vault)),
        VerifyError::MissingGrant {
            member: bob.id(),
            epoch: Epoch(1)
        }
    );
    store.clear_rules();
    // Bob's grant re-addressed (recipient hash) to another key.
    let row = store
        .inner()
        .get(Table::Wraps, &grant_key(1, bob.id()))
        .unwrap()
        .unwrap();
    let mut other = row.value.clone();
    let eve = ident("eve").unwrap();
    other[37..69].copy_from_slice(&strongroom_sharing::recipient_key_hash(eve.public()));
    serve(&store, Table::Wraps, grant_key(1, bob.id()), other);
    assert_eq!(
        refused(alice.unlock(&store, vault)),
        VerifyError::GrantKeyMismatch {
            member: bob.id(),
            epoch: Epoch(1)
        }
    );
    store.clear_rules();
    // Garbage in a grant row.
    serve(&store, Table::Wraps, grant_key(1, bob.id()), vec![1, 2, 3]);
    assert!(matches!(
        refused(bob.unlock(&store, vault)),
        VerifyError::MalformedWrap { .. }
    ));
    store.clear_rules();
    // Credentials swapped between members.
    store.swap_value(
        Table::Identities,
        alice.id().as_bytes(),
        bob.id().as_bytes(),
    );
    assert_eq!(
        refused(alice.unlock(&store, vault)),
        VerifyError::CredentialsMismatch { member: alice.id() }
    );
}

#[test]
fn kdf_parameter_downgrade_on_a_passphrase_stanza_is_refused() {
    let store = AdversarialStore::new(MemoryStore::new());
    let passphrase = PassphraseKeyholder::new(
        &SecretString::from("a long enough passphrase"),
        Profile::Constrained,
    )
    .unwrap();
    let owner = ident("alice").unwrap();
    let vault = VaultId::generate().unwrap();
    strongroom_sharing::create(&store, vault, &owner, &[&passphrase]).unwrap();
    let rows = store
        .inner()
        .scan(
            Table::Keyholders,
            &strongroom_store::ScanRange::all(),
            None,
            10,
        )
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1);
    let record = KeyholderRecord::decode(&rows[0].value).unwrap();

    // Lower the stored Argon2id memory cost from 19 MiB to 8 MiB (body bytes 1..5).
    let mut weak = record.clone();
    weak.stanza.body[1..5].copy_from_slice(&(8 * 1024u32).to_be_bytes());
    serve(
        &store,
        Table::Keyholders,
        rows[0].key.clone(),
        weak.encode(),
    );
    let err = unlock(&store, vault, None, &passphrase, &mut Pins::new()).unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::Keyholder(KeyholderError::Crypto(CryptoError::KdfBelowFloor { .. }))
        ),
        "{err}"
    );
    store.clear_rules();

    // Raising them instead fails authentication (the parameters are bound to the wrap).
    let mut changed = record.clone();
    changed.stanza.body[5..9].copy_from_slice(&3u32.to_be_bytes());
    serve(
        &store,
        Table::Keyholders,
        rows[0].key.clone(),
        changed.encode(),
    );
    let err = unlock(&store, vault, None, &passphrase, &mut Pins::new()).unwrap_err();
    assert!(
        matches!(
            err,
            SharingError::Keyholder(KeyholderError::WrongPassphrase)
        ),
        "{err}"
    );
    store.clear_rules();
    unlock(&store, vault, None, &passphrase, &mut Pins::new()).unwrap();
}

#[test]
fn cross_vault_replay_is_refused() {
    // Bob belongs to two vaults in two stores.
    let store_a = AdversarialStore::new(MemoryStore::new());
    let store_b = AdversarialStore::new(MemoryStore::new());
    let mut alice = person("alice");
    let mut bob = person("bob");
    let (va, mut a) = new_vault(&store_a, &mut alice);
    add_and_join(&store_a, va, &mut a, &mut bob, Role::Member);
    let mut carol = person("carol");
    let (vb, mut c) = new_vault(&store_b, &mut carol);
    let public = bob.identity.public().clone();
    c.add_member(&store_b, &public, Role::Member, confirmed(&public))
        .unwrap();

    // Vault A's grant to Bob served in vault B.
    let from_a = store_a
        .inner()
        .get(Table::Wraps, &grant_key(1, bob.id()))
        .unwrap()
        .unwrap();
    serve(
        &store_b,
        Table::Wraps,
        grant_key(1, bob.id()),
        from_a.value.clone(),
    );
    let err = refused(join(
        &store_b,
        vb,
        &bob.identity,
        &[&bob.kek],
        &mut Pins::new(),
    ));
    assert_eq!(
        err,
        VerifyError::GrantMisplaced {
            member: bob.id(),
            epoch: Epoch(1)
        }
    );
    store_b.clear_rules();
    // The same with its vault field rewritten: HPKE's info binds the vault id.
    let mut relabelled = from_a.value.clone();
    relabelled[1..17].copy_from_slice(vb.as_bytes());
    serve(&store_b, Table::Wraps, grant_key(1, bob.id()), relabelled);
    let err = refused(join(
        &store_b,
        vb,
        &bob.identity,
        &[&bob.kek],
        &mut Pins::new(),
    ));
    assert_eq!(err, VerifyError::GrantUnreadable { epoch: Epoch(1) });
    store_b.clear_rules();

    // Vault A's log entry and Bob's sealed credentials replayed into vault B.
    let entry_a = store_a
        .inner()
        .get(Table::MemberLog, &log_key(1))
        .unwrap()
        .unwrap();
    serve(&store_b, Table::MemberLog, log_key(1), entry_a.value);
    let err = refused(carol.unlock(&store_b, vb));
    assert_eq!(err, VerifyError::WrongVault { seq: 1 });
    store_b.clear_rules();
    for table in [Table::Identities, Table::Keyholders] {
        let rows = store_a
            .inner()
            .scan(
                table,
                &strongroom_store::ScanRange::prefix(bob.id().as_bytes().to_vec()),
                None,
                10,
            )
            .unwrap()
            .rows;
        for row in rows {
            write_raw(&store_b, table, row.key, row.value);
        }
    }
    let err = refused(unlock(
        &store_b,
        vb,
        Some(bob.id()),
        &bob.kek,
        &mut Pins::new(),
    ));
    assert_eq!(err, VerifyError::CredentialsMismatch { member: bob.id() });
}
