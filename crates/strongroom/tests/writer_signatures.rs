//! Writer-authenticated records, tried for real: members whose role gives no write right
//! (read-only members, members added as such, former members) hold the vault key and write
//! versions straight to the storage. Readers must refuse every such version, whatever the
//! payload claims. The forgeries are built with the envelope's independent reference
//! implementation and `ed25519-dalek`, not with anything private to strongroom.

mod payload_spec;
#[path = "../../strongroom-envelope/tests/reference/mod.rs"]
mod reference;

use payload_spec::{WRITTEN, payload_v1, payload_v2, spec_digest_of};

use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::WriterRefused;
use strongroom::sharing::{Identity, Pins, Role};
use strongroom::store::{Batch, Expect, MemoryStore, ReadView, ScanRange, Store, Table};
use strongroom::{Authorship, CreateOptions, Epoch, Vault, VaultError, WriterProblem};

struct Member {
    identity: Identity,
    kek: RawKek,
    /// Their own handle, opened when they joined.
    vault: Vault,
}

/// Alice's vault with `db/host`, and a member with `role` who joined.
fn vault_with(role: Role) -> (Vault, Arc<dyn Store>, Member) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (alice, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    alice.put("db", "host", b"db.internal:5432").unwrap();
    let identity = Identity::generate("carol").unwrap();
    let kek = RawKek::generate().unwrap();
    let public = identity.public();
    alice
        .add_member(
            public,
            role,
            public
                .confirm_fingerprint(&public.fingerprint().digits())
                .unwrap(),
        )
        .unwrap();
    let vault = Vault::join(&store, &identity, &[&kek], Pins::default()).unwrap();
    let m = Member {
        identity,
        kek,
        vault,
    };
    (alice, store, m)
}

/// The vault key of `epoch` as `m` unwraps it from their grant.
fn vault_key_of(store: &Arc<dyn Store>, vault: &Vault, m: &Member, epoch: Epoch) -> [u8; 32] {
    let session = strongroom_sharing::unlock(
        &**store,
        vault.id(),
        Some(m.identity.member_id()),
        &m.kek,
        &mut Pins::default(),
    )
    .unwrap();
    *session.key(epoch).unwrap().expose_secret().expose_secret()
}

/// The only secret's index row (format 2): its key and value.
fn the_entry(store: &dyn ReadView) -> (Vec<u8>, Vec<u8>) {
    let mut rows = store
        .scan(Table::Index, &ScanRange::all(), None, 10)
        .unwrap()
        .rows;
    assert_eq!(rows.len(), 1);
    let row = rows.remove(0);
    assert_eq!(row.value[0], 2, "index entry format 2");
    (row.key, row.value)
}

/// The next version of the only secret: its record id and version number.
fn next_version(store: &dyn ReadView) -> ([u8; 16], u64) {
    let (_, entry) = the_entry(store);
    let record: [u8; 16] = entry[1..17].try_into().unwrap();
    (
        record,
        u64::from_be_bytes(entry[17..25].try_into().unwrap()) + 1,
    )
}

/// The digest a writer signs, computed from `docs/spec/payload.md` alone.
fn spec_digest(vault: &Vault, record: &[u8; 16], version: u64, signed_part: &[u8]) -> [u8; 32] {
    spec_digest_of(vault.id().as_bytes(), record, version, signed_part)
}

/// Writes `payload` as a new head version of the only secret, sealed under a fresh data key
/// wrapped by `vk` (epoch `epoch`): what anyone holding the current vault key and write
/// access to the storage can do.
fn plant_head(store: &Arc<dyn Store>, vault: &Vault, vk: &[u8; 32], epoch: u32, payload: &[u8]) {
    let (key, entry) = the_entry(&**store);
    plant_head_at(store, vault, (key, entry), vk, epoch, payload);
}

