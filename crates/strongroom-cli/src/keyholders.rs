//! Building keyholders from the command line: the one that unlocks (or creates) the vault,
//! and new ones to add or rotate to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use secrecy::SecretString;
use strongroom::recovery::{
    Keyholder, KeyholderError, PassphraseKeyholder, Profile, RawKek, RecoveryKey, calibrate,
};
use strongroom_keyring::{KeyringEntry, KeyringKeyholder};
use strongroom_kms::{AwsCredentials, KmsConfig, KmsKeyholder};
use strongroom_pkcs11::{Pkcs11Config, Pkcs11Keyholder, Pkcs11Mechanism};
use strongroom_secret_service::{SecretServiceEntry, SecretServiceKeyholder, SecretServiceOptions};
use strongroom_transit::{TransitAuth, TransitConfig, TransitKeyholder};

use crate::cli::{KeyholderArgs, NewKeyholderArgs};
use crate::input;

/// A keyholder with what the CLI knows about it.
pub(crate) struct Held {
    kh: Box<dyn Keyholder>,
    /// Its stanza id, when it can be known before wrapping (recovery key, KEK, keyring, HSM).
    pub(crate) id: Option<[u8; 8]>,
    /// The keyring entry, for a keyring keyholder.
    pub(crate) keyring: Option<KeyringEntry>,
    /// The Secret Service item (and how to reach it), for a Secret Service keyholder.
    pub(crate) secret_service: Option<(SecretServiceEntry, SecretServiceOptions)>,
    /// A generated recovery key, to print once.
    pub(crate) recovery: Option<RecoveryText>,
}

/// The printable forms of a generated recovery key.
pub(crate) struct RecoveryText {
    pub(crate) id: strongroom::recovery::RecoveryKeyId,
    pub(crate) text: SecretString,
    pub(crate) words: SecretString,
}

impl RecoveryText {
    pub(crate) fn of(rk: &RecoveryKey) -> Self {
        Self {
            id: rk.key_id(),
            text: rk.to_text(),
            words: rk.to_words(),
        }
    }
}

/// A recovery key read from the user, as a keyholder.
pub(crate) fn held_recovery_key(rk: RecoveryKey) -> Held {
    let id = rk.stanza_id();
    Held::new(rk, Some(id))
}

/// A freshly generated recovery key as a keyholder, with its printable forms.
pub(crate) fn generated_recovery_key() -> Result<Held> {
    let rk = RecoveryKey::generate().context("cannot generate a recovery key")?;
    let id = rk.stanza_id();
    let text = RecoveryText::of(&rk);
    let mut held = Held::new(rk, Some(id));
    held.recovery = Some(text);
    Ok(held)
}

impl Held {
    fn new(kh: impl Keyholder + 'static, id: Option<[u8; 8]>) -> Self {
        Self {
            kh: Box::new(kh),
            id,
            keyring: None,
            secret_service: None,
            recovery: None,
        }
    }

    pub(crate) fn keyholder(&self) -> &dyn Keyholder {
        &*self.kh
    }

    pub(crate) fn describe(&self) -> String {
        self.kh.describe()
    }
}

/// What the keyholder is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Open an existing vault or identity file.
    Unlock,
    /// Create a vault or identity: a passphrase is prompted twice, a keyring entry or HSM
    /// key is created when missing.
    Create,
    /// Add a keyholder (or rotate to it): like `Create`, and a recovery key is generated.
    Add,
}

/// Parses `--profile`.
pub(crate) fn profile(text: &str) -> Result<Profile> {
    match text {
        "default" => Ok(Profile::Default),
        "constrained" => Ok(Profile::Constrained),
        other => {
            let Some(ms) = other.strip_prefix("calibrate:") else {
                bail!(
                    "--profile must be default, constrained or calibrate:<milliseconds>, not {other:?}"
                );
            };
            let ms: u64 = ms
                .parse()
                .ok()
                .filter(|m| (50..=60_000).contains(m))
                .context("calibrate:<ms> takes a number of milliseconds from 50 to 60000")?;
            eprintln!("calibrating Argon2id for about {ms} ms per unlock on this machine…");
            let params = calibrate(Duration::from_millis(ms));
            eprintln!("calibrated: {params}");
            Ok(Profile::Custom(params))
        }
    }
}

const HINT: &str = "pass --passphrase-file, --passphrase-stdin, --recovery-key-file, --kek-file, --kek-env, --keyring, --pkcs11-token/--pkcs11-key or --keyholder SPEC (e.g. secret-service:entry=SERVICE/ENTRY)";

/// Where a secret the CLI reads comes from: never the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A prompt (no echo).
    Prompt,
    /// Standard input.
    Stdin,
    /// A file.
    File(PathBuf),
    /// The environment variable with this name.
    Env(String),
}

