//! Injected storage faults at every operation of put, delete, rotation, member add and
//! remove, and keyholder rotation (`FaultyStore`): an operation that fails outright, one
//! whose commit is applied but reported failed (a lost acknowledgement), and a "crash"
//! (every operation from some point fails until the store is revived, as across a process
//! restart). Afterwards the vault opens, every secret reads as its old or its new value,
//! and a retry completes the operation.

use std::sync::Arc;

use strongroom::crypto::{Key256, MemberId};
use strongroom::recovery::RawKek;
use strongroom::sharing::{FingerprintConfirmed, Identity, Pins, Role};
use strongroom::store::{FaultyStore, MemoryStore, ScanRange, Store, Table};
use strongroom::{CreateOptions, Epoch, RotateOptions, UnlockOptions, Vault, VaultError};

const SECRETS: usize = 30;

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The operation fails without reaching the store.
    Fail,
    /// The operation runs (a commit is applied) and then reports failure.
    LoseAck,
    /// This and every later operation fail until revived; the retry uses a new handle.
    Crash,
}

struct Env {
    faulty: Arc<FaultyStore<MemoryStore>>,
    store: Arc<dyn Store>,
    kek: RawKek,
    vault: Vault,
    owner: MemberId,
    bob: Identity,
    bob_kek: RawKek,
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "q".repeat(i)).into_bytes()
}

fn name(i: usize) -> String {
    format!("s{i:02}")
}

fn setup(with_bob: bool) -> Env {
    let faulty = Arc::new(FaultyStore::new(MemoryStore::new()));
    let store: Arc<dyn Store> = faulty.clone();
    let kek = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    for i in 0..SECRETS {
        vault.put("ns", &name(i), &value(i)).unwrap();
    }
    let bob = Identity::generate("bob").unwrap();
    let bob_kek = RawKek::generate().unwrap();
    if with_bob {
        vault
            .add_member(bob.public(), Role::Member, confirm(&bob))
            .unwrap();
        Vault::join(&store, &bob, &[&bob_kek], Pins::default()).unwrap();
        vault.refresh().unwrap();
    }
    Env {
        faulty,
        store,
        kek,
        owner: vault.member_id(),
        vault,
        bob,
        bob_kek,
    }
}

fn confirm(who: &Identity) -> FingerprintConfirmed {
    who.public()
        .confirm_fingerprint(&who.public().fingerprint().digits())
        .unwrap()
}

/// Unlocks as the owner (the store may hold bob's credentials too).
fn unlock_with(env: &Env, kek: &RawKek) -> Result<Vault, VaultError> {
    Vault::open(Arc::clone(&env.store))?.unlock_with(
        kek,
        UnlockOptions::default()
            .with_member(Some(env.owner))
            .with_pins(Pins::default()),
    )
}

/// Every secret but `except` opens with its original value; returns the value of
/// `except` if it exists.
fn check_secrets(vault: &Vault, except: Option<usize>, ctx: &str) -> Option<Vec<u8>> {
    let mut special = None;
    for i in 0..SECRETS {
        match vault.get("ns", &name(i)) {
            Ok(s) if Some(i) == except => special = Some(s.expose_secret().to_vec()),
            Ok(s) => assert_eq!(s.expose_secret(), value(i), "{ctx}: secret {i}"),
            Err(VaultError::NotFound { .. }) if Some(i) == except => {}
            Err(e) => panic!("{ctx}: secret {i} does not open: {e}"),
        }
    }
    special
}

