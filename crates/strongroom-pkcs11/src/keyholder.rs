//! The PKCS#11 keyholder: a non-extractable AES-256 key in a token wraps with AES-GCM.

use core::fmt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{CryptoError, DecodeError, Key256, kdf, random};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext,
    stanza_aad,
};
use zeroize::Zeroizing;

/// Where SoftHSM2's module is looked for when [`Pkcs11Config::module`] is `None`.
pub const SOFTHSM_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

/// The first of [`SOFTHSM_PATHS`] that exists.
pub fn find_softhsm() -> Option<PathBuf> {
    SOFTHSM_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The largest token label (PKCS#11 token labels are 32 bytes).
const MAX_TOKEN_LABEL: usize = 32;
/// The largest key label accepted.
const MAX_KEY_LABEL: usize = 255;
const BODY_VERSION: u8 = 1;
const IV_LEN: usize = 12;
const SEALED_LEN: usize = 32 + 16;
const ID_LABEL: &str = "strongroom/v1/pkcs11-stanza-id";

/// How to reach the token and key. Passed in by the application (this crate reads no
/// environment variables). `Debug` leaves the PIN out.
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library); `None` looks for SoftHSM2 in [`SOFTHSM_PATHS`].
    pub module: Option<PathBuf>,
    /// The token's label.
    pub token_label: String,
    /// The AES key's label (`CKA_LABEL`).
    pub key_label: String,
    /// The user PIN.
    pub user_pin: SecretString,
}

impl Pkcs11Config {
    /// A configuration with the default module lookup.
    pub fn new(token_label: &str, key_label: &str, user_pin: SecretString) -> Self {
        Self {
            module: None,
            token_label: token_label.to_owned(),
            key_label: key_label.to_owned(),
            user_pin,
        }
    }

    /// Sets the module path.
    #[must_use]
    pub fn with_module(mut self, module: impl Into<PathBuf>) -> Self {
        self.module = Some(module.into());
        self
    }

    fn module_path(&self) -> Result<PathBuf, KeyholderError> {
        match &self.module {
            Some(p) => Ok(p.clone()),
            None => find_softhsm().ok_or_else(|| {
                backend(format!(
                    "no PKCS#11 module was given and SoftHSM2 was not found in {}: pass the module path",
                    SOFTHSM_PATHS.join(", ")
                ))
            }),
        }
    }

    fn location(&self) -> Result<Pkcs11Location, KeyholderError> {
        Pkcs11Location::new(&self.token_label, &self.key_label)
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("user_pin", &"<redacted>")
            .finish()
    }
}

/// The token and key a stanza names (not secret).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pkcs11Location {
    /// The token's label.
    pub token_label: String,
    /// The key's label.
    pub key_label: String,
}

impl Pkcs11Location {
    fn new(token_label: &str, key_label: &str) -> Result<Self, KeyholderError> {
        if token_label.is_empty() || token_label.len() > MAX_TOKEN_LABEL {
            return Err(backend(format!(
                "a PKCS#11 token label has 1 to {MAX_TOKEN_LABEL} bytes, got {}",
                token_label.len()
            )));
        }
        if key_label.is_empty() || key_label.len() > MAX_KEY_LABEL {
            return Err(backend(format!(
                "a key label has 1 to {MAX_KEY_LABEL} bytes, got {}",
                key_label.len()
            )));
        }
        Ok(Self {
            token_label: token_label.to_owned(),
            key_label: key_label.to_owned(),
        })
    }
}

impl fmt::Display for Pkcs11Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token '{}' key '{}'", self.token_label, self.key_label)
    }
}

/// One loaded module per path, initialised once and kept for the life of the process
/// (`C_Initialize` may run only once per process; finalising while another keyholder uses
/// the module would break it). Operations on one module are serialised by `lock`, so the
/// per-operation login below never meets another keyholder's login.
struct Module {
    ctx: Pkcs11,
    lock: Mutex<()>,
}

fn module(path: &Path) -> Result<Arc<Module>, KeyholderError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    let mut map = MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(m) = map.get(path) {
        return Ok(Arc::clone(m));
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        backend(format!(
            "cannot load the PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(backend(format!(
                "cannot initialise the PKCS#11 module {}: {e}",
                path.display()
            )));
        }
    }
    let m = Arc::new(Module {
        ctx,
        lock: Mutex::new(()),
    });
    map.insert(path.to_owned(), Arc::clone(&m));
    Ok(m)
}

