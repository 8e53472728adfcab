//! `keyholder …`, `recovery-key …`, `kek generate`.

use std::io::Write as _;

use anyhow::{Context, Result, bail};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use strongroom::recovery::{KeyholderKind, RawKek};
use strongroom_keyring::KeyringKeyholder;
use strongroom_secret_service::{SecretServiceEntry, SecretServiceKeyholder};

use crate::app::App;
use crate::cli::{KekCommand, KeyholderCommand, NewKeyholderArgs, RecoveryKeyCommand};
use crate::cmd_vault::{finish, keyholder_json, recovery_key_id};
use crate::keyholders::{self, Held, Mode};
use crate::output;

/// `keyholder …`.
pub(crate) fn keyholder(app: &mut App, cmd: &KeyholderCommand) -> Result<u8> {
    match cmd {
        KeyholderCommand::List => list(app),
        KeyholderCommand::Add { new } => add(app, new),
        KeyholderCommand::Remove { id } => remove(app, id),
        KeyholderCommand::Rotate { old_id, new } => rotate(app, old_id, new),
    }
}

fn list(app: &mut App) -> Result<u8> {
    let o = app.unlock()?;
    let khs = o.vault.keyholders()?;
    finish(app, &o)?;
    if app.json() {
        let items: Vec<Value> = khs
            .iter()
            .map(|k| {
                let mut v = keyholder_json(k);
                v["unlocked_with"] = Value::from(o.held.id == Some(k.id));
                v
            })
            .collect();
        return output::json(Value::Array(items)).map(|()| 0);
    }
    println!(
        "{:16}  {:12}  {:23}  {:23}  NOTE",
        "ID", "KIND", "ADDED", "LAST USED"
    );
    for k in &khs {
        let mut note = Vec::new();
        if let Some(rk) = recovery_key_id(k) {
            note.push(format!("recovery key {rk}"));
        }
        if !k.kind.is_known() {
            note.push(
                "a kind this strongroom does not know (added by a newer release): kept as is"
                    .to_owned(),
            );
        }
        if o.held.id == Some(k.id) {
            note.push("used for this unlock".to_owned());
        }
        println!(
            "{:16}  {:12}  {:23}  {:23}  {}",
            k.id_hex(),
            k.kind.to_string(),
            output::time(k.created_at),
            k.last_used_at.map_or("never".to_owned(), output::time),
            note.join("; ")
        );
    }
    Ok(0)
}

fn add(app: &mut App, args: &NewKeyholderArgs) -> Result<u8> {
    let o = app.unlock()?;
    let profile = app.profile()?;
    let new = keyholders::new_from_args(args, &app.keyholder, Some(&o.held), &profile)?;
    let Some(rk) = &new.recovery else {
        let info = o.vault.add_keyholder(new.keyholder())?;
        finish(app, &o)?;
        if app.json() {
            return output::json(keyholder_json(&info)).map(|()| 0);
        }
        println!("added {} keyholder {}", info.kind, info.id_hex());
        return Ok(0);
    };
    let mut out = output::SecretOut::open()?;
    let info = o.vault.add_keyholder(new.keyholder())?;
    output::show_or_remove(&o.vault, info.id, || {
        if app.json() {
            let mut v = keyholder_json(&info);
            v["recovery_key"] = output::recovery_key_json(rk);
            return output::json_to(&mut out, v);
        }
        writeln!(out, "added {} keyholder {}", info.kind, info.id_hex())?;
        output::recovery_key(&mut out, rk, &format!("vault {}", o.vault.id()))
    })?;
    finish(app, &o)?;
    Ok(0)
}

fn remove(app: &mut App, id: &str) -> Result<u8> {
    let id = keyholders::parse_id(id)?;
    let o = app.unlock()?;
    o.vault.remove_keyholder(&id)?;
    finish(app, &o)?;
    if o.held.id == Some(id) {
        eprintln!(
            "note: that was the keyholder used for this command; it no longer opens the vault"
        );
    }
    if app.json() {
        output::json(json!({"removed": hex::encode(id)}))?;
    } else {
        println!("removed keyholder {}", hex::encode(id));
    }
    Ok(0)
}

