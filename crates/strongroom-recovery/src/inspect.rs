//! Reading what a stanza says without any key: for listings, `doctor` and rotation.

use strongroom_crypto::{Argon2idParams, DecodeError, KeyId};

use strongroom_keyholder::KekKeyholder;

use crate::keyholder::{KeyholderKind, Stanza};
use crate::passphrase::PassphraseBody;
use crate::recovery_key::{RecoveryBody, RecoveryKeyId};

/// The non-secret facts of a stanza, read without any key.
///
/// A listing shows them ("passphrase, Argon2id(m=65536 KiB, t=3, p=4)", "recovery key
/// ABCD-1234", "raw KEK 0123…"), `doctor` compares passphrase parameters with the current
/// profile, and a custody backend reads its locator to know which entry to open.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StanzaInfo {
    /// A [`PassphraseKeyholder`](crate::PassphraseKeyholder) stanza.
    Passphrase {
        /// The Argon2id parameters stored in it (not yet checked against the floor).
        params: Argon2idParams,
    },
    /// A [`RecoveryKey`](crate::RecoveryKey) stanza.
    RecoveryKey {
        /// The id printed next to the recovery key that opens it.
        key_id: RecoveryKeyId,
    },
    /// A [`KekKeyholder`] stanza: a raw KEK or an OS keyring entry.
    Kek {
        /// [`KeyholderKind::RawKek`] or [`KeyholderKind::OsKeyring`].
        kind: KeyholderKind,
        /// The id of the KEK that opens it.
        key_id: KeyId,
        /// Where the KEK is kept (custody-specific; empty for a raw KEK).
        locator: Vec<u8>,
    },
    /// A stanza whose body layout belongs to another crate (PKCS#11: see
    /// `strongroom-pkcs11`), or of a kind this release does not know.
    Other {
        /// The kind.
        kind: KeyholderKind,
    },
}

impl StanzaInfo {
    /// Parses the stanza's body (untrusted bytes: errors, never panics).
    pub fn of(stanza: &Stanza) -> Result<Self, DecodeError> {
        Ok(match stanza.kind {
            KeyholderKind::Passphrase => StanzaInfo::Passphrase {
                params: PassphraseBody::parse(&stanza.body)?.params,
            },
            KeyholderKind::RecoveryKey => {
                RecoveryBody::parse(&stanza.body)?;
                let mut id = [0u8; 4];
                id.copy_from_slice(&stanza.id[..4]);
                StanzaInfo::RecoveryKey {
                    key_id: RecoveryKeyId::from_bytes(id),
                }
            }
            KeyholderKind::RawKek | KeyholderKind::OsKeyring => StanzaInfo::Kek {
                kind: stanza.kind,
                key_id: KeyId::from_bytes(stanza.id),
                locator: KekKeyholder::locator_of(stanza)?.to_vec(),
            },
            kind => StanzaInfo::Other { kind },
        })
    }
}
