//! Crash-safe checkpoint directories (a kill mid-write leaves either the old or the new one, never
//! a torn one); files are written by the workspace's atomic writer, [`fsutil`].

use std::path::Path;

use anyhow::Result;

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
