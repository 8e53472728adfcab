//! Vault keys for members: HPKE [`Grant`]s of an epoch key to a member's logged X25519 key,
//! and the [`ChainLink`] by which each epoch key wraps the one before it.

use core::fmt;

use hpke::aead::{AeadTag, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::rand_core::{CryptoRng, RngCore};
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use sha2::{Digest as _, Sha256};
use strongroom_crypto::aead::{WRAPPED_KEY_LEN, WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{CryptoError, DecodeError, Key256, KeyId, MemberId, VaultId};
use strongroom_envelope::{Epoch, VaultKey};
use zeroize::Zeroizing;

use crate::identity::Kem;
use crate::{Identity, PublicIdentity, SharingError};

const GRANT_INFO_DOMAIN: &[u8] = b"strongroom/v1/grant\0";
const RECIPIENT_DOMAIN: &[u8] = b"strongroom/v1/grant-recipient\0";
const CHAIN_AAD_DOMAIN: &[u8] = b"strongroom/v1/epoch-chain\0";

/// HPKE base-mode seal (RFC 9180 §6.1, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
/// ChaCha20-Poly1305): returns `enc` and `ciphertext ‖ tag`.
pub(crate) fn hpke_seal<R: RngCore + CryptoRng>(
    recipient: &<Kem as hpke::Kem>::PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<([u8; 32], Vec<u8>), SharingError> {
    let mut buf = Zeroizing::new(plaintext.to_vec());
    let (enc, tag) =
        hpke::single_shot_seal_in_place_detached::<ChaCha20Poly1305, HkdfSha256, Kem, R>(
            &OpModeS::Base,
            recipient,
            info,
            &mut buf,
            aad,
            rng,
        )
        .map_err(|_| CryptoError::TooLong)?;
    let mut out = core::mem::take(&mut *buf);
    out.extend_from_slice(&tag.to_bytes());
    Ok((enc.to_bytes().into(), out))
}

/// HPKE base-mode open: `None` when the ciphertext, `enc`, `info` or `aad` do not match.
pub(crate) fn hpke_open(
    recipient: &<Kem as hpke::Kem>::PrivateKey,
    enc: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let ct_len = ciphertext.len().checked_sub(16)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).ok()?;
    let tag = AeadTag::<ChaCha20Poly1305>::from_bytes(&ciphertext[ct_len..]).ok()?;
    let mut buf = Zeroizing::new(ciphertext[..ct_len].to_vec());
    hpke::single_shot_open_in_place_detached::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        recipient,
        &enc,
        info,
        &mut buf,
        aad,
        &tag,
    )
    .ok()?;
    Some(buf)
}

/// The hash that names a grant's recipient key:
/// SHA-256(`"strongroom/v1/grant-recipient" ‖ 0x00 ‖` X25519 public key).
pub fn recipient_key_hash(encryption_key: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(RECIPIENT_DOMAIN)
        .chain_update(encryption_key)
        .finalize()
        .into()
}

/// An epoch's vault key HPKE-encrypted to one member's logged X25519 key.
///
/// Byte layout (version 1, 149 bytes):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       16    vault id
/// 17      4     epoch (big-endian u32)
/// 21      16    recipient member id
/// 37      32    recipient key hash (see recipient_key_hash)
/// 69      32    HPKE enc (the ephemeral X25519 public key)
/// 101     48    HPKE ciphertext of the 32-byte vault key ‖ 16-byte tag
/// ```
///
/// HPKE: RFC 9180 base mode, KEM 0x0020 DHKEM(X25519, HKDF-SHA256), KDF 0x0001
/// HKDF-SHA256, AEAD 0x0003 ChaCha20-Poly1305.
/// `info = "strongroom/v1/grant" ‖ 0x00 ‖ vault id ‖ epoch ‖ member id ‖ recipient X25519
/// public key`; `aad = bytes[0..69]`. Stored in [`Table::Wraps`](strongroom_store::Table)
/// under `"g" ‖ epoch (u32 BE) ‖ member id`.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    vault: VaultId,
    epoch: Epoch,
    member: MemberId,
    recipient: [u8; 32],
    enc: [u8; 32],
    ciphertext: [u8; 48],
}