/// One description of a keyholder, whatever flag it came from: the unlocking keyholder
/// (`--keyholder SPEC` or the per-kind flags) and a new one (`--new-keyholder SPEC` or the
/// `--new-…` flags) are both built from it by [`build`].
#[derive(Clone, Debug)]
pub(crate) enum Spec {
    /// `passphrase[:file=PATH|stdin]`
    Passphrase(Source),
    /// `recovery-key[:file=PATH|stdin]`; for a new keyholder, a generated key.
    RecoveryKey(Source),
    /// `raw-kek:file=PATH[,allow-world-readable]` or `raw-kek:env=VAR`
    RawKek {
        source: Source,
        allow_world_readable: bool,
        /// The option it came from, for messages.
        flag: &'static str,
    },
    /// `os-keyring:SERVICE/ENTRY`; empty for a new keyholder: the next generation. With the
    /// option it came from, for messages.
    Keyring(String, &'static str),
    /// `pkcs11:token=LABEL,key=LABEL[,module=PATH][,pin-file=PATH][,mechanism=aes-gcm|rsa-oaep]`
    /// (the mechanism of a key to create; an existing key's type says its own)
    Pkcs11 {
        token: String,
        key: String,
        module: Option<PathBuf>,
        pin_file: Option<PathBuf>,
        mechanism: Pkcs11Mechanism,
    },
    /// `transit:addr=URL,key=NAME[,mount=PATH][,namespace=NS][,ca-file=PATH]
    /// [,token-file=PATH|token-env=VAR|approle-role-id-file=PATH,approle-secret-id-file=PATH
    /// [,approle-mount=PATH]][,timeout=SECONDS]`
    Transit(Box<TransitSpec>),
    /// `aws-kms:key=ID|ARN|alias/NAME[,region=R][,endpoint=URL][,profile=P][,ca-file=PATH]
    /// [,timeout=SECONDS]`; credentials from the standard chain (environment, shared files).
    AwsKms(Box<KmsSpec>),
    /// `secret-service:entry=SERVICE/ENTRY[,collection=ALIAS][,prompt-timeout=SECONDS]`
    SecretService {
        entry: SecretServiceEntry,
        prompt_timeout: u64,
    },
}

/// The `aws-kms:` description.
#[derive(Clone, Debug, Default)]
pub(crate) struct KmsSpec {
    key: String,
    region: Option<String>,
    endpoint: Option<String>,
    profile: Option<String>,
    ca_file: Option<PathBuf>,
    timeout: Option<u64>,
}

/// The `transit:` description.
#[derive(Clone, Debug, Default)]
pub(crate) struct TransitSpec {
    addr: String,
    key: String,
    mount: Option<String>,
    namespace: Option<String>,
    ca_file: Option<PathBuf>,
    token: Option<Source>,
    role_id_file: Option<PathBuf>,
    secret_id_file: Option<PathBuf>,
    approle_mount: Option<String>,
    timeout: Option<u64>,
}

/// The kinds `--keyholder` and `--new-keyholder` take, for help and errors.
pub(crate) const SPEC_HELP: &str = "passphrase[:file=PATH|stdin], recovery-key[:file=PATH|stdin], raw-kek:file=PATH|env=VAR, os-keyring:SERVICE/ENTRY, pkcs11:token=LABEL,key=LABEL[,module=PATH,pin-file=PATH,mechanism=aes-gcm|rsa-oaep], transit:addr=URL,key=NAME[,mount=PATH,namespace=NS,ca-file=PATH,token-file=PATH|token-env=VAR|approle-role-id-file=PATH,approle-secret-id-file=PATH,approle-mount=PATH,timeout=SECONDS], aws-kms:key=ID|ARN|alias/NAME[,region=R,endpoint=URL,profile=P,ca-file=PATH,timeout=SECONDS], secret-service:entry=SERVICE/ENTRY[,collection=ALIAS,prompt-timeout=SECONDS]";

/// Parses a keyholder description `KIND[:OPTIONS]`. Secrets are never part of it: a
/// token, PIN or key is named by a file or an environment variable.
pub(crate) fn parse_spec(text: &str) -> Result<Spec> {
    let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
    let mut opts: Vec<(&str, &str)> = Vec::new();
    if !rest.is_empty() && kind != "os-keyring" {
        for part in rest.split(',') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if opts.iter().any(|(seen, _)| *seen == k) {
                bail!("{kind}: option {k} is given twice");
            }
            opts.push((k.trim(), v.trim()));
        }
    }
    let mut take = |name: &str| -> Option<String> {
        opts.iter()
            .position(|(k, _)| *k == name)
            .map(|i| opts.remove(i).1.to_owned())
    };
    let source = |take: &mut dyn FnMut(&str) -> Option<String>| -> Result<Source> {
        let file = take("file");
        let stdin = take("stdin").is_some();
        let env = take("env");
        Ok(match (file, stdin, env) {
            (Some(f), false, None) if !f.is_empty() => Source::File(f.into()),
            (None, true, None) => Source::Stdin,
            (None, false, Some(v)) if !v.is_empty() => Source::Env(v),
            (None, false, None) => Source::Prompt,
            _ => bail!("{kind}: give one of file=PATH, stdin or env=VAR"),
        })
    };
    let spec = match kind {
        "passphrase" => Spec::Passphrase(source(&mut take)?),
        "recovery-key" => Spec::RecoveryKey(source(&mut take)?),
        "raw-kek" => {
            let allow_world_readable = take("allow-world-readable").is_some();
            let source = source(&mut take)?;
            if !matches!(source, Source::File(_) | Source::Env(_)) {
                bail!("raw-kek: give file=PATH or env=VAR (the variable's NAME)");
            }
            Spec::RawKek {
                source,
                allow_world_readable,
                flag: "raw-kek:env",
            }
        }
        "os-keyring" => Spec::Keyring(rest.to_owned(), "os-keyring"),
        "pkcs11" => Spec::Pkcs11 {
            token: take("token").context("pkcs11: token=LABEL is required")?,
            key: take("key").context("pkcs11: key=LABEL is required")?,
            module: take("module").map(Into::into),
            pin_file: take("pin-file").map(Into::into),
            mechanism: match take("mechanism").as_deref() {
                None | Some("aes-gcm") => Pkcs11Mechanism::AesGcm,
                Some("rsa-oaep") => Pkcs11Mechanism::RsaOaep,
                Some(other) => bail!(
                    "pkcs11: mechanism is aes-gcm (HSMs, SoftHSM2) or rsa-oaep (a TPM 2.0), not {other:?}"
                ),
            },
        },
        "transit" => {
            for secret in ["token", "secret-id", "role-id", "approle-secret-id"] {
                if take(secret).is_some() {
                    bail!(
                        "transit: {secret}= would put a credential on the command line: use token-file=PATH, token-env=VAR or approle-role-id-file=PATH,approle-secret-id-file=PATH"
                    );
                }
            }
            let token = match (take("token-file"), take("token-env")) {
                (Some(f), None) => Some(Source::File(f.into())),
                (None, Some(v)) => Some(Source::Env(v)),
                (None, None) => None,
                _ => bail!("transit: give token-file or token-env, not both"),
            };
            let t = TransitSpec {
                addr: take("addr").context("transit: addr=URL is required")?,
                key: take("key").context("transit: key=NAME is required")?,
                mount: take("mount"),
                namespace: take("namespace"),
                ca_file: take("ca-file").map(Into::into),
                token,
                role_id_file: take("approle-role-id-file").map(Into::into),
                secret_id_file: take("approle-secret-id-file").map(Into::into),
                approle_mount: take("approle-mount"),
                timeout: take("timeout")
                    .map(|t| t.parse().context("transit: timeout is a number of seconds"))
                    .transpose()?,
            };
            let approle = t.role_id_file.is_some() || t.secret_id_file.is_some();
            if approle && (t.role_id_file.is_none() || t.secret_id_file.is_none()) {
                bail!("transit: AppRole needs approle-role-id-file and approle-secret-id-file");
            }
            if approle == t.token.is_some() {
                bail!(
                    "transit: authenticate with token-file=PATH, token-env=VAR or approle-role-id-file=PATH,approle-secret-id-file=PATH (one of them)"
                );
            }
            Spec::Transit(Box::new(t))
        }
        "aws-kms" => {
            for secret in [
                "secret-access-key",
                "aws_secret_access_key",
                "session-token",
            ] {
                if take(secret).is_some() {
                    bail!(
                        "aws-kms: {secret}= would put a credential on the command line: credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or the shared credentials file (profile=NAME)"
                    );
                }
            }
            Spec::AwsKms(Box::new(KmsSpec {
                key: take("key").context("aws-kms: key=ID|ARN|alias/NAME is required")?,
                region: take("region"),
                endpoint: take("endpoint"),
                profile: take("profile"),
                ca_file: take("ca-file").map(Into::into),
                timeout: take("timeout")
                    .map(|t| t.parse().context("aws-kms: timeout is a number of seconds"))
                    .transpose()?,
            }))
        }
        "secret-service" => {
            let text = take("entry").context(
                "secret-service: entry=SERVICE/ENTRY is required (e.g. entry=strongroom/vault-1)",
            )?;
            let Some((service, entry)) = text.split_once('/') else {
                bail!("secret-service: entry takes SERVICE/ENTRY, e.g. strongroom/vault-1");
            };
            let collection = take("collection")
                .unwrap_or_else(|| strongroom_secret_service::DEFAULT_COLLECTION.to_owned());
            let entry = SecretServiceEntry::in_collection(&collection, service, entry)
                .context("secret-service: invalid collection or entry name")?;
            let prompt_timeout = take("prompt-timeout")
                .map(|t| {
                    t.parse::<u64>()
                        .ok()
                        .filter(|t| *t <= 600)
                        .context("secret-service: prompt-timeout is a number of seconds, 0 to 600")
                })
                .transpose()?
                .unwrap_or(0);
            Spec::SecretService {
                entry,
                prompt_timeout,
            }
        }
        other => bail!("unknown keyholder kind {other:?}: one of {SPEC_HELP}"),
    };
    if let Some((k, _)) = opts.first() {
        bail!("{kind}: unknown option {k:?} (options: {SPEC_HELP})");
    }
    Ok(spec)
}

