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
//!   table id (TABLE_IDS)           1
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
//!
//! Specified in `docs/spec/snapshot.md`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use strongroom_crypto::{MemberId, VaultId, random};
use strongroom_recovery::Keyholder;
use strongroom_sharing::Pins;
use strongroom_store::{
    MemoryStore, Row, SCHEMA_VERSION, ScanRange, Store, StoreError, Table, TableRow, scan_all,
};

use crate::audit::{Action, Cursor, Event, hex};
use crate::fsutil::{create_private, sync_dir, temp_path};
use crate::meta::now;
use crate::records::{IndexEntry, open_to_attest, parse_version_key};
use crate::vault::{UnlockOptions, Vault};
use crate::{SnapshotProblem, VaultError};

const MAGIC: &[u8; 19] = b"strongroom-snapshot";
const VERSION: u8 = 1;
const MAX_FIELD: usize = 256 << 20;

/// What a snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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

impl RestoreOptions {
    /// Sets [`RestoreOptions::unlock`].
    #[must_use]
    pub fn with_unlock(mut self, unlock: UnlockOptions) -> Self {
        self.unlock = unlock;
        self
    }

    /// Sets [`RestoreOptions::allow_other_vault`].
    #[must_use]
    pub fn with_allow_other_vault(mut self, allow_other_vault: bool) -> Self {
        self.allow_other_vault = allow_other_vault;
        self
    }

    /// Sets [`RestoreOptions::allow_membership_rollback`].
    #[must_use]
    pub fn with_allow_membership_rollback(mut self, allow_membership_rollback: bool) -> Self {
        self.allow_membership_rollback = allow_membership_rollback;
        self
    }
}

/// What [`restore_snapshot`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The verification of the snapshot.
    pub verification: SnapshotVerification,
    /// The restored vault, unlocked.
    pub vault: Vault,
    /// Pins for the restored state: persist them (the membership log may be older than
    /// the pins held before the restore).
    pub pins: Pins,
}

