//! A PostgreSQL vault through the real binary (`--vault` as a libpq string or a URL), on a
//! throwaway local server. Without PostgreSQL the test prints `SKIPPED:` and passes, unless
//! `STRONGROOM_REQUIRE_PG=1`.
#![cfg(feature = "postgres")]

#[path = "helpers/env.rs"]
mod env;

use env::{Env, json};
use predicates::prelude::*;
use strongroom_postgres::test_server::TestServer;

#[test]
fn postgres_vault_by_libpq_string_and_url() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let e = Env::new();
    let conn = server.create_database().unwrap();
    let pg = |vault: &str| {
        let mut c = e.clean();
        c.args(["--vault", vault])
            .arg("--state-dir")
            .arg(&e.state)
            .arg("--passphrase-file")
            .arg(&e.pass)
            .args(["--profile", "constrained"]);
        c
    };
    pg(&conn)
        .args(["init", "--no-recovery-key"])
        .assert()
        .success()
        .stdout(predicate::str::contains("the PostgreSQL vault"))
        .stdout(predicate::str::contains(server.socket_dir().to_str().unwrap()).not());
    pg(&conn)
        .args(["put", "core/app", "DB_PASSWORD", "--stdin"])
        .write_stdin("hunter2")
        .assert()
        .success();
    pg(&conn)
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("hunter2");
    let status = json({
        let mut c = pg(&conn);
        c.arg("status");
        c
    });
    assert_eq!(status["backend"], "postgres");

    // the same database as a URL
    let dbname = conn
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("dbname="))
        .unwrap();
    let url = format!(
        "postgresql://postgres@/{dbname}?host={}",
        server.socket_dir().display()
    );
    pg(&url)
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("hunter2");
    // a connection string that does not parse: a clear error that does not print it
    let bad = "postgres://vault:s3cret-in-url@127.0.0.1:notaport/vault"; // pragma: allowlist secret
    let out = pg(bad).args(["status"]).assert().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("PostgreSQL"), "{err}");
    assert!(!err.contains("s3cret-in-url"), "{err}");
}