fn rotate(app: &mut App, old_id: &str, args: &NewKeyholderArgs) -> Result<u8> {
    let old = keyholders::parse_id(old_id)?;
    let store = app.store()?;
    let held = app.unlock_keyholder()?;
    let next_keyring = args.new_keyring.as_deref() == Some("");
    let vault = match app.unlock_with(&store, &held) {
        Ok(v) => v,
        Err(e) if next_keyring && held.keyring.is_some() && is_unlock_failure(&e) => {
            return finish_keyring_rotation(app, &store, &held, old, e);
        }
        Err(e) => return Err(e),
    };
    let profile = app.profile()?;
    let new = keyholders::new_from_args(args, &app.keyholder, Some(&held), &profile)?;
    if !vault.keyholders()?.iter().any(|k| k.id == old) {
        bail!(
            "no keyholder with id {} (see `strongroom keyholder list`)",
            hex::encode(old)
        );
    }
    if let Some(rk) = &new.recovery {
        // Shown before the old keyholder goes: a failure to print keeps the old one (and
        // removes the new one again).
        let mut out = output::SecretOut::open()?;
        let added = vault.add_keyholder(new.keyholder())?;
        if !app.json() {
            output::show_or_remove(&vault, added.id, || {
                output::recovery_key(&mut out, rk, &format!("vault {}", vault.id()))
            })?;
        }
    }
    let info = vault.rotate_keyholder(&old, new.keyholder())?;
    app.save_pins(&vault)?;
    let deleted = delete_old_keyring_entry(&held, old)?;
    let deleted_item = delete_old_secret_service_item(&held, &new, old)?;
    if app.json() {
        let mut v = keyholder_json(&info);
        v["replaced"] = Value::from(hex::encode(old));
        v["deleted_keyring_entry"] = deleted.map_or(Value::Null, Value::from);
        v["deleted_secret_service_item"] = deleted_item.map_or(Value::Null, Value::from);
        v["recovery_key"] = new
            .recovery
            .as_ref()
            .map_or(Value::Null, output::recovery_key_json);
        return output::json(v).map(|()| 0);
    }
    println!(
        "replaced keyholder {} with {} keyholder {} (no record was touched)",
        hex::encode(old),
        info.kind,
        info.id_hex()
    );
    if let Some(entry) = deleted {
        println!("deleted the old OS keyring entry {entry}");
    }
    if let Some(item) = deleted_item {
        println!("deleted the old Secret Service item {item}");
    }
    match info.kind {
        KeyholderKind::RawKek => eprintln!(
            "note: the old key-encryption key no longer opens the vault: deploy the new one wherever the old one was used"
        ),
        KeyholderKind::Pkcs11 if held.id == Some(old) => eprintln!(
            "note: the old HSM key still exists in its token; delete it once no other vault uses it"
        ),
        _ => {}
    }
    Ok(0)
}

fn is_unlock_failure(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<strongroom::VaultError>()
            .is_some_and(strongroom::VaultError::is_unlock_failure)
    })
}

/// After a `--new-keyring` rotation removed the old stanza but stopped before deleting the
/// old entry, the old entry no longer unlocks: the next generation does. Finish the job.
fn finish_keyring_rotation(
    app: &App,
    store: &std::sync::Arc<dyn strongroom::store::Store>,
    held: &Held,
    old: [u8; 8],
    original: anyhow::Error,
) -> Result<u8> {
    let Some(entry) = &held.keyring else {
        return Err(original);
    };
    let next = entry.next_generation();
    let Ok(new) = keyholders::keyring_keyholder(&next, Mode::Unlock) else {
        return Err(original);
    };
    let vault = app.unlock_with(store, &new).map_err(|_| original)?;
    if vault.keyholders()?.iter().any(|k| k.id == old) || held.id != Some(old) {
        bail!(
            "the keyring entry {entry} does not open the vault, and keyholder {} is still registered: check the entry",
            hex::encode(old)
        );
    }
    let deleted = KeyringKeyholder::delete(&entry.service, &entry.entry)
        .with_context(|| format!("cannot delete the old OS keyring entry {entry}"))?;
    if app.json() {
        output::json(
            json!({"completed": true, "keyholder": next.to_string(), "deleted_keyring_entry": deleted.then(|| entry.to_string())}),
        )?;
    } else {
        println!(
            "finished an interrupted rotation: the vault opens with the keyring entry {next}{}",
            if deleted {
                format!("; deleted the old entry {entry}")
            } else {
                String::new()
            }
        );
    }
    Ok(0)
}

/// Deletes the unlocking keyring entry when it was the keyholder just replaced.
fn delete_old_keyring_entry(held: &Held, old: [u8; 8]) -> Result<Option<String>> {
    match &held.keyring {
        Some(entry) if held.id == Some(old) => {
            KeyringKeyholder::delete(&entry.service, &entry.entry)
                .with_context(|| format!("the rotation is complete, but the old OS keyring entry {entry} could not be deleted; delete it by hand"))?;
            Ok(Some(entry.to_string()))
        }
        _ => Ok(None),
    }
}

