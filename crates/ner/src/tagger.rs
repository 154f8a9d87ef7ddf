//! Every tagger family behind one interface: what a pipeline stage or a command declares
//! ([`TaggerSpec`]), trains, and loads back from any saved model directory ([`load_tagger`]).

use std::path::Path;

use anyhow::{Context, Result};
use corpus::Document;
use serde::Serialize;
use tagging::Tagger;

use progress::Progress;

use crate::{Model, TrainConfig};

/// A tagger family and its training settings. Serialized as `kind` plus the settings, which is
/// what a pipeline stage's cache key hashes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // one value per training: boxing would save nothing worth the noise
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
    load_tagger_at(dir, window, nn::Precision::F32)
}

/// [`load_tagger`] with a transformer's encoder packed at `precision` for prediction.
pub fn load_tagger_at(dir: &Path, window: Option<usize>, precision: nn::Precision) -> Result<Box<dyn Tagger>> {
    if crate::Ensemble::is_model_dir(dir) {
        return Ok(Box::new(crate::Ensemble::load(dir, window, precision)?));
    }
    if perceptron::Perceptron::is_model_dir(dir) {
        return Ok(Box::new(perceptron::Perceptron::load(dir)?));
    }
    let mut model = Model::load(dir)?;
    if let Some(w) = window {
        model.settings.stride = (model.settings.stride * w / model.settings.window.max(1)).clamp(1, w);
        model.settings.window = w;
    }
    // A loaded tagger only predicts: its weights are packed once for all its calls.
    model.pack_for_inference_at(precision)?;
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

/// Predicts each document in a call of its own, as a single note would be, `jobs` documents at a
/// time (at least 1), reporting each done document to `progress` and timing it. The spans are
/// those of one call for all documents and do not depend on `jobs`: no window spans two documents
/// and each document's computation is the same on any thread. With `jobs > 1` a document's time
/// includes the contention of the others running beside it; `jobs = 1` times single-note latency.
pub fn predict_each(tagger: &dyn Tagger, docs: &[Document], jobs: usize, progress: &dyn progress::Progress) -> Result<(Vec<Document>, progress::Latencies)> {
    use rayon::prelude::*;
    let one = |d: &Document| -> Result<(Vec<Document>, std::time::Duration)> {
        let t = std::time::Instant::now();
        let out = tagger.predict(std::slice::from_ref(d))?;
        progress.inc(1);
        Ok((out, t.elapsed()))
    };
    progress.start("documents", docs.len() as u64);
    let done: Vec<Result<(Vec<Document>, std::time::Duration)>> = if jobs <= 1 || docs.len() <= 1 {
        docs.iter().map(one).collect()
    } else {
        // A pool of its own, so that `jobs` caps the documents in flight; the encoder's own
        // parallel products run inside it and take a core whenever a document waits.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build().context("starting the prediction threads")?;
        pool.install(|| docs.par_iter().with_max_len(1).map(one).collect())
    };
    progress.finish();
    let mut out = Vec::with_capacity(docs.len());
    let mut latencies = progress::Latencies::with_capacity(docs.len());
    for r in done {
        let (d, took) = r?;
        out.extend(d);
        latencies.push(took);
    }
    Ok((out, latencies))
}

/// The `jobs` a command uses when none is given: one document per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
