//! The PKCS#11 keyholder: a non-extractable AES-256 key in a token wraps with AES-GCM.
//!
//! Specified in `docs/spec/stanza.md`.

use core::fmt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{CryptoError, DecodeError, Key256, kdf, random};
use strongroom_keyholder::{
    CustodyError, CustodyProblem, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext,
    stanza_aad,
};
use subtle::ConstantTimeEq;
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

/// Where the tpm2-pkcs11 module (a TPM 2.0 as a PKCS#11 token; Debian `libtpm2-pkcs11-1`)
/// usually is.
pub const TPM2_PKCS11_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib/pkcs11/libtpm2_pkcs11.so",
    "/usr/lib64/pkcs11/libtpm2_pkcs11.so",
    "/usr/local/lib/libtpm2_pkcs11.so",
];

/// The first of [`TPM2_PKCS11_PATHS`] that exists.
pub fn find_tpm2_pkcs11() -> Option<PathBuf> {
    TPM2_PKCS11_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The largest token label (PKCS#11 token labels are 32 bytes).
const MAX_TOKEN_LABEL: usize = 32;
/// The largest key label accepted.
const MAX_KEY_LABEL: usize = 255;
/// Body version 1: AES-GCM, no mechanism byte (still written for AES keys, so that
/// releases that only know version 1 keep opening them).
const BODY_V1: u8 = 1;
/// Body version 2: a mechanism id byte after the version.
const BODY_V2: u8 = 2;
const IV_LEN: usize = 12;
const SEALED_LEN: usize = 32 + 16;
/// The smallest and largest RSA-OAEP ciphertext accepted (RSA-2048 to RSA-4096).
const MIN_RSA_LEN: usize = 256;
const MAX_RSA_LEN: usize = 512;
/// The RSA-OAEP plaintext: the key, then the binding of the stanza's associated data.
const RSA_PLAIN_LEN: usize = 32 + 32;
const ID_LABEL: &str = "strongroom/v1/pkcs11-stanza-id";
const BINDING_LABEL: &[u8] = b"strongroom/v1/pkcs11-rsa-oaep-binding";
const BODY_FORMAT: &str = "PKCS#11 stanza body";

/// How a PKCS#11 keyholder wraps inside the token, and the mechanism id a version-2 stanza
/// body records.
///
/// | id | mechanism | key in the token | tokens |
/// | --- | --- | --- | --- |
/// | 1 | `CKM_AES_GCM`, 96-bit IV, 128-bit tag | AES-256 secret key | HSMs, SoftHSM2 |
/// | 2 | `CKM_RSA_PKCS_OAEP`, SHA-256, MGF1-SHA-256, no label | RSA-2048 key pair | TPM 2.0 (tpm2-pkcs11 has no AES-GCM), HSMs, SoftHSM2 |
///
/// Both are authenticated: AES-GCM by its tag over the stanza's associated data; RSA-OAEP
/// because the token decrypts only an untouched ciphertext (OAEP's padding check) and the
/// plaintext carries `SHA-256("strongroom/v1/pkcs11-rsa-oaep-binding" ‖ 0x00 ‖ aad)` after
/// the key, compared in constant time. As with every public-key wrap (age, HPKE), whoever
/// can read the token's public key could write a stanza for a key of their choosing; it
/// cannot open or alter an existing one, and a member key substituted that way does not
/// open the member's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pkcs11Mechanism {
    /// `CKM_AES_GCM` with a non-extractable AES-256 key.
    #[default]
    AesGcm,
    /// `CKM_RSA_PKCS_OAEP` (SHA-256) with a non-extractable RSA private key.
    RsaOaep,
}

impl Pkcs11Mechanism {
    /// The id a version-2 stanza body records.
    pub const fn id(self) -> u8 {
        match self {
            Pkcs11Mechanism::AesGcm => 1,
            Pkcs11Mechanism::RsaOaep => 2,
        }
    }

    /// The mechanism of an id, if this release knows it.
    pub fn from_id(id: u8) -> Option<Self> {
        [Pkcs11Mechanism::AesGcm, Pkcs11Mechanism::RsaOaep]
            .into_iter()
            .find(|m| m.id() == id)
    }

    /// A stable name: `aes-gcm`, `rsa-oaep`.
    pub const fn name(self) -> &'static str {
        match self {
            Pkcs11Mechanism::AesGcm => "aes-gcm",
            Pkcs11Mechanism::RsaOaep => "rsa-oaep",
        }
    }
}

