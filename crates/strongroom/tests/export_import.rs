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
