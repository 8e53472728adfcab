//! Streaming and random access for large bodies.
//!
//! A body is a sequence of 64 KiB segments (see the crate docs), so a large secret can be
//! sealed and opened through [`std::io::Write`] and [`std::io::Read`] with one segment in
//! memory, and any segment can be opened on its own.

use std::io::{self, Read, Seek, SeekFrom, Write};

use strongroom_crypto::SecretBytes;
use strongroom_crypto::aead::{Aead, Suite};
use zeroize::{Zeroize, Zeroizing};

use strongroom_crypto::Key256;
use subtle::ConstantTimeEq;

use crate::format::{
    BodyDigest, BodyHeader, RecordContext, SEGMENT_CT_LEN, SEGMENT_LEN, TAG_LEN, WrappedDek,
    body_aad, segment_layout, segment_nonce,
};
use crate::record::{
    BodyCheck, RecordKeys, check_sealed_epoch, committed_keys, derive_record_keys,
    fresh_dek_and_nonce, header_for, header_for_context, unwrap_dek, wrap_dek,
};
use crate::{EnvelopeError, VaultKey};

/// Seals a body as it is written: writes the header at once, then one segment per 64 KiB.
///
/// The last segment is only known at [`finish`](StreamSealer::finish), so up to one segment
/// stays buffered (zeroized on drop); the DEK is wrapped at `finish`, with the digest of
/// everything written. Dropping the sealer without `finish` leaves an unterminated body
/// that will never open. After a write to the output failed, the sealer is poisoned: every
/// later call fails with [`EnvelopeError::Poisoned`] (the output lacks a segment).
///
/// ```
/// use std::io::{Read, Write};
/// use strongroom_crypto::{RecordId, VaultId, aead::Suite};
/// use strongroom_envelope::{Epoch, RecordContext, StreamOpener, StreamSealer, VaultKey};
///
/// let vk = VaultKey::generate(Epoch::FIRST)?;
/// let ctx = RecordContext { vault_id: VaultId::generate()?, record_id: RecordId::generate()?, version: 1 };
/// let mut sealer = StreamSealer::new(&vk, Suite::Aes256Gcm, &ctx, Vec::new())?;
/// sealer.write_all(&vec![7u8; 200_000])?;
/// let (body, wrapped) = sealer.finish()?;
///
/// let mut opener = StreamOpener::new(&vk, &ctx, wrapped.as_bytes(), &body[..])?;
/// let mut out = Vec::new();
/// opener.read_to_end(&mut out)?;
/// assert_eq!(out, vec![7u8; 200_000]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamSealer<'k, W: Write> {
    inner: Option<W>,
    keys: RecordKeys,
    aad: [u8; 97],
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    vault_key: &'k VaultKey,
    ctx: RecordContext,
    dek: Key256,
    nonce: [u8; 24],
    digest: BodyDigest,
    poisoned: bool,
}

impl<'k, W: Write> StreamSealer<'k, W> {
    /// Starts a body for the record at `ctx` under a fresh DEK wrapped by `vault_key`, and
    /// writes its header to `inner`.
    pub fn new(
        vault_key: &'k VaultKey,
        suite: Suite,
        ctx: &RecordContext,
        mut inner: W,
    ) -> Result<Self, EnvelopeError> {
        let (dek, nonce) = fresh_dek_and_nonce()?;
        let keys = derive_record_keys(&dek, suite, ctx);
        let header = header_for(&keys, suite, vault_key.epoch(), ctx);
        inner.write_all(&header)?;
        let mut digest = BodyDigest::new();
        digest.update(&header);
        Ok(Self {
            inner: Some(inner),
            aad: body_aad(&header, ctx),
            keys,
            buf: Zeroizing::new(Vec::with_capacity(SEGMENT_LEN + TAG_LEN)),
            index: 0,
            vault_key,
            ctx: *ctx,
            dek,
            nonce,
            digest,
            poisoned: false,
        })
    }

