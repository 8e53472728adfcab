//! Member identities: the secret [`Identity`], its [`PublicIdentity`], the [`Fingerprint`]
//! users compare out of band, and the [`SealedIdentity`] kept in the store.

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

pub(crate) type Kem = hpke::kem::X25519HkdfSha256;

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

/// A member's secret identity: member id, display name, an X25519 key that vault keys are
/// HPKE-encrypted to, and an Ed25519 key that signs membership-log entries.
///
/// Zeroized on drop; `Debug` shows the member id and name only.
///
/// ```
/// use strongroom_sharing::Identity;
/// let alice = Identity::generate("alice")?;
/// let public = alice.public();
/// public.verify()?;
/// assert_eq!(public.name(), "alice");
/// assert!(!format!("{alice:?}").contains("secret"));
/// # Ok::<(), strongroom_sharing::SharingError>(())
/// ```
pub struct Identity {
    public: PublicIdentity,
    encryption: Key256,
    signing: SigningKey,
}

impl Identity {
    /// A fresh identity with a random member id.
    pub fn generate(name: &str) -> Result<Self, SharingError> {
        Self::generate_with_id(MemberId::generate()?, name)
    }

    /// A fresh identity for a given member id (ids are never reused within a vault, so
    /// this is for applications that allocate ids themselves).
    pub fn generate_with_id(member: MemberId, name: &str) -> Result<Self, SharingError> {
        check_name(name).map_err(|reason| SharingError::InvalidName { reason })?;
        let mut ikm: [u8; 32] = random::array()?;
        let (sk, _) = Kem::derive_keypair(&ikm);
        ikm.zeroize();
        let mut sk_bytes: [u8; 32] = sk.to_bytes().into();
        let encryption = Key256::from_array(&mut sk_bytes);
        let mut seed: [u8; 32] = random::array()?;
        let signing = SigningKey::from_bytes(&seed);
        seed.zeroize();
        Ok(Self::assemble(member, name.to_owned(), encryption, signing))
    }

    fn assemble(member: MemberId, name: String, encryption: Key256, signing: SigningKey) -> Self {
        let sk = hpke_private(&encryption);
        let enc_pk: [u8; 32] = Kem::sk_to_pk(&sk).to_bytes().into();
        let sig_pk = signing.verifying_key().to_bytes();
        let mut public = PublicIdentity {
            member,
            name,
            encryption_key: enc_pk,
            signing_key: sig_pk,
            signature: [0; 64],
        };
        public.signature = signing.sign(&public.binding_message()).to_bytes();
        Self {
            public,
            encryption,
            signing,
        }
    }

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.public.member
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.public.name
    }

    /// An explicit copy of the secret identity.
    #[must_use]
    pub fn clone_secret(&self) -> Self {
        Self {
            public: self.public.clone(),
            encryption: self.encryption.clone_secret(),
            signing: self.signing.clone(),
        }
    }

    /// The public half, to hand to the vault's owner or admin.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    pub(crate) fn hpke_private(&self) -> <Kem as hpke::Kem>::PrivateKey {
        hpke_private(&self.encryption)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Seals the secret half under `member_key`, bound to `vault` and this member.
    pub fn seal(
        &self,
        vault: VaultId,
        member_key: &Key256,
    ) -> Result<SealedIdentity, SharingError> {
        let mut plain = Writer::with_capacity(96 + self.public.name.len());
        plain
            .u8(SealedIdentity::VERSION)
            .bytes(self.public.member.as_bytes())
            .bytes(self.encryption.expose_secret())
            .bytes(self.signing.as_bytes())
            .var_bytes(self.public.name.as_bytes());
        let mut buf = Zeroizing::new(plain.into_vec());
        let nonce: [u8; 24] = random::array()?;
        let header = SealedIdentity {
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
        r.version(&[SealedIdentity::VERSION])?;
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
        Ok(Self::assemble(member, name, encryption, signing))
    }
}

