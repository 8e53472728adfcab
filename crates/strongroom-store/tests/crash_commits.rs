//! A crash at any operation of a multi-commit workflow leaves the store at a commit
//! boundary: each batch is entirely present or entirely absent.

use strongroom_store::{
    Batch, Expect, FaultyStore, MemoryStore, ReadView, ScanRange, Store, StoreError, Table,
};

/// Moves `n` records from a "pending" job into deks/bodies, one batch per record, with
/// an audit entry each; reads before writing like a real caller.
fn workflow(store: &dyn Store, n: u64) -> Result<(), StoreError> {
    for i in 0..n {
        let key = format!("rec/{i}");
        let job = store.get(Table::Jobs, b"progress")?;
        let head = store.log_head(Table::Audit)?;
        let mut b = Batch::new();
        b.put(
            Table::Deks,
            key.as_bytes(),
            format!("dek{i}"),
            Expect::Absent,
        )
        .put(
            Table::Bodies,
            key.as_bytes(),
            format!("body{i}"),
            Expect::Absent,
        )
        .put(
            Table::Jobs,
            b"progress",
            (i + 1).to_be_bytes().to_vec(),
            job.map_or(Expect::Absent, |v| Expect::Version(v.version)),
        )
        .append(Table::Audit, head.map_or(0, |h| h + 1), key.clone());
        store.commit(&b)?;
    }
    Ok(())
}

fn committed_records(store: &dyn ReadView) -> u64 {
    let deks = store
        .scan(Table::Deks, &ScanRange::all(), None, 100)
        .unwrap()
        .rows
        .len() as u64;
    let bodies = store
        .scan(Table::Bodies, &ScanRange::all(), None, 100)
        .unwrap()
        .rows
        .len() as u64;
    let audit = store.log_head(Table::Audit).unwrap().map_or(0, |h| h + 1);
    let progress = store.get(Table::Jobs, b"progress").unwrap().map_or(0, |v| {
        u64::from_be_bytes(v.value.as_slice().try_into().unwrap())
    });
    assert_eq!(deks, bodies, "a batch was half applied");
    assert_eq!(deks, audit, "a batch was half applied");
    assert_eq!(deks, progress, "a batch was half applied");
    deks
}

#[test]
fn crash_at_every_operation_leaves_a_commit_boundary() {
    const RECORDS: u64 = 5;
    let clean = FaultyStore::new(MemoryStore::new());
    workflow(&clean, RECORDS).unwrap();
    let total_ops = clean.ops();
    assert_eq!(total_ops, RECORDS * 3);
    for crash in 0..=total_ops {
        let store = FaultyStore::new(MemoryStore::new());
        store.crash_at(crash);
        let result = workflow(&store, RECORDS);
        assert_eq!(result.is_err(), crash < total_ops);
        let done = committed_records(store.inner());
        assert_eq!(done, crash / 3, "crash at op {crash}");
        assert_eq!(done, store.commits_applied());
        // After a restart the workflow can be finished from where it stopped.
        store.revive();
        let remaining = RECORDS - done;
        let start = done;
        for i in start..start + remaining {
            let key = format!("rec/{i}");
            let job = store.get(Table::Jobs, b"progress").unwrap();
            let head = store.log_head(Table::Audit).unwrap();
            let mut b = Batch::new();
            b.put(
                Table::Deks,
                key.as_bytes(),
                format!("dek{i}"),
                Expect::Absent,
            )
            .put(
                Table::Bodies,
                key.as_bytes(),
                format!("body{i}"),
                Expect::Absent,
            )
            .put(
                Table::Jobs,
                b"progress",
                (i + 1).to_be_bytes().to_vec(),
                job.map_or(Expect::Absent, |v| Expect::Version(v.version)),
            )
            .append(Table::Audit, head.map_or(0, |h| h + 1), key.clone());
            store.commit(&b).unwrap();
        }
        assert_eq!(committed_records(store.inner()), RECORDS);
    }
}

#[test]
fn lost_ack_is_detected_by_re_reading() {
    let store = FaultyStore::new(MemoryStore::new());
    // ops: get(0), log_head(1), commit(2): the first commit's ack is lost.
    store.lose_ack(2);
    let err = workflow(&store, 1).unwrap_err();
    assert!(matches!(err, StoreError::Injected { op: 2 }));
    assert_eq!(committed_records(&store), 1, "the commit was applied");
    // Blindly retrying the same batch conflicts instead of duplicating the record.
    let mut retry = Batch::new();
    retry
        .put(Table::Deks, b"rec/0", b"dek0".to_vec(), Expect::Absent)
        .append(Table::Audit, 0, b"rec/0".to_vec());
    assert!(store.commit(&retry).unwrap_err().is_conflict());
    assert_eq!(committed_records(&store), 1);
}
