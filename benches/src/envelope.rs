//! Criterion benches of strongroom-envelope: seal and open at 64 B, 1 KiB, 64 KiB and
//! 1 MiB, and rewrap.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom_crypto::{RecordId, VaultId};
use strongroom_envelope::{Epoch, RecordContext, Suite, VaultKey, open, rewrap, seal};

fn envelope(c: &mut Criterion) {
    let vk = VaultKey::generate(Epoch(1)).unwrap();
    let vk2 = VaultKey::generate(Epoch(2)).unwrap();
    let ctx = RecordContext {
        vault_id: VaultId::from_bytes([1; 16]),
        record_id: RecordId::from_bytes([2; 16]),
        version: 1,
    };
    let mut g = c.benchmark_group("envelope");
    for n in strongroom_benches::ratios_envelope::SIZES {
        let pt = vec![0x5au8; n];
        g.throughput(Throughput::Bytes(n as u64));
        g.bench_with_input(BenchmarkId::new("seal", n), &pt, |b, pt| {
            b.iter(|| seal(&vk, Suite::Aes256Gcm, &ctx, pt).unwrap());
        });
        let sealed = seal(&vk, Suite::Aes256Gcm, &ctx, &pt).unwrap();
        g.bench_with_input(BenchmarkId::new("open", n), &sealed, |b, s| {
            b.iter(|| open(&vk, &ctx, &s.body, s.wrapped_dek.as_bytes()).unwrap());
        });
    }
    let sealed = seal(&vk, Suite::Aes256Gcm, &ctx, b"x").unwrap();
    g.throughput(Throughput::Bytes(32));
    g.bench_function(BenchmarkId::new("rewrap", 32), |b| {
        b.iter(|| rewrap(&vk, &vk2, &ctx, sealed.wrapped_dek.as_bytes()).unwrap());
    });
    g.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
