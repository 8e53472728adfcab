//! Secrets: the blind name index, the record payload, and put/get/delete/list/history.
//!
//! Storage layout:
//!
//! - [`Table::Index`]: key = blind index (32 bytes), value = index entry (see
//!   `index_entry`: it holds the head version's wrapped data key and, when small, its
//!   body, so reading the current value is one store read);
//! - [`Table::Bodies`]: key = record id ‖ version (u64 BE), value = sealed body (older
//!   versions, and a head body too large to be inline);
//! - [`Table::Deks`]: key = record id ‖ version (u64 BE), value = wrapped DEK (older
//!   versions).
//!
//! The blind index is `HMAC(index key, "ns" ‖ namespace)[..16] ‖ HMAC(index key, "name" ‖
//! len(namespace) ‖ namespace ‖ name)[..16]`: the storage sees which records share a
//! namespace, never a namespace or a name. Names live only inside the sealed payload, which
//! also makes the index honest: an index row pointed at another record opens a payload with
//! another name, and is refused.
//!
//! Specified in `docs/spec/payload.md` (the record payload) and `docs/spec/index-entry.md`
//! (the blind index).

use std::fmt;

use strongroom_crypto::ScopeId;
use strongroom_crypto::aead::Suite;
use strongroom_crypto::encoding::{Reader, Writer};
use strongroom_crypto::{DecodeError, MemberId, RecordId, SecretBytes};
use strongroom_envelope::{
    BodyCheck, Epoch, RecordContext, SealedRecord as Sealed, VaultKey, WrappedDek, seal,
};
use strongroom_store::{
    Batch, Cursor, Expect, MAX_SCAN_LIMIT, ReadView, Row, ScanRange, Snapshot, Store, Table,
    Versioned, scan_all,
};

use crate::access::{Access, Domain};
use crate::audit::{Action, AuditEvent};
pub(crate) use crate::index_entry::{
    Head, HeadBody, INLINE_BODY_MAX, IndexEntry, parse_version_key, version_key,
};
use crate::meta::{MetaKeys, hmac32, now};
use crate::vault::Vault;
use crate::writers::{Authorship, LostRight, ProofKind, WriterProof};
use crate::{Inconsistency, VaultError};

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 255;
/// Longest secret name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest secret value accepted by [`Vault::put`] (64 MiB).
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// Checks a namespace: 1–255 bytes, `/`-separated segments of ASCII letters, digits, `.`,
/// `_` and `-`, no empty segment (`core/billing`, `plugins/acme.sync`).
pub fn validate_namespace(ns: &str) -> Result<(), VaultError> {
    // A namespace follows the rules of a scope prefix, so that any namespace can be one.
    strongroom_sharing::validate_prefix(ns)
        .map_err(|reason| VaultError::invalid("namespace", format!("{ns:?}: {reason}")))
}

/// Checks a namespace and several names of it.
pub(crate) fn validate_names(namespace: &str, names: &[&str]) -> Result<(), VaultError> {
    validate_namespace(namespace)?;
    names.iter().try_for_each(|name| validate_name(name))
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
    /// Who wrote this version, as its payload says: authenticated when `authorship` is
    /// [`Authorship::Signed`].
    pub updated_by: MemberId,
    /// How the writer is authenticated: signed by `updated_by` (verified against the
    /// membership log: they had the right to write records when they wrote it), vouched for
    /// by an owner when the vault moved to signed writes, or unsigned (an earlier release's
    /// version, accepted only while the vault does not require signed writes).
    pub authorship: Authorship,
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

/// The blind index row key of `namespace`/`name` under the metadata keys `meta`.
pub(crate) fn blind_with(meta: &MetaKeys, namespace: &str, name: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(&meta.ns_prefix(namespace));
    let ns_len = (namespace.len() as u32).to_be_bytes();
    let tag = hmac32(
        &meta.index,
        &[b"name", &ns_len, namespace.as_bytes(), name.as_bytes()],
    );
    out[16..].copy_from_slice(&tag[..16]);
    out
}

/// Where a secret's index row is: `key`, its blind index under the current index key of
/// its domain, or (until a rotation moves it) the blind index under an older one.
pub(crate) struct Located {
    /// Where the row belongs.
    pub(crate) key: [u8; 32],
    /// The row and the key it was found under.
    pub(crate) found: Option<([u8; 32], Versioned)>,
}

impl Located {
    fn row(&self) -> Option<&Versioned> {
        self.found.as_ref().map(|(_, row)| row)
    }
}

/// Reads the index rows of `names` in one store call: the current blind index of each, and
/// while older index keys of its domain are in use, theirs too (the current one wins).
pub(crate) fn locate_many<'n>(
    store: &dyn ReadView,
    access: &dyn Access,
    names: impl Iterator<Item = (&'n str, &'n str)>,
) -> Result<Vec<Located>, VaultError> {
    // The blind keys of each name, current first; the domain of a namespace is looked up
    // once per run of names in it.
    let mut per_name: Vec<Vec<[u8; 32]>> = Vec::new();
    let mut last: Option<(&str, Domain<'_>)> = None;
    for (ns, name) in names {
        if last.as_ref().is_none_or(|(n, _)| *n != ns) {
            last = Some((ns, access.domain(ns)?));
        }
        let (_, domain) = last.as_ref().unwrap_or_else(|| unreachable!("set above"));
        per_name.push(
            domain
                .index
                .all()
                .into_iter()
                .map(|m| blind_with(m, ns, name))
                .collect(),
        );
    }
    let keys: Vec<&[u8; 32]> = per_name.iter().flatten().collect();
    let mut rows = Vec::with_capacity(keys.len());
    // About 1000 names per store call (a very large import), whatever their generations.
    let per_call = 1000 * per_name.iter().map(Vec::len).max().unwrap_or(1);
    for chunk in keys.chunks(per_call) {
        let wanted: Vec<(Table, &[u8])> = chunk.iter().map(|k| (Table::Index, &k[..])).collect();
        rows.extend(store.get_many(&wanted)?);
    }
    let mut rows = rows.into_iter();
    Ok(per_name
        .iter()
        .map(|ks| {
            let mut found = None;
            for (k, row) in ks.iter().zip(rows.by_ref().take(ks.len())) {
                if found.is_none()
                    && let Some(row) = row
                {
                    found = Some((*k, row));
                }
            }
            Located { key: ks[0], found }
        })
        .collect())
}

/// The index row of `namespace`/`name`, which must exist (`NotFound` otherwise).
fn locate_existing(
    store: &dyn ReadView,
    access: &dyn Access,
    namespace: &str,
    name: &str,
) -> Result<([u8; 32], Versioned), VaultError> {
    locate(store, access, namespace, name)?
        .found
        .ok_or_else(|| VaultError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
}

/// [`locate_many`] for one name: one store read.
pub(crate) fn locate(
    store: &dyn ReadView,
    access: &dyn Access,
    namespace: &str,
    name: &str,
) -> Result<Located, VaultError> {
    let domain = access.domain(namespace)?;
    if let Some(only) = domain.index.only() {
        let key = blind_with(only, namespace, name);
        let found = store.get(Table::Index, &key)?.map(|row| (key, row));
        return Ok(Located { key, found });
    }
    Ok(
        locate_many(store, access, std::iter::once((namespace, name)))?
            .pop()
            .unwrap_or_else(|| unreachable!("one name, one result")),
    )
}

/// The scan ranges of a namespace's index rows: under the current index key of its
/// domain, then the older ones still in use.
fn ns_ranges(access: &dyn Access, namespace: &str) -> Result<Vec<ScanRange>, VaultError> {
    Ok(access
        .domain(namespace)?
        .index
        .all()
        .into_iter()
        .map(|m| ScanRange::prefix(m.ns_prefix(namespace).to_vec()))
        .collect())
}

/// An index row found by a scan names the secret its record holds: the row key is the
/// blind index of the payload's namespace and name (and, for a scan of one namespace, that
/// namespace). A storage that points rows at other records is refused, never followed.
pub(crate) fn check_index_row(
    access: &dyn Access,
    row_key: &[u8],
    payload: &OpenedPayload,
    record: RecordId,
    namespace: Option<&str>,
) -> Result<(), VaultError> {
    let misdirected = || {
        VaultError::inconsistent(
            Inconsistency::Misdirected,
            format!("index row points at record {record} of another secret"),
        )
    };
    if namespace.is_some_and(|ns| ns != payload.namespace) {
        return Err(misdirected());
    }
    let domain = access.domain(&payload.namespace)?;
    if !domain
        .index
        .all()
        .into_iter()
        .any(|m| blind_with(m, &payload.namespace, &payload.name)[..] == row_key[..])
    {
        return Err(misdirected());
    }
    Ok(())
}

/// The plaintext sealed in a body.
///
/// Layout (version 2): `version = 2 ‖ namespace (u32 len ‖ bytes) ‖ name (u32 len ‖ bytes) ‖
/// created at (u64) ‖ updated at (u64) ‖ author member id (16) ‖ value (u32 len ‖ bytes) ‖
/// signer member id (16) ‖ proof kind (1) ‖ log position (u64) ‖ Ed25519 signature (64)`
/// (see [`crate::writers`]). Version 1 (read only) ends after the value.
pub(crate) struct Payload<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) created_at: u64,
    pub(crate) updated_at: u64,
    pub(crate) author: MemberId,
    pub(crate) value: &'a [u8],
}

