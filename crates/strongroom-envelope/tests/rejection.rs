//! Every modification of a sealed record is refused: bit flips anywhere, moves between
//! records, vaults, versions and epochs, truncation and extension, wrong keys.

use proptest::prelude::*;
use strongroom_crypto::{RecordId, VaultId};
use strongroom_envelope::{
    EnvelopeError, Epoch, RecordContext, SEGMENT_LEN, Suite, VaultKey, open, rewrap, seal,
};

fn ctx() -> RecordContext {
    RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([2; 16]),
        version: 1,
    }
}

#[test]
fn every_bit_flip_in_body_or_wrapped_dek_fails() {
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        let s = seal(&vk, suite, &ctx(), b"a short secret value").unwrap();
        let w = s.wrapped_dek.as_bytes();
        for bit in 0..s.body.len() * 8 {
            let mut b = s.body.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&vk, &ctx(), &b, w).is_err(), "body bit {bit}");
        }
        for bit in 0..w.len() * 8 {
            let mut x = w.to_vec();
            x[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&vk, &ctx(), &s.body, &x).is_err(), "wrapped bit {bit}");
        }
        assert!(open(&vk, &ctx(), &s.body, w).is_ok());
    }
}

#[test]
fn bit_flips_in_a_segmented_body_fail() {
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    let s = seal(
        &vk,
        Suite::Aes256Gcm,
        &ctx(),
        &vec![5u8; 2 * SEGMENT_LEN + 3],
    )
    .unwrap();
    // sample: every header bit, and bits around each segment boundary
    let mut positions: Vec<usize> = (0..47 * 8).collect();
    for seg_end in [
        47 + SEGMENT_LEN + 16,
        47 + 2 * (SEGMENT_LEN + 16),
        s.body.len(),
    ] {
        positions.extend((seg_end - 40) * 8..seg_end * 8);
    }
    for bit in positions {
        let mut b = s.body.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            open(&vk, &ctx(), &b, s.wrapped_dek.as_bytes()).is_err(),
            "bit {bit}"
        );
    }
}

#[test]
fn moved_rows_fail() {
    let vk = VaultKey::generate(Epoch(3)).unwrap();
    let s = seal(&vk, Suite::Aes256Gcm, &ctx(), b"value").unwrap();
    let w = s.wrapped_dek.as_bytes();
    let other_record = RecordContext {
        record_id: RecordId::from_bytes([3; 16]),
        ..ctx()
    };
    let other_vault = RecordContext {
        vault_id: VaultId::from_bytes([9; 16]),
        ..ctx()
    };
    let other_version = RecordContext {
        version: 2,
        ..ctx()
    };
    assert!(matches!(
        open(&vk, &other_record, &s.body, w),
        Err(EnvelopeError::Decrypt)
    ));
    assert!(matches!(
        open(&vk, &other_vault, &s.body, w),
        Err(EnvelopeError::Decrypt)
    ));
    assert!(matches!(
        open(&vk, &other_version, &s.body, w),
        Err(EnvelopeError::VersionMismatch { .. })
    ));
    // a body of version 1 paired with the wrapped DEK of version 2 of the same record
    let ctx2 = other_version;
    let s2 = seal(&vk, Suite::Aes256Gcm, &ctx2, b"value2").unwrap();
    assert!(open(&vk, &ctx2, &s.body, s2.wrapped_dek.as_bytes()).is_err());
    assert!(open(&vk, &ctx(), &s.body, s2.wrapped_dek.as_bytes()).is_err());
    // the wrapped DEK rewrapped for another record's context does not open this body
    assert!(rewrap(&vk, &vk, &other_record, w).is_err());
    // epoch: a body sealed at epoch 3 whose header claims epoch 4 fails
    let mut b = s.body.clone();
    b[6] ^= 0x07;
    assert!(open(&vk, &ctx(), &b, w).is_err());
}

