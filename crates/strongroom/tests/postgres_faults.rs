//! A vault on a real PostgreSQL server that goes away: a rotation interrupted by a
//! server stop resumes when the server is back, and a vault handle survives a restart
//! and terminated connections.

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::store::Store;
use strongroom::{CreateOptions, NewSecret, RotateOptions, Vault};
use strongroom_postgres::test_server::TestServer;
use strongroom_postgres::{PostgresOptions, PostgresStore};

const SECRETS: usize = 3000;

fn store(server: &TestServer) -> Arc<dyn Store> {
    Arc::new(
        PostgresStore::connect(
            &format!("{} sslmode=disable", server.tcp_conninfo()),
            PostgresOptions::default().with_schema(Some("vault".into())),
        )
        .unwrap(),
    )
}

fn fill(vault: &Vault) {
    let names: Vec<String> = (0..SECRETS).map(|i| format!("k{i}")).collect();
    let values: Vec<String> = (0..SECRETS).map(|i| format!("value-{i}")).collect();
    for chunk in (0..SECRETS).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<NewSecret<'_>> = chunk
            .iter()
            .map(|&i| NewSecret {
                namespace: "app",
                name: &names[i],
                value: values[i].as_bytes(),
            })
            .collect();
        vault.put_many(&batch).unwrap();
    }
}

#[test]
fn a_rotation_interrupted_by_a_server_stop_resumes_when_it_is_back() {
    let Some(server) = TestServer::builder().tcp().start() else {
        return;
    };
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(store(&server), &kek, &CreateOptions::default()).unwrap();
    fill(&vault);
    let before = vault.epoch();

    // The server stops (fast shutdown: its connections are terminated) a third of the
    // way through the rewrap.
    let mut stopped = false;
    let e = vault
        .rotate_vault_key_with(RotateOptions::default().with_batch_size(100), &mut |p| {
            if !stopped && p.done >= SECRETS as u64 / 3 {
                stopped = true;
                server.stop_fast();
            }
        })
        .unwrap_err();
    assert!(stopped);
    assert!(e.is_retryable(), "{e:?}");
    eprintln!("the rotation stopped with: {e}");

    server.start_again();
    // The same handle reconnects, finds the interrupted job and finishes it.
    let target = vault
        .interrupted_rotation()
        .unwrap()
        .expect("an interrupted rotation");
    assert!(target > before);
    let report = vault.rotate_vault_key().unwrap();
    assert!(report.resumed, "{report:?}");
    assert_eq!(report.epoch, target);
    assert_eq!(vault.interrupted_rotation().unwrap(), None);
    assert_eq!(vault.pending_rewrap(report.epoch).unwrap(), []);
    assert_eq!(vault.min_epoch(), report.epoch, "old epochs retired");
    // Every secret opens, through this handle and a new one.
    let fresh = Vault::open(store(&server)).unwrap().unlock(&kek).unwrap();
    for i in (0..SECRETS).step_by(7) {
        for v in [&vault, &fresh] {
            assert_eq!(
                v.get("app", &format!("k{i}")).unwrap().expose_secret(),
                format!("value-{i}").as_bytes()
            );
        }
    }
}

#[test]
fn a_vault_handle_survives_restarts_and_terminated_connections() {
    let Some(server) = TestServer::builder().tcp().start() else {
        return;
    };
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(store(&server), &kek, &CreateOptions::default()).unwrap();
    vault.put("app", "a", b"1").unwrap();
    server.restart();
    assert_eq!(vault.get("app", "a").unwrap().expose_secret(), b"1");
    vault.put("app", "a", b"2").unwrap();
    server.terminate_backends();
    vault.put("app", "a", b"3").unwrap();
    server.terminate_backends();
    assert_eq!(vault.get("app", "a").unwrap().expose_secret(), b"3");
    // One version per put: nothing was written twice.
    assert_eq!(vault.history("app", "a").unwrap().len(), 3);
    assert!(vault.audit_verify().is_ok());
}
