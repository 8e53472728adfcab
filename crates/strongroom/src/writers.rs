//! Writer signatures on record versions: what a writer signs in a payload of format 2, the
//! rule a reader applies, and the per-handle memory of versions already verified.
//!
//! ```text
//! digest    = SHA-256("strongroom/v3/record-digest" ‖ 0x00 ‖ vault id (16) ‖ record id (16)
//!                     ‖ record version (u64) ‖ payload[0 .. len − 64])
//! signature = Ed25519(signer's logged identity key,
//!                     "strongroom/v3/record-writer" ‖ 0x00 ‖ digest)
//! ```
//!
//! The payload bytes before the signature include the signer's member id, the proof kind
//! and the log position the writer had verified, so all are signed. A reader accepts a
//! signed version only if the verified membership log gave the signer the right to write
//! records at that position
//! ([`Membership::writer_at`](strongroom_sharing::Membership::writer_at)), the signature
//! verifies under the signer's logged key, and (kind "written") the signer is the payload's
//! author; an unsigned version (payload format 1) only while the log does not require
//! signed writes. A signature counts only while its signer keeps the right to write: once
//! they lose it, their versions are refused until a member with the right re-attests them
//! ([`Vault::reattest`](crate::Vault::reattest)), since nothing stops a signer from naming
//! an old log position in a new signature.
//!
//! Specified in `docs/spec/payload.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest as _, Sha256};
use strongroom_crypto::{MemberId, RecordId, ScopeId};
use strongroom_envelope::RecordContext;
use strongroom_sharing::{Member, Role, WriterRefused, verify_record_signature};

use crate::VaultError;
use crate::access::Access;

const DIGEST_DOMAIN: &[u8] = b"strongroom/v3/record-digest\0";

/// How many verified versions a vault handle remembers before it starts over.
const REMEMBERED: usize = 16_384;

/// The largest sealed version (wrapped data key and sealed body) whose bytes a handle keeps
/// with its verification: a larger one is recognised by its digest alone.
const SEEN_PER_VERSION: usize = 16 * 1024;

/// How many sealed bytes a handle keeps in all (ciphertext and public key commitments
/// only, never plaintext).
const SEEN_BUDGET: usize = 8 * 1024 * 1024;

/// What a writer proof says of its signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProofKind {
    /// The signer wrote the version (and is its author).
    Written = 1,
    /// The version was written unsigned by an earlier release; the signer vouched for it
    /// when the vault moved to signed writes.
    Vouched = 2,
}

impl ProofKind {
    pub(crate) fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(ProofKind::Written),
            2 => Some(ProofKind::Vouched),
            _ => None,
        }
    }
}

/// The writer proof at the end of a payload of format 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriterProof {
    pub(crate) signer: MemberId,
    pub(crate) kind: ProofKind,
    pub(crate) seq: u64,
    pub(crate) signature: [u8; 64],
}

/// How a record version's writer is authenticated ([`SecretMeta::authorship`](crate::SecretMeta)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Authorship {
    /// Signed by its author (`updated_by`), who had the right to write records when it
    /// wrote the version.
    Signed,
    /// Written unsigned by an earlier release, and signed by `by`, a member with the right
    /// to write, when a re-encryption sealed it again (the owner's move to signed writes
    /// does this for every such version): `updated_by` is what the unsigned version said,
    /// vouched for.
    Vouched {
        /// The member who signed it.
        by: MemberId,
    },
    /// Written unsigned by an earlier release, in a vault that does not require signed
    /// writes yet: `updated_by` is a claim anyone with the vault key could have made.
    Unsigned,
}

/// The digest a writer signs: the record's place and every payload byte before the
/// signature.
pub(crate) fn digest(ctx: &RecordContext, signed_part: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DIGEST_DOMAIN);
    h.update(ctx.vault_id.as_bytes());
    h.update(ctx.record_id.as_bytes());
    h.update(ctx.version.to_be_bytes());
    h.update(signed_part);
    h.finalize().into()
}

