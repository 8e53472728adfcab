//! Scoped service accounts through the facade: a member granted `core/billing` reads and
//! writes there and nowhere else, whatever it can do to the storage. Forgeries are built
//! with the envelope's independent reference implementation and the payload page's
//! encoder, not with anything private to strongroom.

mod payload_spec;
#[path = "../../strongroom-envelope/tests/reference/mod.rs"]
mod reference;

use std::sync::Arc;

use payload_spec::{WRITTEN, payload_v1, payload_v2, spec_digest_of};
use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Pins, Role, ScopeId};
use strongroom::store::{
    Batch, CountingStore, Expect, MemoryStore, ReadView, ScanRange, Store, Table,
};
use strongroom::{
    Authorship, CreateOptions, Inconsistency, ScopedVault, UnlockOptions, Vault, VaultError,
    WriterProblem,
};

struct Setup {
    store: Arc<dyn Store>,
    alice: Vault,
    billing: ScopeId,
    /// The billing application: member role on `core/billing`.
    app: Account,
    /// A reporting job: read-only on `core/billing`.
    report: Account,
}

struct Account {
    identity: Identity,
    kek: RawKek,
    vault: ScopedVault,
}

/// `name`, added to `alice`'s vault as a scoped member with `role` on `scope`, joined with
/// a raw KEK of its own.
fn service_account(
    alice: &Vault,
    store: &Arc<dyn Store>,
    name: &str,
    scope: ScopeId,
    role: Role,
) -> Account {
    let identity = Identity::generate(name).unwrap();
    let public = identity.public();
    let confirmed = public
        .confirm_fingerprint(&public.fingerprint().digits())
        .unwrap();
    alice.add_member(public, Role::Scoped, confirmed).unwrap();
    alice.grant_scope(public.member_id(), scope, role).unwrap();
    let kek = RawKek::generate().unwrap();
    let vault = Vault::open(Arc::clone(store))
        .unwrap()
        .join_scoped(&identity, &[&kek])
        .unwrap();
    Account {
        identity,
        kek,
        vault,
    }
}

/// Alice's vault on `store` with `core/auth/DB_PASSWORD` (written first, before any scope:
/// the vault-wide area), a scope over `core/billing` holding `STRIPE_KEY`, and two service
/// accounts on it.
fn setup_on(store: Arc<dyn Store>) -> Setup {
    let (alice, _) = Vault::create(
        Arc::clone(&store),
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    alice.put("core/auth", "DB_PASSWORD", b"hunter2").unwrap();
    let billing = alice.create_scope("core/billing").unwrap();
    alice
        .put("core/billing", "STRIPE_KEY", b"sk_live_1")
        .unwrap();
    let app = service_account(&alice, &store, "billing-app", billing, Role::Member);
    let report = service_account(&alice, &store, "billing-report", billing, Role::ReadOnly);
    Setup {
        store,
        alice,
        billing,
        app,
        report,
    }
}

fn setup() -> Setup {
    setup_on(Arc::new(MemoryStore::new()))
}

/// `account`'s handle unlocked afresh with its KEK.
fn unlock(s: &Setup, account: &Account) -> Result<ScopedVault, VaultError> {
    Vault::open(Arc::clone(&s.store))?.unlock_scoped_with(
        &account.kek,
        UnlockOptions::default().with_member(Some(account.identity.member_id())),
    )
}

fn is_out_of_scope(e: &VaultError, ns: &str) -> bool {
    matches!(e, VaultError::OutOfScope { namespace } if namespace == ns)
}

/// The index rows in storage, by key.
fn index_rows(store: &dyn ReadView) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .scan(Table::Index, &ScanRange::all(), None, 1000)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect()
}

/// The key id of the data-key wrap of an index entry's inline head
/// (`docs/spec/index-entry.md`, `docs/spec/envelope.md`).
fn head_key_id(entry: &[u8]) -> [u8; 8] {
    assert_eq!(entry[0], 2, "index entry format 2");
    entry[42 + 6..42 + 14].try_into().unwrap()
}

