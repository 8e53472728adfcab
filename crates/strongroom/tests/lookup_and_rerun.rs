//! Picking a member by name before unlocking, and re-running an interrupted keyholder
//! rotation.

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Vault};

#[test]
fn members_are_listed_before_unlock() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let options = CreateOptions::default().with_member_name("alice".into());
    let (vault, _) = Vault::create(Arc::clone(&store), &kek, &options).unwrap();
    let bob = Identity::generate("bob").unwrap();
    let confirmed = bob
        .public()
        .confirm_fingerprint(&bob.public().fingerprint().digits())
        .unwrap();
    vault
        .add_member(bob.public(), Role::Member, confirmed)
        .unwrap();

    let locked = Vault::open(Arc::clone(&store)).unwrap();
    let mut listed: Vec<(String, Role)> = locked
        .members()
        .unwrap()
        .into_iter()
        .map(|m| (m.name, m.role))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("alice".to_owned(), Role::Owner),
            ("bob".to_owned(), Role::Member)
        ]
    );
    let alice = locked
        .members()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "alice")
        .unwrap();
    assert_eq!(alice.id, vault.member_id());
    let bob_kek = RawKek::generate().unwrap();
    Vault::join(&store, &bob, &[&bob_kek], Pins::default()).unwrap();
    // with two members' credentials stored, the id found by name picks the member
    let again = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock_with(
            &kek,
            strongroom::UnlockOptions::default()
                .with_member(Some(alice.id))
                .with_pins(Pins::default()),
        )
        .unwrap();
    assert_eq!(again.member_id(), alice.id);
}

#[test]
fn keyholder_rotation_rerun_after_the_new_keyholder_was_added() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let old = RawKek::generate().unwrap();
    let (vault, _) = Vault::create(Arc::clone(&store), &old, &CreateOptions::default()).unwrap();
    vault.put("ns", "s", b"v").unwrap();
    let old_id = vault.keyholders().unwrap()[0].id;
    let new = RawKek::generate().unwrap();
    // the interrupted run got as far as adding the new keyholder
    vault.add_keyholder(&new).unwrap();
    assert_eq!(vault.keyholders().unwrap().len(), 2);
    let info = vault.rotate_keyholder(&old_id, &new).unwrap();
    assert_eq!(&info.id, new.key_id().as_bytes());
    let left: Vec<[u8; 8]> = vault.keyholders().unwrap().iter().map(|k| k.id).collect();
    assert_eq!(left, [info.id]);
    assert!(
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&old)
            .unwrap_err()
            .is_unlock_failure()
    );
    let v = Vault::open(store).unwrap().unlock(&new).unwrap();
    assert_eq!(v.get("ns", "s").unwrap().expose_secret(), b"v");
}
