//! Seeded random corpora scored by the real implementation and by brute-force references that
//! are slow but obviously right (linear scans, no sets, no binary search).

use std::collections::BTreeMap;

use corpus::{Document, Span};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::counts;
use crate::entity::max_overlap_matching;
use crate::{evaluate, Counts, MetricReport};

const WORDS: &[&str] =
    &["Juan", "Pérez", "45", "años", "Madrid", "calle", "12/03/2017", "NHC", "ñandú", "a", "Ó", "x@y.es", "2º", "de"];
const SEPS: &[&str] = &[" ", ", ", "-", "\n", "  ", ". ", "/", " (", ") "];
const LABELS: &[&str] = &["A", "B", "C", "D"];

fn pick<'a>(rng: &mut ChaCha8Rng, v: &[&'a str]) -> &'a str {
    v[rng.random_range(0..v.len())]
}

fn random_text(rng: &mut ChaCha8Rng) -> String {
    let mut t = String::new();
    if rng.random_bool(0.1) {
        t.push('\u{feff}');
    }
    for i in 0..rng.random_range(0..40) {
        if i > 0 {
            t.push_str(pick(rng, SEPS));
        }
        t.push_str(pick(rng, WORDS));
    }
    t
}

fn random_span(rng: &mut ChaCha8Rng, text: &str) -> Span {
    let len = text.chars().count();
    let tokens = corpus::tokenize(text);
    let label = pick(rng, LABELS);
    if !tokens.is_empty() && rng.random_bool(0.7) {
        // Whole tokens, as a tagger would predict.
        let a = rng.random_range(0..tokens.len());
        let b = (a + rng.random_range(0..3)).min(tokens.len() - 1);
        Span::new(tokens[a].start, tokens[b].end, label)
    } else {
        // Anywhere, including cut tokens, empty spans and spans past the end.
        let start = rng.random_range(0..len + 3);
        Span::new(start, start + rng.random_range(0..10), label)
    }
}

fn perturb(rng: &mut ChaCha8Rng, text: &str, gold: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for s in gold {
        match rng.random_range(0..10) {
            0 => {}
            1 => out.push(Span::new(s.start, s.end, pick(rng, LABELS))),
            2 => out.push(Span::new(s.start, s.end + 1, s.label.clone())),
            3 => out.push(Span::new(s.start.saturating_sub(1), s.end, s.label.clone())),
            4 => {
                out.push(s.clone());
                out.push(s.clone());
            }
            _ => out.push(s.clone()),
        }
    }
    for _ in 0..rng.random_range(0..3) {
        out.push(random_span(rng, text));
    }
    out.sort();
    out
}

/// Gold and prediction corpora; a few gold documents go unpredicted and a few predictions have
/// no gold document.
fn random_corpora(rng: &mut ChaCha8Rng, docs: usize) -> (Vec<Document>, Vec<Document>) {
    let (mut gold, mut pred) = (Vec::new(), Vec::new());
    for i in 0..docs {
        let text = random_text(rng);
        let mut g = Document::new(format!("doc{i}"), text.clone());
        g.spans = (0..rng.random_range(0..8)).map(|_| random_span(rng, &text)).collect();
        g.sort_spans();
        if !rng.random_bool(0.05) {
            let mut p = Document::new(g.id.clone(), "");
            p.spans = perturb(rng, &text, &g.spans);
            pred.push(p);
        }
        if rng.random_bool(0.03) {
            let mut p = Document::new(format!("extra{i}"), "");
            p.spans = vec![Span::new(0, 3, "A")];
            pred.push(p);
        }
        gold.push(g);
    }
    (gold, pred)
}

fn pred_spans<'a>(pred: &'a [Document], id: &str) -> &'a [Span] {
    pred.iter().find(|p| p.id == id).map_or(&[], |p| &p.spans)
}

fn dedup(spans: &[Span]) -> Vec<&Span> {
    let mut out: Vec<&Span> = Vec::new();
    for s in spans {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn bump(map: &mut BTreeMap<String, Counts>, label: &str, f: impl Fn(&mut Counts)) {
    f(map.entry(label.to_owned()).or_default());
}

fn reference_entity_strict(gold: &[Document], pred: &[Document]) -> BTreeMap<String, Counts> {
    let mut m = BTreeMap::new();
    for g in gold {
        let gs = dedup(&g.spans);
        let ps = dedup(pred_spans(pred, &g.id));
        for s in &gs {
            if ps.contains(s) {
                bump(&mut m, &s.label, |c| c.tp += 1);
            } else {
                bump(&mut m, &s.label, |c| c.fn_ += 1);
            }
        }
        for s in &ps {
            if !gs.contains(s) {
                bump(&mut m, &s.label, |c| c.fp += 1);
            }
        }
    }
    m
}

fn reference_token_label<'a>(t: &corpus::Token, spans: &'a [Span]) -> Option<&'a str> {
    spans
        .iter()
        .filter(|s| s.start <= t.start && t.end <= s.end)
        .min_by(|a, b| (a.end - a.start, a.start, &a.label).cmp(&(b.end - b.start, b.start, &b.label)))
        .map(|s| s.label.as_str())
}

