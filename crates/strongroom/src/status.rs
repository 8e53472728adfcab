//! `status`, `doctor`, and the audit log API.
//!
//! The epoch timestamp is specified in `docs/spec/meta.md`.

use strongroom_crypto::{MemberId, VaultId};
use strongroom_envelope::Epoch;
use strongroom_recovery::KeyholderKind;
use strongroom_sharing::{KeyholderInfo, RecoverabilityReport, Role};
use strongroom_store::{Batch, Expect, ScanRange, Table, for_each_row};
use subtle::ConstantTimeEq;

use crate::audit::{self, AuditEntry, AuditReport};
use crate::meta::{MetaKeys, now};
use crate::records::{IndexEntry, open_version, parse_version_key};
use crate::vault::{State, Vault};
use crate::{Inconsistency, VaultError};

const EPOCH_STAMP_KEY: &[u8] = b"epoch-started";

/// Records when the current epoch started (for the key-age policy): `epoch (u32) ‖ time
/// (u64) ‖ HMAC(config key, "strongroom/v1/epoch-started" ‖ vault id ‖ epoch ‖ time)`.
pub(crate) fn stamp_epoch(batch: &mut Batch, meta: &MetaKeys, vault: VaultId, epoch: Epoch) {
    let epoch = epoch.0.to_be_bytes();
    let time = now().to_be_bytes();
    let mac = meta.mac(
        b"strongroom/v1/epoch-started",
        &[vault.as_bytes().as_slice(), &epoch, &time].concat(),
    );
    let mut v = epoch.to_vec();
    v.extend_from_slice(&time);
    v.extend_from_slice(&mac);
    batch.put(Table::Meta, EPOCH_STAMP_KEY.to_vec(), v, Expect::Any);
}

fn read_epoch_stamp(vault: &Vault, st: &State) -> Result<Option<(Epoch, u64)>, VaultError> {
    let Some(row) = vault.store().get(Table::Meta, EPOCH_STAMP_KEY)? else {
        return Ok(None);
    };
    let v = row.value;
    if v.len() != 44 {
        return Err(VaultError::inconsistent(
            Inconsistency::Truncated,
            format!(
                "the epoch timestamp row is {} bytes, not 44: modified outside strongroom; `rotate` writes a new one",
                v.len()
            ),
        ));
    }
    let want = st.meta.mac(
        b"strongroom/v1/epoch-started",
        &[vault.id().as_bytes().as_slice(), &v[..12]].concat(),
    );
    if !bool::from(want.ct_eq(&v[12..])) {
        return Err(VaultError::inconsistent(
            Inconsistency::MacMismatch,
            "the epoch timestamp was modified outside strongroom (MAC mismatch)",
        ));
    }
    let epoch = Epoch(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
    let time = u64::from_be_bytes(v[4..12].try_into().unwrap_or_default());
    Ok(Some((epoch, time)))
}

/// A vault's state at a glance.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Status {
    /// Vault id.
    pub vault_id: VaultId,
    /// Storage backend.
    pub backend: &'static str,
    /// Storage schema version.
    pub schema_version: u32,
    /// Creation time (unix seconds).
    pub created_at: u64,
    /// The member this handle is unlocked as.
    pub member: MemberId,
    /// Its role.
    pub role: Option<Role>,
    /// Current vault-key epoch.
    pub epoch: Epoch,
    /// Oldest readable epoch.
    pub min_epoch: Epoch,
    /// When the current epoch started (unix seconds), when known.
    pub epoch_started_at: Option<u64>,
    /// Days since then.
    pub key_age_days: Option<u64>,
    /// Rotation policy (days; 0 = none).
    pub rotation_policy_days: u32,
    /// Whether the vault key is past due for rotation.
    pub rotation_due: bool,
    /// Current members.
    pub members: usize,
    /// This member's keyholders.
    pub keyholders: Vec<KeyholderInfo>,
    /// Secrets stored.
    pub secrets: u64,
    /// Record versions stored (history included).
    pub versions: u64,
    /// Record versions whose data key is under an epoch older than the current one.
    pub pending_rewrap: u64,
    /// Of those, the versions a rotation set aside because their data key could not be
    /// rewrapped ([`Vault::quarantined`]).
    pub quarantined: u64,
    /// A rotation that was interrupted and waits to be resumed (its target epoch).
    pub interrupted_rotation: Option<Epoch>,
    /// Older metadata keys the index may still be under (after a member removal replaced
    /// the key, until a rotation moves the index rows and retires the older epochs).
    pub older_metadata_keys: usize,
    /// Recoverability.
    pub recoverability: RecoverabilityReport,
    /// Members whose grants are still classical (X25519 only), who should upgrade.
    pub classical_members: Vec<crate::MemberInfo>,
    /// Whether the signed log requires hybrid grants for every member.
    pub hybrid_required: bool,
    /// Whether the signed log requires a writer signature on every record version.
    pub signed_writes_required: bool,
    /// Losses of write right `(member, log position)` whose versions wait for a
    /// re-attestation ([`Vault::reattest`]): readers refuse them until then.
    pub pending_reattestation: Vec<(MemberId, u64)>,
    /// The scopes (namespace prefixes with keys of their own) and their scoped members.
    pub scopes: Vec<crate::ScopeInfo>,
    /// Scopes whose current key a removed full member could read (it read every scope
    /// key): they need [`Vault::rekey_scope`]. Empty unless a removal was logged without
    /// the scope rotations this release adds to it.
    pub scopes_needing_rekey: Vec<strongroom_crypto::ScopeId>,
}

