//! Hand-computed answers. The MEDDOCAN ones (`span_*`, `entity_strict`) were also checked with
//! the official script on the same documents written as BRAT files.

use super::{close, counts, doc, label_counts};
use crate::{evaluate, render_table, Counts, EvalError, Report};

//                     0         1         2         3
//                     0123456789012345678901234567890123456
const TEXT: &str = "Juan, Pérez tiene 45 años en Madrid.";

fn gold_doc() -> corpus::Document {
    doc("d1", TEXT, &[(0, 4, "NOMBRE"), (6, 11, "NOMBRE"), (18, 25, "EDAD"), (29, 35, "TERRITORIO")])
}

/// Juan right; Pérez relabelled; "45" instead of "45 años"; "tiene" invented; Madrid missed.
fn mixed_report() -> Report {
    let pred = doc("d1", "ignored", &[(0, 4, "NOMBRE"), (6, 11, "APELLIDO"), (18, 20, "EDAD"), (12, 17, "PAIS")]);
    evaluate(&[gold_doc()], &[pred]).unwrap()
}

#[test]
fn entity_strict_known_answer() {
    let r = mixed_report();
    let m = &r.entity_strict;
    assert_eq!(counts(m), (1, 3, 3));
    assert!(close(m.micro.precision, 0.25) && close(m.micro.recall, 0.25) && close(m.micro.f1, 0.25));
    assert_eq!(label_counts(m, "NOMBRE"), Counts { tp: 1, fp: 0, fn_: 1 });
    assert_eq!(label_counts(m, "APELLIDO"), Counts { tp: 0, fp: 1, fn_: 0 });
    assert_eq!(label_counts(m, "EDAD"), Counts { tp: 0, fp: 1, fn_: 1 });
    assert_eq!(label_counts(m, "PAIS"), Counts { tp: 0, fp: 1, fn_: 0 });
    assert_eq!(label_counts(m, "TERRITORIO"), Counts { tp: 0, fp: 0, fn_: 1 });
    assert_eq!(m.per_label.len(), 5);
    assert!(close(m.per_label["NOMBRE"].f1, 2.0 / 3.0));
    assert!(close(m.macro_f1, (2.0 / 3.0) / 5.0), "labels only in the prediction count in the macro");
    assert_eq!(m.per_label["APELLIDO"].precision, 0.0);
    assert_eq!(m.per_label["APELLIDO"].recall, 0.0, "no gold spans: recall 0, not NaN");
}

#[test]
fn span_strict_known_answer() {
    let m = &mixed_report().span_strict;
    assert_eq!(counts(m), (2, 2, 2));
    assert!(close(m.micro.f1, 0.5));
    // Hits and misses under the gold label, false alarms under the predicted one.
    assert_eq!(label_counts(m, "NOMBRE"), Counts { tp: 2, fp: 0, fn_: 0 });
    assert_eq!(label_counts(m, "EDAD"), Counts { tp: 0, fp: 1, fn_: 1 });
    assert_eq!(label_counts(m, "PAIS"), Counts { tp: 0, fp: 1, fn_: 0 });
    assert_eq!(label_counts(m, "TERRITORIO"), Counts { tp: 0, fp: 0, fn_: 1 });
    assert!(!m.per_label.contains_key("APELLIDO"));
    assert!(close(m.macro_f1, 0.25));
}

#[test]
fn span_merged_known_answer_without_merges_that_help() {
    // Prediction merges (0,4)…(18,20) into one run, gold into (0,11); neither merged span is shared.
    let m = &mixed_report().span_merged;
    assert_eq!(counts(m), (2, 2, 2));
    assert!(m.per_label.is_empty());
    assert_eq!(m.macro_f1, m.micro.f1);
}

