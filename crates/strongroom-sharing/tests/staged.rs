//! Staged changes: `prepare_create` and `Session::prepare_*` return the rows of a change
//! before anything is written, the application adds its own rows to the same batch, and the
//! commit writes all of them or none. Also the membership state a session reports after
//! each step (sequence numbers, hashes, former members).

#[path = "helpers/common.rs"]
mod common;

use common::{Person, add_and_join, kek, new_vault};
use strongroom_crypto::VaultId;
use strongroom_sharing::{Epoch, Role, Warning, prepare_create};
use strongroom_store::{Expect, MemoryStore, ReadView, Store, Table};

fn app_row(store: &dyn ReadView, key: &[u8]) -> Option<Vec<u8>> {
    store.get(Table::Meta, key).unwrap().map(|r| r.value)
}

#[test]
fn a_staged_create_commits_the_applications_rows_with_the_vault() {
    let store = MemoryStore::new();
    let alice = Person::new("alice");
    let vault = VaultId::generate().unwrap();
    let mut pending = prepare_create(&store, vault, &alice.identity, &[&alice.kek]).unwrap();
    assert_eq!(pending.member_id(), alice.id());
    assert_eq!(pending.first_key().epoch(), Epoch(1));
    let first = pending.first_key().id();
    assert!(matches!(
        pending.warnings(),
        [Warning::SinglePointOfFailure(r)] if r.members == 1
    ));
    pending.batch_mut().put(
        Table::Meta,
        b"app/settings".to_vec(),
        b"v1".to_vec(),
        Expect::Absent,
    );
    // Nothing is written before the commit.
    assert!(app_row(&store, b"app/settings").is_none());
    assert!(
        store
            .get(Table::MemberLog, &0u64.to_be_bytes())
            .unwrap()
            .is_none()
    );

    let (session, warnings) = pending.commit(&store).unwrap();
    assert_eq!(warnings.len(), 1);
    let Warning::SinglePointOfFailure(report) = &warnings[0] else {
        panic!("{:?}", warnings[0]);
    };
    assert_eq!(warnings[0].to_string(), report.message);
    assert!(report.message.starts_with("Only one member (alice)"));
    assert_eq!(session.current_key().id(), first);
    assert_eq!(app_row(&store, b"app/settings").unwrap(), b"v1");
    assert_eq!(session.generation(), store.generation().unwrap());

    // An application row that conflicts makes the whole creation fail.
    let other = MemoryStore::new();
    other
        .commit(&{
            let mut b = strongroom_store::Batch::new();
            b.put(
                Table::Meta,
                b"app/settings".to_vec(),
                b"x".to_vec(),
                Expect::Any,
            );
            b
        })
        .unwrap();
    let mut pending = prepare_create(&other, vault, &alice.identity, &[&alice.kek]).unwrap();
    pending.batch_mut().put(
        Table::Meta,
        b"app/settings".to_vec(),
        b"v1".to_vec(),
        Expect::Absent,
    );
    assert!(pending.commit(&other).is_err());
    assert!(
        other
            .get(Table::MemberLog, &0u64.to_be_bytes())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_staged_rekey_exposes_its_key_entry_and_outcome_before_the_commit() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (_, mut a) = new_vault(&store, &mut alice);
    let before = a.membership().clone();
    assert_eq!(before.len(), 1);
    assert_eq!(before.hash_at(0), Some(before.head()));
    assert_eq!(before.hash_at(1), None);
    assert_eq!(
        before.genesis_signer(),
        alice.identity.public().signing_key()
    );
    assert_eq!(a.pins().genesis_signer(), Some(before.genesis_signer()));
    assert_eq!(a.pins().vault_id(), Some(before.vault_id()));
    assert!(!a.pins().is_empty());
    let empty = strongroom_sharing::Pins::new();
    assert!(empty.is_empty());
    assert_eq!(
        (empty.vault_id(), empty.genesis_signer(), empty.high_water()),
        (None, None, None)
    );

    let mut change = a.prepare_rekey().unwrap();
    let new_key = change.new_key().unwrap();
    assert_eq!(new_key.epoch(), Epoch(2));
    let new_id = new_key.id();
    assert_eq!(*change.outcome(), Epoch(2));
    let entry = change.entry().unwrap().clone();
    assert_eq!(entry.seq(), 1);
    assert_eq!(entry.prev_hash(), &before.head());
    assert_eq!(entry.signer(), alice.id());
    assert!(!change.batch().is_empty());
    assert_eq!(
        format!("{change:?}"),
        format!(
            "PendingChange {{ entries: [1], new_epoch: Some(Epoch(2)), ops: {}, .. }}",
            change.batch().len()
        )
    );
    change.batch_mut().put(
        Table::Meta,
        b"app/epoch".to_vec(),
        b"2".to_vec(),
        Expect::Absent,
    );
    assert!(app_row(&store, b"app/epoch").is_none());
    assert_eq!(a.epoch(), Epoch(1));

    assert_eq!(a.commit(&store, change).unwrap(), Epoch(2));
    assert_eq!(a.current_key().id(), new_id);
    assert_eq!(app_row(&store, b"app/epoch").unwrap(), b"2");
    let after = a.membership();
    assert_eq!(after.len(), 2);
    assert!(!after.is_empty());
    assert_eq!(after.key_id(Epoch(2)), Some(new_id));
    assert_eq!(after.key_id(Epoch(3)), None);
    let binding = after.key_binding(Epoch(2)).unwrap();
    assert_eq!(binding.id(), new_id);
    assert!(binding.matches(a.current_key()) && binding.commitment().is_some());
    assert!(
        !after
            .key_binding(Epoch(1))
            .unwrap()
            .matches(a.current_key())
    );
    assert_eq!(after.key_binding(Epoch(3)), None);
    assert_eq!(after.retired_below(), Epoch(1));
    assert_eq!(after.hash_at(0), Some(before.head()));
    assert_eq!(after.hash_at(1), Some(entry.hash()));
    assert_eq!(after.head(), entry.hash());
}

#[test]
fn members_and_former_members_record_when_they_came_and_left() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = Person::new("bob");
    add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    a.rekey(&store).unwrap();
    let added = a.membership().member(bob.id()).unwrap().clone();
    assert_eq!(added.added_at(), 1);
    assert_eq!(added.name(), "bob");
    assert_eq!(added.since_epoch(), Epoch(1));
    assert_eq!(a.membership().member(alice.id()).unwrap().added_at(), 0);

    let removal_seq = a.membership().len();
    a.remove_member(&store, bob.id()).unwrap();
    let former = &a.membership().former_members()[&bob.id()];
    assert_eq!(former.left_at(), removal_seq);
    assert_eq!(
        (former.first_epoch(), former.last_epoch()),
        (Epoch(1), Epoch(2))
    );
    assert_eq!(former.role(), Role::Member);
    assert_eq!(former.replaced_by(), None);
}

