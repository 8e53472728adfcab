//! What a removed member who kept keys can still do to the vault, tried for real: the
//! member unlocks while they belong (so they hold the epoch's vault key and can unwrap every
//! data key), is removed, the vault key is rotated, and then they use storage write access.
//! The forgeries are built with the envelope's independent reference implementation, not
//! with anything private to strongroom.

#[path = "../../strongroom-envelope/tests/reference/mod.rs"]
mod reference;

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{Batch, Expect, MemoryStore, ReadView, ScanRange, Store, Table};
use strongroom::{CreateOptions, Epoch, Vault, VaultError};

struct Bob {
    identity: Identity,
    kek: RawKek,
}

/// Alice's vault with one secret, and Bob, a member who joined.
fn vault_with_bob() -> (Vault, Arc<dyn Store>, Bob) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (alice, _) = Vault::create(
        Arc::clone(&store),
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    alice.put("db", "host", b"db.internal:5432").unwrap();
    let bob = Bob {
        identity: Identity::generate("bob").unwrap(),
        kek: RawKek::generate().unwrap(),
    };
    let public = bob.identity.public();
    alice
        .add_member(
            public,
            Role::Member,
            public
                .confirm_fingerprint(&public.fingerprint().digits())
                .unwrap(),
        )
        .unwrap();
    Vault::join(&store, &bob.identity, &[&bob.kek], Pins::default()).unwrap();
    (alice, store, bob)
}

/// What Bob can take with him while he is a member: the vault key of `epoch`.
fn bobs_vault_key(store: &Arc<dyn Store>, vault: &Vault, bob: &Bob, epoch: Epoch) -> [u8; 32] {
    let session = strongroom_sharing::unlock(
        &**store,
        vault.id(),
        Some(bob.identity.member_id()),
        &bob.kek,
        &mut Pins::default(),
    )
    .unwrap();
    let key = session.key(epoch).unwrap().expose_secret().expose_secret();
    *key
}

/// The only secret's index row: its key and value. In format 2 the entry holds the head
/// version's wrapped data key at bytes 42..164 and, inline, its body from byte 164.
fn the_entry(store: &dyn ReadView) -> (Vec<u8>, Vec<u8>) {
    let row = store
        .scan(Table::Index, &ScanRange::all(), None, 10)
        .unwrap()
        .rows
        .remove(0);
    assert_eq!(row.value[0], 2, "index entry format 2");
    assert_eq!(row.value[41], 1, "the head body is inline");
    (row.key, row.value)
}

/// A record payload as the facade's specification lays it out (format 1).
fn payload(ns: &str, name: &str, author: &[u8; 16], value: &[u8]) -> Vec<u8> {
    let mut p = vec![1];
    for field in [ns.as_bytes(), name.as_bytes()] {
        p.extend_from_slice(&(field.len() as u32).to_be_bytes());
        p.extend_from_slice(field);
    }
    p.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    p.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    p.extend_from_slice(author);
    p.extend_from_slice(&(value.len() as u32).to_be_bytes());
    p.extend_from_slice(value);
    p
}

/// Attack 1 of format v2: after "remove, then rotate", Bob seals a body of his choice
/// under the data key he kept and writes it over the real one: the head's body (in its
/// index entry) and an older version's body row. Alice must not receive either.
#[test]
fn a_removed_member_cannot_rewrite_a_secret_after_remove_then_rotate() {
    let (alice, store, bob) = vault_with_bob();
    alice.put("db", "host", b"db.internal:6432").unwrap();
    // While a member, Bob unwraps the data keys of db/host: version 1 (now in rows of its
    // own) and version 2 (the head, in the index entry).
    let vk1 = bobs_vault_key(&store, &alice, &bob, Epoch(1));
    let (index_key, entry) = the_entry(&*store);
    let record: [u8; 16] = entry[1..17].try_into().unwrap();
    let ctx = |version| reference::Ctx {
        vault: *alice.id().as_bytes(),
        record,
        version,
    };
    let head_dek = reference::ref_unwrap(&vk1, &ctx(2), &entry[42..164]);
    let row1 = [&record[..], &1u64.to_be_bytes()].concat();
    let old_dek = reference::ref_unwrap(
        &vk1,
        &ctx(1),
        &store.get(Table::Deks, &row1).unwrap().unwrap().value,
    );

    // Alice removes Bob and rotates, as SECURITY.md says.
    alice.remove_member(bob.identity.member_id()).unwrap();
    alice.rotate_vault_key().unwrap();
    let (_, rotated) = the_entry(&*store);
    assert_ne!(
        rotated[42..164],
        entry[42..164],
        "the data key was rewrapped"
    );

    // Bob writes his own values, "by alice", over the bodies.
    let forge = |dek: &[u8; 32], version: u64| {
        reference::ref_body(
            1,
            entry[165],
            &ctx(version),
            dek,
            &payload(
                "db",
                "host",
                alice.member_id().as_bytes(),
                b"attacker.example:5432",
            ),
        )
    };
    let mut b = Batch::new();
    b.put(
        Table::Index,
        index_key,
        [&rotated[..164], &forge(&head_dek, 2)[..]].concat(),
        Expect::Any,
    )
    .put(Table::Bodies, row1, forge(&old_dek, 1), Expect::Any);
    store.commit(&b).unwrap();

    for got in [alice.get("db", "host"), alice.get_version("db", "host", 1)] {
        match got {
            Ok(secret) => panic!(
                "alice received a value written by a removed member: {:?}",
                secret.expose_str()
            ),
            Err(e @ VaultError::Record { .. }) => {
                assert!(e.to_string().contains("replaced"), "{e}");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
}