#[test]
fn a_service_account_reads_its_scope_and_nothing_else() {
    let s = setup();
    s.alice.put("core/billing/eu", "VAT_KEY", b"vat").unwrap();
    s.alice.put("core/billingx", "OTHER", b"x").unwrap();
    let app = &s.app.vault;
    assert_eq!(
        app.get("core/billing", "STRIPE_KEY")
            .unwrap()
            .expose_secret(),
        b"sk_live_1"
    );
    assert_eq!(
        app.get("core/billing/eu", "VAT_KEY")
            .unwrap()
            .expose_secret(),
        b"vat"
    );
    let names: Vec<String> = app
        .list("core/billing")
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["STRIPE_KEY"]);
    for ns in ["core/auth", "core/billingx", "core", "plugins/x"] {
        assert!(is_out_of_scope(
            &app.get(ns, "DB_PASSWORD").unwrap_err(),
            ns
        ));
        assert!(is_out_of_scope(&app.list(ns).unwrap_err(), ns));
        assert!(is_out_of_scope(&app.put(ns, "X", b"v").unwrap_err(), ns));
        assert!(is_out_of_scope(&app.delete(ns, "X").unwrap_err(), ns));
        assert!(is_out_of_scope(&app.history(ns, "X").unwrap_err(), ns));
    }
    let scopes = app.scopes();
    assert_eq!(scopes.len(), 1);
    assert_eq!(
        (scopes[0].0.prefix.as_str(), scopes[0].0.id, scopes[0].1),
        ("core/billing", s.billing, Role::Member)
    );
    // A scoped member is not a full member: it cannot open the vault as one.
    assert!(
        Vault::open(Arc::clone(&s.store))
            .unwrap()
            .unlock(&s.app.kek)
            .is_err()
    );
}

#[test]
fn a_namespace_outside_the_scopes_is_refused_before_any_store_read() {
    let counting = Arc::new(CountingStore::new(MemoryStore::new()));
    let s = setup_on(counting.clone());
    let app = unlock(&s, &s.app).unwrap();
    app.get("core/billing", "STRIPE_KEY").unwrap();
    counting.take();
    assert!(app.get("core/auth", "DB_PASSWORD").is_err());
    assert!(app.list("core/auth").is_err());
    assert_eq!(counting.take().total(), 0);
    // In its scope: one store read per get, one read and one commit per put.
    app.get("core/billing", "STRIPE_KEY").unwrap();
    let c = counting.take();
    assert_eq!((c.reads(), c.total()), (1, 1), "{c:?}");
    app.put("core/billing", "STRIPE_KEY", b"sk_live_2").unwrap();
    let c = counting.take();
    assert_eq!((c.reads(), c.commit, c.total()), (1, 1, 2), "{c:?}");
    // A full member's get in a scope is one store read too.
    s.alice.get("core/billing", "STRIPE_KEY").unwrap();
    counting.take();
    s.alice.get("core/billing", "STRIPE_KEY").unwrap();
    let c = counting.take();
    assert_eq!((c.reads(), c.total()), (1, 1), "{c:?}");
}

#[test]
fn a_service_account_holds_no_key_outside_its_scopes() {
    let s = setup();
    s.alice.create_scope("core/mail").unwrap();
    s.alice.put("core/mail", "SMTP", b"smtp").unwrap();
    // Everything it holds, as the sharing layer opens it from storage with its KEK.
    let session = strongroom_sharing::unlock_scoped(
        &*s.store,
        s.alice.id(),
        Some(s.app.identity.member_id()),
        &s.app.kek,
        &mut Pins::default(),
    )
    .unwrap();
    let keys = session.scope_keys();
    assert_eq!(keys.keys().copied().collect::<Vec<_>>(), [s.billing]);
    let ids: Vec<[u8; 8]> = keys[&s.billing]
        .values()
        .map(|k| *k.id().as_bytes())
        .collect();
    // Of the three secrets in storage, only the billing one is wrapped under a key it
    // holds: the vault-wide secret and the other scope's are under keys it never gets.
    let rows = index_rows(&*s.store);
    assert_eq!(rows.len(), 3);
    let readable: Vec<_> = rows
        .iter()
        .filter(|(_, v)| ids.contains(&head_key_id(v)))
        .collect();
    assert_eq!(readable.len(), 1);
    let record = &readable[0].1[1..17];
    assert_eq!(
        record,
        s.alice
            .get("core/billing", "STRIPE_KEY")
            .unwrap()
            .meta()
            .record_id
            .as_bytes()
    );
}

