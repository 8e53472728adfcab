//! What every command shares: the vault location, the state directory, the unlock.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use strongroom::crypto::MemberId;
use strongroom::crypto::SecretBytes;
use strongroom::recovery::Profile;
use strongroom::store::Store;
use strongroom::{MemberInfo, ScopedVault, Secret, SecretMeta, UnlockOptions, Vault, VaultError};

use crate::cli::{Global, KeyholderArgs};
use crate::keyholders::{self, Held, Mode};
use crate::location::{Location, StateDir};

/// The parsed global options.
pub(crate) struct App {
    pub(crate) global: Global,
    pub(crate) keyholder: KeyholderArgs,
    profile: Option<Profile>,
    /// The PostgreSQL store last opened, for its connection details.
    #[cfg(feature = "postgres")]
    postgres: std::cell::RefCell<Option<Arc<strongroom_postgres::PostgresStore>>>,
}

/// How a server-backed vault is reached, for `status` and `doctor`.
pub(crate) struct Connection {
    /// The server is authenticated (a local socket, or TLS with verify-full).
    pub(crate) verified: bool,
    pub(crate) encrypted: bool,
    pub(crate) server: String,
    pub(crate) sslmode: &'static str,
    pub(crate) tls_version: Option<String>,
    /// The server is a hot standby.
    pub(crate) standby: bool,
    /// One line saying all of it.
    pub(crate) summary: String,
}

/// An unlocked vault and how it was unlocked.
pub(crate) struct Opened {
    pub(crate) vault: Vault,
    pub(crate) held: Held,
}

/// A handle on secrets: a full member's vault, or a scoped member's (a service account's),
/// which reaches the namespaces of its scopes only.
pub(crate) enum Records {
    Full(Vault),
    Scoped(ScopedVault),
}

impl Records {
    pub(crate) fn get(
        &self,
        ns: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<Secret, VaultError> {
        match (self, version) {
            (Records::Full(v), None) => v.get(ns, name),
            (Records::Full(v), Some(n)) => v.get_version(ns, name, n),
            (Records::Scoped(v), None) => v.get(ns, name),
            (Records::Scoped(v), Some(n)) => v.get_version(ns, name, n),
        }
    }

    pub(crate) fn put(&self, ns: &str, name: &str, value: &[u8]) -> Result<SecretMeta, VaultError> {
        match self {
            Records::Full(v) => v.put(ns, name, value),
            Records::Scoped(v) => v.put(ns, name, value),
        }
    }

    pub(crate) fn list(&self, ns: &str) -> Result<Vec<SecretMeta>, VaultError> {
        match self {
            Records::Full(v) => v.list(ns),
            Records::Scoped(v) => v.list(ns),
        }
    }

    pub(crate) fn delete(&self, ns: &str, name: &str) -> Result<(), VaultError> {
        match self {
            Records::Full(v) => v.delete(ns, name),
            Records::Scoped(v) => v.delete(ns, name),
        }
    }

    pub(crate) fn history(&self, ns: &str, name: &str) -> Result<Vec<SecretMeta>, VaultError> {
        match self {
            Records::Full(v) => v.history(ns, name),
            Records::Scoped(v) => v.history(ns, name),
        }
    }

    pub(crate) fn env_vars(&self, ns: &str) -> Result<Vec<(String, SecretBytes)>, VaultError> {
        match self {
            Records::Full(v) => v.env_vars(ns),
            Records::Scoped(v) => v.env_vars(ns),
        }
    }
}

impl App {
    pub(crate) fn new(global: Global, keyholder: KeyholderArgs) -> Self {
        Self {
            global,
            keyholder,
            profile: None,
            #[cfg(feature = "postgres")]
            postgres: std::cell::RefCell::new(None),
        }
    }

    pub(crate) fn json(&self) -> bool {
        self.global.json
    }

    /// The Argon2id profile for new passphrases (parsed once; `calibrate:` runs then).
    pub(crate) fn profile(&mut self) -> Result<Profile> {
        if let Some(p) = self.profile {
            return Ok(p);
        }
        let p = keyholders::profile(&self.global.profile)?;
        self.profile = Some(p);
        Ok(p)
    }

    pub(crate) fn location(&self) -> Result<Location> {
        Location::parse(self.global.vault.as_deref())
    }

    pub(crate) fn state(&self) -> Result<StateDir> {
        StateDir::new(self.global.state_dir.as_deref())
    }

    /// Opens the existing vault's store.
    pub(crate) fn store(&self) -> Result<Arc<dyn Store>> {
        let location = self.location()?;
        #[cfg(feature = "postgres")]
        if let Location::Postgres(conn) = &location {
            let store = crate::location::postgres_store(conn)?;
            *self.postgres.borrow_mut() = Some(Arc::clone(&store));
            return Ok(store);
        }
        location.open(false)
    }

