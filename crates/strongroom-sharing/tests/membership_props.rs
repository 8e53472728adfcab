//! Property test over random sequences of add / remove / regrant / rekey / role changes:
//! exactly the current members open the current epoch, and every identity ever granted
//! opens exactly the grants it was given and reads exactly the epochs up to its last one,
//! nothing after its removal.

#[path = "helpers/common.rs"]
mod common;

use std::collections::BTreeSet;

use common::{Person, add_and_join, confirmed, new_vault};
use proptest::prelude::*;
use strongroom_sharing::{ChainLink, Epoch, Grant, Role, SharingError, VaultKey};
use strongroom_store::{MemoryStore, ReadView, ScanRange, Table};

#[derive(Clone, Debug)]
enum Op {
    Add(Role),
    Remove(usize),
    Regrant(usize),
    Rekey,
    SetRole(usize, Role),
}

fn op() -> impl Strategy<Value = Op> {
    let role = prop::sample::select(vec![Role::Admin, Role::Member, Role::ReadOnly]);
    prop_oneof![
        3 => role.clone().prop_map(Op::Add),
        2 => any::<usize>().prop_map(Op::Remove),
        2 => any::<usize>().prop_map(Op::Regrant),
        2 => Just(Op::Rekey),
        1 => (any::<usize>(), role).prop_map(|(i, r)| Op::SetRole(i, r)),
    ]
}

/// One identity ever involved, with the epochs the model says it was granted.
struct Tracked {
    person: Person,
    current: bool,
    granted: BTreeSet<Epoch>,
}

/// The epochs `who` can open grants for, checking every key against the logged key id.
fn opened_grants(
    store: &dyn ReadView,
    vault: strongroom_crypto::VaultId,
    who: &Person,
    logged: &std::collections::BTreeMap<Epoch, strongroom_sharing::KeyBinding>,
) -> (BTreeSet<Epoch>, Option<VaultKey>) {
    let rows = store
        .scan(Table::Wraps, &ScanRange::prefix(vec![b'g']), None, 10_000)
        .unwrap()
        .rows;
    let mut epochs = BTreeSet::new();
    let mut best: Option<VaultKey> = None;
    for row in rows {
        let grant = Grant::decode(&row.value).unwrap();
        if let Some(key) = grant.open(vault, &who.identity) {
            assert!(
                logged.get(&key.epoch()).is_some_and(|b| b.matches(&key)),
                "grant key matches the log"
            );
            epochs.insert(key.epoch());
            if best.as_ref().is_none_or(|b| b.epoch() < key.epoch()) {
                best = Some(key);
            }
        }
    }
    (epochs, best)
}

