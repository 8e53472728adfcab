//! Export to age (recipients and passphrase), import from dotenv and JSON, environment
//! variables for `run`.

use std::io::Read;
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use strongroom::recovery::RawKek;
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, ExportFormat, ExportTarget, Vault, VaultError};

fn vault() -> Vault {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (v, _) = Vault::create(
        store,
        &RawKek::generate().unwrap(),
        &CreateOptions::default(),
    )
    .unwrap();
    v.put("svc/api", "DB_PASSWORD", b"hunter2").unwrap();
    v.put("svc/api", "TOKEN", b"multi\nline \"quoted\" $x")
        .unwrap();
    v.put("other", "BINARY", &[0, 255, 7]).unwrap();
    v
}

fn decrypt_with(identity: &age::x25519::Identity, bytes: &[u8]) -> Vec<u8> {
    let d = age::Decryptor::new(bytes).unwrap();
    let mut r = d
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn export_to_age_recipient_and_back() {
    let v = vault();
    let id = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    let mut out = Vec::new();
    let r = v
        .export(
            Some("svc/api"),
            ExportFormat::Dotenv,
            ExportTarget::AgeRecipients(vec![
                id.to_public().to_string(),
                other.to_public().to_string(),
            ]),
            &mut out,
        )
        .unwrap();
    assert_eq!(r.secrets, 2);
    assert!(out.starts_with(b"age-encryption.org/v1"));
    assert!(!out.windows(7).any(|w| w == b"hunter2"));
    let plain = decrypt_with(&id, &out);
    assert_eq!(decrypt_with(&other, &out), plain);
    let text = String::from_utf8(plain.clone()).unwrap();
    assert!(text.contains("DB_PASSWORD=\"hunter2\""), "{text}");

    // Round trip through import into another vault.
    let w = vault();
    w.import("copy", ExportFormat::Dotenv, &plain).unwrap();
    assert_eq!(
        w.get("copy", "TOKEN").unwrap().expose_secret(),
        b"multi\nline \"quoted\" $x"
    );

    // Every export is audited.
    assert!(
        v.audit_list(0, 1000)
            .unwrap()
            .iter()
            .any(|e| e.action == strongroom::Action::Export)
    );
}

#[test]
fn export_all_as_json_to_a_passphrase() {
    let v = vault();
    let mut out = Vec::new();
    let pass = SecretString::from("correct horse battery staple".to_owned());
    v.export(
        None,
        ExportFormat::Json,
        ExportTarget::AgePassphrase(pass.clone()),
        &mut out,
    )
    .unwrap();
    let d = age::Decryptor::new(&out[..]).unwrap();
    assert!(d.is_scrypt());
    let id = age::scrypt::Identity::new(SecretString::from(pass.expose_secret().to_owned()));
    let mut r = d
        .decrypt(std::iter::once(&id as &dyn age::Identity))
        .unwrap();
    let mut json = Vec::new();
    r.read_to_end(&mut json).unwrap();
    let w = vault();
    let rep = w
        .import("ignored-default", ExportFormat::Json, &json)
        .unwrap();
    assert_eq!(rep.secrets, 3);
    assert_eq!(
        w.get("other", "BINARY").unwrap().expose_secret(),
        &[0, 255, 7]
    );
}

#[test]
fn plaintext_and_refusals() {
    let v = vault();
    let mut out = Vec::new();
    v.export(
        Some("svc/api"),
        ExportFormat::Json,
        ExportTarget::Plaintext,
        &mut out,
    )
    .unwrap();
    assert!(String::from_utf8(out).unwrap().contains("hunter2"));
    let mut out = Vec::new();
    assert!(matches!(
        v.export(
            None,
            ExportFormat::Dotenv,
            ExportTarget::Plaintext,
            &mut out
        ),
        Err(VaultError::Transfer { .. })
    ));
    assert!(
        v.export(
            Some("svc/api"),
            ExportFormat::Dotenv,
            ExportTarget::AgeRecipients(vec![]),
            &mut out
        )
        .is_err()
    );
    assert!(
        v.export(
            Some("svc/api"),
            ExportFormat::Dotenv,
            ExportTarget::AgeRecipients(vec!["age1notarecipient".into()]),
            &mut out
        )
        .is_err()
    );
    // a malformed import writes nothing
    assert!(
        v.import("svc/api", ExportFormat::Dotenv, b"GOOD=1\nbad line\n")
            .is_err()
    );
    assert!(matches!(
        v.get("svc/api", "GOOD"),
        Err(VaultError::NotFound { .. })
    ));
}

#[test]
fn env_vars_for_run() {
    let v = vault();
    let vars = v.env_vars("svc/api").unwrap();
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["DB_PASSWORD", "TOKEN"]);
    v.put("svc/api", "not-an-env-name", b"x").unwrap();
    let e = v.env_vars("svc/api").unwrap_err().to_string();
    assert!(
        e.contains("not-an-env-name") && !e.contains("hunter2"),
        "{e}"
    );
}

