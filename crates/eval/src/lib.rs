//! The scorer: compares predicted PHI spans with gold ones in five ways, per label, micro and
//! macro.
//!
//! | metric            | a hit is                                                        | source            |
//! |-------------------|-----------------------------------------------------------------|-------------------|
//! | `entity_strict`   | same `(label, start, end)`                                      | MEDDOCAN subtrack 1 "NER" |
//! | `span_strict`     | same `(start, end)`, label ignored                              | MEDDOCAN subtrack 2 "strict" |
//! | `span_merged`     | as `span_strict`, after merging spans separated only by non-alphanumerics | MEDDOCAN subtrack 2 "merged" |
//! | `token`           | a word token gets the same label in gold and prediction         | token-level F1    |
//! | `entity_overlap`  | same label and overlapping, matched one-to-one                  | relaxed NER       |
//!
//! `entity_strict`, `span_strict` and `span_merged` reproduce the official MEDDOCAN evaluation
//! script (PlanTL-GOB-ES/MEDDOCAN-Evaluation-Script, `classes.py`) number for number, quirks
//! included (see [`Report::span_merged`]): micro scores over pooled counts, as its summary
//! reports (its per-document scores are printed only, never averaged). Checked bit for bit on
//! MEDDOCAN train, dev and test against themselves and perturbed predictions (dropped, shifted,
//! relabelled, split, merged, nested and random spans) with `examples/score_brat.rs`. Deliberate
//! differences:
//!
//! * **Missing predictions count.** The official script scores only documents present on both
//!   sides, so a system that drops a hard document silently gains. Here a gold document without a
//!   prediction document is scored as an empty prediction (all its spans are misses) and its id is
//!   listed in [`Report::missing_predictions`]. This is what the official script reports when it
//!   is given an empty `.ann` for that document.
//! * **Unexpected predictions are listed, not scored.** A prediction document whose id has no gold
//!   document cannot be judged (there is no gold text, and scoring a subset of a corpus is
//!   legitimate), so its id goes to [`Report::unexpected_predictions`] and its spans are ignored,
//!   as the official script ignores them, but visibly.
//! * **One text.** The official script merges system spans using the system's own copy of the
//!   `.txt` file; here the gold text is used for both sides (prediction texts are ignored), which
//!   is the same whenever the system copied the text unchanged.
//! * Offsets are Unicode characters of the text as stored. The official script reads texts in
//!   Python text mode, which turns `\r\n` into `\n`; on texts with carriage returns (MEDDOCAN has
//!   none) its merging would look at shifted characters, and we do not imitate that.
//!
//! Common conventions, taken from the official script so that all five metrics read alike:
//! spans are compared as **sets** per document (a span annotated twice counts once); precision
//! with no predictions, recall with no gold spans and F1 with `precision + recall = 0` are all
//! `0.0` (never NaN), so scoring an empty gold corpus against an empty prediction gives 0, not 1.
//! Micro scores pool the counts of all documents; the macro F1 is the unweighted mean of the
//! per-label F1 over every label that occurs in gold or prediction (has any TP, FP or FN).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use corpus::{Document, Span};

mod entity;
mod meddocan;
mod pyalnum;
mod render;
mod token;

#[cfg(test)]
mod tests;

pub use render::render_table;

/// True positives, false positives and false negatives of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

/// Precision, recall and F1 with the counts they come from.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Scores {
    /// Computed exactly as the official script does (same float operations, so the same bits):
    /// `P = tp / (tp + fp)`, `R = tp / (tp + fn)`, `F1 = 2 * ((P * R) / (P + R))`, each `0.0`
    /// where its denominator is zero.
    pub fn from_counts(c: Counts) -> Scores {
        let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
        let precision = ratio(c.tp, c.tp + c.fp);
        let recall = ratio(c.tp, c.tp + c.fn_);
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * ((precision * recall) / (precision + recall)) };
        Scores { precision, recall, f1, tp: c.tp, fp: c.fp, fn_: c.fn_ }
    }

    pub fn counts(&self) -> Counts {
        Counts { tp: self.tp, fp: self.fp, fn_: self.fn_ }
    }
}

