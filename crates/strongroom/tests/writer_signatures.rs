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

/// `identity` added to `owner`'s vault with `role` (fingerprint compared), then joined
/// with a new raw KEK: the KEK and their handle.
fn join_as(
    owner: &Vault,
    store: &Arc<dyn Store>,
    identity: &Identity,
    role: Role,
) -> (RawKek, Vault) {
    let public = identity.public();
    owner
        .add_member(
            public,
            role,
            public
                .confirm_fingerprint(&public.fingerprint().digits())
                .unwrap(),
        )
        .unwrap();
    let kek = RawKek::generate().unwrap();
    let vault = Vault::join(store, identity, &[&kek], Pins::default()).unwrap();
    (kek, vault)
}

/// A second handle of `member`'s on `store`, unlocked with `kek`, with pins of its own.
fn another_handle(store: &Arc<dyn Store>, kek: &RawKek, member: &Vault) -> Vault {
    Vault::open(Arc::clone(store))
        .unwrap()
        .unlock_pinned_as(
            kek,
            Some(member.member_id()),
            Arc::new(strongroom::MemoryPinStore::new()),
        )
        .unwrap()
}

/// Alice's new vault on `store`, and Bob, a member who joined: Alice's handle and KEK,
/// Bob's identity and handle.
fn alice_and_bob(store: &Arc<dyn Store>) -> (Vault, RawKek, Identity, Vault) {
    let kek = RawKek::generate().unwrap();
    let (alice, _) = Vault::create(Arc::clone(store), &kek, &CreateOptions::default()).unwrap();
    let bob = Identity::generate("bob").unwrap();
    let (_, bobs) = join_as(&alice, store, &bob, Role::Member);
    (alice, kek, bob, bobs)
}

/// Alice's vault with `db/host`, and a member with `role` who joined.
fn vault_with(role: Role) -> (Vault, Arc<dyn Store>, Member) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let kek = RawKek::generate().unwrap();
    let (alice, _) = Vault::create(Arc::clone(&store), &kek, &CreateOptions::default()).unwrap();
    alice.put("db", "host", b"db.internal:5432").unwrap();
    let identity = Identity::generate("carol").unwrap();
    let (kek, vault) = join_as(&alice, &store, &identity, role);
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
    let plant = |row: Vec<u8>| {
        let mut b = Batch::new();
        b.put(Table::Index, key.clone(), row, Expect::Any);
        store.commit(&b).unwrap();
    };
    let bad_signature = WriterProblem::BadSignature {
        signer: alice.member_id(),
    };
    plant([&entry[..164], &body[..]].concat());
    for what in [
        "body swapped after a verified read",
        "the swapped body read a second time (a refused version is never remembered)",
    ] {
        assert_eq!(writer_problem(&alice, what), bad_signature);
    }
    // The genuine bytes back: read (from what the handle remembers), then swapped again.
    plant(entry.clone());
    assert_eq!(
        alice.get("db", "host").unwrap().expose_secret(),
        b"db.internal:5432"
    );
    plant([&entry[..164], &body[..]].concat());
    assert_eq!(
        writer_problem(
            &alice,
            "the body swapped again after the genuine one was read"
        ),
        bad_signature
    );
    // The same data key wrapped again (what a rotation's rewrap changes), with the forged
    // body's digest in the wrap: other wrap bytes, the same key, still the forged payload.
    let (forged_body, rewrapped) =
        reference::ref_seal_v2(&vk, 1, 1, entry[165], &ctx, &dek, &[3; 24], &forged);
    assert_eq!(forged_body, body);
    plant([&entry[..42], &rewrapped[..], &forged_body[..]].concat());
    assert_eq!(
        writer_problem(
            &alice,
            "the forged body behind a new wrap of the same data key"
        ),
        bad_signature
    );
}

