//! The AWS KMS keyholder against a real KMS API server run locally: `moto_server` (PyPI
//! `moto[server]`) on a loopback port, started by each test and killed at its end. Keys are
//! created with boto3 (a dependency of moto). Without `moto_server` the tests print
//! `SKIPPED:` and pass, unless `STRONGROOM_REQUIRE_MOTO=1`, which makes that a failure.
//!
//! moto does not check SigV4 signatures, IAM policies or a disabled key's state on Decrypt,
//! so those refusals are not exercised here (their mapping is unit-tested); the JSON
//! protocol, encryption contexts, ReEncrypt, DescribeKey and the error bodies are moto's
//! implementation of KMS.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strongroom_crypto::{CryptoError, Key256};
use strongroom_keyholder::{
    CustodyProblem, Keyholder, KeyholderError, Stanza, UnwrapCache, WrapContext, unwrap_any,
};
use strongroom_kms::secrecy::SecretString;
use strongroom_kms::{AwsCredentials, KmsConfig, KmsKeyholder};

const REGION: &str = "us-east-1";

fn ctx() -> WrapContext<'static> {
    WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-1/member-1",
    }
}

struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(name: &str) -> Option<Self> {
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
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{name}: moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Runs a boto3 KMS call and prints its result (a Python expression of `kms`).
    fn boto(&self, expr: &str) -> String {
        let script = format!(
            "import boto3\nkms = boto3.client('kms', region_name='{REGION}', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing')\nprint({expr})",
            self.endpoint
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3 {expr}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn create_key(&self) -> String {
        self.boto("kms.create_key()['KeyMetadata']['Arn']")
    }

    fn config(&self, key: &str) -> KmsConfig {
        KmsConfig::new(key, REGION, creds()).with_endpoint(&self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn creds() -> AwsCredentials {
    AwsCredentials::new(
        "AKIASTRONGROOMTEST",
        SecretString::from("strongroom-test-secret-key"),
        Some(SecretString::from("strongroom-test-session-token")),
    )
}

#[test]
fn encrypt_decrypt_reencrypt_and_errors() {
    let Some(moto) = Moto::start("encrypt_decrypt_reencrypt_and_errors") else {
        return;
    };
    let arn = moto.create_key();
    moto.boto(&format!(
        "kms.create_alias(AliasName='alias/strongroom', TargetKeyId='{arn}')"
    ));

    // By alias: resolved to the key ARN once, which the stanza names.
    let kh = KmsKeyholder::connect(moto.config("alias/strongroom")).unwrap();
    assert_eq!(kh.arn().unwrap(), arn);
    assert_eq!(kh.describe(), "aws-kms alias/strongroom");
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    assert_eq!(s.id, kh.stanza_id().unwrap());
    assert_eq!(
        KmsKeyholder::key_arn_of(&s).unwrap().as_deref(),
        Some(arn.as_str())
    );
    assert!(!s.body.windows(32).any(|w| w == key.expose_secret()));

    // A fresh keyholder by ARN (cache off) opens the stored bytes.
    let by_arn = KmsKeyholder::new(moto.config(&arn).with_cache(UnwrapCache::disabled())).unwrap();
    let stored = Stanza::decode(&s.encode()).unwrap();
    let (k, _) = unwrap_any(&by_arn, &ctx(), std::slice::from_ref(&stored)).unwrap();
    assert!(bool::from(k.ct_eq(&key)));

    // The encryption context binds the vault and member.
    let other = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-2/member-1",
    };
    assert!(matches!(
        by_arn.unwrap(&other, &stored),
        Err(KeyholderError::Crypto(CryptoError::Decrypt))
    ));

    // ReEncrypt to the same key and context: same id, a new blob, same key, no plaintext
    // out of KMS.
    // (moto's key-state calls want the bare key id.)
    let key_id = arn.rsplit('/').next().unwrap().to_owned();
    moto.boto(&format!(
        "kms.rotate_key_on_demand(KeyId='{key_id}')['KeyId']"
    ));
    let r = kh.rewrap(&ctx(), &stored).unwrap().expect("rewrapped");
    assert_eq!(r.id, stored.id);
    assert_ne!(r.body, stored.body);
    assert!(bool::from(
        by_arn.unwrap(&ctx(), &r).unwrap().unwrap().ct_eq(&key)
    ));

    // Another KMS key: not this keyholder's, a wrong key.
    let other_arn = moto.create_key();
    let other_kh = KmsKeyholder::new(moto.config(&other_arn)).unwrap();
    assert!(other_kh.unwrap(&ctx(), &r).unwrap().is_none());
    assert!(matches!(
        unwrap_any(&other_kh, &ctx(), std::slice::from_ref(&r)),
        Err(KeyholderError::WrongKey { .. })
    ));

    // A missing alias, a disabled key: custody errors that say what to do.
    match KmsKeyholder::connect(moto.config("alias/absent")).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Missing, "{}", c.what);
            assert!(c.what.contains("alias/absent"), "{}", c.what);
        }
        e => panic!("{e:?}"),
    }
    // A disabled key is refused when the keyholder is set up (moto reports the state in
    // DescribeKey but, unlike KMS, still decrypts with it).
    moto.boto(&format!("kms.disable_key(KeyId='{key_id}')"));
    match KmsKeyholder::connect(moto.config(&arn)).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Denied, "{}", c.what);
            assert!(c.what.contains("enable it"), "{}", c.what);
        }
        e => panic!("{e:?}"),
    }
    moto.boto(&format!("kms.enable_key(KeyId='{key_id}')"));
    KmsKeyholder::connect(moto.config(&arn)).unwrap();
    latency(&moto, &arn);
}

