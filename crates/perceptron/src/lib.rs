//! A structured averaged perceptron over word tokens, with CRFsuite-style features (the word, its
//! shape, prefixes and suffixes, and the same for ±2 neighbours) and BIO-constrained Viterbi
//! decoding. It is the floor: trained in minutes on one core, it is what a neural annotator has
//! to beat to be worth its cost, and a fast annotator for pipelines that need one. Optionally two
//! are stacked (`stack_folds`): the second also sees the first one's tags. Several (each on its
//! own seed and feature set) can be decoded together as one committee (`feature_sets`), and the
//! best of several seeds on dev can be kept (`seed_candidates`). Training reports its progress
//! per perceptron epoch (`progress.inc(1)`; [`planned_epochs`] is the total).

mod features;
mod gazetteer;

use anyhow::{bail, ensure, Context, Result};
use corpus::{tokenize, Document, Token};
use progress::Progress;
pub use tagging::{train_boundaries, BoundaryConfig, BoundaryModel, BoundarySummary, TagScheme, BOUNDARY_FEATURES, BOUNDARY_FILE};
use tagging::decoding::{mean_o_margin, search_o_penalty};
use tagging::{token_f1, TagSet};
pub use features::FEATURE_SET;
use features::{stack_features, token_features};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerceptronConfig {
    pub epochs: usize,
    /// Features seen fewer times than this in training are dropped.
    pub min_feature_count: u32,
    /// Pick, on dev, a penalty on the `O` tag's score: the tagger's errors are mostly misses
    /// (precision 0.977, recall 0.951 on MEDDOCAN), and a penalty trades a little precision for
    /// recall. Off, or without dev documents, the penalty is 0.
    pub tune_o_penalty: bool,
    /// Perceptrons trained on different document orders (seeds `seed`, `seed + 1`, …, in
    /// parallel) and averaged into one.
    pub members: usize,
    /// Stacking: with k ≥ 2, a first-stage tagger is trained (and kept in the model), and the
    /// second stage also sees the first stage's tags (around each token, for the same word
    /// elsewhere in the document, for the entities before and after on its line). The second
    /// stage trains on the first stage's tags of training documents it did not see: those of
    /// k taggers, each trained on the other k − 1 folds. 0 is off.
    pub stack_folds: usize,
    /// The token features ([`FEATURE_SET`] and the earlier sets it grew from) of each tagger of a
    /// committee: one tagger per entry, each trained on its own seed (`seed` for the first,
    /// `seed + 1000·i` for the i-th), decoded together as one (their scores added, each scaled
    /// to the first's). Taggers on different features err in different places; two or three
    /// beat each of them alone. One entry is a single tagger.
    pub feature_sets: Vec<u32>,
    pub seed: u64,
    /// Train this many taggers (or committees), the j-th on seed `seed + 1000·n·j` (n: the
    /// number of feature sets, so that no two taggers share a seed), and keep the one with the
    /// best dev token F1. A stacked tagger's test score moves with its seed (its jackknife folds
    /// and update orders) by ±0.003 on MEDDOCAN, and dev ranks seeds as test does; each candidate
    /// costs its training time again. Needs dev documents when above 1.
    pub seed_candidates: usize,
    /// How tags mark an entity's tokens: `B-`/`I-` (BIO), or also `L-` on the last token of a
    /// longer entity and `U-` on a one-token entity (BILOU), so that the last token of an entity
    /// has weights of its own and the decoder must close each entity where it ends.
    pub tag_scheme: TagScheme,
    /// After training, learn a span-boundary model ([`BoundaryModel`]) from the tags of
    /// [`BOUNDARY_FOLDS`] plain taggers on the same features, each trained without one fold
    /// (jackknifed), and keep it in the tagger when dev entity-strict F1 does not fall with it
    /// (always, without dev). It moves predicted entities' edges by up to two words. Costs
    /// those taggers' training (in parallel) and a dev prediction.
    pub boundaries: bool,
    /// The language whose word lists (`lang` crate: names, places, months, keywords, field names)
    /// the features read: `es`, `en`, `de`, `sv` or `other`. None: detected from the training
    /// documents ([`lang::detect`]). The model keeps it, so prediction computes the same features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<lang::Language>,
}

/// The `O` penalties tried on dev, as fractions of the mean margin between `O` and the best
/// other tag (0, the untuned decoding, first).
const O_PENALTY_FRACTIONS: [f32; 9] = [0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2];

/// Folds of the jackknife a tagger's span-boundary model learns from
/// ([`PerceptronConfig::boundaries`]).
pub const BOUNDARY_FOLDS: usize = 5;

impl Default for PerceptronConfig {
    fn default() -> Self {
        PerceptronConfig { epochs: 20, min_feature_count: 1, tune_o_penalty: true, members: 1, stack_folds: 0, feature_sets: vec![FEATURE_SET], seed: 42, seed_candidates: 1, tag_scheme: TagScheme::Bio, boundaries: false, language: None }
    }
}

/// What training did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerceptronSummary {
    pub epochs: usize,
    pub best_epoch: usize,
    /// Token-level micro F1 on dev after each epoch (empty without dev documents).
    pub dev_token_f1: Vec<f64>,
    /// Members averaged, and the average's dev token F1 (before the `O` penalty).
    pub members: usize,
    pub ensemble_dev_f1: Option<f64>,
    /// The `O` penalty kept, and dev token F1 for each penalty tried (as a fraction of the mean
    /// score margin between `O` and the best other tag).
    pub o_penalty: f32,
    pub o_penalty_dev_f1: Vec<(f32, f64)>,
    /// With stacking: the folds, and the first stage's own summary.
    #[serde(default)]
    pub stack_folds: usize,
    #[serde(default)]
    pub stage1: Option<Box<PerceptronSummary>>,
    /// With a committee: the other taggers' own summaries, and the committee's dev token F1
    /// (this summary's other fields are the first tagger's).
    #[serde(default)]
    pub committee: Vec<PerceptronSummary>,
    #[serde(default)]
    pub committee_dev_token_f1: Option<f64>,
    /// With seed candidates: each candidate's seed and dev token F1, in training order (this
    /// summary's other fields are the kept, best one's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seed_candidates: Vec<(u64, f64)>,
    /// With `boundaries`: the span-boundary model's training and its dev check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundaries: Option<BoundaryCheck>,
    pub features: usize,
    pub tags: usize,
    pub seconds: f64,
}