#[test]
fn full_members_see_scoped_writes_signed_by_the_service_account() {
    let s = setup();
    let meta = s
        .app
        .vault
        .put("core/billing", "WEBHOOK_SECRET", b"whsec")
        .unwrap();
    assert_eq!(meta.updated_by, s.app.identity.member_id());
    let got = s.alice.get("core/billing", "WEBHOOK_SECRET").unwrap();
    assert_eq!(got.expose_secret(), b"whsec");
    assert_eq!(got.meta().updated_by, s.app.identity.member_id());
    assert_eq!(got.meta().authorship, Authorship::Signed);
    // The other service account of the scope reads it too.
    assert_eq!(
        s.report
            .vault
            .get("core/billing", "WEBHOOK_SECRET")
            .unwrap()
            .expose_secret(),
        b"whsec"
    );
    s.app
        .vault
        .delete("core/billing", "WEBHOOK_SECRET")
        .unwrap();
    assert!(matches!(
        s.alice.get("core/billing", "WEBHOOK_SECRET"),
        Err(VaultError::NotFound { .. })
    ));
}

#[test]
fn a_read_only_service_account_cannot_write_through_its_handle() {
    let s = setup();
    let e = s
        .report
        .vault
        .put("core/billing", "STRIPE_KEY", b"mine")
        .unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::PermissionDenied {
                role: Some(Role::ReadOnly)
            }
        ),
        "{e}"
    );
    assert!(matches!(
        s.report.vault.delete("core/billing", "STRIPE_KEY"),
        Err(VaultError::PermissionDenied { .. })
    ));
}

/// The current key of the billing scope as `account` unwraps it from its grant.
fn scope_key(s: &Setup, account: &Account) -> ([u8; 32], u32) {
    let session = strongroom_sharing::unlock_scoped(
        &*s.store,
        s.alice.id(),
        Some(account.identity.member_id()),
        &account.kek,
        &mut Pins::default(),
    )
    .unwrap();
    let (epoch, key) = session.scope_keys()[&s.billing].iter().last().unwrap();
    (*key.expose_secret().expose_secret(), epoch.0)
}

/// Writes a new head version of the secret at index row `(key, entry)`: `ns`/`name` with
/// `value`, signed by `signer` as written at the log's current position, sealed under a
/// fresh data key wrapped by `vk` (epoch `epoch`). What a service account with write access
/// to the storage can do with the keys it holds.
fn plant(
    s: &Setup,
    row: (Vec<u8>, Vec<u8>),
    key: ([u8; 32], u32),
    signer: &Identity,
    ns: &str,
    name: &str,
    value: &[u8],
) {
    let seq = s.store.log_head(Table::MemberLog).unwrap().unwrap();
    plant_at(s, row, key, signer, seq, (ns, name, value));
}

