//! An independent implementation of grants (`docs/spec/grant.md`) and of the identities they
//! are addressed to (`docs/spec/identity.md`), written from the specification on `hpke`,
//! `sha2`, `hkdf`, `chacha20poly1305`, `ed25519-dalek` and `x25519-dalek` (no strongroom
//! code): every field is read at the offset the pages give, and a grant is opened with the
//! `hpke` crate's single-shot open of the spec's suite, `info` and `aad`. Used by
//! `tests/grant_vectors.rs` to check the committed known-answer vectors.
//!
//! Every function returns `Err(reason)` for input the specification refuses, never panics.
#![allow(dead_code, unreachable_pub)]

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::{X25519HkdfSha256, XWing};
use hpke::rand_core::{TryCryptoRng, TryRng, UnwrapErr};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use sha2::{Digest, Sha256};

/// Why the reference refuses an input.
pub type Refused = &'static str;

/// The length of a grant's header, the HPKE `aad`: version, vault id, epoch, member id,
/// recipient key hash.
pub const GRANT_HEADER_LEN: usize = 1 + 16 + 4 + 16 + 32;
/// HPKE ciphertext of the 32-byte vault key ‖ 16-byte tag.
pub const GRANT_CIPHERTEXT_LEN: usize = 32 + 16;
/// ML-KEM-768 ciphertext ‖ X25519 share.
pub const XWING_ENC_LEN: usize = 1088 + 32;
/// ML-KEM-768 encapsulation key ‖ X25519 public key.
pub const XWING_PUBLIC_KEY_LEN: usize = 1184 + 32;
pub const MAX_NAME_LEN: usize = 128;

const GRANT_INFO_V1: &[u8] = b"strongroom/v1/grant\x00";
const GRANT_INFO_V2: &[u8] = b"strongroom/v2/grant\x00";
const RECIPIENT_V1: &[u8] = b"strongroom/v1/grant-recipient\x00";
const RECIPIENT_V2: &[u8] = b"strongroom/v2/grant-recipient\x00";
const IDENTITY_BINDING: &[u8] = b"strongroom/v1/identity-binding\x00";
const SEALED_IDENTITY_AAD: &[u8] = b"strongroom/v1/sealed-identity\x00";
const KEY_ID_LABEL: &[u8] = b"strongroom/v1/vault-key-id";
const KEY_COMMITMENT_LABEL: &[u8] = b"strongroom/v2/vault-key-commitment";

/// The KEM of an identity and of the grants to it, named by their version byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kem {
    /// Version 1: DHKEM(X25519, HKDF-SHA256), HPKE KEM 0x0020.
    X25519,
    /// Version 2: X-Wing (ML-KEM-768 + X25519), HPKE KEM 0x647a.
    XWing,
}

impl Kem {
    pub fn of_version(version: u8) -> Result<Self, Refused> {
        match version {
            1 => Ok(Kem::X25519),
            2 => Ok(Kem::XWing),
            _ => Err("unknown version"),
        }
    }

    pub fn version(self) -> u8 {
        match self {
            Kem::X25519 => 1,
            Kem::XWing => 2,
        }
    }

    pub fn enc_len(self) -> usize {
        match self {
            Kem::X25519 => 32,
            Kem::XWing => XWING_ENC_LEN,
        }
    }

    pub fn public_key_len(self) -> usize {
        match self {
            Kem::X25519 => 32,
            Kem::XWing => XWING_PUBLIC_KEY_LEN,
        }
    }

    pub fn grant_len(self) -> usize {
        GRANT_HEADER_LEN + self.enc_len() + GRANT_CIPHERTEXT_LEN
    }
}

