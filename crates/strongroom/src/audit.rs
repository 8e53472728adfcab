//! The audit log: one hash-chained, MACed entry per privileged action, appended in the same
//! atomic batch as the action itself.
//!
//! Entry layout (version 1):
//!
//! ```text
//! 0    1   version = 1
//! 1    8   seq (u64 BE), equal to the row key in Table::Audit
//! 9    32  SHA-256 of the previous entry's full encoding (zeros for seq 0)
//! 41   8   time (unix seconds)
//! 49   16  actor member id (zeros when unknown, e.g. a failed unlock)
//! 65   1   action id (see Action)
//! 66   1   outcome: 0 = ok, 1 = failed
//! 67   4+n target: u32 length, bytes (a record id, member id or keyholder id; <= 256)
//! ..   4+n detail: u32 length, UTF-8 (non-secret; <= 1024)
//! ..   32  HMAC-SHA256(audit key, "strongroom/v1/audit" ‖ all bytes above)
//! ```
//!
//! Entries never contain a secret value or a secret's name: targets are record ids.
//! Verification walks the chain: a modified entry fails its MAC, a removed or reordered
//! entry breaks the sequence or the hash link. An entry appended by someone without the
//! audit key (a storage) fails its MAC.
//!
//! Specified in `docs/spec/audit-entry.md`.

use sha2::{Digest, Sha256};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{Key256, MemberId};
use strongroom_store::{Batch, ReadView, ScanRange, Table, for_each_row};
use subtle::ConstantTimeEq;

use crate::meta::hmac32;
use crate::{AuditTamper, Inconsistency, VaultError};

/// A privileged action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// The vault was created.
    Create,
    /// A member unlocked the vault.
    Unlock,
    /// An unlock failed (recorded at the next successful unlock).
    UnlockFailed,
    /// A secret was written.
    Put,
    /// A secret was deleted.
    Delete,
    /// A vault-key rotation started (new epoch).
    RotateStart,
    /// A vault-key rotation finished (old epochs retired).
    RotateFinish,
    /// A deep re-encryption finished.
    Reencrypt,
    /// A keyholder was added.
    KeyholderAdd,
    /// A keyholder was removed.
    KeyholderRemove,
    /// A member was added.
    MemberAdd,
    /// A member was removed.
    MemberRemove,
    /// A member was re-granted under a new identity.
    MemberRegrant,
    /// A member's role changed.
    MemberRole,
    /// A member joined (stored their own credentials).
    MemberJoin,
    /// Secrets were exported.
    Export,
    /// Secrets were imported.
    Import,
    /// A snapshot was taken.
    Snapshot,
    /// A snapshot was restored.
    Restore,
    /// Quarantined data-key rows (that no rotation could rewrap) were deleted.
    Purge,
    /// A member upgraded their identity to hybrid (X-Wing) grants.
    MemberUpgrade,
    /// The vault started requiring hybrid grants.
    RequireHybrid,
    /// The metadata key was replaced (a member removal): this entry is the first one under
    /// the new audit key, and its hash link covers every entry before it.
    MetaKeyReplace,
    /// The vault started requiring writer signatures on every record version.
    RequireSignedWrites,
    /// Record versions whose signer lost the right to write were signed again by the
    /// acting member.
    Reattest,
    /// A scope (a namespace prefix with keys of its own) was created.
    ScopeCreate,
    /// A member was granted a scope.
    ScopeGrant,
    /// A member's scope was revoked (the scope's key replaced).
    ScopeRevoke,
}

impl Action {
    const ALL: [Action; 28] = [
        Action::Create,
        Action::Unlock,
        Action::UnlockFailed,
        Action::Put,
        Action::Delete,
        Action::RotateStart,
        Action::RotateFinish,
        Action::Reencrypt,
        Action::KeyholderAdd,
        Action::KeyholderRemove,
        Action::MemberAdd,
        Action::MemberRemove,
        Action::MemberRegrant,
        Action::MemberRole,
        Action::MemberJoin,
        Action::Export,
        Action::Import,
        Action::Snapshot,
        Action::Restore,
        Action::Purge,
        Action::MemberUpgrade,
        Action::RequireHybrid,
        Action::MetaKeyReplace,
        Action::RequireSignedWrites,
        Action::Reattest,
        Action::ScopeCreate,
        Action::ScopeGrant,
        Action::ScopeRevoke,
    ];

