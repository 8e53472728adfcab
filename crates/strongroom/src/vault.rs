//! Creating, opening and unlocking a vault; the thread-safe [`Vault`] handle.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock, RwLockReadGuard};

use strongroom_crypto::{Key256, MemberId, VaultId, random};
use strongroom_envelope::{BodyCheck, Epoch, Suite};
use strongroom_recovery::Keyholder;
use strongroom_sharing::{Identity, PendingChange, Pins, Role, Session, SharingError, Warning};
use strongroom_store::{
    Batch, Committed, Cursor as ScanCursor, Expect, Page, ReadView, ScanRange, Snapshot, Store,
    StoreError, Table, TableRow, Versioned,
};

use crate::audit::{self, Action, AuditEvent, Cursor, Event};
use crate::meta::{
    FAILED_UNLOCK_PREFIX, HEADER_KEY, Header, MetaKeys, find_meta, meta_key_row, now, wrap_meta,
};
use crate::pins::{PinStatus, PinStore};
use crate::{Inconsistency, VaultError};

/// Settings of a new vault.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CreateOptions {
    /// Display name of the first member (the owner), e.g. `"alice"` or `"billing-service"`.
    pub member_name: String,
    /// Body cipher suite for new records (default: AES-256-GCM where the CPU has AES
    /// instructions, ChaCha20-Poly1305 otherwise).
    pub suite: Suite,
    /// How many versions of each secret are kept (default 10, at least 1).
    pub history: u32,
    /// Rotation policy: the vault key is reported past due after this many days
    /// (default 90; 0 disables the check).
    pub rotation_days: u32,
}

impl CreateOptions {
    /// Sets [`CreateOptions::member_name`].
    #[must_use]
    pub fn with_member_name(mut self, member_name: String) -> Self {
        self.member_name = member_name;
        self
    }

    /// Sets [`CreateOptions::suite`].
    #[must_use]
    pub fn with_suite(mut self, suite: Suite) -> Self {
        self.suite = suite;
        self
    }

    /// Sets [`CreateOptions::history`].
    #[must_use]
    pub fn with_history(mut self, history: u32) -> Self {
        self.history = history;
        self
    }

    /// Sets [`CreateOptions::rotation_days`].
    #[must_use]
    pub fn with_rotation_days(mut self, rotation_days: u32) -> Self {
        self.rotation_days = rotation_days;
        self
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            member_name: "owner".into(),
            suite: Suite::preferred(),
            history: 10,
            rotation_days: 90,
        }
    }
}

/// How to unlock.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct UnlockOptions {
    /// Which member to unlock as; `None` when the store holds one member's credentials.
    pub member: Option<MemberId>,
    /// Pins from an earlier unlock (empty: trust on first use). Persist
    /// [`Vault::pins`] after unlocking so a rolled-back or forked membership log is
    /// detected next time.
    pub pins: Pins,
}

impl UnlockOptions {
    /// Sets [`UnlockOptions::member`].
    #[must_use]
    pub fn with_member(mut self, member: Option<MemberId>) -> Self {
        self.member = member;
        self
    }

    /// Sets [`UnlockOptions::pins`].
    #[must_use]
    pub fn with_pins(mut self, pins: Pins) -> Self {
        self.pins = pins;
        self
    }
}

/// A vault creation prepared by [`Vault::prepare_create`]: nothing is written until
/// [`commit`](Self::commit).
#[must_use = "a prepared vault is not created until it is committed"]
pub struct PendingVault {
    store: Arc<dyn Store>,
    header: Header,
    meta: MetaKeys,
    cursor: Cursor,
    pending: strongroom_sharing::PendingCreate,
}

impl core::fmt::Debug for PendingVault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingVault")
            .field("vault_id", &self.vault_id())
            .field("member_id", &self.member_id())
            .finish_non_exhaustive()
    }
}

impl PendingVault {
    /// The id the vault will have.
    pub fn vault_id(&self) -> VaultId {
        self.header.vault_id
    }

    /// The owner's member id.
    pub fn member_id(&self) -> MemberId {
        self.pending.member_id()
    }

    /// The warnings the creation will report (see [`CreateReport::warnings`]).
    pub fn warnings(&self) -> &[Warning] {
        self.pending.warnings()
    }

    /// Creates the vault: every row in one commit. A store that holds a vault by now
    /// (another creation won) is [`VaultError::VaultExists`].
    pub fn commit(self) -> Result<(Vault, CreateReport), VaultError> {
        let PendingVault {
            store,
            header,
            meta,
            cursor,
            pending,
        } = self;
        let (session, warnings) = pending.commit(&*store)?;
        let report = CreateReport {
            vault_id: header.vault_id,
            member_id: session.member_id(),
            warnings,
        };
        tracing::info!(vault = %report.vault_id, "vault created");
        let vault = Vault {
            inner: Arc::new(Inner {
                store,
                header,
                state: RwLock::new(State {
                    session,
                    meta,
                    older_meta: Vec::new(),
                    scope_indexes: crate::access::ScopeIndexes::default(),
                    verified: crate::writers::VerifiedWrites::default(),
                }),
                audit: Mutex::new(Some(cursor)),
                pins: OnceLock::new(),
                read_only: AtomicBool::new(false),
            }),
        };
        Ok((vault, report))
    }
}

