//! The command line: global options, keyholder options and the command tree.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// strongroom: an encrypted vault for secrets (API tokens, database passwords, credentials).
///
/// Secrets are never read from the command line: values and passphrases come from a
/// prompt, standard input or a file. Exit codes: 0 success, 1 error, 2 usage error
/// (`doctor`: 0 healthy, 1 warnings, 2 failures; `run`: the child's exit code).
#[derive(Debug, Parser)]
#[command(
    name = "strongroom",
    version,
    after_help = "Examples:\n  strongroom init --profile constrained\n  printf %s 'hunter2' | strongroom put core/app DB_PASSWORD --stdin\n  strongroom get core/app DB_PASSWORD\n  strongroom demo"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(flatten)]
    pub(crate) keyholder: KeyholderArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes. `Debug` leaves out a PostgreSQL connection string (it may
/// carry a password).
#[derive(Args, Clone)]
pub(crate) struct Global {
    /// The vault: a SQLite file path or `sqlite:///abs/path`, or a PostgreSQL URL
    /// (`postgres://…`) or libpq string (`host=… dbname=…`). Default:
    /// `$XDG_DATA_HOME/strongroom/vault.sqlite` (`~/.local/share/strongroom/vault.sqlite`).
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_VAULT",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub(crate) vault: Option<String>,
    /// Where pins (the membership-log high-water marks that detect rollback) are kept,
    /// one file per vault. Default: `$XDG_STATE_HOME/strongroom` (`~/.local/state/strongroom`).
    #[arg(
        long,
        global = true,
        env = "STRONGROOM_STATE_DIR",
        value_name = "DIR",
        hide_env_values = true
    )]
    pub(crate) state_dir: Option<PathBuf>,
    /// The member to act as (name or id), when several members keep credentials in this vault.
    #[arg(long, global = true, value_name = "NAME|ID")]
    pub(crate) member: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More logging on stderr (-v info, -vv debug, -vvv trace). Logs never contain secret
    /// values; the database driver's stay at info (its debug logs carry SQL parameters).
    /// `RUST_LOG`, when set, replaces these levels (with a warning when it allows debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Argon2id cost for passphrases set by this command: `default` (m=64 MiB, t=3, p=4),
    /// `constrained` (m=19 MiB, t=2, p=1) or `calibrate:<ms>` (tuned to this machine).
    #[arg(long, global = true, value_name = "PROFILE", default_value = "default")]
    pub(crate) profile: String,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vault = self.vault.as_deref().map(|v| {
            crate::location::Location::parse(Some(v))
                .map_or_else(|_| "<invalid>".to_owned(), |l| format!("{l:?}"))
        });
        f.debug_struct("Global")
            .field("vault", &vault)
            .field("state_dir", &self.state_dir)
            .field("member", &self.member)
            .field("json", &self.json)
            .field("verbose", &self.verbose)
            .field("profile", &self.profile)
            .finish()
    }
}

