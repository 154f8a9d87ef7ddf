use crate::{Document, Result};
use std::path::Path;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format { Brat, Jsonl, Conll, Text }
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {}
pub fn read_corpus(_p: &Path, _f: Option<Format>, _o: &ReadOptions) -> Result<Vec<Document>> { todo!() }
pub fn write_corpus(_p: &Path, _f: Option<Format>, _d: &[Document]) -> Result<()> { todo!() }
