//! RFC 5869 appendix A: the HKDF-SHA256 test cases 1-3, through strongroom's HKDF.

use strongroom_crypto::CryptoError;
use strongroom_crypto::Key256;
use strongroom_crypto::kdf::{hkdf_sha256, hkdf_sha256_expand};

struct Case {
    ikm: &'static str,
    salt: Option<&'static str>,
    info: &'static str,
    okm: &'static str,
}

const CASES: &[Case] = &[
    Case {
        ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        salt: Some("000102030405060708090a0b0c"),
        info: "f0f1f2f3f4f5f6f7f8f9",
        okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    },
    Case {
        ikm: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
        salt: Some(
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        ),
        info: "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
        okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
    },
    Case {
        ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        salt: None,
        info: "",
        okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    },
];

#[test]
fn rfc5869_sha256_cases() {
    for (i, c) in CASES.iter().enumerate() {
        let ikm = hex::decode(c.ikm).unwrap();
        let salt = c.salt.map(|s| hex::decode(s).unwrap());
        let info = hex::decode(c.info).unwrap();
        let mut okm = vec![0u8; c.okm.len() / 2];
        hkdf_sha256(salt.as_deref(), &ikm, &[&info], &mut okm).unwrap();
        assert_eq!(hex::encode(&okm), c.okm, "case {}", i + 1);
    }
}

#[test]
fn info_parts_are_concatenated() {
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    hkdf_sha256(None, b"ikm", &[b"ab", b"cd"], &mut a).unwrap();
    hkdf_sha256(None, b"ikm", &[b"abcd"], &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn overlong_output_is_an_error() {
    let mut okm = vec![0u8; 255 * 32 + 1];
    let too_long = |e| {
        matches!(
            e,
            CryptoError::InvalidLength {
                expected: 8160,
                got: 8161,
                ..
            }
        )
    };
    assert!(hkdf_sha256(None, b"ikm", &[], &mut okm).is_err_and(too_long));
    let prk = Key256::init_with(|k| k.fill(7));
    assert!(hkdf_sha256_expand(&prk, &[], &mut okm).is_err_and(too_long));
    // The longest output is fine.
    assert!(hkdf_sha256(None, b"ikm", &[], &mut okm[..8160]).is_ok());
}

/// Expand alone (section 2.3), from the PRKs of test cases 1 and 3: what the DEK and
/// vault-key derivations use.
#[test]
fn rfc5869_expand_only_from_the_published_prk() {
    for (prk, info, okm) in [
        (
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "f0f1f2f3f4f5f6f7f8f9",
            CASES[0].okm,
        ),
        (
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "",
            CASES[2].okm,
        ),
    ] {
        let prk = Key256::from_slice(&hex::decode(prk).unwrap()).unwrap();
        let info = hex::decode(info).unwrap();
        let mut out = vec![0u8; okm.len() / 2];
        hkdf_sha256_expand(&prk, &[&info], &mut out).unwrap();
        assert_eq!(hex::encode(&out), okm);
    }
}
