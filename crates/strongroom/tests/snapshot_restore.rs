//! Snapshot, verify and restore: round trips, refusal of corrupt and foreign snapshots, and
//! a live vault left untouched when a restore is refused.

use std::path::Path;
use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::store::{Store, Table};
use strongroom::{
    CreateOptions, RestoreOptions, SnapshotFile, SnapshotProblem, UnlockOptions, Vault, VaultError,
    restore_snapshot, verify_snapshot,
};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

fn sqlite(dir: &Path, name: &str) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.join(name), SqliteOptions::default()).unwrap())
}

fn vault_with(store: &Arc<dyn Store>, n: usize) -> (Vault, RawKek) {
    let kek = RawKek::generate().unwrap();
    let (v, _) = Vault::create(Arc::clone(store), &kek, &CreateOptions::default()).unwrap();
    for i in 0..n {
        v.put("app", &format!("k{i}"), format!("value-{i}").as_bytes())
            .unwrap();
    }
    (v, kek)
}

#[test]
fn snapshot_verify_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 40);
    vault.put("app", "k0", b"second version").unwrap();
    let snap = dir.path().join("snap.bin");
    let mut calls = 0;
    let info = vault.snapshot_to(&snap, &mut |_| calls += 1).unwrap();
    assert!(calls > 0);
    assert_eq!(info.vault_id, vault.id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&snap).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let ver = verify_snapshot(&snap, &kek, &UnlockOptions::default()).unwrap();
    assert_eq!((ver.secrets, ver.versions), (40, 41));
    assert_eq!(ver.info.sha256, info.sha256);

    // Changes after the snapshot are undone by the restore.
    vault.put("app", "k1", b"changed later").unwrap();
    vault.delete("app", "k2").unwrap();
    vault.put("app", "new", b"x").unwrap();
    let report = restore_snapshot(&store, &snap, &kek, &RestoreOptions::default()).unwrap();
    let restored = report.vault;
    assert_eq!(
        restored.get("app", "k1").unwrap().expose_secret(),
        b"value-1"
    );
    assert_eq!(
        restored.get("app", "k2").unwrap().expose_secret(),
        b"value-2"
    );
    assert_eq!(
        restored.get("app", "k0").unwrap().expose_secret(),
        b"second version"
    );
    assert!(matches!(
        restored.get("app", "new"),
        Err(VaultError::NotFound { .. })
    ));
    restored.audit_verify().unwrap();
    let entries = restored.audit_list(0, 10_000).unwrap();
    let actions: Vec<strongroom::Action> = entries.iter().rev().take(2).map(|e| e.action).collect();
    assert_eq!(
        actions,
        [strongroom::Action::Unlock, strongroom::Action::Restore],
        "the restore is recorded with the restored state"
    );

    // Into an empty store (a new machine).
    let fresh = sqlite(dir.path(), "fresh.db");
    let r = restore_snapshot(&fresh, &snap, &kek, &RestoreOptions::default()).unwrap();
    assert_eq!(r.vault.list("app").unwrap().len(), 40);
}

#[test]
fn corrupt_snapshots_are_refused_and_the_live_vault_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 5);
    let snap = dir.path().join("s.bin");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    vault.put("app", "after", b"kept").unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    let live_rows = |s: &Arc<dyn Store>| {
        s.scan(
            Table::Bodies,
            &strongroom::store::ScanRange::all(),
            None,
            1000,
        )
        .unwrap()
        .rows
        .len()
    };
    let before = live_rows(&store);

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("no hash", bytes[..bytes.len() - 32].to_vec()),
        ("extended", [bytes.clone(), vec![0]].concat()),
        ("empty", Vec::new()),
        (
            "not a snapshot",
            b"hello world, not a snapshot at all".to_vec(),
        ),
    ];
    for pos in [
        0,
        19,
        25,
        60,
        bytes.len() / 2,
        bytes.len() - 40,
        bytes.len() - 1,
    ] {
        let mut b = bytes.clone();
        b[pos] ^= 0x40;
        cases.push(("bit flip", b));
    }
    for (what, b) in cases {
        let p = dir.path().join("bad.bin");
        std::fs::write(&p, &b).unwrap();
        let e = verify_snapshot(&p, &kek, &UnlockOptions::default()).unwrap_err();
        assert!(matches!(e, VaultError::Snapshot { .. }), "{what}: {e}");
        let e = restore_snapshot(&store, &p, &kek, &RestoreOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("live vault was not touched"),
            "{what}: {e}"
        );
        assert_eq!(live_rows(&store), before, "{what}");
    }
    // A wrong keyholder cannot restore either.
    let e = restore_snapshot(
        &store,
        &snap,
        &RawKek::generate().unwrap(),
        &RestoreOptions::default(),
    )
    .unwrap_err();
    assert!(e.is_unlock_failure(), "{e}");
    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    assert_eq!(v.get("app", "after").unwrap().expose_secret(), b"kept");
}

