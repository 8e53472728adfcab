//! [`AsyncVault`]: the vault for async servers (feature `tokio`).
//!
//! Every call runs on tokio's blocking pool (`spawn_blocking`), never on the runtime's
//! worker threads: a store call may wait on a disk, a lock or a database server, and a
//! worker thread that waits stalls every task scheduled on it. No `block_in_place`, no
//! runtime inside the runtime.
//!
//! Cancellation is safe: dropping the future of a call does not stop the blocking work it
//! started. A write that began runs to its commit or to its error, and a commit is atomic,
//! so a cancelled `put` leaves the old version or the new one, never half of a record.

use std::sync::Arc;

use crate::{
    NewSecret, PutManyReport, RotateOptions, RotationReport, Secret, SecretMeta, Vault, VaultError,
};

/// A cloneable, `Send + Sync` handle for tokio applications: the [`Vault`] API with owned
/// arguments, each call run off the runtime's worker threads.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), strongroom::VaultError> {
/// # use std::sync::Arc;
/// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
/// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
/// let vault = strongroom::AsyncVault::new(vault);
/// vault.put("core/api", "TOKEN", b"t0k3n".to_vec()).await?;
/// let token = vault.get("core/api", "TOKEN").await?;
/// assert_eq!(token.expose_secret(), b"t0k3n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AsyncVault {
    vault: Arc<Vault>,
}

impl AsyncVault {
    /// Wraps an unlocked vault.
    pub fn new(vault: Vault) -> Self {
        Self {
            vault: Arc::new(vault),
        }
    }

    /// The synchronous handle (for calls this type does not offer).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Runs `f` on the blocking pool with the vault.
    ///
    /// A panic in `f` comes back as a panic here; the runtime shutting down is reported as
    /// an error (the call may or may not have happened: read again).
    pub async fn run<T, F>(&self, f: F) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> Result<T, VaultError> + Send + 'static,
    {
        let vault = Arc::clone(&self.vault);
        match tokio::task::spawn_blocking(move || f(&vault)).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
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

    /// [`Vault::rotate_vault_key_with`]: the whole rotation runs on one blocking thread;
    /// other calls go on meanwhile.
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
