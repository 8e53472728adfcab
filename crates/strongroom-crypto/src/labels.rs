//! The registry of strongroom's domain-separation labels.
//!
//! Every byte string of the form `strongroom/vN/…` that the workspace feeds into a
//! cryptographic primitive is listed here once, with the primitive it separates and the
//! crate that uses it. A test (`tests/labels.rs`) scans the source of every crate and fails
//! when a label in the code is missing here, when an entry here is no longer used, or when
//! an entry appears twice. A new label goes here first; a label never changes meaning: a
//! format change takes a new version (`strongroom/v2/dek` next to `strongroom/v1/dek`).
//!
//! Labels used as a prefix of a structured input end with a zero byte where the table says
//! so (`"strongroom/v1/grant\0"`); the registry lists them without it.
//!
//! One label has two uses, kept because the first release wrote data under both:
//! `strongroom/v1/audit` is the HKDF info that derives the audit key from the metadata key
//! *and* the prefix of each audit entry's HMAC under that derived key. The two inputs are
//! under different keys (the metadata key, the audit key), so no output of one can be
//! mistaken for the other; a new label would be introduced with the next audit-entry
//! format.
//!
//! ```
//! use strongroom_crypto::labels::{LABELS, Use, lookup};
//! let dek = lookup("strongroom/v2/dek").unwrap();
//! assert_eq!(dek.uses, &[Use::AeadAad]);
//! assert!(LABELS.iter().all(|l| l.label.starts_with("strongroom/v")));
//! ```
//!
//! Specified in `docs/spec/labels.md`.

/// What a label separates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The `info` of an HKDF-Expand (a derived key or identifier).
    HkdfInfo,
    /// The first input of an HMAC-SHA256.
    HmacPrefix,
    /// The start of an AEAD's associated data.
    AeadAad,
    /// The start of a SHA-256 input (a digest, a fingerprint, a binding).
    HashPrefix,
    /// The start of an Ed25519-signed message.
    SignatureDomain,
    /// The start of an HPKE `info`.
    HpkeInfo,
    /// The `purpose` of a keyholder wrap context (bound into the stanza's associated data).
    WrapPurpose,
}

/// One registered label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The label, without a trailing zero byte.
    pub label: &'static str,
    /// What it separates (two entries only where the module docs say why).
    pub uses: &'static [Use],
    /// The crate that uses it.
    pub crate_name: &'static str,
    /// What it is for.
    pub purpose: &'static str,
}

const fn l(
    label: &'static str,
    uses: &'static [Use],
    crate_name: &'static str,
    purpose: &'static str,
) -> Label {
    Label {
        label,
        uses,
        crate_name,
        purpose,
    }
}

use Use::{AeadAad, HashPrefix, HkdfInfo, HmacPrefix, HpkeInfo, SignatureDomain, WrapPurpose};