/// What [`Vault::create`] tells the caller besides the vault.
#[derive(Debug)]
#[non_exhaustive]
pub struct CreateReport {
    /// The new vault's id.
    pub vault_id: VaultId,
    /// The owner's member id.
    pub member_id: MemberId,
    /// Warnings to show (a one-member vault is lost with its member's keyholders).
    pub warnings: Vec<Warning>,
}

pub(crate) struct State {
    pub(crate) session: Session,
    /// The current metadata key's derived keys.
    pub(crate) meta: MetaKeys,
    /// Older metadata keys whose blind index rows a rotation has not moved yet (empty but
    /// for the time between a member removal and the end of the rotation after it).
    pub(crate) older_meta: Vec<MetaKeys>,
    /// The blind index keys of the scopes this handle used.
    pub(crate) scope_indexes: crate::access::ScopeIndexes,
    /// Record versions whose writer signature this handle verified.
    pub(crate) verified: crate::writers::VerifiedWrites,
}

impl State {
    /// The metadata keys the index may be under: the current one first.
    pub(crate) fn meta_generations(&self) -> impl Iterator<Item = &MetaKeys> {
        std::iter::once(&self.meta).chain(&self.older_meta)
    }

    /// The oldest readable epoch (the signed retirement floor of the membership log).
    pub(crate) fn min_epoch(&self) -> Epoch {
        self.session.membership().retired_below()
    }

    /// Which record bodies are checked against the digest their wrap authenticates: those
    /// sealed before the first epoch after the last member left (a former member may know
    /// their data keys); versions sealed since have data keys only current members know.
    pub(crate) fn body_check(&self) -> BodyCheck {
        let floor = self
            .session
            .membership()
            .former_members()
            .values()
            .map(|f| Epoch(f.last_epoch().get().saturating_add(1)))
            .max()
            .unwrap_or(Epoch::FIRST);
        BodyCheck::SealedBefore(floor)
    }
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    header: Header,
    state: RwLock<State>,
    audit: Mutex<Option<Cursor>>,
    /// Where the pins go after every change of the membership this handle sees.
    pins: OnceLock<(Arc<dyn PinStore>, PinStatus)>,
    /// A handle on a store that refuses writes (see `replica.rs`).
    pub(crate) read_only: AtomicBool,
}

/// An unlocked vault: a cheap, cloneable, thread-safe handle (`Send + Sync`) for server
/// applications. Every method works on the store directly, so several handles and
/// several processes can share one vault.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for Vault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vault")
            .field("vault_id", &self.inner.header.vault_id)
            .field("backend", &self.inner.store.backend())
            .finish_non_exhaustive()
    }
}

/// A vault found in a store, not yet unlocked.
pub struct LockedVault {
    store: Arc<dyn Store>,
    header: Header,
}

