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
/// verified. A version read again costs its digest and a comparison. The log only grows,
/// so what was verified stays verified.
///
/// It also counts the unsigned versions accepted: such a version stands only if the log
/// has not moved to require signed writes since this handle last looked, which
/// [`Vault::read`](crate::Vault) then confirms with one store call.
///
/// It also keeps the record keys of the versions this handle opened
/// ([`OpenCache`](strongroom_envelope::OpenCache)), as many as it remembers verified
/// versions: a version read again skips its DEK unwrap and key derivation.
pub(crate) struct VerifiedWrites {
    verified: Mutex<HashMap<(RecordId, u64), [u8; 32]>>,
    unsigned: AtomicU64,
    pub(crate) opened: strongroom_envelope::OpenCache,
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

    fn knows(&self, at: (RecordId, u64), digest: &[u8; 32]) -> bool {
        let map = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&at).is_some_and(|d| d == digest)
    }

    fn remember(&self, at: (RecordId, u64), digest: [u8; 32]) {
        let mut map = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(at, digest);
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

/// Checks the writer of the payload `plain` (decoded with `author` and `proof`) of the
/// version `ctx`, against the verified membership log of `state`, and says how it is
/// authenticated.
pub(crate) fn check(
    access: &dyn Access,
    ctx: &RecordContext,
    plain: &[u8],
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
    let digest = digest(ctx, &plain[..plain.len() - 64]);
    let at = (ctx.record_id, ctx.version);
    if access.verified().knows(at, &digest) {
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
    access.verified().remember(at, digest);
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory of verified versions: a version is known only with the digest it was
    /// verified with, several versions are known at once, and the memory stays bounded
    /// (it starts over when full, keeping the version just verified).
    #[test]
    fn verified_versions_are_remembered_by_digest_within_a_bound() {
        let w = VerifiedWrites::default();
        let at = |n: u64| (RecordId::from_bytes([1; 16]), n);
        assert!(!w.knows(at(1), &[7; 32]));
        w.remember(at(1), [7; 32]);
        w.remember(at(2), [8; 32]);
        assert!(w.knows(at(1), &[7; 32]));
        assert!(w.knows(at(2), &[8; 32]));
        assert!(
            !w.knows(at(1), &[8; 32]),
            "another payload of the same version"
        );
        assert!(!w.knows(at(3), &[7; 32]));
        for n in 3..=REMEMBERED as u64 + 1 {
            w.remember(at(n), [9; 32]);
        }
        let len = w.verified.lock().unwrap().len();
        assert!(len <= REMEMBERED, "{len}");
        assert!(w.knows(at(REMEMBERED as u64 + 1), &[9; 32]));
    }
}
