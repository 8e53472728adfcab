//! The AWS KMS keyholder and its stanza body.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256, kdf};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext,
    stanza_aad,
};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::config::KmsConfig;

const BODY_VERSION: u8 = 1;
const BODY_FORMAT: &str = "AWS KMS stanza body";
/// The largest key ARN accepted from a stanza.
const MAX_ARN: usize = 2048;
/// The largest ciphertext blob accepted from a stanza.
const MAX_BLOB: usize = 6144;
const ID_LABEL: &str = "strongroom/v1/aws-kms-stanza-id";

/// An AWS KMS symmetric key (`SYMMETRIC_DEFAULT`), used as a keyholder: the member key goes
/// to KMS `Encrypt` and comes back from `Decrypt`; the KMS key never leaves KMS.
/// [`Keyholder::rewrap`] is `ReEncrypt` to the same key and context, so moving a stanza to
/// the key's current material (after a rotation) brings no plaintext out of KMS.
///
/// Every call binds an **encryption context** (authenticated by KMS and shown in
/// CloudTrail):
///
/// | key | value |
/// | --- | --- |
/// | `strongroom:purpose` | the wrap context's purpose (`strongroom/v1/member-key`) |
/// | `strongroom:subject` | hex of the wrap context's subject (vault id ‖ member id) |
/// | `strongroom:stanza` | hex of SHA-256 of [`stanza_aad`] (kind, stanza id, key ARN, context) |
///
/// so a stanza moved to another vault, member or key does not decrypt. The key may be
/// given as a key id, key ARN, alias name or alias ARN; anything but a key ARN is resolved
/// with `DescribeKey` once per keyholder (one extra request at the first unlock).
///
/// A bounded cache of unwrapped keys ([`KmsConfig::cache`]) lets a vault re-opened in the
/// same process unlock without a KMS call, for at most the cache's maximum age.
///
/// # Stanza body, version 1
///
/// ```text
/// offset  size  field
/// 0       1     body version = 1
/// 1       4     key ARN length A (u32 big-endian, 1..=2048)
/// 5       A     the KMS key's ARN (ASCII)
/// 5+A     4     ciphertext blob length C (1..=6144)
/// 9+A     C     KMS CiphertextBlob
/// ```
///
/// - Header (authenticated through the encryption context): `body[0..5+A]`.
/// - Stanza id: `HKDF-SHA256(ikm = u32(A) ‖ ARN, info = "strongroom/v1/aws-kms-stanza-id")[0..8]`:
///   one stanza per KMS key and member, the same after a `ReEncrypt`.
pub struct KmsKeyholder {
    client: Client,
    arn: OnceLock<String>,
    scope: Vec<u8>,
}

/// What KMS says about the key ([`KmsKeyholder::describe_key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KmsKeyInfo {
    /// The key's ARN.
    pub arn: String,
    /// `KeySpec` (`SYMMETRIC_DEFAULT` is what this keyholder uses).
    pub key_spec: String,
    /// `KeyUsage` (`ENCRYPT_DECRYPT`).
    pub key_usage: String,
    /// Whether the key is enabled.
    pub enabled: bool,
}

impl KmsKeyholder {
    /// A keyholder for `config`. No request is made until the first wrap or unwrap.
    pub fn new(config: KmsConfig) -> Result<Self, KeyholderError> {
        let client = Client::new(config)?;
        let c = client.config();
        let mut scope = Sha256::new();
        for part in [
            client.endpoint().as_bytes(),
            c.key_id.as_bytes(),
            c.credentials.access_key_id.as_bytes(),
        ] {
            scope.update((part.len() as u64).to_be_bytes());
            scope.update(part);
        }
        let arn = OnceLock::new();
        if is_key_arn(&c.key_id) {
            let _ = arn.set(c.key_id.clone());
        }
        Ok(Self {
            client,
            arn,
            scope: scope.finalize().to_vec(),
        })
    }

    /// [`KmsKeyholder::new`], then checks with `DescribeKey` that the key exists, is
    /// enabled and is a symmetric encryption key.
    pub fn connect(config: KmsConfig) -> Result<Self, KeyholderError> {
        let kh = Self::new(config)?;
        let info = kh.describe_key()?;
        if info.key_spec != "SYMMETRIC_DEFAULT" || info.key_usage != "ENCRYPT_DECRYPT" {
            return Err(custody(
                CustodyProblem::Failed,
                format!(
                    "the KMS key {} is a {} key for {}: strongroom needs a SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT",
                    info.arn, info.key_spec, info.key_usage
                ),
            ));
        }
        if !info.enabled {
            return Err(custody(
                CustodyProblem::Denied,
                format!("the KMS key {} is disabled: enable it", info.arn),
            ));
        }
        Ok(kh)
    }

