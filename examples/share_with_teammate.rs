//! Sharing a vault with a teammate, and removing them again.
//!
//! Alice owns a vault. Bob makes an identity (sealed under his own passphrase) and sends
//! Alice its public half; they compare its fingerprint over another channel (a call, a
//! chat they trust), Alice adds Bob, Bob joins and reads. Later Alice removes Bob: a new
//! vault-key epoch that Bob never receives, and an exposure report listing exactly what Bob
//! could have read, so those credentials can be rotated at their source.
//!
//! ```text
//! cargo run --example share_with_teammate
//! ```

use std::error::Error;
use std::sync::Arc;

use strongroom::recovery::secrecy::SecretString;
use strongroom::recovery::{PassphraseKeyholder, Profile, RawKek};
use strongroom::sharing::{Pins, PublicIdentity, Role};
use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::store::Store;
use strongroom::{CreateOptions, IdentityFile, UnlockOptions, Vault};

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

/// The example's body (also run by the strongroom crate's tests).
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("team.db"),
        SqliteOptions::default(),
    )?);

    // Alice creates the vault (her keyholder here is a key file; a passphrase works the
    // same way) and stores the team's credentials.
    let alice_key = RawKek::generate()?;
    let options = CreateOptions::default().with_member_name("alice".into());
    let (alice, _) = Vault::create(Arc::clone(&store), &alice_key, &options)?;
    alice.put(
        "team/infra",
        "AWS_SECRET_ACCESS_KEY",
        b"wJalrXUtnFEMI/K7MDENG",
    )?;
    alice.put("team/infra", "GRAFANA_TOKEN", b"glsa_0123456789")?;
    alice.put("team/payroll", "BANK_API_KEY", b"bank-live-42")?;
    println!("alice created vault {}", alice.id());

    // Bob, on his machine: a new identity sealed under his passphrase, kept in a file.
    let bob_passphrase = PassphraseKeyholder::new(
        &SecretString::from("bob's long passphrase, typed at a prompt"),
        Profile::Default,
    )?;
    let (bob_file, _) = IdentityFile::create("bob", &[&bob_passphrase])?;
    let bob_file_path = dir.path().join("bob.identity");
    std::fs::write(&bob_file_path, bob_file.encode())?;
    // What Bob sends Alice: the public half, as text. Nothing secret.
    let bob_public_text = {
        let file = IdentityFile::decode(&std::fs::read(&bob_file_path)?)?;
        file.open(&bob_passphrase)?.public().to_text()
    };
    println!("bob sends his public identity: {}…", &bob_public_text[..40]);

    // Alice parses it; both read the fingerprint aloud and compare.
    let bob_public = PublicIdentity::from_text(&bob_public_text)?;
    println!(
        "alice sees fingerprint {} for {:?}",
        bob_public.fingerprint(),
        bob_public.name()
    );
    let read_by_bob_on_the_phone = bob_public.fingerprint().to_string();
    let confirmed = bob_public.confirm_fingerprint(&read_by_bob_on_the_phone)?;
    alice.add_member(&bob_public, Role::Member, confirmed)?;
    println!("alice added bob as a member");

    // Bob joins: he opens his identity file and stores his own keyholder in the vault.
    let bob_identity =
        IdentityFile::decode(&std::fs::read(&bob_file_path)?)?.open(&bob_passphrase)?;
    let bob = Vault::join(&store, &bob_identity, &[&bob_passphrase], Pins::default())?;
    let token = bob.get("team/infra", "GRAFANA_TOKEN")?;
    println!(
        "bob reads team/infra GRAFANA_TOKEN ({} bytes)",
        token.meta().len
    );
    // Bob keeps his pins: they detect a storage that rolls the membership log back.
    let bob_pins = bob.pins();

    // Alice removes Bob.
    let removal = alice.remove_member(bob_identity.member_id())?;
    println!(
        "alice removed bob: new epoch {}, bob could read epochs {}..={}",
        removal.new_epoch,
        removal.readable_epochs.start(),
        removal.readable_epochs.end()
    );
    println!("exposure report (rotate these at their source):");
    for exposed in alice.exposure(&removal)? {
        println!(
            "  {}/{} (versions {:?})",
            exposed.namespace, exposed.name, exposed.versions
        );
    }
    // Rewrapping retires the epochs Bob held.
    let rotated = alice.rotate_vault_key()?;
    println!(
        "alice rotated the vault key: epoch {}, older epochs retired",
        rotated.epoch
    );
    alice.put(
        "team/infra",
        "AWS_SECRET_ACCESS_KEY",
        b"rotated-at-the-source",
    )?;

    // Bob's credentials were deleted with his membership: his passphrase opens nothing.
    let attempt = Vault::open(Arc::clone(&store))?.unlock_with(
        &bob_passphrase,
        UnlockOptions::default()
            .with_member(Some(bob_identity.member_id()))
            .with_pins(bob_pins),
    );
    match attempt {
        Err(e) => println!("bob can no longer unlock: {e}"),
        Ok(_) => return Err("bob still unlocks after his removal".into()),
    }
    // His old handle cannot write either.
    if bob.put("team/infra", "SNEAKY", b"x").is_ok() {
        return Err("a removed member wrote a secret".into());
    }
    println!("members now: {:?}", member_names(&alice));
    Ok(())
}

fn member_names(vault: &Vault) -> Vec<String> {
    vault.members().into_iter().map(|m| m.name).collect()
}
