//! Why a keyholder could not wrap or unwrap: [`KeyholderError`], and [`CustodyError`] for the
//! failures of the place a key is kept.

use core::fmt;

use strongroom_crypto::{CryptoError, DecodeError};

use crate::kind::KeyholderKind;

/// A keyholder could not wrap or unwrap.
///
/// Each way an unlock can fail has its own variant, so callers can count failed unlocks and
/// tell an operator what to do. None carries secret bytes.
///
/// [`Custody`](Self::Custody) stands apart from the rest: the place that keeps the key could
/// not be used (token missing, KMS unreachable, permission denied), so nothing was tried
/// against the stanza. A vault counts every other error of an unlock (a wrong passphrase,
/// recovery key, KEK, PIN or custody key, a stanza that fails authentication) as a failed
/// unlock attempt, and never a custody failure; [`CustodyError::is_retryable`] says whether
/// trying again later can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyholderError {
    /// The passphrase does not open this stanza.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The recovery key does not belong to this vault or member.
    #[error(
        "this recovery key does not open the vault (key id {key_id}); check you picked the recovery key printed for this vault"
    )]
    WrongRecoveryKey {
        /// The non-secret id of the key that was tried.
        key_id: String,
    },
    /// The raw KEK does not open this vault.
    #[error(
        "the supplied key-encryption key (id {key_id}) does not open this vault; is it the key this vault was created or last rotated with?"
    )]
    WrongKek {
        /// The non-secret id of the key that was tried.
        key_id: String,
    },
    /// The custody key that was offered (an HSM key, a Transit key) is not the one the
    /// stored stanzas of its kind were written with.
    #[error(
        "the {kind} keyholders of this member were written with another key than {key}; use the key this member's keyholder was added with (see `keyholder list`)"
    )]
    WrongKey {
        /// The kind.
        kind: KeyholderKind,
        /// The key that was offered (its location, not secret).
        key: String,
    },
    /// A keyholder of this kind has no stanza here.
    #[error(
        "no {kind} keyholder is registered for this vault member; use one of its registered keyholders"
    )]
    NoMatchingStanza {
        /// The kind that was tried.
        kind: KeyholderKind,
    },
    /// The place that keeps the key could not be used: see [`CustodyError`].
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// The stanza is malformed.
    #[error("malformed keyholder stanza: {0}")]
    Malformed(#[from] DecodeError),
    /// A cryptographic check failed (a modified stanza, a stanza opened in another context,
    /// KDF parameters below the floor).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The input text of a key (recovery key, KEK) could not be parsed.
    #[error("{0}")]
    InvalidKeyText(String),
    /// An empty passphrase was offered for wrapping.
    #[error("the passphrase is empty: choose a non-empty passphrase")]
    EmptyPassphrase,
    /// A custody object (keyring entry, HSM key label) to be created already exists.
    #[error("{what} already exists: refusing to overwrite it; open it, or choose another name")]
    AlreadyExists {
        /// What exists (entry or token/key label), not secret.
        what: String,
    },
    /// The PKCS#11 token refused the user PIN.
    #[error(
        "the PKCS#11 token {token} refused the PIN: check the user PIN (too many failures lock it, then the security officer must reset it)"
    )]
    WrongPin {
        /// The token label.
        token: String,
    },
}

impl KeyholderError {
    /// The custody failure, if this is one.
    pub fn custody(&self) -> Option<&CustodyError> {
        match self {
            KeyholderError::Custody(c) => Some(c),
            _ => None,
        }
    }
}

/// What kind of custody failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CustodyProblem {
    /// The key, entry, token or collection does not exist (any more).
    Missing,
    /// The custody service refused access (permissions, authentication of the client, a
    /// locked collection).
    Denied,
    /// The custody service could not be reached or did not answer in time: retry later.
    Unreachable,
    /// Anything else the custody backend reported.
    Failed,
}

impl fmt::Display for CustodyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CustodyProblem::Missing => "missing",
            CustodyProblem::Denied => "access denied",
            CustodyProblem::Unreachable => "unreachable",
            CustodyProblem::Failed => "failed",
        })
    }
}

/// The place that keeps a key (an OS keyring, an HSM, a KMS) could not be used: token
/// missing, service unreachable, permission denied.
///
/// Not a wrong key: a vault does not count it as a failed unlock attempt. `what` says what
/// failed and what to do, naming the custody object or endpoint; `source` is the backend's
/// own error. Neither ever holds secret bytes or credentials.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct CustodyError {
    /// The keyholder kind.
    pub kind: KeyholderKind,
    /// What kind of failure.
    pub problem: CustodyProblem,
    /// What failed and what to do (never secret).
    pub what: String,
    /// The backend's error, when there is one (never secret).
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CustodyError {
    /// A custody failure without a source error.
    pub fn new(kind: KeyholderKind, problem: CustodyProblem, what: impl Into<String>) -> Self {
        Self {
            kind,
            problem,
            what: what.into(),
            source: None,
        }
    }

    /// Attaches the backend's error (it must not hold secrets).
    #[must_use]
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether trying again later can help (the service was unreachable or timed out).
    pub fn is_retryable(&self) -> bool {
        self.problem == CustodyProblem::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custody_is_not_a_wrong_key() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let c = CustodyError::new(
            KeyholderKind::Transit,
            CustodyProblem::Unreachable,
            "cannot reach https://127.0.0.1:1: retry",
        )
        .with_source(io);
        assert!(c.is_retryable());
        let e = KeyholderError::from(c);
        assert_eq!(e.to_string(), "cannot reach https://127.0.0.1:1: retry");
        // Transparent: the backend's error is the next in the chain.
        let src = std::error::Error::source(&e).expect("the source is kept");
        assert_eq!(src.to_string(), "refused");
        assert_eq!(e.custody().unwrap().kind, KeyholderKind::Transit);
        assert!(KeyholderError::WrongPassphrase.custody().is_none());
        assert!(
            !CustodyError::new(KeyholderKind::Pkcs11, CustodyProblem::Missing, "x").is_retryable()
        );
    }
}
