//! What every PHI tagger of synthdeid shares, below the model families (`perceptron`, the
//! transformer and stacked taggers of `ner`): tag schemes and constrained Viterbi decoding
//! ([`TagSet`]), decoding adjustments picked on dev ([`decoding`]), the span-boundary model
//! ([`BoundaryModel`]), word shapes and stable hashes ([`shape`]), the majority vote of an ensemble's
//! members ([`vote`]), and the [`Tagger`] interface
//! through which `ner predict`, `ner eval`, `deid` and the pipeline use any saved model
//! (`ner::load_tagger` loads one of any family).

pub mod boundary;
pub mod decoding;
pub mod scheme;
pub mod shape;
pub mod vote;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use corpus::Document;
use serde::Serialize;

pub use boundary::{train_boundaries, BoundaryConfig, BoundaryModel, BoundarySummary, BOUNDARY_FEATURES, BOUNDARY_FILE};
pub use scheme::{token_f1, Part, TagScheme, TagSet};

/// A trained tagger of any family.
pub trait Tagger: Send + Sync {
    /// Predicted spans for each document (same ids and texts, character-exact spans).
    fn predict(&self, docs: &[Document]) -> Result<Vec<Document>>;
    /// Writes the model to `dir` (atomically, file by file), loadable by `ner::load_tagger`.
    fn save(&self, dir: &Path) -> Result<()>;
    /// The family: `perceptron`, `transformer` or `stacked` (a transformer guided by a perceptron).
    fn kind(&self) -> &'static str;
    /// The entity labels it tags, sorted.
    fn labels(&self) -> Vec<String>;
}

/// Serializes a map keyed by feature hash in key order, so that one seed saves one file.
pub fn in_key_order<V: Serialize, S: serde::Serializer>(map: &HashMap<u64, V>, s: S) -> std::result::Result<S::Ok, S::Error> {
    map.iter().collect::<std::collections::BTreeMap<_, _>>().serialize(s)
}
