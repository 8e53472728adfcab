//! The malicious-storage suite (`helpers/malicious_suite.rs`) with a scoped member (a
//! service account) reading: every namespace it reads is a scope, sealed under scope keys
//! and indexed under keys derived from them. The same lies get the same refusals.

/// Whether the suite reads through a scoped member.
const SCOPED: bool = true;

#[path = "helpers/malicious_suite.rs"]
mod suite;