/// How thorough `doctor` is.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct DoctorOptions {
    /// Decrypt every secret instead of a sample.
    pub full: bool,
    /// Secrets decrypted when not `full` (default 100).
    pub sample: usize,
}

impl DoctorOptions {
    /// Sets [`DoctorOptions::full`].
    #[must_use]
    pub fn with_full(mut self, full: bool) -> Self {
        self.full = full;
        self
    }

    /// Sets [`DoctorOptions::sample`].
    #[must_use]
    pub fn with_sample(mut self, sample: usize) -> Self {
        self.sample = sample;
        self
    }
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            full: false,
            sample: 100,
        }
    }
}

/// Severity of a doctor finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but needs attention.
    Warn,
    /// Broken.
    Fail,
}

/// One doctor finding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// Short check name (`audit-chain`, `recoverability`…).
    pub check: &'static str,
    /// Severity.
    pub level: Level,
    /// What was found and what to do.
    pub message: String,
}

impl Finding {
    /// A finding, for tools that add their own checks to a [`DoctorReport`] (the CLI adds
    /// file-mode and connection checks).
    pub fn new(check: &'static str, level: Level, message: impl Into<String>) -> Self {
        Self {
            check,
            level,
            message: message.into(),
        }
    }
}

/// The result of [`Vault::doctor`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DoctorReport {
    /// Every finding, in check order.
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    /// The worst level found.
    pub fn worst(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok)
    }

    fn push(&mut self, check: &'static str, level: Level, message: impl Into<String>) {
        self.findings.push(Finding {
            check,
            level,
            message: message.into(),
        });
    }
}

