//! Scopes: namespace prefixes with keys of their own, so a member can be given some
//! namespaces of a vault and nothing else.
//!
//! A scope `s` has its own epochs `f = 1, 2, …` and a random 32-byte key `SK[s, f]` for
//! each ([`VaultKey`] with the scope epoch as its epoch; the log binds it like a vault key).
//! Full members reach the current scope key through a [`ScopeLink`] under the current vault
//! key; scoped members through a [`ScopeGrant`] to their hybrid identity; older scope keys
//! through a [`ScopeLink`] under the next scope key.
//!
//! Specified in `docs/spec/scope.md`.

use core::fmt;

use strongroom_crypto::aead::{WRAPPED_KEY_LEN, WrapKey, unwrap_key, wrap_key};
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, Key256, KeyId, MemberId, ScopeId, VaultId};
use strongroom_envelope::{Epoch, VaultKey};

use crate::identity::KemKind;
use crate::wrap::{
    XWING_ENC_LEN, hpke_open, hpke_seal, kernel_rng, read_epoch, recipient_key_hash,
};
use crate::{Identity, PublicIdentity, SharingError};

const SCOPE_GRANT_INFO_DOMAIN: &[u8] = b"strongroom/v3/scope-grant\0";
const SCOPE_LINK_AAD_DOMAIN: &[u8] = b"strongroom/v3/scope-link\0";

/// Longest scope prefix, in bytes (a namespace's limit).
pub const MAX_PREFIX_LEN: usize = 255;

/// Checks a scope prefix: the syntax of a namespace (1–255 bytes of `/`-separated segments
/// of ASCII letters, digits, `.`, `_` and `-`; no empty, `.` or `..` segment).
///
/// ```
/// use strongroom_sharing::validate_prefix;
/// assert!(validate_prefix("core/billing").is_ok());
/// assert!(validate_prefix("core/").is_err());
/// assert!(validate_prefix("core/../auth").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err("must be 1 to 255 bytes");
    }
    for seg in prefix.split('/') {
        if seg.is_empty() {
            return Err("empty segment (leading, trailing or double '/')");
        }
        if seg == "." || seg == ".." {
            return Err("'.' and '..' are not segments");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("segments use only ASCII letters, digits, '.', '_' and '-'");
        }
    }
    Ok(())
}

/// Whether the scope `prefix` covers `namespace`: the namespace is the prefix or starts with
/// the prefix and a `/` (prefixes match whole segments: `core/bill` does not cover
/// `core/billing`).
///
/// ```
/// use strongroom_sharing::scope_covers;
/// assert!(scope_covers("core/billing", "core/billing"));
/// assert!(scope_covers("core/billing", "core/billing/eu"));
/// assert!(!scope_covers("core/bill", "core/billing"));
/// assert!(!scope_covers("core/billing", "core"));
/// ```
pub fn scope_covers(prefix: &str, namespace: &str) -> bool {
    namespace
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether two scope prefixes would share a namespace (one covers the other): scopes do
/// not nest.
pub(crate) fn prefixes_overlap(a: &str, b: &str) -> bool {
    scope_covers(a, b) || scope_covers(b, a)
}

/// Row key of a scope grant in [`Table::Wraps`](strongroom_store::Table):
/// `"h" ‖ scope id ‖ scope epoch (u32 BE) ‖ member id`.
pub(crate) fn scope_grant_row_key(scope: ScopeId, epoch: Epoch, member: MemberId) -> Vec<u8> {
    let mut k = Vec::with_capacity(37);
    k.push(b'h');
    k.extend_from_slice(scope.as_bytes());
    k.extend_from_slice(&epoch.get().to_be_bytes());
    k.extend_from_slice(member.as_bytes());
    k
}

/// Row key of the link that gives full members a scope's current key:
/// `"s" ‖ scope id`.
pub(crate) fn scope_link_row_key(scope: ScopeId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(b's');
    k.extend_from_slice(scope.as_bytes());
    k
}

/// Row key of the link by which scope epoch `f`'s key wraps epoch `f - 1`'s:
/// `"t" ‖ scope id ‖ f (u32 BE)`.
pub(crate) fn scope_chain_row_key(scope: ScopeId, epoch: Epoch) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(b't');
    k.extend_from_slice(scope.as_bytes());
    k.extend_from_slice(&epoch.get().to_be_bytes());
    k
}

