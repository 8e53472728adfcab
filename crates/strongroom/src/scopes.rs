//! Scopes: namespace prefixes with keys of their own, and the scoped members (service
//! accounts) that hold those keys and nothing else.
//!
//! An owner or admin creates a scope over a namespace prefix ([`Vault::create_scope`]),
//! adds a member with [`Role::Scoped`] and grants it the scope
//! ([`Vault::grant_scope`]). From then on the scope's secrets are sealed under the scope's
//! key and indexed under a key derived from it; the scoped member opens the vault with
//! [`LockedVault::unlock_scoped`] into a [`ScopedVault`] that reads (and, with the member
//! role on the scope, writes) those secrets and holds no key that reaches any other
//! namespace. Full members keep reading and writing everything.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use strongroom_crypto::{MemberId, ScopeId, VaultId};
use strongroom_envelope::{BodyCheck, Epoch, VaultKey, WrappedDek};
use strongroom_recovery::Keyholder;
use strongroom_sharing::{Identity, Membership, Role, ScopedRemoval, ScopedSession};
use strongroom_store::{Batch, Store, StoreError, Table};

use crate::access::{Access, Domain, ScopeIndexes, scope_key_of};
use crate::audit::{Action, AuditEvent};
use crate::meta::Header;
use crate::records::{
    Secret, SecretMeta, WriteSettings, get_in, get_many_in, history_in, load_in, locate,
    stage_delete, stage_put, validate_name, validate_namespace,
};
use crate::vault::{LockedVault, UnlockOptions, Vault, ViewStore};
use crate::writers::VerifiedWrites;
use crate::{ExposedSecret, VaultError};

/// A scope, as [`Vault::scopes`] and [`ScopedVault::scopes`] list it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeInfo {
    /// The scope id.
    pub id: ScopeId,
    /// The namespace prefix it covers (`core/billing` covers `core/billing` and
    /// `core/billing/...`).
    pub prefix: String,
    /// The scope's current key epoch (it moves on at every revocation).
    pub epoch: Epoch,
    /// The scoped members granted the scope, with their role on it (`Member`: read and
    /// write, `ReadOnly`: read).
    pub members: Vec<(MemberId, Role)>,
}

impl ScopeInfo {
    fn of(membership: &Membership, id: ScopeId) -> Option<Self> {
        let scope = membership.scope(id)?;
        Some(Self {
            id,
            prefix: scope.prefix().to_owned(),
            epoch: scope.epoch(),
            members: membership
                .scope_members(id)
                .into_iter()
                .map(|(m, g)| (m, g.role()))
                .collect(),
        })
    }
}

/// What [`Vault::remove_scoped_member`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopedRemovalReport {
    /// The removed member.
    pub member: MemberId,
    /// The scopes it held, each with its new key epoch.
    pub scopes: Vec<(ScopeId, Epoch)>,
    /// Every secret of those scopes with every stored version: what the removed member
    /// could read (and may have kept). Nothing outside them. Versions stored before a scope
    /// existed are listed too, although they are under vault keys the member never held:
    /// the list errs on the side of caution.
    pub exposed: Vec<ExposedSecret>,
    /// Why `exposed` could not be listed (the removal stands): list the scopes' secrets
    /// with [`Vault::list`] instead.
    pub exposure_error: Option<String>,
    /// Why the re-attestation of the versions it wrote did not finish (the removal
    /// stands): readers refuse those versions until [`Vault::reattest`] runs.
    pub reattest_error: Option<String>,
}

