//! Vault-key rotation (rewrap every data key under a new epoch) and deep re-encryption,
//! both crash-safe, resumable and online.
//!
//! A rotation is a job row in [`Table::Jobs`] plus a cursor: each batch rewraps one page
//! of rows (CAS on each row's version) and advances the cursor in the same commit, so
//! `kill -9` at any point leaves every record readable and a re-run continues where the
//! last commit left off. A pass walks two tables: the heads in [`Table::Index`] (each index
//! entry holds its head version's wrapped data key; format-1 entries are rewritten in
//! format 2 on the way) and the older versions in [`Table::Deks`]. Reads and writes go on meanwhile: writers that started
//! before the new epoch conflict on the membership log and redo their write under the new
//! key. A final pass proves nothing is left under an older epoch before the old epochs
//! are retired.
//!
//! Job row layout (version 2): `version ‖ kind (1 = rewrap, 2 = re-encrypt) ‖ target
//! epoch (u32) ‖ done (u64) ‖ started at (u64) ‖ cursor (u32 length ‖ last row key done) ‖
//! phase (1: 0 = index heads, 1 = older versions) ‖ HMAC-SHA256(config key,
//! "strongroom/v1/rotation-job" ‖ vault id ‖ all bytes before)`. A version-1 row (no
//! phase; its cursor is in the older versions) resumes with a pass from the start.
//! The MAC keeps a storage from planting a job that "resumes" instead of rotating; a job
//! row that fails it, or names an epoch the verified log does not have, is discarded and
//! a new rotation starts.
//!
//! Specified in `docs/spec/job-row.md`.

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{RecordId, ScopeId, VaultId};
use strongroom_envelope::{
    Epoch, RecordContext, VaultKey, WrappedDek, rewrap, rewrap_batch, rewrap_with_body, seal,
};
use strongroom_store::{
    Batch, Cursor as ScanCursor, Expect, ReadView, Row, ScanRange, StoreError, Table, for_each_row,
    scan_all,
};

use crate::access::Access;
use crate::audit::{Action, AuditEvent};
use crate::meta::{MetaKeys, now};
use crate::records::{
    Head, HeadBody, INLINE_BODY_MAX, IndexEntry, parse_version_key, version_key, versions_of,
};
use crate::vault::{MetaKey, State, Vault, guard_membership};
use crate::{Inconsistency, VaultError};
use strongroom_sharing::Session;

const JOB_KEY: &[u8] = b"rotation";

/// What kind of job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Rewrap = 1,
    Reencrypt = 2,
}

/// The tables a pass walks, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The index entries, which hold each record's head version.
    Heads = 0,
    /// The older versions' wrapped data keys.
    History = 1,
}

impl Phase {
    fn table(self) -> Table {
        match self {
            Phase::Heads => Table::Index,
            Phase::History => Table::Deks,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Job {
    kind: Kind,
    target: Epoch,
    done: u64,
    started_at: u64,
    phase: Phase,
    cursor: Vec<u8>,
}

impl Job {
    const MAC_LABEL: &'static [u8] = b"strongroom/v1/rotation-job";

    fn encode(&self, meta: &MetaKeys, vault: VaultId) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(2)
            .u8(self.kind as u8)
            .u32(self.target.0)
            .u64(self.done)
            .u64(self.started_at)
            .var_bytes(&self.cursor)
            .u8(self.phase as u8);
        let mac = meta.mac(
            Self::MAC_LABEL,
            &[vault.as_bytes().as_slice(), w.as_slice()].concat(),
        );
        w.bytes(&mac);
        w.into_vec()
    }

    /// Decodes and authenticates a job row.
    fn decode(bytes: &[u8], meta: &MetaKeys, vault: VaultId) -> Result<Self, VaultError> {
        let Some(body_len) = bytes.len().checked_sub(32) else {
            return Err(VaultError::inconsistent(
                Inconsistency::Truncated,
                "the rotation job row is truncated",
            ));
        };
        let (body, mac) = bytes.split_at(body_len);
        let want = meta.mac(
            Self::MAC_LABEL,
            &[vault.as_bytes().as_slice(), body].concat(),
        );
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], mac)) {
            return Err(VaultError::inconsistent(
                Inconsistency::MacMismatch,
                "the rotation job row was not written by a member of this vault (MAC mismatch)",
            ));
        }
        Self::decode_body(body)
    }

    fn decode_body(bytes: &[u8]) -> Result<Self, VaultError> {
        let corrupt = |source| VaultError::Corrupt {
            what: "rotation job",
            source,
        };
        let mut r = Reader::new("rotation job", bytes);
        let format = r.version(&[1, 2]).map_err(corrupt)?;
        let kind = match r.u8("kind").map_err(corrupt)? {
            1 => Kind::Rewrap,
            2 => Kind::Reencrypt,
            _ => return Err(corrupt(r.invalid("kind", "unknown job kind"))),
        };
        let target = Epoch(r.u32("target epoch").map_err(corrupt)?);
        let done = r.u64("done").map_err(corrupt)?;
        let started_at = r.u64("started at").map_err(corrupt)?;
        let mut cursor = r.var_bytes("cursor", 1024).map_err(corrupt)?.to_vec();
        let phase = if format == 1 {
            // A job of the release before index heads: start the pass over.
            cursor.clear();
            Phase::Heads
        } else {
            match r.u8("phase").map_err(corrupt)? {
                0 => Phase::Heads,
                1 => Phase::History,
                _ => return Err(corrupt(r.invalid("phase", "unknown phase"))),
            }
        };
        r.finish().map_err(corrupt)?;
        Ok(Self {
            kind,
            target,
            done,
            started_at,
            phase,
            cursor,
        })
    }
}

/// Decodes a job row (fuzzing entry point).
#[cfg(fuzzing)]
pub(crate) fn fuzz_decode(data: &[u8]) {
    let meta = MetaKeys::from_root(strongroom_crypto::Key256::init_with(|k| k.fill(7)));
    let vault = VaultId::from_bytes([1; 16]);
    let _ = Job::decode(data, &meta, vault);
    if let Ok(job) = Job::decode_body(data) {
        assert_eq!(
            Job::decode(&job.encode(&meta, vault), &meta, vault).ok(),
            Some(job)
        );
    }
}

/// Decodes a job row written under the current metadata key, or under an older one (a job
/// interrupted before a member removal replaced the key); the next commit rewrites it
/// under the current one.
fn decode_job(st: &State, bytes: &[u8], vault: VaultId) -> Result<Job, VaultError> {
    let mut first_error = None;
    for meta in st.meta_generations() {
        match Job::decode(bytes, meta, vault) {
            Ok(job) => return Ok(job),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| unreachable!("the current metadata key is tried")))
}

/// Tuning of a rotation.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RotateOptions {
    /// Rows rewrapped per commit (default 2000; memory stays bounded by a few pages).
    pub batch_size: usize,
    /// Also replace the metadata key (the blind index, audit and settings keys), as a
    /// member removal does (default `false`): for a metadata key that may have leaked
    /// otherwise. Every index row moves to its new blind index, which opens each head
    /// version to learn its name. Applies when the rotation starts, not when it resumes.
    pub new_metadata_key: bool,
}

