//! Secrets: the blind name index, the record payload, and put/get/delete/list/history.
//!
//! Storage layout:
//!
//! - [`Table::Index`]: key = blind index (32 bytes), value = index entry;
//! - [`Table::Bodies`]: key = record id ‖ version (u64 BE), value = sealed body;
//! - [`Table::Deks`]: key = record id ‖ version (u64 BE), value = wrapped DEK (86 bytes).
//!
//! The blind index is `HMAC(index key, "ns" ‖ namespace)[..16] ‖ HMAC(index key, "name" ‖
//! len(namespace) ‖ namespace ‖ name)[..16]`: the storage sees which records share a
//! namespace, never a namespace or a name. Names live only inside the sealed payload, which
//! also makes the index honest: an index row pointed at another record opens a payload with
//! another name, and is refused.

use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, MemberId, RecordId, SecretBytes};
use strongroom_envelope::{Epoch, RecordContext, WrappedDek, open_with, seal};
use strongroom_store::{
    Batch, Expect, ReadView, Row, ScanRange, Table, Versioned, for_each_row, scan_all,
};

use crate::VaultError;
use crate::audit::{Action, AuditEvent};
use crate::meta::{hmac32, now};
use crate::vault::{State, Vault};

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 255;
/// Longest secret name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest secret value accepted by [`Vault::put`] (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// Checks a namespace: 1–255 bytes, `/`-separated segments of ASCII letters, digits, `.`,
/// `_` and `-`, no empty segment (`core/billing`, `plugins/acme.sync`).
pub fn validate_namespace(ns: &str) -> Result<(), VaultError> {
    let bad = |reason: &str| {
        Err(VaultError::invalid(
            "namespace",
            format!("{ns:?}: {reason}"),
        ))
    };
    if ns.is_empty() || ns.len() > MAX_NAMESPACE_LEN {
        return bad("must be 1 to 255 bytes");
    }
    for seg in ns.split('/') {
        if seg.is_empty() {
            return bad("empty segment (leading, trailing or double '/')");
        }
        if seg == "." || seg == ".." {
            return bad("'.' and '..' are not segments");
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("segments use only ASCII letters, digits, '.', '_' and '-'");
        }
    }
    Ok(())
}

/// Checks a secret name: 1–1024 bytes of UTF-8 without control characters.
pub fn validate_name(name: &str) -> Result<(), VaultError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(VaultError::invalid(
            "secret name",
            "must be 1 to 1024 bytes",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(VaultError::invalid(
            "secret name",
            "control characters are not allowed",
        ));
    }
    Ok(())
}

/// What is known about one version of a secret (no value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Record id (stable across versions; a re-created secret gets a new one).
    pub record_id: RecordId,
    /// Version (1 for the first write).
    pub version: u64,
    /// When the secret was first written (unix seconds).
    pub created_at: u64,
    /// When this version was written (unix seconds).
    pub updated_at: u64,
    /// Who wrote this version.
    pub updated_by: MemberId,
    /// The vault-key epoch the version's data key is currently wrapped under.
    pub epoch: Epoch,
    /// Length of the value in bytes.
    pub len: usize,
}

/// A secret value with its metadata. The value is zeroized on drop and never printed.
pub struct Secret {
    meta: SecretMeta,
    value: SecretBytes,
}

impl Secret {
    /// The metadata.
    pub fn meta(&self) -> &SecretMeta {
        &self.meta
    }

    /// The value (the only accessor).
    pub fn expose_secret(&self) -> &[u8] {
        self.value.expose_secret()
    }

    /// The value, as UTF-8 if it is.
    pub fn expose_str(&self) -> Option<&str> {
        core::str::from_utf8(self.expose_secret()).ok()
    }

    /// Takes the value.
    pub fn into_value(self) -> SecretBytes {
        self.value
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Secret")
            .field("meta", &self.meta)
            .field(
                "value",
                &format_args!("<{} bytes redacted>", self.value.len()),
            )
            .finish()
    }
}

