//! A keyholder whose custody fails (token missing, KMS unreachable, permission denied)
//! yields `VaultError::Custody` with the backend's error as its source: not an unlock
//! failure, and never recorded as a failed unlock attempt. A wrong key still is.

use std::error::Error as _;
use std::sync::Arc;

use strongroom::crypto::Key256;
use strongroom::recovery::{
    CustodyError, CustodyProblem, KekKeyholder, Keyholder, KeyholderError, KeyholderKind, RawKek,
    Stanza, WrapContext,
};
use strongroom::store::{MemoryStore, Store};
use strongroom::{Action, CreateOptions, Vault, VaultError};

/// An OS-keyring-like keyholder whose service is down.
struct Unreachable;

impl Keyholder for Unreachable {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::OsKeyring
    }

    fn wrap(&self, _: &WrapContext<'_>, _: &Key256) -> Result<Stanza, KeyholderError> {
        Err(down())
    }

    fn unwrap(&self, _: &WrapContext<'_>, s: &Stanza) -> Result<Option<Key256>, KeyholderError> {
        if s.kind != KeyholderKind::OsKeyring {
            return Ok(None);
        }
        Err(down())
    }
}

/// The service is down.
fn down() -> KeyholderError {
    CustodyError::new(
        KeyholderKind::OsKeyring,
        CustodyProblem::Unreachable,
        "cannot reach the key service at https://127.0.0.1:9: retry when it is up",
    )
    .with_source(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ))
    .into()
}

fn failed_unlocks(v: &Vault) -> usize {
    v.audit_list(0, 1000)
        .unwrap()
        .iter()
        .filter(|e| e.action == Action::UnlockFailed)
        .count()
}

#[test]
fn custody_failures_are_not_failed_unlocks() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (v, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    let keyring =
        KekKeyholder::new(Key256::generate().unwrap(), KeyholderKind::OsKeyring, b"e").unwrap();
    v.add_keyholder(&keyring).unwrap();
    drop(v);

    let err = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&Unreachable)
        .unwrap_err();
    assert!(!err.is_unlock_failure(), "{err:?}");
    match &err {
        VaultError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Unreachable);
            assert!(c.is_retryable());
        }
        other => panic!("expected a custody failure, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("https://127.0.0.1:9"),
        "names the endpoint: {msg}"
    );
    assert_eq!(
        err.source().map(ToString::to_string),
        Some("connection refused".to_owned()),
        "the backend's error is the source"
    );

    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek)
        .unwrap();
    assert_eq!(failed_unlocks(&v), 0, "a custody failure is not recorded");
    drop(v);

    // A wrong key is.
    let wrong = RawKek::generate().unwrap();
    let err = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&wrong)
        .unwrap_err();
    assert!(err.is_unlock_failure(), "{err:?}");
    let v = Vault::open(store).unwrap().unlock(&kek).unwrap();
    assert_eq!(failed_unlocks(&v), 1);
}