/// The keyholder that unlocks the vault (or, for `init`, the one the vault is created with).
///
/// At most one may be given. Without any, `STRONGROOM_PASSPHRASE_FILE` is used when set,
/// otherwise the passphrase is prompted for when stdin is a terminal.
// Command-line flags are booleans by nature.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Keyholder (unlock)")]
pub(crate) struct KeyholderArgs {
    /// Read the passphrase from this file (a trailing newline is ignored) [env:
    /// STRONGROOM_PASSPHRASE_FILE].
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Read the passphrase from standard input.
    #[arg(long, global = true)]
    pub(crate) passphrase_stdin: bool,
    /// Unlock with the recovery key, typed at a prompt.
    #[arg(long, global = true)]
    pub(crate) recovery_key: bool,
    /// Unlock with the recovery key read from this file (text or 24-word form).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) recovery_key_file: Option<PathBuf>,
    /// Unlock with the recovery key read from standard input.
    #[arg(long, global = true)]
    pub(crate) recovery_key_stdin: bool,
    /// Unlock with a raw 32-byte key-encryption key kept in this file (hex or base64).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) kek_file: Option<PathBuf>,
    /// Unlock with a raw KEK held in this environment variable (give its NAME, e.g.
    /// ENCRYPTION_KEY; the value is read from the environment).
    #[arg(long, global = true, value_name = "VAR")]
    pub(crate) kek_env: Option<String>,
    /// Accept KEK files that every user can read (e.g. read-only container secret mounts).
    #[arg(long, global = true)]
    pub(crate) allow_world_readable_kek: bool,
    /// Unlock with a KEK kept in the OS keyring entry SERVICE/ENTRY.
    #[arg(long, global = true, value_name = "SERVICE/ENTRY")]
    pub(crate) keyring: Option<String>,
    /// Unlock with an AES key in the PKCS#11 token with this label.
    #[arg(long, global = true, value_name = "LABEL", requires = "pkcs11_key")]
    pub(crate) pkcs11_token: Option<String>,
    /// The label of the key in the PKCS#11 token.
    #[arg(long, global = true, value_name = "LABEL", requires = "pkcs11_token")]
    pub(crate) pkcs11_key: Option<String>,
    /// The PKCS#11 module (default: SoftHSM2 in the usual places).
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) pkcs11_module: Option<PathBuf>,
    /// Unlock with the keyholder this description names, `KIND[:OPTIONS]`: one syntax for
    /// every kind, the same as --new-keyholder. Kinds: `passphrase[:file=PATH|stdin]`,
    /// `recovery-key[:file=PATH|stdin]`, `raw-kek:file=PATH|env=VAR`,
    /// `os-keyring:SERVICE/ENTRY`,
    /// `pkcs11:token=LABEL,key=LABEL[,module=PATH,pin-file=PATH,mechanism=aes-gcm|rsa-oaep]`
    /// (rsa-oaep for a TPM 2.0 through tpm2-pkcs11),
    /// `transit:addr=URL,key=NAME[,mount=PATH,namespace=NS,ca-file=PATH,timeout=SECONDS]`
    /// with `token-file=PATH`, `token-env=VAR` or
    /// `approle-role-id-file=PATH,approle-secret-id-file=PATH[,approle-mount=PATH]`,
    /// `aws-kms:key=ID|ARN|alias/NAME[,region=R,endpoint=URL,profile=P,ca-file=PATH,timeout=SECONDS]`
    /// (AWS credentials from the environment or the shared credentials file),
    /// `secret-service:entry=SERVICE/ENTRY[,collection=ALIAS,prompt-timeout=SECONDS]` (GNOME
    /// Keyring, KWallet; a locked collection is an error unless a prompt is allowed).
    /// Credentials are named by a file or a variable, never given.
    #[arg(long, global = true, value_name = "SPEC")]
    pub(crate) keyholder: Option<String>,
    /// Read the token's user PIN from this file (otherwise it is prompted for).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "STRONGROOM_PKCS11_PIN_FILE",
        hide_env_values = true
    )]
    pub(crate) pkcs11_pin_file: Option<PathBuf>,
}

