//! Member identities: the secret [`Identity`], its [`PublicIdentity`], the [`Fingerprint`]
//! users compare out of band, and the [`SealedIdentity`] kept in the store.
//!
//! Specified in `docs/spec/identity.md`.

use core::fmt;
use core::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use hpke::{Deserializable as _, Kem as _, Serializable as _};
use sha2::{Digest as _, Sha256};
use strongroom_crypto::aead::{Aead as _, TAG_LEN, WrapKey};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256, MemberId, VaultId, random};
use zeroize::{Zeroize as _, Zeroizing};

use crate::SharingError;

/// The classical KEM: DHKEM(X25519, HKDF-SHA256), RFC 9180 KEM 0x0020.
pub(crate) type ClassicalKem = hpke::kem::X25519HkdfSha256;
/// The hybrid KEM: X-Wing (ML-KEM-768 + X25519), KEM 0x647a.
pub(crate) type HybridKem = hpke::kem::XWing;

/// Length of an X-Wing encapsulation (public) key: ML-KEM-768's 1184 bytes ‖ X25519's 32.
pub const XWING_PUBLIC_KEY_LEN: usize = 1216;

/// The key-encapsulation mechanism of a member's identity, and so of every grant to them.
///
/// | kind | identity version | public key | grant version |
/// |---|---|---|---|
/// | [`KemKind::X25519`] (classical) | 1 | X25519, 32 bytes | 1 |
/// | [`KemKind::XWing`] (hybrid, the default) | 2 | X-Wing, 1216 bytes | 2 |
///
/// A hybrid grant stays confidential unless both ML-KEM-768 and X25519 are broken, so a
/// copy of the database kept until a quantum computer exists does not reveal vault keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KemKind {
    /// DHKEM(X25519, HKDF-SHA256): classical only, the first release's identities.
    X25519,
    /// X-Wing: ML-KEM-768 and X25519 combined (post-quantum hybrid).
    XWing,
}

impl KemKind {
    /// Whether the KEM resists a quantum adversary (X-Wing).
    pub const fn is_hybrid(self) -> bool {
        matches!(self, KemKind::XWing)
    }

    /// A stable lowercase name (`"x25519"`, `"x-wing"`).
    pub const fn name(self) -> &'static str {
        match self {
            KemKind::X25519 => "x25519",
            KemKind::XWing => "x-wing",
        }
    }

    /// The format version of identities and grants of this kind.
    pub(crate) const fn version(self) -> u8 {
        match self {
            KemKind::X25519 => 1,
            KemKind::XWing => 2,
        }
    }
}

impl fmt::Display for KemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A member's public KEM key, as logged.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum PublicKem {
    X25519([u8; 32]),
    XWing(Box<[u8; XWING_PUBLIC_KEY_LEN]>),
}

impl PublicKem {
    pub(crate) fn kind(&self) -> KemKind {
        match self {
            PublicKem::X25519(_) => KemKind::X25519,
            PublicKem::XWing(_) => KemKind::XWing,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            PublicKem::X25519(k) => k,
            PublicKem::XWing(k) => &k[..],
        }
    }
}

/// A parsed HPKE public key of either kind.
pub(crate) enum HpkePublic {
    X25519(<ClassicalKem as hpke::Kem>::PublicKey),
    XWing(Box<<HybridKem as hpke::Kem>::PublicKey>),
}

/// A parsed HPKE private key of either kind.
pub(crate) enum HpkePrivate {
    X25519(<ClassicalKem as hpke::Kem>::PrivateKey),
    XWing(Box<<HybridKem as hpke::Kem>::PrivateKey>),
}

/// Longest display name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 128;

const BINDING_DOMAIN: &[u8] = b"strongroom/v1/identity-binding\0";
const FINGERPRINT_DOMAIN: &[u8] = b"strongroom/v1/identity-fingerprint\0";
const SEALED_AAD_DOMAIN: &[u8] = b"strongroom/v1/sealed-identity\0";

/// Checks a display name: 1 to [`MAX_NAME_LEN`] bytes, no control characters (a name is
/// shown to people deciding whom to trust, so it must not break lines or hide text).
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("the name is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("the name is longer than 128 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("the name contains control characters");
    }
    Ok(())
}

fn read_name(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let raw = r.var_bytes("name", MAX_NAME_LEN)?;
    let name = core::str::from_utf8(raw).map_err(|_| r.invalid("name", "not UTF-8"))?;
    check_name(name).map_err(|reason| r.invalid("name", reason))?;
    Ok(name.to_owned())
}

