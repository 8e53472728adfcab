//! Scoped handles: a [`Namespace`] reads and writes one namespace and nothing else.
//!
//! A server gives each component (a plugin, a tenant's worker, one app of several) a
//! `Namespace` instead of the whole [`Vault`]: the handle has no way to name another
//! namespace, list it, or reach the vault's members, keyholders or rotation.

use crate::records::validate_namespace;
use crate::{Secret, SecretMeta, Vault, VaultError};

/// A handle limited to one namespace of an unlocked vault (e.g. `core/billing`).
///
/// Cheap to clone, `Send + Sync`; every call goes to the vault it was made from, with the
/// same guarantees (atomic writes, audit entries, online rotation).
///
/// ```
/// # use std::sync::Arc;
/// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
/// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
/// let billing = vault.namespace("core/billing")?;
/// billing.put("STRIPE_KEY", b"sk_live_123")?;
/// assert_eq!(billing.get("STRIPE_KEY")?.expose_secret(), b"sk_live_123");
/// // the same name in another namespace is another secret
/// assert!(vault.namespace("core/mail")?.get("STRIPE_KEY").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Namespace {
    vault: Vault,
    namespace: String,
}

impl core::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Namespace")
            .field("vault_id", &self.vault.id())
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Vault {
    /// A handle that can only touch `namespace` (validated as by
    /// [`validate_namespace`](crate::validate_namespace)).
    pub fn namespace(&self, namespace: &str) -> Result<Namespace, VaultError> {
        validate_namespace(namespace)?;
        Ok(Namespace {
            vault: self.clone(),
            namespace: namespace.to_owned(),
        })
    }
}

impl Namespace {
    /// The namespace this handle is limited to.
    pub fn name(&self) -> &str {
        &self.namespace
    }

    /// Writes a secret of this namespace ([`Vault::put`]).
    pub fn put(&self, name: &str, value: &[u8]) -> Result<SecretMeta, VaultError> {
        self.vault.put(&self.namespace, name, value)
    }

    /// Reads the current version of a secret of this namespace ([`Vault::get`]).
    pub fn get(&self, name: &str) -> Result<Secret, VaultError> {
        self.vault.get(&self.namespace, name)
    }

    /// Reads a given version of a secret of this namespace ([`Vault::get_version`]).
    pub fn get_version(&self, name: &str, version: u64) -> Result<Secret, VaultError> {
        self.vault.get_version(&self.namespace, name, version)
    }

    /// Deletes a secret of this namespace and all its versions ([`Vault::delete`]).
    pub fn delete(&self, name: &str) -> Result<(), VaultError> {
        self.vault.delete(&self.namespace, name)
    }

    /// Lists the secrets of this namespace, sorted by name ([`Vault::list`]).
    pub fn list(&self) -> Result<Vec<SecretMeta>, VaultError> {
        self.vault.list(&self.namespace)
    }

    /// The stored versions of a secret of this namespace, oldest first
    /// ([`Vault::history`]).
    pub fn history(&self, name: &str) -> Result<Vec<SecretMeta>, VaultError> {
        self.vault.history(&self.namespace, name)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use strongroom_recovery::RawKek;
    use strongroom_store::MemoryStore;

    use super::*;
    use crate::CreateOptions;

    fn vault() -> Vault {
        let kek = RawKek::generate().unwrap();
        Vault::create(
            Arc::new(MemoryStore::new()),
            &kek,
            &CreateOptions::default(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_scoped_handle_sees_only_its_namespace() {
        let v = vault();
        let app = v.namespace("core/app").unwrap();
        let other = v.namespace("core/other").unwrap();
        assert_eq!(app.name(), "core/app");
        app.put("TOKEN", b"a1").unwrap();
        app.put("TOKEN", b"a2").unwrap();
        other.put("TOKEN", b"o1").unwrap();
        v.put("core/app/child", "TOKEN", b"child").unwrap();

        assert_eq!(app.get("TOKEN").unwrap().expose_secret(), b"a2");
        assert_eq!(app.get_version("TOKEN", 1).unwrap().expose_secret(), b"a1");
        assert_eq!(other.get("TOKEN").unwrap().expose_secret(), b"o1");
        assert_eq!(v.get("core/app", "TOKEN").unwrap().expose_secret(), b"a2");
        let listed: Vec<(String, String)> = app
            .list()
            .unwrap()
            .into_iter()
            .map(|m| (m.namespace, m.name))
            .collect();
        assert_eq!(listed, [("core/app".to_owned(), "TOKEN".to_owned())]);
        assert_eq!(app.history("TOKEN").unwrap().len(), 2);

        app.delete("TOKEN").unwrap();
        assert!(matches!(app.get("TOKEN"), Err(VaultError::NotFound { .. })));
        assert!(app.list().unwrap().is_empty());
        // the other namespaces are untouched
        assert_eq!(other.get("TOKEN").unwrap().expose_secret(), b"o1");
        assert_eq!(
            v.get("core/app/child", "TOKEN").unwrap().expose_secret(),
            b"child"
        );
    }

    #[test]
    fn invalid_namespaces_are_refused_up_front() {
        let v = vault();
        for bad in ["", "a//b", "../x", "white space"] {
            assert!(
                matches!(v.namespace(bad), Err(VaultError::Invalid { .. })),
                "{bad:?}"
            );
        }
        let ns = v.namespace("plugins/acme.sync").unwrap();
        assert!(matches!(ns.put("", b"x"), Err(VaultError::Invalid { .. })));
        let dbg = format!("{ns:?}");
        assert!(dbg.contains("plugins/acme.sync"), "{dbg}");
    }

    #[test]
    fn handles_are_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Namespace>();
        let v = vault();
        let ns = v.namespace("core/app").unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                let ns = ns.clone();
                s.spawn(move || {
                    for i in 0..10 {
                        ns.put(&format!("t{t}-{i}"), format!("{t}/{i}").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(ns.list().unwrap().len(), 40);
        assert_eq!(ns.get("t3-9").unwrap().expose_str(), Some("3/9"));
    }
}