#[test]
fn wrong_key_fails() {
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    let s = seal(&vk, Suite::Aes256Gcm, &ctx(), b"value").unwrap();
    let other = VaultKey::generate(Epoch(1)).unwrap();
    let err = open(&other, &ctx(), &s.body, s.wrapped_dek.as_bytes()).unwrap_err();
    assert!(matches!(err, EnvelopeError::WrongVaultKey { .. }), "{err}");
    assert!(rewrap(&other, &vk, &ctx(), s.wrapped_dek.as_bytes()).is_err());
}

#[test]
fn structural_errors_name_the_problem() {
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    let s = seal(&vk, Suite::Aes256Gcm, &ctx(), b"value").unwrap();
    let w = s.wrapped_dek.as_bytes();
    let mut b = s.body.clone();
    b[0] = 7;
    let e = open(&vk, &ctx(), &b, w).unwrap_err().to_string();
    assert!(e.contains("unknown version 7"), "{e}");
    let mut b = s.body.clone();
    b[1] = 42;
    let e = open(&vk, &ctx(), &b, w).unwrap_err().to_string();
    assert!(e.contains("suite id 42"), "{e}");
    let e = open(&vk, &ctx(), &s.body[..10], w).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    let e = open(&vk, &ctx(), &s.body, &w[..50])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated") && e.contains("wrapped data key"),
        "{e}"
    );
    let e = open(&vk, &ctx(), &s.body, &[]).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..200_000),
                  version in 1u64..u64::MAX, epoch in 1u32..1000, chacha in any::<bool>()) {
        let vk = VaultKey::generate(Epoch(epoch)).unwrap();
        let c = RecordContext { version, ..ctx() };
        let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
        let s = seal(&vk, suite, &c, &data).unwrap();
        let back = open(&vk, &c, &s.body, s.wrapped_dek.as_bytes()).unwrap();
        prop_assert_eq!(back.expose_secret(), &data[..]);
        let next = VaultKey::generate(Epoch(epoch + 1)).unwrap();
        let w2 = rewrap(&vk, &next, &c, s.wrapped_dek.as_bytes()).unwrap();
        let again = open(&next, &c, &s.body, w2.as_bytes()).unwrap();
        prop_assert_eq!(again.expose_secret(), &data[..]);
    }

    #[test]
    fn garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300),
                            wrapped in proptest::collection::vec(any::<u8>(), 0..100)) {
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        prop_assert!(open(&vk, &ctx(), &body, &wrapped).is_err());
    }
}

/// A wrapped key of the wrong length names how it is wrong: the bytes missing, or the
/// number of bytes too many; and its `Debug` shows the version, epoch and key id only.
#[test]
fn wrapped_key_lengths_are_reported_exactly() {
    use strongroom_crypto::DecodeError;
    use strongroom_envelope::WrappedDek;

    let vk = VaultKey::generate(Epoch(7)).unwrap();
    let s = seal(&vk, Suite::ChaCha20Poly1305, &ctx(), b"v").unwrap();
    let w = s.wrapped_dek.as_bytes().to_vec();
    assert_eq!(w.len(), WrappedDek::LEN);
    assert!(WrappedDek::from_bytes(&w).is_ok());
    for extra in [1usize, 3] {
        let mut long = w.clone();
        long.extend(std::iter::repeat_n(0, extra));
        assert!(
            matches!(
                WrappedDek::from_bytes(&long),
                Err(EnvelopeError::Decode(DecodeError::TrailingBytes { count, .. })) if count == extra
            ),
            "{extra} extra bytes"
        );
    }
    assert!(matches!(
        WrappedDek::from_bytes(&w[..w.len() - 1]),
        Err(EnvelopeError::Decode(DecodeError::Truncated {
            needed: 122,
            available: 121,
            ..
        }))
    ));
    let shown = format!("{:?}", s.wrapped_dek);
    assert_eq!(
        shown,
        format!("WrappedDek(v2, epoch {}, key {})", Epoch(7), vk.id())
    );
}