/// The unlocking keyholder's description from the global options, `None` for the default
/// (a passphrase from `STRONGROOM_PASSPHRASE_FILE` or a prompt).
fn spec_of(args: &KeyholderArgs) -> Result<Option<Spec>> {
    let mut chosen = Vec::new();
    let mut spec = None;
    let mut pick = |flag: &'static str, s: Spec| {
        chosen.push(flag);
        spec = Some(s);
    };
    if let Some(text) = &args.keyholder {
        pick("--keyholder", parse_spec(text)?);
    }
    if let Some(p) = &args.passphrase_file {
        pick(
            "--passphrase-file",
            Spec::Passphrase(Source::File(p.clone())),
        );
    }
    if args.passphrase_stdin {
        pick("--passphrase-stdin", Spec::Passphrase(Source::Stdin));
    }
    if args.recovery_key {
        pick("--recovery-key", Spec::RecoveryKey(Source::Prompt));
    }
    if let Some(p) = &args.recovery_key_file {
        pick(
            "--recovery-key-file",
            Spec::RecoveryKey(Source::File(p.clone())),
        );
    }
    if args.recovery_key_stdin {
        pick("--recovery-key-stdin", Spec::RecoveryKey(Source::Stdin));
    }
    if let Some(p) = &args.kek_file {
        pick(
            "--kek-file",
            Spec::RawKek {
                source: Source::File(p.clone()),
                allow_world_readable: false,
                flag: "--kek-file",
            },
        );
    }
    if let Some(v) = &args.kek_env {
        pick(
            "--kek-env",
            Spec::RawKek {
                source: Source::Env(v.clone()),
                allow_world_readable: false,
                flag: "--kek-env",
            },
        );
    }
    if let Some(e) = &args.keyring {
        pick("--keyring", Spec::Keyring(e.clone(), "--keyring"));
    }
    if let (Some(token), Some(key)) = (&args.pkcs11_token, &args.pkcs11_key) {
        pick(
            "--pkcs11-token",
            Spec::Pkcs11 {
                token: token.clone(),
                key: key.clone(),
                module: args.pkcs11_module.clone(),
                pin_file: args.pkcs11_pin_file.clone(),
                mechanism: Pkcs11Mechanism::default(),
            },
        );
    }
    if chosen.len() > 1 {
        bail!("choose one keyholder: {} were all given", chosen.join(", "));
    }
    Ok(spec.map(|mut s| {
        if let Spec::RawKek {
            allow_world_readable,
            ..
        } = &mut s
        {
            *allow_world_readable |= args.allow_world_readable_kek;
        }
        if let Spec::Pkcs11 {
            module, pin_file, ..
        } = &mut s
        {
            if module.is_none() {
                module.clone_from(&args.pkcs11_module);
            }
            if pin_file.is_none() {
                pin_file.clone_from(&args.pkcs11_pin_file);
            }
        }
        s
    }))
}

