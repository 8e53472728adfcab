//! Where the KMS key is, the region and endpoint, and the AWS credentials.

use core::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, KeyholderError, KeyholderKind, UnwrapCache,
};

/// AWS credentials: an access key id, a secret access key and, for temporary credentials, a
/// session token. `Debug` shows only the access key id.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (not secret, but not shown in errors either).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The session token of temporary credentials.
    pub session_token: Option<SecretString>,
}

impl AwsCredentials {
    /// Static credentials.
    pub fn new(
        access_key_id: &str,
        secret_access_key: SecretString,
        session_token: Option<SecretString>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key,
            session_token,
        }
    }

    /// The standard chain of the AWS SDKs and CLI, for the sources that need no network:
    ///
    /// 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
    /// 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
    ///    `~/.aws/credentials`), section `[<profile>]`;
    /// 3. the shared config file (`AWS_CONFIG_FILE`, default `~/.aws/config`), section
    ///    `[profile <profile>]` (`[default]` for the default profile);
    ///
    /// with the profile from `AWS_PROFILE` (default `default`). The region comes from
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region` in the config file.
    ///
    /// This library reads no environment variable itself: `env` looks them up (pass
    /// `|name| std::env::var(name).ok()`). Not covered: instance metadata (IMDS), container
    /// credentials, SSO, web identity and `credential_process`; resolve those with the AWS
    /// SDK and pass [`AwsCredentials::new`].
    pub fn from_chain(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Option<String>), KeyholderError> {
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        let home = var("HOME").map(PathBuf::from);
        let file = |var_name: &str, default: &str| {
            var(var_name)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
        };
        let config = file("AWS_CONFIG_FILE", "config")
            .map(|p| read_ini(&p))
            .transpose()?
            .unwrap_or_default();
        let config_section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .or_else(|| lookup(&config, &config_section, "region"));

        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            let token = var("AWS_SESSION_TOKEN").map(SecretString::from);
            return Ok((Self::new(&id, SecretString::from(secret), token), region));
        }
        let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            .map(|p| read_ini(&p))
            .transpose()?
            .unwrap_or_default();
        for (ini, section) in [
            (&credentials, profile.as_str()),
            (&config, config_section.as_str()),
        ] {
            if let (Some(id), Some(secret)) = (
                lookup(ini, section, "aws_access_key_id"),
                lookup(ini, section, "aws_secret_access_key"),
            ) {
                let token = lookup(ini, section, "aws_session_token").map(SecretString::from);
                return Ok((Self::new(&id, SecretString::from(secret), token), region));
            }
        }
        Err(CustodyError::new(
            KeyholderKind::AwsKms,
            CustodyProblem::Denied,
            format!(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add them to the shared credentials file for profile {profile:?}"
            ),
        )
        .into())
    }
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AwsCredentials({}, <secret redacted>{})",
            self.access_key_id,
            if self.session_token.is_some() {
                ", <session token redacted>"
            } else {
                ""
            }
        )
    }
}

/// `(section, key, value)` lines of an INI file.
type Ini = Vec<(String, String, SecretString)>;

fn read_ini(path: &Path) -> Result<Ini, KeyholderError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CustodyError::new(
                KeyholderKind::AwsKms,
                CustodyProblem::Failed,
                format!("cannot read the AWS file {}", path.display()),
            )
            .with_source(e)
            .into());
        }
    };
    Ok(parse_ini(&text))
}

fn parse_ini(text: &str) -> Ini {
    let mut out = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.split_whitespace().collect::<Vec<_>>().join(" ");
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((
                section.clone(),
                k.trim().to_ascii_lowercase(),
                SecretString::from(v.trim().to_owned()),
            ));
        }
    }
    out
}

fn lookup(ini: &Ini, section: &str, key: &str) -> Option<String> {
    ini.iter()
        .find(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.expose_secret().to_owned())
        .filter(|v| !v.is_empty())
}

/// Where the KMS key is and how to reach it. `Debug` leaves the credentials out.
#[derive(Clone)]
#[non_exhaustive]
pub struct KmsConfig {
    /// The key: a key id, a key ARN, an alias name (`alias/strongroom`) or an alias ARN.
    pub key_id: String,
    /// The region (`eu-west-1`); a key ARN's region wins.
    pub region: String,
    /// A custom endpoint (`https://kms-fips.us-east-1.amazonaws.com`, a VPC endpoint, or a
    /// local test server); `None`: `https://kms.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// The credentials requests are signed with (SigV4).
    pub credentials: AwsCredentials,
    /// PEM CA certificates for the endpoint; `None`: the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Upper bound on one request, connection included (default 10 s).
    pub timeout: Duration,
    /// The cache of unwrapped keys (default [`UnwrapCache::default`], private to the
    /// keyholder).
    pub cache: UnwrapCache,
}

impl KmsConfig {
    /// A configuration for `key_id` in `region`.
    pub fn new(key_id: &str, region: &str, credentials: AwsCredentials) -> Self {
        Self {
            key_id: key_id.to_owned(),
            region: region.to_owned(),
            endpoint: None,
            credentials,
            ca_pem: None,
            timeout: Duration::from_secs(10),
            cache: UnwrapCache::default(),
        }
    }

