//! `snapshot`, `verify-snapshot`, `restore`, `export`, `import`, `run`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::json;
use strongroom::crypto::MemberId;
use strongroom::sharing::Pins;
use strongroom::{
    ExportFormat, ExportTarget, RestoreOptions, SnapshotFile, SnapshotInfo, UnlockOptions, Vault,
};

use crate::app::{App, resolve_member};
use crate::cli::{ExportArgs, FormatArg, RestoreArgs};
use crate::cmd_vault::finish;
use crate::{input, output};

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
    let bar = output::spinner("rows written");
    let info = o
        .vault
        .snapshot_to(file, &mut |rows| bar.set_position(rows));
    bar.finish_and_clear();
    let info = info?;
    finish(app, &o)?;
    if app.json() {
        let mut v = info_json(&info);
        v["file"] = file.display().to_string().into();
        return output::json(v).map(|()| 0);
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

/// Opens a snapshot (`-` is standard input; a FIFO works too) and loads the pins this
/// client saved for the vault its header names (empty when it never opened it): the
/// snapshot's genesis signer must match them, and a membership log older than them is
/// reported (refused by `restore` unless allowed). The header is untrusted: the facade
/// checks that the rows hold that vault.
fn open_snapshot(app: &App, file: &Path) -> Result<(SnapshotFile, Pins)> {
    let path = if file == Path::new("-") {
        Path::new("/dev/stdin")
    } else {
        file
    };
    let snapshot = SnapshotFile::open(path)
        .with_context(|| format!("cannot read snapshot {}", file.display()))?;
    let pins = app.state()?.load_pins(snapshot.vault_id())?;
    Ok((snapshot, pins))
}

const ROLLBACK_NOTE: &str = "its membership log is older than the one this client has verified: membership changes made since (a member removal!) are not in it";

/// `verify-snapshot FILE`.
pub(crate) fn verify_snapshot(app: &mut App, file: &Path) -> Result<u8> {
    let member = snapshot_member(app)?;
    let (snapshot, pins) = open_snapshot(app, file)?;
    let held = app.unlock_keyholder()?;
    tracing::info!(file = %file.display(), keyholder = %held.describe(), "verifying snapshot");
    let bar = output::spinner("verifying snapshot");
    let v = snapshot.verify(
        held.keyholder(),
        &UnlockOptions::default().with_member(member).with_pins(pins),
    );
    bar.finish_and_clear();
    let v = v.with_context(|| format!("snapshot {} failed verification", file.display()))?;
    if v.membership_rollback {
        eprintln!(
            "warning: {ROLLBACK_NOTE}; `restore` refuses it unless --allow-membership-rollback"
        );
    }
    if app.json() {
        return output::json(json!({
            "ok": true,
            "info": info_json(&v.info),
            "secrets": v.secrets,
            "versions": v.versions,
            "membership_rollback": v.membership_rollback,
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
pub(crate) fn restore(app: &mut App, file: &Path, args: &RestoreArgs) -> Result<u8> {
    let member = snapshot_member(app)?;
    let (snapshot, pins) = open_snapshot(app, file)?;
    let location = app.location()?;
    let store: Arc<dyn strongroom::store::Store> = location.open(true)?;
    let held = app.unlock_keyholder()?;
    tracing::info!(file = %file.display(), vault = %location.describe(), "restoring snapshot");
    let cannot = |e: strongroom::VaultError| {
        let e = anyhow::Error::new(e).context(format!("cannot restore {}", file.display()));
        if e.chain()
            .any(|c| c.to_string().contains("membership log is older"))
        {
            e.context("pass --allow-membership-rollback to restore it anyway, then check `strongroom member list` and run `strongroom rotate`")
        } else {
            e
        }
    };
    let prepared = snapshot
        .prepare_restore(
            &store,
            held.keyholder(),
            &RestoreOptions::default()
                .with_unlock(UnlockOptions::default().with_member(member).with_pins(pins))
                .with_allow_other_vault(args.allow_other_vault)
                .with_allow_membership_rollback(args.allow_membership_rollback),
        )
        .map_err(cannot)?;
    let state = app.state()?;
    let vault_id = prepared.verification().info.vault_id;
    if prepared.verification().membership_rollback {
        // The pins saved so far name membership-log entries the snapshot lacks: were they
        // kept until after the commit, a power cut in between would leave them ahead of
        // the restored vault, refused as rolled back. The snapshot's pins hold for the
        // live vault and the restored one alike, so they go first.
        state.save_pins(vault_id, &prepared.pins())?;
    }
    let report = prepared.commit().map_err(cannot)?;
    // The restored membership log replaces the one pinned before (an allowed rollback
    // included): pin the restored one, which the facade verified.
    state.save_pins(report.vault.id(), &report.pins)?;
    let v = &report.verification;
    if v.membership_rollback {
        eprintln!(
            "warning: {ROLLBACK_NOTE}, so they were undone: check `strongroom member list` and run `strongroom rotate`"
        );
    }
    if app.json() {
        return output::json(json!({
            "restored": info_json(&v.info),
            "secrets": v.secrets,
            "versions": v.versions,
            "membership_rollback": v.membership_rollback,
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

fn format(f: FormatArg) -> ExportFormat {
    match f {
        FormatArg::Dotenv => ExportFormat::Dotenv,
        FormatArg::Json => ExportFormat::Json,
    }
}

/// Checks `--age-recipient` values before anything is unlocked. Messages name a
/// recipient by its position, never by its text: someone may paste a secret key there.
fn check_recipients(recipients: &[String]) -> Result<()> {
    for (i, r) in recipients.iter().enumerate() {
        let n = i + 1;
        let r = r.trim();
        let prefix = "AGE-SECRET-KEY-";
        if r.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
        {
            bail!(
                "--age-recipient #{n}: this is an age identity (a secret key), not a recipient; nothing was exported. Pass its public key (`age-keygen -y KEYFILE` prints it), and treat this key as exposed if it was typed or logged somewhere"
            );
        }
        if strongroom::is_hybrid_recipient(r) {
            if let Err(why) = r.parse::<strongroom::HybridRecipient>() {
                bail!("--age-recipient #{n}: {why}; nothing was exported");
            }
        } else if r.parse::<age::x25519::Recipient>().is_err() {
            bail!(
                "--age-recipient #{n} is not a valid age recipient (age1pq1… post-quantum, or age1… X25519); nothing was exported"
            );
        }
    }
    let hybrid = recipients
        .iter()
        .filter(|r| strongroom::is_hybrid_recipient(r))
        .count();
    if hybrid != 0 && hybrid != recipients.len() {
        bail!(
            "post-quantum (age1pq1…) and X25519 (age1…) recipients cannot share one file: it would only be as strong as its X25519 stanzas; export once per kind"
        );
    }
    Ok(())
}

/// `export`.
pub(crate) fn export(app: &mut App, args: &ExportArgs) -> Result<u8> {
    let passphrase = args.age_passphrase || args.age_passphrase_file.is_some();
    let chosen = usize::from(!args.age_recipient.is_empty())
        + usize::from(passphrase)
        + usize::from(args.plaintext_i_understand);
    if chosen != 1 {
        bail!(
            "choose one export target: --age-recipient (repeatable), --age-passphrase, or --plaintext-i-understand"
        );
    }
    check_recipients(&args.age_recipient)?;
    let to_stdout = args.out == "-";
    let out_path = PathBuf::from(&args.out);
    if !to_stdout && out_path.exists() {
        bail!("{} exists: refusing to overwrite it", out_path.display());
    }
    let o = app.unlock()?;
    let target = if passphrase {
        let p = match &args.age_passphrase_file {
            Some(f) => input::secret_from_file(f, "age passphrase")?,
            None => input::prompt_new("age passphrase", "pass --age-passphrase-file")?,
        };
        ExportTarget::AgePassphrase(p)
    } else if args.plaintext_i_understand {
        eprintln!(
            "WARNING: writing secrets in PLAINTEXT to {}: anyone who reads it has them; delete it when done",
            if to_stdout { "stdout" } else { &args.out }
        );
        ExportTarget::Plaintext
    } else {
        ExportTarget::AgeRecipients(args.age_recipient.clone())
    };
    let report = if to_stdout {
        let mut out = std::io::stdout().lock();
        let r = o.vault.export(
            args.namespace.as_deref(),
            format(args.format),
            target,
            &mut out,
        )?;
        out.flush().context("cannot write to stdout")?;
        r
    } else {
        // Written to a private temporary file and moved into place only when complete.
        let dir = out_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".strongroom-export-")
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let r = o.vault.export(
            args.namespace.as_deref(),
            format(args.format),
            target,
            tmp.as_file_mut(),
        )?;
        tmp.as_file()
            .sync_all()
            .context("cannot write the export")?;
        tmp.persist_noclobber(&out_path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot create {}", out_path.display()))?;
        r
    };
    finish(app, &o)?;
    let msg = format!(
        "exported {} secrets{}",
        report.secrets,
        if to_stdout {
            String::new()
        } else {
            format!(" to {}", out_path.display())
        }
    );
    if to_stdout {
        eprintln!("{msg}");
    } else if app.json() {
        output::json(json!({"secrets": report.secrets, "file": out_path.display().to_string()}))?;
    } else {
        println!("{msg}");
    }
    Ok(0)
}

/// `import`.
pub(crate) fn import(
    app: &mut App,
    namespace: &str,
    f: FormatArg,
    input_spec: &str,
    age_identities: &[PathBuf],
) -> Result<u8> {
    strongroom::validate_namespace(namespace)?;
    // Identity files are read (and checked) before anything is unlocked.
    let mut identity_text = zeroize::Zeroizing::new(String::new());
    for path in age_identities {
        let text = input::secret_from_file(path, "age identity file")?;
        identity_text.push_str(age::secrecy::ExposeSecret::expose_secret(&text));
        identity_text.push('\n');
    }
    let identity_file = age::secrecy::SecretString::from(core::mem::take(&mut *identity_text));
    let o = app.unlock()?;
    let raw = if input_spec == "-" {
        input::stdin_bytes("import input")?
    } else {
        input::file_bytes(Path::new(input_spec), "import input")?
    };
    let bytes = if age_identities.is_empty() {
        raw
    } else {
        strongroom::decrypt_age(&raw, &identity_file)?
    };
    let report = o.vault.import(namespace, format(f), &bytes)?;
    finish(app, &o)?;
    if app.json() {
        output::json(json!({
            "secrets": report.secrets,
            "written": report.written,
            "unchanged": report.unchanged,
            "namespace": namespace,
        }))?;
    } else {
        println!(
            "imported {} secrets into {namespace}: {} written, {} already up to date",
            report.secrets, report.written, report.unchanged
        );
    }
    Ok(0)
}

/// Environment variables that change how a program (or the shell, loader or interpreter
/// that starts it) behaves before it reads any configuration of its own: a secret with one
/// of these names would let whoever can write the namespace run code in `run`'s child.
/// `run` refuses them unless each is named with `--allow-env-override`. A trailing `*` is a
/// prefix (`LD_*`: `LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`, …). Names are compared
/// ignoring ASCII case (Windows environments are case-insensitive).
pub(crate) const DANGEROUS_ENV: &[&str] = &[
    // program lookup
    "PATH",
    // dynamic loaders (glibc/musl, macOS dyld) and glibc's charset modules
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    // shells: startup files, options, tracing prompt, word splitting
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    // interpreters: module paths and startup code
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERLLIB",
    "PERL5OPT",
    "NODE_OPTIONS",
    "NODE_PATH",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    // commands run by tools
    "GIT_SSH_COMMAND",
];

/// Whether `name` is one of [`DANGEROUS_ENV`].
pub(crate) fn is_dangerous_env(name: &str) -> bool {
    DANGEROUS_ENV.iter().any(|d| match d.strip_suffix('*') {
        Some(prefix) => name
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix)),
        None => name.eq_ignore_ascii_case(d),
    })
}

/// The names among `names` that are dangerous and not allowed, sorted.
fn refused_env<'a>(names: impl IntoIterator<Item = &'a str>, allowed: &[String]) -> Vec<&'a str> {
    let mut refused: Vec<&str> = names
        .into_iter()
        .filter(|n| is_dangerous_env(n) && !allowed.iter().any(|a| a.eq_ignore_ascii_case(n)))
        .collect();
    refused.sort_unstable();
    refused
}

/// How `run` builds the child's environment.
pub(crate) struct RunEnv<'a> {
    /// Dangerous names a secret may set (`--allow-env-override`).
    pub(crate) allow_override: &'a [String],
    /// Keep the `--kek-env` variable in the child's environment (`--keep-kek-env`).
    pub(crate) keep_kek_env: bool,
    /// strongroom's own variables to keep (`--keep-env`).
    pub(crate) keep: &'a [String],
}

/// The prefix of strongroom's own environment variables (`STRONGROOM_VAULT`,
/// `STRONGROOM_PASSPHRASE_FILE`, ...): they locate or unlock the vault, so `run` does not
/// pass them on.
const OWN_ENV_PREFIX: &str = "STRONGROOM_";

/// `run`: the child's exit code (128+N when killed by signal N).
pub(crate) fn run(
    app: &mut App,
    namespace: &str,
    env: &RunEnv<'_>,
    command: &[OsString],
) -> Result<u8> {
    let Some((program, args)) = command.split_first() else {
        bail!("give the command to run after --");
    };
    let records = app.unlock_records()?;
    let vars = records.env_vars(namespace)?;
    crate::cmd_vault::finish_records(app, &records)?;
    drop(records);
    let refused = refused_env(vars.iter().map(|(n, _)| n.as_str()), env.allow_override);
    if !refused.is_empty() {
        bail!(
            "{namespace} holds secrets named {}: these environment variables change how programs start (a secret there could run code in the command); the command was not started. Rename them, or pass --allow-env-override NAME for each one you mean to set",
            refused.join(", ")
        );
    }
    let mut child = std::process::Command::new(program);
    child.args(args);
    // The vault's key stays with strongroom: the command gets the secrets, not the key that
    // opens every secret. Removed first, so a secret of the same name still reaches it.
    if let Some(var) = app
        .keyholder
        .kek_env
        .as_deref()
        .filter(|_| !env.keep_kek_env)
    {
        tracing::debug!(
            var,
            "removing the --kek-env variable from the command's environment"
        );
        child.env_remove(var);
    }
    // Nor what locates or unlocks it: a command meant to see one namespace must not be able
    // to open the whole vault with strongroom's own settings.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(OWN_ENV_PREFIX) && !env.keep.iter().any(|k| k == name) {
            tracing::debug!(
                var = name,
                "removing strongroom's variable from the command's environment"
            );
            child.env_remove(name);
        }
    }
    for (name, value) in &vars {
        let bytes = value.expose_secret();
        if bytes.contains(&0) {
            bail!(
                "the value of {name} contains a NUL byte and cannot be an environment variable; the command was not started"
            );
        }
        #[cfg(unix)]
        let v = {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(bytes).to_owned()
        };
        #[cfg(not(unix))]
        let v = OsString::from(String::from_utf8_lossy(bytes).into_owned());
        child.env(name, v);
    }
    tracing::info!(
        count = vars.len(),
        namespace,
        "starting the command with secrets in its environment"
    );
    drop(vars);
    let status = child
        .status()
        .with_context(|| format!("cannot start {}", program.to_string_lossy()))?;
    if let Some(code) = status.code() {
        return Ok(u8::try_from(code & 0xff).unwrap_or(1));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ok(u8::try_from(128 + (sig & 0x7f)).unwrap_or(1));
        }
    }
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_checked_without_being_echoed() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        assert!(check_recipients(std::slice::from_ref(&public)).is_ok());
        assert!(check_recipients(&[]).is_ok());
        {
            use secrecy::ExposeSecret;
            let secret = identity.to_string().expose_secret().to_owned();
            for given in [
                secret.clone(),
                secret.to_lowercase(),
                format!(" {secret}\n"),
            ] {
                let err = check_recipients(&[public.clone(), given.clone()])
                    .unwrap_err()
                    .to_string();
                assert!(
                    err.contains("#2: this is an age identity (a secret key), not a recipient"),
                    "{err}"
                );
                assert!(!err.contains(given.trim()), "{err}");
            }
        }
        let err = check_recipients(&["age1nope-not-a-key".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("#1 is not a valid age recipient"), "{err}");
        assert!(!err.contains("age1nope"), "{err}");
    }

    #[test]
    fn dangerous_environment_names() {
        for n in [
            "PATH",
            "path",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "ld_audit",
            "DYLD_INSERT_LIBRARIES",
            "BASH_ENV",
            "ENV",
            "SHELLOPTS",
            "BASHOPTS",
            "PS4",
            "IFS",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5LIB",
            "PERL5OPT",
            "NODE_OPTIONS",
            "RUBYOPT",
            "GIT_SSH_COMMAND",
        ] {
            assert!(is_dangerous_env(n), "{n}");
        }
        for n in [
            "DB_PASSWORD",
            "PATHS",
            "ENVIRONMENT",
            "LD",
            "MY_PATH",
            "OLD_PRELOAD",
        ] {
            assert!(!is_dangerous_env(n), "{n}");
        }
    }

    #[test]
    fn refused_names_are_sorted_and_exclude_allowed_ones() {
        let names = ["TOKEN", "PATH", "LD_PRELOAD", "IFS"];
        assert_eq!(refused_env(names, &[]), ["IFS", "LD_PRELOAD", "PATH"]);
        assert_eq!(
            refused_env(names, &["ld_preload".to_owned(), "IFS".to_owned()]),
            ["PATH"]
        );
        assert!(refused_env(["TOKEN"], &[]).is_empty());
    }
}
