//! Vault operations on a [`Store`]: [`create`], [`unlock`], [`join`] and the [`Session`]
//! an unlocked member works through.

use core::fmt;
use core::ops::RangeInclusive;
use std::collections::{BTreeMap, BTreeSet};

use strongroom_crypto::{CryptoError, Key256, MemberId, ScopeId, VaultId};
use strongroom_envelope::{Epoch, VaultKey};
use strongroom_recovery::{Keyholder, unwrap_any};
use strongroom_store::{
    Batch, Expect, Generation, ReadView, ScanRange, Store, StoreError, Table, parse_log_key,
};

use crate::keyholders::{self, KeyholderInfo, KeyholderRecord};
use crate::log::{Denied, EntryBody, KeyBinding, LogEntry};
use crate::recoverability::{RecoverabilityReport, report, report_with};
use crate::scope::{
    ScopeGrant, ScopeLink, scope_chain_row_key, scope_grant_row_key, scope_link_row_key,
};
use crate::scoped::{
    ScopeKeys, audit_scope_grants, current_scope_key_in, open_scope_keys_full, scope_key_in,
};
use crate::wrap::{ChainLink, Grant};
use crate::{
    FingerprintConfirmed, Identity, Membership, Pins, PublicIdentity, Role, SealedIdentity,
    SharingError, VerifyError,
};

/// Row key of a grant in [`Table::Wraps`]: `"g" ‖ epoch (u32 BE) ‖ member id`.
pub(crate) fn grant_row_key(epoch: Epoch, member: MemberId) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(b'g');
    k.extend_from_slice(&epoch.get().to_be_bytes());
    k.extend_from_slice(member.as_bytes());
    k
}

/// Row key of a chain link in [`Table::Wraps`]: `"c" ‖ epoch (u32 BE)`.
pub(crate) fn chain_row_key(epoch: Epoch) -> Vec<u8> {
    let mut k = Vec::with_capacity(5);
    k.push(b'c');
    k.extend_from_slice(&epoch.get().to_be_bytes());
    k
}

/// Row key of sealed credentials in [`Table::Identities`]: the member id.
pub(crate) fn identity_row_key(member: MemberId) -> Vec<u8> {
    member.as_bytes().to_vec()
}

/// Something worth telling the user after an operation that succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Only one member can open the vault: losing that member's keyholders loses the
    /// vault. The report says what to do.
    SinglePointOfFailure(RecoverabilityReport),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SinglePointOfFailure(r) => f.write_str(&r.message),
        }
    }
}

/// What a member removal did and what the removed member could read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    /// The removed member.
    pub member: MemberId,
    /// The new epoch, wrapped to the remaining members only.
    pub new_epoch: Epoch,
    /// The epochs the removed member could read: every record whose key is wrapped under
    /// one of them (at the time of removal) may be known to them, so the credentials those
    /// records hold should be rotated at their source. Through the key chain this starts at
    /// the first epoch.
    pub readable_epochs: RangeInclusive<Epoch>,
    /// Warnings (a single remaining member).
    pub warnings: Vec<Warning>,
}

/// New scope keys, each with its scope.
type NewScopeKeys = Vec<(ScopeId, VaultKey)>;

/// What a scoped member's removal did ([`Session::remove_scoped_member`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopedRemoval {
    /// The removed member.
    pub member: MemberId,
    /// The scopes it could read, each with its new scope epoch: the records of those
    /// scopes (and only those) may be known to it.
    pub scopes: Vec<(ScopeId, Epoch)>,
}

/// A change a [`Session`] prepared but did not commit: its batch (the signed log entry
/// and the wraps it implies, or a keyholder's rows), the new epoch's key when it starts
/// one, and what it will report once committed.
///
/// The application adds its own rows to [`batch_mut`](Self::batch_mut) (rows made with
/// [`new_key`](Self::new_key), an audit entry) and hands it back to [`Session::commit`],
/// which commits everything in one atomic batch and only then moves the session on:
///
/// ```
/// use strongroom_recovery::RawKek;
/// use strongroom_sharing::{Identity, create};
/// use strongroom_store::{Expect, MemoryStore, ReadView, Table};
/// use strongroom_crypto::VaultId;
///
/// let store = MemoryStore::new();
/// let owner = Identity::generate("alice")?;
/// let kek = RawKek::generate()?;
/// let (mut session, _) = create(&store, VaultId::generate()?, &owner, &[&kek])?;
/// let mut change = session.prepare_rekey()?;
/// let epoch = change.new_key().map(|k| k.epoch()).unwrap();
/// change
///     .batch_mut()
///     .put(Table::Meta, b"app-row".to_vec(), epoch.get().to_be_bytes().to_vec(), Expect::Any);
/// assert_eq!(session.commit(&store, change)?, epoch);
/// assert_eq!(session.epoch(), epoch);
/// assert!(store.get(Table::Meta, b"app-row")?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a prepared change does nothing until it is passed to Session::commit"]
pub struct PendingChange<T> {
    batch: Batch,
    entries: Vec<LogEntry>,
    new_key: Option<VaultKey>,
    new_scope_keys: Vec<(ScopeId, VaultKey)>,
    retire_below: Option<Epoch>,
    new_keyholder: Option<[u8; 8]>,
    new_identity: Option<Identity>,
    outcome: T,
}

impl<T> PendingChange<T> {
    /// A change of `batch` alone (no log entry, no new key).
    fn rows(batch: Batch, outcome: T) -> Self {
        Self {
            batch,
            entries: Vec::new(),
            new_key: None,
            new_scope_keys: Vec::new(),
            retire_below: None,
            new_keyholder: None,
            new_identity: None,
            outcome,
        }
    }

    /// A change whose batch starts with `entry` appended to the membership log.
    fn logged(entry: LogEntry, outcome: T) -> Self {
        Self::logged_all(vec![entry], outcome)
    }

    /// A change whose batch starts with `entries` appended to the membership log, in order.
    fn logged_all(entries: Vec<LogEntry>, outcome: T) -> Self {
        let mut batch = Batch::new();
        for entry in &entries {
            batch.append(Table::MemberLog, entry.seq(), entry.encode());
        }
        Self {
            entries,
            ..Self::rows(batch, outcome)
        }
    }

    /// The batch to commit: add the application's rows here.
    pub fn batch_mut(&mut self) -> &mut Batch {
        &mut self.batch
    }

    /// The batch as prepared so far.
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// The key of the epoch this change starts (a rekey or a removal), for the
    /// application's rows that belong to the new epoch.
    pub fn new_key(&self) -> Option<&VaultKey> {
        self.new_key.as_ref()
    }

    /// The signed membership-log entry this change appends, if it is a membership change
    /// (the last one, when it appends several: see [`entries`](Self::entries)).
    pub fn entry(&self) -> Option<&LogEntry> {
        self.entries.last()
    }

    /// Every membership-log entry this change appends, in order (a member removal in a
    /// vault with scopes appends the removal, then a scope rotation per scope).
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The scope keys this change starts (a new scope or a scope rotation), for the
    /// application's rows made with them.
    pub fn new_scope_keys(&self) -> &[(ScopeId, VaultKey)] {
        &self.new_scope_keys
    }

    /// What [`Session::commit`] returns once the change is committed.
    pub fn outcome(&self) -> &T {
        &self.outcome
    }
}

impl<T> fmt::Debug for PendingChange<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingChange")
            .field(
                "entries",
                &self.entries.iter().map(LogEntry::seq).collect::<Vec<_>>(),
            )
            .field("new_epoch", &self.new_key.as_ref().map(VaultKey::epoch))
            .field("ops", &self.batch.len())
            .finish_non_exhaustive()
    }
}

fn warning(report: RecoverabilityReport) -> Option<Warning> {
    report
        .single_point_of_failure
        .then_some(Warning::SinglePointOfFailure(report))
}

fn denied(action: &'static str, d: Denied) -> SharingError {
    match d {
        Denied::Role(role) => SharingError::PermissionDenied { action, role },
        Denied::NotAMember(member) => SharingError::NotAMember { member },
        Denied::AlreadyMember(member) => SharingError::AlreadyMember { member },
        Denied::LastOwner => SharingError::LastOwner,
        Denied::SelfRegrant => SharingError::SelfRegrant,
        Denied::BadIdentity => SharingError::BadIdentitySignature,
        Denied::Invalid(reason) => SharingError::InvalidChange { reason },
    }
}

