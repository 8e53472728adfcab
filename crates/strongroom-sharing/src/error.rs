//! Errors of member sharing: [`SharingError`] for operations, [`VerifyError`] for what the
//! verification of stored membership data refused.

use strongroom_crypto::{CryptoError, DecodeError, MemberId, ScopeId};
use strongroom_envelope::Epoch;
use strongroom_recovery::KeyholderError;
use strongroom_store::StoreError;

use crate::Role;

/// A sharing operation failed.
///
/// Keyholder failures ([`SharingError::Keyholder`]: wrong passphrase, wrong recovery key…)
/// and storage failures ([`SharingError::Store`]) pass through unchanged so callers can
/// tell them apart; anything the verification of stored data refused is a
/// [`SharingError::Verify`], and no key is released in that case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharingError {
    /// The store failed; a [`StoreError::Conflict`] means another member changed the vault
    /// first (see [`SharingError::is_conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keyholder could not unwrap the member key (wrong passphrase, wrong recovery
    /// key, missing keyring entry, KDF parameters below the floor…).
    #[error(transparent)]
    Keyholder(#[from] KeyholderError),
    /// A cryptographic primitive failed (the OS random number generator, a length).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Bytes handed in by the caller (an identity, pins) did not parse.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Stored membership data failed verification: the storage (or someone with write
    /// access to it) changed, replayed or forged it. Nothing was unlocked.
    #[error("refusing the vault's membership data: {0}")]
    Verify(#[from] VerifyError),
    /// No membership log exists for this vault in the store.
    #[error("no vault {vault} in this store: create it first, or check the store location")]
    NoVault {
        /// The vault id that was asked for (hex).
        vault: String,
    },
    /// The store already holds a vault.
    #[error("this store already holds a vault (its membership log is not empty); open it instead")]
    VaultExists,
    /// No sealed credentials for the member are stored in this vault.
    #[error(
        "no member credentials are stored in this vault{}; a newly added member must `join` first",
        member.map(|m| format!(" for member {m}")).unwrap_or_default()
    )]
    NoCredentials {
        /// The member asked for, if one was.
        member: Option<MemberId>,
    },
    /// Several members have credentials in this store and none was named.
    #[error("{count} members have credentials in this vault: name the member to unlock")]
    AmbiguousMember {
        /// How many members have credentials here.
        count: usize,
    },
    /// The member is not (or no longer) a member of the vault.
    #[error("member {member} is not a current member of this vault")]
    NotAMember {
        /// The member.
        member: MemberId,
    },
    /// The member is already listed in the membership log.
    #[error(
        "member {member} is already in this vault's membership log (member ids are never reused)"
    )]
    AlreadyMember {
        /// The member.
        member: MemberId,
    },
    /// The acting member's role does not allow the operation.
    #[error("a member with role {role} may not {action}; ask an owner")]
    PermissionDenied {
        /// What was attempted.
        action: &'static str,
        /// The acting member's role.
        role: Role,
    },
    /// The operation would leave the vault without an owner.
    #[error("the vault must keep at least one owner: add or promote another owner first")]
    LastOwner,
    /// The change is not valid in the vault's current state.
    #[error("invalid membership change: {reason}")]
    InvalidChange {
        /// Why.
        reason: &'static str,
    },
    /// The member is a scoped member (or is not one) and the call is for the other kind:
    /// scoped members open with [`unlock_scoped`](crate::unlock_scoped) and hold no vault
    /// key; full members open with [`unlock`](crate::unlock).
    #[error(
        "member {member} is {}",
        if *scoped {
            "a scoped member (it holds scope keys only): it opens with unlock_scoped and is removed with remove_scoped_member"
        } else {
            "a full member: it opens with unlock and is removed with remove_member"
        }
    )]
    WrongKindOfMember {
        /// The member.
        member: MemberId,
        /// Whether the member is scoped.
        scoped: bool,
    },
    /// The member already stored credentials in this vault.
    #[error("member {member} already has credentials in this vault: unlock instead of joining")]
    AlreadyJoined {
        /// The member.
        member: MemberId,
    },
    /// A member cannot re-grant their own slot (they would need their lost key to sign).
    #[error("a member cannot re-grant themselves: another owner or admin must do it")]
    SelfRegrant,
    /// The fingerprint the user typed does not match the identity.
    #[error(
        "the fingerprint does not match this identity: do not add it, and check with its owner over another channel"
    )]
    FingerprintMismatch,
    /// A fingerprint confirmation was made for another identity than the one used.
    #[error("the fingerprint confirmation was made for another identity")]
    ConfirmationForOtherIdentity,
    /// A display name is not acceptable.
    #[error("invalid member name: {reason}")]
    InvalidName {
        /// Why.
        reason: &'static str,
    },
    /// A text identity could not be parsed.
    #[error("invalid identity text: {reason}")]
    InvalidIdentityText {
        /// Why.
        reason: &'static str,
    },
    /// An identity's binding signature does not verify.
    #[error("the identity's binding signature does not verify: it was altered or forged")]
    BadIdentitySignature,
    /// The identity handed in is not the one the log lists for that member.
    #[error("this identity is not the one the membership log lists for member {member}")]
    IdentityNotLogged {
        /// The member.
        member: MemberId,
    },
    /// No keyholder is given where at least one is needed.
    #[error("at least one keyholder is needed to protect the member key")]
    NoKeyholder,
    /// The keyholder to remove is the member's last one.
    #[error(
        "refusing to remove the last keyholder of member {member}: the member could never unlock again; add another keyholder first"
    )]
    LastKeyholder {
        /// The member.
        member: MemberId,
    },
    /// No keyholder with that stanza id is registered for the member.
    #[error("member {member} has no keyholder with id {id}")]
    KeyholderNotFound {
        /// The member.
        member: MemberId,
        /// The stanza id (hex).
        id: String,
    },
    /// A keyholder with the same stanza id is already registered.
    #[error("member {member} already has a keyholder with id {id}")]
    KeyholderExists {
        /// The member.
        member: MemberId,
        /// The stanza id (hex).
        id: String,
    },
    /// The caller's pins belong to another vault.
    #[error(
        "these pins belong to vault {pinned}, not {requested}: use the pins saved for this vault"
    )]
    PinsForOtherVault {
        /// Vault of the pins (hex).
        pinned: String,
        /// Vault asked for (hex).
        requested: String,
    },
    /// The vault has too many epochs or log entries for this build.
    #[error("limit reached: {what}")]
    Limit {
        /// What overflowed.
        what: &'static str,
    },
}