/// The blind index row key of `namespace`/`name`.
pub(crate) fn blind(state: &State, namespace: &str, name: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&ns_prefix(state, namespace));
    let ns_len = (namespace.len() as u32).to_be_bytes();
    let tag = hmac32(
        &state.meta.index,
        &[b"name", &ns_len, namespace.as_bytes(), name.as_bytes()],
    );
    out[16..].copy_from_slice(&tag[..16]);
    out
}

/// An index row found by a scan names the secret its record holds: the row key is the
/// blind index of the payload's namespace and name (and, for a scan of one namespace, that
/// namespace). A storage that points rows at other records is refused, never followed.
pub(crate) fn check_index_row(
    state: &State,
    row_key: &[u8],
    payload: &OpenedPayload,
    record: RecordId,
    namespace: Option<&str>,
) -> Result<(), VaultError> {
    if namespace.is_some_and(|ns| ns != payload.namespace)
        || blind(state, &payload.namespace, &payload.name)[..] != row_key[..]
    {
        return Err(VaultError::inconsistent(format!(
            "index row points at record {record} of another secret"
        )));
    }
    Ok(())
}

pub(crate) fn ns_prefix(state: &State, namespace: &str) -> [u8; 16] {
    let tag = hmac32(&state.meta.index, &[b"ns", namespace.as_bytes()]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&tag[..16]);
    out
}

/// An index entry. Layout: `version = 1 ‖ record id (16) ‖ head version (u64) ‖ created at
/// (u64)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) record: RecordId,
    pub(crate) version: u64,
    pub(crate) created_at: u64,
}

impl IndexEntry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(33);
        w.u8(1)
            .bytes(self.record.as_bytes())
            .u64(self.version)
            .u64(self.created_at);
        w.into_vec()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, VaultError> {
        let corrupt = |source| VaultError::Corrupt {
            what: "index entry",
            source,
        };
        let mut r = Reader::new("index entry", bytes);
        r.version(&[1]).map_err(corrupt)?;
        let record = RecordId::from_bytes(r.array("record id").map_err(corrupt)?);
        let version = r.u64("version").map_err(corrupt)?;
        let created_at = r.u64("created at").map_err(corrupt)?;
        r.finish().map_err(corrupt)?;
        if version == 0 {
            return Err(corrupt(DecodeError::Invalid {
                format: "index entry",
                field: "version",
                reason: "versions start at 1",
            }));
        }
        Ok(Self {
            record,
            version,
            created_at,
        })
    }
}

/// Index entries to rewrite when record versions are deleted: a secret whose current
/// version goes names its newest remaining version, or goes when none remains.
pub(crate) struct HeadMoves {
    moves: Vec<(Vec<u8>, u64, Option<IndexEntry>)>,
}

impl HeadMoves {
    /// Adds the index rewrites to `batch` (each guarded by the version read).
    pub(crate) fn apply(&self, batch: &mut Batch) {
        for (key, version, entry) in &self.moves {
            match entry {
                Some(e) => batch.put(
                    Table::Index,
                    key.clone(),
                    e.encode(),
                    Expect::Version(*version),
                ),
                None => batch.delete(Table::Index, key.clone(), Expect::Version(*version)),
            };
        }
    }

    /// The records whose current version moved (hex ids).
    pub(crate) fn records(&self) -> Vec<String> {
        self.moves
            .iter()
            .filter_map(|(_, _, e)| e.map(|e| e.record.to_string()))
            .chain(
                self.moves
                    .iter()
                    .filter(|(_, _, e)| e.is_none())
                    .map(|(k, _, _)| crate::audit::hex(k)),
            )
            .collect()
    }
}

