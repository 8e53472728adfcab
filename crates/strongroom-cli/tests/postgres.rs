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

    // -vvv: the driver's debug logs (SQL parameters: stanzas, wrapped keys) stay out
    let out = pg(&conn)
        .args(["-vvv", "put", "core/app", "API_TOKEN", "--stdin"])
        .write_stdin("tok")
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let lines = log_lines(&err);
    assert!(lines.iter().any(|(level, _)| level == "DEBUG"), "{err}");
    for (level, target) in &lines {
        let driver = ["tokio_postgres", "postgres", "r2d2"]
            .iter()
            .any(|t| target == t || target.starts_with(&format!("{t}::")));
        assert!(
            !driver || !["DEBUG", "TRACE"].contains(&level.as_str()),
            "{level} {target}: {err}"
        );
    }
    assert!(!err.contains("parameters"), "{err}");
    assert!(!err.contains("RUST_LOG"), "{err}");
    // RUST_LOG asked for them: obeyed, with a warning
    let out = pg(&conn)
        .env("RUST_LOG", "tokio_postgres=debug")
        .args(["get", "core/app", "API_TOKEN"])
        .assert()
        .success()
        .stdout("tok");
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.starts_with("warning: RUST_LOG is set"), "{err}");
    // what -vvv keeps out
    assert!(err.contains("parameters"), "{err}");
    pg(&conn)
        .env("RUST_LOG", "info")
        .args(["get", "core/app", "API_TOKEN"])
        .assert()
        .success()
        .stderr(predicate::str::contains("RUST_LOG").not());

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
    // a password on the command line is warned about (the warning does not repeat it)...
    assert!(
        err.starts_with("warning: the --vault connection string holds a password"),
        "{err}"
    );
    assert!(err.contains("STRONGROOM_VAULT"), "{err}");
    let libpq = "host=127.0.0.1 port=notaport dbname=vault password=s3cret-in-libpq"; // pragma: allowlist secret
    let out = pg(libpq).args(["status"]).assert().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.starts_with("warning: the --vault connection string holds a password"),
        "{err}"
    );
    assert!(!err.contains("s3cret-in-libpq"), "{err}");
    // ...not when it comes from STRONGROOM_VAULT, nor without a password
    let mut c = e.clean();
    c.env("STRONGROOM_VAULT", bad)
        .arg("--state-dir")
        .arg(&e.state)
        .arg("--passphrase-file")
        .arg(&e.pass)
        .arg("status")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("warning").not())
        .stderr(predicate::str::contains("s3cret-in-url").not());
    pg(&url)
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stderr(predicate::str::contains("password").not());
}

/// `(level, target)` of each log line on stderr (colour codes removed).
fn log_lines(stderr: &str) -> Vec<(String, String)> {
    let mut plain = String::new();
    let mut chars = stderr.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip(1);
            let level = w.next()?;
            let target = w.next()?.strip_suffix(':')?;
            ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
                .contains(&level)
                .then(|| (level.to_owned(), target.to_owned()))
        })
        .collect()
}

/// `status` and `doctor` say how the PostgreSQL vault is reached: TLS verified for the
/// host name (ok), TLS without verification (warning), and a read-only standby.
#[test]
fn status_and_doctor_report_the_connection() {
    use strongroom_postgres::test_server::{Replication, TestPki};
    let pki = TestPki::new();
    let Some(server) = TestServer::builder()
        .tls(pki.server_tls(&["localhost", "127.0.0.1"]))
        .hba("hostssl all all 127.0.0.1/32 trust")
        .hba("host replication all 127.0.0.1/32 trust")
        .start()
    else {
        return;
    };
    let e = Env::new();
    let port = server.port().unwrap();
    let verified = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres sslrootcert={}",
        pki.ca_file().display()
    );
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
    pg(&verified)
        .args(["init", "--no-recovery-key"])
        .assert()
        .success();
    pg(&verified)
        .args(["put", "core/app", "DB_PASSWORD", "--stdin"])
        .write_stdin("hunter2")
        .assert()
        .success();
    pg(&verified)
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("connection:     TLS (TLSv1.3"))
        .stdout(predicate::str::contains(
            "server certificate verified for this host name (sslmode=verify-full)",
        ));
    let status = json({
        let mut c = pg(&verified);
        c.arg("status");
        c
    });
    assert_eq!(status["connection"]["encrypted"], true);
    assert_eq!(status["connection"]["verified"], true);
    assert_eq!(status["connection"]["sslmode"], "verify-full");
    assert_eq!(status["read_only"], false);
    pg(&verified)
        .arg("doctor")
        .assert()
        .stdout(predicate::str::contains("[ ok ] connection: TLS (TLSv1.3"));

    // Encrypted but not verified: a warning that says why.
    let unverified =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require");
    pg(&unverified)
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("[WARN] connection: TLS (TLSv1.3"))
        .stdout(predicate::str::contains("NOT verified (sslmode=require)"));

    // A standby: reads work, status says read-only, a write is refused clearly.
    let standby = server.standby("cli", Replication::Async);
    standby.wait_for_replay(&server);
    let on_standby = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslrootcert={} target_session_attrs=standby",
        standby.port().unwrap(),
        pki.ca_file().display()
    );
    pg(&on_standby)
        .args(["get", "core/app", "DB_PASSWORD"])
        .assert()
        .success()
        .stdout("hunter2");
    pg(&on_standby)
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "access:         read-only (a standby)",
        ));
    pg(&on_standby)
        .args(["put", "core/app", "X", "--stdin"])
        .write_stdin("x")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the store is read-only: this vault handle was opened on a store that refuses writes",
        ));
}
