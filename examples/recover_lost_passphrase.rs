//! Recovering from lost secrets.
//!
//! 1. A vault protected by a passphrase and a recovery key (printed once, kept on paper).
//!    The passphrase is forgotten: the recovery key unlocks, a new passphrase replaces
//!    the old one, and the used recovery key is replaced by a fresh one. No record is
//!    touched.
//! 2. A teammate who lost both passphrase and recovery key makes a new identity; a
//!    co-member compares its fingerprint and re-grants the vault to it. No escrow.
//!
//! ```text
//! cargo run --example recover_lost_passphrase
//! ```

use std::error::Error;
use std::sync::Arc;

use strongroom::recovery::secrecy::{ExposeSecret, SecretString};
use strongroom::recovery::{KeyholderKind, PassphraseKeyholder, Profile, RecoveryKey};
use strongroom::sharing::{Pins, Role};
use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::store::Store;
use strongroom::{CreateOptions, IdentityFile, UnlockOptions, Vault};

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

fn passphrase(text: &str) -> Result<PassphraseKeyholder, Box<dyn Error>> {
    // Profile::Default is RFC 9106's second recommendation (64 MiB, 3 passes, 4 lanes).
    Ok(PassphraseKeyholder::new(
        &SecretString::from(text.to_owned()),
        Profile::Default,
    )?)
}

/// The example's body (also run by the strongroom crate's tests).
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("vault.db"),
        SqliteOptions::default(),
    )?);

    // --- 1. Lost passphrase, recovery key at hand -----------------------------------
    let old_passphrase = passphrase("a passphrase that will be forgotten")?;
    let options = CreateOptions::default().with_member_name("alice".into());
    let (vault, report) = Vault::create(Arc::clone(&store), &old_passphrase, &options)?;
    for w in &report.warnings {
        println!("warning: {w}");
    }
    let recovery = RecoveryKey::generate()?;
    vault.add_keyholder(&recovery)?;
    // Shown once, to be written down; only its stanza is stored.
    let paper = recovery.to_text();
    println!("recovery key {} (write it down)", recovery.key_id());
    vault.put("core/app", "DATABASE_URL", b"postgres://app:pw@db/app")?; // pragma: allowlist secret
    let member = vault.member_id();
    drop((vault, recovery, old_passphrase));
    println!("... months later, the passphrase is forgotten");

    let typed = RecoveryKey::parse(&paper.expose_secret().to_lowercase().replace('-', " "))?;
    let vault = Vault::open(Arc::clone(&store))?.unlock(&typed)?;
    println!(
        "unlocked with recovery key {}; DATABASE_URL has {} bytes",
        typed.key_id(),
        vault.get("core/app", "DATABASE_URL")?.meta().len
    );
    // New passphrase in place of the old one (O(1): the member key is rewrapped).
    let lost_id = find(&vault, KeyholderKind::Passphrase)?;
    let new_passphrase = passphrase("a new passphrase, stored in a password manager")?;
    vault.rotate_keyholder(&lost_id, &new_passphrase)?;
    // The recovery key was typed somewhere: replace it too.
    let fresh = RecoveryKey::generate()?;
    vault.rotate_keyholder(&typed.stanza_id(), &fresh)?;
    println!(
        "new passphrase set; recovery key {} replaced by {} (write the new one down)",
        typed.key_id(),
        fresh.key_id()
    );
    let kinds: Vec<String> = vault
        .keyholders()?
        .iter()
        .map(|k| k.kind.to_string())
        .collect();
    println!("keyholders now: {kinds:?}");
    match Vault::open(Arc::clone(&store))?.unlock(&typed) {
        Err(e) if e.is_unlock_failure() => println!("the used recovery key is refused: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the replaced recovery key still unlocks".into()),
    }
    let again = Vault::open(Arc::clone(&store))?.unlock_with(
        &new_passphrase,
        UnlockOptions::default()
            .with_member(Some(member))
            .with_pins(vault.pins()),
    )?;
    println!("the new passphrase unlocks");

    // --- 2. A teammate lost everything: teammate restore ----------------------------
    let bob_old = passphrase("bob's passphrase, soon lost")?;
    let (bob_file, bob_identity) = IdentityFile::create("bob", &[&bob_old])?;
    let bob_public = bob_identity.public().clone();
    let confirmed = bob_public.confirm_fingerprint(&bob_public.fingerprint().digits())?;
    again.add_member(&bob_public, Role::Member, confirmed)?;
    Vault::join(&store, &bob_identity, &[&bob_old], Pins::default())?;
    println!(
        "bob joined; the vault now has {} members",
        again.members().len()
    );
    drop((bob_file, bob_identity, bob_old));
    println!("... bob loses his laptop, his passphrase and his recovery key");

    // Bob makes a new identity and sends its public half; Alice checks its fingerprint
    // with Bob over another channel and re-grants his membership to it.
    let bob_new_pass = passphrase("bob's new passphrase")?;
    let (_, bob_new) = IdentityFile::create("bob", &[&bob_new_pass])?;
    let old_bob = again
        .members()
        .into_iter()
        .find(|m| m.name == "bob")
        .ok_or("bob is not a member")?
        .id;
    let confirmed = bob_new
        .public()
        .confirm_fingerprint(&bob_new.public().fingerprint().to_string())?;
    again.regrant(old_bob, bob_new.public(), confirmed)?;
    let bob = Vault::join(&store, &bob_new, &[&bob_new_pass], Pins::default())?;
    println!(
        "bob restored under a new identity; he reads DATABASE_URL ({} bytes)",
        bob.get("core/app", "DATABASE_URL")?.meta().len
    );
    let report = again.recoverability()?;
    println!(
        "recoverability: {} members, {} with a recovery key: {}",
        report.members, report.members_with_recovery_key, report.message
    );
    Ok(())
}

/// The id of this member's first keyholder of `kind`.
fn find(vault: &Vault, kind: KeyholderKind) -> Result<[u8; 8], Box<dyn Error>> {
    Ok(vault
        .keyholders()?
        .into_iter()
        .find(|k| k.kind == kind)
        .ok_or_else(|| format!("no {kind} keyholder"))?
        .id)
}
