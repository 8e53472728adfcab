//! The [`Keyholder`] trait and [`unwrap_any`].

use strongroom_crypto::Key256;

use crate::error::KeyholderError;
use crate::kind::KeyholderKind;
use crate::stanza::{Stanza, WrapContext};

/// Something that can wrap and unwrap a 256-bit key: a passphrase, a recovery key, a raw
/// KEK, an OS keyring entry, an HSM key, a KMS key.
///
/// Implementation notes:
/// - `wrap` must authenticate [`WrapContext::aad`] (for a stanza, all of
///   [`stanza_aad`](crate::stanza_aad)) and produce a fresh stanza (fresh salt or nonce) on
///   every call.
/// - `unwrap` returns `Ok(None)` when the stanza is not this keyholder's (another kind —
///   including [`KeyholderKind::Unknown`] kinds written by newer releases — or an id that
///   does not match), and an error when it is this keyholder's kind and id but unwrapping
///   failed (wrong passphrase, tampered stanza…), so a caller can try every stanza and
///   report the most specific failure.
/// - When the place that keeps the key cannot be used (token missing, service unreachable,
///   permission denied), return [`KeyholderError::Custody`] with the backend's error as its
///   source: a vault does not count that as a failed unlock attempt.
/// - Parameters read from a stanza (KDF costs, locators) are untrusted: check them before use.
/// - Never put secret bytes or credentials into errors.
///
/// # Example: a keyholder that keeps a KEK somewhere
///
/// A custody backend that can store 32 bytes (a keyring, a secret store) wraps with a
/// [`KekKeyholder`](crate::KekKeyholder) and only says where the KEK lives:
///
/// ```
/// use strongroom_crypto::Key256;
/// use strongroom_keyholder::{
///     KekKeyholder, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, unwrap_any,
/// };
///
/// struct InMemory(KekKeyholder);
///
/// impl Keyholder for InMemory {
///     fn kind(&self) -> KeyholderKind { KeyholderKind::OsKeyring }
///     fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
///         self.0.wrap(ctx, key)
///     }
///     fn unwrap(&self, ctx: &WrapContext<'_>, s: &Stanza) -> Result<Option<Key256>, KeyholderError> {
///         self.0.unwrap(ctx, s)
///     }
/// }
///
/// let kh = InMemory(KekKeyholder::new(Key256::generate()?, KeyholderKind::OsKeyring, b"entry-1")?);
/// let ctx = WrapContext { purpose: "strongroom/v1/member-key", subject: b"vault-1/alice" };
/// let key = Key256::generate()?;
/// let stanza = kh.wrap(&ctx, &key)?;
/// assert_eq!(KekKeyholder::locator_of(&stanza)?, b"entry-1");
/// let (k, _) = unwrap_any(&kh, &ctx, &[stanza])?;
/// assert!(bool::from(k.ct_eq(&key)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Keyholder {
    /// The kind.
    fn kind(&self) -> KeyholderKind;

    /// A human description for listings and errors (no secret: e.g. `passphrase`,
    /// `os-keyring strongroom/vault-1`).
    fn describe(&self) -> String {
        self.kind().name().to_owned()
    }

    /// Wraps `key`, bound to `ctx`.
    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError>;

    /// Unwraps `stanza` if it is this keyholder's.
    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError>;

    /// Rewraps `stanza` (this keyholder's own) to a fresh stanza for the same key, when the
    /// custody service can do it without the key leaving it (a KMS `rewrap` after a key
    /// rotation): `Ok(None)` when this keyholder has no such operation or the stanza is not
    /// its own, and the caller unwraps and wraps instead.
    ///
    /// The default is `Ok(None)`.
    fn rewrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Stanza>, KeyholderError> {
        let _ = (ctx, stanza);
        Ok(None)
    }

    /// The error [`unwrap_any`] reports when stanzas of this keyholder's kind are present but
    /// every one of them said "not mine" (`Ok(None)`): for a key whose stanza id is derived
    /// from the key (recovery key, raw KEK), that means the caller supplied the wrong key,
    /// and the error should say which key was tried (by its non-secret id).
    ///
    /// The default is [`KeyholderError::NoMatchingStanza`].
    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::NoMatchingStanza { kind: self.kind() }
    }
}

impl<K: Keyholder + ?Sized> Keyholder for &K {
    fn kind(&self) -> KeyholderKind {
        (**self).kind()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        (**self).wrap(ctx, key)
    }
    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        (**self).unwrap(ctx, stanza)
    }
    fn rewrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Stanza>, KeyholderError> {
        (**self).rewrap(ctx, stanza)
    }
    fn mismatch_error(&self) -> KeyholderError {
        (**self).mismatch_error()
    }
}

impl<K: Keyholder + ?Sized> Keyholder for Box<K> {
    fn kind(&self) -> KeyholderKind {
        (**self).kind()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        (**self).wrap(ctx, key)
    }
    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        (**self).unwrap(ctx, stanza)
    }
    fn rewrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Stanza>, KeyholderError> {
        (**self).rewrap(ctx, stanza)
    }
    fn mismatch_error(&self) -> KeyholderError {
        (**self).mismatch_error()
    }
}

/// Tries `keyholder` on every stanza and returns the first key it unwraps, with the index
/// of the stanza that opened. Stanzas of other kinds, [`KeyholderKind::Unknown`] ones
/// included, are skipped by the keyholder itself (`Ok(None)`).
///
/// When no stanza opens, the error is, in this order:
/// - the keyholder's own most specific failure on a stanza it recognised (e.g.
///   [`KeyholderError::WrongPassphrase`], or a [`KeyholderError::Custody`] failure);
/// - [`Keyholder::mismatch_error`] when stanzas of the keyholder's kind exist but none is
///   its own (e.g. [`KeyholderError::WrongKek`] naming the id of the key that was tried);
/// - [`KeyholderError::NoMatchingStanza`] when no stanza is of the keyholder's kind.
pub fn unwrap_any(
    keyholder: &dyn Keyholder,
    ctx: &WrapContext<'_>,
    stanzas: &[Stanza],
) -> Result<(Key256, usize), KeyholderError> {
    let mut last_err = None;
    let mut same_kind = false;
    for (i, s) in stanzas.iter().enumerate() {
        same_kind |= s.kind == keyholder.kind();
        match keyholder.unwrap(ctx, s) {
            Ok(Some(k)) => return Ok((k, i)),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
    }
    Err(match last_err {
        Some(e) => e,
        None if same_kind => keyholder.mismatch_error(),
        None => KeyholderError::NoMatchingStanza {
            kind: keyholder.kind(),
        },
    })
}
