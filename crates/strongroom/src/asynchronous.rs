//! [`AsyncVault`]: the vault for async servers (feature `tokio`).
//!
//! Every call runs on the handle's own worker threads, never on the runtime's: a store
//! call may wait on a disk, a lock or a database server, and a runtime worker that waits
//! stalls every task scheduled on it. No `block_in_place`, no runtime inside the runtime.
//!
//! The threads are few and fixed (see [`AsyncVault::with_threads`]) and take calls from one
//! queue: under load a thread goes from one call to the next without sleeping, and the
//! store sees no more concurrent callers than it has connections for. (tokio's blocking
//! pool would start a thread per waiting call: 64 tasks made 64 threads contend for 2
//! cores and a 4-connection SQLite pool, at a tenth of the throughput.)
//!
//! Cancellation is safe: dropping the future of a call does not stop the work it started.
//! A write that began runs to its commit or to its error, and a commit is atomic, so a
//! cancelled `put` leaves the old version or the new one, never half of a record.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use crate::{
    NewSecret, PutManyReport, RotateOptions, RotationReport, Secret, SecretMeta, Vault, VaultError,
};

/// A call queued for the handle's threads.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// A cloneable, `Send + Sync` handle for tokio applications: the [`Vault`] API with owned
/// arguments, each call run on the handle's worker threads, off the runtime's.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), strongroom::VaultError> {
/// # use std::sync::Arc;
/// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
/// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
/// let vault = strongroom::AsyncVault::new(vault)?;
/// vault.put("core/api", "TOKEN", b"t0k3n".to_vec()).await?;
/// let token = vault.get("core/api", "TOKEN").await?;
/// assert_eq!(token.expose_secret(), b"t0k3n");
/// # Ok(())
/// # }
/// ```
///
/// The threads stop once every clone of the handle is dropped and the calls already
/// queued have run.
#[derive(Clone, Debug)]
pub struct AsyncVault {
    vault: Arc<Vault>,
    jobs: mpsc::Sender<Job>,
}

impl AsyncVault {
    /// Worker threads of [`AsyncVault::new`].
    pub const DEFAULT_THREADS: usize = 4;

    /// Wraps an unlocked vault, with [`DEFAULT_THREADS`](Self::DEFAULT_THREADS) worker
    /// threads: as many as the SQLite store keeps read connections, so a rotation can run
    /// on one while the others serve calls.
    ///
    /// # Errors
    /// [`VaultError::Io`] if the operating system refuses a thread.
    pub fn new(vault: Vault) -> Result<Self, VaultError> {
        Self::with_threads(vault, Self::DEFAULT_THREADS)
    }

    /// Wraps an unlocked vault with `threads` worker threads (at least one): the number of
    /// calls that run at once. Size it like the store's connection pool. A long call (a
    /// rotation) holds its thread to the end, and calls queued behind busy threads wait
    /// their turn.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// let vault = strongroom::AsyncVault::with_threads(vault, 8)?;
    /// # Ok::<(), strongroom::VaultError>(())
    /// ```
    ///
    /// # Errors
    /// [`VaultError::Io`] if the operating system refuses a thread.
    pub fn with_threads(vault: Vault, threads: usize) -> Result<Self, VaultError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("strongroom-async-{i}"))
                .spawn(move || work(&queue))
                .map_err(|source| VaultError::Io {
                    what: "starting the async handle's worker threads".to_owned(),
                    source,
                })?;
        }
        Ok(Self {
            vault: Arc::new(vault),
            jobs,
        })
    }

    /// The synchronous handle (for calls this type does not offer).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Runs `f` on one of the handle's threads with the vault.
    ///
    /// A panic in `f` comes back as a panic here (the thread goes on with the next call);
    /// a call abandoned before it finished is reported as
    /// [`VaultError::OutcomeUnknown`] (it may or may not have happened: read again).
    pub async fn run<T, F>(&self, f: F) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> Result<T, VaultError> + Send + 'static,
    {
        let vault = Arc::clone(&self.vault);
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may be gone (a cancelled call): the work is done all the same.
            let _ = done.send(catch_unwind(AssertUnwindSafe(|| f(&vault))));
        });
        if self.jobs.send(job).is_err() {
            return Err(VaultError::OutcomeUnknown);
        }
        match outcome.await {
            Ok(Ok(out)) => out,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(VaultError::OutcomeUnknown),
        }
    }

    /// [`Vault::get`].
    pub async fn get(
        &self,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Secret, VaultError> {
        let (ns, name) = (namespace.into(), name.into());
        self.run(move |v| v.get(&ns, &name)).await
    }

    /// [`Vault::get_many`].
    pub async fn get_many(
        &self,
        namespace: impl Into<String>,
        names: Vec<String>,
    ) -> Result<Vec<Option<Secret>>, VaultError> {
        let ns = namespace.into();
        self.run(move |v| {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            v.get_many(&ns, &names)
        })
        .await
    }

    /// [`Vault::load`]: every secret of a namespace, in one consistent read.
    pub async fn load(&self, namespace: impl Into<String>) -> Result<Vec<Secret>, VaultError> {
        let ns = namespace.into();
        self.run(move |v| v.load(&ns)).await
    }

    /// [`Vault::put`]. The value is moved in and zeroized after sealing.
    pub async fn put(
        &self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        value: Vec<u8>,
    ) -> Result<SecretMeta, VaultError> {
        let (ns, name) = (namespace.into(), name.into());
        let value = zeroize::Zeroizing::new(value);
        self.run(move |v| v.put(&ns, &name, &value)).await
    }

    /// [`Vault::put_many`]: `(namespace, name, value)` triples, all in one commit.
    pub async fn put_many(
        &self,
        secrets: Vec<(String, String, Vec<u8>)>,
    ) -> Result<PutManyReport, VaultError> {
        let secrets: Vec<(String, String, zeroize::Zeroizing<Vec<u8>>)> = secrets
            .into_iter()
            .map(|(ns, n, v)| (ns, n, zeroize::Zeroizing::new(v)))
            .collect();
        self.run(move |v| {
            let batch: Vec<NewSecret<'_>> = secrets
                .iter()
                .map(|(ns, n, val)| NewSecret {
                    namespace: ns,
                    name: n,
                    value: val,
                })
                .collect();
            v.put_many(&batch)
        })
        .await
    }

    /// [`Vault::delete`].
    pub async fn delete(
        &self,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<(), VaultError> {
        let (ns, name) = (namespace.into(), name.into());
        self.run(move |v| v.delete(&ns, &name)).await
    }

    /// [`Vault::list`].
    pub async fn list(&self, namespace: impl Into<String>) -> Result<Vec<SecretMeta>, VaultError> {
        let ns = namespace.into();
        self.run(move |v| v.list(&ns)).await
    }

    /// [`Vault::rotate_vault_key_with`]: the whole rotation runs on one of the handle's
    /// threads; other calls go on meanwhile on the others.
    pub async fn rotate_vault_key(
        &self,
        options: RotateOptions,
    ) -> Result<RotationReport, VaultError> {
        self.run(move |v| v.rotate_vault_key_with(options, &mut |_| {}))
            .await
    }

    /// [`Vault::refresh`].
    pub async fn refresh(&self) -> Result<(), VaultError> {
        self.run(Vault::refresh).await
    }
}

/// A worker thread: runs queued calls one after the other until every handle is gone.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next call, never while running one.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(job) => job(),
            Err(mpsc::RecvError) => return,
        }
    }
}
