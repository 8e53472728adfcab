//! `init`, secrets (`put`, `get`, `list`, `delete`, `history`), rotation, `status`,
//! `doctor`, `audit`, `recoverability`.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use strongroom::crypto::{MemberId, VaultId};
use strongroom::recovery::KeyholderKind;
use strongroom::sharing::{KeyholderInfo, RecoverabilityReport, Warning};
use strongroom::{
    Authorship, CreateOptions, DoctorOptions, Level, RotateOptions, SecretMeta, Status, Suite,
    Vault, VaultError,
};

use crate::app::{App, Connection, Opened, Records};
use crate::cli::{AuditCommand, InitArgs, RotateArgs, SuiteArg, ValueSource};
use crate::input;
use crate::keyholders::{self, Mode};
use crate::location::Location;
use crate::output;

/// `init`.
pub(crate) fn init(app: &mut App, args: &InitArgs) -> Result<u8> {
    let location = app.location()?;
    refuse_existing_vault(&location)?;
    let profile = app.profile()?;
    let held = keyholders::from_args(&app.keyholder, &profile, Mode::Create)?;
    let options = create_options(app, args);
    let (mut out, recovery) = recovery_key(args)?;
    // One commit creates the vault with every keyholder; it happens only after the
    // recovery key was shown (a key that could not be shown leaves nothing behind).
    let pending = prepare_vault(&location, &held, recovery.as_ref(), &options)?;
    let created = Created {
        json: app.json(),
        vault_id: pending.vault_id(),
        member_id: pending.member_id(),
        member_name: &options.member_name,
        location: &location,
        held: &held,
        recovery_key: recovery.as_ref().and_then(|r| r.recovery.as_ref()),
        warnings: pending.warnings().iter().map(ToString::to_string).collect(),
    };
    if let Some(out) = &mut out {
        created.show(out).context(
            "the recovery key could not be shown, so no vault was created: run `strongroom init` again where its output can be read",
        )?;
        commit_vault(app, &location, pending)?;
    } else {
        commit_vault(app, &location, pending)?;
        created.show(&mut std::io::stdout().lock())?;
    }
    print_init_warnings(&created.warnings, recovery.is_some());
    Ok(0)
}

/// Refuses to `init` over a vault: an existing store must hold none.
fn refuse_existing_vault(location: &Location) -> Result<()> {
    let exists = match location {
        // An empty file holds no vault (a power cut during an earlier init can leave one):
        // init makes the vault in it.
        Location::Sqlite(p) => std::fs::metadata(p).is_ok_and(|m| m.len() > 0),
        Location::Postgres(_) => true,
    };
    if exists {
        let store = location.open(false)?;
        match Vault::open(store) {
            Err(VaultError::NoVault) => {}
            Ok(v) => bail!(
                "{} already holds vault {}: nothing was changed",
                location.describe(),
                v.id()
            ),
            Err(e) => return Err(e).context("cannot check the existing store"),
        }
    }
    Ok(())
}

/// The vault `init` creates: its member's name (`init --name alice`, or `--member alice`,
/// else `$USER`), suite, history and rotation policy.
fn create_options(app: &App, args: &InitArgs) -> CreateOptions {
    let member_name = args
        .name
        .clone()
        .or_else(|| app.global.member.clone())
        .unwrap_or_else(|| {
            std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "owner".to_owned())
        });
    CreateOptions::default()
        .with_member_name(member_name)
        .with_suite(match args.suite {
            Some(SuiteArg::Aes) => Suite::Aes256Gcm,
            Some(SuiteArg::Chacha) => Suite::ChaCha20Poly1305,
            None => Suite::preferred(),
        })
        .with_history(args.history)
        .with_rotation_days(args.rotation_days)
}

