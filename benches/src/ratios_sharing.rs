//! Ratio cases of member sharing.
//!
//! - `sharing/grant/N`: granting a new epoch key to N members (a rekey: one Ed25519
//!   signature, one log append and one HPKE wrap per member, committed as one batch to a
//!   memory store) against the `age` crate encrypting a file key (a 32-byte payload) to the
//!   same N X25519 recipients, in the same run. Target: ratio >= 0.75. Every member is
//!   classical (X25519 grants), as the first release made them.
//! - `sharing/grant-hybrid/N`: the same rekey with N hybrid members (X-Wing grants) against
//!   N raw HPKE X-Wing seals of a 32-byte key (`strongroom_sharing::hazmat::xwing_seal`:
//!   the `hpke` crate's SealBase with X-Wing, HKDF-SHA256, ChaCha20-Poly1305, each
//!   recipient key parsed from its bytes as a grant does), in the same run. Target >= 0.75.
//! - `sharing/remove/100k-vs-1k-records`: removing a member from a vault whose store holds
//!   100 000 records against the same removal with 1 000 records. Removal touches no record,
//!   so the ratio (throughput with 100k / throughput with 1k) should stay near 1; the target
//!   0.5 means "less than twice as slow".

use std::hint::black_box;
use std::time::{Duration, Instant};

use strongroom_crypto::MemberId;
use strongroom_crypto::VaultId;
use strongroom_recovery::RawKek;
use strongroom_sharing::{FingerprintConfirmed, Identity, KemKind, Role, Session, create};
use strongroom_store::{Batch, Expect, MemoryStore, Store, Table};

use crate::{Ratio, compare};

/// Member counts of the grant cases.
pub const MEMBERS: [usize; 3] = [1, 10, 100];

/// A memory-store vault whose owner session has `members` members in all (owner included),
/// hybrid (X-Wing) identities.
pub fn vault_with_members(members: usize) -> (MemoryStore, Session) {
    vault_with_members_of(members, KemKind::XWing)
}

/// A memory-store vault of `members` members whose identities all use `kem`.
pub fn vault_with_members_of(members: usize, kem: KemKind) -> (MemoryStore, Session) {
    let store = MemoryStore::new();
    let owner = Identity::generate_kind(MemberId::generate().unwrap(), "owner", kem).unwrap();
    let kek = RawKek::generate().unwrap();
    let (mut session, _) = create(&store, VaultId::generate().unwrap(), &owner, &[&kek]).unwrap();
    for i in 1..members {
        let m = Identity::generate_kind(MemberId::generate().unwrap(), &format!("member {i}"), kem)
            .unwrap();
        let ok = FingerprintConfirmed::skip_verification_i_accept_the_risk(m.public());
        session
            .add_member(&store, m.public(), Role::Member, ok)
            .unwrap();
    }
    (store, session)
}

/// Puts `n` record-like rows (a wrapped DEK and a small sealed body each) into `store`.
pub fn fill_records(store: &MemoryStore, n: usize) {
    let mut batch = Batch::with_capacity(2000);
    for i in 0..n {
        let key = (i as u64).to_be_bytes().to_vec();
        batch
            .put(Table::Deks, key.clone(), vec![0xd5; 80], Expect::Any)
            .put(Table::Bodies, key, vec![0xb0; 256], Expect::Any);
        if batch.len() >= 2000 {
            store.commit(&batch).unwrap();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.commit(&batch).unwrap();
    }
}

/// The age side: a fresh file key wrapped to every recipient, header MAC, and a 32-byte
/// payload.
pub fn age_encrypt(recipients: &[age::x25519::Recipient]) -> Vec<u8> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .unwrap();
    let mut out = Vec::with_capacity(256 + 100 * recipients.len());
    let mut w = enc.wrap_output(&mut out).unwrap();
    std::io::Write::write_all(&mut w, &[0x42; 32]).unwrap();
    w.finish().unwrap();
    out
}

/// Removals per second: each removal (timed) follows an untimed add of a fresh member.
fn removals_per_sec(store: &MemoryStore, session: &mut Session, budget: Duration) -> f64 {
    let mut timed = Duration::ZERO;
    let mut n = 0u32;
    while timed < budget {
        let m = Identity::generate("leaver").unwrap();
        let ok = FingerprintConfirmed::skip_verification_i_accept_the_risk(m.public());
        session
            .add_member(store, m.public(), Role::Member, ok)
            .unwrap();
        let start = Instant::now();
        black_box(session.remove_member(store, m.member_id()).unwrap());
        timed += start.elapsed();
        n += 1;
    }
    f64::from(n) / timed.as_secs_f64()
}

/// All sharing cases.
pub fn cases(budget: Duration, rounds: usize) -> Vec<Ratio> {
    let mut out = Vec::new();
    for n in MEMBERS {
        let (store, mut session) = vault_with_members_of(n, KemKind::X25519);
        let recipients: Vec<age::x25519::Recipient> = (0..n)
            .map(|_| age::x25519::Identity::generate().to_public())
            .collect();
        let m = compare(
            rounds,
            budget,
            || (1, session.rekey(&store).unwrap()),
            || (1, age_encrypt(&recipients)),
        );
        out.push(
            Ratio::measured(format!("sharing/grant/{n}"), "age-x25519", &m, Some(0.75))
                .peer()
                .with("members", n.to_string()),
        );
    }

    for n in MEMBERS {
        let (store, mut session) = vault_with_members_of(n, KemKind::XWing);
        let keys: Vec<Vec<u8>> = session
            .membership()
            .members()
            .values()
            .map(|m| m.identity().encryption_key().to_vec())
            .collect();
        let m = compare(
            rounds,
            budget,
            || (1, session.rekey(&store).unwrap()),
            || {
                let sealed: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        strongroom_sharing::hazmat::xwing_seal(k, b"info", b"aad", &[0x42; 32])
                            .unwrap()
                    })
                    .collect();
                (1, sealed)
            },
        );
        out.push(
            Ratio::measured(
                format!("sharing/grant-hybrid/{n}"),
                "raw-hpke-xwing-seals",
                &m,
                Some(0.75),
            )
            .with("members", n.to_string()),
        );
    }

    let (small, mut s_small) = vault_with_members(10);
    fill_records(&small, 1_000);
    let (large, mut s_large) = vault_with_members(10);
    fill_records(&large, 100_000);
    let (mut best_small, mut best_large) = (0f64, 0f64);
    for _ in 0..rounds.max(1) {
        best_small = best_small.max(removals_per_sec(&small, &mut s_small, budget));
        best_large = best_large.max(removals_per_sec(&large, &mut s_large, budget));
    }
    out.push(
        Ratio::new(
            "sharing/remove/100k-vs-1k-records",
            "same removal, 1k records",
            best_large,
            best_small,
            Some(0.5),
        )
        // The same work at two sizes: near 1.0 either way.
        .peer()
        .with("members", "10"),
    );
    out
}
