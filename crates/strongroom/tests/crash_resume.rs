//! A rotation interrupted after its last batch and resumed after the vault moved to a newer
//! epoch (a member removal in between) rewraps everything to that epoch before retiring
//! the older ones.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Epoch, RotateOptions, Vault};

const SECRETS: usize = 40;

/// A vault with a second member, and a rotation stopped (as by `kill -9`) right after it
/// committed its last batch.
fn interrupted_after_last_batch() -> (Vault, Arc<dyn Store>, Identity) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    for i in 0..SECRETS {
        vault
            .put("ns", &format!("s{i}"), format!("v{i}").as_bytes())
            .unwrap();
    }
    let bob = Identity::generate("bob").unwrap();
    let confirmed = bob
        .public()
        .confirm_fingerprint(&bob.public().fingerprint().digits())
        .unwrap();
    vault
        .add_member(bob.public(), Role::Member, confirmed)
        .unwrap();
    Vault::join(
        &store,
        &bob,
        &[&RawKek::generate().unwrap()],
        Pins::default(),
    )
    .unwrap();
    vault.refresh().unwrap();
    let stopped = catch_unwind(AssertUnwindSafe(|| {
        vault.rotate_vault_key_with(RotateOptions::default().with_batch_size(8), &mut |p| {
            // Unwinding out of the callback stops the rotation where a kill would.
            assert!(p.done < SECRETS as u64, "stop after the last batch");
        })
    }));
    assert!(stopped.is_err());
    assert_eq!(vault.interrupted_rotation().unwrap(), Some(Epoch(2)));
    (vault, store, bob)
}

fn check_all(vault: &Vault) {
    for i in 0..SECRETS {
        let s = vault
            .get("ns", &format!("s{i}"))
            .unwrap_or_else(|e| panic!("s{i}: {e}"));
        assert_eq!(s.expose_secret(), format!("v{i}").as_bytes());
        assert_eq!(s.meta().epoch, vault.epoch());
    }
}

#[test]
fn resumed_after_a_member_removal_rewraps_to_the_newer_epoch() {
    let (vault, _store, bob) = interrupted_after_last_batch();
    // The removal starts epoch 3 while every record is under epoch 2.
    vault.remove_member(bob.member_id()).unwrap();
    assert_eq!(vault.epoch(), Epoch(3));
    let report = vault.rotate_vault_key().unwrap();
    assert!(report.resumed);
    assert_eq!(report.epoch, Epoch(3));
    assert!(vault.pending_rewrap(Epoch(3)).unwrap().is_empty());
    check_all(&vault);
}

#[test]
fn resumed_without_change_finishes() {
    let (vault, _store, _) = interrupted_after_last_batch();
    let report = vault.rotate_vault_key().unwrap();
    assert!(report.resumed);
    assert_eq!(report.epoch, Epoch(2));
    assert_eq!(vault.min_epoch(), Epoch(2));
    check_all(&vault);
}