/// A member's versions stay readable after they lose the right to write (made read-only,
/// removed, re-granted): the member making the change re-attests them at once, heads and
/// older versions, inline and stored bodies. Their author stays; the proof is now the
/// re-attesting member's.
#[test]
fn versions_written_before_a_member_lost_write_right_are_reattested() {
    let big = vec![b'x'; 10 * 1024];
    for change in ["read-only", "removed", "regranted"] {
        let (alice, store, bob) = vault_with(Role::Member);
        bob.vault.put("db", "host", b"written-by-bob").unwrap();
        bob.vault
            .put("db", "host", b"written-by-bob-again")
            .unwrap();
        bob.vault.put("db", "large", &big).unwrap();
        let bob_id = bob.identity.member_id();
        let check = |when: &str, authorship: Authorship| {
            for (name, version, value) in [
                ("host", 2, &b"written-by-bob"[..]),
                ("host", 3, b"written-by-bob-again"),
                ("large", 1, &big),
            ] {
                let got = alice
                    .get_version("db", name, version)
                    .unwrap_or_else(|e| panic!("{change}, {when}: {name} v{version}: {e}"));
                assert_eq!(got.expose_secret(), value, "{change}, {when}");
                assert_eq!(got.meta().authorship, authorship, "{change}, {when}");
                assert_eq!(got.meta().updated_by, bob_id, "{change}, {when}");
            }
        };
        check("while bob is a member", Authorship::Signed);
        match change {
            "read-only" => alice.set_role(bob_id, Role::ReadOnly).unwrap(),
            "removed" => {
                alice.remove_member(bob_id).unwrap();
            }
            _ => {
                let new = Identity::generate("bob-again").unwrap();
                let public = new.public();
                alice
                    .regrant(
                        bob_id,
                        public,
                        public
                            .confirm_fingerprint(&public.fingerprint().digits())
                            .unwrap(),
                    )
                    .unwrap();
            }
        }
        let vouched = Authorship::Vouched {
            by: alice.member_id(),
        };
        check("after the change", vouched);
        alice.rotate_vault_key().unwrap();
        check("after a rotation", vouched);
        assert!(alice.pending_reattestation().is_empty(), "{change}");
        drop(store);
    }
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
    // Bob's own version from before is readable: re-attested by Alice when she demoted him.
    let got = alice.get("db", "host").unwrap();
    assert_eq!(got.expose_secret(), b"written-by-bob");
    assert_eq!(
        got.meta().authorship,
        Authorship::Vouched {
            by: alice.member_id()
        }
    );
    // Log: 0 genesis, 1 signed writes required, 2 Bob added, 3 Bob made read-only, 4 the
    // re-attestation of his versions recorded.
    let vk = vault_key_of(&store, &alice, &bob, alice.epoch());
    let bob_id = *bob.identity.member_id().as_bytes();
    let v1 = payload_v1("db", "host", &bob_id, b"attacker.example:5432");
    let p = signed_next(&*store, &alice, &v1, &bob_id, 2, &bob.identity);
    plant_head(&store, &alice, &vk, alice.epoch().0, &p);
    assert_eq!(
        writer_problem(&alice, "backdated write by a demoted writer"),
        WriterProblem::RightLost {
            signer: bob.identity.member_id(),
            seq: 2,
            lost_at: 3,
            reattested_at: Some(4),
        }
    );
    let e = refused(&alice, "backdated write by a demoted writer");
    assert!(e.to_string().contains("after they lost the right"), "{e}");
    // Running the re-attestation again does not vouch for it: the log recorded that
    // Bob's versions were re-attested.
    assert!(alice.pending_reattestation().is_empty());
    let again = alice.reattest(&mut |_| {}).unwrap();
    assert_eq!(again.reattested, 0);
    refused(&alice, "backdated write after a second re-attestation");
    // Nor as a voucher: any proof of a signer who lost the right is refused.
    let v1 = payload_v1(
        "db",
        "host",
        alice.member_id().as_bytes(),
        b"vouched by bob",
    );
    let (record, version) = next_version(&*store);
    let p = payload_v2(&v1, &bob_id, 2, 2, |part| {
        bob.identity
            .sign_record(&spec_digest(&alice, &record, version, part))
    });
    plant_head(&store, &alice, &vk, alice.epoch().0, &p);
    assert!(matches!(
        writer_problem(&alice, "backdated voucher"),
        WriterProblem::RightLost { lost_at: 3, .. }
    ));
}