impl core::fmt::Debug for LockedVault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LockedVault")
            .field("vault_id", &self.header.vault_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Vault {
    /// Creates a vault in an empty store, unlockable by `keyholder`, with a first member
    /// (the owner).
    ///
    /// The report carries a warning when the vault can be lost: one member, no recovery
    /// key. Add a recovery key ([`Vault::add_keyholder`]) and a second member to remove it.
    pub fn create(
        store: Arc<dyn Store>,
        keyholder: &dyn Keyholder,
        options: &CreateOptions,
    ) -> Result<(Vault, CreateReport), VaultError> {
        Self::prepare_create(store, &[keyholder], options)?.commit()
    }

    /// Prepares a vault creation with several keyholders (a passphrase and a recovery key,
    /// say), so that the vault appears with all of them in one commit, or not at all.
    /// Nothing is written before [`PendingVault::commit`]: show a new recovery key first,
    /// and drop the pending vault if it could not be shown.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use strongroom::{CreateOptions, Vault, recovery::{RawKek, RecoveryKey}, store::MemoryStore};
    ///
    /// let kek = RawKek::generate()?;
    /// let recovery = RecoveryKey::generate()?;
    /// let pending = Vault::prepare_create(
    ///     Arc::new(MemoryStore::new()),
    ///     &[&kek, &recovery],
    ///     &CreateOptions::default(),
    /// )?;
    /// // Show `recovery.to_text()` to the user here (for vault `pending.vault_id()`), then:
    /// let (vault, _report) = pending.commit()?;
    /// assert_eq!(vault.keyholders()?.len(), 2);
    /// # Ok::<(), strongroom::VaultError>(())
    /// ```
    pub fn prepare_create(
        store: Arc<dyn Store>,
        keyholders: &[&dyn Keyholder],
        options: &CreateOptions,
    ) -> Result<PendingVault, VaultError> {
        if keyholders.is_empty() {
            return Err(VaultError::invalid(
                "keyholders",
                "a vault needs at least one keyholder",
            ));
        }
        if options.history == 0 {
            return Err(VaultError::invalid("history", "keep at least one version"));
        }
        if store.get(Table::Meta, HEADER_KEY)?.is_some()
            || store.log_head(Table::MemberLog)?.is_some()
            || store.log_head(Table::Audit)?.is_some()
        {
            return Err(VaultError::VaultExists);
        }
        let vault_id = VaultId::generate()?;
        let owner = Identity::generate(&options.member_name)?;
        let meta = MetaKeys::from_root(Key256::generate()?);
        let header = Header::new(
            vault_id,
            now(),
            options.suite,
            options.history,
            options.rotation_days,
            &meta,
        );
        // The header, the metadata key and the first audit entry commit in the same batch
        // as the membership genesis: the vault appears whole or not at all.
        let mut pending =
            strongroom_sharing::prepare_create(&*store, vault_id, &owner, keyholders)?;
        // Every record version of a new vault carries its writer's signature.
        pending.require_signed_writes()?;
        let wrapped_meta = wrap_meta(vault_id, pending.first_key(), meta.root())?;
        let batch = pending.batch_mut();
        batch
            .put(
                Table::Meta,
                HEADER_KEY.to_vec(),
                header.encode(),
                Expect::Absent,
            )
            .put(
                Table::Wraps,
                meta_key_row(Epoch::FIRST),
                wrapped_meta,
                Expect::Absent,
            );
        crate::status::stamp_epoch(batch, &meta, vault_id, Epoch::FIRST);
        let cursor = audit::append(
            batch,
            &meta.audit,
            Cursor {
                next: 0,
                prev_hash: [0; 32],
            },
            &Event {
                action: Action::Create,
                ok: true,
                target: vault_id.as_bytes(),
                detail: "",
                actor: Some(owner.member_id()),
                time: now(),
            },
        );
        Ok(PendingVault {
            store,
            header,
            meta,
            cursor,
            pending,
        })
    }

    /// Finds the vault in `store`.
    pub fn open(store: Arc<dyn Store>) -> Result<LockedVault, VaultError> {
        let Some(row) = store.get(Table::Meta, HEADER_KEY)? else {
            return Err(if store.log_head(Table::MemberLog)?.is_some() {
                VaultError::inconsistent(
                    Inconsistency::InterruptedCreate,
                    "the store has a membership log but no vault header: vault creation was interrupted; create the vault again in an empty store",
                )
            } else {
                VaultError::NoVault
            });
        };
        let header = Header::decode(&row.value)?;
        Ok(LockedVault { store, header })
    }

    pub(crate) fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// What a put needs from the header.
    pub(crate) fn write_settings(&self) -> crate::records::WriteSettings {
        crate::records::WriteSettings {
            suite: self.header().suite,
            keep: u64::from(self.header().history),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        &self.inner.header
    }

    pub(crate) fn state(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The vault's id.
    pub fn id(&self) -> VaultId {
        self.inner.header.vault_id
    }

    /// The unlocked member's id.
    pub fn member_id(&self) -> MemberId {
        self.state().session.member_id()
    }

    /// The unlocked member's role (`None` if the member was removed meanwhile).
    pub fn role(&self) -> Option<Role> {
        self.state().session.role()
    }

    /// The current vault-key epoch.
    pub fn epoch(&self) -> Epoch {
        self.state().session.epoch()
    }

    /// The oldest epoch whose records can still be read (epochs before it were retired
    /// by a completed rotation and their keys shredded).
    pub fn min_epoch(&self) -> Epoch {
        self.state().min_epoch()
    }

    /// The pins to persist after this unlock and after every membership change.
    pub fn pins(&self) -> Pins {
        self.state().session.pins().clone()
    }

    /// The storage backend (`sqlite`, `postgres`, `memory`).
    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    /// Re-reads and re-verifies the membership log and keys (after another member or
    /// process changed the vault).
    pub fn refresh(&self) -> Result<(), VaultError> {
        // One consistent view: a membership change another process commits while this
        // reads (a log append, a retirement deleting old grants) must not look like
        // storage tampering.
        let view = self.store().snapshot()?;
        let mut st = self.state_mut();
        st.session
            .refresh(&*view)
            .map_err(|e| crate::replica::behind_or(e.into(), self.is_read_only()))?;
        let generations = find_meta(
            &*view,
            self.id(),
            |e| st.session.key(e),
            st.session.epoch(),
            current_is_bound(&st.session),
        )?;
        st.meta = generations.current;
        st.older_meta = generations.older;
        drop(st);
        self.save_pins()
    }

    /// Keeps this vault's pins in `pin_store` from now on (saved now, and after every
    /// membership change this handle commits or sees): what a vault just created does to
    /// be unlocked with [`LockedVault::unlock_pinned`] later.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use strongroom::{CreateOptions, MemoryPinStore, PinStatus, Vault, recovery::RawKek, store::MemoryStore};
    ///
    /// let (store, pins, kek) = (Arc::new(MemoryStore::new()), Arc::new(MemoryPinStore::new()), RawKek::generate()?);
    /// let (vault, _) = Vault::create(store.clone(), &kek, &CreateOptions::default())?;
    /// let vault = vault.pin_to(pins.clone())?;
    /// let again = Vault::open(store)?.unlock_pinned(&kek, pins)?;
    /// assert_eq!(again.pin_status(), Some(PinStatus::Verified));
    /// # Ok::<(), strongroom::VaultError>(())
    /// ```
    pub fn pin_to(self, pin_store: Arc<dyn PinStore>) -> Result<Vault, VaultError> {
        self.attach_pins(pin_store, PinStatus::FirstUse)?;
        Ok(self)
    }

    /// How this handle's pins were established: `None` when it keeps no pins
    /// ([`LockedVault::unlock`]).
    pub fn pin_status(&self) -> Option<PinStatus> {
        self.inner.pins.get().map(|(_, status)| *status)
    }

    fn attach_pins(
        &self,
        pin_store: Arc<dyn PinStore>,
        status: PinStatus,
    ) -> Result<(), VaultError> {
        if self.inner.pins.set((pin_store, status)).is_err() {
            return Err(VaultError::invalid(
                "pin store",
                "this handle keeps its pins in a pin store already",
            ));
        }
        self.save_pins()
    }

    /// Saves the pins, when this handle keeps them in a pin store. Called after the
    /// membership changes are committed, so the pins never run ahead of the data.
    pub(crate) fn save_pins(&self) -> Result<(), VaultError> {
        if let Some((store, _)) = self.inner.pins.get() {
            let pins = self.state().session.pins().clone();
            store.save(self.id(), &pins)?;
        }
        Ok(())
    }

    /// Refreshes when the membership log moved since this handle last looked.
    pub(crate) fn refresh_if_stale(&self) -> Result<bool, VaultError> {
        if !log_moved(self.store(), self.state().session.pins())? {
            return Ok(false);
        }
        self.refresh()?;
        Ok(true)
    }

    pub(crate) fn require_writer(&self) -> Result<(), VaultError> {
        match self.role() {
            Some(Role::Owner | Role::Admin | Role::Member) => Ok(()),
            Some(Role::ReadOnly) => Err(VaultError::PermissionDenied {
                role: Some(Role::ReadOnly),
            }),
            Some(_) | None => Err(VaultError::PermissionDenied { role: None }),
        }
    }

    /// Runs a read, retrying after a refresh when the vault moved to keys this handle does
    /// not have yet (as long as the membership log keeps moving, a few times at most).
    ///
    /// A secret not found is retried too when the log moved: a member removal replaces the
    /// metadata key, and the rotation after it moves every index row to a blind index this
    /// handle cannot compute yet. The check costs one store call, on a miss only.
    ///
    /// Writers are checked against this handle's copy of the log: a refused writer is
    /// retried after a refresh (the writer may be a member added since), and a read that
    /// accepted an unsigned version (a vault of an earlier release) stands only once one
    /// store call confirms the log has not moved since (it may require signed writes now).
    pub(crate) fn read<T>(
        &self,
        f: impl Fn(&State) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let run = || {
            let st = self.state();
            let unsigned = st.verified.unsigned_accepted();
            let result = f(&st);
            (result, st.verified.unsigned_accepted() != unsigned)
        };
        let (mut result, mut took_unsigned) = run();
        for _ in 0..8 {
            match result {
                Ok(_) if took_unsigned && self.refresh_if_stale()? => {
                    (result, took_unsigned) = run();
                }
                Err(
                    VaultError::Record { .. }
                    | VaultError::Inconsistent { .. }
                    | VaultError::NotFound { .. }
                    | VaultError::Writer { .. },
                ) if self.refresh_if_stale()? => {
                    (result, took_unsigned) = run();
                }
                // On a replica, the log may have moved on (a rotation retired the epoch)
                // since this handle last looked.
                Err(VaultError::RetiredEpoch { .. })
                    if self.is_read_only() && self.refresh_if_stale()? =>
                {
                    (result, took_unsigned) = run();
                }
                other => return self.unless_behind(other),
            }
        }
        self.unless_behind(result)
    }

    /// Runs a write: `f` fills a batch and names the audit event; the audit entry is
    /// appended to the same batch and everything commits atomically. Conflicts (a
    /// concurrent writer, the audit head moved, the membership changed) are retried.
    pub(crate) fn write<T>(
        &self,
        mut f: impl FnMut(&State, &mut Batch) -> Result<(T, AuditEvent), VaultError>,
    ) -> Result<T, VaultError> {
        self.require_writable()?;
        let mut cursor_guard = lock(&self.inner.audit);
        let (out, next) = commit_retrying(
            self.store(),
            || {
                let cursor = if let Some(c) = *cursor_guard {
                    c
                } else {
                    let c = Cursor::load(self.store())?;
                    *cursor_guard = Some(c);
                    c
                };
                let st = self.state();
                let mut batch = Batch::new();
                // Commit only while the membership log is where this handle last saw it: a
                // concurrent rotation or member removal makes the batch conflict, and it is
                // redone under the new epoch's key.
                guard_membership(&mut batch, &st);
                let (out, event) = f(&st, &mut batch)?;
                let next = event.append(&mut batch, &st, cursor);
                // Unknown until the commit succeeds (reloaded after a conflict or a failure).
                *cursor_guard = None;
                Ok((batch, (out, next)))
            },
            |table| {
                if table == Table::MemberLog {
                    self.refresh()?;
                }
                Ok(())
            },
        )?;
        *cursor_guard = Some(next);
        Ok(out)
    }

    /// Runs a change the sharing layer stages (`prepare`: a membership change or a
    /// keyholder change), in one atomic batch with the vault's own rows and its audit entry.
    ///
    /// A change that starts an epoch also gets that epoch's metadata-key wrap and start
    /// time here. `rows` adds the caller's rows (given the metadata keys and the prepared
    /// change, e.g. its new key) and names the audit event. The change is prepared again
    /// when the audit head or the membership log moved; other conflicts are returned.
    pub(crate) fn change<T>(
        &self,
        prepare: impl FnMut(&Session) -> Result<PendingChange<T>, SharingError>,
        rows: impl FnMut(&MetaKeys, &mut PendingChange<T>) -> Result<AuditEvent, VaultError>,
    ) -> Result<T, VaultError> {
        self.change_with(MetaKey::Keep, prepare, rows)
    }

    /// [`Vault::change`], replacing the metadata key when `meta` says so and the change
    /// starts an epoch (a member removal): the new key is wrapped under the new epoch only,
    /// the vault header and the epoch timestamp are authenticated under it, and the audit
    /// log continues under it after a `metadata-key-replace` entry, whose hash link covers
    /// every entry before it. `rows` gets the new keys.
    pub(crate) fn change_with<T>(
        &self,
        meta: MetaKey,
        mut prepare: impl FnMut(&Session) -> Result<PendingChange<T>, SharingError>,
        mut rows: impl FnMut(&MetaKeys, &mut PendingChange<T>) -> Result<AuditEvent, VaultError>,
    ) -> Result<T, VaultError> {
        self.require_writable()?;
        let mut guard = lock(&self.inner.audit);
        for attempt in 0..16 {
            let cursor = match *guard {
                Some(c) => c,
                None => Cursor::load(self.store())?,
            };
            let mut st = self.state_mut();
            let mut change = prepare(&st.session)?;
            let replaced = match change.new_key() {
                Some(_) if meta == MetaKey::Replace => {
                    Some(MetaKeys::from_root(Key256::generate()?))
                }
                _ => None,
            };
            let keys = replaced.as_ref().unwrap_or(&st.meta);
            let mut cursor = cursor;
            if let Some(vk) = change.new_key() {
                let (epoch, wrapped) = (vk.epoch(), wrap_meta(self.id(), vk, keys.root())?);
                let batch = change.batch_mut();
                batch.put(Table::Wraps, meta_key_row(epoch), wrapped, Expect::Any);
                crate::status::stamp_epoch(batch, keys, self.id(), epoch);
                if replaced.is_some() {
                    batch.put(
                        Table::Meta,
                        HEADER_KEY.to_vec(),
                        self.header().remac(keys).encode(),
                        Expect::Any,
                    );
                    cursor = audit::append(
                        batch,
                        &keys.audit,
                        cursor,
                        &Event {
                            action: Action::MetaKeyReplace,
                            ok: true,
                            target: &epoch.0.to_be_bytes(),
                            detail: &format!("epoch={epoch}"),
                            actor: Some(st.session.member_id()),
                            time: now(),
                        },
                    );
                }
            }
            let event = rows(keys, &mut change)?;
            let next = event.append_with(
                change.batch_mut(),
                &keys.audit,
                st.session.member_id(),
                cursor,
            );
            let had_older = !st.older_meta.is_empty();
            let result = st.session.commit(self.store(), change);
            drop(st);
            match result {
                Ok(out) => {
                    *guard = Some(next);
                    drop(guard);
                    if replaced.is_some() || had_older {
                        // The metadata keys in use changed: the new key, and the old ones
                        // for the rows not moved yet (none once their epochs retire).
                        self.refresh()?;
                    } else {
                        self.save_pins()?;
                    }
                    return Ok(out);
                }
                Err(SharingError::Store(StoreError::Conflict { table, .. }))
                    if table == Table::Audit || table == Table::MemberLog =>
                {
                    tracing::debug!(
                        table = table.name(),
                        attempt,
                        "membership change conflict, retrying"
                    );
                    *guard = None;
                    if table == Table::MemberLog {
                        self.refresh()?;
                    }
                }
                Err(e) => {
                    *guard = None;
                    return Err(e.into());
                }
            }
        }
        Err(VaultError::Busy {
            operation: "membership change",
        })
    }

    /// Appends an audit entry on its own (for actions whose changes were committed by
    /// another layer, such as membership changes).
    pub(crate) fn audit_only(
        &self,
        action: Action,
        target: &[u8],
        detail: String,
    ) -> Result<(), VaultError> {
        if self.is_read_only() {
            // The audit log lives on the primary: an export or a snapshot from a replica
            // goes unrecorded (see `replica.rs`).
            tracing::info!(
                action = action.name(),
                "read-only vault handle: the action is not recorded in the audit log"
            );
            return Ok(());
        }
        let target = target.to_vec();
        self.write(move |_, _| Ok(((), AuditEvent::new(action, target.clone(), detail.clone()))))
    }
}

/// Whether the signed log binds the current epoch's key by a 256-bit commitment: the epoch
/// was started by this format, in one batch with its metadata-key row.
fn current_is_bound(session: &Session) -> bool {
    session
        .membership()
        .key_binding(session.epoch())
        .is_some_and(|b| b.commitment().is_some())
}

/// Whether a change keeps the metadata key or replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaKey {
    Keep,
    Replace,
}

/// Commits the batch `stage` fills, staging it again after a conflict (a concurrent
/// writer, the audit head or the membership log moved) with a growing pause, 64 times at
/// most. `conflicted` runs after each conflict with the table that conflicted (to reload
/// what the next attempt needs). What `stage` returns besides the batch is the result.
pub(crate) fn commit_retrying<T>(
    store: &dyn Store,
    mut stage: impl FnMut() -> Result<(Batch, T), VaultError>,
    mut conflicted: impl FnMut(Table) -> Result<(), VaultError>,
) -> Result<T, VaultError> {
    const ATTEMPTS: usize = 64;
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_micros(50 * attempt as u64));
        }
        let (batch, out) = stage()?;
        match store.commit(&batch) {
            Ok(_) => return Ok(out),
            Err(StoreError::Conflict { table, key }) => {
                tracing::debug!(table = table.name(), attempt, "write conflict, retrying");
                conflicted(table)?;
                last = Some(StoreError::Conflict { table, key });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(|| VaultError::Busy { operation: "put" }, VaultError::Store))
}

/// Adds the check that the membership log has not moved past what `state` verified.
///
/// The batch also requires the store generation the handle was unlocked in: after a
/// restore it fails with [`StoreError::GenerationChanged`] instead of applying decisions
/// made from the content that was replaced.
pub(crate) fn guard_membership(batch: &mut Batch, state: &State) {
    guard_log(batch, state.session.generation(), state.session.pins());
}

/// Makes `batch` commit only while the store is the same database (`generation`) and its
/// membership log ends where `pins` saw it.
pub(crate) fn guard_log(
    batch: &mut Batch,
    generation: strongroom_store::Generation,
    pins: &strongroom_sharing::Pins,
) {
    batch.require_generation(generation);
    let next = pins.high_water().map_or(0, |h| h.seq + 1);
    batch.check(
        Table::MemberLog,
        next.to_be_bytes().to_vec(),
        Expect::Absent,
    );
}

/// Whether the membership log of `store` moved past what `pins` saw (one store call).
pub(crate) fn log_moved(
    store: &dyn ReadView,
    pins: &strongroom_sharing::Pins,
) -> Result<bool, VaultError> {
    let head = store.log_head(Table::MemberLog)?;
    Ok(head != pins.high_water().map(|h| h.seq))
}

impl LockedVault {
    pub(crate) fn store_ref(&self) -> &dyn Store {
        &*self.store
    }

    pub(crate) fn into_parts(self) -> (Arc<dyn Store>, Header) {
        (self.store, self.header)
    }

    /// The vault's id (read from the store; verified against the signed membership log at
    /// unlock).
    pub fn id(&self) -> VaultId {
        self.header.vault_id
    }

    /// Unlocks with `keyholder`, without pins: the membership log is checked for internal
    /// consistency only, and trusted as the storage serves it now. Prefer
    /// [`LockedVault::unlock_pinned`], which refuses a storage rolled back past a member
    /// removal.
    pub fn unlock(self, keyholder: &dyn Keyholder) -> Result<Vault, VaultError> {
        self.unlock_with(keyholder, UnlockOptions::default())
    }

    /// Unlocks with `keyholder`, checking the membership log against the pins `pin_store`
    /// holds for this vault (the genesis signer, and a high-water mark: a log that forks,
    /// has another signer, or is shorter than what this client verified before is refused
    /// with an error that says so). On first use the vault is pinned as it is now
    /// ([`Vault::pin_status`] says [`PinStatus::FirstUse`]). The unlocked handle saves the
    /// pins after every membership change it commits or sees.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use strongroom::{CreateOptions, MemoryPinStore, PinStatus, Vault, recovery::RawKek, store::MemoryStore};
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let pins = Arc::new(MemoryPinStore::new());
    /// let kek = RawKek::generate()?;
    /// Vault::create(store.clone(), &kek, &CreateOptions::default())?;
    /// let vault = Vault::open(store.clone())?.unlock_pinned(&kek, pins.clone())?;
    /// assert_eq!(vault.pin_status(), Some(PinStatus::FirstUse));
    /// let again = Vault::open(store)?.unlock_pinned(&kek, pins)?;
    /// assert_eq!(again.pin_status(), Some(PinStatus::Verified));
    /// # Ok::<(), strongroom::VaultError>(())
    /// ```
    pub fn unlock_pinned(
        self,
        keyholder: &dyn Keyholder,
        pin_store: Arc<dyn PinStore>,
    ) -> Result<Vault, VaultError> {
        self.unlock_pinned_as(keyholder, None, pin_store)
    }

    /// [`LockedVault::unlock_pinned`] as `member` (needed when several members keep their
    /// credentials in this store; `None` picks the only one).
    pub fn unlock_pinned_as(
        self,
        keyholder: &dyn Keyholder,
        member: Option<MemberId>,
        pin_store: Arc<dyn PinStore>,
    ) -> Result<Vault, VaultError> {
        let saved = pin_store.load(self.id())?;
        let status = if saved.is_some() {
            PinStatus::Verified
        } else {
            tracing::info!(vault = %self.id(), "no pins for this vault yet: pinning it as the storage serves it");
            PinStatus::FirstUse
        };
        let vault = self.unlock_with(
            keyholder,
            UnlockOptions {
                member,
                pins: saved.unwrap_or_default(),
            },
        )?;
        vault.attach_pins(pin_store, status)?;
        Ok(vault)
    }

    /// Unlocks with `keyholder`, as `options.member`, checking the membership log against
    /// `options.pins`.
    ///
    /// A keyholder that does not open the vault (a wrong passphrase, another vault's
    /// `ENCRYPTION_KEY`) fails here with [`VaultError::Unlock`], before anything is written
    /// under it; the failure is recorded and appears in the audit log after the next
    /// successful unlock.
    pub fn unlock_with(
        self,
        keyholder: &dyn Keyholder,
        options: UnlockOptions,
    ) -> Result<Vault, VaultError> {
        let mut pins = options.pins;
        let vault_id = self.header.vault_id;
        let read_only = self.store.is_read_only();
        // Every read of the unlock comes from one snapshot: a membership change another
        // process commits meanwhile (a rotation's new epoch and the retirement of the old
        // ones) must not make the log, the grants, the key chain and the metadata key
        // disagree, which would read as storage tampering.
        let view = ViewStore {
            view: Mutex::new(self.store.snapshot()?),
            store: &*self.store,
        };
        let unlocked =
            strongroom_sharing::unlock(&view, vault_id, options.member, keyholder, &mut pins);
        let session = match unlocked {
            Ok(s) => s,
            Err(e) => {
                let err = crate::replica::behind_or(VaultError::from(e), read_only);
                if err.is_unlock_failure() && !read_only {
                    record_failed_unlock(&*self.store, keyholder.kind().name(), options.member);
                }
                return Err(err);
            }
        };
        let generations = find_meta(
            &view,
            vault_id,
            |e| session.key(e),
            session.epoch(),
            current_is_bound(&session),
        )?;
        drop(view);
        self.header.verify(&generations.current)?;
        let vault = Vault {
            inner: Arc::new(Inner {
                store: self.store,
                header: self.header,
                state: RwLock::new(State {
                    session,
                    meta: generations.current,
                    older_meta: generations.older,
                    scope_indexes: crate::access::ScopeIndexes::default(),
                    verified: crate::writers::VerifiedWrites::default(),
                }),
                audit: Mutex::new(None),
                pins: OnceLock::new(),
                read_only: AtomicBool::new(read_only),
            }),
        };
        if read_only {
            return Ok(vault);
        }
        // A server that turns out to refuse writes (a standby reached without saying so)
        // gives a read-only handle too.
        match vault
            .heal_meta_row()
            .and_then(|()| vault.record_unlock(keyholder.kind().name()))
        {
            Err(VaultError::Store(StoreError::ReadOnly { reason })) => {
                tracing::info!(%reason, "the store refuses writes: the vault handle is read-only");
                vault.mark_read_only();
            }
            other => other?,
        }
        Ok(vault)
    }
}

/// A store whose reads come from one snapshot and whose writes go to the live store.
pub(crate) struct ViewStore<'a> {
    view: Mutex<Box<dyn Snapshot + 'a>>,
    store: &'a dyn Store,
}

