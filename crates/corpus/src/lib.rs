//! Documents and PHI spans, and everything that reads, writes, cuts and splits them.
//!
//! Offsets are **Unicode scalar values (chars)**, end-exclusive, as BRAT counts them. A byte-order
//! mark at the start of a text is a character like any other and is kept.

mod doc;
mod error;
pub mod brat;
pub mod conll;
pub mod format;
pub mod i2b2;
pub mod jsonl;
pub mod sentences;
pub mod shard;
pub mod split;
pub mod stats;
pub mod text;
pub mod validate;
pub mod tokenize;
pub mod uima;
pub mod windows;

pub use doc::{CharIndex, Document, OverlapPolicy, Span};
pub use error::{CorpusError, Result};
pub use format::{read_corpus, write_corpus, Format, ReadOptions};
pub use sentences::split_sentences;
pub use tokenize::{tokenize, Token};
pub use windows::{windows, Window};
