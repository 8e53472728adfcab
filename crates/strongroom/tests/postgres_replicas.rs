//! Vaults on PostgreSQL streaming replicas, for real (primary and hot standbys on
//! loopback, started by `strongroom_postgres::test_server`):
//!
//! - a read-only handle on a standby serves get, list, history and export, refuses
//!   writes with a clear error, and writes nothing itself (not even its unlock);
//! - it keeps reading while the standby lags behind a member removal and a rotation on
//!   the primary, and catches up without ever reporting tampering;
//! - a replica behind what a handle (or its pins) verified gives the retryable
//!   `ReplicaBehind`, never a tampering error or a wrong "not found";
//! - failover: every write acknowledged under synchronous replication is on the promoted
//!   standby, which opens read-write; the pins refuse a promoted stale standby that would
//!   roll the membership log back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{Store, StoreError, Table};
use strongroom::{CreateOptions, ExportFormat, ExportTarget, UnlockOptions, Vault, VaultError};
use strongroom_postgres::test_server::{Replication, TestServer};
use strongroom_postgres::{PostgresOptions, PostgresStore};

const SECRETS: usize = 20;

fn store(server: &TestServer, extra: &str) -> Arc<dyn Store> {
    store_at(&format!(
        "{} sslmode=disable {extra}",
        server.tcp_conninfo()
    ))
}

fn store_at(conninfo: &str) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::connect(
            conninfo,
            PostgresOptions::default()
                .with_schema(Some("vault".into()))
                .with_pool_size(2),
        )
        .unwrap(),
    )
}

fn unlock(store: Arc<dyn Store>, kek: &RawKek, pins: Pins) -> Result<Vault, VaultError> {
    Vault::open(store)?.unlock_with(
        kek,
        UnlockOptions::default().with_member(None).with_pins(pins),
    )
}

/// A vault on `primary` with SECRETS secrets (`k0`… of `app`, two versions each) and a
/// second member, bob.
fn vault_on(primary: &TestServer) -> (Vault, RawKek, Identity) {
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(store(primary, ""), &kek, &CreateOptions::default()).unwrap();
    for i in 0..SECRETS {
        vault.put("app", &format!("k{i}"), b"old").unwrap();
        vault
            .put("app", &format!("k{i}"), format!("v1-{i}").as_bytes())
            .unwrap();
    }
    let bob = Identity::generate("bob").unwrap();
    let fingerprint = bob.public().fingerprint().to_string();
    let confirmed = bob.public().confirm_fingerprint(&fingerprint).unwrap();
    vault
        .add_member(bob.public(), Role::Member, confirmed)
        .unwrap();
    (vault, kek, bob)
}

fn audit_head(server: &TestServer) -> Option<u64> {
    use strongroom::store::ReadView;
    store(server, "").log_head(Table::Audit).unwrap()
}

#[test]
fn a_read_only_handle_on_a_standby_reads_and_refuses_writes() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let standby = primary.standby("standby1", Replication::Async);
    let (vault, kek, _) = vault_on(&primary);
    standby.wait_for_replay(&primary);
    let audit_before = audit_head(&primary);

    let reader = unlock(
        store(&standby, "target_session_attrs=standby"),
        &kek,
        vault.pins(),
    )
    .unwrap();
    assert!(reader.is_read_only() && !vault.is_read_only());
    assert_eq!(reader.get("app", "k3").unwrap().expose_secret(), b"v1-3");
    assert_eq!(
        reader.get_version("app", "k3", 1).unwrap().expose_secret(),
        b"old"
    );
    assert_eq!(reader.list("app").unwrap().len(), SECRETS);
    assert_eq!(reader.history("app", "k3").unwrap().len(), 2);
    let mut out = Vec::new();
    let report = reader
        .export(
            Some("app"),
            ExportFormat::Json,
            ExportTarget::Plaintext,
            &mut out,
        )
        .unwrap();
    assert_eq!(report.secrets, SECRETS);
    assert!(String::from_utf8(out).unwrap().contains("v1-7"));

    // Writes are refused with a clear error, and nothing reaches the store.
    for e in [
        reader.put("app", "new", b"x").unwrap_err(),
        reader.delete("app", "k1").unwrap_err(),
        reader.rotate_vault_key().unwrap_err(),
    ] {
        assert!(
            matches!(e, VaultError::Store(StoreError::ReadOnly { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("read-only"), "{e}");
        assert!(!e.is_retryable());
    }
    // The unlock, the export and the refused writes wrote nothing (the audit log lives on
    // the primary).
    standby.wait_for_replay(&primary);
    assert_eq!(audit_head(&primary), audit_before);

    // A standby reached without saying so gives a read-only handle too.
    let anyway = unlock(store(&standby, ""), &kek, vault.pins()).unwrap();
    assert!(anyway.is_read_only());
    assert_eq!(anyway.get("app", "k0").unwrap().expose_secret(), b"v1-0");
}

#[test]
fn a_lagging_standby_keeps_reading_through_removal_and_rotation() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let standby = primary.standby("standby1", Replication::Async);
    let (vault, kek, bob) = vault_on(&primary);
    standby.wait_for_replay(&primary);
    let reader = unlock(
        store(&standby, "target_session_attrs=standby"),
        &kek,
        vault.pins(),
    )
    .unwrap();
    let epoch_before = reader.epoch();

    // The standby stops replaying; on the primary, bob is removed (a new epoch), the
    // vault key is rotated (every data key rewrapped, the old epochs retired and their
    // keys shredded) and every secret gets a new value.
    standby.pause_replay();
    vault.remove_member(bob.member_id()).unwrap();
    vault.rotate_vault_key().unwrap();
    for i in 0..SECRETS {
        vault
            .put("app", &format!("k{i}"), format!("v2-{i}").as_bytes())
            .unwrap();
    }
    assert!(vault.min_epoch() > epoch_before);

    // The lagging standby serves the state it has, consistently.
    for i in 0..SECRETS {
        assert_eq!(
            reader.get("app", &format!("k{i}")).unwrap().expose_secret(),
            format!("v1-{i}").as_bytes()
        );
    }
    assert_eq!(reader.list("app").unwrap().len(), SECRETS);

    // Opening it with the primary's newer pins: the replica is behind, which is
    // retryable, not a rollback.
    let e = unlock(
        store(&standby, "target_session_attrs=standby"),
        &kek,
        vault.pins(),
    )
    .unwrap_err();
    assert!(matches!(e, VaultError::ReplicaBehind { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains("retry once it has caught up"), "{e}");

    // Replay resumes: reads go on while the standby catches up (old or new values,
    // never an error), and end with the new values under the new epoch.
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            standby.resume_replay();
            standby.wait_for_replay(&primary);
            done.store(true, Ordering::SeqCst);
        });
        while !done.load(Ordering::SeqCst) {
            for i in 0..SECRETS {
                let got = reader
                    .get("app", &format!("k{i}"))
                    .unwrap_or_else(|e| panic!("k{i} while catching up: {e}"));
                let v = got.expose_str().unwrap().to_owned();
                assert!(v == format!("v1-{i}") || v == format!("v2-{i}"), "{v}");
            }
        }
    });
    for i in 0..SECRETS {
        assert_eq!(
            reader.get("app", &format!("k{i}")).unwrap().expose_secret(),
            format!("v2-{i}").as_bytes()
        );
    }
    assert_eq!(reader.epoch(), vault.epoch());
    unlock(
        store(&standby, "target_session_attrs=standby"),
        &kek,
        vault.pins(),
    )
    .unwrap();
}