#[test]
fn token_known_answer() {
    // Tokens: Juan , Pérez tiene 45 años en Madrid .
    let m = &mixed_report().token;
    assert_eq!(counts(m), (2, 2, 3));
    assert!(close(m.micro.precision, 0.5) && close(m.micro.recall, 0.4));
    assert!(close(m.micro.f1, 2.0 * 0.2 / 0.9));
    assert_eq!(label_counts(m, "NOMBRE"), Counts { tp: 1, fp: 0, fn_: 1 });
    assert_eq!(label_counts(m, "EDAD"), Counts { tp: 1, fp: 0, fn_: 1 });
    assert_eq!(label_counts(m, "APELLIDO"), Counts { tp: 0, fp: 1, fn_: 0 });
    assert_eq!(label_counts(m, "PAIS"), Counts { tp: 0, fp: 1, fn_: 0 });
    assert_eq!(label_counts(m, "TERRITORIO"), Counts { tp: 0, fp: 0, fn_: 1 });
    assert!(close(m.macro_f1, (4.0 / 3.0) / 5.0));
}

#[test]
fn entity_overlap_known_answer() {
    let m = &mixed_report().entity_overlap;
    // "45" overlaps "45 años" (EDAD): a hit; Pérez has the wrong label: a miss and a false alarm.
    assert_eq!(counts(m), (2, 2, 2));
    assert_eq!(label_counts(m, "EDAD"), Counts { tp: 1, fp: 0, fn_: 0 });
    assert_eq!(label_counts(m, "NOMBRE"), Counts { tp: 1, fp: 0, fn_: 1 });
}

#[test]
fn gold_against_itself_is_perfect_everywhere() {
    let gold = vec![
        gold_doc(),
        doc("d2", "\u{feff}Sr. Ana López-García, NHC 123456; tel. 91 555 12 12.", &[(5, 21, "NOMBRE"), (27, 33, "ID"), (40, 52, "TEL")]),
        doc("d3", "Sin datos.", &[]),
    ];
    let r = evaluate(&gold, &gold).unwrap();
    for (name, m) in r.metrics() {
        assert_eq!(m.micro.precision, 1.0, "{name}");
        assert_eq!(m.micro.recall, 1.0, "{name}");
        assert_eq!(m.micro.f1, 1.0, "{name}");
        assert_eq!(m.macro_f1, 1.0, "{name}");
        assert_eq!((m.micro.fp, m.micro.fn_), (0, 0), "{name}");
        assert!(m.per_label.values().all(|s| s.f1 == 1.0), "{name}");
    }
    assert_eq!(r.entity_strict.micro.tp, 7);
    // Official quirk: merged TP = strict spans + merged spans that are new. In d1, Juan and Pérez
    // (", " between) merge into (0, 11); in d2, the name and "NHC" are apart (letters between).
    assert_eq!(r.span_merged.micro.tp, 8);
    assert_eq!(r.documents, 3);
    assert!(r.missing_predictions.is_empty() && r.unexpected_predictions.is_empty());
}

#[test]
fn merged_spans_forgive_a_split_at_punctuation() {
    let text = "Paciente: Juan, Pérez. Hospital del Mar.";
    // Gold is one span "Juan, Pérez"; the prediction splits it at ", ".
    let gold = doc("a", text, &[(10, 21, "NOMBRE")]);
    let pred = doc("a", text, &[(10, 14, "NOMBRE"), (16, 21, "NOMBRE")]);
    let r = evaluate(std::slice::from_ref(&gold), std::slice::from_ref(&pred)).unwrap();
    assert_eq!(counts(&r.span_strict), (0, 2, 1));
    assert_eq!(counts(&r.span_merged), (1, 0, 0));
    assert_eq!(counts(&r.entity_overlap), (1, 1, 0), "one-to-one: the second piece is a false alarm");
    // And the other way round: gold in two pieces, predicted as one span.
    let r = evaluate(&[pred], &[gold]).unwrap();
    assert_eq!(counts(&r.span_strict), (0, 1, 2));
    assert_eq!(counts(&r.span_merged), (1, 0, 0));
    assert_eq!(counts(&r.entity_overlap), (1, 0, 1));
}