fn snap_err(kind: SnapshotProblem, detail: impl Into<String>) -> VaultError {
    VaultError::snapshot(kind, detail)
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
        let tmp = temp_path(path).map_err(|source| VaultError::Io {
            what: format!("choosing a temporary name beside {}", path.display()),
            source,
        })?;
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
            // Tables in ascending id order: the reader checks the order.
            for (table, id) in TABLE_IDS {
                let mut cursor = None;
                loop {
                    let page = view.scan(table, &ScanRange::all(), cursor.as_ref(), 1000)?;
                    for row in &page.rows {
                        w.put(&[id]).map_err(write_err)?;
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
        // The new name is durable once its directory is synced (`.` for a bare file name:
        // skipping it there left a snapshot that a power cut could take back).
        let _ = sync_dir(path);
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

/// The stable id of each table in a snapshot file. These bytes are part of the file
/// format: an id never changes meaning and is never reused, whatever order [`Table`]
/// declares its variants in. A new table takes the next free id.
const TABLE_IDS: [(Table, u8); 10] = [
    (Table::Meta, 1),
    (Table::Keyholders, 2),
    (Table::Identities, 3),
    (Table::Wraps, 4),
    (Table::Bodies, 5),
    (Table::Deks, 6),
    (Table::Index, 7),
    (Table::Jobs, 8),
    (Table::MemberLog, 9),
    (Table::Audit, 10),
];

fn table_from_id(id: u8) -> Option<Table> {
    TABLE_IDS
        .iter()
        .find(|(_, i)| *i == id)
        .map(|(table, _)| *table)
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
            return Err(snap_err(
                SnapshotProblem::Corrupt,
                format!("a {what} claims {n} bytes, more than the file holds: corrupt"),
            ));
        }
        let mut b = vec![0u8; n];
        self.inner.read_exact(&mut b).map_err(|_| {
            snap_err(
                SnapshotProblem::Corrupt,
                format!("the file is truncated (at {what}): not a complete snapshot"),
            )
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
            return Err(snap_err(
                SnapshotProblem::Corrupt,
                format!("a {what} is {len} bytes long: corrupt"),
            ));
        }
        self.take(len, what)
    }
}

/// The rows of a snapshot, read one at a time while hashing: memory holds one row, not
/// the file. Nothing read may be trusted before the iterator has ended without an error:
/// the end checks the row count, the integrity hash (and, with `expect`, that it is the
/// hash an earlier pass over the same file saw, so a file changed between passes fails),
/// and that nothing follows. Rows must come in the order the writer emits them (tables in
/// order, keys strictly ascending), so no key appears twice.
pub(crate) struct RowStream<R> {
    r: HashingReader<R>,
    vault_id: VaultId,
    created_at: u64,
    bytes_total: u64,
    expect: Option<[u8; 32]>,
    rows: u64,
    last: Option<(u8, Vec<u8>)>,
    /// Set once every row was read and checked: the header and the integrity hash.
    end: Option<(SnapshotInfo, [u8; 32])>,
    failed: bool,
    /// Why the stream ended early, kept for [`RowStream::unusable`].
    failure: Option<VaultError>,
}

impl<R: Read> RowStream<R> {
    /// Reads and checks the header of a snapshot of `bytes_total` bytes.
    pub(crate) fn open(input: R, bytes_total: u64) -> Result<Self, VaultError> {
        let mut r = HashingReader {
            inner: input,
            hash: Sha256::new(),
            limit: bytes_total,
        };
        if r.take(MAGIC.len(), "the magic")? != MAGIC {
            return Err(snap_err(
                SnapshotProblem::NotASnapshot,
                "not a strongroom snapshot file",
            ));
        }
        let [version] = r.array::<1>("the version")?;
        if version != VERSION {
            return Err(snap_err(
                SnapshotProblem::TooNew,
                format!(
                    "snapshot format version {version}, this build reads version {VERSION}: use a matching strongroom"
                ),
            ));
        }
        let vault_id = VaultId::from_bytes(r.array("the vault id")?);
        let created_at = u64::from_be_bytes(r.array("the creation time")?);
        let schema = u32::from_be_bytes(r.array("the schema version")?);
        if schema == 0 || schema > SCHEMA_VERSION {
            return Err(snap_err(
                SnapshotProblem::TooNew,
                format!(
                    "it was taken from a store of schema version {schema}; this build knows versions 1 to {SCHEMA_VERSION}: restore it with a strongroom at least as new as the one that wrote it"
                ),
            ));
        }
        Ok(Self {
            r,
            vault_id,
            created_at,
            bytes_total,
            expect: None,
            rows: 0,
            last: None,
            end: None,
            failed: false,
            failure: None,
        })
    }

    /// The header and hash, once every row was read.
    pub(crate) fn info(&self) -> Option<&SnapshotInfo> {
        self.end.as_ref().map(|(info, _)| info)
    }

    fn next_row(&mut self) -> Result<Option<TableRow>, VaultError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let [tag] = self.r.array::<1>("a row")?;
        if tag == 0 {
            self.finish()?;
            return Ok(None);
        }
        let table = table_from_id(tag).ok_or_else(|| {
            snap_err(
                SnapshotProblem::Corrupt,
                format!("unknown table id {tag}: corrupt, or written by a newer strongroom"),
            )
        })?;
        let key = self.r.field("key")?;
        let value = self.r.field("value")?;
        if let Some((last_tag, last_key)) = &self.last
            && (*last_tag, last_key.as_slice()) >= (tag, key.as_slice())
        {
            return Err(snap_err(
                SnapshotProblem::Corrupt,
                "rows are out of order or repeated: corrupt (a snapshot lists each table once, keys ascending)",
            ));
        }
        self.last = Some((tag, key.clone()));
        self.rows += 1;
        Ok(Some((
            table,
            Row {
                key,
                value,
                version: 0,
            },
        )))
    }

    fn finish(&mut self) -> Result<(), VaultError> {
        let count = u64::from_be_bytes(self.r.array("the row count")?);
        let digest: [u8; 32] = self.r.hash.clone().finalize().into();
        let mut stored = [0u8; 32];
        self.r.inner.read_exact(&mut stored).map_err(|_| {
            snap_err(
                SnapshotProblem::Corrupt,
                "the file is truncated (at the integrity hash)",
            )
        })?;
        let mut extra = [0u8; 1];
        let more = self.r.inner.read(&mut extra).map_err(|e| VaultError::Io {
            what: "reading the snapshot".into(),
            source: e,
        })?;
        if more != 0 {
            return Err(snap_err(
                SnapshotProblem::Corrupt,
                "bytes follow the integrity hash: corrupt",
            ));
        }
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&digest[..], &stored[..])) {
            return Err(snap_err(
                SnapshotProblem::Modified,
                "integrity hash mismatch: the file was modified or damaged",
            ));
        }
        if self.expect.is_some_and(|e| e != digest) {
            return Err(snap_err(
                SnapshotProblem::ChangedWhileRead,
                "the file changed while it was being read: restore from a file nothing writes to",
            ));
        }
        if count != self.rows {
            return Err(snap_err(
                SnapshotProblem::Corrupt,
                "the row count does not match the rows",
            ));
        }
        let info = SnapshotInfo {
            vault_id: self.vault_id,
            rows: count,
            bytes: self.bytes_total,
            sha256: hex(&digest),
            created_at: self.created_at,
        };
        self.end = Some((info, digest));
        Ok(())
    }
}