/// A demotion or a removal whose re-attestation is cut short (the process dies after the
/// change committed): Bob's version is refused, also by a handle that verified it before,
/// with an error that says what to do; a rotation meanwhile moves his versions like any
/// other and the exposure report still lists them; `reattest` (after a re-encryption, or
/// not) then makes them readable, and records the loss in the log.
#[test]
fn a_reattestation_cut_short_is_resumed() {
    use strongroom::store::FaultyStore;
    for how in ["demote", "demote, then re-encrypt", "remove, then rotate"] {
        let via_reencrypt = how == "demote, then re-encrypt";
        let mut cut = false;
        for k in 1..200u64 {
            let faulty = Arc::new(FaultyStore::new(MemoryStore::new()));
            let store: Arc<dyn Store> = faulty.clone();
            let (alice, kek, bob, bobs) = alice_and_bob(&store);
            // Bob's versions: a head and an older version, and a head with its body in a
            // row of its own; Alice's: a head and an older version.
            bobs.put("db", "host", b"first-by-bob").unwrap();
            bobs.put("db", "host", b"written-by-bob").unwrap();
            bobs.put("db", "large", &[b'x'; 10 * 1024]).unwrap();
            alice.put("a", "x", b"one").unwrap();
            alice.put("a", "x", b"two").unwrap();
            // A second handle of Alice's verifies Bob's version (and remembers it).
            let reader = another_handle(&store, &kek, &alice);
            assert_eq!(
                reader.get("db", "host").unwrap().meta().authorship,
                Authorship::Signed
            );

            faulty.crash_at(faulty.ops() + k);
            let (finished, removal) = if how.starts_with("remove") {
                match alice.remove_member(bob.member_id()) {
                    Ok(r) => (r.reattest_error.is_none(), Some(r)),
                    Err(_) => (false, None),
                }
            } else {
                (
                    alice.set_role(bob.member_id(), Role::ReadOnly).is_ok(),
                    None,
                )
            };
            faulty.revive();
            if finished {
                break;
            }
            if how.starts_with("remove") && removal.is_none() {
                // Cut inside the removal itself: its report is what this case needs.
                continue;
            }
            reader.refresh().unwrap();
            if reader.pending_reattestation().is_empty() {
                // Cut before the role change committed.
                continue;
            }
            match reader.get("db", "host") {
                Err(
                    e @ VaultError::Writer {
                        problem:
                            WriterProblem::RightLost {
                                reattested_at: None,
                                ..
                            },
                        ..
                    },
                ) => {
                    assert!(e.to_string().contains("strongroom member reattest"), "{e}");
                    cut = true;
                    let doctor = reader.doctor(strongroom::DoctorOptions::default()).unwrap();
                    let finding = doctor
                        .findings
                        .iter()
                        .find(|f| f.check == "signed writes")
                        .unwrap();
                    assert_eq!(
                        finding.level,
                        strongroom::Level::Fail,
                        "{}",
                        finding.message
                    );
                    assert!(
                        finding.message.contains("member reattest"),
                        "{}",
                        finding.message
                    );
                    assert_eq!(
                        reader.status().unwrap().pending_reattestation,
                        [(bob.member_id(), 3)]
                    );
                }
                Err(e) => panic!("unexpected error: {e}"),
                Ok(_) => {
                    // The pass had re-attested this page already: nothing to show here.
                    let got = reader.get("db", "host").unwrap();
                    assert_eq!(
                        got.meta().authorship,
                        Authorship::Vouched {
                            by: alice.member_id()
                        }
                    );
                    continue;
                }
            }
            // Alice's older version of a/x gets a damaged body: it does not open, and the
            // re-attestation leaves it alone.
            let record = alice.get("a", "x").unwrap().meta().record_id;
            let key = [&record.as_bytes()[..], &1u64.to_be_bytes()].concat();
            let mut body = store.get(Table::Bodies, &key).unwrap().unwrap().value;
            let last = body.len() - 1;
            body[last] ^= 1;
            let mut b = Batch::new();
            b.put(Table::Bodies, key, body, Expect::Any);
            store.commit(&b).unwrap();
            let restarted = another_handle(&store, &kek, &alice);
            if let Some(removal) = &removal {
                restarted.rotate_vault_key().unwrap();
                assert!(restarted.quarantined().unwrap().is_empty(), "{how}");
                let exposed = restarted.exposure(removal).unwrap();
                let names: Vec<&str> = exposed.iter().map(|e| e.name.as_str()).collect();
                assert_eq!(names, ["x", "host", "large"], "{how}");
            }
            if via_reencrypt {
                restarted
                    .reencrypt_all(strongroom::RotateOptions::default(), &mut |_| {})
                    .unwrap();
                assert_eq!(restarted.quarantined().unwrap().len(), 1, "the damaged one");
                assert!(
                    !restarted.pending_reattestation().is_empty(),
                    "a re-encryption records no loss"
                );
            }
            let report = restarted.reattest(&mut |_| {}).unwrap();
            let reattested = if via_reencrypt { 0 } else { 3 };
            assert_eq!(
                (report.examined, report.reattested, report.unreadable),
                (5, reattested, 1),
                "{how}: {report:?}"
            );
            assert_eq!(
                restarted.get("db", "large").unwrap().expose_secret(),
                &[b'x'; 10 * 1024][..]
            );
            assert_eq!(
                restarted
                    .get_version("db", "host", 1)
                    .unwrap()
                    .meta()
                    .authorship,
                Authorship::Vouched {
                    by: alice.member_id()
                }
            );
            assert!(restarted.pending_reattestation().is_empty());
            for v in [&restarted, &reader] {
                let got = v.get("db", "host").unwrap();
                assert_eq!(got.expose_secret(), b"written-by-bob");
                assert_eq!(got.meta().updated_by, bob.member_id());
                assert_eq!(
                    got.meta().authorship,
                    Authorship::Vouched {
                        by: alice.member_id()
                    }
                );
            }
            break;
        }
        assert!(
            cut,
            "{how}: no cut between the change and its re-attestation was found"
        );
    }
}

