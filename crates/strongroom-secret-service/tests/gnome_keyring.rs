//! The Secret Service keyholder against a real GNOME Keyring.
//!
//! Each test starts a private session bus (`dbus-daemon` with its own socket in a temporary
//! folder and no service activation) and a fresh `gnome-keyring-daemon --unlock
//! --components=secrets` on it, whose home is that folder too; then it re-runs itself in a
//! child process whose `DBUS_SESSION_BUS_ADDRESS` is that bus. The developer's own session
//! bus and keyrings are never touched. Without `dbus-daemon` or `gnome-keyring-daemon` the
//! tests print `SKIPPED:` and pass, unless `STRONGROOM_REQUIRE_SECRET_SERVICE=1`, which makes
//! that a failure (Debian packages dbus-daemon, gnome-keyring, libsecret-tools).
#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strongroom::recovery::{PassphraseKeyholder, Profile, secrecy::SecretString};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Vault, VaultError};
use strongroom_crypto::{CryptoError, Key256};
use strongroom_keyholder::{
    CustodyProblem, Keyholder, KeyholderError, KeyholderKind, Stanza, WrapContext, unwrap_any,
};
use strongroom_secret_service::{SecretServiceEntry, SecretServiceKeyholder, SecretServiceOptions};

const CHILD: &str = "STRONGROOM_SECRET_SERVICE_TEST_CHILD";
const KEYRING_PID: &str = "STRONGROOM_SECRET_SERVICE_TEST_KEYRING_PID";
const BUS_PID: &str = "STRONGROOM_SECRET_SERVICE_TEST_BUS_PID";
/// The password of the throwaway login keyring (a test value, not a secret).
const LOGIN: &str = "strongroom-test-login-keyring";
const SERVICE: &str = "strongroom-test";

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-1/member-1",
    }
}

/// Whether `cmd` can be started (dbus-send has no --version: any exit status will do).
fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A private session bus with a GNOME Keyring on it.
struct Session {
    bus: Child,
    keyring: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Session {
    fn start(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let run = dir.path().join("run");
        for d in [&home, &run] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
        }
        let conf = dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                run.join("bus").display()
            ),
        )
        .unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "{name}: bus address {address:?}"
        );
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &run)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(LOGIN.as_bytes()).unwrap();
        drop(stdin);
        let session = Session {
            bus,
            keyring,
            address,
            _dir: dir,
        };
        // Ready when the default collection is there.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !session
            .dbus_send(&["org.freedesktop.Secret.Service.ReadAlias", "string:default"])
            .contains("/collection/")
        {
            assert!(
                Instant::now() < deadline,
                "{name}: gnome-keyring-daemon did not come up on the private bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        session
    }

    fn dbus_send(&self, call: &[&str]) -> String {
        dbus_send(&self.address, call)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for c in [&mut self.keyring, &mut self.bus] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Secret Service method call on the bus at `address`, with `dbus-send`.
fn dbus_send(address: &str, call: &[&str]) -> String {
    let out = Command::new("dbus-send")
        .arg(format!("--bus={address}"))
        .args([
            "--print-reply",
            "--reply-timeout=2000",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
        ])
        .args(call)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `body` in a child process on a private bus with a fresh GNOME Keyring.
fn in_session(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        return;
    }
    if !(have("dbus-daemon") && have("gnome-keyring-daemon") && have("dbus-send")) {
        assert!(
            std::env::var("STRONGROOM_REQUIRE_SECRET_SERVICE").as_deref() != Ok("1"),
            "{name}: dbus-daemon, dbus-send or gnome-keyring-daemon not found but STRONGROOM_REQUIRE_SECRET_SERVICE=1: install the Debian packages dbus-daemon, gnome-keyring and libsecret-tools"
        );
        // Written straight to the file descriptor: the test harness does not capture it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name}: dbus-daemon or gnome-keyring-daemon not found (install the Debian packages dbus-daemon, gnome-keyring and libsecret-tools; STRONGROOM_REQUIRE_SECRET_SERVICE=1 makes this a failure)"
        );
        return;
    }
    let session = Session::start(name);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("DBUS_SESSION_BUS_ADDRESS", &session.address)
        .env(KEYRING_PID, session.keyring.id().to_string())
        .env(BUS_PID, session.bus.id().to_string())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed on its private session bus:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {name} ... "))
            && stdout.contains("test result: ok. 1 passed"),
        "{name} did not run in the child:\n{stdout}\n{stderr}"
    );
    // The child's output (the latency line) for --show-output.
    for line in stdout
        .lines()
        .filter_map(|l| l.find("LATENCY").map(|i| &l[i..]))
    {
        println!("{line}");
    }
}

