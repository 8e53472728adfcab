//! Shared helpers of the integration tests (included with `#[path]`).
#![allow(dead_code)]

use strongroom_crypto::VaultId;
use strongroom_recovery::RawKek;
use strongroom_sharing::{
    FingerprintConfirmed, Identity, Pins, Role, Session, create, join, unlock,
};
use strongroom_store::{Batch, Expect, MemoryStore, ReadView, ScanRange, Store, Table};

/// A fast keyholder for tests (HKDF only).
pub(crate) fn kek() -> RawKek {
    RawKek::generate().unwrap()
}

/// A member: identity, keyholder and pins, as one person's device holds them.
pub(crate) struct Person {
    pub(crate) identity: Identity,
    pub(crate) kek: RawKek,
    pub(crate) pins: Pins,
}

impl Person {
    pub(crate) fn new(name: &str) -> Self {
        Self {
            identity: Identity::generate(name).unwrap(),
            kek: kek(),
            pins: Pins::new(),
        }
    }

    pub(crate) fn with_identity(identity: Identity) -> Self {
        Self {
            identity,
            kek: kek(),
            pins: Pins::new(),
        }
    }

    pub(crate) fn id(&self) -> strongroom_crypto::MemberId {
        self.identity.member_id()
    }

    pub(crate) fn unlock(
        &mut self,
        store: &dyn Store,
        vault: VaultId,
    ) -> Result<Session, strongroom_sharing::SharingError> {
        unlock(store, vault, Some(self.id()), &self.kek, &mut self.pins)
    }

    pub(crate) fn join(&mut self, store: &dyn Store, vault: VaultId) -> Session {
        join(store, vault, &self.identity, &[&self.kek], &mut self.pins).unwrap()
    }
}

/// A vault created by `owner`; returns the vault id and the owner's session.
pub(crate) fn new_vault(store: &dyn Store, owner: &mut Person) -> (VaultId, Session) {
    let vault = VaultId::generate().unwrap();
    let (session, _) = create(store, vault, &owner.identity, &[&owner.kek]).unwrap();
    owner.pins = session.pins().clone();
    (vault, session)
}

/// `admin` adds `who` (fingerprint confirmed) and `who` joins.
pub(crate) fn add_and_join(
    store: &dyn Store,
    vault: VaultId,
    admin: &mut Session,
    who: &mut Person,
    role: Role,
) -> Session {
    let public = who.identity.public().clone();
    let ok = public
        .confirm_fingerprint(&public.fingerprint().to_string())
        .unwrap();
    admin.add_member(store, &public, role, ok).unwrap();
    who.join(store, vault)
}

/// Confirms `p`'s fingerprint as a user reading it would.
pub(crate) fn confirmed(p: &strongroom_sharing::PublicIdentity) -> FingerprintConfirmed {
    p.confirm_fingerprint(&p.fingerprint().to_string()).unwrap()
}

/// A copy of every row of `src` in a fresh memory store (logs appended in order).
pub(crate) fn copy_store(src: &dyn ReadView) -> MemoryStore {
    let dst = MemoryStore::new();
    let mut batch = Batch::new();
    for table in Table::ALL {
        let mut cursor = None;
        loop {
            let page = src
                .scan(table, &ScanRange::all(), cursor.as_ref(), 1000)
                .unwrap();
            for row in page.rows {
                if table.is_log() {
                    let seq = strongroom_store::parse_log_key(table, &row.key).unwrap();
                    batch.append(table, seq, row.value);
                } else {
                    batch.put(table, row.key, row.value, Expect::Any);
                }
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
    }
    if !batch.is_empty() {
        dst.commit(&batch).unwrap();
    }
    dst
}

/// Row key of a grant (mirrors the documented layout: "g" ‖ epoch ‖ member id).
pub(crate) fn grant_key(epoch: u32, member: strongroom_crypto::MemberId) -> Vec<u8> {
    let mut k = vec![b'g'];
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(member.as_bytes());
    k
}

/// Row key of a chain link ("c" ‖ epoch).
pub(crate) fn chain_key(epoch: u32) -> Vec<u8> {
    let mut k = vec![b'c'];
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// Key of log entry `seq`.
pub(crate) fn log_key(seq: u64) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}
