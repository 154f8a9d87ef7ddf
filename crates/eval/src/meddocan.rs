//! MEDDOCAN subtrack 2: span detection without labels, strict and merged, reproducing
//! `EvaluateSubtrack2` and `EvaluateSubtrack2merged` of the official script (`classes.py` of
//! PlanTL-GOB-ES/MEDDOCAN-Evaluation-Script).
//!
//! The merged metric, step by step as the script does it, per document:
//!
//! 1. `strict` = the set of `(start, end)` of the spans.
//! 2. `merged` = the spans sorted by `(start, end)` (duplicates kept), folded left to right: the
//!    next span `y` joins the last merged span `x` into `(x.start, y.end)` when the text
//!    `text[x.end..y.start]` holds no alphanumeric character (Python's `str.isalnum`). That text
//!    is empty, hence "all non-alphanumeric", when the spans touch **or overlap**, so overlapping
//!    or nested spans are always joined, and a nested span *shortens* its container: `(0, 10)`
//!    then `(2, 5)` become `(0, 5)`. Slices past the end of the text are empty too.
//! 3. TP = `(gold_strict ∩ sys_strict) ∪ (gold_merged ∩ sys_merged)`, counted as a set of
//!    positions. So gold scored against itself counts every strict span **and** every merged span
//!    that is not also a strict one: TP exceeds the number of gold spans (5,942 for 5,661 spans
//!    on the MEDDOCAN test set), while P = R = 1.
//! 4. FP = `sys_strict − gold_strict` and FN = `gold_strict − sys_strict`, each minus every span
//!    contained in (`start >= m.start && end <= m.end`) some TP span `m`. Containment in any TP
//!    span, strict ones included, means a predicted span nested inside a correct one is never a
//!    false alarm.

use std::collections::{BTreeMap, BTreeSet};

use corpus::Span;

use crate::pyalnum::is_py_alnum;
use crate::{Counts, Tally};

type Pos = (usize, usize);

/// Strict span match (subtrack 2 strict). Counts are those of the official script; each position
/// is filed under one label for `per_label` (see `Report::span_strict`).
pub(crate) fn span_strict(gold: &[Span], pred: &[Span], tally: &mut Tally) {
    let g = positions_with_label(gold);
    let p = positions_with_label(pred);
    for (pos, label) in &g {
        if p.contains_key(pos) {
            tally.tp(label);
        } else {
            tally.fn_(label);
        }
    }
    for (pos, label) in &p {
        if !g.contains_key(pos) {
            tally.fp(label);
        }
    }
}

/// Each distinct `(start, end)` with the alphabetically first label found there.
fn positions_with_label(spans: &[Span]) -> BTreeMap<Pos, &str> {
    let mut out: BTreeMap<Pos, &str> = BTreeMap::new();
    for s in spans {
        let label = out.entry((s.start, s.end)).or_insert(s.label.as_str());
        if s.label.as_str() < *label {
            *label = s.label.as_str();
        }
    }
    out
}

/// Merged span match (subtrack 2 merged) over the characters of the gold text.
pub(crate) fn span_merged(text: &[char], gold: &[Span], pred: &[Span]) -> Counts {
    let gold_strict: BTreeSet<Pos> = gold.iter().map(|s| (s.start, s.end)).collect();
    let pred_strict: BTreeSet<Pos> = pred.iter().map(|s| (s.start, s.end)).collect();
    let gold_merged: BTreeSet<Pos> = merge_spans(text, gold).into_iter().collect();
    let pred_merged: BTreeSet<Pos> = merge_spans(text, pred).into_iter().collect();

    let hits: BTreeSet<Pos> =
        gold_strict.intersection(&pred_strict).chain(gold_merged.intersection(&pred_merged)).copied().collect();
    let inside_hit = |s: &&Pos| hits.iter().any(|m| s.0 >= m.0 && s.1 <= m.1);

    Counts {
        tp: hits.len(),
        fp: pred_strict.difference(&gold_strict).filter(|s| !inside_hit(s)).count(),
        fn_: gold_strict.difference(&pred_strict).filter(|s| !inside_hit(s)).count(),
    }
}

/// `Annotation.add_spans` of the official script: sort, then fold neighbours separated by
/// non-alphanumeric characters only (see the module notes for overlaps).
pub(crate) fn merge_spans(text: &[char], spans: &[Span]) -> Vec<Pos> {
    let mut sorted: Vec<Pos> = spans.iter().map(|s| (s.start, s.end)).collect();
    sorted.sort_unstable();
    let mut merged: Vec<Pos> = Vec::with_capacity(sorted.len());
    for y in sorted {
        match merged.pop() {
            None => merged.push(y),
            Some(x) if all_non_alphanumeric(text, x.1, y.0) => merged.push((x.0, y.1)),
            Some(x) => {
                merged.push(x);
                merged.push(y);
            }
        }
    }
    merged
}

/// `is_all_non_alphanumeric(text[from:to])` with Python's slice semantics: bounds are clipped to
/// the text and a reversed range is empty (and an empty string is "all non-alphanumeric").
fn all_non_alphanumeric(text: &[char], from: usize, to: usize) -> bool {
    let (from, to) = (from.min(text.len()), to.min(text.len()));
    from >= to || text[from..to].iter().all(|&c| !is_py_alnum(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(v: &[(usize, usize)]) -> Vec<Span> {
        v.iter().map(|&(s, e)| Span::new(s, e, "X")).collect()
    }

    #[test]
    fn merging_follows_the_official_fold() {
        let text: Vec<char> = "Juan, Pérez y Ana-López (Madrid).".chars().collect();
        // ", " between Juan and Pérez: joined; " y " holds letters: kept apart; "-" joins.
        assert_eq!(merge_spans(&text, &spans(&[(6, 11), (0, 4), (14, 17), (18, 23)])), [(0, 11), (14, 23)]);
        // Touching and duplicate spans join; a nested span shortens its container.
        assert_eq!(merge_spans(&text, &spans(&[(0, 4), (4, 6)])), [(0, 6)]);
        assert_eq!(merge_spans(&text, &spans(&[(0, 4), (0, 4)])), [(0, 4)]);
        assert_eq!(merge_spans(&text, &spans(&[(0, 11), (2, 4)])), [(0, 4)]);
        // The gap after the text's end is empty: joined.
        assert_eq!(merge_spans(&text, &spans(&[(30, 40), (50, 60)])), [(30, 60)]);
        assert_eq!(merge_spans(&text, &[]), Vec::<Pos>::new());
    }
}