/// [`plant_head`] on the index row `(key, entry)`.
fn plant_head_at(
    store: &Arc<dyn Store>,
    vault: &Vault,
    (key, entry): (Vec<u8>, Vec<u8>),
    vk: &[u8; 32],
    epoch: u32,
    payload: &[u8],
) {
    let record: [u8; 16] = entry[1..17].try_into().unwrap();
    let version = u64::from_be_bytes(entry[17..25].try_into().unwrap()) + 1;
    let ctx = reference::Ctx {
        vault: *vault.id().as_bytes(),
        record,
        version,
    };
    let (body, wrapped) =
        reference::ref_seal_v2(vk, epoch, epoch, 2, &ctx, &[7; 32], &[9; 24], payload);
    let mut new = entry[..41].to_vec();
    new[17..25].copy_from_slice(&version.to_be_bytes());
    new[33..41].copy_from_slice(&version.to_be_bytes());
    new.push(1);
    new.extend_from_slice(&wrapped);
    new.extend_from_slice(&body);
    let mut b = Batch::new();
    b.put(Table::Index, key, new, Expect::Any);
    store.commit(&b).unwrap();
}

/// The next version of the only secret with payload `v1` (format 1) made format 2: the
/// signer id `signer`, kind "written", log position `seq`, signed by `identity` over the
/// digest the specification gives.
fn signed_next(
    store: &dyn ReadView,
    vault: &Vault,
    v1: &[u8],
    signer: &[u8; 16],
    seq: u64,
    identity: &Identity,
) -> Vec<u8> {
    let (record, version) = next_version(store);
    payload_v2(v1, signer, WRITTEN, seq, |part| {
        identity.sign_record(&spec_digest(vault, &record, version, part))
    })
}

/// The only secret's index entry, its record id, and the plaintext of its head (version 1,
/// inline), opened with the reference and `vk`.
fn head_plaintext(
    store: &dyn ReadView,
    vault: &Vault,
    vk: &[u8; 32],
) -> (Vec<u8>, reference::Ctx, Vec<u8>) {
    let (_, entry) = the_entry(store);
    let ctx = reference::Ctx {
        vault: *vault.id().as_bytes(),
        record: entry[1..17].try_into().unwrap(),
        version: 1,
    };
    let plain = reference::ref_open(vk, &ctx, &entry[164..], &entry[42..164]);
    (entry, ctx, plain)
}

/// [`refused`], which must be a writer refusal: its problem.
fn writer_problem(alice: &Vault, what: &str) -> WriterProblem {
    match refused(alice, what) {
        VaultError::Writer { problem, .. } => problem,
        e => panic!("{what}: not a writer refusal: {e}"),
    }
}

/// Alice reads `db/host` and must not receive the planted value.
fn refused(alice: &Vault, what: &str) -> VaultError {
    match alice.get("db", "host") {
        Ok(secret) => panic!(
            "{what}: alice received {:?}, written by someone without write access",
            secret.expose_str()
        ),
        Err(e) => e,
    }
}

