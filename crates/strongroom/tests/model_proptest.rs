//! Random sequences of put, delete, get, list, history, rotation and re-encryption against a
//! plain in-memory model: the vault (on a `MemoryStore`) always agrees with the model.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strongroom::recovery::RawKek;
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Epoch, RotateOptions, Vault, VaultError};

const NAMESPACES: [&str; 3] = ["core/app", "core/other", "plugins/x.y"];
const NAMES: [&str; 4] = ["DB_URL", "TOKEN", "with space", "ünï"];
const HISTORY: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    Put(usize, usize, Vec<u8>),
    Delete(usize, usize),
    Get(usize, usize),
    GetVersion(usize, usize, u64),
    List(usize),
    History(usize, usize),
    Rotate(usize),
    Reencrypt,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let ns = 0..NAMESPACES.len();
    let name = 0..NAMES.len();
    prop_oneof![
        6 => (ns.clone(), name.clone(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(n, m, v)| Op::Put(n, m, v)),
        2 => (ns.clone(), name.clone()).prop_map(|(n, m)| Op::Delete(n, m)),
        3 => (ns.clone(), name.clone()).prop_map(|(n, m)| Op::Get(n, m)),
        2 => (ns.clone(), name.clone(), 0u64..6).prop_map(|(n, m, v)| Op::GetVersion(n, m, v)),
        1 => ns.clone().prop_map(Op::List),
        1 => (ns, name).prop_map(|(n, m)| Op::History(n, m)),
        1 => (1usize..5).prop_map(Op::Rotate),
        1 => Just(Op::Reencrypt),
        1 => Just(Op::Reopen),
    ]
}

/// The model: per secret, its versions (number → value) of the current incarnation.
#[derive(Default)]
struct Model {
    secrets: BTreeMap<(usize, usize), BTreeMap<u64, Vec<u8>>>,
    epoch: u32,
}

impl Model {
    fn put(&mut self, key: (usize, usize), value: Vec<u8>) -> u64 {
        let versions = self.secrets.entry(key).or_default();
        let next = versions.keys().next_back().map_or(1, |v| v + 1);
        versions.insert(next, value);
        while versions.len() > HISTORY as usize {
            versions.pop_first();
        }
        next
    }
}

fn not_found<T>(r: &Result<T, VaultError>) -> bool {
    matches!(r, Err(VaultError::NotFound { .. }))
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let options = CreateOptions::default().with_history(HISTORY);
    let (mut vault, _) = Vault::create(Arc::clone(&store), &kek, &options).unwrap();
    let mut model = Model {
        epoch: 1,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Put(n, m, v) => {
                let meta = vault.put(NAMESPACES[*n], NAMES[*m], v).unwrap();
                let want = model.put((*n, *m), v.clone());
                prop_assert_eq!(meta.version, want);
                prop_assert_eq!(meta.len, v.len());
                prop_assert_eq!(meta.epoch, Epoch(model.epoch));
            }
            Op::Delete(n, m) => {
                let got = vault.delete(NAMESPACES[*n], NAMES[*m]);
                match model.secrets.remove(&(*n, *m)) {
                    Some(_) => got.unwrap(),
                    None => prop_assert!(not_found(&got)),
                }
            }
            Op::Get(n, m) => {
                let got = vault.get(NAMESPACES[*n], NAMES[*m]);
                match model.secrets.get(&(*n, *m)) {
                    Some(versions) => {
                        let (v, value) = versions.last_key_value().unwrap();
                        let s = got.unwrap();
                        prop_assert_eq!(s.expose_secret(), value.as_slice());
                        prop_assert_eq!(s.meta().version, *v);
                        prop_assert_eq!(&s.meta().namespace, NAMESPACES[*n]);
                        prop_assert_eq!(&s.meta().name, NAMES[*m]);
                    }
                    None => prop_assert!(not_found(&got)),
                }
            }
            Op::GetVersion(n, m, v) => {
                let got = vault.get_version(NAMESPACES[*n], NAMES[*m], *v);
                match model.secrets.get(&(*n, *m)).and_then(|vs| vs.get(v)) {
                    Some(value) => {
                        let s = got.unwrap();
                        prop_assert_eq!(s.expose_secret(), value.as_slice());
                    }
                    None => prop_assert!(not_found(&got), "{:?}", got.map(|s| s.meta().clone())),
                }
            }
            Op::List(n) => {
                let listed: Vec<(String, u64)> = vault
                    .list(NAMESPACES[*n])
                    .unwrap()
                    .into_iter()
                    .map(|m| (m.name, m.version))
                    .collect();
                let mut want: Vec<(String, u64)> = model
                    .secrets
                    .iter()
                    .filter(|((ns, _), _)| ns == n)
                    .map(|((_, m), vs)| (NAMES[*m].to_owned(), *vs.keys().next_back().unwrap()))
                    .collect();
                want.sort();
                prop_assert_eq!(listed, want);
            }
            Op::History(n, m) => {
                let got = vault.history(NAMESPACES[*n], NAMES[*m]);
                match model.secrets.get(&(*n, *m)) {
                    Some(vs) => {
                        let versions: Vec<u64> = got.unwrap().iter().map(|x| x.version).collect();
                        prop_assert_eq!(versions, vs.keys().copied().collect::<Vec<_>>());
                    }
                    None => prop_assert!(not_found(&got)),
                }
            }
            Op::Rotate(batch) => {
                let report = vault
                    .rotate_vault_key_with(
                        RotateOptions::default().with_batch_size(*batch),
                        &mut |_| {},
                    )
                    .unwrap();
                model.epoch += 1;
                prop_assert_eq!(report.epoch, Epoch(model.epoch));
                prop_assert_eq!(report.min_epoch, Epoch(model.epoch));
                let stored: u64 = model.secrets.values().map(|vs| vs.len() as u64).sum();
                prop_assert_eq!(report.processed, stored);
            }
            Op::Reencrypt => {
                let report = vault
                    .reencrypt_all(RotateOptions::default(), &mut |_| {})
                    .unwrap();
                model.epoch += 1;
                prop_assert_eq!(report.epoch, Epoch(model.epoch));
            }
            Op::Reopen => {
                vault = Vault::open(Arc::clone(&store))
                    .unwrap()
                    .unlock(&kek)
                    .unwrap();
            }
        }
        prop_assert_eq!(vault.epoch(), Epoch(model.epoch));
    }
    // Everything stored is under the current epoch, or pending only if no rotation ran
    // since it was written.
    let st = vault.status().unwrap();
    prop_assert_eq!(st.secrets, model.secrets.len() as u64);
    let stored: u64 = model.secrets.values().map(|vs| vs.len() as u64).sum();
    prop_assert_eq!(st.versions, stored);
    prop_assert_eq!(st.pending_rewrap, 0);
    vault.audit_verify().unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_vault_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}
