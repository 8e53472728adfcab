//! Vault-level rows: the header in [`Table::Meta`] and the vault's metadata key wrapped under
//! each epoch in [`Table::Wraps`].
//!
//! The metadata key is a random 256-bit key made at creation. An ordinary vault-key
//! rotation keeps it (it is rewrapped under every new epoch). A member removal replaces it
//! (a new key under the new epoch, which the removed member does not hold): the header and
//! the epoch timestamp are authenticated again under the new key in the same batch, the
//! audit log continues under it after a link entry, and the rotation that follows moves
//! every index row to its new blind key. Keys derived from it
//! (`derive_key`: HKDF-SHA256, `info = label ‖ 0x00`): `index` under
//! `"strongroom/v1/index"`, `audit` under `"strongroom/v1/audit"`, `config` under
//! `"strongroom/v1/config"`.
//!
//! Specified in `docs/spec/meta.md`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use strongroom_crypto::aead::{WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::kdf::derive_key;
use strongroom_crypto::{Key256, VaultId};
use strongroom_envelope::{Epoch, Suite, VaultKey};
use strongroom_store::{ReadView, ScanRange, Table};
use subtle::ConstantTimeEq;

use crate::{Inconsistency, VaultError};

/// Row key of the vault header in [`Table::Meta`].
pub(crate) const HEADER_KEY: &[u8] = b"vault";
/// Prefix of failed-unlock marks in [`Table::Meta`].
pub(crate) const FAILED_UNLOCK_PREFIX: &[u8] = b"unlock-failure/";

/// The newest vault header version this build reads.
pub(crate) const HEADER_VERSION: u8 = 1;

/// Vault-wide settings, fixed at creation and authenticated with the metadata key.
///
/// Byte layout (version 1, 66 bytes):
///
/// ```text
/// 0   1   version = 1
/// 1   16  vault id
/// 17  8   created at (unix seconds)
/// 25  1   body suite id for new records
/// 26  4   versions kept per secret (history), >= 1
/// 30  4   rotation policy in days (0 = none)
/// 34  32  HMAC-SHA256(config key, "strongroom/v1/vault-header" ‖ bytes 0..34)
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) vault_id: VaultId,
    pub(crate) created_at: u64,
    pub(crate) suite: Suite,
    pub(crate) history: u32,
    pub(crate) rotation_days: u32,
    mac: [u8; 32],
}

impl Header {
    const FORMAT: &'static str = "vault header";

    pub(crate) fn new(
        vault_id: VaultId,
        created_at: u64,
        suite: Suite,
        history: u32,
        rotation_days: u32,
        keys: &MetaKeys,
    ) -> Self {
        let mut h = Self {
            vault_id,
            created_at,
            suite,
            history,
            rotation_days,
            mac: [0; 32],
        };
        h.mac = keys.mac(b"strongroom/v1/vault-header", &h.body());
        h
    }

    fn body(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(66);
        w.u8(HEADER_VERSION)
            .bytes(self.vault_id.as_bytes())
            .u64(self.created_at)
            .u8(self.suite.id())
            .u32(self.history)
            .u32(self.rotation_days);
        w.into_vec()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = self.body();
        b.extend_from_slice(&self.mac);
        b
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        if let Some(&v) = bytes.first()
            && v > HEADER_VERSION
        {
            return Err(VaultError::TooNew {
                found: v,
                supported: HEADER_VERSION,
            });
        }
        let corrupt = |source| VaultError::Corrupt {
            what: "vault header",
            source,
        };
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[HEADER_VERSION]).map_err(corrupt)?;
        let vault_id = VaultId::from_bytes(r.array("vault id").map_err(corrupt)?);
        let created_at = r.u64("created at").map_err(corrupt)?;
        let suite_id = r.u8("suite").map_err(corrupt)?;
        let suite = Suite::from_id(suite_id)
            .map_err(|_| corrupt(r.invalid("suite", "unknown body suite")))?;
        let history = r.u32("history").map_err(corrupt)?;
        let rotation_days = r.u32("rotation days").map_err(corrupt)?;
        let mac = r.array("mac").map_err(corrupt)?;
        r.finish().map_err(corrupt)?;
        if history == 0 {
            return Err(corrupt(r_invalid(
                "history",
                "must keep at least one version",
            )));
        }
        Ok(Self {
            vault_id,
            created_at,
            suite,
            history,
            rotation_days,
            mac,
        })
    }

    /// The same settings, authenticated under `keys` (a replaced metadata key).
    pub(crate) fn remac(&self, keys: &MetaKeys) -> Self {
        Self::new(
            self.vault_id,
            self.created_at,
            self.suite,
            self.history,
            self.rotation_days,
            keys,
        )
    }

    /// Checks the MAC (after unlock).
    pub(crate) fn verify(&self, keys: &MetaKeys) -> Result<(), VaultError> {
        let want = keys.mac(b"strongroom/v1/vault-header", &self.body());
        if bool::from(want.ct_eq(&self.mac)) {
            Ok(())
        } else {
            Err(VaultError::inconsistent(
                Inconsistency::MacMismatch,
                "the vault header's settings were modified outside strongroom (MAC mismatch)",
            ))
        }
    }
}

