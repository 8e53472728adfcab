//! Streaming replication on loopback: a primary and hot standbys (`pg_basebackup -R`),
//! reads on a standby, writes refused there with a clear error, multi-host strings that
//! find the primary (or a standby), synchronous replication and promotion.

use strongroom_postgres::test_server::{Replication, TestServer};
use strongroom_postgres::{PostgresOptions, PostgresStore};
use strongroom_store::{Batch, Expect, ReadView, Store, StoreError, Table};

fn options() -> PostgresOptions {
    PostgresOptions::default()
        .with_schema(Some("replicated".into()))
        .with_pool_size(2)
}

fn put(store: &dyn Store, key: &str) -> Result<(), StoreError> {
    let mut b = Batch::new();
    b.put(Table::Meta, key, key, Expect::Absent);
    store.commit(&b).map(|_| ())
}

fn tcp(server: &TestServer, extra: &str) -> String {
    format!("{} sslmode=disable {extra}", server.tcp_conninfo())
}

#[test]
fn a_standby_serves_reads_and_refuses_writes_clearly() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let standby = primary.standby("standby1", Replication::Async);
    let writer = PostgresStore::connect(&tcp(&primary, ""), options()).unwrap();
    put(&writer, "k").unwrap();
    standby.wait_for_replay(&primary);

    // Connected to the standby without saying so: reads work, writes are refused by the
    // server, and the store knows it is on a read-only server.
    let reader = PostgresStore::connect(&tcp(&standby, ""), options()).unwrap();
    assert!(reader.get(Table::Meta, b"k").unwrap().is_some());
    assert!(
        reader
            .snapshot()
            .unwrap()
            .get(Table::Meta, b"k")
            .unwrap()
            .is_some()
    );
    assert!(reader.is_read_only());
    assert!(!writer.is_read_only());
    let e = put(&reader, "nope").unwrap_err();
    assert!(e.is_read_only() && !e.is_retryable(), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("is a hot standby or set read-only"), "{msg}");
    assert!(msg.contains("target_session_attrs=read-write"), "{msg}");
    let security = reader.connection_security().unwrap();
    assert!(security.server_in_recovery && security.server_read_only);

    // Asked for read-only: refused up front, without asking the server.
    let ro = PostgresStore::connect(&tcp(&primary, ""), options().with_read_only(true)).unwrap();
    assert!(ro.is_read_only());
    let e = put(&ro, "nope").unwrap_err();
    assert!(e.to_string().contains("opened read-only"), "{e}");
    assert!(ro.get(Table::Meta, b"k").unwrap().is_some());

    // target_session_attrs=standby: only a standby will do.
    let e = PostgresStore::connect(&tcp(&primary, "target_session_attrs=standby"), options())
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("the server is a primary that accepts writes, but target_session_attrs=standby wants a standby"),
        "{msg}"
    );
    let on_standby =
        PostgresStore::connect(&tcp(&standby, "target_session_attrs=standby"), options()).unwrap();
    assert!(on_standby.is_read_only());
    assert!(put(&on_standby, "nope").unwrap_err().is_read_only());
}

#[test]
fn multi_host_strings_find_the_server_asked_for() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let standby = primary.standby("standby1", Replication::Async);
    PostgresStore::connect(&tcp(&primary, ""), options()).unwrap();
    standby.wait_for_replay(&primary);
    let (p, s) = (primary.port().unwrap(), standby.port().unwrap());
    let hosts = |ports: &str, attrs: &str| {
        format!(
            "host=127.0.0.1,127.0.0.1 port={ports} user=postgres dbname=postgres sslmode=disable target_session_attrs={attrs}"
        )
    };
    let server_of = |conninfo: &str| {
        PostgresStore::connect(conninfo, options())
            .unwrap()
            .connection_security()
            .unwrap()
            .server
    };
    // The standby is listed first; read-write and primary skip it.
    for attrs in ["read-write", "primary"] {
        assert_eq!(
            server_of(&hosts(&format!("{s},{p}"), attrs)),
            format!("127.0.0.1:{p}")
        );
    }
    // The primary listed first; standby, read-only and prefer-standby skip it.
    for attrs in ["standby", "read-only", "prefer-standby"] {
        assert_eq!(
            server_of(&hosts(&format!("{p},{s}"), attrs)),
            format!("127.0.0.1:{s}")
        );
    }
    let writer =
        PostgresStore::connect(&hosts(&format!("{s},{p}"), "read-write"), options()).unwrap();
    put(&writer, "found-the-primary").unwrap();
    // With the standby down, prefer-standby settles for the primary; standby fails and
    // says why for each host.
    standby.stop_fast();
    assert_eq!(
        server_of(&hosts(&format!("{s},{p}"), "prefer-standby")),
        format!("127.0.0.1:{p}")
    );
    let msg = PostgresStore::connect(&hosts(&format!("{s},{p}"), "standby"), options())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{s}: connection refused")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("127.0.0.1:{p}: the server is a primary")),
        "{msg}"
    );
}

#[test]
fn synchronous_commits_survive_the_primary_and_a_promoted_standby_takes_writes() {
    let Some(primary) = TestServer::builder().tcp().start() else {
        return;
    };
    let standby = primary.standby("sync1", Replication::Sync);
    let writer = PostgresStore::connect(&tcp(&primary, ""), options()).unwrap();
    for i in 0..50 {
        put(&writer, &format!("k{i}")).unwrap();
    }
    // Every acknowledged commit is on the standby; the primary dies at once.
    primary.kill();
    standby.promote();
    let promoted = PostgresStore::connect(&tcp(&standby, ""), options()).unwrap();
    assert!(!promoted.is_read_only());
    for i in 0..50 {
        assert!(
            promoted
                .get(Table::Meta, format!("k{i}").as_bytes())
                .unwrap()
                .is_some(),
            "acknowledged write k{i} lost"
        );
    }
    put(&promoted, "after-failover").unwrap();
}
