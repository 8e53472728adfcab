//! The malicious-storage suite (`helpers/malicious_suite.rs`) with a full member reading:
//! a storage that lies (`AdversarialStore`), with rows pointed at, swapped with or replayed
//! from other records, other vaults or older versions, is refused with a clear error or
//! still returns the right secret; it never returns another secret's value.

/// Whether the suite reads through a scoped member.
const SCOPED: bool = false;

#[path = "helpers/malicious_suite.rs"]
mod suite;
