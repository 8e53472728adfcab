//! The Secret Service keyholder.

use core::fmt;
use std::time::Duration;

use strongroom_crypto::{Key256, KeyId};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, KekKeyholder, Keyholder, KeyholderError, KeyholderKind, Stanza,
    WrapContext,
};

use crate::entry::SecretServiceEntry;

/// How long one D-Bus call to the Secret Service may take before it fails as unreachable
/// (the limit `dbus-secret-service` sets on every call).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How to talk to the Secret Service.
///
/// `prompt_timeout` is how long to wait for the user to answer an unlock prompt when the
/// collection is locked. The default, zero, never shows a prompt: a locked collection is an
/// immediate [`CustodyProblem::Denied`] error, which is what a service or a script wants. A
/// desktop tool may allow a few tens of seconds, after which the prompt is abandoned and the
/// same error is returned. Every other call fails after [`CALL_TIMEOUT`] without an answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretServiceOptions {
    /// How long an unlock prompt may wait for the user (whole seconds; zero: no prompt).
    pub prompt_timeout: Duration,
}

impl SecretServiceOptions {
    /// Allows an unlock prompt for up to `timeout`.
    #[must_use]
    pub fn with_prompt_timeout(mut self, timeout: Duration) -> Self {
        self.prompt_timeout = timeout;
        self
    }
}

/// A 32-byte KEK kept as an item of a freedesktop Secret Service collection (GNOME Keyring,
/// KWallet, KeePassXC…), used as a keyholder.
///
/// Wraps exactly like a raw KEK ([`KekKeyholder`]: XChaCha20-Poly1305 under HKDF of the KEK,
/// stanza id = the KEK's [`KeyId`]) with kind [`KeyholderKind::SecretService`] and the item's
/// name written into the stanza as its locator ([`SecretServiceEntry`]), so a stored stanza
/// says which item to open ([`SecretServiceKeyholder::entry_of`]). The item's secret is the
/// 32 raw bytes of the KEK (content type `application/octet-stream`); its attributes are
/// `strongroom-service` and `strongroom-entry`, with `xdg:schema` = [`SCHEMA`].
///
/// The KEK is read once, when the keyholder is opened; wrapping and unwrapping then happen in
/// this process. Failures of the Secret Service (no session bus, no provider, a locked
/// collection, no answer within [`CALL_TIMEOUT`]) are [`KeyholderError::Custody`] with the
/// D-Bus error as their source, never a wrong key.
///
/// Unlike the kernel keyring, a Secret Service collection such as GNOME Keyring's `login`
/// is kept on disk (encrypted with the login password) and survives a reboot; it is locked
/// until the user logs in to the desktop.
pub struct SecretServiceKeyholder {
    inner: KekKeyholder,
    entry: SecretServiceEntry,
    options: SecretServiceOptions,
}

/// The `xdg:schema` attribute of the items this crate writes.
pub const SCHEMA: &str = "org.strongroom.KeyEncryptionKey";