impl Grant {
    /// The version byte.
    pub const VERSION: u8 = 1;
    /// Encoded length.
    pub const LEN: usize = 149;
    const HEADER_LEN: usize = 69;
    const FORMAT: &'static str = "member grant";

    /// Encrypts `key` to `recipient`. Low-level: [`Session`](crate::Session) operations
    /// make grants only to identities verified against the log.
    pub fn seal(
        vault: VaultId,
        key: &VaultKey,
        recipient: &PublicIdentity,
    ) -> Result<Self, SharingError> {
        Self::seal_with_rng(vault, key, recipient, &mut rand_core::OsRng)
    }

    pub(crate) fn seal_with_rng<R: RngCore + CryptoRng>(
        vault: VaultId,
        key: &VaultKey,
        recipient: &PublicIdentity,
        rng: &mut R,
    ) -> Result<Self, SharingError> {
        let mut grant = Self {
            vault,
            epoch: key.epoch(),
            member: recipient.member_id(),
            recipient: recipient_key_hash(recipient.encryption_key()),
            enc: [0; 32],
            ciphertext: [0; 48],
        };
        let info = grant.info(recipient.encryption_key());
        let (enc, ct) = hpke_seal(
            &recipient.hpke_public(),
            &info,
            &grant.header(),
            key.expose_secret().expose_secret(),
            rng,
        )?;
        grant.enc = enc;
        grant.ciphertext.copy_from_slice(&ct);
        Ok(grant)
    }

    fn info(&self, recipient_key: &[u8; 32]) -> Vec<u8> {
        let mut info = Vec::with_capacity(GRANT_INFO_DOMAIN.len() + 68);
        info.extend_from_slice(GRANT_INFO_DOMAIN);
        info.extend_from_slice(self.vault.as_bytes());
        info.extend_from_slice(&self.epoch.get().to_be_bytes());
        info.extend_from_slice(self.member.as_bytes());
        info.extend_from_slice(recipient_key);
        info
    }

    fn header(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::HEADER_LEN);
        w.u8(Self::VERSION)
            .bytes(self.vault.as_bytes())
            .u32(self.epoch.get())
            .bytes(self.member.as_bytes())
            .bytes(&self.recipient);
        w.into_vec()
    }

    /// Decrypts the grant with `identity`, which must be its recipient. Checks the
    /// recipient fields first; `None` when the grant is not addressed to `identity` or does
    /// not decrypt.
    ///
    /// Low-level: the key is not yet trusted. Anyone who knows a member's public key can
    /// make a grant that opens; [`unlock`](crate::unlock) accepts a key only if its id is
    /// the one the signed log names for that epoch.
    pub fn open(&self, vault: VaultId, identity: &Identity) -> Option<VaultKey> {
        let public = identity.public();
        if self.vault != vault
            || self.member != public.member_id()
            || self.recipient != recipient_key_hash(public.encryption_key())
        {
            return None;
        }
        let plain = hpke_open(
            &identity.hpke_private(),
            &self.enc,
            &self.info(public.encryption_key()),
            &self.header(),
            &self.ciphertext,
        )?;
        let key = Key256::from_slice(&plain).ok()?;
        Some(VaultKey::from_key(self.epoch, key))
    }

    /// The vault it belongs to.
    pub fn vault_id(&self) -> VaultId {
        self.vault
    }

    /// The epoch of the key it carries.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The recipient member.
    pub fn member_id(&self) -> MemberId {
        self.member
    }

    /// Whether it names `public`'s encryption key as its recipient key.
    pub fn is_addressed_to(&self, public: &PublicIdentity) -> bool {
        self.member == public.member_id()
            && self.recipient == recipient_key_hash(public.encryption_key())
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let vault = VaultId::from_bytes(r.array("vault id")?);
        let epoch = read_epoch(&mut r)?;
        let member = MemberId::from_bytes(r.array("member id")?);
        let recipient = r.array("recipient key hash")?;
        let enc = r.array("enc")?;
        let ciphertext = r.array("ciphertext")?;
        r.finish()?;
        Ok(Self {
            vault,
            epoch,
            member,
            recipient,
            enc,
            ciphertext,
        })
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Grant(vault {}, epoch {}, member {})",
            self.vault, self.epoch, self.member
        )
    }
}