    /// `DescribeKey`: the key's ARN, spec, usage and state.
    pub fn describe_key(&self) -> Result<KmsKeyInfo, KeyholderError> {
        let body = json!({ "KeyId": self.client.config().key_id }).to_string();
        let resp = self.client.call("DescribeKey", body.as_bytes())?;
        let v: Value =
            serde_json::from_str(&resp.0).map_err(|_| self.bad_response("DescribeKey"))?;
        let m = &v["KeyMetadata"];
        let text = |f: &str| m[f].as_str().map(str::to_owned);
        let info = KmsKeyInfo {
            arn: text("Arn").ok_or_else(|| self.bad_response("DescribeKey"))?,
            key_spec: text("KeySpec")
                .or_else(|| text("CustomerMasterKeySpec"))
                .unwrap_or_else(|| "SYMMETRIC_DEFAULT".to_owned()),
            key_usage: text("KeyUsage").unwrap_or_else(|| "ENCRYPT_DECRYPT".to_owned()),
            enabled: m["Enabled"].as_bool().unwrap_or(true),
        };
        if !is_key_arn(&info.arn) || info.arn.len() > MAX_ARN {
            return Err(self.bad_response("DescribeKey"));
        }
        let _ = self.arn.set(info.arn.clone());
        Ok(info)
    }

    /// The key's ARN (resolved with `DescribeKey` once when an alias or key id was given).
    pub fn arn(&self) -> Result<&str, KeyholderError> {
        if self.arn.get().is_none() {
            self.describe_key()?;
        }
        Ok(self.arn.get().map_or("", String::as_str))
    }

    /// The stanza id this keyholder writes and recognises (resolves the ARN).
    pub fn stanza_id(&self) -> Result<[u8; 8], KeyholderError> {
        Ok(stanza_id(&header(self.arn()?)[1..]))
    }

    /// The KMS key ARN a stanza names, read without any key; `None` for a stanza of another
    /// kind.
    pub fn key_arn_of(stanza: &Stanza) -> Result<Option<String>, KeyholderError> {
        if stanza.kind != KeyholderKind::AwsKms {
            return Ok(None);
        }
        Ok(Some(Body::parse(&stanza.body)?.arn()?.to_owned()))
    }

    /// Drops every key this keyholder's cache holds.
    pub fn clear_cache(&self) {
        self.client.config().cache.clear();
    }

    /// The encryption context of a stanza of this key in `ctx`.
    fn context(ctx: &WrapContext<'_>, id: [u8; 8], header: &[u8]) -> Value {
        let aad = stanza_aad(KeyholderKind::AwsKms, &id, header, ctx);
        json!({
            "strongroom:purpose": ctx.purpose,
            "strongroom:subject": hex::encode(ctx.subject),
            "strongroom:stanza": hex::encode(Sha256::digest(&aad)),
        })
    }

    /// This keyholder's own stanza's parsed body, or `None`.
    fn own<'a>(&self, stanza: &'a Stanza) -> Result<Option<Body<'a>>, KeyholderError> {
        if stanza.kind != KeyholderKind::AwsKms {
            return Ok(None);
        }
        let body = Body::parse(&stanza.body)?;
        let arn = self.arn()?;
        if body.arn()? != arn || stanza.id != stanza_id(&body.header[1..]) {
            return Ok(None);
        }
        Ok(Some(body))
    }

    fn stanza(&self, arn: &str, blob_b64: &str) -> Result<Stanza, KeyholderError> {
        let blob = B64
            .decode(blob_b64)
            .map_err(|_| self.bad_response("Encrypt"))?;
        if blob.is_empty() || blob.len() > MAX_BLOB {
            return Err(self.bad_response("Encrypt"));
        }
        let h = header(arn);
        let mut w = Writer::with_capacity(h.len() + 4 + blob.len());
        w.bytes(&h).var_bytes(&blob);
        Ok(Stanza {
            kind: KeyholderKind::AwsKms,
            id: stanza_id(&h[1..]),
            body: w.into_vec(),
        })
    }

    fn bad_response(&self, action: &str) -> KeyholderError {
        custody(
            CustodyProblem::Failed,
            format!(
                "KMS at {} gave an unexpected answer to {action}",
                self.client.endpoint()
            ),
        )
    }
}