/// The recovery key `init` generates (none with `--no-recovery-key`), and where it is
/// shown. The output is opened first: a recovery key must have somewhere to be shown
/// before anything is created.
fn recovery_key(args: &InitArgs) -> Result<(Option<output::SecretOut>, Option<keyholders::Held>)> {
    let out = if args.no_recovery_key {
        None
    } else {
        Some(output::SecretOut::open()?)
    };
    let recovery = out
        .is_some()
        .then(keyholders::generated_recovery_key)
        .transpose()?;
    Ok((out, recovery))
}

/// Opens (creating) the store and prepares the vault with every keyholder, uncommitted.
fn prepare_vault(
    location: &Location,
    held: &keyholders::Held,
    recovery: Option<&keyholders::Held>,
    options: &CreateOptions,
) -> Result<strongroom::PendingVault> {
    let store = location.open(true)?;
    let mut all = vec![held.keyholder()];
    all.extend(recovery.map(keyholders::Held::keyholder));
    Vault::prepare_create(store, &all, options)
        .with_context(|| format!("cannot create a vault in {}", location.describe()))
}

/// What `init` reports about the vault it creates.
struct Created<'a> {
    json: bool,
    vault_id: VaultId,
    member_id: MemberId,
    member_name: &'a str,
    location: &'a Location,
    held: &'a keyholders::Held,
    recovery_key: Option<&'a keyholders::RecoveryText>,
    warnings: Vec<String>,
}

