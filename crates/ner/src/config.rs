//! Training settings in nested sections (`encoder`, `guide`, `optimizer`, `windows`, `decoding`,
//! `checkpoint`): the one shape that `ner train --config`, its `--set section.key=value`
//! overrides, and a pipeline's `[annotator]` / `[synthetic_ner]` sections all read, and that
//! `training.json` records.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Model sizes for training from scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tiny" => Ok(Preset::Tiny),
            "small" => Ok(Preset::Small),
            "base" => Ok(Preset::Base),
            other => Err(format!("unknown preset {other:?}: use tiny, small or base")),
        }
    }
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

/// Everything that determines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub seed: u64,
    /// Which dev score picks the best epoch (and keeps a boundary model).
    pub select_metric: Metric,
    pub encoder: EncoderSection,
    pub guide: GuideSection,
    pub optimizer: OptimizerSection,
    pub windows: WindowsSection,
    pub decoding: DecodingSection,
    pub augment: AugmentSection,
    #[serde(skip_serializing_if = "EnsembleSection::is_auto")]
    pub ensemble: EnsembleSection,
    pub checkpoint: CheckpointSection,
}

/// Default peak learning rate of parameters that start from nothing: the whole model from
/// scratch, or a fine-tuned encoder's task head.
const FROM_SCRATCH_LR: f64 = 8e-4;

/// The encoder and its inputs. `None` sizes fall back to the preset (from scratch) or to the
/// checkpoint's config (`init`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderSection {
    pub preset: Preset,
    /// An HF model directory (`config.json`, `model.safetensors`, `tokenizer.json`) or a
    /// registry name (`synthdeid models list`) to fine-tune; without it the model and its
    /// vocabulary are trained from scratch.
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
}

/// Stacking on a feature perceptron (the guide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuideSection {
    /// 0: no guide. Otherwise a feature perceptron is trained on the training documents and its
    /// tag for each word becomes an input of the encoder. The tags the encoder trains on come
    /// from `folds` plain perceptrons each trained without the documents it tags (jackknifing),
    /// so that they are as wrong as the guide's tags on new text; the guide kept in the model is
    /// trained on all of them, its epoch picked on dev.
    pub folds: usize,
    /// With a stacked guide (`perceptron.stack_folds` > 0): the tags the encoder trains on are
    /// the stacked guide's own, out of fold, rather than those of plain jackknifed perceptrons:
    /// tags as good as, and wrong where, those it sees at prediction.
    pub stacked_inputs: bool,
    /// The kept guide: a perceptron with the settings of `ner train-perceptron` and of a
    /// pipeline's `[perceptron]` (its seed is this run's `seed`). The jackknife folds are plain
    /// single perceptrons with its `epochs` on the first of its `feature_sets`: they only have
    /// to be as wrong as a guide is on new text.
    pub perceptron: perceptron::PerceptronConfig,
}

/// Encoder training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerSection {
    /// Epochs without surrogate copies. With k copies (`augment`) an epoch passes each source
    /// document k + 1 times, so training runs [`OptimizerSection::epochs_for`] k epochs: about
    /// 2 × `epochs` passes over each source document, at least 2 epochs and at most `epochs`.
    pub epochs: usize,
    /// Stop (after a dev evaluation and a checkpoint) once this much training time is spent,
    /// counted across resumes.
    pub max_minutes: Option<f64>,
    /// Windows per optimizer step.
    pub batch_size: usize,
    /// Peak learning rate; default 8e-4 from scratch, 5e-5 with `encoder.init`.
    pub lr: Option<f64>,
    /// With `encoder.init`: peak learning rate of the task's own parameters (classifier; guide,
    /// shape and word embeddings, which start at zero), which the checkpoint does not hold;
    /// default the from-scratch rate, 8e-4, as they start from nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_lr: Option<f64>,
    /// Fraction of all steps spent warming up.
    pub warmup_ratio: f64,
    /// ... but at least this many steps (at most half of all steps).
    pub warmup_min_steps: u64,
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (0: off).
    pub max_grad_norm: f64,
}