/// The index rewrites that deleting the record versions `gone` needs (a scan of the
/// index: deletions of this kind are rare).
pub(crate) fn heads_to_move(
    vault: &Vault,
    gone: impl Iterator<Item = (RecordId, u64)>,
) -> Result<HeadMoves, VaultError> {
    let gone: std::collections::BTreeSet<(RecordId, u64)> = gone.collect();
    let mut moves = Vec::new();
    if gone.is_empty() {
        return Ok(HeadMoves { moves });
    }
    let store = vault.store();
    for_each_row(store, Table::Index, &ScanRange::all(), 1000, |row| {
        let Ok(entry) = IndexEntry::decode(&row.value) else {
            return Ok::<_, VaultError>(true);
        };
        if !gone.contains(&(entry.record, entry.version)) {
            return Ok(true);
        }
        let newest = versions_of(store, Table::Deks, entry.record)?
            .iter()
            .filter_map(|r| parse_version_key(&r.key))
            .map(|(_, v)| v)
            .filter(|v| !gone.contains(&(entry.record, *v)))
            .max();
        moves.push((
            row.key,
            row.version,
            newest.map(|version| IndexEntry { version, ..entry }),
        ));
        Ok(true)
    })?;
    Ok(HeadMoves { moves })
}

/// Row key of a record version in [`Table::Bodies`] and [`Table::Deks`].
pub(crate) fn version_key(record: RecordId, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(record.as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub(crate) fn parse_version_key(key: &[u8]) -> Option<(RecordId, u64)> {
    if key.len() != 24 {
        return None;
    }
    let record = RecordId::from_slice(&key[..16]).ok()?;
    let version = u64::from_be_bytes(key[16..].try_into().ok()?);
    Some((record, version))
}

/// The plaintext sealed in a body.
///
/// Layout (version 1): `version = 1 ‖ namespace (u32 len ‖ bytes) ‖ name (u32 len ‖ bytes) ‖
/// created at (u64) ‖ updated at (u64) ‖ author member id (16) ‖ value (u32 len ‖ bytes)`.
pub(crate) struct Payload<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    pub(crate) author: MemberId,
    pub(crate) value: &'a [u8],
}

impl Payload<'_> {
    pub(crate) fn encode(&self) -> SecretBytes {
        let mut w = Writer::with_capacity(
            1 + 12 + self.namespace.len() + self.name.len() + 32 + self.value.len(),
        );
        w.u8(1)
            .var_bytes(self.namespace.as_bytes())
            .var_bytes(self.name.as_bytes())
            .u64(self.created_at)
            .u64(self.updated_at)
            .bytes(self.author.as_bytes())
            .var_bytes(self.value);
        SecretBytes::from(w.into_vec())
    }
}

/// A decoded payload that owns its bytes.
pub(crate) struct OpenedPayload {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    pub(crate) author: MemberId,
    pub(crate) value: SecretBytes,
}

pub(crate) fn decode_payload(plain: &SecretBytes) -> Result<OpenedPayload, VaultError> {
    let corrupt = |source| VaultError::Corrupt {
        what: "record payload",
        source,
    };
    let bytes = plain.expose_secret();
    let mut r = Reader::new("record payload", bytes);
    r.version(&[1]).map_err(corrupt)?;
    let ns = r
        .var_bytes("namespace", MAX_NAMESPACE_LEN)
        .map_err(corrupt)?;
    let name = r.var_bytes("name", MAX_NAME_LEN).map_err(corrupt)?;
    let created_at = r.u64("created at").map_err(corrupt)?;
    let updated_at = r.u64("updated at").map_err(corrupt)?;
    let author = MemberId::from_bytes(r.array("author").map_err(corrupt)?);
    let value = r.var_bytes("value", MAX_VALUE_LEN).map_err(corrupt)?;
    r.finish().map_err(corrupt)?;
    let text = |b: &[u8], field| {
        String::from_utf8(b.to_vec()).map_err(|_| {
            corrupt(DecodeError::Invalid {
                format: "record payload",
                field,
                reason: "not UTF-8",
            })
        })
    };
    Ok(OpenedPayload {
        namespace: text(ns, "namespace")?,
        name: text(name, "name")?,
        created_at,
        updated_at,
        author,
        value: SecretBytes::from(value.to_vec()),
    })
}

/// One secret of [`Vault::put_many`].
#[derive(Clone, Copy)]
pub struct NewSecret<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its value.
    pub value: &'a [u8],
}

impl core::fmt::Debug for NewSecret<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NewSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("len", &self.value.len())
            .finish()
    }
}