fn reference_token(gold: &[Document], pred: &[Document]) -> BTreeMap<String, Counts> {
    let mut m = BTreeMap::new();
    for g in gold {
        let ps = pred_spans(pred, &g.id);
        for t in corpus::tokenize(&g.text) {
            let (a, b) = (reference_token_label(&t, &g.spans), reference_token_label(&t, ps));
            if let (Some(a), Some(b)) = (a, b) {
                if a == b {
                    bump(&mut m, a, |c| c.tp += 1);
                    continue;
                }
            }
            if let Some(a) = a {
                bump(&mut m, a, |c| c.fn_ += 1);
            }
            if let Some(b) = b {
                bump(&mut m, b, |c| c.fp += 1);
            }
        }
    }
    m
}

fn assert_matches_reference(name: &str, got: &MetricReport, want: &BTreeMap<String, Counts>) {
    let got_counts: BTreeMap<String, Counts> = got.per_label.iter().map(|(l, s)| (l.clone(), s.counts())).collect();
    assert_eq!(&got_counts, want, "{name} per label");
    let mut total = Counts::default();
    for c in want.values() {
        total += *c;
    }
    assert_eq!(got.micro.counts(), total, "{name} micro");
    let f1 = |c: Counts| if c.tp == 0 { 0.0 } else { 2.0 * c.tp as f64 / (2 * c.tp + c.fp + c.fn_) as f64 };
    assert!((got.micro.f1 - f1(total)).abs() < 1e-12, "{name} micro f1");
    let macro_f1 = want.values().map(|c| f1(*c)).sum::<f64>() / want.len().max(1) as f64;
    assert!((got.macro_f1 - macro_f1).abs() < 1e-12, "{name} macro f1");
}

#[test]
fn entity_strict_and_token_agree_with_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(20190521);
    for round in 0..30 {
        let (gold, pred) = random_corpora(&mut rng, 10);
        let r = evaluate(&gold, &pred).unwrap();
        assert_matches_reference(&format!("entity_strict round {round}"), &r.entity_strict, &reference_entity_strict(&gold, &pred));
        assert_matches_reference(&format!("token round {round}"), &r.token, &reference_token(&gold, &pred));

        // Relations that must hold between the metrics whatever the data. (span_strict may have
        // fewer hits than entity_strict: two labels on one position are one span position.)
        let (es, ss, sm, eo) = (counts(&r.entity_strict), counts(&r.span_strict), counts(&r.span_merged), counts(&r.entity_overlap));
        assert!(eo.0 >= es.0 && sm.0 >= ss.0, "round {round}: {es:?} {ss:?} {sm:?} {eo:?}");
        let gold_spans: usize = gold.iter().map(|d| dedup(&d.spans).len()).sum();
        assert_eq!(es.0 + es.2, gold_spans);
        assert_eq!(eo.0 + eo.2, gold_spans);

        // Gold against itself.
        let own = evaluate(&gold, &gold).unwrap();
        for (name, m) in own.metrics() {
            assert_eq!((m.micro.fp, m.micro.fn_), (0, 0), "{name}");
            if m.micro.tp > 0 {
                assert_eq!((m.micro.precision, m.micro.recall, m.micro.f1, m.macro_f1), (1.0, 1.0, 1.0, 1.0), "{name}");
            }
        }
    }
}

/// Size of the largest one-to-one pairing, by trying every choice.
fn brute_force_matching(gold: &[(usize, usize)], pred: &[(usize, usize)], used: &mut Vec<bool>) -> usize {
    let Some((&g, rest)) = gold.split_first() else { return 0 };
    let mut best = brute_force_matching(rest, pred, used);
    for j in 0..pred.len() {
        if !used[j] && ((g.0 < pred[j].1 && pred[j].0 < g.1) || g == pred[j]) {
            used[j] = true;
            best = best.max(1 + brute_force_matching(rest, pred, used));
            used[j] = false;
        }
    }
    best
}

#[test]
fn overlap_matching_is_maximum() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let spans = |rng: &mut ChaCha8Rng| -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = (0..rng.random_range(0..6))
            .map(|_| {
                let s = rng.random_range(0..20);
                (s, s + rng.random_range(0..8))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    for _ in 0..500 {
        let (g, p) = (spans(&mut rng), spans(&mut rng));
        assert_eq!(max_overlap_matching(&g, &p), brute_force_matching(&g, &p, &mut vec![false; p.len()]), "{g:?} {p:?}");
    }
}
