//! Key domains: which keys seal, wrap and index the records of a namespace, for a full
//! member's [`Vault`](crate::Vault) and a scoped member's
//! [`ScopedVault`](crate::ScopedVault) alike.
//!
//! A namespace covered by a scope (`Membership::scope_of`) is in that scope's domain: its
//! data keys are wrapped under the scope's current key (a wrapped data key of format 2,
//! whose epoch field is the scope epoch and whose key id names the scope key), and its
//! blind index rows are computed under a metadata key derived from the scope key,
//! `HKDF(SK[s, f], "strongroom/v3/scope-index", scope id)`. Every other namespace is in the
//! vault-wide domain (vault key, vault metadata key). A reader finds the key that unwraps a
//! data key by its epoch and key id among the keys it holds, and refuses a record wrapped
//! under a scope key whose payload names a namespace outside that scope.
//!
//! A record wrapped under a vault key in a scope's namespace (written before the scope was
//! created) stays readable to full members, who hold both; only they can write one, so it
//! weakens nothing. The rotation moves its head into the scope (scope key, scope index).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use strongroom_crypto::kdf::derive_key;
use strongroom_crypto::{KeyId, MemberId, ScopeId, VaultId};
use strongroom_envelope::{BodyCheck, Epoch, VaultKey, WrappedDek};
use strongroom_sharing::{Identity, Membership, ScopeKeys};

use crate::meta::MetaKeys;
use crate::vault::State;
use crate::writers::VerifiedWrites;
use crate::{Inconsistency, VaultError};

/// The HKDF label of a scope's blind index key.
pub(crate) const SCOPE_INDEX_LABEL: &str = "strongroom/v3/scope-index";

/// The blind index keys a namespace's rows may be under, current first.
pub(crate) enum IndexKeys<'a> {
    /// The vault-wide metadata keys (the current one, then older ones a rotation has not
    /// moved rows from yet).
    Vault(&'a MetaKeys, &'a [MetaKeys]),
    /// A scope's index keys, one per scope epoch, newest first; for a full member, then
    /// the vault-wide metadata keys, under which the rows of secrets written before the
    /// scope existed stay until a rotation moves them into it.
    Scope(Arc<[Arc<MetaKeys>]>, Option<(&'a MetaKeys, &'a [MetaKeys])>),
}

impl IndexKeys<'_> {
    /// The one generation, when there is only one (a row can be in one place only).
    pub(crate) fn only(&self) -> Option<&MetaKeys> {
        match self {
            IndexKeys::Vault(current, []) => Some(current),
            IndexKeys::Scope(keys, None) if keys.len() == 1 => Some(&keys[0]),
            _ => None,
        }
    }

    /// Every generation, current first.
    pub(crate) fn all(&self) -> Vec<&MetaKeys> {
        match self {
            IndexKeys::Vault(current, older) => std::iter::once(*current).chain(*older).collect(),
            IndexKeys::Scope(keys, vault) => {
                let vault = vault
                    .iter()
                    .flat_map(|(c, o)| std::iter::once(*c).chain(*o));
                keys.iter().map(|k| &**k).chain(vault).collect()
            }
        }
    }
}

/// The keys of one namespace's domain.
pub(crate) struct Domain<'a> {
    /// The scope (`None`: the vault-wide area).
    pub(crate) scope: Option<ScopeId>,
    /// The key new versions are wrapped under.
    pub(crate) key: &'a VaultKey,
    /// The blind index keys.
    pub(crate) index: IndexKeys<'a>,
}

/// What reads and writes records: a full member's state or a scoped member's.
pub(crate) trait Access: Sync {
    /// The vault id.
    fn vault_id(&self) -> VaultId;
    /// The verified membership log.
    fn membership(&self) -> &Membership;
    /// This member's identity (it signs the versions it writes).
    fn identity(&self) -> &Identity;
    /// This member's id.
    fn member_id(&self) -> MemberId {
        self.identity().member_id()
    }
    /// The record versions this handle verified.
    fn verified(&self) -> &VerifiedWrites;
    /// The domain of `namespace`, or why this handle holds no key for it.
    fn domain(&self, namespace: &str) -> Result<Domain<'_>, VaultError>;
    /// The key that unwraps `w`, and the scope it belongs to (`None`: a vault key).
    fn unwrapping_key(&self, w: &WrappedDek) -> Option<(Option<ScopeId>, &VaultKey)>;
    /// Whether this handle holds the vault keys (a full member), not only scope keys.
    fn holds_vault_keys(&self) -> bool;
    /// The oldest readable vault epoch.
    fn min_epoch(&self) -> Epoch;
    /// Which vault-domain bodies are checked against their digest (scope-domain bodies
    /// always are).
    fn body_check(&self) -> BodyCheck;
}