    /// The id byte.
    pub fn id(self) -> u8 {
        Self::ALL
            .iter()
            .position(|a| *a == self)
            .map_or(0, |i| i as u8 + 1)
    }

    fn from_id(id: u8) -> Option<Self> {
        Self::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    /// A stable lowercase name (`put`, `member-remove`…).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Unlock => "unlock",
            Action::UnlockFailed => "unlock-failed",
            Action::Put => "put",
            Action::Delete => "delete",
            Action::RotateStart => "rotate-start",
            Action::RotateFinish => "rotate-finish",
            Action::Reencrypt => "reencrypt",
            Action::KeyholderAdd => "keyholder-add",
            Action::KeyholderRemove => "keyholder-remove",
            Action::MemberAdd => "member-add",
            Action::MemberRemove => "member-remove",
            Action::MemberRegrant => "member-regrant",
            Action::MemberRole => "member-role",
            Action::MemberJoin => "member-join",
            Action::Export => "export",
            Action::Import => "import",
            Action::Snapshot => "snapshot",
            Action::Restore => "restore",
            Action::Purge => "purge",
            Action::MemberUpgrade => "member-upgrade",
            Action::RequireHybrid => "require-hybrid",
            Action::MetaKeyReplace => "metadata-key-replace",
            Action::RequireSignedWrites => "require-signed-writes",
            Action::Reattest => "reattest",
            Action::ScopeCreate => "scope-create",
            Action::ScopeGrant => "scope-grant",
            Action::ScopeRevoke => "scope-revoke",
        }
    }
}

impl core::fmt::Display for Action {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One audit entry, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the log.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// The acting member (`None` when unknown).
    pub actor: Option<MemberId>,
    /// What was done.
    pub action: Action,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it was done to (a record id, a member id, a keyholder id; hex).
    pub target: String,
    /// Non-secret detail (a namespace, an epoch, a count).
    pub detail: String,
}

/// What an action wants recorded.
pub(crate) struct Event<'a> {
    pub(crate) action: Action,
    pub(crate) ok: bool,
    pub(crate) target: &'a [u8],
    pub(crate) detail: &'a str,
    pub(crate) actor: Option<MemberId>,
    pub(crate) time: u64,
}

const MAX_TARGET: usize = 256;
const MAX_DETAIL: usize = 1024;
const FORMAT: &str = "audit entry";

/// What a change records in the audit log: the action, its target (a record, member,
/// keyholder or vault id; never a name) and non-secret details. The writer adds the actor,
/// the time and the chain position when it commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditEvent {
    pub(crate) action: Action,
    pub(crate) target: Vec<u8>,
    pub(crate) detail: String,
}

impl AuditEvent {
    pub(crate) fn new(
        action: Action,
        target: impl Into<Vec<u8>>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            action,
            target: target.into(),
            detail: detail.into(),
        }
    }

    /// Appends this event, done now by the unlocked member, at `cursor`; returns the
    /// cursor after it.
    pub(crate) fn append(
        &self,
        batch: &mut Batch,
        state: &crate::vault::State,
        cursor: Cursor,
    ) -> Cursor {
        self.append_with(batch, &state.meta.audit, state.session.member_id(), cursor)
    }

    /// [`AuditEvent::append`] under a given audit key (a change that replaces the
    /// metadata key appends under the new one).
    pub(crate) fn append_with(
        &self,
        batch: &mut Batch,
        key: &Key256,
        actor: MemberId,
        cursor: Cursor,
    ) -> Cursor {
        append(
            batch,
            key,
            cursor,
            &Event {
                action: self.action,
                ok: true,
                target: &self.target,
                detail: &self.detail,
                actor: Some(actor),
                time: crate::meta::now(),
            },
        )
    }
}

