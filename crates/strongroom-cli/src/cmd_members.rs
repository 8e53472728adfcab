//! `identity …`, `member …`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use strongroom::sharing::{FingerprintConfirmed, PublicIdentity, Role};
use strongroom::{ExposedSecret, IdentityFile, Vault};

use crate::app::{App, Opened, resolve_member};
use crate::cli::{FingerprintCheck, IdentityCommand, MemberCommand, RoleArg, ScopeCommand};
use crate::cmd_vault::{finish, print_warnings};
use crate::keyholders::{self, Mode};
use crate::location::write_private_file;
use crate::output;

/// `identity …`.
pub(crate) fn identity(app: &mut App, cmd: &IdentityCommand) -> Result<u8> {
    match cmd {
        IdentityCommand::Create {
            name,
            out,
            no_recovery_key,
        } => identity_create(app, name, out, *no_recovery_key),
        IdentityCommand::Show { file } => identity_show(app, file),
    }
}

/// `FILE.pub` next to an identity file.
pub(crate) fn pub_path(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn public_json(public: &PublicIdentity) -> Value {
    json!({
        "member_id": public.member_id().to_string(),
        "name": public.name(),
        "fingerprint": public.fingerprint().to_string(),
        "public_identity": public.to_text(),
    })
}

fn identity_create(
    app: &mut App,
    name: &str,
    out_path: &Path,
    no_recovery_key: bool,
) -> Result<u8> {
    let out = out_path;
    if out.exists() {
        bail!(
            "{} exists: refusing to overwrite an identity file",
            out.display()
        );
    }
    let public_path = pub_path(out);
    if public_path.exists() {
        bail!("{} exists: refusing to overwrite it", public_path.display());
    }
    let profile = app.profile()?;
    let held = keyholders::from_args(&app.keyholder, &profile, Mode::Create)?;
    let (rk, mut shown) = if no_recovery_key {
        (None, None)
    } else {
        // Before the identity file is written: its recovery key must be shown.
        let shown = output::SecretOut::open()?;
        (Some(keyholders::generated_recovery_key()?), Some(shown))
    };
    let mut khs: Vec<&dyn strongroom::recovery::Keyholder> = vec![held.keyholder()];
    if let Some(rk) = &rk {
        khs.push(rk.keyholder());
    }
    let (file, identity) = IdentityFile::create(name, &khs)?;
    tracing::info!(name, member = %identity.member_id(), keyholders = khs.len(), "identity created");
    write_private_file(out, &file.encode(), false)?;
    let public = identity.public();
    std::fs::write(&public_path, format!("{}\n", public.to_text()))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    let recovery = rk.as_ref().and_then(|r| r.recovery.as_ref());
    let show = |out: &mut dyn Write| -> Result<()> {
        if app.json() {
            let mut v = public_json(public);
            v["file"] = Value::from(out_path.display().to_string());
            v["public_file"] = Value::from(public_path.display().to_string());
            v["recovery_key"] = recovery.map_or(Value::Null, output::recovery_key_json);
            return output::json_to(out, v);
        }
        writeln!(
            out,
            "created identity {name:?} ({}) in {} (0600)",
            public.member_id(),
            out_path.display()
        )?;
        writeln!(out, "public identity (also in {}):", public_path.display())?;
        writeln!(out, "    {}", public.to_text())?;
        writeln!(out, "fingerprint: {}", public.fingerprint())?;
        writeln!(
            out,
            "Send the public identity to a vault admin; read them the fingerprint over another channel (phone, in person)."
        )?;
        if let Some(r) = recovery {
            output::recovery_key(out, r, &format!("identity {name:?}"))?;
        }
        out.flush()?;
        Ok(())
    };
    let printed = match &mut shown {
        Some(secret_out) => show(secret_out),
        None => show(&mut std::io::stdout().lock()),
    };
    if let Err(e) = printed {
        if recovery.is_some() {
            // A recovery key nobody saw must not open the identity: remove the file.
            let _ = std::fs::remove_file(out_path);
            let _ = std::fs::remove_file(&public_path);
            return Err(e.context(format!(
                "the recovery key could not be shown, so the new identity was deleted again ({}): run the command again where its output can be read",
                out_path.display()
            )));
        }
        return Err(e);
    }
    if rk.is_none() {
        eprintln!(
            "warning: no recovery key: if the passphrase is lost, a vault admin must re-grant you a new identity"
        );
    }
    Ok(0)
}

fn read_identity_file(path: &Path) -> Result<IdentityFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    IdentityFile::decode(&bytes)
        .with_context(|| format!("{} is not a strongroom identity file", path.display()))
}

