//! Streaming and random access for large bodies.
//!
//! A body is a sequence of 64 KiB segments (see the crate docs), so a large secret can be
//! sealed and opened through [`std::io::Write`] and [`std::io::Read`] with one segment in
//! memory, and any segment can be opened on its own.

use std::io::{self, Read, Seek, SeekFrom, Write};

use strongroom_crypto::SecretBytes;
use strongroom_crypto::aead::{Aead, Suite};
use zeroize::{Zeroize, Zeroizing};

use crate::format::{
    BodyHeader, RecordContext, SEGMENT_CT_LEN, SEGMENT_LEN, TAG_LEN, WrappedDek, body_aad,
    segment_layout, segment_nonce,
};
use crate::record::{
    RecordKeys, committed_keys, derive_record_keys, fresh_dek_and_nonce, header_for,
    header_for_context, unwrap_dek, wrap_dek,
};
use crate::{EnvelopeError, VaultKey};

/// Seals a body as it is written: writes the header at once, then one segment per 64 KiB.
///
/// The last segment is only known at [`finish`](StreamSealer::finish), so up to one segment
/// stays buffered (zeroized on drop). Dropping the sealer without `finish` leaves an
/// unterminated body that will never open.
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
pub struct StreamSealer<W: Write> {
    inner: Option<W>,
    keys: RecordKeys,
    aad: [u8; 97],
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    wrapped: WrappedDek,
}

impl<W: Write> StreamSealer<W> {
    /// Starts a body for the record at `ctx` under a fresh DEK wrapped by `vault_key`, and
    /// writes its header to `inner`.
    pub fn new(
        vault_key: &VaultKey,
        suite: Suite,
        ctx: &RecordContext,
        mut inner: W,
    ) -> Result<Self, EnvelopeError> {
        let (dek, nonce) = fresh_dek_and_nonce()?;
        let keys = derive_record_keys(&dek, suite, ctx);
        let header = header_for(&keys, suite, vault_key.epoch(), ctx);
        let wrapped = wrap_dek(vault_key, ctx, &dek, &nonce)?;
        inner.write_all(&header)?;
        Ok(Self {
            inner: Some(inner),
            aad: body_aad(&header, ctx),
            keys,
            buf: Zeroizing::new(Vec::with_capacity(SEGMENT_LEN + TAG_LEN)),
            index: 0,
            wrapped,
        })
    }

    fn flush_segment(&mut self, last: bool) -> Result<(), EnvelopeError> {
        let nonce = segment_nonce(self.index, last);
        let tag = self
            .keys
            .body
            .seal_detached(&nonce, &self.aad, &mut self.buf)?;
        self.buf.extend_from_slice(&tag);
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("stream already finished"))?
            .write_all(&self.buf)?;
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
        Ok((inner, self.wrapped))
    }
}

impl<W: Write> Write for StreamSealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
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
pub struct StreamOpener<R: Read> {
    inner: R,
    keys: RecordKeys,
    aad: [u8; 97],
    index: u64,
    seg: Zeroizing<Vec<u8>>,
    pos: usize,
    lookahead: Option<u8>,
    done: bool,
}

impl<R: Read> StreamOpener<R> {
    /// Reads and checks the header, unwraps the DEK and checks the key commitment.
    pub fn new(
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        mut inner: R,
    ) -> Result<Self, EnvelopeError> {
        let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
        let mut head = [0u8; BodyHeader::LEN];
        read_full(&mut inner, &mut head)
            .and_then(|n| {
                if n == head.len() {
                    Ok(())
                } else {
                    Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                }
            })
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    EnvelopeError::Decode(strongroom_crypto::DecodeError::Truncated {
                        format: "record body v1",
                        field: "header",
                        needed: BodyHeader::LEN,
                        available: 0,
                    })
                }
                _ => EnvelopeError::Io(e),
            })?;
        let header = header_for_context(&head, ctx)?;
        let dek = unwrap_dek(vault_key, ctx, &wrapped)?;
        let keys = committed_keys(&dek, &header, ctx)?;
        Ok(Self {
            inner,
            keys,
            aad: body_aad(&head, ctx),
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
        let (ct, tag) = self.seg.split_at_mut(n - TAG_LEN);
        self.keys
            .body
            .open_detached(&segment_nonce(self.index, last), &self.aad, ct, tag)?;
        self.seg.truncate(n - TAG_LEN);
        self.index += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for StreamOpener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.seg.len() {
                let n = out.len().min(self.seg.len() - self.pos);
                out[..n].copy_from_slice(&self.seg[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            self.next_segment()?;
        }
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
    pub fn new(
        vault_key: &VaultKey,
        ctx: &RecordContext,
        wrapped_dek: &[u8],
        mut inner: R,
    ) -> Result<Self, EnvelopeError> {
        let total = inner.seek(SeekFrom::End(0))?;
        inner.seek(SeekFrom::Start(0))?;
        let mut head = [0u8; BodyHeader::LEN];
        let got = read_full(&mut inner, &mut head)?;
        let header = header_for_context(&head[..got], ctx)?;
        let wrapped = WrappedDek::from_bytes(wrapped_dek)?;
        let dek = unwrap_dek(vault_key, ctx, &wrapped)?;
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
        let mut r = SegmentReader::new(&vk, &ctx(), s.wrapped_dek.as_bytes(), io::Cursor::new(cut))
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
        let mut r = SegmentReader::new(
            &vk,
            &ctx(),
            a.wrapped_dek.as_bytes(),
            io::Cursor::new(&mixed),
        )
        .unwrap();
        assert!(r.segment(0).is_ok());
        assert!(r.segment(1).is_err());
        assert!(r.segment(2).is_ok());
        assert!(r.segment(3).is_err());
    }
}
