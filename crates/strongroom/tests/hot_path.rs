//! What each operation costs in store calls, counted (not timed): a read of a current
//! value is one store read, a put one read and one commit, a delete one read and one
//! commit, a namespace load one scan (after a look at the membership log's head), reads of
//! several names one call (and the log's head when a name is not found). Run on the
//! in-memory store, on SQLite and on PostgreSQL (one call is one round trip there, once its
//! statements are prepared).

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::store::{Calls, CountingStore, MemoryStore, Store};
use strongroom::{CreateOptions, NewSecret, Vault};

fn costs_on<S: Store + 'static>(inner: S) {
    let counting = Arc::new(CountingStore::new(inner));
    let store: Arc<dyn Store> = counting.clone();
    let (v, _) = Vault::create(
        store,
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    for i in 0..10 {
        v.put("ns", &format!("k{i}"), b"value").unwrap();
    }
    v.put("ns", "big", &vec![7u8; 20_000]).unwrap();
    // Warm: the audit cursor and the server's prepared statements.
    v.put("ns", "k0", b"warm").unwrap();
    v.get("ns", "k0").unwrap();
    v.get_version("ns", "k0", 1).unwrap();
    v.load("ns").unwrap();
    v.get_many("ns", &["k1", "k2"]).unwrap();
    counting.take();

    let cost = |what: &str, f: &mut dyn FnMut()| -> Calls {
        f();
        let c = counting.take();
        eprintln!(
            "{}: {what}: {} reads, {} commits",
            v.backend(),
            c.reads(),
            c.commit
        );
        c
    };
    let c = cost("put of a new version", &mut || {
        v.put("ns", "k1", b"new").unwrap();
    });
    assert_eq!((c.reads(), c.commit, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("put of a new secret", &mut || {
        v.put("ns", "fresh", b"new").unwrap();
    });
    assert_eq!((c.reads(), c.commit, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("get", &mut || {
        v.get("ns", "k1").unwrap();
    });
    assert_eq!((c.reads(), c.total()), (1, 1), "{c:?}");
    let c = cost("get of a value too large to be inline", &mut || {
        v.get("ns", "big").unwrap();
    });
    assert_eq!((c.reads(), c.total()), (2, 2), "{c:?}");
    let c = cost("get of an older version", &mut || {
        v.get_version("ns", "k1", 1).unwrap();
    });
    assert_eq!((c.reads(), c.total()), (2, 2), "{c:?}");
    let c = cost("get_many of 3 names", &mut || {
        let got = v.get_many("ns", &["k2", "k3", "k5"]).unwrap();
        assert_eq!(got.iter().filter(|s| s.is_some()).count(), 3);
    });
    assert_eq!((c.get_many, c.total()), (1, 1), "{c:?}");
    // A name not found also checks that the membership log has not moved (a member
    // removal replaces the metadata key, and with it every blind index).
    let c = cost("get_many with a name not found", &mut || {
        let got = v.get_many("ns", &["k2", "nope"]).unwrap();
        assert_eq!(got.iter().filter(|s| s.is_some()).count(), 1);
    });
    assert_eq!((c.get_many, c.log_head, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("get of a name not found", &mut || {
        v.get("ns", "nope").unwrap_err();
    });
    assert_eq!((c.get, c.log_head, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("delete", &mut || {
        v.delete("ns", "k4").unwrap();
    });
    assert_eq!((c.reads(), c.commit, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("list of a namespace", &mut || {
        v.list("ns").unwrap();
    });
    // The membership log's head (a scan under a replaced metadata key would miss rows),
    // one scan of the index; the one body too large to be inline in one more read.
    assert_eq!((c.log_head, c.scan, c.total()), (1, 1, 3), "{c:?}");
    let small = |i: usize| format!("s{i}");
    let secrets: Vec<(String, Vec<u8>)> = (0..100).map(|i| (small(i), vec![b'v'; 100])).collect();
    let batch: Vec<NewSecret<'_>> = secrets
        .iter()
        .map(|(n, val)| NewSecret {
            namespace: "bulk",
            name: n,
            value: val,
        })
        .collect();
    let c = cost("put_many of 100 secrets", &mut || {
        v.put_many(&batch).unwrap();
    });
    assert_eq!((c.reads(), c.commit, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("load of a namespace of 100 secrets", &mut || {
        assert_eq!(v.load("bulk").unwrap().len(), 100);
    });
    assert_eq!((c.log_head, c.scan, c.total()), (1, 1, 2), "{c:?}");
    let c = cost("run's environment of 100 secrets", &mut || {
        assert_eq!(v.env_vars("bulk").unwrap().len(), 100);
    });
    assert_eq!(c.total(), 2, "{c:?}");
    let c = cost("stream of a namespace of 100 secrets", &mut || {
        assert_eq!(v.secrets("bulk").unwrap().count(), 100);
    });
    assert_eq!(
        (c.log_head, c.snapshot, c.scan, c.total()),
        (1, 1, 1, 3),
        "{c:?}"
    );
}

/// A stream reads a page of index entries per call, sees one point in time, and yields
/// every secret once.
#[test]
fn a_stream_pages_through_a_fixed_point_in_time() {
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    let (v, _) = Vault::create(
        store,
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    let n = 2 * strongroom::SECRETS_PAGE + 88;
    let secrets: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("s{i:04}"), format!("v{i}").into_bytes()))
        .collect();
    let batch: Vec<NewSecret<'_>> = secrets
        .iter()
        .map(|(name, value)| NewSecret {
            namespace: "big",
            name,
            value,
        })
        .collect();
    v.put_many(&batch).unwrap();
    v.put("other", "s0000", b"elsewhere").unwrap();
    counting.take();

    let mut stream = v.secrets("big").unwrap();
    let first = stream.next().unwrap().unwrap();
    // Written after the stream started: not seen by it.
    v.put("big", "late", b"late").unwrap();
    v.put("big", &first.meta().name, b"changed").unwrap();
    let mut seen = vec![first];
    seen.extend(stream.map(Result::unwrap));
    let c = counting.take();
    // One snapshot, three pages, and the two puts' one read and one commit each.
    assert_eq!((c.snapshot, c.scan, c.commit), (1, 3, 2), "{c:?}");
    assert_eq!(seen.len(), n);
    let mut names: Vec<String> = seen.iter().map(|s| s.meta().name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n, "each secret once");
    for s in &seen {
        let i: usize = s.meta().name[1..].parse().unwrap();
        assert_eq!(s.meta().namespace, "big");
        assert_eq!(s.expose_secret(), format!("v{i}").as_bytes());
    }
    assert_eq!(v.get("big", "late").unwrap().expose_secret(), b"late");
}

#[test]
fn costs_on_memory() {
    costs_on(MemoryStore::new());
}

#[test]
fn costs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    costs_on(
        strongroom_sqlite::SqliteStore::open(
            dir.path().join("v.db"),
            strongroom_sqlite::SqliteOptions::default(),
        )
        .unwrap(),
    );
}

#[test]
fn costs_on_postgres() {
    // `shared` says loudly why when no server can start, and fails under
    // STRONGROOM_REQUIRE_PG=1 (CI).
    let Some(server) = strongroom_postgres::test_server::TestServer::shared() else {
        return;
    };
    costs_on(server.fresh_store());
}

/// Between a member removal (a new metadata key) and the rotation that moves the index to
/// it, a name is looked up under both keys, still in one store call; a put moves the row
/// it touches in its one commit.
#[test]
fn reads_between_a_removal_and_the_rotation_cost_the_same() {
    use strongroom::sharing::{Identity, Role};
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = counting.clone();
    let (v, _) = Vault::create(
        store,
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    for i in 0..10 {
        v.put("ns", &format!("k{i}"), b"value").unwrap();
    }
    let bob = Identity::generate("bob").unwrap();
    let confirmed = bob
        .public()
        .confirm_fingerprint(&bob.public().fingerprint().digits())
        .unwrap();
    v.add_member(bob.public(), Role::Member, confirmed).unwrap();
    v.remove_member(bob.member_id()).unwrap();
    counting.take();
    v.get("ns", "k1").unwrap();
    let c = counting.take();
    assert_eq!((c.get_many, c.total()), (1, 1), "get: {c:?}");
    v.get_many("ns", &["k2", "k3", "k4"]).unwrap();
    let c = counting.take();
    assert_eq!((c.get_many, c.total()), (1, 1), "get_many: {c:?}");
    v.put("ns", "k1", b"moved").unwrap();
    let c = counting.take();
    assert_eq!((c.reads(), c.commit, c.total()), (1, 1, 2), "put: {c:?}");
    assert_eq!(v.list("ns").unwrap().len(), 10);
    v.rotate_vault_key().unwrap();
    counting.take();
    v.get("ns", "k1").unwrap();
    let c = counting.take();
    assert_eq!((c.get, c.total()), (1, 1), "get after the rotation: {c:?}");
}