impl SharingError {
    /// Whether another writer changed the vault first: [`refresh`](crate::Session::refresh)
    /// the session and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, SharingError::Store(e) if e.is_conflict())
    }

    /// Whether stored data failed verification (tampering, rollback, fork).
    pub fn is_tampering(&self) -> bool {
        matches!(self, SharingError::Verify(_))
    }
}

/// What the verification of stored membership data refused.
///
/// Each variant names the log sequence number, member or epoch involved so an operator can
/// inspect it; none carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// An entry of the log does not parse.
    #[error("membership log entry {seq} is malformed: {source}")]
    Malformed {
        /// Sequence number.
        seq: u64,
        /// The parse error.
        source: DecodeError,
    },
    /// The log has no genesis entry or does not start with one.
    #[error("the membership log does not start with a genesis entry")]
    MissingGenesis,
    /// An entry's signature does not verify under its signer's logged key.
    #[error("membership log entry {seq} has an invalid signature")]
    BadSignature {
        /// Sequence number.
        seq: u64,
    },
    /// An entry does not hold the hash of the entry before it.
    #[error("membership log entry {seq} does not chain to entry {}: entries were deleted, reordered or replaced", seq.saturating_sub(1))]
    BrokenChain {
        /// Sequence number.
        seq: u64,
    },
    /// An entry is stored under another sequence number than it states, or a number is
    /// missing.
    #[error(
        "membership log entry expected at position {expected} states position {found}: entries were deleted or reordered"
    )]
    OutOfOrder {
        /// Position in the log.
        expected: u64,
        /// Position the entry states.
        found: u64,
    },
    /// An entry belongs to another vault.
    #[error("membership log entry {seq} belongs to another vault (replayed across vaults)")]
    WrongVault {
        /// Sequence number.
        seq: u64,
    },
    /// A public identity in the log has a bad binding signature.
    #[error("membership log entry {seq} carries an identity whose binding signature fails")]
    BadIdentity {
        /// Sequence number.
        seq: u64,
    },
    /// An entry is signed by someone who never was a member.
    #[error("membership log entry {seq} is signed by {signer}, who is not a member")]
    UnknownSigner {
        /// Sequence number.
        seq: u64,
        /// Claimed signer.
        signer: MemberId,
    },
    /// An entry is signed by a member removed (or replaced) before it.
    #[error(
        "membership log entry {seq} is signed by {signer}, who was removed from the vault earlier"
    )]
    SignerRemoved {
        /// Sequence number.
        seq: u64,
        /// The former member.
        signer: MemberId,
    },
    /// An entry's signer lacks the role for it.
    #[error("membership log entry {seq}: a member with role {role} may not {action}")]
    Unauthorized {
        /// Sequence number.
        seq: u64,
        /// The signer's role.
        role: Role,
        /// What the entry does.
        action: &'static str,
    },
    /// An entry is well signed but makes no sense in the state before it.
    #[error("membership log entry {seq} is invalid: {reason}")]
    InvalidEntry {
        /// Sequence number.
        seq: u64,
        /// Why.
        reason: &'static str,
    },
    /// The store's log head disagrees with the entries it returns.
    #[error("the store reports {reported} membership log entries but returned {returned}")]
    HeadMismatch {
        /// Entries the head implies.
        reported: u64,
        /// Entries returned.
        returned: u64,
    },
    /// The log is shorter than the pinned high-water mark.
    #[error(
        "the membership log has {found} entries but {pinned} were already verified here: the storage rolled it back"
    )]
    Rollback {
        /// Entries pinned.
        pinned: u64,
        /// Entries found.
        found: u64,
    },
    /// The entry at the pinned position differs from the pinned one.
    #[error(
        "membership log entry {seq} differs from the one verified here before: the storage forked the log"
    )]
    Fork {
        /// Sequence number.
        seq: u64,
    },
    /// The epoch pinned here is newer than the log's.
    #[error(
        "the log's epoch {found} is older than the pinned epoch {pinned}: the storage rolled it back"
    )]
    EpochRollback {
        /// Pinned epoch.
        pinned: Epoch,
        /// Epoch found.
        found: Epoch,
    },
    /// The genesis entry is signed by another key than the pinned one.
    #[error(
        "the vault's genesis signer differs from the pinned one: this is another vault or a forged log"
    )]
    GenesisSignerMismatch,
    /// The log's vault id differs from the vault asked for.
    #[error("the membership log belongs to another vault")]
    VaultMismatch,
    /// A stored grant is addressed to a key that is not the member's logged key.
    #[error(
        "the grant of epoch {epoch} to member {member} is addressed to a key that is not the member's logged key"
    )]
    GrantKeyMismatch {
        /// Member.
        member: MemberId,
        /// Epoch.
        epoch: Epoch,
    },
    /// A grant row is stored under another key than its contents say.
    #[error(
        "a grant row for member {member}, epoch {epoch} is stored in another member's or epoch's place"
    )]
    GrantMisplaced {
        /// Member the contents name.
        member: MemberId,
        /// Epoch the contents name.
        epoch: Epoch,
    },
    /// A classical grant is stored although the signed log requires hybrid grants.
    #[error(
        "the grant of epoch {epoch} to member {member} is classical (X25519) although the membership log requires hybrid grants"
    )]
    ClassicalGrant {
        /// Member.
        member: MemberId,
        /// Epoch.
        epoch: Epoch,
    },
    /// A current member has no grant for the current epoch.
    #[error("member {member} has no grant for the current epoch {epoch}")]
    MissingGrant {
        /// Member.
        member: MemberId,
        /// Epoch.
        epoch: Epoch,
    },
    /// A grant exists that the log does not imply (unknown member, a removed member after
    /// removal, an epoch before the member joined or after the current one).
    #[error(
        "a grant of epoch {epoch} to member {member} exists that the membership log does not allow"
    )]
    UnexpectedGrant {
        /// Member.
        member: MemberId,
        /// Epoch.
        epoch: Epoch,
    },
    /// A stored grant or chain link does not parse.
    #[error("a stored {what} is malformed: {source}")]
    MalformedWrap {
        /// Grant or chain link.
        what: &'static str,
        /// Parse error.
        source: DecodeError,
    },
    /// The member's own grant does not decrypt.
    #[error("the grant of epoch {epoch} to this member does not decrypt: it was tampered with")]
    GrantUnreadable {
        /// Epoch.
        epoch: Epoch,
    },
    /// A key opened from a grant or the chain is not the key the log names for its epoch.
    #[error(
        "the vault key found for epoch {epoch} is not the one the membership log names: refusing a storage-chosen key"
    )]
    VaultKeyMismatch {
        /// Epoch.
        epoch: Epoch,
    },
    /// The link from an epoch to the one before it is missing.
    #[error("the key-chain link from epoch {epoch} to the epoch before it is missing")]
    MissingChainLink {
        /// Epoch.
        epoch: Epoch,
    },
    /// The link from an epoch to the one before it does not decrypt.
    #[error("the key-chain link from epoch {epoch} does not decrypt: it was tampered with")]
    ChainUnreadable {
        /// Epoch.
        epoch: Epoch,
    },
    /// A scope key row (grant or link) is missing.
    #[error("the {what} of scope {scope} for scope epoch {epoch} is missing")]
    MissingScopeKey {
        /// Which row: "scope grant", "scope link" or "scope chain link".
        what: &'static str,
        /// The scope.
        scope: ScopeId,
        /// The scope epoch.
        epoch: Epoch,
    },
    /// A scope grant or link does not decrypt with the key it names.
    #[error(
        "the {what} of scope {scope} for scope epoch {epoch} does not decrypt: it was tampered with"
    )]
    ScopeKeyUnreadable {
        /// Which row.
        what: &'static str,
        /// The scope.
        scope: ScopeId,
        /// The scope epoch.
        epoch: Epoch,
    },
    /// A key opened from a scope grant or link is not the key the log binds for its scope
    /// epoch.
    #[error(
        "the key found for scope {scope}, scope epoch {epoch}, is not the one the membership log names: refusing a storage-chosen key"
    )]
    ScopeKeyMismatch {
        /// The scope.
        scope: ScopeId,
        /// The scope epoch.
        epoch: Epoch,
    },
    /// A scope grant exists that the log does not imply, or sits under another row key.
    #[error(
        "a grant of scope {scope}, scope epoch {epoch}, to member {member} exists that the membership log does not allow"
    )]
    UnexpectedScopeGrant {
        /// The member.
        member: MemberId,
        /// The scope.
        scope: ScopeId,
        /// The scope epoch.
        epoch: Epoch,
    },
    /// Stored credentials do not match the member's logged identity.
    #[error(
        "the stored credentials of member {member} do not match the identity in the membership log"
    )]
    CredentialsMismatch {
        /// Member.
        member: MemberId,
    },
    /// Stored credentials do not decrypt with the member key.
    #[error("the stored credentials of member {member} do not decrypt: they were tampered with")]
    CredentialsUnreadable {
        /// Member.
        member: MemberId,
    },
    /// A stored keyholder record is malformed or in the wrong place.
    #[error("a stored keyholder record of member {member} is malformed")]
    MalformedKeyholder {
        /// Member.
        member: MemberId,
    },
}
