//! The registry of keyholder kinds and their persisted id bytes.
//!
//! The kind ids are listed in `docs/spec/README.md` and `docs/spec/stanza.md`.

use core::fmt;

/// The kinds of keyholder. The id byte is part of the stanza format: ids are never
/// renumbered or reused.
///
/// | id | kind | crate |
/// | --- | --- | --- |
/// | 1 | `passphrase` | `strongroom-recovery` |
/// | 2 | `recovery-key` | `strongroom-recovery` |
/// | 3 | `raw-kek` | `strongroom-recovery` |
/// | 4 | `os-keyring` | `strongroom-keyring` |
/// | 5 | `pkcs11` | `strongroom-pkcs11` (HSMs, SoftHSM2, TPM 2.0 through tpm2-pkcs11) |
/// | 6 | `transit` | `strongroom-transit` (OpenBao / HashiCorp Vault Transit) |
/// | 7 | `aws-kms` | `strongroom-kms` (AWS KMS) |
/// | 8 | `secret-service` | `strongroom-secret-service` (freedesktop Secret Service: GNOME Keyring, KWallet) |
///
/// A stanza read from storage may carry an id this release does not know (a newer release
/// wrote it): it decodes as [`KeyholderKind::Unknown`], no keyholder of this release claims
/// it, and listings show it as unknown. It is never an error: the member's other keyholders
/// still unlock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyholderKind {
    /// A passphrase stretched with Argon2id.
    Passphrase,
    /// A one-time 256-bit recovery key.
    RecoveryKey,
    /// A raw 32-byte key-encryption key supplied by the application.
    RawKek,
    /// A key kept in the operating system's keyring.
    OsKeyring,
    /// An AES key held in a PKCS#11 token (HSM, or a TPM through tpm2-pkcs11).
    Pkcs11,
    /// A key of an OpenBao / HashiCorp Vault Transit secrets engine.
    Transit,
    /// An AWS KMS key.
    AwsKms,
    /// A key kept in a freedesktop Secret Service collection (GNOME Keyring, KWallet).
    SecretService,
    /// A kind this release does not know, with its id byte (written by a newer release).
    Unknown(u8),
}

impl KeyholderKind {
    /// Every kind this release knows, in id order.
    pub const ALL: [KeyholderKind; 8] = [
        KeyholderKind::Passphrase,
        KeyholderKind::RecoveryKey,
        KeyholderKind::RawKek,
        KeyholderKind::OsKeyring,
        KeyholderKind::Pkcs11,
        KeyholderKind::Transit,
        KeyholderKind::AwsKms,
        KeyholderKind::SecretService,
    ];

    /// The id byte.
    pub const fn id(self) -> u8 {
        match self {
            KeyholderKind::Passphrase => 1,
            KeyholderKind::RecoveryKey => 2,
            KeyholderKind::RawKek => 3,
            KeyholderKind::OsKeyring => 4,
            KeyholderKind::Pkcs11 => 5,
            KeyholderKind::Transit => 6,
            KeyholderKind::AwsKms => 7,
            KeyholderKind::SecretService => 8,
            KeyholderKind::Unknown(id) => id,
        }
    }

    /// Looks a kind this release knows up by id; `None` for any other id.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// The kind of a stored id: a known kind, or [`KeyholderKind::Unknown`].
    pub fn from_stored(id: u8) -> Self {
        Self::from_id(id).unwrap_or(KeyholderKind::Unknown(id))
    }

    /// Whether this release knows the kind.
    pub const fn is_known(self) -> bool {
        !matches!(self, KeyholderKind::Unknown(_))
    }

    /// A stable lowercase name (`passphrase`, `recovery-key`, `raw-kek`, `os-keyring`,
    /// `pkcs11`, `transit`, `aws-kms`, `secret-service`; `unknown` for a kind this release does not know).
    pub const fn name(self) -> &'static str {
        match self {
            KeyholderKind::Passphrase => "passphrase",
            KeyholderKind::RecoveryKey => "recovery-key",
            KeyholderKind::RawKek => "raw-kek",
            KeyholderKind::OsKeyring => "os-keyring",
            KeyholderKind::Pkcs11 => "pkcs11",
            KeyholderKind::Transit => "transit",
            KeyholderKind::AwsKms => "aws-kms",
            KeyholderKind::SecretService => "secret-service", // pragma: allowlist secret
            KeyholderKind::Unknown(_) => "unknown",
        }
    }
}

/// The name; an unknown kind shows its id: `unknown(200)`.
impl fmt::Display for KeyholderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyholderKind::Unknown(id) => write!(f, "unknown({id})"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        for k in KeyholderKind::ALL {
            assert_eq!(KeyholderKind::from_id(k.id()), Some(k));
            assert_eq!(KeyholderKind::from_stored(k.id()), k);
            assert!(k.is_known());
        }
        let mut ids: Vec<u8> = KeyholderKind::ALL.iter().map(|k| k.id()).collect();
        ids.dedup();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8], "ids are frozen");
        assert_eq!(KeyholderKind::from_id(0), None);
        let u = KeyholderKind::from_stored(200);
        assert_eq!(u, KeyholderKind::Unknown(200));
        assert_eq!(u.id(), 200);
        assert!(!u.is_known());
        assert_eq!(u.name(), "unknown");
        assert_eq!(u.to_string(), "unknown(200)");
        assert_eq!(KeyholderKind::Transit.to_string(), "transit");
    }
}