impl<R: Read> Iterator for RowStream<R> {
    type Item = Result<TableRow, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_row() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                self.failed = true;
                // Through the store's error type (replace_all rolls back on it);
                // `unusable` gives back the snapshot's own error.
                let text = e.to_string();
                self.failure = Some(e);
                Some(Err(StoreError::invalid(format!("{UNUSABLE}{text}"))))
            }
        }
    }
}

/// Parses a whole snapshot of `bytes_total` bytes from `input` (fuzzing entry point).
#[cfg(any(fuzzing, test))]
pub(crate) fn parse_snapshot(
    input: impl Read,
    bytes_total: u64,
) -> Result<SnapshotInfo, VaultError> {
    let mut stream = RowStream::open(input, bytes_total)?;
    while stream.next_row()?.is_some() {}
    stream
        .info()
        .cloned()
        .ok_or_else(|| snap_err(SnapshotProblem::Corrupt, "the file ended early"))
}

/// A snapshot file opened for verification or restore, which read it several times.
///
/// A FIFO, a terminal or standard input (`/dev/stdin`) is first copied into a private
/// temporary file (mode 0600, removed when this value is dropped), so a snapshot can come
/// from a pipe. Opening reads the header, so the caller can look up the pins it saved for
/// [`vault_id`](Self::vault_id) before verifying; nothing else is trusted before
/// [`verify`](Self::verify) or [`restore_into`](Self::restore_into) has checked it all.
///
/// ```no_run
/// # use std::path::Path;
/// # use strongroom::{SnapshotFile, UnlockOptions, recovery::RawKek};
/// # fn pins_saved_for(_: strongroom::crypto::VaultId) -> strongroom::sharing::Pins { Default::default() }
/// # let kek = RawKek::generate()?;
/// let file = SnapshotFile::open(Path::new("/dev/stdin"))?;   // e.g. `zstd -d < s.zst |`
/// let pins = pins_saved_for(file.vault_id());
/// let checked = file.verify(&kek, &UnlockOptions::default().with_pins(pins))?;
/// println!("{} secrets decrypt", checked.secrets);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SnapshotFile {
    file: File,
    len: u64,
    spooled: bool,
    vault_id: VaultId,
    created_at: u64,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("vault_id", &self.vault_id)
            .field("created_at", &self.created_at)
            .field("bytes", &self.len)
            .field("spooled", &self.spooled)
            .finish_non_exhaustive()
    }
}