/// A handle that verified a newer state than the replica it now reads from (its first
/// standby went away; the host list led it to one further behind): whatever it cannot
/// find or open there is `ReplicaBehind`, never tampering and never a wrong "not found".
#[test]
fn reads_from_a_replica_behind_the_handle_say_so() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let ahead = primary.standby("ahead", Replication::Async);
    let behind = primary.standby("behind", Replication::Async);
    let (vault, kek, bob) = vault_on(&primary);
    ahead.wait_for_replay(&primary);
    behind.wait_for_replay(&primary);
    behind.pause_replay();
    vault.remove_member(bob.member_id()).unwrap();
    vault.rotate_vault_key().unwrap();
    vault.put("app", "added-later", b"new").unwrap();
    ahead.wait_for_replay(&primary);

    let both = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname=postgres sslmode=disable target_session_attrs=standby",
        ahead.port().unwrap(),
        behind.port().unwrap()
    );
    let reader = unlock(store_at(&both), &kek, vault.pins()).unwrap();
    assert_eq!(
        reader.get("app", "added-later").unwrap().expose_secret(),
        b"new"
    );
    ahead.stop_fast();
    for name in ["added-later", "k0"] {
        match reader.get("app", name) {
            Err(e @ VaultError::ReplicaBehind { .. }) => assert!(e.is_retryable()),
            other => panic!("{name}: expected ReplicaBehind, got {other:?}"),
        }
    }
    behind.resume_replay();
    behind.wait_for_replay(&primary);
    assert_eq!(
        reader.get("app", "added-later").unwrap().expose_secret(),
        b"new"
    );
    assert_eq!(reader.get("app", "k0").unwrap().expose_secret(), b"v1-0");
}

#[test]
fn failover_keeps_every_synchronously_acknowledged_write_and_pins_refuse_a_stale_standby() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let sync = primary.standby("sync1", Replication::Sync);
    let stale = primary.standby("stale", Replication::Async);
    let (vault, kek, bob) = vault_on(&primary);
    stale.wait_for_replay(&primary);
    // The stale standby stops here; the membership log moves on without it.
    stale.stop_fast();
    vault.remove_member(bob.member_id()).unwrap();
    let pins = vault.pins();

    // A writer puts secrets until the primary dies under it.
    let acknowledged = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            for i in 0.. {
                match vault.put("orders", &format!("o{i}"), format!("order-{i}").as_bytes()) {
                    Ok(_) => acked.push(i),
                    Err(_) => break,
                }
            }
            acked
        });
        thread::sleep(Duration::from_millis(700));
        primary.kill();
        writer.join().unwrap()
    });
    assert!(acknowledged.len() > 5, "{} writes", acknowledged.len());
    eprintln!(
        "{} writes acknowledged before the primary died",
        acknowledged.len()
    );

    // The synchronous standby is promoted and opens read-write with the pins the
    // primary's handle left: every acknowledged write is there.
    sync.promote();
    let promoted = unlock(
        store(&sync, "target_session_attrs=read-write"),
        &kek,
        pins.clone(),
    )
    .unwrap();
    assert!(!promoted.is_read_only());
    for i in &acknowledged {
        assert_eq!(
            promoted
                .get("orders", &format!("o{i}"))
                .unwrap()
                .expose_secret(),
            format!("order-{i}").as_bytes(),
            "acknowledged write o{i} lost"
        );
    }
    promoted.put("orders", "after-failover", b"ok").unwrap();

    // Promoting the stale standby instead would roll the membership log back (bob's
    // removal undone): the pins refuse it.
    stale.start_again();
    stale.promote();
    let e = unlock(store(&stale, "target_session_attrs=read-write"), &kek, pins).unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Sharing(strongroom::sharing::SharingError::Verify(
                strongroom::sharing::VerifyError::Rollback { .. }
            ))
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("rolled it back"), "{e}");
}