/// Why a reader refused a record version's writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterProblem {
    /// The version carries no writer signature (payload format 1) and the vault requires
    /// signed writes.
    Unsigned,
    /// The signer named is not accepted at the log position the version names.
    Refused {
        /// The member the version names as its signer.
        signer: MemberId,
        /// The membership log position it names.
        seq: u64,
        /// Why that signer is refused there.
        why: WriterRefused,
    },
    /// The signature does not verify under the signer's logged key.
    BadSignature {
        /// The member the version names as its signer.
        signer: MemberId,
    },
    /// The signer had the right to write at the log position the version names, but lost
    /// it since (made read-only, removed or re-granted), and no member with that right
    /// re-attested the version after that: a signature alone cannot tell a version written
    /// then from one the signer made afterwards naming an old position.
    RightLost {
        /// The member the version names as its signer.
        signer: MemberId,
        /// The membership log position it names.
        seq: u64,
        /// The log position at which the signer lost the right to write.
        lost_at: u64,
        /// The log position that recorded the re-attestation of the versions the signer
        /// made before, if one did: this version was not among them.
        reattested_at: Option<u64>,
    },
    /// The version says its signer wrote it, but names another author.
    AuthorMismatch {
        /// The member who signed.
        signer: MemberId,
        /// The author the payload names.
        author: MemberId,
    },
}

impl core::fmt::Display for WriterProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriterProblem::Unsigned => {
                f.write_str("it is not signed by its writer, and this vault requires signed writes")
            }
            WriterProblem::Refused { signer, seq, why } => write!(
                f,
                "it is signed by member {signer} at membership log position {seq}, and {why}"
            ),
            WriterProblem::BadSignature { signer } => write!(
                f,
                "its writer signature does not verify under the key of member {signer}, whom it names"
            ),
            WriterProblem::RightLost {
                signer,
                seq,
                lost_at,
                reattested_at: None,
            } => write!(
                f,
                "it is signed by member {signer} at membership log position {seq}, who lost the right to write records at position {lost_at}, and it was not re-attested since: an owner or admin re-attests the versions of such a signer (`strongroom member reattest`, Vault::reattest)"
            ),
            WriterProblem::RightLost {
                signer,
                seq,
                lost_at,
                reattested_at: Some(at),
            } => write!(
                f,
                "it is signed by member {signer} at membership log position {seq}, who lost the right to write records at position {lost_at}; the versions they signed before were re-attested (position {at}) and this one was not among them: it was made after they lost the right, or brought back from an older copy. Write the secret again"
            ),
            WriterProblem::AuthorMismatch { signer, author } => write!(
                f,
                "it is signed by member {signer} as its writer but names member {author} as its author"
            ),
        }
    }
}

/// Versions this handle verified: `(record, version)` → the digest whose signature
/// verified, and (within [`SEEN_BUDGET`]) the sealed bytes it was opened from. A version
/// read again from the same bytes costs a comparison of them; from other bytes (a rewrap),
/// its digest and a comparison. The log only grows, so what was verified stays verified.
///
/// It also counts the unsigned versions accepted: such a version stands only if the log
/// has not moved to require signed writes since this handle last looked, which
/// [`Vault::read`](crate::Vault) then confirms with one store call.
///
/// It also keeps the record keys of the versions this handle opened
/// ([`OpenCache`](strongroom_envelope::OpenCache)), as many as it remembers verified
/// versions: a version read again skips its DEK unwrap and key derivation.
pub(crate) struct VerifiedWrites {
    verified: Mutex<Verified>,
    unsigned: AtomicU64,
    pub(crate) opened: strongroom_envelope::OpenCache,
}

/// A version as opened: what it was opened from (the key that unwrapped its data key, by
/// its 256-bit commitment; its wrapped data key and its sealed body, exactly as read) and
/// the payload it opened to. Decryption is deterministic: the same key, wrap and body under
/// the same record context open to the same payload, so a version opened again from the
/// same bytes has the digest it had.
pub(crate) struct Opened<'a> {
    pub(crate) key: &'a [u8; 32],
    pub(crate) dek: &'a [u8],
    pub(crate) body: &'a [u8],
    pub(crate) plain: &'a [u8],
}

#[derive(Default)]
struct Verified {
    versions: HashMap<(RecordId, u64), Known>,
    /// The sum of the `Seen` bytes kept, bounded by [`SEEN_BUDGET`].
    seen_bytes: usize,
}

