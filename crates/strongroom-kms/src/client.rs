//! The KMS JSON API over HTTPS: requests signed with SigV4 by `aws-sigv4`, sent with one
//! ureq agent over rustls, failures mapped to keyholder errors naming the endpoint.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use secrecy::ExposeSecret;
use strongroom_crypto::CryptoError;
use strongroom_keyholder::{CustodyError, CustodyProblem, KeyholderError, KeyholderKind};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use zeroize::Zeroizing;

use crate::config::KmsConfig;

pub(crate) struct Client {
    agent: Agent,
    config: KmsConfig,
    url: String,
    host: String,
}

/// A JSON response body; zeroized on drop (Decrypt responses hold the plaintext key).
pub(crate) struct Body(pub(crate) Zeroizing<String>);

impl Client {
    pub(crate) fn new(config: KmsConfig) -> Result<Self, KeyholderError> {
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
            RootCerts::from(certs)
        } else {
            let found = rustls_native_certs::load_native_certs();
            RootCerts::from(
                found
                    .certs
                    .iter()
                    .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                    .collect::<Vec<_>>(),
            )
        };
        // rustls' ring provider, as in strongroom-transit (no C toolchain, no OpenSSL).
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
        let url = config.url();
        let host = url
            .split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Ok(Self {
            agent,
            config,
            url,
            host,
        })
    }

    pub(crate) fn config(&self) -> &KmsConfig {
        &self.config
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.url
    }

    /// One `TrentService.<action>` call with a JSON body.
    pub(crate) fn call(&self, action: &'static str, body: &[u8]) -> Result<Body, KeyholderError> {
        let target = format!("TrentService.{action}");
        let creds = &self.config.credentials;
        let identity = Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "strongroom",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.config.effective_region())
            .name("kms")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed("cannot sign the KMS request").with_source(e))?
            .into();
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let signable = SignableRequest::new(
            "POST",
            format!("{}/", self.url),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| failed("cannot sign the KMS request").with_source(e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| failed("cannot sign the KMS request").with_source(e))?
            .into_parts();
        let mut req = self.agent.post(format!("{}/", self.url));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let mut resp = req.send(body).map_err(|e| self.transport(action, e))?;
        let status = resp.status().as_u16();
        let text = Zeroizing::new(
            resp.body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .map_err(|e| self.transport(action, e))?,
        );
        if (200..300).contains(&status) {
            return Ok(Body(text));
        }
        Err(self.status(action, status, &text))
    }

    fn transport(&self, action: &str, e: ureq::Error) -> KeyholderError {
        let url = &self.url;
        let (problem, what) = match &e {
            ureq::Error::Io(io)
                if io
                    .get_ref()
                    .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>) =>
            {
                (
                    CustodyProblem::Failed,
                    format!(
                        "TLS with the KMS endpoint {url} failed ({action}); check the endpoint and its CA"
                    ),
                )
            }
            ureq::Error::Timeout(_) => (
                CustodyProblem::Unreachable,
                format!("the KMS endpoint {url} did not answer {action} in time; retry"),
            ),
            ureq::Error::Io(_) | ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => (
                CustodyProblem::Unreachable,
                format!(
                    "cannot reach the KMS endpoint {url} ({action}); check the region or endpoint and the network, then retry"
                ),
            ),
            _ => (
                CustodyProblem::Failed,
                format!("{action} at the KMS endpoint {url} failed"),
            ),
        };
        CustodyError::new(KeyholderKind::AwsKms, problem, what)
            .with_source(e)
            .into()
    }

    fn status(&self, action: &str, status: u16, text: &str) -> KeyholderError {
        let (kind, message) = error_of(text);
        let url = &self.url;
        let key = &self.config.key_id;
        let said = if message.is_empty() {
            format!(" ({kind})")
        } else {
            format!(" ({kind}: {message})")
        };
        let (problem, what) = match kind.as_str() {
            "InvalidCiphertextException" | "IncorrectKeyException" => {
                return CryptoError::Decrypt.into();
            }
            "NotFoundException" => (
                CustodyProblem::Missing,
                format!(
                    "the KMS key {key} does not exist at {url}{said}: check the key id or alias and the region"
                ),
            ),
            "DisabledException" | "KMSInvalidStateException" => (
                CustodyProblem::Denied,
                format!(
                    "the KMS key {key} cannot be used now{said}: it is disabled or pending deletion; enable it (or cancel its deletion)"
                ),
            ),
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "ExpiredTokenException"
            | "MissingAuthenticationTokenException" => (
                CustodyProblem::Denied,
                format!(
                    "KMS at {url} refused {action} on {key}{said}: check the credentials and that the key policy or IAM policy allows kms:Encrypt, kms:Decrypt, kms:ReEncrypt* and kms:DescribeKey"
                ),
            ),
            "KeyUnavailableException"
            | "DependencyTimeoutException"
            | "KMSInternalException"
            | "ThrottlingException"
            | "LimitExceededException" => (
                CustodyProblem::Unreachable,
                format!("KMS at {url} is unavailable for {action}{said}; retry"),
            ),
            _ if status >= 500 => (
                CustodyProblem::Unreachable,
                format!("KMS at {url} failed {action} with HTTP {status}{said}; retry"),
            ),
            _ => (
                CustodyProblem::Failed,
                format!("{action} on {key} at {url} failed with HTTP {status}{said}"),
            ),
        };
        CustodyError::new(KeyholderKind::AwsKms, problem, what).into()
    }
}