/// An AES-256 key inside a PKCS#11 token (an HSM, or SoftHSM2), used as a keyholder.
///
/// The key never leaves the token: it is generated there ([`Pkcs11Keyholder::create_key`])
/// with `CKA_SENSITIVE = true`, `CKA_EXTRACTABLE = false`, `CKA_TOKEN = true`, and wrapping
/// is `C_Encrypt` with `CKM_AES_GCM` inside the token. Each operation opens a session, logs
/// in with the user PIN, runs, logs out and closes.
///
/// # Stanza body, version 1 (69 + T + K bytes)
///
/// ```text
/// offset    size  field
/// 0         1     body version = 1
/// 1         4     token label length T (u32 big-endian, 1..=32)
/// 5         T     token label (UTF-8)
/// 5+T       4     key label length K (u32 big-endian, 1..=255)
/// 9+T       K     key label (UTF-8)
/// 9+T+K     12    AES-GCM IV (random per wrap)
/// 21+T+K    48    AES-256-GCM ciphertext of the 32-byte key ‖ 16-byte tag
/// ```
///
/// - Associated data: [`stanza_aad`]`(Pkcs11, stanza id, body[0..9+T+K], ctx)`.
/// - Stanza id: `HKDF-SHA256(ikm = u32(T) ‖ token label ‖ u32(K) ‖ key label ‖ u32(I) ‖
///   CKA_ID, info = "strongroom/v1/pkcs11-stanza-id")[0..8]`, where `CKA_ID` (I bytes) is the
///   random id given to the key at creation: a key re-created under the same label is
///   recognised as a different key.
pub struct Pkcs11Keyholder {
    config: Pkcs11Config,
    location: Pkcs11Location,
    module: Arc<Module>,
    slot: Slot,
    stanza_id: [u8; 8],
}

impl Pkcs11Keyholder {
    /// Opens the key `config.key_label` in the token `config.token_label`, checking the PIN.
    ///
    /// Errors: [`KeyholderError::Custody`] ([`CustodyProblem::Missing`]: no such token or
    /// key; [`CustodyProblem::Failed`]: module not loadable, PIN locked, other token
    /// failures), [`KeyholderError::WrongPin`].
    pub fn open(config: Pkcs11Config) -> Result<Self, KeyholderError> {
        let location = config.location()?;
        let module = module(&config.module_path()?)?;
        let slot = find_token(&module.ctx, &location.token_label)?;
        let ckid = with_login(&module, slot, &config, |session| {
            let key = find_key(session, &location)?;
            key_id_attribute(session, key)
        })?;
        let stanza_id = stanza_id(&location, &ckid);
        Ok(Self {
            config,
            location,
            module,
            slot,
            stanza_id,
        })
    }

    /// Generates a non-extractable AES-256 key labelled `config.key_label` in the token,
    /// then opens it. Fails with [`KeyholderError::AlreadyExists`] if a key with that label
    /// exists (a key that may wrap a vault is never replaced).
    pub fn create_key(config: Pkcs11Config) -> Result<Self, KeyholderError> {
        let location = config.location()?;
        let module = module(&config.module_path()?)?;
        let slot = find_token(&module.ctx, &location.token_label)?;
        with_login(&module, slot, &config, |session| {
            if !find_keys(session, &location.key_label)?.is_empty() {
                return Err(KeyholderError::AlreadyExists {
                    what: format!("PKCS#11 {location}"),
                });
            }
            let ckid: [u8; 16] = random::array()?;
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Label(location.key_label.as_bytes().to_vec()),
                Attribute::Id(ckid.to_vec()),
            ];
            session
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| token_error(e, &location))?;
            Ok(())
        })?;
        Self::open(config)
    }

    /// Destroys the key `config.key_label` in the token ("shreds" it: every stanza it
    /// wrapped becomes unopenable). Idempotent: `false` when there was no such key.
    pub fn delete_key(config: &Pkcs11Config) -> Result<bool, KeyholderError> {
        let location = config.location()?;
        let module = module(&config.module_path()?)?;
        let slot = find_token(&module.ctx, &location.token_label)?;
        with_login(&module, slot, config, |session| {
            let keys = find_keys(session, &location.key_label)?;
            for k in &keys {
                session
                    .destroy_object(*k)
                    .map_err(|e| token_error(e, &location))?;
            }
            Ok(!keys.is_empty())
        })
    }

    /// The token and key a PKCS#11 stanza names, read without any key; `None` for a stanza
    /// of another kind.
    pub fn locate(stanza: &Stanza) -> Result<Option<Pkcs11Location>, KeyholderError> {
        if stanza.kind != KeyholderKind::Pkcs11 {
            return Ok(None);
        }
        let body = Body::parse(&stanza.body)?;
        Ok(Some(body.location()?))
    }

    /// The token and key this keyholder uses.
    pub fn location(&self) -> &Pkcs11Location {
        &self.location
    }

    /// The stanza id this keyholder writes and recognises.
    pub fn stanza_id(&self) -> [u8; 8] {
        self.stanza_id
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&Session, ObjectHandle) -> Result<T, KeyholderError>,
    ) -> Result<T, KeyholderError> {
        with_login(&self.module, self.slot, &self.config, |session| {
            let key = find_key(session, &self.location)?;
            f(session, key)
        })
    }
}

