//! A frozen version-1 vault (a snapshot file in tests/data/v1/) that every later release
//! must keep opening: the snapshot format, the vault header, index entries, payloads, the
//! audit log, the membership log, grants, the key chain after a rotation, and keyholder
//! stanzas. Regenerate only for a deliberate format change (which must bump a version):
//! `STRONGROOM_REGENERATE_VECTORS=1 cargo test -p strongroom --test frozen_v1`.

use std::path::PathBuf;
use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Role};
use strongroom::store::{MemoryStore, Store};
use strongroom::{
    CreateOptions, Epoch, RestoreOptions, UnlockOptions, Vault, restore_snapshot, verify_snapshot,
};

/// A fixed test key (not a secret): the frozen vault's raw KEK.
const KEK_HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"; // pragma: allowlist secret

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v1")
        .join(name)
}

fn kek() -> RawKek {
    RawKek::from_hex(KEK_HEX).unwrap()
}

fn generate() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, _) = Vault::create(
        Arc::clone(&store),
        &kek(),
        &CreateOptions::default().with_member_name("frozen-owner".into()),
    )
    .unwrap();
    v.put("core/app", "DB_PASSWORD", b"first").unwrap();
    v.put("core/app", "DB_PASSWORD", b"second").unwrap();
    v.put("core/app", "API_TOKEN", b"token-v1").unwrap();
    v.put("plugins/x", "binary", &[0, 1, 2, 254, 255]).unwrap();
    let bob = Identity::generate("bob").unwrap();
    v.add_member(
        bob.public(),
        Role::ReadOnly,
        bob.public()
            .confirm_fingerprint(&bob.public().fingerprint().to_string())
            .unwrap(),
    )
    .unwrap();
    v.rotate_vault_key().unwrap();
    v.put("core/app", "AFTER_ROTATION", b"epoch-2").unwrap();
    let _ = std::fs::remove_file(data("vault.snapshot"));
    v.snapshot_to(&data("vault.snapshot"), &mut |_| {}).unwrap();
}

#[test]
fn frozen_v1_vault_still_opens() {
    if std::env::var_os("STRONGROOM_REGENERATE_VECTORS").is_some() {
        generate();
    }
    let path = data("vault.snapshot");
    let ver = verify_snapshot(&path, &kek(), &UnlockOptions::default()).unwrap();
    assert_eq!((ver.secrets, ver.versions), (4, 5));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let v = restore_snapshot(&store, &path, &kek(), &RestoreOptions::default())
        .unwrap()
        .vault;
    assert_eq!(v.epoch(), Epoch(2));
    assert_eq!(v.min_epoch(), Epoch(2));
    assert_eq!(
        v.get("core/app", "DB_PASSWORD").unwrap().expose_secret(),
        b"second"
    );
    assert_eq!(
        v.get_version("core/app", "DB_PASSWORD", 1)
            .unwrap()
            .expose_secret(),
        b"first"
    );
    assert_eq!(
        v.get("core/app", "API_TOKEN").unwrap().expose_secret(),
        b"token-v1"
    );
    assert_eq!(
        v.get("plugins/x", "binary").unwrap().expose_secret(),
        &[0, 1, 2, 254, 255]
    );
    assert_eq!(
        v.get("core/app", "AFTER_ROTATION").unwrap().meta().epoch,
        Epoch(2)
    );
    let mut names: Vec<String> = v.members().into_iter().map(|m| m.name).collect();
    names.sort();
    assert_eq!(names, ["bob", "frozen-owner"]);
    let audit = v.audit_verify().unwrap();
    assert!(audit.entries >= 10);
    // Still writable by this build; its data keys are wrapped in format 1 (no body digest)
    // and count as pending until a rotation upgrades them.
    v.put("core/app", "NEW", b"x").unwrap();
    let formats = |store: &Arc<dyn Store>| -> Vec<u8> {
        strongroom::store::scan_all(
            &**store,
            strongroom::store::Table::Deks,
            &strongroom::store::ScanRange::all(),
        )
        .unwrap()
        .iter()
        .map(|r| r.value[0])
        .collect()
    };
    let format_1 = formats(&store)
        .into_iter()
        .filter(|f| *f == 1)
        .collect::<Vec<_>>();
    assert_eq!(format_1.len(), 5, "the frozen vault's five versions");
    assert_eq!(v.status().unwrap().pending_rewrap, 5);
    v.rotate_vault_key().unwrap();
    assert!(
        formats(&store).iter().all(|&f| f == 2),
        "every data key upgraded"
    );
    assert_eq!(v.status().unwrap().pending_rewrap, 0);
    assert_eq!(
        v.get("core/app", "DB_PASSWORD").unwrap().expose_secret(),
        b"second"
    );
    assert_eq!(
        v.get_version("core/app", "DB_PASSWORD", 1)
            .unwrap()
            .expose_secret(),
        b"first"
    );
}

/// The frozen vault's members are classical (X25519, the first release's identities):
/// status and doctor name them, the owner upgrades to a hybrid identity and keeps every
/// secret, and the vault requires hybrid grants once no classical member is left.
#[test]
fn frozen_v1_members_upgrade_to_hybrid_grants() {
    use strongroom::sharing::KemKind;
    use strongroom::{DoctorOptions, Level};
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let v = restore_snapshot(
        &store,
        &data("vault.snapshot"),
        &kek(),
        &RestoreOptions::default(),
    )
    .unwrap()
    .vault;
    let classical = |v: &Vault| -> Vec<String> {
        let mut n: Vec<String> = v
            .status()
            .unwrap()
            .classical_members
            .into_iter()
            .map(|m| m.name)
            .collect();
        n.sort();
        n
    };
    assert_eq!(classical(&v), ["bob", "frozen-owner"]);
    let pq = |v: &Vault| {
        v.doctor(DoctorOptions::default())
            .unwrap()
            .findings
            .into_iter()
            .find(|f| f.check == "post-quantum")
            .unwrap()
    };
    let finding = pq(&v);
    assert_eq!(finding.level, Level::Warn);
    assert!(finding.message.contains("bob") && finding.message.contains("upgrade-identity"));
    assert!(v.require_hybrid().is_err(), "classical members are left");

    v.upgrade_identity().unwrap();
    assert_eq!(v.public_identity().kem(), KemKind::XWing);
    assert_eq!(classical(&v), ["bob"]);
    // Reopened with the same keyholder, the upgraded owner reads old and new secrets.
    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek())
        .unwrap();
    assert_eq!(v.public_identity().kem(), KemKind::XWing);
    assert_eq!(
        v.get_version("core/app", "DB_PASSWORD", 1)
            .unwrap()
            .expose_secret(),
        b"first"
    );
    assert!(v.require_hybrid().is_err(), "bob is still classical");
    let bob = v.members().into_iter().find(|m| m.name == "bob").unwrap();
    assert_eq!(bob.kem, KemKind::X25519);
    v.remove_member(bob.id).unwrap();
    v.require_hybrid().unwrap();
    assert!(v.hybrid_required());
    let finding = pq(&v);
    assert_eq!(finding.level, Level::Ok, "{}", finding.message);
    let v = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek())
        .unwrap();
    assert!(v.status().unwrap().hybrid_required);
    assert_eq!(
        v.get("core/app", "AFTER_ROTATION").unwrap().expose_secret(),
        b"epoch-2"
    );
}
