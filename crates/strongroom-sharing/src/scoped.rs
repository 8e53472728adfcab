//! Scope keys: opening them for full members (through the vault key) and scoped members
//! (through their scope grants), the audit of stored scope grants, and the session of a
//! scoped member ([`ScopedSession`]).

use core::fmt;
use std::collections::BTreeMap;

use strongroom_crypto::{MemberId, ScopeId, VaultId};
use strongroom_envelope::{Epoch, VaultKey};
use strongroom_recovery::Keyholder;
use strongroom_store::{Generation, ReadView, ScanRange, Store, StoreError, Table};

use crate::log::Scope;
use crate::scope::{
    LinkUnder, ScopeGrant, ScopeLink, scope_chain_row_key, scope_grant_row_key, scope_link_row_key,
};
use crate::session::{check_kind, check_listed, load_verified, open_member, store_credentials};
use crate::{Identity, Membership, Pins, Role, SharingError, VerifyError};

/// Every scope's keys, by scope and scope epoch.
pub type ScopeKeys = BTreeMap<ScopeId, BTreeMap<Epoch, VaultKey>>;

fn malformed(what: &'static str) -> impl FnOnce(strongroom_crypto::DecodeError) -> SharingError {
    move |source| VerifyError::MalformedWrap { what, source }.into()
}

/// The value of the scope row `key` (the `what` of `scope` at `epoch`), or
/// [`VerifyError::MissingScopeKey`].
fn scope_row(
    store: &dyn ReadView,
    key: &[u8],
    what: &'static str,
    scope: ScopeId,
    epoch: Epoch,
) -> Result<Vec<u8>, SharingError> {
    let row = store
        .get(Table::Wraps, key)?
        .ok_or(VerifyError::MissingScopeKey { what, scope, epoch })?;
    Ok(row.value)
}

/// The key of `scope` at scope epoch `epoch` in `keys`.
pub(crate) fn scope_key_in(keys: &ScopeKeys, scope: ScopeId, epoch: Epoch) -> Option<&VaultKey> {
    keys.get(&scope)?.get(&epoch)
}

/// The current key of `scope` (as `state` says) in `keys`.
pub(crate) fn current_scope_key_in<'k>(
    keys: &'k ScopeKeys,
    state: &Membership,
    scope: ScopeId,
) -> Option<&'k VaultKey> {
    scope_key_in(keys, scope, state.scope(scope)?.epoch())
}

/// Checks `key` against the key the log binds for `scope` at its epoch.
fn check_bound(scope: &Scope, key: &VaultKey) -> Result<(), SharingError> {
    if scope
        .key_binding(key.epoch())
        .is_some_and(|b| b.matches(key))
    {
        Ok(())
    } else {
        Err(VerifyError::ScopeKeyMismatch {
            scope: scope.id(),
            epoch: key.epoch(),
        }
        .into())
    }
}

/// From the scope's current key (checked), every older scope key through the scope's
/// chain, each checked against the log.
fn open_chain(
    store: &dyn ReadView,
    vault: VaultId,
    scope: &Scope,
    current: VaultKey,
) -> Result<BTreeMap<Epoch, VaultKey>, SharingError> {
    check_bound(scope, &current)?;
    let id = scope.id();
    let mut keys = BTreeMap::new();
    let mut epoch = current.epoch();
    keys.insert(epoch, current);
    while epoch > Epoch::FIRST {
        let what = "scope chain link";
        let row = scope_row(store, &scope_chain_row_key(id, epoch), what, id, epoch)?;
        let link = ScopeLink::decode(&row).map_err(malformed(what))?;
        let previous = (link.scope() == id && link.under() == LinkUnder::NextScopeKey)
            .then(|| link.open(vault, &keys[&epoch]))
            .flatten()
            .ok_or(VerifyError::ScopeKeyUnreadable {
                what,
                scope: id,
                epoch,
            })?;
        check_bound(scope, &previous)?;
        epoch = previous.epoch();
        keys.insert(epoch, previous);
    }
    Ok(keys)
}