impl fmt::Debug for Pkcs11Keyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Keyholder({}, <PIN redacted>)", self.location)
    }
}

impl Keyholder for Pkcs11Keyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::Pkcs11
    }

    fn describe(&self) -> String {
        format!("pkcs11 {}", self.location)
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        let mut w = Writer::with_capacity(
            9 + self.location.token_label.len()
                + self.location.key_label.len()
                + IV_LEN
                + SEALED_LEN,
        );
        w.u8(BODY_VERSION)
            .var_bytes(self.location.token_label.as_bytes())
            .var_bytes(self.location.key_label.as_bytes());
        let aad = stanza_aad(KeyholderKind::Pkcs11, &self.stanza_id, w.as_slice(), ctx);
        let iv: [u8; IV_LEN] = random::array()?;
        let sealed = self.run(|session, handle| {
            let mut iv_buf = iv;
            let params = GcmParams::new(&mut iv_buf, &aad, 128.into())
                .map_err(|e| token_error(e, &self.location))?;
            session
                .encrypt(&Mechanism::AesGcm(params), handle, key.expose_secret())
                .map_err(|e| token_error(e, &self.location))
        })?;
        if sealed.len() != SEALED_LEN {
            return Err(backend(format!(
                "the token returned {} bytes of AES-GCM output, expected {SEALED_LEN}",
                sealed.len()
            )));
        }
        w.bytes(&iv).bytes(&sealed);
        Ok(Stanza {
            kind: KeyholderKind::Pkcs11,
            id: self.stanza_id,
            body: w.into_vec(),
        })
    }

    fn unwrap(
        &self,
        ctx: &WrapContext<'_>,
        stanza: &Stanza,
    ) -> Result<Option<Key256>, KeyholderError> {
        if stanza.kind != KeyholderKind::Pkcs11 || stanza.id != self.stanza_id {
            return Ok(None);
        }
        let body = Body::parse(&stanza.body)?;
        let aad = stanza_aad(KeyholderKind::Pkcs11, &stanza.id, body.header, ctx);
        let plain = self.run(|session, handle| {
            let mut iv = [0u8; IV_LEN];
            iv.copy_from_slice(body.iv);
            let params = GcmParams::new(&mut iv, &aad, 128.into())
                .map_err(|e| token_error(e, &self.location))?;
            match session.decrypt(&Mechanism::AesGcm(params), handle, body.sealed) {
                Ok(p) => Ok(Zeroizing::new(p)),
                // Tokens report a failed GCM tag check differently: the standard's
                // CKR_ENCRYPTED_DATA_INVALID, or (SoftHSM2) CKR_GENERAL_ERROR.
                Err(CkError::Pkcs11(
                    RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange
                    | RvError::DataInvalid
                    | RvError::DataLenRange
                    | RvError::GeneralError
                    | RvError::FunctionFailed,
                    _,
                )) => Err(CryptoError::Decrypt.into()),
                Err(e) => Err(token_error(e, &self.location)),
            }
        })?;
        Ok(Some(Key256::from_slice(&plain)?))
    }

    fn mismatch_error(&self) -> KeyholderError {
        KeyholderError::WrongKey {
            kind: KeyholderKind::Pkcs11,
            key: format!(
                "PKCS#11 {} (was the key re-created, or is this another token with the same labels?)",
                self.location
            ),
        }
    }
}

/// A parsed PKCS#11 stanza body.
struct Body<'a> {
    header: &'a [u8],
    token_label: &'a [u8],
    key_label: &'a [u8],
    iv: &'a [u8],
    sealed: &'a [u8],
}