impl Vault {
    /// Creates a scope over the namespace prefix `prefix` (an owner or admin): secrets of
    /// the namespaces it covers are from now on sealed under the scope's own key, which
    /// [`Vault::grant_scope`] gives to scoped members. Scopes do not nest.
    ///
    /// Secrets already stored under the prefix stay readable to full members; the next
    /// [`Vault::rotate_vault_key`] moves their current versions into the scope (older
    /// versions stay under vault keys, for full members only).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// let billing = vault.create_scope("core/billing")?;
    /// vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?; // under the scope's key
    /// assert_eq!(vault.scopes()[0].id, billing);
    /// assert_eq!(vault.get("core/billing", "STRIPE_KEY")?.expose_secret(), b"sk_live_123");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_scope(&self, prefix: &str) -> Result<ScopeId, VaultError> {
        validate_namespace(prefix)?;
        self.change(
            |session| session.prepare_create_scope(prefix),
            |_, change| {
                let scope = *change.outcome();
                Ok(AuditEvent::new(
                    Action::ScopeCreate,
                    scope.as_bytes(),
                    format!("prefix={prefix}"),
                ))
            },
        )
    }

    /// Grants `member` (a member added with [`Role::Scoped`]) the scope `scope`, with
    /// `role` on it: [`Role::Member`] to read and write its secrets, [`Role::ReadOnly`] to
    /// read them. Granting again changes the role; a member made read-only on a scope has
    /// the versions it wrote there re-attested by this member right after, as
    /// [`Vault::set_role`] does.
    pub fn grant_scope(
        &self,
        member: MemberId,
        scope: ScopeId,
        role: Role,
    ) -> Result<(), VaultError> {
        self.change(
            |session| session.prepare_grant_scope(member, scope, role),
            |_, _| {
                Ok(AuditEvent::new(
                    Action::ScopeGrant,
                    member.as_bytes(),
                    format!("scope={scope} role={}", role.name()),
                ))
            },
        )?;
        self.reattest_if_owner()
    }

    /// Takes the scope `scope` from the scoped member `member`: the scope gets a new key,
    /// granted to its other scoped members and linked for full members. The vault key and
    /// every other scope stay as they are. New versions are sealed under the new key; the
    /// next [`Vault::rotate_vault_key`] rewraps the scope's stored versions to it and
    /// moves its index rows under the new key's blind index.
    pub fn revoke_scope(&self, member: MemberId, scope: ScopeId) -> Result<Epoch, VaultError> {
        let store = self.store();
        let epoch = self.change(
            |session| session.prepare_revoke_scope(store, member, scope),
            |_, change| {
                Ok(AuditEvent::new(
                    Action::ScopeRevoke,
                    member.as_bytes(),
                    format!("scope={scope} epoch={}", change.outcome()),
                ))
            },
        )?;
        self.reattest_if_owner()?;
        Ok(epoch)
    }

    /// Removes a scoped member: each scope it held gets a new key (as
    /// [`Vault::revoke_scope`]), then it leaves the membership log, in one batch. The
    /// report lists the secrets of those scopes: what it could read, and nothing else.
    pub fn remove_scoped_member(
        &self,
        member: MemberId,
    ) -> Result<ScopedRemovalReport, VaultError> {
        let store = self.store();
        let removal: ScopedRemoval = self.change(
            |session| session.prepare_remove_scoped_member(store, member),
            |_, change| {
                let scopes = change.outcome().scopes.len();
                Ok(AuditEvent::new(
                    Action::MemberRemove,
                    member.as_bytes(),
                    format!("scoped=true scopes={scopes}"),
                ))
            },
        )?;
        // The removal stands from here on: what follows is reported, never undone.
        let reattest_error = self.reattest_if_owner().err().map(|e| e.to_string());
        let (exposed, exposure_error) = match self.scope_exposure(&removal.scopes) {
            Ok(exposed) => (exposed, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        Ok(ScopedRemovalReport {
            member: removal.member,
            scopes: removal.scopes,
            exposed,
            exposure_error,
            reattest_error,
        })
    }

    /// Every secret of the scopes `scopes`, with its stored versions.
    fn scope_exposure(
        &self,
        scopes: &[(ScopeId, Epoch)],
    ) -> Result<Vec<ExposedSecret>, VaultError> {
        let prefixes: Vec<String> = {
            let st = self.state();
            scopes
                .iter()
                .filter_map(|(s, _)| st.session.membership().scope(*s))
                .map(|s| s.prefix().to_owned())
                .collect()
        };
        self.exposed_versions(|_, namespace, _| {
            prefixes
                .iter()
                .any(|p| strongroom_sharing::scope_covers(p, namespace))
        })
    }

    /// Replaces the key of the scope `scope` (owners, admins and members with the right to
    /// write): a new scope epoch, granted to its scoped members and linked for full members.
    /// What a removal of a full member does to every scope; on its own, after a scope key
    /// is thought leaked. The next [`Vault::rotate_vault_key`] rewraps the scope's records.
    pub fn rekey_scope(&self, scope: ScopeId) -> Result<Epoch, VaultError> {
        self.change(
            |session| session.prepare_rekey_scope(scope),
            |_, change| {
                Ok(AuditEvent::new(
                    Action::ScopeRevoke,
                    scope.as_bytes(),
                    format!("scope={scope} epoch={} rekey=true", change.outcome()),
                ))
            },
        )
    }

    /// The scopes of this vault, by prefix.
    pub fn scopes(&self) -> Vec<ScopeInfo> {
        let st = self.state();
        let membership = st.session.membership();
        let mut out: Vec<ScopeInfo> = membership
            .scopes()
            .keys()
            .filter_map(|id| ScopeInfo::of(membership, *id))
            .collect();
        out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        out
    }

    /// A scoped member's losses of write right are re-attested by an owner or admin right
    /// after (as [`Vault::set_role`] does for full members).
    fn reattest_if_owner(&self) -> Result<(), VaultError> {
        let pending = !self
            .state()
            .session
            .membership()
            .pending_reattestation()
            .is_empty();
        if pending && matches!(self.role(), Some(Role::Owner | Role::Admin)) {
            self.reattest(&mut |_| {})?;
        }
        Ok(())
    }
}

/// What a scoped member reads and writes with.
pub(crate) struct ScopedState {
    session: ScopedSession,
    indexes: ScopeIndexes,
    verified: VerifiedWrites,
}

impl Access for ScopedState {
    fn vault_id(&self) -> VaultId {
        self.session.vault_id()
    }

    fn membership(&self) -> &Membership {
        self.session.membership()
    }

    fn identity(&self) -> &Identity {
        self.session.identity()
    }

    fn verified(&self) -> &VerifiedWrites {
        &self.verified
    }

    fn domain(&self, namespace: &str) -> Result<Domain<'_>, VaultError> {
        let membership = self.session.membership();
        match membership.scope_of(namespace) {
            Some(scope) if self.session.scope_role(scope.id()).is_some() => {
                self.indexes
                    .domain(membership, self.session.scope_keys(), scope.id(), None)
            }
            _ => Err(VaultError::OutOfScope {
                namespace: namespace.to_owned(),
            }),
        }
    }

    fn unwrapping_key(&self, w: &WrappedDek) -> Option<(Option<ScopeId>, &VaultKey)> {
        scope_key_of(self.session.scope_keys(), w)
    }

    fn holds_vault_keys(&self) -> bool {
        false
    }

    fn min_epoch(&self) -> Epoch {
        self.session.membership().retired_below()
    }

    fn body_check(&self) -> BodyCheck {
        BodyCheck::Always
    }
}

