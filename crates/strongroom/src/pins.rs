//! Where a client keeps what it has verified of each vault's membership log (its
//! [`Pins`]): the genesis signer and a high-water mark, so that a storage that serves
//! another vault, a forked log or an older copy (a rollback past a member removal) is
//! refused instead of trusted anew on every start.
//!
//! [`FilePinStore`] keeps one small file per vault in a directory of the application's
//! state (mode 0600, written atomically and durably); [`MemoryPinStore`] is for tests and
//! for processes that only want pins while they run.
//!
//! The pins file holds the encoding specified in `docs/spec/pins.md`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use strongroom_crypto::VaultId;
use strongroom_sharing::Pins;

use crate::VaultError;
use crate::fsutil::{create_private, create_private_dir, sync_dir, temp_path};

/// Keeps the [`Pins`] of the vaults a client opened.
///
/// # Implementation notes
///
/// - `save` must be durable and atomic: after it returns, a crash or a power cut leaves the
///   new pins or (if it failed) the old ones, never a mix.
/// - Pins only grow (a later log extends an earlier one). The vault saves them after its
///   own commits are done, so pins never run ahead of the data they describe.
pub trait PinStore: Send + Sync + fmt::Debug {
    /// The pins saved for `vault`; `None` before the vault was first pinned here.
    fn load(&self, vault: VaultId) -> Result<Option<Pins>, VaultError>;

    /// Saves `pins` for `vault`, replacing what was saved.
    fn save(&self, vault: VaultId, pins: &Pins) -> Result<(), VaultError>;
}

/// How unlocking with a [`PinStore`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinStatus {
    /// The vault was not pinned here before: its log was trusted as the storage served it
    /// (after checking its internal consistency) and pinned now. Compare the owner's
    /// fingerprint out of band once.
    FirstUse,
    /// The vault's log was checked against the pins saved here: same genesis signer, no
    /// fork, no rollback.
    Verified,
}

/// A directory with one pins file per vault (`<vault id>.pins`, mode 0600, in a directory
/// created 0700). Writes go to a temporary file that is synced and renamed into place, then
/// the directory is synced.
///
/// ```
/// use strongroom::{FilePinStore, PinStore};
/// # let dir = tempfile::tempdir()?;
/// let pins = FilePinStore::new(dir.path().join("strongroom-pins"))?;
/// # let vault = strongroom::crypto::VaultId::generate()?;
/// assert!(pins.load(vault)?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct FilePinStore {
    dir: PathBuf,
}

impl fmt::Debug for FilePinStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilePinStore")
            .field("dir", &self.dir)
            .finish()
    }
}

impl FilePinStore {
    /// A pin store in `dir` (created with mode 0700 if missing, durably).
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, VaultError> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(|source| VaultError::Io {
            what: format!("creating the pins directory {}", dir.display()),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The file that holds the pins of `vault`.
    pub fn path_of(&self, vault: VaultId) -> PathBuf {
        self.dir.join(format!("{vault}.pins"))
    }
}

impl PinStore for FilePinStore {
    fn load(&self, vault: VaultId) -> Result<Option<Pins>, VaultError> {
        let path = self.path_of(vault);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(VaultError::Io {
                    what: format!("reading the pins file {}", path.display()),
                    source,
                });
            }
        };
        let pins = Pins::decode(&bytes).map_err(|e| VaultError::PinStore {
            path: Some(path.clone()),
            problem: format!(
                "it is corrupt ({e}); if you trust the vault as it is now, delete the file to pin it again"
            ),
        })?;
        if pins.vault_id().is_some_and(|v| v != vault) {
            return Err(VaultError::PinStore {
                path: Some(path),
                problem: "it holds the pins of another vault; delete it to pin this vault again"
                    .into(),
            });
        }
        Ok(Some(pins))
    }

    fn save(&self, vault: VaultId, pins: &Pins) -> Result<(), VaultError> {
        let path = self.path_of(vault);
        let bytes = pins.encode();
        if fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        write_replace(&path, &bytes).map_err(|source| VaultError::Io {
            what: format!("saving the pins file {}", path.display()),
            source,
        })
    }
}

/// Writes `bytes` to `path` atomically and durably: a new 0600 file beside it, synced,
/// renamed over `path`, then the directory synced.
fn write_replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(path)
}

/// Pins in memory: for tests, and for a process that keeps pins only while it runs.
#[derive(Debug, Default)]
pub struct MemoryPinStore {
    pins: Mutex<HashMap<VaultId, Pins>>,
}

impl MemoryPinStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PinStore for MemoryPinStore {
    fn load(&self, vault: VaultId) -> Result<Option<Pins>, VaultError> {
        Ok(self
            .pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&vault)
            .cloned())
    }

    fn save(&self, vault: VaultId, pins: &Pins) -> Result<(), VaultError> {
        self.pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(vault, pins.clone());
        Ok(())
    }
}
