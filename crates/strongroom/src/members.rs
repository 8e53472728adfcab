//! Members, keyholders and identity files.

use std::sync::Arc;

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{Key256, MemberId, RecordId, VaultId};
use strongroom_envelope::Epoch;
use strongroom_recovery::{Keyholder, Stanza, WrapContext, unwrap_any};
use strongroom_sharing::{
    Fingerprint, FingerprintConfirmed, Identity, KemKind, KeyholderInfo, MEMBER_KEY_PURPOSE,
    Member, Membership, Pins, PublicIdentity, RecoverabilityReport, Role, SealedIdentity,
    SharingError, Warning,
};
use strongroom_store::{ScanRange, Store, Table, for_each_row, scan_all};

use crate::audit::{Action, AuditEvent};
use crate::records::{IndexEntry, open_version_to_attest};
use crate::vault::{LockedVault, State, Vault};
use crate::{Inconsistency, Progress, RotateOptions, RotationReport, VaultError};

/// A member as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Member id.
    pub id: MemberId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Fingerprint to compare out of band.
    pub fingerprint: Fingerprint,
    /// First epoch the member could read (history is readable through the key chain).
    pub since_epoch: Epoch,
    /// The KEM of the member's identity and grants: [`KemKind::XWing`] (hybrid,
    /// post-quantum) or [`KemKind::X25519`] (classical only: the member should upgrade).
    pub kem: KemKind,
}

impl MemberInfo {
    pub(crate) fn of(m: &Member) -> Self {
        Self {
            id: m.id(),
            name: m.name().to_owned(),
            role: m.role(),
            fingerprint: m.fingerprint(),
            since_epoch: m.since_epoch(),
            kem: m.identity().kem(),
        }
    }
}

/// What [`Vault::remove_member`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovalReport {
    /// The removed member.
    pub member: MemberId,
    /// The new epoch, granted to the remaining members only.
    pub new_epoch: Epoch,
    /// The epochs the removed member could read.
    pub readable_epochs: core::ops::RangeInclusive<Epoch>,
    /// Warnings (one member left).
    pub warnings: Vec<Warning>,
    /// When the removed member could write and the re-attestation of the versions they
    /// signed did not finish: why. The removal stands; readers refuse those versions
    /// until [`Vault::reattest`] finishes it.
    pub reattest_error: Option<String>,
}

/// A secret the removed member could read: rotate the real credential at its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExposedSecret {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Record id.
    pub record_id: RecordId,
    /// Stored versions the member could read.
    pub versions: Vec<u64>,
}

impl Vault {
    /// The current members.
    pub fn members(&self) -> Vec<MemberInfo> {
        let st = self.state();
        st.session
            .membership()
            .members()
            .values()
            .map(MemberInfo::of)
            .collect()
    }

    /// This member's public identity (to show its fingerprint).
    pub fn public_identity(&self) -> PublicIdentity {
        self.state().session.identity().public().clone()
    }

    /// Adds a member with `role`; `confirmed` proves the caller compared the fingerprint
    /// out of band (or explicitly skipped it). The member then stores their own
    /// credentials with [`Vault::join`].
    // The confirmation is taken by value: it is spent on this call (retries reuse a copy).
    #[allow(clippy::needless_pass_by_value)]
    pub fn add_member(
        &self,
        public: &PublicIdentity,
        role: Role,
        confirmed: FingerprintConfirmed,
    ) -> Result<(), VaultError> {
        self.change(
            |session| session.prepare_add_member(public, role, confirmed.clone()),
            |_, _| {
                Ok(AuditEvent::new(
                    Action::MemberAdd,
                    public.member_id().as_bytes(),
                    format!("name={} role={role:?}", public.name()),
                ))
            },
        )
    }

