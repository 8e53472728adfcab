//! A service account for one application: it reads its own namespace and nothing else.
//!
//! Alice owns a vault shared by several applications. The billing service gets an identity
//! of its own, added as a *scoped* member with the scope `core/billing`: it holds the keys
//! of that scope and no other key, so with the database in hand it still cannot decrypt
//! `core/auth`, list it, or even test whether a name exists there. Its writes are signed;
//! readers refuse anything it writes outside its scope. When the service is retired, its
//! removal replaces the scope's key only, and the exposure report lists the scope's
//! secrets and nothing else.
//!
//! ```text
//! cargo run --example service_account
//! ```

use std::error::Error;
use std::sync::Arc;

use strongroom::recovery::RawKek;
use strongroom::sharing::{Identity, Role};
use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::store::Store;
use strongroom::{CreateOptions, UnlockOptions, Vault, VaultError};

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

/// The example's body (also run by the strongroom crate's tests).
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("apps.db"),
        SqliteOptions::default(),
    )?);

    // Alice's vault, with a scope for the billing application and the secrets of two
    // applications.
    let alice_key = RawKek::generate()?;
    let options = CreateOptions::default().with_member_name("alice".into());
    let (alice, _) = Vault::create(Arc::clone(&store), &alice_key, &options)?;
    let billing = alice.create_scope("core/billing")?;
    alice.put("core/billing", "STRIPE_KEY", b"sk_live_51H")?;
    alice.put("core/auth", "DB_PASSWORD", b"hunter2")?;

    // The billing service's identity (made where it runs; only the public half travels).
    // Alice compares its fingerprint out of band, then adds it as a scoped member with the
    // member role on its scope (read and write).
    let service = Identity::generate("billing-service")?;
    let public = service.public();
    let confirmed = public.confirm_fingerprint(&public.fingerprint().to_string())?;
    alice.add_member(public, Role::Scoped, confirmed)?;
    alice.grant_scope(public.member_id(), billing, Role::Member)?;

    // The service joins with a key of its own (here a key file; a KMS or Vault Transit
    // keyholder in production), then unlocks with it at every start.
    let service_key = RawKek::generate()?;
    Vault::open(Arc::clone(&store))?.join_scoped(&service, &[&service_key])?;
    let app = Vault::open(Arc::clone(&store))?.unlock_scoped_with(
        &service_key,
        UnlockOptions::default().with_member(Some(service.member_id())),
    )?;
    let stripe = app.get("core/billing", "STRIPE_KEY")?;
    println!(
        "billing-service reads core/billing/STRIPE_KEY ({} bytes)",
        stripe.expose_secret().len()
    );
    app.put("core/billing", "WEBHOOK_SECRET", b"whsec_1")?;

    // Anything else is refused before a single store read: it holds no key for it.
    match app.get("core/auth", "DB_PASSWORD") {
        Err(VaultError::OutOfScope { namespace }) => {
            println!("billing-service cannot reach {namespace}: no key");
        }
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    // Alice sees its write, signed by the service.
    let webhook = alice.get("core/billing", "WEBHOOK_SECRET")?;
    assert_eq!(webhook.meta().updated_by, service.member_id());

    // Retired: the scope gets a new key; the report lists what it could read.
    let removal = alice.remove_scoped_member(service.member_id())?;
    for e in &removal.exposed {
        println!("rotate at its source: {}/{}", e.namespace, e.name);
    }
    assert!(
        removal
            .exposed
            .iter()
            .all(|e| e.namespace == "core/billing")
    );
    Ok(())
}
