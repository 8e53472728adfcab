//! A frozen vault written by the release that introduced format 2 (a snapshot file in
//! tests/data/v2/), which every later release must keep opening: format-2 index entries
//! (the head inline, and a head body too large to inline stored apart), format-2 wrapped
//! data keys with body digests, older versions in their own rows, epochs bound by 256-bit
//! key commitments, hybrid (X-Wing) identities and grants, a classical member added then
//! removed, the hybrid-only policy, rotation after a removal, and the audit log.
//! Regenerate only for a deliberate format change (which must bump a version):
//! `STRONGROOM_REGENERATE_VECTORS=1 cargo test -p strongroom --test frozen_v2`.

use std::path::PathBuf;
use std::sync::Arc;

use strongroom::crypto::MemberId;
use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, KemKind, Role};
use strongroom::store::{MemoryStore, ScanRange, Store, Table, scan_all};
use strongroom::{
    Authorship, CreateOptions, Epoch, RestoreOptions, UnlockOptions, Vault, restore_snapshot,
    verify_snapshot,
};

/// A fixed test key (not a secret): the frozen vault's raw KEK.
const KEK_HEX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"; // pragma: allowlist secret

/// Larger than what an index entry carries inline: stored in its own row.
const BLOB_LEN: usize = 20 * 1024;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/v2")
        .join(name)
}

fn kek() -> RawKek {
    RawKek::from_hex(KEK_HEX).unwrap()
}

fn blob() -> Vec<u8> {
    (0..BLOB_LEN).map(|i| (i % 251) as u8).collect()
}

fn add(v: &Vault, who: &Identity, role: Role) {
    let public = who.public();
    let confirmed = public
        .confirm_fingerprint(&public.fingerprint().to_string())
        .unwrap();
    v.add_member(public, role, confirmed).unwrap();
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
    v.put("core/app", "API_TOKEN", b"token-v2").unwrap();
    v.put("core/app", "BLOB", &blob()).unwrap();
    add(&v, &Identity::generate("bob").unwrap(), Role::ReadOnly);
    let carol =
        Identity::generate_kind(MemberId::generate().unwrap(), "carol", KemKind::X25519).unwrap();
    add(&v, &carol, Role::Member);
    v.rotate_vault_key().unwrap();
    v.remove_member(carol.public().member_id()).unwrap();
    v.rotate_vault_key().unwrap();
    v.require_hybrid().unwrap();
    v.put("core/app", "AFTER_REMOVAL", b"latest").unwrap();
    std::fs::create_dir_all(data("")).unwrap();
    let _ = std::fs::remove_file(data("vault.snapshot"));
    v.snapshot_to(&data("vault.snapshot"), &mut |_| {}).unwrap();
}

fn first_bytes(store: &Arc<dyn Store>, table: Table) -> Vec<u8> {
    scan_all(&**store, table, &ScanRange::all())
        .unwrap()
        .iter()
        .map(|r| r.value[0])
        .collect()
}

#[test]
fn frozen_v2_vault_still_opens() {
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

    // Epochs: 1 (created), 2 (rotation), 3 (carol's removal), 4 (rotation, the older
    // epochs retired).
    assert_eq!(v.epoch(), Epoch(4));
    assert_eq!(v.min_epoch(), Epoch(4));

    // Every persisted record row is in format 2.
    assert!(first_bytes(&store, Table::Index).iter().all(|&f| f == 2));
    assert!(first_bytes(&store, Table::Deks).iter().all(|&f| f == 2));
    assert_eq!(
        first_bytes(&store, Table::Deks).len(),
        1,
        "one older version (DB_PASSWORD v1) keeps its data key in its own row"
    );
    assert_eq!(
        first_bytes(&store, Table::Bodies).len(),
        2,
        "DB_PASSWORD v1, and BLOB's head stored apart"
    );

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
        b"token-v2"
    );
    assert_eq!(v.get("core/app", "BLOB").unwrap().expose_secret(), &blob());
    let latest = v.get("core/app", "AFTER_REMOVAL").unwrap();
    assert_eq!(latest.expose_secret(), b"latest");
    assert_eq!(latest.meta().epoch, Epoch(4));

    // Members: hybrid only, under the signed policy.
    let mut names: Vec<String> = v.members().into_iter().map(|m| m.name).collect();
    names.sort();
    assert_eq!(names, ["bob", "frozen-owner"]);
    assert!(v.classical_members().is_empty());
    let dave =
        Identity::generate_kind(MemberId::generate().unwrap(), "dave", KemKind::X25519).unwrap();
    let public = dave.public();
    let confirmed = public
        .confirm_fingerprint(&public.fingerprint().to_string())
        .unwrap();
    assert!(
        v.add_member(public, Role::Member, confirmed).is_err(),
        "the hybrid-only policy refuses a classical member"
    );

    let audit = v.audit_verify().unwrap();
    assert!(audit.entries >= 12, "{}", audit.entries);

    // Still writable and rotatable by this build.
    v.put("core/app", "NEW", b"x").unwrap();
    v.rotate_vault_key().unwrap();
    assert_eq!(v.status().unwrap().pending_rewrap, 0);
    assert_eq!(v.get("core/app", "BLOB").unwrap().expose_secret(), &blob());
    assert_eq!(
        v.get_version("core/app", "DB_PASSWORD", 1)
            .unwrap()
            .expose_secret(),
        b"first"
    );
}

/// The frozen vault's versions were written unsigned (payload format 1): this build reads
/// them while the vault does not require signed writes, and `require_signed_writes` moves
/// it: every version re-encrypted and signed by the owner (authors unchanged), then the
/// signed policy that every handle applies.
#[test]
fn frozen_v2_vault_moves_to_signed_writes() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let v = restore_snapshot(
        &store,
        &data("vault.snapshot"),
        &kek(),
        &RestoreOptions::default(),
    )
    .unwrap()
    .vault;
    assert!(!v.signed_writes_required());
    let before = v.get_version("core/app", "DB_PASSWORD", 1).unwrap();
    assert_eq!(
        before.meta().authorship,
        Authorship::Unsigned,
        "written unsigned"
    );
    let author = before.meta().updated_by;

    v.require_signed_writes(strongroom::RotateOptions::default(), &mut |_| {})
        .unwrap();
    assert!(v.signed_writes_required());
    assert!(
        v.require_signed_writes(strongroom::RotateOptions::default(), &mut |_| {})
            .is_err(),
        "once"
    );
    let again = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock(&kek())
        .unwrap();
    assert!(again.signed_writes_required());
    for (name, version, value) in [
        ("DB_PASSWORD", Some(1), b"first".to_vec()),
        ("DB_PASSWORD", None, b"second".to_vec()),
        ("API_TOKEN", None, b"token-v2".to_vec()),
        ("BLOB", None, blob()),
        ("AFTER_REMOVAL", None, b"latest".to_vec()),
    ] {
        let got = match version {
            Some(n) => again.get_version("core/app", name, n),
            None => again.get("core/app", name),
        }
        .unwrap();
        assert_eq!(got.expose_secret(), &value[..], "{name} {version:?}");
        assert_eq!(
            got.meta().authorship,
            Authorship::Vouched { by: v.member_id() },
            "{name} {version:?}"
        );
    }
    let after = again.get_version("core/app", "DB_PASSWORD", 1).unwrap();
    assert_eq!(after.meta().updated_by, author, "the author is kept");
    let audit = again.audit_list(0, 1000).unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == strongroom::Action::RequireSignedWrites),
        "audited"
    );
}
