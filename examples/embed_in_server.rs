//! Embedding strongroom in a server: one SQLite vault file, unlocked at start-up with the
//! application's `ENCRYPTION_KEY`, shared by worker threads that each see only the app's
//! namespace.
//!
//! ```text
//! cargo run --example embed_in_server
//! ENCRYPTION_KEY=$(openssl rand -base64 32) cargo run --example embed_in_server
//! ```
//!
//! Without `ENCRYPTION_KEY` in the environment the example generates a key into a file
//! of its temporary directory (mode 0600) and loads it from there, the way a container
//! mounts a secret file. Everything lives in a temporary directory removed at the end.

use std::error::Error;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use strongroom::recovery::RawKek;
use strongroom::recovery::secrecy::ExposeSecret;
use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::store::Store;
use strongroom::{CreateOptions, FilePinStore, Namespace, PinStore, Vault, VaultError};

/// The application's name: its secrets live in namespace `core/<APP>`.
const APP: &str = "billing";
const WORKERS: usize = 4;
const REQUESTS: usize = 40;

fn main() -> Result<(), Box<dyn Error>> {
    run()
}

/// A request the server handles; the reply goes back on `reply`.
enum Request {
    /// Read a configuration secret (as a handler building a database pool would).
    Read { name: String, reply: Sender<Reply> },
    /// Replace a secret (a webhook rotating an API token, say).
    Write {
        name: String,
        value: String,
        reply: Sender<Reply>,
    },
}

/// What a worker answers. Values stay inside the worker: only lengths and versions leave.
struct Reply {
    worker: usize,
    outcome: Result<(String, u64, usize), VaultError>,
}

/// The example's body (also run by the strongroom crate's tests).
pub(crate) fn run() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let kek = load_encryption_key(dir.path())?;
    let db = dir.path().join("vault.db");
    println!("vault file: {}", db.display());

    // Start-up: open the vault file, creating the vault on first start.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db, SqliteOptions::default())?);
    // What this server has verified of the vault's membership: a storage rolled back to an
    // older copy (a member removal undone) is refused at the next start.
    let pins: Arc<dyn PinStore> = Arc::new(FilePinStore::new(dir.path().join("pins"))?);
    let vault = open_or_create(&store, &kek, &pins)?;
    println!(
        "vault {} unlocked with ENCRYPTION_KEY (keyholders: {})",
        vault.id(),
        vault.keyholders()?.len()
    );

    // The app gets a handle limited to its own namespace, nothing else.
    let app: Namespace = vault.namespace(&format!("core/{APP}"))?;
    app.put(
        "DATABASE_URL",
        b"postgres://billing:s3cret@db.internal/billing", // pragma: allowlist secret
    )?;
    app.put("STRIPE_API_KEY", b"sk_live_0000000000000000")?;
    app.put("WEBHOOK_TOKEN", b"whk_initial")?;
    println!("seeded {} secrets into {}", app.list()?.len(), app.name());

    // Worker threads share one receiver and clones of the scoped handle.
    let (tx, rx) = mpsc::channel::<Request>();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let rx = Arc::clone(&rx);
            let app = app.clone();
            thread::spawn(move || worker(w, &app, &rx))
        })
        .collect();

    // The "clients": mostly reads, a few token rotations.
    let (reply_tx, reply_rx) = mpsc::channel();
    for i in 0..REQUESTS {
        let reply = reply_tx.clone();
        let request = if i % 10 == 9 {
            Request::Write {
                name: "WEBHOOK_TOKEN".into(),
                value: format!("whk_{i:04}"),
                reply,
            }
        } else {
            let name = ["DATABASE_URL", "STRIPE_API_KEY", "WEBHOOK_TOKEN"][i % 3];
            Request::Read {
                name: name.into(),
                reply,
            }
        };
        tx.send(request)?;
    }
    drop((tx, reply_tx));
    let mut per_worker = [0usize; WORKERS];
    let mut failed = 0;
    for reply in reply_rx {
        per_worker[reply.worker] += 1;
        if let Err(e) = reply.outcome {
            eprintln!("worker {}: {e}", reply.worker);
            failed += 1;
        }
    }
    for w in workers {
        w.join().map_err(|_| "a worker panicked")?;
    }
    println!("{REQUESTS} requests handled, per worker: {per_worker:?}, failed: {failed}");
    if failed > 0 {
        return Err(format!("{failed} requests failed").into());
    }

    // Another instance of the server (another process in production) unlocks the same
    // file with the same key and sees every write.
    let other = Vault::open(Arc::clone(&store))?.unlock_pinned(&kek, Arc::clone(&pins))?;
    let token = other
        .namespace(&format!("core/{APP}"))?
        .get("WEBHOOK_TOKEN")?;
    println!(
        "a second instance reads WEBHOOK_TOKEN version {} ({} bytes)",
        token.meta().version,
        token.meta().len
    );
    if token.meta().version != 1 + (REQUESTS / 10) as u64 {
        return Err("a token rotation was lost".into());
    }

    // Every put and unlock is in the audit log; nothing in it is secret.
    let audit = vault.audit_verify()?;
    println!("audit log verified: {} entries", audit.entries);
    Ok(())
}