/// Payload format 2 ends with signer (16) ‖ kind (1) ‖ log position (8) ‖ signature (64).
const PROOF_LEN: usize = 16 + 1 + 8 + 64;

impl Payload<'_> {
    fn fields(&self, version: u8) -> Writer {
        let mut w = Writer::with_capacity(
            1 + 12 + self.namespace.len() + self.name.len() + 32 + self.value.len() + PROOF_LEN,
        );
        w.u8(version)
            .var_bytes(self.namespace.as_bytes())
            .var_bytes(self.name.as_bytes())
            .u64(self.created_at)
            .u64(self.updated_at)
            .bytes(self.author.as_bytes())
            .var_bytes(self.value);
        w
    }

    /// Format 1, unsigned (written by earlier releases; tests make it to stand for them).
    #[cfg(test)]
    pub(crate) fn encode_unsigned(&self) -> SecretBytes {
        SecretBytes::from(self.fields(1).into_vec())
    }

    /// Format 2, signed by `signer` for the version `ctx` as `kind` (written: `signer` is
    /// the author), naming log position `seq` (the last entry of the membership log the
    /// signer verified).
    pub(crate) fn encode_signed(
        &self,
        ctx: &RecordContext,
        signer: &strongroom_sharing::Identity,
        kind: ProofKind,
        seq: u64,
    ) -> SecretBytes {
        let mut w = self.fields(2);
        w.bytes(signer.member_id().as_bytes())
            .u8(kind as u8)
            .u64(seq);
        let signature = signer.sign_record(&crate::writers::digest(ctx, w.as_slice()));
        w.bytes(&signature);
        SecretBytes::from(w.into_vec())
    }

    /// Format 2 with a proof made before (a version sealed again keeps its signature: it
    /// covers the record's place and payload, not the data key).
    pub(crate) fn encode_proven(&self, proof: &WriterProof) -> SecretBytes {
        let mut w = self.fields(2);
        w.bytes(proof.signer.as_bytes())
            .u8(proof.kind as u8)
            .u64(proof.seq)
            .bytes(&proof.signature);
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
    /// Format 2: the writer proof. `None` in a format-1 payload.
    pub(crate) proof: Option<WriterProof>,
    /// How the writer is authenticated, once [`open_rows`] checked it (`Unsigned` until
    /// then).
    pub(crate) authorship: Authorship,
    /// The signer lost the right to write since ([`open_to_attest`] only): the version
    /// needs a re-attestation.
    pub(crate) needs_attestation: bool,
}

impl OpenedPayload {
    /// Its fields, to encode again (a version sealed again keeps them).
    pub(crate) fn fields(&self) -> Payload<'_> {
        Payload {
            namespace: &self.namespace,
            name: &self.name,
            created_at: self.created_at,
            updated_at: self.updated_at,
            author: self.author,
            value: self.value.expose_secret(),
        }
    }
}

