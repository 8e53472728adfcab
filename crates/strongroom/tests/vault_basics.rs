//! The vault API end to end on the in-memory store.

use std::sync::Arc;

use strongroom::recovery::{PassphraseKeyholder, Profile, RawKek, RecoveryKey};
use strongroom::sharing::{FingerprintConfirmed, Identity, Pins, Role, SharingError};
use strongroom::store::{MemoryStore, Store};
use strongroom::{Action, CreateOptions, DoctorOptions, Level, Vault, VaultError};

fn new_vault() -> (Vault, Arc<dyn Store>, RawKek) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (vault, report) =
        Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    assert_eq!(report.vault_id, vault.id());
    assert!(!report.warnings.is_empty(), "a one-member vault warns");
    (vault, store, kek)
}

#[test]
fn put_get_list_delete_history() {
    let (vault, store, kek) = new_vault();
    let m1 = vault.put("core/app", "DB_PASSWORD", b"hunter2").unwrap();
    assert_eq!(m1.version, 1);
    let m2 = vault.put("core/app", "DB_PASSWORD", b"hunter3").unwrap();
    assert_eq!(m2.version, 2);
    assert_eq!(m2.record_id, m1.record_id);
    vault.put("core/app", "API_TOKEN", b"tok").unwrap();
    vault.put("plugins/x", "API_TOKEN", b"other").unwrap();

    let s = vault.get("core/app", "DB_PASSWORD").unwrap();
    assert_eq!(s.expose_secret(), b"hunter3");
    assert_eq!(s.meta().updated_by, vault.member_id());
    assert!(!format!("{s:?}").contains("hunter3"));
    assert_eq!(
        vault
            .get_version("core/app", "DB_PASSWORD", 1)
            .unwrap()
            .expose_secret(),
        b"hunter2"
    );

    let names: Vec<String> = vault
        .list("core/app")
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["API_TOKEN", "DB_PASSWORD"]);
    assert_eq!(vault.list("plugins/x").unwrap().len(), 1);
    assert!(vault.list("nothing/here").unwrap().is_empty());
    assert_eq!(vault.history("core/app", "DB_PASSWORD").unwrap().len(), 2);

    vault.delete("core/app", "DB_PASSWORD").unwrap();
    assert!(matches!(
        vault.get("core/app", "DB_PASSWORD"),
        Err(VaultError::NotFound { .. })
    ));
    assert!(matches!(
        vault.delete("core/app", "DB_PASSWORD"),
        Err(VaultError::NotFound { .. })
    ));

    // a second handle on the same store sees everything
    let again = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    assert_eq!(
        again.get("plugins/x", "API_TOKEN").unwrap().expose_secret(),
        b"other"
    );

    let audit = again.audit_list(0, 100).unwrap();
    let actions: Vec<Action> = audit.iter().map(|e| e.action).collect();
    assert_eq!(actions[0], Action::Create);
    assert!(
        actions.contains(&Action::Put)
            && actions.contains(&Action::Delete)
            && actions.contains(&Action::Unlock)
    );
    assert_eq!(again.audit_verify().unwrap().entries, audit.len() as u64);
}

