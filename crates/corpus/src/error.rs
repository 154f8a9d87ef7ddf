use std::fmt;
use std::path::{Path, PathBuf};

/// An error that says which file (and line, where there is one) is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusError {
    pub path: PathBuf,
    /// 1-based line number inside `path`, when the problem sits on one line.
    pub line: Option<usize>,
    pub message: String,
}

impl CorpusError {
    pub fn new(path: impl AsRef<Path>, line: Option<usize>, message: impl Into<String>) -> Self {
        CorpusError { path: path.as_ref().to_path_buf(), line, message: message.into() }
    }
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        CorpusError::new(path, None, format!("cannot read or write: {err}"))
    }
}

impl fmt::Display for CorpusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for CorpusError {}

pub type Result<T, E = CorpusError> = std::result::Result<T, E>;