/// The keyholder chosen by the global options.
pub(crate) fn from_args(args: &KeyholderArgs, profile: &Profile, mode: Mode) -> Result<Held> {
    let spec = spec_of(args)?.unwrap_or_else(|| {
        let default = std::env::var_os("STRONGROOM_PASSPHRASE_FILE")
            .filter(|v| !v.is_empty())
            .map_or(Source::Prompt, |f| Source::File(f.into()));
        Spec::Passphrase(default)
    });
    if mode == Mode::Create && matches!(spec, Spec::RecoveryKey(_)) {
        bail!(
            "a recovery key cannot create anything: it is generated for you (init prints one); choose a passphrase, KEK, keyring entry or HSM key"
        );
    }
    build(&spec, mode, profile, None)
}

/// The new keyholder named by `--new-keyholder` or the `--new-…` options. `current` is the
/// unlocking keyholder (for `--new-keyring` without a value).
pub(crate) fn new_from_args(
    args: &NewKeyholderArgs,
    unlock: &KeyholderArgs,
    current: Option<&Held>,
    profile: &Profile,
) -> Result<Held> {
    let mut chosen = Vec::new();
    let mut spec = None;
    let mut pick = |flag: &'static str, s: Spec| {
        chosen.push(flag);
        spec = Some(s);
    };
    if let Some(text) = &args.new_keyholder {
        pick("--new-keyholder", parse_spec(text)?);
    }
    if args.new_passphrase || args.new_passphrase_file.is_some() || args.new_passphrase_stdin {
        let source = if args.new_passphrase_stdin {
            Source::Stdin
        } else if let Some(p) = &args.new_passphrase_file {
            Source::File(p.clone())
        } else {
            Source::Prompt
        };
        pick("--new-passphrase", Spec::Passphrase(source));
    }
    if args.new_recovery_key {
        pick("--new-recovery-key", Spec::RecoveryKey(Source::Prompt));
    }
    if let Some(p) = &args.new_kek_file {
        pick(
            "--new-kek-file",
            Spec::RawKek {
                source: Source::File(p.clone()),
                allow_world_readable: unlock.allow_world_readable_kek,
                flag: "--new-kek-file",
            },
        );
    }
    if let Some(v) = &args.new_kek_env {
        pick(
            "--new-kek-env",
            Spec::RawKek {
                source: Source::Env(v.clone()),
                allow_world_readable: false,
                flag: "--new-kek-env",
            },
        );
    }
    if let Some(e) = &args.new_keyring {
        pick("--new-keyring", Spec::Keyring(e.clone(), "--new-keyring"));
    }
    if let (Some(token), Some(key)) = (&args.new_pkcs11_token, &args.new_pkcs11_key) {
        pick(
            "--new-pkcs11-token",
            Spec::Pkcs11 {
                token: token.clone(),
                key: key.clone(),
                module: args.new_pkcs11_module.clone(),
                pin_file: args
                    .new_pkcs11_pin_file
                    .clone()
                    .or_else(|| unlock.pkcs11_pin_file.clone()),
                mechanism: Pkcs11Mechanism::default(),
            },
        );
    }
    match chosen.len() {
        0 => bail!(
            "name the new keyholder: --new-keyholder SPEC, --new-passphrase, --new-recovery-key, --new-kek-file, --new-kek-env, --new-keyring or --new-pkcs11-token/--new-pkcs11-key"
        ),
        1 => {}
        _ => bail!(
            "choose one new keyholder: {} were all given",
            chosen.join(", ")
        ),
    }
    let spec = spec.context("no new keyholder")?;
    build(
        &spec,
        Mode::Add,
        profile,
        current.and_then(|c| c.keyring.as_ref()),
    )
}

