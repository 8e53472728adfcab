//! Remembered record keys: opening a record version again skips the DEK unwrap and the key
//! derivation.
//!
//! A reader that opens the same record versions over and over (an application reading its
//! secrets on every request) spends about a third of each open on work whose result does
//! not change while the stored wrap does not: unwrapping the DEK (XChaCha20-Poly1305) and
//! deriving the body key and commitment (HKDF-SHA256). [`OpenCache`] keeps that result,
//! keyed by the record version and checked against everything it was derived from.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use strongroom_crypto::aead::{BodyKey, Suite};
use strongroom_crypto::{Key256, RecordId, SecretBytes, VaultId};
use subtle::ConstantTimeEq;

use crate::format::{RecordContext, WrappedDek};
use crate::record::{
    BodyCheck, RecordKeys, check_digest, check_key, check_sealed_epoch, derive_record_key_parts,
    header_for_context, open_segments, unwrap_with,
};
use crate::{EnvelopeError, VaultKey};

/// What one open derived, and everything it was derived from.
struct Remembered {
    vault_id: VaultId,
    /// The commitment of the vault key that unwrapped the DEK (names that key with
    /// 128-bit security; the wrap's 64-bit key id alone does not).
    vault_key: [u8; 32],
    /// The stored wrap, byte for byte: the same bytes under the same key unwrap to the same
    /// DEK.
    wrapped: Vec<u8>,
    suite: Suite,
    body_key: Key256,
    commitment: [u8; 32],
}

/// The record keys a reader derived, remembered for its next open of the same version.
///
/// An entry is used only when the vault, the record version, the vault key (by its 256-bit
/// commitment), the wrap's bytes and the body header's suite are all the ones it was
/// derived from; the body header's key commitment is then checked against it in constant
/// time, as a first open does. Anything else (a rotation rewrote the wrap, storage replaced
/// it) is a miss: the record is opened in full and the entry replaced. The body is
/// decrypted and authenticated on every open, and its digest checked where the
/// [`BodyCheck`] says, so a hit returns exactly what a full open returns, errors included.
///
/// The body keys are kept as [`Key256`] (zeroized when dropped or evicted), at most
/// `capacity` of them; when full, the cache is emptied. They are no more than the vault
/// key the reader already holds can derive.
///
/// ```
/// use strongroom_crypto::{RecordId, VaultId, aead::Suite};
/// use strongroom_envelope::{BodyCheck, Epoch, OpenCache, RecordContext, VaultKey, seal};
///
/// let vk = VaultKey::generate(Epoch::FIRST)?;
/// let ctx = RecordContext { vault_id: VaultId::generate()?, record_id: RecordId::generate()?, version: 1 };
/// let sealed = seal(&vk, Suite::Aes256Gcm, &ctx, b"s3cret")?;
/// let cache = OpenCache::new(1024);
/// for _ in 0..2 {
///     let plain = cache.open(&vk, &ctx, &sealed.body, sealed.wrapped_dek.as_bytes(), BodyCheck::Always)?;
///     assert_eq!(plain.expose_secret(), b"s3cret");
/// }
/// assert_eq!((cache.len(), cache.hits()), (1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OpenCache {
    entries: Mutex<HashMap<(RecordId, u64), Remembered>>,
    capacity: usize,
    hits: AtomicU64,
}