/// The scope key among `keys` that unwraps `w`.
pub(crate) fn scope_key_of<'k>(
    keys: &'k ScopeKeys,
    w: &WrappedDek,
) -> Option<(Option<ScopeId>, &'k VaultKey)> {
    keys.iter().find_map(|(scope, epochs)| {
        epochs
            .get(&w.epoch())
            .filter(|k| k.id() == w.key_id())
            .map(|k| (Some(*scope), k))
    })
}

/// The blind index keys of each scope epoch a handle used, derived once.
#[derive(Default)]
pub(crate) struct ScopeIndexes {
    derived: Mutex<HashMap<(ScopeId, Epoch, KeyId), Arc<MetaKeys>>>,
    /// Each scope's list of index keys, newest first, with the number of epochs and the
    /// newest epoch and key it was made for (a scope's held keys only grow, at the newest
    /// end): every read of a scope's secret uses it.
    lists: Mutex<HashMap<ScopeId, ScopeList>>,
}

/// The index keys of one scope's held epochs, newest first, and what they were made from.
struct ScopeList {
    held: (usize, Option<(Epoch, KeyId)>),
    keys: Arc<[Arc<MetaKeys>]>,
}

impl ScopeIndexes {
    /// The blind index keys of `scope` at `epoch` (whose key is `key`).
    fn of(&self, scope: ScopeId, key: &VaultKey) -> Arc<MetaKeys> {
        let at = (scope, key.epoch(), key.id());
        let mut derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        derived
            .entry(at)
            .or_insert_with(|| {
                Arc::new(MetaKeys::from_root(derive_key(
                    key.expose_secret(),
                    SCOPE_INDEX_LABEL,
                    &[scope.as_bytes()],
                )))
            })
            .clone()
    }

    /// The index keys of every epoch of `scope` in `held`, newest first.
    fn list(
        &self,
        scope: ScopeId,
        held: Option<&std::collections::BTreeMap<Epoch, VaultKey>>,
    ) -> Arc<[Arc<MetaKeys>]> {
        let newest = held.and_then(|h| h.values().next_back());
        let made_from = (
            held.map_or(0, std::collections::BTreeMap::len),
            newest.map(|k| (k.epoch(), k.id())),
        );
        let mut lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = lists.get(&scope)
            && list.held == made_from
        {
            return Arc::clone(&list.keys);
        }
        let keys: Arc<[Arc<MetaKeys>]> = held
            .into_iter()
            .flat_map(|h| h.values().rev())
            .map(|k| self.of(scope, k))
            .collect();
        lists.insert(
            scope,
            ScopeList {
                held: made_from,
                keys: Arc::clone(&keys),
            },
        );
        keys
    }

    /// The domain of the scope `scope` with the scope keys `keys`: its current key (the
    /// one the log names) and the index keys of every scope epoch held, newest first.
    pub(crate) fn domain<'k>(
        &self,
        membership: &Membership,
        keys: &'k ScopeKeys,
        scope: ScopeId,
        vault: Option<(&'k MetaKeys, &'k [MetaKeys])>,
    ) -> Result<Domain<'k>, VaultError> {
        let current = membership
            .scope(scope)
            .map(strongroom_sharing::Scope::epoch);
        let held = keys.get(&scope);
        let key = current
            .and_then(|e| held.and_then(|h| h.get(&e)))
            .ok_or_else(|| {
                VaultError::inconsistent(
                    Inconsistency::MissingKey,
                    format!(
                        "this member holds no key of the current epoch of scope {scope}: refresh and retry"
                    ),
                )
            })?;
        let index = self.list(scope, held);
        Ok(Domain {
            scope: Some(scope),
            key,
            index: IndexKeys::Scope(index, vault),
        })
    }
}

impl Access for State {
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
        match self.session.membership().scope_of(namespace) {
            Some(scope) => self.scope_indexes.domain(
                self.session.membership(),
                self.session.scope_keys(),
                scope.id(),
                Some((&self.meta, &self.older_meta)),
            ),
            None => Ok(Domain {
                scope: None,
                key: self.session.current_key(),
                index: IndexKeys::Vault(&self.meta, &self.older_meta),
            }),
        }
    }

    fn unwrapping_key(&self, w: &WrappedDek) -> Option<(Option<ScopeId>, &VaultKey)> {
        match self.session.key(w.epoch()) {
            Some(k) if k.id() == w.key_id() => Some((None, k)),
            _ => scope_key_of(self.session.scope_keys(), w),
        }
    }

    fn holds_vault_keys(&self) -> bool {
        true
    }

    fn min_epoch(&self) -> Epoch {
        State::min_epoch(self)
    }

    fn body_check(&self) -> BodyCheck {
        State::body_check(self)
    }
}