/// A span-boundary model learned after training ([`PerceptronConfig::boundaries`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundaryCheck {
    pub training: BoundarySummary,
    /// Dev entity-strict F1 of the tagger without and with it (none without dev).
    pub dev_strict_f1_without: Option<f64>,
    pub dev_strict_f1_with: Option<f64>,
    /// Whether the tagger holds it: dev did not fall with it (always, without dev).
    pub kept: bool,
}

impl PerceptronSummary {
    /// With seed candidates, the seed of the kept one: the first with the best dev token F1.
    pub fn kept_seed(&self) -> Option<u64> {
        let best = self.seed_candidates.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
        self.seed_candidates.iter().find(|c| c.1 == best).map(|c| c.0)
    }
}

/// A trained tagger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Perceptron {
    /// BIO (or BILOU) tags; index 0 is `O`, then each label's tags side by side.
    pub tags: TagSet,
    /// Feature hash → row of `weights`. Saved in key order, so that one seed saves one file.
    #[serde(serialize_with = "tagging::in_key_order")]
    index: HashMap<u64, u32>,
    /// `[feature][tag]`, averaged.
    weights: Vec<f32>,
    /// `[previous tag][tag]`; the row after the last tag is the start state.
    transitions: Vec<f32>,
    /// Subtracted from the `O` tag's emission score at prediction (picked on dev).
    #[serde(default)]
    o_penalty: f32,
    /// The first stage of a stacked tagger, whose tags are features of this one.
    #[serde(default)]
    stage1: Option<Box<Perceptron>>,
    /// The token features it was trained on ([`features::FEATURE_SET`] when trained; 1 for
    /// taggers saved before the field existed).
    #[serde(default = "first_feature_set")]
    feature_set: u32,
    /// Further taggers decoded with this one as one committee: their scores, each times its
    /// weight, are added to this one's (see [`PerceptronConfig::feature_sets`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    committee: Vec<CommitteeMember>,
    /// Moves predicted entities' edges after decoding ([`PerceptronConfig::boundaries`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    boundaries: Option<BoundaryModel>,
    /// The language of its features' word lists ([`PerceptronConfig::language`]). Spanish is
    /// left out when saved: taggers saved before the field existed are Spanish.
    #[serde(default, skip_serializing_if = "lang::Language::is_default")]
    language: lang::Language,
}

/// A tagger of a committee, and the weight that brings its scores to the first tagger's scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CommitteeMember {
    tagger: Perceptron,
    weight: f32,
}

fn first_feature_set() -> u32 {
    1
}

const MODEL_FILE: &str = "perceptron.json";

struct Sequence {
    feats: Vec<Vec<u32>>,
    gold: Vec<usize>,
}

impl Perceptron {
    fn n_tags(&self) -> usize {
        self.tags.len()
    }

    /// Its tag scheme, read from its tags.
    pub fn tag_scheme(&self) -> TagScheme {
        self.tags.scheme()
    }

    /// Tags per label (after `O`, each label's tags are consecutive: B, I[, L, U]).
    fn tags_per_label(&self) -> usize {
        self.tags.tags_per_label()
    }

    /// Viterbi over emission + transition scores, with invalid BIO (or BILOU) transitions forbidden.
    fn decode(&self, feats: &[Vec<u32>], weights: &[f32], transitions: &[f32], o_penalty: f32) -> Vec<usize> {
        self.tags.viterbi(feats.len(), |i, out| emission(&feats[i], weights, o_penalty, out), Some(transitions))
    }

    /// The predicted tags of `tokens` (indices into [`Perceptron::tags`]).
    fn tag_path(&self, doc: &Document, tokens: &[Token]) -> Vec<usize> {
        if self.committee.is_empty() {
            return self.decode(&self.featurize(doc, tokens), &self.weights, &self.transitions, self.o_penalty);
        }
        let emissions = self.scores(doc, tokens);
        self.tags.viterbi_rows(&emissions, Some(&self.transition_scores()))
    }

    /// A second stage's tags of `tokens` from the given first-stage tags (not its own first
    /// stage's): for out-of-fold tagging, where those come from a jackknifed first stage.
    fn tag_path_after(&self, doc: &Document, tokens: &[Token], stage1_tags: &[String]) -> Vec<usize> {
        debug_assert!(self.stage1.is_some(), "only a second stage takes first-stage tags");
        let mut fs = token_features(&doc.text, tokens, self.feature_set, self.language);
        let tags: Vec<&str> = stage1_tags.iter().map(String::as_str).collect();
        stack_features(&doc.text, tokens, &tags, &mut fs);
        self.decode(&self.index(&fs), &self.weights, &self.transitions, self.o_penalty)
    }

    /// The predicted tags of `tokens` as strings.
    fn tag_strings(&self, doc: &Document, tokens: &[Token]) -> Vec<String> {
        self.tag_path(doc, tokens).iter().map(|&y| self.tags.tags[y].clone()).collect()
    }