/// What [`Vault::put_many`] did.
#[derive(Clone, Debug)]
pub struct PutManyReport {
    /// The versions written, in input order.
    pub written: Vec<SecretMeta>,
    /// Secrets whose current value was already the given one (no new version).
    pub unchanged: usize,
}

/// Opens the record version at `record`/`version` from `view` with the keys of `state`.
pub(crate) fn open_version(
    view: &dyn ReadView,
    state: &State,
    record: RecordId,
    version: u64,
) -> Result<(OpenedPayload, Epoch), VaultError> {
    let key = version_key(record, version);
    let body = view.get(Table::Bodies, &key)?;
    let dek = view.get(Table::Deks, &key)?;
    let (Some(body), Some(dek)) = (body, dek) else {
        return Err(VaultError::inconsistent(format!(
            "record {record} version {version} is missing its body or data key"
        )));
    };
    open_rows(state, record, version, &body.value, &dek.value)
}

pub(crate) fn open_rows(
    state: &State,
    record: RecordId,
    version: u64,
    body: &[u8],
    dek: &[u8],
) -> Result<(OpenedPayload, Epoch), VaultError> {
    let rec_err = |source| VaultError::Record {
        record: record.to_string(),
        source,
    };
    let wrapped = WrappedDek::from_bytes(dek).map_err(rec_err)?;
    let epoch = wrapped.epoch();
    if epoch < state.min_epoch() {
        return Err(VaultError::RetiredEpoch {
            record: record.to_string(),
            epoch,
        });
    }
    let Some(vk) = state.session.key(epoch) else {
        return Err(VaultError::Record {
            record: record.to_string(),
            source: strongroom_envelope::EnvelopeError::Decrypt,
        });
    };
    let ctx = RecordContext {
        vault_id: state.session.vault_id(),
        record_id: record,
        version,
    };
    let plain = open_with(vk, &ctx, body, dek, state.body_check()).map_err(rec_err)?;
    Ok((decode_payload(&plain)?, epoch))
}

fn meta_of(p: &OpenedPayload, record: RecordId, version: u64, epoch: Epoch) -> SecretMeta {
    SecretMeta {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        record_id: record,
        version,
        created_at: p.created_at,
        updated_at: p.updated_at,
        updated_by: p.author,
        epoch,
        len: p.value.len(),
    }
}