impl Vault {
    /// Lists audit entries from `from` (at most `limit`), checking each entry's MAC.
    pub fn audit_list(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, VaultError> {
        // Under the audit key of now (a member removal replaces it).
        self.refresh_if_stale()?;
        let st = self.state();
        audit::list(self.store(), &st.meta.audit, from, limit)
    }

    /// Verifies the whole audit chain: a modified, removed, reordered or forged entry is an
    /// error naming the first bad entry.
    pub fn audit_verify(&self) -> Result<AuditReport, VaultError> {
        self.refresh_if_stale()?;
        let st = self.state();
        audit::verify(self.store(), &st.meta.audit)
    }

    /// [`Vault::audit_verify`], and also checks that the log still holds, unchanged, the
    /// entries an earlier report covered: keep the last report (the CLI keeps it next to
    /// the pins) to detect a storage that cuts the end of the log or rewrites it.
    pub fn audit_verify_since(&self, earlier: &AuditReport) -> Result<AuditReport, VaultError> {
        self.refresh_if_stale()?;
        let st = self.state();
        audit::verify_since(self.store(), &st.meta.audit, Some(earlier))
    }

    /// The vault's state: epochs, keyholders, members, counts, pending rotation, key age.
    pub fn status(&self) -> Result<Status, VaultError> {
        self.refresh_if_stale()?;
        let store = self.store();
        let (secrets, versions, pending) = self.counts()?;
        let quarantined = self.quarantined()?.len() as u64;
        let st = self.state();
        let stamp = read_epoch_stamp(self, &st)?;
        let started = match stamp {
            Some((e, t)) if e == st.session.epoch() => Some(t),
            _ => None,
        }
        .or(Some(self.header().created_at).filter(|_| st.session.epoch() == Epoch::FIRST));
        let age = started.map(|t| now().saturating_sub(t) / 86_400);
        let policy = self.header().rotation_days;
        Ok(Status {
            vault_id: self.id(),
            backend: store.backend(),
            schema_version: store.schema_version()?,
            created_at: self.header().created_at,
            member: st.session.member_id(),
            role: st.session.role(),
            epoch: st.session.epoch(),
            min_epoch: st.min_epoch(),
            epoch_started_at: started,
            key_age_days: age,
            rotation_policy_days: policy,
            rotation_due: policy > 0 && age.is_some_and(|a| a >= u64::from(policy)),
            members: st.session.membership().members().len(),
            keyholders: st.session.keyholders(store)?,
            secrets,
            versions,
            pending_rewrap: pending,
            quarantined,
            older_metadata_keys: st.older_meta.len(),
            interrupted_rotation: drop_then(st, || self.interrupted_rotation())?,
            recoverability: self.recoverability()?,
            classical_members: self.classical_members(),
            hybrid_required: self.hybrid_required(),
            signed_writes_required: self.signed_writes_required(),
            pending_reattestation: self.pending_reattestation(),
            scopes: self.scopes(),
            scopes_needing_rekey: self.state().session.membership().scopes_needing_rekey(),
        })
    }

    fn counts(&self) -> Result<(u64, u64, u64), VaultError> {
        let store = self.store();
        let st = self.state();
        let current = st.session.epoch();
        let mut secrets = 0;
        for_each_row(store, Table::Index, &ScanRange::all(), 10_000, |_| {
            secrets += 1;
            Ok::<_, VaultError>(true)
        })?;
        let (mut versions, mut pending) = (0, 0);
        crate::rotation::for_each_version(store, &mut |_, _, at, w| {
            if at.is_some() {
                versions += 1;
            }
            if w.is_none_or(|w| crate::rotation::needs_rewrap(&st, w, current)) {
                pending += 1;
            }
        })?;
        Ok((secrets, versions, pending))
    }

    /// Checks the vault's health: schema, membership log and grants, audit chain,
    /// decryptability (a sample, or everything), keyholders, recoverability, rotation.
    /// [`DoctorReport::worst`] gives the overall result.
    pub fn doctor(&self, options: DoctorOptions) -> Result<DoctorReport, VaultError> {
        let mut r = DoctorReport::default();
        self.check_schema(&mut r);
        self.check_membership(&mut r);
        self.check_audit_chain(&mut r);
        self.check_decrypt(&mut r, options)?;
        if options.full {
            self.check_pairs(&mut r)?;
        }
        self.check_keyholders(&mut r)?;
        self.check_recoverability(&mut r);
        let status = self.status()?;
        check_post_quantum(&mut r, &status);
        check_signed_writes(&mut r, &status);
        check_rotation(&mut r, &status);
        check_scopes(&mut r, &status);
        self.check_replica(&mut r);
        Ok(r)
    }

    /// The store answers and names its schema version.
    fn check_schema(&self, r: &mut DoctorReport) {
        let store = self.store();
        match store.schema_version() {
            Ok(v) => r.push(
                "schema",
                Level::Ok,
                format!("{} schema version {v}", store.backend()),
            ),
            Err(e) => r.push("schema", Level::Fail, e.to_string()),
        }
    }

    /// The membership log verifies and the grants are audited (a refresh).
    fn check_membership(&self, r: &mut DoctorReport) {
        match self.refresh() {
            Ok(()) => r.push(
                "membership",
                Level::Ok,
                format!(
                    "membership log verified, grants audited, epoch {}",
                    self.epoch()
                ),
            ),
            Err(e) => r.push("membership", Level::Fail, format!("{e}")),
        }
    }

    /// The audit log's hash chain and MACs verify.
    fn check_audit_chain(&self, r: &mut DoctorReport) {
        match self.audit_verify() {
            Ok(a) => r.push(
                "audit-chain",
                Level::Ok,
                format!("{} entries verified", a.entries),
            ),
            Err(e) => r.push("audit-chain", Level::Fail, e.to_string()),
        }
    }

    /// Whether losing one keyholder would lock the vault, and whether a recovery key exists.
    fn check_recoverability(&self, r: &mut DoctorReport) {
        match self.recoverability() {
            Ok(rep) if rep.single_point_of_failure => r.push("recoverability", Level::Warn, rep.message),
            Ok(rep) if rep.members_with_recovery_key == 0 => r.push(
                "recoverability",
                Level::Warn,
                format!("{} (no member has a recovery key: add one with `keyholder add --recovery-key`)", rep.message),
            ),
            Ok(rep) => r.push("recoverability", Level::Ok, rep.message),
            Err(e) => r.push("recoverability", Level::Fail, e.to_string()),
        }
    }

    /// Whether this handle is read-only, and where PostgreSQL writers must go.
    fn check_replica(&self, r: &mut DoctorReport) {
        let store = self.store();
        if self.is_read_only() {
            r.push(
                "replica",
                Level::Ok,
                "read-only handle (a replica, or a store opened read-only): reads work, changes go through the primary; while the replica is behind what this handle verified, reads say so (retryable)",
            );
        } else if store.backend() == "postgres" {
            r.push(
                "replica",
                Level::Ok,
                "PostgreSQL: writers need the primary (list every host with target_session_attrs=read-write); the pins refuse a promoted standby that would roll the membership log back",
            );
        }
    }

    fn check_decrypt(
        &self,
        r: &mut DoctorReport,
        options: DoctorOptions,
    ) -> Result<(), VaultError> {
        let store = self.store();
        let limit = if options.full {
            usize::MAX
        } else {
            options.sample
        };
        let (mut ok, mut bad) = (0usize, Vec::new());
        if limit > 0 {
            for_each_row(store, Table::Index, &ScanRange::all(), 1000, |row| {
                let res = IndexEntry::decode(&row.value).and_then(|e| {
                    let st = self.state();
                    open_version(store, &*st, &e, e.version).map(|_| ())
                });
                match res {
                    Ok(()) => ok += 1,
                    Err(e) => bad.push(e.to_string()),
                }
                Ok::<_, VaultError>(ok + bad.len() < limit)
            })?;
        }
        let scope = if options.full { "all" } else { "a sample of" };
        if bad.is_empty() {
            r.push(
                "decrypt",
                Level::Ok,
                format!("{scope} {ok} secrets decrypt"),
            );
        } else {
            r.push(
                "decrypt",
                Level::Fail,
                format!(
                    "{} of {} secrets do not decrypt; first: {}",
                    bad.len(),
                    ok + bad.len(),
                    bad[0]
                ),
            );
        }
        Ok(())
    }

    /// Every record body has its wrapped data key and every wrapped data key its body: a
    /// walk over both tables side by side (one page of each in memory), read from one
    /// snapshot so a concurrent put does not show up half-written.
    fn check_pairs(&self, r: &mut DoctorReport) -> Result<(), VaultError> {
        let view = self.store().snapshot()?;
        // A head body too large to be inline has a body row but keeps its data key in the
        // index entry.
        let mut stored_heads = std::collections::BTreeSet::new();
        for_each_row(&*view, Table::Index, &ScanRange::all(), 10_000, |row| {
            if let Ok(e) = IndexEntry::decode(&row.value)
                && e.head()
                    .is_some_and(|h| h.body == crate::records::HeadBody::Stored)
            {
                stored_heads.insert(crate::records::version_key(e.record, e.version));
            }
            Ok::<_, VaultError>(true)
        })?;
        let mut bodies = KeyWalk::new(&*view, Table::Bodies);
        let mut deks = KeyWalk::new(&*view, Table::Deks);
        // Counts and the first key of each kind of orphan: memory stays at one page per table.
        let (mut paired, mut no_key, mut no_body) = (0u64, Orphans::default(), Orphans::default());
        loop {
            use std::cmp::Ordering;
            let order = match (bodies.peek()?, deks.peek()?) {
                (None, None) => break,
                (Some(b), Some(d)) => b.cmp(d),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
            };
            match order {
                Ordering::Equal => {
                    paired += 1;
                    bodies.advance();
                    deks.advance();
                }
                Ordering::Less => {
                    let key = bodies.take();
                    if key.as_ref().is_some_and(|k| stored_heads.contains(k)) {
                        paired += 1;
                    } else {
                        no_key.add(key);
                    }
                }
                Ordering::Greater => no_body.add(deks.take()),
            }
        }
        let name = |k: &Vec<u8>| {
            parse_version_key(k).map_or_else(
                || format!("malformed key {}", crate::audit::hex(k)),
                |(rec, ver)| format!("record {rec} version {ver}"),
            )
        };
        if no_key.count == 0 && no_body.count == 0 {
            r.push(
                "record-keys",
                Level::Ok,
                format!("all {paired} record bodies have their data key"),
            );
            return Ok(());
        }
        let mut msg = Vec::new();
        if let Some(first) = &no_key.first {
            msg.push(format!(
                "{} record bodies have no wrapped data key and cannot be decrypted (first: {})",
                no_key.count,
                name(first)
            ));
        }
        if let Some(first) = &no_body.first {
            msg.push(format!(
                "{} wrapped data keys have no body (first: {})",
                no_body.count,
                name(first)
            ));
        }
        r.push(
            "record-keys",
            Level::Fail,
            format!(
                "{}: rows were lost or removed by the storage; restore a snapshot",
                msg.join("; ")
            ),
        );
        Ok(())
    }

    fn check_keyholders(&self, r: &mut DoctorReport) -> Result<(), VaultError> {
        let khs = self.keyholders()?;
        let count = |k: KeyholderKind| khs.iter().filter(|i| i.kind == k).count();
        for kind in [
            KeyholderKind::OsKeyring,
            KeyholderKind::Pkcs11,
            KeyholderKind::RawKek,
        ] {
            if count(kind) > 1 {
                r.push(
                    "keyholders",
                    Level::Warn,
                    format!(
                        "{} {kind} keyholders: a keyholder rotation did not finish; run the rotation again (it resumes) or remove the old one",
                        count(kind)
                    ),
                );
            }
        }
        let unknown: Vec<String> = khs
            .iter()
            .filter(|k| !k.kind.is_known())
            .map(|k| format!("{} ({})", k.id_hex(), k.kind))
            .collect();
        if !unknown.is_empty() {
            r.push(
                "keyholders",
                Level::Warn,
                format!(
                    "{} keyholder(s) of a kind this strongroom does not know, added by a newer release: {}; they are kept, and the other keyholders unlock; upgrade strongroom to use them",
                    unknown.len(),
                    unknown.join(", ")
                ),
            );
        }
        let kinds: Vec<String> = khs.iter().map(|k| k.kind.to_string()).collect();
        r.push(
            "keyholders",
            Level::Ok,
            format!("{} keyholders: {}", khs.len(), kinds.join(", ")),
        );
        Ok(())
    }
}

fn drop_then<T>(guard: impl Sized, f: impl FnOnce() -> T) -> T {
    drop(guard);
    f()
}

/// Rows without their partner: how many, and the first one's key.
#[derive(Default)]
struct Orphans {
    count: u64,
    first: Option<Vec<u8>>,
}

impl Orphans {
    fn add(&mut self, key: Option<Vec<u8>>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = key;
        }
    }
}