impl RotateOptions {
    /// Sets [`RotateOptions::batch_size`].
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`RotateOptions::new_metadata_key`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, RotateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// vault.put("core/app", "DB_PASSWORD", b"hunter2")?;
    /// let options = RotateOptions::default().with_new_metadata_key(true);
    /// vault.rotate_vault_key_with(options, &mut |_| {})?;
    /// assert_eq!(vault.get("core/app", "DB_PASSWORD")?.expose_secret(), b"hunter2");
    /// # Ok::<(), strongroom::VaultError>(())
    /// ```
    #[must_use]
    pub fn with_new_metadata_key(mut self, new_metadata_key: bool) -> Self {
        self.new_metadata_key = new_metadata_key;
        self
    }
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            batch_size: 2000,
            new_metadata_key: false,
        }
    }
}

/// Progress of a running rotation, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The epoch records are moved to.
    pub epoch: Epoch,
    /// Record versions processed so far (including before a resume).
    pub done: u64,
    /// Record versions in the vault when the pass started (an estimate while writers run).
    pub total: u64,
}

/// The outcome of a rotation or re-encryption.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RotationReport {
    /// The new current epoch.
    pub epoch: Epoch,
    /// Record versions rewrapped (or re-encrypted) by this call.
    pub processed: u64,
    /// Whether this call resumed an interrupted job.
    pub resumed: bool,
    /// The oldest readable epoch afterwards.
    pub min_epoch: Epoch,
    /// Record versions set aside because their data key could not be rewrapped (see
    /// [`Vault::quarantined`]); they stay unreadable, and the rotation finished without
    /// them.
    pub quarantined: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A record version a rotation could not rewrap: its wrapped data key does not open under
/// its epoch's key, names an epoch whose key is gone, or does not parse (planted by a
/// former member, or damaged). Listed by [`Vault::quarantined`], deleted by
/// [`Vault::purge_quarantined`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinedVersion {
    /// The record (`None` when the row's key does not even name one; `row` says which).
    pub record_id: Option<RecordId>,
    /// The version.
    pub version: u64,
    /// The epoch it claims to be wrapped under, if it parses.
    pub epoch: Option<Epoch>,
    /// Why it could not be rewrapped.
    pub reason: String,
    /// The data-key row's key (hex).
    pub row: String,
}

/// What [`Vault::purge_quarantined`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Record versions deleted (their data key and body).
    pub purged: Vec<QuarantinedVersion>,
    /// Quarantined versions that open again now and were kept (their report is dropped;
    /// the next rotation rewraps them).
    pub kept: usize,
    /// Secrets whose current version was purged: their index now names their newest
    /// remaining version, or the secret is gone when none remains (record ids, hex).
    pub heads_moved: Vec<String>,
}

/// One record version still under an older epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRewrap {
    /// The record.
    pub record_id: RecordId,
    /// The version.
    pub version: u64,
    /// The epoch its data key is wrapped under.
    pub epoch: Epoch,
    /// Whether a rotation set it aside because it could not be rewrapped
    /// ([`Vault::quarantined`] says why).
    pub quarantined: bool,
}

impl Vault {
    /// Rotates the vault key: a new epoch, then every data key is rewrapped under it in
    /// batches (bodies are never read or written), then older epochs are retired.
    ///
    /// Crash-safe and resumable: after `kill -9`, calling it again continues the
    /// interrupted rotation instead of starting another. Online: other handles and
    /// processes keep reading and writing.
    pub fn rotate_vault_key(&self) -> Result<RotationReport, VaultError> {
        self.rotate_vault_key_with(RotateOptions::default(), &mut |_| {})
    }