/// A member's secret identity: member id, display name, a KEM key that vault keys are
/// HPKE-encrypted to (X-Wing by default, X25519 for identities of the first release), and an
/// Ed25519 key that signs membership-log entries.
///
/// Zeroized on drop; `Debug` shows the member id and name only.
///
/// ```
/// use strongroom_sharing::{Identity, KemKind};
/// let alice = Identity::generate("alice")?;
/// let public = alice.public();
/// public.verify()?;
/// assert_eq!(public.name(), "alice");
/// assert_eq!(public.kem(), KemKind::XWing); // hybrid post-quantum by default
/// assert!(!format!("{alice:?}").contains("secret"));
/// # Ok::<(), strongroom_sharing::SharingError>(())
/// ```
pub struct Identity {
    public: PublicIdentity,
    kem: KemKind,
    /// The X25519 private key, or the 32-byte X-Wing seed.
    encryption: Key256,
    signing: SigningKey,
}

impl Identity {
    /// A fresh hybrid (X-Wing) identity with a random member id.
    pub fn generate(name: &str) -> Result<Self, SharingError> {
        Self::generate_with_id(MemberId::generate()?, name)
    }

    /// A fresh hybrid (X-Wing) identity for a given member id (ids are never reused within a
    /// vault, so this is for applications that allocate ids themselves).
    pub fn generate_with_id(member: MemberId, name: &str) -> Result<Self, SharingError> {
        Self::generate_kind(member, name, KemKind::XWing)
    }

    /// A fresh identity of the given KEM kind. [`KemKind::X25519`] makes the classical
    /// identities of the first release (for tests and for vaults read by older releases);
    /// grants to them are not protected against a quantum adversary.
    pub fn generate_kind(member: MemberId, name: &str, kem: KemKind) -> Result<Self, SharingError> {
        check_name(name).map_err(|reason| SharingError::InvalidName { reason })?;
        let encryption = generate_kem_secret(kem)?;
        let mut seed: [u8; 32] = random::array()?;
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Self::assemble(member, name.to_owned(), kem, encryption, signing)
    }

    /// The same member (id, name, Ed25519 signing key) with a fresh hybrid X-Wing key:
    /// what [`Session::upgrade_identity`](crate::Session::upgrade_identity) logs. Fails for an
    /// identity that is hybrid already.
    pub fn upgraded_to_hybrid(&self) -> Result<Self, SharingError> {
        if self.kem.is_hybrid() {
            return Err(SharingError::InvalidChange {
                reason: "the identity is hybrid (X-Wing) already",
            });
        }
        let encryption = generate_kem_secret(KemKind::XWing)?;
        Self::assemble(
            self.public.member,
            self.public.name.clone(),
            KemKind::XWing,
            encryption,
            self.signing.clone(),
        )
    }

    fn assemble(
        member: MemberId,
        name: String,
        kem: KemKind,
        encryption: Key256,
        signing: SigningKey,
    ) -> Result<Self, SharingError> {
        let key = match hpke_private(kem, &encryption)? {
            HpkePrivate::X25519(sk) => {
                PublicKem::X25519(ClassicalKem::sk_to_pk(&sk).to_bytes().into())
            }
            HpkePrivate::XWing(sk) => {
                let pk = HybridKem::sk_to_pk(&sk).to_bytes();
                let mut out = Box::new([0u8; XWING_PUBLIC_KEY_LEN]);
                out.copy_from_slice(&pk);
                PublicKem::XWing(out)
            }
        };
        let sig_pk = signing.verifying_key().to_bytes();
        let mut public = PublicIdentity {
            member,
            name,
            encryption_key: key,
            signing_key: sig_pk,
            signature: [0; 64],
        };
        public.signature = signing.sign(&public.binding_message()).to_bytes();
        Ok(Self {
            public,
            kem,
            encryption,
            signing,
        })
    }

