//! Snapshots: a consistent, integrity-checked copy of a vault's store in one file, and a
//! restore that verifies everything in a staging store before replacing the live one.
//!
//! File layout (version 1):
//!
//! ```text
//! "strongroom-snapshot"            19 bytes, magic
//! version = 1                      1
//! vault id                         16
//! created at (unix seconds)        8
//! store schema version             4 (u32 BE)
//! rows, each:
//!   table id (1 + Table::index)    1
//!   key                            u32 BE length ‖ bytes
//!   value                          u32 BE length ‖ bytes
//! end marker = 0                   1
//! row count                        8 (u64 BE)
//! SHA-256 of every byte above      32
//! ```
//!
//! The rows are the store's own rows: bodies, wrapped keys, stanzas and logs, all already
//! encrypted or public. The file holds no plaintext, but it does hold the keyholder
//! stanzas (a passphrase-protected member key is open to offline guessing), so it is
//! written with mode 0600 like the vault itself.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use strongroom_crypto::{VaultId, random};
use strongroom_recovery::Keyholder;
use strongroom_sharing::Pins;
use strongroom_store::{MemoryStore, Row, ScanRange, Store, StoreError, Table, TableRow, scan_all};

use crate::VaultError;
use crate::audit::{Action, Cursor, Event, hex};
use crate::meta::now;
use crate::records::{IndexEntry, open_rows, parse_version_key};
use crate::vault::{UnlockOptions, Vault};

const MAGIC: &[u8; 19] = b"strongroom-snapshot";
const VERSION: u8 = 1;
const MAX_FIELD: usize = 256 << 20;

/// What a snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The vault it is a copy of.
    pub vault_id: VaultId,
    /// Rows in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content (hex), as stored in the file.
    pub sha256: String,
    /// When it was taken (unix seconds).
    pub created_at: u64,
}

/// What [`verify_snapshot`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotVerification {
    /// The file.
    pub info: SnapshotInfo,
    /// Secrets in it, every one decrypted.
    pub secrets: u64,
    /// Record versions in it, every one decrypted.
    pub versions: u64,
    /// Whether its membership log is older than the one the given pins have verified:
    /// restoring it would undo membership changes (and could re-admit removed members).
    pub membership_rollback: bool,
}

/// Options of [`restore_snapshot`].
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// How to unlock the snapshot's vault (member, and pins: the genesis signer pinned
    /// there must match the snapshot's).
    pub unlock: UnlockOptions,
    /// Allow replacing a live vault with a snapshot of another vault.
    pub allow_other_vault: bool,
    /// Allow restoring a snapshot whose membership log is older than the one the pins
    /// have verified. Membership changes made since (removals!) are undone: check the
    /// members and rotate the vault key afterwards.
    pub allow_membership_rollback: bool,
}

/// What [`restore_snapshot`] did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The verification of the snapshot.
    pub verification: SnapshotVerification,
    /// The restored vault, unlocked.
    pub vault: Vault,
    /// Pins for the restored state: persist them (the membership log may be older than
    /// the pins held before the restore).
    pub pins: Pins,
}

fn snap_err(reason: impl Into<String>) -> VaultError {
    VaultError::Snapshot {
        reason: reason.into(),
    }
}

/// Writes through to a file and a running SHA-256.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.hash.update(b);
        self.len += b.len() as u64;
        self.inner.write_all(b)
    }

    fn field(&mut self, b: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(b.len()).map_err(|_| std::io::Error::other("field over 4 GiB"))?;
        self.put(&len.to_be_bytes())?;
        self.put(b)
    }
}