#[test]
fn storage_never_sees_names_or_values() {
    let (vault, store, _) = new_vault();
    vault
        .put("core/billing", "STRIPE_SECRET_KEY", b"sk_live_abcdefghijkl")
        .unwrap();
    let snap = store.snapshot().unwrap();
    for table in strongroom::store::Table::ALL {
        let mut cursor = None;
        loop {
            let page = snap
                .scan(
                    table,
                    &strongroom::store::ScanRange::all(),
                    cursor.as_ref(),
                    1000,
                )
                .unwrap();
            for row in &page.rows {
                for hay in [&row.key, &row.value] {
                    for needle in [
                        &b"STRIPE_SECRET_KEY"[..],
                        b"sk_live_abcdefghijkl",
                        b"core/billing",
                    ] {
                        assert!(
                            !hay.windows(needle.len()).any(|w| w == needle),
                            "{table:?} leaks"
                        );
                    }
                }
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
    }
}

#[test]
fn validation() {
    let (vault, _, _) = new_vault();
    for bad in ["", "/x", "x/", "a//b", "a/../b", "white space", "ü"] {
        assert!(
            matches!(vault.put(bad, "n", b"v"), Err(VaultError::Invalid { .. })),
            "{bad:?}"
        );
    }
    assert!(vault.put("ok", "", b"v").is_err());
    assert!(vault.put("ok", "a\nb", b"v").is_err());
    vault.put("ok", "with space and ünïcode", b"v").unwrap();
}

#[test]
fn wrong_keyholder_fails_before_any_write_and_is_audited_later() {
    let (vault, store, kek) = new_vault();
    vault.put("a", "b", b"c").unwrap();
    let before = store.log_head(strongroom::store::Table::Audit).unwrap();
    let wrong = RawKek::generate().unwrap();
    let err = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&wrong)
        .unwrap_err();
    assert!(err.is_unlock_failure(), "{err}");
    assert!(err.to_string().contains("does not open"), "{err}");
    assert_eq!(
        store.log_head(strongroom::store::Table::Audit).unwrap(),
        before
    );
    // another vault's key: same error
    let (_, _, other_kek) = new_vault();
    assert!(
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&other_kek)
            .unwrap_err()
            .is_unlock_failure()
    );

    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    let failed = v
        .audit_list(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == Action::UnlockFailed)
        .count();
    assert_eq!(failed, 2);
    v.audit_verify().unwrap();
}

#[test]
fn rotation_rewraps_everything_and_retires_old_epochs() {
    let (vault, store, kek) = new_vault();
    for i in 0..250 {
        vault
            .put("ns", &format!("s{i}"), format!("v{i}").as_bytes())
            .unwrap();
    }
    let mut seen = Vec::new();
    let report = vault
        .rotate_vault_key_with(
            strongroom::RotateOptions::default().with_batch_size(64),
            &mut |p| {
                seen.push(p.done);
            },
        )
        .unwrap();
    assert_eq!(report.epoch, strongroom::Epoch(2));
    assert_eq!(report.processed, 250);
    assert_eq!(report.min_epoch, strongroom::Epoch(2));
    assert!(!seen.is_empty());
    assert!(
        vault
            .pending_rewrap(strongroom::Epoch(2))
            .unwrap()
            .is_empty()
    );
    for i in 0..250 {
        assert_eq!(
            vault.get("ns", &format!("s{i}")).unwrap().expose_str(),
            Some(format!("v{i}").as_str())
        );
    }
    // Old key material is shredded: no chain link, grant or metadata-key wrap of epoch 1
    // is left in the store.
    let wraps = store
        .scan(
            strongroom::store::Table::Wraps,
            &strongroom::store::ScanRange::all(),
            None,
            1000,
        )
        .unwrap();
    for row in &wraps.rows {
        let epoch = u32::from_be_bytes(row.key[1..5].try_into().unwrap());
        match row.key[0] {
            b'c' | b'm' | b'g' => assert!(epoch >= 2, "row {:?} of a retired epoch", row.key),
            _ => {}
        }
    }
    let v2 = Vault::open(store).unwrap().unlock(&kek).unwrap();
    assert_eq!(v2.epoch(), strongroom::Epoch(2));
    assert_eq!(v2.min_epoch(), strongroom::Epoch(2));
    assert_eq!(
        v2.get("ns", "s7").unwrap().meta().epoch,
        strongroom::Epoch(2)
    );
    let st = v2.status().unwrap();
    assert_eq!((st.secrets, st.versions, st.pending_rewrap), (250, 250, 0));
    let doc = v2
        .doctor(DoctorOptions::default().with_full(true).with_sample(0))
        .unwrap();
    assert!(
        doc.findings
            .iter()
            .any(|f| f.check == "decrypt" && f.level == Level::Ok),
        "{doc:?}"
    );
}