pub(crate) fn decode_payload(plain: &SecretBytes) -> Result<OpenedPayload, VaultError> {
    let corrupt = |source| VaultError::Corrupt {
        what: "record payload",
        source,
    };
    let bytes = plain.expose_secret();
    let mut r = Reader::new("record payload", bytes);
    let format = r.version(&[1, 2]).map_err(corrupt)?;
    let ns = r
        .var_bytes("namespace", MAX_NAMESPACE_LEN)
        .map_err(corrupt)?;
    let name = r.var_bytes("name", MAX_NAME_LEN).map_err(corrupt)?;
    let created_at = r.u64("created at").map_err(corrupt)?;
    let updated_at = r.u64("updated at").map_err(corrupt)?;
    let author = MemberId::from_bytes(r.array("author").map_err(corrupt)?);
    let value = r.var_bytes("value", MAX_VALUE_LEN).map_err(corrupt)?;
    let proof = if format == 2 {
        let signer = MemberId::from_bytes(r.array("signer").map_err(corrupt)?);
        let kind = r.u8("proof kind").map_err(corrupt)?;
        let kind = ProofKind::from_id(kind).ok_or_else(|| {
            corrupt(DecodeError::Invalid {
                format: "record payload",
                field: "proof kind",
                reason: "unknown proof kind",
            })
        })?;
        Some(WriterProof {
            signer,
            kind,
            seq: r.u64("log position").map_err(corrupt)?,
            signature: r.array("signature").map_err(corrupt)?,
        })
    } else {
        None
    };
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
        proof,
        authorship: Authorship::Unsigned,
        needs_attestation: false,
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
#[non_exhaustive]
pub struct PutManyReport {
    /// The versions written, in input order.
    pub written: Vec<SecretMeta>,
    /// Secrets whose current value was already the given one (no new version).
    pub unchanged: usize,
}

/// Opens version `version` of the record `entry` names, from `view`: the head of a
/// format-2 entry from the entry itself (plus its body row when the body is not inline),
/// any other version from its two rows, read in one call.
pub(crate) fn open_version(
    view: &dyn ReadView,
    access: &dyn Access,
    entry: &IndexEntry,
    version: u64,
) -> Result<(OpenedPayload, Epoch), VaultError> {
    open_version_with(view, access, entry, version, LostRight::Refuse)
}

/// [`open_version`] without any check of its writer, for its namespace and name only (a
/// rotation moving its index row): see [`LostRight::NameOnly`].
pub(crate) fn open_version_name_only(
    view: &dyn ReadView,
    access: &dyn Access,
    entry: &IndexEntry,
    version: u64,
) -> Result<(OpenedPayload, Epoch), VaultError> {
    open_version_with(view, access, entry, version, LostRight::NameOnly)
}

/// [`open_version`] as [`open_to_attest`] opens rows.
pub(crate) fn open_version_to_attest(
    view: &dyn ReadView,
    access: &dyn Access,
    entry: &IndexEntry,
    version: u64,
) -> Result<(OpenedPayload, Epoch), VaultError> {
    open_version_with(view, access, entry, version, LostRight::ToAttest)
}

fn open_version_with(
    view: &dyn ReadView,
    access: &dyn Access,
    entry: &IndexEntry,
    version: u64,
    lost: LostRight,
) -> Result<(OpenedPayload, Epoch), VaultError> {
    let open_rows = |access, record, version, body: &[u8], dek: &[u8]| {
        open_rows_with(access, record, version, body, dek, lost)
    };
    let record = entry.record;
    let key = version_key(record, version);
    if version == entry.version
        && let Some(head) = entry.head()
    {
        return match &head.body {
            HeadBody::Inline(body) => open_rows(access, record, version, body, head.dek.as_bytes()),
            HeadBody::Stored => {
                let body = view.get(Table::Bodies, &key)?.ok_or_else(|| {
                    VaultError::inconsistent(
                        Inconsistency::MissingRow,
                        format!("record {record} version {version} is missing its body"),
                    )
                })?;
                open_rows(access, record, version, &body.value, head.dek.as_bytes())
            }
        };
    }
    let got = view.get_many(&[(Table::Bodies, &key), (Table::Deks, &key)])?;
    let rows = <[Option<Versioned>; 2]>::try_from(got).unwrap_or([None, None]);
    let missing = match &rows {
        [Some(body), Some(dek)] => {
            return open_rows(access, record, version, &body.value, &dek.value);
        }
        [None, None] => return Err(VaultError::VersionGone { record, version }),
        [None, Some(_)] => "its body",
        [Some(_), None] => "its data key",
    };
    Err(VaultError::inconsistent(
        Inconsistency::MissingRow,
        format!("record {record} version {version} is missing {missing}"),
    ))
}

/// The heads of the index rows `rows` (a page of a scan), opened with at most one more
/// store call: inline heads need none, the rest are read together.
pub(crate) fn open_heads(
    view: &dyn ReadView,
    access: &dyn Access,
    rows: &[Row],
) -> Result<Vec<(IndexEntry, OpenedPayload, Epoch)>, VaultError> {
    let entries = rows
        .iter()
        .map(|r| IndexEntry::decode(&r.value))
        .collect::<Result<Vec<_>, _>>()?;
    // The keys of what is not in the entries: a stored head's body, or both rows of a
    // format-1 head.
    let keys: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| version_key(e.record, e.version))
        .collect();
    let mut wanted: Vec<(Table, &[u8])> = Vec::new();
    for (e, k) in entries.iter().zip(&keys) {
        match e.head().map(|h| &h.body) {
            Some(HeadBody::Inline(_)) => {}
            Some(HeadBody::Stored) => wanted.push((Table::Bodies, k)),
            None => {
                wanted.push((Table::Bodies, k));
                wanted.push((Table::Deks, k));
            }
        }
    }
    let mut fetched = if wanted.is_empty() {
        Vec::new()
    } else {
        view.get_many(&wanted)?
    };
    let missing = |e: &IndexEntry| {
        VaultError::inconsistent(
            Inconsistency::MissingRow,
            format!(
                "record {} version {} is missing its body or data key",
                e.record, e.version
            ),
        )
    };
    // Where each head's body and wrapped data key are, then every head opened (on every
    // core for a large page).
    fetched.reverse();
    let mut take = || fetched.pop().flatten();
    let mut rows: Vec<(&IndexEntry, Stored<'_>)> = Vec::with_capacity(entries.len());
    for e in &entries {
        let stored = match e.head() {
            Some(Head {
                dek,
                body: HeadBody::Inline(body),
            }) => Stored::Inline(body, dek.as_bytes()),
            Some(Head {
                dek,
                body: HeadBody::Stored,
            }) => {
                let body = take().ok_or_else(|| missing(e))?;
                Stored::Body(body, dek.as_bytes())
            }
            None => {
                let (Some(body), Some(dek)) = (take(), take()) else {
                    return Err(missing(e));
                };
                Stored::Rows(body, dek)
            }
        };
        rows.push((e, stored));
    }
    let opened = par_map(
        &rows,
        OPEN_PARALLEL_FROM,
        "a thread opening records panicked",
        |(e, stored)| {
            let (body, dek) = stored.parts();
            open_rows(access, e.record, e.version, body, dek)
        },
    )?;
    Ok(entries
        .into_iter()
        .zip(opened)
        .map(|(e, (payload, epoch))| (e, payload, epoch))
        .collect())
}

/// Where a head's body and wrapped data key were read from.
enum Stored<'a> {
    /// Both in the index entry.
    Inline(&'a [u8], &'a [u8]),
    /// The body in its own row, the wrapped data key in the entry.
    Body(Versioned, &'a [u8]),
    /// Both in rows of their own (format 1).
    Rows(Versioned, Versioned),
}

impl Stored<'_> {
    /// The body and the wrapped data key.
    fn parts(&self) -> (&[u8], &[u8]) {
        match self {
            Stored::Inline(body, dek) => (body, dek),
            Stored::Body(body, dek) => (&body.value, dek),
            Stored::Rows(body, dek) => (&body.value, &dek.value),
        }
    }
}

pub(crate) fn open_rows(
    access: &dyn Access,
    record: RecordId,
    version: u64,
    body: &[u8],
    dek: &[u8],
) -> Result<(OpenedPayload, Epoch), VaultError> {
    open_rows_with(access, record, version, body, dek, LostRight::Refuse)
}

/// [`open_rows`], accepting a version whose signer lost the right to write since (its
/// signature still checked as of the log position it names), marked `needs_attestation`:
/// for re-attestation, re-encryption and a restore's verification, never for a read.
pub(crate) fn open_to_attest(
    access: &dyn Access,
    record: RecordId,
    version: u64,
    body: &[u8],
    dek: &[u8],
) -> Result<(OpenedPayload, Epoch), VaultError> {
    open_rows_with(access, record, version, body, dek, LostRight::ToAttest)
}

fn open_rows_with(
    access: &dyn Access,
    record: RecordId,
    version: u64,
    body: &[u8],
    dek: &[u8],
    lost: LostRight,
) -> Result<(OpenedPayload, Epoch), VaultError> {
    let rec_err = |source| VaultError::Record {
        record: record.to_string(),
        source,
    };
    let wrapped = WrappedDek::from_bytes(dek).map_err(rec_err)?;
    let epoch = wrapped.epoch();
    let Some((scope, key)) = access.unwrapping_key(&wrapped) else {
        if !access.holds_vault_keys() {
            return Err(VaultError::KeyNotHeld {
                record: record.to_string(),
                version,
            });
        }
        if epoch < access.min_epoch() {
            return Err(VaultError::RetiredEpoch {
                record: record.to_string(),
                epoch,
            });
        }
        return Err(VaultError::Record {
            record: record.to_string(),
            source: strongroom_envelope::EnvelopeError::Decrypt,
        });
    };
    if scope.is_none() && epoch < access.min_epoch() {
        return Err(VaultError::RetiredEpoch {
            record: record.to_string(),
            epoch,
        });
    }
    let ctx = RecordContext {
        vault_id: access.vault_id(),
        record_id: record,
        version,
    };
    // A scope's data keys are shared with its scoped members: its bodies are always
    // checked against the digest the wrap authenticates.
    let check = match scope {
        None => access.body_check(),
        Some(_) => BodyCheck::Always,
    };
    let plain = access
        .verified()
        .opened
        .open(key, &ctx, body, dek, check)
        .map_err(rec_err)?;
    let mut payload = decode_payload(&plain)?;
    // A scope key wraps only records of its scope: a scoped member cannot move a record it
    // wrote into another scope or the vault-wide area by a storage edit. (A vault key may
    // wrap a record of a scope's namespace written before the scope existed: only full
    // members hold vault keys, and they may write there.)
    let domain = access
        .membership()
        .scope_of(&payload.namespace)
        .map(strongroom_sharing::Scope::id);
    if scope.is_some() && domain != scope {
        let name = |s: Option<ScopeId>| {
            s.map_or("the vault-wide area".to_owned(), |s| format!("scope {s}"))
        };
        return Err(VaultError::inconsistent(
            Inconsistency::Misdirected,
            format!(
                "record {record} version {version} is wrapped under a key of {}, but its namespace is in {}",
                name(scope),
                name(domain)
            ),
        ));
    }
    let opened = crate::writers::Opened {
        key: key.commitment(),
        dek,
        body,
        plain: plain.expose_secret(),
    };
    let checked = crate::writers::check(
        access,
        &ctx,
        &opened,
        payload.author,
        payload.proof.as_ref(),
        lost,
        domain,
    )?;
    payload.authorship = checked.authorship;
    payload.needs_attestation = checked.needs_attestation;
    Ok((payload, epoch))
}