/// Every scope's keys for a full member: the current scope key from its link under a
/// vault key the member holds, then the scope's chain.
pub(crate) fn open_scope_keys_full(
    store: &dyn ReadView,
    state: &Membership,
    vault_keys: &BTreeMap<Epoch, VaultKey>,
) -> Result<ScopeKeys, SharingError> {
    let vault = state.vault_id();
    let mut out = ScopeKeys::new();
    for scope in state.scopes().values() {
        let (id, epoch, what) = (scope.id(), scope.epoch(), "scope link");
        let row = scope_row(store, &scope_link_row_key(id), what, id, epoch)?;
        let link = ScopeLink::decode(&row).map_err(malformed(what))?;
        let unreadable = VerifyError::ScopeKeyUnreadable {
            what,
            scope: id,
            epoch,
        };
        let LinkUnder::VaultKey(under) = link.under() else {
            return Err(unreadable.into());
        };
        if link.scope() != id || link.epoch() != epoch {
            return Err(unreadable.into());
        }
        let key = vault_keys
            .get(&under)
            .and_then(|vk| link.open(vault, vk))
            .ok_or(unreadable)?;
        out.insert(id, open_chain(store, vault, scope, key)?);
    }
    Ok(out)
}

/// The keys of the scopes granted to the scoped member `identity`: each current scope key
/// from its scope grant, then the scope's chain.
pub(crate) fn open_scope_keys_granted(
    store: &dyn ReadView,
    state: &Membership,
    identity: &Identity,
) -> Result<ScopeKeys, SharingError> {
    let vault = state.vault_id();
    let member = identity.member_id();
    let mut out = ScopeKeys::new();
    for (id, _) in state.scopes_of(member) {
        let Some(scope) = state.scope(id) else {
            continue;
        };
        let (epoch, what) = (scope.epoch(), "scope grant");
        let row = scope_row(
            store,
            &scope_grant_row_key(id, epoch, member),
            what,
            id,
            epoch,
        )?;
        let grant = ScopeGrant::decode(&row).map_err(malformed(what))?;
        let key = (grant.scope() == id && grant.epoch() == epoch)
            .then(|| grant.open(vault, identity))
            .flatten()
            .ok_or(VerifyError::ScopeKeyUnreadable {
                what,
                scope: id,
                epoch,
            })?;
        out.insert(id, open_chain(store, vault, scope, key)?);
    }
    Ok(out)
}