/// Builds the keyholder a description names: to unlock (`Mode::Unlock`), or to create a
/// vault or add a keyholder (`Mode::Create`: a passphrase is asked twice, a recovery key is
/// generated, a keyring entry or HSM key is created when missing, a Transit key is checked).
/// `current` is the unlocking keyholder's keyring entry, for a new entry's next generation.
pub(crate) fn build(
    spec: &Spec,
    mode: Mode,
    profile: &Profile,
    current: Option<&KeyringEntry>,
) -> Result<Held> {
    // A keyholder to add is created like one to create a vault with; a new passphrase from
    // a file or stdin is checked like a typed one.
    let adding = mode == Mode::Add;
    let mode = if adding { Mode::Create } else { mode };
    match spec {
        Spec::Passphrase(source) => {
            let pass = match source {
                Source::Stdin => input::secret_from_stdin("passphrase")?,
                Source::File(path) => input::secret_from_file(path, "passphrase")?,
                Source::Env(_) => bail!("a passphrase is read from a file, stdin or a prompt"),
                Source::Prompt if mode == Mode::Create => {
                    let p = input::prompt_new("passphrase", HINT)?;
                    input::check_new_passphrase(&p);
                    p
                }
                Source::Prompt => input::prompt("passphrase", HINT)?,
            };
            if adding && *source != Source::Prompt {
                input::check_new_passphrase(&pass);
            }
            passphrase_keyholder(&pass, profile)
        }
        Spec::RecoveryKey(source) => {
            if adding {
                if *source != Source::Prompt {
                    bail!(
                        "a recovery key cannot be chosen: it is generated for you (init and --new-recovery-key print one)"
                    );
                }
                return generated_recovery_key();
            }
            recovery_key_from(source).map(held_recovery_key)
        }
        Spec::RawKek {
            source,
            allow_world_readable,
            flag,
        } => match source {
            Source::File(path) => Ok(kek_keyholder(kek_from_file(path, *allow_world_readable)?)),
            Source::Env(var) => Ok(kek_keyholder(kek_from_env(var, flag)?)),
            _ => bail!("a raw KEK is read from a file or an environment variable"),
        },
        Spec::Keyring(text, flag) => {
            let entry = if text.is_empty() {
                let Some(old) = current else {
                    bail!(
                        "--new-keyring without a value rotates the --keyring entry to its next generation: unlock with --keyring SERVICE/ENTRY, or name the new entry"
                    );
                };
                old.next_generation()
            } else {
                keyring_entry(text, flag)?
            };
            keyring_keyholder(&entry, mode)
        }
        Spec::Pkcs11 {
            token,
            key,
            module,
            pin_file,
            mechanism,
        } => {
            let pin = pkcs11_pin(pin_file.as_deref(), token)?;
            pkcs11_keyholder(token, key, module.as_deref(), pin, *mechanism, mode)
        }
        Spec::Transit(t) => transit_keyholder(t, mode),
        Spec::AwsKms(k) => kms_keyholder(k, mode),
        Spec::SecretService {
            entry,
            prompt_timeout,
        } => secret_service_keyholder(entry, *prompt_timeout, mode),
    }
}

/// Opens (or, to create, opens or creates) a Secret Service item.
fn secret_service_keyholder(
    entry: &SecretServiceEntry,
    prompt_timeout: u64,
    mode: Mode,
) -> Result<Held> {
    let options =
        SecretServiceOptions::default().with_prompt_timeout(Duration::from_secs(prompt_timeout));
    let kh = match mode {
        Mode::Unlock => SecretServiceKeyholder::open(entry, &options),
        Mode::Create | Mode::Add => {
            SecretServiceKeyholder::open_or_create(entry, &options).map(|(kh, created)| {
                if created {
                    eprintln!("created the Secret Service item {entry}");
                }
                kh
            })
        }
    }
    .with_context(|| format!("Secret Service item {entry}"))?;
    let id = *kh.key_id().as_bytes();
    let mut held = Held::new(kh, Some(id));
    held.secret_service = Some((entry.clone(), options));
    Ok(held)
}