    /// An identity from given keys (known-answer tests).
    #[cfg(test)]
    pub(crate) fn assemble_for_tests(
        member: MemberId,
        name: &str,
        kem: KemKind,
        encryption: Key256,
        signing: SigningKey,
    ) -> Self {
        Self::assemble(member, name.to_owned(), kem, encryption, signing).unwrap()
    }

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.public.member
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.public.name
    }

    /// The KEM of this identity (and of grants to it).
    pub fn kem(&self) -> KemKind {
        self.kem
    }

    /// An explicit copy of the secret identity.
    #[must_use]
    pub fn clone_secret(&self) -> Self {
        Self {
            public: self.public.clone(),
            kem: self.kem,
            encryption: self.encryption.clone_secret(),
            signing: self.signing.clone(),
        }
    }

    /// The public half, to hand to the vault's owner or admin.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    pub(crate) fn hpke_private(&self) -> Result<HpkePrivate, SharingError> {
        hpke_private(self.kem, &self.encryption)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Signs a record version: an Ed25519 signature over
    /// [`RECORD_SIGNATURE_DOMAIN`](crate::RECORD_SIGNATURE_DOMAIN) ‖ `digest`, which
    /// [`verify_record_signature`](crate::verify_record_signature) checks. The domain keeps
    /// it apart from every membership log signature.
    pub fn sign_record(&self, digest: &[u8; 32]) -> [u8; 64] {
        self.sign(&crate::writer::record_message(digest))
    }

    /// Seals the secret half under `member_key`, bound to `vault` and this member.
    pub fn seal(
        &self,
        vault: VaultId,
        member_key: &Key256,
    ) -> Result<SealedIdentity, SharingError> {
        self.seal_with_nonce(vault, member_key, random::array()?)
    }

    /// [`Identity::seal`] with a given nonce (fresh and random in production; fixed by the
    /// known-answer vectors).
    pub(crate) fn seal_with_nonce(
        &self,
        vault: VaultId,
        member_key: &Key256,
        nonce: [u8; 24],
    ) -> Result<SealedIdentity, SharingError> {
        let version = self.kem.version();
        let mut plain = Writer::with_capacity(96 + self.public.name.len());
        plain
            .u8(version)
            .bytes(self.public.member.as_bytes())
            .bytes(self.encryption.expose_secret())
            .bytes(self.signing.as_bytes())
            .var_bytes(self.public.name.as_bytes());
        let mut buf = Zeroizing::new(plain.into_vec());
        let header = SealedIdentity {
            version,
            vault,
            member: self.public.member,
            nonce,
            ciphertext: Vec::new(),
        };
        let tag = WrapKey::new(member_key).seal_detached(&nonce, &header.aad(), &mut buf)?;
        // `buf` now holds ciphertext only.
        let mut ciphertext = core::mem::take(&mut *buf);
        ciphertext.extend_from_slice(&tag);
        Ok(SealedIdentity {
            ciphertext,
            ..header
        })
    }

    /// Opens a [`SealedIdentity`] with the member key. Fails with
    /// [`CryptoError::Decrypt`](strongroom_crypto::CryptoError::Decrypt) when the key is
    /// wrong or the blob was modified or moved to another vault or member.
    pub fn open(sealed: &SealedIdentity, member_key: &Key256) -> Result<Self, SharingError> {
        let ct_len = sealed
            .ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(strongroom_crypto::CryptoError::Decrypt)?;
        let mut plain = Zeroizing::new(sealed.ciphertext[..ct_len].to_vec());
        WrapKey::new(member_key).open_detached(
            &sealed.nonce,
            &sealed.aad(),
            &mut plain,
            &sealed.ciphertext[ct_len..],
        )?;
        let mut r = Reader::new("sealed identity plaintext", &plain);
        r.version(&[sealed.version])?;
        let kem = kem_of_version(sealed.version);
        let member = MemberId::from_bytes(r.array("member id")?);
        if member != sealed.member {
            return Err(r
                .invalid("member id", "differs from the sealed header")
                .into());
        }
        let encryption = Key256::from_slice(r.bytes(32, "encryption key")?)?;
        let mut seed: [u8; 32] = r.array("signing key")?;
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        let name = read_name(&mut r)?;
        r.finish()?;
        Self::assemble(member, name, kem, encryption, signing)
    }
}

fn kem_of_version(version: u8) -> KemKind {
    if version == KemKind::XWing.version() {
        KemKind::XWing
    } else {
        KemKind::X25519
    }
}

/// A fresh KEM secret: an X25519 private key (derived as RFC 9180's DeriveKeyPair does) or
/// a random 32-byte X-Wing seed (the X-Wing private key, as age's `AGE-SECRET-KEY-PQ-1`).
fn generate_kem_secret(kem: KemKind) -> Result<Key256, SharingError> {
    let mut ikm: [u8; 32] = random::array()?;
    let key = match kem {
        KemKind::X25519 => {
            let (sk, _) = ClassicalKem::derive_keypair(&ikm);
            let mut sk_bytes: [u8; 32] = sk.to_bytes().into();
            Key256::from_array(&mut sk_bytes)
        }
        KemKind::XWing => Key256::from_array(&mut ikm),
    };
    ikm.zeroize();
    Ok(key)
}

