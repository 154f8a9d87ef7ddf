//! Plain text directories: one `NAME.txt` a document, no annotations.

use crate::format::decode_utf8;
use crate::{CorpusError, Document, Result};
use std::path::Path;

/// Every `*.txt` of `dir` (not recursive), sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for path in list(dir, "txt")? {
        let bytes = std::fs::read(&path).map_err(|e| CorpusError::io(&path, e))?;
        let text = decode_utf8(&path, bytes)?;
        docs.push(Document::new(stem(&path), text));
    }
    Ok(docs)
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Files of `dir` with extension `ext`, sorted.
pub(crate) fn list(dir: &Path, ext: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| CorpusError::io(dir, e))? {
        let path = entry.map_err(|e| CorpusError::io(dir, e))?.path();
        if path.is_file() && path.extension().is_some_and(|x| x == ext) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