fn identity_show(app: &mut App, file: &Path) -> Result<u8> {
    let f = read_identity_file(file)?;
    let held = app.unlock_keyholder()?;
    let identity = f
        .open(held.keyholder())
        .context("cannot open the identity file")?;
    tracing::info!(member = %identity.member_id(), file = %file.display(), "identity opened");
    let public = identity.public();
    if app.json() {
        return output::json(public_json(public)).map(|()| 0);
    }
    println!("name:        {}", public.name());
    println!("member id:   {}", public.member_id());
    println!("fingerprint: {}", public.fingerprint());
    println!("public identity:");
    println!("    {}", public.to_text());
    Ok(0)
}

/// `--identity TEXT|@FILE`.
fn public_identity(spec: &str) -> Result<PublicIdentity> {
    let text = match spec.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public identity file {path}"))?,
        None => spec.to_owned(),
    };
    PublicIdentity::from_text(text.trim()).context("invalid public identity")
}

fn confirm(public: &PublicIdentity, check: &FingerprintCheck) -> Result<FingerprintConfirmed> {
    if check.skip_fingerprint_check_i_accept_the_risk {
        eprintln!(
            "WARNING: fingerprint not compared: whoever delivered this identity could have substituted their own key"
        );
        return Ok(FingerprintConfirmed::skip_verification_i_accept_the_risk(
            public,
        ));
    }
    let typed = check.fingerprint.as_deref().unwrap_or_default();
    public.confirm_fingerprint(typed).map_err(|_| {
        anyhow::anyhow!(
            "the fingerprint does not match this identity: do not add it; get the identity again and compare the fingerprint with its owner over another channel"
        )
    })
}

fn role(r: RoleArg) -> Role {
    match r {
        RoleArg::Owner => Role::Owner,
        RoleArg::Admin => Role::Admin,
        RoleArg::Member => Role::Member,
        RoleArg::ReadOnly => Role::ReadOnly,
    }
}