fn hpke_private(kem: KemKind, key: &Key256) -> Result<HpkePrivate, SharingError> {
    let bytes = key.expose_secret();
    Ok(match kem {
        KemKind::X25519 => HpkePrivate::X25519(
            <ClassicalKem as hpke::Kem>::PrivateKey::from_bytes(bytes)
                .map_err(|_| strongroom_crypto::CryptoError::Decrypt)?,
        ),
        KemKind::XWing => HpkePrivate::XWing(Box::new(
            <HybridKem as hpke::Kem>::PrivateKey::from_bytes(bytes)
                .map_err(|_| strongroom_crypto::CryptoError::Decrypt)?,
        )),
    })
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity({}, {:?}, {}, <redacted>)",
            self.public.member, self.public.name, self.kem
        )
    }
}

/// The public half of a member's [`Identity`], exchanged out of band and recorded in the
/// membership log.
///
/// The Ed25519 key signs (`signature`) the encryption key, member id and name, so none of
/// them can be swapped without the signature failing. Compare [`PublicIdentity::fingerprint`]
/// with its owner over another channel before adding it to a vault.
///
/// Byte layout, version 2 (hybrid, what new identities use):
///
/// ```text
/// offset  size  field
/// 0       1     version = 2
/// 1       16    member id
/// 17      1216  X-Wing encapsulation key (ML-KEM-768 1184 ‖ X25519 32; draft-connolly-cfrg-xwing-kem,
///               HPKE KEM 0x647a of draft-ietf-hpke-pq-03)
/// 1233    32    Ed25519 public key (RFC 8032)
/// 1265    4     name length n (big-endian u32, 1 <= n <= 128)
/// 1269    n     name, UTF-8, no control characters
/// 1269+n  64    Ed25519 signature over
///               "strongroom/v1/identity-binding" ‖ 0x00 ‖ bytes[0 .. 1269+n]
/// ```
///
/// Version 1 (classical, still read and accepted everywhere):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       16    member id
/// 17      32    X25519 public key (HPKE, RFC 9180 DHKEM(X25519, HKDF-SHA256))
/// 49      32    Ed25519 public key (RFC 8032)
/// 81      4     name length n (big-endian u32, 1 <= n <= 128)
/// 85      n     name, UTF-8, no control characters
/// 85+n    64    Ed25519 signature over
///               "strongroom/v1/identity-binding" ‖ 0x00 ‖ bytes[0 .. 85+n]
/// ```
///
/// The version byte is inside the signed bytes, so a hybrid identity cannot be passed off
/// as a classical one. [`PublicIdentity::verify`] also checks that an X-Wing key parses
/// (ML-KEM-768's modulus check).
///
/// Text form: `strongroom-identity1:` followed by the unpadded URL-safe base64 of those
/// bytes, whatever the version (whitespace is ignored when parsing, so it survives line
/// wrapping).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicIdentity {
    member: MemberId,
    name: String,
    encryption_key: PublicKem,
    signing_key: [u8; 32],
    signature: [u8; 64],
}

impl PublicIdentity {
    /// The version byte of classical identities (X25519).
    pub const VERSION: u8 = 1;
    /// The version byte of hybrid identities (X-Wing).
    pub const VERSION_HYBRID: u8 = 2;
    /// The prefix of the text form.
    pub const TEXT_PREFIX: &'static str = "strongroom-identity1:";
    /// The largest encoding (a hybrid identity with a 128-byte name).
    pub const MAX_LEN: usize = 1269 + MAX_NAME_LEN + 64;
    const FORMAT: &'static str = "public identity";

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.member
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The KEM vault keys are encrypted to this identity with.
    pub fn kem(&self) -> KemKind {
        self.encryption_key.kind()
    }

    /// The KEM public key vault keys are encrypted to: 32 bytes of X25519, or 1216 bytes of
    /// X-Wing.
    pub fn encryption_key(&self) -> &[u8] {
        self.encryption_key.bytes()
    }

    pub(crate) fn public_kem(&self) -> &PublicKem {
        &self.encryption_key
    }