/// Reads and verifies the whole membership log: `None` when it is empty.
pub(crate) fn load_log(store: &dyn ReadView) -> Result<Option<Membership>, SharingError> {
    let mut state: Option<Membership> = None;
    let mut count = 0u64;
    let mut cursor = None;
    loop {
        let page = store.scan(
            Table::MemberLog,
            &ScanRange::all(),
            cursor.as_ref(),
            strongroom_store::MAX_SCAN_LIMIT,
        )?;
        for row in &page.rows {
            let at = parse_log_key(Table::MemberLog, &row.key)?;
            if at != count {
                return Err(VerifyError::OutOfOrder {
                    expected: count,
                    found: at,
                }
                .into());
            }
            let entry = LogEntry::decode(&row.value)
                .map_err(|source| VerifyError::Malformed { seq: at, source })?;
            match &mut state {
                None => state = Some(Membership::genesis(&entry)?),
                Some(s) => s.apply(&entry)?,
            }
            count += 1;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let reported = store
        .log_head(Table::MemberLog)?
        .map_or(0, |h| h.saturating_add(1));
    if reported != count {
        return Err(VerifyError::HeadMismatch {
            reported,
            returned: count,
        }
        .into());
    }
    Ok(state)
}

/// The "box audit": every stored grant must be one the log implies, addressed to the
/// member's logged key, and every current member must hold the current epoch.
pub(crate) fn audit_grants(store: &dyn ReadView, state: &Membership) -> Result<(), SharingError> {
    let rows = strongroom_store::scan_all(store, Table::Wraps, &ScanRange::prefix(vec![b'g']))?;
    let current = state.epoch();
    let mut holders = BTreeSet::new();
    for row in rows {
        let grant = Grant::decode(&row.value).map_err(|source| VerifyError::MalformedWrap {
            what: "grant",
            source,
        })?;
        if row.key != grant_row_key(grant.epoch(), grant.member_id())
            || grant.vault_id() != state.vault_id()
        {
            return Err(VerifyError::GrantMisplaced {
                member: grant.member_id(),
                epoch: grant.epoch(),
            }
            .into());
        }
        let (member, epoch) = (grant.member_id(), grant.epoch());
        let (identity, first, last) = if let Some(m) = state.member(member) {
            if m.role() == Role::Scoped {
                return Err(VerifyError::UnexpectedGrant { member, epoch }.into());
            }
            (m.identity(), m.since_epoch(), current)
        } else if let Some(f) = state.former_members().get(&member)
            && f.role() != Role::Scoped
        {
            (f.identity(), f.first_epoch(), f.last_epoch())
        } else {
            return Err(VerifyError::UnexpectedGrant { member, epoch }.into());
        };
        if epoch < first || epoch > last {
            return Err(VerifyError::UnexpectedGrant { member, epoch }.into());
        }
        if !grant.is_addressed_to(identity) {
            return Err(VerifyError::GrantKeyMismatch { member, epoch }.into());
        }
        if state.hybrid_required() && !grant.kem().is_hybrid() {
            return Err(VerifyError::ClassicalGrant { member, epoch }.into());
        }
        if epoch == current {
            holders.insert(member);
        }
    }
    for (member, m) in state.members() {
        if m.role() != Role::Scoped && !holders.contains(member) {
            return Err(VerifyError::MissingGrant {
                member: *member,
                epoch: current,
            }
            .into());
        }
    }
    Ok(())
}

/// Loads, verifies and audits the vault's membership against `pins`.
pub(crate) fn load_verified(
    store: &dyn ReadView,
    vault: VaultId,
    pins: &Pins,
) -> Result<Membership, SharingError> {
    pins.check_vault(vault)?;
    let state = load_log(store)?.ok_or_else(|| SharingError::NoVault {
        vault: vault.to_string(),
    })?;
    if state.vault_id() != vault {
        return Err(VerifyError::VaultMismatch.into());
    }
    pins.check(&state)?;
    audit_grants(store, &state)?;
    audit_scope_grants(store, &state)?;
    Ok(state)
}

/// Opens `identity`'s grant of the current epoch and walks the key chain back to epoch 1,
/// checking every key against the key id the log names for its epoch.
pub(crate) fn open_keys(
    store: &dyn ReadView,
    state: &Membership,
    identity: &Identity,
) -> Result<BTreeMap<Epoch, VaultKey>, SharingError> {
    let vault = state.vault_id();
    let current = state.epoch();
    let member = identity.member_id();
    let row = store
        .get(Table::Wraps, &grant_row_key(current, member))?
        .ok_or(VerifyError::MissingGrant {
            member,
            epoch: current,
        })?;
    let grant = Grant::decode(&row.value).map_err(|source| VerifyError::MalformedWrap {
        what: "grant",
        source,
    })?;
    if grant.epoch() != current || grant.member_id() != member {
        return Err(VerifyError::GrantMisplaced {
            member: grant.member_id(),
            epoch: grant.epoch(),
        }
        .into());
    }
    let key = grant
        .open(vault, identity)
        .ok_or(VerifyError::GrantUnreadable { epoch: current })?;
    if !state.key_binding(current).is_some_and(|b| b.matches(&key)) {
        return Err(VerifyError::VaultKeyMismatch { epoch: current }.into());
    }
    let mut keys = BTreeMap::new();
    keys.insert(current, key);
    let mut epoch = current;
    // The chain stops at the retirement floor: older links were shredded on purpose.
    while epoch > state.retired_below() {
        let link_row = store
            .get(Table::Wraps, &chain_row_key(epoch))?
            .ok_or(VerifyError::MissingChainLink { epoch })?;
        let link =
            ChainLink::decode(&link_row.value).map_err(|source| VerifyError::MalformedWrap {
                what: "key-chain link",
                source,
            })?;
        let previous = link
            .open(vault, &keys[&epoch])
            .ok_or(VerifyError::ChainUnreadable { epoch })?;
        let prev_epoch = previous.epoch();
        if !state
            .key_binding(prev_epoch)
            .is_some_and(|b| b.matches(&previous))
        {
            return Err(VerifyError::VaultKeyMismatch { epoch: prev_epoch }.into());
        }
        keys.insert(prev_epoch, previous);
        epoch = prev_epoch;
    }
    Ok(keys)
}

/// Checks that `identity` is the current member the log lists under its id.
pub(crate) fn check_listed(state: &Membership, identity: &Identity) -> Result<(), SharingError> {
    let member = identity.member_id();
    match state.member(member) {
        Some(m) if m.identity() == identity.public() => Ok(()),
        Some(_) => Err(SharingError::IdentityNotLogged { member }),
        None => Err(SharingError::NotAMember { member }),
    }
}

/// Creates a vault in an empty store: the owner's sealed credentials, the genesis entry
/// with epoch 1's key id, and the owner's grant, in one atomic batch.
///
/// Returns the owner's session and a [`Warning::SinglePointOfFailure`]: a one-member
/// vault is lost if its only member loses every keyholder.
pub fn create(
    store: &dyn Store,
    vault: VaultId,
    owner: &Identity,
    keyholders: &[&dyn Keyholder],
) -> Result<(Session, Vec<Warning>), SharingError> {
    prepare_create(store, vault, owner, keyholders)?.commit(store)
}

/// A vault creation prepared by [`prepare_create`]: add the application's rows (made with
/// [`first_key`](Self::first_key)) to [`batch_mut`](Self::batch_mut), then
/// [`commit`](Self::commit), so the vault appears whole or not at all.
#[must_use = "a prepared creation does nothing until it is committed"]
pub struct PendingCreate {
    batch: Batch,
    session: Session,
    warnings: Vec<Warning>,
}

impl PendingCreate {
    /// The batch to commit: add the application's rows here.
    pub fn batch_mut(&mut self) -> &mut Batch {
        &mut self.batch
    }

    /// Epoch 1's vault key.
    pub fn first_key(&self) -> &VaultKey {
        self.session.current_key()
    }

    /// The owner's member id.
    pub fn member_id(&self) -> MemberId {
        self.session.member_id()
    }

    /// Makes the new vault require writer signatures on every record version from the
    /// start: the owner's [`EntryBody::RequireSignedWrites`] entry follows the genesis entry
    /// in the same batch.
    pub fn require_signed_writes(&mut self) -> Result<(), SharingError> {
        let entry = self.session.sign(EntryBody::RequireSignedWrites)?;
        self.batch
            .append(Table::MemberLog, entry.seq(), entry.encode());
        self.session.state.apply_own(&entry);
        self.session.pins.update(&self.session.state);
        Ok(())
    }

    /// What [`commit`](Self::commit) will warn about (the vault's recoverability with
    /// the keyholders it is created with).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Commits the creation: the owner's session and the warnings. A store that holds a
    /// vault already (a concurrent creation won) is [`SharingError::VaultExists`].
    pub fn commit(mut self, store: &dyn Store) -> Result<(Session, Vec<Warning>), SharingError> {
        self.batch.require_generation(self.session.generation);
        store.commit(&self.batch).map_err(|e| {
            if e.is_conflict() {
                SharingError::VaultExists
            } else {
                e.into()
            }
        })?;
        Ok((self.session, self.warnings))
    }
}

impl fmt::Debug for PendingCreate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCreate")
            .field("session", &self.session)
            .field("ops", &self.batch.len())
            .finish_non_exhaustive()
    }
}

