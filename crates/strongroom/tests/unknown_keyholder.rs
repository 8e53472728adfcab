//! A vault that a newer release gave a keyholder of a kind this release does not know must
//! still unlock with its other keyholders here; the stranger is listed as unknown, kept
//! as is, and never reported as tampering.
//!
//! The fixture `tests/data/v1/unknown_keyholder.snapshot` is a vault whose owner has a raw
//! KEK and a keyholder of kind id 200 (no release has such a kind). Regenerate only for a
//! deliberate format change:
//! `STRONGROOM_REGENERATE_VECTORS=1 cargo test -p strongroom --test unknown_keyholder`.

use std::path::PathBuf;
use std::sync::Arc;

use strongroom::crypto::Key256;
use strongroom::recovery::{Keyholder, KeyholderError, KeyholderKind, RawKek, Stanza, WrapContext};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Level, RestoreOptions, Vault, restore_snapshot};

/// A fixed test key (not a secret): the fixture vault's raw KEK.
const KEK_HEX: &str = "8899aabbccddeeff00112233445566770f1e2d3c4b5a69788796a5b4c3d2e1f0"; // pragma: allowlist secret
const FUTURE_KIND: u8 = 200;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v1")
        .join(name)
}

fn kek() -> RawKek {
    RawKek::from_hex(KEK_HEX).unwrap()
}

/// Stands in for a keyholder of a newer release: it writes a stanza of a kind id this
/// release does not know, with a body only that release could read.
struct FromTheFuture;

impl Keyholder for FromTheFuture {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::from_stored(FUTURE_KIND)
    }

    fn wrap(&self, _: &WrapContext<'_>, _: &Key256) -> Result<Stanza, KeyholderError> {
        Ok(Stanza {
            kind: self.kind(),
            id: *b"future!!",
            body: b"\x07a body layout of a newer strongroom".to_vec(),
        })
    }

    fn unwrap(&self, _: &WrapContext<'_>, _: &Stanza) -> Result<Option<Key256>, KeyholderError> {
        Ok(None)
    }
}

fn generate() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, _) = Vault::create(
        Arc::clone(&store),
        &kek(),
        &CreateOptions::default().with_member_name("owner".into()),
    )
    .unwrap();
    v.put("core/app", "DB_PASSWORD", b"still readable").unwrap();
    v.add_keyholder(&FromTheFuture).unwrap();
    let _ = std::fs::remove_file(data("unknown_keyholder.snapshot"));
    v.snapshot_to(&data("unknown_keyholder.snapshot"), &mut |_| {})
        .unwrap();
}

#[test]
fn a_vault_with_an_unknown_keyholder_kind_still_unlocks() {
    if std::env::var_os("STRONGROOM_REGENERATE_VECTORS").is_some() {
        generate();
    }
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let v = restore_snapshot(
        &store,
        &data("unknown_keyholder.snapshot"),
        &kek(),
        &RestoreOptions::default(),
    )
    .expect("the raw KEK unlocks although a keyholder of an unknown kind is stored")
    .vault;
    assert_eq!(
        v.get("core/app", "DB_PASSWORD").unwrap().expose_secret(),
        b"still readable"
    );

    // Listed as unknown, with its id byte.
    let khs = v.keyholders().unwrap();
    assert_eq!(khs.len(), 2);
    let unknown: Vec<_> = khs.iter().filter(|k| !k.kind.is_known()).collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].kind, KeyholderKind::Unknown(FUTURE_KIND));
    assert_eq!(unknown[0].id, *b"future!!");
    assert_eq!(unknown[0].kind.to_string(), "unknown(200)");
    assert_eq!(
        v.status().unwrap().keyholders.len(),
        2,
        "status lists it too"
    );

    // doctor says what it is, as a warning, not a failure.
    let report = v.doctor(strongroom::DoctorOptions::default()).unwrap();
    let finding = report
        .findings
        .iter()
        .find(|f| f.message.contains("does not know"))
        .expect("doctor names the unknown keyholder");
    assert_eq!(finding.level, Level::Warn);
    assert!(
        finding.message.contains("unknown(200)"),
        "{}",
        finding.message
    );
    assert!(
        report.findings.iter().all(|f| f.level != Level::Fail),
        "{:?}",
        report.findings
    );

    // A fresh open of the live store unlocks too, and the stranger survives changes.
    let again = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek())
        .unwrap();
    let new_kek = RawKek::generate().unwrap();
    let raw_id = khs.iter().find(|k| k.kind.is_known()).unwrap().id;
    again.rotate_keyholder(&raw_id, &new_kek).unwrap();
    again.rotate_vault_key().unwrap();
    let after = Vault::open(store).unwrap().unlock(&new_kek).unwrap();
    assert!(
        after
            .keyholders()
            .unwrap()
            .iter()
            .any(|k| k.kind == KeyholderKind::Unknown(FUTURE_KIND))
    );
    assert_eq!(
        after
            .get("core/app", "DB_PASSWORD")
            .unwrap()
            .expose_secret(),
        b"still readable"
    );
}