    /// Hashed features of `tokens`, with a stacked tagger's first-stage features.
    fn raw_features(&self, doc: &Document, tokens: &[Token]) -> Vec<Vec<u64>> {
        let mut fs = token_features(&doc.text, tokens, self.feature_set, self.language);
        if let Some(s1) = &self.stage1 {
            // A first stage is never stacked itself (`train` trains it with `stack_folds` 0), so
            // its features are these token features: computed once for both stages.
            debug_assert!(s1.stage1.is_none(), "a first stage is not stacked");
            debug_assert_eq!(s1.feature_set, self.feature_set, "both stages are trained on one feature set");
            let path = s1.decode(&s1.index(&fs), &s1.weights, &s1.transitions, s1.o_penalty);
            let tags: Vec<&str> = path.iter().map(|&y| s1.tags.tags[y].as_str()).collect();
            stack_features(&doc.text, tokens, &tags, &mut fs);
        }
        fs
    }

    /// Hashed features to rows of `weights` (features not seen in training dropped).
    fn index(&self, raw: &[Vec<u64>]) -> Vec<Vec<u32>> {
        raw.iter().map(|fs| fs.iter().filter_map(|h| self.index.get(h).copied()).collect()).collect()
    }

    fn featurize(&self, doc: &Document, tokens: &[Token]) -> Vec<Vec<u32>> {
        self.index(&self.raw_features(doc, tokens))
    }

    /// The per-token tag scores of `doc` (with the `O` penalty), in the order of [`Perceptron::tags`]:
    /// what Viterbi decoding adds up, for combining this tagger with another. A committee's are
    /// the weighted sum of its taggers'.
    pub fn scores(&self, doc: &Document, tokens: &[Token]) -> Vec<Vec<f32>> {
        let mut rows = self.own_scores(doc, tokens);
        for m in &self.committee {
            for (row, theirs) in rows.iter_mut().zip(m.tagger.own_scores(doc, tokens)) {
                row.iter_mut().zip(&theirs).for_each(|(a, b)| *a += m.weight * b);
            }
        }
        rows
    }

    /// [`Perceptron::scores`] of this tagger alone (without its committee).
    fn own_scores(&self, doc: &Document, tokens: &[Token]) -> Vec<Vec<f32>> {
        self.featurize(doc, tokens)
            .iter()
            .map(|fs| {
                let mut e = vec![0f32; self.n_tags()];
                emission(fs, &self.weights, self.o_penalty, &mut e);
                e
            })
            .collect()
    }

    /// The mean margin, over the tokens of `docs`, between the `O` tag's score and the best other
    /// tag's: the scale of this tagger's own scores, for weighing it against others.
    pub fn margin_scale(&self, docs: &[Document]) -> f32 {
        mean_o_margin(docs.iter().flat_map(|d| self.own_scores(d, &tokenize(&d.text))))
    }

    /// Tag transition scores, `[(previous) * tags + tag]`, the start state as the last row (a
    /// committee's: the weighted sum of its taggers').
    pub fn transition_scores(&self) -> std::borrow::Cow<'_, [f32]> {
        if self.committee.is_empty() {
            return std::borrow::Cow::Borrowed(&self.transitions);
        }
        let mut t = self.transitions.clone();
        for m in &self.committee {
            t.iter_mut().zip(&m.tagger.transitions).for_each(|(a, b)| *a += m.weight * b);
        }
        std::borrow::Cow::Owned(t)
    }

    /// A committee of `first` and `others`, decoded as one: each other tagger's scores are
    /// weighted by the ratio of `first`'s [`Perceptron::margin_scale`] to its own on `docs`, so
    /// that every tagger counts alike. All must tag the same labels; none may be a committee.
    pub fn committee_of(first: Perceptron, others: Vec<Perceptron>, docs: &[Document]) -> Result<Perceptron> {
        if let Some(p) = std::iter::once(&first).chain(&others).find(|p| !p.committee.is_empty()) {
            bail!("a committee's taggers are single taggers, but one is a committee of {}", p.committee.len() + 1);
        }
        if let Some(p) = others.iter().find(|p| p.tags != first.tags) {
            bail!("committee taggers tag different label sets ({} tags against {}): train them on one corpus", p.tags.len(), first.tags.len());
        }
        let scale = first.margin_scale(docs);
        let committee = others
            .into_iter()
            .map(|tagger| {
                let own = tagger.margin_scale(docs);
                CommitteeMember { weight: if own > 0.0 { scale / own } else { 1.0 }, tagger }
            })
            .collect();
        Ok(Perceptron { committee, ..first })
    }

    /// The number of taggers decoded together (1 for a single tagger).
    pub fn committee_size(&self) -> usize {
        1 + self.committee.len()
    }

    /// Predicted spans for each document (same ids and texts).
    pub fn predict(&self, docs: &[Document]) -> Vec<Document> {
        let tagged: Vec<Document> = docs
            .iter()
            .map(|d| {
                let tokens = tokenize(&d.text);
                let path = self.tag_path(d, &tokens);
                Document { id: d.id.clone(), text: d.text.clone(), spans: self.tags.decode(&tokens, &path) }
            })
            .collect();
        match &self.boundaries {
            Some(b) => b.apply_all(&tagged),
            None => tagged,
        }
    }

    /// The span-boundary model applied after decoding, if it has one.
    pub fn boundaries(&self) -> Option<&BoundaryModel> {
        self.boundaries.as_ref()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        fsutil::atomic_write(&dir.join(MODEL_FILE), serde_json::to_string(self)?.as_bytes()).map_err(anyhow::Error::msg)?;
        fsutil::atomic_write(&dir.join("config.json"), br#"{"model_type": "perceptron"}"#).map_err(anyhow::Error::msg)?;
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join(MODEL_FILE);
        let model: Self = serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| p.display().to_string())?;
        if let Some(b) = &model.boundaries {
            b.check_features(&p)?;
        }
        let newest = std::iter::once(&model).chain(model.committee.iter().map(|m| &m.tagger)).map(|t| t.feature_set).max().unwrap_or(1);
        if newest > FEATURE_SET {
            bail!(
                "{}: trained with feature set {newest}, but this build computes feature sets 1 to {FEATURE_SET}; \
                 predict with the synthdeid version that trained it, or retrain",
                p.display(),
            );
        }
        Ok(model)
    }

    /// The token features it was trained on (and computes): see [`FEATURE_SET`].
    pub fn feature_set(&self) -> u32 {
        self.feature_set
    }

    /// The language of its features' word lists.
    pub fn language(&self) -> lang::Language {
        self.language
    }

    /// Whether this is a stacked tagger (a first stage's tags are among its features).
    pub fn is_stacked(&self) -> bool {
        self.stage1.is_some()
    }

    /// Whether `dir` holds a model of this kind.
    pub fn is_model_dir(dir: &Path) -> bool {
        dir.join(MODEL_FILE).exists()
    }
}