/// Prepares [`create`]: the genesis entry, the owner's grant, sealed credentials and
/// keyholder records, in a batch the application completes before committing.
pub fn prepare_create(
    store: &dyn ReadView,
    vault: VaultId,
    owner: &Identity,
    keyholders: &[&dyn Keyholder],
) -> Result<PendingCreate, SharingError> {
    let generation = store.generation()?;
    if store.log_head(Table::MemberLog)?.is_some() {
        return Err(SharingError::VaultExists);
    }
    owner.public().verify()?;
    let key = VaultKey::generate(Epoch::FIRST)?;
    let genesis = LogEntry::sign(
        0,
        [0; 32],
        vault,
        owner,
        EntryBody::Genesis {
            owner: owner.public().clone(),
            key: KeyBinding::of(&key),
        },
    );
    let state = Membership::genesis(&genesis)?;
    let member = owner.member_id();
    let member_key = Key256::generate()?;
    let sealed = owner.seal(vault, &member_key)?;
    let grant = Grant::seal(vault, &key, owner.public())?;

    let mut batch = Batch::with_capacity(3 + keyholders.len());
    batch
        .append(Table::MemberLog, 0, genesis.encode())
        .put(
            Table::Wraps,
            grant_row_key(Epoch::FIRST, member),
            grant.encode(),
            Expect::Any,
        )
        .put(
            Table::Identities,
            identity_row_key(member),
            sealed.encode(),
            Expect::Absent,
        );
    let infos = keyholders::put_new(&mut batch, vault, member, &member_key, keyholders)?;
    let report = report_with(state.members().values(), |_| {
        Ok(infos.iter().map(|i| i.kind).collect())
    })?;
    let mut pins = Pins::new();
    pins.update(&state);
    let mut keys = BTreeMap::new();
    keys.insert(Epoch::FIRST, key);
    let session = Session {
        vault,
        identity: owner.clone_secret(),
        member_key,
        state,
        keys,
        scope_keys: ScopeKeys::new(),
        pins,
        generation,
    };
    Ok(PendingCreate {
        batch,
        session,
        warnings: warning(report).into_iter().collect(),
    })
}

/// Unlocks a member: unwraps the member key with `keyholder`, opens the sealed identity,
/// verifies the membership log against `pins` and audits the grants, opens the member's
/// grant of the current epoch and every earlier epoch through the key chain.
///
/// `member = None` picks the only member with credentials in this store. Keyholder
/// failures come back as [`SharingError::Keyholder`] unchanged. `pins` are updated on
/// success (empty pins: trust on first use); persist them.
pub fn unlock(
    store: &dyn Store,
    vault: VaultId,
    member: Option<MemberId>,
    keyholder: &dyn Keyholder,
    pins: &mut Pins,
) -> Result<Session, SharingError> {
    let (opened, (keys, scope_keys)) =
        open_member(store, vault, member, keyholder, pins, |state, identity| {
            check_kind(state, identity.member_id(), false)?;
            let keys = open_keys(store, state, identity)?;
            let scope_keys = open_scope_keys_full(store, state, &keys)?;
            Ok((keys, scope_keys))
        })?;
    Ok(Session {
        vault,
        identity: opened.identity,
        member_key: opened.member_key,
        state: opened.state,
        keys,
        scope_keys,
        pins: pins.clone(),
        generation: opened.generation,
    })
}

/// Refuses a scoped member where a full member is needed (`scoped = false`), or the
/// reverse.
pub(crate) fn check_kind(
    state: &Membership,
    member: MemberId,
    scoped: bool,
) -> Result<(), SharingError> {
    let is_scoped = state
        .member(member)
        .is_some_and(|m| m.role() == Role::Scoped);
    if is_scoped != scoped {
        return Err(SharingError::WrongKindOfMember {
            member,
            scoped: is_scoped,
        });
    }
    Ok(())
}

/// What [`open_member`] opened.
pub(crate) struct OpenedMember {
    pub(crate) identity: Identity,
    pub(crate) member_key: Key256,
    pub(crate) state: Membership,
    pub(crate) generation: Generation,
}

