//! Training settings: a named size preset plus overrides, serialisable so that a pipeline TOML can
//! embed it and `training.json` records exactly what was run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Model sizes for training from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[derive(clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 2 layers, hidden 64: tests and smoke runs.
    Tiny,
    /// 4 layers, hidden 256: the CPU benchmark model.
    #[default]
    Small,
    /// 12 layers, hidden 768 (BERT-base shape).
    Base,
}

/// Encoder dimensions of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
}

impl Preset {
    pub fn dims(self) -> Dims {
        match self {
            Preset::Tiny => Dims { hidden_size: 64, num_layers: 2, num_heads: 2, intermediate_size: 128, vocab_size: 1000 },
            Preset::Small => Dims { hidden_size: 256, num_layers: 4, num_heads: 4, intermediate_size: 1024, vocab_size: 8000 },
            Preset::Base => Dims { hidden_size: 768, num_layers: 12, num_heads: 12, intermediate_size: 3072, vocab_size: 16000 },
        }
    }
}

/// Which dev score picks the best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Entity-level strict micro F1.
    #[default]
    Strict,
    /// Token-level micro F1.
    Token,
}

impl Metric {
    /// How reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Strict => "dev strict F1",
            Metric::Token => "dev token F1",
        }
    }
}

/// Everything that determines a training run. `None` fields fall back to the preset (from
/// scratch) or to the checkpoint's config (`init`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub preset: Preset,
    /// An HF model directory (`config.json`, `model.safetensors`, `tokenizer.json`) to fine-tune;
    /// without it the model and its vocabulary are trained from scratch.
    pub init: Option<PathBuf>,
    pub hidden_size: Option<usize>,
    pub num_layers: Option<usize>,
    pub num_heads: Option<usize>,
    pub intermediate_size: Option<usize>,
    /// Size of the sub-word vocabulary trained from scratch.
    pub vocab_size: Option<usize>,
    pub max_position_embeddings: usize,
    pub dropout: f64,
    pub attention_dropout: f64,
    /// Word-shape embedding buckets (0: off).
    pub shape_buckets: usize,
    /// Hash buckets of the lower-cased word identity added to each sub-word's input (0: off).
    pub word_buckets: usize,
    /// Hash buckets of the word's 3-character prefix, and as many of its suffix (0: off).
    pub affix_buckets: usize,
    /// Stacking (0: off): a feature perceptron is trained on the training documents and its tag
    /// for each word becomes an input of the encoder. The tags the encoder trains on come from
    /// `guide_folds` perceptrons each trained without the documents it tags (jackknifing), so that
    /// they are as wrong as the guide's tags on new text; the guide kept in the model is trained on
    /// all of them, its epoch picked on dev.
    pub guide_folds: usize,
    /// Perceptron epochs of the guide (the most; dev picks the best for the kept guide).
    pub guide_epochs: usize,
    /// Perceptrons averaged into the kept guide (each on its own document order; see
    /// `perceptron::PerceptronConfig::members`). The jackknife folds stay single: they only
    /// have to be as wrong as a guide is on new text, and members cost their time again.
    pub guide_members: usize,
    /// The kept guide is itself a stacked perceptron over this many folds (0: off; see
    /// `perceptron::PerceptronConfig::stack_folds`): a stronger guide for decoding, at about 6×
    /// its training time. The jackknife folds stay plain, for the reason above.
    pub guide_stack_folds: usize,
    /// With a stacked guide (`guide_stack_folds` > 0): the tags the encoder trains on are the
    /// stacked guide's own, out of fold (over `guide_folds` folds), rather than those of plain
    /// jackknifed perceptrons. At prediction the encoder sees the stacked guide's tags, so this
    /// trains it on tags as good as, and wrong where, those it will see. About the same time:
    /// `guide_folds` second stages replace the plain jackknife.
    pub guide_stacked_inputs: bool,
    /// The kept guide's token feature sets (see `perceptron::PerceptronConfig::feature_sets`): one
    /// entry is one perceptron; more make it a committee of perceptrons, one per entry, each
    /// on its own seed (and its own stacking folds), decoded as one. A committee's taggers err
    /// in different places, so it is a stronger guide; each costs its training time again. The
    /// jackknifed input tags come from perceptrons on the first entry's features.
    pub guide_feature_sets: Vec<u32>,
    /// Train the kept guide on this many seeds and keep the best on dev (see
    /// `perceptron::PerceptronConfig::seed_candidates`): a stacked perceptron's test score moves
    /// with its seed by ±0.003, and dev ranks seeds as test does. Each candidate costs the kept
    /// guide's training time again (about 2 min stacked on MEDDOCAN; the recipe picks of 6);
    /// the jackknifed input tags stay on `seed`. Needs dev documents when above 1.
    pub guide_seed_candidates: usize,
    pub epochs: usize,
    /// Stop (after a dev evaluation and a checkpoint) once this much training time is spent,
    /// counted across resumes.
    pub max_minutes: Option<f64>,
    pub seed: u64,
    /// Windows per optimizer step.
    pub batch_size: usize,
    /// Peak learning rate; default 1e-3 from scratch, 5e-5 with `init`.
    pub lr: Option<f64>,
    /// Fraction of all steps spent warming up.
    pub warmup_ratio: f64,
    /// ... but at least this many steps (at most half of all steps).
    pub warmup_min_steps: u64,
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (0: off).
    pub max_grad_norm: f64,
    /// Words per window.
    pub window: usize,
    /// Step between training windows (`window`: no overlap).
    pub train_stride: usize,
    /// Step between prediction windows.
    pub predict_stride: usize,
    pub max_subwords_per_word: usize,
    pub select_metric: Metric,
    /// Pick an `O` penalty on dev at each evaluation (`TaggerSettings::o_penalty`): a tagger
    /// trained on mostly-`O` text misses more entities than it invents, and the penalty trades
    /// a little precision for recall.
    pub tune_o_penalty: bool,
    /// After the encoder, train a span-boundary model (`perceptron::BoundaryModel`) on the
    /// guide's jackknifed tags of the training documents, which moves each predicted entity's
    /// edges by up to two words where the words around them say so; kept in the model
    /// (`boundaries.json`) when dev `select_metric` does not fall with it. Needs a guide
    /// (`guide_folds`); costs seconds (the jackknifed tags are there already) and one more dev
    /// prediction. A finished run resumed with it set gains one without training again.
    pub boundaries: bool,
    /// Write a resumable checkpoint at least this often within an epoch.
    pub checkpoint_minutes: f64,
    /// Continue from `OUT/checkpoint` if it exists.
    pub resume: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            preset: Preset::Small,
            init: None,
            hidden_size: None,
            num_layers: None,
            num_heads: None,
            intermediate_size: None,
            vocab_size: None,
            max_position_embeddings: 512,
            dropout: 0.1,
            attention_dropout: 0.1,
            shape_buckets: 1024,
            word_buckets: 16384,
            affix_buckets: 4096,
            guide_folds: 0,
            guide_epochs: 20,
            guide_members: 1,
            guide_stack_folds: 0,
            guide_stacked_inputs: false,
            guide_feature_sets: vec![perceptron::FEATURE_SET],
            guide_seed_candidates: 1,
            epochs: 10,
            max_minutes: None,
            seed: 42,
            batch_size: 16,
            lr: None,
            warmup_ratio: 0.06,
            warmup_min_steps: 0,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            window: 128,
            train_stride: 128,
            predict_stride: 96,
            max_subwords_per_word: 8,
            select_metric: Metric::Strict,
            tune_o_penalty: true,
            boundaries: false,
            checkpoint_minutes: 10.0,
            resume: true,
        }
    }
}