impl SnapshotFile {
    /// Opens `path` (a file, a FIFO or `/dev/stdin`) and reads its header: the magic, the
    /// format version and the store schema it was taken from are checked here.
    pub fn open(path: &Path) -> Result<Self, VaultError> {
        let (file, len, spooled) = Self::open_or_spool(path)?;
        let header = rows_of(&file, len, None)?;
        Ok(Self {
            vault_id: header.vault_id,
            created_at: header.created_at,
            file,
            len,
            spooled,
        })
    }

    /// The vault the header names (checked against the rows by `verify`).
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// When the snapshot was taken (unix seconds), as its header says.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Verifies the snapshot without touching any live vault: see [`verify_snapshot`].
    pub fn verify(
        &self,
        keyholder: &dyn Keyholder,
        options: &UnlockOptions,
    ) -> Result<SnapshotVerification, VaultError> {
        Ok(stage(self, keyholder, options)?.verification)
    }

    /// Verifies the snapshot, then restores it into `store`: see [`restore_snapshot`].
    pub fn restore_into(
        &self,
        store: &Arc<dyn Store>,
        keyholder: &dyn Keyholder,
        options: &RestoreOptions,
    ) -> Result<RestoreReport, VaultError> {
        self.prepare_restore(store, keyholder, options)?.commit()
    }

