//! The public X-Wing HPKE layer (`strongroom_sharing::hazmat`, what strongroom's age
//! `mlkem768x25519` recipient is built on) against the X-Wing draft's vectors and the
//! draft-ietf-hpke-pq vector for X-Wing / HKDF-SHA256 / ChaCha20-Poly1305, through the public
//! API only.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::Deserialize;
use strongroom_crypto::Key256;
use strongroom_sharing::hazmat::{
    xwing_enc_has_low_order_share, xwing_open, xwing_public_key, xwing_public_key_is_valid,
    xwing_seal,
};

#[derive(Deserialize)]
struct DraftVector {
    seed: String,
    pk: String,
    ct: String,
}

#[derive(Deserialize)]
struct PqVector {
    info: String,
    #[serde(rename = "skRm")]
    sk_rm: String,
    #[serde(rename = "pkRm")]
    pk_rm: String,
    enc: String,
    encryptions: Vec<Encryption>,
}

#[derive(Deserialize)]
struct Encryption {
    aad: String,
    ct: String,
    pt: String,
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn draft() -> Vec<DraftVector> {
    let v: Vec<DraftVector> = serde_json::from_str(include_str!(
        "data/xwing/draft-connolly-cfrg-xwing-kem-06.json"
    ))
    .unwrap();
    assert_eq!(v.len(), 3);
    v
}

fn pq() -> PqVector {
    let mut v: Vec<PqVector> =
        serde_json::from_str(include_str!("data/xwing/hpke_pq_xwing_sha256_chacha.json")).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn key(hex: &str) -> Key256 {
    Key256::from_slice(&h(hex)).unwrap()
}

/// A point of order 8 on Curve25519 (the C2SP age test `hybrid_low_order` uses it).
const ORDER_8: [u8; 32] = [
    0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
    0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0xd7,
];

#[test]
fn the_public_key_of_each_draft_seed_is_the_drafts() {
    for v in draft() {
        assert_eq!(xwing_public_key(&key(&v.seed)).unwrap().to_vec(), h(&v.pk));
    }
    let v = pq();
    assert_eq!(
        xwing_public_key(&key(&v.sk_rm)).unwrap().to_vec(),
        h(&v.pk_rm)
    );
}

#[test]
fn only_well_formed_encapsulation_keys_are_valid() {
    for v in draft() {
        let pk = h(&v.pk);
        assert!(xwing_public_key_is_valid(&pk));
        assert!(!xwing_public_key_is_valid(&pk[..pk.len() - 1]));
        assert!(!xwing_public_key_is_valid(&[pk.clone(), vec![0]].concat()));
        // The first 12-bit coefficient of the ML-KEM key set to 4095, above the modulus 3329.
        let mut unreduced = pk.clone();
        unreduced[0] = 0xff;
        unreduced[1] |= 0x0f;
        assert!(!xwing_public_key_is_valid(&unreduced));
        assert!(xwing_seal(&unreduced, b"", b"", b"x").is_err());
    }
    assert!(!xwing_public_key_is_valid(&[]));
}

/// The vector's ciphertexts open with the vector's private key, and nothing else does.
#[test]
fn the_hpke_pq_vector_opens() {
    let v = pq();
    let sk = key(&v.sk_rm);
    let enc = h(&v.enc);
    assert_eq!(enc.len(), 1120);
    // Base mode with a sequence number of 0: the first encryption of the context.
    let first = &v.encryptions[0];
    let (info, aad, ct) = (h(&v.info), h(&first.aad), h(&first.ct));
    let pt = xwing_open(&sk, &enc, &info, &aad, &ct).unwrap();
    assert_eq!(&pt[..], &h(&first.pt)[..]);
    assert!(!pt.is_empty());

    assert!(xwing_open(&sk, &enc, &info, b"other aad", &ct).is_none());
    assert!(xwing_open(&sk, &enc, b"other info", &aad, &ct).is_none());
    assert!(xwing_open(&key(&draft()[0].seed), &enc, &info, &aad, &ct).is_none());
    let mut tampered = ct.clone();
    tampered[0] ^= 1;
    assert!(xwing_open(&sk, &enc, &info, &aad, &tampered).is_none());
    assert!(xwing_open(&sk, &enc[..1119], &info, &aad, &ct).is_none());
    assert!(xwing_open(&sk, &[enc.clone(), vec![0]].concat(), &info, &aad, &ct).is_none());
}

#[test]
fn seal_then_open_round_trips() {
    for v in draft() {
        let sk = key(&v.seed);
        let pk = xwing_public_key(&sk).unwrap();
        for plaintext in [&b""[..], b"file key 16 byte", &[0xa5; 1000]] {
            let (enc, ct) = xwing_seal(&pk, b"info", b"aad", plaintext).unwrap();
            assert_eq!(enc.len(), 1120);
            assert_eq!(ct.len(), plaintext.len() + 16);
            if !plaintext.is_empty() {
                assert_ne!(&ct[..plaintext.len()], plaintext);
            }
            assert!(!xwing_enc_has_low_order_share(&enc));
            let opened = xwing_open(&sk, &enc, b"info", b"aad", &ct).unwrap();
            assert_eq!(&opened[..], plaintext);
            assert!(xwing_open(&sk, &enc, b"info", b"aaD", &ct).is_none());
            // Fresh randomness each time.
            let (enc2, _) = xwing_seal(&pk, b"info", b"aad", plaintext).unwrap();
            assert_ne!(enc, enc2);
        }
    }
}

/// An `enc` whose X25519 share (its last 32 bytes) has low order is detected, and refused
/// by `xwing_open`: the X25519 secret would be all zeros.
#[test]
fn low_order_x25519_shares_are_detected_and_refused() {
    let v = &draft()[0];
    let sk = key(&v.seed);
    let pk = xwing_public_key(&sk).unwrap();
    let genuine = h(&v.ct);
    assert_eq!(genuine.len(), 1120);
    assert!(!xwing_enc_has_low_order_share(&genuine));
    let (enc, ct) = xwing_seal(&pk, b"", b"", b"secret").unwrap();
    let mut order_2 = [0u8; 32];
    order_2[0] = 1;
    for point in [ORDER_8, [0u8; 32], order_2] {
        let mut bad = enc.clone();
        bad[1088..].copy_from_slice(&point);
        assert!(xwing_enc_has_low_order_share(&bad));
        assert!(xwing_open(&sk, &bad, b"", b"", &ct).is_none());
    }
    // Not an X-Wing `enc` at all: nothing to judge.
    assert!(!xwing_enc_has_low_order_share(&genuine[..1119]));
    assert!(!xwing_enc_has_low_order_share(&[]));
}

/// The `mlkem768x25519` stanzas of three C2SP age testkit files (tests/data/age-testkit):
/// `hybrid` opens to its file key; in `hybrid_low_order` and `hybrid_identity` the X25519
/// share has small order and the rest is what an honest sender would send for it (the
/// stanza would open to the file key), so only the low-order check refuses them.
#[test]
fn the_age_testkits_hybrid_stanzas() {
    let files = [
        ("hybrid", true),
        ("hybrid_low_order", false),
        ("hybrid_identity", false),
    ];
    for (name, opens) in files {
        let path = format!(
            "{}/tests/data/age-testkit/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let field = |f: &str| text.lines().find_map(|l| l.strip_prefix(f)).unwrap();
        let file_key = h(field("file key: "));
        let (hrp, seed) = bech32::decode(field("identity: ")).unwrap();
        assert_eq!(hrp.to_string(), "AGE-SECRET-KEY-PQ-");
        let mut stanza = text
            .lines()
            .skip_while(|l| !l.starts_with("-> mlkem768x25519 "));
        let args = stanza.next().unwrap();
        let enc = STANDARD_NO_PAD
            .decode(args.strip_prefix("-> mlkem768x25519 ").unwrap())
            .unwrap();
        let body = STANDARD_NO_PAD.decode(stanza.next().unwrap()).unwrap();
        assert_eq!((enc.len(), body.len()), (1120, 32), "{name}");
        assert_eq!(xwing_enc_has_low_order_share(&enc), !opens, "{name}");
        let opened = xwing_open(
            &Key256::from_slice(&seed).unwrap(),
            &enc,
            b"age-encryption.org/mlkem768x25519",
            b"",
            &body,
        );
        assert_eq!(
            opened.as_ref().map(|k| k.to_vec()),
            opens.then(|| file_key.clone()),
            "{name}"
        );
    }
}
