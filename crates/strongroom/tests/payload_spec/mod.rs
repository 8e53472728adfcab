//! An independent writer of the record payload (`docs/spec/payload.md`): formats 1 and 2
//! built from the specification alone, with `sha2` for the digest a writer signs. Shared by
//! the tests that act as someone writing straight to the storage.
#![allow(dead_code, unreachable_pub)]

use sha2::{Digest as _, Sha256};

/// A payload of format 1 (no writer signature), as `docs/spec/payload.md` lays it out.
pub fn payload_v1(ns: &str, name: &str, author: &[u8; 16], value: &[u8]) -> Vec<u8> {
    let mut p = vec![1];
    for field in [ns.as_bytes(), name.as_bytes()] {
        p.extend_from_slice(&(field.len() as u32).to_be_bytes());
        p.extend_from_slice(field);
    }
    p.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    p.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    p.extend_from_slice(author);
    p.extend_from_slice(&(value.len() as u32).to_be_bytes());
    p.extend_from_slice(value);
    p
}

/// The digest a writer signs, from the specification.
pub fn spec_digest_of(
    vault: &[u8; 16],
    record: &[u8; 16],
    version: u64,
    signed_part: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"strongroom/v3/record-digest\0");
    h.update(vault);
    h.update(record);
    h.update(version.to_be_bytes());
    h.update(signed_part);
    h.finalize().into()
}

/// Proof kind 1: the signer wrote the version.
pub const WRITTEN: u8 = 1;

/// A payload of format 2: format 1 with version byte 2, then the signer, the proof kind,
/// the log position and a signature `sign` makes over the digest of everything before it.
pub fn payload_v2(
    v1: &[u8],
    signer: &[u8; 16],
    kind: u8,
    seq: u64,
    sign: impl FnOnce(&[u8]) -> [u8; 64],
) -> Vec<u8> {
    let mut p = v1.to_vec();
    p[0] = 2;
    p.extend_from_slice(signer);
    p.push(kind);
    p.extend_from_slice(&seq.to_be_bytes());
    let signature = sign(&p);
    p.extend_from_slice(&signature);
    p
}
