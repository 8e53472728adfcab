//! Sealing, opening, rewrapping and re-encrypting records.

use strongroom_crypto::aead::{Aead, BodyKey, Suite, WrapKey};
use strongroom_crypto::kdf::hkdf_sha256_expand;
use strongroom_crypto::{Key256, SecretBytes, random};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::format::{
    BodyHeader, RECORD_KEYS_LABEL, RecordContext, SEGMENT_CT_LEN, SEGMENT_LEN, TAG_LEN, WrappedDek,
    body_aad, body_digest, body_len, segment_layout, segment_nonce,
};
use crate::{EnvelopeError, Epoch, VaultKey};

/// A sealed record: the two parts a store keeps apart.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    /// Header and segments; never rewritten by a vault-key rotation.
    pub body: Vec<u8>,
    /// The DEK wrapped under the vault key, with the body's digest (122 bytes); rewritten
    /// by rotation.
    pub wrapped_dek: WrappedDek,
}

/// The per-record subkeys derived from a DEK.
pub(crate) struct RecordKeys {
    pub(crate) body: BodyKey,
    pub(crate) commitment: [u8; 32],
}

/// `HKDF-Expand-SHA256(PRK = DEK, info = "strongroom/v1/record" ‖ suite ‖ vault id ‖
/// record id ‖ version, L = 64)`: the first 32 bytes are the body key, the last 32 the key
/// commitment. The DEK is uniformly random, so the extract step is skipped (RFC 5869 §3.3).
pub(crate) fn derive_record_keys(dek: &Key256, suite: Suite, ctx: &RecordContext) -> RecordKeys {
    let (body_key, commitment) = derive_record_key_parts(dek, suite, ctx);
    RecordKeys {
        body: BodyKey::new(suite, &body_key),
        commitment,
    }
}

/// The two halves of [`derive_record_keys`]: the body key (before its AEAD key schedule)
/// and the key commitment.
pub(crate) fn derive_record_key_parts(
    dek: &Key256,
    suite: Suite,
    ctx: &RecordContext,
) -> (Key256, [u8; 32]) {
    let mut okm = Zeroizing::new([0u8; 64]);
    hkdf_sha256_expand(
        dek,
        &[
            RECORD_KEYS_LABEL,
            &[suite.id()],
            ctx.vault_id.as_bytes(),
            ctx.record_id.as_bytes(),
            &ctx.version.to_be_bytes(),
        ],
        &mut okm[..],
    )
    .unwrap_or_else(|_| unreachable!("64 bytes is a valid HKDF-SHA256 length"));
    let body_key = Key256::init_with(|k| k.copy_from_slice(&okm[..32]));
    let mut commitment = [0u8; 32];
    commitment.copy_from_slice(&okm[32..]);
    (body_key, commitment)
}

/// Seals `plaintext` for the record at `ctx` under a fresh random DEK, wrapped by
/// `vault_key`.
///
/// One call to the OS CSPRNG yields both the DEK and the wrap nonce.
///
/// ```
/// use strongroom_crypto::{RecordId, VaultId, aead::Suite};
/// use strongroom_envelope::{Epoch, RecordContext, VaultKey, open, seal};
///
/// let vk = VaultKey::generate(Epoch::FIRST)?;
/// let ctx = RecordContext { vault_id: VaultId::generate()?, record_id: RecordId::generate()?, version: 1 };
/// let sealed = seal(&vk, Suite::Aes256Gcm, &ctx, b"postgres://app:s3cret@db/app")?;
/// let plain = open(&vk, &ctx, &sealed.body, sealed.wrapped_dek.as_bytes())?;
/// assert_eq!(plain.expose_secret(), b"postgres://app:s3cret@db/app");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal(
    vault_key: &VaultKey,
    suite: Suite,
    ctx: &RecordContext,
    plaintext: &[u8],
) -> Result<SealedRecord, EnvelopeError> {
    let (dek, nonce) = fresh_dek_and_nonce()?;
    seal_with(
        vault_key,
        vault_key.epoch(),
        suite,
        ctx,
        plaintext,
        &dek,
        &nonce,
    )
}

