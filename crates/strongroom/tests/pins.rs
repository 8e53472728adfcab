//! Pins by default: a vault unlocked through a pin store refuses a storage rolled back to
//! a copy from before a member removal (which an unpinned unlock accepts), another vault
//! served in its place, and damaged pin files, with errors that say what happened.

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{MemoryStore, Row, ScanRange, Store, Table, TableRow, scan_all};
use strongroom::{
    CreateOptions, FilePinStore, MemoryPinStore, PinStatus, PinStore, Vault, VaultError,
};

/// A copy of every row of `store` (what a storage keeps to roll the vault back later).
fn copy_rows(store: &dyn Store) -> Vec<TableRow> {
    Table::ALL
        .iter()
        .flat_map(|&t| {
            scan_all(store, t, &ScanRange::all())
                .unwrap()
                .into_iter()
                .map(move |r| {
                    (
                        t,
                        Row {
                            key: r.key,
                            value: r.value,
                            version: 0,
                        },
                    )
                })
        })
        .collect()
}

fn add_bob(vault: &Vault, store: &Arc<dyn Store>) -> Identity {
    let bob = Identity::generate("bob").unwrap();
    let p = bob.public();
    vault
        .add_member(
            p,
            Role::Member,
            p.confirm_fingerprint(&p.fingerprint().digits()).unwrap(),
        )
        .unwrap();
    Vault::join(
        store,
        &bob,
        &[&RawKek::generate().unwrap()],
        Pins::default(),
    )
    .unwrap();
    bob
}

/// The attack of SECURITY.md's "pins are the caller's job": the storage keeps a copy of
/// the vault from before a member removal and serves it again later. Without pins the
/// vault opens on the old membership (new secrets would be sealed under an epoch the
/// removed member holds); with a pin store, unlocking refuses it as a rollback.
#[test]
fn a_storage_rolled_back_past_a_removal_is_refused_by_a_pinned_unlock() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let pins: Arc<dyn PinStore> = Arc::new(MemoryPinStore::new());
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    let vault = vault.pin_to(Arc::clone(&pins)).unwrap();
    let bob = add_bob(&vault, &store);
    let before_removal = copy_rows(&*store);
    vault.remove_member(bob.member_id()).unwrap();

    // The storage rolls everything back.
    let rolled_back: Arc<dyn Store> = Arc::new(MemoryStore::new());
    rolled_back
        .replace_all(&mut before_removal.into_iter().map(Ok))
        .unwrap();

    // Unpinned: accepted, and bob is a member again.
    let unpinned = Vault::open(Arc::clone(&rolled_back))
        .unwrap()
        .unlock_with(
            &kek,
            strongroom::UnlockOptions::default()
                .with_member(Some(vault.member_id()))
                .with_pins(Pins::default()),
        )
        .unwrap();
    assert_eq!(unpinned.members().len(), 2, "the rollback brought bob back");

    // Pinned: refused, with an error that names the rollback.
    let me = Some(vault.member_id());
    let err = Vault::open(rolled_back)
        .unwrap()
        .unlock_pinned_as(&kek, me, Arc::clone(&pins))
        .unwrap_err();
    assert!(err.to_string().contains("rolled"), "{err}");

    // The real store still unlocks, verified against the pins.
    let again = Vault::open(store)
        .unwrap()
        .unlock_pinned_as(&kek, me, pins)
        .unwrap();
    assert_eq!(again.pin_status(), Some(PinStatus::Verified));
    assert_eq!(again.members().len(), 1);
}

/// First use pins the vault and says so; later unlocks verify; a handle saves the pins
/// after membership changes it commits and after those it sees on refresh.
#[test]
fn pins_follow_membership_changes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    let pins = Arc::new(MemoryPinStore::new());
    let a = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock_pinned(&kek, pins.clone())
        .unwrap();
    assert_eq!(a.pin_status(), Some(PinStatus::FirstUse));
    let id = a.id();
    let seq = |p: &MemoryPinStore| p.load(id).unwrap().unwrap().high_water().unwrap().seq;
    // Genesis (0) and the signed-writes policy (1).
    assert_eq!(seq(&pins), 1);
    add_bob(&a, &store);
    assert_eq!(seq(&pins), 2, "saved after the commit");

    // Another handle (another process) rotates; a refresh of `a` moves its pins on.
    let me = Some(a.member_id());
    let other_pins = Arc::new(MemoryPinStore::new());
    let b = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock_pinned_as(&kek, me, other_pins)
        .unwrap();
    b.rotate_vault_key().unwrap();
    a.refresh().unwrap();
    assert!(seq(&pins) > 2, "refresh saves the pins it verified");
    let c = Vault::open(store)
        .unwrap()
        .unlock_pinned_as(&kek, me, pins)
        .unwrap();
    assert_eq!(c.pin_status(), Some(PinStatus::Verified));
    // A handle keeps one pin store.
    assert!(c.pin_to(Arc::new(MemoryPinStore::new())).is_err());
}

/// The file store: one 0600 file per vault in a 0700 directory it creates, read back by
/// a new process; a damaged file or one holding another vault's pins is an error naming
/// the file and what to do, never silently replaced.
#[cfg(unix)]
#[test]
fn file_pin_store_is_private_durable_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pins_dir = dir.path().join("state").join("pins");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    let files = FilePinStore::new(&pins_dir).unwrap();
    let vault = vault.pin_to(Arc::new(files.clone())).unwrap();
    let path = files.path_of(vault.id());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pins_dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(&pins_dir).unwrap().count(), 1);

    // A new process reads them back.
    let reopened = FilePinStore::new(&pins_dir).unwrap();
    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock_pinned(&kek, Arc::new(reopened.clone()))
        .unwrap();
    assert_eq!(v.pin_status(), Some(PinStatus::Verified));

    // Damaged.
    std::fs::write(&path, b"not pins").unwrap();
    let err = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock_pinned(&kek, Arc::new(reopened.clone()))
        .unwrap_err();
    assert!(matches!(err, VaultError::PinStore { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("corrupt"),
        "{msg}"
    );

    // Another vault's pins under this vault's name.
    let other: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (ov, _) = Vault::create(other, &kek, &CreateOptions::default()).unwrap();
    std::fs::write(&path, ov.pins().encode()).unwrap();
    let err = Vault::open(store)
        .unwrap()
        .unlock_pinned(&kek, Arc::new(reopened))
        .unwrap_err();
    assert!(err.to_string().contains("another vault"), "{err}");
}