impl TrainConfig {
    /// The preset's dimensions with every override applied.
    pub fn dims(&self) -> Dims {
        let p = self.preset.dims();
        Dims {
            hidden_size: self.hidden_size.unwrap_or(p.hidden_size),
            num_layers: self.num_layers.unwrap_or(p.num_layers),
            num_heads: self.num_heads.unwrap_or(p.num_heads),
            intermediate_size: self.intermediate_size.unwrap_or(p.intermediate_size),
            vocab_size: self.vocab_size.unwrap_or(p.vocab_size),
        }
    }

    pub fn peak_lr(&self) -> f64 {
        self.lr.unwrap_or(if self.init.is_some() { 5e-5 } else { 1e-3 })
    }

    /// Whether `other` describes the same run up to the budget (minutes, resume flag) and the
    /// steps after training (`boundaries`), which may change between a kill and a resume: a
    /// finished run resumed with `boundaries` gains a boundary model without training again.
    pub fn same_run(&self, other: &TrainConfig) -> bool {
        let norm = |c: &TrainConfig| TrainConfig { max_minutes: None, resume: true, checkpoint_minutes: 0.0, boundaries: false, ..c.clone() };
        norm(self) == norm(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MEDDOCAN recipe in `configs/` parses (unknown keys would be refused) and holds the
    /// settings of the run of record in BENCHMARKS.md.
    #[test]
    fn meddocan_recipe_config_parses_with_its_settings() {
        let c: TrainConfig = toml::from_str(include_str!("../../../configs/ner-meddocan.toml")).unwrap();
        assert_eq!(c.preset, Preset::Small);
        assert_eq!((c.guide_folds, c.guide_stack_folds, c.guide_seed_candidates), (5, 5, 6));
        assert_eq!((c.epochs, c.batch_size, c.lr, c.max_minutes, c.seed), (8, 16, Some(0.0008), Some(55.0), 7));
        assert_eq!(c.warmup_ratio, 0.1);
        assert!(c.boundaries);
        let rest = TrainConfig { preset: Preset::Small, guide_folds: 5, guide_stack_folds: 5, guide_seed_candidates: 6, epochs: 8, batch_size: 16, lr: Some(0.0008), warmup_ratio: 0.1, max_minutes: Some(55.0), seed: 7, boundaries: true, ..TrainConfig::default() };
        assert_eq!(c, rest, "the recipe sets something the run of record did not");
    }
}