/// [`seal`], recording `sealed_in` as the epoch the record version was sealed in: an
/// earlier epoch than the wrapping key's, for a version sealed again with the same content
/// (its plaintext was known to the members of `sealed_in`, as for a version sealed then and
/// rewrapped since). An epoch after the key's is taken as the key's.
///
/// ```
/// use strongroom_crypto::{RecordId, VaultId, aead::Suite};
/// use strongroom_envelope::{Epoch, RecordContext, VaultKey, WrappedDek, open, seal_in};
///
/// let vk = VaultKey::generate(Epoch(3))?;
/// let ctx = RecordContext { vault_id: VaultId::generate()?, record_id: RecordId::generate()?, version: 1 };
/// let sealed = seal_in(&vk, Epoch(2), Suite::Aes256Gcm, &ctx, b"same value")?;
/// assert_eq!(sealed.wrapped_dek.sealed_epoch(), Some(Epoch(2)));
/// assert_eq!(sealed.wrapped_dek.epoch(), Epoch(3));
/// let plain = open(&vk, &ctx, &sealed.body, sealed.wrapped_dek.as_bytes())?;
/// assert_eq!(plain.expose_secret(), b"same value");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal_in(
    vault_key: &VaultKey,
    sealed_in: Epoch,
    suite: Suite,
    ctx: &RecordContext,
    plaintext: &[u8],
) -> Result<SealedRecord, EnvelopeError> {
    let (dek, nonce) = fresh_dek_and_nonce()?;
    let sealed_in = sealed_in.min(vault_key.epoch());
    seal_with(vault_key, sealed_in, suite, ctx, plaintext, &dek, &nonce)
}

/// A fresh DEK and a wrap nonce from a single call to the OS CSPRNG.
pub(crate) fn fresh_dek_and_nonce() -> Result<(Key256, [u8; 24]), EnvelopeError> {
    let mut rnd = Zeroizing::new([0u8; 56]);
    random::fill(&mut rnd[..])?;
    let dek = Key256::init_with(|k| k.copy_from_slice(&rnd[..32]));
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&rnd[32..]);
    Ok((dek, nonce))
}

/// Parses the header at the start of `body` and checks it names the version `ctx`
/// expects (a row replayed from another version is refused before any key work).
pub(crate) fn header_for_context(
    body: &[u8],
    ctx: &RecordContext,
) -> Result<BodyHeader, EnvelopeError> {
    let header = BodyHeader::decode(body)?;
    if header.record_version != ctx.version {
        return Err(EnvelopeError::VersionMismatch {
            found: header.record_version,
            expected: ctx.version,
        });
    }
    Ok(header)
}

/// [`seal`] with a caller-supplied DEK and wrap nonce, sealed in epoch `sealed_in` (the
/// key's own, or an earlier one for [`seal_in`]): the seam for known-answer tests.
pub(crate) fn seal_with(
    vault_key: &VaultKey,
    sealed_in: Epoch,
    suite: Suite,
    ctx: &RecordContext,
    plaintext: &[u8],
    dek: &Key256,
    wrap_nonce: &[u8; 24],
) -> Result<SealedRecord, EnvelopeError> {
    let body = seal_body(dek, suite, sealed_in, ctx, plaintext)?;
    let wrapped_dek = wrap_dek(
        vault_key,
        ctx,
        dek,
        sealed_in,
        &body_digest(&body),
        wrap_nonce,
    )?;
    Ok(SealedRecord { body, wrapped_dek })
}

pub(crate) fn header_for(
    keys: &RecordKeys,
    suite: Suite,
    epoch: Epoch,
    ctx: &RecordContext,
) -> [u8; BodyHeader::LEN] {
    BodyHeader {
        suite,
        epoch,
        record_version: ctx.version,
        commitment: keys.commitment,
    }
    .encode()
}