/// `member …`.
pub(crate) fn member(app: &mut App, cmd: &MemberCommand) -> Result<u8> {
    match cmd {
        MemberCommand::List => member_list(app),
        MemberCommand::Add {
            identity,
            role: r,
            namespace,
            read_only,
            check,
        } => {
            let public = public_identity(identity)?;
            let confirmed = confirm(&public, check)?;
            let o = app.unlock()?;
            if !namespace.is_empty() {
                return add_scoped(app, &o, &public, confirmed, namespace, *read_only);
            }
            o.vault.add_member(&public, role(*r), confirmed)?;
            finish(app, &o)?;
            if app.json() {
                let mut v = public_json(&public);
                v["role"] = Value::from(role(*r).name());
                return output::json(v).map(|()| 0);
            }
            println!(
                "added {} ({}) as {}; they now run `strongroom member join --identity-file FILE` to store their credentials",
                public.name(),
                public.member_id(),
                role(*r)
            );
            Ok(0)
        }
        MemberCommand::Join { identity_file } => member_join(app, identity_file),
        MemberCommand::Remove { member } => member_remove(app, member),
        MemberCommand::Regrant {
            old_member,
            identity,
            check,
        } => {
            let public = public_identity(identity)?;
            let confirmed = confirm(&public, check)?;
            let o = app.unlock()?;
            let old = resolve_member(&o.vault.members(), old_member)?;
            o.vault.regrant(old, &public, confirmed)?;
            finish(app, &o)?;
            if app.json() {
                let mut v = public_json(&public);
                v["replaces"] = Value::from(old.to_string());
                return output::json(v).map(|()| 0);
            }
            println!(
                "re-granted member {old} to the new identity {} ({}); they now run `strongroom member join`",
                public.name(),
                public.member_id()
            );
            Ok(0)
        }
        MemberCommand::Role { member, role: r } => {
            let o = app.unlock()?;
            let id = resolve_member(&o.vault.members(), member)?;
            o.vault.set_role(id, role(*r))?;
            finish(app, &o)?;
            if app.json() {
                return output::json(json!({"member": id.to_string(), "role": role(*r).name()}))
                    .map(|()| 0);
            }
            println!("{member} is now {}", role(*r));
            Ok(0)
        }
        MemberCommand::UpgradeIdentity => {
            let o = app.unlock()?;
            o.vault.upgrade_identity()?;
            finish(app, &o)?;
            let public = o.vault.public_identity();
            if app.json() {
                let mut v = public_json(&public);
                v["kem"] = Value::from(public.kem().name());
                return output::json(v).map(|()| 0);
            }
            println!(
                "{} ({}) now has a hybrid post-quantum identity (X-Wing); new fingerprint: {}",
                public.name(),
                public.member_id(),
                public.fingerprint()
            );
            println!("public identity: {}", public.to_text());
            Ok(0)
        }
        MemberCommand::RequireHybrid => {
            let o = app.unlock()?;
            o.vault.require_hybrid()?;
            finish(app, &o)?;
            if app.json() {
                return output::json(json!({"hybrid_required": true})).map(|()| 0);
            }
            println!(
                "this vault now requires hybrid (X-Wing) grants for every member; classical identities can no longer be added"
            );
            Ok(0)
        }
        MemberCommand::Reattest => {
            let o = app.unlock()?;
            let bar = output::spinner("re-attesting");
            let report = o.vault.reattest(&mut |n| bar.set_position(n));
            bar.finish_and_clear();
            let report = report?;
            finish(app, &o)?;
            if app.json() {
                return output::json(json!({
                    "examined": report.examined,
                    "reattested": report.reattested,
                    "unreadable": report.unreadable,
                }))
                .map(|()| 0);
            }
            if report.examined == 0 {
                println!(
                    "no member lost the right to write since the last re-attestation: nothing to do"
                );
            } else {
                println!(
                    "{} record versions re-attested ({} examined); readers accept them again",
                    report.reattested, report.examined
                );
            }
            if report.unreadable > 0 {
                eprintln!(
                    "warning: {} record versions did not open and were left as they are: run `strongroom doctor --full`",
                    report.unreadable
                );
            }
            Ok(0)
        }
        MemberCommand::RequireSignedWrites => {
            let o = app.unlock()?;
            let bar = output::progress("signing");
            let report = o.vault.require_signed_writes(
                strongroom::RotateOptions::default(),
                &mut |p: strongroom::Progress| {
                    bar.set_length(p.total.max(p.done));
                    bar.set_position(p.done);
                },
            );
            bar.finish_and_clear();
            let report = report?;
            finish(app, &o)?;
            if app.json() {
                return output::json(json!({
                    "signed_writes_required": true,
                    "reencrypted": report.processed,
                    "epoch": report.epoch.0,
                }))
                .map(|()| 0);
            }
            println!(
                "this vault now requires a writer signature on every record version: {} record versions re-encrypted under epoch {} and signed",
                report.processed, report.epoch
            );
            Ok(0)
        }
    }
}

/// `member add --namespace`: a scoped member, granted the scope of each prefix (created
/// when no scope covers the prefix yet).
fn add_scoped(
    app: &App,
    o: &Opened,
    public: &PublicIdentity,
    confirmed: FingerprintConfirmed,
    prefixes: &[String],
    read_only: bool,
) -> Result<u8> {
    let scope_role = if read_only {
        Role::ReadOnly
    } else {
        Role::Member
    };
    // Every prefix is checked before anything is written.
    let scopes = o.vault.scopes();
    let mut wanted = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        strongroom::validate_namespace(prefix)?;
        match scopes
            .iter()
            .find(|s| strongroom::sharing::scope_covers(&s.prefix, prefix))
        {
            Some(s) if s.prefix == *prefix => wanted.push((prefix, Some(s.id))),
            Some(s) => bail!(
                "{prefix} is inside the scope {}: grant that scope instead (scopes do not nest)",
                s.prefix
            ),
            None => wanted.push((prefix, None)),
        }
    }
    o.vault.add_member(public, Role::Scoped, confirmed)?;
    let mut granted = Vec::with_capacity(wanted.len());
    for (prefix, scope) in wanted {
        let scope = match scope {
            Some(s) => s,
            None => o.vault.create_scope(prefix)?,
        };
        o.vault.grant_scope(public.member_id(), scope, scope_role)?;
        granted.push(prefix.clone());
    }
    finish(app, o)?;
    if app.json() {
        let mut v = public_json(public);
        v["role"] = Value::from(Role::Scoped.name());
        v["scopes"] = json!(
            granted
                .iter()
                .map(|p| json!({"prefix": p, "role": scope_role.name()}))
                .collect::<Vec<_>>()
        );
        return output::json(v).map(|()| 0);
    }
    println!(
        "added {} ({}) as a scoped member, {} on {}; it holds no key to any other namespace. It now runs `strongroom member join --identity-file FILE` to store its credentials",
        public.name(),
        public.member_id(),
        scope_role,
        granted.join(", ")
    );
    Ok(0)
}