/// A read-only member holds the current vault key, so they can seal a version that every
/// envelope check accepts. Without writer signatures the reader takes it, "by alice".
#[test]
fn a_read_only_members_unsigned_write_is_refused() {
    let (alice, store, carol) = vault_with(Role::ReadOnly);
    let vk = vault_key_of(&store, &alice, &carol, Epoch(1));
    plant_head(
        &store,
        &alice,
        &vk,
        1,
        &payload_v1(
            "db",
            "host",
            alice.member_id().as_bytes(),
            b"attacker.example:5432",
        ),
    );
    let e = refused(&alice, "unsigned write");
    assert!(
        matches!(
            e,
            VaultError::Writer {
                version: 2,
                problem: WriterProblem::Unsigned,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("not signed"), "{e}");
    // What the error says to do works, one at a time or in an import.
    alice.put("db", "host", b"db.internal:5433").unwrap();
    plant_head(
        &store,
        &alice,
        &vk,
        1,
        &payload_v1("db", "host", alice.member_id().as_bytes(), b"again"),
    );
    let secrets = [strongroom::NewSecret {
        namespace: "db",
        name: "host",
        value: b"db.internal:5434",
    }];
    assert_eq!(alice.put_many(&secrets).unwrap().written.len(), 1);
    assert_eq!(
        alice.get("db", "host").unwrap().expose_secret(),
        b"db.internal:5434"
    );
}

/// A new vault requires signed writes from its first log entries.
#[test]
fn a_new_vault_requires_signed_writes_and_signs_every_put() {
    let (alice, _, _) = vault_with(Role::Member);
    assert!(alice.signed_writes_required());
    let secret = alice.get("db", "host").unwrap();
    assert_eq!(secret.meta().authorship, Authorship::Signed);
    assert_eq!(secret.meta().updated_by, alice.member_id());
}

/// The read-only member signs the forged version with her own key, as herself: she is a
/// member, her key is in the log, the signature is valid, but she never had write right.
#[test]
fn a_read_only_members_own_signature_is_refused() {
    let (alice, store, carol) = vault_with(Role::ReadOnly);
    let vk = vault_key_of(&store, &alice, &carol, Epoch(1));
    let carol_id = *carol.identity.member_id().as_bytes();
    let v1 = payload_v1("db", "host", &carol_id, b"evil");
    let p = signed_next(&*store, &alice, &v1, &carol_id, 2, &carol.identity);
    plant_head(&store, &alice, &vk, 1, &p);
    assert_eq!(
        writer_problem(&alice, "read-only member's signed write"),
        WriterProblem::Refused {
            signer: carol.identity.member_id(),
            seq: 2,
            why: WriterRefused::NoWriteRight,
        }
    );
}

/// The read-only member names Alice as the signer: her own signature does not verify under
/// Alice's key, and neither does one of Alice's taken from another version (the digest
/// covers the record and the version).
#[test]
fn a_signature_under_another_members_name_is_refused() {
    let (alice, store, carol) = vault_with(Role::ReadOnly);
    let vk = vault_key_of(&store, &alice, &carol, Epoch(1));
    let alice_id = *alice.member_id().as_bytes();
    let v1 = payload_v1("db", "host", &alice_id, b"evil");
    let p = signed_next(&*store, &alice, &v1, &alice_id, 1, &carol.identity);
    plant_head(&store, &alice, &vk, 1, &p);
    assert_eq!(
        writer_problem(&alice, "signature in another member's name"),
        WriterProblem::BadSignature {
            signer: alice.member_id()
        }
    );
}

/// Alice's real version 1, replayed whole as version 2 (the payload and its signature
/// unchanged, sealed again under a new data key): refused, its signature is for version 1.
#[test]
fn a_signed_payload_replayed_as_another_version_is_refused() {
    let (alice, store, carol) = vault_with(Role::ReadOnly);
    let vk = vault_key_of(&store, &alice, &carol, Epoch(1));
    let (_, _, real) = head_plaintext(&*store, &alice, &vk);
    assert_eq!(real[0], 2, "this release writes payload format 2");
    plant_head(&store, &alice, &vk, 1, &real);
    assert_eq!(
        writer_problem(&alice, "replayed payload"),
        WriterProblem::BadSignature {
            signer: alice.member_id()
        }
    );
}

/// A writer with the right to write names a log position the log has not reached.
#[test]
fn a_log_position_after_the_head_is_refused() {
    let (alice, store, bob) = vault_with(Role::Member);
    let vk = vault_key_of(&store, &alice, &bob, Epoch(1));
    let bob_id = *bob.identity.member_id().as_bytes();
    let v1 = payload_v1("db", "host", &bob_id, b"later");
    let p = signed_next(&*store, &alice, &v1, &bob_id, 99, &bob.identity);
    plant_head(&store, &alice, &vk, 1, &p);
    assert_eq!(
        writer_problem(&alice, "future log position"),
        WriterProblem::Refused {
            signer: bob.identity.member_id(),
            seq: 99,
            why: WriterRefused::AfterLogHead { head: 2 },
        }
    );
}

/// A version built from the specification alone (digest with `sha2`, sealed with the
/// envelope reference) by a member with write right is accepted, and what strongroom writes
/// verifies with `ed25519-dalek` against the same digest: both directions of the spec.
#[test]
fn the_specification_written_independently_agrees_with_strongroom() {
    let (alice, store, bob) = vault_with(Role::Member);
    let vk = vault_key_of(&store, &alice, &bob, Epoch(1));

    // strongroom → spec: Alice's version 1, opened with the reference and checked here.
    let (_, ctx, p) = head_plaintext(&*store, &alice, &vk);
    let record = ctx.record;
    let (signed_part, signature) = p.split_at(p.len() - 64);
    // signer (16) ‖ kind (1) ‖ log position (8) end the signed part.
    let proof = &signed_part[signed_part.len() - 25..];
    assert_eq!(&proof[..16], alice.member_id().as_bytes());
    assert_eq!(proof[16], WRITTEN);
    assert_eq!(
        proof[17..],
        1u64.to_be_bytes(),
        "genesis and the policy entry: seq 1"
    );
    let message = [
        &b"strongroom/v3/record-writer\0"[..],
        &spec_digest(&alice, &record, 1, signed_part),
    ]
    .concat();
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(alice.public_identity().signing_key()).unwrap();
    key.verify_strict(
        &message,
        &ed25519_dalek::Signature::from_bytes(signature.try_into().unwrap()),
    )
    .unwrap();

    // spec → strongroom: Bob's version 2, made here.
    let bob_id = *bob.identity.member_id().as_bytes();
    let v1 = payload_v1("db", "host", &bob_id, b"db2.internal:5432");
    let p = signed_next(&*store, &alice, &v1, &bob_id, 2, &bob.identity);
    plant_head(&store, &alice, &vk, 1, &p);
    let got = alice.get("db", "host").unwrap();
    assert_eq!(got.expose_secret(), b"db2.internal:5432");
    assert_eq!(got.meta().authorship, Authorship::Signed);
    assert_eq!(got.meta().updated_by, bob.identity.member_id());
}

/// Alice reads a version (and remembers it verified); the read-only member then replaces
/// its body with one of her own values under the same data key, keeping the signature.
/// The remembered verification must not cover the new payload.
#[test]
fn a_body_swapped_after_a_verified_read_is_refused() {
    let (alice, store, carol) = vault_with(Role::ReadOnly);
    let vk = vault_key_of(&store, &alice, &carol, Epoch(1));
    assert_eq!(
        alice.get("db", "host").unwrap().expose_secret(),
        b"db.internal:5432"
    );
    let (key, _) = the_entry(&*store);
    let (entry, ctx, real) = head_plaintext(&*store, &alice, &vk);
    let dek = reference::ref_unwrap(&vk, &ctx, &entry[42..164]);
    let value = b"db.internal:5432";
    let at = real.windows(value.len()).position(|w| w == value).unwrap();
    let mut forged = real.clone();
    forged[at..at + value.len()].copy_from_slice(b"evil.example:666");
    let body = reference::ref_body(1, entry[165], &ctx, &dek, &forged);
    let mut b = Batch::new();
    b.put(
        Table::Index,
        key,
        [&entry[..164], &body[..]].concat(),
        Expect::Any,
    );
    store.commit(&b).unwrap();
    assert_eq!(
        writer_problem(&alice, "body swapped after a verified read"),
        WriterProblem::BadSignature {
            signer: alice.member_id()
        }
    );
}

/// A member's versions stay readable after they lose the right to write (made read-only,
/// then removed with a rotation): they had it when they wrote.
#[test]
fn versions_written_before_a_member_lost_write_right_stay_readable() {
    let (alice, _, bob) = vault_with(Role::Member);
    bob.vault.put("db", "host", b"written-by-bob").unwrap();
    let check = |when: &str| {
        let got = alice
            .get("db", "host")
            .unwrap_or_else(|e| panic!("{when}: {e}"));
        assert_eq!(got.expose_secret(), b"written-by-bob", "{when}");
        assert_eq!(got.meta().authorship, Authorship::Signed, "{when}");
        assert_eq!(got.meta().updated_by, bob.identity.member_id(), "{when}");
    };
    check("while bob is a member");
    alice
        .set_role(bob.identity.member_id(), Role::ReadOnly)
        .unwrap();
    check("after bob was made read-only");
    alice.remove_member(bob.identity.member_id()).unwrap();
    alice.rotate_vault_key().unwrap();
    check("after bob was removed and the vault key rotated");
}

/// The known-answer vector of payload format 2 (`tests/data/payload_v2.txt`), made here from
/// the specification with `sha2` and `ed25519-dalek` (a fixed signing key), and accepted by
/// strongroom's signature check; `records.rs` decodes the same vector with strongroom's
/// decoder. `STRONGROOM_REGENERATE_VECTORS=1` rewrites the file.
#[test]
fn payload_v2_known_answer_vector() {
    use ed25519_dalek::Signer as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]);
    let (vault, record, version, signer, seq) = ([1u8; 16], [2u8; 16], 3u64, [4u8; 16], 5u64);
    let v1 = payload_v1("core/billing", "STRIPE_KEY", &signer, b"sk_live_123");
    let mut digest = [0; 32];
    let payload = payload_v2(&v1, &signer, WRITTEN, seq, |part| {
        digest = spec_digest_of(&vault, &record, version, part);
        key.sign(&[&b"strongroom/v3/record-writer\0"[..], &digest].concat())
            .to_bytes()
    });
    let text = format!(
        "# Payload format 2 (docs/spec/payload.md), signed with the Ed25519 key of seed 5a x 32.\n\
         vault_id = {}\nrecord_id = {}\nversion = {version}\npublic_key = {}\ndigest = {}\npayload = {}\n",
        hex::encode(vault),
        hex::encode(record),
        hex::encode(key.verifying_key().as_bytes()),
        hex::encode(digest),
        hex::encode(&payload),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/payload_v2.txt");
    if std::env::var_os("STRONGROOM_REGENERATE_VECTORS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    assert_eq!(std::fs::read_to_string(path).unwrap(), text);
    let signature: [u8; 64] = payload[payload.len() - 64..].try_into().unwrap();
    assert!(strongroom_sharing::verify_record_signature(
        key.verifying_key().as_bytes(),
        &digest,
        &signature
    ));
}

/// A member with write right signs a version as its writer but names another member as its
/// author: refused, so `updated_by` of a signed version is authenticated.
#[test]
fn a_signer_naming_another_author_is_refused() {
    let (alice, store, bob) = vault_with(Role::Member);
    let vk = vault_key_of(&store, &alice, &bob, Epoch(1));
    let v1 = payload_v1(
        "db",
        "host",
        alice.member_id().as_bytes(),
        b"in alice's name",
    );
    let bob_id = *bob.identity.member_id().as_bytes();
    let p = signed_next(&*store, &alice, &v1, &bob_id, 2, &bob.identity);
    plant_head(&store, &alice, &vk, 1, &p);
    assert_eq!(
        writer_problem(&alice, "author other than the signer"),
        WriterProblem::AuthorMismatch {
            signer: bob.identity.member_id(),
            author: alice.member_id(),
        }
    );
}

/// A handle that was made read-only while another of its writes waited refuses to commit
/// the version it would sign without the right: the write is retried after the log moved,
/// and the retry checks the right again (instead of committing a version every reader
/// refuses).
#[test]
fn a_write_retried_after_a_demotion_is_refused_not_committed() {
    let (alice, _, bob) = vault_with(Role::Member);
    // Bob's handle still believes he is a member.
    alice
        .set_role(bob.identity.member_id(), Role::ReadOnly)
        .unwrap();
    let e = bob.vault.put("db", "host", b"after demotion").unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::PermissionDenied {
                role: Some(Role::ReadOnly)
            }
        ),
        "{e}"
    );
    assert_eq!(
        alice.get("db", "host").unwrap().expose_secret(),
        b"db.internal:5432"
    );
}

