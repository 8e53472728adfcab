//! Criterion benches of strongroom-sharing: granting an epoch key to N members (rekey) next
//! to age encrypting to N recipients, adding and removing a member, unlocking, and verifying
//! a membership log.

use std::cell::RefCell;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strongroom_benches::ratios_sharing::{MEMBERS, age_encrypt, fill_records, vault_with_members};
use strongroom_crypto::VaultId;
use strongroom_recovery::RawKek;
use strongroom_sharing::{FingerprintConfirmed, Identity, Membership, Pins, Role, create, unlock};
use strongroom_store::{MemoryStore, ReadView, ScanRange, Table};

fn sharing(c: &mut Criterion) {
    let mut g = c.benchmark_group("sharing");
    for n in MEMBERS {
        g.throughput(Throughput::Elements(n as u64));
        let (store, mut session) = vault_with_members(n);
        g.bench_function(BenchmarkId::new("grant", n), |b| {
            b.iter(|| session.rekey(&store).unwrap());
        });
        let recipients: Vec<age::x25519::Recipient> = (0..n)
            .map(|_| age::x25519::Identity::generate().to_public())
            .collect();
        g.bench_function(BenchmarkId::new("age_encrypt", n), |b| {
            b.iter(|| age_encrypt(&recipients));
        });
    }

    g.throughput(Throughput::Elements(1));
    let (store, mut session) = vault_with_members(10);
    g.bench_function(BenchmarkId::new("add_member", 10), |b| {
        b.iter_batched(
            || Identity::generate("new").unwrap(),
            |m| {
                let ok = FingerprintConfirmed::skip_verification_i_accept_the_risk(m.public());
                session
                    .add_member(&store, m.public(), Role::Member, ok)
                    .unwrap();
            },
            BatchSize::SmallInput,
        );
    });
    for records in [1_000usize, 100_000] {
        let (store, session) = vault_with_members(10);
        fill_records(&store, records);
        // Setup (an untimed add) and routine (the timed removal) both need the session.
        let session = RefCell::new(session);
        g.bench_function(BenchmarkId::new("remove_member", records), |b| {
            b.iter_batched(
                || {
                    let m = Identity::generate("leaver").unwrap();
                    let ok = FingerprintConfirmed::skip_verification_i_accept_the_risk(m.public());
                    session
                        .borrow_mut()
                        .add_member(&store, m.public(), Role::Member, ok)
                        .unwrap();
                    m.member_id()
                },
                |id| session.borrow_mut().remove_member(&store, id).unwrap(),
                BatchSize::SmallInput,
            );
        });
    }

    // Unlock of a 10-member vault with 10 epochs (raw KEK keyholder: no Argon2id).
    let store = MemoryStore::new();
    let owner = Identity::generate("owner").unwrap();
    let kek = RawKek::generate().unwrap();
    let vault = VaultId::generate().unwrap();
    let (mut s, _) = create(&store, vault, &owner, &[&kek]).unwrap();
    for i in 1..10 {
        let m = Identity::generate(&format!("m{i}")).unwrap();
        let ok = FingerprintConfirmed::skip_verification_i_accept_the_risk(m.public());
        s.add_member(&store, m.public(), Role::Member, ok).unwrap();
        s.rekey(&store).unwrap();
    }
    g.bench_function(BenchmarkId::new("unlock", 10), |b| {
        b.iter(|| unlock(&store, vault, None, &kek, &mut Pins::new()).unwrap());
    });
    let entries: Vec<Vec<u8>> = store
        .scan(Table::MemberLog, &ScanRange::all(), None, 1000)
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r.value)
        .collect();
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function(BenchmarkId::new("verify_log", entries.len()), |b| {
        b.iter(|| Membership::verify(entries.iter().map(Vec::as_slice)).unwrap());
    });
    g.finish();
}

criterion_group!(benches, sharing);
criterion_main!(benches);
