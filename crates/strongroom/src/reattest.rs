//! Re-attestation: when a member loses the right to write records (made read-only, removed,
//! re-granted under a new identity), the versions they signed are signed again by a member
//! who has the right.
//!
//! A signature names the log position its signer had verified, and a reader checks the
//! signer's right there. A member who lost the right keeps their signing key, so they could
//! sign a new version naming a position from before: readers refuse every version signed
//! by such a member ([`WriterProblem::RightLost`](crate::WriterProblem::RightLost)) until
//! this pass sealed it again with a "vouched" proof of the member running it, at a position
//! after the loss. The pass opens every version once (its signature still checked as of
//! the position it names), rewrites only those that need it, and commits page by page with
//! compare-and-set on the rows it read: it keeps no job row, since running it again finds
//! only what is left.

use strongroom_crypto::MemberId;
use strongroom_envelope::{Epoch, RecordContext, SealedRecord, WrappedDek, seal_in};
use strongroom_store::{Batch, Cursor, Expect, ReadView, Row, ScanRange, Table, Versioned};

use crate::access::Access;
use crate::audit::{Action, AuditEvent};
use crate::records::{
    Head, HeadBody, INLINE_BODY_MAX, IndexEntry, OpenedPayload, log_position, open_to_attest,
    open_version_to_attest, parse_version_key, version_key,
};
use crate::vault::{State, Vault};
use crate::writers::ProofKind;
use crate::{Inconsistency, VaultError};
use strongroom_sharing::Role;

/// Rows read and rewritten together.
const PAGE: usize = 256;

/// What [`Vault::reattest`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReattestReport {
    /// Record versions opened by the passes that sealed (a pass runs again when rows
    /// moved meanwhile; the final check over a consistent view is not counted).
    pub examined: u64,
    /// Versions whose signer had lost the right to write, now sealed again and signed by
    /// this member (their authorship reads [`Authorship::Vouched`](crate::Authorship)).
    pub reattested: u64,
    /// Versions that did not open in the final check (a refused or corrupt writer proof, a
    /// missing row, a data key that does not unwrap): left as they are, for `doctor` to
    /// report. If one was signed by a member whose loss is now recorded, it stays refused.
    pub unreadable: u64,
}

/// One row of a page that needs a new seal, with its payload.
enum Staged {
    /// A head: its index row, as read, and the entry it holds.
    Head(Row, IndexEntry, OpenedPayload),
    /// An older version: its data-key row and its body row, as read.
    History(Row, Versioned, OpenedPayload),
}