impl<'a> ViewStore<'a> {
    /// Reads from a snapshot of `store` taken now.
    pub(crate) fn of(store: &'a dyn Store) -> Result<Self, StoreError> {
        Ok(Self {
            view: Mutex::new(store.snapshot()?),
            store,
        })
    }
}

impl ReadView for ViewStore<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        lock(&self.view).get(table, key)
    }

    fn get_many(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Versioned>>, StoreError> {
        lock(&self.view).get_many(keys)
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        lock(&self.view).scan(table, range, resume, limit)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, StoreError> {
        lock(&self.view).log_head(table)
    }

    fn generation(&self) -> Result<strongroom_store::Generation, StoreError> {
        lock(&self.view).generation()
    }
}

impl Store for ViewStore<'_> {
    fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        self.store.commit(batch)
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        self.store.snapshot()
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        self.store.schema_version()
    }

    fn backend(&self) -> &'static str {
        self.store.backend()
    }

    fn is_read_only(&self) -> bool {
        self.store.is_read_only()
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<Item = Result<TableRow, StoreError>>,
    ) -> Result<u64, StoreError> {
        self.store.replace_all(rows)
    }
}

fn record_failed_unlock(store: &dyn Store, kind: &str, member: Option<MemberId>) {
    let Ok(rnd) = random::array::<8>() else {
        return;
    };
    let mut key = FAILED_UNLOCK_PREFIX.to_vec();
    key.extend_from_slice(&now().to_be_bytes());
    key.extend_from_slice(&rnd);
    let value = match member {
        Some(m) => format!("{kind} member={m}"),
        None => kind.to_owned(),
    };
    let mut b = Batch::new();
    b.put(Table::Meta, key, value.into_bytes(), Expect::Absent);
    if let Err(e) = store.commit(&b) {
        tracing::warn!(error = %e, "could not record a failed unlock");
    }
}

