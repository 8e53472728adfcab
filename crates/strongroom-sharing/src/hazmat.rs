//! Low-level HPKE with the X-Wing KEM, for formats outside the vault that use the same suite
//! as hybrid grants (strongroom's age `mlkem768x25519` recipient): RFC 9180 base mode, KEM
//! 0x647a X-Wing (MLKEM768-X25519), KDF HKDF-SHA256, AEAD ChaCha20-Poly1305.
//!
//! Nothing here binds a key to a vault or checks it against the membership log: use
//! [`Grant`](crate::Grant) and [`Session`](crate::Session) for vault keys.

use hpke::{Deserializable as _, Kem as _, Serializable as _};
use strongroom_crypto::Key256;
use zeroize::Zeroizing;

use crate::SharingError;
use crate::identity::{HpkePrivate, HpkePublic, HybridKem, XWING_PUBLIC_KEY_LEN};
use crate::wrap::{XWING_ENC_LEN, hpke_open, hpke_seal, kernel_rng};

/// The X-Wing public (encapsulation) key of a 32-byte X-Wing private key (seed).
pub fn xwing_public_key(seed: &Key256) -> Result<[u8; XWING_PUBLIC_KEY_LEN], SharingError> {
    let sk = <HybridKem as hpke::Kem>::PrivateKey::from_bytes(seed.expose_secret())
        .map_err(|_| strongroom_crypto::CryptoError::Decrypt)?;
    let pk = HybridKem::sk_to_pk(&sk).to_bytes();
    let mut out = [0u8; XWING_PUBLIC_KEY_LEN];
    out.copy_from_slice(&pk);
    Ok(out)
}

/// Whether `public` is a valid X-Wing encapsulation key (ML-KEM-768's modulus check).
pub fn xwing_public_key_is_valid(public: &[u8]) -> bool {
    <HybridKem as hpke::Kem>::PublicKey::from_bytes(public).is_ok()
}

/// HPKE SealBase to an X-Wing public key: returns `enc` (1120 bytes) and `ciphertext ‖ tag`.
pub fn xwing_seal(
    public: &[u8],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), SharingError> {
    let pk = <HybridKem as hpke::Kem>::PublicKey::from_bytes(public)
        .map_err(|_| SharingError::BadIdentitySignature)?;
    hpke_seal(
        &HpkePublic::XWing(Box::new(pk)),
        info,
        aad,
        plaintext,
        &mut kernel_rng(),
    )
}

/// HPKE OpenBase with an X-Wing private key (seed). `None` when anything does not match,
/// when `enc` is not 1120 bytes, and when the X25519 share of `enc` has low order (the
/// all-zero X25519 secret, refused as age's spec and the C2SP `hybrid_low_order` test ask).
pub fn xwing_open(
    seed: &Key256,
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    if enc.len() != XWING_ENC_LEN {
        return None;
    }
    let sk = <HybridKem as hpke::Kem>::PrivateKey::from_bytes(seed.expose_secret()).ok()?;
    hpke_open(
        &HpkePrivate::XWing(Box::new(sk)),
        enc,
        info,
        aad,
        ciphertext,
    )
}

/// Whether the X25519 share (the last 32 bytes) of an X-Wing `enc` has low order.
pub fn xwing_enc_has_low_order_share(enc: &[u8]) -> bool {
    crate::wrap::xwing_x25519_share(enc).is_some_and(|s| crate::wrap::is_low_order_x25519(&s))
}