/// The keys of one table in order, a page at a time (for a merge join of two tables).
struct KeyWalk<'a> {
    view: &'a dyn strongroom_store::ReadView,
    table: Table,
    page: std::collections::VecDeque<Vec<u8>>,
    next: Option<strongroom_store::Cursor>,
    started: bool,
}

impl<'a> KeyWalk<'a> {
    fn new(view: &'a dyn strongroom_store::ReadView, table: Table) -> Self {
        Self {
            view,
            table,
            page: std::collections::VecDeque::new(),
            next: None,
            started: false,
        }
    }

    /// The next key, reading a page when the current one is used up.
    fn peek(&mut self) -> Result<Option<&[u8]>, VaultError> {
        if self.page.is_empty() && (!self.started || self.next.is_some()) {
            let page = self
                .view
                .scan(self.table, &ScanRange::all(), self.next.as_ref(), 10_000)?;
            self.started = true;
            self.next = page.next;
            self.page = page.rows.into_iter().map(|r| r.key).collect();
        }
        Ok(self.page.front().map(Vec::as_slice))
    }

    fn advance(&mut self) {
        self.page.pop_front();
    }

    /// The key [`peek`](Self::peek) returned, consumed.
    fn take(&mut self) -> Option<Vec<u8>> {
        self.page.pop_front()
    }
}