pub(crate) fn read_epoch(r: &mut Reader<'_>) -> Result<Epoch, DecodeError> {
    let e = r.u32("epoch")?;
    if e == 0 {
        return Err(r.invalid("epoch", "epoch 0 is never used"));
    }
    Ok(Epoch(e))
}

/// The link by which epoch `e`'s vault key wraps epoch `e - 1`'s (XChaCha20-Poly1305), so
/// whoever holds the current key reads every earlier epoch.
///
/// Byte layout (version 1, 109 bytes):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       16    vault id
/// 17      4     epoch e of the wrapping key (big-endian u32, e >= 2)
/// 21      8     key id of VK[e]
/// 29      8     key id of VK[e-1]
/// 37      72    nonce (24) ‖ encrypted VK[e-1] (32) ‖ tag (16)
/// ```
///
/// Associated data: `"strongroom/v1/epoch-chain" ‖ 0x00 ‖ bytes[0..37]` (vault id, both
/// epochs and both key ids). Stored in [`Table::Wraps`](strongroom_store::Table) under
/// `"c" ‖ epoch e (u32 BE)`.
#[derive(Clone, PartialEq, Eq)]
pub struct ChainLink {
    vault: VaultId,
    epoch: Epoch,
    key_id: KeyId,
    prev_key_id: KeyId,
    wrapped: [u8; WRAPPED_KEY_LEN],
}

impl ChainLink {
    /// The version byte.
    pub const VERSION: u8 = 1;
    /// Encoded length.
    pub const LEN: usize = 37 + WRAPPED_KEY_LEN;
    const FORMAT: &'static str = "epoch chain link";

    /// Wraps `previous` under `current` (`previous` must be the epoch before `current`).
    pub fn seal(
        vault: VaultId,
        current: &VaultKey,
        previous: &VaultKey,
    ) -> Result<Self, SharingError> {
        if previous.epoch().get().checked_add(1) != Some(current.epoch().get()) {
            return Err(SharingError::InvalidChange {
                reason: "a chain link wraps the epoch just before the wrapping key's",
            });
        }
        let mut link = Self {
            vault,
            epoch: current.epoch(),
            key_id: current.id(),
            prev_key_id: previous.id(),
            wrapped: [0; WRAPPED_KEY_LEN],
        };
        link.wrapped = wrap_key(
            &WrapKey::new(current.expose_secret()),
            &link.aad(),
            previous.expose_secret(),
        )?;
        Ok(link)
    }

    /// Unwraps the previous epoch's key with `current`; `None` if `current` is not the
    /// wrapping key or the link was modified. Low-level: check the result against the
    /// logged key id of that epoch.
    pub fn open(&self, vault: VaultId, current: &VaultKey) -> Option<VaultKey> {
        if self.vault != vault || self.epoch != current.epoch() || self.key_id != current.id() {
            return None;
        }
        let key = unwrap_key(
            &WrapKey::new(current.expose_secret()),
            &self.aad(),
            &self.wrapped,
        )
        .ok()?;
        Some(VaultKey::from_key(Epoch(self.epoch.get() - 1), key))
    }