    /// Changes a member's role. A member who loses the right to write records (made
    /// read-only) has the versions they signed re-attested by this member right after
    /// ([`Vault::reattest`]: every version is opened once); if that pass is interrupted,
    /// the role change stands and reads of those versions are refused until
    /// [`Vault::reattest`] runs again.
    pub fn set_role(&self, member: MemberId, role: Role) -> Result<(), VaultError> {
        let loses_write = self.writes(member) && !role.writes();
        self.change(
            |session| session.prepare_set_role(member, role),
            |_, _| {
                Ok(AuditEvent::new(
                    Action::MemberRole,
                    member.as_bytes(),
                    format!("role={role:?}"),
                ))
            },
        )?;
        // An admin who made themselves a plain member leaves it to an owner or admin.
        if loses_write && matches!(self.role(), Some(Role::Owner | Role::Admin)) {
            self.reattest(&mut |_| {})?;
        }
        Ok(())
    }

    /// Whether `member` has the right to write records in the log this handle verified.
    fn writes(&self, member: MemberId) -> bool {
        self.state()
            .session
            .membership()
            .member(member)
            .is_some_and(|m| m.role().writes())
    }

    /// Removes a member: a new epoch wrapped to the remaining members only, with a new
    /// metadata key (the blind index, audit and settings keys) under it. No record is
    /// re-encrypted (the cost does not depend on the number of records); the removed
    /// member keeps what they could already read: [`Vault::exposure`] lists it, and
    /// [`Vault::rotate_vault_key`] retires the older epochs and moves every index row to
    /// its blind index under the new metadata key. Until then, reads look a name up under
    /// both keys (still one store call).
    ///
    /// A removed member who had the right to write records has the versions they signed
    /// re-attested by this member right after, as [`Vault::set_role`] does.
    pub fn remove_member(&self, member: MemberId) -> Result<RemovalReport, VaultError> {
        let wrote = self.writes(member);
        let removal = self.change_with(
            crate::vault::MetaKey::Replace,
            |session| session.prepare_remove_member(self.store(), member),
            |_, change| {
                Ok(AuditEvent::new(
                    Action::MemberRemove,
                    member.as_bytes(),
                    format!("new_epoch={}", change.outcome().new_epoch),
                ))
            },
        )?;
        // The removal stands whatever happens next: a failed re-attestation is reported
        // with it, not in place of it.
        let reattest_error = if wrote {
            self.reattest(&mut |_| {}).err().map(|e| e.to_string())
        } else {
            None
        };
        Ok(RemovalReport {
            member: removal.member,
            new_epoch: removal.new_epoch,
            readable_epochs: removal.readable_epochs,
            warnings: removal.warnings,
            reattest_error,
        })
    }

    /// The secrets a removed member could read: every stored version whose data key is
    /// wrapped under one of the epochs they held. Names are decrypted here for the caller.
    pub fn exposure(&self, removal: &RemovalReport) -> Result<Vec<ExposedSecret>, VaultError> {
        let (lo, hi) = (
            *removal.readable_epochs.start(),
            *removal.readable_epochs.end(),
        );
        self.exposed_versions(|st, namespace, sealed| {
            // A full member read every scope key through the vault keys: every stored
            // version of a scope's secret is listed (versions written after the removal
            // included, under keys it never held: the list errs on the side of caution).
            // A version sealed at an epoch the member held was readable to them; rewrapping
            // it later does not make it unknown to them.
            st.session.membership().scope_of(namespace).is_some() || (lo..=hi).contains(&sealed)
        })
    }

    /// Every stored secret with its versions that `readable` (given the namespace and the
    /// epoch a version was sealed in) says a removed member could read, sorted by name:
    /// one pass over the index, each head opened once.
    pub(crate) fn exposed_versions(
        &self,
        readable: impl Fn(&State, &str, Epoch) -> bool,
    ) -> Result<Vec<ExposedSecret>, VaultError> {
        self.read(|st| {
            let store = self.store();
            let mut out = Vec::new();
            for_each_row(
                store,
                Table::Index,
                &ScanRange::all(),
                1000,
                |row| -> Result<bool, VaultError> {
                    let entry = IndexEntry::decode(&row.value)?;
                    // A version waiting for its re-attestation was readable to them too.
                    let (p, _) = open_version_to_attest(store, st, &entry, entry.version)?;
                    let versions: Vec<u64> = crate::records::sealed_epochs(store, &entry)?
                        .into_iter()
                        .filter(|(_, sealed)| readable(st, &p.namespace, *sealed))
                        .map(|(v, _)| v)
                        .collect();
                    if !versions.is_empty() {
                        out.push(ExposedSecret {
                            namespace: p.namespace,
                            name: p.name,
                            record_id: entry.record,
                            versions,
                        });
                    }
                    Ok(true)
                },
            )?;
            out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            Ok(out)
        })
    }

