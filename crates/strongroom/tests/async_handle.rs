//! The async handle on a multi-threaded runtime with two workers: 64 tasks put and get
//! while a rotation runs, all within a time limit that catches a deadlock (a worker thread
//! blocked on a store call would stall the others); cancelled calls never leave half a
//! record; and no call runs on a worker thread.

use std::sync::Arc;
use std::time::Duration;

use strongroom::recovery::RawKek;
use strongroom::store::Store;
use strongroom::{AsyncVault, CreateOptions, RotateOptions, Vault};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

/// A vault on a new SQLite store in `dir`, with the store and the KEK that unlocks it.
fn sqlite_vault_parts(dir: &std::path::Path) -> (Vault, Arc<dyn Store>, RawKek) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.join("v.db"), SqliteOptions::default()).unwrap());
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    (vault, store, kek)
}

fn sqlite_vault(dir: &std::path::Path) -> Vault {
    sqlite_vault_parts(dir).0
}

/// A multi-threaded runtime of two worker threads, with timers.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn sixty_four_tasks_read_and_write_while_a_rotation_runs() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let vault = AsyncVault::new(sqlite_vault(dir.path())).unwrap();
    rt.block_on(async {
        for i in 0..300 {
            vault
                .put("seed", format!("s{i}"), format!("seed-{i}").into_bytes())
                .await
                .unwrap();
        }
        let work = async {
            let rotation = {
                let v = vault.clone();
                tokio::spawn(async move {
                    v.rotate_vault_key(RotateOptions::default().with_batch_size(10))
                        .await
                })
            };
            let tasks: Vec<_> = (0..64)
                .map(|t| {
                    let v = vault.clone();
                    tokio::spawn(async move {
                        for round in 0..10 {
                            let name = format!("t{t}");
                            let value = format!("task {t} round {round}");
                            v.put("load", name.clone(), value.clone().into_bytes())
                                .await
                                .unwrap();
                            let got = v.get("load", name).await.unwrap();
                            assert_eq!(got.expose_secret(), value.as_bytes());
                            let seed = v.get("seed", format!("s{}", (t * 7 + round) % 300)).await;
                            assert!(seed.is_ok(), "{seed:?}");
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            rotation.await.unwrap()
        };
        let report = tokio::time::timeout(Duration::from_mins(2), work)
            .await
            .expect("a deadlock: the work did not finish in time")
            .unwrap();
        assert!(report.epoch.0 >= 2);
        assert_eq!(vault.list("load").await.unwrap().len(), 64);
        for t in 0..64 {
            let got = vault.get("load", format!("t{t}")).await.unwrap();
            assert_eq!(got.expose_secret(), format!("task {t} round 9").as_bytes());
        }
        assert!(
            vault
                .vault()
                .pending_rewrap(vault.vault().epoch())
                .unwrap()
                .is_empty()
        );
    });
}

/// A call whose future is dropped (a client gone, a timeout) still finishes its blocking
/// work: every cancelled put leaves the secret whole at the old version or the new one.
#[test]
fn cancelled_calls_never_leave_half_a_record() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let vault = AsyncVault::new(sqlite_vault(dir.path())).unwrap();
    rt.block_on(async {
        for i in 0..50u64 {
            vault
                .put("c", format!("k{i}"), b"v1".to_vec())
                .await
                .unwrap();
        }
        for i in 0..50u64 {
            let v = vault.clone();
            let put = v.put("c", format!("k{i}"), vec![b'x'; 40_000]);
            // Cancelled after 0 to ~1 ms, before or after it reached the store.
            let _ = tokio::time::timeout(Duration::from_micros(20 * i), put).await;
        }
        // Let every started call finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..50u64 {
            let s = vault.get("c", format!("k{i}")).await.unwrap();
            match s.meta().version {
                1 => assert_eq!(s.expose_secret(), b"v1"),
                2 => assert_eq!(s.expose_secret(), &vec![b'x'; 40_000][..]),
                v => panic!("version {v}"),
            }
        }
        assert!(vault.vault().audit_verify().is_ok());
    });
}

/// The calls run on the handle's threads, not on the runtime's worker threads: three calls
/// that can only finish together (a barrier of three) finish on a runtime of two worker
/// threads. Calls run on the workers would block both, and the third would never start.
#[test]
fn calls_run_off_the_worker_threads() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let vault = AsyncVault::new(sqlite_vault(dir.path())).unwrap();
    rt.block_on(async {
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let (v, b) = (vault.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    v.run(move |vault| {
                        b.wait();
                        vault.list("ns")
                    })
                    .await
                })
            })
            .collect();
        let all = async {
            for c in calls {
                c.await.unwrap().unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("the calls blocked the runtime's worker threads");
    });
}

/// Calls run on the handle's named threads; a panicking call panics in its caller and the
/// thread goes on with the next call; a handle of one thread still runs every call, in
/// turn.
#[test]
fn calls_run_on_the_handles_threads_and_survive_a_panic() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let vault = AsyncVault::with_threads(sqlite_vault(dir.path()), 1).unwrap();
    rt.block_on(async {
        let name = vault
            .run(|_| Ok(std::thread::current().name().map(str::to_owned)))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("strongroom-async-0"));
        let v = vault.clone();
        let panicked = tokio::spawn(async move {
            v.run(|_| -> Result<(), strongroom::VaultError> { panic!("boom") })
                .await
        })
        .await
        .unwrap_err();
        assert!(panicked.is_panic());
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let v = vault.clone();
                tokio::spawn(async move {
                    v.put("p", format!("k{i}"), vec![i]).await.unwrap();
                    v.get("p", format!("k{i}")).await.unwrap()
                })
            })
            .collect();
        for (i, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap().expose_secret(), &[i as u8]);
        }
    });
}

/// Every call of the handle gives what the same `Vault` call gives.
#[test]
fn each_call_matches_the_vault_call() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (created, store, kek) = sqlite_vault_parts(dir.path());
    let vault = AsyncVault::new(created).unwrap();
    rt.block_on(async {
        let report = vault
            .put_many(vec![
                ("app".into(), "A".into(), b"1".to_vec()),
                ("app".into(), "B".into(), b"2".to_vec()),
                ("other".into(), "C".into(), b"3".to_vec()),
            ])
            .await
            .unwrap();
        assert_eq!(report.written.len(), 3);
        let got = vault
            .get_many("app", vec!["B".into(), "missing".into(), "A".into()])
            .await
            .unwrap();
        let values: Vec<Option<Vec<u8>>> = got
            .iter()
            .map(|s| s.as_ref().map(|s| s.expose_secret().to_vec()))
            .collect();
        assert_eq!(values, [Some(b"2".to_vec()), None, Some(b"1".to_vec())]);
        let loaded = vault.load("app").await.unwrap();
        let mut names: Vec<&str> = loaded.iter().map(|s| s.meta().name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["A", "B"]);
        vault.delete("app", "A").await.unwrap();
        let listed = vault.list("app").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "B");
        assert!(vault.get("app", "A").await.is_err());

        // Another handle on the same store rotates; refresh brings this one up to date.
        let before = vault.vault().epoch();
        let other = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&kek)
            .unwrap();
        let rotated = other.rotate_vault_key().unwrap().epoch;
        assert!(rotated > before);
        assert_eq!(vault.vault().epoch(), before);
        vault.refresh().await.unwrap();
        assert_eq!(vault.vault().epoch(), rotated);
    });
}