fn dotenv_of(n: usize) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut text = String::new();
    for i in 0..n {
        let _ = writeln!(text, "KEY_{i}=\"value {i}\"");
    }
    text.into_bytes()
}

/// An import is one commit: a failure at any store operation leaves none of its secrets
/// (before, each secret was its own put and a failure or kill -9 left a prefix).
#[test]
fn import_is_all_or_nothing() {
    use strongroom::store::FaultyStore;
    let input = dotenv_of(40);
    let mut op = 0;
    loop {
        let faulty = Arc::new(FaultyStore::new(MemoryStore::new()));
        let store: Arc<dyn Store> = faulty.clone();
        let kek = RawKek::generate().unwrap();
        let (v, _) = Vault::create(store, &kek, &CreateOptions::default()).unwrap();
        let start = faulty.ops();
        faulty.crash_at(start + op);
        let result = v.import("bulk", ExportFormat::Dotenv, &input);
        faulty.revive();
        let fresh = Vault::open(faulty.clone() as Arc<dyn Store>)
            .unwrap()
            .unlock(&kek)
            .unwrap();
        let n = fresh.list("bulk").unwrap().len();
        match result {
            Ok(report) => {
                assert_eq!((report.secrets, report.written, n), (40, 40, 40));
                assert!(op > 0, "the import did not touch the store");
                break;
            }
            Err(e) => assert_eq!(
                n, 0,
                "a failed import at operation {op} left {n} secrets: {e}"
            ),
        }
        op += 1;
    }
}

#[test]
fn import_twice_changes_nothing_and_duplicates_are_refused() {
    let v = vault();
    let input = dotenv_of(5);
    let first = v.import("bulk", ExportFormat::Dotenv, &input).unwrap();
    assert_eq!((first.written, first.unchanged), (5, 0));
    let again = v.import("bulk", ExportFormat::Dotenv, &input).unwrap();
    assert_eq!((again.written, again.unchanged), (0, 5));
    assert!(v.list("bulk").unwrap().iter().all(|m| m.version == 1));
    // One changed value: one new version.
    let changed = v
        .import(
            "bulk",
            ExportFormat::Dotenv,
            b"KEY_0=\"new\"\nKEY_1=\"value 1\"\n",
        )
        .unwrap();
    assert_eq!((changed.written, changed.unchanged), (1, 1));
    assert_eq!(v.get("bulk", "KEY_0").unwrap().meta().version, 2);

    let err = v
        .import(
            "dup",
            ExportFormat::Dotenv,
            b"A=1\nB=2\n# c\nA=3\nB=\"multi\nline\"\nB=5\n",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("dup/A (line 1 and line 4)"), "{err}");
    assert!(err.contains("dup/B (line 2 and line 5)"), "{err}");
    assert!(err.contains("dup/B (line 2 and line 7)"), "{err}");
    assert!(v.list("dup").unwrap().is_empty(), "nothing is imported");
    let json = br#"{"format":"strongroom-export","version":1,"secrets":[
        {"name":"X","value":"1"},{"name":"Y","value":"2"},{"name":"X","value":"3"}]}"#;
    let err = v
        .import("dupj", ExportFormat::Json, json)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dupj/X (entry 1 and entry 3)"), "{err}");
}

/// A PEM key in a double-quoted dotenv value spanning lines imports as dotenvy and
/// docker compose read it, and exports back to a file that reads the same.
#[test]
fn multiline_dotenv_values_import_and_export() {
    let v = vault();
    let pem =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"; // pragma: allowlist secret
    let input = format!("TLS_KEY=\"{pem}\"\nOTHER=x\n");
    v.import("tls", ExportFormat::Dotenv, input.as_bytes())
        .unwrap();
    assert_eq!(
        v.get("tls", "TLS_KEY").unwrap().expose_secret(),
        pem.as_bytes()
    );
    let mut out = Vec::new();
    v.export(
        Some("tls"),
        ExportFormat::Dotenv,
        ExportTarget::Plaintext,
        &mut out,
    )
    .unwrap();
    let w = vault();
    w.import("tls", ExportFormat::Dotenv, &out).unwrap();
    assert_eq!(
        w.get("tls", "TLS_KEY").unwrap().expose_secret(),
        pem.as_bytes()
    );
}