    /// Teammate restore: `old` lost every keyholder; `new` is the identity they made since.
    /// The caller (an owner or admin) confirms the new fingerprint; the new identity is
    /// granted the vault, the old one's grants become invalid. No escrow is involved.
    // The confirmation is taken by value: it is spent on this call (retries reuse a copy).
    #[allow(clippy::needless_pass_by_value)]
    pub fn regrant(
        &self,
        old: MemberId,
        new: &PublicIdentity,
        confirmed: FingerprintConfirmed,
    ) -> Result<(), VaultError> {
        let wrote = self.writes(old);
        self.change(
            |session| session.prepare_regrant(self.store(), old, new, confirmed.clone()),
            |_, _| {
                Ok(AuditEvent::new(
                    Action::MemberRegrant,
                    old.as_bytes(),
                    format!("new_member={} name={}", new.member_id(), new.name()),
                ))
            },
        )?;
        // The old identity's signing key may be in someone else's hands now: its versions
        // are re-attested, as after a removal.
        if wrote {
            self.reattest(&mut |_| {})?;
        }
        Ok(())
    }

    /// Upgrades this member's classical (X25519) identity to a hybrid (X-Wing) one: a signed
    /// log entry, the current epoch granted with X-Wing and the classical grants deleted, in
    /// one commit with its audit entry. The fingerprint changes (co-members see the upgrade
    /// in the log); the keyholders unlock as before. Identity files made before keep the
    /// classical key: after an upgrade, unlock with the vault's keyholders.
    pub fn upgrade_identity(&self) -> Result<(), VaultError> {
        let member = self.member_id();
        self.change(
            |session| session.prepare_upgrade_identity(self.store()),
            |_, _| {
                Ok(AuditEvent::new(
                    Action::MemberUpgrade,
                    member.as_bytes(),
                    "kem=x-wing".to_owned(),
                ))
            },
        )
    }

    /// Requires hybrid (X-Wing) grants for every member from now on (owners only, once no
    /// member is classical): classical identities can no longer be added or re-granted, and
    /// every client refuses a classical grant.
    pub fn require_hybrid(&self) -> Result<(), VaultError> {
        self.change(
            |session| session.prepare_require_hybrid(self.store()),
            |_, _| {
                Ok(AuditEvent::new(
                    Action::RequireHybrid,
                    [],
                    "policy=require-hybrid".to_owned(),
                ))
            },
        )
    }

    /// Makes every record version carry its writer's signature from now on (owners only,
    /// once; vaults created by this release require it from the start). Versions written
    /// unsigned by earlier releases are re-encrypted first ([`Vault::reencrypt_all`]: a new
    /// epoch, every version sealed again), and the owner signs them, vouching for the
    /// vault's contents as they are; then a signed membership log entry makes every client
    /// refuse an unsigned version, and a version signed by someone without the right to
    /// write records (a read-only or a former member). Resumable like the re-encryption:
    /// after `kill -9`, call it again. Clients of earlier releases cannot open the vault
    /// afterwards (they do not know the log entry).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, RotateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// // A vault created by this release requires signed writes already.
    /// assert!(vault.signed_writes_required());
    /// let meta = vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?;
    /// assert_eq!(meta.authorship, strongroom::Authorship::Signed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn require_signed_writes(
        &self,
        options: RotateOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RotationReport, VaultError> {
        if self.signed_writes_required() {
            return Err(VaultError::invalid(
                "policy",
                "this vault requires signed writes already",
            ));
        }
        let role = self.state().session.role();
        if role != Some(Role::Owner) {
            return Err(VaultError::PermissionDenied { role });
        }
        let report = self.reencrypt_all(options, progress)?;
        self.change(
            strongroom_sharing::Session::prepare_require_signed_writes,
            |_, _| {
                Ok(AuditEvent::new(
                    Action::RequireSignedWrites,
                    [],
                    "policy=require-signed-writes".to_owned(),
                ))
            },
        )?;
        // Members who lost the right to write before: the re-encryption vouched for their
        // versions; the re-attestation checks that none is left (a demotion while it ran)
        // and records each loss.
        self.reattest(&mut |_| {})?;
        Ok(report)
    }

