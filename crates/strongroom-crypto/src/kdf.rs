//! Key derivation: HKDF-SHA256 (RFC 5869) and the Argon2id (RFC 9106) policy.

use core::fmt;

use hkdf::Hkdf;
use sha2::Sha256;

use crate::{CryptoError, Key256};

/// HKDF-SHA256 extract-then-expand into `okm`.
///
/// `info` is given in parts (concatenated), so callers bind context without allocating.
/// `salt = None` is the RFC's "not provided" (a string of zeros).
///
/// ```
/// // RFC 5869 test case 3
/// let ikm = [0x0b; 22];
/// let mut okm = [0u8; 42];
/// strongroom_crypto::kdf::hkdf_sha256(None, &ikm, &[], &mut okm)?;
/// assert_eq!(okm[..4], [0x8d, 0xa4, 0xe7, 0x75]);
/// # Ok::<(), strongroom_crypto::CryptoError>(())
/// ```
pub fn hkdf_sha256(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[&[u8]],
    okm: &mut [u8],
) -> Result<(), CryptoError> {
    Hkdf::<Sha256>::new(salt, ikm)
        .expand_multi_info(info, okm)
        .map_err(|_| CryptoError::InvalidLength {
            what: "HKDF output",
            expected: 255 * 32,
            got: okm.len(),
        })
}

/// HKDF-SHA256 expand only (RFC 5869 section 2.3), for input that already is a uniformly
/// random 256-bit key (a DEK, a vault key): section 3.3 of the RFC allows skipping the
/// extract step there, which halves the cost.
pub fn hkdf_sha256_expand(prk: &Key256, info: &[&[u8]], okm: &mut [u8]) -> Result<(), CryptoError> {
    Hkdf::<Sha256>::from_prk(prk.expose_secret())
        .map_err(|_| CryptoError::InvalidLength {
            what: "HKDF PRK",
            expected: 32,
            got: 32,
        })?
        .expand_multi_info(info, okm)
        .map_err(|_| CryptoError::InvalidLength {
            what: "HKDF output",
            expected: 255 * 32,
            got: okm.len(),
        })
}

/// Derives a 256-bit key from `ikm` with a domain-separating `label` and context parts.
///
/// `info = label ‖ 0x00 ‖ context…`; `derive_*` functions are deterministic.
pub fn derive_key(ikm: &Key256, label: &str, context: &[&[u8]]) -> Key256 {
    let mut info: Vec<&[u8]> = Vec::with_capacity(context.len() + 2);
    info.push(label.as_bytes());
    info.push(&[0]);
    info.extend_from_slice(context);
    Key256::init_with(|out| {
        hkdf_sha256(None, ikm.expose_secret(), &info, out)
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 length"));
    })
}