pub(crate) fn seal_body(
    dek: &Key256,
    suite: Suite,
    epoch: Epoch,
    ctx: &RecordContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let keys = derive_record_keys(dek, suite, ctx);
    let header = header_for(&keys, suite, epoch, ctx);
    let aad = body_aad(&header, ctx);
    let mut out = Vec::with_capacity(body_len(plaintext.len()));
    out.extend_from_slice(&header);
    let mut chunks = plaintext.chunks(SEGMENT_LEN).peekable();
    let mut index = 0u64;
    if chunks.peek().is_none() {
        // The empty body is one empty, final segment.
        let tag = keys
            .body
            .seal_detached(&segment_nonce(0, true), &aad, &mut [])?;
        out.extend_from_slice(&tag);
        return Ok(out);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = keys
            .body
            .seal_detached(&segment_nonce(index, last), &aad, &mut out[start..])?;
        out.extend_from_slice(&tag);
        index += 1;
    }
    Ok(out)
}

/// Wraps `dek` under `vault_key` for the record at `ctx` (format version 2), binding the
/// epoch the record was sealed in and its body digest.
pub(crate) fn wrap_dek(
    vault_key: &VaultKey,
    ctx: &RecordContext,
    dek: &Key256,
    sealed_epoch: Epoch,
    digest: &[u8; 32],
    nonce: &[u8; 24],
) -> Result<WrappedDek, EnvelopeError> {
    let mut w = WrappedDek::v2(
        vault_key.epoch(),
        vault_key.id(),
        sealed_epoch,
        digest,
        nonce,
    );
    let aad = w.aad(ctx);
    let (ct, tag_out) = w.sealed_parts_mut();
    ct.copy_from_slice(dek.expose_secret());
    let tag = vault_key.wrap_key().seal_detached(nonce, &aad, ct)?;
    tag_out.copy_from_slice(&tag);
    Ok(w)
}

/// Unwraps the DEK, checking first that `vault_key` is the key the wrap names.
pub(crate) fn unwrap_dek(
    vault_key: &VaultKey,
    ctx: &RecordContext,
    wrapped: &WrappedDek,
) -> Result<Key256, EnvelopeError> {
    check_key(vault_key, wrapped)?;
    unwrap_with(vault_key.wrap_key(), ctx, wrapped)
}

pub(crate) fn check_key(vault_key: &VaultKey, wrapped: &WrappedDek) -> Result<(), EnvelopeError> {
    if wrapped.epoch() != vault_key.epoch() || wrapped.key_id() != vault_key.id() {
        return Err(EnvelopeError::WrongVaultKey {
            needed_epoch: wrapped.epoch(),
            needed_key_id: wrapped.key_id(),
            given_epoch: vault_key.epoch(),
            given_key_id: vault_key.id(),
        });
    }
    Ok(())
}

pub(crate) fn unwrap_with(
    wrap: &WrapKey,
    ctx: &RecordContext,
    wrapped: &WrappedDek,
) -> Result<Key256, EnvelopeError> {
    let aad = wrapped.aad(ctx);
    let (nonce, ct, tag) = wrapped.sealed_parts();
    let mut ok = true;
    let dek = Key256::init_with(|k| {
        k.copy_from_slice(ct);
        ok = wrap.open_detached(nonce, &aad, k, tag).is_ok();
    });
    if ok {
        Ok(dek)
    } else {
        Err(EnvelopeError::Decrypt)
    }
}

/// When opening a record checks the body against the digest its (version-2) wrap
/// authenticates.
///
/// The digest is what keeps a former member, who kept a record's data key, from replacing
/// its body after a rotation; it costs one SHA-256 pass over the body. A record version
/// sealed at an epoch no removed member ever held has a data key only current members know,
/// so the check can be skipped for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyCheck {
    /// Always check (what [`open`] does).
    Always,
    /// Check record versions sealed before this epoch (the first epoch after the last
    /// member removal); trust the digest-free path for versions sealed since.
    SealedBefore(Epoch),
}