/// How documents are cut into word windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowsSection {
    /// Words per window (the paper: 128).
    pub size: usize,
    /// Step between training windows (`size`: no overlap).
    pub train_stride: usize,
    /// Step between prediction windows.
    pub predict_stride: usize,
    pub max_subwords_per_word: usize,
}

/// Decoding adjustments picked on dev after training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecodingSection {
    /// Pick an `O` penalty on dev at each evaluation (`TaggerSettings::o_penalty`): a tagger
    /// trained on mostly-`O` text misses more entities than it invents, and the penalty trades
    /// a little precision for recall.
    pub tune_o_penalty: bool,
    /// After the encoder, train a span-boundary model (`tagging::BoundaryModel`) on the
    /// guide's jackknifed tags of the training documents, which moves each predicted entity's
    /// edges by up to two words where the words around them say so; kept in the model
    /// (`boundaries.json`) when dev `select_metric` does not fall with it. Needs a guide; costs
    /// seconds and one more dev prediction. A finished run resumed with it gains one without
    /// training again.
    pub boundaries: bool,
}

/// Training documents added by rewriting the gold ones (`deid::augment`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSection {
    /// Surrogate copies of each training document (other names, dates, places, numbers; spans
    /// kept), trained on beside the originals by the guide and the encoder; jackknife folds keep
    /// a copy with its source. `None`: as many as `target_documents` asks for.
    pub copies: Option<usize>,
    /// Instead of `copies`: as many copies as bring the corpus to about this many documents'
    /// worth (`deid::augment::copies_towards`), so that corpora of different sizes train on about
    /// as much text. `None`: `deid::augment::auto_copies` (towards 500 documents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_documents: Option<usize>,
    /// A label map file (as `deid --labels`: each label's surrogate kind) for the copies. `None`:
    /// MEDDOCAN's map, other labels' kinds guessed from their names, mention replacement for the
    /// rest. A relative path is read from the working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<std::path::PathBuf>,
    /// Where the copies' names, places and hospital names come from: `lists` (the language's
    /// built-in lists) or `corpus` (those lists widened with the training documents' own strings,
    /// each copy taking other documents' strings, never its own's).
    #[serde(skip_serializing_if = "deid::SurrogateSource::is_lists")]
    pub surrogates: deid::SurrogateSource,
}

impl AugmentSection {
    pub fn copies_for(&self, documents: usize) -> usize {
        match (self.copies, self.target_documents) {
            (Some(c), _) => c,
            (None, Some(t)) => deid::augment::copies_towards(documents, t),
            (None, None) => deid::augment::auto_copies(documents),
        }
    }

    /// Settings that contradict each other, said in a sentence naming the keys (`section`: where
    /// this one sits).
    pub fn check(&self, section: &str) -> Result<(), String> {
        match (self.copies, self.target_documents) {
            (Some(c), Some(t)) => Err(format!("{section}.augment: copies = {c} and target_documents = {t} both given: give one (copies: a fixed number; target_documents: copies that fill the corpus towards that many documents)")),
            (None, Some(0)) => Err(format!("{section}.augment.target_documents = 0: give a number of documents, or leave it out")),
            _ => Ok(()),
        }
    }

    /// The label map the copies use ([`AugmentSection::labels`]).
    pub fn label_map(&self) -> anyhow::Result<deid::LabelMap> {
        deid::LabelMap::from_path_or_meddocan(self.labels.as_deref()).map_err(|e| anyhow::anyhow!("augment.labels: {e}"))
    }
}

/// Several models trained alike on other seeds, their spans decided by majority vote
/// (`tagging::vote`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleSection {
    /// Models (member `i` on seed `seed + i`; member 0 is the model one run would train).
    /// `None`: [`EnsembleSection::members_for`] the corpus size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<usize>,
}