/// A scope key HPKE-encrypted to a scoped member's logged X-Wing key.
///
/// Byte layout (version 1, 1253 bytes):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       16    vault id
/// 17      16    scope id
/// 33      4     scope epoch (big-endian u32)
/// 37      16    recipient member id
/// 53      32    recipient key hash (as in a hybrid vault grant)
/// 85      1120  HPKE enc (X-Wing ciphertext)
/// 1205    48    HPKE ciphertext of the 32-byte scope key ‖ 16-byte tag
/// ```
///
/// HPKE as a hybrid vault grant (X-Wing, HKDF-SHA256, ChaCha20-Poly1305, base mode);
/// `info = "strongroom/v3/scope-grant" ‖ 0x00 ‖ bytes[1..85]`, `aad = bytes[0..85]`.
/// Scope grants exist only for hybrid identities: a scoped member must have one.
#[derive(Clone, PartialEq, Eq)]
pub struct ScopeGrant {
    vault: VaultId,
    scope: ScopeId,
    epoch: Epoch,
    member: MemberId,
    recipient: [u8; 32],
    enc: Vec<u8>,
    ciphertext: [u8; 48],
}

impl ScopeGrant {
    /// The version byte.
    pub const VERSION: u8 = 1;
    /// Encoded length.
    pub const LEN: usize = Self::HEADER_LEN + XWING_ENC_LEN + 48;
    const HEADER_LEN: usize = 85;
    const FORMAT: &'static str = "scope grant";

    /// Encrypts the scope key `key` of `scope` to `recipient` (a hybrid identity).
    pub fn seal(
        vault: VaultId,
        scope: ScopeId,
        key: &VaultKey,
        recipient: &PublicIdentity,
    ) -> Result<Self, SharingError> {
        if recipient.kem() != KemKind::XWing {
            return Err(SharingError::InvalidChange {
                reason: "scope keys are granted to hybrid (X-Wing) identities only",
            });
        }
        let public = recipient
            .hpke_public()
            .ok_or(SharingError::BadIdentitySignature)?;
        let mut grant = Self {
            vault,
            scope,
            epoch: key.epoch(),
            member: recipient.member_id(),
            recipient: recipient_key_hash(recipient),
            enc: Vec::new(),
            ciphertext: [0; 48],
        };
        let header = grant.header();
        let (enc, ct) = hpke_seal(
            &public,
            &Self::info(&header),
            &header,
            key.expose_secret().expose_secret(),
            &mut kernel_rng(),
        )?;
        grant.enc = enc;
        grant.ciphertext.copy_from_slice(&ct);
        Ok(grant)
    }

    fn header(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::HEADER_LEN);
        w.u8(Self::VERSION)
            .bytes(self.vault.as_bytes())
            .bytes(self.scope.as_bytes())
            .u32(self.epoch.get())
            .bytes(self.member.as_bytes())
            .bytes(&self.recipient);
        w.into_vec()
    }

    fn info(header: &[u8]) -> Vec<u8> {
        [SCOPE_GRANT_INFO_DOMAIN, &header[1..]].concat()
    }

    /// Decrypts the grant with `identity`, its recipient; `None` when it is not addressed
    /// to `identity` or does not decrypt. Low-level: the key is trusted only once it
    /// matches the scope key the signed log binds for that scope epoch.
    pub fn open(&self, vault: VaultId, identity: &Identity) -> Option<VaultKey> {
        let public = identity.public();
        if self.vault != vault || !self.is_addressed_to(public) {
            return None;
        }
        let header = self.header();
        let plain = hpke_open(
            &identity.hpke_private().ok()?,
            &self.enc,
            &Self::info(&header),
            &header,
            &self.ciphertext,
        )?;
        let key = Key256::from_slice(&plain).ok()?;
        Some(VaultKey::from_key(self.epoch, key))
    }

    /// Whether it names `public`'s X-Wing key as its recipient key.
    pub fn is_addressed_to(&self, public: &PublicIdentity) -> bool {
        self.member == public.member_id()
            && public.kem() == KemKind::XWing
            && self.recipient == recipient_key_hash(public)
    }

    /// The vault it belongs to.
    pub fn vault_id(&self) -> VaultId {
        self.vault
    }

    /// The scope.
    pub fn scope(&self) -> ScopeId {
        self.scope
    }

    /// The scope epoch of the key it carries.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The recipient member.
    pub fn member_id(&self) -> MemberId {
        self.member
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.header();
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let vault = VaultId::from_bytes(r.array("vault id")?);
        let scope = ScopeId::from_bytes(r.array("scope id")?);
        let epoch = read_epoch(&mut r)?;
        let member = MemberId::from_bytes(r.array("member id")?);
        let recipient = r.array("recipient key hash")?;
        let enc = r.bytes(XWING_ENC_LEN, "enc")?.to_vec();
        let ciphertext = r.array("ciphertext")?;
        r.finish()?;
        Ok(Self {
            vault,
            scope,
            epoch,
            member,
            recipient,
            enc,
            ciphertext,
        })
    }
}