/// A scoped member's handle on a vault: the secrets of its scopes, and nothing else.
///
/// The scopes are those of the membership log as the handle last verified it: after an
/// owner grants it another scope, [`ScopedVault::refresh`] (or a new unlock) picks it up.
///
/// It holds the keys of its scopes only, each checked against the signed membership log:
/// a namespace outside them is refused before any store read
/// ([`VaultError::OutOfScope`]), and no key it holds computes the blind index of a name
/// elsewhere, so it cannot even test whether one exists. Every version it writes is signed
/// with its identity; readers refuse a version it wrote outside its scopes or without the
/// member role on the scope. It writes no audit entries (it holds no audit key): full
/// members' actions stay audited, and its writes are authenticated by their signatures.
///
/// Cheap to clone, `Send + Sync`.
///
/// ```
/// # use std::sync::Arc;
/// # use strongroom::{CreateOptions, UnlockOptions, Vault, recovery::RawKek, store::MemoryStore};
/// # use strongroom::sharing::{Identity, Role};
/// let store = Arc::new(MemoryStore::new());
/// let (vault, _) = Vault::create(store.clone(), &RawKek::generate()?, &CreateOptions::default())?;
/// let billing = vault.create_scope("core/billing")?;
///
/// // A service account for the billing application: a scoped member with the scope.
/// let identity = Identity::generate("billing-app")?;
/// let public = identity.public();
/// // Compare the fingerprint with the one the account shows, out of band.
/// let confirmed = public.confirm_fingerprint(&public.fingerprint().digits())?;
/// vault.add_member(public, Role::Scoped, confirmed)?;
/// vault.grant_scope(public.member_id(), billing, Role::ReadOnly)?;
/// vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?;
/// vault.put("core/auth", "DB_PASSWORD", b"hunter2")?;
///
/// // It joins with a keyholder of its own, then unlocks with it.
/// let kek = RawKek::generate()?;
/// let app = Vault::open(store.clone())?.join_scoped(&identity, &[&kek])?;
/// assert_eq!(app.get("core/billing", "STRIPE_KEY")?.expose_secret(), b"sk_live_123");
/// assert!(app.get("core/auth", "DB_PASSWORD").is_err()); // no key reaches it
/// // Later runs unlock with the keyholder (naming the member: several share the kind).
/// let options = UnlockOptions::default().with_member(Some(public.member_id()));
/// let app = Vault::open(store)?.unlock_scoped_with(&kek, options)?;
/// assert_eq!(app.list("core/billing")?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ScopedVault {
    inner: Arc<ScopedInner>,
}