/// A keyholder that cannot rewrap a stanza in place (here a raw KEK) makes
/// `prepare_rewrap_keyholder` answer `None` (wrap instead); an unknown id is an error.
#[test]
fn rewrap_in_place_is_offered_only_by_keyholders_that_can() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (_, a) = new_vault(&store, &mut alice);
    let id = a.keyholders(&store).unwrap()[0].id;
    assert!(
        a.prepare_rewrap_keyholder(&store, &id, &alice.kek)
            .unwrap()
            .is_none()
    );
    assert!(
        a.prepare_rewrap_keyholder(&store, &id, &kek())
            .unwrap()
            .is_none()
    );
    let err = a
        .prepare_rewrap_keyholder(&store, &[0xee; 8], &alice.kek)
        .unwrap_err();
    assert!(
        matches!(
            err,
            strongroom_sharing::SharingError::KeyholderNotFound { .. }
        ),
        "{err}"
    );
}

/// A keyholder whose service rewraps its stanza in place: the record is replaced, keeping
/// its id and kind; a rewrap that changes either is refused.
#[test]
fn a_rewrap_in_place_keeps_the_stanzas_id_and_kind() {
    use strongroom_crypto::Key256;
    use strongroom_recovery::{
        Keyholder, KeyholderError, KeyholderKind, RawKek, Stanza, WrapContext,
    };

    /// A raw KEK whose rewrap returns the stanza as `change` makes it.
    struct Rewrapping<'a> {
        kek: &'a RawKek,
        change: fn(Stanza) -> Stanza,
    }
    impl Keyholder for Rewrapping<'_> {
        fn kind(&self) -> KeyholderKind {
            self.kek.kind()
        }
        fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
            self.kek.wrap(ctx, key)
        }
        fn unwrap(
            &self,
            ctx: &WrapContext<'_>,
            stanza: &Stanza,
        ) -> Result<Option<Key256>, KeyholderError> {
            self.kek.unwrap(ctx, stanza)
        }
        /// Wraps the key afresh (a new nonce) and applies `change`.
        fn rewrap(
            &self,
            ctx: &WrapContext<'_>,
            stanza: &Stanza,
        ) -> Result<Option<Stanza>, KeyholderError> {
            let key = self.kek.unwrap(ctx, stanza)?.expect("our stanza");
            Ok(Some((self.change)(self.kek.wrap(ctx, &key)?)))
        }
    }

    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let id = a.keyholders(&store).unwrap()[0].id;
    let with = |change| Rewrapping {
        kek: &alice.kek,
        change,
    };
    for change in [
        (|mut s: Stanza| {
            s.id[0] ^= 1;
            s
        }) as fn(Stanza) -> Stanza,
        |mut s: Stanza| {
            s.kind = KeyholderKind::RecoveryKey;
            s
        },
    ] {
        let err = a
            .prepare_rewrap_keyholder(&store, &id, &with(change))
            .unwrap_err();
        assert!(
            matches!(
                err,
                strongroom_sharing::SharingError::InvalidChange {
                    reason: "a rewrapped stanza must keep its kind and id"
                }
            ),
            "{err}"
        );
    }
    let stored = |store: &MemoryStore| {
        let key = [alice.id().as_bytes().as_slice(), &id].concat();
        let row = store.get(Table::Keyholders, &key).unwrap().unwrap();
        strongroom_sharing::KeyholderRecord::decode(&row.value).unwrap()
    };
    let before = stored(&store);
    let change = a
        .prepare_rewrap_keyholder(&store, &id, &with(|s| s))
        .unwrap()
        .unwrap();
    assert_eq!(change.outcome().id, id);
    a.commit(&store, change).unwrap();
    let after = stored(&store);
    assert_ne!(after.stanza.body, before.stanza.body);
    assert_eq!(
        (after.stanza.id, after.created_at),
        (before.stanza.id, before.created_at)
    );
    assert_eq!(a.keyholders(&store).unwrap().len(), 1);
    alice.unlock(&store, vault).unwrap();
}