impl fmt::Debug for ScopeGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ScopeGrant(vault {}, scope {}, epoch {}, member {})",
            self.vault, self.scope, self.epoch, self.member
        )
    }
}

/// What wraps the scope key a [`ScopeLink`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkUnder {
    /// The vault key of this vault epoch (the link full members read).
    VaultKey(Epoch),
    /// The same scope's key of the next scope epoch (the scope's key chain).
    NextScopeKey,
}

/// A scope key wrapped (XChaCha20-Poly1305) under a vault key, so full members reach it,
/// or under the scope's next key, so whoever holds a scope key reads the older ones.
///
/// Byte layout (version 1, 130 bytes):
///
/// ```text
/// offset  size  field
/// 0       1     version = 1
/// 1       16    vault id
/// 17      16    scope id
/// 33      4     scope epoch f of the wrapped key (big-endian u32)
/// 37      8     key id of the wrapped key SK[s, f]
/// 45      1     wrapping key: 1 = vault key VK[e], 2 = next scope key SK[s, f + 1]
/// 46      4     epoch of the wrapping key (e, or f + 1)
/// 50      8     key id of the wrapping key
/// 58      72    nonce (24) ‖ encrypted SK[s, f] (32) ‖ tag (16)
/// ```
///
/// Associated data: `"strongroom/v3/scope-link" ‖ 0x00 ‖ bytes[0..58]`. Stored in
/// [`Table::Wraps`](strongroom_store::Table) under `"s" ‖ scope id` (the current scope key
/// under the current vault key) or `"t" ‖ scope id ‖ f + 1 (u32 BE)` (the chain).
#[derive(Clone, PartialEq, Eq)]
pub struct ScopeLink {
    vault: VaultId,
    scope: ScopeId,
    epoch: Epoch,
    key_id: KeyId,
    under: LinkUnder,
    under_epoch: Epoch,
    under_key_id: KeyId,
    wrapped: [u8; WRAPPED_KEY_LEN],
}

impl ScopeLink {
    /// The version byte.
    pub const VERSION: u8 = 1;
    /// Encoded length.
    pub const LEN: usize = 58 + WRAPPED_KEY_LEN;
    const FORMAT: &'static str = "scope link";

    /// Wraps the scope key `key` under the vault key `vault_key`.
    pub fn under_vault_key(
        vault: VaultId,
        scope: ScopeId,
        key: &VaultKey,
        vault_key: &VaultKey,
    ) -> Result<Self, SharingError> {
        Self::seal(
            vault,
            scope,
            key,
            LinkUnder::VaultKey(vault_key.epoch()),
            vault_key,
        )
    }

    /// Wraps the scope key `previous` under the same scope's next key `next`.
    pub fn chain(
        vault: VaultId,
        scope: ScopeId,
        next: &VaultKey,
        previous: &VaultKey,
    ) -> Result<Self, SharingError> {
        if previous.epoch().get().checked_add(1) != Some(next.epoch().get()) {
            return Err(SharingError::InvalidChange {
                reason: "a scope chain link wraps the scope epoch just before the wrapping key's",
            });
        }
        Self::seal(vault, scope, previous, LinkUnder::NextScopeKey, next)
    }