/// The error type (without its namespace) and message of a KMS error body.
fn error_of(text: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let kind = v["__type"]
        .as_str()
        .unwrap_or("UnknownError")
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect();
    let message = v["message"]
        .as_str()
        .or_else(|| v["Message"].as_str())
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    (kind, message)
}

fn failed(what: &str) -> CustodyError {
    CustodyError::new(KeyholderKind::AwsKms, CustodyProblem::Failed, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_custody_or_wrong_key() {
        use secrecy::SecretString;
        let c = Client::new(
            KmsConfig::new(
                "alias/x",
                "us-east-1",
                crate::AwsCredentials::new("AKIA", SecretString::from("sk"), None),
            )
            .with_endpoint("http://127.0.0.1:9"),
        )
        .unwrap();
        let custody = |kind: &str, status: u16| match c.status(
            "Decrypt",
            status,
            &format!(r#"{{"__type":"{kind}","message":"m"}}"#),
        ) {
            KeyholderError::Custody(e) => Some(e.problem),
            KeyholderError::Crypto(CryptoError::Decrypt) => None,
            e => panic!("{e:?}"),
        };
        assert_eq!(custody("InvalidCiphertextException", 400), None);
        assert_eq!(custody("IncorrectKeyException", 400), None);
        assert_eq!(
            custody("AccessDeniedException", 400),
            Some(CustodyProblem::Denied)
        );
        assert_eq!(
            custody("UnrecognizedClientException", 400),
            Some(CustodyProblem::Denied)
        );
        assert_eq!(
            custody("DisabledException", 400),
            Some(CustodyProblem::Denied)
        );
        assert_eq!(
            custody("NotFoundException", 400),
            Some(CustodyProblem::Missing)
        );
        assert_eq!(
            custody("ThrottlingException", 400),
            Some(CustodyProblem::Unreachable)
        );
        assert_eq!(custody("Whatever", 503), Some(CustodyProblem::Unreachable));
        assert_eq!(custody("Whatever", 400), Some(CustodyProblem::Failed));
        assert_eq!(c.host, "127.0.0.1:9");
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_of(
                r#"{"__type":"com.amazonaws.kms#NotFoundException","message":"Key 'x' does not exist"}"#
            ),
            (
                "NotFoundException".to_owned(),
                "Key 'x' does not exist".to_owned()
            )
        );
        assert_eq!(
            error_of(r#"{"__type":"AccessDeniedException","Message":"no"}"#).0,
            "AccessDeniedException"
        );
        assert_eq!(error_of("<html>").0, "UnknownError");
    }
}
