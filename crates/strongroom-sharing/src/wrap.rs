//! Vault keys for members: HPKE [`Grant`]s of an epoch key to a member's logged KEM key
//! (X-Wing for hybrid identities, X25519 for classical ones), and the [`ChainLink`] by which
//! each epoch key wraps the one before it.
//!
//! Specified in `docs/spec/grant.md` and `docs/spec/chain-link.md`.

use core::fmt;

use hpke::aead::{AeadTag, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::rand_core::{CryptoRng, TryCryptoRng, TryRng, UnwrapErr};
use hpke::{Deserializable as _, OpModeR, OpModeS, Serializable as _};
use sha2::{Digest as _, Sha256};
use strongroom_crypto::aead::{WRAPPED_KEY_LEN, WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{CryptoError, DecodeError, Key256, KeyId, MemberId, VaultId, random};
use strongroom_envelope::{Epoch, VaultKey};
use zeroize::Zeroizing;

use crate::identity::{ClassicalKem, HpkePrivate, HpkePublic, HybridKem, KemKind, PublicKem};
use crate::{Identity, PublicIdentity, SharingError};

const GRANT_INFO_DOMAIN: &[u8] = b"strongroom/v1/grant\0";
const GRANT_INFO_DOMAIN_HYBRID: &[u8] = b"strongroom/v2/grant\0";
const RECIPIENT_DOMAIN: &[u8] = b"strongroom/v1/grant-recipient\0";
const RECIPIENT_DOMAIN_HYBRID: &[u8] = b"strongroom/v2/grant-recipient\0";
const CHAIN_AAD_DOMAIN: &[u8] = b"strongroom/v1/epoch-chain\0";

/// Length of an X-Wing encapsulated key (ML-KEM-768 ciphertext 1088 ‖ X25519 share 32).
pub const XWING_ENC_LEN: usize = 1120;

/// The kernel's random number generator on every call (no user-space buffering), for HPKE.
/// A failing kernel RNG panics inside HPKE's encapsulation, as `rand_core`'s `OsRng` does.
pub(crate) struct KernelRng;

impl TryRng for KernelRng {
    type Error = CryptoError;

    fn try_next_u32(&mut self) -> Result<u32, CryptoError> {
        Ok(u32::from_le_bytes(random::array()?))
    }

    fn try_next_u64(&mut self) -> Result<u64, CryptoError> {
        Ok(u64::from_le_bytes(random::array()?))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), CryptoError> {
        random::fill(dest)
    }
}

impl TryCryptoRng for KernelRng {}

/// The RNG HPKE encapsulation draws from in production.
pub(crate) fn kernel_rng() -> UnwrapErr<KernelRng> {
    UnwrapErr(KernelRng)
}

/// Whether an X25519 public value is of low order (or on the twist's small subgroup): the
/// X25519 function maps it to the all-zero shared secret whatever the (clamped) scalar, as
/// a multiple of the cofactor. RFC 7748 §6.1 lets an implementation abort on that; age's
/// mlkem768x25519 and strongroom's hybrid grants do (the C2SP age test `hybrid_low_order`).
pub(crate) fn is_low_order_x25519(point: &[u8; 32]) -> bool {
    // Any clamped scalar k = 8·k' with 0 < k' < ℓ: k·P = k'·(8P) is the identity exactly when
    // 8P is, i.e. when P has small order.
    x25519_dalek::x25519([0x5a; 32], *point) == [0u8; 32]
}

/// The X25519 share at the end of an X-Wing encapsulated key.
pub(crate) fn xwing_x25519_share(enc: &[u8]) -> Option<[u8; 32]> {
    enc.get(XWING_ENC_LEN - 32..XWING_ENC_LEN)?.try_into().ok()
}

fn seal_kem<K: hpke::Kem, R: CryptoRng>(
    recipient: &K::PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, Vec<u8>), SharingError> {
    let mut buf = Zeroizing::new(plaintext.to_vec());
    let (enc, tag) =
        hpke::single_shot_seal_inout_detached_with_rng::<ChaCha20Poly1305, HkdfSha256, K>(
            &OpModeS::Base,
            recipient,
            info,
            buf.as_mut_slice().into(),
            aad,
            rng,
        )
        .map_err(|_| CryptoError::TooLong)?;
    let mut out = core::mem::take(&mut *buf);
    out.extend_from_slice(&tag.to_bytes());
    Ok((enc.to_bytes().to_vec(), out))
}

fn open_kem<K: hpke::Kem>(
    recipient: &K::PrivateKey,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let ct_len = ciphertext.len().checked_sub(16)?;
    let enc = K::EncappedKey::from_bytes(enc).ok()?;
    let tag = AeadTag::<ChaCha20Poly1305>::from_bytes(&ciphertext[ct_len..]).ok()?;
    let mut buf = Zeroizing::new(ciphertext[..ct_len].to_vec());
    hpke::single_shot_open_inout_detached::<ChaCha20Poly1305, HkdfSha256, K>(
        &OpModeR::Base,
        recipient,
        &enc,
        info,
        buf.as_mut_slice().into(),
        aad,
        &tag,
    )
    .ok()?;
    Some(buf)
}

/// HPKE base-mode seal (RFC 9180 §6.1) with HKDF-SHA256 and ChaCha20-Poly1305 to a
/// DHKEM(X25519, HKDF-SHA256) or X-Wing public key: returns `enc` and `ciphertext ‖ tag`.
pub(crate) fn hpke_seal<R: CryptoRng>(
    recipient: &HpkePublic,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, Vec<u8>), SharingError> {
    match recipient {
        HpkePublic::X25519(pk) => seal_kem::<ClassicalKem, R>(pk, info, aad, plaintext, rng),
        HpkePublic::XWing(pk) => seal_kem::<HybridKem, R>(pk, info, aad, plaintext, rng),
    }
}

/// HPKE base-mode open: `None` when the ciphertext, `enc`, `info` or `aad` do not match, and
/// for an X-Wing `enc` whose X25519 share has low order (an all-zero X25519 secret).
pub(crate) fn hpke_open(
    recipient: &HpkePrivate,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    match recipient {
        HpkePrivate::X25519(sk) => open_kem::<ClassicalKem>(sk, enc, info, aad, ciphertext),
        HpkePrivate::XWing(sk) => {
            if enc.len() != XWING_ENC_LEN || is_low_order_x25519(&xwing_x25519_share(enc)?) {
                return None;
            }
            open_kem::<HybridKem>(sk, enc, info, aad, ciphertext)
        }
    }
}

/// The hash that names a grant's recipient key:
/// SHA-256(`"strongroom/v1/grant-recipient" ‖ 0x00 ‖` X25519 public key) for a classical
/// identity, SHA-256(`"strongroom/v2/grant-recipient" ‖ 0x00 ‖` X-Wing public key) for a
/// hybrid one.
pub fn recipient_key_hash(identity: &PublicIdentity) -> [u8; 32] {
    recipient_hash_of(identity.public_kem())
}

fn recipient_hash_of(key: &PublicKem) -> [u8; 32] {
    let domain = match key {
        PublicKem::X25519(_) => RECIPIENT_DOMAIN,
        PublicKem::XWing(_) => RECIPIENT_DOMAIN_HYBRID,
    };
    Sha256::new()
        .chain_update(domain)
        .chain_update(key.bytes())
        .finalize()
        .into()
}

/// An epoch's vault key HPKE-encrypted to one member's logged KEM key.
///
/// Byte layout, version 2 (to a hybrid identity, 1237 bytes):
///
/// ```text
/// offset  size  field
/// 0       1     version = 2
/// 1       16    vault id
/// 17      4     epoch (big-endian u32)
/// 21      16    recipient member id
/// 37      32    recipient key hash (see recipient_key_hash)
/// 69      1120  HPKE enc (the X-Wing ciphertext: ML-KEM-768 1088 ‖ X25519 share 32)
/// 1189    48    HPKE ciphertext of the 32-byte vault key ‖ 16-byte tag
/// ```
///
/// HPKE: RFC 9180 base mode, KEM 0x647a X-Wing (MLKEM768-X25519, draft-ietf-hpke-pq-03),
/// KDF 0x0001 HKDF-SHA256, AEAD 0x0003 ChaCha20-Poly1305.
/// `info = "strongroom/v2/grant" ‖ 0x00 ‖ vault id ‖ epoch ‖ member id ‖ recipient key
/// hash`; `aad = bytes[0..69]`. A grant whose X25519 share has low order is refused before
/// decapsulation (its X25519 secret would be all zeros).
///
/// Version 1 (to a classical identity, 149 bytes), as above with a 32-byte enc (the
/// ephemeral X25519 public key) at offset 69 and the ciphertext at 101; HPKE KEM 0x0020
/// DHKEM(X25519, HKDF-SHA256); `info = "strongroom/v1/grant" ‖ 0x00 ‖ vault id ‖ epoch ‖
/// member id ‖ recipient X25519 public key`.
///
/// A grant's version must match the recipient's identity: a classical grant to a hybrid
/// member is refused (its recipient key hash cannot match). Stored in
/// [`Table::Wraps`](strongroom_store::Table) under `"g" ‖ epoch (u32 BE) ‖ member id`.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    kem: KemKind,
    vault: VaultId,
    epoch: Epoch,
    member: MemberId,
    recipient: [u8; 32],
    enc: Vec<u8>,
    ciphertext: [u8; 48],
}

impl Grant {
    /// The version byte of a classical grant.
    pub const VERSION: u8 = 1;
    /// The version byte of a hybrid grant.
    pub const VERSION_HYBRID: u8 = 2;
    /// Encoded length of a classical grant.
    pub const LEN: usize = 149;
    /// Encoded length of a hybrid grant.
    pub const HYBRID_LEN: usize = 69 + XWING_ENC_LEN + 48;
    const HEADER_LEN: usize = 69;
    const FORMAT: &'static str = "member grant";

    /// Encrypts `key` to `recipient` with its KEM. Low-level: [`Session`](crate::Session)
    /// operations make grants only to identities verified against the log.
    pub fn seal(
        vault: VaultId,
        key: &VaultKey,
        recipient: &PublicIdentity,
    ) -> Result<Self, SharingError> {
        Self::seal_with_rng(vault, key, recipient, &mut kernel_rng())
    }

    pub(crate) fn seal_with_rng<R: CryptoRng>(
        vault: VaultId,
        key: &VaultKey,
        recipient: &PublicIdentity,
        rng: &mut R,
    ) -> Result<Self, SharingError> {
        let public = recipient
            .hpke_public()
            .ok_or(SharingError::BadIdentitySignature)?;
        let mut grant = Self {
            kem: recipient.kem(),
            vault,
            epoch: key.epoch(),
            member: recipient.member_id(),
            recipient: recipient_key_hash(recipient),
            enc: Vec::new(),
            ciphertext: [0; 48],
        };
        let info = grant.info(recipient.public_kem());
        let (enc, ct) = hpke_seal(
            &public,
            &info,
            &grant.header(),
            key.expose_secret().expose_secret(),
            rng,
        )?;
        grant.enc = enc;
        grant.ciphertext.copy_from_slice(&ct);
        Ok(grant)
    }

    pub(crate) fn info(&self, recipient_key: &PublicKem) -> Vec<u8> {
        let mut info = Vec::with_capacity(GRANT_INFO_DOMAIN_HYBRID.len() + 68);
        match self.kem {
            KemKind::X25519 => info.extend_from_slice(GRANT_INFO_DOMAIN),
            KemKind::XWing => info.extend_from_slice(GRANT_INFO_DOMAIN_HYBRID),
        }
        info.extend_from_slice(self.vault.as_bytes());
        info.extend_from_slice(&self.epoch.get().to_be_bytes());
        info.extend_from_slice(self.member.as_bytes());
        match self.kem {
            KemKind::X25519 => info.extend_from_slice(recipient_key.bytes()),
            KemKind::XWing => info.extend_from_slice(&self.recipient),
        }
        info
    }

    pub(crate) fn header(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::HEADER_LEN);
        w.u8(self.kem.version())
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
        if self.vault != vault || !self.is_addressed_to(public) {
            return None;
        }
        let plain = hpke_open(
            &identity.hpke_private().ok()?,
            &self.enc,
            &self.info(public.public_kem()),
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

    /// The KEM it was made with ([`KemKind::XWing`] for a hybrid grant).
    pub fn kem(&self) -> KemKind {
        self.kem
    }

    /// Whether it names `public`'s encryption key as its recipient key (and has its KEM).
    pub fn is_addressed_to(&self, public: &PublicIdentity) -> bool {
        self.member == public.member_id()
            && self.kem == public.kem()
            && self.recipient == recipient_key_hash(public)
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
        let version = r.version(&[Self::VERSION, Self::VERSION_HYBRID])?;
        let kem = if version == Self::VERSION_HYBRID {
            KemKind::XWing
        } else {
            KemKind::X25519
        };
        let vault = VaultId::from_bytes(r.array("vault id")?);
        let epoch = read_epoch(&mut r)?;
        let member = MemberId::from_bytes(r.array("member id")?);
        let recipient = r.array("recipient key hash")?;
        let enc = match kem {
            KemKind::X25519 => r.bytes(32, "enc")?.to_vec(),
            KemKind::XWing => r.bytes(XWING_ENC_LEN, "enc")?.to_vec(),
        };
        let ciphertext = r.array("ciphertext")?;
        r.finish()?;
        Ok(Self {
            kem,
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
            "Grant({}, vault {}, epoch {}, member {})",
            self.kem, self.vault, self.epoch, self.member
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
pub(crate) mod tests {
    use super::*;

    /// Each draw of the production RNG is fresh kernel randomness, whichever width is asked
    /// for (three equal 32-bit draws in a row: probability 2^-64).
    #[test]
    fn the_kernel_rng_draws_fresh_values_of_every_width() {
        use hpke::rand_core::Rng as _;
        let mut rng = kernel_rng();
        let u32s = [rng.next_u32(), rng.next_u32(), rng.next_u32()];
        assert!(u32s[0] != u32s[1] || u32s[1] != u32s[2], "{u32s:?}");
        let u64s = [rng.next_u64(), rng.next_u64()];
        assert_ne!(u64s[0], u64s[1]);
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill_bytes(&mut a);
        rng.fill_bytes(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }

    /// An RNG that returns fixed bytes: the test seam that fixes HPKE's encapsulation
    /// randomness (DHKEM draws exactly `ikmE`, X-Wing its 64 bytes of `eseed`).
    pub(crate) struct FixedRng(pub(crate) Vec<u8>);

    impl TryRng for FixedRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_be_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_be_bytes(b))
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
            assert!(dest.len() <= self.0.len(), "fixed RNG exhausted");
            let rest = self.0.split_off(dest.len());
            dest.copy_from_slice(&self.0);
            self.0 = rest;
            Ok(())
        }
    }
    impl TryCryptoRng for FixedRng {}

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
            let pk_r = HpkePublic::X25519(
                <ClassicalKem as hpke::Kem>::PublicKey::from_bytes(&h(&v.pk_rm)).unwrap(),
            );
            let sk_r = HpkePrivate::X25519(
                <ClassicalKem as hpke::Kem>::PrivateKey::from_bytes(&h(&v.sk_rm)).unwrap(),
            );
            // Single-shot mode uses sequence number 0: the first encryption.
            let first = &v.encryptions[0];
            let mut rng = FixedRng(h(&v.ikm_e));
            let (enc, ct) =
                hpke_seal(&pk_r, &h(&v.info), &h(&first.aad), &h(&first.pt), &mut rng).unwrap();
            assert_eq!(enc, h(&v.enc));
            assert_eq!(ct, h(&first.ct));
            let enc = h(&v.enc);
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

    fn identity(name: &str, kem: KemKind) -> Identity {
        Identity::generate_kind(MemberId::generate().unwrap(), name, kem).unwrap()
    }

    #[test]
    fn grant_binds_recipient_vault_and_epoch() {
        for (kem, len) in [
            (KemKind::X25519, Grant::LEN),
            (KemKind::XWing, Grant::HYBRID_LEN),
        ] {
            let vault = VaultId::generate().unwrap();
            let alice = identity("alice", kem);
            let bob = identity("bob", kem);
            let vk = VaultKey::generate(Epoch(3)).unwrap();
            let g = Grant::seal(vault, &vk, alice.public()).unwrap();
            assert_eq!(g.kem(), kem);
            assert_eq!(g.encode().len(), len);
            assert_eq!(g.encode()[0], kem.version());
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
            for at in [80, len - 30, len - 1] {
                let mut bytes = g.encode();
                bytes[at] ^= 1;
                assert!(
                    Grant::decode(&bytes).unwrap().open(vault, &alice).is_none(),
                    "{kem} byte {at}"
                );
            }
            assert!(Grant::decode(&g.encode()[..len - 1]).is_err());
            let mut zero_epoch = g.encode();
            zero_epoch[17..21].copy_from_slice(&[0; 4]);
            assert!(Grant::decode(&zero_epoch).is_err());
        }
    }

    /// A grant relabelled with the other version byte no longer parses, and a hybrid
    /// member's identity is never addressed by a classical grant (and conversely).
    #[test]
    fn grant_versions_match_identity_kinds() {
        let vault = VaultId::generate().unwrap();
        let old = identity("carol", KemKind::X25519);
        let new = old.upgraded_to_hybrid().unwrap();
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let classical = Grant::seal(vault, &vk, old.public()).unwrap();
        let hybrid = Grant::seal(vault, &vk, new.public()).unwrap();
        assert!(!classical.is_addressed_to(new.public()));
        assert!(!hybrid.is_addressed_to(old.public()));
        assert!(classical.open(vault, &new).is_none());
        assert!(hybrid.open(vault, &old).is_none());
        let mut relabelled = classical.encode();
        relabelled[0] = Grant::VERSION_HYBRID;
        assert!(Grant::decode(&relabelled).is_err());
        let mut relabelled = hybrid.encode();
        relabelled[0] = Grant::VERSION;
        assert!(Grant::decode(&relabelled).is_err());
    }

    #[derive(serde::Deserialize)]
    struct XWingVector {
        seed: String,
        eseed: String,
        ss: String,
        sk: String,
        pk: String,
        ct: String,
    }

    /// The X-Wing draft's vectors (tests/data/xwing) through strongroom's identity and grant
    /// layers: the seed as a hybrid identity's KEM secret gives the logged public key, the
    /// encapsulation randomness gives the grant's `enc`, and the grant opens.
    #[test]
    fn xwing_draft_vectors_through_identities_and_grants() {
        let vectors: Vec<XWingVector> = serde_json::from_str(include_str!(
            "../tests/data/xwing/draft-connolly-cfrg-xwing-kem-06.json"
        ))
        .unwrap();
        assert_eq!(vectors.len(), 3);
        let vault = VaultId::generate().unwrap();
        for v in &vectors {
            assert_eq!(v.seed, v.sk);
            let mut seed: [u8; 32] = h(&v.seed).try_into().unwrap();
            let secret = Key256::from_array(&mut seed);
            let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
            let id = Identity::assemble_for_tests(
                MemberId::generate().unwrap(),
                "vector",
                KemKind::XWing,
                secret,
                signing,
            );
            assert_eq!(id.public().encryption_key(), &h(&v.pk)[..]);
            let vk = VaultKey::generate(Epoch(1)).unwrap();
            let mut rng = UnwrapErr(FixedRng(h(&v.eseed)));
            let g = Grant::seal_with_rng(vault, &vk, id.public(), &mut rng).unwrap();
            assert_eq!(g.enc, h(&v.ct));
            assert_eq!(g.open(vault, &id).unwrap().id(), vk.id());
            // The shared secret of the KEM itself.
            let HpkePrivate::XWing(sk) = id.hpke_private().unwrap() else {
                unreachable!()
            };
            let enc = <HybridKem as hpke::Kem>::EncappedKey::from_bytes(&h(&v.ct)).unwrap();
            let ss = <HybridKem as hpke::Kem>::decap(&sk, None, &enc).unwrap();
            assert_eq!(ss.0.to_vec(), h(&v.ss));
        }
    }

    #[derive(serde::Deserialize)]
    struct PqVector {
        mode: u8,
        kem_id: u16,
        kdf_id: u16,
        aead_id: u16,
        info: String,
        #[serde(rename = "ikmE")]
        ikm_e: String,
        #[serde(rename = "ikmR")]
        ikm_r: String,
        #[serde(rename = "skRm")]
        sk_rm: String,
        #[serde(rename = "pkRm")]
        pk_rm: String,
        enc: String,
        shared_secret: String,
        encryptions: Vec<Encryption>,
    }

    /// The draft-ietf-hpke-pq vector for X-Wing with HKDF-SHA256 and ChaCha20-Poly1305 (the
    /// suite of hybrid grants) through the crate's own HPKE layer.
    #[test]
    fn hpke_pq_xwing_vector_through_the_grant_hpke_layer() {
        let vectors: Vec<PqVector> = serde_json::from_str(include_str!(
            "../tests/data/xwing/hpke_pq_xwing_sha256_chacha.json"
        ))
        .unwrap();
        assert_eq!(vectors.len(), 1);
        for v in &vectors {
            assert_eq!((v.mode, v.kem_id, v.kdf_id, v.aead_id), (0, 0x647a, 1, 3));
            let (sk, pk) = <HybridKem as hpke::Kem>::derive_keypair(&h(&v.ikm_r));
            assert_eq!(sk.to_bytes().to_vec(), h(&v.sk_rm));
            assert_eq!(pk.to_bytes().to_vec(), h(&v.pk_rm));
            let public = HpkePublic::XWing(Box::new(pk));
            let private = HpkePrivate::XWing(Box::new(sk.clone()));
            let first = &v.encryptions[0];
            let mut rng = UnwrapErr(FixedRng(h(&v.ikm_e)));
            let (enc, ct) = hpke_seal(
                &public,
                &h(&v.info),
                &h(&first.aad),
                &h(&first.pt),
                &mut rng,
            )
            .unwrap();
            assert_eq!(enc, h(&v.enc));
            assert_eq!(ct, h(&first.ct));
            let pt = hpke_open(&private, &enc, &h(&v.info), &h(&first.aad), &ct).unwrap();
            assert_eq!(*pt, h(&first.pt));
            let encapped = <HybridKem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
            let ss = <HybridKem as hpke::Kem>::decap(&sk, None, &encapped).unwrap();
            assert_eq!(ss.0.to_vec(), h(&v.shared_secret));
            let mut bad = ct.clone();
            bad[0] ^= 1;
            assert!(hpke_open(&private, &enc, &h(&v.info), &h(&first.aad), &bad).is_none());
            assert!(hpke_open(&private, &enc, b"other info", &h(&first.aad), &ct).is_none());
        }
    }

    /// An X-Wing grant whose X25519 share is a low-order point (the one of the C2SP age test
    /// `hybrid_low_order`, of order 8) or the identity is refused before decapsulation, even
    /// when every other byte is what an honest sender would have sent for that share.
    #[test]
    fn hybrid_grants_with_low_order_x25519_shares_are_refused() {
        let order_8: [u8; 32] = [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0xd7,
        ];
        let mut one = [0u8; 32];
        one[0] = 1;
        for bad in [order_8, [0u8; 32], one] {
            assert!(is_low_order_x25519(&bad), "{bad:02x?}");
        }
        let vault = VaultId::generate().unwrap();
        let alice = identity("alice", KemKind::XWing);
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let g = Grant::seal(vault, &vk, alice.public()).unwrap();
        assert!(!is_low_order_x25519(&xwing_x25519_share(&g.enc).unwrap()));
        for bad in [order_8, [0u8; 32]] {
            let mut forged = g.clone();
            forged.enc[XWING_ENC_LEN - 32..].copy_from_slice(&bad);
            assert!(forged.open(vault, &alice).is_none());
            let HpkePrivate::XWing(sk) = alice.hpke_private().unwrap() else {
                unreachable!()
            };
            // hpke's X-Wing would decapsulate it: the check is strongroom's own.
            let enc = <HybridKem as hpke::Kem>::EncappedKey::from_bytes(&forged.enc).unwrap();
            assert!(<HybridKem as hpke::Kem>::decap(&sk, None, &enc).is_ok());
        }
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

        // Each label is checked before unwrapping, on its own: a link wrapped under the
        // current key whose authenticated header names another vault, epoch or wrapping
        // key (a writer holding the key could make one) is refused even though it unwraps.
        let relabel = |edit: fn(&mut ChainLink)| {
            let mut forged = link.clone();
            edit(&mut forged);
            forged.wrapped = wrap_key(
                &WrapKey::new(k2.expose_secret()),
                &forged.aad(),
                k1.expose_secret(),
            )
            .unwrap();
            forged
        };
        let honest = relabel(|_| {});
        assert_eq!(honest.open(vault, &k2).unwrap().id(), k1.id());
        let edits: [fn(&mut ChainLink); 3] = [
            |l| l.vault = VaultId::from_bytes([7; 16]),
            |l| l.epoch = Epoch(3),
            |l| l.key_id = KeyId::from_bytes([7; 8]),
        ];
        for edit in edits {
            assert!(relabel(edit).open(vault, &k2).is_none());
        }
    }
}
