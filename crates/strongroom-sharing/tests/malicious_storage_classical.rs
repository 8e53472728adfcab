//! The malicious-storage suite (`helpers/malicious_suite.rs`) on classical identities (X25519 grants, as the first release made them).

use strongroom_sharing::KemKind;

/// The KEM of every identity the suite makes.
const KEM: KemKind = KemKind::X25519;

#[path = "helpers/common.rs"]
mod common;

#[path = "helpers/malicious_suite.rs"]
mod suite;