impl Vault {
    /// Writes a consistent snapshot of the whole vault to `path` (atomically: a temporary
    /// file in the same directory, fsynced, then linked into place; mode 0600) while the
    /// vault stays online. An existing file at `path` is never replaced: that is an error. `progress` is called with the number of rows written so far.
    pub fn snapshot_to(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<SnapshotInfo, VaultError> {
        let created_at = now();
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(exists_error(path));
        }
        // Audited first, so the snapshot holds its own entry and no snapshot leaves the
        // vault unrecorded.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.audit_only(
            Action::Snapshot,
            &self.id().as_bytes()[..],
            format!("file={name}"),
        )?;
        let tmp = temp_path(path)?;
        let io = |what: &str, e: std::io::Error| VaultError::Io {
            what: format!("{what} {}", tmp.display()),
            source: e,
        };
        let file = create_private(&tmp).map_err(|e| io("creating", e))?;
        let result = (|| -> Result<SnapshotInfo, VaultError> {
            let view = self.store().snapshot()?;
            let mut w = Hashing {
                inner: BufWriter::new(file),
                hash: Sha256::new(),
                len: 0,
            };
            let schema = self.store().schema_version()?;
            let write_err = |e| io("writing", e);
            w.put(MAGIC).map_err(write_err)?;
            w.put(&[VERSION]).map_err(write_err)?;
            w.put(self.id().as_bytes()).map_err(write_err)?;
            w.put(&created_at.to_be_bytes()).map_err(write_err)?;
            w.put(&schema.to_be_bytes()).map_err(write_err)?;
            let mut rows = 0u64;
            for table in Table::ALL {
                let mut cursor = None;
                loop {
                    let page = view.scan(table, &ScanRange::all(), cursor.as_ref(), 1000)?;
                    for row in &page.rows {
                        w.put(&[table_id(table)]).map_err(write_err)?;
                        w.field(&row.key).map_err(write_err)?;
                        w.field(&row.value).map_err(write_err)?;
                        rows += 1;
                    }
                    progress(rows);
                    match page.next {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
            }
            drop(view);
            w.put(&[0]).map_err(write_err)?;
            w.put(&rows.to_be_bytes()).map_err(write_err)?;
            let digest: [u8; 32] = w.hash.clone().finalize().into();
            w.inner.write_all(&digest).map_err(write_err)?;
            let file = w
                .inner
                .into_inner()
                .map_err(|e| io("writing", e.into_error()))?;
            file.sync_all().map_err(|e| io("syncing", e))?;
            Ok(SnapshotInfo {
                vault_id: self.id(),
                rows,
                bytes: w.len + 32,
                sha256: hex(&digest),
                created_at,
            })
        })();
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        // A hard link never replaces an existing file (unlike a rename): a file created at
        // `path` meanwhile is kept, and this snapshot is not put in place.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        linked.map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                exists_error(path)
            } else {
                VaultError::Io {
                    what: format!("moving the snapshot into place at {}", path.display()),
                    source: e,
                }
            }
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(info)
    }
}

fn exists_error(path: &Path) -> VaultError {
    VaultError::Io {
        what: format!(
            "writing the snapshot {}: the file exists already, and a snapshot never replaces one; choose a new name or remove the old file first",
            path.display()
        ),
        source: std::io::ErrorKind::AlreadyExists.into(),
    }
}

fn table_id(t: Table) -> u8 {
    t.index() as u8 + 1
}

fn temp_path(path: &Path) -> Result<PathBuf, VaultError> {
    let rnd: [u8; 6] = random::array()?;
    let name = path
        .file_name()
        .ok_or_else(|| VaultError::invalid("snapshot path", "names a directory"))?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".tmp-{}", hex(&rnd)));
    Ok(path.with_file_name(tmp))
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// A parsed snapshot: its header and rows.
pub(crate) struct Parsed {
    info: SnapshotInfo,
    rows: Vec<TableRow>,
}

/// Reads exact byte counts from a snapshot while hashing them.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    limit: u64,
}

impl<R: Read> HashingReader<R> {
    fn take(&mut self, n: usize, what: &str) -> Result<Vec<u8>, VaultError> {
        if n as u64 > self.limit {
            return Err(snap_err(format!(
                "a {what} claims {n} bytes, more than the file holds: corrupt"
            )));
        }
        let mut b = vec![0u8; n];
        self.inner.read_exact(&mut b).map_err(|_| {
            snap_err(format!(
                "the file is truncated (at {what}): not a complete snapshot"
            ))
        })?;
        self.hash.update(&b);
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], VaultError> {
        let v = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&v);
        Ok(out)
    }

    fn field(&mut self, what: &str) -> Result<Vec<u8>, VaultError> {
        let len = u32::from_be_bytes(self.array(what)?) as usize;
        if len > MAX_FIELD {
            return Err(snap_err(format!("a {what} is {len} bytes long: corrupt")));
        }
        self.take(len, what)
    }
}

/// Reads a snapshot file and checks its integrity hash and structure.
fn read_snapshot(path: &Path) -> Result<Parsed, VaultError> {
    let file = File::open(path).map_err(|e| VaultError::Io {
        what: format!("opening snapshot {}", path.display()),
        source: e,
    })?;
    let bytes_total = file.metadata().map_or(0, |m| m.len());
    parse_snapshot(BufReader::new(file), bytes_total)
}