impl<'a> Body<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new("PKCS#11 stanza body", body);
        r.version(&[BODY_VERSION])?;
        let token_label = r.var_bytes("token label", MAX_TOKEN_LABEL)?;
        let key_label = r.var_bytes("key label", MAX_KEY_LABEL)?;
        let header_len = r.position();
        let iv = r.bytes(IV_LEN, "IV")?;
        let sealed = r.bytes(SEALED_LEN, "ciphertext")?;
        r.finish()?;
        Ok(Self {
            header: &body[..header_len],
            token_label,
            key_label,
            iv,
            sealed,
        })
    }

    fn location(&self) -> Result<Pkcs11Location, KeyholderError> {
        let utf8 = |field: &'static str, b: &[u8]| {
            core::str::from_utf8(b)
                .map(str::to_owned)
                .map_err(|_| DecodeError::Invalid {
                    format: "PKCS#11 stanza body",
                    field,
                    reason: "not UTF-8",
                })
        };
        Pkcs11Location::new(
            &utf8("token label", self.token_label)?,
            &utf8("key label", self.key_label)?,
        )
    }
}

fn stanza_id(location: &Pkcs11Location, ckid: &[u8]) -> [u8; 8] {
    let mut w = Writer::new();
    w.var_bytes(location.token_label.as_bytes())
        .var_bytes(location.key_label.as_bytes())
        .var_bytes(ckid);
    let mut id = [0u8; 8];
    kdf::hkdf_sha256(None, w.as_slice(), &[ID_LABEL.as_bytes()], &mut id)
        .unwrap_or_else(|_| unreachable!("8 bytes is a valid HKDF-SHA256 length"));
    id
}

fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, KeyholderError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| backend(format!("cannot list PKCS#11 slots: {e}")))?;
    let mut seen = Vec::new();
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| backend(format!("cannot read PKCS#11 token info: {e}")))?;
        if info.label() == label {
            return Ok(slot);
        }
        if info.token_initialized() {
            seen.push(format!("'{}'", info.label()));
        }
    }
    Err(missing(if seen.is_empty() {
        format!("no token labelled '{label}' (the module has no initialised token)")
    } else {
        format!(
            "no token labelled '{label}' (tokens present: {})",
            seen.join(", ")
        )
    }))
}

/// Opens a session on `slot`, logs the user in, runs `f`, logs out. Serialised per module.
fn with_login<T>(
    module: &Module,
    slot: Slot,
    config: &Pkcs11Config,
    f: impl FnOnce(&Session) -> Result<T, KeyholderError>,
) -> Result<T, KeyholderError> {
    let _guard = module
        .lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let token = config.token_label.as_str();
    let session = module
        .ctx
        .open_rw_session(slot)
        .map_err(|e| backend(format!("cannot open a session on token '{token}': {e}")))?;
    let logged_in_here = match session.login(UserType::User, Some(&config.user_pin)) {
        Ok(()) => true,
        // Another part of this process holds the token's login; operate within it.
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => false,
        Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
            return Err(KeyholderError::WrongPin {
                token: token.to_owned(),
            });
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
            return Err(backend(format!(
                "the user PIN of token '{token}' is locked after too many failures: the security officer must unlock it"
            )));
        }
        Err(e) => return Err(backend(format!("cannot log in to token '{token}': {e}"))),
    };
    let result = f(&session);
    if logged_in_here {
        // The session closes on drop either way; a failed logout changes nothing for the
        // caller.
        let _ = session.logout();
    }
    result
}

fn find_keys(session: &Session, label: &str) -> Result<Vec<ObjectHandle>, KeyholderError> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| backend(format!("cannot search the token for key '{label}': {e}")))
}

fn find_key(session: &Session, location: &Pkcs11Location) -> Result<ObjectHandle, KeyholderError> {
    match find_keys(session, &location.key_label)?.as_slice() {
        [] => Err(missing(format!(
            "no AES key labelled '{}' in token '{}'",
            location.key_label, location.token_label
        ))),
        [one] => Ok(*one),
        many => Err(backend(format!(
            "{} AES keys are labelled '{}' in token '{}': labels must be unique",
            many.len(),
            location.key_label,
            location.token_label
        ))),
    }
}