/// A put decided but not sealed yet ([`Vault::plan_put`]).
struct PlannedPut<'a, 'k> {
    key: [u8; 32],
    /// The current key of the secret's domain, which the new version is wrapped under.
    seal_key: &'k VaultKey,
    ctx: RecordContext,
    created_at: u64,
    previous: Option<IndexEntry>,
    expect: Expect,
    seq: u64,
    payload: Payload<'a>,
}

/// The last position of the membership log `access` verified: what a writer signs it saw.
pub(crate) fn log_position(access: &dyn Access) -> u64 {
    access.membership().len().saturating_sub(1)
}

/// What a put needs besides keys: the vault's cipher suite and how many versions it keeps.
#[derive(Clone, Copy)]
pub(crate) struct WriteSettings {
    pub(crate) suite: Suite,
    pub(crate) keep: u64,
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
        authorship: p.authorship,
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
            let at = locate(self.store(), state, namespace, name)?;
            let meta = stage_put(
                state,
                self.write_settings(),
                batch,
                &at,
                namespace,
                name,
                value,
            )?;
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
            // Every index row in one read (in chunks, for very large imports).
            let located = locate_many(store, state, secrets.iter().map(|s| (s.namespace, s.name)))?;
            let mut planned = Vec::with_capacity(secrets.len());
            for (s, at) in secrets.iter().zip(located) {
                if let Some(row) = at.row()
                    && current_value_is(store, state, row, s)?
                {
                    unchanged += 1;
                    continue;
                }
                planned.push(plan_put(state, batch, &at, s.namespace, s.name, s.value)?);
            }
            // Signing and sealing take most of an import's time and need no order: they
            // run on every core, the rows then go into the batch in input order.
            let settings = self.write_settings();
            let sealed = seal_all(state, settings, &planned)?;
            for (p, sealed) in planned.into_iter().zip(sealed) {
                written.push(finish_put(settings, batch, p, sealed));
            }
            let detail = format!("written={} unchanged={unchanged}", written.len());
            let event = AuditEvent::new(Action::Import, Vec::new(), detail);
            Ok((PutManyReport { written, unchanged }, event))
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