/// The frozen vault of the release that introduced format 2 (written unsigned), with a
/// read-only member Carol who joined, and a second owner handle opened before the move to
/// signed writes.
fn frozen_vault_with_carol() -> (Vault, Vault, Arc<dyn Store>, Member) {
    const KEK_HEX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"; // pragma: allowlist secret
    let kek = RawKek::from_hex(KEK_HEX).unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v2/vault.snapshot");
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let owner = strongroom::restore_snapshot(
        &store,
        std::path::Path::new(path),
        &kek,
        &strongroom::RestoreOptions::default(),
    )
    .unwrap()
    .vault;
    let identity = Identity::generate("carol").unwrap();
    let carol_kek = RawKek::generate().unwrap();
    let public = identity.public();
    owner
        .add_member(
            public,
            Role::ReadOnly,
            public
                .confirm_fingerprint(&public.fingerprint().digits())
                .unwrap(),
        )
        .unwrap();
    let vault = Vault::join(&store, &identity, &[&carol_kek], Pins::default()).unwrap();
    let stale = Vault::open(Arc::clone(&store))
        .unwrap()
        .unlock_pinned_as(
            &kek,
            Some(owner.member_id()),
            Arc::new(strongroom::MemoryPinStore::new()),
        )
        .unwrap();
    let carol = Member {
        identity,
        kek: carol_kek,
        vault,
    };
    (owner, stale, store, carol)
}