/// Deletes the unlocking Secret Service item when it was the keyholder just replaced (its
/// key wraps nothing any more). An item the new keyholder also uses is kept.
fn delete_old_secret_service_item(held: &Held, new: &Held, old: [u8; 8]) -> Result<Option<String>> {
    let kept = |entry: &SecretServiceEntry| {
        new.id == Some(old) || new.secret_service.as_ref().is_some_and(|(e, _)| e == entry)
    };
    match &held.secret_service {
        Some((entry, options)) if held.id == Some(old) && !kept(entry) => {
            SecretServiceKeyholder::delete(entry, options).with_context(|| {
                format!("the rotation is complete, but the old Secret Service item {entry} could not be deleted; delete it by hand (secret-tool clear)")
            })?;
            Ok(Some(entry.to_string()))
        }
        _ => Ok(None),
    }
}

/// `recovery-key …`.
pub(crate) fn recovery_key(app: &mut App, cmd: &RecoveryKeyCommand) -> Result<u8> {
    match cmd {
        RecoveryKeyCommand::New { old } => recovery_key_new(app, old.as_deref()),
        RecoveryKeyCommand::Verify => recovery_key_verify(app),
    }
}

fn recovery_key_new(app: &mut App, old: Option<&str>) -> Result<u8> {
    let o = app.unlock()?;
    let existing: Vec<[u8; 8]> = o
        .vault
        .keyholders()?
        .iter()
        .filter(|k| k.kind == KeyholderKind::RecoveryKey)
        .map(|k| k.id)
        .collect();
    let old = match (old, existing.as_slice()) {
        (Some(id), _) => {
            let id = keyholders::parse_id(id)?;
            if !existing.contains(&id) {
                bail!(
                    "{} is not a recovery-key keyholder of this member",
                    hex::encode(id)
                );
            }
            Some(id)
        }
        (None, []) => None,
        (None, [one]) => Some(*one),
        (None, _) => {
            bail!("this member has several recovery keys: choose the one to replace with --old ID")
        }
    };
    let new = keyholders::generated_recovery_key()?;
    let Some(rk) = &new.recovery else {
        bail!("no recovery key was generated");
    };
    let mut out = output::SecretOut::open()?;
    let added = o.vault.add_keyholder(new.keyholder())?;
    output::show_or_remove(&o.vault, added.id, || {
        if app.json() {
            output::json_to(
                &mut out,
                json!({
                    "recovery_key": output::recovery_key_json(rk),
                    "replaced": old.map(hex::encode),
                }),
            )
        } else {
            output::recovery_key(&mut out, rk, &format!("vault {}", o.vault.id()))
        }
    })?;
    if let Some(old) = old {
        o.vault
            .rotate_keyholder(&old, new.keyholder())
            .context("the new recovery key was added, but the old one could not be removed")?;
        if !app.json() {
            println!("the old recovery key no longer opens the vault");
        }
    }
    finish(app, &o)?;
    Ok(0)
}

fn recovery_key_verify(app: &mut App) -> Result<u8> {
    let rk = keyholders::recovery_key(&app.keyholder)?;
    let key_id = rk.key_id();
    let store = app.store()?;
    let held = keyholders::held_recovery_key(rk);
    let vault = app
        .unlock_with(&store, &held)
        .with_context(|| format!("recovery key {key_id} does not open this vault"))?;
    let member = vault
        .members()
        .into_iter()
        .find(|m| m.id == vault.member_id())
        .map_or_else(|| vault.member_id().to_string(), |m| m.name);
    if app.json() {
        output::json(
            json!({"ok": true, "recovery_key_id": key_id.to_string(), "vault_id": vault.id().to_string(), "member": member}),
        )?;
    } else {
        println!(
            "recovery key {key_id} opens vault {} (member {member}); no keyholder was changed",
            vault.id()
        );
    }
    Ok(0)
}

/// `kek generate`.
pub(crate) fn kek(app: &App, cmd: &KekCommand) -> Result<u8> {
    match cmd {
        KekCommand::Generate => {
            let kek = RawKek::generate().context("cannot generate a key")?;
            let text = kek.to_base64();
            if app.json() {
                output::json(
                    json!({"kek": text.expose_secret(), "key_id": kek.key_id().to_string()}),
                )?;
            } else {
                println!("{}", text.expose_secret());
                eprintln!(
                    "key id {} (not secret); keep the key in a 0600 file or a secret store",
                    kek.key_id()
                );
            }
            Ok(0)
        }
    }
}
