//! Private, durable files: what snapshots and pin files are written with.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use strongroom_crypto::random;

use crate::audit::hex;

/// Creates `path` with mode 0600 for writing (and reading); it must not exist.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// A fresh temporary name beside `path` (`<name>.tmp-<random>`).
pub(crate) fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    let rnd: [u8; 6] = random::array().map_err(std::io::Error::other)?;
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names a directory, not a file", path.display()),
        )
    })?;
    let mut tmp = name.to_os_string();
    tmp.push(format!(".tmp-{}", hex(&rnd)));
    Ok(path.with_file_name(tmp))
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a new name or a rename in the directory of `path` durable.
pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(parent_dir(path))?.sync_all()
}

/// Creates `dir` (and missing parents) with mode 0700, syncing each parent so the new
/// directories survive a power cut.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err())
        .collect();
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)?;
    for new in missing.iter().rev() {
        sync_dir(new)?;
    }
    Ok(())
}