/// [`plant`], signed as written at log position `seq`.
fn plant_at(
    s: &Setup,
    (key, entry): (Vec<u8>, Vec<u8>),
    (vk, epoch): ([u8; 32], u32),
    signer: &Identity,
    seq: u64,
    (ns, name, value): (&str, &str, &[u8]),
) {
    let record: [u8; 16] = entry[1..17].try_into().unwrap();
    let version = u64::from_be_bytes(entry[17..25].try_into().unwrap()) + 1;
    let v1 = payload_v1(ns, name, signer.member_id().as_bytes(), value);
    let payload = payload_v2(&v1, signer.member_id().as_bytes(), WRITTEN, seq, |part| {
        signer.sign_record(&spec_digest_of(
            s.alice.id().as_bytes(),
            &record,
            version,
            part,
        ))
    });
    let ctx = reference::Ctx {
        vault: *s.alice.id().as_bytes(),
        record,
        version,
    };
    let (body, wrapped) =
        reference::ref_seal_v2(&vk, epoch, epoch, 2, &ctx, &[7; 32], &[9; 24], &payload);
    let mut new = entry[..41].to_vec();
    new[17..25].copy_from_slice(&version.to_be_bytes());
    new[33..41].copy_from_slice(&version.to_be_bytes());
    new.push(1);
    new.extend_from_slice(&wrapped);
    new.extend_from_slice(&body);
    let mut b = Batch::new();
    b.put(Table::Index, key, new, Expect::Any);
    s.store.commit(&b).unwrap();
}

/// The index row of the secret `record` (found by its record id).
fn row_of(s: &Setup, ns: &str, name: &str) -> (Vec<u8>, Vec<u8>) {
    let record = s.alice.get(ns, name).unwrap().meta().record_id;
    index_rows(&*s.store)
        .into_iter()
        .find(|(_, v)| v[1..17] == *record.as_bytes())
        .unwrap()
}

#[test]
fn a_record_a_service_account_plants_outside_its_scope_is_refused() {
    let s = setup();
    let auth = row_of(&s, "core/auth", "DB_PASSWORD");
    // Over the vault-wide secret's row: a payload naming `core/auth`, signed by the app,
    // under the only key it holds.
    plant(
        &s,
        auth,
        scope_key(&s, &s.app),
        &s.app.identity,
        "core/auth",
        "DB_PASSWORD",
        b"attacker",
    );
    let e = s.alice.get("core/auth", "DB_PASSWORD").unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Inconsistent {
                kind: Inconsistency::Misdirected,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("wrapped under a key of scope"),
        "{e}"
    );
}

#[test]
fn a_read_only_service_accounts_direct_write_is_refused() {
    let s = setup();
    let stripe = row_of(&s, "core/billing", "STRIPE_KEY");
    plant(
        &s,
        stripe,
        scope_key(&s, &s.report),
        &s.report.identity,
        "core/billing",
        "STRIPE_KEY",
        b"attacker",
    );
    for e in [
        s.alice.get("core/billing", "STRIPE_KEY").unwrap_err(),
        s.app.vault.get("core/billing", "STRIPE_KEY").unwrap_err(),
    ] {
        assert!(
            matches!(
                e,
                VaultError::Writer {
                    problem: WriterProblem::Refused { .. },
                    ..
                }
            ),
            "{e}"
        );
    }
    // The same write signed by the member of the scope is accepted: the refusal is the
    // writer's right, not the planting.
    let stripe = row_of_raw(&s);
    plant(
        &s,
        stripe,
        scope_key(&s, &s.app),
        &s.app.identity,
        "core/billing",
        "STRIPE_KEY",
        b"rotated",
    );
    assert_eq!(
        s.alice
            .get("core/billing", "STRIPE_KEY")
            .unwrap()
            .expose_secret(),
        b"rotated"
    );
}

/// The billing secret's row, found without opening it (its head no longer opens).
fn row_of_raw(s: &Setup) -> (Vec<u8>, Vec<u8>) {
    let (vk, _) = scope_key(s, &s.app);
    let id = reference::key_id(&vk);
    index_rows(&*s.store)
        .into_iter()
        .find(|(_, v)| head_key_id(v) == id)
        .unwrap()
}

