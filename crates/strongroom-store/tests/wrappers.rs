//! The test wrappers are transparent when no fault or rule is set: they pass the
//! conformance suite themselves.

mod faulty_without_faults {
    use strongroom_store::{FaultyStore, MemoryStore};
    strongroom_store::conformance_tests!(FaultyStore::new(MemoryStore::new()));
}

mod adversarial_without_rules {
    use strongroom_store::{AdversarialStore, MemoryStore};
    strongroom_store::conformance_tests!(AdversarialStore::new(MemoryStore::new()));
}

mod optional_fixture {
    use strongroom_store::MemoryStore;
    strongroom_store::conformance_tests!(optional: Some(MemoryStore::new()));
}