/// Bytes `at .. at + N` of `bytes`, or `Truncated`.
fn array<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], Refused> {
    bytes
        .get(at..at + N)
        .ok_or("truncated")?
        .try_into()
        .map_err(|_| "truncated")
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, Refused> {
    Ok(u32::from_be_bytes(array(bytes, at)?))
}

/// A name as identities carry it: 1 to 128 bytes of UTF-8, not blank, no control characters.
fn check_name(raw: &[u8]) -> Result<String, Refused> {
    let name = core::str::from_utf8(raw).map_err(|_| "name is not UTF-8")?;
    if name.trim().is_empty() {
        return Err("blank name");
    }
    if name.chars().any(char::is_control) {
        return Err("control character in the name");
    }
    Ok(name.to_owned())
}

/// `u32 n ‖ name (n)` at `at`: the name and the offset after it.
fn name_at(bytes: &[u8], at: usize) -> Result<(String, usize), Refused> {
    let n = u32_at(bytes, at)? as usize;
    if n > MAX_NAME_LEN {
        return Err("name too long");
    }
    let raw = bytes.get(at + 4..at + 4 + n).ok_or("truncated")?;
    Ok((check_name(raw)?, at + 4 + n))
}

// ---------------------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------------------

/// The fields of a grant, read by offset (grant.md, the version 1 and version 2 tables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantFields {
    pub version: u8,
    pub kem: Kem,
    /// offset 1, 16 bytes.
    pub vault_id: [u8; 16],
    /// offset 17, u32 big-endian, not 0.
    pub epoch: u32,
    /// offset 21, 16 bytes.
    pub member_id: [u8; 16],
    /// offset 37, 32 bytes.
    pub recipient_key_hash: [u8; 32],
    /// offset 69: 32 bytes (version 1) or 1120 (version 2).
    pub enc: Vec<u8>,
    /// offset 101 or 1189: ciphertext (32) ‖ tag (16).
    pub ciphertext: [u8; GRANT_CIPHERTEXT_LEN],
    /// bytes[0..69], the HPKE `aad`.
    pub aad: [u8; GRANT_HEADER_LEN],
}

/// Decodes a grant, field by field in order: version 1 or 2, each field present with the
/// version's sizes (the epoch refused as soon as it is read if 0), nothing after the
/// ciphertext.
pub fn decode_grant(bytes: &[u8]) -> Result<GrantFields, Refused> {
    let version = *bytes.first().ok_or("truncated")?;
    let kem = Kem::of_version(version)?;
    let vault_id = array(bytes, 1)?;
    let epoch = u32_at(bytes, 17)?;
    if epoch == 0 {
        return Err("epoch 0");
    }
    let member_id = array(bytes, 21)?;
    let recipient_key_hash = array(bytes, 37)?;
    let enc_end = GRANT_HEADER_LEN + kem.enc_len();
    let enc = bytes
        .get(GRANT_HEADER_LEN..enc_end)
        .ok_or("truncated")?
        .to_vec();
    let ciphertext = array(bytes, enc_end)?;
    if bytes.len() != kem.grant_len() {
        return Err("trailing bytes");
    }
    Ok(GrantFields {
        version,
        kem,
        vault_id,
        epoch,
        member_id,
        recipient_key_hash,
        enc,
        ciphertext,
        aad: array(bytes, 0)?,
    })
}

/// `SHA-256("strongroom/v1/grant-recipient" ‖ 0x00 ‖ X25519 public key)` or
/// `SHA-256("strongroom/v2/grant-recipient" ‖ 0x00 ‖ X-Wing public key)`.
pub fn recipient_key_hash(kem: Kem, public_key: &[u8]) -> [u8; 32] {
    let domain = match kem {
        Kem::X25519 => RECIPIENT_V1,
        Kem::XWing => RECIPIENT_V2,
    };
    Sha256::new()
        .chain_update(domain)
        .chain_update(public_key)
        .finalize()
        .into()
}

/// The HPKE `info` of a grant: `"strongroom/v<version>/grant" ‖ 0x00 ‖ vault id ‖ epoch ‖
/// member id ‖` the recipient X25519 public key (version 1) or the recipient key hash
/// (version 2).
pub fn grant_info(g: &GrantFields, recipient_public_key: &[u8]) -> Vec<u8> {
    let mut info = match g.kem {
        Kem::X25519 => GRANT_INFO_V1.to_vec(),
        Kem::XWing => GRANT_INFO_V2.to_vec(),
    };
    info.extend_from_slice(&g.vault_id);
    info.extend_from_slice(&g.epoch.to_be_bytes());
    info.extend_from_slice(&g.member_id);
    match g.kem {
        Kem::X25519 => info.extend_from_slice(recipient_public_key),
        Kem::XWing => info.extend_from_slice(&g.recipient_key_hash),
    }
    info
}