    /// The first half of [`restore_into`](Self::restore_into): verifies the snapshot and
    /// checks it may replace the content of `store` (the same refusals as
    /// [`restore_snapshot`]), without touching the live store. The caller can then
    /// persist [`PreparedRestore::pins`] before [`PreparedRestore::commit`].
    pub fn prepare_restore<'a>(
        &'a self,
        store: &'a Arc<dyn Store>,
        keyholder: &'a dyn Keyholder,
        options: &RestoreOptions,
    ) -> Result<PreparedRestore<'a>, VaultError> {
        prepare(self, store, keyholder, options)
    }

    /// The file and its length; anything but a regular file is first copied into an
    /// anonymous private file (created 0600 and unlinked at once, so nothing is left
    /// behind, whatever happens next).
    fn open_or_spool(path: &Path) -> Result<(File, u64, bool), VaultError> {
        let io = |what: String| move |e| VaultError::Io { what, source: e };
        let mut file =
            File::open(path).map_err(io(format!("opening snapshot {}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(io(format!("inspecting snapshot {}", path.display())))?;
        if meta.is_file() {
            return Ok((file, meta.len(), false));
        }
        if meta.is_dir() {
            return Err(snap_err(
                SnapshotProblem::NotASnapshot,
                format!("{} is a directory, not a snapshot file", path.display()),
            ));
        }
        let rnd: [u8; 8] = random::array()?;
        let spool_path = std::env::temp_dir().join(format!(".strongroom-snapshot-{}", hex(&rnd)));
        let mut spool = create_private(&spool_path)
            .map_err(io(format!("creating {}", spool_path.display())))?;
        std::fs::remove_file(&spool_path)
            .map_err(io(format!("unlinking {}", spool_path.display())))?;
        let len = std::io::copy(&mut file, &mut spool)
            .map_err(io(format!("reading snapshot {}", path.display())))?;
        Ok((spool, len, true))
    }

    /// A pass over the rows from the start; `expect`: the hash of an earlier pass.
    fn pass(&self, expect: Option<[u8; 32]>) -> Result<RowStream<BufReader<File>>, VaultError> {
        rows_of(&self.file, self.len, expect)
    }
}

/// A pass over the rows of `file` from its start (passes run one after the other: they
/// share the file position).
fn rows_of(
    file: &File,
    len: u64,
    expect: Option<[u8; 32]>,
) -> Result<RowStream<BufReader<File>>, VaultError> {
    use std::io::Seek as _;
    let io = |e| VaultError::Io {
        what: "reading the snapshot".into(),
        source: e,
    };
    let mut f = file.try_clone().map_err(io)?;
    f.rewind().map_err(io)?;
    let mut stream = RowStream::open(BufReader::new(f), len)?;
    stream.expect = expect;
    Ok(stream)
}

/// A snapshot that passed every check, and its first pass's header and hash.
struct Staged {
    vault: Vault,
    /// Where the restore's audit entry goes: after the snapshot's last entry (read
    /// before the staging unlock appended its own).
    audit_cursor: Cursor,
    /// The integrity hash the checked pass saw: later passes must see the same.
    digest: [u8; 32],
    verification: SnapshotVerification,
}

/// Loads everything but the record bodies of `source` into a staging store (one pass;
/// record bodies are checked in a second pass, one at a time), unlocks it and checks
/// everything: the vault id, the membership log against the caller's pins (same genesis
/// signer; the pinned head must be in the log, unless the log is older, which is
/// reported), key references (every index entry has its record, every body its wrapped
/// key and back), and that every record version decrypts to the secret its index entry
/// names.
fn stage(
    source: &SnapshotFile,
    keyholder: &dyn Keyholder,
    options: &UnlockOptions,
) -> Result<Staged, VaultError> {
    let staging: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut stream = source.pass(None)?;
    let loaded =
        staging.replace_all(&mut (&mut stream).filter(|r| !matches!(r, Ok((Table::Bodies, _)))));
    loaded.map_err(|e| stream.unusable(e))?;
    let (info, digest) = stream
        .end
        .clone()
        .ok_or_else(|| snap_err(SnapshotProblem::Corrupt, "the file ended early"))?;
    let audit_cursor = audit_cursor(&*staging)?;
    let locked = Vault::open(Arc::clone(&staging)).map_err(|e| {
        snap_err(
            SnapshotProblem::Unreadable,
            format!("it holds no usable vault ({e})"),
        )
    })?;
    if locked.id() != info.vault_id {
        return Err(snap_err(
            SnapshotProblem::Forged,
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
                SnapshotProblem::Forged,
                "its membership log has another genesis signer than the one pinned: a forged vault",
            ));
        }
        if let Some(hw) = options.pins.high_water() {
            match log.hash_at(hw.seq) {
                Some(hash) if hash == hw.head => {}
                Some(_) => {
                    return Err(snap_err(
                        SnapshotProblem::Forged,
                        "its membership log forks from the one this client has verified (a forged or foreign history)",
                    ));
                }
                None => membership_rollback = true,
            }
        }
    }
    let (secrets, versions) = check_records(&vault, &*staging, source.pass(Some(digest))?)?;
    Ok(Staged {
        vault,
        audit_cursor,
        digest,
        verification: SnapshotVerification {
            info,
            secrets,
            versions,
            membership_rollback,
        },
    })
}

impl<R> RowStream<R> {
    /// The error of a `replace_all` fed by this stream: the stream's own error when a row
    /// read failed (it crossed the store as a store error), otherwise the store's.
    fn unusable(&mut self, e: StoreError) -> VaultError {
        match (e, self.failure.take()) {
            (StoreError::InvalidRequest { reason }, Some(failure))
                if reason.starts_with(UNUSABLE) =>
            {
                failure
            }
            (other, _) => other.into(),
        }
    }
}

/// How a snapshot error travels through [`Store::replace_all`] as a store error.
const UNUSABLE: &str = "the snapshot is unusable: ";

/// The position after the last audit entry of `store`.
fn audit_cursor(store: &dyn Store) -> Result<Cursor, VaultError> {
    Ok(match store.log_head(Table::Audit)? {
        None => Cursor {
            next: 0,
            prev_hash: [0; 32],
        },
        Some(seq) => {
            let last = store
                .get(Table::Audit, &seq.to_be_bytes())?
                .ok_or_else(|| snap_err(SnapshotProblem::Corrupt, "its audit log has a gap"))?;
            Cursor {
                next: seq + 1,
                prev_hash: Sha256::digest(&last.value).into(),
            }
        }
    })
}

/// The second pass: every record body (streamed from `rows`) pairs with its wrapped data
/// key in `staging`, belongs to an indexed record and decrypts.
fn check_records<R: Read>(
    vault: &Vault,
    staging: &dyn Store,
    mut rows: RowStream<R>,
) -> Result<(u64, u64), VaultError> {
    use crate::records::{HeadBody, version_key};
    let st = vault.state();
    // Every head: one whose body is in the entry opens now; one whose body is in a row
    // opens when that row comes by (its data key is the entry's).
    let mut heads = std::collections::BTreeMap::new();
    let mut stored_heads = std::collections::BTreeMap::new();
    let mut format1_heads = std::collections::BTreeSet::new();
    let mut versions = 0u64;
    for row in scan_all(staging, Table::Index, &ScanRange::all())? {
        let e = IndexEntry::decode(&row.value)?;
        heads.insert(e.record, e.version);
        match e.head() {
            Some(h) => match &h.body {
                HeadBody::Inline(body) => {
                    versions += 1;
                    open_to_attest(&*st, e.record, e.version, body, h.dek.as_bytes()).map_err(
                        |err| {
                            snap_err(
                                SnapshotProblem::Unreadable,
                                format!(
                                    "record {} version {} does not decrypt: {err}",
                                    e.record, e.version
                                ),
                            )
                        },
                    )?;
                }
                HeadBody::Stored => {
                    stored_heads
                        .insert(version_key(e.record, e.version), h.dek.as_bytes().to_vec());
                }
            },
            // Format 1: the head comes as a body row with its data key row.
            None => {
                format1_heads.insert(version_key(e.record, e.version));
            }
        }
    }
    let mut deks = 0u64;
    strongroom_store::for_each_row(staging, Table::Deks, &ScanRange::all(), 10_000, |_| {
        deks += 1;
        Ok::<_, StoreError>(true)
    })?;
    let mut paired = 0u64;
    let mut stored_seen = 0usize;
    while let Some((table, b)) = rows.next_row()? {
        if table != Table::Bodies {
            continue;
        }
        let (record, version) = parse_version_key(&b.key).ok_or_else(|| {
            snap_err(SnapshotProblem::Corrupt, "a record row has a malformed key")
        })?;
        let head = heads.get(&record).ok_or_else(|| {
            snap_err(
                SnapshotProblem::Unreadable,
                format!("record {record} has no index entry"),
            )
        })?;
        if version > *head {
            return Err(snap_err(
                SnapshotProblem::Unreadable,
                format!("record {record} has a version newer than its index entry"),
            ));
        }
        let dek = if let Some(dek) = stored_heads.get(&b.key) {
            stored_seen += 1;
            dek.clone()
        } else {
            {
                paired += 1;
                format1_heads.remove(&b.key);
                staging
                    .get(Table::Deks, &b.key)?
                    .ok_or_else(|| {
                        snap_err(SnapshotProblem::Unreadable, format!(
                            "record {record} version {version} has no wrapped data key (a row is missing)"
                        ))
                    })?
                    .value
            }
        };
        open_to_attest(&*st, record, version, &b.value, &dek).map_err(|e| {
            snap_err(
                SnapshotProblem::Unreadable,
                format!("record {record} version {version} does not decrypt: {e}"),
            )
        })?;
        versions += 1;
    }
    if rows.info().is_none() {
        return Err(snap_err(SnapshotProblem::Corrupt, "the file ended early"));
    }
    if paired != deks {
        return Err(snap_err(
            SnapshotProblem::Unreadable,
            "record bodies and wrapped data keys do not pair up (a row is missing)",
        ));
    }
    if stored_seen != stored_heads.len() || !format1_heads.is_empty() {
        return Err(snap_err(
            SnapshotProblem::Unreadable,
            "an index entry names a head version whose body is not in the snapshot",
        ));
    }
    drop(st);
    Ok((heads.len() as u64, versions))
}

/// Verifies a snapshot file without touching any live vault: the integrity hash, the
/// membership log against `options.pins` (when they are pins of this vault), the key
/// references, and that every record decrypts with `keyholder`.
pub fn verify_snapshot(
    path: &Path,
    keyholder: &dyn Keyholder,
    options: &UnlockOptions,
) -> Result<SnapshotVerification, VaultError> {
    SnapshotFile::open(path)?.verify(keyholder, options)
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
    SnapshotFile::open(path)?.restore_into(store, keyholder, options)
}

fn prepare<'a>(
    source: &'a SnapshotFile,
    store: &'a Arc<dyn Store>,
    keyholder: &'a dyn Keyholder,
    options: &RestoreOptions,
) -> Result<PreparedRestore<'a>, VaultError> {
    let staged = stage(source, keyholder, &options.unlock)?;
    let vault_id = staged.verification.info.vault_id;
    if staged.verification.membership_rollback && !options.allow_membership_rollback {
        return Err(snap_err(
            SnapshotProblem::Older,
            "its membership log is older than the one this client has verified: restoring it would undo membership changes made since (a removed member would be a member again); restore with the membership-rollback option, then check the members and rotate the vault key",
        ));
    }
    match Vault::open(Arc::clone(store)) {
        Ok(live) if live.id() != vault_id && !options.allow_other_vault => {
            return Err(snap_err(
                SnapshotProblem::OtherVault,
                format!(
                    "it is a snapshot of vault {vault_id}, but this store holds vault {}; pass the option to replace another vault deliberately",
                    live.id()
                ),
            ));
        }
        Ok(_) | Err(VaultError::NoVault) => {}
        Err(e) => {
            tracing::warn!(error = %e, "the live store does not open as a vault; restoring over it");
        }
    }
    Ok(PreparedRestore {
        source,
        store,
        keyholder,
        member: options.unlock.member,
        staged,
    })
}

