//! Span-boundary reranking: a second look at where each predicted entity starts and ends.
//!
//! A token tagger decides boundaries one word at a time; about 40% of its entity-strict errors on
//! MEDDOCAN are entities it found with an edge a word or two off (`Agosto del 2003` for `30 de
//! Agosto del 2003`, a street that keeps the postcode after it, a name that takes in the title
//! before it). For every predicted entity, this model scores the spans whose start and end lie
//! within `reach` words of the predicted ones (never crossing into a neighbouring entity) with a
//! linear model over the words at and around both edges and the words each move adds or drops,
//! and moves the entity where it scores highest, if that beats where it is. Every feature comes
//! twice, with the entity's label and without it, so that what one label teaches about edges
//! (a final `.`, a title, a comma) carries to the others.
//!
//! It learns from a tagger's predictions on documents that tagger did not see (out-of-fold), so
//! that the errors it learns to mend are those the tagger makes on new text.

use anyhow::{bail, ensure, Context, Result};
use corpus::{tokenize, Document, Span, Token};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::shape::{fnv, run_shape};

/// The file a model directory holds a boundary model in.
pub const BOUNDARY_FILE: &str = "boundaries.json";

/// The version of [`features`] this build computes. A model's weights are keyed by feature
/// hashes, so a model learned on other features would silently move nothing: such a model is
/// refused at load. Version 1 is the first saved (models saved before the field, 0, are refused).
pub const BOUNDARY_FEATURES: u32 = 1;

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoundaryConfig {
    /// How many words an edge may move either way.
    pub reach: usize,
    /// Passes over the training entities (averaged perceptron).
    pub epochs: usize,
    /// Seeds the order of the training entities in each pass.
    pub seed: u64,
}

impl Default for BoundaryConfig {
    fn default() -> Self {
        BoundaryConfig { reach: 2, epochs: 10, seed: 42 }
    }
}

/// What training saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundarySummary {
    /// Predicted entities with a gold entity among their candidate spans (the training examples).
    pub examples: usize,
    /// Of those, the ones whose gold span is not the predicted one (what it learns to mend).
    pub misplaced: usize,
    /// Predicted entities of the training documents with no gold entity among their candidates
    /// (spurious, mislabelled, or off by more than `reach` words): not learned from.
    pub unmatched: usize,
    pub seconds: f64,
}

/// A trained boundary model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BoundaryModel {
    /// [`BOUNDARY_FEATURES`] when learned.
    #[serde(default)]
    features: u32,
    reach: usize,
    /// Feature hash → averaged weight; saved in key order (one seed, one file).
    #[serde(serialize_with = "crate::in_key_order")]
    weights: HashMap<u64, f32>,
}

/// One predicted entity's candidate spans (in words `[start, end)`), the original among them.
struct Candidates {
    spans: Vec<(usize, usize)>,
    features: Vec<Vec<u64>>,
    original: usize,
}

/// The words of a document and what the features read of them.
struct Words {
    tokens: Vec<Token>,
    lower: Vec<String>,
    shapes: Vec<String>,
    /// `gaps[i]`: the kind of text between token `i − 1` and token `i` (`gaps[0]`: the start of
    /// the document, `gaps[n]`: its end).
    gaps: Vec<&'static str>,
}

impl Words {
    fn new(text: &str) -> Words {
        let chars: Vec<char> = text.chars().collect();
        let tokens = tokenize(text);
        let words: Vec<String> = tokens.iter().map(|t| chars[t.start..t.end].iter().collect()).collect();
        let lower = words.iter().map(|w| w.to_lowercase()).collect();
        let shapes = words.iter().map(|w| edge_shape(w)).collect();
        let mut gaps = vec!["nl"];
        for w in tokens.windows(2) {
            let between = &chars[w[0].end..w[1].start];
            gaps.push(if between.contains(&'\n') {
                "nl"
            } else if between.is_empty() {
                "none"
            } else {
                "sp"
            });
        }
        gaps.push("nl");
        Words { tokens, lower, shapes, gaps }
    }

    fn lower(&self, i: isize) -> &str {
        if i < 0 {
            "<s>"
        } else {
            self.lower.get(i as usize).map_or("</s>", String::as_str)
        }
    }