/// Every label, sorted by name.
#[rustfmt::skip]
pub const LABELS: &[Label] = &[
    l("strongroom/v1/audit", &[HkdfInfo, HmacPrefix], "strongroom", "audit key from the metadata key; MAC of each audit entry"),
    l("strongroom/v1/aws-kms-stanza-id", &[HkdfInfo], "strongroom-kms", "stanza id of an AWS KMS keyholder"),
    l("strongroom/v1/body", &[AeadAad], "strongroom-envelope", "segments of a sealed record body"),
    l("strongroom/v1/config", &[HkdfInfo], "strongroom", "config key (vault header, epoch times) from the metadata key"),
    l("strongroom/v1/dek", &[AeadAad], "strongroom-envelope", "wrapped data key, format 1 (read only)"),
    l("strongroom/v1/epoch-chain", &[AeadAad], "strongroom-sharing", "key-chain link: an older epoch key sealed under a newer one"),
    l("strongroom/v1/epoch-started", &[HmacPrefix], "strongroom", "MAC of an epoch's start time"),
    l("strongroom/v1/grant", &[HpkeInfo], "strongroom-sharing", "grant of an epoch key to an X25519 identity"),
    l("strongroom/v1/grant-recipient", &[HashPrefix], "strongroom-sharing", "recipient key hash in an X25519 grant"),
    l("strongroom/v1/identity-binding", &[SignatureDomain], "strongroom-sharing", "signature binding an identity's keys to its member id and name"),
    l("strongroom/v1/identity-fingerprint", &[HashPrefix], "strongroom-sharing", "an identity's fingerprint"),
    l("strongroom/v1/index", &[HkdfInfo], "strongroom", "blind-index key from the metadata key"),
    l("strongroom/v1/kek-id", &[HkdfInfo], "strongroom-keyholder", "stanza id of a raw-KEK-style keyholder"),
    l("strongroom/v1/kek-wrap", &[HkdfInfo], "strongroom-keyholder", "wrapping key from a raw KEK"),
    l("strongroom/v1/member-key", &[WrapPurpose], "strongroom-sharing", "a member key wrapped by a keyholder"),
    l("strongroom/v1/member-log", &[SignatureDomain], "strongroom-sharing", "signature of a membership-log entry"),
    l("strongroom/v1/meta-key", &[AeadAad], "strongroom", "the metadata key wrapped under an epoch key"),
    l("strongroom/v1/passphrase-wrap", &[HkdfInfo], "strongroom-recovery", "wrapping key from an Argon2id-stretched passphrase"),
    l("strongroom/v1/pkcs11-rsa-oaep-binding", &[HashPrefix], "strongroom-pkcs11", "binding of an RSA-OAEP stanza to its context"),
    l("strongroom/v1/pkcs11-stanza-id", &[HkdfInfo], "strongroom-pkcs11", "stanza id of a PKCS#11 keyholder"),
    l("strongroom/v1/record", &[HkdfInfo], "strongroom-envelope", "body key and key commitment from a data key"),
    l("strongroom/v1/recovery-key-id", &[HkdfInfo], "strongroom-recovery", "id of a recovery key"),
    l("strongroom/v1/recovery-key-wrap", &[HkdfInfo], "strongroom-recovery", "wrapping key from a recovery key"),
    l("strongroom/v1/rotation-job", &[HmacPrefix], "strongroom", "MAC of a rotation job row"),
    l("strongroom/v1/sealed-identity", &[AeadAad], "strongroom-sharing", "an identity's private keys sealed by a member key"),
    l("strongroom/v1/stanza", &[AeadAad], "strongroom-keyholder", "a keyholder stanza's wrapped key"),
    l("strongroom/v1/transit-stanza-id", &[HkdfInfo], "strongroom-transit", "stanza id of a Transit keyholder"),
    l("strongroom/v1/unwrap-cache", &[HashPrefix], "strongroom-keyholder", "cache key of an unwrapped member key"),
    l("strongroom/v1/vault-header", &[HmacPrefix], "strongroom", "MAC of the vault header"),
    l("strongroom/v1/vault-key-id", &[HkdfInfo], "strongroom-envelope", "8-byte id of an epoch key (display and lookup)"),
    l("strongroom/v2/body-digest", &[HashPrefix], "strongroom-envelope", "digest of a sealed body, bound into its wrapped data key"),
    l("strongroom/v2/dek", &[AeadAad], "strongroom-envelope", "wrapped data key, format 2"),
    l("strongroom/v2/grant", &[HpkeInfo], "strongroom-sharing", "grant of an epoch key to an X-Wing identity"),
    l("strongroom/v2/grant-recipient", &[HashPrefix], "strongroom-sharing", "recipient key hash in an X-Wing grant"),
    l("strongroom/v2/vault-key-commitment", &[HkdfInfo], "strongroom-envelope", "256-bit commitment to an epoch key, logged per epoch"),
    l("strongroom/v3/record-digest", &[HashPrefix], "strongroom", "digest of a record version's place and payload, signed by its writer"),
    l("strongroom/v3/record-writer", &[SignatureDomain], "strongroom-sharing", "signature of a record version by its writer"),
    l("strongroom/v3/scope-grant", &[HpkeInfo], "strongroom-sharing", "grant of a scope key to a scoped member's X-Wing identity"),
    l("strongroom/v3/scope-index", &[HkdfInfo], "strongroom", "a scope's metadata key (its blind index) from a scope key"),
    l("strongroom/v3/scope-link", &[AeadAad], "strongroom-sharing", "a scope key wrapped under a vault key or under the scope's next key"),
];

/// The registry entry of `label` (without a trailing zero byte), if any.
pub fn lookup(label: &str) -> Option<&'static Label> {
    LABELS.iter().find(|l| l.label == label)
}
