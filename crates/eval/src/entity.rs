//! Label-aware span metrics: exact match (MEDDOCAN subtrack 1) and one-to-one overlap.

use std::collections::{BTreeMap, BTreeSet};

use corpus::Span;

use crate::{Counts, Tally};

/// Exact `(label, start, end)` matches, as sets per document like the official script
/// (`set(gold) & set(sys)`): hits under their label, false alarms under the predicted label,
/// misses under the gold label.
pub(crate) fn strict(gold: &[Span], pred: &[Span], tally: &mut Tally) {
    fn key(s: &Span) -> (&str, usize, usize) {
        (s.label.as_str(), s.start, s.end)
    }
    let g: BTreeSet<(&str, usize, usize)> = gold.iter().map(key).collect();
    let p: BTreeSet<(&str, usize, usize)> = pred.iter().map(key).collect();
    for x in &g {
        if p.contains(x) {
            tally.tp(x.0);
        } else {
            tally.fn_(x.0);
        }
    }
    for x in p.difference(&g) {
        tally.fp(x.0);
    }
}

/// Same-label spans that overlap, paired one-to-one with as many pairs as possible.
pub(crate) fn overlap(gold: &[Span], pred: &[Span], tally: &mut Tally) {
    type Sides = (BTreeSet<(usize, usize)>, BTreeSet<(usize, usize)>);
    let mut by_label: BTreeMap<&str, Sides> = BTreeMap::new();
    for s in gold {
        by_label.entry(&s.label).or_default().0.insert((s.start, s.end));
    }
    for s in pred {
        by_label.entry(&s.label).or_default().1.insert((s.start, s.end));
    }
    for (label, (g, p)) in by_label {
        let g: Vec<(usize, usize)> = g.into_iter().collect();
        let p: Vec<(usize, usize)> = p.into_iter().collect();
        let pairs = max_overlap_matching(&g, &p);
        tally.add(label, Counts { tp: pairs, fp: p.len() - pairs, fn_: g.len() - pairs });
    }
}

/// Sharing a character, or being the same span: an empty span (which shares nothing) still
/// matches itself, so that this metric is never stricter than `entity_strict`.
fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    (a.0 < b.1 && b.0 < a.1) || a == b
}

/// Size of a maximum matching between `gold` and `pred` where an edge joins overlapping spans
/// (Kuhn's augmenting paths). A greedy left-to-right pairing is not always maximal once
/// predictions overlap each other, and the sets here are one label of one document, so the
/// simple exact algorithm is cheap.
pub(crate) fn max_overlap_matching(gold: &[(usize, usize)], pred: &[(usize, usize)]) -> usize {
    let adj: Vec<Vec<usize>> =
        gold.iter().map(|&g| (0..pred.len()).filter(|&j| overlaps(g, pred[j])).collect()).collect();
    let mut owner: Vec<Option<usize>> = vec![None; pred.len()];
    let mut pairs = 0;
    for i in 0..gold.len() {
        let mut seen = vec![false; pred.len()];
        if augment(i, &adj, &mut owner, &mut seen) {
            pairs += 1;
        }
    }
    pairs
}

fn augment(i: usize, adj: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &j in &adj[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        if owner[j].is_none_or(|k| augment(k, adj, owner, seen)) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_maximum_where_greedy_is_not() {
        // Greedy would pair gold 0 with pred (0, 10) and leave gold 1 alone.
        let gold = [(0, 3), (5, 8)];
        let pred = [(0, 10), (1, 2)];
        assert_eq!(max_overlap_matching(&gold, &pred), 2);
        assert_eq!(max_overlap_matching(&gold, &[(3, 5)]), 0, "touching is not overlapping");
        assert_eq!(max_overlap_matching(&[(0, 10)], &[(0, 2), (4, 6)]), 1, "one-to-one");
        assert_eq!(max_overlap_matching(&[], &[(0, 2)]), 0);
        assert_eq!(max_overlap_matching(&[(4, 4)], &[(4, 4), (3, 5)]), 1, "an empty span matches itself only");
    }
}