    fn shape(&self, i: isize) -> &str {
        if i < 0 {
            "<s>"
        } else {
            self.shapes.get(i as usize).map_or("</s>", String::as_str)
        }
    }
}

/// `Xxxx` → `Xxx`, `12/03/2017` → `dd/dd/dd`: the shape with runs cut to two.
fn edge_shape(w: &str) -> String {
    run_shape(w, 2)
}

/// The features of the span `[s2, e2)` with `label`, for an entity predicted at `[s, e)`.
fn features(w: &Words, label: &str, (s, e): (usize, usize), (s2, e2): (usize, usize)) -> Vec<u64> {
    let mut parts: Vec<[String; 2]> = Vec::with_capacity(32);
    let mut push = |name: &str, value: String| parts.push([name.to_string(), value]);
    push("shift", format!("{}|{}", s2 as isize - s as isize, e2 as isize - e as isize));
    for i in s2..s.min(e2) {
        push("addL", w.lower[i].clone());
        push("addLsh", w.shapes[i].clone());
    }
    for i in s..s2.min(e) {
        push("remL", w.lower[i].clone());
        push("remLsh", w.shapes[i].clone());
    }
    for i in e.max(s2)..e2 {
        push("addR", w.lower[i].clone());
        push("addRsh", w.shapes[i].clone());
    }
    for i in e2.max(s)..e {
        push("remR", w.lower[i].clone());
        push("remRsh", w.shapes[i].clone());
    }
    let (first, last) = (s2 as isize, e2 as isize - 1);
    let (prev, next) = (first - 1, last + 1);
    push("first", w.lower(first).into());
    push("last", w.lower(last).into());
    push("prev", w.lower(prev).into());
    push("next", w.lower(next).into());
    push("firstsh", w.shape(first).into());
    push("lastsh", w.shape(last).into());
    push("prevsh", w.shape(prev).into());
    push("nextsh", w.shape(next).into());
    push("prev_first", format!("{}|{}", w.lower(prev), w.lower(first)));
    push("last_next", format!("{}|{}", w.lower(last), w.lower(next)));
    push("prevsh_firstsh", format!("{}|{}", w.shape(prev), w.shape(first)));
    push("lastsh_nextsh", format!("{}|{}", w.shape(last), w.shape(next)));
    push("len", (e2 - s2).min(8).to_string());
    push("gapL", w.gaps[s2].into());
    push("gapR", w.gaps[e2].into());
    if (s2 + 1..e2).any(|i| w.gaps[i] == "nl") {
        push("inner_nl", String::new());
    }
    let mut out = Vec::with_capacity(parts.len() * 2);
    for [name, value] in &parts {
        out.push(fnv(&[label, name, value]));
        out.push(fnv(&["*", name, value]));
    }
    out
}

/// The candidate spans of a predicted entity that starts and ends on word edges and lies within
/// the words `[lo, hi)` its neighbours leave it ([`room`]); `None` for any other entity, which
/// stays where it is. Word tokens are sorted and do not overlap, so edges are found by binary search.
fn candidates(w: &Words, reach: usize, span: &Span, lo: usize, hi: usize) -> Option<Candidates> {
    let s = w.tokens.binary_search_by_key(&span.start, |t| t.start).ok()?;
    let e = w.tokens.binary_search_by_key(&span.end, |t| t.end).ok()? + 1;
    if s < lo || e > hi || s >= e {
        return None;
    }
    let r = reach as isize;
    let mut spans = Vec::new();
    let mut features_of = Vec::new();
    let mut original = 0;
    for a in -r..=r {
        for b in -r..=r {
            let (s2, e2) = (s as isize + a, e as isize + b);
            if s2 < lo as isize || e2 > hi as isize || s2 >= e2 {
                continue;
            }
            let (s2, e2) = (s2 as usize, e2 as usize);
            if (s2, e2) == (s, e) {
                original = spans.len();
            }
            spans.push((s2, e2));
            features_of.push(features(w, &span.label, (s, e), (s2, e2)));
        }
    }
    Some(Candidates { spans, features: features_of, original })
}