impl Vault {
    /// Signs again every record version whose signer lost the right to write records
    /// (made read-only, removed, re-granted under a new identity) since: readers refuse
    /// such a version until a member with the right re-attests it, since its signer could
    /// have made the signature afterwards, naming an earlier log position. Each is sealed
    /// again under the current vault key with this member's "vouched" proof; its value and
    /// author stay. [`Vault::set_role`], [`Vault::remove_member`] and [`Vault::regrant`]
    /// run it when the member loses the right; run it again after an interruption
    /// (`kill -9`): it is idempotent and resumes by finding what is left.
    ///
    /// Once every version was examined, a signed log entry per loss of right
    /// ([`EntryBody::Reattested`](strongroom_sharing::EntryBody::Reattested)) records it:
    /// from then on, a version such a member signed naming an earlier position was made
    /// after, and nothing re-attests it. What the pass cannot tell: a version the member
    /// made between losing the right and the end of this pass is vouched for like the
    /// others. Check what they last wrote (`history`) when that matters.
    ///
    /// Owners and admins (the log entry is theirs to sign). Nothing to do, no scan, when no
    /// loss of right waits. `progress` gets the number of versions examined so far.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?;
    /// // No member lost the right to write: nothing to re-attest.
    /// assert!(vault.pending_reattestation().is_empty());
    /// let report = vault.reattest(&mut |_| {})?;
    /// assert_eq!((report.examined, report.reattested), (0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reattest(&self, progress: &mut dyn FnMut(u64)) -> Result<ReattestReport, VaultError> {
        // The losses of right this member knows are the ones it re-attests.
        self.refresh_if_stale()?;
        let role = self.role();
        if !matches!(role, Some(Role::Owner | Role::Admin)) {
            return Err(VaultError::PermissionDenied { role });
        }
        let mut report = ReattestReport::default();
        let pending = self.pending_reattestation();
        if pending.is_empty() {
            return Ok(report);
        }
        for _ in 0..8 {
            self.reattest_pass(&mut report, progress)?;
            // Rows can move while a pass runs (a head dropped back to an older version by a
            // purge, a rotation under a key this handle learns only now): the losses are
            // recorded only once one consistent view, read under the latest log, holds
            // nothing left to re-attest.
            self.refresh_if_stale()?;
            let view = self.store().snapshot()?;
            let known = self.state().session.pins().high_water().map(|h| h.seq);
            if view.log_head(Table::MemberLog)? != known {
                continue;
            }
            let (left, unreadable) = self.left_to_attest(&*view)?;
            drop(view);
            if left > 0 {
                continue;
            }
            report.unreadable = unreadable;
            self.record_losses(&pending)?;
            tracing::info!(
                examined = report.examined,
                reattested = report.reattested,
                unreadable = report.unreadable,
                "re-attestation finished"
            );
            return Ok(report);
        }
        Err(VaultError::inconsistent(
            Inconsistency::Unfinished,
            "record versions still needed a re-attestation after several passes (the vault kept changing): run `strongroom member reattest` again",
        ))
    }

    /// One pass over every version: what needs it is sealed again, page by page.
    fn reattest_pass(
        &self,
        report: &mut ReattestReport,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), VaultError> {
        for_each_page(self.store(), |table, rows| {
            let (staged, examined, _) = {
                let st = self.state();
                Self::needing_attestation(self.store(), &st, table, rows)?
            };
            report.examined += examined;
            if !staged.is_empty() {
                let keys: Vec<&[u8]> = rows.iter().map(|r| r.key.as_slice()).collect();
                report.reattested += self.reattest_page(table, &keys)?;
            }
            progress(report.examined);
            Ok(())
        })
    }

    /// In the consistent view `view`: the versions still needing a re-attestation, and the
    /// versions that do not open.
    fn left_to_attest(&self, view: &dyn ReadView) -> Result<(u64, u64), VaultError> {
        let st = self.state();
        let (mut left, mut unreadable) = (0u64, 0u64);
        for_each_page(view, |table, rows| {
            let (staged, _, bad) = Self::needing_attestation(view, &st, table, rows)?;
            left += staged.len() as u64;
            unreadable += bad;
            Ok(())
        })?;
        Ok((left, unreadable))
    }

    /// Appends a [`EntryBody::Reattested`](strongroom_sharing::EntryBody::Reattested) log
    /// entry for each loss of `pending` not recorded yet (another pass may have).
    fn record_losses(&self, pending: &[(MemberId, u64)]) -> Result<(), VaultError> {
        for &(member, lost_at) in pending {
            self.refresh_if_stale()?;
            if !self.pending_reattestation().contains(&(member, lost_at)) {
                continue;
            }
            self.change(
                |session| session.prepare_reattested(member, lost_at),
                |_, _| {
                    Ok(AuditEvent::new(
                        Action::Reattest,
                        member.as_bytes(),
                        format!("lost_at={lost_at}"),
                    ))
                },
            )?;
        }
        Ok(())
    }

    /// The losses of write right `(member, log position)` whose versions wait for a
    /// re-attestation ([`Vault::reattest`]): readers refuse those versions until then.
    pub fn pending_reattestation(&self) -> Vec<(MemberId, u64)> {
        self.state().session.membership().pending_reattestation()
    }

    /// Seals again what the rows `keys` of `table` need, read afresh, in one commit with
    /// compare-and-set on every row read (a concurrent put, rotation or prune makes it
    /// start over) and an audit entry. Returns the versions re-attested.
    fn reattest_page(&self, table: Table, keys: &[&[u8]]) -> Result<u64, VaultError> {
        let suite = self.header().suite;
        self.write(|st, batch| {
            // Under the log this commit is checked against: an owner or admin still, with
            // the right to write (readers would refuse what it signs otherwise).
            let role = st.session.role();
            if !matches!(role, Some(Role::Owner | Role::Admin)) {
                return Err(VaultError::PermissionDenied { role });
            }
            crate::writers::signing_position(st, None)?;
            let wanted: Vec<(Table, &[u8])> = keys.iter().map(|k| (table, *k)).collect();
            let rows: Vec<Row> = keys
                .iter()
                .zip(self.store().get_many(&wanted)?)
                .filter_map(|(key, row)| {
                    row.map(|r| Row {
                        key: key.to_vec(),
                        value: r.value,
                        version: r.version,
                    })
                })
                .collect();
            let (staged, _, _) = Self::needing_attestation(self.store(), st, table, &rows)?;
            for s in &staged {
                stage_reseal(st, suite, batch, s)?;
            }
            let n = staged.len() as u64;
            Ok((
                n,
                AuditEvent::new(Action::Reattest, Vec::new(), format!("versions={n}")),
            ))
        })
    }

    /// The versions among `rows` (of `table`, read from `store`) whose signer lost the right
    /// to write, with the rows to compare-and-set; and how many versions were examined and
    /// did not open.
    fn needing_attestation(
        store: &dyn ReadView,
        st: &State,
        table: Table,
        rows: &[Row],
    ) -> Result<(Vec<Staged>, u64, u64), VaultError> {
        let mut staged = Vec::new();
        let (mut examined, mut unreadable) = (0u64, 0u64);
        if table == Table::Index {
            for row in rows {
                let Ok(entry) = IndexEntry::decode(&row.value) else {
                    unreadable += 1;
                    continue;
                };
                // A format-1 head lives in rows of its own: among the older versions.
                if entry.head().is_none() {
                    continue;
                }
                examined += 1;
                match open_version_to_attest(store, st, &entry, entry.version) {
                    Ok((p, _)) if p.needs_attestation => {
                        staged.push(Staged::Head(row.clone(), entry, p));
                    }
                    Ok(_) => {}
                    Err(_) => unreadable += 1,
                }
            }
        } else {
            let wanted: Vec<(Table, &[u8])> = rows
                .iter()
                .map(|r| (Table::Bodies, r.key.as_slice()))
                .collect();
            for (dek, body) in rows.iter().zip(store.get_many(&wanted)?) {
                let (Some(body), Some((record, version))) = (body, parse_version_key(&dek.key))
                else {
                    continue;
                };
                examined += 1;
                match open_to_attest(st, record, version, &body.value, &dek.value) {
                    Ok((p, _)) if p.needs_attestation => {
                        staged.push(Staged::History(dek.clone(), body, p));
                    }
                    Ok(_) => {}
                    Err(_) => unreadable += 1,
                }
            }
        }
        Ok((staged, examined, unreadable))
    }
}