/// The `ENCRYPTION_KEY` of the deployment: from the environment, or (for this demo) a
/// fresh key written to a 0600 file and loaded back, as a mounted secret file would be.
fn load_encryption_key(dir: &Path) -> Result<RawKek, Box<dyn Error>> {
    if let Ok(text) = std::env::var("ENCRYPTION_KEY") {
        println!("using ENCRYPTION_KEY from the environment");
        return Ok(RawKek::from_text(&text)?);
    }
    let path = dir.join("encryption.key");
    let fresh = RawKek::generate()?;
    write_private(&path, fresh.to_base64().expose_secret().as_bytes())?;
    println!(
        "ENCRYPTION_KEY is not set: generated one into {} (mode 0600).\n\
         In production, set ENCRYPTION_KEY (32 random bytes, base64 or hex) from your\n\
         secret manager, or mount it as a file and load it with RawKek::from_file.",
        path.display()
    );
    Ok(RawKek::from_file(&path)?)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Opens the vault in `store` (checked against the pins), or creates it there on first
/// start (and pins it).
fn open_or_create(
    store: &Arc<dyn Store>,
    kek: &RawKek,
    pins: &Arc<dyn PinStore>,
) -> Result<Vault, VaultError> {
    match Vault::open(Arc::clone(store)) {
        Ok(locked) => locked.unlock_pinned(kek, Arc::clone(pins)),
        Err(VaultError::NoVault) => {
            let options = CreateOptions::default().with_member_name(format!("{APP}-service"));
            let (vault, report) = Vault::create(Arc::clone(store), kek, &options)?;
            for w in &report.warnings {
                println!("warning at creation: {w}");
            }
            vault.pin_to(Arc::clone(pins))
        }
        Err(e) => Err(e),
    }
}

/// A worker: takes requests until the channel closes.
fn worker(id: usize, app: &Namespace, rx: &Mutex<Receiver<Request>>) {
    loop {
        let request = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(request) = request else { return };
        let (outcome, reply) = match request {
            Request::Read { name, reply } => {
                // The value is used here (to connect, to sign a call) and dropped, which
                // zeroizes it.
                let outcome = app
                    .get(&name)
                    .map(|s| (name, s.meta().version, s.expose_secret().len()));
                (outcome, reply)
            }
            Request::Write { name, value, reply } => {
                let outcome = app
                    .put(&name, value.as_bytes())
                    .map(|m| (name, m.version, m.len));
                (outcome, reply)
            }
        };
        // The rest of the request's work (a query, a call to the payment provider).
        thread::sleep(Duration::from_millis(2));
        // The client may have gone away; that is not the worker's problem.
        let _ = reply.send(Reply {
            worker: id,
            outcome,
        });
    }
}
