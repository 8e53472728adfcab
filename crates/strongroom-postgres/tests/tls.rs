//! TLS against real servers with `ssl = on`, listening on 127.0.0.1, whose certificates a
//! CA made in the test signed: every `sslmode`, wrong CA, wrong host name, expired
//! certificate, a `hostssl`-only `pg_hba.conf`, and client-certificate authentication.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use strongroom_postgres::test_server::{TestPki, TestServer};
use strongroom_postgres::{PostgresOptions, PostgresStore, SslMode};
use strongroom_store::{Batch, Expect, ReadView, Store, StoreError, Table};

/// A TLS server that accepts only TLS from TCP clients: `certuser` by client certificate,
/// everyone else by trust.
struct Fixture {
    pki: TestPki,
    server: TestServer,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let pki = TestPki::new();
            let server = TestServer::builder()
                .tls(pki.server_tls(&["localhost", "127.0.0.1"]))
                .hba("hostssl all certuser 127.0.0.1/32 cert")
                .hba("hostssl all all 127.0.0.1/32 trust")
                .start()?;
            server
                .execute(
                    "CREATE ROLE certuser LOGIN; GRANT CREATE ON DATABASE postgres TO certuser",
                )
                .unwrap();
            Some(Fixture { pki, server })
        })
        .as_ref()
}

fn port(server: &TestServer) -> u16 {
    server.port().unwrap()
}

fn connect(conninfo: &str) -> Result<PostgresStore, StoreError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    PostgresStore::connect(
        conninfo,
        PostgresOptions::default()
            .with_schema(Some(format!(
                "tls_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )))
            .with_pool_size(2),
    )
}

fn round_trip(store: &PostgresStore, key: &str) {
    let mut b = Batch::new();
    b.put(Table::Meta, key, "v", Expect::Any);
    store.commit(&b).unwrap();
    assert!(store.get(Table::Meta, key.as_bytes()).unwrap().is_some());
}

fn refused(conninfo: &str) -> StoreError {
    match connect(conninfo) {
        Ok(_) => panic!("connected, but should have been refused: {conninfo}"),
        Err(e) => e,
    }
}

fn ca(pki: &TestPki) -> String {
    pki.ca_file().display().to_string()
}

#[test]
fn verify_full_is_the_default_and_succeeds() {
    let Some(f) = fixture() else { return };
    let p = port(&f.server);
    // By name (the certificate names localhost) and by address (it names 127.0.0.1 too).
    for host in ["host=localhost hostaddr=127.0.0.1", "host=127.0.0.1"] {
        let store = connect(&format!(
            "{host} port={p} user=postgres dbname=postgres sslrootcert={}",
            ca(&f.pki)
        ))
        .unwrap();
        round_trip(&store, "verify-full");
        let security = store.connection_security().unwrap();
        assert_eq!(
            security.ssl_mode,
            SslMode::VerifyFull,
            "the default for TCP"
        );
        assert!(
            security.is_encrypted() && security.is_verified(),
            "{security}"
        );
        assert!(!security.unix_socket);
        let shown = security.to_string();
        assert!(shown.contains("TLSv1.3"), "{shown}");
        assert!(
            shown.contains("verified for this host name (sslmode=verify-full)"),
            "{shown}"
        );
    }
}

#[test]
fn a_wrong_ca_is_refused_saying_so() {
    let Some(f) = fixture() else { return };
    let other = TestPki::new();
    let p = port(&f.server);
    for mode in ["verify-full", "verify-ca", "require"] {
        // With a root file, require checks the chain too (libpq's rule).
        let e = refused(&format!(
            "host=localhost hostaddr=127.0.0.1 port={p} user=postgres password=hunter2-secret dbname=postgres sslmode={mode} sslrootcert={}",
            ca(&other)
        ));
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "not signed by a CA trusted here (sslrootcert={})",
                ca(&other)
            )),
            "{mode}: {msg}"
        );
        assert!(msg.contains(&format!("localhost (127.0.0.1):{p}")), "{msg}");
        assert!(
            !e.is_retryable(),
            "a certificate problem is not retryable: {msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}

#[test]
fn without_sslrootcert_the_system_roots_are_used() {
    let Some(f) = fixture() else { return };
    let e = refused(&format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres",
        port(&f.server)
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("not signed by a CA trusted here (the system's CA roots)"),
        "{msg}"
    );
}

#[test]
fn a_wrong_host_name_is_refused_by_verify_full_only() {
    let Some(f) = fixture() else { return };
    let p = port(&f.server);
    let base = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={p} user=postgres dbname=postgres sslrootcert={}",
        ca(&f.pki)
    );
    let msg = refused(&format!("{base} sslmode=verify-full")).to_string();
    assert!(
        msg.contains("not valid for the host name wrong.example (sslmode=verify-full)"),
        "{msg}"
    );
    // verify-ca checks the chain, not the name.
    let store = connect(&format!("{base} sslmode=verify-ca")).unwrap();
    round_trip(&store, "verify-ca");
    let security = store.connection_security().unwrap();
    assert!(security.is_encrypted() && !security.is_verified());
    assert!(
        security
            .to_string()
            .contains("chain verified but not its host name"),
        "{security}"
    );
}

#[test]
fn an_expired_certificate_is_refused_saying_so() {
    let pki = TestPki::new();
    let Some(server) = TestServer::builder()
        .tls(pki.expired_server_tls(&["localhost", "127.0.0.1"]))
        .start()
    else {
        return;
    };
    let base = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslrootcert={}",
        port(&server),
        ca(&pki)
    );
    for mode in ["verify-full", "verify-ca"] {
        let msg = refused(&format!("{base} sslmode={mode}")).to_string();
        assert!(
            msg.contains("the server's certificate has expired"),
            "{msg}"
        );
    }
    // require without a root file checks nothing, and says so.
    let store = connect(&format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
        port(&server)
    ))
    .unwrap();
    let security = store.connection_security().unwrap();
    assert!(security.is_encrypted() && !security.is_verified());
    assert!(
        security
            .to_string()
            .contains("server certificate NOT verified (sslmode=require)"),
        "{security}"
    );
}