/// A token's tag scores: the sum of its features' weight rows (`weights` is `[feature][tag]`),
/// less `o_penalty` on `O` (tag 0), into `out` (one slot per tag).
fn emission(feats: &[u32], weights: &[f32], o_penalty: f32, out: &mut [f32]) {
    let t = out.len();
    out.fill(0.0);
    for &f in feats {
        for (o, w) in out.iter_mut().zip(&weights[f as usize * t..(f as usize + 1) * t]) {
            *o += w;
        }
    }
    out[0] -= o_penalty;
}

/// One member's training: the averaged weights and transitions of its best epoch on dev (its
/// last epoch without dev).
struct Fit {
    best_epoch: usize,
    weights: Vec<f32>,
    transitions: Vec<f32>,
    dev_scores: Vec<f64>,
}

fn fit(model: &Perceptron, seqs: &[Sequence], dev_seqs: &[Sequence], epochs: usize, seed: u64, progress: &dyn Progress) -> Fit {
    let t = model.n_tags();
    let mut weights = model.weights.clone();
    let mut transitions = model.transitions.clone();
    // Averaged perceptron with lazy averaging: `acc` sums (update step × delta), so that the
    // average is `w - acc / c`.
    let mut acc_w = vec![0f32; weights.len()];
    let mut acc_t = vec![0f32; transitions.len()];
    let mut c: f32 = 1.0;
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<(f64, usize, Vec<f32>, Vec<f32>)> = None;
    let mut dev_scores = Vec::new();
    for epoch in 0..epochs {
        order.shuffle(&mut rng);
        for &si in &order {
            let s = &seqs[si];
            let pred = model.decode(&s.feats, &weights, &transitions, 0.0);
            if pred != s.gold {
                let mut update = |y: usize, p: Option<usize>, i: usize, delta: f32| {
                    for &f in &s.feats[i] {
                        let k = f as usize * t + y;
                        weights[k] += delta;
                        acc_w[k] += c * delta;
                    }
                    let k = p.unwrap_or(t) * t + y;
                    transitions[k] += delta;
                    acc_t[k] += c * delta;
                };
                for i in 0..s.gold.len() {
                    let gp = if i == 0 { None } else { Some(s.gold[i - 1]) };
                    let pp = if i == 0 { None } else { Some(pred[i - 1]) };
                    if s.gold[i] != pred[i] || gp != pp {
                        update(s.gold[i], gp, i, 1.0);
                        update(pred[i], pp, i, -1.0);
                    }
                }
            }
            c += 1.0;
        }
        let avg_w: Vec<f32> = weights.iter().zip(&acc_w).map(|(w, a)| w - a / c).collect();
        let avg_t: Vec<f32> = transitions.iter().zip(&acc_t).map(|(w, a)| w - a / c).collect();
        let score = if dev_seqs.is_empty() {
            epoch as f64
        } else {
            let preds: Vec<Vec<usize>> = dev_seqs.iter().map(|s| model.decode(&s.feats, &avg_w, &avg_t, 0.0)).collect();
            let f1 = token_f1(&golds(dev_seqs), &preds, model.tags_per_label());
            dev_scores.push(f1);
            f1
        };
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, epoch, avg_w, avg_t));
        }
        progress.inc(1);
    }
    let (_, best_epoch, weights, transitions) = best.expect("at least one epoch");
    Fit { best_epoch: best_epoch + 1, weights, transitions, dev_scores }
}

/// Single-perceptron epochs that [`train`] runs with `cfg` (a progress bar's length): members ×
/// epochs per tagger; a stacked tagger is `stack_folds` jackknifed first stages, the kept first
/// stage and the second stage; one tagger per feature set, all of it per seed candidate.
pub fn planned_epochs(cfg: &PerceptronConfig) -> u64 {
    let stages = if cfg.stack_folds == 0 { 1 } else { cfg.stack_folds + 2 };
    let boundaries = if cfg.boundaries { BOUNDARY_FOLDS * cfg.epochs } else { 0 };
    (stages * cfg.feature_sets.len().max(1) * per_tagger_stage(cfg) + boundaries) as u64
}

/// Single-perceptron epochs that [`train_stacked_with_out_of_fold`] runs with `cfg` and `folds`:
/// [`planned_epochs`]' and `folds` more second stages.
pub fn planned_epochs_with_out_of_fold(cfg: &PerceptronConfig, folds: usize) -> u64 {
    ((cfg.stack_folds + 2 + folds) * per_tagger_stage(cfg)) as u64
}

/// Epochs of one training stage (its members), times the seed candidates.
fn per_tagger_stage(cfg: &PerceptronConfig) -> usize {
    cfg.members.max(1) * cfg.epochs * cfg.seed_candidates.max(1)
}

