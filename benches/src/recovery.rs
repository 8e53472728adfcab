//! Criterion benches of strongroom-recovery: unlock (unwrap) time of a passphrase stanza
//! per Argon2id profile, and of a recovery key and a raw KEK (HKDF only).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use strongroom_crypto::Key256;
use strongroom_recovery::secrecy::{ExposeSecret, SecretString};
use strongroom_recovery::{
    Keyholder, PassphraseKeyholder, Profile, RawKek, RecoveryKey, WrapContext,
};

fn recovery(c: &mut Criterion) {
    let key = Key256::generate().unwrap();
    let ctx = WrapContext {
        purpose: "strongroom/v1/member-key",
        subject: b"vault-1/member-1",
    };
    let mut g = c.benchmark_group("recovery");

    // Argon2id dominates: few samples, each a full unlock.
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for (name, profile) in [
        ("default", Profile::Default),
        ("constrained", Profile::Constrained),
    ] {
        let kh =
            PassphraseKeyholder::new(&SecretString::from("correct horse battery staple"), profile)
                .unwrap();
        let stanza = kh.wrap(&ctx, &key).unwrap();
        g.bench_function(BenchmarkId::new("unlock_passphrase", name), |b| {
            b.iter(|| kh.unwrap(&ctx, &stanza).unwrap().unwrap());
        });
    }

    g.sample_size(100);
    g.measurement_time(Duration::from_secs(3));
    let rk = RecoveryKey::generate().unwrap();
    let stanza = rk.wrap(&ctx, &key).unwrap();
    g.bench_function(BenchmarkId::new("unlock_recovery_key", 32), |b| {
        b.iter(|| rk.unwrap(&ctx, &stanza).unwrap().unwrap());
    });
    let text = rk.to_text();
    g.bench_function(BenchmarkId::new("parse_recovery_key", 70), |b| {
        b.iter(|| RecoveryKey::parse(text.expose_secret()).unwrap());
    });
    let kek = RawKek::generate().unwrap();
    let stanza = kek.wrap(&ctx, &key).unwrap();
    g.bench_function(BenchmarkId::new("unlock_raw_kek", 32), |b| {
        b.iter(|| kek.unwrap(&ctx, &stanza).unwrap().unwrap());
    });
    g.finish();
}

criterion_group!(benches, recovery);
criterion_main!(benches);
