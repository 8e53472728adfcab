//! The OS-keyring keyholder.

use core::fmt;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry};
use strongroom_crypto::{Key256, KeyId};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, KekKeyholder, Keyholder, KeyholderError, KeyholderKind, Stanza,
    WrapContext,
};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::entry::KeyringEntry;

/// What to do when the keyring refuses access.
pub const ACCESS_HINT: &str = "this process cannot use its session keyring (common under sudo, cron, containers and CI, where the inherited session keyring belongs to another context); run strongroom inside a fresh session keyring, e.g. `keyctl session - <command>` (Debian/Ubuntu package keyutils), or use another keyholder such as a raw KEK file";

/// A 32-byte KEK kept in an operating-system keyring entry, used as a keyholder.
///
/// Wraps exactly like a raw KEK ([`KekKeyholder`]: XChaCha20-Poly1305 under HKDF of the KEK,
/// stanza id = the KEK's [`KeyId`]) with kind [`KeyholderKind::OsKeyring`] and the entry written into
/// the stanza as its locator ([`KeyringEntry`]), so a stored stanza says which entry to open
/// ([`KeyringKeyholder::entry_of`]). The entry's secret is the 32 raw bytes of the KEK.
///
/// On Linux the default store is the kernel keyring (keyutils, no D-Bus). Its keys live
/// in kernel memory and **do not survive a reboot**: use the OS keyring as a convenient
/// unlock, never as a vault's only keyholder.
pub struct KeyringKeyholder {
    inner: KekKeyholder,
    entry: KeyringEntry,
    store: Arc<CredentialStore>,
}

impl KeyringKeyholder {
    /// Generates a random KEK and stores it in a new entry of the default store.
    ///
    /// Fails with [`KeyholderError::AlreadyExists`] when the entry exists (it may hold the
    /// KEK of a vault: it is never overwritten).
    pub fn create(service: &str, entry: &str) -> Result<Self, KeyholderError> {
        Self::create_in(&default_store()?, service, entry)
    }

    /// Loads the KEK of an existing entry of the default store.
    ///
    /// Fails with [`KeyholderError::Custody`]: [`CustodyProblem::Missing`] when there is no
    /// such entry, [`CustodyProblem::Denied`] when the keyring cannot be used.
    pub fn open(service: &str, entry: &str) -> Result<Self, KeyholderError> {
        Self::open_in(&default_store()?, service, entry)
    }

    /// Opens the entry, creating it first if it does not exist; `true` when it was created.
    /// Idempotent: the first step of a rotation that can be re-run after a crash.
    pub fn open_or_create(service: &str, entry: &str) -> Result<(Self, bool), KeyholderError> {
        Self::open_or_create_in(&default_store()?, service, entry)
    }

    /// Opens the entry that `stanza` names (see [`KeyringKeyholder::entry_of`]).
    pub fn open_for(stanza: &Stanza) -> Result<Self, KeyholderError> {
        Self::open_for_in(&default_store()?, stanza)
    }

    /// Deletes an entry of the default store ("shreds" the KEK: every stanza it wraps becomes
    /// unopenable by it). Idempotent: `false` when there was nothing to delete.
    pub fn delete(service: &str, entry: &str) -> Result<bool, KeyholderError> {
        Self::delete_in(&default_store()?, service, entry)
    }

    /// [`KeyringKeyholder::create`] in a given credential store.
    pub fn create_in(
        store: &Arc<CredentialStore>,
        service: &str,
        entry: &str,
    ) -> Result<Self, KeyholderError> {
        let name = names(service, entry)?;
        let e = keyring_entry(store, &name)?;
        match e.get_secret() {
            Ok(mut existing) => {
                zeroize::Zeroize::zeroize(&mut existing);
                return Err(KeyholderError::AlreadyExists {
                    what: format!("OS keyring entry {name}"),
                });
            }
            Err(keyring_core::Error::NoEntry) => {}
            Err(err) => return Err(map_error(err, &name)),
        }
        let kek = Key256::generate()?;
        e.set_secret(kek.expose_secret())
            .map_err(|err| map_error(err, &name))?;
        // Read it back: a store that accepts writes but not reads must fail now, not at the
        // next unlock.
        let stored = read_kek(&e, &name)?;
        if !bool::from(stored.expose_secret().ct_eq(kek.expose_secret())) {
            return Err(backend(format!(
                "OS keyring entry {name} did not return the key that was just stored"
            )));
        }
        Self::with(store, name, kek)
    }