/// An index row of the frozen vault whose head body is inline, and the payload of format 1
/// it holds (namespace and name, to forge a version of the same secret).
fn an_inline_head(
    store: &dyn ReadView,
    vault: &Vault,
    vk: &[u8; 32],
) -> ((Vec<u8>, Vec<u8>), (String, String)) {
    let rows = store
        .scan(Table::Index, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    let row = rows.into_iter().find(|r| r.value[41] == 1).unwrap();
    let entry = row.value.clone();
    let ctx = reference::Ctx {
        vault: *vault.id().as_bytes(),
        record: entry[1..17].try_into().unwrap(),
        version: u64::from_be_bytes(entry[17..25].try_into().unwrap()),
    };
    let plain = reference::ref_open(vk, &ctx, &entry[164..], &entry[42..164]);
    let text = |at: usize| {
        let n = u32::from_be_bytes(plain[at..at + 4].try_into().unwrap()) as usize;
        (
            String::from_utf8(plain[at + 4..at + 4 + n].to_vec()).unwrap(),
            at + 4 + n,
        )
    };
    let (ns, next) = text(1);
    let (name, _) = text(next);
    ((row.key, entry), (ns, name))
}

/// Before the move to signed writes, the read-only member plants an unsigned version in the
/// owner's name. The move vouches for it as found (it cannot tell), and readers see that:
/// its authorship is "vouched by the owner", never "signed" as the owner's own writes are.
#[test]
fn a_version_planted_before_the_move_is_vouched_for_not_signed() {
    let (owner, _, store, carol) = frozen_vault_with_carol();
    let epoch = owner.epoch();
    let vk = vault_key_of(&store, &owner, &carol, epoch);
    let (row, (ns, name)) = an_inline_head(&*store, &owner, &vk);
    let v1 = payload_v1(&ns, &name, owner.member_id().as_bytes(), b"planted");
    plant_head_at(&store, &owner, row, &vk, epoch.0, &v1);
    owner
        .require_signed_writes(strongroom::RotateOptions::default(), &mut |_| {})
        .unwrap();
    let got = owner.get(&ns, &name).unwrap();
    assert_eq!(got.expose_secret(), b"planted");
    assert_eq!(got.meta().updated_by, owner.member_id());
    assert_eq!(
        got.meta().authorship,
        Authorship::Vouched {
            by: owner.member_id()
        }
    );
}

/// A handle opened before the move to signed writes still holds the old epoch's key and the
/// old log. The read-only member plants an unsigned version wrapped under that old epoch:
/// the handle must not take it on its outdated view, but look at the log again first.
#[test]
fn a_handle_that_missed_the_move_refuses_unsigned_versions() {
    let (owner, stale, store, carol) = frozen_vault_with_carol();
    let old_epoch = owner.epoch();
    let old_vk = vault_key_of(&store, &owner, &carol, old_epoch);
    let (row, (ns, name)) = an_inline_head(&*store, &owner, &old_vk);
    assert!(stale.get(&ns, &name).is_ok());
    owner
        .require_signed_writes(strongroom::RotateOptions::default(), &mut |_| {})
        .unwrap();
    // The move re-encrypted every version under a new epoch: the row moved on.
    let (_, current) = store
        .scan(Table::Index, &ScanRange::all(), None, 100)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| (r.key.clone(), r.value))
        .find(|(k, _)| *k == row.0)
        .unwrap();
    let v1 = payload_v1(&ns, &name, owner.member_id().as_bytes(), b"planted late");
    plant_head_at(&store, &owner, (row.0, current), &old_vk, old_epoch.0, &v1);
    match stale.get(&ns, &name) {
        Ok(s) => panic!(
            "a stale handle accepted an unsigned version: {:?}",
            s.expose_str()
        ),
        Err(
            VaultError::Writer {
                problem: WriterProblem::Unsigned,
                ..
            }
            | VaultError::RetiredEpoch { .. },
        ) => {}
        Err(e) => panic!("unexpected error: {e}"),
    }
    assert!(stale.signed_writes_required(), "the handle refreshed");
}

