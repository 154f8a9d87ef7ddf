//! Crash-safe file writing: write a temp file in the same directory, then rename over the target,
//! so a kill mid-write leaves either the old or the new file, never a torn one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |tmp| Ok(std::fs::write(tmp, bytes)?))
}

/// Calls `write` on a temporary path next to `path`, then renames it into place.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let tmp = tmp_path(path);
    write(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// Replaces directory `dir` by a freshly written one atomically enough for resume: the new
/// content is written to `dir.tmp`, the old directory moved to `dir.old`, the new one renamed into
/// place, and the old removed. [`recover_dir`] finishes an interrupted swap.
pub fn atomic_dir(dir: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let old = dir.with_extension("old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    write(&tmp)?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&tmp, dir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// After a kill during [`atomic_dir`]: if `dir` is missing but `dir.old` exists, the old one is
/// the last complete state; move it back. Returns whether `dir` exists.
pub fn recover_dir(dir: &Path) -> Result<bool> {
    let old = dir.with_extension("old");
    if !dir.exists() && old.exists() {
        std::fs::rename(&old, dir)?;
    }
    Ok(dir.exists())
}