    /// How the PostgreSQL vault opened last is reached (encryption, verification, a
    /// standby or not); `None` for other vaults.
    pub(crate) fn connection(&self) -> Option<Result<Connection>> {
        #[cfg(feature = "postgres")]
        if let Some(store) = self.postgres.borrow().as_ref() {
            return Some(
                store
                    .connection_security()
                    .map(|s| Connection {
                        verified: s.is_verified(),
                        encrypted: s.is_encrypted(),
                        server: s.server.clone(),
                        sslmode: s.ssl_mode.name(),
                        tls_version: s.tls.as_ref().map(|t| t.version.clone()),
                        standby: s.server_in_recovery,
                        summary: s.to_string(),
                    })
                    .context("cannot read the PostgreSQL connection's details"),
            );
        }
        None
    }

    /// The keyholder given by the global options, for unlocking.
    pub(crate) fn unlock_keyholder(&mut self) -> Result<Held> {
        // Unlocking never wraps: the profile is irrelevant, so `calibrate:` is not run.
        let profile = match self.global.profile.as_str() {
            "constrained" => Profile::Constrained,
            _ => Profile::Default,
        };
        keyholders::from_args(&self.keyholder, &profile, Mode::Unlock)
    }

    /// Opens and unlocks the vault with the global keyholder options, checking and then
    /// saving the pins.
    pub(crate) fn unlock(&mut self) -> Result<Opened> {
        let store = self.store()?;
        let held = self.unlock_keyholder()?;
        let vault = self.unlock_with(&store, &held)?;
        Ok(Opened { vault, held })
    }

    /// Unlocks `store` with `held` as the `--member` (pins checked and saved).
    pub(crate) fn unlock_with(&self, store: &Arc<dyn Store>, held: &Held) -> Result<Vault> {
        let (locked, options) = self.open_for_unlock(store, held)?;
        let vault_id = locked.id();
        let vault = locked.unlock_with(held.keyholder(), options).map_err(|e| {
            let ambiguous = matches!(
                &e,
                strongroom::VaultError::Sharing(
                    strongroom::sharing::SharingError::AmbiguousMember { .. }
                )
            );
            let err = anyhow::Error::new(e);
            if ambiguous {
                err.context(
                    "several members keep credentials in this vault: pick one with --member NAME",
                )
            } else {
                err
            }
        })?;
        self.state()?.save_pins(vault_id, &vault.pins())?;
        Ok(vault)
    }

    /// Opens `store`, and the unlock options of the `--member` with its saved pins.
    fn open_for_unlock(
        &self,
        store: &Arc<dyn Store>,
        held: &Held,
    ) -> Result<(strongroom::LockedVault, UnlockOptions)> {
        let locked = Vault::open(Arc::clone(store)).with_context(|| {
            format!(
                "cannot open {}",
                self.location().map(|l| l.describe()).unwrap_or_default()
            )
        })?;
        let member = match &self.global.member {
            Some(spec) => Some(resolve_member(&locked.members()?, spec)?),
            None => None,
        };
        let pins = self.state()?.load_pins(locked.id())?;
        tracing::info!(vault = %locked.id(), keyholder = %held.describe(), "unlocking");
        Ok((
            locked,
            UnlockOptions::default().with_member(member).with_pins(pins),
        ))
    }

    /// Opens and unlocks the vault for reading and writing secrets: as a full member, or,
    /// when the keyholder's member is a scoped member (a service account), as one. Pins
    /// are checked and saved either way.
    pub(crate) fn unlock_records(&mut self) -> Result<Records> {
        let store = self.store()?;
        let held = self.unlock_keyholder()?;
        match self.unlock_with(&store, &held) {
            Ok(vault) => Ok(Records::Full(vault)),
            Err(e) if is_scoped_member(&e) => {
                let (locked, options) = self.open_for_unlock(&store, &held)?;
                let vault = locked.unlock_scoped_with(held.keyholder(), options)?;
                self.state()?.save_pins(vault.id(), &vault.pins())?;
                Ok(Records::Scoped(vault))
            }
            Err(e) => Err(e),
        }
    }

    /// Saves the pins after a membership change.
    pub(crate) fn save_pins(&self, vault: &Vault) -> Result<()> {
        self.state()?.save_pins(vault.id(), &vault.pins())
    }
}

/// Finds a member by id (hex) or by name.
pub(crate) fn resolve_member(members: &[MemberInfo], spec: &str) -> Result<MemberId> {
    if let Ok(id) = spec.parse::<MemberId>() {
        return Ok(id);
    }
    let named: Vec<&MemberInfo> = members.iter().filter(|m| m.name == spec).collect();
    match named.as_slice() {
        [m] => Ok(m.id),
        [] => {
            let known: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            bail!(
                "no member named {spec:?} (members: {}); a member id works too",
                known.join(", ")
            )
        }
        several => {
            let ids: Vec<String> = several.iter().map(|m| m.id.to_string()).collect();
            bail!(
                "several members are named {spec:?}: use the id ({})",
                ids.join(", ")
            )
        }
    }
}

/// Whether `e` says the keyholder's member is a scoped member (it opens with a scoped
/// unlock, not a full one).
fn is_scoped_member(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<VaultError>(),
        Some(VaultError::Sharing(
            strongroom::sharing::SharingError::WrongKindOfMember { scoped: true, .. }
        ))
    )
}