impl Created<'_> {
    /// Writes the report (with the recovery key, shown once) to `out`.
    fn show(&self, out: &mut dyn Write) -> Result<()> {
        if self.json {
            return output::json_to(
                out,
                json!({
                    "vault_id": self.vault_id.to_string(),
                    "member_id": self.member_id.to_string(),
                    "member": self.member_name,
                    "vault": self.location.describe(),
                    "keyholder": self.held.describe(),
                    "recovery_key": self.recovery_key.map(output::recovery_key_json),
                    "warnings": self.warnings,
                }),
            );
        }
        let vault_id = self.vault_id;
        writeln!(
            out,
            "created vault {vault_id} in {}",
            self.location.describe()
        )?;
        writeln!(out, "owner: {} ({})", self.member_name, self.member_id)?;
        writeln!(out, "keyholder: {}", self.held.describe())?;
        if let Some(rk) = self.recovery_key {
            output::recovery_key(out, rk, &format!("vault {vault_id}"))?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Commits the vault `init` prepared, and saves its pins.
fn commit_vault(app: &App, location: &Location, pending: strongroom::PendingVault) -> Result<()> {
    let (vault, _) = pending
        .commit()
        .with_context(|| format!("cannot create a vault in {}", location.describe()))?;
    app.save_pins(&vault)
}

/// The creation's warnings on stderr, and a loud one when no recovery key was made.
fn print_init_warnings(warnings: &[String], with_recovery_key: bool) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
    if !with_recovery_key {
        eprintln!(
            "WARNING: no recovery key was created (--no-recovery-key). If the only keyholder is lost"
        );
        eprintln!(
            "WARNING: (forgotten passphrase, deleted key), this vault and every secret in it are gone."
        );
        eprintln!("WARNING: add one later with `strongroom recovery-key new`.");
    }
}

pub(crate) fn print_warnings(warnings: &[Warning]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Saves the pins after a command that may have moved the membership log.
pub(crate) fn finish(app: &App, o: &Opened) -> Result<()> {
    app.save_pins(&o.vault)
}

/// [`finish`] for a handle of either kind: the pins saved.
pub(crate) fn finish_records(app: &App, records: &Records) -> Result<()> {
    match records {
        Records::Full(vault) => app.save_pins(vault),
        Records::Scoped(vault) => app.state()?.save_pins(vault.id(), &vault.pins()),
    }
}

pub(crate) fn meta_json(m: &SecretMeta) -> Value {
    json!({
        "namespace": m.namespace,
        "name": m.name,
        "record_id": m.record_id.to_string(),
        "version": m.version,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "updated_by": m.updated_by.to_string(),
        "authorship": match m.authorship {
            Authorship::Signed => json!({"signed": true}),
            Authorship::Vouched { by } => json!({"signed": true, "vouched_by": by.to_string()}),
            _ => json!({"signed": false}),
        },
        "epoch": m.epoch.0,
        "len": m.len,
    })
}

/// `put`.
pub(crate) fn put(app: &mut App, namespace: &str, name: &str, source: &ValueSource) -> Result<u8> {
    strongroom::validate_namespace(namespace)?;
    strongroom::validate_name(name)?;
    let records = app.unlock_records()?;
    let value = if source.stdin {
        let b = input::stdin_bytes("secret value")?;
        if source.keep_newline {
            b
        } else {
            input::trim_newline(b)
        }
    } else if let Some(path) = &source.from_file {
        input::file_bytes(path, "secret value")?
    } else {
        let s = input::prompt(
            &format!("value of {namespace}/{name}"),
            "pass --stdin or --from-file",
        )?;
        zeroize::Zeroizing::new(secrecy::ExposeSecret::expose_secret(&s).as_bytes().to_vec())
    };
    let meta = records.put(namespace, name, &value)?;
    finish_records(app, &records)?;
    if app.json() {
        output::json(meta_json(&meta))?;
    } else {
        println!("stored {namespace}/{name} version {}", meta.version);
    }
    Ok(0)
}

/// `get`.
pub(crate) fn get(
    app: &mut App,
    namespace: &str,
    name: &str,
    version: Option<u64>,
    show_value: bool,
) -> Result<u8> {
    let records = app.unlock_records()?;
    let secret = records.get(namespace, name, version)?;
    finish_records(app, &records)?;
    let mut out = std::io::stdout().lock();
    if app.json() {
        let mut v = meta_json(secret.meta());
        if show_value {
            if let Some(s) = secret.expose_str() {
                v["value"] = Value::from(s);
            } else {
                use base64::Engine;
                v["value_base64"] = Value::from(
                    base64::engine::general_purpose::STANDARD.encode(secret.expose_secret()),
                );
            }
        }
        drop(out);
        return output::json(v).map(|()| 0);
    }
    let value = secret.expose_secret();
    out.write_all(value).context("cannot write to stdout")?;
    if std::io::stdout().is_terminal() && !value.ends_with(b"\n") {
        out.write_all(b"\n").context("cannot write to stdout")?;
    }
    out.flush().context("cannot write to stdout")?;
    Ok(0)
}

/// `list`.
pub(crate) fn list(app: &mut App, namespace: &str) -> Result<u8> {
    strongroom::validate_namespace(namespace)?;
    let records = app.unlock_records()?;
    let items = records.list(namespace)?;
    finish_records(app, &records)?;
    if app.json() {
        return output::json(Value::Array(items.iter().map(meta_json).collect())).map(|()| 0);
    }
    if items.is_empty() {
        eprintln!("no secrets in namespace {namespace}");
        return Ok(0);
    }
    let w = items.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:w$}  {:>7}  {:23}  {:>8}",
        "NAME", "VERSION", "UPDATED", "BYTES"
    );
    for m in &items {
        println!(
            "{:w$}  {:>7}  {:23}  {:>8}",
            m.name,
            m.version,
            output::time(m.updated_at),
            m.len
        );
    }
    Ok(0)
}

/// `delete`.
pub(crate) fn delete(app: &mut App, namespace: &str, name: &str) -> Result<u8> {
    strongroom::validate_namespace(namespace)?;
    strongroom::validate_name(name)?;
    let records = app.unlock_records()?;
    records.delete(namespace, name)?;
    finish_records(app, &records)?;
    if app.json() {
        output::json(json!({"deleted": {"namespace": namespace, "name": name}}))?;
    } else {
        println!("deleted {namespace}/{name}");
    }
    Ok(0)
}