    /// [`KeyringKeyholder::open`] in a given credential store.
    pub fn open_in(
        store: &Arc<CredentialStore>,
        service: &str,
        entry: &str,
    ) -> Result<Self, KeyholderError> {
        let name = names(service, entry)?;
        let e = keyring_entry(store, &name)?;
        let kek = read_kek(&e, &name)?;
        Self::with(store, name, kek)
    }

    /// [`KeyringKeyholder::open_or_create`] in a given credential store.
    pub fn open_or_create_in(
        store: &Arc<CredentialStore>,
        service: &str,
        entry: &str,
    ) -> Result<(Self, bool), KeyholderError> {
        match Self::open_in(store, service, entry) {
            Ok(kh) => Ok((kh, false)),
            Err(KeyholderError::Custody(c)) if c.problem == CustodyProblem::Missing => {
                Self::create_in(store, service, entry).map(|kh| (kh, true))
            }
            Err(e) => Err(e),
        }
    }

    /// [`KeyringKeyholder::open_for`] in a given credential store.
    pub fn open_for_in(
        store: &Arc<CredentialStore>,
        stanza: &Stanza,
    ) -> Result<Self, KeyholderError> {
        let Some(name) = Self::entry_of(stanza)? else {
            return Err(KeyholderError::NoMatchingStanza {
                kind: KeyholderKind::OsKeyring,
            });
        };
        Self::open_in(store, &name.service, &name.entry)
    }

    /// [`KeyringKeyholder::delete`] in a given credential store.
    pub fn delete_in(
        store: &Arc<CredentialStore>,
        service: &str,
        entry: &str,
    ) -> Result<bool, KeyholderError> {
        let name = names(service, entry)?;
        let e = keyring_entry(store, &name)?;
        match e.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(err) => Err(map_error(err, &name)),
        }
    }

    /// Deletes this keyholder's entry (idempotent; see [`KeyringKeyholder::delete`]).
    pub fn delete_entry(&self) -> Result<bool, KeyholderError> {
        Self::delete_in(&self.store, &self.entry.service, &self.entry.entry)
    }

    /// The entry this keyholder's KEK lives in (and that its stanzas name).
    pub fn entry(&self) -> &KeyringEntry {
        &self.entry
    }

    /// The non-secret id of the KEK (also the stanza id).
    pub fn key_id(&self) -> KeyId {
        self.inner.key_id()
    }

    /// The entry an OS-keyring stanza names, read without any key; `None` for a stanza of
    /// another kind.
    pub fn entry_of(stanza: &Stanza) -> Result<Option<KeyringEntry>, KeyholderError> {
        if stanza.kind != KeyholderKind::OsKeyring {
            return Ok(None);
        }
        Ok(Some(KeyringEntry::from_locator(KekKeyholder::locator_of(
            stanza,
        )?)?))
    }

    fn with(
        store: &Arc<CredentialStore>,
        entry: KeyringEntry,
        kek: Key256,
    ) -> Result<Self, KeyholderError> {
        let inner = KekKeyholder::new(kek, KeyholderKind::OsKeyring, &entry.to_locator())?;
        Ok(Self {
            inner,
            entry,
            store: Arc::clone(store),
        })
    }
}

impl fmt::Debug for KeyringKeyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyringKeyholder({}, {}, <redacted>)",
            self.entry,
            self.key_id()
        )
    }
}