/// A keyholder to add (or to rotate to): every option names the NEW keyholder.
// The field names are the `--new-…` flags.
#[allow(clippy::struct_field_names)]
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "New keyholder")]
pub(crate) struct NewKeyholderArgs {
    /// The new keyholder as a description `KIND[:OPTIONS]`, the syntax of --keyholder (e.g.
    /// `transit:addr=https://bao:8200,key=strongroom,token-file=/run/secrets/bao-token` or
    /// `aws-kms:key=alias/strongroom,region=eu-west-1`).
    #[arg(long, value_name = "SPEC")]
    pub(crate) new_keyholder: Option<String>,
    /// A new passphrase (prompted twice unless --new-passphrase-file/--new-passphrase-stdin).
    #[arg(long)]
    pub(crate) new_passphrase: bool,
    /// Read the new passphrase from this file.
    #[arg(long, value_name = "PATH")]
    pub(crate) new_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from standard input.
    #[arg(long)]
    pub(crate) new_passphrase_stdin: bool,
    /// A new recovery key: generated here and printed once.
    #[arg(long)]
    pub(crate) new_recovery_key: bool,
    /// A raw KEK kept in this file (hex or base64; see `kek generate`).
    #[arg(long, value_name = "PATH")]
    pub(crate) new_kek_file: Option<PathBuf>,
    /// A raw KEK held in this environment variable (its NAME; the value is read from the
    /// environment).
    #[arg(long, value_name = "VAR")]
    pub(crate) new_kek_env: Option<String>,
    /// A KEK in the OS keyring entry SERVICE/ENTRY (created if missing). Without a value:
    /// the next generation of the `--keyring` entry (`vault` → `vault.g2`).
    #[arg(long, value_name = "SERVICE/ENTRY", num_args = 0..=1, default_missing_value = "")]
    pub(crate) new_keyring: Option<String>,
    /// An AES key in the PKCS#11 token with this label (the key is created if missing).
    #[arg(long, value_name = "LABEL", requires = "new_pkcs11_key")]
    pub(crate) new_pkcs11_token: Option<String>,
    /// The label of the new key in the PKCS#11 token.
    #[arg(long, value_name = "LABEL", requires = "new_pkcs11_token")]
    pub(crate) new_pkcs11_key: Option<String>,
    /// The PKCS#11 module of the new key (default: SoftHSM2).
    #[arg(long, value_name = "PATH")]
    pub(crate) new_pkcs11_module: Option<PathBuf>,
    /// Read the new token's user PIN from this file (otherwise --pkcs11-pin-file, or a prompt).
    #[arg(long, value_name = "PATH")]
    pub(crate) new_pkcs11_pin_file: Option<PathBuf>,
}