/// Calls `f` on each page of rows of the heads (index entries), then of the older
/// versions (data-key rows), of `view`.
fn for_each_page(
    view: &dyn ReadView,
    mut f: impl FnMut(Table, &[Row]) -> Result<(), VaultError>,
) -> Result<(), VaultError> {
    // The heads first: a head that becomes an older version meanwhile (a put) is found
    // again among the older versions.
    for table in [Table::Index, Table::Deks] {
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = view.scan(table, &ScanRange::all(), cursor.as_ref(), PAGE)?;
            f(table, &page.rows)?;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(())
}

/// Stages the rows of `s` sealed again, with this member's vouched proof.
fn stage_reseal(
    st: &State,
    suite: strongroom_envelope::Suite,
    batch: &mut Batch,
    s: &Staged,
) -> Result<(), VaultError> {
    match s {
        Staged::Head(row, entry, p) => {
            let was = entry.head().map(|h| sealed_in(&h.dek));
            let sealed = vouched(st, suite, entry.record, entry.version, p, was)?;
            let head_key = version_key(entry.record, entry.version);
            let body = if sealed.body.len() <= INLINE_BODY_MAX {
                if matches!(entry.head().map(|h| &h.body), Some(HeadBody::Stored)) {
                    // The index entry's compare-and-set covers its body row: every change
                    // of a head body rewrites the entry.
                    batch.delete(Table::Bodies, head_key, Expect::Any);
                }
                HeadBody::Inline(sealed.body)
            } else {
                batch.put(Table::Bodies, head_key, sealed.body, Expect::Any);
                HeadBody::Stored
            };
            let oldest = entry.oldest().unwrap_or(entry.version);
            let new = IndexEntry {
                layout: Some((
                    oldest,
                    Head {
                        dek: sealed.wrapped_dek,
                        body,
                    },
                )),
                ..entry.clone()
            };
            batch.put(
                Table::Index,
                row.key.clone(),
                new.encode(),
                Expect::Version(row.version),
            );
        }
        Staged::History(dek, body, p) => {
            let key = &dek.key;
            let Some((record, version)) = parse_version_key(key) else {
                return Ok(());
            };
            let was = WrappedDek::from_bytes(&dek.value)
                .ok()
                .map(|w| sealed_in(&w));
            let sealed = vouched(st, suite, record, version, p, was)?;
            batch
                .put(
                    Table::Deks,
                    key.clone(),
                    sealed.wrapped_dek.as_bytes().to_vec(),
                    Expect::Version(dek.version),
                )
                .put(
                    Table::Bodies,
                    key.clone(),
                    sealed.body,
                    Expect::Version(body.version),
                );
        }
    }
    Ok(())
}

/// The epoch a version was sealed in, as its wrapped data key says.
fn sealed_in(w: &WrappedDek) -> Epoch {
    w.sealed_epoch().unwrap_or(w.epoch())
}

/// The payload `p` of version `version` of `record` sealed again under the current vault
/// key, signed by this member as vouching for it at the log position it verified. It keeps
/// the epoch it was first sealed in (`was`): the members of that epoch knew its value, and
/// a removal's exposure report must still list it.
fn vouched(
    st: &State,
    suite: strongroom_envelope::Suite,
    record: strongroom_crypto::RecordId,
    version: u64,
    p: &OpenedPayload,
    was: Option<Epoch>,
) -> Result<SealedRecord, VaultError> {
    let ctx = RecordContext {
        vault_id: st.session.vault_id(),
        record_id: record,
        version,
    };
    let fields = p.fields();
    let plain = fields.encode_signed(
        &ctx,
        st.session.identity(),
        ProofKind::Vouched,
        log_position(st),
    );
    // A scope's secret is sealed again under its scope's current key.
    let key = st.domain(&p.namespace)?.key;
    let was = was.unwrap_or(key.epoch());
    seal_in(key, was, suite, &ctx, plain.expose_secret()).map_err(|source| VaultError::Record {
        record: record.to_string(),
        source,
    })
}
