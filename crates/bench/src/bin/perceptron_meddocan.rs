//! Measures the perceptron floor on MEDDOCAN: trained on train, the model picked on dev, scored on
//! test. BENCHMARKS.md, current results, "perceptron floor, MEDDOCAN test token / strict F1":
//!
//!     cargo run --release -p bench --bin perceptron_meddocan -- --data ../shared/data/meddocan --epochs 20
//!
//! (› Perceptron floor on MEDDOCAN gives the other settings, e.g. `--stack-folds 5`, `--seed 7`.)

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use perceptron::{train, PerceptronConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "The perceptron floor on MEDDOCAN: train, pick on dev, score on test")]
struct Cli {
    /// The MEDDOCAN directory (holding train/, dev/, test/).
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Perceptrons averaged (different seeds).
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Features seen fewer times in train are dropped.
    #[arg(long, default_value_t = 1)]
    min_feature_count: u32,
    /// Stack on the tagger's own jackknifed tags over this many folds (0: no stacking).
    #[arg(long, default_value_t = 0)]
    stack_folds: usize,
    /// Write dev and test predictions (dev.jsonl, test.jsonl) here, for error analysis.
    #[arg(long)]
    predictions: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// bio or bilou.
    #[arg(long, default_value = "bio")]
    tag_scheme: perceptron::TagScheme,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = cli.data;
    let (epochs, members, min_feature_count, stack_folds, seed, tag_scheme) = (cli.epochs, cli.members, cli.min_feature_count, cli.stack_folds, cli.seed, cli.tag_scheme);
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (tr, dev, test) = (read("train")?, read("dev")?, read("test")?);
    let (model, summary) = train(&PerceptronConfig { epochs, members, min_feature_count, stack_folds, seed, tag_scheme, ..Default::default() }, &tr, &dev, None, &progress::Silent)?;
    let t0 = std::time::Instant::now();
    let pred = model.predict(&test);
    let predict_secs = t0.elapsed().as_secs_f64();
    if let Some(dir) = cli.predictions {
        // Dev and test predictions as JSONL, for error analysis.
        std::fs::create_dir_all(&dir)?;
        corpus::write_corpus(&dir.join("dev.jsonl"), None, &model.predict(&dev)).map_err(anyhow::Error::msg)?;
        corpus::write_corpus(&dir.join("test.jsonl"), None, &pred).map_err(anyhow::Error::msg)?;
    }
    let report = eval::evaluate(&test, &pred).map_err(anyhow::Error::msg)?;
    println!("trained in {:.1} s ({} features), best epoch {} of {}; dev token F1 per epoch: {:?}", summary.seconds, summary.features, summary.best_epoch, epochs, summary.dev_token_f1.iter().map(|f| format!("{f:.4}")).collect::<Vec<_>>());
    if let Some(s1) = &summary.stage1 {
        println!("stacked on {} folds; first stage: best epoch {}, dev token F1 {:?} (O penalty {:.3})", summary.stack_folds, s1.best_epoch, s1.o_penalty_dev_f1.iter().map(|(_, f)| *f).fold(0f64, f64::max), s1.o_penalty);
    }
    println!("{} members averaged: dev token F1 {:?}", summary.members, summary.ensemble_dev_f1);
    println!("O penalty {:.3}; dev token F1 by penalty (fraction of the mean margin): {:?}", summary.o_penalty, summary.o_penalty_dev_f1.iter().map(|(p, f)| format!("{p}: {f:.4}")).collect::<Vec<_>>());
    println!("test prediction: {:.1} s ({:.0} documents/s)", predict_secs, test.len() as f64 / predict_secs);
    print!("{}", eval::render_table(&report));
    Ok(())
}
