//! Naming of Secret Service items: the locator written into stanzas, and generations for
//! rotation.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;

use strongroom_crypto::DecodeError;
use strongroom_crypto::encoding::{Reader, Writer};

/// The largest collection alias, service or entry name accepted.
pub const MAX_NAME: usize = 255;
/// The collection alias used when none is given: the user's default collection (GNOME
/// Keyring's `login`, KWallet's `kdewallet`).
pub const DEFAULT_COLLECTION: &str = "default";
const LOCATOR_VERSION: u8 = 1;
const LOCATOR_FORMAT: &str = "secret-service locator";

/// Where a KEK lives in the Secret Service: a collection (by alias) and an item named by two
/// attributes, `strongroom-service` and `strongroom-entry`. Not secret: written into the
/// stanza so that the stanza says which item unlocks it.
///
/// # Locator layout, version 1
///
/// Stored as the locator of a `KekKeyholder` stanza body (see `strongroom-keyholder`):
///
/// ```text
/// offset    size  field
/// 0         1     locator version = 1
/// 1         4     collection alias length C (u32 big-endian, 1..=255)
/// 5         C     collection alias (UTF-8), e.g. "default"
/// 5+C       4     service length S (u32 big-endian, 1..=255)
/// 9+C       S     service (UTF-8)
/// 9+C+S     4     entry length E (u32 big-endian, 1..=255)
/// 13+C+S    E     entry (UTF-8)
/// ```
///
/// ```
/// use strongroom_secret_service::SecretServiceEntry;
/// let e = SecretServiceEntry::new("strongroom", "vault-1")?;
/// assert_eq!(e.to_string(), "default:strongroom/vault-1");
/// assert_eq!(SecretServiceEntry::from_locator(&e.to_locator())?, e);
/// assert_eq!(e.next_generation().entry, "vault-1.g2");
/// # Ok::<(), strongroom_crypto::DecodeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretServiceEntry {
    /// The collection's alias, e.g. `default` (or `session`, a collection that lives in
    /// memory until the daemon exits).
    pub collection: String,
    /// The service, e.g. `strongroom`.
    pub service: String,
    /// The entry within the service, e.g. `vault-1`.
    pub entry: String,
}

impl SecretServiceEntry {
    /// An entry in the default collection; names must be non-empty, at most [`MAX_NAME`]
    /// bytes, without control characters.
    pub fn new(service: &str, entry: &str) -> Result<Self, DecodeError> {
        Self::in_collection(DEFAULT_COLLECTION, service, entry)
    }

    /// An entry in the collection with this alias.
    pub fn in_collection(
        collection: &str,
        service: &str,
        entry: &str,
    ) -> Result<Self, DecodeError> {
        check_name("collection", collection)?;
        check_name("service", service)?;
        check_name("entry", entry)?;
        Ok(Self {
            collection: collection.to_owned(),
            service: service.to_owned(),
            entry: entry.to_owned(),
        })
    }

    /// The locator bytes written into stanzas.
    pub fn to_locator(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(
            13 + self.collection.len() + self.service.len() + self.entry.len(),
        );
        w.u8(LOCATOR_VERSION)
            .var_bytes(self.collection.as_bytes())
            .var_bytes(self.service.as_bytes())
            .var_bytes(self.entry.as_bytes());
        w.into_vec()
    }

    /// Parses locator bytes read from a stanza (untrusted: errors, never panics).
    pub fn from_locator(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(LOCATOR_FORMAT, bytes);
        r.version(&[LOCATOR_VERSION])?;
        let collection = utf8("collection", r.var_bytes("collection", MAX_NAME)?)?;
        let service = utf8("service", r.var_bytes("service", MAX_NAME)?)?;
        let entry = utf8("entry", r.var_bytes("entry", MAX_NAME)?)?;
        r.finish()?;
        Self::in_collection(collection, service, entry)
    }

    /// The entry of the next generation, for rotation: `vault-1` → `vault-1.g2`,
    /// `vault-1.g2` → `vault-1.g3`, in the same collection and service.
    ///
    /// Deterministic, so a rotation that crashed after creating the new item finds it again
    /// on its re-run.
    #[must_use]
    pub fn next_generation(&self) -> Self {
        let (base, generation) = split_generation(&self.entry);
        let suffix = format!(".g{}", generation.saturating_add(1));
        let mut cut = base.len().min(MAX_NAME - suffix.len());
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        Self {
            collection: self.collection.clone(),
            service: self.service.clone(),
            entry: format!("{}{suffix}", &base[..cut]),
        }
    }