    /// Whether the signed log requires a writer signature on every record version.
    pub fn signed_writes_required(&self) -> bool {
        self.state().session.membership().signed_writes_required()
    }

    /// The members whose grants are still classical (X25519 only): a copy of the database
    /// kept until a quantum computer exists would reveal the vault keys granted to them.
    pub fn classical_members(&self) -> Vec<MemberInfo> {
        self.state()
            .session
            .membership()
            .classical_members()
            .into_iter()
            .map(MemberInfo::of)
            .collect()
    }

    /// Whether the signed log requires hybrid grants for every member.
    pub fn hybrid_required(&self) -> bool {
        self.state().session.membership().hybrid_required()
    }

    /// Who can recover the vault, and whether it has a single point of failure.
    pub fn recoverability(&self) -> Result<RecoverabilityReport, VaultError> {
        Ok(self.state().session.recoverability(self.store())?)
    }

    /// This member's keyholders (no secrets).
    pub fn keyholders(&self) -> Result<Vec<KeyholderInfo>, VaultError> {
        Ok(self.state().session.keyholders(self.store())?)
    }

    /// Adds a keyholder for this member (wraps the member key: O(1), no record touched).
    pub fn add_keyholder(&self, keyholder: &dyn Keyholder) -> Result<KeyholderInfo, VaultError> {
        self.change(
            |session| session.prepare_add_keyholder(keyholder),
            |_, change| {
                Ok(AuditEvent::new(
                    Action::KeyholderAdd,
                    change.outcome().id,
                    format!("kind={}", keyholder.kind()),
                ))
            },
        )
    }

    /// Removes one of this member's keyholders (never the last one).
    pub fn remove_keyholder(&self, id: &[u8; 8]) -> Result<(), VaultError> {
        self.change(
            |session| session.prepare_remove_keyholder(self.store(), id),
            |_, _| Ok(AuditEvent::new(Action::KeyholderRemove, *id, "")),
        )
    }

    /// Replaces keyholder `old` with `new` (a new passphrase, a new recovery key, a new
    /// `ENCRYPTION_KEY`, a new keyring entry or HSM key): adds `new`, checks it opens the
    /// vault, then removes `old`. When `new` can rewrap `old`'s stanza in its custody
    /// service (the same Transit key after a rotation on the server), the stanza is
    /// rewrapped in place instead, without the member key leaving the service. O(1): no
    /// record is touched. Every step can be re-run after
    /// a crash: a vault with both keyholders is still fully usable, and `doctor` reports it.
    pub fn rotate_keyholder(
        &self,
        old: &[u8; 8],
        new: &dyn Keyholder,
    ) -> Result<KeyholderInfo, VaultError> {
        let existing = self.keyholders()?;
        if !existing.iter().any(|k| &k.id == old) {
            return Err(VaultError::invalid(
                "keyholder",
                format!("no keyholder with id {}", crate::audit::hex(old)),
            ));
        }
        let info = match self.rewrap_or_add_keyholder(*old, new) {
            Ok(info) => info,
            // A re-run after a crash: the new keyholder was added by the interrupted run.
            Err(VaultError::Sharing(SharingError::KeyholderExists { id, .. })) => existing
                .iter()
                .chain(self.keyholders()?.iter())
                .find(|k| k.id_hex() == id)
                .copied()
                .ok_or_else(|| {
                    VaultError::inconsistent(
                        Inconsistency::MissingRow,
                        format!("keyholder {id} is reported present but is not listed"),
                    )
                })?,
            Err(e) => return Err(e),
        };
        // Verify: the new keyholder unlocks this member from what is stored.
        let mut pins = self.pins();
        let check = strongroom_sharing::unlock(
            self.store(),
            self.id(),
            Some(self.member_id()),
            new,
            &mut pins,
        );
        if let Err(e) = check {
            return Err(VaultError::inconsistent(
                Inconsistency::KeyholderUnusable,
                format!(
                    "the new keyholder was added but does not unlock the vault ({e}); the old keyholder was kept"
                ),
            ));
        }
        if &info.id != old {
            self.remove_keyholder(old)?;
        }
        Ok(info)
    }

