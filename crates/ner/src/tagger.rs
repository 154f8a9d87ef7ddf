//! Every tagger family behind one interface: what a pipeline stage or a command declares
//! ([`TaggerSpec`]), trains, and loads back from any saved model directory ([`load_tagger`]).

use std::path::Path;

use anyhow::Result;
use corpus::Document;
use serde::Serialize;
use tagging::Tagger;

use progress::Progress;

use crate::{Model, TrainConfig};

/// A tagger family and its training settings. Serialized as `kind` plus the settings, which is
/// what a pipeline stage's cache key hashes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TaggerSpec {
    /// A transformer encoder (from scratch or fine-tuned), stacked on a perceptron guide when
    /// its settings say so.
    Transformer(TrainConfig),
    /// The feature perceptron alone.
    Perceptron(perceptron::PerceptronConfig),
}

impl TaggerSpec {
    /// The default settings of this spec's family.
    pub fn defaults(&self) -> Self {
        match self {
            TaggerSpec::Transformer(_) => TaggerSpec::Transformer(Default::default()),
            TaggerSpec::Perceptron(_) => TaggerSpec::Perceptron(Default::default()),
        }
    }

    /// Trains on `train` (choosing what dev decides on `dev`) and saves the model to `out`;
    /// returns a one-line summary of what was trained (no document text).
    pub fn train(&self, train: &[Document], dev: &[Document], out: &Path, progress: &dyn Progress) -> Result<String> {
        Ok(match self {
            TaggerSpec::Transformer(c) => {
                let s = crate::train(c, train, dev, out, progress)?;
                format!("transformer: best epoch {:?} of {}, {:.1} min", s.best_epoch, s.epochs_completed, s.minutes)
            }
            TaggerSpec::Perceptron(c) => {
                progress.start("perceptron epochs", perceptron::planned_epochs(c));
                let trained = perceptron::train(c, train, dev, Some(out), progress);
                progress.finish();
                let (_, s) = trained?;
                format!("perceptron: {} features, best epoch {}, {:.1} s", s.features, s.best_epoch, s.seconds)
            }
        })
    }
}

/// Loads a saved tagger of any family from `dir`; `window` overrides a transformer's words per
/// window (its stride scaled alike).
pub fn load_tagger(dir: &Path, window: Option<usize>) -> Result<Box<dyn Tagger>> {
    if perceptron::Perceptron::is_model_dir(dir) {
        return Ok(Box::new(perceptron::Perceptron::load(dir)?));
    }
    let mut model = Model::load(dir)?;
    if let Some(w) = window {
        model.settings.stride = (model.settings.stride * w / model.settings.window.max(1)).clamp(1, w);
        model.settings.window = w;
    }
    // A loaded tagger only predicts: its weights are packed once for all its calls.
    model.pack_for_inference()?;
    Ok(Box::new(model))
}

impl Tagger for Model {
    fn predict(&self, docs: &[Document]) -> Result<Vec<Document>> {
        Model::predict(self, docs)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        Model::save(self, dir)
    }

    fn kind(&self) -> &'static str {
        if self.settings.guide && self.guide.is_some() {
            "stacked"
        } else {
            "transformer"
        }
    }

    fn labels(&self) -> Vec<String> {
        self.labels.types().into_iter().map(str::to_string).collect()
    }
}
