//! `demo`: the commands of a real session, run one after the other in a temporary
//! directory, printing each command line before its output.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use secrecy::ExposeSecret;
use strongroom::sharing::PublicIdentity;
use zeroize::Zeroizing;

use crate::app::App;
use crate::cli::Cli;
use crate::input;
use crate::location::write_private_file;

/// The demo's passphrases: demo values, printed on purpose.
const ALICE_PASSPHRASE: &str = "demo passphrase for alice (not a real secret)";
const BOB_PASSPHRASE: &str = "demo passphrase for bob (not a real secret)";

struct Demo {
    dir: PathBuf,
    vault: PathBuf,
    state: PathBuf,
}

impl Demo {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn file(&self, name: &str, content: &str) -> Result<PathBuf> {
        let p = self.path(name);
        write_private_file(&p, content.as_bytes(), true)?;
        Ok(p)
    }

    /// Prints and runs `strongroom <args>`; returns its exit code.
    fn run(&self, title: &str, args: &[&str]) -> Result<u8> {
        println!();
        println!("== {title}");
        let shown: Vec<String> = args
            .iter()
            .map(|a| {
                if a.contains([' ', '"', '$']) {
                    format!("'{}'", a.replace('\'', "'\\''"))
                } else {
                    a.replace(&*self.dir.to_string_lossy(), "$DEMO")
                }
            })
            .collect();
        println!("$ strongroom {}", shown.join(" "));
        let mut argv: Vec<OsString> = vec![
            "strongroom".into(),
            "--vault".into(),
            self.vault.clone().into(),
            "--state-dir".into(),
            self.state.clone().into(),
        ];
        argv.extend(args.iter().map(OsString::from));
        let cli = Cli::try_parse_from(argv).context("demo command line")?;
        let code = crate::run(cli).with_context(|| format!("demo step {title:?} failed"))?;
        Ok(code)
    }