#[test]
fn keyholders_rotate_in_o1() {
    let (vault, store, old_kek) = new_vault();
    for i in 0..50 {
        vault.put("ns", &format!("s{i}"), b"x").unwrap();
    }
    let old_id = vault.keyholders().unwrap()[0].id;
    let new_kek = RawKek::generate().unwrap();
    vault.rotate_keyholder(&old_id, &new_kek).unwrap();
    assert_eq!(vault.keyholders().unwrap().len(), 1);
    assert!(
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&old_kek)
            .unwrap_err()
            .is_unlock_failure()
    );
    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&new_kek)
        .unwrap();
    for i in 0..50 {
        assert_eq!(v.get("ns", &format!("s{i}")).unwrap().expose_secret(), b"x");
    }
    // a recovery key and a passphrase
    let rk = RecoveryKey::generate().unwrap();
    v.add_keyholder(&rk).unwrap();
    let pass =
        PassphraseKeyholder::new(&"correct horse".to_owned().into(), Profile::Constrained).unwrap();
    v.add_keyholder(&pass).unwrap();
    assert_eq!(v.keyholders().unwrap().len(), 3);
    Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&rk)
        .unwrap();
    Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&pass)
        .unwrap();
    let ids: Vec<[u8; 8]> = v.keyholders().unwrap().iter().map(|k| k.id).collect();
    v.remove_keyholder(&ids[0]).unwrap();
    v.remove_keyholder(&ids[1]).unwrap();
    assert!(
        v.remove_keyholder(&ids[2]).is_err(),
        "the last keyholder stays"
    );
}

#[test]
fn sharing_and_removal_with_exposure() {
    let (alice_vault, store, alice_kek) = new_vault();
    alice_vault.put("team", "shared", b"s1").unwrap();
    alice_vault.put("team", "other", b"s2").unwrap();
    let bob_kek = RawKek::generate().unwrap();
    let bob = Identity::generate("bob").unwrap();
    alice_vault
        .add_member(
            bob.public(),
            Role::Member,
            bob.public()
                .confirm_fingerprint(&bob.public().fingerprint().digits())
                .unwrap(),
        )
        .unwrap();
    let bob_vault = Vault::join(&store, &bob, &[&bob_kek], Pins::default()).unwrap();
    assert_eq!(
        bob_vault.get("team", "shared").unwrap().expose_secret(),
        b"s1"
    );
    bob_vault.put("team", "from-bob", b"b").unwrap();
    alice_vault.refresh().unwrap();
    assert_eq!(
        alice_vault.get("team", "from-bob").unwrap().expose_secret(),
        b"b"
    );
    assert_eq!(alice_vault.members().len(), 2);

    let removal = alice_vault.remove_member(bob.member_id()).unwrap();
    assert_eq!(removal.new_epoch, strongroom::Epoch(2));
    let exposed = alice_vault.exposure(&removal).unwrap();
    let names: Vec<&str> = exposed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["from-bob", "other", "shared"]);
    // bob can no longer unlock; a stale bob handle cannot write
    assert!(
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock_with(
                &bob_kek,
                strongroom::UnlockOptions::default()
                    .with_member(Some(bob.member_id()))
                    .with_pins(Pins::default())
            )
            .is_err()
    );
    assert!(bob_vault.put("team", "late", b"x").is_err());
    // new writes use the new epoch; rotation retires the old one
    alice_vault.put("team", "after", b"a").unwrap();
    assert_eq!(
        alice_vault.get("team", "after").unwrap().meta().epoch,
        strongroom::Epoch(2)
    );
    // `shared` and `other` are under epoch 1; Bob's `from-bob` was sealed again under epoch
    // 2 when the removal re-attested it (still listed as exposed above: sealed in epoch 1).
    assert_eq!(alice_vault.status().unwrap().pending_rewrap, 2);
    alice_vault.rotate_vault_key().unwrap();
    let again = Vault::open(store)
        .unwrap()
        .unlock_with(
            &alice_kek,
            strongroom::UnlockOptions::default()
                .with_member(Some(alice_vault.member_id()))
                .with_pins(alice_vault.pins()),
        )
        .unwrap();
    assert_eq!(again.get("team", "shared").unwrap().expose_secret(), b"s1");
    let _ = FingerprintConfirmed::skip_verification_i_accept_the_risk;
}