    /// [`Vault::rotate_vault_key`] with options and a progress callback.
    pub fn rotate_vault_key_with(
        &self,
        options: RotateOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RotationReport, VaultError> {
        self.run_job(Kind::Rewrap, options, progress)
    }

    /// Deep re-encryption: every record version gets a fresh data key and a freshly
    /// encrypted body under the current epoch (after a suspected data-key exposure). Same
    /// guarantees as rotation. A new epoch is started first, so the old vault key is
    /// retired at the end too.
    pub fn reencrypt_all(
        &self,
        options: RotateOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RotationReport, VaultError> {
        self.run_job(Kind::Reencrypt, options, progress)
    }

    /// Every record version whose data key is wrapped under an epoch older than `epoch`
    /// (or in format 1, which a rotation upgrades): an epoch can be retired only when this
    /// is empty.
    pub fn pending_rewrap(&self, epoch: Epoch) -> Result<Vec<PendingRewrap>, VaultError> {
        let quarantined: std::collections::BTreeSet<(u8, Vec<u8>)> = self
            .quarantine_reports()?
            .into_iter()
            .map(|q| (q.phase as u8, q.key))
            .collect();
        let st = self.state();
        let mut out = Vec::new();
        for_each_version(self.store(), &mut |phase, key, at, w| {
            let Some((record_id, version)) = at else {
                return;
            };
            if w.is_none_or(|w| needs_rewrap(&st, w, epoch)) {
                out.push(PendingRewrap {
                    record_id,
                    version,
                    epoch: w.map_or(Epoch(0), WrappedDek::epoch),
                    quarantined: quarantined.contains(&(phase as u8, key.to_vec())),
                });
            }
        })?;
        Ok(out)
    }

    /// The record versions rotations set aside because their data key could not be
    /// rewrapped (see [`QuarantinedVersion`]); `doctor` reports them as failures.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedVersion>, VaultError> {
        Ok(self
            .quarantine_reports()?
            .iter()
            .map(Quarantined::listed)
            .collect())
    }

    fn quarantine_reports(&self) -> Result<Vec<Quarantined>, VaultError> {
        Ok(scan_all(
            self.store(),
            Table::Jobs,
            &ScanRange::prefix(QUARANTINE_PREFIX.to_vec()),
        )?
        .into_iter()
        .map(|r| Quarantined::decode(&r.key, &r.value))
        .collect())
    }

    /// Deletes the record versions rotations quarantined: each is checked again first (a
    /// version that opens now is kept, and the next rotation rewraps it), then deleted, in
    /// one commit with an audit entry. An older version's data key and body are deleted; a
    /// quarantined head is replaced by the secret's newest remaining version, or the
    /// secret is removed when none remains (a version that never opens cannot be its
    /// value).
    pub fn purge_quarantined(&self) -> Result<PurgeReport, VaultError> {
        self.require_writer()?;
        // Each version is opened again before it is deleted, with the latest membership log
        // (a writer this handle did not know yet must not make a good version look bad).
        self.refresh_if_stale()?;
        let reports = self.quarantine_reports()?;
        let mut report = PurgeReport::default();
        if reports.is_empty() {
            return Ok(report);
        }
        let st = self.state();
        let store = self.store();
        let mut batch = Batch::new();
        // Older versions first: a head purged with the version below it must not bring
        // that version back as the head, nor delete its rows a second time.
        let mut dropped = std::collections::HashSet::new();
        let (history, heads): (Vec<&Quarantined>, Vec<&Quarantined>) =
            reports.iter().partition(|q| q.phase == Phase::History);
        for q in history.into_iter().chain(heads) {
            batch.delete(Table::Jobs, q.row_key(), Expect::Any);
            let row = store.get(q.phase.table(), &q.key)?;
            let Some(row) = row else {
                continue;
            };
            match q.phase {
                Phase::History => {
                    let opens = q.at.is_some_and(|(record, version)| {
                        store
                            .get(Table::Bodies, &q.key)
                            .ok()
                            .flatten()
                            .is_some_and(|b| {
                                crate::records::open_to_attest(
                                    &*st, record, version, &b.value, &row.value,
                                )
                                .is_ok()
                            })
                    });
                    if opens {
                        report.kept += 1;
                        continue;
                    }
                    batch
                        .delete(Table::Deks, q.key.clone(), Expect::Version(row.version))
                        .delete(Table::Bodies, q.key.clone(), Expect::Any);
                    dropped.insert(q.key.clone());
                }
                Phase::Heads => {
                    let entry = IndexEntry::decode(&row.value).ok();
                    let opens = entry.as_ref().is_some_and(|e| {
                        crate::records::open_version_to_attest(store, &*st, e, e.version).is_ok()
                    });
                    if opens {
                        report.kept += 1;
                        continue;
                    }
                    let moved = crate::records::drop_head(
                        store,
                        &mut batch,
                        &q.key,
                        row.version,
                        entry.as_ref(),
                        &dropped,
                    )?;
                    report.heads_moved.push(moved);
                }
            }
            report.purged.push(q.listed());
        }
        drop(st);
        let detail = format!("purged={} kept={}", report.purged.len(), report.kept);
        self.write(|_, b| {
            for op in batch.ops() {
                b.push(op.clone());
            }
            Ok((
                (),
                AuditEvent::new(Action::Purge, Vec::new(), detail.clone()),
            ))
        })?;
        Ok(report)
    }

    /// Whether a rotation or re-encryption was interrupted and waits to be resumed, and
    /// toward which epoch.
    pub fn interrupted_rotation(&self) -> Result<Option<Epoch>, VaultError> {
        self.refresh_if_stale()?;
        Ok(match self.store().get(Table::Jobs, JOB_KEY)? {
            Some(row) => Some(decode_job(&self.state(), &row.value, self.id())?.target),
            None => None,
        })
    }

    fn run_job(
        &self,
        kind: Kind,
        options: RotateOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RotationReport, VaultError> {
        let started = Instant::now();
        self.require_writer()?;
        let batch_size = options.batch_size.clamp(1, 10_000);
        let (mut job, resumed) = self.claim_job(kind, options)?;
        let total = self.count_versions()?;
        let mut processed = 0u64;
        // A member removal while the rotation runs starts a newer epoch that the removed
        // member does not hold: the rotation moves on to it (a rotation that finished on
        // the epoch before the removal would leave every record under a key the removed
        // member has). Checked after every pass and again after the old epochs are
        // retired, since a removal can commit at any moment.
        for round in 0..4 {
            self.retarget(&mut job);
            tracing::info!(epoch = %job.target, resumed, kind = ?job.kind, "rotation running");
            processed += self.rewrap_until_clean(&mut job, batch_size, total, progress, round)?;
            self.finish_job(&job)?;
            self.refresh_if_stale()?;
            if self.epoch() <= job.target {
                break;
            }
            // The job row is gone with the retirement: a new one, toward the newer epoch
            // (no new key: that epoch exists already).
            job = self.continue_job(job.kind, self.epoch())?;
        }
        Ok(RotationReport {
            epoch: job.target,
            processed,
            resumed,
            min_epoch: self.min_epoch(),
            quarantined: self.quarantine_reports()?.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The job to run: the interrupted one (`true`: resumed), after finishing an
    /// interrupted job of the other kind and discarding an invalid row, or a new one.
    fn claim_job(&self, kind: Kind, options: RotateOptions) -> Result<(Job, bool), VaultError> {
        loop {
            if let Some(row) = self.store().get(Table::Jobs, JOB_KEY)? {
                self.refresh_if_stale()?;
                let decoded = decode_job(&self.state(), &row.value, self.id());
                match decoded {
                    Ok(job) if job.target <= self.epoch() && job.target >= self.min_epoch() => {
                        if job.kind != kind {
                            // Finish the interrupted job of the other kind first, then run
                            // the one asked for: a re-encryption is never silently a rewrap.
                            tracing::info!(pending = ?job.kind, asked = ?kind, "finishing an interrupted job first");
                            self.run_job(job.kind, options, &mut |_| {})?;
                            continue;
                        }
                        return Ok((job, true));
                    }
                    other => {
                        let reason = other.err().map_or_else(
                            || "it names an epoch this vault does not have".to_owned(),
                            |e| e.to_string(),
                        );
                        tracing::warn!(
                            reason,
                            "discarding an invalid rotation job row and starting a new rotation"
                        );
                        self.discard_job_row(row.version)?;
                        continue;
                    }
                }
            }
            match self.start_job(kind, options.new_metadata_key) {
                Ok(job) => return Ok((job, false)),
                // Another process started a rotation first: resume that one.
                Err(VaultError::Store(StoreError::Conflict {
                    table: Table::Jobs, ..
                })) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Deletes a job row that does not decode or names an epoch this vault does not have
    /// (a concurrent delete is fine).
    fn discard_job_row(&self, version: u64) -> Result<(), VaultError> {
        let mut b = Batch::new();
        b.delete(Table::Jobs, JOB_KEY.to_vec(), Expect::Version(version));
        b.require_generation(self.state().session.generation());
        match self.store().commit(&b) {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn count_versions(&self) -> Result<u64, VaultError> {
        let mut n = 0u64;
        for_each_version(self.store(), &mut |_, _, _, _| n += 1)?;
        Ok(n)
    }

    /// Passes over the data keys until one finds nothing left under an older epoch than
    /// the job's target (moving the target to a newer epoch that appears meanwhile).
    fn rewrap_until_clean(
        &self,
        job: &mut Job,
        batch_size: usize,
        total: u64,
        progress: &mut dyn FnMut(Progress),
        round: usize,
    ) -> Result<u64, VaultError> {
        let mut processed = 0u64;
        // Only a pass over the whole table proves the older epochs are no longer needed: a
        // resumed pass starts at the cursor, and the rows before it may be under an older
        // epoch than the target (a member removal while the job waited).
        for i in 0..8 {
            let whole_table = job.phase == Phase::Heads && job.cursor.is_empty();
            // The first pass reports progress; later passes check (and rarely rewrap) what
            // the first one already counted, so they add only what they rewrite.
            let n = if i == 0 && round == 0 {
                self.pass(job, batch_size, total, progress)?
            } else {
                let done = job.done;
                let n = self.pass(job, batch_size, total, &mut |_| {})?;
                job.done = done + n;
                n
            };
            processed += n;
            self.refresh_if_stale()?;
            if self.retarget(job) {
                continue;
            }
            if n == 0 && whole_table {
                return Ok(processed);
            }
        }
        let left = self.pending_rewrap(job.target)?.len();
        Err(VaultError::inconsistent(
            Inconsistency::Unfinished,
            format!(
                "{left} record versions are still under an older epoch after several passes; run the rotation again"
            ),
        ))
    }

    /// Moves the job to the current epoch when a newer one appeared (a member removal);
    /// the next pass then starts over from the beginning of the table.
    fn retarget(&self, job: &mut Job) -> bool {
        let current = self.epoch();
        if current <= job.target {
            return false;
        }
        tracing::info!(from = %job.target, to = %current, "a newer epoch appeared during the rotation (a member removal?): rotating to it");
        job.target = current;
        job.phase = Phase::Heads;
        job.cursor.clear();
        true
    }

    /// A job row toward `target`, an epoch that exists already (after a retirement found a
    /// newer epoch than the one it rotated to).
    fn continue_job(&self, kind: Kind, target: Epoch) -> Result<Job, VaultError> {
        let job = Job {
            kind,
            target,
            done: 0,
            started_at: now(),
            phase: Phase::Heads,
            cursor: Vec::new(),
        };
        let vault = self.id();
        self.write(|st, batch| {
            batch.put(
                Table::Jobs,
                JOB_KEY.to_vec(),
                job.encode(&st.meta, vault),
                Expect::Absent,
            );
            Ok((
                (),
                AuditEvent::new(
                    Action::RotateStart,
                    target.0.to_be_bytes(),
                    format!("epoch={target} continued after a newer epoch appeared"),
                ),
            ))
        })?;
        Ok(job)
    }

    /// A new epoch, the metadata key (`replace_meta`: a new one) wrapped under it and the
    /// job row, in one batch.
    fn start_job(&self, kind: Kind, replace_meta: bool) -> Result<Job, VaultError> {
        let vault = self.id();
        let started_at = now();
        let what = match kind {
            Kind::Rewrap => "rewrap",
            Kind::Reencrypt => "reencrypt",
        };
        let meta_key = if replace_meta {
            MetaKey::Replace
        } else {
            MetaKey::Keep
        };
        let target = self.change_with(meta_key, Session::prepare_rekey, |meta, change| {
            let epoch = *change.outcome();
            let job = Job {
                kind,
                target: epoch,
                done: 0,
                started_at,
                phase: Phase::Heads,
                cursor: Vec::new(),
            };
            change.batch_mut().put(
                Table::Jobs,
                JOB_KEY.to_vec(),
                job.encode(meta, vault),
                Expect::Absent,
            );
            Ok(AuditEvent::new(
                Action::RotateStart,
                epoch.0.to_be_bytes(),
                format!("epoch={epoch} kind={what}"),
            ))
        })?;
        Ok(Job {
            kind,
            target,
            done: 0,
            started_at,
            phase: Phase::Heads,
            cursor: Vec::new(),
        })
    }

    /// One pass from the job's position to the end of the older versions (through the
    /// index heads first). Returns the rows rewritten.
    fn pass(
        &self,
        job: &mut Job,
        batch_size: usize,
        total: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64, VaultError> {
        let mut processed = 0u64;
        for phase in [Phase::Heads, Phase::History] {
            if job.phase == Phase::History && phase == Phase::Heads {
                continue;
            }
            if job.phase != phase {
                job.phase = phase;
                job.cursor.clear();
            }
            processed += self.pass_table(job, batch_size, total, progress)?;
        }
        // Wrap around for the next pass.
        job.phase = Phase::Heads;
        job.cursor.clear();
        Ok(processed)
    }

    /// The rest of the job's phase, from its cursor.
    fn pass_table(
        &self,
        job: &mut Job,
        batch_size: usize,
        total: u64,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64, VaultError> {
        let mut processed = 0u64;
        // A reader thread scans and transforms pages (crypto) while this thread commits
        // the previous page: I/O and crypto overlap on two cores. The channel holds at
        // most two pages, which bounds memory.
        let start_cursor = (!job.cursor.is_empty()).then(|| ScanCursor::from_bytes(&job.cursor));
        let (target, kind, phase) = (job.target, job.kind, job.phase);
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<Result<Page, VaultError>>(2);
            let reader = scope.spawn(move || {
                let mut cursor = start_cursor;
                loop {
                    let page = self.prepare_page(kind, target, phase, cursor.as_ref(), batch_size);
                    let next = match &page {
                        Ok(p) => p.next.clone(),
                        Err(_) => None,
                    };
                    let stop = page.is_err() || next.is_none();
                    if tx.send(page).is_err() || stop {
                        return;
                    }
                    cursor = next;
                }
            });
            for page in rx {
                let page = page?;
                processed += self.commit_page(job, &page, kind)?;
                progress(Progress {
                    epoch: target,
                    done: job.done,
                    total: total.max(job.done),
                });
            }
            reader.join().map_err(|_| {
                VaultError::inconsistent(Inconsistency::Internal, "rotation reader thread panicked")
            })
        })?;
        Ok(processed)
    }

    fn prepare_page(
        &self,
        kind: Kind,
        target: Epoch,
        phase: Phase,
        cursor: Option<&ScanCursor>,
        limit: usize,
    ) -> Result<Page, VaultError> {
        let page = self
            .store()
            .scan(phase.table(), &ScanRange::all(), cursor, limit)?;
        let last = page.rows.last().map(|r| r.key.clone());
        let done = self.rework(kind, target, phase, &page.rows)?;
        Ok(Page {
            scanned: page.rows.len() as u64,
            updates: done.updates,
            quarantined: done.quarantined,
            log_len: done.log_len,
            last,
            next: page.next,
        })
    }

    /// What the rows of `phase`'s table that need it turn into.
    fn rework(
        &self,
        kind: Kind,
        target: Epoch,
        phase: Phase,
        rows: &[Row],
    ) -> Result<Rewrapped, VaultError> {
        let st = self.state();
        // A re-encryption signs what it vouches for: not once this member lost the right
        // to write.
        if kind == Kind::Reencrypt {
            crate::writers::signing_position(&*st, None)?;
        }
        let new = st.session.key(target).ok_or_else(|| {
            VaultError::inconsistent(
                Inconsistency::MissingKey,
                format!("this member has no key for epoch {target}: refresh and retry"),
            )
        })?;
        let mut out = match phase {
            Phase::Heads => {
                let mut out = Rewrapped::default();
                for row in rows {
                    self.rework_head(&st, kind, new, row, &mut out)?;
                }
                out
            }
            Phase::History => {
                let old: Vec<&Row> = rows
                    .iter()
                    .filter(|r| row_needs_rewrap(&st, r, target))
                    .collect();
                match kind {
                    Kind::Rewrap => rewrap_rows(self.store(), &st, new, &old)?,
                    Kind::Reencrypt => self.reencrypt_rows(&st, new, &old)?,
                }
            }
        };
        out.log_len = st.session.membership().len();
        Ok(out)
    }

    /// The index entry `row` rewritten so that its head is under `new` (and in format 2).
    fn rework_head(
        &self,
        st: &State,
        kind: Kind,
        new: &VaultKey,
        row: &Row,
        out: &mut Rewrapped,
    ) -> Result<(), VaultError> {
        let entry = match IndexEntry::decode(&row.value) {
            Ok(e) => e,
            Err(e) => {
                out.quarantine(Phase::Heads, row, None, None, e.to_string());
                return Ok(());
            }
        };
        let at = Some((entry.record, entry.version));
        let (moved_to, scope) = match self.reindex(st, &entry, row) {
            Ok(to) => to,
            Err(reason) => {
                out.quarantine(Phase::Heads, row, None, at, reason);
                return Ok(());
            }
        };
        let update = |value: Vec<u8>| Update {
            moved_to: moved_to.clone(),
            ..Update::of(Table::Index, row, value)
        };
        let ctx = RecordContext {
            vault_id: st.session.vault_id(),
            record_id: entry.record,
            version: entry.version,
        };
        let head_key = version_key(entry.record, entry.version);
        // A head of a scope's namespace moves to the scope's current key, also from a vault
        // key (a secret written before the scope existed).
        let into_scope = match scope.map(|s| st.session.current_scope_key(s)) {
            Some(Some(key)) => Some(key),
            Some(None) => {
                let reason = "this member holds no current key of the secret's scope".to_owned();
                out.quarantine(Phase::Heads, row, None, at, reason);
                return Ok(());
            }
            None => None,
        };
        let stale = |dek: &WrappedDek| match into_scope {
            Some(key) => {
                dek.version() < 2 || dek.key_id() != key.id() || dek.epoch() != key.epoch()
            }
            None => needs_rewrap(st, dek, new.epoch()),
        };
        match entry.head() {
            Some(head) if !stale(&head.dek) => {
                if moved_to.is_some() {
                    out.updates.push(update(row.value.clone()));
                }
                Ok(())
            }
            Some(head) if kind == Kind::Rewrap => {
                let epoch = head.dek.epoch();
                let Some((_, old)) = st.unwrapping_key(&head.dek) else {
                    out.quarantine(Phase::Heads, row, Some(epoch), at, no_key(epoch));
                    return Ok(());
                };
                let target = into_scope.map_or_else(|| rewrap_target(st, &head.dek, new), Ok);
                let new = match target {
                    Ok(k) => k,
                    Err(reason) => {
                        out.quarantine(Phase::Heads, row, Some(epoch), at, reason);
                        return Ok(());
                    }
                };
                match rewrap(old, new, &ctx, head.dek.as_bytes()) {
                    Ok(dek) => {
                        let mut e = entry.clone();
                        if let Some((_, h)) = e.layout.as_mut() {
                            h.dek = dek;
                        }
                        out.updates.push(update(e.encode()));
                    }
                    Err(err) => out.quarantine(Phase::Heads, row, Some(epoch), at, err.to_string()),
                }
                Ok(())
            }
            // Format 1 (head in rows of its own) or a re-encryption: built from the head's
            // plaintext or body.
            _ => {
                let stored_body = match entry.head().map(|h| &h.body) {
                    Some(HeadBody::Inline(_)) => None,
                    _ => self.store().get(Table::Bodies, &head_key)?,
                };
                let old_dek = match entry.head() {
                    Some(h) => Some((h.dek.as_bytes().to_vec(), None)),
                    None => self
                        .store()
                        .get(Table::Deks, &head_key)?
                        .map(|d| (d.value, Some(d.version))),
                };
                let body: Option<&[u8]> = match entry.head().map(|h| &h.body) {
                    Some(HeadBody::Inline(b)) => Some(b),
                    _ => stored_body.as_ref().map(|b| b.value.as_slice()),
                };
                let (Some(body), Some((dek, dek_row))) = (body, old_dek) else {
                    // A concurrent delete or prune: the next pass sees what is left.
                    return Ok(());
                };
                let epoch = WrappedDek::from_bytes(&dek).ok().map(|w| w.epoch());
                let made = match kind {
                    Kind::Rewrap => Self::upgrade_head(st, new, &ctx, body, &dek),
                    Kind::Reencrypt => self.reseal(st, new, &ctx, body, &dek),
                };
                let (new_dek, new_body) = match made {
                    Ok(parts) => parts,
                    Err(reason) => {
                        out.quarantine(Phase::Heads, row, epoch, at, reason);
                        return Ok(());
                    }
                };
                let oldest = match entry.oldest() {
                    Some(o) => o,
                    None => versions_of(self.store(), Table::Deks, entry.record)?
                        .iter()
                        .filter_map(|r| parse_version_key(&r.key).map(|(_, v)| v))
                        .min()
                        .unwrap_or(entry.version)
                        .min(entry.version),
                };
                let mut update = update(Vec::new());
                if let Some(v) = dek_row {
                    update.also.push(Also::Delete(
                        Table::Deks,
                        head_key.clone(),
                        Expect::Version(v),
                    ));
                }
                let inline = new_body.len() <= INLINE_BODY_MAX;
                let body = if inline {
                    if let Some(b) = &stored_body {
                        update.also.push(Also::Delete(
                            Table::Bodies,
                            head_key,
                            Expect::Version(b.version),
                        ));
                    }
                    HeadBody::Inline(new_body)
                } else {
                    let expect = stored_body
                        .as_ref()
                        .map_or(Expect::Absent, |b| Expect::Version(b.version));
                    update
                        .also
                        .push(Also::Put(Table::Bodies, head_key, new_body, expect));
                    HeadBody::Stored
                };
                update.value = IndexEntry {
                    layout: Some((oldest, Head { dek: new_dek, body })),
                    ..entry
                }
                .encode();
                out.updates.push(update);
                Ok(())
            }
        }
    }

    /// Where the index row `row` of `entry` moves while older index keys of its domain are
    /// in use (older vault metadata keys, earlier scope epochs): its blind index under the
    /// current key (`None`: it is there already). The name comes from the head version's
    /// payload; a row that matches its secret under no index key is not moved (an error:
    /// it is quarantined).
    ///
    /// With it comes the scope of the secret's namespace, when the payload was opened
    /// (`None` also when it was not: no scope exists).
    fn reindex(
        &self,
        st: &State,
        entry: &IndexEntry,
        row: &Row,
    ) -> Result<(Option<Vec<u8>>, Option<ScopeId>), String> {
        if st.older_meta.is_empty() {
            if st.session.membership().scopes().is_empty() {
                return Ok((None, None));
            }
            // A head under its scope's current key was written (or moved) under the
            // current scope index key: nothing to learn by opening it.
            if let Some(head) = entry.head()
                && let Some((Some(scope), key)) = st.unwrapping_key(&head.dek)
                && st
                    .session
                    .current_scope_key(scope)
                    .is_some_and(|c| c.id() == key.id())
            {
                return Ok((None, Some(scope)));
            }
        }
        // Only the name is needed. After a member removal (older metadata keys in use) the
        // writer is checked too, so that a head planted with a key the removed member kept
        // is set aside, not moved; a version waiting for its re-attestation moves. Opened
        // only to find heads stored before their scope existed, a head is not checked (no
        // signature to verify for every head at every rotation): only current full members
        // hold the keys that open it, and every read checks it where it lands.
        let opened = if st.older_meta.is_empty() {
            crate::records::open_version_name_only(self.store(), st, entry, entry.version)
        } else {
            crate::records::open_version_to_attest(self.store(), st, entry, entry.version)
        };
        let (payload, _) =
            opened.map_err(|e| format!("the head version does not open to re-index it: {e}"))?;
        let domain = st.domain(&payload.namespace).map_err(|e| e.to_string())?;
        let mut keys = domain
            .index
            .all()
            .into_iter()
            .map(|m| crate::records::blind_with(m, &payload.namespace, &payload.name));
        let current = keys
            .next()
            .unwrap_or_else(|| unreachable!("a domain has a current index key"));
        if current[..] == row.key[..] {
            Ok((None, domain.scope))
        } else if keys.any(|k| k[..] == row.key[..]) {
            Ok((Some(current.to_vec()), domain.scope))
        } else {
            Err(format!(
                "the index row points at record {} of another secret",
                entry.record
            ))
        }
    }

    /// A format-1 head: its wrapped data key upgraded to format 2 from its body.
    fn upgrade_head(
        st: &State,
        new: &VaultKey,
        ctx: &RecordContext,
        body: &[u8],
        dek: &[u8],
    ) -> Result<(WrappedDek, Vec<u8>), String> {
        let w = WrappedDek::from_bytes(dek).map_err(|e| e.to_string())?;
        let (_, old) = st.unwrapping_key(&w).ok_or_else(|| no_key(w.epoch()))?;
        let new = rewrap_target(st, &w, new)?;
        let up = rewrap_with_body(old, new, ctx, body, dek).map_err(|e| e.to_string())?;
        Ok((up, body.to_vec()))
    }

    /// A record version sealed again, under a fresh data key wrapped by `new`.
    fn reseal(
        &self,
        st: &State,
        new: &VaultKey,
        ctx: &RecordContext,
        body: &[u8],
        dek: &[u8],
    ) -> Result<(WrappedDek, Vec<u8>), String> {
        let (payload, _) =
            crate::records::open_to_attest(st, ctx.record_id, ctx.version, body, dek)
                .map_err(|e| e.to_string())?;
        let fields = payload.fields();
        // A signed version keeps its writer's signature; an unsigned one (written by an
        // earlier release), or one whose signer lost the right to write since, is signed by
        // the member re-encrypting it, who vouches for it.
        let plain = match &payload.proof {
            Some(proof) if !payload.needs_attestation => fields.encode_proven(proof),
            _ => fields.encode_signed(
                ctx,
                st.session.identity(),
                crate::writers::ProofKind::Vouched,
                crate::records::log_position(st),
            ),
        };
        // A scope's record is sealed again under its scope's current key.
        let domain = st.domain(&payload.namespace).map_err(|e| e.to_string())?;
        let new = if domain.scope.is_some() {
            domain.key
        } else {
            new
        };
        let sealed = seal(new, self.header().suite, ctx, plain.expose_secret())
            .map_err(|e| e.to_string())?;
        Ok((sealed.wrapped_dek, sealed.body))
    }

    fn reencrypt_rows(
        &self,
        st: &State,
        new: &VaultKey,
        rows: &[&Row],
    ) -> Result<Rewrapped, VaultError> {
        let mut out = Rewrapped::default();
        for row in rows {
            let Some((record, version)) = parse_version_key(&row.key) else {
                out.quarantine(
                    Phase::History,
                    row,
                    None,
                    None,
                    "the row key is not a record version",
                );
                continue;
            };
            let Some(body) = self.store().get(Table::Bodies, &row.key)? else {
                continue;
            };
            let epoch = WrappedDek::from_bytes(&row.value).ok().map(|w| w.epoch());
            let ctx = RecordContext {
                vault_id: self.id(),
                record_id: record,
                version,
            };
            match self.reseal(st, new, &ctx, &body.value, &row.value) {
                Ok((dek, sealed_body)) => {
                    let mut u = Update::of(Table::Deks, row, dek.as_bytes().to_vec());
                    u.also.push(Also::Put(
                        Table::Bodies,
                        row.key.clone(),
                        sealed_body,
                        Expect::Version(body.version),
                    ));
                    out.updates.push(u);
                }
                Err(reason) => {
                    out.quarantine(Phase::History, row, epoch, Some((record, version)), reason);
                }
            }
        }
        Ok(out)
    }

    fn commit_page(&self, job: &mut Job, page: &Page, kind: Kind) -> Result<u64, VaultError> {
        self.commit_page_attempt(job, page, kind, 0)
    }

    fn commit_page_attempt(
        &self,
        job: &mut Job,
        page: &Page,
        kind: Kind,
        attempt: u32,
    ) -> Result<u64, VaultError> {
        if page.log_len != self.state().session.membership().len() && attempt < 32 {
            // Another call on this handle refreshed the log since the page was made: make
            // it again under the log the commit is guarded by.
            return self.redo_page(job, page, kind, attempt + 1);
        }
        let job_version = self.store().get(Table::Jobs, JOB_KEY)?.map(|r| r.version);
        let mut next_job = job.clone();
        next_job.done = next_job.done.saturating_add(page.scanned);
        if let Some(last) = &page.last {
            next_job.cursor.clone_from(last);
        }
        let mut batch = Batch::with_capacity(page.updates.len() * 2 + 2);
        guard_membership(&mut batch, &self.state());
        for q in &page.quarantined {
            batch.put(Table::Jobs, q.row_key(), q.encode(), Expect::Any);
        }
        for u in &page.updates {
            u.stage(&mut batch);
        }
        batch.put(
            Table::Jobs,
            JOB_KEY.to_vec(),
            next_job.encode(&self.state().meta, self.id()),
            job_version.map_or(Expect::Absent, Expect::Version),
        );
        match self.store().commit(&batch) {
            Ok(_) => {
                *job = next_job;
                Ok(page.updates.len() as u64)
            }
            Err(e) if e.is_conflict() && attempt < 32 => {
                // A row changed under us (a concurrent put, delete or prune, another
                // rotator) or the membership moved: re-read this page's rows and commit
                // again.
                tracing::debug!(error = %e, attempt, "rotation batch conflict; redoing the page");
                if let strongroom_store::StoreError::Conflict {
                    table: Table::MemberLog,
                    ..
                } = e
                {
                    self.refresh()?;
                }
                self.redo_page(job, page, kind, attempt + 1)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Re-reads the rows of a page that conflicted and commits them again with fresh
    /// versions; rows that disappeared are skipped.
    fn redo_page(
        &self,
        job: &mut Job,
        page: &Page,
        kind: Kind,
        attempt: u32,
    ) -> Result<u64, VaultError> {
        let table = job.phase.table();
        let mut fresh_rows = Vec::new();
        // Rows quarantined when the page was first made are looked at again too: with a
        // newer log, a version whose writer this handle did not know yet opens.
        let keys = page
            .updates
            .iter()
            .map(|u| &u.key)
            .chain(page.quarantined.iter().map(|q| &q.key));
        for key in keys {
            if let Some(v) = self.store().get(table, key)? {
                fresh_rows.push(Row {
                    key: key.clone(),
                    value: v.value,
                    version: v.version,
                });
            }
        }
        let done = self.rework(kind, job.target, job.phase, &fresh_rows)?;
        let again = Page {
            scanned: page.scanned,
            updates: done.updates,
            quarantined: done.quarantined,
            log_len: done.log_len,
            last: page.last.clone(),
            next: None,
        };
        self.commit_page_attempt(job, &again, kind, attempt)
    }

    /// Retires the epochs below the target (a signed log entry that also shreds their
    /// chain links and grants) and, in the same batch, removes the metadata-key wraps of
    /// those epochs and the job row. A re-run after a crash finds the epochs retired and
    /// only removes the job.
    fn finish_job(&self, job: &Job) -> Result<(), VaultError> {
        let target = job.target;
        let action = match job.kind {
            Kind::Rewrap => Action::RotateFinish,
            Kind::Reencrypt => Action::Reencrypt,
        };
        let detail = format!("epoch={target} processed={}", job.done);
        let old_meta: Vec<Vec<u8>> = self
            .store()
            .scan(
                Table::Wraps,
                &ScanRange::prefix(b"m".to_vec()),
                None,
                10_000,
            )?
            .rows
            .into_iter()
            .filter(|r| {
                r.key.len() == 5
                    && u32::from_be_bytes([r.key[1], r.key[2], r.key[3], r.key[4]]) < target.0
            })
            .map(|r| r.key)
            .collect();
        self.change(
            |session| session.prepare_retire(self.store(), target),
            |_, change| {
                let batch = change.batch_mut();
                batch.delete(Table::Jobs, JOB_KEY.to_vec(), Expect::Any);
                for k in &old_meta {
                    batch.delete(Table::Wraps, k.clone(), Expect::Any);
                }
                Ok(AuditEvent::new(
                    action,
                    target.0.to_be_bytes(),
                    detail.clone(),
                ))
            },
        )?;
        tracing::info!(epoch = %target, "rotation finished; older epochs retired and shredded");
        Ok(())
    }
}

/// A row a rotation rewrites: its table, key and the version it read, its new value, and
/// the other rows of the same change.
struct Update {
    table: Table,
    key: Vec<u8>,
    row_version: u64,
    value: Vec<u8>,
    /// The row's new key (an index row moving to its blind index under a replaced
    /// metadata key): the row at `key` is deleted.
    moved_to: Option<Vec<u8>>,
    also: Vec<Also>,
}

/// Another row changed together with an [`Update`]'s.
enum Also {
    Put(Table, Vec<u8>, Vec<u8>, Expect),
    Delete(Table, Vec<u8>, Expect),
}

impl Update {
    fn of(table: Table, row: &Row, value: Vec<u8>) -> Self {
        Self {
            table,
            key: row.key.clone(),
            row_version: row.version,
            value,
            moved_to: None,
            also: Vec::new(),
        }
    }

    fn stage(&self, batch: &mut Batch) {
        match &self.moved_to {
            None => batch.put(
                self.table,
                self.key.clone(),
                self.value.clone(),
                Expect::Version(self.row_version),
            ),
            Some(to) => batch
                .delete(
                    self.table,
                    self.key.clone(),
                    Expect::Version(self.row_version),
                )
                .put(self.table, to.clone(), self.value.clone(), Expect::Absent),
        };
        for a in &self.also {
            match a {
                Also::Put(t, k, v, e) => batch.put(*t, k.clone(), v.clone(), *e),
                Also::Delete(t, k, e) => batch.delete(*t, k.clone(), *e),
            };
        }
    }
}

struct Page {
    scanned: u64,
    updates: Vec<Update>,
    /// Rows that could not be rewrapped: set aside, reported, never fatal.
    quarantined: Vec<Quarantined>,
    /// The number of membership log entries the page was made with: it commits only
    /// under that same log (a re-encryption signs versions as of it).
    log_len: u64,
    last: Option<Vec<u8>>,
    next: Option<ScanCursor>,
}

/// A row a rotation could not rewrap (its data key does not open under its epoch's key,
/// names an epoch whose key is gone, or does not parse): planted by a former member or
/// damaged. It is set aside so the rotation can finish; `pending_rewrap`, `status` and
/// `doctor` report it, and [`Vault::purge_quarantined`] deletes it.
#[derive(Clone)]
struct Quarantined {
    phase: Phase,
    key: Vec<u8>,
    epoch: Option<Epoch>,
    at: Option<(RecordId, u64)>,
    reason: String,
}

/// Row keys of quarantine reports in [`Table::Jobs`]: this prefix, the phase (`0` for an
/// index head, `1` for an older version's data key), then the row's key. The reports are
/// written by the member that rotated and not authenticated: purging re-checks each row.
///
/// Report layout: `1 ‖ epoch (u32, 0: unknown) ‖ 1 ‖ record id (16) ‖ version (u64)` (or
/// `0` when the row names no record) `‖ reason (u32 length ‖ UTF-8)`.
const QUARANTINE_PREFIX: &[u8] = b"quarantine/";

impl Quarantined {
    fn row_key(&self) -> Vec<u8> {
        [QUARANTINE_PREFIX, &[self.phase as u8], &self.key[..]].concat()
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(40 + self.reason.len());
        w.u8(1).u32(self.epoch.map_or(0, |e| e.0));
        match self.at {
            Some((record, version)) => {
                w.u8(1).bytes(record.as_bytes()).u64(version);
            }
            None => {
                w.u8(0);
            }
        }
        w.var_bytes(self.reason.as_bytes());
        w.into_vec()
    }

    /// A report read back (`None` when it does not parse: it is then reported as such).
    fn decode(row_key: &[u8], value: &[u8]) -> Self {
        let rest = &row_key[QUARANTINE_PREFIX.len().min(row_key.len())..];
        let (phase, key) = match rest.split_first() {
            Some((0, k)) => (Phase::Heads, k.to_vec()),
            Some((_, k)) => (Phase::History, k.to_vec()),
            None => (Phase::History, Vec::new()),
        };
        let mut r = Reader::new("quarantine report", value);
        let parsed = (|| {
            r.version(&[1])?;
            let epoch = Some(r.u32("epoch")?).filter(|e| *e > 0).map(Epoch);
            let at = if r.u8("record present")? == 1 {
                Some((
                    RecordId::from_bytes(r.array("record id")?),
                    r.u64("version")?,
                ))
            } else {
                None
            };
            let reason = String::from_utf8_lossy(r.var_bytes("reason", 4096)?).into_owned();
            Ok::<_, strongroom_crypto::DecodeError>((epoch, at, reason))
        })();
        let (epoch, at, reason) =
            parsed.unwrap_or_else(|e| (None, None, format!("(the report does not parse: {e})")));
        Self {
            phase,
            key,
            epoch,
            at,
            reason,
        }
    }

    fn listed(&self) -> QuarantinedVersion {
        QuarantinedVersion {
            record_id: self.at.map(|(r, _)| r),
            version: self.at.map_or(0, |(_, v)| v),
            epoch: self.epoch,
            reason: self.reason.clone(),
            row: crate::audit::hex(&self.key),
        }
    }
}

/// What the rows of a page turned into.
#[derive(Default)]
struct Rewrapped {
    updates: Vec<Update>,
    quarantined: Vec<Quarantined>,
    log_len: u64,
}

impl Rewrapped {
    fn quarantine(
        &mut self,
        phase: Phase,
        row: &Row,
        epoch: Option<Epoch>,
        at: Option<(RecordId, u64)>,
        reason: impl Into<String>,
    ) {
        let reason = reason.into();
        tracing::warn!(
            row = %crate::audit::hex(&row.key),
            reason,
            "a data key could not be rewrapped; setting it aside"
        );
        self.quarantined.push(Quarantined {
            phase,
            key: row.key.clone(),
            epoch,
            at,
            reason,
        });
    }
}

fn no_key(epoch: Epoch) -> String {
    format!("wrapped under epoch {epoch}, whose key this vault does not have")
}

/// Rows waiting for a rewrap under one key, with their record versions and wraps.
type ByKey<'r> = Vec<(&'r Row, RecordContext, WrappedDek)>;

/// The older versions' rows `rows` rewrapped under `new` (format-1 wraps upgraded from
/// their bodies), in batches by source epoch.
fn rewrap_rows(
    view: &dyn ReadView,
    st: &State,
    new: &VaultKey,
    rows: &[&Row],
) -> Result<Rewrapped, VaultError> {
    let mut out = Rewrapped::default();
    let mut by_epoch: std::collections::BTreeMap<(Option<ScopeId>, Epoch), ByKey<'_>> =
        std::collections::BTreeMap::new();
    for row in rows {
        let Some((record, version)) = parse_version_key(&row.key) else {
            out.quarantine(
                Phase::History,
                row,
                None,
                None,
                "the row key is not a record version",
            );
            continue;
        };
        let at = Some((record, version));
        let w = match WrappedDek::from_bytes(&row.value) {
            Ok(w) => w,
            Err(e) => {
                out.quarantine(
                    Phase::History,
                    row,
                    None,
                    at,
                    format!("the wrapped data key does not parse: {e}"),
                );
                continue;
            }
        };
        let ctx = RecordContext {
            vault_id: st.session.vault_id(),
            record_id: record,
            version,
        };
        if w.version() < 2 {
            // Upgraded to format 2 from the body as stored: its digest is bound now.
            let Some((_, old)) = st.unwrapping_key(&w) else {
                out.quarantine(Phase::History, row, Some(w.epoch()), at, no_key(w.epoch()));
                continue;
            };
            let Some(body) = view.get(Table::Bodies, &row.key)? else {
                continue;
            };
            match rewrap_with_body(old, new, &ctx, &body.value, &row.value) {
                Ok(up) => out
                    .updates
                    .push(Update::of(Table::Deks, row, up.as_bytes().to_vec())),
                Err(e) => out.quarantine(Phase::History, row, Some(w.epoch()), at, e.to_string()),
            }
            continue;
        }
        // Batched by the key that wraps them (a vault epoch's, or a scope epoch's).
        let scope = st.unwrapping_key(&w).and_then(|(scope, _)| scope);
        by_epoch
            .entry((scope, w.epoch()))
            .or_default()
            .push((row, ctx, w));
    }
    for ((_, epoch), items) in by_epoch {
        let (w, keys) = (&items[0].2, st.unwrapping_key(&items[0].2));
        let target = rewrap_target(st, w, new);
        let (Some((_, old)), Ok(new)) = (keys, target.as_ref()) else {
            let reason = target.err().unwrap_or_else(|| no_key(epoch));
            for (row, ctx, _) in &items {
                let at = Some((ctx.record_id, ctx.version));
                out.quarantine(Phase::History, row, Some(epoch), at, reason.clone());
            }
            continue;
        };
        let results = rewrap_batch(old, new, items.iter().map(|(r, c, _)| (*c, &r.value[..])))
            .map_err(|source| VaultError::Record {
                record: String::new(),
                source,
            })?;
        for ((row, ctx, _), res) in items.iter().zip(results) {
            match res {
                Ok(w) => out
                    .updates
                    .push(Update::of(Table::Deks, row, w.as_bytes().to_vec())),
                Err(e) => out.quarantine(
                    Phase::History,
                    row,
                    Some(epoch),
                    Some((ctx.record_id, ctx.version)),
                    e.to_string(),
                ),
            }
        }
    }
    Ok(out)
}

/// What [`for_each_version`] calls: the phase, the row key, the record version (when the
/// row names one) and the wrapped data key (when it parses).
pub(crate) type VersionVisitor<'a> =
    dyn FnMut(Phase, &[u8], Option<(RecordId, u64)>, Option<&WrappedDek>) + 'a;

/// Calls `f` on every record version's wrapped data key: the heads in the index entries
/// (a format-1 entry's head is among the older versions' rows), then the older versions.
/// `f` gets the phase, the row key, the record version (when the row names one) and the
/// wrapped key (when it parses).
pub(crate) fn for_each_version(
    view: &dyn ReadView,
    f: &mut VersionVisitor<'_>,
) -> Result<(), VaultError> {
    for_each_row(view, Table::Index, &ScanRange::all(), 10_000, |row| {
        match IndexEntry::decode(&row.value) {
            Ok(e) => {
                if let Some(h) = e.head() {
                    f(
                        Phase::Heads,
                        &row.key,
                        Some((e.record, e.version)),
                        Some(&h.dek),
                    );
                }
            }
            Err(_) => f(Phase::Heads, &row.key, None, None),
        }
        Ok::<_, VaultError>(true)
    })?;
    for_each_row(view, Table::Deks, &ScanRange::all(), 10_000, |row| {
        let w = WrappedDek::from_bytes(&row.value).ok();
        f(
            Phase::History,
            &row.key,
            parse_version_key(&row.key),
            w.as_ref(),
        );
        Ok::<_, VaultError>(true)
    })
}

/// [`needs_rewrap`] of a stored row: a row whose wrapped data key does not parse needs it
/// too (it is quarantined).
fn row_needs_rewrap(st: &State, row: &Row, target: Epoch) -> bool {
    WrappedDek::from_bytes(&row.value).map_or(true, |w| needs_rewrap(st, &w, target))
}

pub(crate) fn needs_rewrap(st: &State, w: &WrappedDek, target: Epoch) -> bool {
    // A format-1 wrap carries no body digest: the rotation upgrades it.
    if w.version() < 2 {
        return true;
    }
    match st.unwrapping_key(w) {
        // A scope's record: under its scope's current key, whatever the vault epoch.
        Some((Some(scope), _)) => st
            .session
            .current_scope_key(scope)
            .is_none_or(|k| k.id() != w.key_id()),
        Some((None, _)) => w.epoch() < target,
        // No key of this handle opens it: quarantined unless it is from an epoch this
        // handle does not know yet.
        None => w.epoch() < target || w.epoch() <= st.session.epoch(),
    }
}

/// The key a version wrapped as `w` moves to: the current key of its scope, or `vault` (the
/// rotation's target) for a vault-wide record.
fn rewrap_target<'s>(
    st: &'s State,
    w: &WrappedDek,
    vault: &'s VaultKey,
) -> Result<&'s VaultKey, String> {
    match st.unwrapping_key(w) {
        Some((Some(scope), _)) => st
            .session
            .current_scope_key(scope)
            .ok_or_else(|| format!("this member holds no current key of scope {scope}")),
        _ => Ok(vault),
    }
}
