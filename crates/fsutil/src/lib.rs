//! Crash-safe file writing, the one atomic writer of the workspace: the content goes to a
//! temporary file in the target's directory (created if missing), is fsynced, and is renamed over
//! the target, so a reader, a resumed run or a kill mid-write sees the old file or the new one,
//! never a torn one. On failure the temporary file is removed: no half-written copy of document
//! text is left behind.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A failed write: the path that could not be created, written or renamed into, and why.
#[derive(Debug)]
pub struct Error {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: cannot write: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` atomically (mode from the umask, as `std::fs::write`).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temporary(path, |tmp| write_synced(tmp, bytes, false))
}

/// [`atomic_write`] for files that hold PHI in clear (surrogate mappings, keys, canaries):
/// created with mode 0600 (owner only) on Unix, whatever the umask, and an existing file is
/// replaced by a private one.
pub fn atomic_write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_via_temporary(path, |tmp| write_synced(tmp, bytes, true))
}

/// [`atomic_write`] for writers that want a path of their own (e.g. a safetensors serializer):
/// `write` creates and fills the temporary path it is given, which is then fsynced and renamed
/// into place. A writer with an error of another kind returns it as `std::io::Error::other(e)`.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    // fsync through a handle of our own: `write` may have used any.
    write_via_temporary(path, |tmp| write(tmp).and_then(|_| std::fs::OpenOptions::new().write(true).open(tmp)?.sync_all()))
}

fn write_synced(tmp: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = open.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Calls `write` (which creates, fills and fsyncs it) on a temporary path beside `path`, then
/// renames that into place; removes it on any failure.
fn write_via_temporary(path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp); // a stale one (same pid) would keep its old mode
    let renamed = write(&tmp).map_err(at(&tmp)).and_then(|_| std::fs::rename(&tmp, path).map_err(at(path)));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}