/// Trains on `train`, keeps the epoch with the best dev token F1 (the last one without dev),
/// and saves to `out` (if given). With `cfg.seed_candidates` > 1, the best of that many seeds on dev.
/// Calls `progress.inc(1)` after every epoch of every perceptron it trains ([`planned_epochs`] in
/// all), from the threads that train folds and members in parallel; the caller starts and
/// finishes the stage.
pub fn train(cfg: &PerceptronConfig, train: &[Document], dev: &[Document], out: Option<&Path>, progress: &dyn Progress) -> Result<(Perceptron, PerceptronSummary)> {
    let cfg = &with_language(cfg, train);
    if cfg.epochs == 0 {
        bail!("epochs must be at least 1");
    }
    require_spans(train)?;
    let t0 = std::time::Instant::now();
    let (mut model, mut summary, ()) = best_of_seeds(cfg, dev, |c| {
        let (m, s) = if c.feature_sets.len() > 1 { train_committee(c, train, dev, progress)? } else { train_single(c, train, dev, progress)? };
        Ok((m, s, ()))
    })?;
    if cfg.boundaries {
        summary.boundaries = Some(learn_boundaries(cfg, train, dev, &mut model, progress)?);
    }
    summary.seconds = t0.elapsed().as_secs_f64();
    if let Some(dir) = out {
        model.save(dir)?;
        fsutil::atomic_write(&dir.join("training.json"), serde_json::to_string_pretty(&(cfg, &summary))?.as_bytes()).map_err(anyhow::Error::msg)?;
    }
    Ok((model, summary))
}

/// Learns `model`'s span-boundary model (see [`PerceptronConfig::boundaries`]) and sets it when
/// dev entity-strict F1 does not fall with it.
fn learn_boundaries(cfg: &PerceptronConfig, train: &[Document], dev: &[Document], model: &mut Perceptron, progress: &dyn Progress) -> Result<BoundaryCheck> {
    ensure!(
        train.len() >= BOUNDARY_FOLDS,
        "a boundary model learns from {BOUNDARY_FOLDS} jackknifed taggers: give at least {BOUNDARY_FOLDS} training documents (got {}), or drop boundaries",
        train.len()
    );
    let plain = PerceptronConfig {
        members: 1,
        stack_folds: 0,
        // One plain tagger on the first feature set: its edge errors on unseen text are what is learned.
        feature_sets: cfg.feature_sets.iter().take(1).copied().collect(),
        seed_candidates: 1,
        tune_o_penalty: false,
        boundaries: false,
        ..cfg.clone()
    };
    let jackknifed = jackknife(&plain, BOUNDARY_FOLDS, train, &[], |p, d| p.predict(std::slice::from_ref(d)).remove(0), progress)?;
    let (boundaries, training) = train_boundaries(&BoundaryConfig { seed: cfg.seed, ..Default::default() }, train, &jackknifed)?;
    let strict = |pred: &[Document]| -> Result<f64> { Ok(eval::evaluate(dev, pred).map_err(anyhow::Error::msg)?.entity_strict.micro.f1) };
    let (without, with) = if dev.is_empty() {
        (None, None)
    } else {
        let pred = model.predict(dev);
        (Some(strict(&pred)?), Some(strict(&boundaries.apply_all(&pred))?))
    };
    let kept = match (without, with) {
        (Some(a), Some(b)) => b >= a,
        _ => true,
    };
    if kept {
        model.boundaries = Some(boundaries);
    }
    Ok(BoundaryCheck { training, dev_strict_f1_without: without, dev_strict_f1_with: with, kept })
}

/// `fit` on `cfg` (one candidate), or, with `cfg.seed_candidates` > 1, on each candidate seed in
/// turn (see [`PerceptronConfig::seed_candidates`]), keeping the fit whose tagger has the best
/// dev token F1 (the earliest of equals); its summary lists every candidate's score.
fn best_of_seeds<T>(
    cfg: &PerceptronConfig,
    dev: &[Document],
    mut fit: impl FnMut(&PerceptronConfig) -> Result<(Perceptron, PerceptronSummary, T)>,
) -> Result<(Perceptron, PerceptronSummary, T)> {
    match cfg.seed_candidates {
        0 => bail!("seed_candidates must be at least 1 (1: train on `seed` alone)"),
        1 => return fit(cfg),
        _ => {}
    }
    ensure!(
        !dev.is_empty(),
        "seed_candidates = {} picks a seed on dev documents, and none were given: give dev documents, or set seed_candidates to 1",
        cfg.seed_candidates
    );
    let step = 1000 * cfg.feature_sets.len().max(1) as u64;
    let mut scores = Vec::with_capacity(cfg.seed_candidates);
    let mut best: Option<(f64, (Perceptron, PerceptronSummary, T))> = None;
    for j in 0..cfg.seed_candidates {
        let one = PerceptronConfig { seed: cfg.seed.wrapping_add(step * j as u64), seed_candidates: 1, ..cfg.clone() };
        let fitted = fit(&one)?;
        // A committee's training already scored it on dev.
        let f1 = fitted.1.committee_dev_token_f1.unwrap_or_else(|| document_token_f1(&fitted.0, dev));
        scores.push((one.seed, f1));
        if best.as_ref().is_none_or(|(b, _)| f1 > *b) {
            best = Some((f1, fitted));
        }
    }
    let (_, (model, mut summary, extra)) = best.expect("at least two candidates were trained");
    summary.seed_candidates = scores;
    Ok((model, summary, extra))
}

/// `cfg` with its language set: as given, or detected from the training documents' text.
fn with_language(cfg: &PerceptronConfig, train: &[Document]) -> PerceptronConfig {
    PerceptronConfig { language: Some(language_of(cfg, train)), ..cfg.clone() }
}

fn language_of(cfg: &PerceptronConfig, train: &[Document]) -> lang::Language {
    cfg.language.unwrap_or_else(|| lang::detect(train.iter().map(|d| d.text.as_str())))
}