fn kms_keyholder(k: &KmsSpec, mode: Mode) -> Result<Held> {
    let profile = k.profile.clone();
    let env = move |name: &str| {
        if name == "AWS_PROFILE"
            && let Some(p) = &profile
        {
            return Some(p.clone());
        }
        std::env::var(name).ok()
    };
    let (credentials, chain_region) = AwsCredentials::from_chain(&env)?;
    let region = k
        .region
        .clone()
        .or(chain_region)
        .or_else(|| k.key.starts_with("arn:").then(String::new))
        .context("aws-kms: no region: add region=NAME, or set AWS_REGION")?;
    let mut config = KmsConfig::new(&k.key, &region, credentials);
    if let Some(e) = &k.endpoint {
        config = config.with_endpoint(e);
    }
    if let Some(ca) = &k.ca_file {
        let pem = std::fs::read(ca)
            .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
        config = config.with_ca_pem(pem);
    }
    if let Some(secs) = k.timeout {
        config = config.with_timeout(Duration::from_secs(secs.clamp(1, 600)));
    }
    let kh = match mode {
        Mode::Unlock => KmsKeyholder::new(config),
        Mode::Create | Mode::Add => KmsKeyholder::connect(config),
    }
    .with_context(|| format!("KMS key {}", k.key))?;
    let id = if mode == Mode::Unlock && !k.key.starts_with("arn:") {
        // An alias is resolved at the first unwrap; the id is not needed before.
        None
    } else {
        Some(kh.stanza_id()?)
    };
    Ok(Held::new(kh, id))
}

fn transit_keyholder(t: &TransitSpec, mode: Mode) -> Result<Held> {
    let read =
        |path: &Path, what: &str| -> Result<SecretString> { input::secret_from_file(path, what) };
    let auth = match (&t.token, &t.role_id_file, &t.secret_id_file) {
        (Some(Source::File(p)), _, _) => TransitAuth::Token(read(p, "Transit token")?),
        (Some(Source::Env(var)), _, _) => {
            let value = std::env::var(var)
                .map_err(|_| anyhow::anyhow!("the environment variable {var} is not set"))?;
            TransitAuth::Token(SecretString::from(value.trim().to_owned()))
        }
        (_, Some(role), Some(secret)) => TransitAuth::AppRole {
            mount: t
                .approle_mount
                .clone()
                .unwrap_or_else(|| "approle".to_owned()),
            role_id: read(role, "AppRole role id")?,
            secret_id: read(secret, "AppRole secret id")?,
        },
        _ => bail!("transit: no credential given"),
    };
    let mut config = TransitConfig::new(&t.addr, &t.key, auth);
    if let Some(m) = &t.mount {
        config = config.with_mount(m);
    }
    if let Some(ns) = &t.namespace {
        config = config.with_namespace(ns);
    }
    if let Some(ca) = &t.ca_file {
        config = config.with_ca_file(ca)?;
    }
    if let Some(secs) = t.timeout {
        config = config.with_timeout(Duration::from_secs(secs.clamp(1, 600)));
    }
    let kh = match mode {
        // Unlocking needs no extra round trip: the decrypt is the check.
        Mode::Unlock => TransitKeyholder::new(config),
        Mode::Create | Mode::Add => TransitKeyholder::connect(config),
    }
    .with_context(|| format!("Transit key {} at {}", t.key, t.addr))?;
    let id = kh.stanza_id();
    Ok(Held::new(kh, Some(id)))
}

fn passphrase_keyholder(pass: &SecretString, profile: &Profile) -> Result<Held> {
    let kh =
        PassphraseKeyholder::new(pass, *profile).context("cannot use this passphrase profile")?;
    Ok(Held::new(kh, None))
}

/// Reads the recovery key chosen by the global options (file, stdin or prompt).
pub(crate) fn recovery_key(args: &KeyholderArgs) -> Result<RecoveryKey> {
    let source = match spec_of(args)? {
        Some(Spec::RecoveryKey(source)) => source,
        _ => Source::Prompt,
    };
    recovery_key_from(&source)
}

fn recovery_key_from(source: &Source) -> Result<RecoveryKey> {
    let text = match source {
        Source::File(path) => {
            input::text(&input::file_bytes(path, "recovery key")?, "recovery key")?
        }
        Source::Stdin => input::text(&input::stdin_bytes("recovery key")?, "recovery key")?,
        Source::Env(_) => bail!("a recovery key is read from a file, stdin or a prompt"),
        Source::Prompt => input::prompt(
            "recovery key",
            "pass --recovery-key-file or --recovery-key-stdin",
        )?,
    };
    parse_recovery_key(&text)
}

fn parse_recovery_key(text: &SecretString) -> Result<RecoveryKey> {
    use secrecy::ExposeSecret;
    RecoveryKey::parse_any(text.expose_secret().trim()).context("cannot read the recovery key")
}