    /// The first step of [`Vault::rotate_keyholder`]: when `new` can rewrap the stanza of
    /// `old` in its custody service (a Transit key rotated on the server), the stanza is
    /// replaced in place and the member key never leaves the service; otherwise `new` is
    /// added.
    fn rewrap_or_add_keyholder(
        &self,
        old: [u8; 8],
        new: &dyn Keyholder,
    ) -> Result<KeyholderInfo, VaultError> {
        let mut rewrapped = false;
        let info = self.change(
            |session| {
                if let Some(change) = session.prepare_rewrap_keyholder(self.store(), &old, new)? {
                    rewrapped = true;
                    Ok(change)
                } else {
                    rewrapped = false;
                    session.prepare_add_keyholder(new)
                }
            },
            |_, change| {
                Ok(AuditEvent::new(
                    Action::KeyholderAdd,
                    change.outcome().id,
                    format!("kind={}", new.kind()),
                ))
            },
        )?;
        tracing::debug!(rewrapped, "keyholder rotation, first step");
        Ok(info)
    }

    /// A member added by another member stores their own credentials here, so that later
    /// they unlock with a keyholder alone.
    pub fn join(
        store: &Arc<dyn Store>,
        identity: &Identity,
        keyholders: &[&dyn Keyholder],
        pins: Pins,
    ) -> Result<Vault, VaultError> {
        let locked = Vault::open(Arc::clone(store))?;
        let mut pins = pins;
        let _session =
            strongroom_sharing::join(&**store, locked.id(), identity, keyholders, &mut pins)?;
        let kh = keyholders
            .first()
            .ok_or_else(|| VaultError::invalid("keyholders", "at least one keyholder is needed"))?;
        let vault = locked.unlock_with(
            *kh,
            crate::UnlockOptions {
                member: Some(identity.member_id()),
                pins,
            },
        )?;
        vault.audit_only(
            Action::MemberJoin,
            identity.member_id().as_bytes(),
            String::new(),
        )?;
        Ok(vault)
    }
}

impl LockedVault {
    /// The current members as the signed membership log lists them, read before unlocking
    /// (to pick the member to unlock as by name). Signatures and the hash chain are
    /// verified here; the log's freshness is checked against the pins at unlock.
    pub fn members(&self) -> Result<Vec<MemberInfo>, VaultError> {
        let rows = scan_all(self.store_ref(), Table::MemberLog, &ScanRange::all())?;
        let membership = Membership::verify(rows.iter().map(|r| r.value.as_slice()))
            .map_err(|e| VaultError::from(SharingError::from(e)))?;
        if membership.vault_id() != self.id() {
            return Err(VaultError::inconsistent(
                Inconsistency::Misdirected,
                "the membership log belongs to another vault",
            ));
        }
        Ok(membership.members().values().map(MemberInfo::of).collect())
    }

    /// Lists who has credentials stored in this vault (to pick the member to unlock as).
    pub fn stored_members(&self) -> Result<Vec<MemberId>, VaultError> {
        Ok(
            scan_all(self.store_ref(), Table::Identities, &ScanRange::all())?
                .iter()
                .filter_map(|r| MemberId::from_slice(&r.key).ok())
                .collect(),
        )
    }
}

/// A member identity kept outside any vault, sealed under its own keyholders: what a new
/// member creates before being added, and brings to [`Vault::join`].
///
/// File layout (version 1): `"strongroom-identity" ‖ 0x01 ‖ sealed identity (u32 length ‖
/// bytes; bound to the all-zero vault id) ‖ stanza count (u16) ‖ stanzas (u32 length ‖
/// bytes each)`. The member key is wrapped with purpose `strongroom/v1/member-key` and
/// subject `0^16 ‖ member id`.
pub struct IdentityFile {
    sealed: SealedIdentity,
    stanzas: Vec<Stanza>,
}