#[test]
fn merged_spans_do_not_cross_letters() {
    let text = "Juan y Pérez";
    let gold = doc("a", text, &[(0, 12, "NOMBRE")]);
    let pred = doc("a", text, &[(0, 4, "NOMBRE"), (7, 12, "NOMBRE")]);
    let r = evaluate(&[gold], &[pred]).unwrap();
    assert_eq!(counts(&r.span_merged), (0, 2, 1));
}

#[test]
fn merged_spans_partial_match_and_nested_prediction() {
    let text = "Juan, Pérez, Calle Mayor 5, Madrid";
    // Gold: Juan | Pérez | Calle Mayor 5 | Madrid, all joined by ", " into one merged span.
    let gold = doc("a", text, &[(0, 4, "N"), (6, 11, "N"), (13, 26, "C"), (28, 34, "T")]);
    // Prediction: Juan exact, "Pérez, Calle" (wrong), and a span nested in Juan.
    let pred = doc("a", text, &[(0, 4, "N"), (6, 18, "N"), (1, 3, "N")]);
    let r = evaluate(&[gold], &[pred]).unwrap();
    // Strict: (0,4) hit; (6,18) and (1,3) false alarms; three misses.
    assert_eq!(counts(&r.span_strict), (1, 2, 3));
    // Merged: gold → (0,34); prediction sorted (0,4) (1,3) (6,18): the nested (1,3) *shortens*
    // (0,4) to (0,3) (empty gap), and "n, " then keeps (6,18) apart. No merged match. TP =
    // {(0,4)}; the nested (1,3) lies inside the hit (0,4), so it is no false alarm.
    assert_eq!(counts(&r.span_merged), (1, 1, 3));
}

#[test]
fn missing_prediction_counts_as_misses_and_unexpected_is_listed_only() {
    let gold = vec![
        doc("d1", "Ana vive en Lugo.", &[(0, 3, "NOMBRE"), (12, 16, "TERRITORIO")]),
        doc("d2", "Luis, 40 años.", &[(0, 4, "NOMBRE"), (6, 13, "EDAD")]),
    ];
    let pred = vec![
        doc("d1", "", &[(0, 3, "NOMBRE"), (12, 16, "TERRITORIO")]),
        doc("zz", "Otro.", &[(0, 4, "NOMBRE")]),
    ];
    let r = evaluate(&gold, &pred).unwrap();
    assert_eq!(r.documents, 2);
    assert_eq!(r.missing_predictions, ["d2"]);
    assert_eq!(r.unexpected_predictions, ["zz"]);
    assert_eq!(counts(&r.entity_strict), (2, 0, 2));
    assert_eq!(counts(&r.span_strict), (2, 0, 2));
    assert_eq!(counts(&r.span_merged), (2, 0, 2));
    assert_eq!(counts(&r.entity_overlap), (2, 0, 2));
    assert_eq!(counts(&r.token), (2, 0, 3), "Luis + 40 + años");
    let table = render_table(&r);
    assert!(table.contains("WARNING: 1 gold document(s) have no prediction"), "{table}");
    assert!(table.contains("d2") && table.contains("zz"), "{table}");
}

#[test]
fn empty_documents_and_empty_corpora_score_zero_not_nan() {
    let r = evaluate(&[doc("e", "", &[])], &[doc("e", "", &[])]).unwrap();
    for (name, m) in r.metrics() {
        assert_eq!(counts(m), (0, 0, 0), "{name}");
        assert_eq!((m.micro.precision, m.micro.recall, m.micro.f1, m.macro_f1), (0.0, 0.0, 0.0, 0.0), "{name}");
        assert!(m.per_label.is_empty(), "{name}");
    }
    let r = evaluate(&[], &[]).unwrap();
    assert_eq!(r.documents, 0);
    assert_eq!(r.entity_strict.micro.f1, 0.0);
}