fn custody(problem: CustodyProblem, what: String) -> KeyholderError {
    CustodyError::new(KeyholderKind::AwsKms, problem, what).into()
}

fn is_key_arn(s: &str) -> bool {
    s.starts_with("arn:") && s.contains(":kms:") && s.contains(":key/")
}

fn header(arn: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(5 + arn.len());
    w.u8(BODY_VERSION).var_bytes(arn.as_bytes());
    w.into_vec()
}

fn stanza_id(names: &[u8]) -> [u8; 8] {
    let mut id = [0u8; 8];
    kdf::hkdf_sha256(None, names, &[ID_LABEL.as_bytes()], &mut id)
        .unwrap_or_else(|_| unreachable!("8 bytes is a valid HKDF-SHA256 length"));
    id
}

impl fmt::Debug for KmsKeyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KmsKeyholder({} {}, <credentials redacted>)",
            self.client.endpoint(),
            self.client.config().key_id
        )
    }
}

impl Keyholder for KmsKeyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::AwsKms
    }

    fn describe(&self) -> String {
        format!("aws-kms {}", self.client.config().key_id)
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        let arn = self.arn()?.to_owned();
        let h = header(&arn);
        let id = stanza_id(&h[1..]);
        let plaintext = Zeroizing::new(B64.encode(key.expose_secret()));
        let request = Zeroizing::new(format!(
            r#"{{"KeyId":{},"Plaintext":"{}","EncryptionContext":{}}}"#,
            Value::from(arn.as_str()),
            plaintext.as_str(),
            Self::context(ctx, id, &h)
        ));
        let resp = self.client.call("Encrypt", request.as_bytes())?;
        let v: Value = serde_json::from_str(&resp.0).map_err(|_| self.bad_response("Encrypt"))?;
        let blob = v["CiphertextBlob"]
            .as_str()
            .ok_or_else(|| self.bad_response("Encrypt"))?;
        self.stanza(&arn, blob)
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        if stanza.kind != KeyholderKind::AwsKms {
            return Ok(None);
        }
        let cache = &self.client.config().cache;
        if let Some(k) = cache.get(&self.scope, ctx, stanza) {
            return Ok(Some(k));
        }
        let Some(body) = self.own(stanza)? else {
            return Ok(None);
        };
        let request = json!({
            "CiphertextBlob": B64.encode(body.blob),
            "KeyId": body.arn()?,
            "EncryptionContext": Self::context(ctx, stanza.id, body.header),
        })
        .to_string();
        let resp = self.client.call("Decrypt", request.as_bytes())?;
        let key = decrypted_key(&resp.0).ok_or_else(|| self.bad_response("Decrypt"))?;
        cache.insert(&self.scope, ctx, stanza, &key);
        Ok(Some(key))
    }

    fn rewrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Stanza>, KeyholderError> {
        let Some(body) = self.own(stanza)? else {
            return Ok(None);
        };
        let arn = body.arn()?;
        let context = Self::context(ctx, stanza.id, body.header);
        let request = json!({
            "CiphertextBlob": B64.encode(body.blob),
            "SourceKeyId": arn,
            "SourceEncryptionContext": context,
            "DestinationKeyId": arn,
            "DestinationEncryptionContext": context,
        })
        .to_string();
        let resp = self.client.call("ReEncrypt", request.as_bytes())?;
        let v: Value = serde_json::from_str(&resp.0).map_err(|_| self.bad_response("ReEncrypt"))?;
        let blob = v["CiphertextBlob"]
            .as_str()
            .ok_or_else(|| self.bad_response("ReEncrypt"))?;
        Ok(Some(self.stanza(arn, blob)?))
    }

    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::WrongKey {
            kind: KeyholderKind::AwsKms,
            key: format!("KMS key {}", self.client.config().key_id),
        }
    }
}

