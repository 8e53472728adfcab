//! What the public API promises beyond the bytes of the format: the values of keys' public
//! parts, which record versions a [`BodyCheck`] covers, batch rewraps, the stream types'
//! `Write`/`Read` behaviour and their errors.

mod reference;

use std::io::{self, Read, Write};

use strongroom_crypto::{DecodeError, Key256, RecordId, VaultId};
use strongroom_envelope::{
    BodyCheck, BodyHeader, EnvelopeError, Epoch, RecordContext, StreamOpener, StreamSealer, Suite,
    VaultKey, WrappedDek, open, rewrap_batch, seal,
};

const KEY: [u8; 32] = [0x42; 32];

fn ctx(n: u8) -> RecordContext {
    RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([n; 16]),
        version: u64::from(n),
    }
}

fn key(epoch: u32) -> VaultKey {
    VaultKey::from_key(Epoch(epoch), Key256::from_slice(&KEY).unwrap())
}

#[test]
fn epochs_count_from_one() {
    assert_eq!(Epoch::FIRST.get(), 1);
    assert_eq!(Epoch::FIRST.next().get(), 2);
    assert_eq!(Epoch(7).next().get(), 8);
    assert_eq!(key(9).epoch().get(), 9);
}

#[test]
fn the_key_id_and_commitment_are_the_specified_hkdf_outputs() {
    let vk = key(1);
    assert_eq!(vk.id().as_bytes(), &reference::key_id(&KEY));
    let mut want = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::from_prk(&KEY)
        .unwrap()
        .expand(VaultKey::COMMITMENT_LABEL.as_bytes(), &mut want)
        .unwrap();
    assert_eq!(vk.commitment(), &want);
    // Another key, another commitment; the epoch takes no part in either value.
    let other = VaultKey::from_key(Epoch(1), Key256::from_slice(&[0x43; 32]).unwrap());
    assert_ne!(other.commitment(), vk.commitment());
    assert_eq!(key(5).commitment(), vk.commitment());
}

#[test]
fn a_vault_key_debug_names_its_epoch_and_id_only() {
    let vk = key(3);
    let shown = format!("{vk:?}");
    assert_eq!(
        shown,
        format!("VaultKey(epoch 3, id {}, <redacted>)", vk.id())
    );
    assert!(!shown.contains("4242"), "{shown}");
}

#[test]
fn the_body_check_covers_versions_sealed_before_its_floor() {
    let vk = key(3);
    let sealed = seal(&vk, Suite::Aes256Gcm, &ctx(1), b"value").unwrap();
    let w = &sealed.wrapped_dek;
    assert_eq!(w.sealed_epoch(), Some(Epoch(3)));
    assert!(BodyCheck::Always.applies_to(w));
    assert!(BodyCheck::SealedBefore(Epoch(4)).applies_to(w));
    assert!(!BodyCheck::SealedBefore(Epoch(3)).applies_to(w));
    assert!(!BodyCheck::SealedBefore(Epoch(2)).applies_to(w));
}