fn r_invalid(field: &'static str, reason: &'static str) -> strongroom_crypto::DecodeError {
    strongroom_crypto::DecodeError::Invalid {
        format: Header::FORMAT,
        field,
        reason,
    }
}

/// Keys derived from the vault's metadata key.
pub(crate) struct MetaKeys {
    root: Key256,
    pub(crate) index: Key256,
    pub(crate) audit: Key256,
    config: Key256,
    /// The blind index's namespace prefixes computed so far under `index`. They are not
    /// secret (storage sees each one as the first 16 bytes of a row key): remembering
    /// them saves every read, write and scan of a known namespace one of its two HMACs.
    ns_prefixes: Mutex<HashMap<String, [u8; 16]>>,
}

/// Namespaces whose prefix a [`MetaKeys`] remembers; past this the memo starts over.
const NS_PREFIX_MEMO: usize = 256;

impl MetaKeys {
    pub(crate) fn from_root(root: Key256) -> Self {
        Self {
            index: derive_key(&root, "strongroom/v1/index", &[]),
            audit: derive_key(&root, "strongroom/v1/audit", &[]),
            config: derive_key(&root, "strongroom/v1/config", &[]),
            root,
            ns_prefixes: Mutex::new(HashMap::new()),
        }
    }

    /// The blind index's prefix of `namespace`: the first 16 bytes of
    /// HMAC-SHA256(index key, `"ns" ‖ namespace`) (`docs/spec/index-entry.md`).
    pub(crate) fn ns_prefix(&self, namespace: &str) -> [u8; 16] {
        // A poisoned lock only means a panic elsewhere while the map was held; every entry
        // in it is still a correct prefix.
        let memo = || {
            self.ns_prefixes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(prefix) = memo().get(namespace) {
            return *prefix;
        }
        let tag = hmac32(&self.index, &[b"ns", namespace.as_bytes()]);
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&tag[..16]);
        let mut memo = memo();
        if memo.len() >= NS_PREFIX_MEMO {
            memo.clear();
        }
        memo.insert(namespace.to_owned(), prefix);
        prefix
    }

    pub(crate) fn root(&self) -> &Key256 {
        &self.root
    }

