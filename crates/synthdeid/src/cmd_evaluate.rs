//! `evaluate`: score predictions against gold.

use crate::corpus_args::{read_with, FormatArg, ReadArgs};
use anyhow::{anyhow, Result};
use clap::Args;
use corpus::ReadOptions;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_long_help = "Metrics (micro P/R/F1 with TP/FP/FN, macro F1, and per label):\n  \
entity_strict   exact (label, start, end): MEDDOCAN subtrack 1\n  \
span_strict     exact (start, end), label ignored: MEDDOCAN subtrack 2 strict\n  \
span_merged     MEDDOCAN subtrack 2 merged, as the official script computes it\n  \
token           every word token labelled by the span containing it, or O (the paper's token-level F1)\n  \
entity_overlap  same label, overlapping, paired one-to-one\n\n\
A gold document without a prediction counts all its spans as misses and is named in a warning (the official \
MEDDOCAN script silently skips it). Prediction BRAT directories may hold .ann files only; the gold text is used. \
Predicted spans may overlap or repeat (compared as sets); gold spans follow --overlaps. Predicted spans are read by \
their offsets only, as the official script reads them: an .ann text that differs from the text at the offsets, an \
empty span or a repeated T id is scored and named in a warning (file and line, no text).")]
pub struct EvaluateArgs {
    /// Gold corpus (BRAT directory or JSONL).
    #[arg(long)]
    pub gold: PathBuf,
    /// Predictions (BRAT directory, possibly .ann files only, or JSONL).
    #[arg(long)]
    pub pred: PathBuf,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Format of --pred (default: from its path).
    #[arg(long, value_enum)]
    pub pred_from: Option<FormatArg>,
}

pub fn evaluate(a: EvaluateArgs) -> Result<()> {
    let gold = a.read.read(&a.gold)?;
    // Predictions may overlap or repeat spans: the scorer compares sets, as the official script does.
    // Their spans are read by offsets only, as the official script reads them: a surface text that does
    // not match (normalised whitespace), an empty span or a repeated T id is a warning, and is scored.
    let pred_options = ReadOptions { ann_only: true, offsets_only: true, overlaps: corpus::OverlapPolicy::Allow, ..a.read.options() };
    let pred = read_with(&a.pred, a.pred_from.map(Into::into), &pred_options)?;
    let report = eval::evaluate(&gold, &pred).map_err(|e| anyhow!(e))?;
    if !report.missing_predictions.is_empty() {
        eprintln!(
            "warning: {} gold document(s) have no prediction and count as all misses: {}",
            report.missing_predictions.len(),
            report.missing_predictions.join(", ")
        );
    }
    if !report.unexpected_predictions.is_empty() {
        eprintln!(
            "warning: {} prediction document(s) have no gold document and are not scored: {}",
            report.unexpected_predictions.len(),
            report.unexpected_predictions.join(", ")
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", eval::render_table(&report));
    }
    Ok(())
}