impl BodyCheck {
    /// Whether a body under `wrapped` must be checked against its digest.
    pub fn applies_to(self, wrapped: &WrappedDek) -> bool {
        match (self, wrapped.sealed_epoch()) {
            (_, None) => false,
            (BodyCheck::Always, Some(_)) => true,
            (BodyCheck::SealedBefore(floor), Some(sealed)) => sealed < floor,
        }
    }
}

/// A version-2 wrap names the epoch the body header says it was sealed in.
pub(crate) fn check_sealed_epoch(
    wrapped: &WrappedDek,
    header: &BodyHeader,
) -> Result<(), EnvelopeError> {
    match wrapped.sealed_epoch() {
        Some(sealed) if sealed != header.epoch => Err(EnvelopeError::SealedEpochMismatch {
            header: header.epoch,
            wrap: sealed,
        }),
        _ => Ok(()),
    }
}

/// When `check` applies to a version-2 wrap: the body's digest is the one the wrap
/// authenticates (compared in constant time).
pub(crate) fn check_digest(
    wrapped: &WrappedDek,
    body: &[u8],
    check: BodyCheck,
) -> Result<(), EnvelopeError> {
    if check.applies_to(wrapped)
        && let Some(want) = wrapped.body_digest()
        && !bool::from(body_digest(body).ct_eq(&want))
    {
        return Err(EnvelopeError::BodyMismatch);
    }
    Ok(())
}

/// Opens a record: unwraps the DEK with `vault_key` (which must be the key of the epoch
/// the wrap names: see [`WrappedDek::epoch`]), checks the body against the digest the wrap
/// authenticates, checks the key commitment in constant time, then decrypts every segment.
/// The same as [`open_with`] and [`BodyCheck::Always`].
pub fn open(
    vault_key: &VaultKey,
    ctx: &RecordContext,
    body: &[u8],
    wrapped_dek: &[u8],
) -> Result<SecretBytes, EnvelopeError> {
    open_with(vault_key, ctx, body, wrapped_dek, BodyCheck::Always)
}

/// [`open`], checking the body digest only where `check` says (the order of checks is in
/// the crate documentation).
pub fn open_with(
    vault_key: &VaultKey,
    ctx: &RecordContext,
    body: &[u8],
    wrapped_dek: &[u8],
    check: BodyCheck,
) -> Result<SecretBytes, EnvelopeError> {
    let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
    let header = header_for_context(body, ctx)?;
    let dek = unwrap_dek(vault_key, ctx, &wrapped)?;
    check_sealed_epoch(&wrapped, &header)?;
    let plain = open_body(&dek, &header, ctx, body)?;
    // Last: a body that authenticates under the DEK but is not the one sealed.
    check_digest(&wrapped, body, check)?;
    Ok(plain)
}

/// Derives the record keys and checks the header's commitment in constant time.
pub(crate) fn committed_keys(
    dek: &Key256,
    header: &BodyHeader,
    ctx: &RecordContext,
) -> Result<RecordKeys, EnvelopeError> {
    let keys = derive_record_keys(dek, header.suite, ctx);
    if bool::from(keys.commitment.ct_eq(&header.commitment)) {
        Ok(keys)
    } else {
        Err(EnvelopeError::Decrypt)
    }
}

fn open_body(
    dek: &Key256,
    header: &BodyHeader,
    ctx: &RecordContext,
    body: &[u8],
) -> Result<SecretBytes, EnvelopeError> {
    let keys = committed_keys(dek, header, ctx)?;
    open_segments(&keys, header, ctx, body)
}