/// `history`.
pub(crate) fn history(app: &mut App, namespace: &str, name: &str) -> Result<u8> {
    let records = app.unlock_records()?;
    let versions = records.history(namespace, name)?;
    finish_records(app, &records)?;
    if app.json() {
        return output::json(Value::Array(versions.iter().map(meta_json).collect())).map(|()| 0);
    }
    println!(
        "{:>7}  {:23}  {:32}  {:>5}  {:>8}  SIGNED",
        "VERSION", "UPDATED", "BY", "EPOCH", "BYTES"
    );
    for m in &versions {
        // "yes": signed by its author; "vouched by": written unsigned by an earlier
        // release and signed by that owner when the vault moved to signed writes; "no":
        // unsigned.
        let signed = match m.authorship {
            Authorship::Signed => "yes".to_owned(),
            Authorship::Vouched { by } => format!("vouched by {by}"),
            _ => "no".to_owned(),
        };
        println!(
            "{:>7}  {:23}  {:32}  {:>5}  {:>8}  {signed}",
            m.version,
            output::time(m.updated_at),
            m.updated_by.to_string(),
            m.epoch.0,
            m.len
        );
    }
    Ok(0)
}

/// `rotate` and `reencrypt`.
pub(crate) fn rotate(app: &mut App, args: &RotateArgs, deep: bool) -> Result<u8> {
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let o = app.unlock()?;
    if let Some(e) = o.vault.interrupted_rotation()? {
        eprintln!("resuming the interrupted rotation toward epoch {e}");
    }
    let bar = output::progress(if deep { "re-encrypting" } else { "rewrapping" });
    let mut on_progress = |p: strongroom::Progress| {
        bar.set_length(p.total.max(p.done));
        bar.set_position(p.done);
    };
    let options = RotateOptions::default()
        .with_batch_size(args.batch_size)
        .with_new_metadata_key(args.new_metadata_key);
    let report = if deep {
        o.vault.reencrypt_all(options, &mut on_progress)
    } else {
        o.vault.rotate_vault_key_with(options, &mut on_progress)
    };
    bar.finish_and_clear();
    let report = report?;
    finish(app, &o)?;
    if app.json() {
        output::json(json!({
            "epoch": report.epoch.0,
            "processed": report.processed,
            "resumed": report.resumed,
            "min_epoch": report.min_epoch.0,
            "quarantined": report.quarantined,
            "seconds": report.seconds,
        }))?;
    } else {
        println!(
            "{} to epoch {}: {} record versions {} in {:.2} s{}; epochs before {} retired",
            if deep {
                "re-encrypted"
            } else {
                "vault key rotated"
            },
            report.epoch,
            report.processed,
            if deep { "re-encrypted" } else { "rewrapped" },
            report.seconds,
            if report.resumed { " (resumed)" } else { "" },
            report.min_epoch
        );
    }
    if report.quarantined > 0 {
        eprintln!(
            "warning: {} record versions could not be rewrapped (their data key does not open: planted by a former member, or damaged) and were set aside; `strongroom pending-rewrap` lists them, `strongroom purge-quarantined` deletes them",
            report.quarantined
        );
    }
    Ok(0)
}

/// `pending-rewrap`.
pub(crate) fn pending_rewrap(app: &mut App) -> Result<u8> {
    let o = app.unlock()?;
    let epoch = o.vault.epoch();
    let pending = o.vault.pending_rewrap(epoch)?;
    let quarantined = o.vault.quarantined()?;
    finish(app, &o)?;
    if app.json() {
        let items: Vec<Value> = pending
            .iter()
            .map(|p| json!({"record_id": p.record_id.to_string(), "version": p.version, "epoch": p.epoch.0, "quarantined": p.quarantined}))
            .collect();
        let set_aside: Vec<Value> = quarantined.iter().map(quarantined_json).collect();
        return output::json(
            json!({"current_epoch": epoch.0, "pending": items, "quarantined": set_aside}),
        )
        .map(|()| 0);
    }
    if pending.is_empty() {
        println!("every record version is under the current epoch {epoch}");
    } else {
        println!(
            "{} record versions are under epochs older than {epoch}: run `strongroom rotate`",
            pending.len()
        );
        for p in &pending {
            println!(
                "  record {} version {} epoch {}{}",
                p.record_id,
                p.version,
                p.epoch,
                if p.quarantined { " (quarantined)" } else { "" }
            );
        }
    }
    for q in &quarantined {
        println!(
            "quarantined: row {}: {} (`strongroom purge-quarantined` deletes it)",
            q.row,
            printable(&q.reason)
        );
    }
    Ok(0)
}

