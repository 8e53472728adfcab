//! What a removed member who kept keys can still do to the vault, tried for real: the
//! member unlocks while they belong (so they hold the epoch's vault key and can unwrap every
//! data key), is removed, the vault key is rotated, and then they use storage write access.
//! The forgeries are built with the envelope's independent reference implementation, not
//! with anything private to strongroom.

mod payload_spec;
#[path = "../../strongroom-envelope/tests/reference/mod.rs"]
mod reference;

use payload_spec::payload_v1 as payload;

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{Batch, Expect, MemoryStore, ReadView, ScanRange, Store, Table};
use strongroom::{CreateOptions, Epoch, UnlockOptions, Vault, VaultError};

struct Bob {
    identity: Identity,
    kek: RawKek,
}

/// Alice's vault with one secret, and Bob, a member who joined.
fn vault_with_bob() -> (Vault, Arc<dyn Store>, Bob) {
    vault_with_bob_for(&RawKek::generate().unwrap())
}

/// [`vault_with_bob`], Alice unlocking with `kek`.
fn vault_with_bob_for(kek: &RawKek) -> (Vault, Arc<dyn Store>, Bob) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (alice, _) = Vault::create(Arc::clone(&store), kek, &CreateOptions::default()).unwrap();
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
    let (_, entry) = the_entry(&*store);
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
    // The row moved to the blind index under the new metadata key: Bob finds it as the
    // only row there is.
    let (index_key, rotated) = the_entry(&*store);
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

/// Bob's copy of the metadata key: the `m ‖ epoch` row unwrapped with the vault key he
/// held, as `docs/spec/meta.md` lays it out (XChaCha20-Poly1305, 24-byte nonce first).
fn bobs_metadata_key(store: &dyn ReadView, vault: &Vault, vk: &[u8; 32], epoch: u32) -> [u8; 32] {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    let row = [&b"m"[..], &epoch.to_be_bytes()].concat();
    let wrapped = store.get(Table::Wraps, &row).unwrap().unwrap().value;
    let aad = [
        &b"strongroom/v1/meta-key"[..],
        vault.id().as_bytes(),
        &epoch.to_be_bytes(),
    ]
    .concat();
    let root = XChaCha20Poly1305::new(vk.into())
        .decrypt(
            XNonce::from_slice(&wrapped[..24]),
            Payload {
                msg: &wrapped[24..],
                aad: &aad,
            },
        )
        .unwrap();
    root.try_into().unwrap()
}

/// A key derived from the metadata key (`derive_key`: info = label ‖ 0x00).
fn derived(root: &[u8; 32], label: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    reference::hkdf(root, &[label.as_bytes(), &[0]].concat(), &mut out);
    out
}

fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The blind index of `ns`/`name` under `root`, as `docs/spec/index-entry.md` lays it out.
fn blind(root: &[u8; 32], ns: &str, name: &str) -> Vec<u8> {
    let index = derived(root, "strongroom/v1/index");
    let ns_tag = hmac(&index, &[b"ns", ns.as_bytes()]);
    let name_tag = hmac(
        &index,
        &[
            b"name",
            &(ns.len() as u32).to_be_bytes(),
            ns.as_bytes(),
            name.as_bytes(),
        ],
    );
    [&ns_tag[..16], &name_tag[..16]].concat()
}

/// Bob, who kept the metadata key, removed, then the vault key rotated: what he could do
/// with that key before format v2 replaced it (attack 4).
fn removed_and_rotated_with_bobs_metadata_key(kek: &RawKek) -> (Vault, Arc<dyn Store>, [u8; 32]) {
    let (alice, store, bob) = vault_with_bob_for(kek);
    let vk1 = bobs_vault_key(&store, &alice, &bob, Epoch(1));
    let root = bobs_metadata_key(&*store, &alice, &vk1, 1);
    assert_eq!(
        store
            .get(Table::Index, &blind(&root, "db", "host"))
            .unwrap()
            .map(|r| r.value[0]),
        Some(2),
        "the reference blind index finds the secret while Bob is a member"
    );
    alice.remove_member(bob.identity.member_id()).unwrap();
    alice.rotate_vault_key().unwrap();
    (alice, store, root)
}

