//! Rotation job rows: a planted (unauthenticated) job is discarded instead of resumed, and
//! a re-encryption asked for while a rewrap job is pending finishes that job first and then
//! really re-encrypts.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::store::{Batch, Expect, MemoryStore, ReadView, ScanRange, Store, Table};
use strongroom::{CreateOptions, Epoch, RotateOptions, Vault};

fn vault(n: usize) -> (Vault, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, _) = Vault::create(
        Arc::clone(&store),
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    for i in 0..n {
        v.put("ns", &format!("k{i}"), format!("v{i}").as_bytes())
            .unwrap();
    }
    (v, store)
}

fn bodies(store: &dyn Store) -> Vec<Vec<u8>> {
    store
        .scan(Table::Bodies, &ScanRange::all(), None, 10_000)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.value)
        .collect()
}

#[test]
fn a_planted_job_row_is_discarded_not_resumed() {
    let (v, store) = vault(10);
    // The storage plants a job "toward" the current epoch: resuming it would report a
    // rotation that never made a new key.
    let mut forged = vec![1u8, 1];
    forged.extend_from_slice(&1u32.to_be_bytes());
    forged.extend_from_slice(&[0; 16]);
    forged.extend_from_slice(&0u32.to_be_bytes());
    forged.extend_from_slice(&[0; 32]);
    let mut b = Batch::new();
    b.put(Table::Jobs, b"rotation".to_vec(), forged, Expect::Any);
    store.commit(&b).unwrap();
    assert!(
        v.interrupted_rotation().is_err(),
        "an unauthenticated job is reported as such"
    );
    let r = v.rotate_vault_key().unwrap();
    assert!(!r.resumed);
    assert_eq!(r.epoch, Epoch(2), "a real new epoch");
    assert_eq!(v.interrupted_rotation().unwrap(), None);
}

#[test]
fn reencrypt_after_an_interrupted_rewrap_really_reencrypts() {
    let (v, store) = vault(50);
    // Interrupt a rewrap after its first committed page.
    let interrupted = catch_unwind(AssertUnwindSafe(|| {
        v.rotate_vault_key_with(RotateOptions::default().with_batch_size(10), &mut |p| {
            assert!(p.done < 10, "stop");
        })
    }));
    assert!(interrupted.is_err());
    assert_eq!(v.interrupted_rotation().unwrap(), Some(Epoch(2)));
    let before = bodies(&*store);
    let r = v
        .reencrypt_all(RotateOptions::default(), &mut |_| {})
        .unwrap();
    assert_eq!(
        r.epoch,
        Epoch(3),
        "the pending rewrap finished (epoch 2), then a re-encryption ran (epoch 3)"
    );
    let after = bodies(&*store);
    assert_eq!(before.len(), after.len());
    assert!(
        before.iter().zip(&after).all(|(a, b)| a != b),
        "every body was re-encrypted"
    );
    for i in 0..50 {
        assert_eq!(
            v.get("ns", &format!("k{i}")).unwrap().expose_str(),
            Some(format!("v{i}").as_str())
        );
    }
    assert!(store.get(Table::Jobs, b"rotation").unwrap().is_none());
}