/// Row counts agree: every stored version has both its body and its data key.
fn check_rows(store: &dyn Store, ctx: &str) {
    let keys = |t: Table| -> Vec<Vec<u8>> {
        store
            .scan(t, &ScanRange::all(), None, 10_000)
            .unwrap()
            .rows
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    assert_eq!(
        keys(Table::Bodies),
        keys(Table::Deks),
        "{ctx}: a body without its data key (or the reverse)"
    );
}

/// One scenario: `op` is the operation under test, `after` checks the state right after a
/// fault (old or new), `retry` completes the operation on a handle, `done` checks the final
/// state.
struct Scenario {
    name: &'static str,
    with_bob: bool,
    op: fn(&Env) -> Result<(), VaultError>,
    after: fn(&Env, &Vault, &str),
    retry: fn(&Env, &Vault) -> Result<(), VaultError>,
    done: fn(&Env, &Vault, &str),
    /// The keyholder that unlocks after the fault (None: the vault's own KEK).
    unlock_after: fn(&Env) -> Vault,
}

fn default_unlock(env: &Env) -> Vault {
    unlock_with(env, &env.kek).expect("the vault opens after the fault")
}

/// Runs `scenario` with `fault` at each of its store operations in turn; returns how many
/// runs had a fault injected.
fn run(scenario: &Scenario, fault: Fault) -> u64 {
    // A clean run counts the operation's store calls.
    let clean = setup(scenario.with_bob);
    let before = clean.faulty.ops();
    (scenario.op)(&clean).unwrap_or_else(|e| panic!("{}: clean run: {e}", scenario.name));
    let calls = clean.faulty.ops() - before;
    (scenario.done)(&clean, &clean.vault, scenario.name);
    let mut faulted = 0;
    for n in 0..calls {
        let env = setup(scenario.with_bob);
        let ctx = format!("{} / {fault:?} at op {n} of {calls}", scenario.name);
        let at = env.faulty.ops() + n;
        match fault {
            Fault::Fail => env.faulty.fail_op(at),
            Fault::LoseAck => env.faulty.lose_ack(at),
            Fault::Crash => env.faulty.crash_at(at),
        }
        let result = (scenario.op)(&env);
        let injected = env.faulty.injected() > 0;
        env.faulty.clear_faults();
        env.faulty.revive();
        if !injected {
            // The call took another path (a lost acknowledgement of a commit that
            // conflicted reports the conflict, which is retried): it must have succeeded.
            result.unwrap_or_else(|e| panic!("{ctx}: failed without a fault: {e}"));
            (scenario.done)(&env, &env.vault, &ctx);
            continue;
        }
        faulted += 1;
        let fresh = (scenario.unlock_after)(&env);
        (scenario.after)(&env, &fresh, &ctx);
        check_rows(&*env.store, &ctx);
        // Retry: on the same handle, or after a crash on a new one.
        let handle = match fault {
            Fault::Crash => &fresh,
            Fault::Fail | Fault::LoseAck => &env.vault,
        };
        (scenario.retry)(&env, handle).unwrap_or_else(|e| panic!("{ctx}: retry failed: {e}"));
        (scenario.done)(&env, handle, &ctx);
        let reopened = (scenario.unlock_after)(&env);
        (scenario.done)(&env, &reopened, &ctx);
        reopened
            .audit_verify()
            .unwrap_or_else(|e| panic!("{ctx}: audit: {e}"));
        check_rows(&*env.store, &ctx);
    }
    faulted
}

fn run_all(scenario: &Scenario) {
    for fault in [Fault::Fail, Fault::LoseAck, Fault::Crash] {
        let ops = run(scenario, fault);
        eprintln!("{}: {fault:?} injected in {ops} runs", scenario.name);
        assert!(ops > 0, "{}: no store operation was faulted", scenario.name);
    }
}

// ---------------------------------------------------------------------------------------

#[test]
fn put_survives_every_fault() {
    run_all(&Scenario {
        name: "put",
        with_bob: false,
        op: |env| env.vault.put("ns", &name(3), b"new value").map(drop),
        after: |_, v, ctx| {
            let got = check_secrets(v, Some(3), ctx).expect("an overwrite never deletes");
            assert!(
                got == value(3) || got == b"new value",
                "{ctx}: a third value"
            );
        },
        retry: |_, v| v.put("ns", &name(3), b"new value").map(drop),
        done: |_, v, ctx| {
            let s = v.get("ns", &name(3)).unwrap();
            assert_eq!(s.expose_secret(), b"new value", "{ctx}");
            let versions: Vec<u64> = v
                .history("ns", &name(3))
                .unwrap()
                .iter()
                .map(|m| m.version)
                .collect();
            // 2, or 3 when the lost acknowledgement's write was applied and retried.
            assert!(
                versions == [1, 2] || versions == [1, 2, 3],
                "{ctx}: {versions:?}"
            );
            assert_eq!(
                v.get_version("ns", &name(3), 1).unwrap().expose_secret(),
                value(3)
            );
            check_secrets(v, Some(3), ctx);
        },
        unlock_after: default_unlock,
    });
}

#[test]
fn put_of_a_new_secret_survives_every_fault() {
    run_all(&Scenario {
        name: "put-new",
        with_bob: false,
        op: |env| env.vault.put("other", "fresh", b"x").map(drop),
        after: |_, v, ctx| {
            check_secrets(v, None, ctx);
            match v.get("other", "fresh") {
                Ok(s) => assert_eq!(s.expose_secret(), b"x", "{ctx}"),
                Err(VaultError::NotFound { .. }) => {}
                Err(e) => panic!("{ctx}: {e}"),
            }
        },
        retry: |_, v| v.put("other", "fresh", b"x").map(drop),
        done: |_, v, ctx| {
            assert_eq!(v.get("other", "fresh").unwrap().expose_secret(), b"x");
            assert_eq!(v.list("other").unwrap().len(), 1, "{ctx}: one secret");
        },
        unlock_after: default_unlock,
    });
}

#[test]
fn delete_survives_every_fault() {
    run_all(&Scenario {
        name: "delete",
        with_bob: false,
        op: |env| env.vault.delete("ns", &name(5)),
        after: |_, v, ctx| {
            if let Some(got) = check_secrets(v, Some(5), ctx) {
                assert_eq!(got, value(5), "{ctx}");
            }
        },
        retry: |_, v| match v.delete("ns", &name(5)) {
            // The lost acknowledgement's delete was applied.
            Err(VaultError::NotFound { .. }) => Ok(()),
            other => other,
        },
        done: |_, v, ctx| {
            assert!(
                matches!(v.get("ns", &name(5)), Err(VaultError::NotFound { .. })),
                "{ctx}"
            );
            assert_eq!(v.list("ns").unwrap().len(), SECRETS - 1, "{ctx}");
            assert_eq!(v.status().unwrap().versions, SECRETS as u64 - 1, "{ctx}");
        },
        unlock_after: default_unlock,
    });
}

#[test]
fn rotation_survives_every_fault() {
    run_all(&Scenario {
        name: "rotate",
        with_bob: false,
        op: |env| {
            env.vault
                .rotate_vault_key_with(RotateOptions::default().with_batch_size(7), &mut |_| {})
                .map(drop)
        },
        after: |_, v, ctx| {
            check_secrets(v, None, ctx);
            if let Some(target) = v.interrupted_rotation().unwrap() {
                assert_eq!(target, v.epoch(), "{ctx}");
            }
        },
        retry: |_, v| {
            v.rotate_vault_key_with(RotateOptions::default().with_batch_size(7), &mut |_| {})
                .map(drop)
        },
        done: |_, v, ctx| {
            v.refresh().unwrap();
            let epoch = v.epoch();
            assert!(epoch >= Epoch(2), "{ctx}");
            assert!(v.pending_rewrap(epoch).unwrap().is_empty(), "{ctx}");
            assert_eq!(v.interrupted_rotation().unwrap(), None, "{ctx}");
            assert_eq!(v.min_epoch(), epoch, "{ctx}");
            check_secrets(v, None, ctx);
            for i in 0..SECRETS {
                assert_eq!(v.get("ns", &name(i)).unwrap().meta().epoch, epoch);
            }
        },
        unlock_after: default_unlock,
    });
}

fn bob_is_member(v: &Vault, env: &Env) -> bool {
    v.refresh().unwrap();
    v.members().iter().any(|m| m.id == env.bob.member_id())
}

#[test]
fn member_add_survives_every_fault() {
    run_all(&Scenario {
        name: "member-add",
        with_bob: false,
        op: |env| {
            env.vault
                .add_member(env.bob.public(), Role::Member, confirm(&env.bob))
        },
        after: |_, v, ctx| {
            check_secrets(v, None, ctx);
        },
        retry: |env, v| {
            if bob_is_member(v, env) {
                Ok(())
            } else {
                v.add_member(env.bob.public(), Role::Member, confirm(&env.bob))
            }
        },
        done: |env, v, ctx| {
            assert!(bob_is_member(v, env), "{ctx}");
            assert_eq!(v.members().len(), 2, "{ctx}");
        },
        unlock_after: default_unlock,
    });
    // After a fault-free add, bob joins and reads.
    let env = setup(false);
    env.vault
        .add_member(env.bob.public(), Role::Member, confirm(&env.bob))
        .unwrap();
    let bob = Vault::join(&env.store, &env.bob, &[&env.bob_kek], Pins::default()).unwrap();
    check_secrets(&bob, None, "bob");
}

#[test]
fn member_remove_survives_every_fault() {
    run_all(&Scenario {
        name: "member-remove",
        with_bob: true,
        op: |env| env.vault.remove_member(env.bob.member_id()).map(drop),
        after: |env, v, ctx| {
            check_secrets(v, None, ctx);
            if !bob_is_member(v, env) {
                assert!(v.epoch() >= Epoch(2), "{ctx}: a removal starts an epoch");
            }
        },
        retry: |env, v| {
            if bob_is_member(v, env) {
                v.remove_member(env.bob.member_id()).map(drop)
            } else {
                Ok(())
            }
        },
        done: |env, v, ctx| {
            assert!(!bob_is_member(v, env), "{ctx}");
            assert_eq!(v.epoch(), Epoch(2), "{ctx}");
            let bob = Vault::open(Arc::clone(&env.store)).unwrap().unlock_with(
                &env.bob_kek,
                UnlockOptions::default()
                    .with_member(Some(env.bob.member_id()))
                    .with_pins(Pins::default()),
            );
            assert!(bob.is_err(), "{ctx}: bob still unlocks");
            // Writes after the removal are under the new epoch.
            v.put("ns", "after-removal", b"y").unwrap();
            assert_eq!(
                v.get("ns", "after-removal").unwrap().meta().epoch,
                Epoch(2),
                "{ctx}"
            );
            v.delete("ns", "after-removal").unwrap();
        },
        unlock_after: default_unlock,
    });
}

#[test]
fn keyholder_rotation_survives_every_fault() {
    // The new KEK is derived from the old one so every run of the scenario (a fresh
    // vault) uses a matching pair without extra state.
    fn new_kek(env: &Env) -> RawKek {
        let mut bytes = *env.kek.expose_secret();
        bytes[0] ^= 0xff;
        RawKek::from_key(Key256::from_slice(&bytes).unwrap())
    }
    fn old_id(env: &Env) -> [u8; 8] {
        *env.kek.key_id().as_bytes()
    }
    run_all(&Scenario {
        name: "keyholder-rotate",
        with_bob: false,
        op: |env| {
            env.vault
                .rotate_keyholder(&old_id(env), &new_kek(env))
                .map(drop)
        },
        after: |_, v, ctx| {
            check_secrets(v, None, ctx);
        },
        retry: |env, v| {
            if v.keyholders()?.iter().any(|k| k.id == old_id(env)) {
                v.rotate_keyholder(&old_id(env), &new_kek(env)).map(drop)
            } else {
                Ok(())
            }
        },
        done: |env, v, ctx| {
            let ids: Vec<[u8; 8]> = v.keyholders().unwrap().iter().map(|k| k.id).collect();
            assert_eq!(ids, [*new_kek(env).key_id().as_bytes()], "{ctx}");
            let old = unlock_with(env, &env.kek);
            assert!(
                old.as_ref().is_err_and(VaultError::is_unlock_failure),
                "{ctx}: the old KEK still unlocks"
            );
        },
        // Old or new: at least one of the two unlocks at every point.
        unlock_after: |env| {
            unlock_with(env, &env.kek)
                .or_else(|_| unlock_with(env, &new_kek(env)))
                .expect("neither the old nor the new KEK unlocks after the fault")
        },
    });
}
