//! Transformer token classification for PHI: the "annotator" of the pipeline.
//!
//! Documents are tokenized into words (`corpus::tokenize`), cut into windows of `window` words,
//! sub-word tokenized, tagged with BIO labels on each word's first sub-word, decoded with
//! constrained Viterbi (no `I-X` after `O` or another type), and turned back into character-exact
//! spans. Models train from scratch (with their own WordPiece vocabulary) or fine-tune an HF
//! BERT/RoBERTa/XLM-R checkpoint, and save in HF layout.
//!
//! Inputs beyond the sub-words, each summed into the sub-word embeddings of its word: the word's
//! shape, its lower-cased identity and 3-character prefix and suffix (hashed), and optionally
//! (stacking, `guide.folds`) the tag that the feature perceptron of the `perceptron` crate gives
//! the word. Stacked models keep that perceptron in `guide/`; in training the encoder sees tags from
//! perceptrons that did not see the document, so it learns where the perceptron is wrong.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! # let (train, dev): (Vec<corpus::Document>, Vec<corpus::Document>) = (vec![], vec![]);
//! let cfg = ner::TrainConfig::default().with_overrides(&["optimizer.epochs=3".into()]).map_err(anyhow::Error::msg)?;
//! ner::train(&cfg, &train, &dev, std::path::Path::new("annotator"), &progress::Silent)?;
//! let model = ner::Model::load(std::path::Path::new("annotator"))?;
//! let predicted = model.predict(&dev)?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod ensemble;
pub mod features;
pub mod model;
pub mod subword;
pub mod tagger;
pub mod train;

pub use config::{Metric, Preset, TrainConfig};
pub use ensemble::Ensemble;
pub use nn::Precision;
pub use tagger::{default_jobs, load_tagger, load_tagger_at, predict_each, TaggerSpec};
pub use tagging::{TagScheme, TagSet, Tagger};
pub use model::{DecodingTrial, ForwardPath, Model, TaggerSettings, GUIDE_DIR, O_PENALTY_FRACTIONS};
pub use train::{add_boundaries, augmented, evaluate, self_train, train, train_with_silver, BoundaryOutcome, DevScores, EpochRecord, TrainSummary};