    /// The Ed25519 public key that signs this member's log entries.
    pub fn signing_key(&self) -> &[u8; 32] {
        &self.signing_key
    }

    fn unsigned_encoding(&self) -> Writer {
        let mut w =
            Writer::with_capacity(150 + self.encryption_key.bytes().len() + self.name.len());
        w.u8(self.kem().version())
            .bytes(self.member.as_bytes())
            .bytes(self.encryption_key.bytes())
            .bytes(&self.signing_key)
            .var_bytes(self.name.as_bytes());
        w
    }

    fn binding_message(&self) -> Vec<u8> {
        let body = self.unsigned_encoding().into_vec();
        let mut m = Vec::with_capacity(BINDING_DOMAIN.len() + body.len());
        m.extend_from_slice(BINDING_DOMAIN);
        m.extend_from_slice(&body);
        m
    }

    /// Checks the binding signature (and that the signing key is a valid Ed25519 point and
    /// an X-Wing key a valid encapsulation key).
    pub fn verify(&self) -> Result<(), SharingError> {
        let key = self
            .verifying_key()
            .ok_or(SharingError::BadIdentitySignature)?;
        key.verify_strict(
            &self.binding_message(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| SharingError::BadIdentitySignature)?;
        self.hpke_public()
            .map(|_| ())
            .ok_or(SharingError::BadIdentitySignature)
    }

    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.signing_key).ok()
    }

    /// The parsed HPKE public key; `None` for an X-Wing key that is not a valid ML-KEM-768
    /// encapsulation key.
    pub(crate) fn hpke_public(&self) -> Option<HpkePublic> {
        match &self.encryption_key {
            PublicKem::X25519(k) => <ClassicalKem as hpke::Kem>::PublicKey::from_bytes(k)
                .ok()
                .map(HpkePublic::X25519),
            PublicKem::XWing(k) => <HybridKem as hpke::Kem>::PublicKey::from_bytes(&k[..])
                .ok()
                .map(|pk| HpkePublic::XWing(Box::new(pk))),
        }
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = self.unsigned_encoding();
        w.bytes(&self.signature);
        w.into_vec()
    }

    /// Parses the binary encoding (structure only: call [`PublicIdentity::verify`], or use
    /// [`PublicIdentity::from_text`], which does).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        let id = Self::read(&mut r)?;
        r.finish()?;
        Ok(id)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.version(&[Self::VERSION, Self::VERSION_HYBRID])?;
        let member = MemberId::from_bytes(r.array("member id")?);
        let encryption_key = if version == Self::VERSION_HYBRID {
            let mut k = Box::new([0u8; XWING_PUBLIC_KEY_LEN]);
            k.copy_from_slice(r.bytes(XWING_PUBLIC_KEY_LEN, "X-Wing encryption key")?);
            PublicKem::XWing(k)
        } else {
            PublicKem::X25519(r.array("encryption key")?)
        };
        let signing_key = r.array("signing key")?;
        let name = read_name(r)?;
        let signature = r.array("signature")?;
        Ok(Self {
            member,
            name,
            encryption_key,
            signing_key,
            signature,
        })
    }

    /// The copy-pasteable text form (`strongroom-identity1:…`).
    pub fn to_text(&self) -> String {
        format!(
            "{}{}",
            Self::TEXT_PREFIX,
            URL_SAFE_NO_PAD.encode(self.encode())
        )
    }

    /// Parses the text form, ignoring whitespace, and verifies the binding signature.
    pub fn from_text(text: &str) -> Result<Self, SharingError> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body =
            compact
                .strip_prefix(Self::TEXT_PREFIX)
                .ok_or(SharingError::InvalidIdentityText {
                    reason: "it does not start with strongroom-identity1:",
                })?;
        let bytes =
            URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| SharingError::InvalidIdentityText {
                    reason: "it is not valid base64: was it copied completely?",
                })?;
        let id = Self::decode(&bytes)?;
        id.verify()?;
        Ok(id)
    }

    /// The fingerprint to compare with the identity's owner over another channel.
    pub fn fingerprint(&self) -> Fingerprint {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_DOMAIN)
            .chain_update(self.encode())
            .finalize();
        let mut groups = [0u32; Fingerprint::GROUPS];
        for (i, g) in groups.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b[3..].copy_from_slice(&digest[i * 5..i * 5 + 5]);
            *g = (u64::from_be_bytes(b) % 100_000) as u32;
        }
        Fingerprint { groups }
    }

    /// Confirms the fingerprint the user read from the identity's owner (spaces and dashes
    /// ignored): the only way, besides the explicitly named
    /// [`FingerprintConfirmed::skip_verification_i_accept_the_risk`], to get the token
    /// [`Session::add_member`](crate::Session::add_member) and
    /// [`Session::regrant`](crate::Session::regrant) require.
    pub fn confirm_fingerprint(
        &self,
        typed_by_user: &str,
    ) -> Result<FingerprintConfirmed, SharingError> {
        let typed: String = typed_by_user
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        let expected = self.fingerprint();
        if typed == expected.digits() {
            Ok(FingerprintConfirmed {
                fingerprint: expected,
            })
        } else {
            Err(SharingError::FingerprintMismatch)
        }
    }
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicIdentity({}, {:?}, fingerprint {})",
            self.member,
            self.name,
            self.fingerprint()
        )
    }
}