/// A restore whose snapshot is verified and that has not touched the live store yet:
/// from [`SnapshotFile::prepare_restore`]. [`commit`](Self::commit) applies it; dropping
/// it changes nothing.
pub struct PreparedRestore<'a> {
    source: &'a SnapshotFile,
    store: &'a Arc<dyn Store>,
    keyholder: &'a dyn Keyholder,
    member: Option<MemberId>,
    staged: Staged,
}

impl std::fmt::Debug for PreparedRestore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRestore")
            .field("source", self.source)
            .field("verification", &self.staged.verification)
            .finish_non_exhaustive()
    }
}

impl PreparedRestore<'_> {
    /// What the verification found.
    pub fn verification(&self) -> &SnapshotVerification {
        &self.staged.verification
    }

    /// Pins of the snapshot's verified membership log, which the restored vault will
    /// carry ([`RestoreReport::pins`]).
    ///
    /// When [`SnapshotVerification::membership_rollback`] is set, persist them *before*
    /// [`commit`](Self::commit), in place of the pins held so far: those name log entries
    /// the snapshot lacks, so kept until after the commit, a crash in between would leave
    /// them ahead of the restored log, and the vault would be refused as rolled back. These
    /// name the snapshot's last entry, which a live log that grew from the snapshot's holds
    /// too, so they are valid on either side of the commit. (A live log that forked from
    /// the snapshot's shares no such entry with it: after a crash, restore again.)
    pub fn pins(&self) -> Pins {
        self.staged.vault.pins()
    }

    /// Replaces the live content with the snapshot's rows, atomically, together with the
    /// restore's audit entry, then unlocks the restored vault with the snapshot's pins (so
    /// a storage that swaps the content meanwhile is caught).
    pub fn commit(self) -> Result<RestoreReport, VaultError> {
        let Staged {
            vault: staged_vault,
            audit_cursor: cursor,
            digest,
            verification,
        } = self.staged;
        let info = &verification.info;
        // The restore's audit entry, chained onto the snapshot's audit log, goes in with
        // the rows: the restored vault and its record of the restore appear together.
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
        let audit_row = (
            Table::Audit,
            Row {
                key: cursor.next.to_be_bytes().to_vec(),
                value: entry,
                version: 0,
            },
        );
        let pins = staged_vault.pins();
        // A third pass streams the rows into the store; a file changed since the checks
        // fails at its end, and the replacement rolls back.
        let mut rows = self.source.pass(Some(digest))?;
        let replaced = self
            .store
            .replace_all(&mut (&mut rows).chain(std::iter::once(Ok(audit_row))));
        replaced.map_err(|e| rows.unusable(e))?;
        let vault = Vault::open(Arc::clone(self.store))?.unlock_with(
            self.keyholder,
            UnlockOptions {
                member: self.member,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CreateOptions;
    use strongroom_recovery::RawKek;

    #[test]
    fn table_ids_are_total_unique_ascending_and_frozen() {
        for t in Table::ALL {
            let (_, id) = TABLE_IDS.iter().find(|(table, _)| *table == t).unwrap();
            assert_eq!(table_from_id(*id), Some(t));
        }
        assert!(TABLE_IDS.windows(2).all(|w| w[0].1 < w[1].1));
        // The file format: these bytes never change meaning.
        let frozen: Vec<(&str, u8)> = TABLE_IDS.iter().map(|(t, id)| (t.name(), *id)).collect();
        assert_eq!(
            frozen,
            [
                ("meta", 1),
                ("keyholders", 2),
                ("identities", 3),
                ("wraps", 4),
                ("bodies", 5),
                ("deks", 6),
                ("index", 7),
                ("jobs", 8),
                ("member_log", 9),
                ("audit", 10),
            ]
        );
        assert_eq!(table_from_id(0), None);
        assert_eq!(table_from_id(11), None);
    }

    fn snapshot_bytes() -> Vec<u8> {
        let (vault, _) = Vault::create(
            Arc::new(MemoryStore::new()),
            &RawKek::generate().unwrap(),
            &CreateOptions::default(),
        )
        .unwrap();
        for i in 0..5 {
            vault.put("app", &format!("k{i}"), b"v").unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.bin");
        vault.snapshot_to(&path, &mut |_| {}).unwrap();
        std::fs::read(path).unwrap()
    }

    /// Every pass checks the integrity hash; a later pass also checks that it saw the hash
    /// of the first (the file did not change between the check and the restore), and a
    /// cut anywhere is an error, never a shorter snapshot.
    #[test]
    fn passes_see_one_file_whole() {
        let bytes = snapshot_bytes();
        let info = parse_snapshot(&bytes[..], bytes.len() as u64).unwrap();
        let digest: [u8; 32] = bytes[bytes.len() - 32..].try_into().unwrap();
        assert_eq!(info.sha256, hex(&digest));
        let pass = |expect: [u8; 32]| {
            let mut s = RowStream::open(&bytes[..], bytes.len() as u64).unwrap();
            s.expect = Some(expect);
            while s.next_row()?.is_some() {}
            Ok::<_, VaultError>(s.info().cloned())
        };
        assert_eq!(pass(digest).unwrap(), Some(info));
        let mut other = digest;
        other[0] ^= 1;
        let e = pass(other).unwrap_err();
        assert!(
            e.to_string().contains("changed while it was being read"),
            "{e}"
        );
        for cut in 0..bytes.len() {
            assert!(
                parse_snapshot(&bytes[..cut], bytes.len() as u64).is_err(),
                "cut at {cut}"
            );
            assert!(
                parse_snapshot(&bytes[..cut], cut as u64).is_err(),
                "cut at {cut}"
            );
        }
    }

    /// A failed row read ends the stream as a store error that `unusable` turns back into
    /// the snapshot error, so `replace_all` rolls back and the caller sees what was wrong.
    #[test]
    fn row_errors_cross_replace_all_as_snapshot_errors() {
        let bytes = snapshot_bytes();
        let cut = &bytes[..bytes.len() - 40];
        let mut stream = RowStream::open(cut, bytes.len() as u64).unwrap();
        let store = MemoryStore::new();
        let failed = store.replace_all(&mut stream).unwrap_err();
        let e = stream.unusable(failed);
        assert!(
            matches!(&e, VaultError::Snapshot { kind: SnapshotProblem::Corrupt, detail } if detail.contains("truncated")),
            "{e}"
        );
        assert!(stream.next().is_none(), "a failed stream stays ended");
    }
}