fn signal(var: &str, sig: &str) {
    let pid = std::env::var(var).unwrap();
    assert!(
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn unique(prefix: &str) -> String {
    let r: [u8; 6] = strongroom_crypto::random::array().unwrap();
    let id = strongroom_crypto::KeyId::from_bytes([r[0], r[1], r[2], r[3], r[4], r[5], 0, 0]);
    format!("{prefix}-{id}")
}

fn opts() -> SecretServiceOptions {
    SecretServiceOptions::default()
}

/// The 32 bytes of an item, read with `secret-tool` (libsecret) from another process.
fn read_with_secret_tool(entry: &SecretServiceEntry) -> Option<Vec<u8>> {
    let out = Command::new("secret-tool")
        .args([
            "lookup",
            "strongroom-service",
            &entry.service,
            "strongroom-entry",
            &entry.entry,
        ])
        .output()
        .ok()?;
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
}

fn custody(err: &KeyholderError) -> (CustodyProblem, String) {
    match err {
        KeyholderError::Custody(c) => (c.problem, c.what.clone()),
        e => panic!("expected a custody error, got {e:?}"),
    }
}

#[test]
fn create_open_wrap_and_delete() {
    in_session("create_open_wrap_and_delete", || {
        let entry = SecretServiceEntry::new(SERVICE, &unique("vault")).unwrap();
        let kh = SecretServiceKeyholder::create(&entry, &opts()).unwrap();
        assert_eq!(kh.kind(), KeyholderKind::SecretService);
        assert_eq!(kh.describe(), format!("secret-service {entry}"));

        // The KEK really is in GNOME Keyring, readable by libsecret from another process.
        if let Some(raw) = read_with_secret_tool(&entry) {
            assert_eq!(raw.len(), 32);
            let seen =
                strongroom_keyholder::KekKeyholder::key_id_of(&Key256::from_slice(&raw).unwrap());
            assert_eq!(seen, kh.key_id());
        } else {
            assert!(
                std::env::var("STRONGROOM_REQUIRE_SECRET_SERVICE").as_deref() != Ok("1"),
                "secret-tool (libsecret-tools) could not read the item"
            );
        }

        // Never overwritten.
        assert!(matches!(
            SecretServiceKeyholder::create(&entry, &opts()),
            Err(KeyholderError::AlreadyExists { .. })
        ));

        let key = Key256::generate().unwrap();
        let stanza = kh.wrap(&ctx(), &key).unwrap();
        assert!(!stanza.body.windows(32).any(|w| w == key.expose_secret()));
        let stored = stanza.encode();

        // A later process: decode, open the item the stanza names, unlock.
        let stanza = Stanza::decode(&stored).unwrap();
        let reopened = SecretServiceKeyholder::open_for(&stanza, &opts()).unwrap();
        assert_eq!(reopened.key_id(), kh.key_id());
        let (k, _) = unwrap_any(&reopened, &ctx(), std::slice::from_ref(&stanza)).unwrap();
        assert!(bool::from(k.ct_eq(&key)));

        // A modified stanza or another context: a failed unlock, not a custody error.
        let mut t = stanza.clone();
        let last = t.body.len() - 1;
        t.body[last] ^= 1;
        assert!(matches!(
            reopened.unwrap(&ctx(), &t),
            Err(KeyholderError::Crypto(CryptoError::Decrypt))
        ));
        let other_ctx = WrapContext {
            purpose: "strongroom/v1/member-key",
            subject: b"vault-2/member-1",
        };
        assert!(matches!(
            reopened.unwrap(&other_ctx, &stanza),
            Err(KeyholderError::Crypto(CryptoError::Decrypt))
        ));

        // Another item's KEK: a wrong key, named by its id.
        let other = SecretServiceKeyholder::create(
            &SecretServiceEntry::new(SERVICE, &unique("other")).unwrap(),
            &opts(),
        )
        .unwrap();
        match unwrap_any(&other, &ctx(), std::slice::from_ref(&stanza)).unwrap_err() {
            KeyholderError::WrongKek { key_id } => assert_eq!(key_id, other.key_id().to_string()),
            e => panic!("{e:?}"),
        }

        // open_or_create reopens, never replaces.
        let (again, created) = SecretServiceKeyholder::open_or_create(&entry, &opts()).unwrap();
        assert!(!created);
        assert_eq!(again.key_id(), kh.key_id());

        // Shred: the item is gone, the stanza cannot be opened, deleting again is a no-op.
        assert!(kh.delete_item().unwrap());
        assert!(!SecretServiceKeyholder::delete(&entry, &opts()).unwrap());
        assert!(read_with_secret_tool(&entry).is_none());
        let (problem, what) =
            custody(&SecretServiceKeyholder::open_for(&stanza, &opts()).unwrap_err());
        assert_eq!(problem, CustodyProblem::Missing, "{what}");
        assert!(what.contains(&entry.to_string()), "{what}");

        // A collection alias that does not exist.
        let nowhere = SecretServiceEntry::in_collection("no-such-alias", SERVICE, "x").unwrap();
        let (problem, what) =
            custody(&SecretServiceKeyholder::open(&nowhere, &opts()).unwrap_err());
        assert_eq!(problem, CustodyProblem::Missing, "{what}");
        assert!(what.contains("no-such-alias"), "{what}");
        other.delete_item().unwrap();
    });
}

/// A vault member unlocked by a Secret Service item: add, unlock, rotate to the next
/// generation (one stanza rewritten, no data touched), remove; and the unlock latency next
/// to the raw Secret Service lookup it wraps.
#[test]
fn vault_lifecycle_and_latency() {
    in_session("vault_lifecycle_and_latency", || {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let pass = PassphraseKeyholder::new(
            &SecretString::from("a test passphrase for the secret service"),
            Profile::Constrained,
        )
        .unwrap();
        let (vault, _) =
            Vault::create(Arc::clone(&store), &pass, &CreateOptions::default()).unwrap();
        vault.put("core/app", "DB_PASSWORD", b"hunter2").unwrap();

        // add
        let first = SecretServiceEntry::new(SERVICE, &unique("vault")).unwrap();
        let (kh, created) = SecretServiceKeyholder::open_or_create(&first, &opts()).unwrap();
        assert!(created);
        let info = vault.add_keyholder(&kh).unwrap();
        assert_eq!(info.kind, KeyholderKind::SecretService);
        assert_eq!(info.id, *kh.key_id().as_bytes());
        drop(vault);

        // unlock with the Secret Service alone (a fresh keyholder, as a new process would)
        let kh = SecretServiceKeyholder::open(&first, &opts()).unwrap();
        let vault = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&kh)
            .unwrap();
        assert_eq!(
            vault
                .get("core/app", "DB_PASSWORD")
                .unwrap()
                .expose_secret(),
            b"hunter2"
        );

        // rotate: a new item, one stanza rewrapped; the old item shredded
        let next = first.next_generation();
        let (new, _) = SecretServiceKeyholder::open_or_create(&next, &opts()).unwrap();
        let rotated = vault.rotate_keyholder(&info.id, &new).unwrap();
        assert_eq!(rotated.id, *new.key_id().as_bytes());
        assert!(SecretServiceKeyholder::delete(&first, &opts()).unwrap());
        drop(vault);
        let new = SecretServiceKeyholder::open(&next, &opts()).unwrap();
        let vault = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&new)
            .unwrap();
        assert_eq!(
            vault
                .get("core/app", "DB_PASSWORD")
                .unwrap()
                .expose_secret(),
            b"hunter2"
        );
        // The old KEK (had it survived) no longer opens the member: a wrong key.
        let err = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&kh)
            .unwrap_err();
        assert!(
            matches!(err, VaultError::Unlock(KeyholderError::WrongKek { .. })),
            "{err:?}"
        );

        latency(&store, &next);

        // remove
        vault.remove_keyholder(&rotated.id).unwrap();
        drop(vault);
        let err = Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&new)
            .unwrap_err();
        assert!(err.is_unlock_failure(), "{err:?}");
        assert!(
            err.to_string().contains("no secret-service keyholder"),
            "{err}"
        );
        Vault::open(Arc::clone(&store))
            .unwrap()
            .unlock(&pass)
            .unwrap();
        new.delete_item().unwrap();
    });
}