impl Vault {
    /// Writes a secret: a new version sealed under a fresh data key, wrapped by the current
    /// vault key, with an audit entry, in one atomic commit. Versions beyond the vault's
    /// history setting are deleted in the same commit.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// let meta = vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?;
    /// assert_eq!(meta.version, 1);
    /// let secret = vault.get("core/billing", "STRIPE_KEY")?;
    /// assert_eq!(secret.expose_secret(), b"sk_live_123");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put(&self, namespace: &str, name: &str, value: &[u8]) -> Result<SecretMeta, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(VaultError::invalid("secret value", "larger than 64 MiB"));
        }
        self.require_writer()?;
        self.write(|state, batch| {
            let key = blind(state, namespace, name);
            let existing = self.store().get(Table::Index, &key)?;
            let meta =
                self.stage_put(state, batch, key, existing.as_ref(), namespace, name, value)?;
            let event = AuditEvent::new(
                Action::Put,
                meta.record_id.as_bytes(),
                format!("version={}", meta.version),
            );
            Ok((meta, event))
        })
    }

    /// Writes many secrets in one atomic commit with one audit entry (`import`): all of
    /// them or none. A secret whose current value already equals the new one gets no new
    /// version, so loading the same secrets twice changes nothing the second time. A
    /// namespace and name given twice is refused before anything is written.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, NewSecret, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// let secrets = [
    ///     NewSecret { namespace: "app", name: "DB_PASSWORD", value: b"hunter2" },
    ///     NewSecret { namespace: "app", name: "API_TOKEN", value: b"t0k3n" },
    /// ];
    /// let report = vault.put_many(&secrets)?;
    /// assert_eq!((report.written.len(), report.unchanged), (2, 0));
    /// // Loading the same secrets again writes nothing.
    /// let again = vault.put_many(&secrets)?;
    /// assert_eq!((again.written.len(), again.unchanged), (0, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_many(&self, secrets: &[NewSecret<'_>]) -> Result<PutManyReport, VaultError> {
        let mut seen = std::collections::HashMap::with_capacity(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            validate_namespace(s.namespace)?;
            validate_name(s.name)?;
            if s.value.len() > MAX_VALUE_LEN {
                return Err(VaultError::invalid(
                    "secret value",
                    format!("{}/{} is larger than 64 MiB", s.namespace, s.name),
                ));
            }
            let first = *seen.entry((s.namespace, s.name)).or_insert(i);
            if first != i {
                return Err(VaultError::invalid(
                    "secrets",
                    format!(
                        "{}/{} is given twice (entries {} and {}): each secret once",
                        s.namespace,
                        s.name,
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        self.require_writer()?;
        self.write(|state, batch| {
            let store = self.store();
            let mut written = Vec::with_capacity(secrets.len());
            let mut unchanged = 0;
            for s in secrets {
                let key = blind(state, s.namespace, s.name);
                let existing = store.get(Table::Index, &key)?;
                if let Some(row) = &existing
                    && self.current_value_is(state, row, s)?
                {
                    unchanged += 1;
                    continue;
                }
                written.push(self.stage_put(
                    state,
                    batch,
                    key,
                    existing.as_ref(),
                    s.namespace,
                    s.name,
                    s.value,
                )?);
            }
            let detail = format!("written={} unchanged={unchanged}", written.len());
            let event = AuditEvent::new(Action::Import, Vec::new(), detail);
            Ok((PutManyReport { written, unchanged }, event))
        })
    }

    /// Whether the head version of the record at `row` holds `s.value` already.
    fn current_value_is(
        &self,
        state: &State,
        row: &Versioned,
        s: &NewSecret<'_>,
    ) -> Result<bool, VaultError> {
        use subtle::ConstantTimeEq;
        let entry = IndexEntry::decode(&row.value)?;
        let (p, _) = open_version(self.store(), state, entry.record, entry.version)?;
        check_names(&p, s.namespace, s.name, entry.record)?;
        Ok(p.value.expose_secret().ct_eq(s.value).into())
    }

    /// Adds a new version of `namespace`/`name` (index row `key`, currently `existing`) to
    /// `batch`, pruning the version that falls out of the history.
    #[allow(clippy::too_many_arguments)]
    fn stage_put(
        &self,
        state: &State,
        batch: &mut Batch,
        key: [u8; 32],
        existing: Option<&Versioned>,
        namespace: &str,
        name: &str,
        value: &[u8],
    ) -> Result<SecretMeta, VaultError> {
        let now = now();
        let (entry, expect) = match existing {
            Some(row) => {
                let old = IndexEntry::decode(&row.value)?;
                (
                    IndexEntry {
                        version: old.version.checked_add(1).ok_or_else(|| {
                            VaultError::inconsistent("the secret's version counter is exhausted")
                        })?,
                        ..old
                    },
                    Expect::Version(row.version),
                )
            }
            None => (
                IndexEntry {
                    record: RecordId::generate()?,
                    version: 1,
                    created_at: now,
                },
                Expect::Absent,
            ),
        };
        let author = state.session.member_id();
        let payload = Payload {
            namespace,
            name,
            created_at: entry.created_at,
            updated_at: now,
            author,
            value,
        }
        .encode();
        let ctx = RecordContext {
            vault_id: state.session.vault_id(),
            record_id: entry.record,
            version: entry.version,
        };
        let vk = state.session.current_key();
        let sealed = seal(vk, self.header().suite, &ctx, payload.expose_secret()).map_err(|e| {
            VaultError::Record {
                record: entry.record.to_string(),
                source: e,
            }
        })?;
        let vkey = version_key(entry.record, entry.version);
        batch
            .put(Table::Index, key.to_vec(), entry.encode(), expect)
            .put(Table::Bodies, vkey.clone(), sealed.body, Expect::Absent)
            .put(
                Table::Deks,
                vkey,
                sealed.wrapped_dek.as_bytes().to_vec(),
                Expect::Absent,
            );
        let keep = u64::from(self.header().history);
        if entry.version > keep {
            let old = version_key(entry.record, entry.version - keep);
            batch
                .delete(Table::Bodies, old.clone(), Expect::Any)
                .delete(Table::Deks, old, Expect::Any);
        }
        Ok(SecretMeta {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            record_id: entry.record,
            version: entry.version,
            created_at: entry.created_at,
            updated_at: now,
            updated_by: author,
            epoch: vk.epoch(),
            len: value.len(),
        })
    }

    /// Reads the current version of a secret.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Secret, VaultError> {
        self.get_inner(namespace, name, None)
    }

    /// Reads a given version of a secret (older versions are kept up to the vault's
    /// history setting).
    pub fn get_version(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
    ) -> Result<Secret, VaultError> {
        self.get_inner(namespace, name, Some(version))
    }

    fn get_inner(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<Secret, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.read(|state| {
            // The index, body and data-key rows are three reads: a writer (a new version
            // pruning an old one, a re-encryption) can commit between them. A failure is
            // retried from the index a few times before it is reported.
            let mut attempt = 0;
            loop {
                match self.get_once(state, namespace, name, version) {
                    Err(VaultError::Record { .. } | VaultError::Inconsistent { .. })
                        if attempt < 3 =>
                    {
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }

    fn get_once(
        &self,
        state: &State,
        namespace: &str,
        name: &str,
        version: Option<u64>,
    ) -> Result<Secret, VaultError> {
        let store = self.store();
        let not_found = || VaultError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let row = store
            .get(Table::Index, &blind(state, namespace, name))?
            .ok_or_else(not_found)?;
        let entry = IndexEntry::decode(&row.value)?;
        let v = version.unwrap_or(entry.version);
        if v == 0 || v > entry.version {
            return Err(not_found());
        }
        let key = version_key(entry.record, v);
        let Some(body) = store.get(Table::Bodies, &key)? else {
            return if version.is_some() {
                Err(not_found())
            } else {
                Err(VaultError::inconsistent(format!(
                    "record {} version {v} is missing its body",
                    entry.record
                )))
            };
        };
        let dek = store.get(Table::Deks, &key)?.ok_or_else(|| {
            VaultError::inconsistent(format!(
                "record {} version {v} is missing its data key",
                entry.record
            ))
        })?;
        let (p, epoch) = open_rows(state, entry.record, v, &body.value, &dek.value)?;
        check_names(&p, namespace, name, entry.record)?;
        let meta = meta_of(&p, entry.record, v, epoch);
        Ok(Secret {
            meta,
            value: p.value,
        })
    }

    /// Deletes a secret and every stored version of it, with an audit entry, atomically.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.require_writer()?;
        self.write(|state, batch| {
            let store = self.store();
            let key = blind(state, namespace, name);
            let row = store
                .get(Table::Index, &key)?
                .ok_or_else(|| VaultError::NotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })?;
            let entry = IndexEntry::decode(&row.value)?;
            batch.delete(Table::Index, key.to_vec(), Expect::Version(row.version));
            for r in versions_of(store, Table::Bodies, entry.record)? {
                batch.delete(Table::Bodies, r.key, Expect::Any);
            }
            for r in versions_of(store, Table::Deks, entry.record)? {
                batch.delete(Table::Deks, r.key, Expect::Any);
            }
            let event = AuditEvent::new(Action::Delete, entry.record.as_bytes(), "");
            Ok(((), event))
        })
    }

    /// Lists the secrets of a namespace (names are decrypted here; the storage never sees
    /// them), sorted by name.
    pub fn list(&self, namespace: &str) -> Result<Vec<SecretMeta>, VaultError> {
        validate_namespace(namespace)?;
        // A writer that replaces and prunes a version between the index scan and the
        // body reads makes one attempt fail; the listing is redone.
        let mut attempt = 0;
        loop {
            match self.list_once(namespace) {
                Err(VaultError::Record { .. } | VaultError::Inconsistent { .. }) if attempt < 3 => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn list_once(&self, namespace: &str) -> Result<Vec<SecretMeta>, VaultError> {
        self.read(|state| {
            let store = self.store();
            let prefix = ns_prefix(state, namespace).to_vec();
            let mut out = Vec::new();
            for_each_row(
                store,
                Table::Index,
                &ScanRange::prefix(prefix),
                1000,
                |row| {
                    let entry = IndexEntry::decode(&row.value)?;
                    let (p, epoch) = open_version(store, state, entry.record, entry.version)?;
                    check_index_row(state, &row.key, &p, entry.record, Some(namespace))?;
                    out.push(meta_of(&p, entry.record, entry.version, epoch));
                    Ok::<_, VaultError>(true)
                },
            )?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// The stored versions of a secret, oldest first.
    pub fn history(&self, namespace: &str, name: &str) -> Result<Vec<SecretMeta>, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.read(|state| {
            let store = self.store();
            let row = store
                .get(Table::Index, &blind(state, namespace, name))?
                .ok_or_else(|| VaultError::NotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })?;
            let entry = IndexEntry::decode(&row.value)?;
            let mut out = Vec::new();
            for r in versions_of(store, Table::Bodies, entry.record)? {
                let Some((_, v)) = parse_version_key(&r.key) else {
                    continue;
                };
                if v > entry.version {
                    continue;
                }
                let (p, epoch) = open_version(store, state, entry.record, v)?;
                check_names(&p, namespace, name, entry.record)?;
                out.push(meta_of(&p, entry.record, v, epoch));
            }
            Ok(out)
        })
    }
}

fn check_names(
    p: &OpenedPayload,
    namespace: &str,
    name: &str,
    record: RecordId,
) -> Result<(), VaultError> {
    if p.namespace != namespace || p.name != name {
        return Err(VaultError::inconsistent(format!(
            "the index entry for this name points at record {record}, which holds another secret (storage tampering?)"
        )));
    }
    Ok(())
}

/// Every stored version row of `record` in `table`.
pub(crate) fn versions_of(
    store: &dyn ReadView,
    table: Table,
    record: RecordId,
) -> Result<Vec<Row>, VaultError> {
    Ok(scan_all(
        store,
        table,
        &ScanRange::prefix(record.as_bytes().to_vec()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn index_entry_round_trip(id in any::<[u8; 16]>(), version in 1u64.., created in any::<u64>()) {
            let e = IndexEntry { record: RecordId::from_bytes(id), version, created_at: created };
            prop_assert_eq!(IndexEntry::decode(&e.encode()).unwrap(), e);
        }

        #[test]
        fn payload_round_trip(ns in "[a-z]{1,8}(/[a-z0-9._-]{1,8}){0,3}", name in "\\PC{1,40}",
                              value in proptest::collection::vec(any::<u8>(), 0..300),
                              t1 in any::<u64>(), t2 in any::<u64>(), author in any::<[u8; 16]>()) {
            let p = Payload { namespace: &ns, name: &name, created_at: t1, updated_at: t2,
                              author: MemberId::from_bytes(author), value: &value };
            let back = decode_payload(&p.encode()).unwrap();
            prop_assert_eq!(back.namespace, ns);
            prop_assert_eq!(back.name, name);
            prop_assert_eq!((back.created_at, back.updated_at), (t1, t2));
            prop_assert_eq!(back.author, MemberId::from_bytes(author));
            prop_assert_eq!(back.value.expose_secret(), &value[..]);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = IndexEntry::decode(&bytes);
            let _ = decode_payload(&SecretBytes::from(bytes.clone()));
            let _ = parse_version_key(&bytes);
        }
    }

    #[test]
    fn index_entry_refuses_version_zero_and_garbage() {
        let e = IndexEntry {
            record: RecordId::from_bytes([1; 16]),
            version: 1,
            created_at: 5,
        };
        let mut b = e.encode();
        b[17..25].copy_from_slice(&0u64.to_be_bytes());
        assert!(IndexEntry::decode(&b).is_err());
        assert!(IndexEntry::decode(&e.encode()[..20]).is_err());
        let mut b = e.encode();
        b[0] = 2;
        assert!(
            IndexEntry::decode(&b)
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
    }
}
