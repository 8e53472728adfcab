//! AEAD suites behind one small interface.
//!
//! - Record bodies: AES-256-GCM or ChaCha20-Poly1305 (RFC 8439), both from `ring`, with
//!   96-bit nonces. A [`Suite`] id is written into every body header.
//! - Key wrapping: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), HChaCha20 from `chacha20`
//!   composed with `ring`'s ChaCha20-Poly1305,
//!   whose 192-bit nonces are safe to draw at random for every wrap.
//!
//! Both implement [`Aead`], a detached-tag, in-place interface: the tag is returned
//! separately so callers lay out bytes as their formats say. Authentication failures are
//! one opaque [`CryptoError::Decrypt`]: nothing tells a caller *why* a tag did not verify.

use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};

use zeroize::Zeroize;

use crate::{CryptoError, Key256};

/// Length of every tag produced here.
pub const TAG_LEN: usize = 16;

/// An authenticated cipher with a detached tag, used in place.
///
/// Implementation notes: `seal` encrypts `buf` in place and returns the tag; `open`
/// verifies `tag` over `buf` and `aad` and decrypts in place, leaving `buf` unspecified
/// (the caller must discard it) on failure. A nonce of the wrong length is an
/// [`CryptoError::InvalidLength`] error, never a panic.
pub trait Aead {
    /// Nonce length in bytes.
    fn nonce_len(&self) -> usize;
    /// Encrypts `buf` in place, returning the tag.
    fn seal_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError>;
    /// Verifies and decrypts `buf` in place.
    fn open_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CryptoError>;
}

/// Seals in place with a `ring` key and returns the detached tag.
fn ring_seal(
    key: &LessSafeKey,
    nonce: Nonce,
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], CryptoError> {
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(aad), buf)
        .map_err(|_| CryptoError::TooLong)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Verifies a detached tag and decrypts in place with a `ring` key.
fn ring_open(
    key: &LessSafeKey,
    nonce: Nonce,
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), CryptoError> {
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| CryptoError::Decrypt)?;
    key.open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(tag), buf, 0..)
        .map(|_| ())
        .map_err(|_| CryptoError::Decrypt)
}

/// The body cipher suites. The numeric id is part of every body header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// AES-256-GCM (NIST SP 800-38D), 96-bit nonce. The default on CPUs with AES
    /// instructions.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439), 96-bit nonce. For CPUs without AES instructions.
    ChaCha20Poly1305,
}

impl Suite {
    /// Body nonce length for every suite.
    pub const NONCE_LEN: usize = 12;

    /// The suite's id byte.
    pub const fn id(self) -> u8 {
        match self {
            Suite::Aes256Gcm => 1,
            Suite::ChaCha20Poly1305 => 2,
        }
    }

    /// Looks a suite up by id.
    pub fn from_id(id: u8) -> Result<Self, CryptoError> {
        match id {
            1 => Ok(Suite::Aes256Gcm),
            2 => Ok(Suite::ChaCha20Poly1305),
            other => Err(CryptoError::UnknownSuite { id: other }),
        }
    }

    /// A human name (`"AES-256-GCM"`).
    pub const fn name(self) -> &'static str {
        match self {
            Suite::Aes256Gcm => "AES-256-GCM",
            Suite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }

    /// The suite that is fastest on this CPU (AES-256-GCM where the CPU has AES and
    /// carry-less multiply instructions, ChaCha20-Poly1305 otherwise).
    pub fn preferred() -> Self {
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        {
            if std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
            {
                return Suite::Aes256Gcm;
            }
            Suite::ChaCha20Poly1305
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("aes") {
                return Suite::Aes256Gcm;
            }
            Suite::ChaCha20Poly1305
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
        {
            Suite::ChaCha20Poly1305
        }
    }
}

/// A body key: a `ring` AEAD key of one [`Suite`], ready for use.
pub struct BodyKey {
    suite: Suite,
    key: LessSafeKey,
}

impl BodyKey {
    /// Prepares `key` for `suite` (runs the key schedule once).
    pub fn new(suite: Suite, key: &Key256) -> Self {
        let alg = match suite {
            Suite::Aes256Gcm => &AES_256_GCM,
            Suite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        };
        // Both algorithms take exactly 32-byte keys, so this cannot fail.
        let unbound = UnboundKey::new(alg, key.expose_secret())
            .unwrap_or_else(|_| unreachable!("32-byte key for a 256-bit AEAD"));
        Self {
            suite,
            key: LessSafeKey::new(unbound),
        }
    }