    /// Sets a custom endpoint.
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.trim_end_matches('/').to_owned());
        self
    }

    /// Trusts the PEM CA certificates in `pem` (instead of the system's roots).
    #[must_use]
    pub fn with_ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
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

    /// The region of a key ARN, else the configured one.
    pub(crate) fn effective_region(&self) -> &str {
        arn_region(&self.key_id).unwrap_or(&self.region)
    }

    pub(crate) fn url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://kms.{}.amazonaws.com", self.effective_region()),
        }
    }

    pub(crate) fn check(&self) -> Result<(), KeyholderError> {
        let bad = |what: String| -> KeyholderError {
            CustodyError::new(KeyholderKind::AwsKms, CustodyProblem::Failed, what).into()
        };
        let ok_key = |c: char| c.is_ascii_alphanumeric() || "-_/:.".contains(c);
        if self.key_id.is_empty() || self.key_id.len() > 2048 || !self.key_id.chars().all(ok_key) {
            return Err(bad(format!(
                "invalid KMS key {:?}: a key id, key ARN, alias/NAME or alias ARN",
                self.key_id
            )));
        }
        let region = self.effective_region();
        if region.is_empty()
            || region.len() > 64
            || !region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(format!(
                "invalid AWS region {region:?} (e.g. eu-west-1): set the region"
            )));
        }
        if let Some(e) = &self.endpoint
            && (!(e.starts_with("https://") || e.starts_with("http://"))
                || e.contains(['?', '#', '@', ' ']))
        {
            return Err(bad(format!(
                "the KMS endpoint must be https://host[:port] (http:// only for a local test server), not {e:?}"
            )));
        }
        Ok(())
    }
}

/// The region field of an ARN (`arn:aws:kms:<region>:<account>:…`).
pub(crate) fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    let _partition = parts.next()?;
    (parts.next() == Some("kms")).then_some(())?;
    parts.next().filter(|r| !r.is_empty())
}

impl fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsConfig")
            .field("key_id", &self.key_id)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> AwsCredentials {
        AwsCredentials::new("AKIATEST", SecretString::from("s3cr3t"), None)
    }

    #[test]
    fn debug_hides_secrets_and_regions_come_from_arns() {
        let c = KmsConfig::new(
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "us-east-1",
            AwsCredentials::new("AKIATEST", SecretString::from("s3cr3t"), Some("tok".into())),
        );
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t") && !d.contains("\"tok\""), "{d}");
        assert_eq!(c.effective_region(), "eu-west-1");
        assert_eq!(c.url(), "https://kms.eu-west-1.amazonaws.com");
        c.check().unwrap();
        let local =
            KmsConfig::new("alias/x", "us-east-1", creds()).with_endpoint("http://127.0.0.1:5000/");
        assert_eq!(local.url(), "http://127.0.0.1:5000");
        local.check().unwrap();
        assert!(
            KmsConfig::new("alias/x y", "us-east-1", creds())
                .check()
                .is_err()
        );
        assert!(KmsConfig::new("alias/x", "", creds()).check().is_err());
        assert!(
            KmsConfig::new("alias/x", "us-east-1", creds())
                .with_endpoint("ftp://x")
                .check()
                .is_err()
        );
    }

    #[test]
    fn the_chain_reads_env_then_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(
            dir.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d3f\n\n[ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=0ps\naws_session_token=t0k\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".aws/config"),
            "[default]\nregion = eu-central-1\n[profile ops]\nregion=ap-south-1\n[profile cfg]\naws_access_key_id=AKIACFG\naws_secret_access_key=cfg\n",
        )
        .unwrap();
        let home = dir.path().to_str().unwrap().to_owned();
        let env = |vars: Vec<(&'static str, String)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
        };
        let (c, region) = AwsCredentials::from_chain(&env(vec![("HOME", home.clone())])).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), region.as_deref()),
            ("AKIADEFAULT", Some("eu-central-1"))
        );
        let (c, region) = AwsCredentials::from_chain(&env(vec![
            ("HOME", home.clone()),
            ("AWS_PROFILE", "ops".into()),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id, "AKIAOPS");
        assert!(c.session_token.is_some());
        assert_eq!(region.as_deref(), Some("ap-south-1"));
        let (c, _) = AwsCredentials::from_chain(&env(vec![
            ("HOME", home.clone()),
            ("AWS_PROFILE", "cfg".into()),
        ]))
        .unwrap();
        assert_eq!(c.access_key_id, "AKIACFG");
        let (c, region) = AwsCredentials::from_chain(&env(vec![
            ("HOME", home.clone()),
            ("AWS_ACCESS_KEY_ID", "AKIAENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "env".into()),
            ("AWS_REGION", "us-west-2".into()),
        ]))
        .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), region.as_deref()),
            ("AKIAENV", Some("us-west-2"))
        );
        let err =
            AwsCredentials::from_chain(&env(vec![("HOME", home), ("AWS_PROFILE", "none".into())]))
                .unwrap_err();
        assert!(err.to_string().contains("no AWS credentials"), "{err}");
    }
}