/// `scope …`.
pub(crate) fn scope(app: &mut App, cmd: &ScopeCommand) -> Result<u8> {
    let o = app.unlock()?;
    let find = |prefix: &str| {
        o.vault
            .scopes()
            .into_iter()
            .find(|s| s.prefix == prefix)
            .ok_or_else(|| {
                anyhow::anyhow!("no scope has the prefix {prefix} (see `strongroom scope list`)")
            })
    };
    match cmd {
        ScopeCommand::Create { prefix } => {
            let id = o.vault.create_scope(prefix)?;
            finish(app, &o)?;
            if app.json() {
                return output::json(json!({"id": id.to_string(), "prefix": prefix})).map(|()| 0);
            }
            println!(
                "created the scope {prefix} ({id}); its secrets are sealed under its own key from now on. Add a service account with `strongroom member add --namespace {prefix}`"
            );
        }
        ScopeCommand::List => {
            let members = o.vault.members();
            finish(app, &o)?;
            let name = |id: strongroom::crypto::MemberId| {
                members
                    .iter()
                    .find(|m| m.id == id)
                    .map_or_else(|| id.to_string(), |m| m.name.clone())
            };
            let scopes = o.vault.scopes();
            if app.json() {
                let items: Vec<Value> = scopes
                    .iter()
                    .map(|s| {
                        json!({
                            "id": s.id.to_string(),
                            "prefix": s.prefix,
                            "epoch": s.epoch.0,
                            "members": s.members.iter().map(|(m, r)| json!({
                                "id": m.to_string(),
                                "name": name(*m),
                                "role": r.name(),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                return output::json(Value::Array(items)).map(|()| 0);
            }
            if scopes.is_empty() {
                eprintln!("no scopes: every member reads every namespace");
                return Ok(0);
            }
            let w = scopes
                .iter()
                .map(|s| s.prefix.len())
                .max()
                .unwrap_or(6)
                .max(6);
            println!("{:w$}  {:32}  {:>5}  MEMBERS", "PREFIX", "ID", "EPOCH");
            for s in &scopes {
                let who: Vec<String> = s
                    .members
                    .iter()
                    .map(|(m, r)| format!("{} ({})", name(*m), r.name()))
                    .collect();
                println!(
                    "{:w$}  {:32}  {:>5}  {}",
                    s.prefix,
                    s.id.to_string(),
                    s.epoch.0,
                    if who.is_empty() {
                        "-".to_owned()
                    } else {
                        who.join(", ")
                    }
                );
            }
        }
        ScopeCommand::Grant {
            member,
            prefix,
            read_only,
        } => {
            let id = resolve_member(&o.vault.members(), member)?;
            let scope = find(prefix)?;
            let r = if *read_only {
                Role::ReadOnly
            } else {
                Role::Member
            };
            o.vault.grant_scope(id, scope.id, r)?;
            finish(app, &o)?;
            if app.json() {
                return output::json(
                    json!({"member": id.to_string(), "prefix": prefix, "role": r.name()}),
                )
                .map(|()| 0);
            }
            println!("{member} is now {r} on {prefix}");
        }
        ScopeCommand::Revoke { member, prefix } => {
            let id = resolve_member(&o.vault.members(), member)?;
            let scope = find(prefix)?;
            let epoch = o.vault.revoke_scope(id, scope.id)?;
            finish(app, &o)?;
            if app.json() {
                return output::json(
                    json!({"member": id.to_string(), "prefix": prefix, "scope_epoch": epoch.0}),
                )
                .map(|()| 0);
            }
            println!(
                "{member} no longer holds {prefix}: the scope's key epoch {epoch} is granted to its other members only. Rotate what it could read at its source, then run `strongroom rotate` to rewrap the scope's secrets"
            );
        }
    }
    Ok(0)
}

fn member_list(app: &mut App) -> Result<u8> {
    let o = app.unlock()?;
    let mut members = o.vault.members();
    members.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    finish(app, &o)?;
    let me = o.vault.member_id();
    let scopes = o.vault.scopes();
    // A scoped member's scopes and its role on each.
    let scopes_of = |id: strongroom::crypto::MemberId| -> Vec<(&str, Role)> {
        scopes
            .iter()
            .filter_map(|s| {
                s.members
                    .iter()
                    .find(|(m, _)| *m == id)
                    .map(|(_, r)| (s.prefix.as_str(), *r))
            })
            .collect()
    };
    if app.json() {
        let items: Vec<Value> = members
            .iter()
            .map(|m| {
                let mut v = json!({
                    "id": m.id.to_string(),
                    "name": m.name,
                    "role": m.role.name(),
                    "fingerprint": m.fingerprint.to_string(),
                    "since_epoch": m.since_epoch.0,
                    "kem": m.kem.name(),
                    "hybrid": m.kem.is_hybrid(),
                    "you": m.id == me,
                });
                if m.role == Role::Scoped {
                    v["scopes"] = scopes_of(m.id)
                        .iter()
                        .map(|(p, r)| json!({"prefix": p, "role": r.name()}))
                        .collect();
                }
                v
            })
            .collect();
        return output::json(Value::Array(items)).map(|()| 0);
    }
    let w = members
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:w$}  {:32}  {:9}  {:35}  {:6}  SINCE",
        "NAME", "ID", "ROLE", "FINGERPRINT", "GRANTS"
    );
    for m in &members {
        println!(
            "{:w$}  {:32}  {:9}  {:35}  {:6}  epoch {}{}",
            m.name,
            m.id.to_string(),
            m.role.name(),
            m.fingerprint.to_string(),
            if m.kem.is_hybrid() {
                "hybrid"
            } else {
                "X25519"
            },
            m.since_epoch,
            if m.id == me { "  (you)" } else { "" }
        );
        if m.role == Role::Scoped {
            let scopes: Vec<String> = scopes_of(m.id)
                .iter()
                .map(|(p, r)| format!("{p} ({})", r.name()))
                .collect();
            println!(
                "{:w$}  scopes: {}",
                "",
                if scopes.is_empty() {
                    "none".to_owned()
                } else {
                    scopes.join(", ")
                }
            );
        }
    }
    if members.iter().any(|m| !m.kem.is_hybrid()) {
        eprintln!(
            "note: members with X25519 grants are classical only; each can run `strongroom member upgrade-identity`"
        );
    }
    Ok(0)
}

fn member_join(app: &mut App, identity_file: &Path) -> Result<u8> {
    let f = read_identity_file(identity_file)?;
    let profile = app.profile()?;
    // The keyholder that opens the identity file also guards the credentials in the vault.
    let held = keyholders::from_args(&app.keyholder, &profile, Mode::Unlock)?;
    let identity = f
        .open(held.keyholder())
        .context("cannot open the identity file")?;
    let store = app.store()?;
    let locked = Vault::open(Arc::clone(&store))?;
    let state = app.state()?;
    let pins = state.load_pins(locked.id())?;
    let scoped = locked
        .members()?
        .iter()
        .any(|m| m.id == identity.member_id() && m.role == Role::Scoped);
    if scoped {
        let vault = locked.join_scoped(&identity, &[held.keyholder()])?;
        state.save_pins(vault.id(), &vault.pins())?;
        let prefixes: Vec<String> = vault.scopes().into_iter().map(|(s, _)| s.prefix).collect();
        if app.json() {
            let mut v = public_json(identity.public());
            v["vault_id"] = Value::from(vault.id().to_string());
            v["scopes"] = json!(prefixes);
            return output::json(v).map(|()| 0);
        }
        println!(
            "joined vault {} as the scoped member {} ({}), for {}; unlock with the same {}",
            vault.id(),
            identity.name(),
            identity.member_id(),
            prefixes.join(", "),
            held.describe()
        );
        return Ok(0);
    }
    let vault = Vault::join(&store, &identity, &[held.keyholder()], pins)?;
    state.save_pins(vault.id(), &vault.pins())?;
    if app.json() {
        let mut v = public_json(identity.public());
        v["vault_id"] = Value::from(vault.id().to_string());
        return output::json(v).map(|()| 0);
    }
    println!(
        "joined vault {} as {} ({}); unlock with the same {} (add --member {} when several members use this vault file)",
        vault.id(),
        identity.name(),
        identity.member_id(),
        held.describe(),
        identity.name()
    );
    Ok(0)
}

fn member_remove(app: &mut App, spec: &str) -> Result<u8> {
    let o = app.unlock()?;
    let members = o.vault.members();
    let id = resolve_member(&members, spec)?;
    let name = members
        .iter()
        .find(|m| m.id == id)
        .map_or_else(|| id.to_string(), |m| m.name.clone());
    if members.iter().any(|m| m.id == id && m.role == Role::Scoped) {
        return remove_scoped(app, &o, id, &name);
    }
    let removal = o.vault.remove_member(id)?;
    finish(app, &o)?;
    let exposed = o
        .vault
        .exposure(&removal)
        .context("the member was removed, but the exposure report failed")?;
    if app.json() {
        output::json(json!({
            "removed": id.to_string(),
            "name": name,
            "new_epoch": removal.new_epoch.0,
            "readable_epochs": [removal.readable_epochs.start().0, removal.readable_epochs.end().0],
            "exposed": exposed_json(&exposed),
            "warnings": removal.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "reattest_error": removal.reattest_error,
        }))?;
    } else {
        println!(
            "removed {name} ({id}). The new vault-key epoch {} is granted to the remaining members only.",
            removal.new_epoch
        );
        if exposed.is_empty() {
            println!("{name} could read no stored secret.");
        } else {
            println!(
                "EXPOSURE: {name} could read these {} secrets (epochs {} to {}) and may have kept copies:",
                exposed.len(),
                removal.readable_epochs.start(),
                removal.readable_epochs.end()
            );
            print_exposed(&exposed);
            println!(
                "Rotate each of these credentials at its source (the database, the API provider…),"
            );
            println!(
                "store the new values with `strongroom put`, then run `strongroom rotate` to rewrap"
            );
            println!("every record under the new epoch and retire the keys {name} held.");
        }
    }
    print_warnings(&removal.warnings);
    if let Some(e) = &removal.reattest_error {
        eprintln!(
            "warning: the versions {name} signed are refused until they are re-attested, which did not finish ({e}): run `strongroom member reattest`"
        );
    }
    Ok(0)
}

/// The exposure report of a removal, as JSON.
fn exposed_json(exposed: &[ExposedSecret]) -> Vec<Value> {
    exposed
        .iter()
        .map(|e| {
            json!({
                "namespace": e.namespace,
                "name": e.name,
                "record_id": e.record_id.to_string(),
                "versions": e.versions,
            })
        })
        .collect()
}

/// The exposure report of a removal, a secret per line with its versions.
fn print_exposed(exposed: &[ExposedSecret]) {
    for e in exposed {
        let versions: Vec<String> = e.versions.iter().map(ToString::to_string).collect();
        println!(
            "  {}/{}  (versions {})",
            e.namespace,
            e.name,
            versions.join(", ")
        );
    }
}

/// `member remove` of a scoped member: its scopes get new keys; the exposure is the
/// secrets of its scopes, nothing else.
fn remove_scoped(
    app: &App,
    o: &Opened,
    id: strongroom::crypto::MemberId,
    name: &str,
) -> Result<u8> {
    let report = o.vault.remove_scoped_member(id)?;
    finish(app, o)?;
    let scopes = o.vault.scopes();
    let prefix = |s: strongroom::sharing::ScopeId| {
        scopes
            .iter()
            .find(|i| i.id == s)
            .map_or_else(|| s.to_string(), |i| i.prefix.clone())
    };
    if app.json() {
        return output::json(json!({
            "removed": id.to_string(),
            "name": name,
            "scoped": true,
            "scopes": report.scopes.iter().map(|(s, e)| json!({"prefix": prefix(*s), "new_scope_epoch": e.0})).collect::<Vec<_>>(),
            "exposure_error": report.exposure_error,
            "reattest_error": report.reattest_error,
            "exposed": exposed_json(&report.exposed),
        }))
        .map(|()| 0);
    }
    if let Some(e) = &report.reattest_error {
        eprintln!(
            "warning: the versions {name} wrote are refused until they are re-attested, which did not finish ({e}): run `strongroom member reattest`"
        );
    }
    if let Some(e) = &report.exposure_error {
        eprintln!(
            "warning: {name} was removed, but its exposure could not be listed ({e}): list its scopes' secrets with `strongroom list`"
        );
    }
    let held: Vec<String> = report.scopes.iter().map(|(s, _)| prefix(*s)).collect();
    println!(
        "removed the scoped member {name} ({id}). New keys for its scopes ({}) are granted to their other members only; the vault key and every other scope are unchanged.",
        held.join(", ")
    );
    if report.exposed.is_empty() {
        println!("{name} could read no stored secret.");
    } else {
        println!(
            "EXPOSURE: {name} could read these {} secrets of its scopes, and nothing else:",
            report.exposed.len()
        );
        print_exposed(&report.exposed);
        println!(
            "Rotate each of these credentials at its source, store the new values with `strongroom put`, then run `strongroom rotate`."
        );
    }
    Ok(0)
}