#[test]
fn a_removed_member_cannot_test_names_after_remove_then_rotate() {
    let kek = RawKek::generate().unwrap();
    let (alice, store, root) = removed_and_rotated_with_bobs_metadata_key(&kek);
    alice.put("db", "password", b"hunter2").unwrap();
    for name in ["host", "password"] {
        assert!(
            store
                .get(Table::Index, &blind(&root, "db", name))
                .unwrap()
                .is_none(),
            "a removed member's metadata key still tells that db/{name} exists"
        );
    }
    assert!(
        store
            .scan(
                Table::Index,
                &ScanRange::prefix(blind(&root, "db", "host")[..16].to_vec()),
                None,
                10
            )
            .unwrap()
            .rows
            .is_empty(),
        "a removed member's metadata key still links the rows of a namespace"
    );
    assert_eq!(
        alice.get("db", "host").unwrap().expose_secret(),
        b"db.internal:5432"
    );
    assert_eq!(alice.list("db").unwrap().len(), 2);
}

#[test]
fn a_removed_member_cannot_change_the_vault_settings_after_remove_then_rotate() {
    let kek = RawKek::generate().unwrap();
    let (alice, store, root) = removed_and_rotated_with_bobs_metadata_key(&kek);
    // Bob sets the history to one version (so the next put prunes every older one), with a
    // MAC under the config key he kept.
    let mut header = store.get(Table::Meta, b"vault").unwrap().unwrap().value;
    header[26..30].copy_from_slice(&1u32.to_be_bytes());
    let mac = hmac(
        &derived(&root, "strongroom/v1/config"),
        &[b"strongroom/v1/vault-header", &header[..34]],
    );
    header[34..].copy_from_slice(&mac);
    let mut b = Batch::new();
    b.put(Table::Meta, b"vault".to_vec(), header, Expect::Any);
    store.commit(&b).unwrap();
    drop(alice);
    match Vault::open(Arc::clone(&store)).unwrap().unlock(&kek) {
        Err(VaultError::Inconsistent { detail, .. }) => {
            assert!(detail.contains("header"), "{detail}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a removed member changed the vault's settings undetected"),
    }
}

#[test]
fn a_removed_member_cannot_forge_audit_entries_after_remove_then_rotate() {
    let kek = RawKek::generate().unwrap();
    let (alice, store, root) = removed_and_rotated_with_bobs_metadata_key(&kek);
    let head = store.log_head(Table::Audit).unwrap().unwrap();
    let last = store
        .get(Table::Audit, &head.to_be_bytes())
        .unwrap()
        .unwrap()
        .value;
    let seq = head + 1;
    let mut e = vec![1];
    e.extend_from_slice(&seq.to_be_bytes());
    e.extend_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&last));
    e.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    e.extend_from_slice(alice.member_id().as_bytes());
    e.push(5); // delete
    e.push(0);
    e.extend_from_slice(&16u32.to_be_bytes());
    e.extend_from_slice(&[7; 16]);
    e.extend_from_slice(&0u32.to_be_bytes());
    let mac = hmac(
        &derived(&root, "strongroom/v1/audit"),
        &[b"strongroom/v1/audit", &e],
    );
    e.extend_from_slice(&mac);
    let mut b = Batch::new();
    b.append(Table::Audit, seq, e);
    store.commit(&b).unwrap();
    match alice.audit_verify() {
        Err(VaultError::AuditTampered { seq: at, .. }) => assert_eq!(at, seq),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(r) => panic!(
            "a removed member appended an audit entry undetected ({} entries)",
            r.entries
        ),
    }
}