struct ScopedInner {
    store: Arc<dyn Store>,
    header: Header,
    state: RwLock<ScopedState>,
    /// Serializes this handle's writes (as a vault handle's audit cursor does).
    writing: Mutex<()>,
}

impl core::fmt::Debug for ScopedVault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let st = self.state();
        f.debug_struct("ScopedVault")
            .field("vault_id", &st.session.vault_id())
            .field("member", &st.session.member_id())
            .finish_non_exhaustive()
    }
}

impl LockedVault {
    /// Unlocks as a scoped member (a service account), with the keyholder that wraps its
    /// credentials: the verified membership log, and the keys of the scopes granted to it.
    pub fn unlock_scoped(self, keyholder: &dyn Keyholder) -> Result<ScopedVault, VaultError> {
        self.unlock_scoped_with(keyholder, UnlockOptions::default())
    }

    /// [`LockedVault::unlock_scoped`] with options (the member when several share the
    /// keyholder, pins from an earlier unlock).
    pub fn unlock_scoped_with(
        self,
        keyholder: &dyn Keyholder,
        options: UnlockOptions,
    ) -> Result<ScopedVault, VaultError> {
        let mut pins = options.pins;
        let (store, header) = self.into_parts();
        // Every read of the unlock from one snapshot, as a full member's unlock.
        let view = ViewStore::of(&*store)?;
        let session = strongroom_sharing::unlock_scoped(
            &view,
            header.vault_id,
            options.member,
            keyholder,
            &mut pins,
        )?;
        drop(view);
        Ok(ScopedVault::new(store, header, session))
    }

    /// A scoped member added by an owner or admin stores its credentials, wrapped by
    /// `keyholders`, and gets its handle; it then [`LockedVault::unlock_scoped`]s with any
    /// of them.
    pub fn join_scoped(
        self,
        identity: &Identity,
        keyholders: &[&dyn Keyholder],
    ) -> Result<ScopedVault, VaultError> {
        let (store, header) = self.into_parts();
        let mut pins = strongroom_sharing::Pins::default();
        let session = strongroom_sharing::join_scoped(
            &*store,
            header.vault_id,
            identity,
            keyholders,
            &mut pins,
        )?;
        Ok(ScopedVault::new(store, header, session))
    }
}

impl ScopedVault {
    fn new(store: Arc<dyn Store>, header: Header, session: ScopedSession) -> Self {
        Self {
            inner: Arc::new(ScopedInner {
                store,
                header,
                state: RwLock::new(ScopedState {
                    session,
                    indexes: ScopeIndexes::default(),
                    verified: VerifiedWrites::default(),
                }),
                writing: Mutex::new(()),
            }),
        }
    }

    fn state(&self) -> RwLockReadGuard<'_, ScopedState> {
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The vault's id.
    pub fn id(&self) -> VaultId {
        self.state().session.vault_id()
    }

    /// This member's id.
    pub fn member_id(&self) -> MemberId {
        self.state().session.member_id()
    }

    /// The pins of the membership log this handle verified (save them, and give them to
    /// the next unlock: a storage that rolls the log back is then refused).
    pub fn pins(&self) -> strongroom_sharing::Pins {
        self.state().session.pins().clone()
    }

    /// The secrets of `namespace` as environment variables for a child process, sorted by
    /// name (what `strongroom run` gives a command). Every name must be a valid variable
    /// name; the error lists the ones that are not (never a value).
    pub fn env_vars(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, strongroom_crypto::SecretBytes)>, VaultError> {
        crate::export::env_vars_of(namespace, self.load(namespace)?)
    }

    /// The scopes granted to this member, with its role on each.
    pub fn scopes(&self) -> Vec<(ScopeInfo, Role)> {
        let st = self.state();
        let membership = st.session.membership();
        let mut out: Vec<(ScopeInfo, Role)> = membership
            .scopes_of(st.session.member_id())
            .into_iter()
            .filter_map(|(id, g)| Some((ScopeInfo::of(membership, id)?, g.role())))
            .collect();
        out.sort_by(|a, b| a.0.prefix.cmp(&b.0.prefix));
        out
    }

    /// Re-reads and re-verifies the membership log and this member's scope keys (after an
    /// owner or admin changed its scopes, or revoked one).
    pub fn refresh(&self) -> Result<(), VaultError> {
        let mut st = self
            .inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.session.refresh(self.store())?;
        Ok(())
    }

    /// Refreshes when the membership log moved since this handle verified it.
    fn refresh_if_stale(&self) -> Result<bool, VaultError> {
        if !crate::vault::log_moved(self.store(), self.state().session.pins())? {
            return Ok(false);
        }
        self.refresh()?;
        Ok(true)
    }

