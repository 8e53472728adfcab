//! The OS-keyring keyholder against the real Linux kernel keyring.
//!
//! Each test re-runs itself in a child process inside a fresh session keyring
//! (`keyctl session - <this test binary> <test name>`), so tests never touch the session
//! keyring of whoever runs them, and the denied-access case can be staged for real.
//! Without `keyctl` (Debian package keyutils) the tests print `SKIPPED:` and pass, unless
//! `STRONGROOM_REQUIRE_KEYRING=1`, which makes that a failure.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::process::Command;

use strongroom_crypto::Key256;
use strongroom_keyholder::{
    CustodyProblem, Keyholder, KeyholderError, Stanza, WrapContext, unwrap_any,
};
use strongroom_keyring::{KeyringEntry, KeyringKeyholder};
use strongroom_recovery::RawKek;

const CHILD: &str = "STRONGROOM_KEYRING_TEST_CHILD";
const SERVICE: &str = "strongroom-test";

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/vault-key",
        subject: b"vault-1",
    }
}

/// Runs `body` in a child process joined to a fresh session keyring. `setup` is a shell
/// command run inside that session first (e.g. to lock the keyring down).
fn in_fresh_session(name: &str, setup: Option<&str>, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    let have_keyctl = Command::new("keyctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_keyctl {
        assert!(
            std::env::var("STRONGROOM_REQUIRE_KEYRING").as_deref() != Ok("1"),
            "{name}: `keyctl` not found but STRONGROOM_REQUIRE_KEYRING=1: install the Debian package keyutils"
        );
        // Written straight to the file descriptor: the test harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name}: `keyctl` not found (install the Debian package keyutils; STRONGROOM_REQUIRE_KEYRING=1 makes this a failure)"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("keyctl");
    cmd.args(["session", "-"]);
    if let Some(script) = setup {
        cmd.args(["sh", "-c", &format!("{script} && exec \"$0\" \"$@\"")]);
    }
    cmd.arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its session keyring:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {name} ... ok")),
        "{name} did not run in the child:\n{stdout}\n{stderr}"
    );
}

fn unique(prefix: &str) -> String {
    let r: [u8; 6] = strongroom_crypto::random::array().unwrap();
    let id = strongroom_crypto::KeyId::from_bytes([r[0], r[1], r[2], r[3], r[4], r[5], 0, 0]);
    format!("{prefix}-{id}")
}

/// The 32 bytes of a keyutils entry, read with `keyctl` from another process.
fn read_with_keyctl(entry: &KeyringEntry) -> Option<Vec<u8>> {
    let desc = format!("keyring:{}@{}", entry.entry, entry.service);
    let id = Command::new("keyctl")
        .args(["search", "@s", "user", &desc])
        .output()
        .unwrap();
    if !id.status.success() {
        return None;
    }
    let id = String::from_utf8(id.stdout).unwrap();
    let data = Command::new("keyctl")
        .args(["pipe", id.trim()])
        .output()
        .unwrap();
    assert!(data.status.success());
    Some(data.stdout)
}

