//! age's hybrid post-quantum recipient type, `mlkem768x25519` (C2SP age, "The
//! MLKEM768-X25519 (i.e. X-Wing) hybrid post-quantum recipient type"), on the `age` crate's
//! [`Recipient`](age::Recipient) and [`Identity`](age::Identity) traits (the `age` crate
//! this build uses has no native implementation of it).
//!
//! - Identity: 32 random bytes (the X-Wing private key), Bech32 with HRP
//!   `AGE-SECRET-KEY-PQ-` (upper case): `AGE-SECRET-KEY-PQ-1…`.
//! - Recipient: the 1216-byte X-Wing public key, Bech32 with HRP `age1pq`: `age1pq1…`
//!   (about 1960 characters: Bech32's 90-character limit does not apply).
//! - Stanza: `-> mlkem768x25519 <base64(enc)>` and a body of the 32-byte HPKE ciphertext
//!   of the 16-byte file key: HPKE SealBase with X-Wing (KEM 0x647a), HKDF-SHA256,
//!   ChaCha20-Poly1305, `info = "age-encryption.org/mlkem768x25519"`, empty `aad`.
//! - Unwrapping ignores stanzas of other types, refuses a stanza with other than one
//!   argument after the type, a non-canonical base64 `enc`, an `enc` of other than 1120
//!   bytes or a body of other than 32 bytes (before any decryption), and an `enc` whose
//!   X25519 share has low order. A stanza that does not decrypt is "not this identity's".
//!
//! Files encrypted to a hybrid recipient carry the age label `postquantum`, so the `age`
//! crate refuses to mix them with classical recipients in one file (the file would only be
//! as strong as its weakest stanza).
//!
//! Specified in `docs/spec/age-mlkem768x25519.md`.

use core::fmt;
use std::collections::HashSet;
use std::str::FromStr;

use age::secrecy::{ExposeSecret as _, SecretString};
use age_core::format::{FileKey, Stanza};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use bech32::primitives::decode::CheckedHrpstring;
use strongroom_crypto::Key256;
use strongroom_sharing::hazmat;
use strongroom_sharing::{XWING_ENC_LEN, XWING_PUBLIC_KEY_LEN};
use zeroize::Zeroizing;

/// The stanza type.
pub(crate) const STANZA_TAG: &str = "mlkem768x25519";
const INFO: &[u8] = b"age-encryption.org/mlkem768x25519";
const RECIPIENT_HRP: &str = "age1pq";
const IDENTITY_HRP: &str = "AGE-SECRET-KEY-PQ-";
const LABEL: &str = "postquantum";

/// Bech32 (BIP 173) without its 90-character limit, as age uses it for long keys.
enum Bech32Long {}

impl bech32::Checksum for Bech32Long {
    type MidstateRepr = <bech32::Bech32 as bech32::Checksum>::MidstateRepr;
    const CODE_LENGTH: usize = usize::MAX;
    const CHECKSUM_LENGTH: usize = bech32::Bech32::CHECKSUM_LENGTH;
    const GENERATOR_SH: [u32; 5] = bech32::Bech32::GENERATOR_SH;
    const TARGET_RESIDUE: u32 = bech32::Bech32::TARGET_RESIDUE;
}

fn bech32_decode(s: &str, hrp: &str) -> Option<Zeroizing<Vec<u8>>> {
    let checked = CheckedHrpstring::new::<Bech32Long>(s).ok()?;
    if !checked.hrp().as_str().eq_ignore_ascii_case(hrp) {
        return None;
    }
    Some(Zeroizing::new(checked.byte_iter().collect()))
}

fn bech32_encode(hrp: &str, data: &[u8]) -> String {
    let hrp = bech32::Hrp::parse(hrp).unwrap_or_else(|_| unreachable!("a valid constant HRP"));
    bech32::encode_lower::<Bech32Long>(hrp, data)
        .unwrap_or_else(|_| unreachable!("no length limit is enforced"))
}

/// Whether `s` looks like a hybrid recipient (`age1pq1…`, any case).
pub fn is_hybrid_recipient(s: &str) -> bool {
    s.trim()
        .get(..RECIPIENT_HRP.len() + 1)
        .is_some_and(|p| p.eq_ignore_ascii_case("age1pq1"))
}

/// An age `mlkem768x25519` recipient: `age1pq1…`.
#[derive(Clone, PartialEq, Eq)]
pub struct HybridRecipient(Box<[u8; XWING_PUBLIC_KEY_LEN]>);

impl FromStr for HybridRecipient {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err("an age recipient is written in lower case");
        }
        let data = bech32_decode(s, RECIPIENT_HRP)
            .ok_or("not a valid age1pq1… recipient (Bech32 checksum or prefix)")?;
        if data.len() != XWING_PUBLIC_KEY_LEN || !hazmat::xwing_public_key_is_valid(&data) {
            return Err("not a valid age1pq1… recipient (not an X-Wing public key)");
        }
        let mut key = Box::new([0u8; XWING_PUBLIC_KEY_LEN]);
        key.copy_from_slice(&data);
        Ok(Self(key))
    }
}