#[test]
fn a_version_1_wrap_carries_no_digest_to_check() {
    // The frozen version-1 vectors: a wrap of that version has no digest, so no check
    // applies to it, whatever the floor.
    let p = format!(
        "{}/tests/data/v1/envelope_pass.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let hex = v["vectors"][0]["wrapped_dek"].as_str().unwrap();
    let w = WrappedDek::from_bytes(&hex::decode(hex).unwrap()).unwrap();
    assert_eq!(w.sealed_epoch(), None);
    assert!(!BodyCheck::Always.applies_to(&w));
    assert!(!BodyCheck::SealedBefore(Epoch(u32::MAX)).applies_to(&w));
}

#[test]
fn a_batch_rewrap_answers_each_record_in_order() {
    let old = key(1);
    let new = VaultKey::generate(Epoch(2)).unwrap();
    let records: Vec<_> = (1..=3)
        .map(|n| {
            let s = seal(&old, Suite::ChaCha20Poly1305, &ctx(n), &[n; 5]).unwrap();
            (ctx(n), s)
        })
        .collect();
    // The second item is presented under the wrong record: it alone fails.
    let items = vec![
        (records[0].0, records[0].1.wrapped_dek.as_bytes()),
        (ctx(9), records[1].1.wrapped_dek.as_bytes()),
        (records[2].0, records[2].1.wrapped_dek.as_bytes()),
    ];
    let out = rewrap_batch(&old, &new, items.into_iter()).unwrap();
    assert_eq!(out.len(), 3);
    assert!(
        matches!(out[1], Err(EnvelopeError::Decrypt)),
        "{:?}",
        out[1]
    );
    for i in [0, 2] {
        let (c, s) = &records[i];
        let w = out[i].as_ref().unwrap();
        assert_eq!(w.key_id(), new.id());
        let plain = open(&new, c, &s.body, w.as_bytes()).unwrap();
        assert_eq!(plain.expose_secret(), &[c.version as u8; 5]);
    }
    assert!(
        rewrap_batch(&old, &new, std::iter::empty())
            .unwrap()
            .is_empty()
    );
}

/// A writer that counts the flushes it is asked for.
struct CountingWriter {
    bytes: Vec<u8>,
    flushes: usize,
}

impl Write for CountingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn flushing_a_stream_sealer_flushes_its_writer() {
    let vk = key(1);
    let inner = CountingWriter {
        bytes: Vec::new(),
        flushes: 0,
    };
    let mut sealer = StreamSealer::new(&vk, Suite::Aes256Gcm, &ctx(1), inner).unwrap();
    sealer.write_all(b"part one").unwrap();
    sealer.flush().unwrap();
    sealer.flush().unwrap();
    let (inner, wrapped) = sealer.finish().unwrap();
    // Two explicit flushes, and the one `finish` does.
    assert_eq!(inner.flushes, 3);
    let plain = open(&vk, &ctx(1), &inner.bytes, wrapped.as_bytes()).unwrap();
    assert_eq!(plain.expose_secret(), b"part one");
}

#[test]
fn a_stream_shorter_than_the_header_is_reported_as_truncated() {
    let vk = key(1);
    let sealed = seal(&vk, Suite::Aes256Gcm, &ctx(1), b"value").unwrap();
    for cut in [0, 1, BodyHeader::LEN - 1] {
        let err = StreamOpener::new(
            &vk,
            &ctx(1),
            sealed.wrapped_dek.as_bytes(),
            &sealed.body[..cut],
        )
        .err()
        .unwrap();
        match err {
            EnvelopeError::Decode(DecodeError::Truncated {
                field,
                needed,
                available,
                ..
            }) => {
                assert_eq!(field, "header");
                assert_eq!(needed, BodyHeader::LEN);
                assert_eq!(available, cut);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

/// A reader that fails once with a given error when its bytes run out, then reports
/// end-of-stream.
struct FailingReader<'a> {
    bytes: &'a [u8],
    kind: Option<io::ErrorKind>,
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.bytes.is_empty() {
            return match self.kind.take() {
                Some(kind) => Err(io::Error::new(kind, "storage went away")),
                None => Ok(0),
            };
        }
        self.bytes.read(buf)
    }
}

#[test]
fn a_read_error_in_the_header_is_passed_on_as_an_io_error() {
    let vk = key(1);
    let sealed = seal(&vk, Suite::Aes256Gcm, &ctx(1), b"value").unwrap();
    let inner = FailingReader {
        bytes: &sealed.body[..10],
        kind: Some(io::ErrorKind::ConnectionReset),
    };
    let err = StreamOpener::new(&vk, &ctx(1), sealed.wrapped_dek.as_bytes(), inner)
        .err()
        .unwrap();
    match err {
        EnvelopeError::Io(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        other => panic!("{other:?}"),
    }
}

/// A reader that hands out its bytes a few at a time, is interrupted (`EINTR`) before every
/// other piece, and counts the calls that asked for nothing.
struct TricklingReader<'a> {
    bytes: &'a [u8],
    calls: usize,
    empty_reads: usize,
}

impl Read for TricklingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if buf.is_empty() {
            self.empty_reads += 1;
        }
        if self.calls % 2 == 1 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let piece = buf.len().min(1000);
        self.bytes.read(&mut buf[..piece])
    }
}

#[test]
fn a_stream_opener_reads_in_pieces_retries_interrupted_reads_and_never_asks_for_nothing() {
    let vk = key(1);
    let plaintext = vec![0x33; 2 * strongroom_envelope::SEGMENT_LEN + 5];
    let sealed = seal(&vk, Suite::ChaCha20Poly1305, &ctx(1), &plaintext).unwrap();
    let mut inner = TricklingReader {
        bytes: &sealed.body,
        calls: 0,
        empty_reads: 0,
    };
    let mut opener =
        StreamOpener::new(&vk, &ctx(1), sealed.wrapped_dek.as_bytes(), &mut inner).unwrap();
    let mut out = Vec::new();
    opener.read_to_end(&mut out).unwrap();
    drop(opener);
    assert_eq!(out, plaintext);
    assert_eq!(inner.empty_reads, 0);
}