/// Alice's metadata key of the current epoch, read with her own vault key as the spec
/// says (what the rotation after a removal must have moved every index row under).
fn current_metadata_key(store: &Arc<dyn Store>, alice: &Vault, kek: &RawKek) -> [u8; 32] {
    let session = strongroom_sharing::unlock(
        &**store,
        alice.id(),
        Some(alice.member_id()),
        kek,
        &mut Pins::default(),
    )
    .unwrap();
    let epoch = alice.epoch();
    let vk = *session.key(epoch).unwrap().expose_secret().expose_secret();
    bobs_metadata_key(&**store, alice, &vk, epoch.0)
}

/// Secrets of every shape: inline and stored heads, older versions, two namespaces.
fn fill(vault: &Vault) -> Vec<(&'static str, String, Vec<u8>)> {
    let mut want = vec![("db", "host".to_owned(), b"db.internal:5432".to_vec())];
    for i in 0..12 {
        let value = format!("value {i}").into_bytes();
        vault.put("app/one", &format!("k{i}"), b"old").unwrap();
        vault.put("app/one", &format!("k{i}"), &value).unwrap();
        want.push(("app/one", format!("k{i}"), value));
    }
    let big = vec![9u8; 20_000];
    vault.put("app/two", "big", &big).unwrap();
    want.push(("app/two", "big".to_owned(), big));
    want
}

fn check_all(vault: &Vault, want: &[(&str, String, Vec<u8>)], when: &str) {
    for (ns, name, value) in want {
        let got = vault
            .get(ns, name)
            .unwrap_or_else(|e| panic!("{when}: {ns}/{name}: {e}"));
        assert_eq!(got.expose_secret(), &value[..], "{when}: {ns}/{name}");
    }
    for ns in ["db", "app/one", "app/two"] {
        let n = want.iter().filter(|(n, _, _)| *n == ns).count();
        assert_eq!(vault.list(ns).unwrap().len(), n, "{when}: list {ns}");
        assert_eq!(vault.load(ns).unwrap().len(), n, "{when}: load {ns}");
        assert_eq!(
            vault.secrets(ns).unwrap().map(Result::unwrap).count(),
            n,
            "{when}: stream {ns}"
        );
    }
    let names: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let many = vault.get_many("app/one", &names).unwrap();
    for (name, got) in names.iter().zip(&many) {
        let stored = want.iter().any(|(ns, n, _)| *ns == "app/one" && n == name);
        assert_eq!(got.is_some(), stored, "{when}: get_many {name}");
    }
    assert_eq!(
        vault.history("app/one", "k3").unwrap().len(),
        2,
        "{when}: history"
    );
    assert_eq!(
        vault
            .get_version("app/one", "k3", 1)
            .unwrap()
            .expose_secret(),
        b"old",
        "{when}: older version"
    );
    let report = vault.audit_verify().unwrap();
    assert_eq!(
        vault.audit_list(0, 100_000).unwrap().len() as u64,
        report.entries,
        "{when}: the whole audit log lists"
    );
}

