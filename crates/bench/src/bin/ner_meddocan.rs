//! Measures transformer NER quality: trained on MEDDOCAN train (any `ner train` settings), the
//! epoch picked on dev, scored on test. BENCHMARKS.md › Transformer NER from scratch on MEDDOCAN
//! (its sections give each run's flags; the recipe of record is `synthdeid ner train --config
//! configs/ner-meddocan.toml`):
//!
//! ```text
//! cargo run --release -p bench --bin ner_meddocan -- \
//!     --train /work/shared/data/meddocan/train --dev /work/shared/data/meddocan/dev \
//!     --test /work/shared/data/meddocan/test --out target/meddocan-small --set optimizer.max_minutes=60
//! ```
//! Prints token / entity-strict micro F1 (project scorer, `eval`), per-label F1, training
//! minutes and tokens/s, and writes them to `OUT/benchmark.json`. Prints no document text.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Train the NER model on MEDDOCAN (dev picks the epoch) and score it on test")]
struct Cli {
    #[arg(long)]
    train: PathBuf,
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Model directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Gold test documents (scored once, with the dev-selected model).
    #[arg(long)]
    test: PathBuf,
    /// Settings (TOML, the shape of configs/ner-meddocan.toml); defaults without it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// SECTION.KEY=VALUE overrides, as `synthdeid ner train --set`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn read(p: &std::path::Path) -> Result<Vec<corpus::Document>> {
    Ok(corpus::read_corpus(p, None, &corpus::ReadOptions::default())?)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let base: ner::TrainConfig = match &cli.config {
        Some(p) => toml::from_str(&std::fs::read_to_string(p)?)?,
        None => Default::default(),
    };
    let cfg = base.with_overrides(&cli.set).map_err(anyhow::Error::msg)?;
    let train = read(&cli.train)?;
    let dev = match &cli.dev {
        Some(p) => read(p)?,
        None => Vec::new(),
    };
    let test = read(&cli.test)?;
    eprintln!("train {} docs, dev {} docs, test {} docs; settings: {}", train.len(), dev.len(), test.len(), serde_json::to_string(&cfg)?);
    let summary = ner::train(&cfg, &train, &dev, &cli.out, &progress::Lines)?;

    let model = ner::Model::load(&cli.out)?;
    let t0 = Instant::now();
    let pred = model.predict(&test)?;
    let predict_secs = t0.elapsed().as_secs_f64();
    let subwords: usize = model.encode(&test, model.settings.stride, false).iter().map(|e| e.ids.len()).sum();
    let report = eval::evaluate(&test, &pred)?;
    println!("| label | token F1 | strict F1 | gold spans |");
    println!("|---|---|---|---|");
    for (label, s) in &report.entity_strict.per_label {
        let tok = report.token.per_label.get(label).map(|t| t.f1).unwrap_or(0.0);
        println!("| {label} | {tok:.4} | {:.4} | {} |", s.f1, s.tp + s.fn_);
    }
    println!(
        "test: token F1 {:.4} (P {:.4} R {:.4}), entity strict F1 {:.4} (P {:.4} R {:.4}), span merged F1 {:.4}",
        report.token.micro.f1,
        report.token.micro.precision,
        report.token.micro.recall,
        report.entity_strict.micro.f1,
        report.entity_strict.micro.precision,
        report.entity_strict.micro.recall,
        report.span_merged.micro.f1
    );
    println!(
        "best epoch {:?} of {}, dev {:?}; {:.1} training minutes, {:.0} training tokens/s, {} parameters; \
         prediction {:.1} s for {} test windows' {} sub-words ({:.0} tokens/s, overlap included)",
        summary.best_epoch.map(|e| e + 1),
        summary.epochs_completed,
        summary.best_dev,
        summary.minutes,
        summary.tokens_per_sec,
        summary.num_params,
        predict_secs,
        test.len(),
        subwords,
        subwords as f64 / predict_secs
    );
    let json = serde_json::json!({
        "settings": cfg,
        "summary": summary,
        "test": report,
        "predict_seconds": predict_secs,
        "predict_tokens_per_sec": subwords as f64 / predict_secs,
    });
    std::fs::write(cli.out.join("benchmark.json"), serde_json::to_string_pretty(&json)?)?;
    Ok(())
}