/// A public identity's fingerprint: six groups of five decimal digits (about 99 bits of
/// SHA-256 over `"strongroom/v1/identity-fingerprint" ‖ 0x00 ‖` the encoded identity), easy
/// to read aloud and compare.
///
/// Group `i` is the big-endian integer of digest bytes `5i .. 5i+5`, modulo 100000.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    groups: [u32; Fingerprint::GROUPS],
}

impl Fingerprint {
    /// Number of five-digit groups.
    pub const GROUPS: usize = 6;

    /// The 30 digits without spaces.
    pub fn digits(&self) -> String {
        let mut out = String::with_capacity(5 * Self::GROUPS);
        for g in self.groups {
            let _ = write!(out, "{g:05}");
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{g:05}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Proof that a person compared an identity's fingerprint (or explicitly chose not to).
///
/// Made only by [`PublicIdentity::confirm_fingerprint`] or
/// [`FingerprintConfirmed::skip_verification_i_accept_the_risk`]; it names the identity it
/// was made for, so it cannot be used for another one.
#[derive(Clone, Debug)]
pub struct FingerprintConfirmed {
    fingerprint: Fingerprint,
}

impl FingerprintConfirmed {
    /// Skips the fingerprint comparison. Whoever delivered `public` (a chat message, the
    /// storage itself) could have substituted their own key and would then read the vault:
    /// use only when `public` came over a channel that is already authenticated.
    pub fn skip_verification_i_accept_the_risk(public: &PublicIdentity) -> Self {
        Self {
            fingerprint: public.fingerprint(),
        }
    }

    /// The fingerprint that was confirmed.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub(crate) fn check(self, public: &PublicIdentity) -> Result<(), SharingError> {
        if self.fingerprint == public.fingerprint() {
            Ok(())
        } else {
            Err(SharingError::ConfirmationForOtherIdentity)
        }
    }
}

/// A member's secret identity sealed under their random member key (XChaCha20-Poly1305),
/// stored in the vault so the member unlocks with a keyholder alone.
///
/// Byte layout (version 1 for a classical identity, 2 for a hybrid one; the same layout):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1 (X25519) or 2 (X-Wing)
/// 1       16    vault id
/// 17      16    member id
/// 33      24    nonce (random)
/// 57      4     length n of ciphertext ‖ tag (big-endian u32, 16 < n <= 1024)
/// 61      n     XChaCha20-Poly1305 ciphertext ‖ 16-byte tag
/// ```
///
/// Associated data: `"strongroom/v1/sealed-identity" ‖ 0x00 ‖ bytes[0..33]` (so the version
/// is authenticated). The plaintext is `version (1) ‖ member id (16) ‖ KEM secret (32: the
/// X25519 private key, or the X-Wing seed) ‖ Ed25519 seed (32) ‖ u32 name length ‖ name`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedIdentity {
    version: u8,
    vault: VaultId,
    member: MemberId,
    nonce: [u8; 24],
    ciphertext: Vec<u8>,
}

impl SealedIdentity {
    /// The version byte of a sealed classical identity.
    pub const VERSION: u8 = 1;
    /// The version byte of a sealed hybrid identity.
    pub const VERSION_HYBRID: u8 = 2;
    const MAX_CIPHERTEXT: usize = 1024;
    const FORMAT: &'static str = "sealed identity";

    /// The vault it is bound to.
    pub fn vault_id(&self) -> VaultId {
        self.vault
    }

    /// The member it belongs to.
    pub fn member_id(&self) -> MemberId {
        self.member
    }

