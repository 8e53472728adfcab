//! Least-privilege PostgreSQL: once the owner created (and migrated) the schema, a role
//! with only the grants of `PostgresStore::application_grants` runs a whole vault (create,
//! reads, writes, rotation, membership changes, audit) and cannot rewrite the append-only
//! logs. Before, every connection ran `CREATE TABLE IF NOT EXISTS` and every write took
//! `LOCK … IN SHARE MODE` on the membership log, which needs UPDATE rights on it.

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::store::Store;
use strongroom::{CreateOptions, RestoreOptions, Vault, restore_snapshot};
use strongroom_postgres::test_server::TestServer;
use strongroom_postgres::{PostgresOptions, PostgresStore};

/// Runs `statements` as `user`; the error is the server's message.
fn sql(server: &TestServer, user: &str, statements: &str) -> Result<(), String> {
    let conninfo = format!(
        "host={} user={user} dbname=postgres",
        server.socket_dir().display()
    );
    let mut client =
        postgres::Client::connect(&conninfo, postgres::NoTls).map_err(|e| e.to_string())?;
    client.batch_execute(statements).map_err(|e| {
        e.as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned())
    })
}

#[test]
fn an_application_role_with_dml_rights_runs_a_vault() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let schema = server.fresh_schema();
    let role = format!("app_{schema}");
    let options = PostgresOptions::default().with_schema(Some(schema.clone()));
    // The owner (here the superuser) creates the schema and grants the application role.
    let owner = server.store_with(options.clone());
    sql(server, "postgres", &format!("CREATE ROLE \"{role}\" LOGIN")).unwrap();
    sql(server, "postgres", &owner.application_grants(&role)).unwrap();

    let app_conninfo = format!(
        "host={} user={role} dbname=postgres",
        server.socket_dir().display()
    );
    let app: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(&app_conninfo, options.clone())
            .expect("a DML-only role opens an up-to-date schema"),
    );
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&app), &kek, &CreateOptions::default()).unwrap();
    for i in 0..20 {
        vault
            .put("app", &format!("k{i}"), format!("v{i}").as_bytes())
            .unwrap();
    }
    vault.delete("app", "k3").unwrap();
    let teammate = strongroom::sharing::Identity::generate("bob").unwrap();
    let confirmed = teammate
        .public()
        .confirm_fingerprint(&teammate.public().fingerprint().to_string())
        .unwrap();
    vault
        .add_member(
            teammate.public(),
            strongroom::sharing::Role::Member,
            confirmed,
        )
        .unwrap();
    vault.rotate_vault_key().unwrap();
    vault.remove_member(teammate.member_id()).unwrap();
    vault.put("app", "after-removal", b"x").unwrap();
    let reopened = Vault::open(Arc::clone(&app)).unwrap().unlock(&kek).unwrap();
    assert_eq!(reopened.get("app", "k7").unwrap().expose_secret(), b"v7");
    reopened.audit_verify().unwrap();

    // The logs are append-only for this role.
    for statement in [
        format!("UPDATE \"{schema}\".sr_audit SET v = v"),
        format!("DELETE FROM \"{schema}\".sr_member_log"),
        format!("TRUNCATE \"{schema}\".sr_audit"),
        format!("UPDATE \"{schema}\".sr_member_log SET ver = ver"),
        format!("CREATE TABLE \"{schema}\".sneaky (x int)"),
    ] {
        let err = sql(server, &role, &statement).expect_err(&statement);
        assert!(err.contains("permission denied"), "{statement}: {err}");
    }

    // A restore rewrites the logs: it is the owner's, and the role gets a clear refusal.
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.snap");
    reopened.snapshot_to(&snap, &mut |_| {}).unwrap();
    let err = restore_snapshot(&app, &snap, &kek, &RestoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    assert_eq!(reopened.get("app", "k7").unwrap().expose_secret(), b"v7");
    let owner: Arc<dyn Store> = Arc::new(owner);
    restore_snapshot(&owner, &snap, &kek, &RestoreOptions::default()).unwrap();
    // After the owner's restore the role goes on writing (the log heads were reset).
    let after = Vault::open(Arc::clone(&app)).unwrap().unlock(&kek).unwrap();
    after.put("app", "after-restore", b"y").unwrap();
    after.audit_verify().unwrap();
}
