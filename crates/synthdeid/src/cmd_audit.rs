//! `audit`: privacy measures of a synthetic corpus against its training corpus.

use crate::corpus_args::ReadArgs;
use anyhow::Result;
use audit::{AuditConfig, AuditReport};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_long_help = "Measures:\n  \
n-gram recall      share of the synthetic corpus's word n-grams found in the training text (the paper's measure)\n  \
leaked PHI         per label, distinct training PHI strings that reappear verbatim (on word boundaries)\n  \
nearest documents  synthetic documents sharing the longest substring with a training document\n  \
without templates  n-gram recall leaving out n-grams in more than 10% of the training documents (form text)\n  \
membership         (with --heldout) AUC and TPR at low FPR of telling training from held-out documents, \
from the synthetic corpus alone\n  \
re-identification  training documents with 2 or 3 of their own PHI strings together in one synthetic document\n\n\
--heldout (real documents the generator never saw, e.g. the test split) adds the baseline of each measure: \
real language also shares n-grams and common PHI strings (`España`) with the training text.\n\
No document text is printed unless --show N asks for N side-by-side examples.")]
pub struct AuditArgs {
    /// The synthetic corpus (annotations are not needed).
    #[arg(long)]
    pub synthetic: PathBuf,
    /// The gold documents the generator was trained on (their spans give the PHI strings).
    #[arg(long)]
    pub train: PathBuf,
    /// Real held-out documents, for baselines.
    #[arg(long)]
    pub heldout: Option<PathBuf>,
    /// n of the n-gram recall (at least 1).
    #[arg(long, default_value_t = 5, value_parser = parse_order)]
    pub ngram: usize,
    /// How many nearest synthetic documents to list.
    #[arg(long, default_value_t = 10)]
    pub nearest: usize,
    /// Show this many shared passages side by side (prints document text).
    #[arg(long, default_value_t = 0)]
    pub show: usize,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

fn parse_order(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the n-gram order must be at least 1 (the paper uses 5)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

pub fn audit(a: AuditArgs) -> Result<()> {
    let synthetic = a.read.read(&a.synthetic)?;
    let train = a.read.read(&a.train)?;
    let heldout = a.heldout.as_ref().map(|h| a.read.read(h)).transpose()?;
    let config = AuditConfig { ngram: a.ngram, nearest: a.nearest, show_examples: a.show, ..Default::default() };
    let report = audit::try_audit(&synthetic, &train, heldout.as_deref(), &config).map_err(|e| anyhow::anyhow!("--{e}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// The audit as plain-text tables.
pub fn render(r: &AuditReport) -> String {
    let mut out = String::new();
    let n = r.ngram_recall.n;
    out.push_str(&format!("{} synthetic documents audited against {} training documents\n\n", r.synthetic_documents, r.training_documents));
    out.push_str(&format!("{n}-gram recall (share of {n}-grams found in the training text)\n"));
    out.push_str(&format!("  synthetic   {:.4}  ({} of {})\n", r.ngram_recall.recall, r.ngram_recall.found, r.ngram_recall.total));
    if let Some(h) = &r.ngram_recall_heldout {
        out.push_str(&format!("  held-out    {:.4}  ({} of {})  ← real unseen documents, the baseline\n", h.recall, h.found, h.total));
    }
    out.push_str("\nTraining PHI strings found verbatim\n");
    let width = r.leakage.per_label.keys().map(|k| k.len()).max().unwrap_or(5).max(5);
    out.push_str(&format!("  {:<width$}  {:>8}  {:>16}  {:>16}\n", "label", "distinct", "in synthetic", "in held-out"));
    let held = |label: Option<&str>| -> String {
        match (&r.leakage_heldout, label) {
            (None, _) => "-".into(),
            (Some(h), None) => format!("{} ({:.1}%)", h.leaked, 100.0 * h.share),
            (Some(h), Some(l)) => h.per_label.get(l).map_or("-".into(), |e| format!("{} ({:.1}%)", e.leaked, 100.0 * e.share)),
        }
    };
    for (label, e) in &r.leakage.per_label {
        out.push_str(&format!(
            "  {label:<width$}  {:>8}  {:>16}  {:>16}\n",
            e.distinct,
            format!("{} ({:.1}%)", e.leaked, 100.0 * e.share),
            held(Some(label))
        ));
    }
    out.push_str(&format!(
        "  {:<width$}  {:>8}  {:>16}  {:>16}\n",
        "all",
        r.leakage.distinct,
        format!("{} ({:.1}%)", r.leakage.leaked, 100.0 * r.leakage.share),
        held(None)
    ));
    let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    out.push_str(&format!(
        "  strings unique to one training document (the identifying ones): {} of {} ({:.1}%) found{}\n",
        r.leakage.unique_leaked,
        r.leakage.unique,
        pct(r.leakage.unique_leaked, r.leakage.unique),
        r.leakage_heldout.as_ref().map_or(String::new(), |h| format!("; held-out: {} ({:.1}%)", h.unique_leaked, pct(h.unique_leaked, h.unique)))
    ));
    let rows = r.evidence_rows();
    if !rows.is_empty() {
        out.push_str("\nMore evidence (synthetic | held-out baseline)\n");
        for row in &rows {
            out.push_str(&format!("  {}\n    {} | {}\n    ({})\n", row.measure, row.synthetic, row.baseline, row.meaning));
        }
    }
    out.push_str("\nSynthetic documents closest to a training document (longest shared substring)\n");
    for m in &r.nearest {
        out.push_str(&format!(
            "  {:>6} chars ({:>5.1}% of the document)  {} ~ {}\n",
            m.length,
            100.0 * m.share_of_document,
            m.synthetic_id,
            m.training_id
        ));
    }
    for e in &r.examples {
        out.push_str(&format!("\n--- {} ~ {}\nsynthetic: {}\ntraining:  {}\n", e.synthetic_id, e.training_id, e.synthetic_context, e.training_context));
    }
    out
}
