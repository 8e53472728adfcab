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

/// The demo's temporary directory, its vault and the two members' passphrase files.
struct Demo {
    dir: PathBuf,
    vault: PathBuf,
    state: PathBuf,
    /// Alice's passphrase file.
    alice: PathBuf,
    /// Bob's passphrase file.
    bob: PathBuf,
}

/// `demo`.
pub(crate) fn run(_app: &mut App) -> Result<u8> {
    let tmp = tempfile::Builder::new()
        .prefix("strongroom-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let d = Demo::start(tmp.path())?;
    d.create()?;
    d.store_and_read()?;
    d.rotate()?;
    d.snapshot_and_restore()?;
    d.export_to_age()?;
    #[cfg(unix)]
    d.run_with_secrets()?;
    d.share_with_bob()?;
    d.remove_bob()?;
    d.check_health()?;
    println!();
    println!("demo finished: every step succeeded; the temporary directory is removed now.");
    drop(tmp);
    Ok(0)
}

impl Demo {
    /// Prints the introduction and writes the demo passphrases into `dir`.
    fn start(dir: &Path) -> Result<Demo> {
        println!(
            "strongroom demo, in the temporary directory $DEMO = {}",
            dir.display()
        );
        println!(
            "Demo passphrases (labelled demo values, kept in files there; real use prompts for them):"
        );
        println!("  alice: {ALICE_PASSPHRASE:?}");
        println!("  bob:   {BOB_PASSPHRASE:?}");
        let d = Demo {
            dir: dir.to_path_buf(),
            vault: dir.join("vault.sqlite"),
            state: dir.join("state"),
            alice: dir.join("alice.pass"),
            bob: dir.join("bob.pass"),
        };
        write_private_file(&d.alice, ALICE_PASSPHRASE.as_bytes(), true)?;
        write_private_file(&d.bob, BOB_PASSPHRASE.as_bytes(), true)?;
        Ok(d)
    }

    fn create(&self) -> Result<()> {
        self.alice(
            "Create a vault (Argon2id constrained profile; a recovery key is printed once)",
            &["init", "--name", "alice"],
        )
    }

    /// Alice stores two secrets, changes one, reads it back, lists them and shows a history.
    fn store_and_read(&self) -> Result<()> {
        let db = self.file("db.txt", "hunter2")?;
        let api = self.file("api.txt", "tok_demo_0123456789")?;
        self.alice(
            "Store a secret",
            &["put", "core/app", "DB_PASSWORD", "--from-file", s(&db)],
        )?;
        self.alice(
            "Store another",
            &["put", "core/app", "API_TOKEN", "--from-file", s(&api)],
        )?;
        let db2 = self.file("db2.txt", "hunter3")?;
        self.alice(
            "Change the first one (version 2)",
            &["put", "core/app", "DB_PASSWORD", "--from-file", s(&db2)],
        )?;
        self.alice(
            "Read it back (the value alone goes to stdout)",
            &["get", "core/app", "DB_PASSWORD"],
        )?;
        println!();
        self.alice("List the namespace (no values)", &["list", "core/app"])?;
        self.alice(
            "History of a secret",
            &["history", "core/app", "DB_PASSWORD"],
        )
    }

    fn rotate(&self) -> Result<()> {
        self.alice(
            "Rotate the vault key (progress bar on a terminal)",
            &["rotate", "--batch-size", "1"],
        )
    }

    fn snapshot_and_restore(&self) -> Result<()> {
        let snap = self.path("vault.snap");
        self.alice("Snapshot the vault", &["snapshot", s(&snap)])?;
        self.alice(
            "Verify the snapshot (hash, references, every record decrypts)",
            &["verify-snapshot", s(&snap)],
        )?;
        self.alice(
            "Restore it (verified in staging first)",
            &["restore", s(&snap)],
        )
    }

    /// Exports core/app to an age recipient, and decrypts it as the `age` tool would.
    fn export_to_age(&self) -> Result<()> {
        let identity = age::x25519::Identity::generate();
        let key_file = self.file(
            "age-key.txt",
            &format!(
                "# demo age identity\n{}\n",
                identity.to_string().expose_secret()
            ),
        )?;
        let recipient = identity.to_public().to_string();
        let exported = self.path("app.env.age");
        self.alice(
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
        Ok(())
    }

    #[cfg(unix)]
    fn run_with_secrets(&self) -> Result<()> {
        self.alice(
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
        )
    }

    /// A second member: bob creates his identity, alice adds him after comparing its
    /// fingerprint, bob joins and stores a secret.
    fn share_with_bob(&self) -> Result<()> {
        let bob_id = self.create_bob_identity()?;
        let pub_file = crate::cmd_members::pub_path(&bob_id);
        self.add_bob(&pub_file)?;
        self.bob_joins(&bob_id)?;
        self.bob_stores_a_secret()?;
        self.alice("Members", &["--member", "alice", "member", "list"])
    }

    /// Bob's identity file (its public part is beside it, `.pub`).
    fn create_bob_identity(&self) -> Result<PathBuf> {
        let bob_id = self.path("bob.identity");
        self.ok(
            "Bob creates his identity (on his machine)",
            &[
                "--passphrase-file",
                s(&self.bob),
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
        Ok(bob_id)
    }

    /// Alice adds bob's public identity, with the fingerprint bob read to her.
    fn add_bob(&self, pub_file: &Path) -> Result<()> {
        let text = std::fs::read_to_string(pub_file).context("reading bob's public identity")?;
        let fingerprint = PublicIdentity::from_text(text.trim())?
            .fingerprint()
            .to_string();
        println!();
        println!("(bob reads his fingerprint to alice over the phone: {fingerprint})");
        let at_pub = format!("@{}", s(pub_file));
        self.alice(
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
        )
    }

    fn bob_joins(&self, bob_id: &Path) -> Result<()> {
        self.ok(
            "Bob joins: his credentials go into the vault, sealed under his passphrase",
            &[
                "--passphrase-file",
                s(&self.bob),
                "--profile",
                "constrained",
                "member",
                "join",
                "--identity-file",
                s(bob_id),
            ],
        )
    }

    fn bob_stores_a_secret(&self) -> Result<()> {
        let note = self.file("note.txt", "bob was here")?;
        self.ok(
            "Bob stores a secret",
            &[
                "--passphrase-file",
                s(&self.bob),
                "--member",
                "bob",
                "put",
                "team/shared",
                "BOB_NOTE",
                "--from-file",
                s(&note),
            ],
        )
    }

    /// Alice removes bob (printing what he could read) and rotates the keys he held.
    fn remove_bob(&self) -> Result<()> {
        self.alice(
            "Alice removes bob: the exposure report lists what he could read",
            &["--member", "alice", "member", "remove", "bob"],
        )?;
        self.alice(
            "Rotate again to retire the keys bob held",
            &["--member", "alice", "rotate"],
        )
    }

    /// Verifies the audit log, then runs `doctor`, which may warn but must not fail.
    fn check_health(&self) -> Result<()> {
        self.alice("Verify the audit log's hash chain", &["audit", "verify"])?;
        let code = self.run(
            "Health check (exit 0 healthy, 1 warnings, 2 failures)",
            &self.as_alice(&["doctor"]),
        )?;
        if code > 1 {
            bail!("doctor found failures");
        }
        Ok(())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn file(&self, name: &str, content: &str) -> Result<PathBuf> {
        let p = self.path(name);
        write_private_file(&p, content.as_bytes(), true)?;
        Ok(p)
    }

    /// `args` run as alice: her passphrase file and the constrained Argon2id profile first.
    fn as_alice<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        [
            "--passphrase-file",
            s(&self.alice),
            "--profile",
            "constrained",
        ]
        .into_iter()
        .chain(args.iter().copied())
        .collect()
    }

    /// Runs a step as alice that must succeed.
    fn alice(&self, title: &str, args: &[&str]) -> Result<()> {
        self.ok(title, &self.as_alice(args))
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
