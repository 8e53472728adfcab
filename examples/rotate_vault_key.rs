//! Rotating keys without losing data: the vault key (every record's data key is rewrapped,
//! online and resumable, bodies untouched) and the application's `ENCRYPTION_KEY` (one
//! small stanza rewritten, O(1)).
//!
//! ```text
//! cargo run --example rotate_vault_key
//! ```

use std::error::Error;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use strongroom::recovery::RawKek;
use strongroom::store::Store;
use strongroom::{CreateOptions, Progress, RotateOptions, Vault};
use strongroom_sqlite::{SqliteOptions, SqliteStore};

const SECRETS: usize = 300;

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

fn value_of(i: usize) -> String {
    format!("token-{i:04}-{}", "x".repeat(i % 17))
}

/// The example's body (also run by the strongroom crate's tests).
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        dir.path().join("vault.db"),
        SqliteOptions::default(),
    )?);
    // The deployment's current ENCRYPTION_KEY (normally read from the environment).
    let old_kek = RawKek::generate()?;
    let (vault, _) = Vault::create(Arc::clone(&store), &old_kek, &CreateOptions::default())?;
    for i in 0..SECRETS {
        vault.put(
            "core/app",
            &format!("SECRET_{i:04}"),
            value_of(i).as_bytes(),
        )?;
    }
    println!(
        "vault {} with {SECRETS} secrets, vault-key epoch {}",
        vault.id(),
        vault.epoch()
    );

    // 1. Rotate the vault key. Other handles and processes keep reading and writing
    //    meanwhile; after `kill -9`, calling it again resumes where it stopped.
    let mut last_shown = 0;
    let mut bar = |p: Progress| {
        let total = p.total.max(1);
        if p.done == total || p.done >= last_shown + total / 5 {
            last_shown = p.done;
            let filled = (p.done * 20 / total) as usize;
            println!(
                "  rotating to epoch {}: [{}{}] {}/{}",
                p.epoch,
                "#".repeat(filled),
                " ".repeat(20 - filled.min(20)),
                p.done,
                total
            );
        }
    };
    let report = vault.rotate_vault_key_with(RotateOptions { batch_size: 64 }, &mut bar)?;
    println!(
        "vault key rotated: epoch {}, {} data keys rewrapped in {:.2} s, epochs below {} retired",
        report.epoch, report.processed, report.seconds, report.min_epoch
    );
    let pending = vault.pending_rewrap(report.epoch)?;
    println!("records still under an older epoch: {}", pending.len());
    if !pending.is_empty() {
        return Err("rotation left records behind".into());
    }

    // 2. Rotate ENCRYPTION_KEY: the new KEK wraps the member key, is checked to unlock,
    //    then the old stanza is removed. No record is read or written.
    let new_kek = RawKek::generate()?;
    // A raw KEK's stanza id is its key id (non-secret, safe to log).
    let old_id = *old_kek.key_id().as_bytes();
    if !vault.keyholders()?.iter().any(|k| k.id == old_id) {
        return Err("the current ENCRYPTION_KEY is not a keyholder".into());
    }
    let started = Instant::now();
    let versions_before = vault.status()?.versions;
    vault.rotate_keyholder(&old_id, &new_kek)?;
    println!(
        "ENCRYPTION_KEY rotated in {:.1} ms ({} record versions, none touched); deploy the new key now",
        started.elapsed().as_secs_f64() * 1000.0,
        versions_before
    );

    // 3. A restart with the new key opens everything; the old key is refused.
    let reopened = Vault::open(Arc::clone(&store))?.unlock(&new_kek)?;
    for i in 0..SECRETS {
        let s = reopened.get("core/app", &format!("SECRET_{i:04}"))?;
        if s.expose_secret() != value_of(i).as_bytes() {
            return Err(format!("SECRET_{i:04} changed").into());
        }
    }
    println!("all {SECRETS} secrets open with the new ENCRYPTION_KEY");
    match Vault::open(Arc::clone(&store))?.unlock(&old_kek) {
        Err(e) if e.is_unlock_failure() => println!("the old ENCRYPTION_KEY is refused: {e}"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the old ENCRYPTION_KEY still unlocks".into()),
    }
    let audit = reopened.audit_verify()?;
    println!("audit log verified: {} entries", audit.entries);
    std::io::stdout().flush()?;
    Ok(())
}
