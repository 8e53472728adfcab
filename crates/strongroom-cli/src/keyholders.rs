//! Building keyholders from the command line: the one that unlocks (or creates) the vault,
//! and new ones to add or rotate to.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use secrecy::SecretString;
use strongroom::recovery::{
    Keyholder, KeyholderError, PassphraseKeyholder, Profile, RawKek, RecoveryKey, calibrate,
};
use strongroom_keyring::{KeyringEntry, KeyringKeyholder};
use strongroom_pkcs11::{Pkcs11Config, Pkcs11Keyholder};

use crate::cli::{KeyholderArgs, NewKeyholderArgs};
use crate::input;

/// A keyholder with what the CLI knows about it.
pub(crate) struct Held {
    kh: Box<dyn Keyholder>,
    /// Its stanza id, when it can be known before wrapping (recovery key, KEK, keyring, HSM).
    pub(crate) id: Option<[u8; 8]>,
    /// The keyring entry, for a keyring keyholder.
    pub(crate) keyring: Option<KeyringEntry>,
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

const HINT: &str = "pass --passphrase-file, --passphrase-stdin, --recovery-key-file, --kek-file, --kek-env, --keyring or --pkcs11-token/--pkcs11-key";

/// The keyholder chosen by the global options.
pub(crate) fn from_args(args: &KeyholderArgs, profile: &Profile, mode: Mode) -> Result<Held> {
    let mut chosen = Vec::new();
    if args.passphrase_file.is_some() {
        chosen.push("--passphrase-file");
    }
    if args.passphrase_stdin {
        chosen.push("--passphrase-stdin");
    }
    if args.recovery_key {
        chosen.push("--recovery-key");
    }
    if args.recovery_key_file.is_some() {
        chosen.push("--recovery-key-file");
    }
    if args.recovery_key_stdin {
        chosen.push("--recovery-key-stdin");
    }
    if args.kek_file.is_some() {
        chosen.push("--kek-file");
    }
    if args.kek_env.is_some() {
        chosen.push("--kek-env");
    }
    if args.keyring.is_some() {
        chosen.push("--keyring");
    }
    if args.pkcs11_token.is_some() {
        chosen.push("--pkcs11-token");
    }
    if chosen.len() > 1 {
        bail!("choose one keyholder: {} were all given", chosen.join(", "));
    }
    let is_recovery =
        args.recovery_key || args.recovery_key_file.is_some() || args.recovery_key_stdin;
    if is_recovery && mode == Mode::Create {
        bail!(
            "a recovery key cannot create anything: it is generated for you (init prints one); choose a passphrase, KEK, keyring entry or HSM key"
        );
    }
    if is_recovery {
        return recovery_key(args).map(held_recovery_key);
    }
    if let Some(path) = &args.kek_file {
        return Ok(kek_keyholder(kek_from_file(
            path,
            args.allow_world_readable_kek,
        )?));
    }
    if let Some(var) = &args.kek_env {
        return Ok(kek_keyholder(kek_from_env(var, "--kek-env")?));
    }
    if let Some(spec) = &args.keyring {
        let entry = keyring_entry(spec, "--keyring")?;
        return keyring_keyholder(&entry, mode);
    }
    if let (Some(token), Some(key)) = (&args.pkcs11_token, &args.pkcs11_key) {
        let pin = pkcs11_pin(args.pkcs11_pin_file.as_deref(), token)?;
        return pkcs11_keyholder(token, key, args.pkcs11_module.as_deref(), pin, mode);
    }
    let pass = if args.passphrase_stdin {
        input::secret_from_stdin("passphrase")?
    } else if let Some(path) = args.passphrase_file.clone().or_else(|| {
        std::env::var_os("STRONGROOM_PASSPHRASE_FILE")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    }) {
        input::secret_from_file(&path, "passphrase")?
    } else if mode == Mode::Create {
        let p = input::prompt_new("passphrase", HINT)?;
        input::check_new_passphrase(&p);
        p
    } else {
        input::prompt("passphrase", HINT)?
    };
    passphrase_keyholder(&pass, profile)
}

fn passphrase_keyholder(pass: &SecretString, profile: &Profile) -> Result<Held> {
    let kh =
        PassphraseKeyholder::new(pass, *profile).context("cannot use this passphrase profile")?;
    Ok(Held::new(kh, None))
}

/// Reads the recovery key chosen by the global options (file, stdin or prompt).
pub(crate) fn recovery_key(args: &KeyholderArgs) -> Result<RecoveryKey> {
    let text = if let Some(path) = &args.recovery_key_file {
        input::text(&input::file_bytes(path, "recovery key")?, "recovery key")?
    } else if args.recovery_key_stdin {
        input::text(&input::stdin_bytes("recovery key")?, "recovery key")?
    } else {
        input::prompt(
            "recovery key",
            "pass --recovery-key-file or --recovery-key-stdin",
        )?
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
        Mode::Create => {
            KeyringKeyholder::open_or_create(&entry.service, &entry.entry).map(|(kh, created)| {
                if created {
                    eprintln!("created the OS keyring entry {entry}");
                }
                kh
            })
        }
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
    mode: Mode,
) -> Result<Held> {
    let config = |pin: SecretString| {
        let c = Pkcs11Config::new(token, key, pin);
        match module {
            Some(m) => c.with_module(m),
            None => c,
        }
    };
    let kh = match mode {
        Mode::Unlock => Pkcs11Keyholder::open(config(pin)),
        Mode::Create => match Pkcs11Keyholder::create_key(config(pin.clone())) {
            Err(KeyholderError::AlreadyExists { .. }) => Pkcs11Keyholder::open(config(pin)),
            Ok(kh) => {
                eprintln!("created the AES key {key:?} in PKCS#11 token {token:?}");
                Ok(kh)
            }
            Err(e) => Err(e),
        },
    }
    .with_context(|| format!("PKCS#11 token {token:?} key {key:?}"))?;
    let id = kh.stanza_id();
    Ok(Held::new(kh, Some(id)))
}

/// The new keyholder named by `--new-…` options. `current` is the unlocking keyholder
/// (for `--new-keyring` without a value).
pub(crate) fn new_from_args(
    args: &NewKeyholderArgs,
    unlock: &KeyholderArgs,
    current: Option<&Held>,
    profile: &Profile,
) -> Result<Held> {
    let mut chosen = Vec::new();
    if args.new_passphrase || args.new_passphrase_file.is_some() || args.new_passphrase_stdin {
        chosen.push("--new-passphrase");
    }
    if args.new_recovery_key {
        chosen.push("--new-recovery-key");
    }
    if args.new_kek_file.is_some() {
        chosen.push("--new-kek-file");
    }
    if args.new_kek_env.is_some() {
        chosen.push("--new-kek-env");
    }
    if args.new_keyring.is_some() {
        chosen.push("--new-keyring");
    }
    if args.new_pkcs11_token.is_some() {
        chosen.push("--new-pkcs11-token");
    }
    match chosen.len() {
        0 => bail!(
            "name the new keyholder: --new-passphrase, --new-recovery-key, --new-kek-file, --new-kek-env, --new-keyring or --new-pkcs11-token/--new-pkcs11-key"
        ),
        1 => {}
        _ => bail!(
            "choose one new keyholder: {} were all given",
            chosen.join(", ")
        ),
    }
    if args.new_recovery_key {
        return generated_recovery_key();
    }
    if let Some(path) = &args.new_kek_file {
        return Ok(kek_keyholder(kek_from_file(
            path,
            unlock.allow_world_readable_kek,
        )?));
    }
    if let Some(var) = &args.new_kek_env {
        return Ok(kek_keyholder(kek_from_env(var, "--new-kek-env")?));
    }
    if let Some(spec) = &args.new_keyring {
        let entry = if spec.is_empty() {
            let Some(old) = current.and_then(|c| c.keyring.as_ref()) else {
                bail!(
                    "--new-keyring without a value rotates the --keyring entry to its next generation: unlock with --keyring SERVICE/ENTRY, or name the new entry"
                );
            };
            old.next_generation()
        } else {
            keyring_entry(spec, "--new-keyring")?
        };
        return keyring_keyholder(&entry, Mode::Create);
    }
    if let (Some(token), Some(key)) = (&args.new_pkcs11_token, &args.new_pkcs11_key) {
        let pin_file = args
            .new_pkcs11_pin_file
            .as_deref()
            .or(unlock.pkcs11_pin_file.as_deref());
        let pin = pkcs11_pin(pin_file, token)?;
        return pkcs11_keyholder(
            token,
            key,
            args.new_pkcs11_module.as_deref(),
            pin,
            Mode::Create,
        );
    }
    let pass = if args.new_passphrase_stdin {
        input::secret_from_stdin("new passphrase")?
    } else if let Some(path) = &args.new_passphrase_file {
        input::secret_from_file(path, "new passphrase")?
    } else {
        input::prompt_new(
            "passphrase",
            "pass --new-passphrase-file or --new-passphrase-stdin",
        )?
    };
    input::check_new_passphrase(&pass);
    passphrase_keyholder(&pass, profile)
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