/// Corpora up to this many documents get [`AUTO_MEMBERS`] members by default: small enough that
/// three models train within the hour that one takes on all of MEDDOCAN (BENCHMARKS.md, issue 24).
pub const ENSEMBLE_MAX_DOCUMENTS: usize = 50;
pub const AUTO_MEMBERS: usize = 3;

impl EnsembleSection {
    pub fn members_for(&self, documents: usize) -> usize {
        self.members.unwrap_or(if documents <= ENSEMBLE_MAX_DOCUMENTS { AUTO_MEMBERS } else { 1 }).max(1)
    }

    fn is_auto(&self) -> bool {
        self.members.is_none()
    }
}

/// Resumable training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Write a resumable checkpoint at least this often within an epoch.
    pub minutes: f64,
    /// Continue from `OUT/checkpoint` if it exists.
    pub resume: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 42,
            select_metric: Metric::Strict,
            encoder: EncoderSection::default(),
            guide: GuideSection::default(),
            optimizer: OptimizerSection::default(),
            windows: WindowsSection::default(),
            decoding: DecodingSection::default(),
            augment: AugmentSection::default(),
            ensemble: EnsembleSection::default(),
            checkpoint: CheckpointSection::default(),
        }
    }
}

impl Default for EncoderSection {
    fn default() -> Self {
        EncoderSection {
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
        }
    }
}

impl Default for GuideSection {
    fn default() -> Self {
        // The annotator of record's guide (configs/ner-meddocan.toml): stacked, picked of 6 seeds.
        GuideSection { folds: 5, stacked_inputs: false, perceptron: perceptron::PerceptronConfig { stack_folds: 5, seed_candidates: 6, ..Default::default() } }
    }
}

impl OptimizerSection {
    /// Epochs to train with `copies` surrogate copies of each document ([`OptimizerSection::epochs`]).
    /// Dev F1 with 8 copies of 25 documents was flat from epoch 2 of 8 on (BENCHMARKS.md, issue 24).
    pub fn epochs_for(&self, copies: usize) -> usize {
        if copies == 0 {
            return self.epochs;
        }
        (2 * self.epochs).div_ceil(copies + 1).clamp(self.epochs.min(2), self.epochs)
    }
}

impl Default for OptimizerSection {
    fn default() -> Self {
        OptimizerSection { epochs: 8, max_minutes: None, batch_size: 16, lr: None, head_lr: None, warmup_ratio: 0.1, warmup_min_steps: 0, weight_decay: 0.01, max_grad_norm: 1.0 }
    }
}

impl Default for WindowsSection {
    fn default() -> Self {
        WindowsSection { size: 128, train_stride: 128, predict_stride: 96, max_subwords_per_word: 8 }
    }
}

impl Default for DecodingSection {
    fn default() -> Self {
        DecodingSection { tune_o_penalty: true, boundaries: true }
    }
}

impl Default for CheckpointSection {
    fn default() -> Self {
        CheckpointSection { minutes: 10.0, resume: true }
    }
}

impl TrainConfig {
    pub fn dims(&self) -> Dims {
        let e = &self.encoder;
        let p = e.preset.dims();
        Dims {
            hidden_size: e.hidden_size.unwrap_or(p.hidden_size),
            num_layers: e.num_layers.unwrap_or(p.num_layers),
            num_heads: e.num_heads.unwrap_or(p.num_heads),
            intermediate_size: e.intermediate_size.unwrap_or(p.intermediate_size),
            vocab_size: e.vocab_size.unwrap_or(p.vocab_size),
        }
    }

    pub fn peak_lr(&self) -> f64 {
        self.optimizer.lr.unwrap_or(if self.encoder.init.is_some() { 5e-5 } else { FROM_SCRATCH_LR })
    }

