//! The Transit keyholder and its stanza body.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::ExposeSecret;
use serde_json::Value;
use sha2::{Digest, Sha256};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256, kdf};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext,
    stanza_aad,
};
use zeroize::Zeroizing;

use crate::client::Client;
use crate::config::{MAX_NAME, TransitAuth, TransitConfig, check_name};

const BODY_VERSION: u8 = 1;
const BODY_FORMAT: &str = "Transit stanza body";
/// The largest ciphertext text accepted from a stanza.
const MAX_CIPHERTEXT: usize = 4096;
const ID_LABEL: &str = "strongroom/v1/transit-stanza-id";

/// The Transit key a stanza names (not secret).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransitLocation {
    /// The namespace (empty: the root namespace).
    pub namespace: String,
    /// The Transit mount path.
    pub mount: String,
    /// The key's name.
    pub key: String,
}

impl fmt::Display for TransitLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.namespace.is_empty() {
            write!(f, "{}:", self.namespace)?;
        }
        write!(f, "{}/{}", self.mount, self.key)
    }
}

/// What the server says about the Transit key ([`TransitKeyholder::key_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransitKeyInfo {
    /// The key type (`aes256-gcm96`, `chacha20-poly1305`…).
    pub key_type: String,
    /// Whether the key is derived (per-`context` keys): strongroom needs it.
    pub derived: bool,
    /// The newest key version: what `encrypt` and `rewrap` use.
    pub latest_version: u32,
    /// Ciphertexts of older versions no longer decrypt.
    pub min_decryption_version: u32,
}

/// A key of an OpenBao or HashiCorp Vault Transit secrets engine, used as a keyholder: the
/// member key is sent to the server's `encrypt` and comes back from `decrypt`; the Transit
/// key never leaves the server. After the Transit key is rotated on the server,
/// [`Keyholder::rewrap`] moves a stanza to the newest key version with the server's
/// `rewrap`, so no plaintext leaves the server (`strongroom keyholder rotate` uses it).
///
/// The key must be a **derived** key of an AEAD type (`bao write -f transit/keys/<name>
/// derived=true`; type `aes256-gcm96`, the default, `aes128-gcm96` or `chacha20-poly1305`):
/// every call passes the stanza's associated data ([`stanza_aad`]: kind, stanza id, the
/// namespace, mount and key named in the stanza, and the wrap context, i.e. the vault id and
/// member id) as the Transit `context`, from which the server derives the encryption key, so
/// a stanza moved to another vault, member or key does not decrypt. (Transit's
/// `associated_data` would do for encrypt and decrypt, but its `rewrap` ignores it; `context`
/// works for all three.)
///
/// A bounded cache of unwrapped keys ([`TransitConfig::cache`], see
/// [`UnwrapCache`](strongroom_keyholder::UnwrapCache)) lets a vault re-opened in the same
/// process with the same keyholder unlock without a server call, for at most the cache's
/// maximum age.
///
/// # Stanza body, version 1
///
/// ```text
/// offset    size  field
/// 0         1     body version = 1
/// 1         4     namespace length N (u32 big-endian, 0..=255; 0 = root namespace)
/// 5         N     namespace (ASCII)
/// 5+N       4     mount path length M (1..=255)
/// 9+N       M     mount path (ASCII)
/// 9+N+M     4     key name length K (1..=255)
/// 13+N+M    K     key name (ASCII)
/// 13+N+M+K  4     ciphertext length C (1..=4096)
/// 17+N+M+K  C     the server's ciphertext text, `vault:v<version>:<base64>`
/// ```
///
/// - Header (authenticated): `body[0..13+N+M+K]`; associated data sent to the server:
///   [`stanza_aad`]`(Transit, stanza id, header, ctx)`.
/// - Stanza id: `HKDF-SHA256(ikm = u32(N) ‖ namespace ‖ u32(M) ‖ mount ‖ u32(K) ‖ key,
///   info = "strongroom/v1/transit-stanza-id")[0..8]`: one stanza per Transit key and member,
///   the same across key versions (a rewrap replaces it in place).
/// - The server address is not in the stanza: a server can move or sit behind a load
///   balancer.
pub struct TransitKeyholder {
    client: Client,
    location: TransitLocation,
    header: Vec<u8>,
    stanza_id: [u8; 8],
    scope: Vec<u8>,
}