/// Decrypts every segment of `body` with `keys` (whose commitment the caller checked).
pub(crate) fn open_segments(
    keys: &RecordKeys,
    header: &BodyHeader,
    ctx: &RecordContext,
    body: &[u8],
) -> Result<SecretBytes, EnvelopeError> {
    let segments = &body[BodyHeader::LEN..];
    let (count, _) = segment_layout(segments.len()).ok_or(EnvelopeError::Decrypt)?;
    let aad = body_aad(&header.encode(), ctx);
    let plain_len = segments.len() - count as usize * TAG_LEN;
    // Exact capacity: the buffer becomes the secret's box without reallocating, and is
    // zeroized if any segment fails.
    let mut out = Zeroizing::new(Vec::with_capacity(plain_len));
    for (index, seg) in segments.chunks(SEGMENT_CT_LEN).enumerate() {
        let last = index as u64 + 1 == count;
        let (ct, tag) = seg.split_at(seg.len() - TAG_LEN);
        let start = out.len();
        out.extend_from_slice(ct);
        keys.body.open_detached(
            &segment_nonce(index as u64, last),
            &aad,
            &mut out[start..],
            tag,
        )?;
    }
    Ok(SecretBytes::from(core::mem::take(&mut *out)))
}

/// Rewraps a record's DEK from `old` to `new` without touching (or reading) the body.
///
/// The record context must be the one the DEK was wrapped for; the new wrap keeps it
/// bound, and carries the sealed epoch and body digest unchanged. A version-1 wrap has no
/// digest to carry: it is [`EnvelopeError::NeedsBody`] (use [`rewrap_with_body`]).
///
/// ```
/// use strongroom_crypto::{RecordId, VaultId, aead::Suite};
/// use strongroom_envelope::{Epoch, RecordContext, VaultKey, open, rewrap, seal};
///
/// let (old, new) = (VaultKey::generate(Epoch(1))?, VaultKey::generate(Epoch(2))?);
/// let ctx = RecordContext { vault_id: VaultId::generate()?, record_id: RecordId::generate()?, version: 1 };
/// let sealed = seal(&old, Suite::Aes256Gcm, &ctx, b"token")?;
/// let rewrapped = rewrap(&old, &new, &ctx, sealed.wrapped_dek.as_bytes())?;
/// assert_eq!(rewrapped.epoch(), Epoch(2));
/// assert_eq!(open(&new, &ctx, &sealed.body, rewrapped.as_bytes())?.expose_secret(), b"token");
/// assert!(open(&old, &ctx, &sealed.body, rewrapped.as_bytes()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rewrap(
    old: &VaultKey,
    new: &VaultKey,
    ctx: &RecordContext,
    wrapped_dek: &[u8],
) -> Result<WrappedDek, EnvelopeError> {
    let nonce: [u8; 24] = random::array()?;
    rewrap_with_nonce(old, new, ctx, wrapped_dek, &nonce)
}

pub(crate) fn rewrap_with_nonce(
    old: &VaultKey,
    new: &VaultKey,
    ctx: &RecordContext,
    wrapped_dek: &[u8],
    nonce: &[u8; 24],
) -> Result<WrappedDek, EnvelopeError> {
    let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
    let (Some(sealed), Some(digest)) = (wrapped.sealed_epoch(), wrapped.body_digest()) else {
        return Err(EnvelopeError::NeedsBody);
    };
    let dek = unwrap_dek(old, ctx, &wrapped)?;
    wrap_dek(new, ctx, &dek, sealed, &digest, nonce)
}

/// Rewraps a record's DEK from `old` to `new` given its body: upgrades a version-1 wrap to
/// version 2 (the digest of `body` and the epoch its header names are bound into the new
/// wrap). The body is checked first: its header must name the record version, and its key
/// commitment must match the DEK (so a body of another record, or garbage, is not bound);
/// a version-2 wrap must match the body's digest. Nothing is decrypted.
///
/// The body is trusted as it is at this moment: a body replaced before the upgrade by
/// someone who held the data key is bound too (see the crate's security notes).
pub fn rewrap_with_body(
    old: &VaultKey,
    new: &VaultKey,
    ctx: &RecordContext,
    body: &[u8],
    wrapped_dek: &[u8],
) -> Result<WrappedDek, EnvelopeError> {
    let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
    let header = header_for_context(body, ctx)?;
    let dek = unwrap_dek(old, ctx, &wrapped)?;
    check_sealed_epoch(&wrapped, &header)?;
    committed_keys(&dek, &header, ctx)?;
    check_digest(&wrapped, body, BodyCheck::Always)?;
    let nonce: [u8; 24] = random::array()?;
    wrap_dek(new, ctx, &dek, header.epoch, &body_digest(body), &nonce)
}