impl OpenCache {
    /// An empty cache of at most `capacity` record versions (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            hits: AtomicU64::new(0),
        }
    }

    /// How many opens used remembered keys (skipped the unwrap and the derivation).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The record versions remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every remembered key (zeroizing them).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(RecordId, u64), Remembered>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// [`open_with`](crate::open_with), using and filling the cache: the same checks in the
    /// same order, the same result and the same errors.
    ///
    /// # Errors
    /// Those of [`open_with`](crate::open_with).
    pub fn open(
        &self,
        vault_key: &VaultKey,
        ctx: &RecordContext,
        body: &[u8],
        wrapped_dek: &[u8],
        check: BodyCheck,
    ) -> Result<SecretBytes, EnvelopeError> {
        let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
        let header = header_for_context(body, ctx)?;
        check_key(vault_key, &wrapped)?;
        let keys = if let Some(keys) = self.remembered(vault_key, ctx, wrapped_dek, header.suite) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            keys
        } else {
            let dek = unwrap_with(vault_key.wrap_key(), ctx, &wrapped)?;
            let (body_key, commitment) = derive_record_key_parts(&dek, header.suite, ctx);
            let keys = RecordKeys {
                body: BodyKey::new(header.suite, &body_key),
                commitment,
            };
            self.remember(
                ctx,
                Remembered {
                    vault_id: ctx.vault_id,
                    vault_key: *vault_key.commitment(),
                    wrapped: wrapped_dek.to_vec(),
                    suite: header.suite,
                    body_key,
                    commitment,
                },
            );
            keys
        };
        check_sealed_epoch(&wrapped, &header)?;
        if !bool::from(keys.commitment.ct_eq(&header.commitment)) {
            return Err(EnvelopeError::Decrypt);
        }
        let plain = open_segments(&keys, &header, ctx, body)?;
        check_digest(&wrapped, body, check)?;
        Ok(plain)
    }

    /// The keys remembered for exactly this version, vault key, wrap and suite.
    fn remembered(
        &self,
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        suite: Suite,
    ) -> Option<RecordKeys> {
        let (body_key, commitment) = {
            let entries = self.lock();
            let r = entries.get(&(ctx.record_id, ctx.version))?;
            (r.vault_id == ctx.vault_id
                && r.vault_key == *vault_key.commitment()
                && r.wrapped == wrapped_dek
                && r.suite == suite)
                .then(|| (r.body_key.clone_secret(), r.commitment))?
        };
        // The AEAD key schedule runs after the lock is released: other readers wait only
        // for the lookup.
        Some(RecordKeys {
            body: BodyKey::new(suite, &body_key),
            commitment,
        })
    }

    fn remember(&self, ctx: &RecordContext, entry: Remembered) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert((ctx.record_id, ctx.version), entry);
    }
}