/// Which members still have classical-only grants.
fn check_post_quantum(r: &mut DoctorReport, status: &Status) {
    if status.classical_members.is_empty() {
        r.push(
            "post-quantum",
            Level::Ok,
            if status.hybrid_required {
                "every grant is hybrid (X-Wing), and the signed log requires it".to_owned()
            } else {
                "every member has hybrid (X-Wing) grants; an owner can make that mandatory with `member require-hybrid`".to_owned()
            },
        );
    } else {
        let names: Vec<String> = status
            .classical_members
            .iter()
            .map(|m| format!("{} ({})", m.name, m.id))
            .collect();
        r.push(
            "post-quantum",
            Level::Warn,
            format!(
                "{} member(s) still have classical-only (X25519) grants, which a copy of the database could reveal to a future quantum computer: {}; each of them runs `strongroom member upgrade-identity`",
                names.len(),
                names.join(", ")
            ),
        );
    }
}

/// Whether readers refuse record versions not signed by a member with write right.
fn check_signed_writes(r: &mut DoctorReport, status: &Status) {
    if !status.pending_reattestation.is_empty() {
        let who: Vec<String> = status
            .pending_reattestation
            .iter()
            .map(|(member, at)| format!("{member} (log position {at})"))
            .collect();
        r.push(
            "signed writes",
            Level::Fail,
            format!(
                "readers refuse the record versions signed by members who lost the right to write until they are re-attested: {}; an owner or admin runs `strongroom member reattest`",
                who.join(", ")
            ),
        );
    } else if status.signed_writes_required {
        r.push(
            "signed writes",
            Level::Ok,
            "every record version carries its writer's signature, and the signed log requires it"
                .to_owned(),
        );
    } else {
        r.push(
            "signed writes",
            Level::Warn,
            "record versions written by earlier releases are unsigned, so a read-only member with storage write access could write versions readers accept; an owner runs `strongroom member require-signed-writes` (it re-encrypts and signs every version)".to_owned(),
        );
    }
}