/// The audit of stored scope grants: each one the log implies (a current scoped member
/// holding that scope, a scope epoch from its grant on), in its place and addressed to the
/// member's logged key; every scoped member holds the current epoch of each of its scopes.
pub(crate) fn audit_scope_grants(
    store: &dyn ReadView,
    state: &Membership,
) -> Result<(), SharingError> {
    let rows = strongroom_store::scan_all(store, Table::Wraps, &ScanRange::prefix(vec![b'h']))?;
    let mut holders = std::collections::BTreeSet::new();
    for row in rows {
        let grant = ScopeGrant::decode(&row.value).map_err(malformed("scope grant"))?;
        let (member, scope, epoch) = (grant.member_id(), grant.scope(), grant.epoch());
        let unexpected = VerifyError::UnexpectedScopeGrant {
            member,
            scope,
            epoch,
        };
        let held = state
            .scopes_of(member)
            .into_iter()
            .find(|(s, _)| *s == scope);
        let current = state.scope(scope).map(Scope::epoch);
        let ok = row.key == scope_grant_row_key(scope, epoch, member)
            && grant.vault_id() == state.vault_id()
            && held.is_some_and(|(_, g)| epoch >= g.since_epoch())
            && current.is_some_and(|c| epoch <= c)
            && state
                .member(member)
                .is_some_and(|m| grant.is_addressed_to(m.identity()));
        if !ok {
            return Err(unexpected.into());
        }
        if current == Some(epoch) {
            holders.insert((member, scope));
        }
    }
    for (member, m) in state.members() {
        if m.role() != Role::Scoped {
            continue;
        }
        for (scope, _) in state.scopes_of(*member) {
            if !holders.contains(&(*member, scope)) {
                let epoch = state.scope(scope).map_or(Epoch::FIRST, Scope::epoch);
                return Err(VerifyError::MissingScopeKey {
                    what: "scope grant",
                    scope,
                    epoch,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// An unlocked scoped member ([`Role::Scoped`]): its identity, the verified membership and
/// the keys of its scopes only. It holds no vault key and signs no log entry.
pub struct ScopedSession {
    vault: VaultId,
    identity: Identity,
    state: Membership,
    scope_keys: ScopeKeys,
    pins: Pins,
    generation: Generation,
}

impl fmt::Debug for ScopedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedSession")
            .field("vault", &self.vault)
            .field("identity", &self.identity)
            .field("scopes", &self.scope_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Unlocks a scoped member (see [`unlock`](crate::unlock) for full members): the verified
/// log, the member's credentials opened with `keyholder`, and the keys of the scopes
/// granted to it, each checked against the log. `pins` are updated on success.
pub fn unlock_scoped(
    store: &dyn Store,
    vault: VaultId,
    member: Option<MemberId>,
    keyholder: &dyn Keyholder,
    pins: &mut Pins,
) -> Result<ScopedSession, SharingError> {
    let (opened, scope_keys) =
        open_member(store, vault, member, keyholder, pins, |state, identity| {
            check_kind(state, identity.member_id(), true)?;
            open_scope_keys_granted(store, state, identity)
        })?;
    Ok(ScopedSession {
        vault,
        identity: opened.identity,
        state: opened.state,
        scope_keys,
        pins: pins.clone(),
        generation: opened.generation,
    })
}

/// A newly added scoped member stores its sealed credentials, wrapped by `keyholders`
/// (see [`join`](crate::join)); it then [`unlock_scoped`]s with a keyholder alone.
pub fn join_scoped(
    store: &dyn Store,
    vault: VaultId,
    identity: &Identity,
    keyholders: &[&dyn Keyholder],
    pins: &mut Pins,
) -> Result<ScopedSession, SharingError> {
    let generation = store.generation()?;
    let state = load_verified(store, vault, pins)?;
    check_listed(&state, identity)?;
    check_kind(&state, identity.member_id(), true)?;
    let scope_keys = open_scope_keys_granted(store, &state, identity)?;
    store_credentials(store, vault, identity, keyholders, generation)?;
    pins.update(&state);
    Ok(ScopedSession {
        vault,
        identity: identity.clone_secret(),
        state,
        scope_keys,
        pins: pins.clone(),
        generation,
    })
}

impl ScopedSession {
    /// The vault.
    pub fn vault_id(&self) -> VaultId {
        self.vault
    }

    /// The member's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.identity.member_id()
    }

    /// The verified membership.
    pub fn membership(&self) -> &Membership {
        &self.state
    }

    /// The pins after the last verified load: persist them.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    /// The store generation the session was loaded in.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The keys of the scopes granted to this member (and of no other scope).
    pub fn scope_keys(&self) -> &ScopeKeys {
        &self.scope_keys
    }

    /// The key of `scope` at scope epoch `epoch`, if this member holds it.
    pub fn scope_key(&self, scope: ScopeId, epoch: Epoch) -> Option<&VaultKey> {
        scope_key_in(&self.scope_keys, scope, epoch)
    }

    /// The current key of `scope`, if this member holds it.
    pub fn current_scope_key(&self, scope: ScopeId) -> Option<&VaultKey> {
        current_scope_key_in(&self.scope_keys, &self.state, scope)
    }

    /// The role this member has on `scope` (`None`: not granted).
    pub fn scope_role(&self, scope: ScopeId) -> Option<Role> {
        self.state
            .scopes_of(self.member_id())
            .into_iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, g)| g.role())
    }

    /// Re-reads and verifies the log and the scope grants after others changed them;
    /// reopens the keys of the scopes it holds now (a revoked scope's keys are dropped).
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
        match state.member(self.member_id()) {
            Some(m) if m.identity() == self.identity.public() => {}
            _ => {
                return Err(SharingError::NotAMember {
                    member: self.member_id(),
                });
            }
        }
        let scope_keys = open_scope_keys_granted(store, &state, &self.identity)?;
        self.pins.update(&state);
        self.state = state;
        self.scope_keys = scope_keys;
        Ok(())
    }
}
