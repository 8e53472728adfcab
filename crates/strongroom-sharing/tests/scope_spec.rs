//! Scope grants and scope links (`docs/spec/scope.md`) read, and opened, by code written
//! from the specification (`hpke`, `chacha20poly1305`, `sha2`, `hkdf`; the recipient's
//! X-Wing seed from the independent identity decoder of `tests/reference/`), and a link made
//! the same way from the specification opened by strongroom.

mod reference;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::XWing;
use hpke::{Deserializable, OpModeR};
use reference::{Kem, key_binding, recipient_key_hash};
use strongroom_crypto::{Key256, ScopeId, VaultId};
use strongroom_sharing::{Epoch, Identity, LinkUnder, ScopeGrant, ScopeLink, VaultKey};

const GRANT_INFO: &[u8] = b"strongroom/v3/scope-grant\0";
const LINK_AAD: &[u8] = b"strongroom/v3/scope-link\0";

fn key(byte: u8, epoch: u32) -> VaultKey {
    VaultKey::from_key(Epoch(epoch), Key256::from_slice(&[byte; 32]).unwrap())
}

#[test]
fn a_scope_grant_opens_by_the_specification() {
    let vault = VaultId::generate().unwrap();
    let scope = ScopeId::generate().unwrap();
    let svc = Identity::generate("billing-service").unwrap();
    let scope_key = key(0x5c, 3);
    let bytes = ScopeGrant::seal(vault, scope, &scope_key, svc.public())
        .unwrap()
        .encode();
    assert_eq!(bytes.len(), 1253);
    assert_eq!(bytes[0], 1, "version");
    assert_eq!(&bytes[1..17], vault.as_bytes());
    assert_eq!(&bytes[17..33], scope.as_bytes());
    assert_eq!(u32::from_be_bytes(bytes[33..37].try_into().unwrap()), 3);
    assert_eq!(&bytes[37..53], svc.member_id().as_bytes());
    // The recipient: its X-Wing public key and seed, read by the independent decoders.
    let public = reference::decode_public_identity(&svc.public().encode()).unwrap();
    assert_eq!(public.kem, Kem::XWing);
    assert_eq!(
        bytes[53..85],
        recipient_key_hash(Kem::XWing, &public.kem_public_key)
    );
    let member_key = Key256::from_slice(&[7; 32]).unwrap();
    let sealed = svc.seal(vault, &member_key).unwrap().encode();
    let secret = reference::open_sealed_identity(&sealed, &[7; 32]).unwrap();
    let sk = <XWing as hpke::Kem>::PrivateKey::from_bytes(&secret.kem_secret).unwrap();
    let enc = <XWing as hpke::Kem>::EncappedKey::from_bytes(&bytes[85..1205]).unwrap();
    let info = [GRANT_INFO, &bytes[1..85]].concat();
    let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, XWing>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info,
        &bytes[1205..],
        &bytes[..85],
    )
    .expect("the grant opens with the specification's suite, info and aad");
    assert_eq!(plain, [0x5c; 32]);
    // The key binding the log carries for it, computed by the specification.
    let (id, commitment) = key_binding(&[0x5c; 32]);
    assert_eq!(&id, scope_key.id().as_bytes());
    assert_eq!(&commitment, scope_key.commitment());
    // Another info (another scope) does not open: the scope id is bound.
    let mut other = info.clone();
    other[GRANT_INFO.len() + 16] ^= 1;
    assert!(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, XWing>(
            &OpModeR::Base,
            &sk,
            &enc,
            &other,
            &bytes[1205..],
            &bytes[..85],
        )
        .is_err()
    );
}

/// Opens a scope link by the specification with the 32-byte wrapping key.
fn spec_open_link(bytes: &[u8], wrapping: &[u8; 32]) -> Option<[u8; 32]> {
    if bytes.len() != 130 || bytes[0] != 1 {
        return None;
    }
    let aad = [LINK_AAD, &bytes[..58]].concat();
    let mut buf = bytes[82..114].to_vec();
    XChaCha20Poly1305::new(wrapping.into())
        .decrypt_in_place_detached(
            XNonce::from_slice(&bytes[58..82]),
            &aad,
            &mut buf,
            bytes[114..130].into(),
        )
        .ok()?;
    buf.try_into().ok()
}

#[test]
fn scope_links_open_by_the_specification() {
    let vault = VaultId::generate().unwrap();
    let scope = ScopeId::generate().unwrap();
    let (vk, s1, s2) = (key(0x11, 4), key(0x21, 1), key(0x22, 2));

    let bytes = ScopeLink::under_vault_key(vault, scope, &s2, &vk)
        .unwrap()
        .encode();
    assert_eq!(bytes.len(), 130);
    assert_eq!(&bytes[1..17], vault.as_bytes());
    assert_eq!(&bytes[17..33], scope.as_bytes());
    assert_eq!(u32::from_be_bytes(bytes[33..37].try_into().unwrap()), 2);
    assert_eq!(bytes[37..45], key_binding(&[0x22; 32]).0);
    assert_eq!(bytes[45], 1, "under a vault key");
    assert_eq!(u32::from_be_bytes(bytes[46..50].try_into().unwrap()), 4);
    assert_eq!(bytes[50..58], key_binding(&[0x11; 32]).0);
    assert_eq!(spec_open_link(&bytes, &[0x11; 32]), Some([0x22; 32]));
    assert_eq!(spec_open_link(&bytes, &[0x22; 32]), None);

    let chain = ScopeLink::chain(vault, scope, &s2, &s1).unwrap().encode();
    assert_eq!(u32::from_be_bytes(chain[33..37].try_into().unwrap()), 1);
    assert_eq!(chain[45], 2, "under the next scope key");
    assert_eq!(u32::from_be_bytes(chain[46..50].try_into().unwrap()), 2);
    assert_eq!(spec_open_link(&chain, &[0x22; 32]), Some([0x21; 32]));

    // A link made from the specification alone opens in strongroom.
    let mut made = vec![1u8];
    made.extend_from_slice(vault.as_bytes());
    made.extend_from_slice(scope.as_bytes());
    made.extend_from_slice(&1u32.to_be_bytes());
    made.extend_from_slice(&key_binding(&[0x21; 32]).0);
    made.push(2);
    made.extend_from_slice(&2u32.to_be_bytes());
    made.extend_from_slice(&key_binding(&[0x22; 32]).0);
    let nonce = [9u8; 24];
    let aad = [LINK_AAD, &made].concat();
    let mut buf = [0x21u8; 32];
    let tag = XChaCha20Poly1305::new((&[0x22u8; 32]).into())
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut buf)
        .unwrap();
    made.extend_from_slice(&nonce);
    made.extend_from_slice(&buf);
    made.extend_from_slice(&tag);
    let link = ScopeLink::decode(&made).unwrap();
    assert_eq!(link.under(), LinkUnder::NextScopeKey);
    let opened = link.open(vault, &s2).unwrap();
    assert_eq!((opened.epoch(), opened.id()), (Epoch(1), s1.id()));
    // The decoder refuses what the page refuses.
    let mut bad = made.clone();
    bad[45] = 3;
    assert!(ScopeLink::decode(&bad).is_err());
    let mut bad = made.clone();
    bad[46..50].copy_from_slice(&3u32.to_be_bytes());
    assert!(ScopeLink::decode(&bad).is_err());
    assert!(ScopeLink::decode(&made[..129]).is_err());
    assert!(ScopeLink::decode(&[made.as_slice(), &[0]].concat()).is_err());
}
