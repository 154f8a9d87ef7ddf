//! Experiment: k-fold cross-validation of the perceptron on MEDDOCAN train + dev (750 documents),
//! for choosing between feature sets with three times the held-out text of dev alone. Each fold
//! trains on the others for a fixed number of epochs (no dev: no epoch or `O`-penalty tuning) and
//! tags the fold it did not see; all 750 tagged documents are scored together. Test is not read.
//!
//! cargo run --release -p perceptron --example cv -- ../shared/data/meddocan [FOLDS] [EPOCHS] [PREDICTIONS.jsonl|-] [FEATURE_SETS, e.g. 3,3,1|-] [bio|bilou]

use corpus::{read_corpus, ReadOptions};
use perceptron::{jackknife, PerceptronConfig};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let arg = |i: usize| std::env::args().nth(i);
    let root = PathBuf::from(arg(1).unwrap_or_else(|| "../shared/data/meddocan".into()));
    let folds: usize = arg(2).map_or(5, |e| e.parse().expect("FOLDS is a number"));
    let epochs: usize = arg(3).map_or(20, |e| e.parse().expect("EPOCHS is a number"));
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let mut docs = read("train")?;
    docs.extend(read("dev")?);
    let t0 = std::time::Instant::now();
    let mut cfg = PerceptronConfig { epochs, tune_o_penalty: false, ..Default::default() };
    if let Some(scheme) = arg(6) {
        cfg.tag_scheme = scheme.parse()?;
    }
    if let Some(sets) = arg(5).filter(|s| s != "-") {
        // A committee per fold, weighed on the fold's own training documents (there is no dev).
        cfg.feature_sets = sets.split(',').map(|s| s.trim().parse().expect("FEATURE_SETS are numbers")).collect();
    }
    let pred = jackknife(&cfg, folds, &docs, &[], |p, d| p.predict(std::slice::from_ref(d)).remove(0))?;
    if let Some(path) = arg(4).filter(|p| p != "-") {
        corpus::write_corpus(&PathBuf::from(path), None, &pred).map_err(anyhow::Error::msg)?;
    }
    let report = eval::evaluate(&docs, &pred).map_err(anyhow::Error::msg)?;
    println!("{} documents, {folds} folds, {epochs} epochs, feature sets {:?}, {:.0} s", docs.len(), cfg.feature_sets, t0.elapsed().as_secs_f64());
    print!("{}", eval::render_table(&report));
    Ok(())
}
