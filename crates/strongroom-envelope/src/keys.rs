//! Vault keys and their epochs.

use core::fmt;

use strongroom_crypto::aead::WrapKey;
use strongroom_crypto::kdf::hkdf_sha256_expand;
use strongroom_crypto::{CryptoError, Key256, KeyId};

/// A vault-key epoch. Epoch 1 is the first key of a vault; every rotation (or member
/// removal) starts the next one. Epoch 0 is never used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub u32);

impl Epoch {
    /// The first epoch of every vault.
    pub const FIRST: Epoch = Epoch(1);

    /// The epoch after this one.
    #[must_use]
    pub fn next(self) -> Epoch {
        Epoch(self.0.checked_add(1).expect("epoch overflow"))
    }

    /// The raw number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The vault key of one epoch (a KEK): wraps the DEK of every record sealed or rewrapped in
/// that epoch.
///
/// Holds the key, its epoch, its non-secret [`KeyId`] (derived with HKDF, label
/// `strongroom/v1/vault-key-id`), and a prepared XChaCha20-Poly1305 cipher so repeated wraps
/// do not redo the key setup.
pub struct VaultKey {
    epoch: Epoch,
    id: KeyId,
    commitment: [u8; 32],
    key: Key256,
    wrap: WrapKey,
}

impl VaultKey {
    /// The HKDF label of vault key ids.
    pub const KEY_ID_LABEL: &'static str = "strongroom/v1/vault-key-id";
    /// The HKDF label of vault key commitments.
    pub const COMMITMENT_LABEL: &'static str = "strongroom/v2/vault-key-commitment";

    /// A fresh random vault key for `epoch`.
    pub fn generate(epoch: Epoch) -> Result<Self, CryptoError> {
        Ok(Self::from_key(epoch, Key256::generate()?))
    }

    /// Wraps existing key material (unwrapped from a keyholder or a member grant).
    pub fn from_key(epoch: Epoch, key: Key256) -> Self {
        let id = KeyId::derive(&key, Self::KEY_ID_LABEL);
        let mut commitment = [0u8; 32];
        hkdf_sha256_expand(&key, &[Self::COMMITMENT_LABEL.as_bytes()], &mut commitment)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
        let wrap = WrapKey::new(&key);
        Self {
            epoch,
            id,
            commitment,
            key,
            wrap,
        }
    }

    /// The epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The non-secret key id: 64 bits, for display and to name the key a wrap needs.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The non-secret 256-bit key commitment,
    /// `HKDF-Expand-SHA256(PRK = key, info = "strongroom/v2/vault-key-commitment", L = 32)`:
    /// what the signed membership log records for an epoch, so that a key offered by
    /// storage is accepted only if it is the logged one (finding another key with the same
    /// commitment takes about 2^128 work; with the 64-bit id alone, about 2^64).
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }

    /// The key material, for wrapping this key to keyholders and members.
    pub fn expose_secret(&self) -> &Key256 {
        &self.key
    }

    pub(crate) fn wrap_key(&self) -> &WrapKey {
        &self.wrap
    }
}

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VaultKey(epoch {}, id {}, <redacted>)",
            self.epoch, self.id
        )
    }
}