/// Prints the unlock latency (one KMS Decrypt through the keyholder, cache off) next to the
/// raw API call it wraps (boto3's Decrypt of a 32-byte key, timed inside one Python process).
fn latency(moto: &Moto, arn: &str) {
    const N: u32 = 50;
    let kh = KmsKeyholder::new(moto.config(arn).with_cache(UnwrapCache::disabled())).unwrap();
    let warm = KmsKeyholder::new(moto.config(arn)).unwrap();
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    kh.unwrap(&ctx(), &s).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        kh.unwrap(&ctx(), &s).unwrap().unwrap();
    }
    let unwrap = t.elapsed() / N;
    warm.unwrap(&ctx(), &s).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        warm.unwrap(&ctx(), &s).unwrap().unwrap();
    }
    let cached = t.elapsed() / N;
    let raw_us = moto.boto(&format!(
        "(lambda time, blob: (lambda t0: [kms.decrypt(CiphertextBlob=blob, KeyId='{arn}', EncryptionContext={{'a': 'b'}}) for _ in range({N})] and (time.perf_counter() - t0) / {N} * 1e6)(time.perf_counter()))(__import__('time'), kms.encrypt(KeyId='{arn}', Plaintext=b'0' * 32, EncryptionContext={{'a': 'b'}})['CiphertextBlob'])"
    ));
    println!(
        "LATENCY aws-kms (moto_server, http, loopback, mean of {N}): keyholder unwrap {unwrap:?}, from the cache {cached:?}; raw KMS Decrypt with boto3 {:.0}µs",
        raw_us.parse::<f64>().unwrap_or(f64::NAN)
    );
}

#[test]
fn unreachable_endpoint_and_the_cache() {
    let Some(mut moto) = Moto::start("unreachable_endpoint_and_the_cache") else {
        return;
    };
    let arn = moto.create_key();
    let cache = UnwrapCache::new(4, Duration::from_mins(1));
    let config = moto.config(&arn).with_cache(cache.clone());
    let kh = KmsKeyholder::new(config.clone()).unwrap();
    let key = Key256::generate().unwrap();
    let s = kh.wrap(&ctx(), &key).unwrap();
    assert!(kh.unwrap(&ctx(), &s).unwrap().is_some());
    let _ = moto.child.kill();
    let _ = moto.child.wait();

    // A restarted handle with the same configuration unlocks from the cache.
    let restarted = KmsKeyholder::new(config.clone()).unwrap();
    assert!(bool::from(
        restarted.unwrap(&ctx(), &s).unwrap().unwrap().ct_eq(&key)
    ));
    // Without it: a clear, retryable error naming the endpoint.
    let no_cache = KmsKeyholder::new(
        config
            .with_cache(UnwrapCache::disabled())
            .with_timeout(Duration::from_secs(3)),
    )
    .unwrap();
    match no_cache.unwrap(&ctx(), &s).unwrap_err() {
        KeyholderError::Custody(c) => {
            assert_eq!(c.problem, CustodyProblem::Unreachable, "{}", c.what);
            assert!(c.is_retryable());
            assert!(c.what.contains(&moto.endpoint), "{}", c.what);
            let all = format!("{c:?} {}", c.what);
            assert!(!all.contains("strongroom-test-secret-key"), "{all}");
            assert!(!all.contains("strongroom-test-session-token"), "{all}");
        }
        e => panic!("{e:?}"),
    }
}