#[test]
fn disable_against_a_hostssl_only_server_is_refused_by_the_server() {
    let Some(f) = fixture() else { return };
    let e = refused(&format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
        port(&f.server)
    ));
    let msg = e.to_string();
    assert!(msg.contains("no pg_hba.conf entry"), "{msg}");
    assert!(msg.contains("no encryption"), "{msg}");
    assert!(
        msg.contains("connect with TLS, sslmode=verify-full"),
        "{msg}"
    );
    assert!(!e.is_retryable(), "{msg}");
}

#[test]
fn client_certificate_authentication() {
    let Some(f) = fixture() else { return };
    let p = port(&f.server);
    let base = format!(
        "host=localhost hostaddr=127.0.0.1 port={p} user=certuser dbname=postgres sslrootcert={}",
        ca(&f.pki)
    );
    let (cert, key) = f.pki.client_cert("certuser");
    let store = connect(&format!(
        "{base} sslcert={} sslkey={}",
        cert.display(),
        key.display()
    ))
    .unwrap();
    round_trip(&store, "by-certificate");

    // No certificate: the server refuses, and the error says what to give.
    let msg = refused(&base).to_string();
    assert!(msg.contains("certificate"), "{msg}");
    assert!(msg.contains("sslcert= and sslkey="), "{msg}");

    // A certificate for another user does not log in as certuser.
    let (cert, key) = f.pki.client_cert("mallory");
    let msg = refused(&format!(
        "{base} sslcert={} sslkey={}",
        cert.display(),
        key.display()
    ))
    .to_string();
    assert!(msg.contains("certificate authentication failed"), "{msg}");

    // A certificate from another CA fails the server's check of the handshake.
    let other = TestPki::new();
    let (cert, key) = other.client_cert("certuser");
    let e = refused(&format!(
        "{base} sslcert={} sslkey={}",
        cert.display(),
        key.display()
    ));
    assert!(!e.is_retryable(), "{e}");
}

#[test]
fn a_client_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(f) = fixture() else { return };
    let (cert, key) = f.pki.client_cert("loosekey");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = refused(&format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=certuser dbname=postgres sslrootcert={} sslcert={} sslkey={}",
        port(&f.server),
        ca(&f.pki),
        cert.display(),
        key.display()
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("mode 0644") && msg.contains("chmod 600"),
        "{msg}"
    );
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
    assert!(matches!(e, StoreError::InvalidRequest { .. }), "{e:?}");
}

#[test]
fn missing_files_are_named() {
    let Some(f) = fixture() else { return };
    let p = port(&f.server);
    let msg = refused(&format!(
        "host=127.0.0.1 port={p} user=postgres sslrootcert=/nonexistent/ca.pem"
    ))
    .to_string();
    assert!(
        msg.contains("cannot read sslrootcert /nonexistent/ca.pem"),
        "{msg}"
    );
    let not_pem = f.pki.dir().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let msg = refused(&format!(
        "host=127.0.0.1 port={p} user=postgres sslrootcert={}",
        not_pem.display()
    ))
    .to_string();
    assert!(msg.contains("holds no PEM certificate"), "{msg}");
}

#[test]
fn a_server_without_tls() {
    let Some(server) = TestServer::builder().tcp().start() else {
        return;
    };
    let base = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        port(&server)
    );
    for mode in ["require", "verify-full"] {
        let e = refused(&format!("{base} sslmode={mode}"));
        let msg = e.to_string();
        assert!(msg.contains("does not accept TLS connections"), "{msg}");
        assert!(!e.is_retryable());
    }
    // prefer falls back to plain TCP, and the store says it is not encrypted.
    let store = connect(&format!("{base} sslmode=prefer")).unwrap();
    round_trip(&store, "plain");
    let security = store.connection_security().unwrap();
    assert!(!security.is_encrypted() && !security.is_verified());
    assert!(
        security.to_string().starts_with("NOT encrypted"),
        "{security}"
    );
}

#[test]
fn a_unix_socket_needs_no_tls() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    // The TCP default (verify-full, system roots) does not apply to a local socket.
    let store = PostgresStore::connect(&server.conninfo(), PostgresOptions::default()).unwrap();
    let security = store.connection_security().unwrap();
    assert!(security.unix_socket && security.is_verified() && !security.is_encrypted());
    assert!(
        security.to_string().contains("local; no TLS needed"),
        "{security}"
    );
    assert!(Path::new(&security.server.split(' ').next().unwrap()).is_dir());
}
