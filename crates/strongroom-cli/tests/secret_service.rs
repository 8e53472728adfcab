//! The Secret Service keyholder through the real binary, against GNOME Keyring on a private
//! session bus started by the test (`dbus-daemon` with its own socket, no service
//! activation, and `gnome-keyring-daemon --unlock --components=secrets` with a temporary
//! home): add, unlock, rotate to a new item (one stanza), another item's key, a locked
//! collection, a daemon that is gone, remove. The binary gets the private bus through
//! `DBUS_SESSION_BUS_ADDRESS`; the developer's session is never touched. Without the tools
//! the test prints `SKIPPED:` and passes, unless `STRONGROOM_REQUIRE_SECRET_SERVICE=1`.
#![cfg(target_os = "linux")]

#[path = "helpers/env.rs"]
mod env;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use env::{Env, json};

const LOGIN: &str = "strongroom-cli-test-login-keyring";

struct Session {
    bus: Child,
    keyring: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Session {
    fn drop(&mut self) {
        for c in [&mut self.keyring, &mut self.bus] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

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

fn start(name: &str) -> Option<Session> {
    if !(have("dbus-daemon") && have("gnome-keyring-daemon") && have("dbus-send")) {
        assert!(
            std::env::var("STRONGROOM_REQUIRE_SECRET_SERVICE").as_deref() != Ok("1"),
            "{name}: dbus-daemon, dbus-send or gnome-keyring-daemon not found but STRONGROOM_REQUIRE_SECRET_SERVICE=1: install the Debian packages dbus-daemon and gnome-keyring"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name}: dbus-daemon or gnome-keyring-daemon not found (install the Debian packages dbus-daemon and gnome-keyring; STRONGROOM_REQUIRE_SECRET_SERVICE=1 makes this a failure)"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let run = dir.path().join("run");
    for d in [&home, &run] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let conf = dir.path().join("bus.conf");
    std::fs::write(
        &conf,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
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
    keyring
        .stdin
        .take()
        .unwrap()
        .write_all(LOGIN.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dbus_send(
        &address,
        &["org.freedesktop.Secret.Service.ReadAlias", "string:default"],
    )
    .contains("/collection/")
    {
        assert!(
            Instant::now() < deadline,
            "{name}: gnome-keyring-daemon did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Session {
        bus,
        keyring,
        address,
        _dir: dir,
    })
}

#[test]
fn secret_service_keyholder_lifecycle() {
    let Some(mut session) = start("secret_service_keyholder_lifecycle") else {
        return;
    };
    let bus = |c: &mut assert_cmd::Command| {
        c.env("DBUS_SESSION_BUS_ADDRESS", &session.address)
            .env_remove("DISPLAY");
    };
    let e = Env::new();
    e.init();
    e.put("core/app", "API_TOKEN", "tok-123");

    // add: the item is created in the default collection
    let mut c = e.sr();
    bus(&mut c);
    c.args([
        "keyholder",
        "add",
        "--new-keyholder",
        "secret-service:entry=strongroom/vault-1",
        "--json",
    ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", env::stderr(&out));
    assert!(
        env::stderr(&out).contains("created the Secret Service item default:strongroom/vault-1"),
        "{}",
        env::stderr(&out)
    );
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["kind"], "secret-service");
    let id = added["id"].as_str().unwrap().to_owned();

    // unlock with the Secret Service alone
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/vault-1",
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    c.assert().success().stdout("tok-123");

    // rotate to a new item: one stanza replaced, then the new item unlocks
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/vault-1",
        "keyholder",
        "rotate",
        &id,
        "--new-keyholder",
        "secret-service:entry=strongroom/vault-1.g2",
    ]);
    let rotated = json(c);
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    // the replaced item held a key that wraps nothing any more: it is deleted
    assert_eq!(
        rotated["deleted_secret_service_item"], "default:strongroom/vault-1",
        "{rotated}"
    );
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/vault-1.g2",
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    c.assert().success().stdout("tok-123");

    // the replaced item is gone, and named
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/vault-1",
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        env::stderr(&out).contains("default:strongroom/vault-1"),
        "{}",
        env::stderr(&out)
    );

    // another vault's item: its key does not open this vault (a wrong key, exit code 1)
    let other = Env::new();
    other.init();
    let mut c = other.sr();
    bus(&mut c);
    c.args([
        "keyholder",
        "add",
        "--new-keyholder",
        "secret-service:entry=strongroom/other-vault",
    ]);
    c.assert().success();
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/other-vault",
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", env::stderr(&out));
    assert!(
        env::stderr(&out).contains("does not open this vault"),
        "{}",
        env::stderr(&out)
    );

    // a missing item is named
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/absent",
        "status",
    ]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        env::stderr(&out).contains("default:strongroom/absent"),
        "{}",
        env::stderr(&out)
    );

    // a locked collection: a clear error at once, never a prompt that hangs
    let alias = dbus_send(
        &session.address,
        &["org.freedesktop.Secret.Service.ReadAlias", "string:default"],
    );
    let path = alias
        .split('"')
        .find(|s| s.starts_with("/org/freedesktop/secrets/collection/"))
        .unwrap()
        .to_owned();
    dbus_send(
        &session.address,
        &[
            "org.freedesktop.Secret.Service.Lock",
            &format!("array:objpath:{path}"),
        ],
    );
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/vault-1.g2",
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    let t = Instant::now();
    let out = c.output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!out.status.success());
    let err = env::stderr(&out);
    assert!(
        err.contains("locked") && err.contains("prompt-timeout"),
        "{err}"
    );

    // the daemon is gone: unreachable, within the call timeout
    let _ = session.keyring.kill();
    let _ = session.keyring.wait();
    let mut c = e.bare();
    bus(&mut c);
    c.args([
        "--keyholder",
        "secret-service:entry=strongroom/vault-1.g2",
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    let t = Instant::now();
    let out = c.output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(!out.status.success());
    let err = env::stderr(&out);
    assert!(
        err.contains("GNOME Keyring") && err.contains("retry"),
        "{err}"
    );

    // remove (with the passphrase): the stanza is gone from the vault
    let mut c = e.sr();
    c.args(["keyholder", "remove", &new_id]);
    c.assert().success();
    let mut c = e.sr();
    c.args(["keyholder", "list"]);
    let list = json(c);
    assert!(!list.to_string().contains("secret-service"), "{list}");
}