impl Keyholder for KeyringKeyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::OsKeyring
    }

    fn describe(&self) -> String {
        format!("os-keyring {}", self.entry)
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

/// The store [`KeyringKeyholder::create`] and friends use: the Linux kernel keyring
/// (keyutils; the description of an entry is `keyring:<entry>@<service>`).
///
/// Other platforms have no store wired in this crate: pass a keyring-core store to the
/// `*_in` constructors (`apple-native-keyring-store`, `windows-native-keyring-store`,
/// `dbus-secret-service-keyring-store`).
pub fn default_store() -> Result<Arc<CredentialStore>, KeyholderError> {
    #[cfg(target_os = "linux")]
    {
        let config = std::collections::HashMap::from([("service_no_divider", "true")]);
        let store = linux_keyutils_keyring_store::Store::new_with_configuration(&config)
            .map_err(|e| backend(format!("cannot set up the keyutils store: {e}")))?;
        Ok(store)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(backend(
            "no OS keyring store is built in for this platform: pass a keyring-core store to KeyringKeyholder::create_in/open_in".to_owned(),
        ))
    }
}

fn names(service: &str, entry: &str) -> Result<KeyringEntry, KeyholderError> {
    Ok(KeyringEntry::new(service, entry)?)
}

fn keyring_entry(
    store: &Arc<CredentialStore>,
    name: &KeyringEntry,
) -> Result<Entry, KeyholderError> {
    Entry::new_in_store(store, &name.service, &name.entry).map_err(|e| map_error(e, name))
}

fn read_kek(e: &Entry, name: &KeyringEntry) -> Result<Key256, KeyholderError> {
    let secret = Zeroizing::new(e.get_secret().map_err(|err| map_error(err, name))?);
    let key = Key256::from_slice(&secret).map_err(|_| {
        backend(format!(
            "OS keyring entry {name} holds {} bytes, not a 32-byte strongroom key-encryption key",
            secret.len()
        ))
    })?;
    Ok(key)
}

fn backend(reason: String) -> KeyholderError {
    CustodyError::new(KeyholderKind::OsKeyring, CustodyProblem::Failed, reason).into()
}

fn denied(source: keyring_core::Error) -> KeyholderError {
    CustodyError::new(
        KeyholderKind::OsKeyring,
        CustodyProblem::Denied,
        format!("the OS keyring denied access: {ACCESS_HINT}"),
    )
    .with_source(source)
    .into()
}

/// Maps keyring-core errors to keyholder errors, never carrying secret bytes (keyring-core's
/// `BadEncoding`/`BadDataFormat` hold the entry's data).
fn map_error(err: keyring_core::Error, name: &KeyringEntry) -> KeyholderError {
    use keyring_core::Error as E;
    match err {
        E::NoEntry => CustodyError::new(
            KeyholderKind::OsKeyring,
            CustodyProblem::Missing,
            format!(
                "the OS keyring has no entry {name}; it may have been deleted, or this is another user or session"
            ),
        )
        .into(),
        e @ E::NoStorageAccess(_) => denied(e),
        E::PlatformFailure(e) if e.to_string().contains("PermissionDenied") => {
            denied(E::PlatformFailure(e))
        }
        E::PlatformFailure(e) => CustodyError::new(
            KeyholderKind::OsKeyring,
            CustodyProblem::Failed,
            format!("OS keyring entry {name} could not be used"),
        )
        .with_source(E::PlatformFailure(e))
        .into(),
        E::BadEncoding(_) | E::BadDataFormat(..) => {
            backend(format!("OS keyring entry {name} holds malformed data"))
        }
        E::Ambiguous(v) => backend(format!(
            "{} OS keyring credentials match {name}; remove the duplicates",
            v.len()
        )),
        other => backend(format!("OS keyring entry {name}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock() -> Arc<CredentialStore> {
        keyring_core::mock::Store::new().unwrap()
    }

    fn ctx() -> WrapContext<'static> {
        WrapContext {
            purpose: "strongroom/v1/vault-key",
            subject: b"vault-1",
        }
    }

    #[test]
    fn lifecycle_in_a_mock_store() {
        let store = mock();
        assert!(matches!(
            KeyringKeyholder::open_in(&store, "strongroom", "v1"),
            Err(KeyholderError::Custody(c))
                if c.problem == CustodyProblem::Missing && c.what.contains("strongroom/v1")
        ));
        let kh = KeyringKeyholder::create_in(&store, "strongroom", "v1").unwrap();
        assert!(matches!(
            KeyringKeyholder::create_in(&store, "strongroom", "v1"),
            Err(KeyholderError::AlreadyExists { .. })
        ));
        let again = KeyringKeyholder::open_in(&store, "strongroom", "v1").unwrap();
        assert_eq!(again.key_id(), kh.key_id());
        let (same, created) =
            KeyringKeyholder::open_or_create_in(&store, "strongroom", "v1").unwrap();
        assert!(!created);
        assert_eq!(same.key_id(), kh.key_id());

        let key = Key256::generate().unwrap();
        let s = kh.wrap(&ctx(), &key).unwrap();
        assert_eq!(
            KeyringKeyholder::entry_of(&s).unwrap(),
            Some(KeyringEntry::new("strongroom", "v1").unwrap())
        );
        let opened = KeyringKeyholder::open_for_in(&store, &s).unwrap();
        assert!(bool::from(
            opened.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
        ));

        assert!(kh.delete_entry().unwrap());
        assert!(!kh.delete_entry().unwrap());
        assert!(matches!(
            KeyringKeyholder::open_for_in(&store, &s),
            Err(KeyholderError::Custody(c)) if c.problem == CustodyProblem::Missing
        ));
    }

    #[test]
    fn errors_are_mapped_without_secrets() {
        let name = KeyringEntry::new("s", "e").unwrap();
        let denied = map_error(
            keyring_core::Error::NoStorageAccess("AccessDenied".into()),
            &name,
        );
        match &denied {
            KeyholderError::Custody(c) => {
                assert_eq!(c.problem, CustodyProblem::Denied);
                assert!(c.what.contains("keyctl session -"), "{}", c.what);
                assert!(c.source.is_some(), "the platform error is the source");
            }
            e => panic!("{e:?}"),
        }
        let perm = map_error(
            keyring_core::Error::PlatformFailure("PermissionDenied".into()),
            &name,
        );
        assert!(matches!(perm, KeyholderError::Custody(c) if c.problem == CustodyProblem::Denied));
        let bad = map_error(keyring_core::Error::BadEncoding(b"s3cr3t".to_vec()), &name);
        assert!(!bad.to_string().contains("s3cr3t"));
        assert!(!format!("{bad:?}").contains("115, 51"));
        let bad = map_error(
            keyring_core::Error::BadDataFormat(b"s3cr3t".to_vec(), "x".into()),
            &name,
        );
        assert!(!format!("{bad:?}").contains("115, 51"));
        let other = map_error(keyring_core::Error::NoDefaultStore, &name);
        assert!(matches!(other, KeyholderError::Custody(c) if c.problem == CustodyProblem::Failed));
    }

    #[test]
    fn foreign_entry_content_is_refused() {
        let store = mock();
        let e = Entry::new_in_store(&store, "s", "e").unwrap();
        e.set_secret(b"not a key").unwrap();
        let err = KeyringKeyholder::open_in(&store, "s", "e").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("holds 9 bytes"), "{msg}");
        assert!(!msg.contains("not a key"), "{msg}");
    }

    #[test]
    fn stanzas_of_other_kinds_name_no_entry() {
        let kek =
            KekKeyholder::new(Key256::generate().unwrap(), KeyholderKind::RawKek, &[]).unwrap();
        let s = kek.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
        assert_eq!(KeyringKeyholder::entry_of(&s).unwrap(), None);
        assert!(matches!(
            KeyringKeyholder::open_for_in(&mock(), &s),
            Err(KeyholderError::NoMatchingStanza { .. })
        ));
    }

    #[test]
    fn debug_and_describe_show_no_secret() {
        let store = mock();
        let kh = KeyringKeyholder::create_in(&store, "svc", "entry").unwrap();
        let d = format!("{kh:?}");
        assert!(
            d.contains("svc/entry") && d.contains(&kh.key_id().to_string()),
            "{d}"
        );
        assert_eq!(kh.describe(), "os-keyring svc/entry");
    }
}
