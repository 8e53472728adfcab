//! `snapshot`, `verify-snapshot`, `restore`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use strongroom::crypto::MemberId;
use strongroom::sharing::Pins;
use strongroom::{RestoreOptions, SnapshotInfo, UnlockOptions, Vault};

use crate::app::{App, resolve_member};
use crate::cmd_vault::finish;
use crate::output;

fn info_json(info: &SnapshotInfo) -> serde_json::Value {
    json!({
        "vault_id": info.vault_id.to_string(),
        "rows": info.rows,
        "bytes": info.bytes,
        "sha256": info.sha256,
        "created_at": info.created_at,
    })
}

/// `snapshot FILE`.
pub(crate) fn snapshot(app: &mut App, file: &Path) -> Result<u8> {
    let o = app.unlock()?;
    let bar = output::progress("writing snapshot");
    let info = o
        .vault
        .snapshot_to(file, &mut |rows| bar.set_position(rows));
    bar.finish_and_clear();
    let info = info?;
    finish(app, &o)?;
    if app.json() {
        let mut v = info_json(&info);
        v["file"] = file.display().to_string().into();
        return output::json(&v).map(|()| 0);
    }
    println!(
        "snapshot of vault {} written to {}: {} rows, {} bytes, sha256 {}",
        info.vault_id,
        file.display(),
        info.rows,
        info.bytes,
        info.sha256
    );
    Ok(0)
}

/// The `--member` to unlock a snapshot as: an id, or a name looked up in the live vault.
fn snapshot_member(app: &App) -> Result<Option<MemberId>> {
    let Some(spec) = &app.global.member else {
        return Ok(None);
    };
    if let Ok(id) = spec.parse::<MemberId>() {
        return Ok(Some(id));
    }
    let locked = Vault::open(app.store()?)
        .context("--member NAME is looked up in the live vault; give the member id instead")?;
    resolve_member(&locked.members()?, spec).map(Some)
}

/// `verify-snapshot FILE`.
pub(crate) fn verify_snapshot(app: &mut App, file: &Path) -> Result<u8> {
    let member = snapshot_member(app)?;
    let held = app.unlock_keyholder()?;
    let bar = output::progress("verifying snapshot");
    bar.tick();
    let v = strongroom::verify_snapshot(
        file,
        held.keyholder(),
        &UnlockOptions {
            member,
            pins: Pins::new(),
        },
    );
    bar.finish_and_clear();
    let v = v.with_context(|| format!("snapshot {} failed verification", file.display()))?;
    if app.json() {
        return output::json(&json!({
            "ok": true,
            "info": info_json(&v.info),
            "secrets": v.secrets,
            "versions": v.versions,
        }))
        .map(|()| 0);
    }
    println!(
        "snapshot {} verified: vault {}, taken {}, sha256 {}; {} secrets ({} versions) decrypt",
        file.display(),
        v.info.vault_id,
        output::time(v.info.created_at),
        v.info.sha256,
        v.secrets,
        v.versions
    );
    Ok(0)
}

/// `restore FILE`.
pub(crate) fn restore(app: &mut App, file: &Path, allow_other_vault: bool) -> Result<u8> {
    let member = snapshot_member(app)?;
    let location = app.location()?;
    let store: Arc<dyn strongroom::store::Store> = location.open(true)?;
    let held = app.unlock_keyholder()?;
    let report = strongroom::restore_snapshot(
        &store,
        file,
        held.keyholder(),
        &RestoreOptions {
            unlock: UnlockOptions {
                member,
                pins: Pins::new(),
            },
            allow_other_vault,
        },
    )
    .with_context(|| format!("cannot restore {}", file.display()))?;
    // The restored membership log replaces the one pinned before: pin the restored one.
    app.state()?.save_pins(report.vault.id(), &report.pins)?;
    let v = &report.verification;
    if app.json() {
        return output::json(&json!({
            "restored": info_json(&v.info),
            "secrets": v.secrets,
            "versions": v.versions,
        }))
        .map(|()| 0);
    }
    println!(
        "restored vault {} from {} (taken {}): {} secrets, {} versions, every one verified before the live vault was replaced",
        v.info.vault_id,
        file.display(),
        output::time(v.info.created_at),
        v.secrets,
        v.versions
    );
    Ok(0)
}
