//! Exact boundaries and small accessors of the primitives' API, so that a changed
//! comparison, a stubbed function or a redaction that prints nothing fails a test here (the
//! mutation run in `.ci/run` checks that it does).

use strongroom_crypto::aead::{BodyKey, Suite, WrapKey};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{Argon2idParams, CryptoError, DecodeError, Key256, KeyId, SecretBytes};

#[test]
fn argon2id_floor_and_ceiling_are_exact() {
    let floor = Argon2idParams::FLOOR;
    let ceiling = Argon2idParams::CEILING;
    assert_eq!(
        (floor.memory_kib, floor.iterations, floor.parallelism),
        (19 * 1024, 2, 1)
    );
    assert_eq!(
        (ceiling.memory_kib, ceiling.iterations, ceiling.parallelism),
        (4_194_304, 64, 64)
    );
    assert_eq!(Argon2idParams::DEFAULT.memory_kib, 65_536);
    floor.check().unwrap();
    ceiling.check().unwrap();
    Argon2idParams::DEFAULT.check().unwrap();

    let below = [
        Argon2idParams {
            memory_kib: floor.memory_kib - 1,
            ..floor
        },
        Argon2idParams {
            iterations: floor.iterations - 1,
            ..floor
        },
        Argon2idParams {
            parallelism: floor.parallelism - 1,
            ..floor
        },
    ];
    for p in below {
        assert!(
            matches!(p.check(), Err(CryptoError::KdfBelowFloor { params }) if params == p),
            "{p}"
        );
    }
    let above = [
        Argon2idParams {
            memory_kib: ceiling.memory_kib + 1,
            ..ceiling
        },
        Argon2idParams {
            iterations: ceiling.iterations + 1,
            ..ceiling
        },
        Argon2idParams {
            parallelism: ceiling.parallelism + 1,
            ..ceiling
        },
    ];
    for p in above {
        assert!(
            matches!(p.check(), Err(CryptoError::KdfAboveCeiling { params }) if params == p),
            "{p}"
        );
    }
    // One parameter at its floor is enough for the others to sit anywhere in range.
    for p in [
        Argon2idParams {
            memory_kib: floor.memory_kib,
            ..ceiling
        },
        Argon2idParams {
            iterations: floor.iterations,
            ..ceiling
        },
        Argon2idParams {
            parallelism: floor.parallelism,
            ..ceiling
        },
    ] {
        p.check().unwrap();
    }
    assert_eq!(floor.to_string(), "Argon2id(m=19456 KiB, t=2, p=1)");
    assert_eq!(format!("{floor:?}"), floor.to_string());
}

#[test]
fn suites_name_themselves_and_keys_redact() {
    assert_eq!(Suite::Aes256Gcm.name(), "AES-256-GCM");
    assert_eq!(Suite::ChaCha20Poly1305.name(), "ChaCha20-Poly1305");
    let key = Key256::init_with(|k| k.fill(0xAB));
    let body = format!("{:?}", BodyKey::new(Suite::ChaCha20Poly1305, &key));
    assert_eq!(body, "BodyKey(ChaCha20-Poly1305, <redacted>)");
    let wrap = format!("{:?}", WrapKey::new(&key));
    assert_eq!(wrap, "WrapKey(XChaCha20-Poly1305, <redacted>)");
    for shown in [&body, &wrap] {
        assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    }
}

#[test]
fn writer_reports_what_it_holds() {
    let mut w = Writer::with_capacity(16);
    assert!(w.is_empty());
    assert_eq!((w.len(), w.as_slice()), (0, &[][..]));
    w.u8(1).u32(2);
    assert!(!w.is_empty());
    assert_eq!(w.len(), 5);
    assert_eq!(w.as_slice(), &[1, 0, 0, 0, 2]);
    assert_eq!(w.into_vec(), [1, 0, 0, 0, 2]);
}

#[test]
fn reader_reports_its_position_and_takes_the_rest() {
    let bytes = [1u8, 0, 0, 0, 3, b'a', b'b', b'c', 9, 9];
    let mut r = Reader::new("test format", &bytes);
    assert_eq!(r.format(), "test format");
    assert_eq!(r.position(), 0);
    assert_eq!(r.u8("v").unwrap(), 1);
    assert_eq!(r.position(), 1);
    // A field exactly as long as its maximum is accepted; one byte longer is not.
    assert_eq!(r.clone().var_bytes("f", 3).unwrap(), b"abc");
    assert!(matches!(
        r.clone().var_bytes("f", 2),
        Err(DecodeError::TooLong { len: 3, max: 2, .. })
    ));
    r.var_bytes("f", 3).unwrap();
    assert_eq!(r.position(), 8);
    assert_eq!(r.rest(), &[9, 9]);
    assert_eq!(r.position(), 10);
    assert_eq!(r.rest(), &[] as &[u8]);
}

#[test]
fn key_ids_parse_hex_in_either_case() {
    let id: KeyId = "0123456789abcdef".parse().unwrap();
    assert_eq!(id.to_string(), "0123456789abcdef");
    assert_eq!(format!("{id:?}"), "KeyId(0123456789abcdef)");
    let upper: KeyId = "0123456789ABCDEF".parse().unwrap();
    assert_eq!(upper, id);
    let all: KeyId = "fedcba9876543210".parse().unwrap();
    assert_eq!(all.to_string(), "fedcba9876543210");
    assert!(matches!(
        "0123".parse::<KeyId>(),
        Err(CryptoError::InvalidLength {
            expected: 16,
            got: 4,
            ..
        })
    ));
    for bad in ["0123456789abcdeg", "0123456789abcde ", "0123456789abcdeG"] {
        assert!(matches!(
            bad.parse::<KeyId>(),
            Err(CryptoError::InvalidEncoding { .. })
        ));
    }
}

#[test]
fn secret_bytes_know_their_length() {
    let empty = SecretBytes::from(Vec::new());
    assert!(empty.is_empty());
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(b"hunter2");
    let s = SecretBytes::from(v);
    assert!(!s.is_empty());
    assert_eq!((s.len(), s.expose_secret()), (7, &b"hunter2"[..]));
}