/// A verified version: the digest whose signature verified and, within the bounds, the
/// sealed bytes it was opened from.
struct Known {
    digest: [u8; 32],
    seen: Option<Seen>,
}

struct Seen {
    key: [u8; 32],
    dek_len: usize,
    /// The wrapped data key, then the sealed body.
    bytes: Box<[u8]>,
}

impl Seen {
    fn matches(&self, s: &Opened<'_>) -> bool {
        self.key == *s.key
            && self.dek_len == s.dek.len()
            && self.bytes.len() == s.dek.len() + s.body.len()
            && self.bytes[..self.dek_len] == *s.dek
            && self.bytes[self.dek_len..] == *s.body
    }
}

impl Default for VerifiedWrites {
    fn default() -> Self {
        Self {
            verified: Mutex::default(),
            unsigned: AtomicU64::default(),
            opened: strongroom_envelope::OpenCache::new(REMEMBERED),
        }
    }
}

impl VerifiedWrites {
    /// How many unsigned versions this handle accepted so far.
    pub(crate) fn unsigned_accepted(&self) -> u64 {
        self.unsigned.load(Ordering::Relaxed)
    }

    /// Whether the version `at` was verified after being opened from exactly `opened`.
    fn seen(&self, at: (RecordId, u64), opened: &Opened<'_>) -> bool {
        let v = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        v.versions
            .get(&at)
            .and_then(|k| k.seen.as_ref())
            .is_some_and(|seen| seen.matches(opened))
    }

    /// Whether the version `at` was verified with the payload digest `digest`.
    fn knows(&self, at: (RecordId, u64), digest: &[u8; 32]) -> bool {
        let v = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        v.versions.get(&at).is_some_and(|k| k.digest == *digest)
    }

    /// Remembers that the version `at`, opened from `opened` to a payload of digest
    /// `digest`, verified: the caller computed `digest` from what `opened` opened to.
    fn remember(&self, at: (RecordId, u64), digest: [u8; 32], opened: &Opened<'_>) {
        let mut v = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = v.versions.remove(&at) {
            v.seen_bytes -= old.seen.map_or(0, |s| s.bytes.len());
        } else if v.versions.len() >= REMEMBERED {
            *v = Verified::default();
        }
        let len = opened.dek.len() + opened.body.len();
        let seen = (len <= SEEN_PER_VERSION && v.seen_bytes + len <= SEEN_BUDGET).then(|| {
            v.seen_bytes += len;
            Seen {
                key: *opened.key,
                dek_len: opened.dek.len(),
                bytes: [opened.dek, opened.body].concat().into_boxed_slice(),
            }
        });
        v.versions.insert(at, Known { digest, seen });
    }
}

/// The log position this member signs at, if it has the right to write records there
/// (`PermissionDenied` otherwise). Checked against the log a write, a re-encryption or a
/// re-attestation commits under: one retried after the log moved (this member made
/// read-only meanwhile) is refused rather than signed without the right, which every
/// reader would refuse.
pub(crate) fn signing_position(
    access: &dyn Access,
    scope: Option<ScopeId>,
) -> Result<u64, VaultError> {
    let seq = crate::records::log_position(access);
    let membership = access.membership();
    let me = access.member_id();
    if membership.writer_in(me, seq, scope).is_ok() {
        return Ok(seq);
    }
    // A scoped member's role here is its role on the scope.
    let role = match (membership.member(me).map(Member::role), scope) {
        (Some(Role::Scoped), Some(scope)) => membership
            .scopes_of(me)
            .into_iter()
            .find(|(s, _)| *s == scope)
            .map(|(_, g)| g.role()),
        (role, _) => role,
    };
    Err(VaultError::PermissionDenied { role })
}

/// What [`check`] does with a version whose signer lost the right to write since
/// ([`WriterProblem::RightLost`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LostRight {
    /// Refuse it: what every read does.
    Refuse,
    /// Check the signature as of the position it names and accept it for re-attestation
    /// (unless the log recorded the re-attestation of that loss already): what
    /// re-attestation, re-encryption and a restore's verification do.
    ToAttest,
    /// Check nothing: the payload is opened only for its namespace and name, to move its
    /// index row (a rotation), and is never returned, vouched for or re-sealed. Whoever
    /// wrote it, a read checks it where the row lands.
    NameOnly,
}

