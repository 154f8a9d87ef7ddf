//! Benchmark: the perceptron floor on MEDDOCAN (train → model picked on dev → scored on test).
//!
//! cargo run --release -p perceptron --example meddocan -- ../shared/data/meddocan [EPOCHS] [MEMBERS] [MIN_FEATURE_COUNT] [STACK_FOLDS] [PREDICTIONS_DIR|-] [SEED] [bio|bilou]

use corpus::{read_corpus, ReadOptions};
use perceptron::{train, PerceptronConfig};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "../shared/data/meddocan".into()));
    let epochs: usize = std::env::args().nth(2).map_or(12, |e| e.parse().expect("EPOCHS is a number"));
    let members: usize = std::env::args().nth(3).map_or(1, |e| e.parse().expect("MEMBERS is a number"));
    let min_feature_count: u32 = std::env::args().nth(4).map_or(1, |e| e.parse().expect("MIN_FEATURE_COUNT is a number"));
    let stack_folds: usize = std::env::args().nth(5).map_or(0, |e| e.parse().expect("STACK_FOLDS is a number"));
    let seed: u64 = std::env::args().nth(7).map_or(42, |e| e.parse().expect("SEED is a number"));
    let tag_scheme: perceptron::TagScheme = std::env::args().nth(8).map_or(Ok(perceptron::TagScheme::Bio), |e| e.parse())?;
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (tr, dev, test) = (read("train")?, read("dev")?, read("test")?);
    let (model, summary) = train(&PerceptronConfig { epochs, members, min_feature_count, stack_folds, seed, tag_scheme, ..Default::default() }, &tr, &dev, None)?;
    let t0 = std::time::Instant::now();
    let pred = model.predict(&test);
    let predict_secs = t0.elapsed().as_secs_f64();
    if let Some(dir) = std::env::args().nth(6).filter(|d| d != "-").map(PathBuf::from) {
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