/// Prints the unlock latency (open the item and unwrap the member key, then a whole vault
/// unlock) next to the raw call it wraps: a Secret Service connection, search and GetSecret
/// with `dbus-secret-service` alone.
fn latency(store: &Arc<dyn Store>, entry: &SecretServiceEntry) {
    use dbus_secret_service::{EncryptionType, SecretService};
    use std::collections::HashMap;
    const N: u32 = 50;
    let kh = SecretServiceKeyholder::open(entry, &opts()).unwrap();
    let key = Key256::generate().unwrap();
    let stanza = kh.wrap(&ctx(), &key).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        let kh = SecretServiceKeyholder::open(entry, &opts()).unwrap();
        kh.unwrap(&ctx(), &stanza).unwrap().unwrap();
    }
    let keyholder = t.elapsed() / N;
    let t = Instant::now();
    for _ in 0..N {
        let kh = SecretServiceKeyholder::open(entry, &opts()).unwrap();
        Vault::open(Arc::clone(store)).unwrap().unlock(&kh).unwrap();
    }
    let vault = t.elapsed() / N;
    let attrs = HashMap::from([
        ("strongroom-service", entry.service.as_str()),
        ("strongroom-entry", entry.entry.as_str()),
    ]);
    let t = Instant::now();
    for _ in 0..N {
        let ss = SecretService::connect(EncryptionType::Plain).unwrap();
        let c = ss.get_collection_by_alias("default").unwrap();
        let items = c.search_items(attrs.clone()).unwrap();
        assert_eq!(items[0].get_secret().unwrap().len(), 32);
    }
    let raw = t.elapsed() / N;
    println!(
        "LATENCY secret-service (gnome-keyring-daemon, private session bus, mean of {N}): keyholder open + unwrap {keyholder:?}, whole vault unlock {vault:?}; raw Secret Service connect + search + GetSecret {raw:?}"
    );
}

