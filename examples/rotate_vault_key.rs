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
use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::store::Store;
use strongroom::{CreateOptions, Progress, RotateOptions, Vault};

const SECRETS: usize = 300;

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

/// Replaces the key file atomically (a new 0600 file, synced, renamed over the old one), so
/// a crash leaves the old key or the new one, never half a key.
fn store_key(path: &std::path::Path, kek: &RawKek) -> std::io::Result<()> {
    use strongroom::recovery::secrecy::ExposeSecret;
    let tmp = path.with_extension("new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(kek.to_base64().expose_secret().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(path.parent().unwrap_or(std::path::Path::new(".")))?.sync_all()
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
    let report =
        vault.rotate_vault_key_with(RotateOptions::default().with_batch_size(64), &mut bar)?;
    println!(
        "vault key rotated: epoch {}, {} data keys rewrapped in {:.2} s, epochs below {} retired",
        report.epoch, report.processed, report.seconds, report.min_epoch
    );
    let pending = vault.pending_rewrap(report.epoch)?;
    println!("records still under an older epoch: {}", pending.len());
    if !pending.is_empty() {
        return Err("rotation left records behind".into());
    }

    // 2. Rotate ENCRYPTION_KEY, in an order a crash cannot break: the new key is added as
    //    a keyholder (the vault opens with either), stored where the next start reads it,
    //    and only then is the old one removed. A new key that lived only in memory would
    //    lock the next start out. No record is read or written.
    let key_file = dir.path().join("encryption.key");
    store_key(&key_file, &old_kek)?; // the deployment's key file, as before the rotation
    let new_kek = RawKek::generate()?;
    // A raw KEK's stanza id is its key id (non-secret, safe to log).
    let old_id = *old_kek.key_id().as_bytes();
    if !vault.keyholders()?.iter().any(|k| k.id == old_id) {
        return Err("the current ENCRYPTION_KEY is not a keyholder".into());
    }
    let started = Instant::now();
    let versions_before = vault.status()?.versions;
    vault.add_keyholder(&new_kek)?;
    store_key(&key_file, &new_kek)?;
    vault.remove_keyholder(&old_id)?;
    println!(
        "ENCRYPTION_KEY rotated in {:.1} ms ({} record versions, none touched); the new key is in {}",
        started.elapsed().as_secs_f64() * 1000.0,
        versions_before,
        key_file.display()
    );

    // 3. A restart reads the key file and opens everything; the old key is refused.
    let deployed = RawKek::from_file(&key_file)?;
    let reopened = Vault::open(Arc::clone(&store))?.unlock(&deployed)?;
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
