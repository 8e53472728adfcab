//! Checked binary encoding helpers for strongroom's versioned formats.
//!
//! Conventions shared by every strongroom format:
//! - integers are big-endian, fixed width;
//! - variable-length fields are a `u32` big-endian length followed by the bytes, and every
//!   reader states the maximum it accepts;
//! - every format starts with a version byte; readers name the format and the field in
//!   their errors and never panic, whatever the input.
//!
//! ```
//! use strongroom_crypto::encoding::{Reader, Writer};
//! let mut w = Writer::new();
//! w.u8(1).u64(42).var_bytes(b"name");
//! let bytes = w.into_vec();
//!
//! let mut r = Reader::new("example", &bytes);
//! r.version(&[1])?;
//! assert_eq!(r.u64("count")?, 42);
//! assert_eq!(r.var_bytes("name", 64)?, b"name");
//! r.finish()?;
//!
//! let err = Reader::new("example", &bytes[..3]).skip(1).and_then(|mut r| r.u64("count"));
//! assert!(err.is_err());
//! # Ok::<(), strongroom_crypto::DecodeError>(())
//! ```
//!
//! The conventions of every format are in `docs/spec/README.md`.

use crate::DecodeError;

/// Appends fields to a byte buffer.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with capacity.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Appends a byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw bytes (fixed-length fields).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends a `u32` length prefix and the bytes.
    ///
    /// # Panics
    /// If `b` is longer than `u32::MAX` bytes (4 GiB), which no strongroom format allows.
    pub fn var_bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).expect("field longer than 4 GiB");
        self.u32(len);
        self.bytes(b)
    }

    /// Bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from untrusted bytes; every method checks bounds and names the field.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    format: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` for the named format (the name appears in errors).
    pub fn new(format: &'static str, buf: &'a [u8]) -> Self {
        Self {
            format,
            buf,
            pos: 0,
        }
    }

    /// The format name given at construction.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                format: self.format,
                field,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes, consuming the reader (for chaining in examples and tests).
    pub fn skip(mut self, n: usize) -> Result<Self, DecodeError> {
        self.bytes(n, "skipped bytes")?;
        Ok(self)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Reads a byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Reads a `u32`-length-prefixed field of at most `max` bytes.
    pub fn var_bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(DecodeError::TooLong {
                format: self.format,
                field,
                len,
                max,
            });
        }
        self.bytes(len, field)
    }

    /// Reads the version byte and checks it is one of `supported`.
    pub fn version(&mut self, supported: &[u8]) -> Result<u8, DecodeError> {
        let v = self.u8("version")?;
        if supported.contains(&v) {
            Ok(v)
        } else {
            Err(DecodeError::UnknownVersion {
                format: self.format,
                version: v,
                supported: supported.last().copied().unwrap_or(0),
            })
        }
    }

    /// All remaining bytes.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    /// Checks that nothing is left.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                format: self.format,
                count: self.remaining(),
            })
        }
    }

    /// An [`DecodeError::Invalid`] error for this format.
    pub fn invalid(&self, field: &'static str, reason: &'static str) -> DecodeError {
        DecodeError::Invalid {
            format: self.format,
            field,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn errors_name_format_and_field() {
        let mut r = Reader::new("thing v1", &[1, 0, 0]);
        r.version(&[1]).unwrap();
        let e = r.u32("epoch").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("thing v1") && s.contains("epoch"), "{s}");

        let e = Reader::new("thing", &[9]).version(&[1, 2]).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");

        let e = Reader::new("thing", &[0, 0, 0, 100, 1])
            .var_bytes("name", 10)
            .unwrap_err();
        assert!(matches!(e, DecodeError::TooLong { len: 100, .. }));

        let e = Reader::new("thing", &[0, 0, 0, 5, 1])
            .var_bytes("name", 10)
            .unwrap_err();
        assert!(matches!(
            e,
            DecodeError::Truncated {
                needed: 5,
                available: 1,
                ..
            }
        ));

        let e = Reader::new("thing", &[0]).finish().unwrap_err();
        assert!(matches!(e, DecodeError::TrailingBytes { count: 1, .. }));
    }

    proptest! {
        #[test]
        fn round_trip(a in any::<u8>(), b in any::<u16>(), c in any::<u32>(), d in any::<u64>(),
                      v in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut w = Writer::new();
            w.u8(a).u16(b).u32(c).u64(d).var_bytes(&v).bytes(&[7, 7]);
            let bytes = w.into_vec();
            let mut r = Reader::new("p", &bytes);
            prop_assert_eq!(r.u8("a").unwrap(), a);
            prop_assert_eq!(r.u16("b").unwrap(), b);
            prop_assert_eq!(r.u32("c").unwrap(), c);
            prop_assert_eq!(r.u64("d").unwrap(), d);
            prop_assert_eq!(r.var_bytes("v", 300).unwrap(), &v[..]);
            prop_assert_eq!(r.array::<2>("e").unwrap(), [7, 7]);
            r.finish().unwrap();
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new("g", &bytes);
            let _ = r.version(&[1]);
            let _ = r.var_bytes("x", 16);
            let _ = r.u64("y");
            let _ = r.array::<40>("z");
            let _ = r.finish();
        }
    }
}