/// The feature set of a single tagger's config (checked).
fn single_feature_set(cfg: &PerceptronConfig) -> Result<u32> {
    match cfg.feature_sets[..] {
        [set] if (1..=FEATURE_SET).contains(&set) => Ok(set),
        [set] => bail!("feature set {set} does not exist: feature sets are 1 to {FEATURE_SET}"),
        [] => bail!("feature_sets is empty: give at least one feature set (the newest is {FEATURE_SET})"),
        _ => bail!("a single tagger has one feature set, not {:?}", cfg.feature_sets),
    }
}

/// One tagger per entry of `cfg.feature_sets` (one after another: each already trains its folds
/// and members in parallel), made one committee, weighed on dev (on `train` without dev).
fn train_committee(cfg: &PerceptronConfig, train: &[Document], dev: &[Document], progress: &dyn Progress) -> Result<(Perceptron, PerceptronSummary)> {
    let mut taggers = Vec::new();
    let mut summaries = Vec::new();
    for (i, &set) in cfg.feature_sets.iter().enumerate() {
        let one = PerceptronConfig { feature_sets: vec![set], seed: cfg.seed.wrapping_add(1000 * i as u64), ..cfg.clone() };
        let (tagger, summary) = train_single(&one, train, dev, progress)?;
        taggers.push(tagger);
        summaries.push(summary);
    }
    let first = taggers.remove(0);
    let mut summary = summaries.remove(0);
    let model = Perceptron::committee_of(first, taggers, if dev.is_empty() { train } else { dev })?;
    summary.committee = summaries;
    if !dev.is_empty() {
        summary.committee_dev_token_f1 = Some(document_token_f1(&model, dev));
    }
    Ok((model, summary))
}

/// The gold tag paths of `seqs`.
fn golds(seqs: &[Sequence]) -> Vec<&[usize]> {
    seqs.iter().map(|s| s.gold.as_slice()).collect()
}

/// Self-training: `unlabelled` (their own spans ignored) tagged by a tagger trained with `cfg` on
/// `train`, for a final tagger to train on `train` and these together. One round: a second one,
/// relabelling with the first round's tagger, scored lower on MEDDOCAN (BENCHMARKS.md, issue 24).
pub fn self_training_documents(cfg: &PerceptronConfig, train: &[Document], dev: &[Document], unlabelled: &[Document], progress: &dyn Progress) -> Result<Vec<Document>> {
    let bare = unlabelled_documents(train, unlabelled)?;
    let (first, _) = crate::train(cfg, train, dev, None, progress)?;
    Ok(first.predict(&bare))
}

/// `unlabelled` without their spans, for a first tagger to label (self-training, here and in
/// `ner::self_train`); an error if one of them is also a training document.
pub fn unlabelled_documents(train: &[Document], unlabelled: &[Document]) -> Result<Vec<Document>> {
    let ids: std::collections::HashSet<&str> = train.iter().map(|d| d.id.as_str()).collect();
    if let Some(d) = unlabelled.iter().find(|d| ids.contains(d.id.as_str())) {
        bail!("unlabelled document {} is also a training document: self-training needs text the annotated corpus does not hold", d.id);
    }
    Ok(unlabelled.iter().map(|d| Document { spans: Vec::new(), ..d.clone() }).collect())
}

/// A tagger learns PHI from annotated spans: without any, it would have the `O` tag only (and no
/// `o_penalty` scale), a model that cannot be used. Refused before anything is trained or written.
fn require_spans(train: &[Document]) -> Result<()> {
    ensure!(
        train.iter().any(|d| !d.spans.is_empty()),
        "none of the {} training document(s) has an annotated span: a tagger learns PHI from annotated spans, so no model was trained; \
         give annotated documents (BRAT .ann files, JSONL \"spans\", CoNLL B-/I- tags)",
        train.len()
    );
    Ok(())
}

/// Token-level micro F1 of `model`'s tags of `docs` against their spans (B- and I- of one label
/// count as one type).
fn document_token_f1(model: &Perceptron, docs: &[Document]) -> f64 {
    let (gold, pred): (Vec<Vec<usize>>, Vec<Vec<usize>>) = docs
        .par_iter()
        .map(|d| {
            let tokens = tokenize(&d.text);
            (model.tags.encode(&tokens, &d.spans), model.tag_path(d, &tokens))
        })
        .unzip();
    token_f1(&gold, &pred, model.tags_per_label())
}

/// A single tagger (stacked or not) on `cfg`'s one feature set.
fn train_single(cfg: &PerceptronConfig, train: &[Document], dev: &[Document], progress: &dyn Progress) -> Result<(Perceptron, PerceptronSummary)> {
    single_feature_set(cfg)?;
    let (model, summary) = if cfg.stack_folds == 0 {
        train_stage(cfg, train, dev, None, progress)?
    } else {
        let (stage1, stage1_summary, tagged) = first_stage(cfg, train, dev, progress)?;
        let (model, mut summary) = train_stage(cfg, train, dev, Some((stage1, tagged)), progress)?;
        summary.stack_folds = cfg.stack_folds;
        summary.stage1 = Some(Box::new(stage1_summary));
        (model, summary)
    };
    Ok((model, summary))
}

/// Jackknifing: `k` taggers trained with `cfg` (epoch and penalty picked on `dev`), each on all
/// of `train` but one fold, and `tag` applied by each to the documents of the fold it did not
/// see. The results are in the order of `train`. Folds train in parallel; each is seeded, so
/// the result does not depend on the schedule.
///
/// Calls `progress.inc(1)` after every epoch of every perceptron it trains (`k` ×
/// [`planned_epochs`] in all).
pub fn jackknife<T: Send>(
    cfg: &PerceptronConfig,
    k: usize,
    train: &[Document],
    dev: &[Document],
    tag: impl Fn(&Perceptron, &Document) -> T + Sync,
    progress: &dyn Progress,
) -> Result<Vec<T>> {
    // One language for every fold: detected on all of `train`.
    let cfg = &with_language(cfg, train);
    out_of_fold(k, cfg.seed, train, |fold_train| Ok(self::train(cfg, fold_train, dev, None, progress)?.0), tag)
}

