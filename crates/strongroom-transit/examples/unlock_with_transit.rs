//! A vault whose member unlocks with an OpenBao / Vault Transit key: created with a
//! passphrase, given a Transit keyholder, opened with Transit alone, then moved to a rotated
//! Transit key version with a rewrap in the server.
//!
//! ```sh
//! bao server -dev -dev-root-token-id=dev-only &        # in another terminal
//! export BAO_ADDR=http://127.0.0.1:8200 BAO_TOKEN=dev-only
//! bao secrets enable transit && bao write -f transit/keys/strongroom derived=true
//! printf %s "$BAO_TOKEN" > /tmp/bao.token
//! STRONGROOM_TRANSIT_ADDR=$BAO_ADDR STRONGROOM_TRANSIT_TOKEN_FILE=/tmp/bao.token \
//!   cargo run -p strongroom-transit --example unlock_with_transit
//! ```

use std::sync::Arc;
use std::time::Instant;

use strongroom::recovery::{PassphraseKeyholder, Profile};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Vault};
use strongroom_transit::secrecy::SecretString;
use strongroom_transit::{TransitAuth, TransitConfig, TransitKeyholder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("STRONGROOM_TRANSIT_ADDR")
        .map_err(|_| "set STRONGROOM_TRANSIT_ADDR to the server's address")?;
    let token_file = std::env::var("STRONGROOM_TRANSIT_TOKEN_FILE")
        .map_err(|_| "set STRONGROOM_TRANSIT_TOKEN_FILE to a file holding a token")?;
    let token = SecretString::from(std::fs::read_to_string(token_file)?.trim().to_owned());
    let key = std::env::var("STRONGROOM_TRANSIT_KEY").unwrap_or_else(|_| "strongroom".into());
    let transit =
        TransitKeyholder::connect(TransitConfig::new(&addr, &key, TransitAuth::Token(token)))?;

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let pass = PassphraseKeyholder::new(
        &SecretString::from("an example passphrase"),
        Profile::Constrained,
    )?;
    let (vault, _) = Vault::create(Arc::clone(&store), &pass, &CreateOptions::default())?;
    vault.put("core/app", "DB_PASSWORD", b"hunter2")?;
    let info = vault.add_keyholder(&transit)?;
    println!("added {} keyholder {}", info.kind, info.id_hex());
    drop(vault);

    let t = Instant::now();
    let vault = Vault::open(Arc::clone(&store))?.unlock(&transit)?;
    println!("unlocked with Transit in {:?}", t.elapsed());
    assert_eq!(
        vault.get("core/app", "DB_PASSWORD")?.expose_secret(),
        b"hunter2"
    );
    // After `bao write -f transit/keys/<key>/rotate`, this rewraps the stanza in the server.
    let same = vault.rotate_keyholder(&info.id, &transit)?;
    println!(
        "rotated keyholder {} in place (Transit key version {})",
        same.id_hex(),
        transit.key_info()?.latest_version
    );
    Ok(())
}