/// Whether an X25519 public value has small order: X25519 with any scalar gives the
/// all-zero output (the scalar is a multiple of the cofactor after clamping).
pub fn x25519_has_low_order(point: &[u8; 32]) -> bool {
    x25519_dalek::x25519([0xc3; 32], *point) == [0u8; 32]
}

/// A grant's recipient: the member and the KEM key pair of their logged identity.
pub struct Recipient {
    pub kem: Kem,
    pub member_id: [u8; 16],
    pub public_key: Vec<u8>,
    /// The X25519 private key, or the 32-byte X-Wing seed.
    pub kem_secret: [u8; 32],
}

/// HPKE base-mode open of a decoded grant with the recipient's key, `info` and `aad` as the
/// specification gives them, without the addressing checks of [`open_grant`]: what the
/// cryptography alone refuses.
pub fn hpke_open_grant(g: &GrantFields, r: &Recipient) -> Result<[u8; 32], Refused> {
    let info = grant_info(g, &r.public_key);
    let plain = match g.kem {
        Kem::X25519 => {
            let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&r.kem_secret)
                .map_err(|_| "bad X25519 private key")?;
            let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&g.enc)
                .map_err(|_| "bad enc")?;
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &sk,
                &enc,
                &info,
                &g.ciphertext,
                &g.aad,
            )
            .map_err(|_| "HPKE open failed")?
        }
        Kem::XWing => {
            let share: [u8; 32] = array(&g.enc, 1088)?;
            if x25519_has_low_order(&share) {
                return Err("low-order X25519 share");
            }
            let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(&r.kem_secret)
                .map_err(|_| "bad X-Wing seed")?;
            let enc =
                <XWing as hpke::Kem>::EncappedKey::from_bytes(&g.enc).map_err(|_| "bad enc")?;
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, XWing>(
                &OpModeR::Base,
                &sk,
                &enc,
                &info,
                &g.ciphertext,
                &g.aad,
            )
            .map_err(|_| "HPKE open failed")?
        }
    };
    plain.try_into().map_err(|_| "plaintext is not 32 bytes")
}

/// A vault key's non-secret key id (`HKDF-SHA256(salt = none, IKM = VK,
/// "strongroom/v1/vault-key-id", 8)`) and commitment (`HKDF-Expand-SHA256(PRK = VK,
/// "strongroom/v2/vault-key-commitment", 32)`): the log's key binding.
pub fn key_binding(vault_key: &[u8; 32]) -> ([u8; 8], [u8; 32]) {
    let mut id = [0u8; 8];
    hkdf::Hkdf::<Sha256>::new(None, vault_key)
        .expand(KEY_ID_LABEL, &mut id)
        .unwrap();
    let mut commitment = [0u8; 32];
    hkdf::Hkdf::<Sha256>::from_prk(vault_key)
        .unwrap()
        .expand(KEY_COMMITMENT_LABEL, &mut commitment)
        .unwrap();
    (id, commitment)
}

/// An opened grant: its fields, the vault key and the key binding it must match.
pub struct OpenedGrant {
    pub fields: GrantFields,
    pub info: Vec<u8>,
    pub vault_key: [u8; 32],
    pub key_id: [u8; 8],
    pub key_commitment: [u8; 32],
}

/// Opens a grant as a member of `vault_id` would (grant.md, "Opening", steps 3 to 5): it
/// decodes, names the vault and the recipient (member id, KEM, recipient key hash), has no
/// low-order X25519 share (version 2), and HPKE-opens. Step 6, comparing the key binding
/// with the log, is the caller's: `key_id` and `key_commitment` are returned.
pub fn open_grant(
    bytes: &[u8],
    vault_id: &[u8; 16],
    r: &Recipient,
) -> Result<OpenedGrant, Refused> {
    let fields = decode_grant(bytes)?;
    if &fields.vault_id != vault_id {
        return Err("another vault");
    }
    if fields.member_id != r.member_id
        || fields.kem != r.kem
        || fields.recipient_key_hash != recipient_key_hash(r.kem, &r.public_key)
    {
        return Err("not addressed to the recipient");
    }
    let vault_key = hpke_open_grant(&fields, r)?;
    let (key_id, key_commitment) = key_binding(&vault_key);
    Ok(OpenedGrant {
        info: grant_info(&fields, &r.public_key),
        fields,
        vault_key,
        key_id,
        key_commitment,
    })
}