/// A large import signs and seals on several threads: every secret comes back signed, with
/// its own value, and the report lists them in input order.
#[test]
fn an_import_signs_every_secret_and_keeps_the_input_order() {
    let (alice, _, _) = vault_with(Role::Member);
    let names: Vec<String> = (0..300).map(|i| format!("S{i:03}")).collect();
    let values: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("value {i}").into_bytes())
        .collect();
    let secrets: Vec<strongroom::NewSecret<'_>> = names
        .iter()
        .zip(&values)
        .map(|(name, value)| strongroom::NewSecret {
            namespace: "bulk",
            name,
            value,
        })
        .collect();
    let report = alice.put_many(&secrets).unwrap();
    let listed: Vec<&str> = report.written.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(listed, names.iter().map(String::as_str).collect::<Vec<_>>());
    for (name, value) in names.iter().zip(&values) {
        let got = alice.get("bulk", name).unwrap();
        assert_eq!(got.expose_secret(), &value[..]);
        assert_eq!(got.meta().authorship, Authorship::Signed);
    }
}

/// A member made read-only keeps the current vault key (to read) and their own signing
/// key. They sign a new version naming a log position from before they lost the right,
/// when they could write: readers refuse it. A signature counts only while its signer keeps
/// the right to write; the versions signed before were re-attested when the right was lost.
#[test]
fn a_demoted_writer_cannot_backdate_a_write() {
    let (alice, store, bob) = vault_with(Role::Member);
    bob.vault.put("db", "host", b"written-by-bob").unwrap();
    alice
        .set_role(bob.identity.member_id(), Role::ReadOnly)
        .unwrap();
    // Log: 0 genesis, 1 signed writes required, 2 Bob added, 3 Bob made read-only.
    let vk = vault_key_of(&store, &alice, &bob, alice.epoch());
    let bob_id = *bob.identity.member_id().as_bytes();
    let v1 = payload_v1("db", "host", &bob_id, b"attacker.example:5432");
    let p = signed_next(&*store, &alice, &v1, &bob_id, 2, &bob.identity);
    plant_head(&store, &alice, &vk, alice.epoch().0, &p);
    refused(&alice, "backdated write by a demoted writer");
}