/// The 32-byte key of a Decrypt response, decoded into zeroizing memory.
fn decrypted_key(text: &str) -> Option<Key256> {
    #[derive(serde::Deserialize)]
    struct Resp<'a> {
        #[serde(rename = "Plaintext", borrow)]
        plaintext: &'a str,
    }
    let resp: Resp<'_> = serde_json::from_str(text).ok()?;
    let mut buf = Zeroizing::new([0u8; 48]);
    let n = B64.decode_slice(resp.plaintext, buf.as_mut_slice()).ok()?;
    if n != 32 {
        return None;
    }
    Key256::from_slice(&buf[..32]).ok()
}

/// A parsed KMS stanza body.
struct Body<'a> {
    header: &'a [u8],
    arn: &'a [u8],
    blob: &'a [u8],
}

impl<'a> Body<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(BODY_FORMAT, body);
        r.version(&[BODY_VERSION])?;
        let arn = r.var_bytes("key ARN", MAX_ARN)?;
        let header_len = r.position();
        let blob = r.var_bytes("ciphertext blob", MAX_BLOB)?;
        r.finish()?;
        if blob.is_empty() {
            return Err(DecodeError::Invalid {
                format: BODY_FORMAT,
                field: "ciphertext blob",
                reason: "empty",
            });
        }
        Ok(Self {
            header: &body[..header_len],
            arn,
            blob,
        })
    }

    fn arn(&self) -> Result<&'a str, DecodeError> {
        core::str::from_utf8(self.arn)
            .ok()
            .filter(|a| is_key_arn(a) && a.is_ascii())
            .ok_or(DecodeError::Invalid {
                format: BODY_FORMAT,
                field: "key ARN",
                reason: "not a KMS key ARN",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn body_layout_and_id_vector() {
        let mut w = Writer::new();
        w.bytes(&header(ARN)).var_bytes(&[0xAB; 3]);
        let b = w.into_vec();
        assert_eq!(b[0], 1);
        assert_eq!(&b[1..5], &(ARN.len() as u32).to_be_bytes());
        assert_eq!(&b[b.len() - 7..], &[0, 0, 0, 3, 0xAB, 0xAB, 0xAB]);
        let p = Body::parse(&b).unwrap();
        assert_eq!(p.arn().unwrap(), ARN);
        assert_eq!(p.header, &b[..5 + ARN.len()]);
        assert_eq!(hex::encode(stanza_id(&p.header[1..])), ID_VECTOR);
        let s = Stanza {
            kind: KeyholderKind::AwsKms,
            id: [0; 8],
            body: b,
        };
        assert_eq!(KmsKeyholder::key_arn_of(&s).unwrap().as_deref(), Some(ARN));
        let other = Stanza {
            kind: KeyholderKind::Transit,
            ..s
        };
        assert_eq!(KmsKeyholder::key_arn_of(&other).unwrap(), None);
    }

    const ID_VECTOR: &str = "3f82e13cf73a7282"; // pragma: allowlist secret

    #[test]
    fn malformed_bodies_are_refused() {
        for (arn, blob) in [("alias/x", &[1u8][..]), (ARN, &[][..]), ("", &[1][..])] {
            let mut w = Writer::new();
            w.bytes(&header(arn)).var_bytes(blob);
            let b = w.into_vec();
            assert!(
                Body::parse(&b).and_then(|p| p.arn().map(|_| ())).is_err(),
                "{arn}"
            );
        }
        assert!(Body::parse(&[2, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn decrypted_key_must_be_32_bytes() {
        let k = B64.encode([7u8; 32]);
        assert!(decrypted_key(&format!(r#"{{"Plaintext":"{k}","KeyId":"x"}}"#)).is_some());
        let short = B64.encode([7u8; 31]);
        assert!(decrypted_key(&format!(r#"{{"Plaintext":"{short}"}}"#)).is_none());
    }

    proptest! {
        #[test]
        fn body_round_trip(region in "[a-z]{2}-[a-z]{4,9}-[1-9]", account in "[0-9]{12}", key in "[0-9a-f-]{36}", blob in proptest::collection::vec(any::<u8>(), 1..400)) {
            let arn = format!("arn:aws:kms:{region}:{account}:key/{key}");
            let mut w = Writer::new();
            w.bytes(&header(&arn)).var_bytes(&blob);
            let b = w.into_vec();
            let p = Body::parse(&b).unwrap();
            prop_assert_eq!(p.arn().unwrap(), arn.as_str());
            prop_assert_eq!(p.blob, blob.as_slice());
        }

        #[test]
        fn body_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(b) = Body::parse(&bytes) {
                let _ = b.arn();
            }
        }
    }
}