const IDENTITY_MAGIC: &[u8] = b"strongroom-identity";
const UNBOUND: VaultId = VaultId::from_bytes([0; 16]);

fn unbound_subject(member: MemberId) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[16..].copy_from_slice(member.as_bytes());
    s
}

impl IdentityFile {
    /// Generates a new identity named `name` and seals it under `keyholders`.
    pub fn create(
        name: &str,
        keyholders: &[&dyn Keyholder],
    ) -> Result<(IdentityFile, Identity), VaultError> {
        if keyholders.is_empty() {
            return Err(VaultError::invalid(
                "keyholders",
                "at least one keyholder is needed",
            ));
        }
        let identity = Identity::generate(name)?;
        let member_key = Key256::generate()?;
        let sealed = identity.seal(UNBOUND, &member_key)?;
        let subject = unbound_subject(identity.member_id());
        let ctx = WrapContext {
            purpose: MEMBER_KEY_PURPOSE,
            subject: &subject,
        };
        let stanzas = keyholders
            .iter()
            .map(|k| k.wrap(&ctx, &member_key).map_err(VaultError::Unlock))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((IdentityFile { sealed, stanzas }, identity))
    }

    /// Opens the identity with one of its keyholders.
    pub fn open(&self, keyholder: &dyn Keyholder) -> Result<Identity, VaultError> {
        let subject = unbound_subject(self.sealed.member_id());
        let ctx = WrapContext {
            purpose: MEMBER_KEY_PURPOSE,
            subject: &subject,
        };
        let (key, _) = unwrap_any(keyholder, &ctx, &self.stanzas).map_err(VaultError::Unlock)?;
        Ok(Identity::open(&self.sealed, &key)?)
    }

    /// The member id of the identity inside.
    pub fn member_id(&self) -> MemberId {
        self.sealed.member_id()
    }

    /// Encodes the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(IDENTITY_MAGIC)
            .u8(1)
            .var_bytes(&self.sealed.encode());
        w.u16(self.stanzas.len() as u16);
        for s in &self.stanzas {
            w.var_bytes(&s.encode());
        }
        w.into_vec()
    }

    /// Decodes a file.
    pub fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        let corrupt = |source| VaultError::Corrupt {
            what: "identity file",
            source,
        };
        let mut r = Reader::new("identity file", bytes);
        if r.bytes(IDENTITY_MAGIC.len(), "magic").map_err(corrupt)? != IDENTITY_MAGIC {
            return Err(corrupt(
                r.invalid("magic", "not a strongroom identity file"),
            ));
        }
        r.version(&[1]).map_err(corrupt)?;
        let sealed =
            SealedIdentity::decode(r.var_bytes("sealed identity", 64 * 1024).map_err(corrupt)?)
                .map_err(corrupt)?;
        if sealed.vault_id() != UNBOUND {
            return Err(corrupt(r.invalid("sealed identity", "bound to a vault")));
        }
        let n = r.u16("stanza count").map_err(corrupt)?;
        let mut stanzas = Vec::with_capacity(usize::from(n.min(64)));
        for _ in 0..n {
            stanzas.push(
                Stanza::decode(r.var_bytes("stanza", 70_000).map_err(corrupt)?).map_err(corrupt)?,
            );
        }
        r.finish().map_err(corrupt)?;
        if stanzas.is_empty() {
            return Err(corrupt(r_invalid()));
        }
        Ok(Self { sealed, stanzas })
    }
}

fn r_invalid() -> strongroom_crypto::DecodeError {
    strongroom_crypto::DecodeError::Invalid {
        format: "identity file",
        field: "stanzas",
        reason: "no keyholder can open it",
    }
}

impl core::fmt::Debug for IdentityFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdentityFile")
            .field("member", &self.sealed.member_id())
            .field("stanzas", &self.stanzas)
            .finish()
    }
}