fn quarantined_json(q: &strongroom::QuarantinedVersion) -> Value {
    json!({
        "record_id": q.record_id.map(|r| r.to_string()),
        "version": q.version,
        "epoch": q.epoch.map(|e| e.0),
        "reason": q.reason,
        "row": q.row,
    })
}

/// `purge-quarantined`.
pub(crate) fn purge_quarantined(app: &mut App) -> Result<u8> {
    let o = app.unlock()?;
    let report = o.vault.purge_quarantined()?;
    finish(app, &o)?;
    if app.json() {
        return output::json(json!({
            "purged": report.purged.iter().map(quarantined_json).collect::<Vec<_>>(),
            "kept": report.kept,
            "heads_moved": report.heads_moved,
        }))
        .map(|()| 0);
    }
    println!(
        "purged {} quarantined record versions ({} open again and were kept)",
        report.purged.len(),
        report.kept
    );
    for r in &report.heads_moved {
        println!(
            "  {r}: its current version was purged; it now shows its newest remaining version, or is gone"
        );
    }
    Ok(0)
}

pub(crate) fn keyholder_json(k: &KeyholderInfo) -> Value {
    json!({
        "id": k.id_hex(),
        "kind": k.kind.name(),
        "kind_id": k.kind.id(),
        "recovery_key_id": recovery_key_id(k),
        "created_at": k.created_at,
        "last_used_at": k.last_used_at,
    })
}

/// The printed id of a recovery-key keyholder (the first 4 bytes of its stanza id).
pub(crate) fn recovery_key_id(k: &KeyholderInfo) -> Option<String> {
    (k.kind == KeyholderKind::RecoveryKey).then(|| {
        strongroom::recovery::RecoveryKeyId::from_bytes([k.id[0], k.id[1], k.id[2], k.id[3]])
            .to_string()
    })
}

pub(crate) fn recoverability_json(r: &RecoverabilityReport) -> Value {
    json!({
        "members": r.members,
        "members_with_recovery_key": r.members_with_recovery_key,
        "single_point_of_failure": r.single_point_of_failure,
        "message": r.message,
        "details": r.details.iter().map(|d| json!({
            "member": d.member.to_string(),
            "name": d.name,
            "role": d.role.name(),
            "keyholders": d.keyholders.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "has_recovery_key": d.has_recovery_key,
        })).collect::<Vec<_>>(),
    })
}

/// `status`.
pub(crate) fn status(app: &mut App) -> Result<u8> {
    let o = app.unlock()?;
    let s = o.vault.status()?;
    finish(app, &o)?;
    let connection = app.connection().transpose()?;
    let read_only = o.vault.is_read_only();
    if app.json() {
        return output::json(status_json(&s, read_only, connection.as_ref())).map(|()| 0);
    }
    print_vault_status(&s, read_only, connection.as_ref());
    print_key_status(&s);
    print_custody_status(&s);
    Ok(0)
}

