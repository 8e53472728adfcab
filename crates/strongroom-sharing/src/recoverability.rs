//! The [`RecoverabilityReport`]: can this vault survive a member losing their secrets?

use strongroom_crypto::MemberId;
use strongroom_recovery::KeyholderKind;
use strongroom_store::ReadView;

use crate::session::load_log;
use crate::{Member, Role, SharingError, keyholders};

/// One member's part of a [`RecoverabilityReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecoverability {
    /// The member.
    pub member: MemberId,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// The kinds of their keyholders stored in this vault (empty: they have not joined).
    pub keyholders: Vec<KeyholderKind>,
    /// Whether one of them is a recovery key.
    pub has_recovery_key: bool,
}

/// Whether the vault survives a member losing their secrets.
///
/// There is no escrow: a vault whose only member loses both passphrase and recovery key is
/// gone. With two or more members, a member who loses everything is restored by an owner
/// or admin ([`Session::regrant`](crate::Session::regrant)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoverabilityReport {
    /// Number of current members.
    pub members: usize,
    /// Current members with a recovery-key keyholder.
    pub members_with_recovery_key: usize,
    /// True when a single member holds the vault: losing their keyholders loses it.
    pub single_point_of_failure: bool,
    /// What this means and what to do, for people.
    pub message: String,
    /// Per member.
    pub details: Vec<MemberRecoverability>,
}

/// The report for the vault in `store`, from its membership log (signatures, chain and
/// roles verified, but without pins: use [`Session::recoverability`](crate::Session::recoverability)
/// for a pinned view) and its keyholder records. Needs no unlock.
pub fn recoverability(store: &dyn ReadView) -> Result<RecoverabilityReport, SharingError> {
    let state = load_log(store)?.ok_or_else(|| SharingError::NoVault {
        vault: "(none)".to_owned(),
    })?;
    report(store, state.members().values())
}

pub(crate) fn report<'a>(
    store: &dyn ReadView,
    members: impl Iterator<Item = &'a Member>,
) -> Result<RecoverabilityReport, SharingError> {
    report_with(members, |member| {
        Ok(keyholders::list_keyholders(store, member)?
            .iter()
            .map(|i| i.kind)
            .collect())
    })
}

/// The report for `members`, with each member's keyholder kinds from `kinds_of`. Scoped
/// members are left out: they hold no vault key, so they neither open the vault nor
/// restore anyone.
pub(crate) fn report_with<'a>(
    members: impl Iterator<Item = &'a Member>,
    mut kinds_of: impl FnMut(MemberId) -> Result<Vec<KeyholderKind>, SharingError>,
) -> Result<RecoverabilityReport, SharingError> {
    let mut details = Vec::new();
    for m in members.filter(|m| m.role() != crate::Role::Scoped) {
        let kinds = kinds_of(m.id())?;
        details.push(MemberRecoverability {
            member: m.id(),
            name: m.name().to_owned(),
            role: m.role(),
            has_recovery_key: kinds.contains(&KeyholderKind::RecoveryKey),
            keyholders: kinds,
        });
    }
    let members = details.len();
    let with_rk = details.iter().filter(|d| d.has_recovery_key).count();
    let managers = details
        .iter()
        .filter(|d| matches!(d.role, Role::Owner | Role::Admin))
        .count();
    let spof = members < 2;
    let message = if let [only] = details.as_slice() {
        if only.has_recovery_key {
            format!(
                "Only one member ({}) can open this vault. If both the passphrase and the recovery key are lost, the vault is lost for good: there is no escrow. Keep the recovery key offline and add a second member so a teammate can restore access.",
                only.name
            )
        } else {
            format!(
                "Only one member ({}) can open this vault and it has no recovery key: if its passphrase is lost, the vault is lost for good. Add a recovery key now, and a second member so a teammate can restore access.",
                only.name
            )
        }
    } else {
        let mut m = format!(
            "{members} members can open this vault; {with_rk} of them have a recovery key. A member who loses every keyholder can be restored by an owner or admin."
        );
        if managers < 2 {
            m.push_str(
                " Only one owner or admin can restore members: if they lose their own secrets, nobody can manage members; consider a second owner.",
            );
        }
        m
    };
    Ok(RecoverabilityReport {
        members,
        members_with_recovery_key: with_rk,
        single_point_of_failure: spof,
        message,
        details,
    })
}