    /// Reads the current versions of several secrets of one namespace in one store call
    /// (their index entries hold their heads): `None` for a name that does not exist.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// vault.put("core/app", "DB_PASSWORD", b"hunter2")?;
    /// let got = vault.get_many("core/app", &["DB_PASSWORD", "MISSING"])?;
    /// assert_eq!(got[0].as_ref().unwrap().expose_secret(), b"hunter2");
    /// assert!(got[1].is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_many(
        &self,
        namespace: &str,
        names: &[&str],
    ) -> Result<Vec<Option<Secret>>, VaultError> {
        validate_names(namespace, names)?;
        let mut attempt = 0;
        loop {
            match self.read(|state| get_many_in(self.store(), state, namespace, names)) {
                Err(
                    VaultError::Record { .. }
                    | VaultError::Inconsistent { .. }
                    | VaultError::VersionGone { .. },
                ) if attempt < 3 => {
                    attempt += 1;
                }
                // A name not found under the keys this handle has: found again after a
                // refresh if the index moved to a new metadata key meanwhile.
                Ok(got)
                    if attempt < 3
                        && got.iter().any(Option::is_none)
                        && self.refresh_if_stale()? =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
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
                match get_in(self.store(), state, namespace, name, version) {
                    Err(
                        VaultError::Record { .. }
                        | VaultError::Inconsistent { .. }
                        | VaultError::VersionGone { .. },
                    ) if attempt < 3 => {
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }

    /// Deletes a secret and every stored version of it, with an audit entry, atomically.
    pub fn delete(&self, namespace: &str, name: &str) -> Result<(), VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.require_writer()?;
        self.write(|state, batch| {
            let record = stage_delete(self.store(), state, batch, namespace, name)?;
            let event = AuditEvent::new(Action::Delete, record.as_bytes(), "");
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
                Err(
                    VaultError::Record { .. }
                    | VaultError::Inconsistent { .. }
                    | VaultError::VersionGone { .. },
                ) if attempt < 3 => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn list_once(&self, namespace: &str) -> Result<Vec<SecretMeta>, VaultError> {
        Ok(self
            .load_once(namespace)?
            .into_iter()
            .map(|s| s.meta)
            .collect())
    }

    /// Every secret of a namespace with its current value, sorted by name: what an
    /// application reads at start-up (and `run` and `export` read). One consistent read:
    /// one store call for a namespace of up to 10,000 secrets whose bodies are inline, a
    /// snapshot for a larger one (use [`Vault::secrets`] to stream a large namespace in
    /// bounded memory).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// vault.put("core/billing", "DB_PASSWORD", b"hunter2")?;
    /// vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?;
    /// let all = vault.load("core/billing")?;
    /// let names: Vec<&str> = all.iter().map(|s| s.meta().name.as_str()).collect();
    /// assert_eq!(names, ["DB_PASSWORD", "STRIPE_KEY"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(&self, namespace: &str) -> Result<Vec<Secret>, VaultError> {
        validate_namespace(namespace)?;
        let mut attempt = 0;
        loop {
            match self.load_once(namespace) {
                Err(
                    VaultError::Record { .. }
                    | VaultError::Inconsistent { .. }
                    | VaultError::VersionGone { .. },
                ) if attempt < 3 => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Streams every secret of a namespace with its current value, from one point in time,
    /// in bounded memory: the store is read through a snapshot, [`SECRETS_PAGE`] index
    /// entries at a time, and only one page of decrypted secrets is held at once. Writes
    /// made while the stream runs are not seen. Secrets come in storage order (by blinded
    /// name, which says nothing about the names); sort them yourself, or use
    /// [`Vault::load`] for a sorted `Vec`, if order matters.
    ///
    /// The stream borrows the vault: hold it only as long as you read. On SQLite and
    /// PostgreSQL the snapshot is an open read transaction.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use strongroom::{CreateOptions, Vault, recovery::RawKek, store::MemoryStore};
    /// # let (vault, _) = Vault::create(Arc::new(MemoryStore::new()), &RawKek::generate()?, &CreateOptions::default())?;
    /// vault.put("core/billing", "DB_PASSWORD", b"hunter2")?;
    /// vault.put("core/billing", "STRIPE_KEY", b"sk_live_123")?;
    /// let mut names = Vec::new();
    /// for secret in vault.secrets("core/billing")? {
    ///     let secret = secret?;
    ///     names.push(secret.meta().name.clone());
    /// }
    /// names.sort();
    /// assert_eq!(names, ["DB_PASSWORD", "STRIPE_KEY"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn secrets(&self, namespace: &str) -> Result<Secrets<'_>, VaultError> {
        validate_namespace(namespace)?;
        self.refresh_if_stale()?;
        let mut ranges = self.read(|state| ns_ranges(state, namespace))?.into_iter();
        let range = ranges
            .next()
            .unwrap_or_else(|| unreachable!("the current metadata key's range"));
        let view = self.store().snapshot()?;
        Ok(Secrets {
            vault: self,
            view,
            namespace: namespace.to_owned(),
            range,
            more: ranges,
            cursor: None,
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    /// Every secret of every namespace, read from one point in time (export of the whole
    /// vault).
    pub(crate) fn load_all(&self) -> Result<Vec<Secret>, VaultError> {
        self.refresh_if_stale()?;
        self.read(|state| {
            let view = self.store().snapshot()?;
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let page = view.scan(Table::Index, &ScanRange::all(), cursor.as_ref(), 1000)?;
                secrets_of(&*view, state, &page.rows, None, &mut out)?;
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => return Ok(out),
                }
            }
        })
    }

    fn load_once(&self, namespace: &str) -> Result<Vec<Secret>, VaultError> {
        // A scan under a metadata key that was replaced would miss the rows moved since:
        // one store call checks that the membership log is where this handle saw it.
        self.refresh_if_stale()?;
        self.read(|state| load_in(self.store(), state, namespace))
    }

    /// The stored versions of a secret, oldest first.
    pub fn history(&self, namespace: &str, name: &str) -> Result<Vec<SecretMeta>, VaultError> {
        validate_namespace(namespace)?;
        validate_name(name)?;
        self.read(|state| history_in(self.store(), state, namespace, name))
    }
}

/// [`seal_put`] of every planned put, split over the machine's cores.
fn seal_all(
    access: &dyn Access,
    settings: WriteSettings,
    planned: &[PlannedPut<'_, '_>],
) -> Result<Vec<Sealed>, VaultError> {
    par_map(
        planned,
        SEAL_PARALLEL_FROM,
        "a sealing thread panicked",
        |p| seal_put(access, settings, p),
    )
}

/// Puts an import seals on every core from: below this, starting threads costs more than
/// it saves (a put signs and seals in about 20 µs).
const SEAL_PARALLEL_FROM: usize = 64;

/// Heads a load opens on every core from. A head opens in a few microseconds, and the
/// threads share the handle's memory of opened and verified versions: measured on two
/// cores (SQLite, 1 KiB), loads of 100 and 256 secrets were 10–25 % slower on two threads,
/// 512 the same, 2,000 about 20 % faster.
const OPEN_PARALLEL_FROM: usize = 1024;

/// `f` of every item, in order; from `from` items on, split into one chunk per core, each
/// on a scoped thread (the calling thread takes the first). The first error in item order
/// wins.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    from: usize,
    panicked: &'static str,
    f: impl Fn(&T) -> Result<R, VaultError> + Sync,
) -> Result<Vec<R>, VaultError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    if threads < 2 || items.len() < from {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        // The calling thread takes the first chunk itself.
        let first = chunks.next().unwrap_or_default();
        let parts: Vec<_> = chunks
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut all = first.iter().map(f).collect::<Result<Vec<_>, _>>()?;
        all.reserve(items.len() - all.len());
        for part in parts {
            let done = part
                .join()
                .map_err(|_| VaultError::inconsistent(Inconsistency::Internal, panicked))??;
            all.extend(done);
        }
        Ok(all)
    })
}

/// Whether the head version of the record at `row` holds `s.value` already. A head
/// whose writer is refused holds no value: the import writes over it, as a put does.
fn current_value_is(
    view: &dyn ReadView,
    access: &dyn Access,
    row: &Versioned,
    s: &NewSecret<'_>,
) -> Result<bool, VaultError> {
    use subtle::ConstantTimeEq;
    let entry = IndexEntry::decode(&row.value)?;
    let (p, _) = match open_version(view, access, &entry, entry.version) {
        Err(VaultError::Writer { .. }) => return Ok(false),
        other => other?,
    };
    check_names(&p, s.namespace, s.name, entry.record)?;
    Ok(p.value.expose_secret().ct_eq(s.value).into())
}

/// Adds a new version of `namespace`/`name` (index row `at`) to `batch`: the new head
/// goes into the index entry (its body too when small), the previous head moves to
/// rows of its own, and versions that fall out of the history are deleted. No read:
/// what the rows hold follows from the entry. An index row found under an older
/// metadata key moves to its current blind index.
pub(crate) fn stage_put(
    access: &dyn Access,
    settings: WriteSettings,
    batch: &mut Batch,
    at: &Located,
    namespace: &str,
    name: &str,
    value: &[u8],
) -> Result<SecretMeta, VaultError> {
    let planned = plan_put(access, batch, at, namespace, name, value)?;
    let sealed = seal_put(access, settings, &planned)?;
    Ok(finish_put(settings, batch, planned, sealed))
}

/// The first, cheap part of [`stage_put`], in order: the version, the record
/// id, what the index row is expected to hold, and the writer's right.
fn plan_put<'a, 'k>(
    access: &'k dyn Access,
    batch: &mut Batch,
    at: &Located,
    namespace: &'a str,
    name: &'a str,
    value: &'a [u8],
) -> Result<PlannedPut<'a, 'k>, VaultError> {
    let now = now();
    let (record, version, created_at, previous, mut expect) = next_version(at.row(), now)?;
    if let Some((found, row)) = &at.found
        && *found != at.key
    {
        batch.delete(Table::Index, found.to_vec(), Expect::Version(row.version));
        expect = Expect::Absent;
    }
    let author = access.member_id();
    let domain = access.domain(namespace)?;
    // The right to write is checked again here, against the log this attempt signs at.
    let seq = crate::writers::signing_position(access, domain.scope)?;
    Ok(PlannedPut {
        key: at.key,
        seal_key: domain.key,
        ctx: RecordContext {
            vault_id: access.vault_id(),
            record_id: record,
            version,
        },
        created_at,
        previous,
        expect,
        seq,
        payload: Payload {
            namespace,
            name,
            created_at,
            updated_at: now,
            author,
            value,
        },
    })
}

/// The costly part of [`stage_put`], which needs no order: the signed payload,
/// sealed under a fresh data key wrapped by the current vault key.
fn seal_put(
    access: &dyn Access,
    settings: WriteSettings,
    planned: &PlannedPut<'_, '_>,
) -> Result<Sealed, VaultError> {
    let payload = planned.payload.encode_signed(
        &planned.ctx,
        access.identity(),
        ProofKind::Written,
        planned.seq,
    );
    seal(
        planned.seal_key,
        settings.suite,
        &planned.ctx,
        payload.expose_secret(),
    )
    .map_err(|e| VaultError::Record {
        record: planned.ctx.record_id.to_string(),
        source: e,
    })
}

/// The last part of [`stage_put`]: the rows into `batch`.
fn finish_put(
    settings: WriteSettings,
    batch: &mut Batch,
    planned: PlannedPut<'_, '_>,
    sealed: Sealed,
) -> SecretMeta {
    let PlannedPut {
        key,
        ctx,
        created_at,
        previous,
        expect,
        payload,
        ..
    } = planned;
    let (record, version) = (ctx.record_id, ctx.version);
    let keep = settings.keep.max(1);
    // The versions kept after this put: `oldest ..= version`.
    let oldest = version.saturating_sub(keep - 1).max(1);
    if let Some(old) = &previous {
        stage_history(batch, old, oldest);
    }
    let epoch = sealed.wrapped_dek.epoch();
    let body = place_body(batch, record, version, sealed.body);
    let entry = IndexEntry {
        record,
        version,
        created_at,
        layout: Some((
            oldest,
            Head {
                dek: sealed.wrapped_dek,
                body,
            },
        )),
    };
    batch.put(Table::Index, key.to_vec(), entry.encode(), expect);
    SecretMeta {
        namespace: payload.namespace.to_owned(),
        name: payload.name.to_owned(),
        record_id: record,
        version,
        created_at,
        updated_at: payload.updated_at,
        updated_by: payload.author,
        authorship: Authorship::Signed,
        epoch,
        len: payload.value.len(),
    }
}

/// The version `version` (the head: `None`) of `namespace`/`name`: one store read for a
/// head.
pub(crate) fn get_in(
    store: &dyn ReadView,
    access: &dyn Access,
    namespace: &str,
    name: &str,
    version: Option<u64>,
) -> Result<Secret, VaultError> {
    let not_found = || VaultError::NotFound {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    let (_, row) = locate_existing(store, access, namespace, name)?;
    let entry = IndexEntry::decode_owned(row.value)?;
    let v = version.unwrap_or(entry.version);
    if v == 0 || v > entry.version || entry.oldest().is_some_and(|o| v < o) {
        return Err(not_found());
    }
    let opened = open_version(store, access, &entry, v);
    let (p, epoch) = match opened {
        // An older version pruned since, or purged: not found, not damage.
        Err(VaultError::VersionGone { .. }) if version.is_some() => {
            return Err(not_found());
        }
        other => other?,
    };
    check_names(&p, namespace, name, entry.record)?;
    let meta = meta_of(&p, entry.record, v, epoch);
    Ok(Secret {
        meta,
        value: p.value,
    })
}

/// The heads of `names` in `namespace`, in one store read (plus one for bodies too large
/// to be inline): `None` for a name that does not exist.
pub(crate) fn get_many_in(
    store: &dyn ReadView,
    access: &dyn Access,
    namespace: &str,
    names: &[&str],
) -> Result<Vec<Option<Secret>>, VaultError> {
    let got = locate_many(store, access, names.iter().map(|n| (namespace, *n)))?;
    let rows: Vec<Row> = got
        .iter()
        .filter_map(|at| {
            at.found.as_ref().map(|(k, v)| Row {
                key: k.to_vec(),
                value: v.value.clone(),
                version: v.version,
            })
        })
        .collect();
    let mut opened = Vec::with_capacity(rows.len());
    secrets_of(store, access, &rows, Some(namespace), &mut opened)?;
    let mut opened = opened.into_iter();
    Ok(got
        .iter()
        .map(|at| at.found.as_ref().and_then(|_| opened.next()))
        .collect())
}

/// Adds the deletion of `namespace`/`name` and every stored version of it to `batch`.
pub(crate) fn stage_delete(
    store: &dyn ReadView,
    access: &dyn Access,
    batch: &mut Batch,
    namespace: &str,
    name: &str,
) -> Result<RecordId, VaultError> {
    let (key, row) = locate_existing(store, access, namespace, name)?;
    let entry = IndexEntry::decode(&row.value)?;
    batch.delete(Table::Index, key.to_vec(), Expect::Version(row.version));
    stage_delete_rows(store, batch, &entry)?;
    Ok(entry.record)
}

/// Every secret of `namespace` with its current value, sorted by name, from one point in
/// time (one store call for a namespace of inline bodies that fits one scan).
pub(crate) fn load_in(
    store: &dyn Store,
    access: &dyn Access,
    namespace: &str,
) -> Result<Vec<Secret>, VaultError> {
    let ranges = ns_ranges(access, namespace)?;
    let first = store.scan(Table::Index, &ranges[0], None, MAX_SCAN_LIMIT)?;
    let mut out = Vec::with_capacity(first.rows.len());
    if first.next.is_none() && ranges.len() == 1 {
        secrets_of(store, access, &first.rows, Some(namespace), &mut out)?;
    } else {
        // More than one page (or rows still under an older metadata key): read
        // them all from one point in time.
        let view = store.snapshot()?;
        for range in &ranges {
            let mut cursor = None;
            loop {
                let page = view.scan(Table::Index, range, cursor.as_ref(), 1000)?;
                secrets_of(&*view, access, &page.rows, Some(namespace), &mut out)?;
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    // Stable: a name found under the current key and an older one (planted) keeps
    // the current one.
    out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    out.dedup_by(|later, first| later.meta.name == first.meta.name);
    Ok(out)
}

/// The stored versions of `namespace`/`name`, oldest first.
pub(crate) fn history_in(
    store: &dyn ReadView,
    access: &dyn Access,
    namespace: &str,
    name: &str,
) -> Result<Vec<SecretMeta>, VaultError> {
    let (_, row) = locate_existing(store, access, namespace, name)?;
    let entry = IndexEntry::decode(&row.value)?;
    let versions: Vec<u64> = match entry.oldest() {
        Some(oldest) => (oldest..=entry.version).collect(),
        None => versions_of(store, Table::Bodies, entry.record)?
            .iter()
            .filter_map(|r| parse_version_key(&r.key).map(|(_, v)| v))
            .filter(|v| *v <= entry.version)
            .collect(),
    };
    let mut out = Vec::with_capacity(versions.len());
    for v in versions {
        let (p, epoch) = match open_version(store, access, &entry, v) {
            // Pruned by a writer meanwhile, or purged: not stored any more. Or, for a
            // scoped member, written before the scope existed: not its to read.
            Err(VaultError::VersionGone { .. } | VaultError::KeyNotHeld { .. }) => continue,
            other => other?,
        };
        check_names(&p, namespace, name, entry.record)?;
        out.push(meta_of(&p, entry.record, v, epoch));
    }
    Ok(out)
}

/// Opens the heads of the index rows `rows` (a page of `namespace`, or of the whole index)
/// into `out`, checking each row against the secret it points at.
/// Index entries read per store call by [`Vault::secrets`]: the most decrypted secrets
/// a stream holds at once.
pub const SECRETS_PAGE: usize = 256;

/// The secrets of one namespace, streamed from one point in time: see [`Vault::secrets`].
///
/// Yields `Err` once for a page that cannot be read or opened (damaged rows, a store
/// failure), then ends.
pub struct Secrets<'a> {
    vault: &'a Vault,
    view: Box<dyn Snapshot + 'a>,
    namespace: String,
    range: ScanRange,
    /// The ranges under older metadata keys, after `range`.
    more: std::vec::IntoIter<ScanRange>,
    cursor: Option<Cursor>,
    page: std::vec::IntoIter<Secret>,
    done: bool,
}

impl Secrets<'_> {
    /// Reads and opens the next page of index entries.
    fn fill(&mut self) -> Result<(), VaultError> {
        let page = self.view.scan(
            Table::Index,
            &self.range,
            self.cursor.as_ref(),
            SECRETS_PAGE,
        )?;
        let view: &dyn ReadView = &*self.view;
        let opened = self.vault.read(|state| {
            let mut out = Vec::with_capacity(page.rows.len());
            secrets_of(view, state, &page.rows, Some(&self.namespace), &mut out)?;
            Ok(out)
        })?;
        self.page = opened.into_iter();
        match (page.next, self.more.next()) {
            (Some(c), _) => self.cursor = Some(c),
            (None, Some(range)) => {
                self.range = range;
                self.cursor = None;
            }
            (None, None) => self.done = true,
        }
        Ok(())
    }
}

impl Iterator for Secrets<'_> {
    type Item = Result<Secret, VaultError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(s) = self.page.next() {
                return Some(Ok(s));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

impl fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("namespace", &self.namespace)
            .field("buffered", &self.page.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

pub(crate) fn secrets_of(
    view: &dyn ReadView,
    access: &dyn Access,
    rows: &[Row],
    namespace: Option<&str>,
    out: &mut Vec<Secret>,
) -> Result<(), VaultError> {
    for (row, (entry, p, epoch)) in rows.iter().zip(open_heads(view, access, rows)?) {
        check_index_row(access, &row.key, &p, entry.record, namespace)?;
        let meta = meta_of(&p, entry.record, entry.version, epoch);
        out.push(Secret {
            meta,
            value: p.value,
        });
    }
    Ok(())
}

/// Every stored version of the record `entry` names with the epoch it was sealed in (what
/// the wrap says in format 2, the body header in format 1), oldest first.
pub(crate) fn sealed_epochs(
    view: &dyn ReadView,
    entry: &IndexEntry,
) -> Result<Vec<(u64, Epoch)>, VaultError> {
    let mut out = Vec::new();
    for dek in versions_of(view, Table::Deks, entry.record)? {
        let Some((_, v)) = parse_version_key(&dek.key) else {
            continue;
        };
        let Ok(w) = WrappedDek::from_bytes(&dek.value) else {
            continue;
        };
        let sealed = match w.sealed_epoch() {
            Some(e) => e,
            None => view
                .get(Table::Bodies, &dek.key)?
                .and_then(|b| strongroom_envelope::BodyHeader::decode(&b.value).ok())
                .map_or(w.epoch(), |h| h.epoch),
        };
        out.push((v, sealed));
    }
    if let Some(head) = entry.head() {
        let sealed = head.dek.sealed_epoch().unwrap_or(head.dek.epoch());
        out.push((entry.version, sealed));
    }
    Ok(out)
}

/// Moves the head of `old` (a secret's entry before a new version) into rows of its own
/// when it stays in the history (versions `oldest ..`), and deletes the rows of versions
/// that fall out of it.
fn stage_history(batch: &mut Batch, old: &IndexEntry, oldest: u64) {
    let head = old.version;
    match old.layout.as_ref() {
        Some((old_oldest, h)) => {
            let key = version_key(old.record, head);
            if head >= oldest {
                batch.put(
                    Table::Deks,
                    key.clone(),
                    h.dek.as_bytes().to_vec(),
                    Expect::Absent,
                );
                if let HeadBody::Inline(body) = &h.body {
                    batch.put(Table::Bodies, key, body.clone(), Expect::Absent);
                }
            } else if h.body == HeadBody::Stored {
                batch.delete(Table::Bodies, key, Expect::Any);
            }
            for v in *old_oldest..oldest.min(head) {
                let k = version_key(old.record, v);
                batch.delete(Table::Bodies, k.clone(), Expect::Any).delete(
                    Table::Deks,
                    k,
                    Expect::Any,
                );
            }
        }
        // Format 1: every version has rows, the head too. Its lowest version is not
        // recorded: the one version the new write pushes out is deleted, as format 1 did.
        None => {
            if let Some(gone) = oldest.checked_sub(1).filter(|v| *v >= 1) {
                let k = version_key(old.record, gone);
                batch.delete(Table::Bodies, k.clone(), Expect::Any).delete(
                    Table::Deks,
                    k,
                    Expect::Any,
                );
            }
        }
    }
}

/// Where a put's new version goes: the existing record's next version (the index row
/// must still be at the version read), or version 1 of a new record (the row must still
/// be absent). Returns the record, version, creation time, previous entry and the
/// expectation on the index row.
fn next_version(
    existing: Option<&Versioned>,
    now: u64,
) -> Result<(RecordId, u64, u64, Option<IndexEntry>, Expect), VaultError> {
    Ok(match existing {
        Some(row) => {
            let old = IndexEntry::decode(&row.value)?;
            let version = old.version.checked_add(1).ok_or_else(|| {
                VaultError::inconsistent(
                    Inconsistency::Exhausted,
                    "the secret's version counter is exhausted",
                )
            })?;
            (
                old.record,
                version,
                old.created_at,
                Some(old),
                Expect::Version(row.version),
            )
        }
        None => (RecordId::generate()?, 1, now, None, Expect::Absent),
    })
}

/// A head body of at most [`INLINE_BODY_MAX`] bytes goes inline in the index entry (one
/// read per get); a larger one into its own `Bodies` row.
fn place_body(batch: &mut Batch, record: RecordId, version: u64, body: Vec<u8>) -> HeadBody {
    if body.len() <= INLINE_BODY_MAX {
        HeadBody::Inline(body)
    } else {
        batch.put(
            Table::Bodies,
            version_key(record, version),
            body,
            Expect::Absent,
        );
        HeadBody::Stored
    }
}

/// Stages the removal of the head of the secret at index row `index_key` (read at
/// `row_version`; `entry` is what it decodes to, if it does): its newest remaining older
/// version becomes the head, or the secret goes when none remains. Versions whose rows
/// (keys in `dropped`) the same batch deletes already are passed over. Returns the record
/// id (hex), or the row key when the entry does not decode.
pub(crate) fn drop_head(
    store: &dyn ReadView,
    batch: &mut Batch,
    index_key: &[u8],
    row_version: u64,
    entry: Option<&IndexEntry>,
    dropped: &std::collections::HashSet<Vec<u8>>,
) -> Result<String, VaultError> {
    let expect = Expect::Version(row_version);
    let Some(entry) = entry else {
        batch.delete(Table::Index, index_key.to_vec(), expect);
        return Ok(crate::audit::hex(index_key));
    };
    let head_key = version_key(entry.record, entry.version);
    // The newest older version that stays: not one whose rows the same batch deletes.
    let oldest = entry.oldest().unwrap_or(1);
    let mut rows = None;
    for v in (oldest..entry.version).rev() {
        let k = version_key(entry.record, v);
        if dropped.contains(&k) {
            continue;
        }
        let got = store.get_many(&[(Table::Bodies, &k), (Table::Deks, &k)])?;
        if let Ok([Some(b), Some(d)]) = <[Option<Versioned>; 2]>::try_from(got) {
            rows = Some((v, k, b, d));
        }
        break;
    }
    match (&entry.layout, rows) {
        (Some((oldest, head)), Some((v, k, body, dek))) => {
            if head.body == HeadBody::Stored {
                batch.delete(Table::Bodies, head_key, Expect::Any);
            }
            match WrappedDek::from_bytes(&dek.value) {
                Ok(w) if w.version() == 2 => {
                    batch.delete(Table::Deks, k.clone(), Expect::Version(dek.version));
                    let body = if body.value.len() <= INLINE_BODY_MAX {
                        batch.delete(Table::Bodies, k, Expect::Version(body.version));
                        HeadBody::Inline(body.value)
                    } else {
                        HeadBody::Stored
                    };
                    let moved = IndexEntry {
                        version: v,
                        layout: Some((*oldest, Head { dek: w, body })),
                        ..entry.clone()
                    };
                    batch.put(Table::Index, index_key.to_vec(), moved.encode(), expect);
                }
                // A format-1 data key cannot be a format-2 head: the secret goes.
                _ => {
                    batch.delete(Table::Index, index_key.to_vec(), expect);
                    stage_delete_rows(
                        store,
                        batch,
                        &IndexEntry {
                            version: v,
                            layout: Some((*oldest, head.clone())),
                            ..entry.clone()
                        },
                    )?;
                    batch.delete(Table::Bodies, k.clone(), Expect::Any).delete(
                        Table::Deks,
                        k,
                        Expect::Any,
                    );
                }
            }
        }
        (None, Some((v, _, _, _))) => {
            batch
                .delete(Table::Bodies, head_key.clone(), Expect::Any)
                .delete(Table::Deks, head_key, Expect::Any);
            let moved = IndexEntry {
                version: v,
                ..entry.clone()
            };
            batch.put(Table::Index, index_key.to_vec(), moved.encode(), expect);
        }
        (_, None) => {
            batch.delete(Table::Index, index_key.to_vec(), expect);
            stage_delete_rows(store, batch, entry)?;
            if entry.layout.is_none() {
                batch
                    .delete(Table::Bodies, head_key.clone(), Expect::Any)
                    .delete(Table::Deks, head_key, Expect::Any);
            }
        }
    }
    Ok(entry.record.to_string())
}

/// Deletes every row of the record `entry` names (its versions' bodies and data keys).
fn stage_delete_rows(
    store: &dyn ReadView,
    batch: &mut Batch,
    entry: &IndexEntry,
) -> Result<(), VaultError> {
    if let Some((oldest, head)) = entry.layout.as_ref() {
        for v in *oldest..entry.version {
            let k = version_key(entry.record, v);
            batch
                .delete(Table::Bodies, k.clone(), Expect::Any)
                .delete(Table::Deks, k, Expect::Any);
        }
        if head.body == HeadBody::Stored {
            batch.delete(
                Table::Bodies,
                version_key(entry.record, entry.version),
                Expect::Any,
            );
        }
    } else {
        for r in versions_of(store, Table::Bodies, entry.record)? {
            batch.delete(Table::Bodies, r.key, Expect::Any);
        }
        for r in versions_of(store, Table::Deks, entry.record)? {
            batch.delete(Table::Deks, r.key, Expect::Any);
        }
    }
    Ok(())
}

fn check_names(
    p: &OpenedPayload,
    namespace: &str,
    name: &str,
    record: RecordId,
) -> Result<(), VaultError> {
    if p.namespace != namespace || p.name != name {
        return Err(VaultError::inconsistent(
            Inconsistency::Misdirected,
            format!(
                "the index entry for this name points at record {record}, which holds another secret (storage tampering?)"
            ),
        ));
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

    /// A signed payload carries the signer and the log position, and its signature
    /// verifies over the digest of the record's place and every byte before it.
    #[test]
    fn a_signed_payload_verifies_under_the_signers_key() {
        let signer = strongroom_sharing::Identity::generate("alice").unwrap();
        let ctx = RecordContext {
            vault_id: strongroom_crypto::VaultId::from_bytes([1; 16]),
            record_id: RecordId::from_bytes([2; 16]),
            version: 3,
        };
        let p = Payload {
            namespace: "db",
            name: "host",
            created_at: 1,
            updated_at: 2,
            author: signer.member_id(),
            value: b"v",
        };
        let bytes = p.encode_signed(&ctx, &signer, ProofKind::Written, 7);
        let b = bytes.expose_secret();
        let proof = decode_payload(&bytes).unwrap().proof.unwrap();
        assert_eq!(
            (proof.signer, proof.kind, proof.seq),
            (signer.member_id(), ProofKind::Written, 7)
        );
        // An unknown proof kind is refused by the decoder.
        let mut unknown = b.to_vec();
        unknown[b.len() - 73] = 3;
        assert!(decode_payload(&SecretBytes::from(unknown)).is_err());
        let key = signer.public().signing_key();
        let digest = crate::writers::digest(&ctx, &b[..b.len() - 64]);
        assert!(strongroom_sharing::verify_record_signature(
            key,
            &digest,
            &proof.signature
        ));
        let elsewhere = RecordContext { version: 4, ..ctx };
        let moved = crate::writers::digest(&elsewhere, &b[..b.len() - 64]);
        assert!(!strongroom_sharing::verify_record_signature(
            key,
            &moved,
            &proof.signature
        ));
    }

    /// The known-answer vector `tests/data/payload_v2.txt` (made from the specification by
    /// `tests/writer_signatures.rs`), decoded and checked by strongroom's own code.
    #[test]
    fn payload_v2_known_answer_vector() {
        let text = include_str!("../tests/data/payload_v2.txt");
        let field = |name: &str| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} = ")))
                .unwrap();
            line[name.len() + 3..].to_owned()
        };
        let bytes = |name: &str| hex::decode(field(name)).unwrap();
        let ctx = RecordContext {
            vault_id: strongroom_crypto::VaultId::from_bytes(bytes("vault_id").try_into().unwrap()),
            record_id: RecordId::from_bytes(bytes("record_id").try_into().unwrap()),
            version: field("version").parse().unwrap(),
        };
        let payload = bytes("payload");
        let p = decode_payload(&SecretBytes::from(payload.clone())).unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str()),
            ("core/billing", "STRIPE_KEY")
        );
        assert_eq!(p.value.expose_secret(), b"sk_live_123");
        let proof = p.proof.unwrap();
        assert_eq!(
            (proof.signer, proof.kind, proof.seq),
            (MemberId::from_bytes([4; 16]), ProofKind::Written, 5)
        );
        let digest = crate::writers::digest(&ctx, &payload[..payload.len() - 64]);
        assert_eq!(digest.to_vec(), bytes("digest"));
        let key: [u8; 32] = bytes("public_key").try_into().unwrap();
        assert!(strongroom_sharing::verify_record_signature(
            &key,
            &digest,
            &proof.signature
        ));
        // Re-encoding gives the same bytes.
        let again = p.fields().encode_proven(&proof);
        assert_eq!(again.expose_secret(), &payload[..]);
    }

    proptest! {
        #[test]
        fn payload_round_trip(ns in "[a-z]{1,8}(/[a-z0-9._-]{1,8}){0,3}", name in "\\PC{1,40}",
                              value in proptest::collection::vec(any::<u8>(), 0..300),
                              t1 in any::<u64>(), t2 in any::<u64>(), author in any::<[u8; 16]>(),
                              proof in proptest::option::of((any::<[u8; 16]>(), any::<u64>(),
                                                              proptest::array::uniform32(any::<u16>()))) ) {
            let p = Payload { namespace: &ns, name: &name, created_at: t1, updated_at: t2,
                              author: MemberId::from_bytes(author), value: &value };
            let proof = proof.map(|(signer, seq, sig)| {
                let mut signature = [0u8; 64];
                for (i, w) in sig.iter().enumerate() {
                    signature[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
                }
                let kind = if seq % 2 == 0 { ProofKind::Written } else { ProofKind::Vouched };
                WriterProof { signer: MemberId::from_bytes(signer), kind, seq, signature }
            });
            let bytes = match &proof {
                Some(proof) => p.encode_proven(proof),
                None => p.encode_unsigned(),
            };
            let back = decode_payload(&bytes).unwrap();
            prop_assert_eq!(back.namespace, ns);
            prop_assert_eq!(back.name, name);
            prop_assert_eq!((back.created_at, back.updated_at), (t1, t2));
            prop_assert_eq!(back.author, MemberId::from_bytes(author));
            prop_assert_eq!(back.value.expose_secret(), &value[..]);
            prop_assert!(back.proof == proof);
            // A proof cut short, or anything after it, is refused.
            let b = bytes.expose_secret();
            prop_assert!(decode_payload(&SecretBytes::from(b[..b.len() - 1].to_vec())).is_err());
            prop_assert!(decode_payload(&SecretBytes::from([b, &[0]].concat())).is_err());
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_payload(&SecretBytes::from(bytes.clone()));
            let _ = parse_version_key(&bytes);
        }
    }
}