/// One metric: pooled (micro) scores, the macro F1 and the scores of each label.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricReport {
    pub micro: Scores,
    /// Mean of `per_label[*].f1`; where a metric has no labels (`span_merged`) it is a one-class
    /// problem and the macro F1 equals the micro F1.
    pub macro_f1: f64,
    pub per_label: BTreeMap<String, Scores>,
}

/// The result of [`evaluate`]; `serde_json::to_value` gives the keys `documents`,
/// `missing_predictions`, `unexpected_predictions` and one object per metric, each
/// `{"micro": {precision, recall, f1, tp, fp, fn}, "macro_f1", "per_label": {LABEL: {...}}}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Number of gold documents scored (all of them, predicted or not).
    pub documents: usize,
    /// Gold document ids without a prediction document, sorted; scored as empty predictions.
    pub missing_predictions: Vec<String>,
    /// Prediction document ids without a gold document, sorted; not scored.
    pub unexpected_predictions: Vec<String>,
    /// Exact `(label, start, end)`: MEDDOCAN subtrack 1.
    pub entity_strict: MetricReport,
    /// Exact `(start, end)`, label ignored: MEDDOCAN subtrack 2 strict. `per_label` files each
    /// span position under one label: hits and misses under the gold label, false alarms under
    /// the predicted label (the alphabetically first where several spans share the position), so
    /// the labels' counts add up to the micro counts; read it as "span detection by category".
    pub span_strict: MetricReport,
    /// MEDDOCAN subtrack 2 merged, as the official script computes it. `per_label` is empty: the
    /// merged spans have no label.
    ///
    /// Per document, each side's spans are sorted by `(start, end)` and folded: a span joins the
    /// previous (merged) one when the text between them has no character that Python's
    /// `str.isalnum` accepts. TP = the set `(gold ∩ pred) ∪ (gold_merged ∩ pred_merged)` of
    /// positions; FP and FN are the strict false alarms and misses minus every span lying inside
    /// a TP span. Quirks kept on purpose, because the official numbers depend on them:
    /// * TP counts merged spans on top of strict ones, so gold against itself has more TP than
    ///   gold spans (5,942 for the 5,661 spans of the MEDDOCAN test set), with P = R = 1.
    /// * Touching and overlapping spans always merge (the text between is empty), and a span
    ///   nested in the previous one *shortens* it: `(0, 10)` then `(2, 5)` merge to `(0, 5)`.
    /// * A predicted span inside any correct span (strict or merged) is never a false alarm.
    pub span_merged: MetricReport,
    /// Word tokens labelled alike; see the `token` rules on [`evaluate`].
    pub token: MetricReport,
    /// Same label and overlapping, one-to-one; see [`evaluate`].
    pub entity_overlap: MetricReport,
}

impl Report {
    /// The metrics in report order, with their JSON names.
    pub fn metrics(&self) -> [(&'static str, &MetricReport); 5] {
        [
            ("entity_strict", &self.entity_strict),
            ("span_strict", &self.span_strict),
            ("span_merged", &self.span_merged),
            ("token", &self.token),
            ("entity_overlap", &self.entity_overlap),
        ]
    }
}

/// Why documents could not be scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// Two gold documents share an id.
    DuplicateGoldId(String),
    /// Two prediction documents share an id, so it is unclear which one to score.
    DuplicatePredictionId(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::DuplicateGoldId(id) => write!(f, "two gold documents share the id {id:?}"),
            EvalError::DuplicatePredictionId(id) => write!(f, "two prediction documents share the id {id:?}"),
        }
    }
}

impl std::error::Error for EvalError {}