impl TransitKeyholder {
    /// A keyholder for `config`. No request is made: use
    /// [`TransitKeyholder::key_info`] (or [`TransitKeyholder::connect`]) to check the key.
    pub fn new(config: TransitConfig) -> Result<Self, KeyholderError> {
        let client = Client::new(config)?;
        let c = client.config();
        let location = TransitLocation {
            namespace: c.namespace.clone().unwrap_or_default(),
            mount: c.mount.clone(),
            key: c.key.clone(),
        };
        let mut w = Writer::new();
        w.u8(BODY_VERSION);
        let header = {
            let mut names = Writer::new();
            names
                .var_bytes(location.namespace.as_bytes())
                .var_bytes(location.mount.as_bytes())
                .var_bytes(location.key.as_bytes());
            w.bytes(names.as_slice());
            w.into_vec()
        };
        let stanza_id = stanza_id(&header[1..]);
        let mut scope = Sha256::new();
        for part in [
            c.address.as_bytes(),
            &header,
            match &c.auth {
                TransitAuth::Token(t) => t.expose_secret().as_bytes(),
                TransitAuth::AppRole { role_id, .. } => role_id.expose_secret().as_bytes(),
            },
        ] {
            scope.update((part.len() as u64).to_be_bytes());
            scope.update(part);
        }
        Ok(Self {
            client,
            location,
            header,
            stanza_id,
            scope: scope.finalize().to_vec(),
        })
    }

    /// [`TransitKeyholder::new`], then checks that the key exists, is derived and of an AEAD
    /// type (one request).
    pub fn connect(config: TransitConfig) -> Result<Self, KeyholderError> {
        let kh = Self::new(config)?;
        let info = kh.key_info()?;
        if !info.derived
            || !matches!(
                info.key_type.as_str(),
                "aes256-gcm96" | "aes128-gcm96" | "chacha20-poly1305"
            )
        {
            return Err(custody(
                CustodyProblem::Failed,
                format!(
                    "the Transit key {} is {}of type {}: strongroom needs a derived AEAD key (create it with `derived=true`, type aes256-gcm96, aes128-gcm96 or chacha20-poly1305) to bind each stanza to its vault and member",
                    kh.location,
                    if info.derived { "" } else { "not derived and " },
                    info.key_type
                ),
            ));
        }
        Ok(kh)
    }

    /// Reads the key's type and versions (`GET /v1/<mount>/keys/<key>`).
    pub fn key_info(&self) -> Result<TransitKeyInfo, KeyholderError> {
        let body = self.client.call(
            "read key",
            &format!("{}/keys/{}", self.location.mount, self.location.key),
            None,
        )?;
        let v: Value = serde_json::from_str(&body.0).map_err(|_| self.bad_response("read key"))?;
        let data = &v["data"];
        let num = |f: &str| data[f].as_u64().and_then(|n| u32::try_from(n).ok());
        Ok(TransitKeyInfo {
            key_type: data["type"]
                .as_str()
                .ok_or_else(|| self.bad_response("read key"))?
                .to_owned(),
            derived: data["derived"].as_bool().unwrap_or(false),
            latest_version: num("latest_version").ok_or_else(|| self.bad_response("read key"))?,
            min_decryption_version: num("min_decryption_version").unwrap_or(1),
        })
    }

    /// The Transit key this keyholder uses.
    pub fn location(&self) -> &TransitLocation {
        &self.location
    }

    /// The stanza id this keyholder writes and recognises.
    pub fn stanza_id(&self) -> [u8; 8] {
        self.stanza_id
    }

    /// The Transit key a stanza names, read without any key; `None` for a stanza of another
    /// kind.
    pub fn locate(stanza: &Stanza) -> Result<Option<TransitLocation>, KeyholderError> {
        if stanza.kind != KeyholderKind::Transit {
            return Ok(None);
        }
        Ok(Some(Body::parse(&stanza.body)?.location()?))
    }

