//! A restore racing a rotation or a long-lived writer, on SQLite and PostgreSQL.
//!
//! `replace_all` restarts every row version at 1 and may restore a membership log of the
//! same length as the one a handle read: without the store generation, a rotation that
//! started before the restore went on rewrapping the restored data keys under an epoch
//! the restored log does not have (every secret undecryptable), and a handle opened before
//! the restore went on writing into the restored content. Both now stop with
//! `StoreError::GenerationChanged` and write nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use strongroom::recovery::RawKek;
use strongroom::store::{Store, StoreError};
use strongroom::{
    CreateOptions, RestoreOptions, RotateOptions, Vault, VaultError, restore_snapshot,
};
use strongroom_postgres::test_server::TestServer;
use strongroom_sqlite::{SqliteOptions, SqliteStore};

const RECORDS: usize = 24;

fn sqlite(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.join("vault.db"), SqliteOptions::default()).unwrap())
}

fn postgres() -> Option<Arc<dyn Store>> {
    TestServer::shared().map(|s| Arc::new(s.fresh_store()) as Arc<dyn Store>)
}

fn is_generation_changed(e: &VaultError) -> bool {
    matches!(e, VaultError::Store(StoreError::GenerationChanged { .. }))
}

/// Every record decrypts through a fresh handle, nothing waits for a rewrap, no job is
/// left behind.
fn assert_intact(store: &Arc<dyn Store>, kek: &RawKek, extra: &str) {
    let vault = Vault::open(Arc::clone(store)).unwrap().unlock(kek).unwrap();
    for i in 0..RECORDS {
        let got = vault
            .get("app", &format!("k{i}"))
            .unwrap_or_else(|e| panic!("record k{i} after the restore: {e}"));
        assert_eq!(got.expose_secret(), format!("value-{i}").as_bytes());
    }
    assert!(
        matches!(vault.get("app", extra), Err(VaultError::NotFound { .. })),
        "a write of a pre-restore handle reached the restored vault"
    );
    assert_eq!(vault.pending_rewrap(vault.epoch()).unwrap(), []);
    assert_eq!(vault.interrupted_rotation().unwrap(), None);
    // The restored vault rotates normally.
    vault.rotate_vault_key().unwrap();
    assert_eq!(vault.get("app", "k0").unwrap().expose_secret(), b"value-0");
}

fn restore_during_rotation(store: &Arc<dyn Store>, dir: &Path) {
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(store), &kek, &CreateOptions::default()).unwrap();
    for i in 0..RECORDS {
        vault
            .put("app", &format!("k{i}"), format!("value-{i}").as_bytes())
            .unwrap();
    }
    let snap = dir.join("before-rotation.snap");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();

    // The restore runs in another thread while the rotation waits in its progress
    // callback after its first committed page.
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut signalled = false;
    let result = std::thread::scope(|scope| {
        let (snap, kek) = (&snap, &kek);
        let restorer = scope.spawn(move || {
            go_rx.recv().unwrap();
            restore_snapshot(store, snap, kek, &RestoreOptions::default()).unwrap();
            done_tx.send(()).unwrap();
        });
        let result =
            vault.rotate_vault_key_with(RotateOptions::default().with_batch_size(1), &mut |p| {
                if !signalled && p.done > 0 {
                    signalled = true;
                    go_tx.send(()).unwrap();
                    done_rx.recv().unwrap();
                }
            });
        drop(go_tx);
        let _ = restorer.join();
        result
    });
    assert!(signalled, "the rotation never reported progress");
    // First what matters: nothing the rotation did after the restore reached the data.
    assert_intact(store, &kek, "late");
    let err = result.expect_err("a rotation across a restore must stop");
    assert!(is_generation_changed(&err), "{err}");
    assert!(err.to_string().contains("reopen"), "{err}");

    // The pre-restore handle writes nothing more either.
    let err = vault.put("app", "late", b"x").unwrap_err();
    assert!(is_generation_changed(&err), "{err}");
    let fresh = Vault::open(Arc::clone(store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    assert!(matches!(
        fresh.get("app", "late"),
        Err(VaultError::NotFound { .. })
    ));
}

fn restore_under_long_lived_writer(store: &Arc<dyn Store>, dir: &Path) {
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(store), &kek, &CreateOptions::default()).unwrap();
    for i in 0..RECORDS {
        vault
            .put("app", &format!("k{i}"), format!("value-{i}").as_bytes())
            .unwrap();
    }
    let snap = dir.join("s.snap");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    // A server's handle, opened before the restore, keeps running.
    let server = Vault::open(Arc::clone(store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    server
        .put("app", "k0", b"changed before the restore")
        .unwrap();
    restore_snapshot(store, &snap, &kek, &RestoreOptions::default()).unwrap();
    // Its audit cursor, membership position and row versions all look valid again after
    // the restore (same log length, versions restarted): only the generation differs.
    for attempt in [
        server.put("app", "k1", b"stale overwrite"),
        server.put("app", "new-after-restore", b"stale insert"),
    ] {
        let err = attempt.unwrap_err();
        assert!(is_generation_changed(&err), "{err}");
    }
    assert!(is_generation_changed(
        &server.delete("app", "k2").unwrap_err()
    ));
    assert!(is_generation_changed(&server.refresh().unwrap_err()));
    assert_intact(store, &kek, "new-after-restore");
}

#[test]
fn sqlite_restore_during_rotation() {
    let dir = tempfile::tempdir().unwrap();
    restore_during_rotation(&sqlite(dir.path()), dir.path());
}

#[test]
fn sqlite_restore_under_long_lived_writer() {
    let dir = tempfile::tempdir().unwrap();
    restore_under_long_lived_writer(&sqlite(dir.path()), dir.path());
}

#[test]
fn memory_restore_during_rotation() {
    let dir = tempfile::tempdir().unwrap();
    restore_during_rotation(
        &(Arc::new(strongroom::store::MemoryStore::new()) as Arc<dyn Store>),
        dir.path(),
    );
}

#[test]
fn postgres_restore_during_rotation() {
    let Some(store) = postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    restore_during_rotation(&store, dir.path());
}

#[test]
fn postgres_restore_under_long_lived_writer() {
    let Some(store) = postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    restore_under_long_lived_writer(&store, dir.path());
}
