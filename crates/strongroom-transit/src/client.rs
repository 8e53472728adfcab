//! The HTTP side: one ureq agent over rustls, token handling, and the mapping of every
//! failure to a keyholder error that names the server and says what to do.

use std::sync::{Arc, Mutex, PoisonError};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use strongroom_crypto::CryptoError;
use strongroom_keyholder::{CustodyError, CustodyProblem, KeyholderError, KeyholderKind};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use zeroize::Zeroizing;

use crate::config::{TransitAuth, TransitConfig};

/// A JSON response body; zeroized on drop (decrypt responses hold the plaintext key).
pub(crate) struct Body(pub(crate) Zeroizing<String>);

pub(crate) struct Client {
    agent: Agent,
    config: TransitConfig,
    /// The token in use: the configured one, or the one an AppRole login returned.
    token: Mutex<Option<SecretString>>,
}

impl Client {
    pub(crate) fn new(config: TransitConfig) -> Result<Self, KeyholderError> {
        config.check()?;
        let roots = if let Some(pem) = &config.ca_pem {
            let certs = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<Certificate<'static>>, _>>()
                .map_err(|e| failed("the CA certificate is not valid PEM").with_source(e))?;
            if certs.is_empty() {
                return Err(failed("the CA certificate file holds no PEM certificate").into());
            }
            RootCerts::from(certs)
        } else {
            let found = rustls_native_certs::load_native_certs();
            let certs: Vec<Certificate<'static>> = found
                .certs
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            if certs.is_empty() && config.address.starts_with("https://") {
                return Err(failed(
                        "no CA certificate was given and the system has no root certificates: pass the CA that signed the server's certificate",
                    )
                    .into());
            }
            RootCerts::from(certs)
        };
        // rustls' ring provider (no C toolchain, no OpenSSL). It has no post-quantum key
        // exchange, which rustls 0.23.48 marks by deprecating it; the aws-lc-rs provider that
        // has one needs cmake and a C compiler, which strongroom avoids.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(Arc::new(provider))
            .build();
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(config.timeout))
            .build()
            .new_agent();
        let token = match &config.auth {
            TransitAuth::Token(t) => Some(t.clone()),
            TransitAuth::AppRole { .. } => None,
        };
        Ok(Self {
            agent,
            config,
            token: Mutex::new(token),
        })
    }

    pub(crate) fn config(&self) -> &TransitConfig {
        &self.config
    }

    /// `POST|GET /v1/<path>` with the token; an AppRole token is (re)obtained when missing
    /// or refused once.
    pub(crate) fn call(
        &self,
        op: &'static str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Body, KeyholderError> {
        let token = self.token()?;
        match self.send(op, path, body, Some(&token)) {
            Err(Failure::Status(403, _))
                if matches!(self.config.auth, TransitAuth::AppRole { .. }) =>
            {
                *self.lock() = None;
                let token = self.token()?;
                self.send(op, path, body, Some(&token))
                    .map_err(|f| self.map(op, path, f))
            }
            other => other.map_err(|f| self.map(op, path, f)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SecretString>> {
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn token(&self) -> Result<SecretString, KeyholderError> {
        if let Some(t) = self.lock().as_ref() {
            return Ok(t.clone());
        }
        let TransitAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.config.auth
        else {
            unreachable!("a token keyholder always has its token")
        };
        let login = Zeroizing::new(
            serde_json::json!({
                "role_id": role_id.expose_secret(),
                "secret_id": secret_id.expose_secret(),
            })
            .to_string(),
        );
        let path = format!("auth/{mount}/login");
        let resp = self
            .send("AppRole login", &path, Some(login.as_bytes()), None)
            .map_err(|f| self.map("AppRole login", &path, f))?;
        let token = serde_json::from_str::<Value>(&resp.0)
            .ok()
            .and_then(|v| v["auth"]["client_token"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                failed(format!(
                    "the AppRole login at {} returned no token",
                    self.config.address
                ))
            })?;
        let token = SecretString::from(token);
        *self.lock() = Some(token.clone());
        Ok(token)
    }

    fn send(
        &self,
        op: &'static str,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> Result<Body, Failure> {
        let _ = op;
        let url = format!("{}/v1/{path}", self.config.address);
        let result = if let Some(b) = body {
            let mut req = self
                .agent
                .post(&url)
                .header("X-Vault-Request", "true")
                .content_type("application/json");
            if let Some(t) = token {
                req = req.header("X-Vault-Token", t.expose_secret());
            }
            if let Some(ns) = &self.config.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            req.send(b)
        } else {
            let mut req = self.agent.get(&url).header("X-Vault-Request", "true");
            if let Some(t) = token {
                req = req.header("X-Vault-Token", t.expose_secret());
            }
            if let Some(ns) = &self.config.namespace {
                req = req.header("X-Vault-Namespace", ns);
            }
            req.call()
        };
        let mut resp = result.map_err(Failure::Transport)?;
        let status = resp.status().as_u16();
        let text = Zeroizing::new(
            resp.body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .map_err(Failure::Transport)?,
        );
        if (200..300).contains(&status) {
            return Ok(Body(text));
        }
        Err(Failure::Status(status, server_errors(&text)))
    }

    /// Maps a failure of `op` on `path` to a keyholder error naming the server.
    fn map(&self, op: &str, path: &str, f: Failure) -> KeyholderError {
        let addr = &self.config.address;
        let target = format!("{}/{}", self.config.mount, self.config.key);
        match f {
            Failure::Transport(e) => {
                let (problem, what) = match &e {
                    ureq::Error::Timeout(_) => (
                        CustodyProblem::Unreachable,
                        format!(
                            "the Transit server at {addr} did not answer {op} in time; check that it is up, then retry"
                        ),
                    ),
                    ureq::Error::Io(io) if is_tls(io) => (
                        CustodyProblem::Failed,
                        format!(
                            "TLS with the Transit server at {addr} failed ({op}); check that the CA certificate given signs the server's certificate and that the address matches its name"
                        ),
                    ),
                    ureq::Error::Io(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed => (
                        CustodyProblem::Unreachable,
                        format!(
                            "cannot reach the Transit server at {addr} ({op}); check the address and that the server is up, then retry"
                        ),
                    ),
                    ureq::Error::Tls(_) | ureq::Error::Rustls(_) => (
                        CustodyProblem::Failed,
                        format!(
                            "TLS with the Transit server at {addr} failed ({op}); check that the CA certificate given signs the server's certificate and that the address matches its name"
                        ),
                    ),
                    _ => (
                        CustodyProblem::Failed,
                        format!("{op} at the Transit server {addr} failed"),
                    ),
                };
                CustodyError::new(KeyholderKind::Transit, problem, what)
                    .with_source(e)
                    .into()
            }
            Failure::Status(status, errors) => {
                let said = if errors.is_empty() {
                    String::new()
                } else {
                    format!(" (the server said: {errors})")
                };
                let lower = errors.to_ascii_lowercase();
                if lower.contains("message authentication failed")
                    || lower.contains("invalid ciphertext")
                    || lower.contains("unable to decrypt")
                {
                    return CryptoError::Decrypt.into();
                }
                let (problem, what) = if op == "AppRole login" && matches!(status, 400 | 403) {
                    (
                        CustodyProblem::Denied,
                        format!(
                            "the Transit server at {addr} refused the AppRole login{said}: check the role id, the secret id (it may have expired or been used up) and the AppRole mount"
                        ),
                    )
                } else if lower.contains("too old") || lower.contains("disallowed by policy") {
                    (
                        CustodyProblem::Denied,
                        format!(
                            "the Transit key {target} at {addr} no longer decrypts this stanza's key version: its min_decryption_version is above it{said}; rewrap keyholders (`keyholder rotate`) before raising min_decryption_version, or lower it again"
                        ),
                    )
                } else if status == 403 {
                    (
                        CustodyProblem::Denied,
                        format!(
                            "the Transit server at {addr} denied {op} on {path}{said}: check the token's or AppRole's policy (it needs update on {0}/encrypt/{1}, {0}/decrypt/{1}, {0}/rewrap/{1} and read on {0}/keys/{1})",
                            self.config.mount, self.config.key
                        ),
                    )
                } else if status == 404 || lower.contains("not found") {
                    (
                        CustodyProblem::Missing,
                        format!(
                            "the Transit key {target} does not exist at {addr}{}{said}: check the mount path, the key name and the namespace",
                            self.config
                                .namespace
                                .as_ref()
                                .map(|n| format!(" (namespace {n})"))
                                .unwrap_or_default()
                        ),
                    )
                } else if status == 503 || status == 429 || status == 502 {
                    (
                        CustodyProblem::Unreachable,
                        format!(
                            "the Transit server at {addr} is unavailable (HTTP {status}: sealed, in standby or overloaded){said}; retry"
                        ),
                    )
                } else {
                    (
                        CustodyProblem::Failed,
                        format!("{op} on {target} at {addr} failed with HTTP {status}{said}"),
                    )
                };
                CustodyError::new(KeyholderKind::Transit, problem, what).into()
            }
        }
    }
}

pub(crate) enum Failure {
    Transport(ureq::Error),
    /// HTTP status and the server's `errors`, joined.
    Status(u16, String),
}

/// Whether an I/O error is rustls refusing the handshake (rustls reports through `io::Error`).
fn is_tls(io: &std::io::Error) -> bool {
    io.get_ref()
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>)
}

fn failed(what: impl Into<String>) -> CustodyError {
    CustodyError::new(KeyholderKind::Transit, CustodyProblem::Failed, what)
}

/// The `errors` list of an error response, joined; never the request.
fn server_errors(text: &str) -> String {
    let errors: Vec<String> = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v["errors"].as_array().map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .map(|e| e.chars().take(300).collect())
                    .collect()
            })
        })
        .unwrap_or_default();
    errors.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_joined_and_bounded() {
        assert_eq!(
            server_errors(r#"{"errors":["permission denied","x"]}"#),
            "permission denied; x"
        );
        assert_eq!(server_errors("not json"), "");
        let long = format!(r#"{{"errors":["{}"]}}"#, "a".repeat(1000));
        assert_eq!(server_errors(&long).len(), 300);
    }
}