impl fmt::Display for HybridRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bech32_encode(RECIPIENT_HRP, &self.0[..]))
    }
}

impl fmt::Debug for HybridRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_string();
        write!(f, "HybridRecipient({}…)", &s[..16])
    }
}

impl age::Recipient for HybridRecipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let (enc, body) = hazmat::xwing_seal(&self.0[..], INFO, &[], file_key.expose_secret())
            .map_err(|e| {
                age::EncryptError::Io(std::io::Error::other(format!(
                    "mlkem768x25519 encapsulation failed: {e}"
                )))
            })?;
        let stanza = Stanza {
            tag: STANZA_TAG.to_owned(),
            args: vec![STANDARD_NO_PAD.encode(enc)],
            body,
        };
        Ok((vec![stanza], HashSet::from([LABEL.to_owned()])))
    }
}

/// An age `mlkem768x25519` identity: `AGE-SECRET-KEY-PQ-1…` (32 random bytes, the X-Wing
/// private key). Zeroized on drop; `Debug` shows nothing secret.
pub struct HybridIdentity(Key256);

impl HybridIdentity {
    /// A fresh identity from the kernel's random number generator.
    pub fn generate() -> Result<Self, strongroom_crypto::CryptoError> {
        Ok(Self(Key256::generate()?))
    }

    /// Its recipient (`age1pq1…`).
    pub fn to_public(&self) -> HybridRecipient {
        let pk = hazmat::xwing_public_key(&self.0)
            .unwrap_or_else(|_| unreachable!("every 32-byte seed is an X-Wing private key"));
        HybridRecipient(Box::new(pk))
    }

    /// The secret text form, `AGE-SECRET-KEY-PQ-1…` (upper case, as age writes it).
    pub fn to_secret_string(&self) -> SecretString {
        SecretString::from(bech32_encode(IDENTITY_HRP, self.0.expose_secret()).to_uppercase())
    }
}

impl FromStr for HybridIdentity {
    type Err = &'static str;

    /// Parses `AGE-SECRET-KEY-PQ-1…` (upper case). The error never repeats the input.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err("an age secret key is written in upper case");
        }
        let data = bech32_decode(s, IDENTITY_HRP)
            .ok_or("not a valid AGE-SECRET-KEY-PQ-1… identity (Bech32 checksum or prefix)")?;
        let key = Key256::from_slice(&data)
            .map_err(|_| "not a valid AGE-SECRET-KEY-PQ-1… identity (not 32 bytes)")?;
        Ok(Self(key))
    }
}

impl fmt::Debug for HybridIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HybridIdentity(<redacted>)")
    }
}

impl age::Identity for HybridIdentity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        if stanza.tag != STANZA_TAG {
            return None;
        }
        let invalid = || Some(Err(age::DecryptError::InvalidHeader));
        let [arg] = stanza.args.as_slice() else {
            return invalid();
        };
        // base64 0.22's decoder refuses padding and non-zero trailing bits: canonical only.
        let Ok(enc) = STANDARD_NO_PAD.decode(arg) else {
            return invalid();
        };
        // Lengths first (a partitioning-oracle defence), then the low-order X25519 share.
        if enc.len() != XWING_ENC_LEN || stanza.body.len() != 32 {
            return invalid();
        }
        if hazmat::xwing_enc_has_low_order_share(&enc) {
            return invalid();
        }
        let plain = hazmat::xwing_open(&self.0, &enc, INFO, &[], &stanza.body)?;
        let key: [u8; 16] = plain[..].try_into().ok()?;
        Some(Ok(FileKey::init_with_mut(|k| k.copy_from_slice(&key))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_errors_do_not_echo_input() {
        let id = HybridIdentity::generate().unwrap();
        let secret = id.to_secret_string();
        assert!(secret.expose_secret().starts_with("AGE-SECRET-KEY-PQ-1"));
        let back: HybridIdentity = secret.expose_secret().parse().unwrap();
        assert!(back.to_public() == id.to_public());
        let r = id.to_public().to_string();
        assert!(r.starts_with("age1pq1") && r.len() > 1900, "{}", r.len());
        assert!(is_hybrid_recipient(&r));
        assert!(r.parse::<HybridRecipient>().unwrap() == id.to_public());
        let mut bad = r.clone();
        bad.replace_range(100..101, if &r[100..101] == "q" { "p" } else { "q" });
        assert!(bad.parse::<HybridRecipient>().is_err());
        assert!(r.to_uppercase().parse::<HybridRecipient>().is_err());
        let e = secret
            .expose_secret()
            .to_lowercase()
            .parse::<HybridIdentity>()
            .unwrap_err();
        assert!(!e.contains("age-secret"));
        assert!(!format!("{id:?}").contains("AGE"));
    }
}
