//! Reads never fail because a writer committed between the index, body and data-key
//! reads: a new version that prunes the one being read, or a re-encryption replacing body
//! and data key under the reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use strongroom::recovery::RawKek;
use strongroom::store::Store;
use strongroom::{CreateOptions, RotateOptions, Vault};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

fn vault(history: u32) -> (Vault, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("v.db"), SqliteOptions::default()).unwrap());
    let (v, _) = Vault::create(
        store,
        &RawKek::generate().unwrap(),
        &CreateOptions::default().with_history(history),
    )
    .unwrap();
    (v, dir)
}

#[test]
fn reads_survive_pruning_writers() {
    let (v, _dir) = vault(1);
    v.put("ns", "hot", b"0").unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = v.clone();
        let stop = &stop;
        s.spawn(move || {
            for i in 1..300 {
                writer.put("ns", "hot", format!("{i}").as_bytes()).unwrap();
            }
            stop.store(true, Ordering::SeqCst);
        });
        let mut reads = 0;
        while !stop.load(Ordering::SeqCst) {
            let got = v.get("ns", "hot").unwrap();
            assert!(got.expose_str().unwrap().parse::<u32>().is_ok());
            reads += 1;
        }
        assert!(reads > 0);
    });
}

#[test]
fn reads_survive_a_reencryption() {
    let (v, _dir) = vault(10);
    for i in 0..200 {
        v.put("ns", &format!("k{i}"), format!("v{i}").as_bytes())
            .unwrap();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let r = v.clone();
        let stop = &stop;
        s.spawn(move || {
            r.reencrypt_all(RotateOptions::default().with_batch_size(16), &mut |_| {})
                .unwrap();
            stop.store(true, Ordering::SeqCst);
        });
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let k = i % 200;
            assert_eq!(
                v.get("ns", &format!("k{k}")).unwrap().expose_str(),
                Some(format!("v{k}").as_str())
            );
            i += 1;
        }
    });
}