/// `k` models, each fitted by `fit` on all of `train` but one fold (seeded), and `tag` applied by
/// each to the documents of the fold it did not see; in the order of `train`. Folds run in
/// parallel.
fn out_of_fold<M, T: Send>(
    k: usize,
    seed: u64,
    train: &[Document],
    fit: impl Fn(&[Document]) -> Result<M> + Sync,
    tag: impl Fn(&M, &Document) -> T + Sync,
) -> Result<Vec<T>> {
    // Results are matched back to documents by id: refuse repeated ids before any fitting.
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = train.iter().find(|d| !seen.insert(d.id.as_str())) {
        bail!("document id {:?} appears twice in the training corpus", d.id);
    }
    let folds = corpus::split::k_fold(train, k, seed).map_err(anyhow::Error::msg)?;
    let tagged: Vec<Vec<(String, T)>> = folds
        .par_iter()
        .map(|(fold_train, held_out)| -> Result<_> {
            let m = fit(fold_train)?;
            Ok(held_out.iter().map(|d| (d.id.clone(), tag(&m, d))).collect())
        })
        .collect::<Result<_>>()?;
    let mut by_id: HashMap<String, T> = tagged.into_iter().flatten().collect();
    Ok(train.iter().map(|d| by_id.remove(&d.id).expect("every document is in one held-out fold")).collect())
}

/// The first stage of a stacked tagger (`cfg.stack_folds` > 0), trained on all of `train`, and
/// each training document's first-stage tags from a tagger that did not train on it (jackknifed
/// over `cfg.stack_folds` folds), so the second stage learns how far to trust tags on unseen text.
fn first_stage(cfg: &PerceptronConfig, train: &[Document], dev: &[Document], progress: &dyn Progress) -> Result<(Perceptron, PerceptronSummary, Vec<Vec<String>>)> {
    if cfg.stack_folds < 2 || cfg.stack_folds > train.len() {
        bail!("stack_folds must be 0 (off) or between 2 and the number of training documents ({}), not {}", train.len(), cfg.stack_folds);
    }
    let stage1_cfg = PerceptronConfig { stack_folds: 0, boundaries: false, ..cfg.clone() };
    let tagged = jackknife(&stage1_cfg, cfg.stack_folds, train, dev, |p, d| p.tag_strings(d, &tokenize(&d.text)), progress)?;
    let (stage1, summary) = train_stage(&stage1_cfg, train, dev, None, progress)?;
    Ok((stage1, summary, tagged))
}

/// A stacked tagger (as [`train`] trains it; `cfg.stack_folds` > 0) and its out-of-fold
/// predictions of `train`: each document tagged by a second stage trained, the same way, on the
/// other `folds` − 1 folds, from the document's jackknifed first-stage tags. These are what a
/// stacked tagger's tags look like on text it did not see, for a model stacked on it in turn
/// (the NER encoder). The first-stage jackknife is shared with the returned tagger's training,
/// so this costs `folds` more second stages, trained in parallel with the kept one. Calls
/// `progress.inc(1)` after every epoch of every perceptron it trains
/// ([`planned_epochs_with_out_of_fold`] in all).
pub fn train_stacked_with_out_of_fold(
    cfg: &PerceptronConfig,
    folds: usize,
    train: &[Document],
    dev: &[Document],
    progress: &dyn Progress,
) -> Result<(Perceptron, PerceptronSummary, Vec<Document>)> {
    let cfg = &with_language(cfg, train);
    if cfg.epochs == 0 {
        bail!("epochs must be at least 1");
    }
    if cfg.feature_sets.len() != 1 {
        bail!("out-of-fold tags are those of one stacked tagger, not of a committee ({:?})", cfg.feature_sets);
    }
    require_spans(train)?;
    let t0 = std::time::Instant::now();
    let (model, mut summary, out_of_fold) = best_of_seeds(cfg, dev, |c| stacked_with_out_of_fold(c, folds, train, dev, progress))?;
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok((model, summary, out_of_fold))
}

/// [`train_stacked_with_out_of_fold`] on one seed.
fn stacked_with_out_of_fold(
    cfg: &PerceptronConfig,
    folds: usize,
    train: &[Document],
    dev: &[Document],
    progress: &dyn Progress,
) -> Result<(Perceptron, PerceptronSummary, Vec<Document>)> {
    let (stage1, stage1_summary, tagged) = first_stage(cfg, train, dev, progress)?;
    let tags_of: HashMap<&str, &Vec<String>> = train.iter().map(|d| d.id.as_str()).zip(&tagged).collect();
    let (kept, out_of_fold) = rayon::join(
        || train_stage(cfg, train, dev, Some((stage1.clone(), tagged.clone())), progress),
        || {
            out_of_fold(
                folds,
                cfg.seed,
                train,
                |fold_train| {
                    let t = fold_train.iter().map(|d| tags_of[d.id.as_str()].clone()).collect();
                    // The kept first stage only tags dev here, for picking the epoch and penalty.
                    Ok(train_stage(cfg, fold_train, dev, Some((stage1.clone(), t)), progress)?.0)
                },
                |p, d| {
                    let tokens = tokenize(&d.text);
                    let path = p.tag_path_after(d, &tokens, tags_of[d.id.as_str()]);
                    Document { id: d.id.clone(), text: d.text.clone(), spans: p.tags.decode(&tokens, &path) }
                },
            )
        },
    );
    let (model, mut summary) = kept?;
    summary.stack_folds = cfg.stack_folds;
    summary.stage1 = Some(Box::new(stage1_summary));
    Ok((model, summary, out_of_fold?))
}

