//! The progress a rotation reports counts each record version once: it rises to the total
//! and stops there (the verification pass at the end is not counted again), and the audit
//! entry of the finished rotation says how many versions it processed.

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::store::{MemoryStore, Store};
use strongroom::{Action, CreateOptions, RotateOptions, Vault};

#[test]
fn progress_rises_to_the_total_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    for i in 0..130 {
        vault.put("ns", &format!("s{i}"), b"v").unwrap();
    }
    for round in 0..2 {
        let mut seen = Vec::new();
        vault
            .rotate_vault_key_with(RotateOptions::default().with_batch_size(16), &mut |p| {
                seen.push((p.done, p.total));
            })
            .unwrap();
        assert!(!seen.is_empty());
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "round {round}: {seen:?}"
        );
        assert!(
            seen.iter()
                .all(|&(done, total)| done <= total && total == 130),
            "round {round}: {seen:?}"
        );
        assert_eq!(seen.last().unwrap().0, 130, "round {round}");
        let finish = vault
            .audit_list(0, 10_000)
            .unwrap()
            .into_iter()
            .rev()
            .find(|e| e.action == Action::RotateFinish)
            .unwrap();
        assert!(finish.detail.contains("processed=130"), "{}", finish.detail);
    }
}