/// A member removal that commits while a rotation runs starts a newer epoch; the rotation
/// must end on it. Before, the rotation's target was fixed at its start: it rewrapped
/// everything to the epoch before the removal (one the removed member holds), retired the
/// older ones and reported success.
#[test]
fn a_rotation_racing_a_member_removal_ends_on_the_newest_epoch() {
    use strongroom::sharing::{Identity, Pins, Role};
    for remove_at in [1u64, 40] {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let kek = RawKek::generate().unwrap();
        let (v, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
        for i in 0..50 {
            v.put("ns", &format!("k{i}"), format!("v{i}").as_bytes())
                .unwrap();
        }
        let bob = Identity::generate("bob").unwrap();
        let p = bob.public();
        v.add_member(
            p,
            Role::Member,
            p.confirm_fingerprint(&p.fingerprint().digits()).unwrap(),
        )
        .unwrap();
        Vault::join(
            &store,
            &bob,
            &[&RawKek::generate().unwrap()],
            Pins::default(),
        )
        .unwrap();
        // Another handle (another process of the owner) removes bob while the rotation runs.
        let other = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock_with(
                &kek,
                strongroom::UnlockOptions::default()
                    .with_member(Some(v.member_id()))
                    .with_pins(Pins::default()),
            )
            .unwrap();
        let mut removed = false;
        let report = v
            .rotate_vault_key_with(RotateOptions::default().with_batch_size(10), &mut |p| {
                if !removed && p.done >= remove_at {
                    removed = true;
                    other.remove_member(bob.member_id()).unwrap();
                }
            })
            .unwrap();
        assert!(removed);
        let newest = v.epoch();
        assert_eq!(newest, Epoch(3), "rotation made 2, the removal 3");
        assert_eq!(
            report.epoch, newest,
            "the rotation ended on the newest epoch"
        );
        assert_eq!(v.min_epoch(), newest, "everything older is retired");
        assert!(v.pending_rewrap(newest).unwrap().is_empty());
        for i in 0..50 {
            let s = v.get("ns", &format!("k{i}")).unwrap();
            assert_eq!(s.meta().epoch, newest, "k{i}");
        }
        assert_eq!(v.interrupted_rotation().unwrap(), None);
    }
}

/// One bad data-key row (planted by a former member with storage access, or damaged)
/// aborted every rotation for ever. Now the rotation sets it aside and finishes the rest;
/// `pending_rewrap`, `status` and `doctor` report it, and `purge_quarantined` deletes it:
/// an older version's row, and a head (in an index entry) whose data key does not open.
#[test]
fn a_bad_data_key_row_is_quarantined_instead_of_blocking_every_rotation() {
    use strongroom::{Action, DoctorOptions, Level, VaultError};
    let (v, store) = vault(30);
    // A second version of each: version 1 in rows of its own, version 2 in the entry.
    for i in 0..30 {
        v.put("ns", &format!("k{i}"), format!("second-{i}").as_bytes())
            .unwrap();
    }
    let deks = store
        .scan(Table::Deks, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    let index = store
        .scan(Table::Index, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    // An older version's wrap whose tag was changed (it parses, it does not open), a row
    // that is not a wrapped data key at all, and a head whose wrapped data key (bytes
    // 42..164 of its entry) was changed the same way.
    let bad = &deks[5];
    let mut flipped = bad.value.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let garbage_key = [vec![0xee; 16], 1u64.to_be_bytes().to_vec()].concat();
    // Of another secret than `bad` (the same secret is the next test's case).
    let bad_head = index
        .iter()
        .skip(9)
        .find(|r| r.value[1..17] != bad.key[..16])
        .unwrap();
    let mut head = bad_head.value.clone();
    head[163] ^= 1;
    let mut b = Batch::new();
    b.put(Table::Deks, bad.key.clone(), flipped, Expect::Any)
        .put(
            Table::Deks,
            garbage_key.clone(),
            b"not a wrapped key".to_vec(),
            Expect::Any,
        )
        .put(Table::Index, bad_head.key.clone(), head, Expect::Any);
    store.commit(&b).unwrap();
    let old_broken = (0..30)
        .map(|i| format!("k{i}"))
        .find(|n| v.get_version("ns", n, 1).is_err())
        .expect("the planted row breaks one older version");
    let head_broken = (0..30)
        .map(|i| format!("k{i}"))
        .find(|n| v.get("ns", n).is_err())
        .expect("the planted head breaks one secret");

    let report = v.rotate_vault_key().unwrap();
    assert_eq!(report.epoch, Epoch(2));
    assert_eq!(report.quarantined, 3);
    assert_eq!(v.min_epoch(), Epoch(2));
    for i in 0..30 {
        let n = format!("k{i}");
        if n != head_broken {
            assert_eq!(v.get("ns", &n).unwrap().meta().epoch, Epoch(2), "{n}");
        }
    }
    let pending = v.pending_rewrap(Epoch(2)).unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.iter().all(|p| p.quarantined));
    let q = v.quarantined().unwrap();
    assert_eq!(q.len(), 3);
    assert!(
        q.iter().any(|q| q.reason.contains("does not decrypt")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|q| q.reason.contains("does not parse")),
        "{q:?}"
    );
    assert_eq!(v.status().unwrap().quarantined, 3);
    let doctor = v.doctor(DoctorOptions::default()).unwrap();
    assert!(
        doctor
            .findings
            .iter()
            .any(|f| f.check == "quarantine" && f.level == Level::Fail),
        "{doctor:?}"
    );
    // Later rotations are not blocked either.
    assert_eq!(v.rotate_vault_key().unwrap().epoch, Epoch(3));

    let purged = v.purge_quarantined().unwrap();
    assert_eq!((purged.purged.len(), purged.kept), (3, 0));
    assert_eq!(purged.heads_moved.len(), 1, "the broken head was replaced");
    assert_eq!(v.status().unwrap().quarantined, 0);
    assert!(v.pending_rewrap(v.epoch()).unwrap().is_empty());
    assert!(
        v.doctor(DoctorOptions::default())
            .unwrap()
            .findings
            .iter()
            .all(|f| f.check != "quarantine")
    );
    // The secret whose head was broken shows its newest remaining version again.
    let i: usize = head_broken[1..].parse().unwrap();
    let back = v.get("ns", &head_broken).unwrap();
    assert_eq!(back.expose_secret(), format!("v{i}").as_bytes());
    assert_eq!(back.meta().version, 1);
    // The broken older version is gone; the history skips it.
    assert!(matches!(
        v.get_version("ns", &old_broken, 1),
        Err(VaultError::NotFound { .. })
    ));
    assert_eq!(v.history("ns", &old_broken).unwrap().len(), 1);
    assert_eq!(v.list("ns").unwrap().len(), 30);
    assert!(store.get(Table::Deks, &garbage_key).unwrap().is_none());
    v.audit_verify().unwrap();
    let last = v.audit_list(0, 10_000).unwrap().pop().unwrap();
    assert_eq!(last.action, Action::Purge);
    // Nothing left to purge.
    assert_eq!(
        v.purge_quarantined().unwrap(),
        strongroom::PurgeReport::default()
    );
}

/// A head purged together with the version below it (both quarantined): the next older
/// version that stays becomes the head. The purge used to stage two deletions of that
/// version's row and conflict on every attempt.
#[test]
fn a_head_purged_with_the_version_below_it_falls_back_to_the_next_one() {
    let (v, store) = vault(1);
    v.put("ns", "k0", b"second").unwrap();
    v.put("ns", "k0", b"third").unwrap();
    // Version 2's row and the head (version 3) no longer open.
    let deks = store
        .scan(Table::Deks, &ScanRange::all(), None, 10)
        .unwrap()
        .rows;
    let v2 = deks
        .iter()
        .find(|r| r.key[16..] == 2u64.to_be_bytes())
        .unwrap();
    let mut flipped = v2.value.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let head = store
        .scan(Table::Index, &ScanRange::all(), None, 10)
        .unwrap()
        .rows
        .remove(0);
    let mut entry = head.value.clone();
    entry[163] ^= 1;
    let mut b = Batch::new();
    b.put(Table::Deks, v2.key.clone(), flipped, Expect::Any)
        .put(Table::Index, head.key.clone(), entry, Expect::Any);
    store.commit(&b).unwrap();
    assert_eq!(v.rotate_vault_key().unwrap().quarantined, 2);
    let purged = v.purge_quarantined().unwrap();
    assert_eq!((purged.purged.len(), purged.heads_moved.len()), (2, 1));
    let back = v.get("ns", "k0").unwrap();
    assert_eq!((back.meta().version, back.expose_secret()), (1, &b"v0"[..]));
    assert_eq!(v.history("ns", "k0").unwrap().len(), 1);
    assert_eq!(v.status().unwrap().quarantined, 0);
}
