//! The malicious-storage suite (`helpers/malicious_suite.rs`) on hybrid identities (X-Wing grants, the default).

use strongroom_sharing::KemKind;

/// The KEM of every identity the suite makes.
const KEM: KemKind = KemKind::XWing;

#[path = "helpers/common.rs"]
mod common;

#[path = "helpers/malicious_suite.rs"]
mod suite;