    /// The KEM of the identity sealed inside.
    pub fn kem(&self) -> KemKind {
        kem_of_version(self.version)
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(SEALED_AAD_DOMAIN.len() + 33);
        aad.extend_from_slice(SEALED_AAD_DOMAIN);
        aad.push(self.version);
        aad.extend_from_slice(self.vault.as_bytes());
        aad.extend_from_slice(self.member.as_bytes());
        aad
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(61 + self.ciphertext.len());
        w.u8(self.version)
            .bytes(self.vault.as_bytes())
            .bytes(self.member.as_bytes())
            .bytes(&self.nonce)
            .var_bytes(&self.ciphertext);
        w.into_vec()
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        let version = r.version(&[Self::VERSION, Self::VERSION_HYBRID])?;
        let vault = VaultId::from_bytes(r.array("vault id")?);
        let member = MemberId::from_bytes(r.array("member id")?);
        let nonce = r.array("nonce")?;
        let ciphertext = r.var_bytes("ciphertext", Self::MAX_CIPHERTEXT)?;
        if ciphertext.len() <= TAG_LEN {
            return Err(r.invalid("ciphertext", "shorter than a tag"));
        }
        let ciphertext = ciphertext.to_vec();
        r.finish()?;
        Ok(Self {
            version,
            vault,
            member,
            nonce,
            ciphertext,
        })
    }
}

impl fmt::Debug for SealedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealedIdentity(vault {}, member {}, {} bytes)",
            self.vault,
            self.member,
            self.ciphertext.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classical(name: &str) -> Identity {
        Identity::generate_kind(MemberId::generate().unwrap(), name, KemKind::X25519).unwrap()
    }

    #[test]
    fn hybrid_identity_round_trips_binds_its_kem_and_upgrades() {
        let id = Identity::generate("alice").unwrap();
        assert_eq!(id.kem(), KemKind::XWing);
        let public = id.public().clone();
        public.verify().unwrap();
        let bytes = public.encode();
        assert_eq!(bytes[0], PublicIdentity::VERSION_HYBRID);
        assert_eq!(bytes.len(), 1269 + 5 + 64);
        assert_eq!(PublicIdentity::decode(&bytes).unwrap(), public);
        assert_eq!(
            PublicIdentity::from_text(&public.to_text()).unwrap(),
            public
        );
        // The version byte, the X-Wing key and the name are all signed.
        for offset in [0usize, 1, 17, 1200, 1232, 1233, 1269] {
            let mut bad = bytes.clone();
            bad[offset] ^= 1;
            if let Ok(p) = PublicIdentity::decode(&bad) {
                assert!(p.verify().is_err(), "offset {offset}");
            }
        }
        // An ML-KEM key with a coefficient above the modulus fails verification even when
        // signed (0xff bytes encode 12-bit values of 4095 > 3328).
        let mut invalid = public.clone();
        if let PublicKem::XWing(k) = &mut invalid.encryption_key {
            k[..3].copy_from_slice(&[0xff; 3]);
        }
        let signer = SigningKey::from_bytes(id.signing.as_bytes());
        invalid.signature = signer.sign(&invalid.binding_message()).to_bytes();
        assert!(invalid.hpke_public().is_none());
        assert!(matches!(
            invalid.verify(),
            Err(SharingError::BadIdentitySignature)
        ));

        // Sealed and opened, the hybrid identity comes back with the same keys.
        let vault = VaultId::generate().unwrap();
        let key = Key256::generate().unwrap();
        let sealed = id.seal(vault, &key).unwrap();
        assert_eq!(sealed.kem(), KemKind::XWing);
        assert_eq!(sealed.encode()[0], SealedIdentity::VERSION_HYBRID);
        let opened =
            Identity::open(&SealedIdentity::decode(&sealed.encode()).unwrap(), &key).unwrap();
        assert_eq!(opened.public(), id.public());
        // A sealed identity relabelled as classical no longer opens (the version is in the AAD).
        let mut relabelled = sealed.encode();
        relabelled[0] = SealedIdentity::VERSION;
        assert!(Identity::open(&SealedIdentity::decode(&relabelled).unwrap(), &key).is_err());

        // Upgrading keeps the member id, name and signing key, and replaces the KEM key.
        let old = classical("bob");
        let up = old.upgraded_to_hybrid().unwrap();
        assert_eq!(up.kem(), KemKind::XWing);
        assert_eq!(up.member_id(), old.member_id());
        assert_eq!(up.name(), old.name());
        assert_eq!(up.public().signing_key(), old.public().signing_key());
        assert_ne!(up.public().encryption_key(), old.public().encryption_key());
        up.public().verify().unwrap();
        assert!(up.upgraded_to_hybrid().is_err());
    }