    /// The suite of this key.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    fn nonce(nonce: &[u8]) -> Result<Nonce, CryptoError> {
        Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::InvalidLength {
            what: "nonce",
            expected: Suite::NONCE_LEN,
            got: nonce.len(),
        })
    }
}

impl core::fmt::Debug for BodyKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BodyKey({}, <redacted>)", self.suite.name())
    }
}

impl Aead for BodyKey {
    fn nonce_len(&self) -> usize {
        Suite::NONCE_LEN
    }

    fn seal_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        ring_seal(&self.key, Self::nonce(nonce)?, aad, buf)
    }

    fn open_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CryptoError> {
        ring_open(&self.key, Self::nonce(nonce)?, aad, buf, tag)
    }
}

/// A key-wrapping key: XChaCha20-Poly1305 with 192-bit random nonces.
///
/// Built as draft-irtf-cfrg-xchacha section 2.3 defines it: the subkey is
/// `HChaCha20(key, nonce[0..16])` (the `chacha20` crate), then ChaCha20-Poly1305 (RFC 8439,
/// `ring`) runs under the subkey with the 96-bit nonce `0x00000000 ‖ nonce[16..24]`. This is
/// byte-for-byte the AEAD of the `chacha20poly1305` crate's `XChaCha20Poly1305` (the tests
/// check both against each other and against Wycheproof), and several times faster on short
/// inputs such as wrapped keys.
pub struct WrapKey(Key256);

impl WrapKey {
    /// Nonce length (24 bytes).
    pub const NONCE_LEN: usize = 24;

    /// Prepares `key` for wrapping.
    pub fn new(key: &Key256) -> Self {
        Self(key.clone_secret())
    }

    /// The per-nonce ChaCha20-Poly1305 key and 96-bit nonce.
    fn subkey(&self, nonce: &[u8]) -> Result<(LessSafeKey, Nonce), CryptoError> {
        if nonce.len() != Self::NONCE_LEN {
            return Err(CryptoError::InvalidLength {
                what: "nonce",
                expected: Self::NONCE_LEN,
                got: nonce.len(),
            });
        }
        let mut sub = chacha20::hchacha::<chacha20::cipher::consts::U10>(
            self.0.expose_secret().into(),
            chacha20::cipher::generic_array::GenericArray::from_slice(&nonce[..16]),
        );
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &sub)
                .unwrap_or_else(|_| unreachable!("32-byte ChaCha20 key")),
        );
        sub.as_mut_slice().zeroize();
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&nonce[16..]);
        Ok((key, Nonce::assume_unique_for_key(n)))
    }
}

impl core::fmt::Debug for WrapKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("WrapKey(XChaCha20-Poly1305, <redacted>)")
    }
}

impl Aead for WrapKey {
    fn nonce_len(&self) -> usize {
        Self::NONCE_LEN
    }

    fn seal_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let (key, n) = self.subkey(nonce)?;
        ring_seal(&key, n, aad, buf)
    }

    fn open_detached(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), CryptoError> {
        let (key, n) = self.subkey(nonce)?;
        ring_open(&key, n, aad, buf, tag)
    }
}

/// Wraps a 32-byte key under `wrap` with a fresh random nonce: returns
/// `nonce (24) ‖ ciphertext (32) ‖ tag (16)`, 72 bytes.
///
/// ```
/// use strongroom_crypto::{Key256, aead::{WrapKey, wrap_key, unwrap_key}};
/// let kek = WrapKey::new(&Key256::generate()?);
/// let dek = Key256::generate()?;
/// let blob = wrap_key(&kek, b"context", &dek)?;
/// let back = unwrap_key(&kek, b"context", &blob)?;
/// assert!(bool::from(back.ct_eq(&dek)));
/// assert!(unwrap_key(&kek, b"other context", &blob).is_err());
/// # Ok::<(), strongroom_crypto::CryptoError>(())
/// ```
pub fn wrap_key(
    wrap: &WrapKey,
    aad: &[u8],
    key: &Key256,
) -> Result<[u8; WRAPPED_KEY_LEN], CryptoError> {
    let nonce: [u8; WrapKey::NONCE_LEN] = crate::random::array()?;
    wrap_key_with_nonce(wrap, &nonce, aad, key)
}

/// Length of [`wrap_key`]'s output.
pub const WRAPPED_KEY_LEN: usize = WrapKey::NONCE_LEN + 32 + TAG_LEN;