impl fmt::Display for Pkcs11Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to reach the token and key. Passed in by the application (this crate reads no
/// environment variables). `Debug` leaves the PIN out.
#[non_exhaustive]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library); `None` looks for SoftHSM2 in [`SOFTHSM_PATHS`].
    pub module: Option<PathBuf>,
    /// The token's label.
    pub token_label: String,
    /// The AES key's label (`CKA_LABEL`).
    pub key_label: String,
    /// The user PIN.
    pub user_pin: SecretString,
    /// The mechanism of a key made by [`Pkcs11Keyholder::create_key`] (opening a key finds
    /// its mechanism from the key's type).
    pub mechanism: Pkcs11Mechanism,
}

impl Pkcs11Config {
    /// A configuration with the default module lookup and mechanism (AES-GCM).
    pub fn new(token_label: &str, key_label: &str, user_pin: SecretString) -> Self {
        Self {
            module: None,
            token_label: token_label.to_owned(),
            key_label: key_label.to_owned(),
            user_pin,
            mechanism: Pkcs11Mechanism::default(),
        }
    }

    /// Sets the mechanism of a key to create (RSA-OAEP for a TPM).
    #[must_use]
    pub fn with_mechanism(mut self, mechanism: Pkcs11Mechanism) -> Self {
        self.mechanism = mechanism;
        self
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
            .field("mechanism", &self.mechanism)
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

/// A key inside a PKCS#11 token (an HSM, SoftHSM2, or a TPM 2.0 through tpm2-pkcs11), used
/// as a keyholder.
///
/// The key never leaves the token: it is generated there ([`Pkcs11Keyholder::create_key`])
/// with `CKA_SENSITIVE = true`, `CKA_EXTRACTABLE = false`, `CKA_TOKEN = true`, and wrapping
/// runs inside the token with the key's [`Pkcs11Mechanism`]: `C_Encrypt`/`C_Decrypt` with
/// `CKM_AES_GCM` for an AES-256 key, or with `CKM_RSA_PKCS_OAEP` (SHA-256) for an RSA key
/// pair (a TPM offers no AES-GCM). Each operation opens a session, logs in with the user
/// PIN, runs, logs out and closes.
///
/// # Stanza body, version 1: AES-GCM (69 + T + K bytes)
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
/// AES keys still write version 1, so releases that know only version 1 keep opening them.
///
/// # Stanza body, version 2: a mechanism id
///
/// ```text
/// offset    size  field
/// 0         1     body version = 2
/// 1         1     mechanism id (Pkcs11Mechanism::id): 1 AES-GCM, 2 RSA-OAEP
/// 2         4     token label length T (u32 big-endian, 1..=32)
/// 6         T     token label (UTF-8)
/// 6+T       4     key label length K (u32 big-endian, 1..=255)
/// 10+T      K     key label (UTF-8)
/// 10+T+K          mechanism 1: 12-byte IV ‖ 48-byte ciphertext and tag, as in version 1
///                 mechanism 2: u32 length N (256..=512) ‖ N-byte RSA-OAEP ciphertext of
///                 key (32) ‖ SHA-256("strongroom/v1/pkcs11-rsa-oaep-binding" ‖ 0x00 ‖ aad) (32)
/// ```
///
/// - Associated data (`aad`): [`stanza_aad`]`(Pkcs11, stanza id, header, ctx)`, where the
///   header is the body up to the IV or ciphertext (version, mechanism id, labels).
/// - Stanza id: `HKDF-SHA256(ikm = u32(T) ‖ token label ‖ u32(K) ‖ key label ‖ u32(I) ‖
///   CKA_ID, info = "strongroom/v1/pkcs11-stanza-id")[0..8]`, where `CKA_ID` (I bytes) is the
///   random id given to the key at creation: a key re-created under the same label is
///   recognised as a different key.
/// - A version or mechanism id this release does not know is a `Malformed` error.
pub struct Pkcs11Keyholder {
    config: Pkcs11Config,
    location: Pkcs11Location,
    mechanism: Pkcs11Mechanism,
    module: Arc<Module>,
    slot: Slot,
    stanza_id: [u8; 8],
}

/// The token objects of one key label.
#[derive(Clone, Copy)]
enum KeyObjects {
    Aes(ObjectHandle),
    Rsa {
        private: ObjectHandle,
        public: ObjectHandle,
    },
}

impl KeyObjects {
    fn mechanism(self) -> Pkcs11Mechanism {
        match self {
            KeyObjects::Aes(_) => Pkcs11Mechanism::AesGcm,
            KeyObjects::Rsa { .. } => Pkcs11Mechanism::RsaOaep,
        }
    }

    /// The object whose `CKA_ID` names the key.
    fn id_object(self) -> ObjectHandle {
        match self {
            KeyObjects::Aes(h) => h,
            KeyObjects::Rsa { private, .. } => private,
        }
    }
}

impl Pkcs11Keyholder {
    /// Opens the key `config.key_label` in the token `config.token_label`, checking the PIN.
    /// The key's type says its mechanism: an AES key wraps with AES-GCM, an RSA key pair
    /// with RSA-OAEP.
    ///
    /// Errors: [`KeyholderError::Custody`] ([`CustodyProblem::Missing`]: no such token or
    /// key; [`CustodyProblem::Failed`]: module not loadable, PIN locked, other token
    /// failures), [`KeyholderError::WrongPin`].
    pub fn open(config: Pkcs11Config) -> Result<Self, KeyholderError> {
        let location = config.location()?;
        let module = module(&config.module_path()?)?;
        let slot = find_token(&module.ctx, &location.token_label)?;
        let (ckid, mechanism) = with_login(&module, slot, &config, |session| {
            let key = find_key(session, &location)?;
            Ok((key_id_attribute(session, key.id_object())?, key.mechanism()))
        })?;
        let stanza_id = stanza_id(&location, &ckid);
        Ok(Self {
            config,
            location,
            mechanism,
            module,
            slot,
            stanza_id,
        })
    }

    /// Generates a non-extractable key labelled `config.key_label` in the token for
    /// `config.mechanism` (an AES-256 key, or an RSA-2048 key pair whose private half is
    /// sensitive and non-extractable), then opens it. Fails with
    /// [`KeyholderError::AlreadyExists`] if a key with that label exists (a key that may wrap
    /// a vault is never replaced).
    pub fn create_key(config: Pkcs11Config) -> Result<Self, KeyholderError> {
        let location = config.location()?;
        let module = module(&config.module_path()?)?;
        let slot = find_token(&module.ctx, &location.token_label)?;
        with_login(&module, slot, &config, |session| {
            if !key_objects(session, &location.key_label)?.is_empty() {
                return Err(KeyholderError::AlreadyExists {
                    what: format!("PKCS#11 {location}"),
                });
            }
            let ckid: [u8; 16] = random::array()?;
            let label = Attribute::Label(location.key_label.as_bytes().to_vec());
            let id = Attribute::Id(ckid.to_vec());
            match config.mechanism {
                Pkcs11Mechanism::AesGcm => {
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
                        label,
                        id,
                    ];
                    session
                        .generate_key(&Mechanism::AesKeyGen, &template)
                        .map_err(|e| token_error(e, &location))?;
                }
                Pkcs11Mechanism::RsaOaep => {
                    // No CKA_SIGN/CKA_VERIFY: a TPM's RSA key is made for signing and
                    // decrypting alike, and tpm2-pkcs11 refuses a template that says otherwise.
                    let public = [
                        Attribute::Token(true),
                        Attribute::Encrypt(true),
                        Attribute::ModulusBits(2048.into()),
                        Attribute::PublicExponent(vec![1, 0, 1]),
                        label.clone(),
                        id.clone(),
                    ];
                    let private = [
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Decrypt(true),
                        label,
                        id,
                    ];
                    session
                        .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
                        .map_err(|e| token_error(e, &location))?;
                }
            }
            Ok(())
        })?;
        Self::open(config)
    }

    /// Destroys the key `config.key_label` in the token (both halves of an RSA key pair):
    /// "shreds" it, every stanza it wrapped becomes unopenable. Idempotent: `false` when
    /// there was no such key.
    pub fn delete_key(config: &Pkcs11Config) -> Result<bool, KeyholderError> {
        let location = config.location()?;
        let module = module(&config.module_path()?)?;
        let slot = find_token(&module.ctx, &location.token_label)?;
        with_login(&module, slot, config, |session| {
            let objects = key_objects(session, &location.key_label)?;
            for (handle, _, _) in &objects {
                if let Err(e) = session.destroy_object(*handle) {
                    // Some tokens (tpm2-pkcs11) keep a key pair as one object: destroying
                    // the private half took the public one with it.
                    if key_objects(session, &location.key_label)?
                        .iter()
                        .any(|(h, _, _)| h == handle)
                    {
                        return Err(token_error(e, &location));
                    }
                }
            }
            Ok(!objects.is_empty())
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

    /// The mechanism a PKCS#11 stanza was written with, read without any key; `None` for a
    /// stanza of another kind.
    pub fn mechanism_of(stanza: &Stanza) -> Result<Option<Pkcs11Mechanism>, KeyholderError> {
        if stanza.kind != KeyholderKind::Pkcs11 {
            return Ok(None);
        }
        Ok(Some(Body::parse(&stanza.body)?.mechanism))
    }

    /// The token and key this keyholder uses.
    pub fn location(&self) -> &Pkcs11Location {
        &self.location
    }

    /// The mechanism of this keyholder's key.
    pub fn mechanism(&self) -> Pkcs11Mechanism {
        self.mechanism
    }

    /// The stanza id this keyholder writes and recognises.
    pub fn stanza_id(&self) -> [u8; 8] {
        self.stanza_id
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&Session, KeyObjects) -> Result<T, KeyholderError>,
    ) -> Result<T, KeyholderError> {
        with_login(&self.module, self.slot, &self.config, |session| {
            let key = find_key(session, &self.location)?;
            if key.mechanism() != self.mechanism {
                return Err(missing(format!(
                    "{} is no longer the {} key this keyholder opened",
                    self.location, self.mechanism
                )));
            }
            f(session, key)
        })
    }

    fn wrap_aes(&self, aad: &[u8], key: &Key256) -> Result<Vec<u8>, KeyholderError> {
        let iv: [u8; IV_LEN] = random::array()?;
        let sealed = self.run(|session, handle| {
            let KeyObjects::Aes(handle) = handle else {
                unreachable!("checked by run")
            };
            let mut iv_buf = iv;
            let params = GcmParams::new(&mut iv_buf, aad, 128.into())
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
        let mut out = iv.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn wrap_rsa(&self, aad: &[u8], key: &Key256) -> Result<Vec<u8>, KeyholderError> {
        let mut plain = Zeroizing::new([0u8; RSA_PLAIN_LEN]);
        plain[..32].copy_from_slice(key.expose_secret());
        plain[32..].copy_from_slice(&binding(aad));
        let sealed = self.run(|session, handle| {
            let KeyObjects::Rsa { public, .. } = handle else {
                unreachable!("checked by run")
            };
            session
                .encrypt(&oaep(), public, plain.as_slice())
                .map_err(|e| token_error(e, &self.location))
        })?;
        if !(MIN_RSA_LEN..=MAX_RSA_LEN).contains(&sealed.len()) {
            return Err(backend(format!(
                "the token returned {} bytes of RSA-OAEP output, expected {MIN_RSA_LEN} to {MAX_RSA_LEN}",
                sealed.len()
            )));
        }
        let mut w = Writer::with_capacity(4 + sealed.len());
        w.var_bytes(&sealed);
        Ok(w.into_vec())
    }
}

/// `CKM_RSA_PKCS_OAEP` with SHA-256 and MGF1-SHA-256, no label.
fn oaep() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

/// `SHA-256("strongroom/v1/pkcs11-rsa-oaep-binding" ‖ 0x00 ‖ aad)`.
fn binding(aad: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(BINDING_LABEL);
    h.update([0]);
    h.update(aad);
    h.finalize().into()
}

/// Maps a failed `C_Decrypt` of a stanza: a tampered ciphertext is reported by tokens as
/// `CKR_ENCRYPTED_DATA_INVALID`, or (SoftHSM2, tpm2-pkcs11) `CKR_GENERAL_ERROR` or
/// `CKR_FUNCTION_FAILED`: a failed unlock, not a custody failure.
fn decrypt_error(e: CkError, location: &Pkcs11Location) -> KeyholderError {
    match e {
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange
            | RvError::GeneralError
            | RvError::FunctionFailed,
            _,
        ) => CryptoError::Decrypt.into(),
        e => token_error(e, location),
    }
}

impl fmt::Debug for Pkcs11Keyholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pkcs11Keyholder({}, {}, <PIN redacted>)",
            self.location, self.mechanism
        )
    }
}

impl Keyholder for Pkcs11Keyholder {
    fn kind(&self) -> KeyholderKind {
        KeyholderKind::Pkcs11
    }

    fn describe(&self) -> String {
        match self.mechanism {
            Pkcs11Mechanism::AesGcm => format!("pkcs11 {}", self.location),
            other => format!("pkcs11 {} ({other})", self.location),
        }
    }

    fn wrap(&self, ctx: &WrapContext<'_>, key: &Key256) -> Result<Stanza, KeyholderError> {
        let mut w = Writer::with_capacity(
            10 + self.location.token_label.len() + self.location.key_label.len() + 4 + MAX_RSA_LEN,
        );
        match self.mechanism {
            Pkcs11Mechanism::AesGcm => w.u8(BODY_V1),
            other => w.u8(BODY_V2).u8(other.id()),
        };
        w.var_bytes(self.location.token_label.as_bytes())
            .var_bytes(self.location.key_label.as_bytes());
        let aad = stanza_aad(KeyholderKind::Pkcs11, &self.stanza_id, w.as_slice(), ctx);
        let payload = match self.mechanism {
            Pkcs11Mechanism::AesGcm => self.wrap_aes(&aad, key)?,
            Pkcs11Mechanism::RsaOaep => self.wrap_rsa(&aad, key)?,
        };
        w.bytes(&payload);
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
        if body.mechanism != self.mechanism {
            // Same labels and CKA_ID but another kind of key: not this key's stanza.
            return Err(KeyholderError::Crypto(CryptoError::Decrypt));
        }
        let aad = stanza_aad(KeyholderKind::Pkcs11, &stanza.id, body.header, ctx);
        let plain = self.run(|session, handle| match handle {
            KeyObjects::Aes(handle) => {
                let mut iv = [0u8; IV_LEN];
                iv.copy_from_slice(body.iv);
                let params = GcmParams::new(&mut iv, &aad, 128.into())
                    .map_err(|e| token_error(e, &self.location))?;
                session
                    .decrypt(&Mechanism::AesGcm(params), handle, body.sealed)
                    .map(Zeroizing::new)
                    .map_err(|e| decrypt_error(e, &self.location))
            }
            KeyObjects::Rsa { private, .. } => session
                .decrypt(&oaep(), private, body.sealed)
                .map(Zeroizing::new)
                .map_err(|e| decrypt_error(e, &self.location)),
        })?;
        match self.mechanism {
            Pkcs11Mechanism::AesGcm => Ok(Some(Key256::from_slice(&plain)?)),
            Pkcs11Mechanism::RsaOaep => {
                if plain.len() != RSA_PLAIN_LEN || !bool::from(plain[32..].ct_eq(&binding(&aad))) {
                    return Err(CryptoError::Decrypt.into());
                }
                Ok(Some(Key256::from_slice(&plain[..32])?))
            }
        }
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
    mechanism: Pkcs11Mechanism,
    token_label: &'a [u8],
    key_label: &'a [u8],
    /// The AES-GCM IV (empty for RSA-OAEP).
    iv: &'a [u8],
    /// The AES-GCM ciphertext and tag, or the RSA-OAEP ciphertext.
    sealed: &'a [u8],
}

impl<'a> Body<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(BODY_FORMAT, body);
        let mechanism = match r.version(&[BODY_V1, BODY_V2])? {
            BODY_V1 => Pkcs11Mechanism::AesGcm,
            _ => Pkcs11Mechanism::from_id(r.u8("mechanism")?)
                .ok_or_else(|| r.invalid("mechanism", "unknown mechanism id"))?,
        };
        let token_label = r.var_bytes("token label", MAX_TOKEN_LABEL)?;
        let key_label = r.var_bytes("key label", MAX_KEY_LABEL)?;
        let header_len = r.position();
        let (iv, sealed) = match mechanism {
            Pkcs11Mechanism::AesGcm => (r.bytes(IV_LEN, "IV")?, r.bytes(SEALED_LEN, "ciphertext")?),
            Pkcs11Mechanism::RsaOaep => {
                let sealed = r.var_bytes("ciphertext", MAX_RSA_LEN)?;
                if sealed.len() < MIN_RSA_LEN {
                    return Err(r.invalid("ciphertext", "shorter than an RSA-2048 ciphertext"));
                }
                (&[][..], sealed)
            }
        };
        r.finish()?;
        Ok(Self {
            header: &body[..header_len],
            mechanism,
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
                    format: BODY_FORMAT,
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

/// The AES secret keys and RSA key-pair halves labelled `label`.
fn key_objects(
    session: &Session,
    label: &str,
) -> Result<Vec<(ObjectHandle, ObjectClass, KeyType)>, KeyholderError> {
    let search = |class: ObjectClass, key_type: KeyType| {
        session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::KeyType(key_type),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map(|hs| {
                hs.into_iter()
                    .map(|h| (h, class, key_type))
                    .collect::<Vec<_>>()
            })
            .map_err(|e| backend(format!("cannot search the token for key '{label}': {e}")))
    };
    let mut all = search(ObjectClass::SECRET_KEY, KeyType::AES)?;
    all.extend(search(ObjectClass::PRIVATE_KEY, KeyType::RSA)?);
    all.extend(search(ObjectClass::PUBLIC_KEY, KeyType::RSA)?);
    Ok(all)
}

fn find_key(session: &Session, location: &Pkcs11Location) -> Result<KeyObjects, KeyholderError> {
    let objects = key_objects(session, &location.key_label)?;
    let of = |class: ObjectClass| -> Vec<ObjectHandle> {
        objects
            .iter()
            .filter(|(_, c, _)| *c == class)
            .map(|(h, _, _)| *h)
            .collect()
    };
    let (aes, private, public) = (
        of(ObjectClass::SECRET_KEY),
        of(ObjectClass::PRIVATE_KEY),
        of(ObjectClass::PUBLIC_KEY),
    );
    match (aes.as_slice(), private.as_slice(), public.as_slice()) {
        ([], [], []) => Err(missing(format!(
            "no AES key or RSA key pair labelled '{}' in token '{}'",
            location.key_label, location.token_label
        ))),
        ([one], [], []) => Ok(KeyObjects::Aes(*one)),
        ([], [private], [public]) => Ok(KeyObjects::Rsa {
            private: *private,
            public: *public,
        }),
        ([], [_], []) | ([], [], [_]) => Err(backend(format!(
            "{location} is half an RSA key pair (the private and public keys must both carry the label)"
        ))),
        _ => Err(backend(format!(
            "{} keys are labelled '{}' in token '{}': labels must be unique",
            objects.len(),
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
        CkError::Pkcs11(
            rv @ (RvError::MechanismInvalid
            | RvError::MechanismParamInvalid
            | RvError::FunctionNotSupported),
            f,
        ) => backend(format!(
            "{location}: {} failed: {rv}: the token does not offer this key's mechanism (a TPM 2.0 token makes no AES key and has no AES-GCM: create the key with the RSA-OAEP mechanism)",
            fn_name(f)
        )),
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
        assert_eq!(b.mechanism, Pkcs11Mechanism::AesGcm);
        assert_eq!(
            Pkcs11Keyholder::mechanism_of(&stanza).unwrap(),
            Some(Pkcs11Mechanism::AesGcm)
        );
        let other = Stanza {
            kind: KeyholderKind::RawKek,
            ..stanza
        };
        assert_eq!(Pkcs11Keyholder::locate(&other).unwrap(), None);
    }

    /// The version-2 layout, byte for byte: an RSA-OAEP body (mechanism 2) and an AES-GCM
    /// body written in version 2 (mechanism 1, read like version 1).
    #[test]
    fn body_v2_layout() {
        let mut w = Writer::new();
        w.u8(2)
            .u8(2)
            .var_bytes(b"tpm")
            .var_bytes(b"kek")
            .var_bytes(&[5; 256]);
        let bytes = w.into_vec();
        assert_eq!(&bytes[..6], &[2, 2, 0, 0, 0, 3]);
        assert_eq!(bytes.len(), 1 + 1 + 7 + 7 + 4 + 256);
        let b = Body::parse(&bytes).unwrap();
        assert_eq!(b.mechanism, Pkcs11Mechanism::RsaOaep);
        assert_eq!(b.header, &bytes[..16]);
        assert!(b.iv.is_empty());
        assert_eq!(b.sealed, &[5; 256][..]);
        // Too short for RSA-2048, too long for RSA-4096, an unknown mechanism, trailing bytes.
        for bad in [
            {
                let mut w = Writer::new();
                w.u8(2)
                    .u8(2)
                    .var_bytes(b"t")
                    .var_bytes(b"k")
                    .var_bytes(&[0; 255]);
                w.into_vec()
            },
            {
                let mut w = Writer::new();
                w.u8(2)
                    .u8(2)
                    .var_bytes(b"t")
                    .var_bytes(b"k")
                    .var_bytes(&[0; 513]);
                w.into_vec()
            },
            {
                let mut v = bytes.clone();
                v[1] = 3;
                v
            },
            {
                let mut v = bytes.clone();
                v.push(0);
                v
            },
        ] {
            assert!(Body::parse(&bad).is_err());
        }
        let mut w = Writer::new();
        w.u8(2)
            .u8(1)
            .var_bytes(b"t")
            .var_bytes(b"k")
            .bytes(&[7; 12])
            .bytes(&[9; 48]);
        let aes = w.into_vec();
        let b = Body::parse(&aes).unwrap();
        assert_eq!(
            (b.mechanism, b.header.len(), b.iv, b.sealed.len()),
            (Pkcs11Mechanism::AesGcm, 12, &[7; 12][..], 48)
        );
        assert_eq!(Pkcs11Mechanism::from_id(2), Some(Pkcs11Mechanism::RsaOaep));
        assert_eq!(Pkcs11Mechanism::from_id(0), None);
        assert_eq!(Pkcs11Mechanism::RsaOaep.to_string(), "rsa-oaep");
    }

    /// The binding of RSA-OAEP stanzas: SHA-256 of the label, a zero byte and the aad.
    #[test]
    fn rsa_binding_vector() {
        let mut h = Sha256::new();
        h.update(b"strongroom/v1/pkcs11-rsa-oaep-binding\0aad");
        let expected: [u8; 32] = h.finalize().into();
        assert_eq!(binding(b"aad"), expected);
        assert_ne!(binding(b"aad"), binding(b"aae"));
    }

    proptest! {
        #[test]
        fn body_round_trip(
            rsa in any::<bool>(),
            token in "[a-z0-9-]{1,32}",
            key in "[a-z0-9.-]{1,64}",
            payload in proptest::collection::vec(any::<u8>(), 256..=512),
        ) {
            let mut w = Writer::new();
            if rsa {
                w.u8(2).u8(2);
            } else {
                w.u8(1);
            }
            w.var_bytes(token.as_bytes()).var_bytes(key.as_bytes());
            let header_len = w.len();
            if rsa {
                w.var_bytes(&payload);
            } else {
                w.bytes(&payload[..60]);
            }
            let bytes = w.into_vec();
            let b = Body::parse(&bytes).unwrap();
            prop_assert_eq!(b.header.len(), header_len);
            prop_assert_eq!(b.location().unwrap(), Pkcs11Location::new(&token, &key).unwrap());
            if rsa {
                prop_assert_eq!(b.sealed, &payload[..]);
            } else {
                prop_assert_eq!((b.iv, b.sealed), (&payload[..12], &payload[12..60]));
            }
        }

        #[test]
        fn body_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(b) = Body::parse(&bytes) {
                let _ = b.location();
            }
        }
    }
}