#[test]
fn a_revocation_replaces_the_scope_key_only() {
    let s = setup();
    let epoch = s.alice.epoch();
    let app_id = s.app.identity.member_id();
    let new = s.alice.revoke_scope(app_id, s.billing).unwrap();
    assert_eq!(new.0, 2);
    assert_eq!(s.alice.epoch(), epoch, "the vault key stays");
    // The revoked account has no scope left: refused, not served from what it held.
    s.app.vault.refresh().unwrap();
    assert!(is_out_of_scope(
        &s.app.vault.get("core/billing", "STRIPE_KEY").unwrap_err(),
        "core/billing"
    ));
    let reopened = unlock(&s, &s.app).unwrap();
    assert!(is_out_of_scope(
        &reopened.get("core/billing", "STRIPE_KEY").unwrap_err(),
        "core/billing"
    ));
    // A new version goes under the new scope key, which the other account holds.
    s.alice
        .put("core/billing", "STRIPE_KEY", b"sk_live_2")
        .unwrap();
    s.report.vault.refresh().unwrap();
    assert_eq!(
        s.report
            .vault
            .get("core/billing", "STRIPE_KEY")
            .unwrap()
            .expose_secret(),
        b"sk_live_2"
    );
    // The older version, under the old scope key, through the scope's key chain.
    assert_eq!(
        s.report
            .vault
            .get_version("core/billing", "STRIPE_KEY", 1)
            .unwrap()
            .expose_secret(),
        b"sk_live_1"
    );
    // The rotation moves every version of the scope under its current key.
    s.alice.rotate_vault_key().unwrap();
    let (vk, e) = scope_key(&s, &s.report);
    assert_eq!(e, 2);
    let current = reference::key_id(&vk);
    let stripe = row_of(&s, "core/billing", "STRIPE_KEY");
    assert_eq!(head_key_id(&stripe.1), current);
    let history = s
        .store
        .scan(Table::Deks, &ScanRange::all(), None, 100)
        .unwrap();
    for row in history
        .rows
        .iter()
        .filter(|r| r.key[..16] == stripe.1[1..17])
    {
        assert_eq!(row.value[6..14], current, "an older version rewrapped too");
    }
    assert_eq!(
        s.report
            .vault
            .get_version("core/billing", "STRIPE_KEY", 1)
            .unwrap()
            .expose_secret(),
        b"sk_live_1"
    );
}