/// `status --json`.
fn status_json(s: &Status, read_only: bool, connection: Option<&Connection>) -> Value {
    json!({
        "vault_id": s.vault_id.to_string(),
        "backend": s.backend,
        "schema_version": s.schema_version,
        "created_at": s.created_at,
        "member": s.member.to_string(),
        "role": s.role.map(strongroom::sharing::Role::name),
        "epoch": s.epoch.0,
        "min_epoch": s.min_epoch.0,
        "epoch_started_at": s.epoch_started_at,
        "key_age_days": s.key_age_days,
        "rotation_policy_days": s.rotation_policy_days,
        "rotation_due": s.rotation_due,
        "members": s.members,
        "keyholders": s.keyholders.iter().map(keyholder_json).collect::<Vec<_>>(),
        "secrets": s.secrets,
        "versions": s.versions,
        "pending_rewrap": s.pending_rewrap,
        "quarantined": s.quarantined,
        "interrupted_rotation": s.interrupted_rotation.map(|e| e.0),
        "older_metadata_keys": s.older_metadata_keys,
        "recoverability": recoverability_json(&s.recoverability),
        "read_only": read_only,
        "connection": connection.map(|c| json!({
            "server": c.server,
            "encrypted": c.encrypted,
            "verified": c.verified,
            "sslmode": c.sslmode,
            "tls_version": c.tls_version,
            "standby": c.standby,
        })),
        "hybrid_required": s.hybrid_required,
        "signed_writes_required": s.signed_writes_required,
        "pending_reattestation": s.pending_reattestation.iter().map(|(m, at)| json!({
            "member": m.to_string(),
            "lost_at": at,
        })).collect::<Vec<_>>(),
        "classical_members": s.classical_members.iter().map(|m| json!({
            "id": m.id.to_string(),
            "name": m.name,
        })).collect::<Vec<_>>(),
        "scopes": s.scopes.iter().map(|sc| json!({
            "id": sc.id.to_string(),
            "prefix": sc.prefix,
            "epoch": sc.epoch.0,
            "members": sc.members.iter().map(|(m, r)| json!({
                "id": m.to_string(),
                "role": r.name(),
            })).collect::<Vec<_>>(),
            "needs_rekey": s.scopes_needing_rekey.contains(&sc.id),
        })).collect::<Vec<_>>(),
    })
}

/// The vault, how it is reached, this member and what the vault holds.
fn print_vault_status(s: &Status, read_only: bool, connection: Option<&Connection>) {
    println!(
        "vault:          {} ({}, schema {})",
        s.vault_id, s.backend, s.schema_version
    );
    if let Some(c) = connection {
        println!("connection:     {}", c.summary);
    }
    if read_only {
        println!(
            "access:         read-only ({}): reads only; changes go through the primary",
            if connection.is_some_and(|c| c.standby) {
                "a standby"
            } else {
                "the store refuses writes"
            }
        );
    }
    println!("created:        {}", output::time(s.created_at));
    println!(
        "member:         {} ({})",
        s.member,
        s.role.map_or("no longer a member", |r| r.name())
    );
    println!("members:        {}", s.members);
    if !s.scopes.is_empty() {
        let scopes: Vec<String> = s
            .scopes
            .iter()
            .map(|sc| {
                format!(
                    "{} (key epoch {}, {} scoped members)",
                    sc.prefix,
                    sc.epoch,
                    sc.members.len()
                )
            })
            .collect();
        println!("scopes:         {}", scopes.join(", "));
    }
    println!(
        "secrets:        {} ({} versions stored)",
        s.secrets, s.versions
    );
}

/// The vault key: its epoch and age, the rotation policy, and the work a rotation left.
fn print_key_status(s: &Status) {
    println!(
        "vault key:      epoch {} (oldest readable {}), age {}",
        s.epoch,
        s.min_epoch,
        s.key_age_days
            .map_or("unknown".to_owned(), |d| format!("{d} days"))
    );
    println!(
        "rotation:       {}{}",
        if s.rotation_policy_days == 0 {
            "no policy".to_owned()
        } else {
            format!("every {} days", s.rotation_policy_days)
        },
        if s.rotation_due {
            " — DUE: run `strongroom rotate`"
        } else {
            ""
        }
    );
    if s.pending_rewrap > 0 {
        println!(
            "pending rewrap: {} record versions under older epochs",
            s.pending_rewrap
        );
    }
    if s.quarantined > 0 {
        println!(
            "quarantined:    {} record versions that no rotation can rewrap: `strongroom purge-quarantined`",
            s.quarantined
        );
    }
    if let Some(e) = s.interrupted_rotation {
        println!(
            "interrupted:    a rotation toward epoch {e}: run `strongroom rotate` to finish it"
        );
    }
    if s.older_metadata_keys > 0 {
        println!(
            "metadata key:   replaced by a member removal; the blind index moves to it at the next `strongroom rotate`"
        );
    }
}

