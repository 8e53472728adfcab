//! A vault whose member unlocks with an AWS KMS key: created with a passphrase, given a KMS
//! keyholder, then opened with KMS alone (a second open comes from the keyholder's cache).
//!
//! ```sh
//! export AWS_REGION=eu-west-1                # and credentials: env, ~/.aws/credentials, AWS_PROFILE
//! STRONGROOM_KMS_KEY=alias/strongroom cargo run -p strongroom-kms --example unlock_with_kms
//! # against a local KMS API server (moto_server -p 5000):
//! AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 \
//!   STRONGROOM_KMS_ENDPOINT=http://127.0.0.1:5000 STRONGROOM_KMS_KEY=<key id> \
//!   cargo run -p strongroom-kms --example unlock_with_kms
//! ```

use std::sync::Arc;
use std::time::Instant;

use strongroom::recovery::{PassphraseKeyholder, Profile, secrecy::SecretString};
use strongroom::store::{MemoryStore, Store};
use strongroom::{CreateOptions, Vault};
use strongroom_kms::{AwsCredentials, KmsConfig, KmsKeyholder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var("STRONGROOM_KMS_KEY")
        .map_err(|_| "set STRONGROOM_KMS_KEY to a KMS key id, ARN or alias/NAME")?;
    let (credentials, region) = AwsCredentials::from_chain(&|name| std::env::var(name).ok())?;
    let region = region.ok_or("set AWS_REGION (or a region in the AWS config file)")?;
    let mut config = KmsConfig::new(&key, &region, credentials);
    if let Ok(endpoint) = std::env::var("STRONGROOM_KMS_ENDPOINT") {
        config = config.with_endpoint(&endpoint);
    }
    let kms = KmsKeyholder::connect(config)?;
    println!("KMS key {}", kms.arn()?);

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let pass = PassphraseKeyholder::new(
        &SecretString::from("an example passphrase"),
        Profile::Constrained,
    )?;
    let (vault, _) = Vault::create(Arc::clone(&store), &pass, &CreateOptions::default())?;
    vault.put("core/app", "DB_PASSWORD", b"hunter2")?;
    let info = vault.add_keyholder(&kms)?;
    println!("added {} keyholder {}", info.kind, info.id_hex());
    drop(vault);

    for attempt in ["first", "second (cached)"] {
        let t = Instant::now();
        let vault = Vault::open(Arc::clone(&store))?.unlock(&kms)?;
        println!("{attempt} unlock with KMS: {:?}", t.elapsed());
        assert_eq!(
            vault.get("core/app", "DB_PASSWORD")?.expose_secret(),
            b"hunter2"
        );
    }
    Ok(())
}