/// The words `[lo, hi)` an entity between its neighbours may take: after the previous entity's
/// end, before the next one's start.
fn room(w: &Words, prev_end: Option<usize>, next_start: Option<usize>) -> (usize, usize) {
    let lo = prev_end.map_or(0, |pe| w.tokens.partition_point(|t| t.start < pe));
    let hi = next_start.map_or(w.tokens.len(), |ns| w.tokens.partition_point(|t| t.end <= ns));
    (lo, hi)
}

fn score(weights: &HashMap<u64, f32>, feats: &[u64]) -> f32 {
    feats.iter().filter_map(|f| weights.get(f)).sum()
}

/// Trains a boundary model on `predicted`: a tagger's out-of-fold predictions of the documents
/// of `gold` (matched by id).
pub fn train_boundaries(cfg: &BoundaryConfig, gold: &[Document], predicted: &[Document]) -> Result<(BoundaryModel, BoundarySummary)> {
    ensure!(cfg.epochs > 0, "boundary epochs must be at least 1");
    let t0 = std::time::Instant::now();
    let gold_of: HashMap<&str, &Document> = gold.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut summary = BoundarySummary::default();
    // (candidates, index of the gold span among them)
    let mut examples: Vec<(Candidates, usize)> = Vec::new();
    for p in predicted {
        let Some(g) = gold_of.get(p.id.as_str()) else {
            bail!("predicted document {:?} has no gold document to learn boundaries from", p.id);
        };
        ensure!(g.text == p.text, "document {:?}: the predicted and gold texts differ", p.id);
        let w = Words::new(&p.text);
        let mut spans = p.spans.clone();
        spans.sort_by_key(|s| (s.start, s.end));
        let gold_spans: HashSet<(usize, usize, &str)> = g.spans.iter().map(|s| (s.start, s.end, s.label.as_str())).collect();
        for (k, span) in spans.iter().enumerate() {
            let (lo, hi) = room(&w, k.checked_sub(1).map(|j| spans[j].end), spans.get(k + 1).map(|n| n.start));
            let Some(c) = candidates(&w, cfg.reach, span, lo, hi) else {
                summary.unmatched += 1;
                continue;
            };
            let target = c.spans.iter().position(|&(s2, e2)| gold_spans.contains(&(w.tokens[s2].start, w.tokens[e2 - 1].end, span.label.as_str())));
            match target {
                Some(t) => {
                    summary.examples += 1;
                    summary.misplaced += usize::from(t != c.original);
                    examples.push((c, t));
                }
                None => summary.unmatched += 1,
            }
        }
    }
    // Averaged perceptron: `weights` are the current weights, `sums` the step-weighted updates,
    // so that the average over all steps is weights − sums / steps.
    let mut weights: HashMap<u64, f32> = HashMap::new();
    let mut sums: HashMap<u64, f64> = HashMap::new();
    let mut step: u64 = 1;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    for _ in 0..cfg.epochs {
        order.shuffle(&mut rng);
        for &i in &order {
            let (c, target) = &examples[i];
            let scores: Vec<f32> = c.features.iter().map(|f| score(&weights, f)).collect();
            // The best candidate; on a tie the original (not moving is the safe choice).
            let best = (0..scores.len())
                .max_by(|&x, &y| scores[x].total_cmp(&scores[y]).then((x == c.original).cmp(&(y == c.original))).then(y.cmp(&x)))
                .expect("an entity's own span is among its candidates");
            if best != *target {
                for (f, delta) in c.features[*target].iter().map(|f| (f, 1.0)).chain(c.features[best].iter().map(|f| (f, -1.0))) {
                    *weights.entry(*f).or_default() += delta;
                    *sums.entry(*f).or_default() += delta as f64 * step as f64;
                }
            }
            step += 1;
        }
    }
    let averaged: HashMap<u64, f32> = weights
        .iter()
        .map(|(f, w)| (*f, (*w as f64 - sums[f] / step as f64) as f32))
        .filter(|(_, w)| *w != 0.0)
        .collect();
    summary.seconds = t0.elapsed().as_secs_f64();
    Ok((BoundaryModel { features: BOUNDARY_FEATURES, reach: cfg.reach, weights: averaged }, summary))
}