/// This member's keyholders, the vault's recoverability and its post-quantum state.
fn print_custody_status(s: &Status) {
    let kinds: Vec<String> = s
        .keyholders
        .iter()
        .map(|k| format!("{} {}", k.kind, k.id_hex()))
        .collect();
    println!("keyholders:     {}", kinds.join(", "));
    println!("recoverability: {}", s.recoverability.message);
    println!(
        "signed writes:  {}",
        if s.signed_writes_required {
            "required by the signed log: readers refuse versions not signed by a member with write right"
        } else {
            "not required: run `strongroom member require-signed-writes`"
        }
    );
    if !s.pending_reattestation.is_empty() {
        println!(
            "re-attestation: {} losses of write right wait: run `strongroom member reattest`",
            s.pending_reattestation.len()
        );
    }
    if s.classical_members.is_empty() {
        println!(
            "post-quantum:   every member has hybrid (X-Wing) grants{}",
            if s.hybrid_required {
                "; required by the signed log"
            } else {
                ""
            }
        );
    } else {
        let names: Vec<String> = s
            .classical_members
            .iter()
            .map(|m| format!("{} ({})", m.name, m.id))
            .collect();
        println!(
            "post-quantum:   classical-only (X25519) grants for {}: each runs `strongroom member upgrade-identity`",
            names.join(", ")
        );
    }
}

/// The SQLite vault file and SQLite's `-wal`/`-shm` files beside it must be private: a
/// copy taken by another user of the machine exposes every keyholder to offline guessing.
fn file_modes(path: &std::path::Path) -> strongroom::Finding {
    use std::os::unix::fs::PermissionsExt;
    let mut open = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = std::path::PathBuf::from(p);
        if let Ok(meta) = std::fs::metadata(&p)
            && meta.permissions().mode() & 0o077 != 0
        {
            open.push(format!(
                "{} (mode {:04o})",
                p.display(),
                meta.permissions().mode() & 0o7777
            ));
        }
    }
    if open.is_empty() {
        strongroom::Finding::new(
            "file-mode",
            Level::Ok,
            "the vault's files are readable by their owner only",
        )
    } else {
        strongroom::Finding::new(
            "file-mode",
            Level::Warn,
            format!(
                "other users of this machine can read {}: a copy exposes the keyholders to offline guessing; `chmod 600` them",
                open.join(", ")
            ),
        )
    }
}

/// Whether the connection to a server-backed vault is encrypted and the server verified.
fn connection_finding(c: &crate::app::Connection) -> strongroom::Finding {
    strongroom::Finding::new(
        "connection",
        if c.verified { Level::Ok } else { Level::Warn },
        if c.verified || c.encrypted {
            c.summary.clone()
        } else {
            format!(
                "{}: add sslrootcert=<the server's CA> and drop sslmode=disable/prefer to get the default, sslmode=verify-full",
                c.summary
            )
        },
    )
}