/// Loads a KEK file, refusing world-readable files unless allowed.
pub(crate) fn kek_from_file(path: &Path, allow_world_readable: bool) -> Result<RawKek> {
    let r = if allow_world_readable {
        RawKek::from_file_allow_world_readable(path)
    } else {
        RawKek::from_file(path)
    };
    r.map_err(|e| {
        if matches!(e, strongroom::recovery::LoadKekError::WorldReadable { .. }) {
            anyhow::anyhow!(
                "the key file {} is readable by every user: `chmod 600` it, or pass --allow-world-readable-kek if it is a read-only secret mount",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context("cannot load the key-encryption key")
        }
    })
}

/// Reads a KEK from the environment variable named `var`.
pub(crate) fn kek_from_env(var: &str, flag: &str) -> Result<RawKek> {
    let valid_name = !var.is_empty()
        && var.len() <= 128
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        // Never echo it: it may be the key itself, passed by mistake.
        bail!(
            "{flag} takes the NAME of an environment variable (like ENCRYPTION_KEY), not a key: the key is read from that variable"
        );
    }
    let value = zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
        anyhow::anyhow!("the environment variable {var} is not set (or not UTF-8)")
    })?);
    RawKek::from_text(&value).with_context(|| format!("cannot read the key in {var}"))
}

fn kek_keyholder(kek: RawKek) -> Held {
    let id = *kek.key_id().as_bytes();
    Held::new(kek, Some(id))
}

/// Parses `SERVICE/ENTRY`.
pub(crate) fn keyring_entry(spec: &str, flag: &str) -> Result<KeyringEntry> {
    let Some((service, entry)) = spec.split_once('/') else {
        bail!("{flag} takes SERVICE/ENTRY, e.g. strongroom/vault-1");
    };
    KeyringEntry::new(service, entry).with_context(|| format!("invalid {flag} entry"))
}

/// Opens (or, to create, opens or creates) a keyring entry.
pub(crate) fn keyring_keyholder(entry: &KeyringEntry, mode: Mode) -> Result<Held> {
    let kh = match mode {
        Mode::Unlock => KeyringKeyholder::open(&entry.service, &entry.entry),
        Mode::Create | Mode::Add => KeyringKeyholder::open_or_create(&entry.service, &entry.entry)
            .map(|(kh, created)| {
                if created {
                    eprintln!("created the OS keyring entry {entry}");
                }
                kh
            }),
    }
    .with_context(|| format!("OS keyring entry {entry}"))?;
    let id = *kh.key_id().as_bytes();
    let mut held = Held::new(kh, Some(id));
    held.keyring = Some(entry.clone());
    Ok(held)
}

fn pkcs11_pin(file: Option<&Path>, token: &str) -> Result<SecretString> {
    match file {
        Some(p) => input::secret_from_file(p, "PKCS#11 PIN"),
        None => input::prompt(
            &format!("user PIN of PKCS#11 token {token}"),
            "pass --pkcs11-pin-file (or STRONGROOM_PKCS11_PIN_FILE)",
        ),
    }
}

fn pkcs11_keyholder(
    token: &str,
    key: &str,
    module: Option<&Path>,
    pin: SecretString,
    mechanism: Pkcs11Mechanism,
    mode: Mode,
) -> Result<Held> {
    let config = |pin: SecretString| {
        let c = Pkcs11Config::new(token, key, pin).with_mechanism(mechanism);
        match module {
            Some(m) => c.with_module(m),
            None => c,
        }
    };
    let kh = match mode {
        Mode::Unlock => Pkcs11Keyholder::open(config(pin)),
        Mode::Create | Mode::Add => match Pkcs11Keyholder::create_key(config(pin.clone())) {
            Err(KeyholderError::AlreadyExists { .. }) => Pkcs11Keyholder::open(config(pin)),
            Ok(kh) => {
                eprintln!(
                    "created the {} key {key:?} in PKCS#11 token {token:?}",
                    match mechanism {
                        Pkcs11Mechanism::RsaOaep => "RSA",
                        _ => "AES",
                    }
                );
                Ok(kh)
            }
            Err(e) => Err(e),
        },
    }
    .with_context(|| format!("PKCS#11 token {token:?} key {key:?}"))?;
    let id = kh.stanza_id();
    Ok(Held::new(kh, Some(id)))
}