/// Parses a snapshot of `bytes_total` bytes from `input`.
pub(crate) fn parse_snapshot(input: impl Read, bytes_total: u64) -> Result<Parsed, VaultError> {
    let mut r = HashingReader {
        inner: input,
        hash: Sha256::new(),
        limit: bytes_total,
    };
    if r.take(MAGIC.len(), "the magic")? != MAGIC {
        return Err(snap_err("not a strongroom snapshot file"));
    }
    let [version] = r.array::<1>("the version")?;
    if version != VERSION {
        return Err(snap_err(format!(
            "snapshot format version {version}, this build reads version {VERSION}: use a matching strongroom"
        )));
    }
    let vault_id = VaultId::from_bytes(r.array("the vault id")?);
    let created_at = u64::from_be_bytes(r.array("the creation time")?);
    let _schema = r.array::<4>("the schema version")?;
    let mut rows = Vec::new();
    loop {
        let [tag] = r.array::<1>("a row")?;
        if tag == 0 {
            break;
        }
        let table = Table::ALL
            .get(usize::from(tag) - 1)
            .copied()
            .ok_or_else(|| {
                snap_err(format!(
                    "unknown table id {tag}: corrupt, or written by a newer strongroom"
                ))
            })?;
        let key = r.field("key")?;
        let value = r.field("value")?;
        rows.push((
            table,
            Row {
                key,
                value,
                version: 0,
            },
        ));
    }
    let count = u64::from_be_bytes(r.array("the row count")?);
    let digest: [u8; 32] = r.hash.clone().finalize().into();
    let mut stored = [0u8; 32];
    r.inner
        .read_exact(&mut stored)
        .map_err(|_| snap_err("the file is truncated (at the integrity hash)"))?;
    let mut extra = [0u8; 1];
    let more = r.inner.read(&mut extra).map_err(|e| VaultError::Io {
        what: "reading the snapshot".into(),
        source: e,
    })?;
    if more != 0 {
        return Err(snap_err("bytes follow the integrity hash: corrupt"));
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&digest[..], &stored[..])) {
        return Err(snap_err(
            "integrity hash mismatch: the file was modified or damaged",
        ));
    }
    if count != rows.len() as u64 {
        return Err(snap_err("the row count does not match the rows"));
    }
    Ok(Parsed {
        info: SnapshotInfo {
            vault_id,
            rows: count,
            bytes: bytes_total,
            sha256: hex(&digest),
            created_at,
        },
        rows,
    })
}

/// The result of [`stage`].
struct Staged {
    vault: Vault,
    verification: SnapshotVerification,
}

/// Loads `parsed` into a staging store, unlocks it and checks everything: the vault id,
/// the membership log against the caller's pins (same genesis signer; the pinned head
/// must be in the log, unless the log is older, which is reported), key references (every
/// index entry has its record, every body its wrapped key and back), and that every
/// record version decrypts to the secret its index entry names.
fn stage(
    parsed: &Parsed,
    keyholder: &dyn Keyholder,
    options: &UnlockOptions,
) -> Result<Staged, VaultError> {
    let staging: Arc<dyn Store> = Arc::new(MemoryStore::new());
    staging.replace_all(&mut parsed.rows.iter().cloned().map(Ok::<_, StoreError>))?;
    let locked = Vault::open(Arc::clone(&staging))
        .map_err(|e| snap_err(format!("it holds no usable vault ({e})")))?;
    if locked.id() != parsed.info.vault_id {
        return Err(snap_err(
            "the header names another vault than the rows hold",
        ));
    }
    // Unlocked with fresh pins (an older snapshot is legitimately behind the high-water
    // mark), then compared with the caller's pins below.
    let vault = locked.unlock_with(
        keyholder,
        UnlockOptions {
            member: options.member,
            pins: Pins::new(),
        },
    )?;
    let mut membership_rollback = false;
    if options.pins.vault_id() == Some(vault.id()) {
        let st = vault.state();
        let log = st.session.membership();
        if options.pins.genesis_signer() != Some(log.genesis_signer()) {
            return Err(snap_err(
                "its membership log has another genesis signer than the one pinned: a forged vault",
            ));
        }
        if let Some(hw) = options.pins.high_water() {
            match log.hash_at(hw.seq) {
                Some(hash) if hash == hw.head => {}
                Some(_) => {
                    return Err(snap_err(
                        "its membership log forks from the one this client has verified (a forged or foreign history)",
                    ));
                }
                None => membership_rollback = true,
            }
        }
    }
    let (secrets, versions) = check_everything(&vault, &*staging)?;
    Ok(Staged {
        vault,
        verification: SnapshotVerification {
            info: parsed.info.clone(),
            secrets,
            versions,
            membership_rollback,
        },
    })
}