/// Argon2id cost parameters.
///
/// Parameters are stored next to what they protect and authenticated there. Anything read
/// back is checked with [`Argon2idParams::check`]: below [`Argon2idParams::FLOOR`] is
/// refused (a storage that lowers them to speed up a guessing attack is detected), and so is
/// anything above [`Argon2idParams::CEILING`] (a storage that raises them to exhaust memory).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Argon2idParams {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Argon2idParams {
    /// RFC 9106 section 4, second recommended option: m = 64 MiB, t = 3, p = 4.
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };
    /// The minimum accepted anywhere (OWASP's floor): m = 19 MiB, t = 2, p = 1.
    /// Also the "constrained" profile for small devices.
    pub const FLOOR: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    /// The "constrained" profile, equal to the floor.
    pub const CONSTRAINED: Self = Self::FLOOR;
    /// The maximum accepted from storage: m = 4 GiB, t = 64, p = 64.
    pub const CEILING: Self = Self {
        memory_kib: 4 * 1024 * 1024,
        iterations: 64,
        parallelism: 64,
    };

    /// Checks the parameters against the floor and the ceiling.
    pub fn check(&self) -> Result<(), CryptoError> {
        let f = Self::FLOOR;
        let c = Self::CEILING;
        if self.memory_kib < f.memory_kib
            || self.iterations < f.iterations
            || self.parallelism < f.parallelism
        {
            return Err(CryptoError::KdfBelowFloor { params: *self });
        }
        // (Argon2's own rule m >= 8p holds for everything above the floor: 19 MiB >= 8 * 64.)
        if self.memory_kib > c.memory_kib
            || self.iterations > c.iterations
            || self.parallelism > c.parallelism
        {
            return Err(CryptoError::KdfAboveCeiling { params: *self });
        }
        Ok(())
    }

    /// Runs Argon2id (version 0x13) after [`check`](Self::check).
    ///
    /// `secret` and `ad` are Argon2's optional inputs (empty for none).
    pub fn derive(
        &self,
        password: &[u8],
        salt: &[u8],
        secret: &[u8],
        ad: &[u8],
    ) -> Result<Key256, CryptoError> {
        self.check()?;
        self.derive_unchecked(password, salt, secret, ad)
    }

    /// Argon2id without the floor check: only for test vectors and benches of the
    /// primitive itself.
    #[doc(hidden)]
    pub fn derive_unchecked(
        &self,
        password: &[u8],
        salt: &[u8],
        secret: &[u8],
        ad: &[u8],
    ) -> Result<Key256, CryptoError> {
        let params = argon2::ParamsBuilder::new()
            .m_cost(self.memory_kib)
            .t_cost(self.iterations)
            .p_cost(self.parallelism)
            .data(
                argon2::AssociatedData::new(ad).map_err(|e| CryptoError::Kdf {
                    reason: e.to_string(),
                })?,
            )
            .output_len(32)
            .build()
            .map_err(|e| CryptoError::Kdf {
                reason: e.to_string(),
            })?;
        let argon = if secret.is_empty() {
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        } else {
            argon2::Argon2::new_with_secret(
                secret,
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                params,
            )
            .map_err(|e| CryptoError::Kdf {
                reason: e.to_string(),
            })?
        };
        let mut err = None;
        let key = Key256::init_with(|out| {
            if let Err(e) = argon.hash_password_into(password, salt, out) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(CryptoError::Kdf {
                reason: e.to_string(),
            }),
            None => Ok(key),
        }
    }
}

impl fmt::Debug for Argon2idParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Argon2idParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Argon2id(m={} KiB, t={}, p={})",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_ceiling() {
        Argon2idParams::DEFAULT.check().unwrap();
        Argon2idParams::CONSTRAINED.check().unwrap();
        let low = Argon2idParams {
            memory_kib: 1024,
            ..Argon2idParams::DEFAULT
        };
        let err = low.check().unwrap_err();
        assert!(err.to_string().contains("below"), "{err}");
        let low_t = Argon2idParams {
            iterations: 1,
            ..Argon2idParams::DEFAULT
        };
        assert!(low_t.check().is_err());
        let high = Argon2idParams {
            memory_kib: u32::MAX,
            ..Argon2idParams::DEFAULT
        };
        assert!(matches!(
            high.check(),
            Err(CryptoError::KdfAboveCeiling { .. })
        ));
        assert!(low.derive(b"pw", &[0; 16], b"", b"").is_err());
    }

    /// RFC 9106 section 5.3: Argon2id test vector (m=32 KiB, t=3, p=4, secret, ad).
    #[test]
    fn rfc9106_argon2id_vector() {
        let p = Argon2idParams {
            memory_kib: 32,
            iterations: 3,
            parallelism: 4,
        };
        let tag = p
            .derive_unchecked(&[0x01; 32], &[0x02; 16], &[0x03; 8], &[0x04; 12])
            .unwrap();
        assert_eq!(
            hex::encode(tag.expose_secret()),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
        // and the checked path refuses these toy parameters
        assert!(
            p.derive(&[0x01; 32], &[0x02; 16], &[0x03; 8], &[0x04; 12])
                .is_err()
        );
    }
}