impl BoundaryModel {
    /// `doc`'s predicted entities, each moved to its best-scoring candidate span when that scores
    /// higher than where it is; sorted by start. Entities that do not start and end on word
    /// edges, or that overlap another, stay where they are.
    pub fn apply(&self, doc: &Document) -> Vec<Span> {
        let w = Words::new(&doc.text);
        let mut spans = doc.spans.clone();
        spans.sort_by_key(|s| (s.start, s.end));
        for k in 0..spans.len() {
            // The left neighbour as already placed; the right one as predicted.
            let (lo, hi) = room(&w, k.checked_sub(1).map(|j| spans[j].end), spans.get(k + 1).map(|n| n.start));
            let Some(c) = candidates(&w, self.reach, &spans[k], lo, hi) else {
                continue;
            };
            let scores: Vec<f32> = c.features.iter().map(|f| score(&self.weights, f)).collect();
            let best = (0..scores.len()).max_by(|&x, &y| scores[x].total_cmp(&scores[y]).then(y.cmp(&x))).expect("candidates");
            if scores[best] > scores[c.original] {
                let (s2, e2) = c.spans[best];
                spans[k].start = w.tokens[s2].start;
                spans[k].end = w.tokens[e2 - 1].end;
            }
        }
        spans
    }

    /// [`BoundaryModel::apply`] to every document.
    pub fn apply_all(&self, docs: &[Document]) -> Vec<Document> {
        docs.iter().map(|d| Document { id: d.id.clone(), text: d.text.clone(), spans: self.apply(d) }).collect()
    }

    /// How many words an edge may move either way.
    pub fn reach(&self) -> usize {
        self.reach
    }