fn check_everything(vault: &Vault, store: &dyn Store) -> Result<(u64, u64), VaultError> {
    let all = |t: Table| scan_all(store, t, &ScanRange::all());
    let bodies = all(Table::Bodies)?;
    let deks = all(Table::Deks)?;
    if bodies.len() != deks.len() || bodies.iter().zip(&deks).any(|(b, d)| b.key != d.key) {
        return Err(snap_err(
            "record bodies and wrapped data keys do not pair up (a row is missing)",
        ));
    }
    let mut heads = std::collections::BTreeMap::new();
    for row in all(Table::Index)? {
        let e = IndexEntry::decode(&row.value)?;
        heads.insert(e.record, e.version);
    }
    let st = vault.state();
    let mut seen = std::collections::BTreeSet::new();
    for (b, d) in bodies.iter().zip(&deks) {
        let (record, version) = parse_version_key(&b.key)
            .ok_or_else(|| snap_err("a record row has a malformed key"))?;
        let head = heads
            .get(&record)
            .ok_or_else(|| snap_err(format!("record {record} has no index entry")))?;
        if version > *head {
            return Err(snap_err(format!(
                "record {record} has a version newer than its index entry"
            )));
        }
        open_rows(&st, record, version, &b.value, &d.value).map_err(|e| {
            snap_err(format!(
                "record {record} version {version} does not decrypt: {e}"
            ))
        })?;
        if version == *head {
            seen.insert(record);
        }
    }
    if seen.len() != heads.len() {
        return Err(snap_err(
            "an index entry points at a record version that is not in the snapshot",
        ));
    }
    drop(st);
    Ok((heads.len() as u64, bodies.len() as u64))
}

/// Verifies a snapshot file without touching any live vault: the integrity hash, the
/// membership log against `options.pins` (when they are pins of this vault), the key
/// references, and that every record decrypts with `keyholder`.
pub fn verify_snapshot(
    path: &Path,
    keyholder: &dyn Keyholder,
    options: &UnlockOptions,
) -> Result<SnapshotVerification, VaultError> {
    let parsed = read_snapshot(path)?;
    Ok(stage(&parsed, keyholder, options)?.verification)
}

/// Restores `path` into `store`: the snapshot is first verified in a staging store (hash,
/// membership log against the pins, references, every record decrypts with `keyholder`);
/// only then is the live content replaced, atomically, together with the audit entry of
/// the restore. Refused, with the live vault untouched: a corrupt snapshot, a forged one
/// (another genesis signer, or a log that forks from the pinned one), one of another vault
/// (unless `allow_other_vault`), and one older than the pinned membership log (unless
/// `allow_membership_rollback`). The restored vault is unlocked with pins taken from the
/// verified snapshot, so a storage that swaps the content meanwhile is caught.
pub fn restore_snapshot(
    store: &Arc<dyn Store>,
    path: &Path,
    keyholder: &dyn Keyholder,
    options: &RestoreOptions,
) -> Result<RestoreReport, VaultError> {
    let parsed = read_snapshot(path)?;
    let staged = stage(&parsed, keyholder, &options.unlock)?;
    if staged.verification.membership_rollback && !options.allow_membership_rollback {
        return Err(snap_err(
            "its membership log is older than the one this client has verified: restoring it would undo membership changes made since (a removed member would be a member again); restore with the membership-rollback option, then check the members and rotate the vault key",
        ));
    }
    match Vault::open(Arc::clone(store)) {
        Ok(live) if live.id() != parsed.info.vault_id && !options.allow_other_vault => {
            return Err(snap_err(format!(
                "it is a snapshot of vault {}, but this store holds vault {}; pass the option to replace another vault deliberately",
                parsed.info.vault_id,
                live.id()
            )));
        }
        Ok(_) | Err(VaultError::NoVault) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the live store does not open as a vault; restoring over it");
        }
    }
    let Staged {
        vault: staged_vault,
        verification,
    } = staged;
    let Parsed { info, mut rows } = parsed;
    // The restore's audit entry, chained onto the snapshot's audit log, goes in with the
    // rows: the restored vault and its record of the restore appear together.
    let cursor = rows
        .iter()
        .filter(|(t, _)| *t == Table::Audit)
        .filter_map(|(_, r)| {
            Some((
                u64::from_be_bytes(r.key.as_slice().try_into().ok()?),
                &r.value,
            ))
        })
        .max_by_key(|(seq, _)| *seq)
        .map_or(
            Cursor {
                next: 0,
                prev_hash: [0; 32],
            },
            |(seq, v)| Cursor {
                next: seq + 1,
                prev_hash: Sha256::digest(v).into(),
            },
        );
    let entry = {
        let st = staged_vault.state();
        crate::audit::encode(
            &st.meta.audit,
            cursor,
            &Event {
                action: Action::Restore,
                ok: true,
                target: info.vault_id.as_bytes(),
                detail: &format!("rows={} sha256={}", info.rows, info.sha256),
                actor: Some(st.session.member_id()),
                time: now(),
            },
        )
    };
    rows.push((
        Table::Audit,
        Row {
            key: cursor.next.to_be_bytes().to_vec(),
            value: entry,
            version: 0,
        },
    ));
    let pins = staged_vault.pins();
    store.replace_all(&mut rows.into_iter().map(Ok))?;
    let vault = Vault::open(Arc::clone(store))?.unlock_with(
        keyholder,
        UnlockOptions {
            member: options.unlock.member,
            pins,
        },
    )?;
    let pins = vault.pins();
    Ok(RestoreReport {
        verification,
        vault,
        pins,
    })
}
