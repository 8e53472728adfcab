//! The AWS KMS keyholder through the real binary, against moto's KMS server run locally
//! (`moto_server`, PyPI `moto[server]`; keys created with boto3): add, unlock, rotate
//! (ReEncrypt in place), a wrong key, an unreachable endpoint, remove; the AWS credentials
//! (from the environment, as the standard chain reads them) never in any output. Without
//! `moto_server` the test prints `SKIPPED:` and passes, unless `STRONGROOM_REQUIRE_MOTO=1`.

#[path = "helpers/env.rs"]
mod env;

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use env::{Env, json};

const SECRET: &str = "strongroom-cli-test-secret-key";
const TOKEN: &str = "strongroom-cli-test-session-token";

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
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

fn start(name: &str) -> Option<Moto> {
    let have = Command::new("moto_server")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("STRONGROOM_REQUIRE_MOTO").as_deref() != Ok("1"),
            "{name}: `moto_server` not found but STRONGROOM_REQUIRE_MOTO=1: pip install 'moto[server]'"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name}: `moto_server` not found (pip install 'moto[server]'; STRONGROOM_REQUIRE_MOTO=1 makes this a failure)"
        );
        return None;
    }
    let port = free_port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

fn create_key(moto: &Moto) -> String {
    let script = format!(
        "import boto3\nkms = boto3.client('kms', region_name='us-east-1', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing')\nprint(kms.create_key()['KeyMetadata']['KeyId'])",
        moto.endpoint
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sets the AWS environment the standard chain reads.
fn aws(c: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    c.env("AWS_ACCESS_KEY_ID", "AKIASTRONGROOMCLI")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("AWS_REGION", "us-east-1")
}

fn no_credential(out: &std::process::Output, what: &str) {
    for s in [SECRET, TOKEN] {
        assert!(
            !env::stdout(out).contains(s) && !env::stderr(out).contains(s),
            "{what}: an AWS credential appears in the output"
        );
    }
}

#[test]
fn aws_kms_keyholder_lifecycle() {
    let Some(moto) = start("aws_kms_keyholder_lifecycle") else {
        return;
    };
    let key = create_key(&moto);
    let other = create_key(&moto);
    let spec = |key: &str| format!("aws-kms:key={key},endpoint={}", moto.endpoint);

    let e = Env::new();
    e.init();
    e.put("core/app", "API_TOKEN", "tok-123");

    // add
    let mut c = e.sr();
    aws(&mut c).args([
        "-vvv",
        "keyholder",
        "add",
        "--new-keyholder",
        &spec(&key),
        "--json",
    ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", env::stderr(&out));
    no_credential(&out, "keyholder add");
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["kind"], "aws-kms");
    let id = added["id"].as_str().unwrap().to_owned();

    // unlock with KMS alone
    let mut c = e.bare();
    aws(&mut c).args([
        "-vvv",
        "--keyholder",
        &spec(&key),
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", env::stderr(&out));
    assert_eq!(env::stdout(&out), "tok-123");
    no_credential(&out, "unlock");

    // rotate: ReEncrypt in KMS, in place (same id)
    let mut c = e.bare();
    aws(&mut c).args([
        "--keyholder",
        &spec(&key),
        "keyholder",
        "rotate",
        &id,
        "--new-keyholder",
        &spec(&key),
    ]);
    let rotated = json(c);
    assert_eq!(rotated["id"], id.as_str());
    let mut c = e.bare();
    aws(&mut c).args(["--keyholder", &spec(&key), "get", "core/app", "API_TOKEN"]);
    c.assert().success().stdout("tok-123");

    // another KMS key: a wrong key
    let mut c = e.bare();
    aws(&mut c).args(["--keyholder", &spec(&other), "get", "core/app", "API_TOKEN"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        env::stderr(&out).contains("written with another key"),
        "{}",
        env::stderr(&out)
    );

    // an unreachable endpoint: named, retryable, no credential in the message
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut c = e.bare();
    aws(&mut c).args([
        "--keyholder",
        &format!("aws-kms:key={key},endpoint={closed},timeout=3"),
        "get",
        "core/app",
        "API_TOKEN",
    ]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = env::stderr(&out);
    assert!(err.contains(&closed) && err.contains("retry"), "{err}");
    no_credential(&out, "unreachable");

    // a credential on the command line is refused
    let mut c = e.bare();
    c.args([
        "--keyholder",
        &format!("aws-kms:key={key},secret-access-key=abc"),
        "status",
    ]);
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        env::stderr(&out).contains("command line"),
        "{}",
        env::stderr(&out)
    );

    // remove
    let mut c = e.sr();
    c.args(["keyholder", "remove", &id]);
    c.assert().success();
    let mut c = e.bare();
    aws(&mut c).args(["--keyholder", &spec(&key), "status"]);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        env::stderr(&out).contains("no aws-kms keyholder"),
        "{}",
        env::stderr(&out)
    );
}