/// `doctor --full` walks the record bodies and wrapped data keys side by side: a body whose
/// data key row was removed, and a data key left without its body, are both failures that
/// name the first such record version.
#[test]
fn full_doctor_finds_bodies_without_data_keys_and_back() {
    use strongroom::store::{Batch, Expect, ScanRange, Table};
    let (v, store, _kek) = new_vault();
    // Two versions each: the older ones in rows of their own; a head too large to be in
    // its index entry has a body row and its data key in the entry.
    for i in 0..30 {
        v.put("ns", &format!("s{i}"), b"value").unwrap();
        v.put("ns", &format!("s{i}"), b"second").unwrap();
    }
    v.put("ns", "large", &vec![7u8; 20_000]).unwrap();
    let full = DoctorOptions::default().with_full(true).with_sample(0);
    let pairs = |v: &Vault| {
        v.doctor(full)
            .unwrap()
            .findings
            .into_iter()
            .find(|f| f.check == "record-keys")
            .expect("a full doctor checks record keys")
    };
    let ok = pairs(&v);
    assert_eq!(ok.level, Level::Ok, "{ok:?}");
    assert!(ok.message.contains("all 31 record bodies"), "{ok:?}");
    // Not part of the sampled check.
    assert!(
        v.doctor(DoctorOptions::default())
            .unwrap()
            .findings
            .iter()
            .all(|f| f.check != "record-keys")
    );

    let deks = store
        .scan(Table::Deks, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    let bodies = store
        .scan(Table::Bodies, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    // Two older versions lose their data key, a third its body (not the large head's body
    // row, which has no data-key row of its own).
    let (d3, d7) = (deks[3].key.clone(), deks[7].key.clone());
    let body = bodies
        .iter()
        .map(|r| r.key.clone())
        .find(|k| *k != d3 && *k != d7 && deks.iter().any(|d| d.key == *k))
        .unwrap();
    let mut b = Batch::new();
    b.delete(Table::Deks, d3, Expect::Any);
    b.delete(Table::Deks, d7, Expect::Any);
    b.delete(Table::Bodies, body, Expect::Any);
    store.commit(&b).unwrap();
    let bad = pairs(&v);
    assert_eq!(bad.level, Level::Fail, "{bad:?}");
    assert!(
        bad.message
            .contains("2 record bodies have no wrapped data key"),
        "{bad:?}"
    );
    assert!(
        bad.message.contains("1 wrapped data keys have no body"),
        "{bad:?}"
    );
    assert!(bad.message.contains("version 1"), "{bad:?}");
}

/// The permission error says, in a typed field, which role was refused: a read-only member
/// cannot write, and a handle of a member removed since cannot either.
#[test]
fn writes_refused_by_role_name_the_role() {
    let (owner, store, _) = new_vault();
    let bob = Identity::generate("bob").unwrap();
    let kek = RawKek::generate().unwrap();
    let public = bob.public();
    let confirmed = public
        .confirm_fingerprint(&public.fingerprint().digits())
        .unwrap();
    owner.add_member(public, Role::ReadOnly, confirmed).unwrap();
    let reader = Vault::join(&store, &bob, &[&kek], Pins::default()).unwrap();
    owner.put("core/app", "TOKEN", b"t").unwrap();
    assert_eq!(
        reader.get("core/app", "TOKEN").unwrap().expose_secret(),
        b"t"
    );
    let e = reader.put("core/app", "TOKEN", b"mine").unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::PermissionDenied {
                role: Some(Role::ReadOnly)
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "permission denied: read-only members cannot write secrets"
    );
    assert!(!e.is_retryable());

    // Removed since: the handle still refuses by its role, and a refresh says why.
    owner.remove_member(bob.member_id()).unwrap();
    let e = reader.put("core/app", "TOKEN", b"mine").unwrap_err();
    assert!(matches!(e, VaultError::PermissionDenied { .. }), "{e:?}");
    let e = reader.refresh().unwrap_err();
    assert!(
        matches!(e, VaultError::Sharing(SharingError::NotAMember { .. })),
        "{e:?}"
    );
    assert_eq!(
        owner.get("core/app", "TOKEN").unwrap().expose_secret(),
        b"t"
    );
}

/// The epoch timestamp (the key-age policy's clock) is MACed: a modified or truncated row
/// is an error naming it, and a deleted one makes the age unknown, which `doctor` reports.
#[test]
fn a_tampered_epoch_timestamp_is_reported() {
    use strongroom::store::{Batch, Expect, Table};
    use strongroom::{Inconsistency, Level};

    let (vault, store, _) = new_vault();
    // After a rotation (at the first epoch the vault's creation time stands in).
    vault.rotate_vault_key().unwrap();
    assert!(vault.status().unwrap().key_age_days.is_some());
    let row = store.get(Table::Meta, b"epoch-started").unwrap().unwrap();
    let write = |value: Option<Vec<u8>>| {
        let mut b = Batch::new();
        match value {
            Some(v) => b.put(Table::Meta, b"epoch-started".to_vec(), v, Expect::Any),
            None => b.delete(Table::Meta, b"epoch-started".to_vec(), Expect::Any),
        };
        store.commit(&b).unwrap();
    };

    // An older start time, to hide that the key is past its rotation policy.
    let mut older = row.value.clone();
    older[4..12].copy_from_slice(&1_000_000_000u64.to_be_bytes());
    write(Some(older));
    let e = vault.status().unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Inconsistent {
                kind: Inconsistency::MacMismatch,
                ..
            }
        ),
        "{e}"
    );

    write(Some(row.value[..40].to_vec()));
    let e = vault.status().unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Inconsistent {
                kind: Inconsistency::Truncated,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("40 bytes"), "{e}");

    write(None);
    assert_eq!(vault.status().unwrap().key_age_days, None);
    let report = vault.doctor(DoctorOptions::default()).unwrap();
    assert!(
        report.findings.iter().any(|f| f.check == "rotation"
            && f.level == Level::Warn
            && f.message.contains("unknown")),
        "{report:?}"
    );

    write(Some(row.value));
    assert!(vault.status().unwrap().key_age_days.is_some());
}