    /// Peak learning rate of the task's own parameters ([`OptimizerSection::head_lr`]); without
    /// `encoder.init` everything trains from scratch at [`TrainConfig::peak_lr`].
    pub fn head_lr(&self) -> f64 {
        if self.encoder.init.is_some() {
            self.optimizer.head_lr.unwrap_or(FROM_SCRATCH_LR)
        } else {
            self.peak_lr()
        }
    }

    /// Whether a checkpoint written under `other` may be resumed under `self`: the same run but
    /// for the time budget, checkpointing, and the boundary model (added after training).
    pub fn same_run(&self, other: &TrainConfig) -> bool {
        let norm = |c: &TrainConfig| {
            let mut n = c.clone();
            n.optimizer.max_minutes = None;
            n.checkpoint = CheckpointSection { minutes: 0.0, resume: true };
            n.decoding.boundaries = false;
            n
        };
        norm(self) == norm(other)
    }

    /// Applies `section.key=value` overrides (dotted paths into this shape; the value is read as
    /// TOML, or as a string when it is not TOML: `encoder.init=/models/e5`). An unknown key is
    /// an error that names it.
    pub fn with_overrides(&self, overrides: &[String]) -> Result<TrainConfig, String> {
        apply_overrides(self, overrides)
    }
}

/// `section.key=value` overrides applied to any settings shape that serializes to TOML.
pub fn apply_overrides<T: Serialize + serde::de::DeserializeOwned>(base: &T, overrides: &[String]) -> Result<T, String> {
    let mut doc = toml::Value::try_from(base).map_err(|e| e.to_string())?;
    for o in overrides {
        let (path, raw) = o.split_once('=').ok_or_else(|| format!("--set {o:?}: write KEY=VALUE, e.g. guide.folds=5"))?;
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let keys: Vec<&str> = path.trim().split('.').collect();
        let mut at = &mut doc;
        for (i, k) in keys.iter().enumerate() {
            let table = at.as_table_mut().ok_or_else(|| format!("--set {path}: {} is not a section", keys[..i].join(".")))?;
            if i + 1 == keys.len() {
                table.insert(k.to_string(), value.clone());
                break;
            }
            at = table.entry(k.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        }
    }
    doc.try_into().map_err(|e: toml::de::Error| format!("--set: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_corpora_get_an_ensemble_and_the_auto_setting_is_not_serialised() {
        let auto = EnsembleSection::default();
        assert_eq!([1, 25, 50, 51, 500].map(|n| auto.members_for(n)), [3, 3, 3, 1, 1]);
        assert_eq!(EnsembleSection { members: Some(0) }.members_for(25), 1);
        assert_eq!(EnsembleSection { members: Some(5) }.members_for(500), 5);
        // Unset, it leaves the settings' serialisation (and so pipeline cache keys) as it was.
        let json = serde_json::to_string(&TrainConfig::default()).unwrap();
        assert!(!json.contains("ensemble"), "{json}");
        let set = TrainConfig::default().with_overrides(&["ensemble.members=1".into()]).unwrap();
        assert_eq!(set.ensemble.members, Some(1));
    }

    #[test]
    fn copies_are_fixed_filled_towards_a_target_or_automatic_and_not_two_at_once() {
        let a = |copies, target_documents| AugmentSection { copies, target_documents, labels: None, surrogates: deid::SurrogateSource::Lists };
        assert_eq!([25, 500, 1000].map(|n| a(Some(2), None).copies_for(n)), [2, 2, 2]);
        assert_eq!([25, 500, 1000, 2000].map(|n| a(None, Some(2000)).copies_for(n)), [16, 3, 1, 0]);
        assert_eq!([25, 500].map(|n| a(None, None).copies_for(n)), [16, 0]);
        assert!(a(Some(2), None).check("s").is_ok() && a(None, Some(2000)).check("s").is_ok());
        let e = a(Some(2), Some(2000)).check("synthetic_ner").unwrap_err();
        assert!(e.starts_with("synthetic_ner.augment: copies = 2 and target_documents = 2000 both given"), "{e}");
        assert!(a(None, Some(0)).check("s").unwrap_err().contains("target_documents = 0"));
    }

    #[test]
    fn copies_shorten_the_epochs_to_about_twice_the_passes_over_each_document() {
        let o = OptimizerSection::default();
        // No copies: as configured; 8 copies (9 passes an epoch): 2 epochs; 4 copies: 4 epochs.
        let got: Vec<usize> = [0, 1, 3, 4, 8, 30].iter().map(|&k| o.epochs_for(k)).collect();
        assert_eq!(got, vec![8, 8, 4, 4, 2, 2]);
        let one = OptimizerSection { epochs: 1, ..o };
        assert_eq!((one.epochs_for(0), one.epochs_for(8)), (1, 1));
    }

    /// The MEDDOCAN recipe in `configs/` parses (unknown keys would be refused) and holds the
    /// settings of the run of record in BENCHMARKS.md.
    #[test]
    fn meddocan_recipe_config_parses_with_its_settings() {
        let c: TrainConfig = toml::from_str(include_str!("../../../configs/ner-meddocan.toml")).unwrap();
        let mut rest = TrainConfig { seed: 7, ..TrainConfig::default() };
        rest.guide.folds = 5;
        rest.guide.perceptron.stack_folds = 5;
        rest.guide.perceptron.seed_candidates = 6;
        rest.optimizer = OptimizerSection { epochs: 8, batch_size: 16, lr: Some(0.0008), warmup_ratio: 0.1, max_minutes: Some(55.0), ..OptimizerSection::default() };
        rest.decoding.boundaries = true;
        assert_eq!(c, rest, "the recipe sets something the run of record did not");
        // The defaults are that recipe but for its time budget and seed.
        let d = TrainConfig::default();
        assert_eq!((d.guide.clone(), d.decoding.clone(), d.encoder.clone(), d.windows.clone()), (c.guide.clone(), c.decoding.clone(), c.encoder.clone(), c.windows.clone()));
        assert_eq!(TrainConfig { optimizer: OptimizerSection { lr: None, max_minutes: None, ..c.optimizer.clone() }, seed: d.seed, ..c.clone() }, d);
        assert_eq!(d.peak_lr(), c.peak_lr());
    }

    #[test]
    fn dotted_overrides_set_nested_keys_and_name_unknown_ones() {
        let c = TrainConfig::default()
            .with_overrides(&[
                "guide.folds=5".into(),
                "optimizer.lr=0.0008".into(),
                "encoder.init=/models/e5".into(),
                "guide.perceptron.feature_sets=[3, 1]".into(),
                "optimizer.head_lr=0.001".into(),
            ])
            .unwrap();
        assert_eq!((c.optimizer.head_lr, c.head_lr()), (Some(0.001), 0.001));
        let e5 = TrainConfig::default().with_overrides(&["encoder.init=/models/e5".into()]).unwrap();
        assert_eq!((e5.peak_lr(), e5.head_lr(), TrainConfig::default().head_lr()), (5e-5, 8e-4, 8e-4));
        // Unset, the key is not written, so configs (and the pipeline's stage keys) from before it stay the same.
        assert!(!serde_json::to_string(&TrainConfig::default()).unwrap().contains("head_lr"));
        assert_eq!(c.guide.folds, 5);
        assert_eq!(c.optimizer.lr, Some(0.0008));
        assert_eq!(c.encoder.init.as_deref(), Some(std::path::Path::new("/models/e5")));
        assert_eq!(c.guide.perceptron.feature_sets, [3, 1]);
        let err = TrainConfig::default().with_overrides(&["guide.fold=5".into()]).unwrap_err();
        assert!(err.contains("fold"), "{err}");
        assert!(TrainConfig::default().with_overrides(&["guide.folds".into()]).is_err());
    }
}