/// Between the removal (which replaces the metadata key) and the rotation (which moves
/// the index rows), every read finds every secret; writes move the rows they touch; the
/// rotation moves the rest, and then only the new metadata key finds anything.
#[test]
fn the_index_moves_to_the_new_metadata_key_between_removal_and_rotation() {
    let kek = RawKek::generate().unwrap();
    let (alice, store, bob) = vault_with_bob_for(&kek);
    let mut want = fill(&alice);
    let vk1 = bobs_vault_key(&store, &alice, &bob, Epoch(1));
    let old_root = bobs_metadata_key(&*store, &alice, &vk1, 1);
    // Handles of other processes, opened before the removal and never told about it.
    let stale = [(); 2].map(|()| {
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock_with(
                &kek,
                UnlockOptions::default().with_member(Some(alice.member_id())),
            )
            .unwrap()
    });

    alice.remove_member(bob.identity.member_id()).unwrap();
    assert_eq!(alice.status().unwrap().older_metadata_keys, 1);
    check_all(&alice, &want, "after the removal");
    // A handle opened now reads the same.
    let fresh = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    check_all(&fresh, &want, "a fresh handle after the removal");
    // Writes between removal and rotation: a new version moves its row, a delete removes
    // the old one.
    alice.put("app/one", "k0", b"moved by a put").unwrap();
    want[1].2 = b"moved by a put".to_vec();
    alice.delete("app/one", "k1").unwrap();
    want.remove(2);
    let new_root = current_metadata_key(&store, &alice, &kek);
    assert_ne!(new_root, old_root, "the removal replaced the metadata key");
    assert!(
        store
            .get(Table::Index, &blind(&old_root, "app/one", "k0"))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get(Table::Index, &blind(&new_root, "app/one", "k0"))
            .unwrap()
            .is_some()
    );
    check_all(&alice, &want, "after writes between removal and rotation");
    check_all(
        &stale[0],
        &want,
        "a handle from before the removal, before the rotation",
    );
    fresh.refresh().unwrap();
    check_all(&fresh, &want, "the other handle, refreshed");

    alice.rotate_vault_key().unwrap();
    assert_eq!(alice.status().unwrap().older_metadata_keys, 0);
    check_all(&alice, &want, "after the rotation");
    let root = current_metadata_key(&store, &alice, &kek);
    assert_eq!(root, new_root, "the rotation kept the new key");
    let rows = store
        .scan(Table::Index, &ScanRange::all(), None, 1000)
        .unwrap()
        .rows;
    assert_eq!(rows.len(), want.len());
    for (ns, name, _) in &want {
        assert!(
            rows.iter().any(|r| r.key == blind(&root, ns, name)),
            "{ns}/{name} is not under the new metadata key"
        );
        assert!(
            !rows.iter().any(|r| r.key == blind(&old_root, ns, name)),
            "{ns}/{name} is still under the old metadata key"
        );
    }
    check_all(
        &stale[1],
        &want,
        "a handle from before the removal, after the rotation",
    );
    let again = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    check_all(&again, &want, "a fresh handle after the rotation");
    fresh.refresh().unwrap();
    check_all(&fresh, &want, "the other handle after the rotation");
}

/// The removal's new metadata key is wrapped under the new epoch only. Bob cannot forge
/// that row, but he can delete it and re-MAC the header under the key he kept: a reader
/// must not fall back to the older row and so bring his key back.
#[test]
fn a_removed_member_cannot_bring_back_the_replaced_metadata_key() {
    let kek = RawKek::generate().unwrap();
    let (alice, store, bob) = vault_with_bob_for(&kek);
    let vk1 = bobs_vault_key(&store, &alice, &bob, Epoch(1));
    let root = bobs_metadata_key(&*store, &alice, &vk1, 1);
    alice.remove_member(bob.identity.member_id()).unwrap();
    let current = alice.epoch().0;
    let mut header = store.get(Table::Meta, b"vault").unwrap().unwrap().value;
    let mac = hmac(
        &derived(&root, "strongroom/v1/config"),
        &[b"strongroom/v1/vault-header", &header[..34]],
    );
    header[34..].copy_from_slice(&mac);
    let mut b = Batch::new();
    b.delete(
        Table::Wraps,
        [&b"m"[..], &current.to_be_bytes()].concat(),
        Expect::Any,
    )
    .put(Table::Meta, b"vault".to_vec(), header, Expect::Any);
    store.commit(&b).unwrap();
    drop(alice);
    match Vault::open(Arc::clone(&store)).unwrap().unlock(&kek) {
        Err(VaultError::Inconsistent { detail, .. }) => {
            assert!(detail.contains("metadata key"), "{detail}");
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("the metadata key a removed member holds came back"),
    }
}