/// [`wrap_key`] with a caller-chosen nonce: for known-answer tests and for callers that
/// drew the nonce together with other randomness. A nonce must never repeat under one key.
pub fn wrap_key_with_nonce(
    wrap: &WrapKey,
    nonce: &[u8; WrapKey::NONCE_LEN],
    aad: &[u8],
    key: &Key256,
) -> Result<[u8; WRAPPED_KEY_LEN], CryptoError> {
    let mut out = [0u8; WRAPPED_KEY_LEN];
    out[..24].copy_from_slice(nonce);
    out[24..56].copy_from_slice(key.expose_secret());
    let tag = wrap.seal_detached(nonce, aad, &mut out[24..56])?;
    out[56..].copy_from_slice(&tag);
    Ok(out)
}

/// Opens a blob made by [`wrap_key`].
pub fn unwrap_key(wrap: &WrapKey, aad: &[u8], blob: &[u8]) -> Result<Key256, CryptoError> {
    if blob.len() != WRAPPED_KEY_LEN {
        return Err(CryptoError::InvalidLength {
            what: "wrapped key",
            expected: WRAPPED_KEY_LEN,
            got: blob.len(),
        });
    }
    let mut failed = false;
    let key = Key256::init_with(|k| {
        k.copy_from_slice(&blob[24..56]);
        failed = wrap
            .open_detached(&blob[..24], aad, k, &blob[56..])
            .is_err();
    });
    if failed {
        return Err(CryptoError::Decrypt);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_round_trip_and_reject_tampering() {
        let key = Key256::generate().unwrap();
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            assert_eq!(Suite::from_id(suite.id()).unwrap(), suite);
            let bk = BodyKey::new(suite, &key);
            let mut buf = b"attack at dawn".to_vec();
            let tag = bk.seal_detached(&[7; 12], b"aad", &mut buf).unwrap();
            assert_ne!(&buf, b"attack at dawn");
            let mut bad = buf.clone();
            assert!(bk.open_detached(&[7; 12], b"aae", &mut bad, &tag).is_err());
            bk.open_detached(&[7; 12], b"aad", &mut buf, &tag).unwrap();
            assert_eq!(&buf, b"attack at dawn");
        }
    }

    #[test]
    fn unknown_suite_is_named() {
        let err = Suite::from_id(9).unwrap_err();
        assert!(err.to_string().contains('9'), "{err}");
    }

    #[test]
    fn wrong_nonce_length_is_an_error() {
        let key = Key256::generate().unwrap();
        let bk = BodyKey::new(Suite::Aes256Gcm, &key);
        assert!(matches!(
            bk.seal_detached(&[0; 8], b"", &mut [0; 4]),
            Err(CryptoError::InvalidLength { .. })
        ));
        let wk = WrapKey::new(&key);
        assert!(matches!(
            wk.seal_detached(&[0; 12], b"", &mut [0; 4]),
            Err(CryptoError::InvalidLength { .. })
        ));
    }

    /// The composition equals the `chacha20poly1305` crate's XChaCha20-Poly1305.
    #[test]
    fn wrap_key_matches_rustcrypto_xchacha() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        for i in 0..64u8 {
            let key = Key256::generate().unwrap();
            let nonce: [u8; 24] = crate::random::array().unwrap();
            let aad = vec![i; usize::from(i)];
            let pt = vec![i ^ 0x5a; usize::from(i) * 3];
            let mut ours = pt.clone();
            let tag = WrapKey::new(&key)
                .seal_detached(&nonce, &aad, &mut ours)
                .unwrap();
            let mut theirs = pt.clone();
            let t2 = XChaCha20Poly1305::new(key.expose_secret().into())
                .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut theirs)
                .unwrap();
            assert_eq!(ours, theirs);
            assert_eq!(&tag[..], &t2[..]);
            WrapKey::new(&key)
                .open_detached(&nonce, &aad, &mut ours, &tag)
                .unwrap();
            assert_eq!(ours, pt);
        }
    }

    #[test]
    fn wrapped_key_rejects_every_bit_flip() {
        let kek = WrapKey::new(&Key256::generate().unwrap());
        let dek = Key256::generate().unwrap();
        let blob = wrap_key(&kek, b"ctx", &dek).unwrap();
        for i in 0..blob.len() * 8 {
            let mut b = blob;
            b[i / 8] ^= 1 << (i % 8);
            assert!(unwrap_key(&kek, b"ctx", &b).is_err(), "bit {i}");
        }
        assert!(unwrap_key(&kek, b"ctx", &blob[..71]).is_err());
    }
}
