//! The store generation: an id that changes whenever the whole content is replaced.

use std::fmt;

use crate::StoreError;

/// An opaque 128-bit id of a store's *generation*.
///
/// A store gets a random generation when its schema is created, and
/// [`Store::replace_all`](crate::Store::replace_all) gives it a new random one. Row versions
/// start over at 1 after a replacement, so a version read before it may match a different
/// row after it (ABA); a batch made from earlier reads carries the generation those reads
/// saw ([`Batch::require_generation`](crate::Batch::require_generation)) and is refused
/// with [`StoreError::GenerationChanged`] once the store was replaced.
///
/// It is not a secret and not a defence against a malicious storage (which can write any
/// value): it keeps honest concurrent writers from applying pre-restore decisions to the
/// restored content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation([u8; 16]);

impl Generation {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// A fresh random generation (from the operating system's CSPRNG).
    pub fn generate() -> Result<Self, StoreError> {
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b).map_err(|e| StoreError::Unavailable {
            reason: format!("the operating system's random generator failed: {e}"),
        })?;
        Ok(Self(b))
    }

    /// The generation with these bytes (as a backend stored them).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses stored bytes; anything but 16 bytes is [`StoreError::Corrupt`].
    pub fn from_slice(table: crate::Table, bytes: &[u8]) -> Result<Self, StoreError> {
        let b: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Corrupt {
            table,
            reason: format!("store generation of {} bytes, expected 16", bytes.len()),
        })?;
        Ok(Self(b))
    }

    /// The bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..8]))
    }
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Generation({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_generations_differ_and_round_trip() {
        let a = Generation::generate().unwrap();
        let b = Generation::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(
            Generation::from_slice(crate::Table::Meta, a.as_bytes()).unwrap(),
            a
        );
        assert!(Generation::from_slice(crate::Table::Meta, &[1, 2]).is_err());
        assert_eq!(a.to_string().len(), 16);
        assert!(format!("{a:?}").starts_with("Generation("));
    }
}
