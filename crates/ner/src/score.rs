//! A small scorer for model selection and the benchmark: token-level and entity-strict micro F1
//! with per-label figures. A stop-gap until the project's `eval` crate is wired in here; it
//! follows the same definitions (tokens by `corpus::tokenize`; a token belongs to a span when
//! they overlap; strict = same start, end and label).

use std::collections::{BTreeMap, HashSet};

use corpus::Document;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Prf {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    fn finish(mut self) -> Self {
        let p = if self.tp + self.fp == 0 { 0.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 };
        let r = if self.tp + self.fn_ == 0 { 0.0 } else { self.tp as f64 / (self.tp + self.fn_) as f64 };
        self.precision = p;
        self.recall = r;
        self.f1 = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
        self
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Level {
    pub micro: Prf,
    pub per_label: BTreeMap<String, Prf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub token: Level,
    pub entity_strict: Level,
}

fn token_labels(doc: &Document, tokens: &[corpus::Token]) -> Vec<Option<String>> {
    let mut out = vec![None; tokens.len()];
    for s in &doc.spans {
        for (i, t) in tokens.iter().enumerate() {
            if t.start < s.end && s.start < t.end && out[i].is_none() {
                out[i] = Some(s.label.clone());
            }
        }
    }
    out
}

fn add(map: &mut BTreeMap<String, Prf>, label: &str, f: impl Fn(&mut Prf)) {
    f(map.entry(label.to_string()).or_default());
}

/// Scores `pred` against `gold`, matched by position (same documents in the same order).
pub fn score(gold: &[Document], pred: &[Document]) -> Scores {
    assert_eq!(gold.len(), pred.len(), "gold and predicted corpora differ in size");
    let (mut tok, mut ent) = (BTreeMap::new(), BTreeMap::new());
    for (g, p) in gold.iter().zip(pred) {
        let tokens = corpus::tokenize(&g.text);
        let (gl, pl) = (token_labels(g, &tokens), token_labels(p, &tokens));
        for (a, b) in gl.iter().zip(&pl) {
            match (a, b) {
                (Some(a), Some(b)) if a == b => add(&mut tok, a, |x| x.tp += 1),
                _ => {
                    if let Some(a) = a {
                        add(&mut tok, a, |x| x.fn_ += 1);
                    }
                    if let Some(b) = b {
                        add(&mut tok, b, |x| x.fp += 1);
                    }
                }
            }
        }
        let gs: HashSet<_> = g.spans.iter().collect();
        let ps: HashSet<_> = p.spans.iter().collect();
        for s in &g.spans {
            if ps.contains(s) {
                add(&mut ent, &s.label, |x| x.tp += 1);
            } else {
                add(&mut ent, &s.label, |x| x.fn_ += 1);
            }
        }
        for s in &p.spans {
            if !gs.contains(s) {
                add(&mut ent, &s.label, |x| x.fp += 1);
            }
        }
    }
    let level = |m: BTreeMap<String, Prf>| {
        let mut micro = Prf::default();
        for v in m.values() {
            micro.tp += v.tp;
            micro.fp += v.fp;
            micro.fn_ += v.fn_;
        }
        Level { micro: micro.finish(), per_label: m.into_iter().map(|(k, v)| (k, v.finish())).collect() }
    };
    Scores { token: level(tok), entity_strict: level(ent) }
}