    pub(crate) fn mac(&self, label: &[u8], data: &[u8]) -> [u8; 32] {
        hmac32(&self.config, &[label, data])
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac32(key: &Key256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Row key of the metadata key wrapped under epoch `e`: `"m" ‖ e (u32 BE)`.
pub(crate) fn meta_key_row(epoch: Epoch) -> Vec<u8> {
    let mut k = b"m".to_vec();
    k.extend_from_slice(&epoch.0.to_be_bytes());
    k
}

fn meta_wrap_aad(vault: VaultId, epoch: Epoch) -> Vec<u8> {
    let mut aad = b"strongroom/v1/meta-key".to_vec();
    aad.extend_from_slice(vault.as_bytes());
    aad.extend_from_slice(&epoch.0.to_be_bytes());
    aad
}

/// Wraps the metadata key under `vk`.
pub(crate) fn wrap_meta(
    vault: VaultId,
    vk: &VaultKey,
    root: &Key256,
) -> Result<Vec<u8>, VaultError> {
    Ok(wrap_key(
        &WrapKey::new(vk.expose_secret()),
        &meta_wrap_aad(vault, vk.epoch()),
        root,
    )?
    .to_vec())
}

/// The vault's metadata keys as one member reads them: the current generation (under the
/// newest epoch) and the older generations whose epochs are not retired yet.
pub(crate) struct MetaGenerations {
    pub(crate) current: MetaKeys,
    /// Older metadata keys, newest first, none equal to `current`: after a replacement
    /// (a member removal), index rows may still be under their blind keys until the
    /// rotation that follows moves them (and retires the epochs whose rows hold them).
    pub(crate) older: Vec<MetaKeys>,
}

/// Finds the metadata key under the newest epoch that has a row and a key, and the older
/// keys still wrapped under epochs this member holds.
///
/// An older row that does not open is skipped (with a warning): only the current one
/// decides what this member trusts, and the older ones only help find index rows that a
/// rotation has not moved yet.
///
/// `current_is_bound`: the current epoch was started by this format (its key is bound by a
/// 256-bit commitment in the signed log), so its row was written in the same batch as the
/// epoch and must be there. Falling back to an older row would let a storage that deleted
/// it (a removed member, who holds the older metadata key) bring back the key the removal
/// replaced. Epochs of earlier releases may lack their row: the older one is used and the
/// row written again at unlock.
pub(crate) fn find_meta<'k>(
    store: &dyn ReadView,
    vault: VaultId,
    keys: impl Fn(Epoch) -> Option<&'k VaultKey>,
    current: Epoch,
    current_is_bound: bool,
) -> Result<MetaGenerations, VaultError> {
    let page = store.scan(
        Table::Wraps,
        &ScanRange::prefix(b"m".to_vec()),
        None,
        10_000,
    )?;
    let mut rows: Vec<(Epoch, &VaultKey, Vec<u8>)> = page
        .rows
        .into_iter()
        .filter(|row| row.key.len() == 5)
        .filter_map(|row| {
            let e = Epoch(u32::from_be_bytes([
                row.key[1], row.key[2], row.key[3], row.key[4],
            ]));
            let vk = keys(e).filter(|_| e <= current)?;
            Some((e, vk, row.value))
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    if current_is_bound && rows.first().is_some_and(|(e, _, _)| *e != current) {
        return Err(VaultError::inconsistent(
            Inconsistency::MissingKey,
            format!(
                "the metadata key of the current epoch {current} is missing from storage (deleted?); it cannot be made again: restore the vault from a snapshot"
            ),
        ));
    }
    let mut rows = rows.into_iter();
    let (epoch, vk, blob) = rows.next().ok_or_else(|| {
        VaultError::inconsistent(
            Inconsistency::MissingKey,
            "the vault's metadata key is missing for every epoch this member can read",
        )
    })?;
    let root = unwrap_key(
        &WrapKey::new(vk.expose_secret()),
        &meta_wrap_aad(vault, epoch),
        &blob,
    )
    .map_err(|_| {
        VaultError::inconsistent(
            Inconsistency::MacMismatch,
            format!("the metadata key wrapped under epoch {epoch} does not open (modified?)"),
        )
    })?;
    let mut older: Vec<MetaKeys> = Vec::new();
    for (e, vk, blob) in rows {
        match unwrap_key(
            &WrapKey::new(vk.expose_secret()),
            &meta_wrap_aad(vault, e),
            &blob,
        ) {
            Ok(old) => {
                let known = bool::from(old.ct_eq(&root))
                    || older.iter().any(|m| bool::from(m.root.ct_eq(&old)));
                if !known {
                    older.push(MetaKeys::from_root(old));
                }
            }
            Err(_) => {
                tracing::warn!(epoch = %e, "an older metadata-key row does not open: ignored");
            }
        }
    }
    Ok(MetaGenerations {
        current: MetaKeys::from_root(root),
        older,
    })
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The memo answers what the HMAC does, for each key apart, and stays bounded.
    #[test]
    fn namespace_prefixes_are_the_hmac_and_the_memo_is_bounded() {
        let keys = MetaKeys::from_root(Key256::init_with(|k| k.fill(1)));
        let other = MetaKeys::from_root(Key256::init_with(|k| k.fill(2)));
        let direct =
            |m: &MetaKeys, ns: &str| hmac32(&m.index, &[b"ns", ns.as_bytes()])[..16].to_vec();
        for round in 0..2 {
            for i in 0..NS_PREFIX_MEMO + 10 {
                let ns = format!("app{i}/config");
                assert_eq!(
                    keys.ns_prefix(&ns).to_vec(),
                    direct(&keys, &ns),
                    "{round} {ns}"
                );
                assert_eq!(other.ns_prefix(&ns).to_vec(), direct(&other, &ns));
                assert_ne!(keys.ns_prefix(&ns), other.ns_prefix(&ns));
                let len = keys.ns_prefixes.lock().unwrap().len();
                assert!((1..=NS_PREFIX_MEMO).contains(&len), "{len}");
            }
        }
        // The prefix of "ns" ‖ namespace, not of anything shifted between the two.
        assert_eq!(
            keys.ns_prefix("a/b").to_vec(),
            hmac32(&keys.index, &[b"nsa/b"])[..16].to_vec()
        );
        assert_ne!(keys.ns_prefix("a/b"), keys.ns_prefix("a/c"));
    }

    proptest! {
        #[test]
        fn header_round_trip_and_mac(id in any::<[u8; 16]>(), created in any::<u64>(), chacha in any::<bool>(),
                                     history in 1u32.., days in any::<u32>()) {
            let keys = MetaKeys::from_root(Key256::generate().unwrap());
            let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
            let h = Header::new(VaultId::from_bytes(id), created, suite, history, days, &keys);
            let back = Header::decode(&h.encode()).unwrap();
            prop_assert_eq!(&back, &h);
            back.verify(&keys).unwrap();
            let other = MetaKeys::from_root(Key256::generate().unwrap());
            prop_assert!(back.verify(&other).is_err());
        }
    }

    #[test]
    fn header_refuses_newer_versions_and_edits() {
        let keys = MetaKeys::from_root(Key256::generate().unwrap());
        let h = Header::new(
            VaultId::from_bytes([3; 16]),
            1,
            Suite::Aes256Gcm,
            10,
            90,
            &keys,
        );
        let mut b = h.encode();
        b[0] = 9;
        assert!(matches!(
            Header::decode(&b),
            Err(VaultError::TooNew { found: 9, .. })
        ));
        let mut b = h.encode();
        b[29] ^= 1; // history
        let edited = Header::decode(&b).unwrap();
        assert!(
            edited.verify(&keys).is_err(),
            "a settings edit is caught by the MAC"
        );
        assert!(Header::decode(&h.encode()[..40]).is_err());
    }
}