    fn flush_segment(&mut self, last: bool) -> Result<(), EnvelopeError> {
        if self.poisoned {
            return Err(EnvelopeError::Poisoned);
        }
        let nonce = segment_nonce(self.index, last);
        let tag = self
            .keys
            .body
            .seal_detached(&nonce, &self.aad, &mut self.buf)?;
        self.buf.extend_from_slice(&tag);
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("stream already finished"))?;
        if let Err(e) = inner.write_all(&self.buf) {
            // Part of the segment may have been written: nothing later can be correct.
            self.poisoned = true;
            self.buf.zeroize();
            return Err(e.into());
        }
        self.digest.update(&self.buf);
        self.buf.zeroize();
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the final segment and returns the writer and the wrapped DEK to store beside the
    /// body.
    pub fn finish(mut self) -> Result<(W, WrappedDek), EnvelopeError> {
        self.flush_segment(true)?;
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| io::Error::other("stream already finished"))?;
        inner.flush()?;
        let digest = self.digest.clone().finish();
        let wrapped = wrap_dek(
            self.vault_key,
            &self.ctx,
            &self.dek,
            self.vault_key.epoch(),
            &digest,
            &self.nonce,
        )?;
        Ok((inner, wrapped))
    }
}

impl<W: Write> Write for StreamSealer<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(EnvelopeError::Poisoned.into());
        }
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffered segment is only sealed (as non-final) once more data arrives.
        if self.buf.len() == SEGMENT_LEN {
            self.flush_segment(false)?;
        }
        let n = data.len().min(SEGMENT_LEN - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Opens a body as it is read, one segment at a time.
///
/// Every byte returned has been authenticated; a truncated, reordered or swapped segment
/// makes `read` fail with [`io::ErrorKind::InvalidData`] before any of its bytes are
/// returned. A reader that stops early has seen only authenticated prefixes; only a read
/// that reaches end-of-stream proves the body is complete.
///
/// The body digest of a version-2 wrap (see [`BodyCheck`]) covers the whole body, so it is
/// checked when the last segment arrives, before that segment is returned: a body replaced
/// by a former holder of the data key fails there. Treat what was read as unverified until
/// `read` returned end-of-stream, or use [`SegmentReader`], which checks the digest before
/// returning anything.
pub struct StreamOpener<R: Read> {
    inner: R,
    keys: RecordKeys,
    aad: [u8; 97],
    /// The running digest and the one to match, when the check applies.
    digest: Option<(BodyDigest, [u8; 32])>,
    index: u64,
    seg: Zeroizing<Vec<u8>>,
    pos: usize,
    lookahead: Option<u8>,
    done: bool,
}

impl<R: Read> StreamOpener<R> {
    /// Opens the body `inner` with the body check of [`open`](crate::open)
    /// ([`BodyCheck::Always`]).
    pub fn new(
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        inner: R,
    ) -> Result<Self, EnvelopeError> {
        Self::with_check(vault_key, ctx, wrapped_dek, inner, BodyCheck::Always)
    }

    /// Reads and checks the header, unwraps the DEK and checks the key commitment.
    pub fn with_check(
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        mut inner: R,
        check: BodyCheck,
    ) -> Result<Self, EnvelopeError> {
        let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
        let mut head = [0u8; BodyHeader::LEN];
        let got = read_full(&mut inner, &mut head)?;
        if got < head.len() {
            return Err(EnvelopeError::Decode(
                strongroom_crypto::DecodeError::Truncated {
                    format: "record body v1",
                    field: "header",
                    needed: BodyHeader::LEN,
                    available: got,
                },
            ));
        }
        let header = header_for_context(&head, ctx)?;
        let dek = unwrap_dek(vault_key, ctx, &wrapped)?;
        // The epoch check now; the digest once every segment went through it.
        check_sealed_epoch(&wrapped, &header)?;
        let digest = match wrapped.body_digest() {
            Some(want) if check.applies_to(&wrapped) => {
                let mut d = BodyDigest::new();
                d.update(&head);
                Some((d, want))
            }
            _ => None,
        };
        let keys = committed_keys(&dek, &header, ctx)?;
        Ok(Self {
            inner,
            keys,
            aad: body_aad(&head, ctx),
            digest,
            index: 0,
            seg: Zeroizing::new(Vec::with_capacity(SEGMENT_CT_LEN + 1)),
            pos: 0,
            lookahead: None,
            done: false,
        })
    }

    fn next_segment(&mut self) -> Result<(), EnvelopeError> {
        self.seg.zeroize();
        self.seg.clear();
        self.pos = 0;
        if let Some(b) = self.lookahead.take() {
            self.seg.push(b);
        }
        let have = self.seg.len();
        self.seg.resize(SEGMENT_CT_LEN, 0);
        let n = have + read_full(&mut self.inner, &mut self.seg[have..])?;
        self.seg.truncate(n);
        let last = if n == SEGMENT_CT_LEN {
            let mut one = [0u8; 1];
            if read_full(&mut self.inner, &mut one)? == 1 {
                self.lookahead = Some(one[0]);
                false
            } else {
                true
            }
        } else {
            true
        };
        if n < TAG_LEN {
            return Err(EnvelopeError::Decrypt);
        }
        if let Some((d, _)) = &mut self.digest {
            d.update(&self.seg[..n]);
        }
        let (ct, tag) = self.seg.split_at_mut(n - TAG_LEN);
        self.keys
            .body
            .open_detached(&segment_nonce(self.index, last), &self.aad, ct, tag)?;
        // The last segment is released only once the whole body matched its digest.
        if last
            && let Some((d, want)) = &self.digest
            && !bool::from(d.clone().finish().ct_eq(want))
        {
            self.seg.zeroize();
            self.seg.clear();
            return Err(EnvelopeError::BodyMismatch);
        }
        self.seg.truncate(n - TAG_LEN);
        self.index += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for StreamOpener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.seg.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            // Every segment but the last is full, and an empty last one is the end: after
            // this, either there are bytes to return or the body is complete.
            self.next_segment()?;
        }
        let n = out.len().min(self.seg.len() - self.pos);
        out[..n].copy_from_slice(&self.seg[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads until `buf` is full or end-of-stream; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Random access to the segments of a stored body.
///
/// When the body digest must be checked ([`BodyCheck`]; always with [`SegmentReader::new`]),
/// construction reads the whole body once to hash it (no decryption), so no segment of a
/// replaced body is ever returned.
///
/// ```
/// use strongroom_crypto::{RecordId, VaultId, aead::Suite};
/// use strongroom_envelope::{Epoch, RecordContext, SegmentReader, VaultKey, seal, SEGMENT_LEN};
///
/// let vk = VaultKey::generate(Epoch::FIRST)?;
/// let ctx = RecordContext { vault_id: VaultId::generate()?, record_id: RecordId::generate()?, version: 1 };
/// let data: Vec<u8> = (0..3 * SEGMENT_LEN + 10).map(|i| (i / SEGMENT_LEN) as u8).collect();
/// let sealed = seal(&vk, Suite::Aes256Gcm, &ctx, &data)?;
/// let mut r = SegmentReader::new(&vk, &ctx, sealed.wrapped_dek.as_bytes(), std::io::Cursor::new(&sealed.body))?;
/// assert_eq!(r.segment_count(), 4);
/// assert_eq!(r.segment(2)?.expose_secret(), &vec![2u8; SEGMENT_LEN][..]);
/// assert_eq!(r.segment(3)?.expose_secret(), &[3u8; 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SegmentReader<R: Read + Seek> {
    inner: R,
    keys: RecordKeys,
    aad: [u8; 97],
    count: u64,
    last_len: usize,
}

impl<R: Read + Seek> SegmentReader<R> {
    /// Checks the header and commitment and measures the body.
    /// Opens the body `inner` with the body check of [`open`](crate::open)
    /// ([`BodyCheck::Always`]).
    pub fn new(
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        inner: R,
    ) -> Result<Self, EnvelopeError> {
        Self::with_check(vault_key, ctx, wrapped_dek, inner, BodyCheck::Always)
    }

    /// [`SegmentReader::new`] checking the body digest only where `check` says.
    pub fn with_check(
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        mut inner: R,
        check: BodyCheck,
    ) -> Result<Self, EnvelopeError> {
        let total = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        let mut head = [0u8; BodyHeader::LEN];
        let got = read_full(&mut inner, &mut head)?;
        let header = header_for_context(&head[..got], ctx)?;
        let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
        let dek = unwrap_dek(vault_key, ctx, &wrapped)?;
        check_sealed_epoch(&wrapped, &header)?;
        if let Some(want) = wrapped.body_digest().filter(|_| check.applies_to(&wrapped)) {
            inner.seek(SeekFrom::Start(0))?;
            let mut d = BodyDigest::new();
            io::copy(&mut inner, &mut d)?;
            if !bool::from(d.finish().ct_eq(&want)) {
                return Err(EnvelopeError::BodyMismatch);
            }
        }
        let keys = committed_keys(&dek, &header, ctx)?;
        let area =
            usize::try_from(total - BodyHeader::LEN as u64).map_err(|_| EnvelopeError::Decrypt)?;
        let (count, last_len) = segment_layout(area).ok_or(EnvelopeError::Decrypt)?;
        Ok(Self {
            inner,
            keys,
            aad: body_aad(&head, ctx),
            count,
            last_len,
        })
    }

    /// Number of segments.
    pub fn segment_count(&self) -> u64 {
        self.count
    }

    /// Opens segment `index` (0-based).
    pub fn segment(&mut self, index: u64) -> Result<SecretBytes, EnvelopeError> {
        if index >= self.count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("segment {index} out of range (body has {})", self.count),
            )
            .into());
        }
        let last = index + 1 == self.count;
        let len = if last { self.last_len } else { SEGMENT_CT_LEN };
        let offset = BodyHeader::LEN as u64 + index * SEGMENT_CT_LEN as u64;
        self.inner.seek(SeekFrom::Start(offset))?;
        let mut buf = Zeroizing::new(vec![0u8; len]);
        if read_full(&mut self.inner, &mut buf)? != len {
            return Err(EnvelopeError::Decrypt);
        }
        let (ct, tag) = buf.split_at_mut(len - TAG_LEN);
        self.keys
            .body
            .open_detached(&segment_nonce(index, last), &self.aad, ct, tag)?;
        buf.truncate(len - TAG_LEN);
        // `SecretBytes` copies a vector with spare capacity into an exact buffer and wipes
        // the original, so no plaintext copy is left behind.
        Ok(SecretBytes::from(core::mem::take(&mut *buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::ctx;
    use crate::{Epoch, open, seal};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 253) as u8).collect()
    }

    /// No record version is sealed before epoch 1: the digest is never checked.
    fn unchecked() -> BodyCheck {
        BodyCheck::SealedBefore(Epoch::FIRST)
    }

    /// A body sealed anew under the same data key (what a former member who kept it can
    /// write): the stream opener refuses it before returning the last segment, the segment
    /// reader before returning any.
    #[test]
    fn a_body_replaced_under_the_same_key_is_refused() {
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let pt = data(2 * SEGMENT_LEN + 10);
        let mut s = StreamSealer::new(&vk, Suite::Aes256Gcm, &ctx(), Vec::new()).unwrap();
        s.write_all(&pt).unwrap();
        let dek = s.dek.clone_secret();
        let (body, w) = s.finish().unwrap();
        let forged = crate::record::seal_body(
            &dek,
            Suite::Aes256Gcm,
            Epoch(1),
            &ctx(),
            &data(2 * SEGMENT_LEN + 11),
        )
        .unwrap();
        let mut o = StreamOpener::new(&vk, &ctx(), w.as_bytes(), &forged[..]).unwrap();
        let mut out = Vec::new();
        let err = o.read_to_end(&mut out).unwrap_err();
        assert_eq!(out.len(), 2 * SEGMENT_LEN, "the last segment is held back");
        assert!(err.to_string().contains("replaced"), "{err}");
        assert!(matches!(
            SegmentReader::new(&vk, &ctx(), w.as_bytes(), io::Cursor::new(&forged)),
            Err(EnvelopeError::BodyMismatch)
        ));
        // The real body streams whole, and so does the forged one when no check applies.
        let mut o = StreamOpener::new(&vk, &ctx(), w.as_bytes(), &body[..]).unwrap();
        out.clear();
        o.read_to_end(&mut out).unwrap();
        assert_eq!(out, pt);
        let mut o =
            StreamOpener::with_check(&vk, &ctx(), w.as_bytes(), &forged[..], unchecked()).unwrap();
        out.clear();
        o.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 2 * SEGMENT_LEN + 11);
    }

    /// A write to the output that fails poisons the sealer: every later write and `finish`
    /// fail, instead of computing on a half-flushed buffer.
    #[test]
    fn a_failed_write_poisons_the_sealer() {
        struct FailOnce(bool, Vec<u8>);
        impl Write for FailOnce {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 && !self.1.is_empty() {
                    self.0 = false;
                    return Err(io::Error::other("disk full"));
                }
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let mut s =
            StreamSealer::new(&vk, Suite::Aes256Gcm, &ctx(), FailOnce(true, Vec::new())).unwrap();
        s.write_all(&data(SEGMENT_LEN)).unwrap();
        // The next byte flushes the full segment: the output fails.
        assert!(s.write_all(&[1]).is_err());
        // The output works again, but the sealer must not go on.
        for _ in 0..3 {
            let e = s.write_all(&data(10)).unwrap_err();
            assert!(e.to_string().contains("failed earlier"), "{e}");
        }
        assert!(matches!(s.finish(), Err(EnvelopeError::Poisoned)));
    }

    #[test]
    fn stream_matches_one_shot_format() {
        let vk = VaultKey::generate(Epoch(2)).unwrap();
        for n in [
            0,
            5,
            SEGMENT_LEN,
            SEGMENT_LEN + 1,
            2 * SEGMENT_LEN,
            2 * SEGMENT_LEN + 9,
        ] {
            let pt = data(n);
            let mut s = StreamSealer::new(&vk, Suite::Aes256Gcm, &ctx(), Vec::new()).unwrap();
            // odd write sizes
            for chunk in pt.chunks(7000) {
                s.write_all(chunk).unwrap();
            }
            let (body, w) = s.finish().unwrap();
            assert_eq!(body.len(), crate::format::body_len(n), "{n}");
            // the one-shot opener reads streamed bodies
            assert_eq!(
                open(&vk, &ctx(), &body, w.as_bytes())
                    .unwrap()
                    .expose_secret(),
                &pt[..]
            );
            // and the stream opener reads one-shot bodies
            let one = seal(&vk, Suite::Aes256Gcm, &ctx(), &pt).unwrap();
            let mut o =
                StreamOpener::new(&vk, &ctx(), one.wrapped_dek.as_bytes(), &one.body[..]).unwrap();
            let mut out = Vec::new();
            o.read_to_end(&mut out).unwrap();
            assert_eq!(out, pt, "{n}");
        }
    }

    #[test]
    fn truncation_at_segment_boundary_fails() {
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let pt = data(3 * SEGMENT_LEN);
        let s = seal(&vk, Suite::Aes256Gcm, &ctx(), &pt).unwrap();
        let cut = &s.body[..BodyHeader::LEN + 2 * SEGMENT_CT_LEN];
        assert!(matches!(
            open(&vk, &ctx(), cut, s.wrapped_dek.as_bytes()),
            Err(EnvelopeError::Decrypt)
        ));
        let mut o = StreamOpener::new(&vk, &ctx(), s.wrapped_dek.as_bytes(), cut).unwrap();
        let mut out = Vec::new();
        let err = o.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // the authenticated first segment was delivered, the unterminated second was not
        assert_eq!(out.len(), SEGMENT_LEN);
        // With the body digest checked (the default), the cut body is refused up front.
        assert!(matches!(
            SegmentReader::new(&vk, &ctx(), s.wrapped_dek.as_bytes(), io::Cursor::new(cut)),
            Err(EnvelopeError::BodyMismatch)
        ));
        // Without it, each segment is still authenticated on its own.
        let mut r = SegmentReader::with_check(
            &vk,
            &ctx(),
            s.wrapped_dek.as_bytes(),
            io::Cursor::new(cut),
            unchecked(),
        )
        .unwrap();
        assert!(r.segment(0).is_ok());
        assert!(
            r.segment(1).is_err(),
            "a non-final segment read as final fails"
        );
    }

    #[test]
    fn reordered_and_swapped_segments_fail() {
        let vk = VaultKey::generate(Epoch(1)).unwrap();
        let pt = data(3 * SEGMENT_LEN);
        let a = seal(&vk, Suite::Aes256Gcm, &ctx(), &pt).unwrap();
        let seg = |b: &[u8], i: usize| {
            b[BodyHeader::LEN + i * SEGMENT_CT_LEN..BodyHeader::LEN + (i + 1) * SEGMENT_CT_LEN]
                .to_vec()
        };
        let mut swapped = a.body[..BodyHeader::LEN].to_vec();
        for i in [1, 0, 2] {
            swapped.extend(seg(&a.body, i));
        }
        assert!(open(&vk, &ctx(), &swapped, a.wrapped_dek.as_bytes()).is_err());
        // segment from another record (same data, same key, different DEK)
        let b = seal(&vk, Suite::Aes256Gcm, &ctx(), &pt).unwrap();
        let mut mixed = a.body[..BodyHeader::LEN + SEGMENT_CT_LEN].to_vec();
        mixed.extend(seg(&b.body, 1));
        mixed.extend(seg(&a.body, 2));
        assert!(open(&vk, &ctx(), &mixed, a.wrapped_dek.as_bytes()).is_err());
        assert!(matches!(
            SegmentReader::new(
                &vk,
                &ctx(),
                a.wrapped_dek.as_bytes(),
                io::Cursor::new(&mixed)
            ),
            Err(EnvelopeError::BodyMismatch)
        ));
        let mut r = SegmentReader::with_check(
            &vk,
            &ctx(),
            a.wrapped_dek.as_bytes(),
            io::Cursor::new(&mixed),
            unchecked(),
        )
        .unwrap();
        assert!(r.segment(0).is_ok());
        assert!(r.segment(1).is_err());
        assert!(r.segment(2).is_ok());
        assert!(r.segment(3).is_err());
    }
}
