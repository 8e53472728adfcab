//! A bounded, expiring in-memory cache of unwrapped keys for remote keyholders.

use core::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use strongroom_crypto::Key256;

use crate::stanza::{Stanza, WrapContext};

const LABEL: &[u8] = b"strongroom/v1/unwrap-cache";

/// A bounded cache of keys that a remote keyholder (a KMS, Transit) unwrapped, so that a
/// vault handle re-opened in the same process does not call the service on every unlock.
///
/// - **What it holds:** at most `capacity` keys, each for at most `max_age` after the
///   unwrap that produced it. The keys are [`Key256`] values: zeroized when evicted, expired,
///   cleared or dropped; never in `Debug`.
/// - **What it is keyed by:** SHA-256 over a label, the keyholder's `scope` (its service,
///   key and identity), the stanza's bytes and the wrap context. A different stanza, context
///   or keyholder scope never hits.
/// - **What it trades:** for up to `max_age`, revoking this process's access to the key on
///   the service does not stop it from unlocking with a cached key. Choose `max_age` for
///   that window; [`UnwrapCache::disabled`] turns caching off, [`UnwrapCache::clear`] empties
///   it at once.
///
/// Clones share one cache: hand one to several keyholders of the same identity to share it.
///
/// ```
/// use std::time::Duration;
/// use strongroom_crypto::Key256;
/// use strongroom_keyholder::{KeyholderKind, Stanza, UnwrapCache, WrapContext};
///
/// let cache = UnwrapCache::new(16, Duration::from_mins(5));
/// let ctx = WrapContext { purpose: "strongroom/v1/member-key", subject: b"vault-1/alice" };
/// let stanza = Stanza { kind: KeyholderKind::Transit, id: [1; 8], body: vec![1, 2, 3] };
/// assert!(cache.get(b"scope", &ctx, &stanza).is_none());
/// let key = Key256::generate()?;
/// cache.insert(b"scope", &ctx, &stanza, &key);
/// assert!(bool::from(cache.get(b"scope", &ctx, &stanza).unwrap().ct_eq(&key)));
/// assert!(cache.get(b"other scope", &ctx, &stanza).is_none());
/// # Ok::<(), strongroom_crypto::CryptoError>(())
/// ```
#[derive(Clone)]
pub struct UnwrapCache {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    capacity: usize,
    max_age: Duration,
    entries: Vec<Entry>,
}

struct Entry {
    digest: [u8; 32],
    key: Key256,
    at: Instant,
}

impl UnwrapCache {
    /// The default capacity: 16 keys.
    pub const DEFAULT_CAPACITY: usize = 16;
    /// The default maximum age: 5 minutes.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_mins(5);

    /// A cache of at most `capacity` keys, each kept at most `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                capacity,
                max_age,
                entries: Vec::with_capacity(capacity.min(64)),
            })),
        }
    }

    /// A cache that never keeps anything.
    pub fn disabled() -> Self {
        Self::new(0, Duration::ZERO)
    }

    /// The key cached for `stanza` in `ctx` under `scope`, if it is younger than the
    /// maximum age.
    pub fn get(&self, scope: &[u8], ctx: &WrapContext<'_>, stanza: &Stanza) -> Option<Key256> {
        let digest = digest(scope, ctx, stanza);
        let mut inner = self.lock();
        inner.expire();
        inner
            .entries
            .iter()
            .find(|e| e.digest == digest)
            .map(|e| e.key.clone_secret())
    }

    /// Caches `key` as the unwrap of `stanza` in `ctx` under `scope`; the oldest entry goes
    /// when the cache is full.
    pub fn insert(&self, scope: &[u8], ctx: &WrapContext<'_>, stanza: &Stanza, key: &Key256) {
        let digest = digest(scope, ctx, stanza);
        let mut inner = self.lock();
        if inner.capacity == 0 || inner.max_age.is_zero() {
            return;
        }
        inner.expire();
        inner.entries.retain(|e| e.digest != digest);
        if inner.entries.len() >= inner.capacity {
            // Entries are in insertion order: the first is the oldest.
            inner.entries.remove(0);
        }
        inner.entries.push(Entry {
            digest,
            key: key.clone_secret(),
            at: Instant::now(),
        });
    }

    /// Drops (and zeroizes) every cached key.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// How many keys are cached now (expired ones excluded).
    pub fn len(&self) -> usize {
        let mut inner = self.lock();
        inner.expire();
        inner.entries.len()
    }

    /// Whether no key is cached now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity and the maximum age.
    pub fn limits(&self) -> (usize, Duration) {
        let inner = self.lock();
        (inner.capacity, inner.max_age)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for UnwrapCache {
    /// [`UnwrapCache::DEFAULT_CAPACITY`] keys for at most [`UnwrapCache::DEFAULT_MAX_AGE`].
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_MAX_AGE)
    }
}

impl Inner {
    fn expire(&mut self) {
        let max_age = self.max_age;
        self.entries.retain(|e| e.at.elapsed() < max_age);
    }
}

impl fmt::Debug for UnwrapCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        write!(
            f,
            "UnwrapCache({} of {} keys, max age {:?})",
            inner.entries.len(),
            inner.capacity,
            inner.max_age
        )
    }
}

fn digest(scope: &[u8], ctx: &WrapContext<'_>, stanza: &Stanza) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [LABEL, scope, &stanza.encode(), &ctx.aad()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyholderKind;

    fn stanza(n: u8) -> Stanza {
        Stanza {
            kind: KeyholderKind::Transit,
            id: [n; 8],
            body: vec![n; 4],
        }
    }

    const CTX: WrapContext<'static> = WrapContext {
        purpose: "p",
        subject: b"s",
    };

    #[test]
    fn bounded_and_keyed_by_everything() {
        let c = UnwrapCache::new(2, Duration::from_mins(1));
        let k = Key256::generate().unwrap();
        c.insert(b"a", &CTX, &stanza(1), &k);
        assert!(c.get(b"a", &CTX, &stanza(1)).is_some());
        assert!(c.get(b"b", &CTX, &stanza(1)).is_none());
        assert!(c.get(b"a", &CTX, &stanza(2)).is_none());
        let other = WrapContext {
            purpose: "p",
            subject: b"t",
        };
        assert!(c.get(b"a", &other, &stanza(1)).is_none());
        c.insert(b"a", &CTX, &stanza(2), &k);
        c.insert(b"a", &CTX, &stanza(3), &k);
        assert_eq!(c.len(), 2, "bounded");
        assert!(c.get(b"a", &CTX, &stanza(1)).is_none(), "the oldest went");
        let shared = c.clone();
        shared.clear();
        assert!(c.is_empty(), "clones share the cache");
        assert!(!format!("{c:?}").contains("Key256"));
    }

    #[test]
    fn expires_and_can_be_disabled() {
        let c = UnwrapCache::new(4, Duration::from_millis(30));
        let k = Key256::generate().unwrap();
        c.insert(b"a", &CTX, &stanza(1), &k);
        assert_eq!(c.len(), 1);
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get(b"a", &CTX, &stanza(1)).is_none());
        assert!(c.is_empty());
        let off = UnwrapCache::disabled();
        off.insert(b"a", &CTX, &stanza(1), &k);
        assert!(off.is_empty());
        assert_eq!(
            UnwrapCache::default().limits(),
            (16, Duration::from_mins(5))
        );
    }
}
