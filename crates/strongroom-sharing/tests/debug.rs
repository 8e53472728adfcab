//! Every type of the crate that holds or guards key material prints, under `{:?}`, what an
//! operator needs to tell values apart (vault, member, epoch, name, fingerprint) and never
//! a key: the formats below are what logs and panics show.

#[path = "helpers/common.rs"]
mod common;

use common::{Person, add_and_join, chain_key, grant_key, log_key, new_vault};
use strongroom_sharing::{
    ChainLink, Grant, KeyholderRecord, LogEntry, Pins, Role, SealedIdentity, prepare_create,
};
use strongroom_store::{MemoryStore, ReadView, ScanRange, Table};

fn row(store: &dyn ReadView, table: Table, key: &[u8]) -> Vec<u8> {
    store.get(table, key).unwrap().unwrap().value
}

#[test]
fn debug_output_names_the_value_and_redacts_every_key() {
    let store = MemoryStore::new();
    let mut alice = Person::new("alice");
    let (vault, mut a) = new_vault(&store, &mut alice);
    let mut bob = Person::new("bob");
    let b = add_and_join(&store, vault, &mut a, &mut bob, Role::Member);
    a.rekey(&store).unwrap();

    let public = alice.identity.public();
    let fingerprint = public.fingerprint();
    assert_eq!(
        format!("{fingerprint:?}"),
        format!("Fingerprint({fingerprint})")
    );
    assert_eq!(
        format!("{public:?}"),
        format!(
            "PublicIdentity({}, \"alice\", fingerprint {fingerprint})",
            alice.id()
        )
    );
    assert_eq!(
        format!("{:?}", alice.identity),
        format!("Identity({}, \"alice\", x-wing, <redacted>)", alice.id())
    );

    let grant = Grant::decode(&row(&store, Table::Wraps, &grant_key(2, bob.id()))).unwrap();
    assert_eq!(
        format!("{grant:?}"),
        format!("Grant(x-wing, vault {vault}, epoch 2, member {})", bob.id())
    );

    let link = ChainLink::decode(&row(&store, Table::Wraps, &chain_key(2))).unwrap();
    let (k1, k2) = (
        a.key(strongroom_sharing::Epoch(1)).unwrap().id(),
        a.current_key().id(),
    );
    assert_eq!(
        format!("{link:?}"),
        format!("ChainLink(vault {vault}, epoch 2 ({k2}) -> {k1})")
    );

    let entry = LogEntry::decode(&row(&store, Table::MemberLog, &log_key(1))).unwrap();
    let shown = format!("{entry:?}");
    assert!(
        shown.starts_with(&format!("LogEntry(#1 by {}: Add {{", alice.id())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{:?}", bob.identity.public())),
        "{shown}"
    );

    let sealed_row = store
        .get(Table::Identities, bob.id().as_bytes())
        .unwrap()
        .unwrap()
        .value;
    let sealed = SealedIdentity::decode(&sealed_row).unwrap();
    let shown = format!("{sealed:?}");
    assert!(
        shown.starts_with(&format!(
            "SealedIdentity(vault {vault}, member {}, ",
            bob.id()
        )) && shown.ends_with(" bytes)"),
        "{shown}"
    );
    let len: usize = shown
        .rsplit(", ")
        .next()
        .unwrap()
        .trim_end_matches(" bytes)")
        .parse()
        .unwrap();
    assert!(len > 32 && len < sealed_row.len(), "{shown}");

    let keyholders = store
        .scan(Table::Keyholders, &ScanRange::all(), None, 10)
        .unwrap()
        .rows;
    assert!(!keyholders.is_empty());
    for kh in keyholders {
        let record = KeyholderRecord::decode(&kh.value).unwrap();
        let shown = format!("{record:?}");
        assert!(shown.starts_with("KeyholderRecord("), "{shown}");
        assert!(
            shown.contains(", created ") && shown.contains(", last used "),
            "{shown}"
        );
    }

    assert_eq!(format!("{:?}", Pins::new()), "Pins(empty)");
    assert_eq!(
        format!("{:?}", b.pins()),
        format!(
            "Pins(vault {vault}, seq {}, epoch 1)",
            b.pins().high_water().unwrap().seq
        )
    );

    let shown = format!("{a:?}");
    assert!(
        shown.starts_with(&format!(
            "Session {{ vault: {vault:?}, identity: {:?}, epoch: Epoch(2), keys: 2",
            alice.identity
        )),
        "{shown}"
    );

    let other = MemoryStore::new();
    let carol = Person::new("carol");
    let pending = prepare_create(
        &other,
        strongroom_crypto::VaultId::generate().unwrap(),
        &carol.identity,
        &[&carol.kek],
    )
    .unwrap();
    let shown = format!("{pending:?}");
    assert!(
        shown.starts_with("PendingCreate { session: Session {"),
        "{shown}"
    );
    assert!(
        shown.contains(", ops: ") && shown.ends_with(", .. }"),
        "{shown}"
    );

    // No vault key, in raw or hex form, appears anywhere.
    let everything = format!("{a:?}{b:?}{grant:?}{link:?}{entry:?}{sealed:?}{pending:?}");
    for key in [
        a.current_key(),
        a.key(strongroom_sharing::Epoch(1)).unwrap(),
    ] {
        let secret = key.expose_secret().expose_secret();
        assert!(!everything.contains(&hex::encode(secret)));
        assert!(!everything.contains(&format!("{secret:?}")));
    }
}

/// Role names are part of the CLI's output and of error messages: stable, lowercase.
#[test]
fn roles_have_stable_names_and_ids() {
    let shown: Vec<(u8, &str, String)> = Role::ALL
        .iter()
        .map(|r| (r.id(), r.name(), r.to_string()))
        .collect();
    let expected = [
        (1, "owner"),
        (2, "admin"),
        (3, "member"),
        (4, "read-only"),
        (5, "scoped"),
    ];
    assert_eq!(shown.len(), expected.len());
    for ((id, name, display), (want_id, want)) in shown.iter().zip(expected) {
        assert_eq!((*id, *name, display.as_str()), (want_id, want, want));
        assert_eq!(Role::from_id(*id).unwrap().name(), want);
    }
    assert_eq!(Role::from_id(0), None);
    assert_eq!(Role::from_id(6), None);
}
