//! Parses arbitrary bytes as a member grant (classical version 1 or hybrid X-Wing version 2),
//! an epoch chain link, a scope grant and a scope link, and tries to open what parses with fixed identities of both
//! kinds: must never panic, whatever parses must re-encode to the same bytes, and nothing
//! made of arbitrary bytes opens.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use strongroom_crypto::{MemberId, VaultId};
use strongroom_sharing::{ChainLink, Grant, Identity, KemKind, ScopeGrant, ScopeLink, VaultKey};

static IDENTITIES: LazyLock<[Identity; 2]> = LazyLock::new(|| {
    let member = MemberId::from_bytes([3; 16]);
    [KemKind::X25519, KemKind::XWing]
        .map(|kem| Identity::generate_kind(member, "fuzz", kem).unwrap())
});

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = Grant::decode(data) {
        assert_eq!(g.encode(), data);
        for id in IDENTITIES.iter() {
            // The recipient hash would have to match a fresh key: never by chance.
            assert!(g.open(g.vault_id(), id).is_none());
        }
    }
    if let Ok(l) = ChainLink::decode(data) {
        assert_eq!(l.encode(), data);
        let key = VaultKey::generate(l.epoch()).unwrap();
        assert!(l.open(VaultId::from_bytes([0; 16]), &key).is_none());
    }
    if let Ok(g) = ScopeGrant::decode(data) {
        assert_eq!(g.encode(), data);
        for id in IDENTITIES.iter() {
            assert!(g.open(g.vault_id(), id).is_none());
        }
    }
    if let Ok(l) = ScopeLink::decode(data) {
        assert_eq!(l.encode(), data);
        let key = VaultKey::generate(l.epoch()).unwrap();
        assert!(l.open(l.vault_id(), &key).is_none());
    }
});