    fn header(&self) -> Writer {
        let mut w = Writer::with_capacity(Self::LEN);
        w.u8(Self::VERSION)
            .bytes(self.vault.as_bytes())
            .u32(self.epoch.get())
            .bytes(self.key_id.as_bytes())
            .bytes(self.prev_key_id.as_bytes());
        w
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = CHAIN_AAD_DOMAIN.to_vec();
        aad.extend_from_slice(self.header().as_slice());
        aad
    }

    /// The epoch of the wrapping key.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = self.header();
        w.bytes(&self.wrapped);
        w.into_vec()
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let vault = VaultId::from_bytes(r.array("vault id")?);
        let epoch = read_epoch(&mut r)?;
        if epoch.get() < 2 {
            return Err(r.invalid("epoch", "the first epoch has no link"));
        }
        let key_id = KeyId::from_bytes(r.array("key id")?);
        let prev_key_id = KeyId::from_bytes(r.array("previous key id")?);
        let wrapped = r.array("wrapped key")?;
        r.finish()?;
        Ok(Self {
            vault,
            epoch,
            key_id,
            prev_key_id,
            wrapped,
        })
    }
}

impl fmt::Debug for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChainLink(vault {}, epoch {} ({}) -> {})",
            self.vault, self.epoch, self.key_id, self.prev_key_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RNG that returns fixed bytes: the test seam that fixes HPKE's ephemeral key
    /// (the KEM draws exactly `ikmE` from it).
    pub(crate) struct FixedRng(pub(crate) Vec<u8>);

    impl RngCore for FixedRng {
        fn next_u32(&mut self) -> u32 {
            let mut b = [0u8; 4];
            self.fill_bytes(&mut b);
            u32::from_be_bytes(b)
        }
        fn next_u64(&mut self) -> u64 {
            let mut b = [0u8; 8];
            self.fill_bytes(&mut b);
            u64::from_be_bytes(b)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            assert!(dest.len() <= self.0.len(), "fixed RNG exhausted");
            let rest = self.0.split_off(dest.len());
            dest.copy_from_slice(&self.0);
            self.0 = rest;
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), hpke::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for FixedRng {}

    #[derive(serde::Deserialize)]
    struct Vector {
        mode: u8,
        kem_id: u16,
        kdf_id: u16,
        aead_id: u16,
        info: String,
        #[serde(rename = "ikmE")]
        ikm_e: String,
        #[serde(rename = "skRm")]
        sk_rm: String,
        #[serde(rename = "pkRm")]
        pk_rm: String,
        enc: String,
        encryptions: Vec<Encryption>,
    }

    #[derive(serde::Deserialize)]
    struct Encryption {
        aad: String,
        ct: String,
        pt: String,
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 9180 Appendix A.2.1 (and the cfrg test-vectors.json it comes from) through the
    /// crate's own seal/open, with the ephemeral key fixed by the RNG seam.
    #[test]
    fn rfc9180_base_x25519_sha256_chacha20poly1305() {
        let vectors: Vec<Vector> = serde_json::from_str(include_str!(
            "../tests/data/rfc9180/base_x25519_sha256_chacha.json"
        ))
        .unwrap();
        assert!(!vectors.is_empty());
        for v in &vectors {
            assert_eq!((v.mode, v.kem_id, v.kdf_id, v.aead_id), (0, 0x20, 1, 3));
            let pk_r = <Kem as hpke::Kem>::PublicKey::from_bytes(&h(&v.pk_rm)).unwrap();
            let sk_r = <Kem as hpke::Kem>::PrivateKey::from_bytes(&h(&v.sk_rm)).unwrap();
            // Single-shot mode uses sequence number 0: the first encryption.
            let first = &v.encryptions[0];
            let mut rng = FixedRng(h(&v.ikm_e));
            let (enc, ct) =
                hpke_seal(&pk_r, &h(&v.info), &h(&first.aad), &h(&first.pt), &mut rng).unwrap();
            assert_eq!(enc.to_vec(), h(&v.enc));
            assert_eq!(ct, h(&first.ct));
            let enc: [u8; 32] = h(&v.enc).try_into().unwrap();
            let pt = hpke_open(&sk_r, &enc, &h(&v.info), &h(&first.aad), &h(&first.ct)).unwrap();
            assert_eq!(*pt, h(&first.pt));
            // Any change to ct, aad or info is refused.
            let mut bad = h(&first.ct);
            bad[0] ^= 1;
            assert!(hpke_open(&sk_r, &enc, &h(&v.info), &h(&first.aad), &bad).is_none());
            assert!(hpke_open(&sk_r, &enc, b"other info", &h(&first.aad), &h(&first.ct)).is_none());
            assert!(hpke_open(&sk_r, &enc, &h(&v.info), b"other aad", &h(&first.ct)).is_none());
        }
    }

    #[test]
    fn grant_binds_recipient_vault_and_epoch() {
        let vault = VaultId::generate().unwrap();
        let alice = Identity::generate("alice").unwrap();
        let bob = Identity::generate("bob").unwrap();
        let vk = VaultKey::generate(Epoch(3)).unwrap();
        let g = Grant::seal(vault, &vk, alice.public()).unwrap();
        assert_eq!(g.encode().len(), Grant::LEN);
        assert_eq!(Grant::decode(&g.encode()).unwrap(), g);
        assert!(g.is_addressed_to(alice.public()));
        assert!(!g.is_addressed_to(bob.public()));
        let k = g.open(vault, &alice).unwrap();
        assert_eq!(k.id(), vk.id());
        assert_eq!(k.epoch(), Epoch(3));
        assert!(g.open(vault, &bob).is_none());
        assert!(g.open(VaultId::generate().unwrap(), &alice).is_none());
        // Relabelled epoch or vault: the HPKE info/aad no longer match.
        let mut moved = g.clone();
        moved.epoch = Epoch(4);
        assert!(moved.open(vault, &alice).is_none());
        let mut other_vault = g.clone();
        other_vault.vault = VaultId::generate().unwrap();
        assert!(other_vault.open(other_vault.vault, &alice).is_none());
        let mut bytes = g.encode();
        bytes[120] ^= 1;
        assert!(Grant::decode(&bytes).unwrap().open(vault, &alice).is_none());
        assert!(Grant::decode(&bytes[..148]).is_err());
        let mut zero_epoch = g.encode();
        zero_epoch[17..21].copy_from_slice(&[0; 4]);
        assert!(Grant::decode(&zero_epoch).is_err());
    }

    #[test]
    fn chain_link_opens_previous_key_only_with_current() {
        let vault = VaultId::generate().unwrap();
        let k1 = VaultKey::generate(Epoch(1)).unwrap();
        let k2 = VaultKey::generate(Epoch(2)).unwrap();
        let link = ChainLink::seal(vault, &k2, &k1).unwrap();
        assert_eq!(link.encode().len(), ChainLink::LEN);
        assert_eq!(ChainLink::decode(&link.encode()).unwrap(), link);
        let back = link.open(vault, &k2).unwrap();
        assert_eq!(back.id(), k1.id());
        assert_eq!(back.epoch(), Epoch(1));
        assert!(link.open(vault, &k1).is_none());
        assert!(link.open(VaultId::generate().unwrap(), &k2).is_none());
        let other2 = VaultKey::generate(Epoch(2)).unwrap();
        assert!(link.open(vault, &other2).is_none());
        let mut bytes = link.encode();
        bytes[21] ^= 1;
        let relabelled = ChainLink::decode(&bytes).unwrap();
        assert!(relabelled.open(vault, &k2).is_none());
        let mut bytes = link.encode();
        bytes[60] ^= 1;
        assert!(
            ChainLink::decode(&bytes)
                .unwrap()
                .open(vault, &k2)
                .is_none()
        );
    }
}