/// Where the next entry goes: its seq and the hash of the entry before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) next: u64,
    pub(crate) prev_hash: [u8; 32],
}

impl Cursor {
    /// Reads the log head from the store.
    pub(crate) fn load(store: &dyn ReadView) -> Result<Self, VaultError> {
        match store.log_head(Table::Audit)? {
            None => Ok(Cursor {
                next: 0,
                prev_hash: [0; 32],
            }),
            Some(head) => {
                let row = store
                    .get(Table::Audit, &head.to_be_bytes())?
                    .ok_or_else(|| {
                        VaultError::inconsistent(
                            Inconsistency::MissingRow,
                            "the audit log head is missing",
                        )
                    })?;
                Ok(Cursor {
                    next: head.checked_add(1).ok_or_else(|| {
                        VaultError::inconsistent(
                            Inconsistency::Exhausted,
                            "the audit log head is at the largest sequence number",
                        )
                    })?,
                    prev_hash: Sha256::digest(&row.value).into(),
                })
            }
        }
    }
}

/// Encodes `event` as entry `cursor.next` and appends it to `batch`; returns the cursor
/// after it.
pub(crate) fn append(batch: &mut Batch, key: &Key256, cursor: Cursor, event: &Event<'_>) -> Cursor {
    let bytes = encode(key, cursor, event);
    let next = Cursor {
        next: cursor.next.saturating_add(1),
        prev_hash: Sha256::digest(&bytes).into(),
    };
    batch.append(Table::Audit, cursor.next, bytes);
    next
}