/// Quarantined versions, interrupted or pending rotations, and the key's age.
fn check_scopes(r: &mut DoctorReport, status: &Status) {
    if status.scopes.is_empty() {
        return;
    }
    if status.scopes_needing_rekey.is_empty() {
        r.push(
            "scopes",
            Level::Ok,
            format!(
                "{} scopes; no removed member holds the current key of any",
                status.scopes.len()
            ),
        );
        return;
    }
    let prefixes: Vec<&str> = status
        .scopes
        .iter()
        .filter(|s| status.scopes_needing_rekey.contains(&s.id))
        .map(|s| s.prefix.as_str())
        .collect();
    r.push(
        "scopes",
        Level::Fail,
        format!(
            "a removed member can still read the current key of the scopes {}: an owner or admin runs `Vault::rekey_scope` for each (or removes and adds a member again), then `rotate`",
            prefixes.join(", ")
        ),
    );
}

fn check_rotation(r: &mut DoctorReport, status: &Status) {
    if status.quarantined > 0 {
        r.push(
            "quarantine",
            Level::Fail,
            format!(
                "{} record versions could not be rewrapped (their data key does not open: planted by a former member, or damaged) and cannot be read: `purge-quarantined` deletes them; `pending-rewrap` lists them",
                status.quarantined
            ),
        );
    }
    if let Some(e) = status.interrupted_rotation {
        r.push(
            "rotation",
            Level::Warn,
            format!("a rotation toward epoch {e} was interrupted: run `rotate` again to finish it"),
        );
    } else if status.pending_rewrap > 0 {
        r.push(
            "rotation",
            Level::Warn,
            format!(
                "{} record versions are still under older epochs (after a member removal?): run `rotate` to rewrap them, move the blind index to the current metadata key and retire the old keys",
                status.pending_rewrap
            ),
        );
    } else if status.older_metadata_keys > 0 {
        r.push(
            "rotation",
            Level::Warn,
            "the metadata key was replaced (a member removal) and the blind index may still be under the old one, which the removed member holds: run `rotate` to move it",
        );
    } else if status.rotation_due {
        r.push(
            "rotation",
            Level::Warn,
            format!(
                "the vault key is {} days old, past the {}-day policy: run `rotate`",
                status.key_age_days.unwrap_or(0),
                status.rotation_policy_days
            ),
        );
    } else if status.key_age_days.is_none() && status.rotation_policy_days > 0 {
        r.push(
            "rotation",
            Level::Warn,
            "the vault key's age is unknown (its timestamp is missing or was removed): run `rotate` to start a dated epoch",
        );
    } else {
        r.push(
            "rotation",
            Level::Ok,
            format!(
                "vault key age {} days",
                status
                    .key_age_days
                    .map_or("unknown".into(), |d| d.to_string())
            ),
        );
    }
}