/// An RNG that hands out fixed bytes: what HPKE's encapsulation draws (DHKEM's `ikmE`,
/// X-Wing's 64-byte `eseed`).
struct FixedRng(Vec<u8>);

impl TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        assert!(dest.len() <= self.0.len(), "fixed randomness exhausted");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

impl TryCryptoRng for FixedRng {}

/// The grant the specification describes, sealed with the given encapsulation randomness
/// (the other direction of [`open_grant`]).
pub fn seal_grant(
    kem: Kem,
    vault_id: &[u8; 16],
    epoch: u32,
    member_id: &[u8; 16],
    recipient_public_key: &[u8],
    vault_key: &[u8; 32],
    randomness: &[u8],
) -> Vec<u8> {
    let mut out = vec![kem.version()];
    out.extend_from_slice(vault_id);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(member_id);
    out.extend_from_slice(&recipient_key_hash(kem, recipient_public_key));
    let fields = GrantFields {
        version: kem.version(),
        kem,
        vault_id: *vault_id,
        epoch,
        member_id: *member_id,
        recipient_key_hash: recipient_key_hash(kem, recipient_public_key),
        enc: Vec::new(),
        ciphertext: [0; GRANT_CIPHERTEXT_LEN],
        aad: out.clone().try_into().unwrap(),
    };
    let info = grant_info(&fields, recipient_public_key);
    let mut rng = UnwrapErr(FixedRng(randomness.to_vec()));
    let (enc, ct) = match kem {
        Kem::X25519 => {
            let pk = <X25519HkdfSha256 as hpke::Kem>::PublicKey::from_bytes(recipient_public_key)
                .unwrap();
            let (enc, ct) = hpke::single_shot_seal_with_rng::<
                ChaCha20Poly1305,
                HkdfSha256,
                X25519HkdfSha256,
            >(&OpModeS::Base, &pk, &info, vault_key, &out, &mut rng)
            .unwrap();
            (enc.to_bytes().to_vec(), ct)
        }
        Kem::XWing => {
            let pk = <XWing as hpke::Kem>::PublicKey::from_bytes(recipient_public_key).unwrap();
            let (enc, ct) = hpke::single_shot_seal_with_rng::<ChaCha20Poly1305, HkdfSha256, XWing>(
                &OpModeS::Base,
                &pk,
                &info,
                vault_key,
                &out,
                &mut rng,
            )
            .unwrap();
            (enc.to_bytes().to_vec(), ct)
        }
    };
    assert!(rng.0.0.is_empty(), "randomness left over");
    out.extend_from_slice(&enc);
    out.extend_from_slice(&ct);
    out
}

// ---------------------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------------------

/// The KEM public key of a KEM private key `sk`: `X25519(sk, 9)`, or the X-Wing
/// encapsulation key of the seed.
pub fn kem_public_key(kem: Kem, sk: &[u8; 32]) -> Vec<u8> {
    match kem {
        Kem::X25519 => x25519_dalek::x25519(*sk, x25519_dalek::X25519_BASEPOINT_BYTES).to_vec(),
        Kem::XWing => {
            let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(sk).unwrap();
            XWing::sk_to_pk(&sk).to_bytes().to_vec()
        }
    }
}

/// A public identity, read by offset (identity.md, "Public identity").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIdentityFields {
    pub kem: Kem,
    pub member_id: [u8; 16],
    pub kem_public_key: Vec<u8>,
    pub signing_key: [u8; 32],
    pub name: String,
    pub signature: [u8; 64],
    /// The signed bytes: everything before the signature.
    pub signed: Vec<u8>,
}

