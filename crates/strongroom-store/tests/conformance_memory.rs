//! The memory store passes the conformance suite.

use strongroom_store::MemoryStore;

strongroom_store::conformance_tests!(MemoryStore::new());

#[test]
fn case_list_is_complete_and_unique() {
    let mut names: Vec<&str> = strongroom_store::conformance::CASES
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert!(names.len() >= 20);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), strongroom_store::conformance::CASES.len());
}

#[test]
fn run_all_accepts_a_store_with_a_guard() {
    strongroom_store::conformance::run_all(|| (MemoryStore::new(), String::from("guard")));
}
