//! Secret key material: [`Key256`] and [`SecretBytes`].

use core::fmt;

use secrecy::{ExposeSecret, SecretBox, SecretSlice};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::{CryptoError, random};

/// A 256-bit secret key (a DEK, a vault key, a wrapping key, a recovery key…).
///
/// The bytes live in a heap box that is zeroized on drop. There is no `Display`,
/// no `Serialize` and no `PartialEq`: compare with [`Key256::ct_eq`], reach the bytes
/// only through [`Key256::expose_secret`]. `Debug` prints the type name only.
///
/// ```
/// use strongroom_crypto::Key256;
/// let k = Key256::generate()?;
/// assert_eq!(format!("{k:?}"), "Key256(<redacted>)");
/// assert!(bool::from(k.ct_eq(&k.clone_secret())));
/// # Ok::<(), strongroom_crypto::CryptoError>(())
/// ```
pub struct Key256(SecretBox<[u8; 32]>);

impl Key256 {
    /// Length of the key in bytes.
    pub const LEN: usize = 32;

    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut err = None;
        let key = SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            if let Err(e) = random::fill(k) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(Self(key)),
        }
    }

    /// Builds a key by moving the caller's bytes in; the source array is zeroized.
    pub fn from_array(bytes: &mut [u8; 32]) -> Self {
        let key = SecretBox::init_with_mut(|k: &mut [u8; 32]| k.copy_from_slice(bytes));
        bytes.zeroize();
        Self(key)
    }

    /// Builds a key by copying a 32-byte slice (the caller remains responsible for the
    /// source buffer).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != Self::LEN {
            return Err(CryptoError::InvalidLength {
                what: "key",
                expected: Self::LEN,
                got: bytes.len(),
            });
        }
        Ok(Self(SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            k.copy_from_slice(bytes);
        })))
    }

    /// Builds a key in place with a closure that writes the 32 bytes.
    pub fn init_with(f: impl FnOnce(&mut [u8; 32])) -> Self {
        Self(SecretBox::init_with_mut(f))
    }

    /// The raw key bytes. The only accessor: keep its uses few and easy to audit.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.expose_secret().ct_eq(other.expose_secret())
    }

    /// An explicit copy of the secret (a second zeroizing box).
    #[must_use]
    pub fn clone_secret(&self) -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; 32]| {
            k.copy_from_slice(self.expose_secret());
        }))
    }
}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key256(<redacted>)")
    }
}

/// A variable-length secret (a passphrase, a plaintext record body, a decoded key file).
///
/// Zeroized on drop; `Debug` prints only the length.
///
/// ```
/// use strongroom_crypto::SecretBytes;
/// let s = SecretBytes::from(b"hunter2".to_vec());
/// assert_eq!(s.len(), 7);
/// assert_eq!(format!("{s:?}"), "SecretBytes(7 bytes, <redacted>)");
/// ```
pub struct SecretBytes(SecretSlice<u8>);

impl SecretBytes {
    /// The raw bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Constant-time equality (lengths are not secret).
    pub fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.expose_secret().ct_eq(other.expose_secret())
    }

    /// An explicit copy of the secret.
    #[must_use]
    pub fn clone_secret(&self) -> Self {
        Self::from(self.expose_secret().to_vec())
    }
}

impl From<Vec<u8>> for SecretBytes {
    /// Takes ownership of the vector; the secret's buffer is zeroized on drop.
    ///
    /// A vector with spare capacity would be reallocated on the way into a boxed slice,
    /// leaving a copy behind: it is copied to an exact-size buffer and wiped instead.
    fn from(mut v: Vec<u8>) -> Self {
        if v.capacity() != v.len() {
            let exact = v.as_slice().to_vec();
            v.zeroize();
            v = exact;
        }
        Self(SecretSlice::from(v))
    }
}

impl From<String> for SecretBytes {
    /// Takes ownership of the string (see the `Vec<u8>` conversion).
    fn from(s: String) -> Self {
        Self::from(s.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes, <redacted>)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let mut raw = [0xA5u8; 32];
        let k = Key256::from_array(&mut raw);
        assert_eq!(raw, [0u8; 32], "source array is zeroized");
        let dbg = format!("{k:?} {k:#?}");
        assert!(!dbg.contains("165"), "{dbg}");
        assert!(!dbg.to_lowercase().contains("a5"), "{dbg}");
        let s = SecretBytes::from(b"correct horse battery staple".to_vec());
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("horse"), "{dbg}");
    }

    #[test]
    fn ct_eq_works() {
        let a = Key256::from_slice(&[1u8; 32]).unwrap();
        let b = Key256::from_slice(&[1u8; 32]).unwrap();
        let c = Key256::from_slice(&[2u8; 32]).unwrap();
        assert!(bool::from(a.ct_eq(&b)));
        assert!(!bool::from(a.ct_eq(&c)));
        let x = SecretBytes::from(vec![1, 2, 3]);
        assert!(bool::from(x.ct_eq(&x.clone_secret())));
        assert!(!bool::from(x.ct_eq(&SecretBytes::from(vec![1, 2]))));
    }

    #[test]
    fn generated_keys_differ() {
        let a = Key256::generate().unwrap();
        let b = Key256::generate().unwrap();
        assert!(!bool::from(a.ct_eq(&b)));
        assert_ne!(a.expose_secret(), &[0u8; 32]);
    }

    #[test]
    fn from_slice_checks_length() {
        let err = Key256::from_slice(&[0u8; 31]).unwrap_err();
        assert!(err.to_string().contains("expected 32"), "{err}");
    }
}