/// How [`check`] found a version's writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Checked {
    pub(crate) authorship: Authorship,
    /// The signer lost the right to write since (only with [`LostRight::ToAttest`]): the
    /// version needs a re-attestation.
    pub(crate) needs_attestation: bool,
}

/// Checks the writer of the payload `opened.plain` (decoded with `author` and `proof`) of
/// the version `ctx`, against the verified membership log of `state`, and says how it is
/// authenticated.
pub(crate) fn check(
    access: &dyn Access,
    ctx: &RecordContext,
    opened: &Opened<'_>,
    author: MemberId,
    proof: Option<&WriterProof>,
    lost: LostRight,
    scope: Option<ScopeId>,
) -> Result<Checked, VaultError> {
    let refuse = |problem| VaultError::Writer {
        record: ctx.record_id.to_string(),
        version: ctx.version,
        problem,
    };
    if lost == LostRight::NameOnly {
        return Ok(Checked {
            authorship: Authorship::Unsigned,
            needs_attestation: false,
        });
    }
    let membership = access.membership();
    let Some(proof) = proof else {
        if membership.signed_writes_required() {
            return Err(refuse(WriterProblem::Unsigned));
        }
        access.verified().unsigned.fetch_add(1, Ordering::Relaxed);
        return Ok(Checked {
            authorship: Authorship::Unsigned,
            needs_attestation: false,
        });
    };
    let authorship = match proof.kind {
        ProofKind::Written if proof.signer != author => {
            return Err(refuse(WriterProblem::AuthorMismatch {
                signer: proof.signer,
                author,
            }));
        }
        ProofKind::Written => Authorship::Signed,
        ProofKind::Vouched => Authorship::Vouched { by: proof.signer },
    };
    // Before the memory of verified versions: a signer may have lost the right since the
    // version was verified.
    // Without signed writes required, an unsigned version is accepted anyway: the rule
    // would refuse nothing an attacker could not write otherwise.
    let ended = membership.write_right_lost_in(proof.signer, proof.seq, scope);
    if let Some(ended) = ended
        && membership.signed_writes_required()
        && (lost == LostRight::Refuse || ended.reattested_at.is_some())
    {
        return Err(refuse(WriterProblem::RightLost {
            signer: proof.signer,
            seq: proof.seq,
            lost_at: ended.at,
            reattested_at: ended.reattested_at,
        }));
    }
    let checked = Checked {
        authorship,
        needs_attestation: ended.is_some(),
    };
    let at = (ctx.record_id, ctx.version);
    let verified = access.verified();
    // Opened from the very bytes it was verified from: the same payload, without hashing it.
    if verified.seen(at, opened) {
        return Ok(checked);
    }
    let plain = opened.plain;
    let digest = digest(ctx, &plain[..plain.len() - 64]);
    if verified.knows(at, &digest) {
        // The same payload from other bytes (its data key rewrapped since).
        verified.remember(at, digest, opened);
        return Ok(checked);
    }
    let key = membership
        .writer_in(proof.signer, proof.seq, scope)
        .map_err(|why| {
            refuse(WriterProblem::Refused {
                signer: proof.signer,
                seq: proof.seq,
                why,
            })
        })?;
    if !verify_record_signature(key, &digest, &proof.signature) {
        return Err(refuse(WriterProblem::BadSignature {
            signer: proof.signer,
        }));
    }
    verified.remember(at, digest, opened);
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened<'a>(key: &'a [u8; 32], dek: &'a [u8], body: &'a [u8]) -> Opened<'a> {
        Opened {
            key,
            dek,
            body,
            plain: b"",
        }
    }

    /// The memory of verified versions: a version is known only with the digest it was
    /// verified with, several versions are known at once, and the memory stays bounded
    /// (it starts over when full, keeping the version just verified).
    #[test]
    fn verified_versions_are_remembered_by_digest_within_a_bound() {
        let w = VerifiedWrites::default();
        let at = |n: u64| (RecordId::from_bytes([1; 16]), n);
        let s = opened(&[1; 32], b"wrap", b"body");
        assert!(!w.knows(at(1), &[7; 32]));
        w.remember(at(1), [7; 32], &s);
        w.remember(at(2), [8; 32], &s);
        assert!(w.knows(at(1), &[7; 32]));
        assert!(w.knows(at(2), &[8; 32]));
        assert!(
            !w.knows(at(1), &[8; 32]),
            "another payload of the same version"
        );
        assert!(!w.knows(at(3), &[7; 32]));
        for n in 3..=REMEMBERED as u64 + 1 {
            w.remember(at(n), [9; 32], &s);
        }
        let v = w.verified.lock().unwrap();
        let len = v.versions.len();
        assert!(len <= REMEMBERED, "{len}");
        assert_eq!(v.seen_bytes, len * 8, "the bytes kept are counted");
        drop(v);
        assert!(w.knows(at(REMEMBERED as u64 + 1), &[9; 32]));
    }

    /// A version is recognised from its sealed bytes only if the key, the wrap (and where
    /// it ends) and the body are all the ones it was verified from.
    #[test]
    fn a_version_is_seen_only_from_every_byte_it_was_verified_from() {
        let w = VerifiedWrites::default();
        let at = (RecordId::from_bytes([1; 16]), 1);
        let s = opened(&[1; 32], b"wrap", b"body");
        assert!(!w.seen(at, &s), "nothing verified yet");
        w.remember(at, [7; 32], &s);
        assert!(w.seen(at, &s));
        assert!(!w.seen((at.0, 2), &s), "another version");
        assert!(
            !w.seen((RecordId::from_bytes([2; 16]), 1), &s),
            "another record"
        );
        for (what, other) in [
            ("another key", opened(&[2; 32], b"wrap", b"body")),
            ("another wrap", opened(&[1; 32], b"wrbp", b"body")),
            ("another body", opened(&[1; 32], b"wrap", b"bodz")),
            ("a longer body", opened(&[1; 32], b"wrap", b"body!")),
            ("a shorter body", opened(&[1; 32], b"wrap", b"bod")),
            ("the wrap ending later", opened(&[1; 32], b"wrapb", b"ody")),
            ("the wrap ending sooner", opened(&[1; 32], b"wra", b"pbody")),
        ] {
            assert!(!w.seen(at, &other), "{what}");
        }
        // Verified again from other bytes (a rewrap): those are the ones seen now.
        let rewrapped = opened(&[1; 32], b"WRAP", b"body");
        w.remember(at, [7; 32], &rewrapped);
        assert!(w.seen(at, &rewrapped));
        assert!(!w.seen(at, &s));
        assert_eq!(
            w.verified.lock().unwrap().seen_bytes,
            8,
            "the old bytes are released"
        );
    }

    /// The sealed bytes kept are bounded per version and in all; beyond either bound a
    /// version is still known by its digest.
    #[test]
    fn the_sealed_bytes_kept_are_bounded() {
        let w = VerifiedWrites::default();
        let at = |n: u64| (RecordId::from_bytes([1; 16]), n);
        let large = vec![0; SEEN_PER_VERSION];
        let too_large = opened(&[1; 32], b"w", &large);
        w.remember(at(1), [7; 32], &too_large);
        assert!(!w.seen(at(1), &too_large));
        assert!(w.knows(at(1), &[7; 32]));
        let fits = opened(&[1; 32], b"", &large);
        let mut n = 2;
        while w.verified.lock().unwrap().seen_bytes + SEEN_PER_VERSION <= SEEN_BUDGET {
            w.remember(at(n), [8; 32], &fits);
            assert!(w.seen(at(n), &fits), "{n}");
            n += 1;
        }
        assert_eq!(n - 2, (SEEN_BUDGET / SEEN_PER_VERSION) as u64);
        w.remember(at(n), [8; 32], &fits);
        assert!(!w.seen(at(n), &fits), "over the budget");
        assert!(w.knows(at(n), &[8; 32]));
        assert!(w.verified.lock().unwrap().seen_bytes <= SEEN_BUDGET);
    }
}