/// How `put` reads the value.
#[derive(Debug, Args, Clone)]
pub(crate) struct ValueSource {
    /// Read the value from standard input (one trailing newline is dropped unless --keep-newline).
    #[arg(long, conflicts_with = "from_file")]
    pub(crate) stdin: bool,
    /// Read the value from this file, byte for byte.
    #[arg(long, value_name = "PATH")]
    pub(crate) from_file: Option<PathBuf>,
    /// Keep the trailing newline of a value read from stdin.
    #[arg(long, requires = "stdin")]
    pub(crate) keep_newline: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SuiteArg {
    /// AES-256-GCM (fast with AES instructions).
    Aes,
    /// ChaCha20-Poly1305 (for CPUs without AES instructions).
    Chacha,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Owner,
    Admin,
    Member,
    ReadOnly,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    /// `NAME=value` lines (values quoted when needed).
    Dotenv,
    /// A JSON object `{"NAME": "value"}`.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a vault (with a recovery key printed once).
    #[command(
        after_help = "Examples:\n  strongroom init --name alice\n  strongroom init --kek-env ENCRYPTION_KEY --name billing-service\n  strongroom --vault postgres://vault@db/vault init --passphrase-file pw.txt"
    )]
    Init(InitArgs),
    /// Store a secret (the value comes from a prompt, stdin or a file; never the command line).
    #[command(
        after_help = "Examples:\n  strongroom put core/app DB_PASSWORD            (prompts, no echo)\n  printf %s \"$TOKEN\" | strongroom put core/app API_TOKEN --stdin\n  strongroom put core/tls KEY --from-file key.pem"
    )]
    Put {
        /// Namespace, e.g. `core/app` (ASCII letters, digits, `.`, `_`, `-`, separated by `/`).
        namespace: String,
        /// Secret name.
        name: String,
        #[command(flatten)]
        source: ValueSource,
    },
    /// Print a secret's value to stdout (nothing else goes to stdout).
    ///
    /// With --json, the metadata is printed and the value only with --show-value.
    #[command(
        after_help = "Examples:\n  strongroom get core/app DB_PASSWORD\n  strongroom get core/app DB_PASSWORD --version 1\n  strongroom get core/app DB_PASSWORD --json               (metadata only)\n  strongroom get core/app DB_PASSWORD --json --show-value"
    )]
    Get {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// An older version (see `history`).
        #[arg(long)]
        version: Option<u64>,
        /// With --json: include the value (`value`, or `value_base64` when it is not UTF-8).
        #[arg(long, requires = "json")]
        show_value: bool,
    },
    /// List the secrets of a namespace (names and metadata, no values).
    #[command(after_help = "Example:\n  strongroom list core/app --json")]
    List {
        /// Namespace.
        namespace: String,
    },
    /// Delete a secret (every version).
    #[command(after_help = "Example:\n  strongroom delete core/app OLD_TOKEN")]
    Delete {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// List the stored versions of a secret (no values).
    #[command(after_help = "Example:\n  strongroom history core/app DB_PASSWORD")]
    History {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
    },
    /// Rotate the vault key: new epoch, every data key rewrapped, old keys retired.
    ///
    /// Resumes an interrupted rotation. Online: other processes keep working.
    #[command(
        after_help = "Examples:\n  strongroom rotate --batch-size 5000\n  strongroom rotate --new-metadata-key"
    )]
    Rotate(RotateArgs),
    /// Deep re-encryption: fresh data keys and bodies for every record (after a suspected
    /// data-key exposure). Resumes an interrupted run.
    #[command(after_help = "Example:\n  strongroom reencrypt")]
    Reencrypt(RotateArgs),
    /// List record versions still under an older vault-key epoch (and those a rotation set
    /// aside because their data key does not open).
    #[command(after_help = "Example:\n  strongroom pending-rewrap --json")]
    PendingRewrap,
    /// Delete the record versions a rotation set aside because their data key does not
    /// open (planted by a former member, or damaged); each is checked again first.
    #[command(
        name = "purge-quarantined",
        after_help = "Example:\n  strongroom pending-rewrap && strongroom purge-quarantined"
    )]
    PurgeQuarantined,
    /// Show the vault's state: epochs, keyholders, members, counts, key age.
    #[command(after_help = "Example:\n  strongroom status --json")]
    Status,
    /// Check the vault's health. Exit code: 0 healthy, 1 warnings, 2 failures.
    #[command(after_help = "Examples:\n  strongroom doctor\n  strongroom doctor --full --json")]
    Doctor {
        /// Decrypt every secret (default: a sample of 100).
        #[arg(long)]
        full: bool,
    },
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The keyholders of the acting member (passphrase, recovery key, KEK, keyring, HSM).
    #[command(subcommand)]
    Keyholder(KeyholderCommand),
    /// Replace or check the recovery key.
    #[command(subcommand, name = "recovery-key")]
    RecoveryKey(RecoveryKeyCommand),
    /// Raw key-encryption keys.
    #[command(subcommand)]
    Kek(KekCommand),
    /// Member identities kept outside any vault.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Members of the vault.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Scopes: namespace prefixes with keys of their own, for scoped members (service
    /// accounts) that reach nothing else.
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// Who can recover the vault, and whether it has a single point of failure.
    #[command(after_help = "Example:\n  strongroom recoverability")]
    Recoverability,
    /// Write a consistent snapshot of the vault to FILE (encrypted as stored; 0600).
    #[command(after_help = "Example:\n  strongroom snapshot /backup/vault-$(date +%F).snap")]
    Snapshot {
        /// Snapshot file to create.
        file: PathBuf,
    },
    /// Check a snapshot: integrity hash, key references, every record decrypts.
    #[command(
        name = "verify-snapshot",
        after_help = "Example:\n  strongroom verify-snapshot /backup/vault.snap"
    )]
    VerifySnapshot {
        /// Snapshot file, or `-` for stdin (a FIFO works too).
        file: PathBuf,
    },
    /// Replace the vault with a verified snapshot.
    ///
    /// The snapshot is checked against the pins saved for its vault: another genesis signer
    /// or a forked membership log is refused, and so is a membership log older than the
    /// pinned one (it would undo membership changes, e.g. bring a removed member back)
    /// unless --allow-membership-rollback.
    #[command(after_help = "Example:\n  strongroom restore /backup/vault.snap")]
    Restore {
        /// Snapshot file, or `-` for stdin (a FIFO works too).
        file: PathBuf,
        #[command(flatten)]
        args: RestoreArgs,
    },
    /// Export secrets, encrypted to age recipients or a passphrase (readable by `age -d`).
    ///
    /// Exactly one target: --age-recipient (repeatable), --age-passphrase, or
    /// --plaintext-i-understand (a warning is printed). dotenv needs --namespace; JSON
    /// without it exports every namespace.
    #[command(
        after_help = "Examples:\n  strongroom export --namespace core/app --format dotenv --age-recipient age1… --out app.env.age\n  age -d -i key.txt app.env.age\n  strongroom export --format json --age-passphrase --out vault.json.age\n  strongroom export --namespace core/app --format dotenv --plaintext-i-understand --out -"
    )]
    Export(ExportArgs),
    /// Import secrets from a dotenv or JSON file into a namespace (each one a new version
    /// when it exists; the input is parsed whole before anything is written).
    #[command(
        after_help = "Examples:\n  strongroom import core/app --format dotenv --in .env\n  strongroom import core/app --format dotenv --in app.env.age --age-identity key.txt\n  age -d -i key.txt app.env.age | strongroom import core/app --format dotenv --in -"
    )]
    Import {
        /// Namespace to import into (JSON entries naming their own namespace keep it).
        namespace: String,
        /// Input format.
        #[arg(long, value_enum)]
        format: FormatArg,
        /// Input file, or `-` for stdin.
        #[arg(long = "in", value_name = "FILE|-")]
        input: String,
        /// The input is an age file: decrypt it with the identities of this age identity
        /// file (`AGE-SECRET-KEY-PQ-1…` hybrid post-quantum, or `AGE-SECRET-KEY-1…` X25519
        /// lines). Repeatable.
        #[arg(long, value_name = "FILE")]
        age_identity: Vec<PathBuf>,
    },
    /// Run a command with a namespace's secrets as environment variables.
    ///
    /// Every secret name must be a valid environment variable name (ASCII letters, digits
    /// and `_`, not starting with a digit): otherwise the command is not started and the
    /// error lists the offending names. Names that change how programs start (`PATH`,
    /// `LD_*`, `DYLD_*`, `BASH_ENV`, `PYTHONPATH`, `NODE_OPTIONS`, …) are refused unless
    /// each is named with --allow-env-override. The variable named by --kek-env (the
    /// vault's key) is removed from the command's environment unless --keep-kek-env. The
    /// child's exit code is passed through (128+N when it is killed by signal N); values are
    /// never printed.
    #[command(
        after_help = "Examples:\n  strongroom run --namespace core/app -- ./server --port 8080\n  strongroom --kek-env ENCRYPTION_KEY run --namespace core/app -- ./server\n  strongroom run --namespace core/tools --allow-env-override GIT_SSH_COMMAND -- git fetch"
    )]
    Run {
        /// Namespace whose secrets are injected.
        #[arg(long)]
        namespace: String,
        /// Let a secret named NAME set an environment variable that changes how programs
        /// start (`PATH`, `LD_PRELOAD`, …); repeat for each such name.
        #[arg(long, value_name = "NAME")]
        allow_env_override: Vec<String>,
        /// Pass the variable named by --kek-env (the vault's key) on to the command too.
        #[arg(long)]
        keep_kek_env: bool,
        /// Pass strongroom's own variable NAME (`STRONGROOM_*`, removed by default because
        /// they locate or unlock the vault) on to the command; repeat for each.
        #[arg(long, value_name = "NAME")]
        keep_env: Vec<String>,
        /// The command and its arguments (after `--`).
        #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Run an end-to-end demonstration in a temporary directory (no prompts).
    #[command(after_help = "Example:\n  cargo run -p strongroom-cli -- demo")]
    Demo,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Display name of the first member (default: --member, else $USER, else `owner`).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Versions kept per secret.
    #[arg(long, default_value_t = 10)]
    pub(crate) history: u32,
    /// Rotation policy in days (0: none); `status`/`doctor` warn past it.
    #[arg(long, default_value_t = 90)]
    pub(crate) rotation_days: u32,
    /// Body cipher (default: AES-256-GCM where the CPU has AES instructions).
    #[arg(long, value_enum)]
    pub(crate) suite: Option<SuiteArg>,
    /// Generate a recovery key, add it as a keyholder and print it once (the default).
    #[arg(long, overrides_with = "no_recovery_key")]
    pub(crate) with_recovery_key: bool,
    /// Do not generate a recovery key (losing the keyholder then loses the vault).
    #[arg(long)]
    pub(crate) no_recovery_key: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// Allow a snapshot of another vault.
    #[arg(long)]
    pub(crate) allow_other_vault: bool,
    /// Allow a snapshot whose membership log is older than the one this client has verified:
    /// membership changes made since (removals included) are undone; check the members and
    /// rotate the vault key afterwards.
    #[arg(long)]
    pub(crate) allow_membership_rollback: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// Records rewrapped per commit.
    #[arg(long, default_value_t = 2000)]
    pub(crate) batch_size: usize,
    /// Also replace the metadata key (blind index, audit and settings keys), as a member
    /// removal does: for a metadata key thought leaked otherwise. Every index row moves.
    #[arg(long)]
    pub(crate) new_metadata_key: bool,
}