fn hpke_private(key: &Key256) -> <Kem as hpke::Kem>::PrivateKey {
    <Kem as hpke::Kem>::PrivateKey::from_bytes(key.expose_secret())
        .unwrap_or_else(|_| unreachable!("a 32-byte X25519 private key always parses"))
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Identity({}, {:?}, <redacted>)",
            self.public.member, self.public.name
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
/// Byte layout (version 1):
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
/// Text form: `strongroom-identity1:` followed by the unpadded URL-safe base64 of those
/// bytes (whitespace is ignored when parsing, so it survives line wrapping).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicIdentity {
    member: MemberId,
    name: String,
    encryption_key: [u8; 32],
    signing_key: [u8; 32],
    signature: [u8; 64],
}

impl PublicIdentity {
    /// The version byte.
    pub const VERSION: u8 = 1;
    /// The prefix of the text form.
    pub const TEXT_PREFIX: &'static str = "strongroom-identity1:";
    const FORMAT: &'static str = "public identity";

    /// The member id.
    pub fn member_id(&self) -> MemberId {
        self.member
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The X25519 public key vault keys are encrypted to.
    pub fn encryption_key(&self) -> &[u8; 32] {
        &self.encryption_key
    }

    /// The Ed25519 public key that signs this member's log entries.
    pub fn signing_key(&self) -> &[u8; 32] {
        &self.signing_key
    }

    fn unsigned_encoding(&self) -> Writer {
        let mut w = Writer::with_capacity(150 + self.name.len());
        w.u8(Self::VERSION)
            .bytes(self.member.as_bytes())
            .bytes(&self.encryption_key)
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

    /// Checks the binding signature (and that the signing key is a valid Ed25519 point).
    pub fn verify(&self) -> Result<(), SharingError> {
        let key = self
            .verifying_key()
            .ok_or(SharingError::BadIdentitySignature)?;
        key.verify_strict(
            &self.binding_message(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| SharingError::BadIdentitySignature)
    }

    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.signing_key).ok()
    }

    pub(crate) fn hpke_public(&self) -> <Kem as hpke::Kem>::PublicKey {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.encryption_key)
            .unwrap_or_else(|_| unreachable!("a 32-byte X25519 public key always parses"))
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
        r.version(&[Self::VERSION])?;
        let member = MemberId::from_bytes(r.array("member id")?);
        let encryption_key = r.array("encryption key")?;
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
/// Byte layout (version 1):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       16    vault id
/// 17      16    member id
/// 33      24    nonce (random)
/// 57      4     length n of ciphertext ‖ tag (big-endian u32, 16 < n <= 1024)
/// 61      n     XChaCha20-Poly1305 ciphertext ‖ 16-byte tag
/// ```
///
/// Associated data: `"strongroom/v1/sealed-identity" ‖ 0x00 ‖ bytes[0..33]`. The
/// plaintext is `version (1) ‖ member id (16) ‖ X25519 secret (32) ‖ Ed25519 seed (32) ‖
/// u32 name length ‖ name`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedIdentity {
    vault: VaultId,
    member: MemberId,
    nonce: [u8; 24],
    ciphertext: Vec<u8>,
}

impl SealedIdentity {
    /// The version byte.
    pub const VERSION: u8 = 1;
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

    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(SEALED_AAD_DOMAIN.len() + 33);
        aad.extend_from_slice(SEALED_AAD_DOMAIN);
        aad.push(Self::VERSION);
        aad.extend_from_slice(self.vault.as_bytes());
        aad.extend_from_slice(self.member.as_bytes());
        aad
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(61 + self.ciphertext.len());
        w.u8(Self::VERSION)
            .bytes(self.vault.as_bytes())
            .bytes(self.member.as_bytes())
            .bytes(&self.nonce)
            .var_bytes(&self.ciphertext);
        w.into_vec()
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
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

    #[test]
    fn public_identity_round_trips_and_binds_fields() {
        let id = Identity::generate("alice").unwrap();
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
        other.encryption_key = *Identity::generate("eve").unwrap().public().encryption_key();
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