    /// The Transit key version a stanza's ciphertext is under; `None` for a stanza of another
    /// kind.
    pub fn key_version_of(stanza: &Stanza) -> Result<Option<u32>, KeyholderError> {
        if stanza.kind != KeyholderKind::Transit {
            return Ok(None);
        }
        Ok(Some(Body::parse(&stanza.body)?.key_version()?))
    }

    /// Drops every key this keyholder's cache holds.
    pub fn clear_cache(&self) {
        self.client.config().cache.clear();
    }

    fn path(&self, op: &str) -> String {
        format!("{}/{op}/{}", self.location.mount, self.location.key)
    }

    fn aad_b64(&self, ctx: &WrapContext<'_>) -> String {
        B64.encode(stanza_aad(
            KeyholderKind::Transit,
            &self.stanza_id,
            &self.header,
            ctx,
        ))
    }

    fn is_mine(&self, stanza: &Stanza) -> bool {
        stanza.kind == KeyholderKind::Transit && stanza.id == self.stanza_id
    }

    /// A stanza of this key with `ciphertext`.
    fn stanza(&self, ciphertext: &str) -> Result<Stanza, KeyholderError> {
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
            return Err(self.bad_response("encrypt"));
        }
        let mut w = Writer::with_capacity(self.header.len() + 4 + ciphertext.len());
        w.bytes(&self.header).var_bytes(ciphertext.as_bytes());
        let stanza = Stanza {
            kind: KeyholderKind::Transit,
            id: self.stanza_id,
            body: w.into_vec(),
        };
        Body::parse(&stanza.body)?.key_version()?;
        Ok(stanza)
    }

    fn ciphertext_of(body: &Value) -> Option<&str> {
        body["data"]["ciphertext"].as_str()
    }

    fn bad_response(&self, op: &str) -> KeyholderError {
        custody(
            CustodyProblem::Failed,
            format!(
                "the Transit server at {} gave an unexpected answer to {op} on {}",
                self.client.config().address,
                self.location
            ),
        )
    }
}

fn custody(problem: CustodyProblem, what: String) -> KeyholderError {
    CustodyError::new(KeyholderKind::Transit, problem, what).into()
}

impl fmt::Debug for TransitKeyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TransitKeyholder({} {}, <credentials redacted>)",
            self.client.config().address,
            self.location
        )
    }
}

impl Keyholder for TransitKeyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::Transit
    }

    fn describe(&self) -> String {
        format!("transit {} {}", self.client.config().address, self.location)
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        let plaintext = Zeroizing::new(B64.encode(key.expose_secret()));
        let request = Zeroizing::new(format!(
            r#"{{"plaintext":"{}","context":"{}"}}"#,
            plaintext.as_str(),
            self.aad_b64(ctx)
        ));
        let resp = self
            .client
            .call("encrypt", &self.path("encrypt"), Some(request.as_bytes()))?;
        let v: Value = serde_json::from_str(&resp.0).map_err(|_| self.bad_response("encrypt"))?;
        let ct = Self::ciphertext_of(&v).ok_or_else(|| self.bad_response("encrypt"))?;
        self.stanza(ct)
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        if !self.is_mine(stanza) {
            return Ok(None);
        }
        let body = Body::parse(&stanza.body)?;
        if body.header != self.header.as_slice() {
            // Another key with a colliding id: not this keyholder's.
            return Ok(None);
        }
        let cache = &self.client.config().cache;
        if let Some(k) = cache.get(&self.scope, ctx, stanza) {
            return Ok(Some(k));
        }
        let ct = core::str::from_utf8(body.ciphertext).map_err(|_| DecodeError::Invalid {
            format: BODY_FORMAT,
            field: "ciphertext",
            reason: "not UTF-8",
        })?;
        let request = serde_json::json!({
            "ciphertext": ct,
            "context": self.aad_b64(ctx),
        })
        .to_string();
        let resp = self
            .client
            .call("decrypt", &self.path("decrypt"), Some(request.as_bytes()))?;
        let key = decrypted_key(&resp.0).ok_or_else(|| self.bad_response("decrypt"))?;
        cache.insert(&self.scope, ctx, stanza, &key);
        Ok(Some(key))
    }

    fn rewrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Stanza>, KeyholderError> {
        if !self.is_mine(stanza) {
            return Ok(None);
        }
        let body = Body::parse(&stanza.body)?;
        if body.header != self.header.as_slice() {
            return Ok(None);
        }
        let ct = core::str::from_utf8(body.ciphertext).map_err(|_| DecodeError::Invalid {
            format: BODY_FORMAT,
            field: "ciphertext",
            reason: "not UTF-8",
        })?;
        let request = serde_json::json!({
            "ciphertext": ct,
            "context": self.aad_b64(ctx),
        })
        .to_string();
        let resp = self
            .client
            .call("rewrap", &self.path("rewrap"), Some(request.as_bytes()))?;
        let v: Value = serde_json::from_str(&resp.0).map_err(|_| self.bad_response("rewrap"))?;
        let new = Self::ciphertext_of(&v).ok_or_else(|| self.bad_response("rewrap"))?;
        Ok(Some(self.stanza(new)?))
    }

    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::WrongKey {
            kind: KeyholderKind::Transit,
            key: format!("Transit key {}", self.location),
        }
    }
}

