//! Project Wycheproof vectors (tests/data/wycheproof, Apache-2.0) run through strongroom's
//! own AEAD and HKDF interfaces.

use serde::Deserialize;
use strongroom_crypto::Key256;
use strongroom_crypto::aead::{Aead, BodyKey, Suite, WrapKey};

#[derive(Deserialize)]
struct File<G> {
    algorithm: String,
    #[serde(rename = "numberOfTests")]
    number_of_tests: usize,
    #[serde(rename = "testGroups")]
    groups: Vec<G>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadGroup {
    key_size: usize,
    iv_size: usize,
    tag_size: usize,
    tests: Vec<AeadCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadCase {
    tc_id: usize,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: String,
}

fn load<G: for<'de> Deserialize<'de>>(name: &str) -> File<G> {
    let path = format!(
        "{}/tests/data/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector hex")
}

/// Runs every case of an AEAD file; returns (cases run, cases skipped as unsupported sizes).
fn run_aead(file: &str, make: &dyn Fn(&Key256) -> Box<dyn Aead>) -> (usize, usize) {
    let f: File<AeadGroup> = load(file);
    let mut run = 0;
    let mut skipped = 0;
    for g in &f.groups {
        for t in &g.tests {
            // strongroom only ever uses 256-bit keys and 128-bit tags. Nonce sizes other than
            // the suite's must be rejected with an error, which is checked below.
            if g.key_size != 256 || g.tag_size != 128 {
                skipped += 1;
                continue;
            }
            let key = Key256::from_slice(&h(&t.key)).unwrap();
            let cipher = make(&key);
            let (iv, aad, msg, ct, tag) = (h(&t.iv), h(&t.aad), h(&t.msg), h(&t.ct), h(&t.tag));
            let valid = t.result == "valid";
            if g.iv_size != cipher.nonce_len() * 8 {
                let mut buf = msg.clone();
                assert!(
                    cipher.seal_detached(&iv, &aad, &mut buf).is_err(),
                    "{file} tc {}: nonce of {} bits must be refused",
                    t.tc_id,
                    g.iv_size
                );
                assert!(!valid || g.iv_size != cipher.nonce_len() * 8);
                run += 1;
                continue;
            }
            // open
            let mut buf = ct.clone();
            let opened = cipher.open_detached(&iv, &aad, &mut buf, &tag);
            if valid {
                opened.unwrap_or_else(|e| panic!("{file} tc {}: {e}", t.tc_id));
                assert_eq!(buf, msg, "{file} tc {}", t.tc_id);
                // seal reproduces ct and tag
                let mut buf = msg.clone();
                let got = cipher.seal_detached(&iv, &aad, &mut buf).unwrap();
                assert_eq!(buf, ct, "{file} tc {}", t.tc_id);
                assert_eq!(got.to_vec(), tag, "{file} tc {}", t.tc_id);
            } else {
                assert!(opened.is_err(), "{file} tc {} must fail", t.tc_id);
            }
            run += 1;
        }
    }
    let total: usize = f.groups.iter().map(|g| g.tests.len()).sum();
    assert_eq!(total, f.number_of_tests, "{} file is complete", f.algorithm);
    (run, skipped)
}

#[test]
fn aes_256_gcm() {
    let (run, _) = run_aead("aes_gcm_test.json", &|k| {
        Box::new(BodyKey::new(Suite::Aes256Gcm, k))
    });
    assert!(run > 100, "only {run} AES-256-GCM cases ran");
}

#[test]
fn chacha20_poly1305() {
    let (run, skipped) = run_aead("chacha20_poly1305_test.json", &|k| {
        Box::new(BodyKey::new(Suite::ChaCha20Poly1305, k))
    });
    assert_eq!(skipped, 0);
    assert!(run > 300, "{run}");
}

#[test]
fn xchacha20_poly1305() {
    let (run, skipped) = run_aead("xchacha20_poly1305_test.json", &|k| {
        Box::new(WrapKey::new(k))
    });
    assert_eq!(skipped, 0);
    assert!(run > 250, "{run}");
}

#[derive(Deserialize)]
struct HkdfGroup {
    tests: Vec<HkdfCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HkdfCase {
    tc_id: usize,
    ikm: String,
    salt: String,
    info: String,
    size: usize,
    okm: String,
    result: String,
}

#[test]
fn hkdf_sha256() {
    let f: File<HkdfGroup> = load("hkdf_sha256_test.json");
    let mut run = 0;
    for g in &f.groups {
        for t in &g.tests {
            let mut okm = vec![0u8; t.size];
            let salt = h(&t.salt);
            let res = strongroom_crypto::kdf::hkdf_sha256(
                Some(&salt),
                &h(&t.ikm),
                &[&h(&t.info)],
                &mut okm,
            );
            if t.result == "valid" {
                res.unwrap_or_else(|e| panic!("tc {}: {e}", t.tc_id));
                assert_eq!(hex::encode(&okm), t.okm, "tc {}", t.tc_id);
            } else {
                assert!(res.is_err(), "tc {} must fail", t.tc_id);
            }
            run += 1;
        }
    }
    assert_eq!(run, f.number_of_tests);
}