    /// Writes `dir/boundaries.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        fsutil::atomic_write(&dir.join(BOUNDARY_FILE), serde_json::to_string(self)?.as_bytes()).map_err(anyhow::Error::msg)
    }

    /// Reads `dir/boundaries.json`, if `dir` has one.
    pub fn load_if_present(dir: &Path) -> Result<Option<Self>> {
        let p = dir.join(BOUNDARY_FILE);
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let model: Self = serde_json::from_str(&text).with_context(|| p.display().to_string())?;
        model.check_features(&p)?;
        Ok(Some(model))
    }

    /// Refuses a model learned on other features than this build computes (read from `path`).
    pub fn check_features(&self, path: &Path) -> Result<()> {
        ensure!(
            self.features == BOUNDARY_FEATURES,
            "{}: its boundary model was learned on boundary features version {}, but this build computes version \
             {BOUNDARY_FEATURES}; predict with the synthdeid version that trained it, or learn it again (train-perceptron --boundaries, or ner train --set decoding.boundaries=true)",
            path.display(),
            self.features
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONTHS: [&str; 6] = ["enero", "marzo", "abril", "junio", "agosto", "octubre"];
    const NAMES: [&str; 5] = ["Ana Gil", "Luis Vera", "Marta Sanz", "Pablo Ruiz", "Elena Mora"];
    const STREETS: [&str; 4] = ["Calle Mayor", "Avda. del Mar", "Calle Luna", "Paseo Real"];

    /// A document with a date, a name and a street, the gold spans, and a tagger's spans that
    /// drop the date's day ("agosto de 2003" for "30 de agosto de 2003") and take the full stop
    /// after the street, and get the name right.
    fn doc(i: usize) -> (Document, Document) {
        let (day, month, year) = (1 + (i * 7) % 28, MONTHS[i % MONTHS.len()], 1990 + (i * 3) % 30);
        let (name, street, number) = (NAMES[i % NAMES.len()], STREETS[(i / 2) % STREETS.len()], 2 + i % 40);
        let date = format!("{day} de {month} de {year}");
        let address = format!("{street} {number}");
        let text = format!("Ingresó el {date} por dolor.\nLe atendió {name} en {address}. Alta sin incidencias.");
        let at = |s: &str| text.find(s).map(|b| text[..b].chars().count()).expect("in the text");
        let len = |s: &str| s.chars().count();
        let (d, n, a) = (at(&date), at(name), at(&address));
        let gold = vec![
            Span::new(d, d + len(&date), "FECHAS"),
            Span::new(n, n + len(name), "NOMBRE_PERSONAL_SANITARIO"),
            Span::new(a, a + len(&address), "CALLE"),
        ];
        let day_len = len(&format!("{day} de "));
        let predicted = vec![
            Span::new(d + day_len, d + len(&date), "FECHAS"),
            Span::new(n, n + len(name), "NOMBRE_PERSONAL_SANITARIO"),
            Span::new(a, a + len(&address) + 1, "CALLE"),
        ];
        let id = format!("doc{i}");
        (Document { id: id.clone(), text: text.clone(), spans: gold }, Document { id, text, spans: predicted })
    }

    fn corpus(range: std::ops::Range<usize>) -> (Vec<Document>, Vec<Document>) {
        range.map(doc).unzip()
    }

    #[test]
    fn learns_to_move_misplaced_edges_and_leaves_right_ones() {
        let (gold, predicted) = corpus(0..40);
        let (model, summary) = train_boundaries(&BoundaryConfig::default(), &gold, &predicted).unwrap();
        assert_eq!(summary.examples, 120, "{summary:?}");
        assert_eq!(summary.misplaced, 80, "{summary:?}");
        assert_eq!(summary.unmatched, 0, "{summary:?}");
        // Documents it did not learn from: every edge ends where gold has it.
        let (gold, predicted) = corpus(40..60);
        for (g, p) in gold.iter().zip(&predicted) {
            assert_ne!(g.spans, p.spans);
            assert_eq!(model.apply(p), g.spans, "{}", g.id);
        }
    }

    #[test]
    fn an_entity_never_moves_into_its_neighbour_or_off_word_edges() {
        let (gold, predicted) = corpus(0..40);
        let (model, _) = train_boundaries(&BoundaryConfig::default(), &gold, &predicted).unwrap();
        let (_, p) = doc(41);
        // The name's end is moved inside a word: it is left where it is.
        let mut odd = p.clone();
        odd.spans[1].end -= 1;
        assert_eq!(model.apply(&odd)[1], odd.spans[1]);
        // A neighbour right before the date's missing day: the date may not take it.
        let mut crowded = p.clone();
        let day_start = gold_of(41).spans[0].start;
        let day_end = day_start + p.text.chars().skip(day_start).take_while(|c| c.is_ascii_digit()).count();
        crowded.spans.push(Span::new(day_start, day_end, "EDAD_SUJETO_ASISTENCIA"));
        let moved = model.apply(&crowded);
        assert!(moved.windows(2).all(|w| w[0].end <= w[1].start), "{moved:?}");
        assert!(moved.iter().any(|s| s.label == "FECHAS" && s.start > day_end), "{moved:?}");
    }

    fn gold_of(i: usize) -> Document {
        doc(i).0
    }

    #[test]
    fn same_seed_same_model_and_it_round_trips() {
        let (gold, predicted) = corpus(0..30);
        let cfg = BoundaryConfig { epochs: 3, ..Default::default() };
        let (a, _) = train_boundaries(&cfg, &gold, &predicted).unwrap();
        let (b, _) = train_boundaries(&cfg, &gold, &predicted).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        let dir = std::env::temp_dir().join(format!("synthdeid-boundaries-{}", std::process::id()));
        a.save(&dir).unwrap();
        let loaded = BoundaryModel::load_if_present(&dir).unwrap().expect("saved");
        let (_, p) = doc(50);
        assert_eq!(loaded.apply(&p), a.apply(&p));
        // A model learned on other features is refused, not applied with weights that match nothing.
        let old = serde_json::to_string(&a).unwrap().replacen("\"features\":1", "\"features\":0", 1);
        std::fs::write(dir.join(BOUNDARY_FILE), old).unwrap();
        let err = BoundaryModel::load_if_present(&dir).unwrap_err().to_string();
        assert!(err.contains("version 0") && err.contains(BOUNDARY_FILE), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(BoundaryModel::load_if_present(&dir).unwrap().is_none());
    }

    #[test]
    fn a_prediction_without_gold_is_an_error_naming_it() {
        let (gold, mut predicted) = corpus(0..3);
        predicted[1].id = "stray".into();
        let err = train_boundaries(&BoundaryConfig::default(), &gold, &predicted).unwrap_err().to_string();
        assert!(err.contains("stray"), "{err}");
    }

    #[test]
    fn edge_shapes_cut_runs_to_two() {
        assert_eq!(edge_shape("Xxxx"), "Xxx");
        assert_eq!(edge_shape("12/03/2017"), "dd/dd/dd");
        assert_eq!(edge_shape("3ºC"), "dxX");
    }
}
