//! The C2SP age testkit (tests/data/age-testkit, from C2SP/CCTV `age/testdata`) for the
//! hybrid post-quantum recipient type `mlkem768x25519`: every `hybrid*` file, through
//! [`strongroom::decrypt_age`] (the import path) with the file's identities. A `success`
//! file must decrypt to the payload whose SHA-256 the file names; every other file must be
//! refused, header failures (bad arguments, non-canonical or wrongly sized values, a
//! low-order X25519 share) as invalid headers.

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};
use strongroom::age::secrecy::SecretString;

struct Case {
    name: String,
    expect: String,
    payload: Option<String>,
    identities: Vec<String>,
    body: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/age-testkit");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains("hybrid") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
        let header = std::str::from_utf8(&bytes[..split]).unwrap();
        let mut body = bytes[split + 2..].to_vec();
        let (mut expect, mut payload, mut identities) = (String::new(), None, Vec::new());
        for line in header.lines() {
            let (k, v) = line.split_once(": ").unwrap();
            match k {
                "expect" => v.clone_into(&mut expect),
                "payload" => payload = Some(v.to_owned()),
                "identity" => identities.push(v.to_owned()),
                "compressed" => {
                    assert_eq!(v, "zlib");
                    body = miniz_oxide::inflate::decompress_to_vec_zlib(&body).unwrap();
                }
                _ => {}
            }
        }
        out.push(Case {
            name,
            expect,
            payload,
            identities,
            body,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
fn c2sp_age_testkit_hybrid_files() {
    let cases = cases();
    assert_eq!(
        cases.len(),
        19,
        "every hybrid file of the testkit is vendored"
    );
    let mut failures = Vec::new();
    for c in &cases {
        let identity_file = SecretString::from(c.identities.join("\n"));
        let result = strongroom::decrypt_age(&c.body, &identity_file);
        let verdict = match (c.expect.as_str(), &result) {
            ("success", Ok(plain)) => {
                let got = hex::encode(Sha256::digest(&plain[..]));
                (Some(&got) == c.payload.as_ref())
                    .then_some(())
                    .ok_or(format!("payload hash {got}"))
            }
            ("success", Err(e)) => Err(format!("refused: {e}")),
            ("header failure", Err(e)) if e.to_string().contains("header") => Ok(()),
            ("no match", Err(e)) if e.to_string().contains("none of the identities") => Ok(()),
            (_, Err(e)) if c.expect != "success" => {
                // Refused, with another class of error than the file names.
                Err(format!("refused as expected, but as: {e}"))
            }
            (_, Ok(_)) => Err("decrypted, but must be refused".to_owned()),
            _ => unreachable!(),
        };
        match verdict {
            Ok(()) => println!("ok   {} ({})", c.name, c.expect),
            Err(why) => failures.push(format!("{} (expect {}): {why}", c.name, c.expect)),
        }
    }
    assert!(
        failures.is_empty(),
        "testkit failures:\n{}",
        failures.join("\n")
    );
}