/// In a vault of an earlier release (no signed writes required yet), a member who signed a
/// version and then lost the right is not refused: an unsigned version would be taken
/// anyway. The move to signed writes vouches for the version as found, and counts as the
/// re-attestation of that loss: afterwards, a version the member signs naming an old
/// position is refused for good.
#[test]
fn the_move_to_signed_writes_reattests_the_losses_before_it() {
    let (owner, _, store, _) = frozen_vault_with_carol();
    let bob = Identity::generate("bob").unwrap();
    let (bob_kek, bobs) = join_as(&owner, &store, &bob, Role::Member);
    // A log position at which Bob could write.
    let add_seq = owner.pins().high_water().unwrap().seq;
    bobs.put("team", "from-bob", b"written-by-bob").unwrap();
    owner.set_role(bob.member_id(), Role::ReadOnly).unwrap();
    assert!(owner.pending_reattestation().is_empty());
    assert_eq!(
        owner.get("team", "from-bob").unwrap().meta().authorship,
        Authorship::Signed
    );
    owner
        .require_signed_writes(strongroom::RotateOptions::default(), &mut |_| {})
        .unwrap();
    assert!(owner.pending_reattestation().is_empty());
    let got = owner.get("team", "from-bob").unwrap();
    assert_eq!(got.expose_secret(), b"written-by-bob");
    assert_eq!(
        got.meta().authorship,
        Authorship::Vouched {
            by: owner.member_id()
        }
    );
    // Bob signs a new version naming the position at which he joined.
    let member = Member {
        identity: bob,
        kek: bob_kek,
        vault: bobs,
    };
    let vk = vault_key_of(&store, &owner, &member, owner.epoch());
    let rows = store
        .scan(Table::Index, &ScanRange::all(), None, 100)
        .unwrap()
        .rows;
    let record_id = owner.get("team", "from-bob").unwrap().meta().record_id;
    let row = rows
        .into_iter()
        .find(|r| r.value[1..17] == record_id.as_bytes()[..])
        .unwrap();
    let record: [u8; 16] = row.value[1..17].try_into().unwrap();
    let version = u64::from_be_bytes(row.value[17..25].try_into().unwrap()) + 1;
    let bob_id = *member.identity.member_id().as_bytes();
    let v1 = payload_v1("team", "from-bob", &bob_id, b"attacker.example");
    let p = payload_v2(&v1, &bob_id, WRITTEN, add_seq, |part| {
        member
            .identity
            .sign_record(&spec_digest(&owner, &record, version, part))
    });
    plant_head_at(
        &store,
        &owner,
        (row.key, row.value),
        &vk,
        owner.epoch().0,
        &p,
    );
    match owner.get("team", "from-bob") {
        Err(VaultError::Writer {
            problem:
                WriterProblem::RightLost {
                    reattested_at: Some(_),
                    ..
                },
            ..
        }) => {}
        Err(e) => panic!("unexpected error: {e}"),
        Ok(s) => panic!("a backdated version was accepted: {:?}", s.expose_str()),
    }
}

/// A rotation that runs while a demotion's re-attestation does: the rotation rewraps Bob's
/// versions under a key the re-attesting handle learns only later. The loss is recorded
/// only once a consistent view holds nothing left to re-attest, so every version of Bob's
/// stays readable.
#[test]
fn a_rotation_during_the_reattestation_loses_nothing() {
    for round in 0..3 {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (alice, kek, bob, bobs) = alice_and_bob(&store);
        let names: Vec<String> = (0..400).map(|i| format!("S{i:03}")).collect();
        let secrets: Vec<strongroom::NewSecret<'_>> = names
            .iter()
            .map(|name| strongroom::NewSecret {
                namespace: "bulk",
                name,
                value: b"written-by-bob",
            })
            .collect();
        bobs.put_many(&secrets).unwrap();
        let rotator = another_handle(&store, &kek, &alice);
        std::thread::scope(|s| {
            let demote = s.spawn(|| alice.set_role(bob.member_id(), Role::ReadOnly));
            let rotate = s.spawn(|| {
                for _ in 0..3 {
                    rotator.rotate_vault_key().unwrap();
                }
            });
            rotate.join().unwrap();
            demote.join().unwrap().unwrap();
        });
        alice.refresh().unwrap();
        assert!(alice.pending_reattestation().is_empty(), "round {round}");
        for name in &names {
            let got = alice
                .get("bulk", name)
                .unwrap_or_else(|e| panic!("round {round}: {name}: {e}"));
            assert_eq!(
                got.meta().authorship,
                Authorship::Vouched {
                    by: alice.member_id()
                }
            );
        }
    }
}

