//! A plain-text rendering of a [`Report`] for terminals and logs.

use std::fmt::Write;

use crate::{MetricReport, Report, Scores};

/// How many ids a warning names before it says "and N more".
const IDS_SHOWN: usize = 10;

/// Renders `report`: warnings first (so they are not scrolled past), a summary line per metric,
/// then per-label tables for `entity_strict` and `token`. Numbers have four decimals, like the
/// comparisons with the official script.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "Scored {} gold document(s).", report.documents);
    if !report.missing_predictions.is_empty() {
        let _ = writeln!(
            w,
            "WARNING: {} gold document(s) have no prediction; all their spans count as misses: {}",
            report.missing_predictions.len(),
            id_list(&report.missing_predictions)
        );
    }
    if !report.unexpected_predictions.is_empty() {
        let _ = writeln!(
            w,
            "WARNING: {} prediction document(s) have no gold document and were not scored: {}",
            report.unexpected_predictions.len(),
            id_list(&report.unexpected_predictions)
        );
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "{:<16} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}", "metric", "precision", "recall", "f1", "macro-f1", "tp", "fp", "fn");
    for (name, m) in report.metrics() {
        let s = &m.micro;
        let _ = writeln!(
            w,
            "{:<16} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>8} {:>8} {:>8}",
            name, s.precision, s.recall, s.f1, m.macro_f1, s.tp, s.fp, s.fn_
        );
    }

    for (name, m) in [("entity_strict", &report.entity_strict), ("token", &report.token)] {
        let _ = writeln!(w);
        label_table(w, name, m);
    }
    out
}

/// `precision recall f1 tp fp fn`, right-aligned to the headers.
fn score_cells(s: &Scores) -> String {
    format!("{:>9.4} {:>9.4} {:>9.4} {:>8} {:>8} {:>8}", s.precision, s.recall, s.f1, s.tp, s.fp, s.fn_)
}

fn label_table(w: &mut String, name: &str, m: &MetricReport) {
    let width = m.per_label.keys().map(|l| l.chars().count()).max().unwrap_or(0).max("label".len());
    let _ = writeln!(w, "{name} per label");
    let _ = writeln!(w, "{:<width$} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}", "label", "precision", "recall", "f1", "tp", "fp", "fn");
    for (label, s) in &m.per_label {
        let _ = writeln!(w, "{:<width$} {}", label, score_cells(s));
    }
    if m.per_label.is_empty() {
        let _ = writeln!(w, "(no labels)");
    }
}

fn id_list(ids: &[String]) -> String {
    let shown = ids.iter().take(IDS_SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if ids.len() > IDS_SHOWN {
        format!("{shown} and {} more", ids.len() - IDS_SHOWN)
    } else {
        shown
    }
}