#[test]
fn labels_only_in_the_prediction_and_spans_past_the_text() {
    let gold = doc("e", "", &[]);
    let pred = doc("e", "", &[(0, 4, "PAIS"), (2, 9, "PAIS")]);
    let r = evaluate(&[gold], &[pred]).unwrap();
    assert_eq!(counts(&r.entity_strict), (0, 2, 0));
    assert_eq!(label_counts(&r.entity_strict, "PAIS"), Counts { tp: 0, fp: 2, fn_: 0 });
    assert_eq!(r.entity_strict.macro_f1, 0.0);
    assert_eq!(counts(&r.span_merged), (0, 2, 0));
    assert_eq!(counts(&r.token), (0, 0, 0), "no tokens, nothing to label");
    assert_eq!(counts(&r.entity_overlap), (0, 2, 0));
}

#[test]
fn duplicate_spans_count_once_like_the_official_sets() {
    let gold = doc("a", "Ana", &[(0, 3, "N"), (0, 3, "N")]);
    let pred = doc("a", "Ana", &[(0, 3, "N"), (0, 3, "N"), (0, 3, "M")]);
    let r = evaluate(&[gold], &[pred]).unwrap();
    assert_eq!(counts(&r.entity_strict), (1, 1, 0));
    assert_eq!(counts(&r.span_strict), (1, 0, 0));
    assert_eq!(counts(&r.span_merged), (1, 0, 0));
    assert_eq!(counts(&r.entity_overlap), (1, 1, 0));
    // The token is predicted as both N and M: the alphabetically first label, M, wins.
    assert_eq!(counts(&r.token), (0, 1, 1));
}

#[test]
fn duplicate_ids_are_errors() {
    let twice = [doc("a", "x", &[]), doc("a", "y", &[])];
    assert_eq!(evaluate(&twice, &[]), Err(EvalError::DuplicateGoldId("a".into())));
    assert_eq!(evaluate(&twice[..1], &twice), Err(EvalError::DuplicatePredictionId("a".into())));
}

#[test]
fn json_has_the_documented_shape() {
    let v = serde_json::to_value(mixed_report()).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = [
        "documents",
        "missing_predictions",
        "unexpected_predictions",
        "entity_strict",
        "span_strict",
        "span_merged",
        "token",
        "entity_overlap",
    ];
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    expected.sort();
    assert_eq!(keys_sorted, expected);
    for m in ["entity_strict", "span_strict", "span_merged", "token", "entity_overlap"] {
        let obj = v[m].as_object().unwrap();
        let mut k: Vec<&str> = obj.keys().map(String::as_str).collect();
        k.sort();
        assert_eq!(k, ["macro_f1", "micro", "per_label"], "{m}");
        let mut micro: Vec<&str> = v[m]["micro"].as_object().unwrap().keys().map(String::as_str).collect();
        micro.sort();
        assert_eq!(micro, ["f1", "fn", "fp", "precision", "recall", "tp"], "{m}");
    }
    assert_eq!(v["entity_strict"]["per_label"]["NOMBRE"]["fn"], 1);
    assert_eq!(v["documents"], 1);
    // And back (floats may move by an ulp through serde_json's fast parser, counts may not).
    let back: Report = serde_json::from_value(v).unwrap();
    let orig = mixed_report();
    for ((_, a), (_, b)) in back.metrics().into_iter().zip(orig.metrics()) {
        assert_eq!(counts(a), counts(b));
        assert!(close(a.micro.f1, b.micro.f1) && close(a.macro_f1, b.macro_f1));
    }
}

#[test]
fn table_shows_every_metric_and_the_label_tables() {
    let t = render_table(&mixed_report());
    for name in ["entity_strict", "span_strict", "span_merged", "token", "entity_overlap", "entity_strict per label", "token per label", "TERRITORIO"] {
        assert!(t.contains(name), "{name} missing from\n{t}");
    }
    assert!(t.contains("0.2500"), "{t}");
    assert!(!t.contains("WARNING"), "{t}");
}