impl Vault {
    /// Writes the metadata-key row of the current epoch if a rotation stopped before
    /// writing it.
    fn heal_meta_row(&self) -> Result<(), VaultError> {
        let st = self.state();
        let epoch = st.session.epoch();
        if self
            .store()
            .get(Table::Wraps, &meta_key_row(epoch))?
            .is_some()
        {
            return Ok(());
        }
        let blob = wrap_meta(self.id(), st.session.current_key(), st.meta.root())?;
        let mut b = Batch::new();
        // Only while the epoch is current: a rotation that retired it meanwhile deleted
        // its row on purpose.
        guard_membership(&mut b, &st);
        drop(st);
        b.put(Table::Wraps, meta_key_row(epoch), blob, Expect::Absent);
        match self.store().commit(&b) {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Folds failed-unlock marks into the audit log and records this unlock.
    fn record_unlock(&self, kind: &str) -> Result<(), VaultError> {
        let page = self.store().scan(
            Table::Meta,
            &ScanRange::prefix(FAILED_UNLOCK_PREFIX.to_vec()),
            None,
            1000,
        )?;
        let mut cursor_guard = lock(&self.inner.audit);
        for _ in 0..64 {
            let st = self.state();
            let mut cursor = Cursor::load(self.store())?;
            let mut batch = Batch::new();
            for row in &page.rows {
                let t = row
                    .key
                    .get(FAILED_UNLOCK_PREFIX.len()..FAILED_UNLOCK_PREFIX.len() + 8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_be_bytes);
                let detail = format!(
                    "reported before unlock: {}",
                    String::from_utf8_lossy(&row.value)
                );
                cursor = audit::append(
                    &mut batch,
                    &st.meta.audit,
                    cursor,
                    &Event {
                        action: Action::UnlockFailed,
                        ok: false,
                        target: b"",
                        detail: &detail,
                        actor: None,
                        time: t,
                    },
                );
                batch.delete(Table::Meta, row.key.clone(), Expect::Version(row.version));
            }
            // Only while the membership (and so the metadata key) is what this handle saw:
            // an entry under a replaced audit key would read as forged.
            guard_membership(&mut batch, &st);
            let detail = format!("keyholder={kind}");
            cursor = audit::append(
                &mut batch,
                &st.meta.audit,
                cursor,
                &Event {
                    action: Action::Unlock,
                    ok: true,
                    target: st.session.member_id().as_bytes(),
                    detail: &detail,
                    actor: Some(st.session.member_id()),
                    time: now(),
                },
            );
            drop(st);
            match self.store().commit(&batch) {
                Ok(_) => {
                    *cursor_guard = Some(cursor);
                    return Ok(());
                }
                Err(StoreError::Conflict {
                    table: Table::MemberLog,
                    ..
                }) => {
                    self.refresh()?;
                }
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(VaultError::Busy {
            operation: "audit append",
        })
    }
}