#[test]
fn removing_a_service_account_reports_its_scopes_secrets_only() {
    let s = setup();
    let report = s
        .alice
        .remove_scoped_member(s.app.identity.member_id())
        .unwrap();
    assert_eq!(report.scopes.len(), 1);
    assert_eq!(report.scopes[0].0, s.billing);
    let exposed: Vec<(&str, &str)> = report
        .exposed
        .iter()
        .map(|e| (e.namespace.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(exposed, [("core/billing", "STRIPE_KEY")]);
    assert!(
        s.alice
            .members()
            .iter()
            .all(|m| m.id != s.app.identity.member_id())
    );
    assert!(unlock(&s, &s.app).is_err());
    // The other account reads on under the new scope key.
    s.report.vault.refresh().unwrap();
    s.alice.put("core/billing", "NEW", b"n").unwrap();
    assert_eq!(
        s.report
            .vault
            .get("core/billing", "NEW")
            .unwrap()
            .expose_secret(),
        b"n"
    );
}

#[test]
fn a_scope_created_over_existing_secrets_takes_them_in_at_the_next_rotation() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (alice, _) = Vault::create(
        Arc::clone(&store),
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    alice.put("plugins/ci", "TOKEN", b"v1").unwrap();
    alice.put("plugins/ci", "TOKEN", b"v2").unwrap();
    let ci = alice.create_scope("plugins/ci").unwrap();
    let bot = service_account(&alice, &store, "ci-bot", ci, Role::ReadOnly);
    // Full members read it as before; the service account does not see it yet.
    assert_eq!(
        alice.get("plugins/ci", "TOKEN").unwrap().expose_secret(),
        b"v2"
    );
    assert!(matches!(
        bot.vault.get("plugins/ci", "TOKEN"),
        Err(VaultError::NotFound { .. })
    ));
    alice.rotate_vault_key().unwrap();
    assert_eq!(
        bot.vault
            .get("plugins/ci", "TOKEN")
            .unwrap()
            .expose_secret(),
        b"v2"
    );
    assert_eq!(
        alice.get("plugins/ci", "TOKEN").unwrap().expose_secret(),
        b"v2"
    );
    assert_eq!(
        alice
            .get_version("plugins/ci", "TOKEN", 1)
            .unwrap()
            .expose_secret(),
        b"v1"
    );
    assert_eq!(alice.list("plugins/ci").unwrap().len(), 1);
    // The older version stays under a vault key: the service account's history leaves it
    // out, and reading it says why.
    let history = bot.vault.history("plugins/ci", "TOKEN").unwrap();
    assert_eq!(history.iter().map(|m| m.version).collect::<Vec<_>>(), [2]);
    assert!(matches!(
        bot.vault.get_version("plugins/ci", "TOKEN", 1),
        Err(VaultError::KeyNotHeld { version: 1, .. })
    ));
}

#[test]
fn removing_a_full_member_rotates_every_scope() {
    let s = setup();
    let bob = Identity::generate("bob").unwrap();
    let public = bob.public();
    s.alice
        .add_member(
            public,
            Role::Member,
            public
                .confirm_fingerprint(&public.fingerprint().digits())
                .unwrap(),
        )
        .unwrap();
    let (old, _) = scope_key(&s, &s.report);
    s.alice.remove_member(public.member_id()).unwrap();
    let (new, epoch) = scope_key(&s, &s.report);
    assert_eq!(epoch, 2);
    assert_ne!(old, new);
    s.alice.rotate_vault_key().unwrap();
    s.report.vault.refresh().unwrap();
    assert_eq!(
        s.report
            .vault
            .get("core/billing", "STRIPE_KEY")
            .unwrap()
            .expose_secret(),
        b"sk_live_1"
    );
    let stripe = row_of(&s, "core/billing", "STRIPE_KEY");
    assert_eq!(head_key_id(&stripe.1), reference::key_id(&new));
    assert_eq!(
        s.alice
            .get("core/auth", "DB_PASSWORD")
            .unwrap()
            .expose_secret(),
        b"hunter2"
    );
}

#[test]
fn versions_a_service_account_wrote_stay_readable_after_it_loses_write_right() {
    let s = setup();
    s.app
        .vault
        .put("core/billing", "WEBHOOK", b"whsec")
        .unwrap();
    let app_id = s.app.identity.member_id();
    let before = s.store.log_head(Table::MemberLog).unwrap().unwrap();
    // Made read-only: what it wrote before is re-attested by the owner right away.
    s.alice
        .grant_scope(app_id, s.billing, Role::ReadOnly)
        .unwrap();
    assert_eq!(
        s.alice
            .get("core/billing", "WEBHOOK")
            .unwrap()
            .expose_secret(),
        b"whsec"
    );
    s.report.vault.refresh().unwrap();
    assert_eq!(
        s.report
            .vault
            .get("core/billing", "WEBHOOK")
            .unwrap()
            .expose_secret(),
        b"whsec"
    );
    // Its handle refuses to write from now on.
    s.app.vault.refresh().unwrap();
    assert!(matches!(
        s.app.vault.put("core/billing", "WEBHOOK", b"mine"),
        Err(VaultError::PermissionDenied {
            role: Some(Role::ReadOnly)
        })
    ));
    // And a version it plants naming a log position where it still had the right is
    // refused: backdated after the re-attestation.
    let row = row_of(&s, "core/billing", "WEBHOOK");
    let key = scope_key(&s, &s.app);
    plant_at(
        &s,
        row,
        key,
        &s.app.identity,
        before,
        ("core/billing", "WEBHOOK", b"backdated"),
    );
    let e = s.alice.get("core/billing", "WEBHOOK").unwrap_err();
    assert!(
        matches!(
            e,
            VaultError::Writer {
                problem: WriterProblem::RightLost {
                    reattested_at: Some(_),
                    ..
                },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_scope_key_replaced_on_its_own_is_granted_to_its_members() {
    let s = setup();
    let (old, _) = scope_key(&s, &s.report);
    assert_eq!(s.alice.rekey_scope(s.billing).unwrap().0, 2);
    let (new, epoch) = scope_key(&s, &s.app);
    assert_eq!(epoch, 2);
    assert_ne!(old, new);
    let status = s.alice.status().unwrap();
    assert_eq!(status.scopes.len(), 1);
    assert_eq!(status.scopes[0].epoch.0, 2);
    assert!(status.scopes_needing_rekey.is_empty());
    assert_eq!(
        status.pending_rewrap, 1,
        "STRIPE_KEY is under the old scope key"
    );
    s.alice.rotate_vault_key().unwrap();
    assert_eq!(s.alice.status().unwrap().pending_rewrap, 0);
    s.report.vault.refresh().unwrap();
    assert_eq!(
        s.report
            .vault
            .get("core/billing", "STRIPE_KEY")
            .unwrap()
            .expose_secret(),
        b"sk_live_1"
    );
    // Both service accounts keep the scope.
    let e = s
        .alice
        .scopes()
        .into_iter()
        .find(|x| x.id == s.billing)
        .unwrap();
    assert_eq!(e.members.len(), 2);
}

/// The blind index row key of `ns`/`name` in a scope, computed from `docs/spec/scope.md`
/// ("Records of a scope") and `docs/spec/index-entry.md` alone: the scope's metadata key
/// from the scope key, the index key from it, then the two truncated HMACs.
fn spec_blind(scope_key: &[u8; 32], scope: &[u8; 16], ns: &str, name: &str) -> Vec<u8> {
    let mut mk = [0u8; 32];
    reference::hkdf(
        scope_key,
        &[&b"strongroom/v3/scope-index\0"[..], scope].concat(),
        &mut mk,
    );
    let mut index = [0u8; 32];
    reference::hkdf(&mk, b"strongroom/v1/index\0", &mut index);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &index);
    let ns_tag = ring::hmac::sign(&key, &[&b"ns"[..], ns.as_bytes()].concat());
    let name_tag = ring::hmac::sign(
        &key,
        &[
            &b"name"[..],
            &(ns.len() as u32).to_be_bytes(),
            ns.as_bytes(),
            name.as_bytes(),
        ]
        .concat(),
    );
    [&ns_tag.as_ref()[..16], &name_tag.as_ref()[..16]].concat()
}

#[test]
fn the_scope_index_follows_the_page_and_tests_no_name_elsewhere() {
    let s = setup();
    let session = strongroom_sharing::unlock_scoped(
        &*s.store,
        s.alice.id(),
        Some(s.app.identity.member_id()),
        &s.app.kek,
        &mut Pins::default(),
    )
    .unwrap();
    let rows: Vec<Vec<u8>> = index_rows(&*s.store).into_iter().map(|(k, _)| k).collect();
    let held: Vec<(&ScopeId, [u8; 32])> = session
        .scope_keys()
        .iter()
        .flat_map(|(scope, epochs)| {
            epochs
                .values()
                .map(move |k| (scope, *k.expose_secret().expose_secret()))
        })
        .collect();
    assert!(!held.is_empty());
    // Its own secret's row is where the page says.
    let (current, _) = scope_key(&s, &s.app);
    assert!(rows.contains(&spec_blind(
        &current,
        s.billing.as_bytes(),
        "core/billing",
        "STRIPE_KEY"
    )));
    // `core/auth/DB_PASSWORD` is stored, but no key it holds computes a row key that is
    // there, nor even the namespace's prefix: it cannot test that the name exists.
    for (scope, key) in &held {
        let guess = spec_blind(key, scope.as_bytes(), "core/auth", "DB_PASSWORD");
        assert!(!rows.contains(&guess));
        assert!(rows.iter().all(|r| r[..16] != guess[..16]));
    }
}