/// Scores `pred` against `gold`, matching documents by id. Only the gold text is read.
///
/// Rules beyond the MEDDOCAN ones (see the crate documentation for those and for missing and
/// unexpected documents):
///
/// * **token**: the gold text is cut into word tokens with [`corpus::tokenize()`]. A token takes the
///   label of a span that contains it entirely (`span.start <= token.start && token.end <=
///   span.end`), else it is `O`; a token only partly covered by a span is `O` on that side, so a
///   boundary off by a character costs the token it cuts. Where several spans contain a token
///   (overlapping annotations) the shortest wins, then the earliest, then the alphabetically
///   first label. Per token: gold `A` = predicted `A` ≠ `O` is a TP of `A`; otherwise a gold
///   `A` ≠ `O` is a FN of `A` and a predicted `B` ≠ `O` is a FP of `B` (a wrong label costs both).
///   `O` is never scored.
/// * **entity_overlap**: per document and label, gold and predicted spans that share at least one
///   character (or are identical, which matters only for empty spans) are paired one-to-one, as many pairs as possible (maximum bipartite matching).
///   TP = pairs, FP = unpaired predictions, FN = unpaired gold spans. One-to-one keeps
///   `P = TP / (TP + FP)` honest: a gold span predicted as two pieces is one hit and one false
///   alarm, where a "matched if anything overlaps" rule would reward fragmenting. (`span_merged`
///   is the metric that forgives a split at punctuation.)
pub fn evaluate(gold: &[Document], pred: &[Document]) -> Result<Report, EvalError> {
    let mut pred_by_id: HashMap<&str, &Document> = HashMap::with_capacity(pred.len());
    for d in pred {
        if pred_by_id.insert(d.id.as_str(), d).is_some() {
            return Err(EvalError::DuplicatePredictionId(d.id.clone()));
        }
    }
    let mut gold_ids: HashMap<&str, ()> = HashMap::with_capacity(gold.len());
    for d in gold {
        if gold_ids.insert(d.id.as_str(), ()).is_some() {
            return Err(EvalError::DuplicateGoldId(d.id.clone()));
        }
    }

    let mut entity_strict = Tally::default();
    let mut span_strict = Tally::default();
    let mut span_merged = Tally::default();
    let mut token = Tally::default();
    let mut entity_overlap = Tally::default();
    let mut missing = Vec::new();

    for g in gold {
        let pred_spans: &[Span] = match pred_by_id.get(g.id.as_str()) {
            Some(p) => &p.spans,
            None => {
                missing.push(g.id.clone());
                &[]
            }
        };
        let chars: Vec<char> = g.text.chars().collect();
        entity::strict(&g.spans, pred_spans, &mut entity_strict);
        entity::overlap(&g.spans, pred_spans, &mut entity_overlap);
        meddocan::span_strict(&g.spans, pred_spans, &mut span_strict);
        span_merged.add_unlabelled(meddocan::span_merged(&chars, &g.spans, pred_spans));
        token::score(&corpus::tokenize(&g.text), &g.spans, pred_spans, &mut token);
    }

    let mut unexpected: Vec<String> =
        pred.iter().filter(|p| !gold_ids.contains_key(p.id.as_str())).map(|p| p.id.clone()).collect();
    missing.sort();
    unexpected.sort();

    Ok(Report {
        documents: gold.len(),
        missing_predictions: missing,
        unexpected_predictions: unexpected,
        entity_strict: entity_strict.finish(),
        span_strict: span_strict.finish(),
        span_merged: span_merged.finish(),
        token: token.finish(),
        entity_overlap: entity_overlap.finish(),
    })
}

/// Counts of one metric while documents are scored.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    micro: Counts,
    per_label: BTreeMap<String, Counts>,
}

impl Tally {
    fn label(&mut self, label: &str) -> &mut Counts {
        if !self.per_label.contains_key(label) {
            self.per_label.insert(label.to_owned(), Counts::default());
        }
        self.per_label.get_mut(label).expect("just inserted")
    }
    pub(crate) fn tp(&mut self, label: &str) {
        self.micro.tp += 1;
        self.label(label).tp += 1;
    }
    pub(crate) fn fp(&mut self, label: &str) {
        self.micro.fp += 1;
        self.label(label).fp += 1;
    }
    pub(crate) fn fn_(&mut self, label: &str) {
        self.micro.fn_ += 1;
        self.label(label).fn_ += 1;
    }
    pub(crate) fn add(&mut self, label: &str, c: Counts) {
        self.micro += c;
        *self.label(label) += c;
    }
    /// Counts that belong to no label (`span_merged`).
    pub(crate) fn add_unlabelled(&mut self, c: Counts) {
        self.micro += c;
    }

    fn finish(self) -> MetricReport {
        let micro = Scores::from_counts(self.micro);
        let per_label: BTreeMap<String, Scores> =
            self.per_label.into_iter().map(|(l, c)| (l, Scores::from_counts(c))).collect();
        let macro_f1 = if per_label.is_empty() {
            micro.f1
        } else {
            per_label.values().map(|s| s.f1).sum::<f64>() / per_label.len() as f64
        };
        MetricReport { micro, macro_f1, per_label }
    }
}