/// The 32-byte key of a decrypt response, decoded into zeroizing memory.
fn decrypted_key(text: &str) -> Option<Key256> {
    #[derive(serde::Deserialize)]
    struct Resp<'a> {
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        plaintext: &'a str,
    }
    let resp: Resp<'_> = serde_json::from_str(text).ok()?;
    let mut buf = Zeroizing::new([0u8; 48]);
    let n = B64
        .decode_slice(resp.data.plaintext, buf.as_mut_slice())
        .ok()?;
    if n != 32 {
        return None;
    }
    Key256::from_slice(&buf[..32]).ok()
}

fn stanza_id(names: &[u8]) -> [u8; 8] {
    let mut id = [0u8; 8];
    kdf::hkdf_sha256(None, names, &[ID_LABEL.as_bytes()], &mut id)
        .unwrap_or_else(|_| unreachable!("8 bytes is a valid HKDF-SHA256 length"));
    id
}

/// A parsed Transit stanza body.
struct Body<'a> {
    header: &'a [u8],
    namespace: &'a [u8],
    mount: &'a [u8],
    key: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Body<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(BODY_FORMAT, body);
        r.version(&[BODY_VERSION])?;
        let namespace = r.var_bytes("namespace", MAX_NAME)?;
        let mount = r.var_bytes("mount path", MAX_NAME)?;
        let key = r.var_bytes("key name", MAX_NAME)?;
        let header_len = r.position();
        let ciphertext = r.var_bytes("ciphertext", MAX_CIPHERTEXT)?;
        r.finish()?;
        if ciphertext.is_empty() {
            return Err(DecodeError::Invalid {
                format: BODY_FORMAT,
                field: "ciphertext",
                reason: "empty",
            });
        }
        Ok(Self {
            header: &body[..header_len],
            namespace,
            mount,
            key,
            ciphertext,
        })
    }

    fn location(&self) -> Result<TransitLocation, DecodeError> {
        let text = |field: &'static str, b: &[u8], slashes: bool, empty_ok: bool| {
            let s = core::str::from_utf8(b).map_err(|_| DecodeError::Invalid {
                format: BODY_FORMAT,
                field,
                reason: "not UTF-8",
            })?;
            if !(empty_ok && s.is_empty()) {
                check_name(field, s, slashes).map_err(|_| DecodeError::Invalid {
                    format: BODY_FORMAT,
                    field,
                    reason: "not a valid name",
                })?;
            }
            Ok(s.to_owned())
        };
        Ok(TransitLocation {
            namespace: text("namespace", self.namespace, true, true)?,
            mount: text("mount path", self.mount, true, false)?,
            key: text("key name", self.key, false, false)?,
        })
    }

    /// `N` of the `<prefix>:v<N>:<base64>` ciphertext.
    fn key_version(&self) -> Result<u32, DecodeError> {
        let invalid = DecodeError::Invalid {
            format: BODY_FORMAT,
            field: "ciphertext",
            reason: "not a Transit ciphertext (<prefix>:v<version>:<base64>)",
        };
        let text = core::str::from_utf8(self.ciphertext).map_err(|_| invalid.clone())?;
        let mut parts = text.splitn(3, ':');
        let (Some(_), Some(v), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid);
        };
        let n = v
            .strip_prefix('v')
            .filter(|d| !d.is_empty() && d.len() <= 9 && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .filter(|n| *n >= 1);
        match n {
            Some(n) if !rest.is_empty() => Ok(n),
            _ => Err(invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(ns: &str, mount: &str, key: &str, ct: &str) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1)
            .var_bytes(ns.as_bytes())
            .var_bytes(mount.as_bytes())
            .var_bytes(key.as_bytes())
            .var_bytes(ct.as_bytes());
        w.into_vec()
    }

    /// The layout, byte for byte, and the stanza id of a known location.
    #[test]
    fn body_layout_and_id_vector() {
        let b = body("", "transit", "k", "vault:v3:QUJD");
        assert_eq!(
            hex::encode(&b),
            concat!(
                "01",
                "00000000",
                "00000007",
                "7472616e736974",
                "00000001",
                "6b",
                "0000000d",
                "7661756c743a76333a51554a44"
            )
        );
        let parsed = Body::parse(&b).unwrap();
        assert_eq!(parsed.header.len(), 1 + 4 + 4 + 7 + 4 + 1);
        assert_eq!(parsed.key_version().unwrap(), 3);
        assert_eq!(
            parsed.location().unwrap(),
            TransitLocation {
                namespace: String::new(),
                mount: "transit".into(),
                key: "k".into()
            }
        );
        assert_eq!(parsed.location().unwrap().to_string(), "transit/k");
        // The id is frozen: it is how stored stanzas are recognised.
        assert_eq!(hex::encode(stanza_id(&parsed.header[1..])), ID_VECTOR);
        let s = Stanza {
            kind: KeyholderKind::Transit,
            id: [0; 8],
            body: b.clone(),
        };
        assert_eq!(TransitKeyholder::key_version_of(&s).unwrap(), Some(3));
        assert_eq!(TransitKeyholder::locate(&s).unwrap().unwrap().key, "k");
        let other = Stanza {
            kind: KeyholderKind::RawKek,
            ..s
        };
        assert_eq!(TransitKeyholder::locate(&other).unwrap(), None);
    }

    const ID_VECTOR: &str = "7586a54504845bf7";

    #[test]
    fn malformed_bodies_are_refused() {
        for ct in [
            "",
            "vault:v0:QUJD",
            "vault:3:QUJD",
            "vault:v3:",
            "vault",
            "vault:vx:Q",
        ] {
            let b = body("", "transit", "k", ct);
            let ok = Body::parse(&b).and_then(|p| p.key_version());
            assert!(ok.is_err(), "{ct:?}");
        }
        let b = body("", "../x", "k", "vault:v1:QQ==");
        assert!(Body::parse(&b).unwrap().location().is_err());
        let mut b = body("", "transit", "k", "vault:v1:QQ==");
        b.push(0);
        assert!(Body::parse(&b).is_err());
        assert!(Body::parse(&[2]).is_err());
    }

    #[test]
    fn decrypted_key_must_be_32_bytes() {
        let k = B64.encode([7u8; 32]);
        assert!(decrypted_key(&format!(r#"{{"data":{{"plaintext":"{k}"}}}}"#)).is_some());
        let short = B64.encode([7u8; 16]);
        assert!(decrypted_key(&format!(r#"{{"data":{{"plaintext":"{short}"}}}}"#)).is_none());
        assert!(decrypted_key(r#"{"data":{}}"#).is_none());
    }

    proptest! {
        #[test]
        fn body_round_trip(ns in "([a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2})?", mount in "[a-z0-9_-]{1,20}", key in "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,29}", v in 1u32..100_000, ct in "[A-Za-z0-9+/]{4,200}") {
            let text = format!("vault:v{v}:{ct}");
            let b = body(&ns, &mount, &key, &text);
            let p = Body::parse(&b).unwrap();
            prop_assert_eq!(p.key_version().unwrap(), v);
            let loc = p.location().unwrap();
            prop_assert_eq!((loc.namespace, loc.mount, loc.key), (ns.clone(), mount.clone(), key.clone()));
            prop_assert_eq!(body(&ns, &mount, &key, &text), b);
        }

        #[test]
        fn body_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(b) = Body::parse(&bytes) {
                let _ = b.location();
                let _ = b.key_version();
            }
        }
    }
}