    fn seal(
        vault: VaultId,
        scope: ScopeId,
        key: &VaultKey,
        under: LinkUnder,
        wrapping: &VaultKey,
    ) -> Result<Self, SharingError> {
        let mut link = Self {
            vault,
            scope,
            epoch: key.epoch(),
            key_id: key.id(),
            under,
            under_epoch: wrapping.epoch(),
            under_key_id: wrapping.id(),
            wrapped: [0; WRAPPED_KEY_LEN],
        };
        link.wrapped = wrap_key(
            &WrapKey::new(wrapping.expose_secret()),
            &link.aad(),
            key.expose_secret(),
        )?;
        Ok(link)
    }

    /// Unwraps the scope key with `wrapping` (the vault key or next scope key the link
    /// names); `None` when it is another key or the link was modified. Low-level: check the
    /// result against the scope key the log binds for its scope epoch.
    pub fn open(&self, vault: VaultId, wrapping: &VaultKey) -> Option<VaultKey> {
        if self.vault != vault
            || self.under_epoch != wrapping.epoch()
            || self.under_key_id != wrapping.id()
        {
            return None;
        }
        let key = unwrap_key(
            &WrapKey::new(wrapping.expose_secret()),
            &self.aad(),
            &self.wrapped,
        )
        .ok()?;
        Some(VaultKey::from_key(self.epoch, key))
    }

    fn header(&self) -> Writer {
        let kind = match self.under {
            LinkUnder::VaultKey(_) => 1u8,
            LinkUnder::NextScopeKey => 2,
        };
        let mut w = Writer::with_capacity(Self::LEN);
        w.u8(Self::VERSION)
            .bytes(self.vault.as_bytes())
            .bytes(self.scope.as_bytes())
            .u32(self.epoch.get())
            .bytes(self.key_id.as_bytes())
            .u8(kind)
            .u32(self.under_epoch.get())
            .bytes(self.under_key_id.as_bytes());
        w
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = SCOPE_LINK_AAD_DOMAIN.to_vec();
        aad.extend_from_slice(self.header().as_slice());
        aad
    }

    /// The vault it belongs to.
    pub fn vault_id(&self) -> VaultId {
        self.vault
    }

    /// The scope.
    pub fn scope(&self) -> ScopeId {
        self.scope
    }

    /// The scope epoch of the key it carries.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// What wraps it.
    pub fn under(&self) -> LinkUnder {
        self.under
    }

    /// The binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = self.header();
        w.bytes(&self.wrapped);
        w.into_vec()
    }

    /// Parses the binary encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(Self::FORMAT, bytes);
        r.version(&[Self::VERSION])?;
        let vault = VaultId::from_bytes(r.array("vault id")?);
        let scope = ScopeId::from_bytes(r.array("scope id")?);
        let epoch = read_epoch(&mut r)?;
        let key_id = KeyId::from_bytes(r.array("key id")?);
        let kind = r.u8("wrapping key kind")?;
        let under_epoch = read_epoch(&mut r)?;
        let under = match kind {
            1 => LinkUnder::VaultKey(under_epoch),
            2 if epoch.get().checked_add(1) == Some(under_epoch.get()) => LinkUnder::NextScopeKey,
            2 => {
                return Err(r.invalid(
                    "wrapping key epoch",
                    "a scope chain link is wrapped by the next scope epoch's key",
                ));
            }
            _ => return Err(r.invalid("wrapping key kind", "unknown wrapping key kind")),
        };
        let under_key_id = KeyId::from_bytes(r.array("wrapping key id")?);
        let wrapped = r.array("wrapped key")?;
        r.finish()?;
        Ok(Self {
            vault,
            scope,
            epoch,
            key_id,
            under,
            under_epoch,
            under_key_id,
            wrapped,
        })
    }
}