fn key_id_attribute(session: &Session, key: ObjectHandle) -> Result<Vec<u8>, KeyholderError> {
    let attrs = session
        .get_attributes(key, &[AttributeType::Id])
        .map_err(|e| backend(format!("cannot read the key's CKA_ID: {e}")))?;
    Ok(attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) => Some(id),
            _ => None,
        })
        .unwrap_or_default())
}

fn token_error(e: CkError, location: &Pkcs11Location) -> KeyholderError {
    match e {
        CkError::Pkcs11(
            RvError::TokenNotPresent | RvError::DeviceRemoved | RvError::SlotIdInvalid,
            _,
        ) => missing(format!(
            "token '{}' is no longer present",
            location.token_label
        )),
        CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _) => {
            missing(format!("{location} is no longer present"))
        }
        CkError::Pkcs11(rv, f) => backend(format!("{location}: {} failed: {rv}", fn_name(f))),
        other => backend(format!("{location}: {other}")),
    }
}

fn fn_name(f: Function) -> String {
    format!("C_{f:?}")
}

fn backend(reason: String) -> KeyholderError {
    CustodyError::new(KeyholderKind::Pkcs11, CustodyProblem::Failed, reason).into()
}

fn missing(what: impl core::fmt::Display) -> KeyholderError {
    CustodyError::new(
        KeyholderKind::Pkcs11,
        CustodyProblem::Missing,
        format!("the PKCS#11 token or key is not available: {what}"),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn config_debug_hides_the_pin() {
        let c = Pkcs11Config::new("tok", "key", SecretString::from("123456"))
            .with_module("/x/libsofthsm2.so");
        let d = format!("{c:?}");
        assert!(!d.contains("123456"), "{d}");
        assert!(d.contains("tok") && d.contains("/x/libsofthsm2.so"), "{d}");
    }

    #[test]
    fn labels_are_checked() {
        assert!(Pkcs11Location::new("", "k").is_err());
        assert!(Pkcs11Location::new(&"t".repeat(33), "k").is_err());
        assert!(Pkcs11Location::new("t", "").is_err());
        assert!(Pkcs11Location::new("t", &"k".repeat(256)).is_err());
        assert_eq!(
            Pkcs11Location::new("t", "k").unwrap().to_string(),
            "token 't' key 'k'"
        );
    }

    #[test]
    fn missing_module_is_a_clear_error() {
        let c = Pkcs11Config::new("t", "k", SecretString::from("1"))
            .with_module("/nonexistent/libpkcs11.so");
        let err = Pkcs11Keyholder::open(c).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, KeyholderError::Custody(c) if c.problem == CustodyProblem::Failed),
            "{msg}"
        );
        assert!(msg.contains("/nonexistent/libpkcs11.so"), "{msg}");
    }

    #[test]
    fn stanza_id_depends_on_labels_and_ckid() {
        let a = Pkcs11Location::new("t", "k").unwrap();
        let b = Pkcs11Location::new("t", "k2").unwrap();
        assert_ne!(stanza_id(&a, b"1"), stanza_id(&b, b"1"));
        assert_ne!(stanza_id(&a, b"1"), stanza_id(&a, b"2"));
        assert_eq!(stanza_id(&a, b"1"), stanza_id(&a, b"1"));
    }

    #[test]
    fn body_layout() {
        let mut w = Writer::new();
        w.u8(1)
            .var_bytes(b"tok")
            .var_bytes(b"key")
            .bytes(&[7; 12])
            .bytes(&[9; 48]);
        let bytes = w.into_vec();
        assert_eq!(bytes.len(), 69 + 3 + 3);
        let b = Body::parse(&bytes).unwrap();
        assert_eq!(b.header, &bytes[..15]);
        assert_eq!(b.iv, &[7; 12]);
        assert_eq!(
            b.location().unwrap(),
            Pkcs11Location::new("tok", "key").unwrap()
        );
        let stanza = Stanza {
            kind: KeyholderKind::Pkcs11,
            id: [0; 8],
            body: bytes.clone(),
        };
        assert_eq!(
            Pkcs11Keyholder::locate(&stanza).unwrap(),
            Some(Pkcs11Location::new("tok", "key").unwrap())
        );
        assert!(Body::parse(&bytes[..bytes.len() - 1]).is_err());
        let other = Stanza {
            kind: KeyholderKind::RawKek,
            ..stanza
        };
        assert_eq!(Pkcs11Keyholder::locate(&other).unwrap(), None);
    }

    proptest! {
        #[test]
        fn body_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(b) = Body::parse(&bytes) {
                let _ = b.location();
            }
        }
    }
}