#[test]
fn a_snapshot_of_another_vault_is_refused_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let live = sqlite(dir.path(), "live.db");
    let (_v, live_kek) = vault_with(&live, 3);
    let other = sqlite(dir.path(), "other.db");
    let (ov, okek) = vault_with(&other, 2);
    let snap = dir.path().join("other.bin");
    ov.snapshot_to(&snap, &mut |_| {}).unwrap();
    let e = restore_snapshot(&live, &snap, &okek, &RestoreOptions::default()).unwrap_err();
    assert!(e.to_string().contains("another vault"), "{e}");
    Vault::open(Arc::clone(&live))
        .unwrap()
        .unlock(&live_kek)
        .unwrap();
    let r = restore_snapshot(
        &live,
        &snap,
        &okek,
        &RestoreOptions::default().with_allow_other_vault(true),
    )
    .unwrap();
    assert_eq!(r.vault.id(), ov.id());
}

#[test]
fn snapshot_while_writers_run_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 20);
    let snap = dir.path().join("busy.bin");
    std::thread::scope(|s| {
        let v = vault.clone();
        let writer = s.spawn(move || {
            for i in 0..200 {
                v.put("busy", &format!("w{}", i % 17), format!("{i}").as_bytes())
                    .unwrap();
            }
        });
        vault.snapshot_to(&snap, &mut |_| {}).unwrap();
        writer.join().unwrap();
    });
    verify_snapshot(&snap, &kek, &UnlockOptions::default()).unwrap();
}

fn add_someone(v: &Vault, name: &str) -> strongroom::sharing::Identity {
    let id = strongroom::sharing::Identity::generate(name).unwrap();
    let ok = id
        .public()
        .confirm_fingerprint(&id.public().fingerprint().to_string())
        .unwrap();
    v.add_member(id.public(), strongroom::sharing::Role::Member, ok)
        .unwrap();
    id
}

#[test]
fn membership_rollback_needs_consent_and_forks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 3);
    let mallory = add_someone(&vault, "mallory");
    let before_removal = dir.path().join("before.bin");
    vault.snapshot_to(&before_removal, &mut |_| {}).unwrap();
    vault.remove_member(mallory.member_id()).unwrap();
    let pins = vault.pins();
    let with_pins = RestoreOptions::default().with_unlock(
        UnlockOptions::default()
            .with_member(None)
            .with_pins(pins.clone()),
    );

    // Verification reports the rollback; a restore refuses it without consent.
    let ver = verify_snapshot(&before_removal, &kek, &with_pins.unlock).unwrap();
    assert!(ver.membership_rollback);
    let e = restore_snapshot(&store, &before_removal, &kek, &with_pins).unwrap_err();
    assert!(
        e.to_string()
            .contains("removed member would be a member again"),
        "{e}"
    );
    let live = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    assert!(
        live.members().iter().all(|m| m.name != "mallory"),
        "live vault untouched"
    );

    // With consent it is restored (and mallory is back, as the caller was warned).
    let consent = with_pins.clone().with_allow_membership_rollback(true);
    let r = restore_snapshot(&store, &before_removal, &kek, &consent).unwrap();
    assert!(r.verification.membership_rollback);
    assert!(r.vault.members().iter().any(|m| m.name == "mallory"));

    // A history that forks from the pinned one is refused even with consent: take the
    // restored state, change membership differently, and present it to a client pinned
    // on the other branch.
    r.vault.remove_member(mallory.member_id()).unwrap();
    let other_branch = {
        let fork_store = sqlite(dir.path(), "fork.db");
        let fr = restore_snapshot(
            &fork_store,
            &before_removal,
            &kek,
            &RestoreOptions::default(),
        )
        .unwrap();
        // As many entries as the main branch has since (the removal and the record of
        // its re-attestation): the fork differs at the pinned position.
        add_someone(&fr.vault, "eve");
        add_someone(&fr.vault, "frank");
        let p = dir.path().join("fork.bin");
        fr.vault.snapshot_to(&p, &mut |_| {}).unwrap();
        p
    };
    let pinned_on_main = RestoreOptions::default()
        .with_unlock(
            UnlockOptions::default()
                .with_member(None)
                .with_pins(r.vault.pins()),
        )
        .with_allow_membership_rollback(true);
    let e = restore_snapshot(&store, &other_branch, &kek, &pinned_on_main).unwrap_err();
    assert!(e.to_string().contains("forks"), "{e}");
}