/// `doctor`: exit code 0 healthy, 1 warnings, 2 failures.
pub(crate) fn doctor(app: &mut App, full: bool) -> Result<u8> {
    let o = app.unlock()?;
    let mut report = o.vault.doctor(DoctorOptions::default().with_full(full))?;
    finish(app, &o)?;
    if let Location::Sqlite(path) = app.location()? {
        report.findings.push(file_modes(&path));
    }
    if let Some(c) = app.connection().transpose()? {
        report.findings.push(connection_finding(&c));
    }
    let worst = report.worst();
    let level = |l: Level| match l {
        Level::Ok => "ok",
        Level::Warn => "warn",
        Level::Fail => "fail",
    };
    if app.json() {
        output::json(json!({
            "result": level(worst),
            "findings": report.findings.iter().map(|f| json!({
                "check": f.check,
                "level": level(f.level),
                "message": f.message,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        for f in &report.findings {
            let tag = match f.level {
                Level::Ok => "[ ok ]",
                Level::Warn => "[WARN]",
                Level::Fail => "[FAIL]",
            };
            println!("{tag} {}: {}", f.check, f.message);
        }
        println!(
            "{}",
            match worst {
                Level::Ok => "healthy",
                Level::Warn => "healthy, with warnings",
                Level::Fail => "FAILURES found",
            }
        );
    }
    Ok(match worst {
        Level::Ok => 0,
        Level::Warn => 1,
        Level::Fail => 2,
    })
}

/// `audit list` / `audit verify`.
pub(crate) fn audit(app: &mut App, cmd: &AuditCommand) -> Result<u8> {
    let o = app.unlock()?;
    match cmd {
        AuditCommand::List { from, limit } => {
            let entries = o.vault.audit_list(*from, *limit)?;
            finish(app, &o)?;
            if app.json() {
                return output::json(Value::Array(
                    entries
                        .iter()
                        .map(|e| {
                            json!({
                                "seq": e.seq,
                                "time": e.time,
                                "actor": e.actor.map(|a| a.to_string()),
                                "action": e.action.name(),
                                "ok": e.ok,
                                "target": e.target,
                                "detail": e.detail,
                            })
                        })
                        .collect(),
                ))
                .map(|()| 0);
            }
            println!(
                "{:>5}  {:23}  {:16}  {:4}  {:32}  TARGET / DETAIL",
                "SEQ", "TIME", "ACTION", "OK", "ACTOR"
            );
            for e in &entries {
                println!(
                    "{:>5}  {:23}  {:16}  {:4}  {:32}  {} {}",
                    e.seq,
                    output::time(e.time),
                    e.action.name(),
                    if e.ok { "yes" } else { "NO" },
                    e.actor.map_or("-".to_owned(), |a| a.to_string()),
                    e.target,
                    printable(&e.detail)
                );
            }
            Ok(0)
        }
        AuditCommand::Verify => {
            // Compared with the last verification kept in the state directory, so a log
            // whose end was cut off (which still chains correctly) is caught too.
            let state = app.state()?;
            let pin = state.load_audit_pin(o.vault.id())?;
            let report = match &pin {
                Some(p) => o.vault.audit_verify_since(p),
                None => o.vault.audit_verify(),
            }
            .context("the audit log failed verification")?;
            state.save_audit_pin(o.vault.id(), &report)?;
            finish(app, &o)?;
            if app.json() {
                output::json(
                    json!({"ok": true, "entries": report.entries, "head_hash": report.head_hash}),
                )?;
            } else {
                println!(
                    "audit log verified: {} entries, head {}",
                    report.entries, report.head_hash
                );
            }
            Ok(0)
        }
    }
}

/// `recoverability`.
pub(crate) fn recoverability(app: &mut App) -> Result<u8> {
    let o = app.unlock()?;
    let r = o.vault.recoverability()?;
    finish(app, &o)?;
    if app.json() {
        return output::json(recoverability_json(&r)).map(|()| 0);
    }
    println!("{}", r.message);
    for d in &r.details {
        let kinds: Vec<&str> = d.keyholders.iter().map(|k| k.name()).collect();
        println!(
            "  {} ({}, {}): {}{}",
            d.name,
            d.member,
            d.role,
            kinds.join(", "),
            if d.has_recovery_key {
                ""
            } else {
                " — no recovery key"
            }
        );
    }
    if r.single_point_of_failure {
        eprintln!("warning: {}", r.message);
    }
    Ok(0)
}

/// `s` with control characters escaped, so text that came from storage (the detail of a
/// failed-unlock entry) cannot drive the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
        assert_eq!(super::printable("plain ünïcode"), "plain ünïcode");
    }
}
