//! Frozen v1 data (`tests/data/v1/vault.json`): a whole vault written by the first
//! release — identities, every log entry kind, grants, chain links, sealed credentials,
//! keyholder records and pins. Every later release must keep opening it unchanged.

use std::collections::BTreeMap;

use serde::Deserialize;
use strongroom_crypto::{Key256, MemberId, VaultId};
use strongroom_recovery::RawKek;
use strongroom_sharing::{
    ChainLink, EntryBody, Epoch, Grant, KeyholderRecord, LogEntry, Pins, PublicIdentity, Role,
    SealedIdentity, SharingError, unlock,
};
use strongroom_store::{Batch, Expect, MemoryStore, Store, Table};

#[derive(Deserialize)]
struct Frozen {
    vault_id: String,
    alice: Alice,
    bob2: Person,
    bob: Person,
    carol: Person,
    pins: String,
    epoch: u32,
    key_ids: Vec<KeyIdAt>,
    rows: Vec<RowHex>,
}

#[derive(Deserialize)]
struct Alice {
    member_id: String,
    raw_kek: String,
    public_identity: String,
    identity_text: String,
    fingerprint: String,
}

#[derive(Deserialize)]
struct Person {
    member_id: String,
    #[serde(default)]
    raw_kek: Option<String>,
}

#[derive(Deserialize)]
struct KeyIdAt {
    epoch: u32,
    key_id: String,
}

#[derive(Deserialize)]
struct RowHex {
    table: String,
    key: String,
    value: String,
}

fn load() -> Frozen {
    serde_json::from_str(include_str!("data/v1/vault.json")).unwrap()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn kek(hex_key: &str) -> RawKek {
    RawKek::from_key(Key256::from_slice(&h(hex_key)).unwrap())
}

fn table(name: &str) -> Table {
    Table::ALL.into_iter().find(|t| t.name() == name).unwrap()
}

fn store(f: &Frozen) -> MemoryStore {
    let store = MemoryStore::new();
    let mut batch = Batch::new();
    for row in &f.rows {
        let t = table(&row.table);
        if t.is_log() {
            let seq = u64::from_be_bytes(h(&row.key).try_into().unwrap());
            batch.append(t, seq, h(&row.value));
        } else {
            batch.put(t, h(&row.key), h(&row.value), Expect::Any);
        }
    }
    store.commit(&batch).unwrap();
    store
}

#[test]
fn frozen_vault_still_unlocks_for_every_current_member() {
    let f = load();
    let store = store(&f);
    let vault: VaultId = f.vault_id.parse().unwrap();
    let expected: BTreeMap<Epoch, String> = f
        .key_ids
        .iter()
        .map(|k| (Epoch(k.epoch), k.key_id.clone()))
        .collect();
    assert_eq!(expected.len(), 3);

    let alice_id: MemberId = f.alice.member_id.parse().unwrap();
    let bob2_id: MemberId = f.bob2.member_id.parse().unwrap();
    let bob_id: MemberId = f.bob.member_id.parse().unwrap();
    let carol_id: MemberId = f.carol.member_id.parse().unwrap();
    for (member, key) in [
        (alice_id, &f.alice.raw_kek),
        (bob2_id, f.bob2.raw_kek.as_ref().unwrap()),
    ] {
        let mut pins = Pins::new();
        let s = unlock(&store, vault, Some(member), &kek(key), &mut pins).unwrap();
        assert_eq!(s.epoch(), Epoch(f.epoch));
        let got: BTreeMap<Epoch, String> = s
            .keys()
            .iter()
            .map(|(e, k)| (*e, k.id().to_string()))
            .collect();
        assert_eq!(got, expected);
        let m = s.membership();
        assert_eq!(m.len(), 7);
        assert_eq!(m.member(alice_id).unwrap().role(), Role::Owner);
        assert_eq!(m.member(bob2_id).unwrap().role(), Role::Admin);
        assert_eq!(m.former_members()[&bob_id].replaced_by(), Some(bob2_id));
        assert_eq!(m.former_members()[&carol_id].role(), Role::ReadOnly);
        assert_eq!(m.former_members()[&carol_id].last_epoch(), Epoch(2));
    }

    // The pins saved then still accept the same log.
    let mut pins = Pins::decode(&h(&f.pins)).unwrap();
    assert_eq!(pins.encode(), h(&f.pins));
    unlock(
        &store,
        vault,
        Some(alice_id),
        &kek(&f.alice.raw_kek),
        &mut pins,
    )
    .unwrap();
    // The removed and the replaced member have no way back in.
    let err = unlock(
        &store,
        vault,
        Some(carol_id),
        &kek(&f.alice.raw_kek),
        &mut Pins::new(),
    )
    .unwrap_err();
    assert!(matches!(err, SharingError::NoCredentials { .. }), "{err}");
}

#[test]
fn frozen_encodings_decode_and_reencode_byte_for_byte() {
    let f = load();
    let mut kinds = BTreeMap::new();
    let mut grants = 0;
    let mut links = 0;
    for row in &f.rows {
        let value = h(&row.value);
        match table(&row.table) {
            Table::MemberLog => {
                let e = LogEntry::decode(&value).unwrap();
                assert_eq!(e.encode(), value);
                let kind = match e.body() {
                    EntryBody::Genesis { .. } => "genesis",
                    EntryBody::Add { .. } => "add",
                    EntryBody::Remove { .. } => "remove",
                    EntryBody::Rekey { .. } => "rekey",
                    EntryBody::Regrant { .. } => "regrant",
                    EntryBody::RoleChange { .. } => "role",
                    _ => "other",
                };
                *kinds.entry(kind).or_insert(0) += 1;
            }
            Table::Wraps if value.len() == Grant::LEN => {
                assert_eq!(Grant::decode(&value).unwrap().encode(), value);
                grants += 1;
            }
            Table::Wraps => {
                assert_eq!(ChainLink::decode(&value).unwrap().encode(), value);
                links += 1;
            }
            Table::Identities => {
                assert_eq!(SealedIdentity::decode(&value).unwrap().encode(), value);
            }
            Table::Keyholders => {
                assert_eq!(KeyholderRecord::decode(&value).unwrap().encode(), value);
            }
            other => panic!("unexpected table {other}"),
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec![
            ("add", 2),
            ("genesis", 1),
            ("regrant", 1),
            ("rekey", 1),
            ("remove", 1),
            ("role", 1)
        ]
    );
    assert!(grants >= 6 && links == 2, "{grants} grants, {links} links");

    let public = PublicIdentity::decode(&h(&f.alice.public_identity)).unwrap();
    public.verify().unwrap();
    assert_eq!(public.encode(), h(&f.alice.public_identity));
    assert_eq!(
        PublicIdentity::from_text(&f.alice.identity_text).unwrap(),
        public
    );
    assert_eq!(public.to_text(), f.alice.identity_text);
    assert_eq!(public.fingerprint().to_string(), f.alice.fingerprint);
    assert_eq!(public.name(), "alice");
}