/// A snapshot never replaces an existing file (an older snapshot, or anything else), and a
/// refused snapshot leaves no temporary file behind.
#[test]
fn snapshot_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 3);
    let snap = dir.path().join("snap.bin");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    let first = std::fs::read(&snap).unwrap();
    vault.put("app", "k0", b"changed").unwrap();
    let err = vault.snapshot_to(&snap, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        first,
        "the old snapshot is intact"
    );
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, b"not a snapshot").unwrap();
    assert!(vault.snapshot_to(&other, &mut |_| {}).is_err());
    assert_eq!(std::fs::read(&other).unwrap(), b"not a snapshot");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".tmp") && !n.starts_with('.')),
        "{names:?}"
    );
    verify_snapshot(&snap, &kek, &UnlockOptions::default()).unwrap();
}

/// A snapshot re-hashed after an edit, so only the edited field is wrong.
fn rehash(mut bytes: Vec<u8>) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let n = bytes.len() - 32;
    let digest = Sha256::digest(&bytes[..n]);
    bytes[n..].copy_from_slice(&digest);
    bytes
}

/// The header's store-schema field is checked: a snapshot from a newer schema (or a zero
/// one) is refused with what to do, even when its integrity hash matches.
#[test]
fn a_snapshot_of_an_unknown_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 2);
    let snap = dir.path().join("s.bin");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    // magic 19, version 1, vault id 16, created at 8, then the schema (u32 BE).
    let at = 19 + 1 + 16 + 8;
    for schema in [0u32, strongroom::store::SCHEMA_VERSION + 1, u32::MAX] {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&schema.to_be_bytes());
        let p = dir.path().join(format!("schema-{schema}.bin"));
        std::fs::write(&p, rehash(b)).unwrap();
        let e = verify_snapshot(&p, &kek, &UnlockOptions::default()).unwrap_err();
        assert!(
            matches!(&e, VaultError::Snapshot { kind: SnapshotProblem::TooNew, detail } if detail.contains(&format!("schema version {schema}"))),
            "{e}"
        );
    }
}

/// Rows must come as the writer emits them (tables in order, keys ascending): a snapshot
/// whose rows were reordered or repeated, then re-hashed, is refused.
#[test]
fn reordered_or_repeated_rows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 3);
    let snap = dir.path().join("s.bin");
    let info = vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    // Split the rows out of the file.
    let header = 19 + 1 + 16 + 8 + 4;
    let mut rows = Vec::new();
    let mut at = header;
    while bytes[at] != 0 {
        let start = at;
        at += 1;
        for _ in 0..2 {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += 4 + len;
        }
        rows.push(bytes[start..at].to_vec());
    }
    assert_eq!(rows.len() as u64, info.rows);
    let build = |rows: &[Vec<u8>]| {
        let mut b = bytes[..header].to_vec();
        for r in rows {
            b.extend_from_slice(r);
        }
        b.push(0);
        b.extend_from_slice(&(rows.len() as u64).to_be_bytes());
        b.extend_from_slice(&[0; 32]);
        rehash(b)
    };
    // The unchanged rows rebuild the same file.
    assert_eq!(build(&rows), bytes);
    let mut swapped = rows.clone();
    swapped.swap(1, 2);
    let mut repeated = rows.clone();
    repeated.insert(2, rows[1].clone());
    for (what, rows) in [("swapped", swapped), ("repeated", repeated)] {
        let p = dir.path().join(format!("{what}.bin"));
        std::fs::write(&p, build(&rows)).unwrap();
        let e = verify_snapshot(&p, &kek, &UnlockOptions::default()).unwrap_err();
        assert!(
            matches!(&e, VaultError::Snapshot { kind: SnapshotProblem::Corrupt, detail } if detail.contains("out of order or repeated")),
            "{what}: {e}"
        );
    }
}