#[test]
fn create_wrap_reopen_and_shred() {
    in_fresh_session("create_wrap_reopen_and_shred", None, || {
        let name = unique("vault");
        let kh = KeyringKeyholder::create(SERVICE, &name).unwrap();
        assert_eq!(kh.entry().to_string(), format!("{SERVICE}/{name}"));

        // The KEK really is in the kernel keyring, readable by another process.
        let raw = read_with_keyctl(kh.entry()).expect("the entry exists in keyutils");
        assert_eq!(raw.len(), 32);
        let seen = RawKek::from_key(Key256::from_slice(&raw).unwrap());
        assert_eq!(seen.key_id(), kh.key_id());

        let key = Key256::generate().unwrap();
        let stanza = kh.wrap(&ctx(), &key).unwrap();
        assert_eq!(
            KeyringKeyholder::entry_of(&stanza).unwrap().as_ref(),
            Some(kh.entry())
        );
        let stored = stanza.encode();

        // A later process: decode the stanza, open the entry it names, unlock.
        let stanza = Stanza::decode(&stored).unwrap();
        let reopened = KeyringKeyholder::open_for(&stanza).unwrap();
        assert_eq!(reopened.key_id(), kh.key_id());
        let (k, _) = unwrap_any(&reopened, &ctx(), std::slice::from_ref(&stanza)).unwrap();
        assert!(bool::from(k.ct_eq(&key)));

        // Never overwritten.
        assert!(matches!(
            KeyringKeyholder::create(SERVICE, &name),
            Err(KeyholderError::AlreadyExists { .. })
        ));

        // Shred: the entry is gone from the kernel keyring, and the stanza cannot be opened.
        assert!(kh.delete_entry().unwrap());
        assert!(read_with_keyctl(kh.entry()).is_none());
        assert!(!KeyringKeyholder::delete(SERVICE, &name).unwrap());
        match KeyringKeyholder::open_for(&stanza) {
            Err(KeyholderError::Custody(c)) if c.problem == CustodyProblem::Missing => {
                assert!(c.what.contains(&format!("{SERVICE}/{name}")), "{}", c.what);
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn missing_entry_is_named() {
    in_fresh_session("missing_entry_is_named", None, || {
        let name = unique("absent");
        let err = KeyringKeyholder::open(SERVICE, &name).unwrap_err();
        match &err {
            KeyholderError::Custody(c) if c.problem == CustodyProblem::Missing => {
                assert!(c.what.contains(&format!("{SERVICE}/{name}")), "{}", c.what);
            }
            e => panic!("{e:?}"),
        }
        assert!(err.to_string().contains(&name), "{err}");
    });
}

#[test]
fn entry_from_another_key_is_reported_as_wrong_kek() {
    in_fresh_session(
        "entry_from_another_key_is_reported_as_wrong_kek",
        None,
        || {
            let a = KeyringKeyholder::create(SERVICE, &unique("a")).unwrap();
            let b = KeyringKeyholder::create(SERVICE, &unique("b")).unwrap();
            let stanza = a.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();
            assert!(b.unwrap(&ctx(), &stanza).unwrap().is_none());
            match unwrap_any(&b, &ctx(), &[stanza]).unwrap_err() {
                KeyholderError::WrongKek { key_id } => assert_eq!(key_id, b.key_id().to_string()),
                e => panic!("{e:?}"),
            }
            a.delete_entry().unwrap();
            b.delete_entry().unwrap();
        },
    );
}

/// A session keyring that refuses this process (as the inherited one does on some
/// machines) yields a custody error, access denied, with the hint to use a fresh session keyring.
#[test]
fn denied_session_keyring_gives_the_hint() {
    in_fresh_session(
        "denied_session_keyring_gives_the_hint",
        Some("keyctl setperm @s 0"),
        || {
            let err = KeyringKeyholder::create(SERVICE, &unique("denied")).unwrap_err();
            match &err {
                KeyholderError::Custody(c) if c.problem == CustodyProblem::Denied => {
                    assert!(c.what.contains("keyctl session -"), "{}", c.what);
                }
                e => panic!("expected access denied, got {e:?}"),
            }
            assert!(matches!(
                KeyringKeyholder::open(SERVICE, "anything"),
                Err(KeyholderError::Custody(c)) if c.problem == CustodyProblem::Denied
            ));
        },
    );
}

/// The rotation sequence of the README, interrupted after every step and re-run: it always
/// completes, the vault key stays reachable throughout, and at the end only the new entry
/// opens it and the old entry is gone.
#[test]
fn rotation_is_crash_safe_and_idempotent() {
    in_fresh_session("rotation_is_crash_safe_and_idempotent", None, || {
        let vault_key = Key256::generate().unwrap();
        for crash_after in 0..=5 {
            let old = KeyringKeyholder::create(SERVICE, &unique("rot")).unwrap();
            let mut stored: Vec<Stanza> = vec![old.wrap(&ctx(), &vault_key).unwrap()];

            // First run, "crashing" after `crash_after` steps; then a full re-run.
            rotate(&old, &vault_key, &mut stored, crash_after);
            let (k, _) = unwrap_any(&old_or_new(&stored), &ctx(), &stored).unwrap();
            assert!(
                bool::from(k.ct_eq(&vault_key)),
                "reachable after crash at {crash_after}"
            );
            rotate(&old, &vault_key, &mut stored, usize::MAX);

            let next = old.entry().next_generation();
            assert_eq!(stored.len(), 1);
            assert_eq!(
                KeyringKeyholder::entry_of(&stored[0]).unwrap().as_ref(),
                Some(&next)
            );
            let new = KeyringKeyholder::open(&next.service, &next.entry).unwrap();
            assert!(bool::from(
                unwrap_any(&new, &ctx(), &stored)
                    .unwrap()
                    .0
                    .ct_eq(&vault_key)
            ));
            assert!(matches!(
                KeyringKeyholder::open(&old.entry().service, &old.entry().entry),
                Err(KeyholderError::Custody(c)) if c.problem == CustodyProblem::Missing
            ));
            assert!(matches!(
                unwrap_any(&old, &ctx(), &stored),
                Err(KeyholderError::WrongKek { .. })
            ));
            new.delete_entry().unwrap();
        }
    });
}

/// Opens whichever keyholder the first stored stanza names.
fn old_or_new(stored: &[Stanza]) -> KeyringKeyholder {
    KeyringKeyholder::open_for(&stored[0]).unwrap()
}

/// The five steps of the README, stopping after `steps` of them.
fn rotate(old: &KeyringKeyholder, vault_key: &Key256, stored: &mut Vec<Stanza>, steps: usize) {
    // The caller holds the vault key from an unlock with the old keyholder.
    let (k, _) = match unwrap_any(old, &ctx(), stored) {
        Ok(x) => x,
        // A re-run after step 4: the old stanza is gone; unlock with the new one.
        Err(_) => unwrap_any(&old_or_new(stored), &ctx(), stored).unwrap(),
    };
    assert!(bool::from(k.ct_eq(vault_key)));
    if steps == 0 {
        return;
    }
    // 1. new entry (created, or reopened on a re-run)
    let next = old.entry().next_generation();
    let (new, _created) = KeyringKeyholder::open_or_create(&next.service, &next.entry).unwrap();
    if steps == 1 {
        return;
    }
    // 2. new stanza, unless already stored
    if !stored.iter().any(|s| s.id == *new.key_id().as_bytes()) {
        stored.push(new.wrap(&ctx(), &k).unwrap());
    }
    if steps == 2 {
        return;
    }
    // 3. verify the new keyholder unlocks from storage
    let (check, _) = unwrap_any(&new, &ctx(), stored).unwrap();
    assert!(bool::from(check.ct_eq(vault_key)));
    if steps == 3 {
        return;
    }
    // 4. remove the old stanza
    stored.retain(|s| s.id != *old.key_id().as_bytes());
    if steps == 4 {
        return;
    }
    // 5. shred the old entry (idempotent)
    KeyringKeyholder::delete(&old.entry().service, &old.entry().entry).unwrap();
}