/// One tagger: with `stage1`, a stacked second stage whose training documents carry the given
/// first-stage tags (in the order of `train`).
fn train_stage(
    cfg: &PerceptronConfig,
    train: &[Document],
    dev: &[Document],
    stage1: Option<(Perceptron, Vec<Vec<String>>)>,
    progress: &dyn Progress,
) -> Result<(Perceptron, PerceptronSummary)> {
    let t0 = std::time::Instant::now();
    let feature_set = single_feature_set(cfg)?;
    let language = language_of(cfg, train);
    // Each label's tags are consecutive (the token metric relies on it).
    let tags = TagSet::from_documents(train, cfg.tag_scheme);
    let raw: Vec<(Vec<Vec<u64>>, Vec<usize>)> = train
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let tokens = tokenize(&d.text);
            let gold = tags.encode(&tokens, &d.spans);
            let mut fs = token_features(&d.text, &tokens, feature_set, language);
            if let Some((_, tagged)) = &stage1 {
                let tags: Vec<&str> = tagged[i].iter().map(String::as_str).collect();
                stack_features(&d.text, &tokens, &tags, &mut fs);
            }
            (fs, gold)
        })
        .collect();
    let mut counts: HashMap<u64, u32> = HashMap::new();
    for (fs, _) in &raw {
        for f in fs.iter().flatten() {
            *counts.entry(*f).or_default() += 1;
        }
    }
    let mut kept: Vec<u64> = counts.into_iter().filter(|(_, c)| *c >= cfg.min_feature_count).map(|(h, _)| h).collect();
    kept.sort_unstable();
    let index: HashMap<u64, u32> = kept.iter().enumerate().map(|(i, h)| (*h, i as u32)).collect();
    let t = tags.len();
    let stage1 = stage1.map(|(p, _)| Box::new(p));
    let mut model = Perceptron { tags, index, weights: vec![0.0; kept.len() * t], transitions: vec![0.0; (t + 1) * t], o_penalty: 0.0, stage1, feature_set, committee: Vec::new(), boundaries: None, language };
    let seqs: Vec<Sequence> = raw
        .into_iter()
        .map(|(fs, gold)| Sequence { feats: fs.into_iter().map(|f| f.into_iter().filter_map(|h| model.index.get(&h).copied()).collect()).collect(), gold })
        .collect();
    let dev_seqs: Vec<Sequence> = dev
        .iter()
        .map(|d| {
            let tokens = tokenize(&d.text);
            Sequence { feats: model.featurize(d, &tokens), gold: model.tags.encode(&tokens, &d.spans) }
        })
        .collect();

    // Members trained on different orders of the documents, averaged: a linear model's average
    // is one linear model, with less of the variance that the order of updates leaves.
    let members = cfg.members.max(1);
    let fits: Vec<Fit> = (0..members).into_par_iter().map(|m| fit(&model, &seqs, &dev_seqs, cfg.epochs, cfg.seed.wrapping_add(m as u64), progress)).collect();
    let k = 1.0 / members as f32;
    model.weights.fill(0.0);
    model.transitions.fill(0.0);
    for f in &fits {
        model.weights.iter_mut().zip(&f.weights).for_each(|(w, x)| *w += k * x);
        model.transitions.iter_mut().zip(&f.transitions).for_each(|(w, x)| *w += k * x);
    }
    let best_epoch = fits[0].best_epoch;
    let dev_scores = fits[0].dev_scores.clone();
    let dev_f1_at = |model: &Perceptron, o_penalty: f32| {
        let preds: Vec<Vec<usize>> = dev_seqs.iter().map(|s| model.decode(&s.feats, &model.weights, &model.transitions, o_penalty)).collect();
        token_f1(&golds(&dev_seqs), &preds, model.tags_per_label())
    };
    let ensemble_dev_f1 = (!dev_seqs.is_empty()).then(|| dev_f1_at(&model, 0.0));
    let mut o_penalty_dev_f1 = Vec::new();
    if cfg.tune_o_penalty && !dev_seqs.is_empty() {
        // The scale: the mean margin, over dev tokens, between O and the best other tag.
        let scale = mean_o_margin(dev_seqs.iter().flat_map(|s| &s.feats).map(|fs| {
            let mut e = vec![0f32; model.n_tags()];
            emission(fs, &model.weights, 0.0, &mut e);
            e
        }));
        // Penalty 0 is the average as it is, already scored.
        let (penalty, tried) = search_o_penalty::<std::convert::Infallible>(&O_PENALTY_FRACTIONS, scale, None, |frac, penalty| {
            Ok(match ensemble_dev_f1 {
                Some(f1) if frac == 0.0 => f1,
                _ => dev_f1_at(&model, penalty),
            })
        })
        .unwrap_or_else(|e| match e {});
        o_penalty_dev_f1 = tried;
        model.o_penalty = penalty;
    }
    let summary = PerceptronSummary {
        epochs: cfg.epochs,
        best_epoch,
        members,
        ensemble_dev_f1,
        dev_token_f1: dev_scores,
        o_penalty: model.o_penalty,
        o_penalty_dev_f1,
        stack_folds: 0,
        stage1: None,
        committee: Vec::new(),
        committee_dev_token_f1: None,
        seed_candidates: Vec::new(),
        boundaries: None,
        features: model.index.len(),
        tags: model.tags.len(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((model, summary))
}


impl tagging::Tagger for Perceptron {
    fn predict(&self, docs: &[Document]) -> Result<Vec<Document>> {
        Ok(Perceptron::predict(self, docs))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        Perceptron::save(self, dir)
    }

    fn kind(&self) -> &'static str {
        "perceptron"
    }

    fn labels(&self) -> Vec<String> {
        self.tags.types().into_iter().map(str::to_string).collect()
    }
}
