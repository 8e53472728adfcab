//! Naming of keyring entries: the locator written into stanzas, and generations for
//! rotation.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;

use strongroom_crypto::DecodeError;
use strongroom_crypto::encoding::{Reader, Writer};

/// The largest service or entry name accepted (keyutils descriptions are limited to 4 KiB).
pub const MAX_NAME: usize = 255;
const LOCATOR_VERSION: u8 = 1;
const LOCATOR_FORMAT: &str = "os-keyring locator";

/// Where a KEK lives in the OS keyring: a service and an entry (keyring-core's `service`
/// and `user`). Not secret: written into the stanza so that the stanza says which entry
/// unlocks it.
///
/// # Locator layout, version 1
///
/// Stored as the locator of a `KekKeyholder` stanza body (see `strongroom-keyholder`):
///
/// ```text
/// offset  size  field
/// 0       1     locator version = 1
/// 1       4     service length S (u32 big-endian, 1..=255)
/// 5       S     service (UTF-8)
/// 5+S     4     entry length E (u32 big-endian, 1..=255)
/// 9+S     E     entry (UTF-8)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyringEntry {
    /// The service, e.g. `strongroom`.
    pub service: String,
    /// The entry within the service, e.g. `vault-1`.
    pub entry: String,
}

impl KeyringEntry {
    /// An entry name pair; both must be non-empty, at most [`MAX_NAME`] bytes, and the
    /// service must not contain `@` (the keyutils store joins `entry@service`, so an `@` in
    /// the service could make two entries collide).
    pub fn new(service: &str, entry: &str) -> Result<Self, DecodeError> {
        check_name("service", service)?;
        check_name("entry", entry)?;
        if service.contains('@') {
            return Err(DecodeError::Invalid {
                format: LOCATOR_FORMAT,
                field: "service",
                reason: "must not contain '@'",
            });
        }
        Ok(Self {
            service: service.to_owned(),
            entry: entry.to_owned(),
        })
    }

    /// The locator bytes written into stanzas.
    pub fn to_locator(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(9 + self.service.len() + self.entry.len());
        w.u8(LOCATOR_VERSION)
            .var_bytes(self.service.as_bytes())
            .var_bytes(self.entry.as_bytes());
        w.into_vec()
    }

    /// Parses locator bytes read from a stanza (untrusted).
    pub fn from_locator(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(LOCATOR_FORMAT, bytes);
        r.version(&[LOCATOR_VERSION])?;
        let service = r.var_bytes("service", MAX_NAME)?;
        let entry = r.var_bytes("entry", MAX_NAME)?;
        r.finish()?;
        let service = core::str::from_utf8(service).map_err(|_| DecodeError::Invalid {
            format: LOCATOR_FORMAT,
            field: "service",
            reason: "not UTF-8",
        })?;
        let entry = core::str::from_utf8(entry).map_err(|_| DecodeError::Invalid {
            format: LOCATOR_FORMAT,
            field: "entry",
            reason: "not UTF-8",
        })?;
        Self::new(service, entry)
    }

    /// The entry of the next generation, for rotation: `vault-1` → `vault-1.g2`,
    /// `vault-1.g2` → `vault-1.g3`.
    ///
    /// Deterministic, so a rotation that crashed after creating the new entry finds it again
    /// on its re-run.
    #[must_use]
    pub fn next_generation(&self) -> Self {
        let (base, generation) = split_generation(&self.entry);
        let mut entry = format!("{base}.g{}", generation.saturating_add(1));
        if entry.len() > MAX_NAME {
            // Only reachable with a base name of ~250 bytes: keep the suffix, drop the end of
            // the base (on a character boundary).
            let suffix = format!(".g{}", generation.saturating_add(1));
            let mut cut = MAX_NAME - suffix.len();
            while !base.is_char_boundary(cut) {
                cut -= 1;
            }
            entry = format!("{}{suffix}", &base[..cut]);
        }
        Self {
            service: self.service.clone(),
            entry,
        }
    }

    /// The generation of this entry: 1 without a `.gN` suffix.
    pub fn generation(&self) -> u32 {
        split_generation(&self.entry).1
    }
}

impl fmt::Display for KeyringEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.entry)
    }
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
        let e = KeyringEntry::new("strongroom", "vault-1").unwrap();
        assert_eq!(e.generation(), 1);
        let g2 = e.next_generation();
        assert_eq!(g2.entry, "vault-1.g2");
        assert_eq!(g2.generation(), 2);
        assert_eq!(g2.next_generation().entry, "vault-1.g3");
        for odd in ["v.g", "v.g1", "v.g02", "v.gx", ".g5"] {
            let e = KeyringEntry::new("s", odd).unwrap();
            assert_eq!(e.generation(), 1, "{odd}");
            assert_eq!(e.next_generation().entry, format!("{odd}.g2"));
        }
        let long = KeyringEntry::new("s", &"é".repeat(127)).unwrap();
        let next = long.next_generation();
        assert!(next.entry.len() <= MAX_NAME);
        assert_eq!(next.generation(), 2);
        KeyringEntry::new(&next.service, &next.entry).unwrap();
    }

    #[test]
    fn names_are_checked() {
        assert!(KeyringEntry::new("", "e").is_err());
        assert!(KeyringEntry::new("s", "").is_err());
        assert!(KeyringEntry::new("a@b", "e").is_err());
        assert!(KeyringEntry::new("s", "a\nb").is_err());
        assert!(KeyringEntry::new("s", &"x".repeat(256)).is_err());
        assert_eq!(
            KeyringEntry::new("strongroom", "vault-1")
                .unwrap()
                .to_string(),
            "strongroom/vault-1"
        );
    }

    #[test]
    fn locator_layout() {
        let e = KeyringEntry::new("ab", "c").unwrap();
        assert_eq!(
            e.to_locator(),
            [1, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c']
        );
        assert!(KeyringEntry::from_locator(&[2, 0, 0, 0, 0]).is_err());
        assert!(KeyringEntry::from_locator(&[1, 0, 0, 0, 1, 0xff, 0, 0, 0, 1, b'c']).is_err());
        let mut trailing = e.to_locator();
        trailing.push(0);
        assert!(KeyringEntry::from_locator(&trailing).is_err());
    }

    proptest! {
        #[test]
        fn locator_round_trip(service in "[a-z0-9._-]{1,40}", entry in "\\PC{1,40}") {
            if let Ok(e) = KeyringEntry::new(&service, &entry) {
                prop_assert_eq!(KeyringEntry::from_locator(&e.to_locator()).unwrap(), e);
            }
        }

        #[test]
        fn locator_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = KeyringEntry::from_locator(&bytes);
        }
    }
}