    /// Runs a step that must succeed (exit 0).
    fn ok(&self, title: &str, args: &[&str]) -> Result<()> {
        match self.run(title, args)? {
            0 => Ok(()),
            code => bail!("demo step {title:?} exited {code}"),
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// `demo`.
pub(crate) fn run(_app: &mut App) -> Result<u8> {
    let tmp = tempfile::Builder::new()
        .prefix("strongroom-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let d = Demo {
        dir: tmp.path().to_path_buf(),
        vault: tmp.path().join("vault.sqlite"),
        state: tmp.path().join("state"),
    };
    println!(
        "strongroom demo, in the temporary directory $DEMO = {}",
        d.dir.display()
    );
    println!(
        "Demo passphrases (labelled demo values, kept in files there; real use prompts for them):"
    );
    println!("  alice: {ALICE_PASSPHRASE:?}");
    println!("  bob:   {BOB_PASSPHRASE:?}");
    let alice = d.file("alice.pass", ALICE_PASSPHRASE)?;
    let bob = d.file("bob.pass", BOB_PASSPHRASE)?;
    let as_alice = ["--passphrase-file", s(&alice), "--profile", "constrained"];
    let alice_cmd = |rest: &[&str]| -> Vec<String> {
        as_alice
            .iter()
            .chain(rest.iter())
            .map(|x| (*x).to_owned())
            .collect()
    };
    let run_alice = |title: &str, rest: &[&str]| -> Result<()> {
        let v = alice_cmd(rest);
        let args: Vec<&str> = v.iter().map(String::as_str).collect();
        d.ok(title, &args)
    };

    run_alice(
        "Create a vault (Argon2id constrained profile; a recovery key is printed once)",
        &["init", "--name", "alice"],
    )?;
    let db = d.file("db.txt", "hunter2")?;
    let api = d.file("api.txt", "tok_demo_0123456789")?;
    run_alice(
        "Store a secret",
        &["put", "core/app", "DB_PASSWORD", "--from-file", s(&db)],
    )?;
    run_alice(
        "Store another",
        &["put", "core/app", "API_TOKEN", "--from-file", s(&api)],
    )?;
    let db2 = d.file("db2.txt", "hunter3")?;
    run_alice(
        "Change the first one (version 2)",
        &["put", "core/app", "DB_PASSWORD", "--from-file", s(&db2)],
    )?;
    run_alice(
        "Read it back (the value alone goes to stdout)",
        &["get", "core/app", "DB_PASSWORD"],
    )?;
    println!();
    run_alice("List the namespace (no values)", &["list", "core/app"])?;
    run_alice(
        "History of a secret",
        &["history", "core/app", "DB_PASSWORD"],
    )?;
    run_alice(
        "Rotate the vault key (progress bar on a terminal)",
        &["rotate", "--batch-size", "1"],
    )?;

    let snap = d.path("vault.snap");
    run_alice("Snapshot the vault", &["snapshot", s(&snap)])?;
    run_alice(
        "Verify the snapshot (hash, references, every record decrypts)",
        &["verify-snapshot", s(&snap)],
    )?;
    run_alice(
        "Restore it (verified in staging first)",
        &["restore", s(&snap)],
    )?;

    // Export to age, and decrypt it as the `age` tool would.
    let identity = age::x25519::Identity::generate();
    let key_file = d.file(
        "age-key.txt",
        &format!(
            "# demo age identity\n{}\n",
            identity.to_string().expose_secret()
        ),
    )?;
    let recipient = identity.to_public().to_string();
    let exported = d.path("app.env.age");
    run_alice(
        "Export core/app as dotenv, encrypted to an age recipient",
        &[
            "export",
            "--namespace",
            "core/app",
            "--format",
            "dotenv",
            "--age-recipient",
            &recipient,
            "--out",
            s(&exported),
        ],
    )?;
    let plain = decrypt_age(&exported, &identity)?;
    let names: Vec<&str> = plain
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        .collect();
    if !plain.contains("DB_PASSWORD=\"hunter3\"") {
        bail!("the age export did not decrypt to the stored values");
    }
    println!(
        "(decrypted with the identity in $DEMO/{}, as `age -d -i $DEMO/{} $DEMO/app.env.age` would: {} — values match the vault)",
        key_file.file_name().unwrap_or_default().to_string_lossy(),
        key_file.file_name().unwrap_or_default().to_string_lossy(),
        names.join(", ")
    );
    #[cfg(unix)]
    run_alice(
        "Run a command with the namespace's secrets in its environment (values are not printed)",
        &[
            "run",
            "--namespace",
            "core/app",
            "--",
            "sh",
            "-c",
            "echo \"the child sees DB_PASSWORD (${#DB_PASSWORD} characters) and API_TOKEN (${#API_TOKEN})\"",
        ],
    )?;

    // A second member.
    let bob_id = d.path("bob.identity");
    d.ok(
        "Bob creates his identity (on his machine)",
        &[
            "--passphrase-file",
            s(&bob),
            "--profile",
            "constrained",
            "identity",
            "create",
            "--name",
            "bob",
            "--out",
            s(&bob_id),
            "--no-recovery-key",
        ],
    )?;
    let pub_file = crate::cmd_members::pub_path(&bob_id);
    let text = std::fs::read_to_string(&pub_file).context("reading bob's public identity")?;
    let fingerprint = PublicIdentity::from_text(text.trim())?
        .fingerprint()
        .to_string();
    println!();
    println!("(bob reads his fingerprint to alice over the phone: {fingerprint})");
    let at_pub = format!("@{}", s(&pub_file));
    run_alice(
        "Alice adds bob after comparing the fingerprint",
        &[
            "member",
            "add",
            "--identity",
            &at_pub,
            "--role",
            "member",
            "--fingerprint",
            &fingerprint,
        ],
    )?;
    d.ok(
        "Bob joins: his credentials go into the vault, sealed under his passphrase",
        &[
            "--passphrase-file",
            s(&bob),
            "--profile",
            "constrained",
            "member",
            "join",
            "--identity-file",
            s(&bob_id),
        ],
    )?;
    let note = d.file("note.txt", "bob was here")?;
    d.ok(
        "Bob stores a secret",
        &[
            "--passphrase-file",
            s(&bob),
            "--member",
            "bob",
            "put",
            "team/shared",
            "BOB_NOTE",
            "--from-file",
            s(&note),
        ],
    )?;
    run_alice("Members", &["--member", "alice", "member", "list"])?;
    run_alice(
        "Alice removes bob: the exposure report lists what he could read",
        &["--member", "alice", "member", "remove", "bob"],
    )?;
    run_alice(
        "Rotate again to retire the keys bob held",
        &["--member", "alice", "rotate"],
    )?;

    run_alice("Verify the audit log's hash chain", &["audit", "verify"])?;
    let v = alice_cmd(&["doctor"]);
    let args: Vec<&str> = v.iter().map(String::as_str).collect();
    let code = d.run(
        "Health check (exit 0 healthy, 1 warnings, 2 failures)",
        &args,
    )?;
    if code > 1 {
        bail!("doctor found failures");
    }
    println!();
    println!("demo finished: every step succeeded; the temporary directory is removed now.");
    drop(tmp);
    Ok(0)
}

/// Decrypts an age file with `identity` (what `age -d -i` does).
fn decrypt_age(path: &Path, identity: &age::x25519::Identity) -> Result<Zeroizing<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let decryptor = age::Decryptor::new_buffered(&bytes[..]).context("not an age file")?;
    let reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .context("the age identity does not decrypt the export")?;
    let plain = input::read_secret(reader, "the decrypted export")?;
    let text = std::str::from_utf8(&plain).context("the decrypted export is not UTF-8")?;
    Ok(Zeroizing::new(input::exact_copy(text)))
}