impl core::fmt::Debug for OpenCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("hits", &self.hits())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use strongroom_crypto::aead::Suite;
    use strongroom_crypto::{Key256, RecordId, VaultId};

    use super::*;
    use crate::record::seal_with;
    use crate::{Epoch, open_with, rewrap};

    fn ctx() -> RecordContext {
        RecordContext {
            vault_id: VaultId::from_bytes([1; 16]),
            record_id: RecordId::from_bytes([2; 16]),
            version: 3,
        }
    }

    fn key(epoch: u32) -> VaultKey {
        VaultKey::generate(Epoch(epoch)).expect("key")
    }

    fn dek(b: u8) -> Key256 {
        Key256::init_with(|k| k.fill(b))
    }

    /// `plaintext` sealed for `ctx` in epoch 1 under `vk`, with the data key `dek`.
    fn sealed(
        vk: &VaultKey,
        suite: Suite,
        ctx: &RecordContext,
        plaintext: &[u8],
        dek: &Key256,
    ) -> crate::SealedRecord {
        seal_with(vk, Epoch(1), suite, ctx, plaintext, dek, &[9; 24]).expect("seal")
    }

    /// What an open gave, comparable: the plaintext or the error's text.
    fn outcome(r: Result<SecretBytes, EnvelopeError>) -> Result<Vec<u8>, String> {
        r.map(|p| p.expose_secret().to_vec())
            .map_err(|e| format!("{e:?}"))
    }

    /// Seals version `v` of the test record (under its own data key) and opens it through
    /// `cache`.
    fn open_version(cache: &OpenCache, vk: &VaultKey, v: u64) {
        let ctx = RecordContext {
            version: v,
            ..ctx()
        };
        let dek = dek(u8::try_from(v).expect("a small version"));
        let s = sealed(vk, Suite::Aes256Gcm, &ctx, b"x", &dek);
        cache
            .open(
                vk,
                &ctx,
                &s.body,
                s.wrapped_dek.as_bytes(),
                BodyCheck::Always,
            )
            .expect("open");
    }

    #[test]
    fn a_second_open_uses_the_remembered_keys_and_gives_the_same_plaintext() {
        let (vk, ctx) = (key(1), ctx());
        let sealed = sealed(&vk, Suite::Aes256Gcm, &ctx, b"s3cret", &dek(7));
        let cache = OpenCache::new(8);
        for _ in 0..3 {
            let plain = cache
                .open(
                    &vk,
                    &ctx,
                    &sealed.body,
                    sealed.wrapped_dek.as_bytes(),
                    BodyCheck::Always,
                )
                .expect("open");
            assert_eq!(plain.expose_secret(), b"s3cret");
        }
        assert_eq!((cache.len(), cache.hits()), (1, 2));
        assert!(!cache.is_empty());
        assert_eq!(
            format!("{cache:?}"),
            "OpenCache { len: 1, capacity: 8, hits: 2, .. }"
        );
        cache.clear();
        assert!(cache.is_empty());
    }

    /// An entry is used only for the vault, vault key, wrap and suite it was derived
    /// from: another vault id (same record, version, wrap bytes and key) is a miss.
    #[test]
    fn an_entry_serves_only_what_it_was_derived_from() {
        let (vk, ctx) = (key(1), ctx());
        let sealed = sealed(&vk, Suite::Aes256Gcm, &ctx, b"x", &dek(7));
        let cache = OpenCache::new(8);
        let wrap = sealed.wrapped_dek.as_bytes();
        cache
            .open(&vk, &ctx, &sealed.body, wrap, BodyCheck::Always)
            .expect("open");
        let other_vault = RecordContext {
            vault_id: VaultId::from_bytes([9; 16]),
            ..ctx
        };
        assert!(
            cache
                .open(&vk, &other_vault, &sealed.body, wrap, BodyCheck::Always)
                .is_err()
        );
        assert_eq!(cache.hits(), 0, "another vault is a miss");
        // Another key of the same epoch (another id and commitment): refused before the
        // cache is consulted.
        let err = cache
            .open(&key(1), &ctx, &sealed.body, wrap, BodyCheck::Always)
            .expect_err("another key");
        assert!(
            matches!(err, EnvelopeError::WrongVaultKey { .. }),
            "{err:?}"
        );
        assert_eq!(cache.hits(), 0);
    }

    /// Several versions are remembered at once (until the capacity is reached).
    #[test]
    fn several_versions_are_remembered_at_once() {
        let vk = key(1);
        let cache = OpenCache::new(4);
        for _ in 0..2 {
            for v in 1..=3 {
                open_version(&cache, &vk, v);
            }
        }
        assert_eq!((cache.len(), cache.hits()), (3, 3));
    }

    /// The attack a remembered key must not open: storage keeps the wrap (so the entry's
    /// wrap matches) and replaces the body with one sealed under another DEK. The body
    /// header's commitment names the other DEK: refused, as a first open refuses it.
    #[test]
    fn a_body_under_another_dek_behind_a_remembered_wrap_is_refused() {
        let (vk, ctx) = (key(1), ctx());
        let good = sealed(&vk, Suite::Aes256Gcm, &ctx, b"real", &dek(7));
        let other = sealed(&vk, Suite::Aes256Gcm, &ctx, b"fake", &dek(8));
        let cache = OpenCache::new(8);
        let wrap = good.wrapped_dek.as_bytes();
        cache
            .open(
                &vk,
                &ctx,
                &good.body,
                wrap,
                BodyCheck::SealedBefore(Epoch(1)),
            )
            .expect("open");
        let err = cache
            .open(
                &vk,
                &ctx,
                &other.body,
                wrap,
                BodyCheck::SealedBefore(Epoch(1)),
            )
            .expect_err("a body under another DEK");
        assert!(matches!(err, EnvelopeError::Decrypt), "{err:?}");
        // The same DEK, another body (what a holder of the DEK can make): the digest the
        // wrap authenticates refuses it where the check applies, as `open_with` does.
        let forged = sealed(&vk, Suite::Aes256Gcm, &ctx, b"fake", &dek(7));
        let err = cache
            .open(&vk, &ctx, &forged.body, wrap, BodyCheck::Always)
            .expect_err("another body under the same DEK");
        assert!(matches!(err, EnvelopeError::BodyMismatch), "{err:?}");
    }

    #[test]
    fn a_rewrapped_record_is_opened_in_full_and_replaces_the_entry() {
        let (old, new, ctx) = (key(1), key(2), ctx());
        let sealed = sealed(&old, Suite::ChaCha20Poly1305, &ctx, b"v", &dek(7));
        let cache = OpenCache::new(8);
        cache
            .open(
                &old,
                &ctx,
                &sealed.body,
                sealed.wrapped_dek.as_bytes(),
                BodyCheck::Always,
            )
            .expect("open");
        let rewrapped = rewrap(&old, &new, &ctx, sealed.wrapped_dek.as_bytes()).expect("rewrap");
        // The old key does not open the new wrap, cached or not.
        let err = cache
            .open(
                &old,
                &ctx,
                &sealed.body,
                rewrapped.as_bytes(),
                BodyCheck::Always,
            )
            .expect_err("old key");
        assert!(
            matches!(err, EnvelopeError::WrongVaultKey { .. }),
            "{err:?}"
        );
        let plain = cache
            .open(
                &new,
                &ctx,
                &sealed.body,
                rewrapped.as_bytes(),
                BodyCheck::Always,
            )
            .expect("new key");
        assert_eq!(plain.expose_secret(), b"v");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let vk = key(1);
        let cache = OpenCache::new(4);
        for v in 1..=9 {
            open_version(&cache, &vk, v);
            assert!(cache.len() <= 4, "{}", cache.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// After a record version was opened (its keys remembered), any change to its
        /// stored bytes, the context or the check gives exactly what `open_with` gives.
        #[test]
        fn a_warm_cache_opens_exactly_like_open_with(
            flip_body in proptest::option::of((any::<prop::sample::Index>(), 1u8..)),
            flip_wrap in proptest::option::of((any::<prop::sample::Index>(), 1u8..)),
            version in prop_oneof![Just(3u64), Just(4u64)],
            always in any::<bool>(),
            chacha in any::<bool>(),
            len in 0usize..200,
        ) {
            let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
            let (vk, ctx) = (key(1), ctx());
            let sealed = sealed(&vk, suite, &ctx, &vec![5; len], &dek(7));
            let cache = OpenCache::new(8);
            cache.open(&vk, &ctx, &sealed.body, sealed.wrapped_dek.as_bytes(), BodyCheck::Always)
                .expect("warm");
            let mut body = sealed.body.clone();
            let mut wrap = sealed.wrapped_dek.as_bytes().to_vec();
            if let Some((at, x)) = flip_body {
                let i = at.index(body.len());
                body[i] ^= x;
            }
            if let Some((at, x)) = flip_wrap {
                let i = at.index(wrap.len());
                wrap[i] ^= x;
            }
            let ctx = RecordContext { version, ..ctx };
            let check = if always { BodyCheck::Always } else { BodyCheck::SealedBefore(Epoch(1)) };
            prop_assert_eq!(
                outcome(cache.open(&vk, &ctx, &body, &wrap, check)),
                outcome(open_with(&vk, &ctx, &body, &wrap, check))
            );
        }
    }
}