/// Parses a keyholder id (16 hex digits).
pub(crate) fn parse_id(text: &str) -> Result<[u8; 8]> {
    let mut id = [0u8; 8];
    hex::decode_to_slice(text.trim(), &mut id).map_err(|_| {
        anyhow::anyhow!(
            "a keyholder id is 16 hexadecimal digits (see `keyholder list`), not {text:?}"
        )
    })?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_ids() {
        assert_eq!(profile("default").unwrap(), Profile::Default);
        assert_eq!(profile("constrained").unwrap(), Profile::Constrained);
        assert!(profile("fast").is_err());
        assert!(profile("calibrate:abc").is_err());
        assert!(profile("calibrate:5").is_err());
        assert_eq!(
            parse_id("0102030405060708").unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert!(parse_id("0102").is_err());
    }

    #[test]
    fn one_description_per_kind() {
        assert!(matches!(
            parse_spec("passphrase:file=/p").unwrap(),
            Spec::Passphrase(Source::File(p)) if p == Path::new("/p")
        ));
        assert!(matches!(
            parse_spec("passphrase").unwrap(),
            Spec::Passphrase(Source::Prompt)
        ));
        assert!(matches!(
            parse_spec("recovery-key:stdin").unwrap(),
            Spec::RecoveryKey(Source::Stdin)
        ));
        assert!(matches!(
            parse_spec("raw-kek:env=ENCRYPTION_KEY").unwrap(),
            Spec::RawKek { source: Source::Env(v), .. } if v == "ENCRYPTION_KEY"
        ));
        assert!(parse_spec("raw-kek").is_err());
        assert!(matches!(
            parse_spec("os-keyring:strongroom/vault-1").unwrap(),
            Spec::Keyring(e, _) if e == "strongroom/vault-1"
        ));
        assert!(matches!(
            parse_spec("pkcs11:token=t,key=k,pin-file=/pin").unwrap(),
            Spec::Pkcs11 { token, key, pin_file: Some(_), module: None, mechanism: Pkcs11Mechanism::AesGcm } if token == "t" && key == "k"
        ));
        assert!(matches!(
            parse_spec("pkcs11:token=tpm,key=k,module=/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so,mechanism=rsa-oaep").unwrap(),
            Spec::Pkcs11 { mechanism: Pkcs11Mechanism::RsaOaep, module: Some(_), .. }
        ));
        assert!(parse_spec("pkcs11:token=t,key=k,mechanism=des").is_err());
        let Spec::Transit(t) = parse_spec(
            "transit:addr=https://bao:8200,key=k,mount=team/transit,namespace=ns,ca-file=/ca.pem,token-env=BAO_TOKEN,timeout=5",
        )
        .unwrap() else {
            panic!("transit");
        };
        assert_eq!(
            (
                t.addr.as_str(),
                t.key.as_str(),
                t.mount.as_deref(),
                t.timeout
            ),
            ("https://bao:8200", "k", Some("team/transit"), Some(5))
        );
        assert!(matches!(
            parse_spec(
                "transit:addr=https://b,key=k,approle-role-id-file=/r,approle-secret-id-file=/s"
            ),
            Ok(Spec::Transit(_))
        ));
        for bad in [
            "transit:addr=https://b,key=k",
            "transit:addr=https://b,key=k,token=hvs.secret",
            "transit:addr=https://b,key=k,token-file=/t,approle-role-id-file=/r,approle-secret-id-file=/s",
            "transit:addr=https://b,key=k,approle-role-id-file=/r,token-file=/t",
            "transit:key=k,token-file=/t",
            "transit:addr=https://b,key=k,token-file=/t,colour=blue",
            "transit:addr=https://b,key=k,token-file=/t,token-file=/u",
            "kms:key=x",
            "aws-kms:region=us-east-1",
            "aws-kms:key=alias/x,secret-access-key=abc",
        ] {
            let err = parse_spec(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} parsed"));
            assert!(!format!("{err:#}").contains("hvs.secret"), "{err:#}");
        }
    }

    #[test]
    fn secret_service_description() {
        let Spec::SecretService {
            entry,
            prompt_timeout,
        } = parse_spec(
            "secret-service:entry=strongroom/vault-1,collection=login,prompt-timeout=30",
        )
        .unwrap()
        else {
            panic!("secret-service");
        };
        assert_eq!(entry.to_string(), "login:strongroom/vault-1");
        assert_eq!(prompt_timeout, 30);
        let Spec::SecretService {
            entry,
            prompt_timeout,
        } = parse_spec("secret-service:entry=s/e").unwrap()
        else {
            panic!("secret-service");
        };
        assert_eq!((entry.collection.as_str(), prompt_timeout), ("default", 0));
        for bad in [
            "secret-service",
            "secret-service:entry=no-slash",
            "secret-service:entry=s/e,prompt-timeout=forever",
            "secret-service:entry=s/e,prompt-timeout=100000",
            "secret-service:entry=s/e,colour=blue",
        ] {
            assert!(parse_spec(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn aws_kms_description() {
        let Spec::AwsKms(k) = parse_spec(
            "aws-kms:key=alias/strongroom,region=eu-west-1,endpoint=http://127.0.0.1:5000,profile=ops",
        )
        .unwrap() else {
            panic!("aws-kms");
        };
        assert_eq!(
            (
                k.key.as_str(),
                k.region.as_deref(),
                k.endpoint.as_deref(),
                k.profile.as_deref()
            ),
            (
                "alias/strongroom",
                Some("eu-west-1"),
                Some("http://127.0.0.1:5000"),
                Some("ops")
            )
        );
    }

    #[test]
    fn kek_env_never_echoes_a_key_given_as_the_name() {
        let key = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng="; // pragma: allowlist secret
        let err = kek_from_env(key, "--kek-env").err().unwrap();
        assert!(!format!("{err:#}").contains(key), "{err:#}");
        let err = kek_from_env("STRONGROOM_TEST_SURELY_UNSET_VAR", "--kek-env")
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("is not set"), "{err:#}");
    }

    #[test]
    fn keyring_specs() {
        let e = keyring_entry("strongroom/vault-1", "--keyring").unwrap();
        assert_eq!(
            (e.service.as_str(), e.entry.as_str()),
            ("strongroom", "vault-1")
        );
        assert!(keyring_entry("no-slash", "--keyring").is_err());
    }
}