pub fn decode_public_identity(bytes: &[u8]) -> Result<PublicIdentityFields, Refused> {
    let kem = Kem::of_version(*bytes.first().ok_or("truncated")?)?;
    let member_id = array(bytes, 1)?;
    let key_end = 17 + kem.public_key_len();
    let kem_public_key = bytes.get(17..key_end).ok_or("truncated")?.to_vec();
    let signing_key = array(bytes, key_end)?;
    let (name, name_end) = name_at(bytes, key_end + 32)?;
    let signature = array(bytes, name_end)?;
    if bytes.len() != name_end + 64 {
        return Err("trailing bytes");
    }
    Ok(PublicIdentityFields {
        kem,
        member_id,
        kem_public_key,
        signing_key,
        name,
        signature,
        signed: bytes[..name_end].to_vec(),
    })
}

/// Verifies a public identity: the Ed25519 signature over `"strongroom/v1/identity-binding"
/// ‖ 0x00 ‖` the signed bytes (strict verification), and an X-Wing key that ML-KEM-768
/// accepts.
pub fn verify_public_identity(p: &PublicIdentityFields) -> Result<(), Refused> {
    let key =
        ed25519_dalek::VerifyingKey::from_bytes(&p.signing_key).map_err(|_| "bad Ed25519 key")?;
    let mut message = IDENTITY_BINDING.to_vec();
    message.extend_from_slice(&p.signed);
    key.verify_strict(
        &message,
        &ed25519_dalek::Signature::from_bytes(&p.signature),
    )
    .map_err(|_| "bad identity signature")?;
    if p.kem == Kem::XWing
        && <XWing as hpke::Kem>::PublicKey::from_bytes(&p.kem_public_key).is_err()
    {
        return Err("invalid X-Wing key");
    }
    Ok(())
}

/// The secret half of an identity, from a sealed identity's plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySecret {
    pub kem: Kem,
    pub vault_id: [u8; 16],
    pub member_id: [u8; 16],
    pub kem_secret: [u8; 32],
    pub ed25519_seed: [u8; 32],
    pub name: String,
}

/// Opens a sealed identity (identity.md, "Sealed identity"): header by offset, ciphertext
/// length `16 < n <= 1024`, XChaCha20-Poly1305 under the member key with `aad =
/// "strongroom/v1/sealed-identity" ‖ 0x00 ‖ bytes[0..33]`, then the plaintext: version and
/// member id equal to the header's, KEM secret, Ed25519 seed, name, nothing after.
pub fn open_sealed_identity(
    bytes: &[u8],
    member_key: &[u8; 32],
) -> Result<IdentitySecret, Refused> {
    let version = *bytes.first().ok_or("truncated")?;
    let kem = Kem::of_version(version)?;
    let vault_id = array(bytes, 1)?;
    let member_id = array(bytes, 17)?;
    let nonce: [u8; 24] = array(bytes, 33)?;
    let n = u32_at(bytes, 57)? as usize;
    if n > 1024 {
        return Err("ciphertext too long");
    }
    let sealed = bytes.get(61..61 + n).ok_or("truncated")?;
    if n <= 16 {
        return Err("ciphertext shorter than a tag");
    }
    if bytes.len() != 61 + n {
        return Err("trailing bytes");
    }
    let mut aad = SEALED_IDENTITY_AAD.to_vec();
    aad.extend_from_slice(&bytes[..33]);
    let (ct, tag) = sealed.split_at(n - 16);
    let mut plain = ct.to_vec();
    XChaCha20Poly1305::new(member_key.into())
        .decrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut plain, tag.into())
        .map_err(|_| "decrypt")?;
    if plain.first() != Some(&version) {
        return Err("plaintext version differs");
    }
    if array::<16>(&plain, 1)? != member_id {
        return Err("plaintext member id differs");
    }
    let kem_secret = array(&plain, 17)?;
    let ed25519_seed = array(&plain, 49)?;
    let (name, end) = name_at(&plain, 81)?;
    if plain.len() != end {
        return Err("trailing bytes");
    }
    Ok(IdentitySecret {
        kem,
        vault_id,
        member_id,
        kem_secret,
        ed25519_seed,
        name,
    })
}