pub(crate) fn encode(key: &Key256, cursor: Cursor, e: &Event<'_>) -> Vec<u8> {
    let target = &e.target[..e.target.len().min(MAX_TARGET)];
    let detail = truncate_utf8(e.detail, MAX_DETAIL);
    let mut w = Writer::with_capacity(140 + target.len() + detail.len());
    w.u8(1)
        .u64(cursor.next)
        .bytes(&cursor.prev_hash)
        .u64(e.time)
        .bytes(e.actor.map_or([0; 16], |m| *m.as_bytes()).as_slice())
        .u8(e.action.id())
        .u8(u8::from(!e.ok))
        .var_bytes(target)
        .var_bytes(detail.as_bytes());
    let mac = hmac32(key, &[b"strongroom/v1/audit", w.as_slice()]);
    w.bytes(&mac);
    w.into_vec()
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Decoded {
    entry: AuditEntry,
    prev_hash: [u8; 32],
    mac_ok: bool,
}

fn decode(key: &Key256, bytes: &[u8]) -> Result<Decoded, strongroom_crypto::DecodeError> {
    let mut r = Reader::new(FORMAT, bytes);
    r.version(&[1])?;
    let seq = r.u64("seq")?;
    let prev_hash = r.array("prev hash")?;
    let time = r.u64("time")?;
    let actor: [u8; 16] = r.array("actor")?;
    let action =
        Action::from_id(r.u8("action")?).ok_or_else(|| r.invalid("action", "unknown action"))?;
    let ok = match r.u8("outcome")? {
        0 => true,
        1 => false,
        _ => return Err(r.invalid("outcome", "neither 0 (ok) nor 1 (failed)")),
    };
    let target = r.var_bytes("target", MAX_TARGET)?;
    let detail = r.var_bytes("detail", MAX_DETAIL)?;
    let body_len = r.position();
    let mac: [u8; 32] = r.array("mac")?;
    r.finish()?;
    let want = hmac32(key, &[b"strongroom/v1/audit", &bytes[..body_len]]);
    Ok(Decoded {
        entry: AuditEntry {
            seq,
            time,
            actor: (actor != [0; 16]).then(|| MemberId::from_bytes(actor)),
            action,
            ok,
            target: hex(target),
            detail: String::from_utf8_lossy(detail).into_owned(),
        },
        prev_hash,
        mac_ok: bool::from(want.ct_eq(&mac)),
    })
}

/// Decodes one entry under a fixed key (fuzzing entry point).
#[cfg(fuzzing)]
pub(crate) fn fuzz_decode(data: &[u8]) {
    let key = Key256::init_with(|k| k.fill(7));
    let _ = decode(&key, data);
}

pub(crate) fn hex(b: &[u8]) -> String {
    use core::fmt::Write as _;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Lists entries `from..` (at most `limit`), verifying each MAC; the first bad entry is an
/// error.
pub(crate) fn list(
    store: &dyn ReadView,
    key: &Key256,
    from: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, VaultError> {
    let range = ScanRange::range(from.to_be_bytes().to_vec(), u64::MAX.to_be_bytes().to_vec());
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut unproven = Vec::new();
    for_each_row(store, Table::Audit, &range, limit.min(1000), |row| {
        let d = decode(key, &row.value).map_err(|e| {
            VaultError::audit(seq_of(&row.key), AuditTamper::Malformed, e.to_string())
        })?;
        if !d.mac_ok {
            unproven.push(d.entry.seq);
        }
        out.push(d.entry);
        Ok::<_, VaultError>(out.len() < limit)
    })?;
    if !unproven.is_empty() {
        // Entries from before a metadata-key replacement are under an older audit key:
        // they stand if the hash chain links them to the replacement's entry.
        let link = last_link(store, key)?;
        if let Some(&seq) = unproven.iter().find(|s| link.is_none_or(|l| **s >= l)) {
            return Err(VaultError::audit(
                seq,
                AuditTamper::Forged,
                "MAC mismatch: the entry was modified or forged",
            ));
        }
        verify(store, key)?;
    }
    Ok(out)
}

fn seq_of(key: &[u8]) -> u64 {
    key.try_into().map_or(u64::MAX, u64::from_be_bytes)
}

/// The result of [`Vault::audit_verify`](crate::Vault::audit_verify).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditReport {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry (hex), to compare with an earlier report: a log that is
    /// later shorter or different at the same length was truncated or rewritten.
    pub head_hash: String,
}

impl AuditReport {
    /// A report kept from an earlier verification (e.g. read back from where the caller
    /// stored `entries` and `head_hash`), to pass to [`Vault::audit_verify_since`].
    ///
    /// [`Vault::audit_verify_since`]: crate::Vault::audit_verify_since
    pub fn new(entries: u64, head_hash: impl Into<String>) -> Self {
        Self {
            entries,
            head_hash: head_hash.into(),
        }
    }
}

/// The seq of the last `metadata-key-replace` entry under `key`: the entries before it
/// were written under an older audit key and are covered by its hash link.
fn last_link(store: &dyn ReadView, key: &Key256) -> Result<Option<u64>, VaultError> {
    let mut last = None;
    for_each_row(store, Table::Audit, &ScanRange::all(), 1000, |row| {
        if let Ok(d) = decode(key, &row.value)
            && d.mac_ok
            && d.entry.action == Action::MetaKeyReplace
        {
            last = Some(d.entry.seq);
        }
        Ok::<_, VaultError>(true)
    })?;
    Ok(last)
}

/// Verifies the whole chain.
pub(crate) fn verify(store: &dyn ReadView, key: &Key256) -> Result<AuditReport, VaultError> {
    verify_since(store, key, None)
}

/// Verifies the whole chain and, given an earlier report, that the log still holds the
/// entries that report covered, unchanged: a log cut short or rewritten since is refused.
///
/// Every entry must carry a MAC under `key` (the current audit key), or come before a
/// `metadata-key-replace` entry that does: the hash chain then covers it, and the older
/// audit key it was written under (which a removed member may hold) proves nothing.
pub(crate) fn verify_since(
    store: &dyn ReadView,
    key: &Key256,
    earlier: Option<&AuditReport>,
) -> Result<AuditReport, VaultError> {
    let mut earlier_seen = earlier.is_none_or(|e| e.entries == 0);
    let mut expected = 0u64;
    let link = last_link(store, key)?;
    let mut prev = [0u8; 32];
    for_each_row(store, Table::Audit, &ScanRange::all(), 1000, |row| {
        let row_seq = seq_of(&row.key);
        let tampered = |kind, detail: &str| VaultError::audit(expected, kind, detail);
        if row_seq != expected {
            return Err(tampered(
                AuditTamper::Removed,
                &format!("expected entry {expected}, found {row_seq}: entries were removed"),
            ));
        }
        let d = decode(key, &row.value)
            .map_err(|e| tampered(AuditTamper::Malformed, &e.to_string()))?;
        if !d.mac_ok && link.is_none_or(|l| expected >= l) {
            return Err(tampered(
                AuditTamper::Forged,
                "MAC mismatch: the entry was modified or forged",
            ));
        }
        if d.entry.seq != expected {
            return Err(tampered(
                AuditTamper::Moved,
                "the entry was moved from another position",
            ));
        }
        if d.prev_hash != prev {
            return Err(tampered(
                AuditTamper::ChainBroken,
                "hash chain broken: an earlier entry was modified, removed or reordered",
            ));
        }
        prev = Sha256::digest(&row.value).into();
        expected += 1;
        if let Some(e) = earlier
            && e.entries == expected
        {
            if hex(&prev) != e.head_hash {
                return Err(VaultError::audit(
                    expected - 1,
                    AuditTamper::Rewritten,
                    "the log was rewritten since it was last verified (the entry differs)",
                ));
            }
            earlier_seen = true;
        }
        Ok(true)
    })?;
    if !earlier_seen {
        return Err(VaultError::audit(
            expected,
            AuditTamper::Removed,
            format!(
                "the log has {expected} entries but had {} when last verified: entries were removed from its end",
                earlier.map_or(0, |e| e.entries)
            ),
        ));
    }
    Ok(AuditReport {
        entries: expected,
        head_hash: hex(&prev),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_store::{MemoryStore, Store};

    fn ev(action: Action, target: &[u8]) -> Event<'_> {
        Event {
            action,
            ok: true,
            target,
            detail: "ns=core/app",
            actor: Some(MemberId::from_bytes([3; 16])),
            time: 1_700_000_000,
        }
    }

    fn write(store: &MemoryStore, key: &Key256, n: usize) {
        write_to(store, key, n);
    }

    fn write_to(store: &dyn Store, key: &Key256, n: usize) {
        let mut c = Cursor::load(store).unwrap();
        for i in 0..n {
            let mut b = Batch::new();
            c = append(
                &mut b,
                key,
                c,
                &ev(Action::ALL[i % Action::ALL.len()], &[i as u8; 16]),
            );
            store.commit(&b).unwrap();
        }
    }

    #[test]
    fn action_ids_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::from_id(a.id()), Some(a));
        }
        assert_eq!(Action::from_id(0), None);
        assert_eq!(Action::from_id(200), None);
    }

    #[test]
    fn verify_detects_modification_removal_reordering_and_forgery() {
        let key = Key256::generate().unwrap();
        let store = MemoryStore::new();
        write(&store, &key, 6);
        let r = verify(&store, &key).unwrap();
        assert_eq!(r.entries, 6);
        let all = list(&store, &key, 0, 100).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[3].action, Action::ALL[3]);

        let adv = |n: usize| {
            let s = strongroom_store::AdversarialStore::new(MemoryStore::new());
            write_to(&s, &key, n);
            s
        };

        // modified: flip a byte of entry 2's detail
        let s = adv(6);
        s.on_read(|t, k, v| {
            let mut v = v?;
            if t == Table::Audit && k == 2u64.to_be_bytes() {
                let n = v.value.len();
                v.value[n - 40] ^= 1;
            }
            Some(v)
        });
        let e = verify(&s, &key).unwrap_err();
        assert!(
            matches!(
                e,
                VaultError::AuditTampered {
                    seq: 2,
                    kind: AuditTamper::Forged,
                    ..
                }
            ),
            "{e}"
        );

        // removed: entry 3 disappears
        let s = adv(6);
        s.hide(Table::Audit, &3u64.to_be_bytes());
        let e = verify(&s, &key).unwrap_err();
        assert!(e.to_string().contains("removed"), "{e}");
        assert!(
            matches!(
                e,
                VaultError::AuditTampered {
                    seq: 3,
                    kind: AuditTamper::Removed,
                    ..
                }
            ),
            "{e}"
        );

        // reordered: entries 1 and 4 swapped
        let s = adv(6);
        s.swap_value(Table::Audit, &1u64.to_be_bytes(), &4u64.to_be_bytes());
        s.swap_value(Table::Audit, &4u64.to_be_bytes(), &1u64.to_be_bytes());
        assert!(matches!(
            verify(&s, &key),
            Err(VaultError::AuditTampered {
                seq: 1,
                kind: AuditTamper::Moved,
                ..
            })
        ));

        // forged with another key
        let s = MemoryStore::new();
        write(&s, &key, 2);
        let other = Key256::generate().unwrap();
        let mut c = Cursor::load(&s).unwrap();
        let mut b = Batch::new();
        c = append(&mut b, &other, c, &ev(Action::Put, b"x"));
        s.commit(&b).unwrap();
        let _ = c;
        assert!(matches!(
            verify(&s, &key),
            Err(VaultError::AuditTampered { seq: 2, .. })
        ));
    }

    /// The outcome byte is 0 or 1: any other value is refused, even under a valid MAC
    /// (as a holder of the audit key could write).
    #[test]
    fn an_outcome_byte_other_than_0_or_1_is_refused() {
        let key = Key256::generate().unwrap();
        let store = MemoryStore::new();
        write(&store, &key, 1);
        let row = store
            .get(Table::Audit, &0u64.to_be_bytes())
            .unwrap()
            .unwrap();
        let mut bytes = row.value.clone();
        // version 1, seq 8, prev hash 32, time 8, actor 16, action 1: the outcome is at 66.
        assert_eq!(bytes[66], 0);
        assert!(decode(&key, &bytes).unwrap().entry.ok);
        for (outcome, ok) in [(1u8, Some(false)), (2, None), (255, None)] {
            bytes[66] = outcome;
            let body = bytes.len() - 32;
            let mac = hmac32(&key, &[b"strongroom/v1/audit", &bytes[..body]]);
            bytes[body..].copy_from_slice(&mac[..]);
            match (decode(&key, &bytes), ok) {
                (Ok(d), Some(want)) => assert!(d.mac_ok && d.entry.ok == want),
                (Err(e), None) => assert!(e.to_string().contains("outcome"), "{e}"),
                (got, want) => panic!(
                    "outcome {outcome}: {:?} (wanted {want:?})",
                    got.map(|d| d.entry)
                ),
            }
        }
    }

    /// A log whose first `before` entries are under `old` and the rest, from a
    /// replacement entry on, under `new`.
    fn replaced_log(store: &dyn Store, old: &Key256, new: &Key256, before: usize, after: usize) {
        write_to(store, old, before);
        let mut c = Cursor::load(store).unwrap();
        let mut b = Batch::new();
        c = append(
            &mut b,
            new,
            c,
            &ev(Action::MetaKeyReplace, &2u32.to_be_bytes()),
        );
        for i in 0..after {
            c = append(&mut b, new, c, &ev(Action::Put, &[i as u8; 16]));
        }
        store.commit(&b).unwrap();
    }

    #[test]
    fn entries_before_a_replacement_are_covered_by_its_hash_link() {
        let (old, new) = (Key256::generate().unwrap(), Key256::generate().unwrap());
        let store = MemoryStore::new();
        replaced_log(&store, &old, &new, 4, 3);
        assert_eq!(verify(&store, &new).unwrap().entries, 8);
        assert_eq!(list(&store, &new, 0, 100).unwrap().len(), 8);
        assert_eq!(list(&store, &new, 5, 100).unwrap().len(), 3);
        // The old key alone proves nothing after the replacement.
        assert!(matches!(
            verify(&store, &old),
            Err(VaultError::AuditTampered {
                seq: 4,
                kind: AuditTamper::Forged,
                ..
            })
        ));

        let adv = || {
            let s = strongroom_store::AdversarialStore::new(MemoryStore::new());
            replaced_log(&s, &old, &new, 4, 3);
            s
        };
        // An entry before the link rewritten with a valid MAC under the old key: the link
        // no longer follows from it.
        let s = adv();
        let first = s.get(Table::Audit, &0u64.to_be_bytes()).unwrap().unwrap();
        let forged = encode(
            &old,
            Cursor {
                next: 1,
                prev_hash: Sha256::digest(&first.value).into(),
            },
            &ev(Action::Delete, &[9; 16]),
        );
        s.on_read(move |t, k, v| {
            let mut v = v?;
            if t == Table::Audit && k == 1u64.to_be_bytes() {
                v.value.clone_from(&forged);
            }
            Some(v)
        });
        for e in [
            verify(&s, &new).unwrap_err(),
            list(&s, &new, 0, 100).unwrap_err(),
        ] {
            assert!(
                matches!(
                    e,
                    VaultError::AuditTampered {
                        seq: 2,
                        kind: AuditTamper::ChainBroken,
                        ..
                    }
                ),
                "{e}"
            );
        }

        // Entries appended after the link under the old key.
        let s = MemoryStore::new();
        replaced_log(&s, &old, &new, 4, 1);
        write_to(&s, &old, 2);
        for e in [
            verify(&s, &new).unwrap_err(),
            list(&s, &new, 0, 100).unwrap_err(),
        ] {
            assert!(
                matches!(
                    e,
                    VaultError::AuditTampered {
                        seq: 6,
                        kind: AuditTamper::Forged,
                        ..
                    }
                ),
                "{e}"
            );
        }

        // A replacement entry under the old key (a forged link) links nothing.
        let s = MemoryStore::new();
        replaced_log(&s, &old, &old, 4, 1);
        write_to(&s, &new, 1);
        assert!(matches!(
            verify(&s, &new),
            Err(VaultError::AuditTampered {
                seq: 0,
                kind: AuditTamper::Forged,
                ..
            })
        ));
    }

    #[test]
    fn verify_since_detects_a_cut_or_rewritten_log() {
        let key = Key256::generate().unwrap();
        let store = strongroom_store::AdversarialStore::new(MemoryStore::new());
        write_to(&store, &key, 5);
        let pin = verify(&store, &key).unwrap();
        write_to(&store, &key, 2);
        let later = verify_since(&store, &key, Some(&pin)).unwrap();
        assert_eq!(later.entries, 7);
        // the storage drops the last three entries: the chain alone is still valid
        store.truncate_log(Table::Audit, 4);
        assert_eq!(verify(&store, &key).unwrap().entries, 4);
        let e = verify_since(&store, &key, Some(&pin)).unwrap_err();
        assert!(e.to_string().contains("removed from its end"), "{e}");
        let e = verify_since(&store, &key, Some(&later)).unwrap_err();
        assert!(e.to_string().contains("removed from its end"), "{e}");
        // a report of a different log at the same length
        store.clear_rules();
        let forged = AuditReport {
            entries: 5,
            head_hash: "00".repeat(32),
        };
        let e = verify_since(&store, &key, Some(&forged)).unwrap_err();
        assert!(e.to_string().contains("rewritten"), "{e}");
    }

    #[test]
    fn long_fields_are_truncated_not_rejected() {
        let key = Key256::generate().unwrap();
        let store = MemoryStore::new();
        let detail = "é".repeat(2000);
        let mut b = Batch::new();
        let e = Event {
            detail: &detail,
            ..ev(Action::Import, &[0; 400])
        };
        append(&mut b, &key, Cursor::load(&store).unwrap(), &e);
        store.commit(&b).unwrap();
        let l = list(&store, &key, 0, 10).unwrap();
        assert!(l[0].detail.len() <= MAX_DETAIL);
        assert_eq!(l[0].target.len(), MAX_TARGET * 2);
    }
}