/// Every epoch reachable down the chain from `key`.
fn readable(
    store: &dyn ReadView,
    vault: strongroom_crypto::VaultId,
    key: VaultKey,
) -> BTreeSet<Epoch> {
    let mut out = BTreeSet::from([key.epoch()]);
    let mut k = key;
    while k.epoch() > Epoch::FIRST {
        let mut ck = vec![b'c'];
        ck.extend_from_slice(&k.epoch().get().to_be_bytes());
        let row = store.get(Table::Wraps, &ck).unwrap().unwrap();
        k = ChainLink::decode(&row.value)
            .unwrap()
            .open(vault, &k)
            .unwrap();
        out.insert(k.epoch());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn grants_follow_membership(ops in prop::collection::vec(op(), 1..12)) {
        let store = MemoryStore::new();
        let mut owner = Person::new("owner");
        let (vault, mut a) = new_vault(&store, &mut owner);
        let mut people: Vec<Tracked> = Vec::new();
        let current_others = |people: &Vec<Tracked>| -> Vec<usize> {
            people.iter().enumerate().filter(|(_, t)| t.current).map(|(i, _)| i).collect()
        };
        let mut owner_granted = BTreeSet::from([Epoch::FIRST]);

        for (n, op) in ops.iter().enumerate() {
            let epoch = a.epoch();
            match op {
                Op::Add(role) => {
                    let mut p = Person::new(&format!("m{n}"));
                    add_and_join(&store, vault, &mut a, &mut p, *role);
                    people.push(Tracked { person: p, current: true, granted: BTreeSet::from([epoch]) });
                }
                Op::Remove(i) => {
                    let cur = current_others(&people);
                    if cur.is_empty() { continue; }
                    let t = cur[i % cur.len()];
                    let removal = a.remove_member(&store, people[t].person.id()).unwrap();
                    prop_assert_eq!(removal.readable_epochs, Epoch::FIRST..=epoch);
                    people[t].current = false;
                    let next = removal.new_epoch;
                    owner_granted.insert(next);
                    for p in people.iter_mut().filter(|p| p.current) { p.granted.insert(next); }
                }
                Op::Regrant(i) => {
                    let cur = current_others(&people);
                    if cur.is_empty() { continue; }
                    let t = cur[i % cur.len()];
                    let mut fresh = Person::new(&format!("r{n}"));
                    let public = fresh.identity.public().clone();
                    a.regrant(&store, people[t].person.id(), &public, confirmed(&public)).unwrap();
                    fresh.join(&store, vault);
                    people[t].current = false;
                    people[t].granted.remove(&epoch);
                    people.push(Tracked { person: fresh, current: true, granted: BTreeSet::from([epoch]) });
                }
                Op::Rekey => {
                    let next = a.rekey(&store).unwrap();
                    owner_granted.insert(next);
                    for p in people.iter_mut().filter(|p| p.current) { p.granted.insert(next); }
                }
                Op::SetRole(i, role) => {
                    let cur = current_others(&people);
                    if cur.is_empty() { continue; }
                    let t = cur[i % cur.len()];
                    match a.set_role(&store, people[t].person.id(), *role) {
                        // Ok, or the role was unchanged.
                        Ok(()) | Err(SharingError::InvalidChange { .. }) => {}
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                }
            }
        }

        let current = a.epoch();
        let logged = a.membership().key_bindings().clone();
        let all_epochs: BTreeSet<Epoch> = logged.keys().copied().collect();
        let (owner_opened, _) = opened_grants(&store, vault, &owner, &logged);
        prop_assert_eq!(&owner_opened, &owner_granted);

        let mut openers_of_current = BTreeSet::new();
        if owner_opened.contains(&current) { openers_of_current.insert(owner.id()); }
        for t in &mut people {
            let (opened, best) = opened_grants(&store, vault, &t.person, &logged);
            prop_assert_eq!(&opened, &t.granted, "grants of {}", t.person.identity.name());
            if opened.contains(&current) { openers_of_current.insert(t.person.id()); }
            let reach = best.map(|k| readable(&store, vault, k)).unwrap_or_default();
            let last = t.granted.iter().next_back().copied();
            let expected: BTreeSet<Epoch> = all_epochs.iter().copied().filter(|e| last.is_some_and(|l| *e <= l)).collect();
            prop_assert_eq!(&reach, &expected);
            let unlocked = t.person.unlock(&store, vault);
            if t.current {
                let s = unlocked.unwrap();
                prop_assert_eq!(s.keys().keys().copied().collect::<BTreeSet<_>>(), all_epochs.clone());
                prop_assert!(s.keys().iter().all(|(e, k)| logged[e].matches(k)));
            } else {
                prop_assert!(unlocked.is_err(), "a former member cannot unlock");
            }
        }
        let expected_openers: BTreeSet<_> = std::iter::once(owner.id())
            .chain(people.iter().filter(|t| t.current).map(|t| t.person.id()))
            .collect();
        prop_assert_eq!(openers_of_current, expected_openers);
        prop_assert_eq!(
            a.membership().members().keys().copied().collect::<BTreeSet<_>>(),
            std::iter::once(owner.id()).chain(people.iter().filter(|t| t.current).map(|t| t.person.id())).collect::<BTreeSet<_>>()
        );
    }
}