/// The part of an unlock common to full and scoped members: the verified log, the
/// member's credentials opened with `keyholder`, `open_keys` run on them, the use of the
/// keyholder recorded and `pins` updated.
pub(crate) fn open_member<K>(
    store: &dyn Store,
    vault: VaultId,
    member: Option<MemberId>,
    keyholder: &dyn Keyholder,
    pins: &mut Pins,
    open_keys: impl FnOnce(&Membership, &Identity) -> Result<K, SharingError>,
) -> Result<(OpenedMember, K), SharingError> {
    // Read before anything else: a restore after this read makes every batch of the
    // session fail rather than apply to content it did not read.
    let generation = store.generation()?;
    let state = load_verified(store, vault, pins)?;
    let (member, sealed) = find_credentials(store, vault, member)?;

    let records = keyholders::load(store, member)?;
    if records.is_empty() {
        return Err(SharingError::NoCredentials {
            member: Some(member),
        });
    }
    let stanzas: Vec<_> = records.iter().map(|l| l.record.stanza.clone()).collect();
    let subject = keyholders::subject(vault, member);
    let (member_key, used) = unwrap_any(keyholder, &keyholders::wrap_context(&subject), &stanzas)?;
    let identity = Identity::open(&sealed, &member_key).map_err(|e| match e {
        SharingError::Crypto(CryptoError::Decrypt) | SharingError::Decode(_) => {
            SharingError::Verify(VerifyError::CredentialsUnreadable { member })
        }
        other => other,
    })?;
    match check_listed(&state, &identity) {
        Err(SharingError::IdentityNotLogged { member }) => {
            return Err(VerifyError::CredentialsMismatch { member }.into());
        }
        other => other?,
    }
    let keys = open_keys(&state, &identity)?;

    // Record the use. The time is a hint, not worth failing an unlock that has verified
    // every key: a concurrent touch of the same record is not an error, nor a store that
    // refuses writes (a read-only replica cannot record it), nor one whose write lock
    // other writers held past its timeout.
    let loaded = &records[used];
    let touched = KeyholderRecord {
        last_used_at: keyholders::now(),
        ..loaded.record.clone()
    };
    let mut batch = Batch::new();
    batch.put(
        Table::Keyholders,
        keyholders::row_key(member, touched.stanza.id),
        touched.encode(),
        Expect::Version(loaded.version),
    );
    batch.require_generation(generation);
    match store.commit(&batch) {
        Ok(_)
        | Err(
            StoreError::Conflict { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::Unavailable { .. },
        ) => {}
        Err(e) => return Err(e.into()),
    }

    pins.update(&state);
    Ok((
        OpenedMember {
            identity,
            member_key,
            state,
            generation,
        },
        keys,
    ))
}

fn find_credentials(
    store: &dyn ReadView,
    vault: VaultId,
    member: Option<MemberId>,
) -> Result<(MemberId, SealedIdentity), SharingError> {
    let (member, bytes) = if let Some(m) = member {
        let row = store
            .get(Table::Identities, &identity_row_key(m))?
            .ok_or(SharingError::NoCredentials { member: Some(m) })?;
        (m, row.value)
    } else {
        let page = store.scan(Table::Identities, &ScanRange::all(), None, 2)?;
        match page.rows.as_slice() {
            [] => return Err(SharingError::NoCredentials { member: None }),
            [row] => {
                let m = MemberId::from_slice(&row.key).map_err(|_| {
                    VerifyError::CredentialsMismatch {
                        member: MemberId::from_bytes([0; 16]),
                    }
                })?;
                (m, row.value.clone())
            }
            _ => {
                let count =
                    strongroom_store::scan_all(store, Table::Identities, &ScanRange::all())?.len();
                return Err(SharingError::AmbiguousMember { count });
            }
        }
    };
    let sealed = SealedIdentity::decode(&bytes)
        .map_err(|_| VerifyError::CredentialsUnreadable { member })?;
    if sealed.member_id() != member || sealed.vault_id() != vault {
        return Err(VerifyError::CredentialsMismatch { member }.into());
    }
    Ok((member, sealed))
}

/// A newly added (or re-granted) member stores their own sealed credentials in the vault,
/// wrapped by `keyholders`, so they later [`unlock`] with a keyholder alone.
///
/// Allowed only when the verified log lists `identity` (this member id with this exact
/// public identity) as a current member and their grant opens. `pins` are updated.
pub fn join(
    store: &dyn Store,
    vault: VaultId,
    identity: &Identity,
    keyholders: &[&dyn Keyholder],
    pins: &mut Pins,
) -> Result<Session, SharingError> {
    let generation = store.generation()?;
    let state = load_verified(store, vault, pins)?;
    check_listed(&state, identity)?;
    check_kind(&state, identity.member_id(), false)?;
    let keys = open_keys(store, &state, identity)?;
    let scope_keys = open_scope_keys_full(store, &state, &keys)?;
    let member_key = store_credentials(store, vault, identity, keyholders, generation)?;
    pins.update(&state);
    Ok(Session {
        vault,
        identity: identity.clone_secret(),
        member_key,
        state,
        keys,
        scope_keys,
        pins: pins.clone(),
        generation,
    })
}

/// Seals `identity` under a new member key wrapped by `keyholders` and stores it, for a
/// member joining ([`join`], [`join_scoped`](crate::join_scoped)).
pub(crate) fn store_credentials(
    store: &dyn Store,
    vault: VaultId,
    identity: &Identity,
    keyholders: &[&dyn Keyholder],
    generation: Generation,
) -> Result<Key256, SharingError> {
    let member = identity.member_id();
    if store
        .get(Table::Identities, &identity_row_key(member))?
        .is_some()
    {
        return Err(SharingError::AlreadyJoined { member });
    }
    let member_key = Key256::generate()?;
    let sealed = identity.seal(vault, &member_key)?;
    let mut batch = Batch::with_capacity(1 + keyholders.len());
    batch.put(
        Table::Identities,
        identity_row_key(member),
        sealed.encode(),
        Expect::Absent,
    );
    keyholders::put_new(&mut batch, vault, member, &member_key, keyholders)?;
    batch.require_generation(generation);
    store.commit(&batch)?;
    Ok(member_key)
}

/// An unlocked member of a vault: their identity, the verified membership, every epoch's
/// vault key, and the pins to persist.
///
/// Operations take the store as an argument (the session holds no reference to it).
/// Each change is one atomic batch: the signed log entry appended at the head together
/// with the wraps it implies. If another member changed the vault first, the commit fails
/// with a conflict ([`SharingError::is_conflict`]): [`Session::refresh`] and retry.
/// After every successful call, persist [`Session::pins`].
pub struct Session {
    vault: VaultId,
    identity: Identity,
    member_key: Key256,
    state: Membership,
    keys: BTreeMap<Epoch, VaultKey>,
    scope_keys: ScopeKeys,
    pins: Pins,
    generation: Generation,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("vault", &self.vault)
            .field("identity", &self.identity)
            .field("epoch", &self.state.epoch())
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The vault.
    pub fn vault_id(&self) -> VaultId {
        self.vault
    }

    /// The store generation this session was loaded in: every batch it commits requires
    /// it, and [`Session::refresh`] refuses a store that was replaced since
    /// ([`StoreError::GenerationChanged`]).
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The member's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.identity.member_id()
    }

    /// The member's role (as of the last verified load or own change).
    pub fn role(&self) -> Option<Role> {
        self.state.member(self.member_id()).map(crate::Member::role)
    }

    /// The current epoch.
    pub fn epoch(&self) -> Epoch {
        self.state.epoch()
    }

    /// Every epoch's vault key, each checked against the key id the log names for it.
    pub fn keys(&self) -> &BTreeMap<Epoch, VaultKey> {
        &self.keys
    }

    /// The vault key of `epoch`.
    pub fn key(&self, epoch: Epoch) -> Option<&VaultKey> {
        self.keys.get(&epoch)
    }

    /// The current epoch's vault key (to seal new records under).
    pub fn current_key(&self) -> &VaultKey {
        self.keys
            .get(&self.state.epoch())
            .unwrap_or_else(|| unreachable!("a session always holds its current epoch key"))
    }

    /// Every scope key of every scope (full members read them all), each checked against
    /// the key the log binds for its scope epoch.
    pub fn scope_keys(&self) -> &ScopeKeys {
        &self.scope_keys
    }

    /// The key of `scope` at scope epoch `epoch`.
    pub fn scope_key(&self, scope: ScopeId, epoch: Epoch) -> Option<&VaultKey> {
        scope_key_in(&self.scope_keys, scope, epoch)
    }

    /// The current key of `scope` (to seal its new records under).
    pub fn current_scope_key(&self, scope: ScopeId) -> Option<&VaultKey> {
        current_scope_key_in(&self.scope_keys, &self.state, scope)
    }

    /// The verified membership: members, roles, keys, fingerprints, key ids.
    pub fn membership(&self) -> &Membership {
        &self.state
    }

    /// The pins after the last verified load or own change: persist them.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    /// Re-reads and verifies the log and grants after others changed them, against the
    /// session's pins; reopens the keys (new epochs included).
    ///
    /// Fails with [`SharingError::NotAMember`] if this member was removed or replaced
    /// (the session keeps its old state and keys).
    pub fn refresh(&mut self, store: &dyn ReadView) -> Result<(), SharingError> {
        let found = store.generation()?;
        if found != self.generation {
            return Err(StoreError::GenerationChanged {
                expected: self.generation,
                found,
            }
            .into());
        }
        let state = load_verified(store, self.vault, &self.pins)?;
        check_listed(&state, &self.identity)?;
        check_kind(&state, self.member_id(), false)?;
        let keys = open_keys(store, &state, &self.identity)?;
        let scope_keys = open_scope_keys_full(store, &state, &keys)?;
        self.pins.update(&state);
        self.state = state;
        self.keys = keys;
        self.scope_keys = scope_keys;
        Ok(())
    }

    /// Signs the next log entry and checks it against the current state.
    fn sign(&self, body: EntryBody) -> Result<LogEntry, SharingError> {
        let mut entries = self.sign_all(vec![body])?;
        Ok(entries.remove(0))
    }

    /// Signs consecutive log entries, each checked against the state the ones before it
    /// leave.
    fn sign_all(&self, bodies: Vec<EntryBody>) -> Result<Vec<LogEntry>, SharingError> {
        let mut state = self.state.clone();
        let mut entries = Vec::with_capacity(bodies.len());
        for body in bodies {
            let action = body.action();
            state
                .check(self.member_id(), &body)
                .map_err(|d| denied(action, d))?;
            let entry = LogEntry::sign(state.len(), state.head(), self.vault, &self.identity, body);
            state.apply_own(&entry);
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Commits `change` (with whatever rows the caller added to its batch) and moves the
    /// session to the new state: the log entry applied, the pins advanced, a new epoch's
    /// key kept. Nothing changes in the session when the commit fails; after a conflict
    /// ([`SharingError::is_conflict`]), [`refresh`](Self::refresh) and prepare again.
    pub fn commit<T>(
        &mut self,
        store: &dyn Store,
        change: PendingChange<T>,
    ) -> Result<T, SharingError> {
        let PendingChange {
            batch,
            entries,
            new_key,
            new_scope_keys,
            retire_below,
            new_keyholder,
            new_identity,
            outcome,
        } = change;
        self.commit_batch(store, batch, new_keyholder)?;
        if let Some(identity) = new_identity {
            self.identity = identity;
        }
        for entry in &entries {
            // `sign_all` checked the entries against this state and signed them here.
            self.state.apply_own(entry);
        }
        if !entries.is_empty() {
            self.pins.update(&self.state);
        }
        if let Some(k) = new_key {
            self.keys.insert(k.epoch(), k);
        }
        for (scope, k) in new_scope_keys {
            self.scope_keys
                .entry(scope)
                .or_default()
                .insert(k.epoch(), k);
        }
        if let Some(below) = retire_below {
            self.keys.retain(|e, _| *e >= below);
        }
        Ok(outcome)
    }

    /// Commits the rows of `change` in this session's store generation (the store part of
    /// [`Session::commit`]; enough on its own for a change without a log entry).
    fn commit_rows<T>(
        &self,
        store: &dyn Store,
        change: PendingChange<T>,
    ) -> Result<T, SharingError> {
        self.commit_batch(store, change.batch, change.new_keyholder)?;
        Ok(change.outcome)
    }

    fn commit_batch(
        &self,
        store: &dyn Store,
        mut batch: Batch,
        new_keyholder: Option<[u8; 8]>,
    ) -> Result<(), SharingError> {
        batch.require_generation(self.generation);
        store.commit(&batch).map_err(|e| match (e, new_keyholder) {
            (
                StoreError::Conflict {
                    table: Table::Keyholders,
                    ..
                },
                Some(id),
            ) => SharingError::KeyholderExists {
                member: self.member_id(),
                id: keyholders::hex_id(id),
            },
            (e, _) => e.into(),
        })?;
        Ok(())
    }

    fn next_epoch(&self) -> Result<Epoch, SharingError> {
        self.state
            .epoch()
            .get()
            .checked_add(1)
            .map(Epoch)
            .ok_or(SharingError::Limit { what: "epochs" })
    }

    /// Adds a member with `role`, granting them the current epoch (and through the chain,
    /// every earlier one). `confirmed` must have been made for `public`.
    pub fn add_member(
        &mut self,
        store: &dyn Store,
        public: &PublicIdentity,
        role: Role,
        confirmed: FingerprintConfirmed,
    ) -> Result<(), SharingError> {
        let change = self.prepare_add_member(public, role, confirmed)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::add_member`]: the signed entry and the new member's grant.
    pub fn prepare_add_member(
        &self,
        public: &PublicIdentity,
        role: Role,
        confirmed: FingerprintConfirmed,
    ) -> Result<PendingChange<()>, SharingError> {
        confirmed.check(public)?;
        let entry = self.sign(EntryBody::Add {
            identity: public.clone(),
            role,
        })?;
        let mut change = PendingChange::logged(entry, ());
        if role == Role::Scoped {
            // A scoped member holds no vault key; its scopes come with each scope grant.
            return Ok(change);
        }
        let grant = Grant::seal(self.vault, self.current_key(), public)?;
        change.batch.put(
            Table::Wraps,
            grant_row_key(grant.epoch(), public.member_id()),
            grant.encode(),
            Expect::Any,
        );
        Ok(change)
    }

    /// Changes a member's role.
    pub fn set_role(
        &mut self,
        store: &dyn Store,
        member: MemberId,
        role: Role,
    ) -> Result<(), SharingError> {
        let change = self.prepare_set_role(member, role)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::set_role`]: the signed entry.
    pub fn prepare_set_role(
        &self,
        member: MemberId,
        role: Role,
    ) -> Result<PendingChange<()>, SharingError> {
        let entry = self.sign(EntryBody::RoleChange { member, role })?;
        Ok(PendingChange::logged(entry, ()))
    }

    /// New epoch key wrapping the previous one, granted to every current member, logged
    /// with its key id; all in one batch. Cost: one signature, one append and one HPKE
    /// wrap per member. Returns the new epoch: the application then rewraps its records.
    pub fn rekey(&mut self, store: &dyn Store) -> Result<Epoch, SharingError> {
        let change = self.prepare_rekey()?;
        self.commit(store, change)
    }

    /// Prepares [`Session::rekey`]: the new epoch's key
    /// ([`PendingChange::new_key`], for the application's own rows made with it), its
    /// chain link and grants, and the signed entry.
    pub fn prepare_rekey(&self) -> Result<PendingChange<Epoch>, SharingError> {
        let epoch = self.next_epoch()?;
        let key = VaultKey::generate(epoch)?;
        let entry = self.sign(EntryBody::Rekey {
            epoch,
            key: KeyBinding::of(&key),
        })?;
        self.new_epoch(vec![entry], None, key, Vec::new(), epoch)
    }

    /// Retires every epoch below `below` (a completed rotation rewrapped every record to
    /// `below` or later): a signed [`EntryBody::Retire`] entry, and in the same batch the
    /// key-chain links and grants of the retired epochs are deleted, so their keys can no
    /// longer be derived from what is stored. Keys a removed member copied are not
    /// affected: that is what the rotation was for. Retiring at or below the current
    /// floor does nothing.
    pub fn retire(&mut self, store: &dyn Store, below: Epoch) -> Result<(), SharingError> {
        let change = self.prepare_retire(store, below)?;
        if change.batch.is_empty() {
            return Ok(());
        }
        self.commit(store, change)
    }

    /// Prepares [`Session::retire`]. When the epochs are retired already, the change is
    /// empty (no entry, no rows): committing it commits only the caller's rows.
    pub fn prepare_retire(
        &self,
        store: &dyn ReadView,
        below: Epoch,
    ) -> Result<PendingChange<()>, SharingError> {
        if below <= self.state.retired_below() {
            return Ok(PendingChange::rows(Batch::new(), ()));
        }
        let floor = self.state.retired_below();
        let entry = self.sign(EntryBody::Retire { below })?;
        let mut change = PendingChange::logged(entry, ());
        change.retire_below = Some(below);
        // Link `c‖e` holds VK[e-1] under VK[e]: links up to `below` reveal retired keys.
        for e in floor.get().saturating_add(1)..=below.get() {
            change
                .batch
                .delete(Table::Wraps, chain_row_key(Epoch(e)), Expect::Any);
        }
        for row in strongroom_store::scan_all(store, Table::Wraps, &ScanRange::prefix(vec![b'g']))?
        {
            if let Ok(grant) = Grant::decode(&row.value)
                && grant.epoch() < below
            {
                change
                    .batch
                    .delete(Table::Wraps, row.key, Expect::Version(row.version));
            }
        }
        Ok(change)
    }

    /// A change that starts epoch `key.epoch()`: the signed `entries`, the chain link to
    /// the current key, a grant to every full member but `removed`, and each scope's
    /// current key linked under the new key (or, for the scopes in `new_scope_keys`, that
    /// new scope key with its chain link and scope grants).
    fn new_epoch<T>(
        &self,
        entries: Vec<LogEntry>,
        removed: Option<MemberId>,
        key: VaultKey,
        new_scope_keys: Vec<(ScopeId, VaultKey)>,
        outcome: T,
    ) -> Result<PendingChange<T>, SharingError> {
        let link = ChainLink::seal(self.vault, &key, self.current_key())?;
        let mut change = PendingChange::logged_all(entries, outcome);
        change.batch.put(
            Table::Wraps,
            chain_row_key(key.epoch()),
            link.encode(),
            Expect::Any,
        );
        for m in self
            .state
            .members()
            .values()
            .filter(|m| Some(m.id()) != removed && m.role() != Role::Scoped)
        {
            let grant = Grant::seal(self.vault, &key, m.identity())?;
            change.batch.put(
                Table::Wraps,
                grant_row_key(key.epoch(), m.id()),
                grant.encode(),
                Expect::Any,
            );
        }
        for scope in self.state.scopes().keys() {
            if let Some((_, new)) = new_scope_keys.iter().find(|(s, _)| s == scope) {
                self.scope_epoch_rows(&mut change.batch, *scope, new, &key, None)?;
            } else {
                let current = self.scope_key_now(*scope)?;
                let link = ScopeLink::under_vault_key(self.vault, *scope, current, &key)?;
                change.batch.put(
                    Table::Wraps,
                    scope_link_row_key(*scope),
                    link.encode(),
                    Expect::Any,
                );
            }
        }
        change.new_key = Some(key);
        change.new_scope_keys = new_scope_keys;
        Ok(change)
    }

    /// This session's current key of `scope`.
    fn scope_key_now(&self, scope: ScopeId) -> Result<&VaultKey, SharingError> {
        self.current_scope_key(scope)
            .ok_or(SharingError::InvalidChange {
                reason: "no such scope",
            })
    }

    /// The rows of a new scope epoch with key `new`: the chain link from it to the current
    /// scope key, the link under `vault_key` for full members, and a scope grant to every
    /// scoped member of the scope but `except`.
    fn scope_epoch_rows(
        &self,
        batch: &mut Batch,
        scope: ScopeId,
        new: &VaultKey,
        vault_key: &VaultKey,
        except: Option<MemberId>,
    ) -> Result<(), SharingError> {
        let current = self.scope_key_now(scope)?;
        let chain = ScopeLink::chain(self.vault, scope, new, current)?;
        batch.put(
            Table::Wraps,
            scope_chain_row_key(scope, new.epoch()),
            chain.encode(),
            Expect::Absent,
        );
        let link = ScopeLink::under_vault_key(self.vault, scope, new, vault_key)?;
        batch.put(
            Table::Wraps,
            scope_link_row_key(scope),
            link.encode(),
            Expect::Any,
        );
        for (member, _) in self.state.scope_members(scope) {
            if Some(member) == except {
                continue;
            }
            let identity = self
                .state
                .member(member)
                .ok_or(SharingError::NotAMember { member })?
                .identity();
            let grant = ScopeGrant::seal(self.vault, scope, new, identity)?;
            batch.put(
                Table::Wraps,
                scope_grant_row_key(scope, new.epoch(), member),
                grant.encode(),
                Expect::Any,
            );
        }
        Ok(())
    }

    /// A new key for every scope (after a full member's removal): the entries and keys.
    fn rekey_every_scope(&self) -> Result<(Vec<EntryBody>, NewScopeKeys), SharingError> {
        let mut bodies = Vec::new();
        let mut keys = Vec::new();
        for scope in self.state.scopes().values() {
            let epoch = next_scope_epoch(scope.epoch())?;
            let key = VaultKey::generate(epoch)?;
            bodies.push(EntryBody::ScopeRekey {
                scope: scope.id(),
                epoch,
                key: KeyBinding::of(&key),
            });
            keys.push((scope.id(), key));
        }
        Ok((bodies, keys))
    }

    /// Removes a member: a new epoch wrapped to the remaining members only, logged with
    /// its key id, and the removed member's stored credentials deleted; no record is
    /// touched, so the cost does not depend on the number of records.
    ///
    /// Returns the epochs the removed member could read (for the exposure report of
    /// records) and a warning when a single member remains.
    pub fn remove_member(
        &mut self,
        store: &dyn Store,
        member: MemberId,
    ) -> Result<Removal, SharingError> {
        let change = self.prepare_remove_member(store, member)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::remove_member`]: the new epoch's key
    /// ([`PendingChange::new_key`]), its chain link and grants to the remaining members,
    /// the deletion of the removed member's credentials, and the signed entry.
    pub fn prepare_remove_member(
        &self,
        store: &dyn ReadView,
        member: MemberId,
    ) -> Result<PendingChange<Removal>, SharingError> {
        check_kind(&self.state, member, false)?;
        let old_epoch = self.state.epoch();
        let epoch = self.next_epoch()?;
        let key = VaultKey::generate(epoch)?;
        // The removed member read every scope key through the vault key: every scope
        // gets a new one in the same batch, linked under the new vault key only.
        let (mut bodies, scope_keys) = self.rekey_every_scope()?;
        bodies.insert(
            0,
            EntryBody::Remove {
                member,
                epoch,
                key: KeyBinding::of(&key),
            },
        );
        let entries = self.sign_all(bodies)?;
        let remaining = self.state.members().values().filter(|m| m.id() != member);
        let warnings = warning(report(store, remaining)?).into_iter().collect();
        let removal = Removal {
            member,
            new_epoch: epoch,
            readable_epochs: Epoch::FIRST..=old_epoch,
            warnings,
        };
        let mut change = self.new_epoch(entries, Some(member), key, scope_keys, removal)?;
        delete_credentials(store, &mut change.batch, member)?;
        Ok(change)
    }

    /// Teammate restore: `old` lost every keyholder (passphrase and recovery key) and made
    /// a new identity; this replaces `old` by `new` with the same role, granting `new` the
    /// current epoch. `old`'s key is no longer accepted anywhere (its signatures are
    /// refused, its grant and credentials are deleted). `new` then calls [`join`].
    ///
    /// There is no escrow: only a co-member (owner, or admin for a non-owner) can do this.
    pub fn regrant(
        &mut self,
        store: &dyn Store,
        old: MemberId,
        new: &PublicIdentity,
        confirmed: FingerprintConfirmed,
    ) -> Result<(), SharingError> {
        let change = self.prepare_regrant(store, old, new, confirmed)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::regrant`]: the signed entry, the new identity's grant, and the
    /// deletion of the old identity's grant and credentials.
    pub fn prepare_regrant(
        &self,
        store: &dyn ReadView,
        old: MemberId,
        new: &PublicIdentity,
        confirmed: FingerprintConfirmed,
    ) -> Result<PendingChange<()>, SharingError> {
        confirmed.check(new)?;
        let entry = self.sign(EntryBody::Regrant {
            member: old,
            identity: new.clone(),
        })?;
        let mut change = PendingChange::logged(entry, ());
        if self
            .state
            .member(old)
            .is_some_and(|m| m.role() == Role::Scoped)
        {
            for (scope, _) in self.state.scopes_of(old) {
                let key = self.scope_key_now(scope)?;
                let grant = ScopeGrant::seal(self.vault, scope, key, new)?;
                change.batch.put(
                    Table::Wraps,
                    scope_grant_row_key(scope, key.epoch(), new.member_id()),
                    grant.encode(),
                    Expect::Any,
                );
                delete_scope_grants(store, &mut change.batch, scope, old)?;
            }
            delete_credentials(store, &mut change.batch, old)?;
            return Ok(change);
        }
        let grant = Grant::seal(self.vault, self.current_key(), new)?;
        change
            .batch
            .put(
                Table::Wraps,
                grant_row_key(grant.epoch(), new.member_id()),
                grant.encode(),
                Expect::Any,
            )
            .delete(
                Table::Wraps,
                grant_row_key(self.state.epoch(), old),
                Expect::Any,
            );
        delete_credentials(store, &mut change.batch, old)?;
        Ok(change)
    }

    /// Creates a scope: the namespaces `prefix` covers get keys of their own
    /// ([`EntryBody::ScopeCreate`]), starting with a new random scope key linked under the
    /// current vault key (full members read it). Owner or admin. Returns the scope id.
    pub fn create_scope(
        &mut self,
        store: &dyn Store,
        prefix: &str,
    ) -> Result<ScopeId, SharingError> {
        let change = self.prepare_create_scope(prefix)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::create_scope`].
    pub fn prepare_create_scope(
        &self,
        prefix: &str,
    ) -> Result<PendingChange<ScopeId>, SharingError> {
        let scope = ScopeId::generate()?;
        let key = VaultKey::generate(Epoch::FIRST)?;
        let entry = self.sign(EntryBody::ScopeCreate {
            scope,
            prefix: prefix.to_owned(),
            key: KeyBinding::of(&key),
        })?;
        let link = ScopeLink::under_vault_key(self.vault, scope, &key, self.current_key())?;
        let mut change = PendingChange::logged(entry, scope);
        change.batch.put(
            Table::Wraps,
            scope_link_row_key(scope),
            link.encode(),
            Expect::Absent,
        );
        change.new_scope_keys.push((scope, key));
        Ok(change)
    }

    /// Gives the scoped member `member` the scope with `role` ([`Role::Member`] or
    /// [`Role::ReadOnly`]), or changes its role there. A first grant seals the current scope
    /// key to the member (older scope keys follow through the scope's chain). Owner or
    /// admin.
    pub fn grant_scope(
        &mut self,
        store: &dyn Store,
        member: MemberId,
        scope: ScopeId,
        role: Role,
    ) -> Result<(), SharingError> {
        let change = self.prepare_grant_scope(member, scope, role)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::grant_scope`].
    pub fn prepare_grant_scope(
        &self,
        member: MemberId,
        scope: ScopeId,
        role: Role,
    ) -> Result<PendingChange<()>, SharingError> {
        let first = !self
            .state
            .scopes_of(member)
            .iter()
            .any(|(s, _)| *s == scope);
        let entry = self.sign(EntryBody::ScopeGrant {
            member,
            scope,
            role,
        })?;
        let mut change = PendingChange::logged(entry, ());
        if first {
            let key = self.scope_key_now(scope)?;
            let identity = self
                .state
                .member(member)
                .ok_or(SharingError::NotAMember { member })?
                .identity();
            let grant = ScopeGrant::seal(self.vault, scope, key, identity)?;
            change.batch.put(
                Table::Wraps,
                scope_grant_row_key(scope, key.epoch(), member),
                grant.encode(),
                Expect::Any,
            );
        }
        Ok(change)
    }

    /// Takes `scope` away from the scoped member `member`: a new scope key granted to the
    /// scope's other scoped members and linked for full members, and the member's scope
    /// grants deleted. The vault key does not change: the member never had it. Returns the
    /// new scope epoch; the application then rewraps the scope's records.
    pub fn revoke_scope(
        &mut self,
        store: &dyn Store,
        member: MemberId,
        scope: ScopeId,
    ) -> Result<Epoch, SharingError> {
        let change = self.prepare_revoke_scope(store, member, scope)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::revoke_scope`].
    pub fn prepare_revoke_scope(
        &self,
        store: &dyn ReadView,
        member: MemberId,
        scope: ScopeId,
    ) -> Result<PendingChange<Epoch>, SharingError> {
        let epoch = next_scope_epoch(self.scope_epoch(scope)?)?;
        let key = VaultKey::generate(epoch)?;
        let entry = self.sign(EntryBody::ScopeRevoke {
            member,
            scope,
            epoch,
            key: KeyBinding::of(&key),
        })?;
        let mut change = PendingChange::logged(entry, epoch);
        self.scope_epoch_rows(
            &mut change.batch,
            scope,
            &key,
            self.current_key(),
            Some(member),
        )?;
        delete_scope_grants(store, &mut change.batch, scope, member)?;
        change.new_scope_keys.push((scope, key));
        Ok(change)
    }

    /// A new key for `scope` (a scope key rotation), granted and linked like the current
    /// one. Owner, admin or member. Returns the new scope epoch.
    pub fn rekey_scope(
        &mut self,
        store: &dyn Store,
        scope: ScopeId,
    ) -> Result<Epoch, SharingError> {
        let change = self.prepare_rekey_scope(scope)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::rekey_scope`].
    pub fn prepare_rekey_scope(
        &self,
        scope: ScopeId,
    ) -> Result<PendingChange<Epoch>, SharingError> {
        let epoch = next_scope_epoch(self.scope_epoch(scope)?)?;
        let key = VaultKey::generate(epoch)?;
        let entry = self.sign(EntryBody::ScopeRekey {
            scope,
            epoch,
            key: KeyBinding::of(&key),
        })?;
        let mut change = PendingChange::logged(entry, epoch);
        self.scope_epoch_rows(&mut change.batch, scope, &key, self.current_key(), None)?;
        change.new_scope_keys.push((scope, key));
        Ok(change)
    }

    /// Removes the scoped member `member`: each of its scopes revoked (a new scope key
    /// each), then a [`EntryBody::RemoveScoped`] entry, all in one batch, with its
    /// credentials deleted. The vault key does not change. Owner or admin.
    pub fn remove_scoped_member(
        &mut self,
        store: &dyn Store,
        member: MemberId,
    ) -> Result<ScopedRemoval, SharingError> {
        let change = self.prepare_remove_scoped_member(store, member)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::remove_scoped_member`].
    pub fn prepare_remove_scoped_member(
        &self,
        store: &dyn ReadView,
        member: MemberId,
    ) -> Result<PendingChange<ScopedRemoval>, SharingError> {
        if self.state.member(member).is_none() {
            return Err(SharingError::NotAMember { member });
        }
        check_kind(&self.state, member, true)?;
        let mut bodies = Vec::new();
        let mut keys = Vec::new();
        for (scope, _) in self.state.scopes_of(member) {
            let epoch = next_scope_epoch(self.scope_epoch(scope)?)?;
            let key = VaultKey::generate(epoch)?;
            bodies.push(EntryBody::ScopeRevoke {
                member,
                scope,
                epoch,
                key: KeyBinding::of(&key),
            });
            keys.push((scope, key));
        }
        bodies.push(EntryBody::RemoveScoped { member });
        let entries = self.sign_all(bodies)?;
        let removal = ScopedRemoval {
            member,
            scopes: keys.iter().map(|(s, k)| (*s, k.epoch())).collect(),
        };
        let mut change = PendingChange::logged_all(entries, removal);
        for (scope, key) in &keys {
            self.scope_epoch_rows(
                &mut change.batch,
                *scope,
                key,
                self.current_key(),
                Some(member),
            )?;
            delete_scope_grants(store, &mut change.batch, *scope, member)?;
        }
        delete_credentials(store, &mut change.batch, member)?;
        change.new_scope_keys = keys;
        Ok(change)
    }

    fn scope_epoch(&self, scope: ScopeId) -> Result<Epoch, SharingError> {
        self.state
            .scope(scope)
            .map(crate::Scope::epoch)
            .ok_or(SharingError::InvalidChange {
                reason: "no such scope",
            })
    }

    /// Upgrades this member's classical (X25519) identity to a hybrid (X-Wing) one: a new
    /// X-Wing key with the same member id, name and Ed25519 key, logged by an
    /// [`EntryBody::Upgrade`] entry this member signs. In the same batch the current epoch is
    /// granted to the new key (hybrid), every classical grant to this member is deleted, and
    /// the sealed credentials are replaced (the keyholders still unlock them: the member key
    /// is unchanged). From then on grants to this member are hybrid only.
    pub fn upgrade_identity(&mut self, store: &dyn Store) -> Result<(), SharingError> {
        let change = self.prepare_upgrade_identity(store)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::upgrade_identity`].
    pub fn prepare_upgrade_identity(
        &self,
        store: &dyn ReadView,
    ) -> Result<PendingChange<()>, SharingError> {
        let new = self.identity.upgraded_to_hybrid()?;
        let entry = self.sign(EntryBody::Upgrade {
            identity: new.public().clone(),
        })?;
        let member = self.member_id();
        let grant = Grant::seal(self.vault, self.current_key(), new.public())?;
        let sealed = new.seal(self.vault, &self.member_key)?;
        let mut change = PendingChange::logged(entry, ());
        for row in strongroom_store::scan_all(store, Table::Wraps, &ScanRange::prefix(vec![b'g']))?
        {
            if let Ok(old) = Grant::decode(&row.value)
                && old.member_id() == member
                && old.epoch() != self.state.epoch()
            {
                change
                    .batch
                    .delete(Table::Wraps, row.key, Expect::Version(row.version));
            }
        }
        change
            .batch
            .put(
                Table::Wraps,
                grant_row_key(grant.epoch(), member),
                grant.encode(),
                Expect::Any,
            )
            .put(
                Table::Identities,
                identity_row_key(member),
                sealed.encode(),
                Expect::Any,
            );
        change.new_identity = Some(new);
        Ok(change)
    }

    /// Makes hybrid grants mandatory for this vault (owners only, once every current member
    /// is hybrid: [`Membership::classical_members`] is empty): a signed
    /// [`EntryBody::RequireHybrid`] entry, and in the same batch every classical grant left
    /// over (to former members, for epochs they could read) is deleted. Afterwards classical
    /// identities cannot be added or re-granted and every client refuses a classical grant.
    pub fn require_hybrid(&mut self, store: &dyn Store) -> Result<(), SharingError> {
        let change = self.prepare_require_hybrid(store)?;
        self.commit(store, change)
    }

    /// Prepares [`Session::require_hybrid`].
    pub fn prepare_require_hybrid(
        &self,
        store: &dyn ReadView,
    ) -> Result<PendingChange<()>, SharingError> {
        let entry = self.sign(EntryBody::RequireHybrid)?;
        let mut change = PendingChange::logged(entry, ());
        for row in strongroom_store::scan_all(store, Table::Wraps, &ScanRange::prefix(vec![b'g']))?
        {
            if let Ok(grant) = Grant::decode(&row.value)
                && !grant.kem().is_hybrid()
            {
                change
                    .batch
                    .delete(Table::Wraps, row.key, Expect::Version(row.version));
            }
        }
        Ok(change)
    }

    /// Makes writer signatures mandatory on every record version (owners only, once): a
    /// signed [`EntryBody::RequireSignedWrites`] entry. Sign the vault's unsigned versions
    /// first (strongroom's facade re-encrypts them): afterwards every client refuses them.
    pub fn require_signed_writes(&mut self, store: &dyn Store) -> Result<(), SharingError> {
        let change = self.prepare_require_signed_writes()?;
        self.commit(store, change)
    }

    /// Prepares [`Session::require_signed_writes`].
    pub fn prepare_require_signed_writes(&self) -> Result<PendingChange<()>, SharingError> {
        Ok(PendingChange::logged(
            self.sign(EntryBody::RequireSignedWrites)?,
            (),
        ))
    }

    /// Records that every record version `member` signed before losing the right to write
    /// at log position `lost_at` was re-attested (owners and admins): a signed
    /// [`EntryBody::Reattested`] entry. Sign those versions again first (strongroom's facade
    /// does, in `Vault::reattest`): afterwards nothing re-attests a version of theirs.
    pub fn prepare_reattested(
        &self,
        member: MemberId,
        lost_at: u64,
    ) -> Result<PendingChange<()>, SharingError> {
        Ok(PendingChange::logged(
            self.sign(EntryBody::Reattested { member, lost_at })?,
            (),
        ))
    }

    /// The recoverability report of the vault as verified by this session.
    pub fn recoverability(
        &self,
        store: &dyn ReadView,
    ) -> Result<RecoverabilityReport, SharingError> {
        report(store, self.state.members().values())
    }

    /// Adds a keyholder for this member (wraps the member key: O(1), no data touched).
    pub fn add_keyholder(
        &self,
        store: &dyn Store,
        keyholder: &dyn Keyholder,
    ) -> Result<KeyholderInfo, SharingError> {
        let change = self.prepare_add_keyholder(keyholder)?;
        self.commit_rows(store, change)
    }

    /// Prepares [`Session::add_keyholder`]: the member key wrapped by `keyholder`. The
    /// outcome (its listing, [`PendingChange::outcome`]) is known before the commit;
    /// committing a keyholder that exists already is [`SharingError::KeyholderExists`].
    pub fn prepare_add_keyholder(
        &self,
        keyholder: &dyn Keyholder,
    ) -> Result<PendingChange<KeyholderInfo>, SharingError> {
        let mut batch = Batch::new();
        let infos = keyholders::put_new(
            &mut batch,
            self.vault,
            self.member_id(),
            &self.member_key,
            &[keyholder],
        )?;
        let info = infos[0];
        Ok(PendingChange {
            new_keyholder: Some(info.id),
            ..PendingChange::rows(batch, info)
        })
    }

    /// Prepares the in-place replacement of keyholder `id` by `keyholder`'s rewrap of its
    /// stanza ([`Keyholder::rewrap`]: a custody service moves its own stanza to a rotated key
    /// without the member key leaving it). `Ok(None)` when the keyholder cannot rewrap that
    /// stanza (another kind or key, or no rewrap operation): wrap instead. The record keeps
    /// its creation time; the batch replaces it only if it is unchanged since it was read.
    /// The rewrapped stanza must keep the stanza id.
    pub fn prepare_rewrap_keyholder(
        &self,
        store: &dyn ReadView,
        id: &[u8; 8],
        keyholder: &dyn Keyholder,
    ) -> Result<Option<PendingChange<KeyholderInfo>>, SharingError> {
        let member = self.member_id();
        let records = keyholders::load(store, member)?;
        let Some(old) = records.iter().find(|l| &l.record.stanza.id == id) else {
            return Err(SharingError::KeyholderNotFound {
                member,
                id: keyholders::hex_id(*id),
            });
        };
        let subject = keyholders::subject(self.vault, member);
        let ctx = keyholders::wrap_context(&subject);
        let Some(stanza) = keyholder.rewrap(&ctx, &old.record.stanza)? else {
            return Ok(None);
        };
        if stanza.id != *id || stanza.kind != old.record.stanza.kind {
            return Err(SharingError::InvalidChange {
                reason: "a rewrapped stanza must keep its kind and id",
            });
        }
        let record = KeyholderRecord {
            stanza,
            ..old.record.clone()
        };
        let info = record.info();
        let mut batch = Batch::new();
        batch.put(
            Table::Keyholders,
            keyholders::row_key(member, *id),
            record.encode(),
            Expect::Version(old.version),
        );
        Ok(Some(PendingChange::rows(batch, info)))
    }

    /// Removes the keyholder with stanza id `id`; refuses to remove the last one. The
    /// batch deletes it only if every other keyholder is still there at the version read
    /// (compare-and-swap checks), so two concurrent removals never leave the member with
    /// none: one of them fails with a conflict.
    pub fn remove_keyholder(&self, store: &dyn Store, id: &[u8; 8]) -> Result<(), SharingError> {
        let change = self.prepare_remove_keyholder(store, id)?;
        self.commit_rows(store, change)
    }

    /// Prepares [`Session::remove_keyholder`].
    pub fn prepare_remove_keyholder(
        &self,
        store: &dyn ReadView,
        id: &[u8; 8],
    ) -> Result<PendingChange<()>, SharingError> {
        let member = self.member_id();
        let records = keyholders::load(store, member)?;
        let hex = keyholders::hex_id(*id);
        let Some(target) = records.iter().find(|l| &l.record.stanza.id == id) else {
            return Err(SharingError::KeyholderNotFound { member, id: hex });
        };
        if records.len() == 1 {
            return Err(SharingError::LastKeyholder { member });
        }
        let mut batch = Batch::with_capacity(records.len());
        batch.delete(
            Table::Keyholders,
            keyholders::row_key(member, *id),
            Expect::Version(target.version),
        );
        for other in records.iter().filter(|l| &l.record.stanza.id != id) {
            batch.check(
                Table::Keyholders,
                keyholders::row_key(member, other.record.stanza.id),
                Expect::Version(other.version),
            );
        }
        Ok(PendingChange::rows(batch, ()))
    }

    /// This member's keyholders (no secrets).
    pub fn keyholders(&self, store: &dyn ReadView) -> Result<Vec<KeyholderInfo>, SharingError> {
        keyholders::list_keyholders(store, self.member_id())
    }
}

/// Adds deletes of `member`'s sealed credentials and keyholder records to `batch`.
fn next_scope_epoch(current: Epoch) -> Result<Epoch, SharingError> {
    current
        .get()
        .checked_add(1)
        .map(Epoch)
        .ok_or(SharingError::Limit {
            what: "scope epochs",
        })
}

/// Deletes every grant of `scope` to `member` (all scope epochs).
fn delete_scope_grants(
    store: &dyn ReadView,
    batch: &mut Batch,
    scope: ScopeId,
    member: MemberId,
) -> Result<(), SharingError> {
    let mut prefix = vec![b'h'];
    prefix.extend_from_slice(scope.as_bytes());
    for row in strongroom_store::scan_all(store, Table::Wraps, &ScanRange::prefix(prefix))? {
        if row.key.ends_with(member.as_bytes()) {
            batch.delete(Table::Wraps, row.key, Expect::Version(row.version));
        }
    }
    Ok(())
}

fn delete_credentials(
    store: &dyn ReadView,
    batch: &mut Batch,
    member: MemberId,
) -> Result<(), SharingError> {
    batch.delete(Table::Identities, identity_row_key(member), Expect::Any);
    let rows = strongroom_store::scan_all(
        store,
        Table::Keyholders,
        &ScanRange::prefix(member.as_bytes().to_vec()),
    )?;
    for row in rows {
        batch.delete(Table::Keyholders, row.key, Expect::Any);
    }
    Ok(())
}