/// A store whose live scans miss one row until the next consistent snapshot is taken: a
/// row that moved while a pass walked the table (a purge dropping a head back to an older
/// version does that).
struct MissedByScans {
    inner: MemoryStore,
    hidden: std::sync::Mutex<Option<(Table, Vec<u8>)>>,
}

impl strongroom::store::ReadView for MissedByScans {
    fn get(
        &self,
        table: Table,
        key: &[u8],
    ) -> Result<Option<strongroom::store::Versioned>, strongroom::store::StoreError> {
        self.inner.get(table, key)
    }

    fn get_many(
        &self,
        keys: &[(Table, &[u8])],
    ) -> Result<Vec<Option<strongroom::store::Versioned>>, strongroom::store::StoreError> {
        self.inner.get_many(keys)
    }

    fn scan(
        &self,
        table: Table,
        range: &ScanRange,
        resume: Option<&strongroom::store::Cursor>,
        limit: usize,
    ) -> Result<strongroom::store::Page, strongroom::store::StoreError> {
        let mut page = self.inner.scan(table, range, resume, limit)?;
        if let Some((t, k)) = &*self.hidden.lock().unwrap() {
            page.rows.retain(|r| !(*t == table && r.key == *k));
        }
        Ok(page)
    }

    fn log_head(&self, table: Table) -> Result<Option<u64>, strongroom::store::StoreError> {
        self.inner.log_head(table)
    }

    fn generation(&self) -> Result<strongroom::store::Generation, strongroom::store::StoreError> {
        self.inner.generation()
    }
}

impl Store for MissedByScans {
    fn commit(
        &self,
        batch: &Batch,
    ) -> Result<strongroom::store::Committed, strongroom::store::StoreError> {
        self.inner.commit(batch)
    }

    fn snapshot(
        &self,
    ) -> Result<Box<dyn strongroom::store::Snapshot + '_>, strongroom::store::StoreError> {
        self.hidden.lock().unwrap().take();
        self.inner.snapshot()
    }

    fn schema_version(&self) -> Result<u32, strongroom::store::StoreError> {
        self.inner.schema_version()
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn replace_all(
        &self,
        rows: &mut dyn Iterator<
            Item = Result<(Table, strongroom::store::Row), strongroom::store::StoreError>,
        >,
    ) -> Result<u64, strongroom::store::StoreError> {
        self.inner.replace_all(rows)
    }
}

/// A version of Bob's that the re-attestation pass did not see (it moved while the pass
/// walked the table) is found by the check over one consistent view before the loss is
/// recorded, and re-attested: it is not refused for good.
#[test]
fn a_version_the_pass_missed_is_reattested_before_the_loss_is_recorded() {
    let missed = Arc::new(MissedByScans {
        inner: MemoryStore::new(),
        hidden: std::sync::Mutex::new(None),
    });
    let store: Arc<dyn Store> = missed.clone();
    let (alice, _, bob, bobs) = alice_and_bob(&store);
    bobs.put("db", "host", b"first-by-bob").unwrap();
    bobs.put("db", "host", b"second-by-bob").unwrap();
    let record = bobs.get("db", "host").unwrap().meta().record_id;
    let older = [&record.as_bytes()[..], &1u64.to_be_bytes()].concat();
    *missed.hidden.lock().unwrap() = Some((Table::Deks, older));
    alice.set_role(bob.member_id(), Role::ReadOnly).unwrap();
    assert!(
        missed.hidden.lock().unwrap().is_none(),
        "the check took a snapshot"
    );
    assert!(alice.pending_reattestation().is_empty());
    for version in [1, 2] {
        let got = alice.get_version("db", "host", version).unwrap();
        assert_eq!(
            got.meta().authorship,
            Authorship::Vouched {
                by: alice.member_id()
            },
            "version {version}"
        );
    }
}