impl fmt::Debug for ScopeLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ScopeLink(vault {}, scope {}, epoch {}, under {:?})",
            self.vault, self.scope, self.epoch, self.under
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefixes_overlap("core", "core/billing"));
        assert!(prefixes_overlap("core/billing", "core"));
        assert!(prefixes_overlap("core", "core"));
        assert!(!prefixes_overlap("core/bill", "core/billing"));
        assert!(!prefixes_overlap("core/auth", "core/billing"));
        assert!(validate_prefix(&"a".repeat(256)).is_err());
        assert!(validate_prefix(&"a".repeat(255)).is_ok());
        assert!(validate_prefix("core/./auth").is_err());
        assert!(validate_prefix("core/../auth").is_err());
        assert!(validate_prefix("core/.hidden").is_ok());
        assert!(validate_prefix("core/bill ing").is_err());
        assert!(validate_prefix("/core").is_err());
    }

    #[test]
    fn a_grant_opens_for_its_recipient_only_and_names_its_scope() {
        let vault = VaultId::generate().unwrap();
        let scope = ScopeId::generate().unwrap();
        let svc = Identity::generate("billing").unwrap();
        let other = Identity::generate("mail").unwrap();
        let key = VaultKey::generate(Epoch(3)).unwrap();
        let grant = ScopeGrant::seal(vault, scope, &key, svc.public()).unwrap();
        let bytes = grant.encode();
        assert_eq!(bytes.len(), ScopeGrant::LEN);
        let back = ScopeGrant::decode(&bytes).unwrap();
        assert_eq!(back, grant);
        assert_eq!((back.scope(), back.epoch()), (scope, Epoch(3)));
        let opened = back.open(vault, &svc).unwrap();
        assert_eq!(opened.id(), key.id());
        assert!(back.open(vault, &other).is_none());
        assert!(back.open(VaultId::generate().unwrap(), &svc).is_none());
        // Every header byte is authenticated: another scope or epoch does not open.
        for at in [20, 34, 40] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            let Ok(bad) = ScopeGrant::decode(&bad) else {
                continue;
            };
            assert!(bad.open(vault, &svc).is_none(), "byte {at}");
        }
        assert!(ScopeGrant::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn links_open_under_their_wrapping_key_only() {
        let vault = VaultId::generate().unwrap();
        let scope = ScopeId::generate().unwrap();
        let vk = VaultKey::generate(Epoch(4)).unwrap();
        let s1 = VaultKey::generate(Epoch(1)).unwrap();
        let s2 = VaultKey::generate(Epoch(2)).unwrap();
        let link = ScopeLink::under_vault_key(vault, scope, &s2, &vk).unwrap();
        let back = ScopeLink::decode(&link.encode()).unwrap();
        assert_eq!(back.encode().len(), ScopeLink::LEN);
        assert_eq!(back.under(), LinkUnder::VaultKey(Epoch(4)));
        assert_eq!(back.open(vault, &vk).unwrap().id(), s2.id());
        assert!(back.open(vault, &s2).is_none());
        // The right key, but named for another vault or another epoch, is refused before
        // decryption (the associated data is the link's own header).
        assert!(back.open(VaultId::generate().unwrap(), &vk).is_none());
        let same_bytes = VaultKey::from_key(Epoch(5), vk.expose_secret().clone_secret());
        assert_eq!(same_bytes.id(), vk.id());
        assert!(back.open(vault, &same_bytes).is_none());
        let chain = ScopeLink::chain(vault, scope, &s2, &s1).unwrap();
        let back = ScopeLink::decode(&chain.encode()).unwrap();
        assert_eq!(back.under(), LinkUnder::NextScopeKey);
        let opened = back.open(vault, &s2).unwrap();
        assert_eq!((opened.epoch(), opened.id()), (Epoch(1), s1.id()));
        assert!(ScopeLink::chain(vault, scope, &s1, &s2).is_err());
        // A chain link that does not name the next epoch is refused by the decoder.
        let mut bad = chain.encode();
        bad[49] ^= 7;
        assert!(ScopeLink::decode(&bad).is_err());
        let mut bad = chain.encode();
        bad[45] = 3;
        assert!(ScopeLink::decode(&bad).is_err());
        let mut bad = chain.encode();
        bad[46..50].copy_from_slice(&9u32.to_be_bytes());
        let err = ScopeLink::decode(&bad).unwrap_err().to_string();
        assert!(err.contains("next scope epoch"), "{err}");
    }
}