    /// Runs a read, again after a refresh when the membership log moved since this handle
    /// verified it (a writer added since, a revocation that replaced a scope key), and a
    /// few times more when a writer committed between two of its
    /// store reads. The check of the log costs one store call, on a failure only.
    fn read<T>(&self, f: impl Fn(&ScopedState) -> Result<T, VaultError>) -> Result<T, VaultError> {
        let mut raced = 0;
        for _ in 0..8 {
            let result = f(&self.state());
            let racy = matches!(
                result,
                Err(VaultError::Record { .. }
                    | VaultError::Inconsistent { .. }
                    | VaultError::VersionGone { .. })
            );
            let stale = racy
                || matches!(
                    result,
                    Err(VaultError::NotFound { .. } | VaultError::Writer { .. })
                );
            if stale && self.refresh_if_stale()? {
                continue;
            }
            if racy && raced < 3 {
                raced += 1;
                continue;
            }
            return result;
        }
        f(&self.state())
    }

    /// Reads the current version of a secret of one of this member's scopes.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Secret, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.read(|st| get_in(self.store(), st, namespace, name, None))
    }

    /// Reads a given version of a secret.
    pub fn get_version(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
    ) -> Result<Secret, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.read(|st| get_in(self.store(), st, namespace, name, Some(version)))
    }

    /// Reads the current versions of several secrets of one namespace in one store call:
    /// `None` for a name that does not exist.
    pub fn get_many(
        &self,
        namespace: &str,
        names: &[&str],
    ) -> Result<Vec<Option<Secret>>, VaultError> {
        crate::records::validate_names(namespace, names)?;
        self.read(|st| get_many_in(self.store(), st, namespace, names))
    }

    /// Every secret of a namespace with its current value, sorted by name.
    pub fn load(&self, namespace: &str) -> Result<Vec<Secret>, VaultError> {
        validate_namespace(namespace)?;
        // Outside the scopes: refused before any store call.
        self.state().domain(namespace)?;
        self.refresh_if_stale()?;
        self.read(|st| load_in(self.store(), st, namespace))
    }

    /// Lists the secrets of a namespace, sorted by name.
    pub fn list(&self, namespace: &str) -> Result<Vec<SecretMeta>, VaultError> {
        Ok(self
            .load(namespace)?
            .into_iter()
            .map(|s| s.meta().clone())
            .collect())
    }

    /// The stored versions of a secret, oldest first.
    pub fn history(&self, namespace: &str, name: &str) -> Result<Vec<SecretMeta>, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.read(|st| history_in(self.store(), st, namespace, name))
    }

    /// Writes a secret of a scope on which this member has the member role: a new version
    /// sealed under the scope's current key and signed by this member, in one atomic
    /// commit.
    pub fn put(&self, namespace: &str, name: &str, value: &[u8]) -> Result<SecretMeta, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        if value.len() > crate::MAX_VALUE_LEN {
            return Err(VaultError::invalid("secret value", "larger than 64 MiB"));
        }
        let settings = WriteSettings {
            suite: self.inner.header.suite,
            keep: u64::from(self.inner.header.history),
        };
        self.write(|st, batch| {
            let at = locate(self.store(), st, namespace, name)?;
            stage_put(st, settings, batch, &at, namespace, name, value)
        })
    }

    /// Deletes a secret of a scope on which this member has the member role, and every
    /// stored version of it, atomically.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.write(|st, batch| {
            let scope = st.domain(namespace)?.scope;
            crate::writers::signing_position(st, scope)?;
            stage_delete(self.store(), st, batch, namespace, name).map(|_| ())
        })
    }

    /// Commits what `f` stages while the membership log is where this handle saw it (a
    /// revocation meanwhile makes it conflict: it is redone under the new scope key).
    fn write<T>(
        &self,
        mut f: impl FnMut(&ScopedState, &mut Batch) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        if self.store().is_read_only() {
            return Err(VaultError::Store(StoreError::ReadOnly {
                reason: "the store refuses writes".to_owned(),
            }));
        }
        let _writing = self
            .inner
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        crate::vault::commit_retrying(
            self.store(),
            || {
                let st = self.state();
                let mut batch = Batch::new();
                crate::vault::guard_log(&mut batch, st.session.generation(), st.session.pins());
                let out = f(&st, &mut batch)?;
                Ok((batch, out))
            },
            |table| {
                if table == Table::MemberLog {
                    self.refresh()?;
                }
                Ok(())
            },
        )
    }
}
