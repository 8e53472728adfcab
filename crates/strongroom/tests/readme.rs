//! The embedding example of the top-level README, run twice in a row on the same files as
//! a new user would run it: the second start must open the vault the first one made. The
//! flow below is the README's, line for line (only its paths are put in a temporary
//! directory and the environment variable is passed in); a test checks that they have not
//! drifted apart.

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use strongroom::sqlite::{SqliteOptions, SqliteStore};
use strongroom::{CreateOptions, FilePinStore, Vault, VaultError, recovery::RawKek};

/// The README's example. `in_dir` stands for the working directory, `env_var` for
/// `std::env::var`.
fn readme_flow(dir: &Path, encryption_key: &str) -> Result<(), Box<dyn Error>> {
    let in_dir = |p: &str| dir.join(p);
    let env_var = |_: &str| Ok::<_, std::env::VarError>(encryption_key.to_owned());
    // README:begin
    let store = Arc::new(SqliteStore::open(
        in_dir("app-vault.sqlite"),
        SqliteOptions::default(),
    )?);
    let pins = Arc::new(FilePinStore::new(in_dir("app-state/strongroom-pins"))?); // refuses a rolled-back vault
    let kek = RawKek::from_text(&env_var("ENCRYPTION_KEY")?)?; // hex or base64, 32 bytes
    let vault = match Vault::open(store.clone()) {
        Ok(locked) => locked.unlock_pinned(&kek, pins)?, // wrong key: error, nothing written
        Err(VaultError::NoVault) => Vault::create(store, &kek, &CreateOptions::default())?
            .0
            .pin_to(pins)?,
        Err(e) => return Err(e.into()),
    };
    let app = vault.namespace("core/billing")?; // a handle limited to one namespace
    app.put("STRIPE_KEY", b"sk_live_...")?;
    let key = app.get("STRIPE_KEY")?; // zeroized on drop, redacted Debug
    // README:end
    assert_eq!(key.expose_secret(), b"sk_live_...");
    Ok(())
}

#[test]
fn the_readme_embedding_example_runs_twice() {
    use strongroom::recovery::secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let kek = RawKek::generate().unwrap().to_base64();
    readme_flow(dir.path(), kek.expose_secret()).unwrap();
    readme_flow(dir.path(), kek.expose_secret()).unwrap();
    // The second start verified the pins the first one saved; two versions were written.
    let store = Arc::new(
        SqliteStore::open(
            dir.path().join("app-vault.sqlite"),
            SqliteOptions::default(),
        )
        .unwrap(),
    );
    let pins = Arc::new(FilePinStore::new(dir.path().join("app-state/strongroom-pins")).unwrap());
    let kek = RawKek::from_text(kek.expose_secret()).unwrap();
    let vault = Vault::open(store)
        .unwrap()
        .unlock_pinned(&kek, pins)
        .unwrap();
    assert_eq!(vault.pin_status(), Some(strongroom::PinStatus::Verified));
    assert_eq!(
        vault
            .get("core/billing", "STRIPE_KEY")
            .unwrap()
            .meta()
            .version,
        2
    );
}

#[test]
fn the_readme_shows_this_flow() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("```rust,ignore\nuse std::sync::Arc;")
        .expect("the embedding block");
    let block = &readme[start..];
    let block = &block[..block[3..].find("```").unwrap() + 3];
    let code: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("let ") || l.starts_with("Ok(") || l.starts_with("Err("))
        .collect();
    assert!(code.len() >= 8, "{code:?}");
    let src = include_str!("readme.rs");
    let flow = &src[src.find("// README:begin").unwrap()..src.find("// README:end").unwrap()];
    // Compared without comments, whitespace and trailing commas (rustfmt lays the tested
    // flow out differently from the README), with `in_dir("x")` read as `"x"` and
    // `env_var` as `std::env::var`.
    let normalize = |s: &str| {
        let mut t: String = s
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<String>()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .replace(",)", ")")
            .replace("env_var(", "std::env::var(");
        while let Some(at) = t.find("in_dir(\"") {
            let close = at + t[at..].find("\")").expect("in_dir(\"...\")") + 1;
            t.replace_range(close..=close, "");
            t.replace_range(at..at + "in_dir(".len(), "");
        }
        t
    };
    let flow = normalize(flow);
    for line in code {
        assert!(
            flow.contains(&normalize(line)),
            "the README line is not in the tested flow: {line}"
        );
    }
}
