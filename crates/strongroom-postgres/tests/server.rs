//! Connecting, schemas, migrations, credentials in Debug output, and the test server.

use strongroom_postgres::test_server::TestServer;
use strongroom_postgres::{PostgresOptions, PostgresStore};
use strongroom_store::{Batch, Expect, ReadView, SCHEMA_VERSION, Store, StoreError, Table};

fn put(store: &dyn Store, key: &str) {
    let mut b = Batch::new();
    b.put(Table::Meta, key, "v", Expect::Absent);
    store.commit(&b).unwrap();
}

#[test]
fn schemas_isolate_vaults() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let a = server.fresh_store();
    let b = server.fresh_store();
    put(&a, "only-in-a");
    assert_eq!(b.get(Table::Meta, b"only-in-a").unwrap(), None);
    put(&b, "only-in-a");
    assert_eq!(a.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(a.backend(), "postgres");
}

#[test]
fn reconnecting_keeps_data_and_migrates_once() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let options = PostgresOptions::default()
        .with_schema(Some(server.fresh_schema()))
        .with_pool_size(2);
    let first = server.store_with(options.clone());
    put(&first, "k");
    let second = server.store_with(options.clone());
    assert!(second.get(Table::Meta, b"k").unwrap().is_some());
    assert_eq!(second.options(), &options);
    let mut raw = postgres::Client::connect(&server.conninfo(), postgres::NoTls).unwrap();
    let schema = options.schema.as_deref().unwrap();
    let n: i64 = raw
        .query_one(
            format!("SELECT count(*) FROM \"{schema}\".strongroom_migrations").as_str(),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        n,
        i64::from(strongroom_store::SCHEMA_VERSION),
        "one row per migration, each applied once"
    );
}

#[test]
fn concurrent_first_connects_migrate_safely() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let schema = server.fresh_schema();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let schema = schema.clone();
            s.spawn(move || {
                let store = server.store_with(
                    PostgresOptions::default()
                        .with_schema(Some(schema))
                        .with_pool_size(1),
                );
                assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            });
        }
    });
}

#[test]
fn newer_schema_is_refused() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let schema = server.fresh_schema();
    let options = PostgresOptions::default().with_schema(Some(schema.clone()));
    drop(server.store_with(options.clone()));
    let mut raw = postgres::Client::connect(&server.conninfo(), postgres::NoTls).unwrap();
    raw.batch_execute(&format!(
        "INSERT INTO \"{schema}\".strongroom_migrations (version) VALUES ({})",
        SCHEMA_VERSION + 1
    ))
    .unwrap();
    match PostgresStore::connect(&server.conninfo(), options) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn fresh_database_and_url_form() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    let conninfo = server.create_database().unwrap();
    let store = PostgresStore::connect(&conninfo, PostgresOptions::default()).unwrap();
    put(&store, "k");
    let dbname = conninfo.rsplit("dbname=").next().unwrap();
    let socket = server
        .socket_dir()
        .display()
        .to_string()
        .replace('/', "%2F");
    let url = format!("postgresql://postgres@{socket}/{dbname}");
    let via_url = PostgresStore::connect(&url, PostgresOptions::default()).unwrap();
    assert!(via_url.get(Table::Meta, b"k").unwrap().is_some());
}

#[test]
fn debug_output_hides_the_password() {
    let Some(server) = TestServer::shared() else {
        return;
    };
    // Trust authentication ignores the password, so the store connects.
    let conninfo = format!("{} password=hunter2-secret", server.conninfo());
    let store = PostgresStore::connect(&conninfo, PostgresOptions::default()).unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("postgres"), "{shown}");
    let opts = format!("{:?}", PostgresOptions::default());
    assert!(opts.contains("pool_size: 8"), "{opts}");
}

#[test]
fn bad_requests_are_invalid() {
    assert!(matches!(
        PostgresStore::connect("host=/tmp port=notaport", PostgresOptions::default()),
        Err(StoreError::InvalidRequest { .. })
    ));
    for bad in ["", &"x".repeat(64)] {
        let options = PostgresOptions::default().with_schema(Some(bad.to_owned()));
        assert!(matches!(
            PostgresStore::connect("host=/tmp user=x", options),
            Err(StoreError::InvalidRequest { .. })
        ));
    }
}

#[test]
fn own_server_stops_on_drop_and_errors_become_unavailable() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let dir = server.socket_dir().to_path_buf();
    let store = PostgresStore::connect(&server.conninfo(), PostgresOptions::default()).unwrap();
    put(&store, "k");
    assert!(format!("{server:?}").contains("srpg-"));
    server.stop();
    assert!(!dir.exists(), "server directory left behind");
    match store.get(Table::Meta, b"k") {
        Err(e @ StoreError::Unavailable { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// A schema written by strongroom's first schema version (tables only) is migrated in
/// place: its rows stay, the log heads are computed from the logs, appends continue at
/// the head and only there, and the store has a generation.
#[test]
fn a_version_1_schema_is_migrated_in_place() {
    use std::fmt::Write as _;
    let Some(server) = TestServer::shared() else {
        return;
    };
    let schema = server.fresh_schema();
    let mut raw = postgres::Client::connect(&server.conninfo(), postgres::NoTls).unwrap();
    let mut ddl = format!(
        "CREATE SCHEMA \"{schema}\";\n\
         CREATE TABLE \"{schema}\".strongroom_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());\n\
         INSERT INTO \"{schema}\".strongroom_migrations (version) VALUES (1);\n"
    );
    for t in Table::ALL {
        let _ = writeln!(
            ddl,
            "CREATE TABLE \"{schema}\".sr_{} (k bytea PRIMARY KEY, v bytea NOT NULL, ver bigint NOT NULL);",
            t.name()
        );
    }
    for seq in 0u64..3 {
        let _ = writeln!(
            ddl,
            "INSERT INTO \"{schema}\".sr_audit VALUES ('\\x{}'::bytea, 'a'::bytea, 1);",
            hex::encode(seq.to_be_bytes())
        );
    }
    let _ = writeln!(
        ddl,
        "INSERT INTO \"{schema}\".sr_meta VALUES ('kept'::bytea, 'v'::bytea, 4);"
    );
    raw.batch_execute(&ddl).unwrap();

    let store = server.store_with(PostgresOptions::default().with_schema(Some(schema.clone())));
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.get(Table::Meta, b"kept").unwrap().unwrap().version, 4);
    assert_eq!(store.log_head(Table::Audit).unwrap(), Some(2));
    store.generation().unwrap();
    let append = |table, seq| {
        let mut b = Batch::new();
        b.append(table, seq, "x");
        store.commit(&b)
    };
    assert!(append(Table::Audit, 2).unwrap_err().is_conflict(), "taken");
    assert!(append(Table::Audit, 4).unwrap_err().is_conflict(), "a gap");
    append(Table::Audit, 3).unwrap();
    assert!(
        append(Table::MemberLog, 1).unwrap_err().is_conflict(),
        "a gap"
    );
    append(Table::MemberLog, 0).unwrap();
    // Absence checks on a log follow its head.
    let mut check = Batch::new();
    check.check(Table::Audit, 4u64.to_be_bytes().to_vec(), Expect::Absent);
    store.commit(&check).unwrap();
    let mut check = Batch::new();
    check.check(Table::Audit, 3u64.to_be_bytes().to_vec(), Expect::Absent);
    assert!(store.commit(&check).unwrap_err().is_conflict());
}