// Command-line flags are booleans by nature.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Only this namespace (needed for dotenv; JSON without it exports every namespace).
    #[arg(long)]
    pub(crate) namespace: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub(crate) format: FormatArg,
    /// Encrypt to this age recipient; repeatable. `age1pq1…` (hybrid post-quantum,
    /// mlkem768x25519) or `age1…` (X25519), not both kinds in one file.
    #[arg(long, value_name = "RECIPIENT")]
    pub(crate) age_recipient: Vec<String>,
    /// Encrypt with an age passphrase (prompted twice unless --age-passphrase-file).
    #[arg(long)]
    pub(crate) age_passphrase: bool,
    /// Read the age passphrase from this file (implies --age-passphrase).
    #[arg(long, value_name = "PATH")]
    pub(crate) age_passphrase_file: Option<PathBuf>,
    /// Write plaintext: every secret readable by whoever gets the output.
    #[arg(long)]
    pub(crate) plaintext_i_understand: bool,
    /// Output file (created 0600, never overwritten), or `-` for stdout.
    #[arg(long, value_name = "FILE|-")]
    pub(crate) out: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List audit entries (each entry's MAC is checked).
    #[command(after_help = "Example:\n  strongroom audit list --from 0 --limit 50 --json")]
    List {
        /// First entry (sequence number).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Most entries to list.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Verify the whole hash chain; exits 1 when an entry was modified, removed or forged.
    #[command(after_help = "Example:\n  strongroom audit verify")]
    Verify,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyholderCommand {
    /// List the acting member's keyholders (no secrets).
    #[command(after_help = "Example:\n  strongroom keyholder list --json")]
    List,
    /// Add a keyholder (O(1): no record is touched).
    #[command(
        after_help = "Examples:\n  strongroom keyholder add --new-recovery-key\n  strongroom --passphrase-file pw keyholder add --new-kek-env ENCRYPTION_KEY\n  strongroom keyholder add --new-keyring strongroom/vault-1\n  strongroom keyholder add --new-keyholder 'transit:addr=https://bao:8200,key=strongroom,ca-file=ca.pem,token-file=bao.token'"
    )]
    Add {
        #[command(flatten)]
        new: NewKeyholderArgs,
    },
    /// Remove a keyholder by id (never the last one).
    #[command(after_help = "Example:\n  strongroom keyholder remove 0123456789abcdef")]
    Remove {
        /// Keyholder id (hex, from `keyholder list`).
        id: String,
    },
    /// Replace a keyholder with a new one: add, verify, remove the old (O(1)). Re-run it
    /// after an interruption.
    #[command(
        after_help = "Examples:\n  strongroom --kek-env OLD_KEY keyholder rotate 0123456789abcdef --new-kek-env NEW_KEY\n  strongroom --keyholder \"$TRANSIT\" keyholder rotate 0123456789abcdef --new-keyholder \"$TRANSIT\"   (after a Transit key rotation: rewrapped in the server)\n  strongroom --keyring strongroom/vault keyholder rotate 0123456789abcdef --new-keyring\n  strongroom keyholder rotate 0123456789abcdef --new-passphrase"
    )]
    Rotate {
        /// The keyholder to replace (hex id, from `keyholder list`).
        old_id: String,
        #[command(flatten)]
        new: NewKeyholderArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RecoveryKeyCommand {
    /// Replace the recovery key: a new one is added, verified and printed once; the old
    /// one stops working.
    #[command(after_help = "Example:\n  strongroom recovery-key new")]
    New {
        /// The recovery-key keyholder to replace (when there are several).
        #[arg(long, value_name = "ID")]
        old: Option<String>,
    },
    /// Check that a recovery key opens the vault (read from --recovery-key-file,
    /// --recovery-key-stdin or a prompt). No keyholder is changed; the unlock is audited.
    #[command(
        after_help = "Example:\n  strongroom recovery-key verify --recovery-key-file key.txt"
    )]
    Verify,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KekCommand {
    /// Print a new random 32-byte KEK in base64 to stdout (the key id goes to stderr).
    #[command(after_help = "Example:\n  umask 077; strongroom kek generate > vault.kek")]
    Generate,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IdentityCommand {
    /// Create a member identity sealed under a passphrase (+ a recovery key printed once).
    /// Writes FILE (0600) and FILE.pub (the public identity to hand to an admin).
    #[command(after_help = "Example:\n  strongroom identity create --name bob --out bob.identity")]
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Identity file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Do not generate a recovery key for the identity.
        #[arg(long)]
        no_recovery_key: bool,
    },
    /// Show the public identity and fingerprint of an identity file (opens it).
    #[command(after_help = "Example:\n  strongroom identity show --file bob.identity")]
    Show {
        /// Identity file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScopeCommand {
    /// Create a scope over a namespace prefix (owners and admins): its secrets are sealed
    /// under the scope's own key from now on. Scopes do not nest.
    #[command(after_help = "Example:\n  strongroom scope create core/billing")]
    Create {
        /// The namespace prefix (`core/billing` covers `core/billing` and `core/billing/...`).
        prefix: String,
    },
    /// List the scopes, their key epochs and their members.
    #[command(after_help = "Example:\n  strongroom scope list --json")]
    List,
    /// Grant a scoped member a scope, or change its role there.
    #[command(
        after_help = "Example:\n  strongroom scope grant billing-app core/billing --read-only"
    )]
    Grant {
        /// Member name or id.
        #[arg(id = "target_member", value_name = "MEMBER")]
        member: String,
        /// The scope's prefix.
        prefix: String,
        /// Read only (default: read and write).
        #[arg(long)]
        read_only: bool,
    },
    /// Take a scope from a scoped member: the scope gets a new key, which the member does
    /// not get. Run `strongroom rotate` afterwards to rewrap the scope's secrets.
    #[command(after_help = "Example:\n  strongroom scope revoke billing-app core/billing")]
    Revoke {
        /// Member name or id.
        #[arg(id = "target_member", value_name = "MEMBER")]
        member: String,
        /// The scope's prefix.
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCommand {
    /// List the members.
    #[command(after_help = "Example:\n  strongroom member list --json")]
    List,
    /// Add a member. Compare the fingerprint with its owner over another channel first.
    #[command(
        after_help = "Examples:\n  strongroom member add --identity @bob.identity.pub --role member --fingerprint \"12345 67890 …\"\n  strongroom member add --identity @billing-app.identity.pub --namespace core/billing --fingerprint \"…\"   (a service account)"
    )]
    Add {
        /// The public identity text (`strongroom-identity1:…`) or `@FILE`.
        #[arg(long, value_name = "TEXT|@FILE")]
        identity: String,
        /// Role.
        #[arg(
            long,
            value_enum,
            default_value = "member",
            conflicts_with = "namespace"
        )]
        role: RoleArg,
        /// Add a scoped member (a service account) that reads and writes this namespace
        /// prefix and nothing else (repeat for several). The scope is created when no scope
        /// covers the prefix yet. The member needs a hybrid identity.
        #[arg(long, value_name = "PREFIX")]
        namespace: Vec<String>,
        /// With --namespace: read the scopes' secrets only, never write them.
        #[arg(long, requires = "namespace")]
        read_only: bool,
        #[command(flatten)]
        check: FingerprintCheck,
    },
    /// Store your own credentials in the vault after an admin added you.
    #[command(
        after_help = "Example:\n  strongroom --passphrase-file bob.pw member join --identity-file bob.identity"
    )]
    Join {
        /// Your identity file (opened with the keyholder options).
        #[arg(long, value_name = "FILE")]
        identity_file: PathBuf,
    },
    /// Remove a member and list every secret they could read.
    #[command(after_help = "Example:\n  strongroom member remove bob")]
    Remove {
        /// Member name or id.
        #[arg(id = "target_member", value_name = "MEMBER")]
        member: String,
    },
    /// Re-grant a member who lost every keyholder to their new identity.
    #[command(
        after_help = "Example:\n  strongroom member regrant bob --identity @bob-new.identity.pub --fingerprint \"…\""
    )]
    Regrant {
        /// The member's old name or id.
        old_member: String,
        /// The new public identity text or `@FILE`.
        #[arg(long, value_name = "TEXT|@FILE")]
        identity: String,
        #[command(flatten)]
        check: FingerprintCheck,
    },
    /// Change a member's role.
    #[command(after_help = "Example:\n  strongroom member role bob admin")]
    Role {
        /// Member name or id.
        #[arg(id = "target_member", value_name = "MEMBER")]
        member: String,
        /// New role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Upgrade your own classical (X25519) identity to a hybrid post-quantum one (X-Wing):
    /// a signed log entry; your grants become hybrid and the classical ones are deleted.
    /// Your fingerprint changes; your keyholders unlock you as before.
    #[command(after_help = "Example:\n  strongroom --member bob member upgrade-identity")]
    UpgradeIdentity,
    /// Require hybrid (X-Wing) grants for every member from now on (owners; once every
    /// member is hybrid). Classical identities can then not be added or re-granted.
    #[command(after_help = "Example:\n  strongroom member require-hybrid")]
    RequireHybrid,
    /// Require every record version to carry its writer's signature (owners; once). Vaults
    /// created by this release require it already. For an older vault, every version is
    /// re-encrypted and the versions written unsigned are signed by you, vouching for them;
    /// then readers refuse versions written by read-only members or outsiders. Resumable:
    /// run it again after an interruption.
    #[command(after_help = "Example:\n  strongroom member require-signed-writes")]
    RequireSignedWrites,
    /// Sign again the record versions of members who lost the right to write (made
    /// read-only, removed, re-granted), vouching for them: readers refuse those versions
    /// until then, since such a member could sign new ones naming an old log position.
    /// `member role`, `member remove` and `member regrant` do it already; run it after an
    /// interruption (owners and admins).
    #[command(after_help = "Example:\n  strongroom member reattest")]
    Reattest,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct FingerprintCheck {
    /// The fingerprint digits as read out by the identity's owner (spaces ignored).
    #[arg(long, value_name = "DIGITS")]
    pub(crate) fingerprint: Option<String>,
    /// Add without comparing fingerprints: whoever delivered the identity could have
    /// substituted their own key.
    #[arg(long)]
    pub(crate) skip_fingerprint_check_i_accept_the_risk: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn debug_never_shows_a_connection_string() {
        const URL: &str = "postgres://u:hunter2@h/db"; // pragma: allowlist secret
        const LIBPQ: &str = "host=h password=hunter2"; // pragma: allowlist secret
        for (args, shown) in [
            (
                &["strongroom", "--vault", URL, "status"][..],
                "Postgres(<connection string>)",
            ),
            (
                &["strongroom", "status", "--vault", LIBPQ],
                "Postgres(<connection string>)",
            ),
            (
                &["strongroom", "--vault", "/tmp/v.sqlite", "status"],
                "/tmp/v.sqlite",
            ),
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let d = format!("{cli:?}");
            assert!(!d.contains("hunter2"), "{d}");
            assert!(d.contains(shown), "{d}");
        }
    }

    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands() {
                let p = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    walk(sub, &p);
                } else {
                    let help = sub
                        .get_after_help()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    assert!(help.contains("strongroom"), "{p} has no example");
                }
            }
        }
        walk(&Cli::command(), "strongroom");
    }
}