    #[test]
    fn public_identity_round_trips_and_binds_fields() {
        let id = classical("alice");
        let public = id.public().clone();
        public.verify().unwrap();
        let bytes = public.encode();
        assert_eq!(bytes.len(), 85 + 5 + 64);
        assert_eq!(PublicIdentity::decode(&bytes).unwrap(), public);
        let text = public.to_text();
        assert!(text.starts_with("strongroom-identity1:"));
        let wrapped: String = text
            .chars()
            .enumerate()
            .flat_map(|(i, c)| if i % 40 == 39 { vec![c, '\n'] } else { vec![c] })
            .collect();
        assert_eq!(PublicIdentity::from_text(&wrapped).unwrap(), public);

        // Every field is covered by the binding signature.
        for offset in [1usize, 17, 49, 85] {
            let mut bad = bytes.clone();
            bad[offset] ^= 1;
            if let Ok(p) = PublicIdentity::decode(&bad) {
                assert!(p.verify().is_err(), "offset {offset}");
            }
        }
        let mut other = public.clone();
        other.encryption_key = classical("eve").public().encryption_key.clone();
        assert!(matches!(
            other.verify(),
            Err(SharingError::BadIdentitySignature)
        ));
        let mut text_bad = text.clone();
        text_bad.truncate(text.len() - 3);
        assert!(PublicIdentity::from_text(&text_bad).is_err());
        assert!(PublicIdentity::from_text("age1qqq").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(Identity::generate("").is_err());
        assert!(Identity::generate("  ").is_err());
        assert!(Identity::generate("a\nb").is_err());
        assert!(Identity::generate(&"x".repeat(129)).is_err());
        assert!(Identity::generate(&"x".repeat(128)).is_ok());
    }

    #[test]
    fn fingerprint_groups_and_confirmation() {
        let id = Identity::generate("bob").unwrap();
        let fp = id.public().fingerprint();
        let shown = fp.to_string();
        assert_eq!(shown.len(), 35);
        assert_eq!(shown.split(' ').count(), 6);
        assert!(
            shown
                .split(' ')
                .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit()))
        );
        let ok = id.public().confirm_fingerprint(&shown).unwrap();
        assert_eq!(ok.fingerprint(), fp);
        let again = id.public().confirm_fingerprint(&shown).unwrap();
        again.check(id.public()).unwrap();
        assert!(
            id.public()
                .confirm_fingerprint(&fp.digits().replace(' ', ""))
                .is_ok()
        );
        let mut wrong = fp.digits().into_bytes();
        wrong[7] = if wrong[7] == b'0' { b'1' } else { b'0' };
        assert!(matches!(
            id.public()
                .confirm_fingerprint(core::str::from_utf8(&wrong).unwrap()),
            Err(SharingError::FingerprintMismatch)
        ));
        let other = Identity::generate("bob").unwrap();
        assert_ne!(other.public().fingerprint(), fp);
        assert!(matches!(
            ok.check(other.public()),
            Err(SharingError::ConfirmationForOtherIdentity)
        ));
    }

    #[test]
    fn sealed_identity_opens_only_with_its_key_and_binding() {
        let id = Identity::generate("carol").unwrap();
        let vault = VaultId::generate().unwrap();
        let key = Key256::generate().unwrap();
        let sealed = id.seal(vault, &key).unwrap();
        let again = SealedIdentity::decode(&sealed.encode()).unwrap();
        assert_eq!(again, sealed);
        let opened = Identity::open(&again, &key).unwrap();
        assert_eq!(opened.public(), id.public());
        assert!(Identity::open(&sealed, &Key256::generate().unwrap()).is_err());
        let mut moved = sealed.clone();
        moved.vault = VaultId::generate().unwrap();
        assert!(Identity::open(&moved, &key).is_err());
        let mut other_member = sealed.clone();
        other_member.member = MemberId::generate().unwrap();
        assert!(Identity::open(&other_member, &key).is_err());
        let dbg = format!("{id:?} {sealed:?}");
        assert!(dbg.contains("carol") && dbg.contains("redacted"), "{dbg}");
    }
}