/// Rewraps many DEKs at once (a rotation batch): the same as calling [`rewrap`] on each,
/// but the nonces come from a single call to the OS CSPRNG. The buffer lives only for the
/// duration of this call, so it cannot be replayed by a forked child.
///
/// Returns one result per input, in order.
pub fn rewrap_batch<'a>(
    old: &VaultKey,
    new: &VaultKey,
    items: impl ExactSizeIterator<Item = (RecordContext, &'a [u8])>,
) -> Result<Vec<Result<WrappedDek, EnvelopeError>>, EnvelopeError> {
    let mut nonces = vec![0u8; items.len() * 24];
    random::fill(&mut nonces)?;
    let out = items
        .zip(nonces.chunks_exact(24))
        .map(|((ctx, w), n)| {
            let nonce: &[u8; 24] = n.try_into().unwrap_or_else(|_| unreachable!());
            rewrap_with_nonce(old, new, &ctx, w, nonce)
        })
        .collect();
    nonces.zeroize();
    Ok(out)
}

/// Deep re-encryption: opens the record with `old` and seals the plaintext again under a
/// fresh DEK wrapped by `new`, for the record at `new_ctx` (usually the same record, possibly
/// a new version). Use it after a suspected DEK exposure; a plain key rotation only needs
/// [`rewrap`].
pub fn reencrypt(
    old: &VaultKey,
    old_ctx: &RecordContext,
    new: &VaultKey,
    new_ctx: &RecordContext,
    suite: Suite,
    body: &[u8],
    wrapped_dek: &[u8],
) -> Result<SealedRecord, EnvelopeError> {
    let plain = open(old, old_ctx, body, wrapped_dek)?;
    seal(new, suite, new_ctx, plain.expose_secret())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use strongroom_crypto::{RecordId, VaultId};

    pub(crate) fn ctx() -> RecordContext {
        RecordContext {
            vault_id: VaultId::from_bytes([1; 16]),
            record_id: RecordId::from_bytes([2; 16]),
            version: 3,
        }
    }

    #[test]
    fn round_trip_sizes() {
        let vk = VaultKey::generate(Epoch(4)).unwrap();
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            for n in [
                0,
                1,
                64,
                1024,
                SEGMENT_LEN - 1,
                SEGMENT_LEN,
                SEGMENT_LEN + 1,
                3 * SEGMENT_LEN + 5,
            ] {
                let pt: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                let s = seal(&vk, suite, &ctx(), &pt).unwrap();
                assert_eq!(s.body.len(), body_len(n));
                assert_eq!(s.body.capacity(), s.body.len());
                let h = BodyHeader::decode(&s.body).unwrap();
                assert_eq!((h.suite, h.epoch, h.record_version), (suite, Epoch(4), 3));
                let back = open(&vk, &ctx(), &s.body, s.wrapped_dek.as_bytes()).unwrap();
                assert_eq!(back.expose_secret(), &pt[..], "{suite:?} {n}");
            }
        }
    }

    /// `seal_in` records the epoch given (the body header and the wrapped key agree on it),
    /// wraps under the key's own epoch, opens like any version rewrapped since, and takes
    /// an epoch after the key's as the key's.
    #[test]
    fn seal_in_keeps_the_epoch_given() {
        let vk = VaultKey::generate(Epoch(5)).unwrap();
        let s = seal_in(&vk, Epoch(2), Suite::ChaCha20Poly1305, &ctx(), b"kept").unwrap();
        assert_eq!(BodyHeader::decode(&s.body).unwrap().epoch, Epoch(2));
        assert_eq!(s.wrapped_dek.sealed_epoch(), Some(Epoch(2)));
        assert_eq!(s.wrapped_dek.epoch(), Epoch(5));
        let back = open(&vk, &ctx(), &s.body, s.wrapped_dek.as_bytes()).unwrap();
        assert_eq!(back.expose_secret(), b"kept");
        let later = seal_in(&vk, Epoch(9), Suite::Aes256Gcm, &ctx(), b"kept").unwrap();
        assert_eq!(later.wrapped_dek.sealed_epoch(), Some(Epoch(5)));
        assert_eq!(BodyHeader::decode(&later.body).unwrap().epoch, Epoch(5));
    }

    #[test]
    fn fresh_dek_every_seal() {
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let a = seal(&vk, Suite::Aes256Gcm, &ctx(), b"same").unwrap();
        let b = seal(&vk, Suite::Aes256Gcm, &ctx(), b"same").unwrap();
        assert_ne!(a.body, b.body);
        assert_ne!(a.wrapped_dek, b.wrapped_dek);
    }

    #[test]
    fn wrong_epoch_key_is_named() {
        let vk1 = VaultKey::generate(Epoch(1)).unwrap();
        let vk2 = VaultKey::generate(Epoch(2)).unwrap();
        let s = seal(&vk1, Suite::Aes256Gcm, &ctx(), b"x").unwrap();
        let err = open(&vk2, &ctx(), &s.body, s.wrapped_dek.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                EnvelopeError::WrongVaultKey {
                    needed_epoch: Epoch(1),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("epoch 1"));
        // Same epoch number, different key: detected by key id before any decryption.
        let other = VaultKey::generate(Epoch(1)).unwrap();
        assert!(matches!(
            open(&other, &ctx(), &s.body, s.wrapped_dek.as_bytes()),
            Err(EnvelopeError::WrongVaultKey { .. })
        ));
    }

    #[test]
    fn batch_rewrap_matches_single() {
        let old = VaultKey::generate(Epoch(1)).unwrap();
        let new = VaultKey::generate(Epoch(2)).unwrap();
        let recs: Vec<(RecordContext, SealedRecord)> = (0..5u8)
            .map(|i| {
                let c = RecordContext {
                    record_id: RecordId::from_bytes([i; 16]),
                    ..ctx()
                };
                (c, seal(&old, Suite::Aes256Gcm, &c, &[i; 10]).unwrap())
            })
            .collect();
        let out = rewrap_batch(
            &old,
            &new,
            recs.iter().map(|(c, s)| (*c, s.wrapped_dek.as_bytes())),
        )
        .unwrap();
        for ((c, s), w) in recs.iter().zip(out) {
            let w = w.unwrap();
            assert_eq!(w.epoch(), Epoch(2));
            let p = open(&new, c, &s.body, w.as_bytes()).unwrap();
            assert_eq!(p.expose_secret(), &[c.record_id.as_bytes()[0]; 10]);
        }
    }

    #[test]
    fn reencrypt_changes_body_and_dek() {
        let old = VaultKey::generate(Epoch(1)).unwrap();
        let new = VaultKey::generate(Epoch(2)).unwrap();
        let s = seal(&old, Suite::Aes256Gcm, &ctx(), b"secret").unwrap();
        let r = reencrypt(
            &old,
            &ctx(),
            &new,
            &ctx(),
            Suite::ChaCha20Poly1305,
            &s.body,
            s.wrapped_dek.as_bytes(),
        )
        .unwrap();
        assert_ne!(r.body, s.body);
        assert_eq!(
            BodyHeader::decode(&r.body).unwrap().suite,
            Suite::ChaCha20Poly1305
        );
        assert_eq!(
            open(&new, &ctx(), &r.body, r.wrapped_dek.as_bytes())
                .unwrap()
                .expose_secret(),
            b"secret"
        );
    }
}