/// A snapshot can be verified and restored from a FIFO (a pipe from `ssh`, `zstd -d`, ...):
/// it is read once into a private spool file, checked, restored, and the spool removed.
#[cfg(unix)]
#[test]
fn snapshots_restore_from_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 12);
    let snap = dir.path().join("s.bin");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    vault.put("app", "after", b"undone by the restore").unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let spools = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".strongroom-snapshot-")
            })
            .count()
    };
    let before = spools();
    for restore in [false, true] {
        let writer = {
            let (fifo, bytes) = (fifo.clone(), bytes.clone());
            std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
        };
        if restore {
            let r = restore_snapshot(&store, &fifo, &kek, &RestoreOptions::default()).unwrap();
            assert_eq!(r.verification.secrets, 12);
            assert!(matches!(
                r.vault.get("app", "after"),
                Err(VaultError::NotFound { .. })
            ));
            r.vault.audit_verify().unwrap();
        } else {
            let v = verify_snapshot(&fifo, &kek, &UnlockOptions::default()).unwrap();
            assert_eq!((v.secrets, v.versions), (12, 12));
            assert_eq!(v.info.bytes, bytes.len() as u64);
        }
        writer.join().unwrap();
    }
    // Other tests may spool at the same time; this test's spools are gone.
    assert!(spools() <= before, "a spool file was left behind");
}

/// A prepared restore touches nothing until committed, and its pins hold for the live
/// vault and for the restored one alike: persisted before the commit, they stay valid
/// whichever side of it a crash falls on, whereas the pins held before would refuse the
/// restored vault as rolled back.
#[test]
fn prepared_restore_pins_hold_on_both_sides_of_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "live.db");
    let (vault, kek) = vault_with(&store, 3);
    let snap = dir.path().join("before-rotation.bin");
    vault.snapshot_to(&snap, &mut |_| {}).unwrap();
    vault.rotate_vault_key().unwrap();
    vault.put("app", "later", b"after the snapshot").unwrap();
    let pinned = vault.pins();
    let unlock = |pins: &strongroom::sharing::Pins| {
        Vault::open(Arc::clone(&store)).unwrap().unlock_with(
            &kek,
            UnlockOptions::default()
                .with_member(None)
                .with_pins(pins.clone()),
        )
    };

    let file = SnapshotFile::open(&snap).unwrap();
    let options = RestoreOptions::default()
        .with_unlock(
            UnlockOptions::default()
                .with_member(None)
                .with_pins(pinned.clone()),
        )
        .with_allow_membership_rollback(true);
    let prepared = file.prepare_restore(&store, &kek, &options).unwrap();
    assert!(prepared.verification().membership_rollback);
    let interim = prepared.pins();
    assert_ne!(interim, pinned);
    // Before the commit: the live vault is untouched and opens with the interim pins.
    let live = unlock(&interim).unwrap();
    assert_eq!(live.epoch(), vault.epoch());
    assert!(live.get("app", "later").is_ok());

    let report = prepared.commit().unwrap();
    assert_eq!(report.pins, interim);
    // After it: the interim pins open the restored vault; the old ones refuse it.
    let restored = unlock(&interim).unwrap();
    assert!(restored.epoch() < vault.epoch());
    assert!(restored.get("app", "later").is_err());
    let e = unlock(&pinned).unwrap_err();
    assert!(e.to_string().contains("rolled it back"), "{e}");

    // A prepared restore that is dropped changes nothing.
    let again = SnapshotFile::open(&snap).unwrap();
    let dropped = again
        .prepare_restore(&store, &kek, &RestoreOptions::default())
        .unwrap();
    drop(dropped);
    assert!(unlock(&interim).unwrap().get("app", "k0").is_ok());
}