/// A locked collection is refused at once when no prompt is allowed, and within the prompt
/// timeout when one is: never a hang. Unlocked again, the same item opens.
#[test]
fn locked_collection_is_a_clear_error() {
    in_session("locked_collection_is_a_clear_error", || {
        let entry = SecretServiceEntry::new(SERVICE, &unique("locked")).unwrap();
        let kh = SecretServiceKeyholder::create(&entry, &opts()).unwrap();
        let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap();
        let login = dbus_send(
            &address,
            &["org.freedesktop.Secret.Service.ReadAlias", "string:default"],
        );
        let path = login
            .split('"')
            .find(|s| s.starts_with("/org/freedesktop/secrets/collection/"))
            .unwrap()
            .to_owned();
        dbus_send(
            &address,
            &[
                "org.freedesktop.Secret.Service.Lock",
                &format!("array:objpath:{path}"),
            ],
        );

        let t = Instant::now();
        let (problem, what) = custody(&SecretServiceKeyholder::open(&entry, &opts()).unwrap_err());
        assert_eq!(problem, CustodyProblem::Denied, "{what}");
        assert!(
            what.contains("locked") && what.contains("prompt-timeout"),
            "{what}"
        );
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(matches!(
            SecretServiceKeyholder::create(
                &SecretServiceEntry::new(SERVICE, &unique("while-locked")).unwrap(),
                &opts()
            ),
            Err(KeyholderError::Custody(c)) if c.problem == CustodyProblem::Denied
        ));

        // A prompt is allowed for 2 s: nobody answers (there is no display), so the open
        // fails as denied within that time plus the call timeout, never later.
        let t = Instant::now();
        let patient = opts().with_prompt_timeout(Duration::from_secs(2));
        let (problem, what) = custody(&SecretServiceKeyholder::open(&entry, &patient).unwrap_err());
        assert_eq!(problem, CustodyProblem::Denied, "{what}");
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());

        kh.delete_item().unwrap_err();
    });
}

/// A daemon that does not answer, a daemon that is gone and a bus that is gone: each a
/// retryable custody error within the call timeout, never a hang and never a wrong key.
#[test]
fn unreachable_service_fails_within_the_timeout() {
    in_session("unreachable_service_fails_within_the_timeout", || {
        let entry = SecretServiceEntry::new(SERVICE, &unique("gone")).unwrap();
        let kh = SecretServiceKeyholder::create(&entry, &opts()).unwrap();
        let stanza = kh.wrap(&ctx(), &Key256::generate().unwrap()).unwrap();

        // Stopped: it holds the bus name but never answers.
        signal(KEYRING_PID, "-STOP");
        let t = Instant::now();
        let err = SecretServiceKeyholder::open_for(&stanza, &opts()).unwrap_err();
        let elapsed = t.elapsed();
        signal(KEYRING_PID, "-CONT");
        let (problem, what) = custody(&err);
        assert_eq!(problem, CustodyProblem::Unreachable, "{what}");
        assert!(err.custody().unwrap().is_retryable());
        assert!(err.custody().unwrap().source.is_some());
        assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
        // Answering again, it opens.
        SecretServiceKeyholder::open_for(&stanza, &opts()).unwrap();

        // Gone from the bus (no activation on this bus).
        signal(KEYRING_PID, "-KILL");
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let (problem, what) =
            custody(&SecretServiceKeyholder::open_for(&stanza, &opts()).unwrap_err());
        assert_eq!(problem, CustodyProblem::Unreachable, "{what}");
        assert!(what.contains("GNOME Keyring"), "{what}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

        // No bus at all.
        signal(BUS_PID, "-KILL");
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        let (problem, what) =
            custody(&SecretServiceKeyholder::open_for(&stanza, &opts()).unwrap_err());
        assert_eq!(problem, CustodyProblem::Unreachable, "{what}");
        assert!(what.contains("D-Bus"), "{what}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    });
}