impl SecretServiceKeyholder {
    /// Generates a random KEK and stores it in a new item.
    ///
    /// Fails with [`KeyholderError::AlreadyExists`] when the item exists (it may hold the
    /// KEK of a vault: it is never overwritten).
    pub fn create(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<Self, KeyholderError> {
        let kek = Key256::generate()?;
        backend::create(entry, options, &kek)?;
        Self::with(entry.clone(), *options, kek)
    }

    /// Loads the KEK of an existing item.
    ///
    /// Fails with [`KeyholderError::Custody`]: [`CustodyProblem::Missing`] when there is no
    /// such item or collection, [`CustodyProblem::Denied`] when the collection is locked,
    /// [`CustodyProblem::Unreachable`] when there is no session bus or Secret Service, or it
    /// does not answer in time.
    pub fn open(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<Self, KeyholderError> {
        let kek = backend::read(entry, options)?;
        Self::with(entry.clone(), *options, kek)
    }

    /// Opens the item, creating it first if it does not exist; `true` when it was created.
    /// Idempotent: the first step of a rotation that can be re-run after a crash.
    pub fn open_or_create(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<(Self, bool), KeyholderError> {
        match Self::open(entry, options) {
            Ok(kh) => Ok((kh, false)),
            Err(KeyholderError::Custody(c))
                if c.problem == CustodyProblem::Missing && c.what.contains(NO_ITEM) =>
            {
                Self::create(entry, options).map(|kh| (kh, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the item that `stanza` names (see [`SecretServiceKeyholder::entry_of`]).
    pub fn open_for(
        stanza: &Stanza,
        options: &SecretServiceOptions,
    ) -> Result<Self, KeyholderError> {
        let Some(entry) = Self::entry_of(stanza)? else {
            return Err(KeyholderError::NoMatchingStanza {
                kind: KeyholderKind::SecretService,
            });
        };
        Self::open(&entry, options)
    }

    /// Deletes an item ("shreds" the KEK: every stanza it wraps becomes unopenable by it).
    /// Idempotent: `false` when there was nothing to delete.
    pub fn delete(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<bool, KeyholderError> {
        backend::delete(entry, options)
    }

    /// Deletes this keyholder's item (idempotent; see [`SecretServiceKeyholder::delete`]).
    pub fn delete_item(&self) -> Result<bool, KeyholderError> {
        Self::delete(&self.entry, &self.options)
    }

    /// The item this keyholder's KEK lives in (and that its stanzas name).
    pub fn entry(&self) -> &SecretServiceEntry {
        &self.entry
    }

    /// The non-secret id of the KEK (also the stanza id).
    pub fn key_id(&self) -> KeyId {
        self.inner.key_id()
    }

    /// The item a Secret Service stanza names, read without any key; `None` for a stanza of
    /// another kind.
    pub fn entry_of(stanza: &Stanza) -> Result<Option<SecretServiceEntry>, KeyholderError> {
        if stanza.kind != KeyholderKind::SecretService {
            return Ok(None);
        }
        Ok(Some(SecretServiceEntry::from_locator(
            KekKeyholder::locator_of(stanza)?,
        )?))
    }

    fn with(
        entry: SecretServiceEntry,
        options: SecretServiceOptions,
        kek: Key256,
    ) -> Result<Self, KeyholderError> {
        let inner = KekKeyholder::new(kek, KeyholderKind::SecretService, &entry.to_locator())?;
        Ok(Self {
            inner,
            entry,
            options,
        })
    }
}

impl fmt::Debug for SecretServiceKeyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretServiceKeyholder({}, {}, <redacted>)",
            self.entry,
            self.key_id()
        )
    }
}

impl Keyholder for SecretServiceKeyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::SecretService
    }

    fn describe(&self) -> String {
        format!("secret-service {}", self.entry)
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        self.inner.wrap(ctx, key)
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        self.inner.unwrap(ctx, stanza)
    }

    fn mismatch_error(&self) -> KeyholderError {
        self.inner.mismatch_error()
    }
}

/// The start of the message of a missing item (what `open_or_create` creates).
const NO_ITEM: &str = "the Secret Service has no item";

fn custody(problem: CustodyProblem, what: String) -> CustodyError {
    CustodyError::new(KeyholderKind::SecretService, problem, what)
}

fn locked_hint(entry: &SecretServiceEntry, options: &SecretServiceOptions) -> String {
    if options.prompt_timeout.is_zero() {
        format!(
            "the Secret Service collection '{}' is locked: unlock it (log in to the desktop session, or unlock it in Seahorse or KWallet Manager), or allow an unlock prompt (prompt-timeout=SECONDS)",
            entry.collection
        )
    } else {
        format!(
            "the Secret Service collection '{}' is locked and the unlock prompt was dismissed or not answered within {} s: unlock it and retry",
            entry.collection,
            options.prompt_timeout.as_secs()
        )
    }
}

#[cfg(target_os = "linux")]
mod backend {
    use std::collections::HashMap;

    use dbus_secret_service::{Collection, EncryptionType, Error as SsError, Item, SecretService};
    use strongroom_crypto::Key256;
    use strongroom_keyholder::{CustodyProblem, KeyholderError};
    use subtle::ConstantTimeEq;
    use zeroize::Zeroizing;

    use super::{NO_ITEM, SCHEMA, SecretServiceOptions, custody, locked_hint};
    use crate::entry::SecretServiceEntry;

    const CONTENT_TYPE: &str = "application/octet-stream";

    pub(super) fn read(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<Key256, KeyholderError> {
        let ss = connect(options)?;
        let collection = collection(&ss, entry, options)?;
        let Some(item) = find(&collection, entry)? else {
            return Err(missing_item(entry));
        };
        read_kek(&item, entry, options)
    }

    pub(super) fn create(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
        kek: &Key256,
    ) -> Result<(), KeyholderError> {
        let ss = connect(options)?;
        let collection = collection(&ss, entry, options)?;
        if find(&collection, entry)?.is_some() {
            return Err(KeyholderError::AlreadyExists {
                what: format!("Secret Service item {entry}"),
            });
        }
        let label = format!(
            "strongroom key-encryption key {}/{}",
            entry.service, entry.entry
        );
        let item = collection
            .create_item(
                &label,
                attributes(entry),
                kek.expose_secret(),
                false,
                CONTENT_TYPE,
            )
            .map_err(|e| map_error(e, entry, options, "store"))?;
        // Read it back: a provider that accepts writes but not reads must fail now, not at
        // the next unlock.
        let stored = read_kek(&item, entry, options)?;
        if !bool::from(stored.expose_secret().ct_eq(kek.expose_secret())) {
            return Err(custody(
                CustodyProblem::Failed,
                format!(
                    "the Secret Service item {entry} did not return the key that was just stored"
                ),
            )
            .into());
        }
        Ok(())
    }

    pub(super) fn delete(
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<bool, KeyholderError> {
        let ss = connect(options)?;
        let collection = collection(&ss, entry, options)?;
        let Some(item) = find(&collection, entry)? else {
            return Ok(false);
        };
        item.delete()
            .map_err(|e| map_error(e, entry, options, "delete"))?;
        Ok(true)
    }

    fn connect(options: &SecretServiceOptions) -> Result<SecretService, KeyholderError> {
        SecretService::connect_with_max_prompt_timeout(
            EncryptionType::Plain,
            options.prompt_timeout.as_secs(),
        )
        .map_err(|e| match e {
            SsError::Dbus(ref d) if is_no_service(d.name()) || is_timeout(d.name()) => {
                map_error(e, &any_entry(), options, "connect to")
            }
            other => custody(
                CustodyProblem::Unreachable,
                "cannot connect to the D-Bus session bus (DBUS_SESSION_BUS_ADDRESS): run inside a desktop session, or start one with dbus-run-session; retry when it is up".to_owned(),
            )
            .with_source(other)
            .into(),
        })
    }

    /// The collection by alias, unlocked (with a prompt only when the options allow one).
    fn collection<'a>(
        ss: &'a SecretService,
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<Collection<'a>, KeyholderError> {
        let collection = match ss.get_collection_by_alias(&entry.collection) {
            Ok(c) => c,
            Err(SsError::NoResult) => {
                return Err(custody(
                    CustodyProblem::Missing,
                    format!(
                        "the Secret Service has no collection with the alias '{}': create it (Seahorse, KWallet Manager) or choose another collection",
                        entry.collection
                    ),
                )
                .into());
            }
            Err(e) => return Err(map_error(e, entry, options, "find the collection of")),
        };
        let locked = collection
            .is_locked()
            .map_err(|e| map_error(e, entry, options, "read the lock state of"))?;
        if locked {
            if options.prompt_timeout.is_zero() {
                return Err(custody(CustodyProblem::Denied, locked_hint(entry, options)).into());
            }
            collection
                .unlock()
                .map_err(|e| map_error(e, entry, options, "unlock"))?;
        }
        Ok(collection)
    }

    fn attributes(entry: &SecretServiceEntry) -> HashMap<&str, &str> {
        HashMap::from([
            ("xdg:schema", SCHEMA),
            ("strongroom-service", entry.service.as_str()),
            ("strongroom-entry", entry.entry.as_str()),
        ])
    }

    fn find<'a>(
        collection: &'a Collection<'a>,
        entry: &SecretServiceEntry,
    ) -> Result<Option<Item<'a>>, KeyholderError> {
        let mut items = collection
            .search_items(attributes(entry))
            .map_err(|e| map_error(e, entry, &SecretServiceOptions::default(), "search"))?;
        match items.len() {
            0 => Ok(None),
            1 => Ok(items.pop()),
            n => Err(custody(
                CustodyProblem::Failed,
                format!("{n} Secret Service items match {entry}: remove the duplicates"),
            )
            .into()),
        }
    }

    fn read_kek(
        item: &Item<'_>,
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
    ) -> Result<Key256, KeyholderError> {
        let secret = Zeroizing::new(
            item.get_secret()
                .map_err(|e| map_error(e, entry, options, "read"))?,
        );
        Key256::from_slice(&secret).map_err(|_| {
            custody(
                CustodyProblem::Failed,
                format!(
                    "the Secret Service item {entry} holds {} bytes, not a 32-byte strongroom key-encryption key",
                    secret.len()
                ),
            )
            .into()
        })
    }

    fn missing_item(entry: &SecretServiceEntry) -> KeyholderError {
        custody(
            CustodyProblem::Missing,
            format!(
                "{NO_ITEM} {entry}; it may have been deleted, or this is another user's session"
            ),
        )
        .into()
    }

    fn any_entry() -> SecretServiceEntry {
        SecretServiceEntry::new("-", "-").unwrap_or_else(|_| unreachable!("valid names"))
    }

    fn is_no_service(name: Option<&str>) -> bool {
        matches!(
            name,
            Some(
                "org.freedesktop.DBus.Error.ServiceUnknown"
                    | "org.freedesktop.DBus.Error.NameHasNoOwner"
                    | "org.freedesktop.DBus.Error.Spawn.ServiceNotFound"
                    | "org.freedesktop.DBus.Error.Spawn.ChildExited"
                    | "org.freedesktop.DBus.Error.Spawn.Failed"
            )
        )
    }

    fn is_timeout(name: Option<&str>) -> bool {
        matches!(
            name,
            Some(
                "org.freedesktop.DBus.Error.NoReply"
                    | "org.freedesktop.DBus.Error.Timeout"
                    | "org.freedesktop.DBus.Error.TimedOut"
                    | "org.freedesktop.DBus.Error.Spawn.ChildSignaled"
            )
        )
    }

    /// Maps a Secret Service failure to a custody error that says what to do, with the
    /// D-Bus error as its source (D-Bus errors carry names and messages, never secrets).
    pub(super) fn map_error(
        err: SsError,
        entry: &SecretServiceEntry,
        options: &SecretServiceOptions,
        action: &str,
    ) -> KeyholderError {
        let name = match &err {
            SsError::Dbus(d) => d.name().map(str::to_owned),
            _ => None,
        };
        let name = name.as_deref();
        let (problem, what) = match &err {
            _ if is_no_service(name) => (
                CustodyProblem::Unreachable,
                "no Secret Service provider answers on the D-Bus session bus: start GNOME Keyring (gnome-keyring-daemon --components=secrets) or KWallet, then retry; or use another keyholder".to_owned(),
            ),
            _ if is_timeout(name) => (
                CustodyProblem::Unreachable,
                format!(
                    "the Secret Service did not answer within {} s when asked to {action} {entry}: retry; if it keeps happening, restart the keyring daemon",
                    super::CALL_TIMEOUT.as_secs()
                ),
            ),
            SsError::Unavailable => (
                CustodyProblem::Unreachable,
                "no D-Bus session bus or Secret Service provider was found: run inside a desktop session (or dbus-run-session) with GNOME Keyring or KWallet".to_owned(),
            ),
            SsError::Locked | SsError::Prompt => {
                (CustodyProblem::Denied, locked_hint(entry, options))
            }
            _ if name == Some("org.freedesktop.Secret.Error.IsLocked") => {
                (CustodyProblem::Denied, locked_hint(entry, options))
            }
            _ if name == Some("org.freedesktop.DBus.Error.AccessDenied") => (
                CustodyProblem::Denied,
                format!("the Secret Service refused to {action} {entry}: check its access policy"),
            ),
            SsError::NoResult => (CustodyProblem::Missing, format!("{NO_ITEM} {entry}")),
            _ if matches!(
                name,
                Some(
                    "org.freedesktop.Secret.Error.NoSuchObject"
                        | "org.freedesktop.DBus.Error.UnknownObject"
                        | "org.freedesktop.DBus.Error.UnknownMethod"
                )
            ) =>
            {
                (
                    CustodyProblem::Missing,
                    format!(
                        "the Secret Service item or collection of {entry} went away during the call: retry"
                    ),
                )
            }
            _ => (
                CustodyProblem::Failed,
                format!("the Secret Service could not {action} {entry}"),
            ),
        };
        custody(problem, what).with_source(err).into()
    }
}

#[cfg(not(target_os = "linux"))]
mod backend {
    use strongroom_crypto::Key256;
    use strongroom_keyholder::{CustodyProblem, KeyholderError};

    use super::{SecretServiceOptions, custody};
    use crate::entry::SecretServiceEntry;

    fn unsupported() -> KeyholderError {
        custody(
            CustodyProblem::Failed,
            "this build of strongroom-secret-service talks to the Secret Service on Linux only"
                .to_owned(),
        )
        .into()
    }

    pub(super) fn read(
        _: &SecretServiceEntry,
        _: &SecretServiceOptions,
    ) -> Result<Key256, KeyholderError> {
        Err(unsupported())
    }

    pub(super) fn create(
        _: &SecretServiceEntry,
        _: &SecretServiceOptions,
        _: &Key256,
    ) -> Result<(), KeyholderError> {
        Err(unsupported())
    }

    pub(super) fn delete(
        _: &SecretServiceEntry,
        _: &SecretServiceOptions,
    ) -> Result<bool, KeyholderError> {
        Err(unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> WrapContext<'static> {
        WrapContext {
            purpose: "strongroom/v1/member-key",
            subject: b"vault-1/alice",
        }
    }

    #[test]
    fn wraps_like_a_kek_with_the_entry_as_locator() {
        let entry = SecretServiceEntry::new("svc", "entry").unwrap();
        let kh = SecretServiceKeyholder::with(
            entry.clone(),
            SecretServiceOptions::default(),
            Key256::generate().unwrap(),
        )
        .unwrap();
        let key = Key256::generate().unwrap();
        let s = kh.wrap(&ctx(), &key).unwrap();
        assert_eq!(s.kind, KeyholderKind::SecretService);
        assert_eq!(s.id, *kh.key_id().as_bytes());
        assert_eq!(SecretServiceKeyholder::entry_of(&s).unwrap(), Some(entry));
        assert!(bool::from(
            kh.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
        ));
        // Relabelled as an OS-keyring stanza: not this keyholder's.
        let mut t = s.clone();
        t.kind = KeyholderKind::OsKeyring;
        assert!(kh.unwrap(&ctx(), &t).unwrap().is_none());
        assert_eq!(SecretServiceKeyholder::entry_of(&t).unwrap(), None);
        let d = format!("{kh:?}");
        assert!(
            d.contains("default:svc/entry") && d.contains("redacted"),
            "{d}"
        );
        assert_eq!(kh.describe(), "secret-service default:svc/entry");
    }

    #[test]
    fn locked_hint_says_what_to_do() {
        let e = SecretServiceEntry::new("s", "e").unwrap();
        let no_prompt = locked_hint(&e, &SecretServiceOptions::default());
        assert!(no_prompt.contains("prompt-timeout"), "{no_prompt}");
        let prompt = locked_hint(
            &e,
            &SecretServiceOptions::default().with_prompt_timeout(Duration::from_secs(30)),
        );
        assert!(prompt.contains("30 s"), "{prompt}");
    }
}
