//! Identifiers: 128-bit random ids and short non-secret key ids.

use core::fmt;
use core::str::FromStr;

use crate::{CryptoError, random};

macro_rules! id128 {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = 16;

            /// A fresh random id (128 bits from the OS CSPRNG).
            pub fn generate() -> Result<Self, CryptoError> {
                random::array().map(Self)
            }

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// Parses 16 raw bytes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
                bytes.try_into().map(Self).map_err(|_| CryptoError::InvalidLength {
                    what: $what,
                    expected: 16,
                    got: bytes.len(),
                })
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = CryptoError;
            fn from_str(s: &str) -> Result<Self, CryptoError> {
                let mut out = [0u8; 16];
                decode_hex(s, &mut out, $what)?;
                Ok(Self(out))
            }
        }
    };
}

id128!(
    /// Identifies a vault. Bound into every record's AAD so rows cannot move between vaults.
    VaultId,
    "vault id"
);
id128!(
    /// Identifies a record (a named secret) within a vault.
    RecordId,
    "record id"
);
id128!(
    /// Identifies a member (a person or service) of a vault.
    MemberId,
    "member id"
);
id128!(
    /// Identifies a scope of a vault: a namespace prefix with keys of its own.
    ScopeId,
    "scope id"
);

/// A short, non-secret identifier of a key: 8 bytes derived from the key with HKDF, so it
/// can be stored and shown (to match a key to what it unlocks) without revealing the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// Length in bytes.
    pub const LEN: usize = 8;

    /// Derives the id of `key` under a domain label (e.g. `"strongroom/v1/vault-key-id"`).
    pub fn derive(key: &crate::Key256, label: &str) -> Self {
        let mut out = [0u8; 8];
        crate::kdf::hkdf_sha256(None, key.expose_secret(), &[label.as_bytes()], &mut out)
            .unwrap_or_else(|_| unreachable!("8 bytes is a valid HKDF-SHA256 length"));
        Self(out)
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = CryptoError;
    fn from_str(s: &str) -> Result<Self, CryptoError> {
        let mut out = [0u8; 8];
        decode_hex(s, &mut out, "key id")?;
        Ok(Self(out))
    }
}

fn decode_hex(s: &str, out: &mut [u8], what: &'static str) -> Result<(), CryptoError> {
    let bytes = s.as_bytes();
    if bytes.len() != out.len() * 2 {
        return Err(CryptoError::InvalidLength {
            what,
            expected: out.len() * 2,
            got: bytes.len(),
        });
    }
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_val(pair[0]);
        let lo = hex_val(pair[1]);
        match (hi, lo) {
            (Some(h), Some(l)) => out[i] = (h << 4) | l,
            _ => return Err(CryptoError::InvalidEncoding { what }),
        }
    }
    Ok(())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_text_round_trip() {
        let id = RecordId::generate().unwrap();
        let s = id.to_string();
        assert_eq!(s.len(), 32);
        assert_eq!(s.parse::<RecordId>().unwrap(), id);
        assert!("zz".parse::<RecordId>().is_err());
        assert!("0".repeat(31).parse::<VaultId>().is_err());
        assert!("g".repeat(32).parse::<VaultId>().is_err());
        assert_ne!(RecordId::generate().unwrap(), id);
    }

    #[test]
    fn key_id_is_deterministic_and_labelled() {
        let k = crate::Key256::from_slice(&[9; 32]).unwrap();
        assert_eq!(KeyId::derive(&k, "a"), KeyId::derive(&k, "a"));
        assert_ne!(KeyId::derive(&k, "a"), KeyId::derive(&k, "b"));
        let id = KeyId::derive(&k, "a");
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
    }
}