    /// The generation of this entry: 1 without a `.gN` suffix.
    pub fn generation(&self) -> u32 {
        split_generation(&self.entry).1
    }
}

/// `COLLECTION:SERVICE/ENTRY`.
impl fmt::Display for SecretServiceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.collection, self.service, self.entry)
    }
}

fn utf8<'a>(field: &'static str, b: &'a [u8]) -> Result<&'a str, DecodeError> {
    core::str::from_utf8(b).map_err(|_| DecodeError::Invalid {
        format: LOCATOR_FORMAT,
        field,
        reason: "not UTF-8",
    })
}

fn check_name(field: &'static str, name: &str) -> Result<(), DecodeError> {
    if name.is_empty() {
        return Err(DecodeError::Invalid {
            format: LOCATOR_FORMAT,
            field,
            reason: "must not be empty",
        });
    }
    if name.len() > MAX_NAME {
        return Err(DecodeError::TooLong {
            format: LOCATOR_FORMAT,
            field,
            len: name.len(),
            max: MAX_NAME,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(DecodeError::Invalid {
            format: LOCATOR_FORMAT,
            field,
            reason: "must not contain control characters",
        });
    }
    Ok(())
}

/// `name.gN` → (`name`, N) for N >= 2; anything else → (`name`, 1).
fn split_generation(entry: &str) -> (&str, u32) {
    if let Some((base, n)) = entry.rsplit_once(".g")
        && !base.is_empty()
        && !n.starts_with('0')
        && let Ok(n) = n.parse::<u32>()
        && n >= 2
    {
        return (base, n);
    }
    (entry, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generations() {
        let e = SecretServiceEntry::new("strongroom", "vault-1").unwrap();
        assert_eq!(e.generation(), 1);
        let g2 = e.next_generation();
        assert_eq!((g2.entry.as_str(), g2.generation()), ("vault-1.g2", 2));
        assert_eq!(g2.next_generation().entry, "vault-1.g3");
        assert_eq!(g2.collection, "default");
        for odd in ["v.g", "v.g1", "v.g02", "v.gx", ".g5"] {
            let e = SecretServiceEntry::new("s", odd).unwrap();
            assert_eq!(e.generation(), 1, "{odd}");
            assert_eq!(e.next_generation().entry, format!("{odd}.g2"));
        }
        let long = SecretServiceEntry::new("s", &"é".repeat(127)).unwrap();
        let next = long.next_generation();
        assert!(next.entry.len() <= MAX_NAME);
        assert_eq!(next.generation(), 2);
        SecretServiceEntry::new(&next.service, &next.entry).unwrap();
    }

    #[test]
    fn names_are_checked() {
        assert!(SecretServiceEntry::new("", "e").is_err());
        assert!(SecretServiceEntry::new("s", "").is_err());
        assert!(SecretServiceEntry::in_collection("", "s", "e").is_err());
        assert!(SecretServiceEntry::new("s", "a\nb").is_err());
        assert!(SecretServiceEntry::new("s", &"x".repeat(256)).is_err());
        assert_eq!(
            SecretServiceEntry::in_collection("session", "strongroom", "vault-1")
                .unwrap()
                .to_string(),
            "session:strongroom/vault-1"
        );
    }

    /// The locator layout, byte for byte (the known-answer vector of the format).
    #[test]
    fn locator_layout() {
        let e = SecretServiceEntry::in_collection("d", "ab", "c").unwrap();
        assert_eq!(
            e.to_locator(),
            [
                1, 0, 0, 0, 1, b'd', 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c'
            ]
        );
        assert!(SecretServiceEntry::from_locator(&[2, 0, 0, 0, 0]).is_err());
        let not_utf8 = [1, 0, 0, 0, 1, 0xff, 0, 0, 0, 1, b's', 0, 0, 0, 1, b'e'];
        assert!(SecretServiceEntry::from_locator(&not_utf8).is_err());
        let mut trailing = e.to_locator();
        trailing.push(0);
        assert!(SecretServiceEntry::from_locator(&trailing).is_err());
    }

    proptest! {
        #[test]
        fn locator_round_trip(c in "[a-z]{1,12}", service in "[a-z0-9._-]{1,40}", entry in "\\PC{1,40}") {
            if let Ok(e) = SecretServiceEntry::in_collection(&c, &service, &entry) {
                prop_assert_eq!(SecretServiceEntry::from_locator(&e.to_locator()).unwrap(), e);
            }
        }

        #[test]
        fn locator_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = SecretServiceEntry::from_locator(&bytes);
        }
    }
}
