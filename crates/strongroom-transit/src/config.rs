//! How to reach a Transit key: server, TLS roots, namespace, mount, key, authentication.

use core::fmt;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use strongroom_keyholder::{
    CustodyError, CustodyProblem, KeyholderError, KeyholderKind, UnwrapCache,
};

/// The largest mount path, key name or namespace accepted (they are written into stanzas).
pub const MAX_NAME: usize = 255;

/// How the keyholder authenticates to the server. `Debug` shows no credential.
#[derive(Clone)]
#[non_exhaustive]
pub enum TransitAuth {
    /// A token (`X-Vault-Token`), e.g. a periodic token issued for this application.
    Token(SecretString),
    /// AppRole: a role id and a secret id are exchanged for a token at the first request
    /// (and again when the token is refused).
    AppRole {
        /// The AppRole auth mount (usually `approle`).
        mount: String,
        /// The role id.
        role_id: SecretString,
        /// The secret id.
        secret_id: SecretString,
    },
}

impl TransitAuth {
    /// AppRole at the default mount `approle`.
    pub fn approle(role_id: SecretString, secret_id: SecretString) -> Self {
        TransitAuth::AppRole {
            mount: "approle".to_owned(),
            role_id,
            secret_id,
        }
    }
}

impl fmt::Debug for TransitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitAuth::Token(_) => f.write_str("Token(<redacted>)"),
            TransitAuth::AppRole { mount, .. } => {
                write!(
                    f,
                    "AppRole(mount {mount:?}, <role id and secret id redacted>)"
                )
            }
        }
    }
}

/// Where the Transit key is and how to reach it. Passed in by the application (this crate
/// reads no environment variables and no files but the CA certificate given to
/// [`TransitConfig::with_ca_file`]). `Debug` leaves the credentials out.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransitConfig {
    /// The server's address, `https://host:8200` (or `http://` for a local dev server).
    pub address: String,
    /// The Transit secrets engine's mount path (default `transit`).
    pub mount: String,
    /// The Transit key's name.
    pub key: String,
    /// The namespace (`X-Vault-Namespace`), if any.
    pub namespace: Option<String>,
    /// How to authenticate.
    pub auth: TransitAuth,
    /// PEM CA certificates that sign the server's certificate; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Upper bound on one request, connection included (default 10 s).
    pub timeout: Duration,
    /// The cache of unwrapped keys (default: [`UnwrapCache::default`], private to the
    /// keyholder; pass a shared one to share it between keyholders).
    pub cache: UnwrapCache,
}

impl TransitConfig {
    /// A configuration for key `key` at mount `transit` of the server at `address`.
    pub fn new(address: &str, key: &str, auth: TransitAuth) -> Self {
        Self {
            address: address.trim_end_matches('/').to_owned(),
            mount: "transit".to_owned(),
            key: key.to_owned(),
            namespace: None,
            auth,
            ca_pem: None,
            timeout: Duration::from_secs(10),
            cache: UnwrapCache::default(),
        }
    }

    /// Sets the mount path.
    #[must_use]
    pub fn with_mount(mut self, mount: &str) -> Self {
        mount.trim_matches('/').clone_into(&mut self.mount);
        self
    }

    /// Sets the namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        let ns = namespace.trim_matches('/');
        self.namespace = (!ns.is_empty()).then(|| ns.to_owned());
        self
    }

    /// Trusts the PEM CA certificates in `pem` (instead of the system's roots).
    #[must_use]
    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// Reads the PEM CA certificates of `path` (instead of the system's roots).
    pub fn with_ca_file(self, path: &Path) -> Result<Self, KeyholderError> {
        let pem = std::fs::read(path).map_err(|e| {
            CustodyError::new(
                KeyholderKind::Transit,
                CustodyProblem::Failed,
                format!("cannot read the CA certificate file {}", path.display()),
            )
            .with_source(e)
        })?;
        Ok(self.with_ca_pem(pem))
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the cache of unwrapped keys ([`UnwrapCache::disabled`] turns it off).
    #[must_use]
    pub fn with_cache(mut self, cache: UnwrapCache) -> Self {
        self.cache = cache;
        self
    }

    /// Checks the names (they are written into stanzas and into URLs).
    pub(crate) fn check(&self) -> Result<(), KeyholderError> {
        let bad = |what: String| -> KeyholderError {
            CustodyError::new(KeyholderKind::Transit, CustodyProblem::Failed, what).into()
        };
        if !(self.address.starts_with("https://") || self.address.starts_with("http://"))
            || self.address.len() > 2048
            || self.address.contains(['?', '#', '@', ' '])
        {
            return Err(bad(format!(
                "the Transit server address must be https://host[:port] (or http:// for a local dev server), not {:?}",
                self.address
            )));
        }
        check_name("mount path", &self.mount, true).map_err(bad)?;
        check_name("key name", &self.key, false).map_err(bad)?;
        if let Some(ns) = &self.namespace {
            check_name("namespace", ns, true).map_err(bad)?;
        }
        if let TransitAuth::AppRole { mount, .. } = &self.auth {
            check_name("AppRole mount path", mount, true).map_err(bad)?;
        }
        Ok(())
    }
}

impl fmt::Debug for TransitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitConfig")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .field("namespace", &self.namespace)
            .field("auth", &self.auth)
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("timeout", &self.timeout)
            .field("cache", &self.cache)
            .finish()
    }
}

/// 1 to [`MAX_NAME`] bytes of ASCII letters, digits, `_`, `-`, `.` (and `/` between
/// segments when `slashes`), no `.` or `..` segment.
pub(crate) fn check_name(what: &str, name: &str, slashes: bool) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let segments_ok = name
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != ".." && s.chars().all(ok_char));
    if name.is_empty() || name.len() > MAX_NAME || !segments_ok || (!slashes && name.contains('/'))
    {
        return Err(format!(
            "invalid Transit {what} {name:?}: 1 to {MAX_NAME} ASCII letters, digits, '_', '-', '.'{}",
            if slashes {
                ", segments separated by '/'"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let c = TransitConfig::new(
            "https://bao:8200/",
            "k",
            TransitAuth::approle(SecretString::from("role-123"), SecretString::from("s3cr3t")),
        );
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("role-123"), "{d}");
        assert!(
            d.contains("https://bao:8200\"") && d.contains("transit"),
            "{d}"
        );
        let t = TransitConfig::new(
            "http://x",
            "k",
            TransitAuth::Token(SecretString::from("hvs.tok")),
        );
        assert!(!format!("{t:?}").contains("hvs.tok"));
    }

    #[test]
    fn names_are_checked() {
        let ok = TransitConfig::new("https://h", "k-1.x_y", TransitAuth::Token("t".into()))
            .with_mount("/team/transit/")
            .with_namespace("ns1/child");
        ok.check().unwrap();
        assert_eq!(ok.mount, "team/transit");
        for bad in [
            TransitConfig::new("ftp://h", "k", TransitAuth::Token("t".into())),
            TransitConfig::new("https://u:p@h", "k", TransitAuth::Token("t".into())),
            TransitConfig::new("https://h", "a/b", TransitAuth::Token("t".into())),
            TransitConfig::new("https://h", "", TransitAuth::Token("t".into())),
            TransitConfig::new("https://h", "k", TransitAuth::Token("t".into()))
                .with_mount("a/../b"),
            TransitConfig::new("https://h", "k?x", TransitAuth::Token("t".into())),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(
            TransitConfig::new("https://h", "k", TransitAuth::Token("t".into()))
                .with_namespace("")
                .namespace
                .is_none()
        );
    }
}
