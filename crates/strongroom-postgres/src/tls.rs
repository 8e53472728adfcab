//! TLS to PostgreSQL with rustls (on ring): one client configuration per `sslmode`.
//!
//! - `verify-full`: rustls' WebPKI verifier (chain to a trusted root, validity period, the
//!   host name).
//! - `verify-ca`: the same verifier, except that a certificate which fails *only* on its
//!   host name is accepted (WebPKI checks the name after the chain).
//! - `require`, `prefer`: any certificate; the handshake signatures are still checked, so
//!   the session is encrypted to whoever holds the certificate's key.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use strongroom_store::StoreError;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conninfo::{RootCerts, SslMode};

/// Builds the TLS connector for `mode` (`None` for `disable`).
pub(crate) fn connector(
    mode: SslMode,
    roots: &RootCerts,
    client_cert: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<Option<MakeRustlsConnect>, StoreError> {
    if mode == SslMode::Disable {
        return Ok(None);
    }
    // ring is the workspace's one crypto provider. rustls deprecates its ring provider
    // because it has no post-quantum key exchange (X25519MLKEM768); the aws-lc-rs one has,
    // at the price of a C and CMake build. Revisit when ring offers ML-KEM.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if mode.verifies_certificate() {
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(root_store(roots)?),
            provider.clone(),
        )
        .build()
        .map_err(|e| StoreError::invalid(format!("cannot use {roots} as TLS roots: {e}")))?;
        if mode.verifies_host_name() {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        }
    } else {
        Arc::new(Unverified(provider.signature_verification_algorithms))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::invalid(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "sslcert")?;
            let key = private_key(key)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                StoreError::invalid(format!(
                    "the client certificate {} and key do not fit together: {e}",
                    cert.display()
                ))
            })?
        }
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn root_store(roots: &RootCerts) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            for cert in certificates(path, "sslrootcert")? {
                store.add(cert).map_err(|e| {
                    StoreError::invalid(format!(
                        "sslrootcert {} holds a certificate that cannot be a trust root: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(StoreError::invalid(format!(
                    "no system CA certificates to verify the server with ({why}): install the ca-certificates package, or name the CA with sslrootcert=/path/to/ca.pem"
                )));
            }
        }
    }
    Ok(store)
}

fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| {
            StoreError::invalid(format!(
                "cannot read {key} {}: {}",
                path.display(),
                pem_error(&e)
            ))
        })?;
    if certs.is_empty() {
        return Err(StoreError::invalid(format!(
            "{key} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the client key, refusing one that other users can read (as libpq does: 0600 or
/// stricter, or 0640 when owned by root).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| StoreError::invalid(format!("cannot read sslkey {}: {e}", path.display())))?;
    let mode = meta.mode() & 0o777;
    let allowed = if meta.uid() == 0 { 0o640 } else { 0o600 };
    if mode & !allowed != 0 {
        return Err(StoreError::invalid(format!(
            "the client key sslkey {} has mode {mode:04o}, so other users may read it: chmod 600 it",
            path.display()
        )));
    }
    // The key bytes never reach an error message: only the file name and the kind of failure.
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        StoreError::invalid(format!(
            "cannot read sslkey {}: {} (a PEM PKCS#8, PKCS#1 or SEC1 key, unencrypted)",
            path.display(),
            pem_error(&e)
        ))
    })
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of that kind found".to_owned(),
        _ => "not a valid PEM file".to_owned(),
    }
}

/// `verify-ca`: the WebPKI verifier, minus the host-name check.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // WebPKI checks the name only after the chain and the validity period passed.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` and `prefer`: any certificate, but real handshake signatures.
struct Unverified(WebPkiSupportedAlgorithms);

impl fmt::Debug for Unverified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unverified")
    }
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The rustls error inside a driver error, if any (`io::Error`'s `source()` skips the
/// error it wraps, so each one is unwrapped by hand).
pub(crate) fn find_rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(r);
            }
            cur = inner.source();
            continue;
        }
        cur = err.source();
    }
    None
}

/// Says which TLS check failed and what to do, for a handshake error.
pub(crate) fn describe(e: &rustls::Error, host: &str, mode: SslMode, roots: &RootCerts) -> String {
    use CertificateError as C;
    let what = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "the server's certificate is not signed by a CA trusted here ({roots}): name the CA that signed it with sslrootcert="
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the server's certificate is not valid for the host name {host} (sslmode={mode}): connect with the name the certificate was issued for"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                "the server's certificate has expired: the server needs a renewed certificate"
                    .to_owned()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet: check the clocks of both machines"
                    .to_owned()
            }
            C::Revoked => "the server's certificate is revoked".to_owned(),
            C::BadSignature => {
                "the server's certificate has a bad signature (not made by its issuer's key)"
                    .to_owned()
            }
            _ => "the server's certificate was refused".to_owned(),
        },
        rustls::Error::AlertReceived(alert) => format!(
            "the server ended the TLS handshake ({alert:?}): if it asks for a client certificate, name one with sslcert= and sslkey="
        ),
        _ => "the TLS handshake failed".to_owned(),
    };
    format!("TLS: {what} ({e})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_says_which_check_failed() {
        let roots = RootCerts::File("/ca.pem".into());
        let s = describe(
            &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            "h",
            SslMode::VerifyFull,
            &roots,
        );
        assert!(
            s.contains("not signed by a CA trusted here (sslrootcert=/ca.pem)"),
            "{s}"
        );
        let s = describe(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            "wrong.example",
            SslMode::VerifyFull,
            &roots,
        );
        assert!(
            s.contains("not valid for the host name wrong.example"),
            "{s}"
        );
        let s = describe(
            &rustls::Error::InvalidCertificate(CertificateError::Expired),
            "h",
            SslMode::VerifyCa,
            &roots,
        );
        assert!(s.contains("expired"), "{s}");
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        assert!(find_rustls_error(&io).is_some());
    }
}