/// A large namespace load (over 1,024 secrets) opens its secrets on every core: every secret comes back once,
/// in name order, with its own value (inline and stored bodies mixed), and a damaged row
/// anywhere, in any chunk, fails the whole load.
#[test]
fn a_large_load_opens_every_secret_and_fails_on_any_damaged_row() {
    use strongroom::store::{Batch, Expect, ScanRange, Table};
    let (vault, store, _) = new_vault();
    let value = |i: usize| -> Vec<u8> {
        // Every tenth value is too large to be inline in its index entry.
        let len = if i.is_multiple_of(10) { 20_000 } else { 40 };
        let mut v = format!("value {i} ").into_bytes();
        v.resize(len, b'.');
        v
    };
    let names: Vec<String> = (0..1500).map(|i| format!("s{i:04}")).collect();
    for (i, n) in names.iter().enumerate() {
        vault.put("bulk", n, &value(i)).unwrap();
    }
    let all = vault.load("bulk").unwrap();
    assert_eq!(all.len(), names.len());
    for (i, (s, n)) in all.iter().zip(&names).enumerate() {
        assert_eq!(&s.meta().name, n);
        assert_eq!(s.expose_secret(), &value(i)[..], "{n}");
    }
    let rows = store
        .scan(Table::Index, &ScanRange::all(), None, 10_000)
        .unwrap()
        .rows;
    assert_eq!(rows.len(), names.len());
    for at in [0, rows.len() / 2, rows.len() - 1] {
        let row = &rows[at];
        let mut damaged = row.value.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        let mut b = Batch::new();
        b.put(Table::Index, row.key.clone(), damaged, Expect::Any);
        store.commit(&b).unwrap();
        let err = vault.load("bulk").expect_err("a damaged row");
        assert!(
            matches!(
                err,
                VaultError::Record { .. } | VaultError::Inconsistent { .. }
            ),
            "row {at}: {err:?}"
        );
        let mut b = Batch::new();
        b.put(
            Table::Index,
            row.key.clone(),
            row.value.clone(),
            Expect::Any,
        );
        store.commit(&b).unwrap();
        assert_eq!(vault.load("bulk").unwrap().len(), names.len());
    }
}
