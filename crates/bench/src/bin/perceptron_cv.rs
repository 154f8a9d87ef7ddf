//! Measures the perceptron by k-fold cross-validation on MEDDOCAN train + dev (750 documents), for
//! choosing between feature sets with three times the held-out text of dev alone. Each fold
//! trains on the others for a fixed number of epochs (no dev: no epoch or `O`-penalty tuning) and
//! tags the fold it did not see; all 750 tagged documents are scored together. Test is not read.
//! BENCHMARKS.md › Perceptron floor on MEDDOCAN (feature sets chosen by cross-validation):
//!
//!     cargo run --release -p bench --bin perceptron_cv -- --data ../shared/data/meddocan --folds 5 --epochs 20 [--feature-sets 3,3,1] [--tag-scheme bilou]

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use perceptron::{jackknife, PerceptronConfig};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "k-fold cross-validation of the perceptron on MEDDOCAN train + dev")]
struct Cli {
    /// The MEDDOCAN directory (holding train/ and dev/).
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
    #[arg(long, default_value_t = 5)]
    folds: usize,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Write the 750 out-of-fold predictions here (JSONL).
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Feature sets, one per committee member (e.g. 3,3,1); the default set when absent.
    #[arg(long, value_delimiter = ',')]
    feature_sets: Vec<u32>,
    /// bio or bilou.
    #[arg(long)]
    tag_scheme: Option<perceptron::TagScheme>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = cli.data;
    let (folds, epochs) = (cli.folds, cli.epochs);
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let mut docs = read("train")?;
    docs.extend(read("dev")?);
    let t0 = std::time::Instant::now();
    let mut cfg = PerceptronConfig { epochs, tune_o_penalty: false, ..Default::default() };
    if let Some(scheme) = cli.tag_scheme {
        cfg.tag_scheme = scheme;
    }
    if !cli.feature_sets.is_empty() {
        // A committee per fold, weighed on the fold's own training documents (there is no dev).
        cfg.feature_sets = cli.feature_sets;
    }
    let pred = jackknife(&cfg, folds, &docs, &[], |p, d| p.predict(std::slice::from_ref(d)).remove(0), &progress::Silent)?;
    if let Some(path) = cli.predictions {
        corpus::write_corpus(&path, None, &pred).map_err(anyhow::Error::msg)?;
    }
    let report = eval::evaluate(&docs, &pred).map_err(anyhow::Error::msg)?;
    println!("{} documents, {folds} folds, {epochs} epochs, feature sets {:?}, {:.0} s", docs.len(), cfg.feature_sets, t0.elapsed().as_secs_f64());
    print!("{}", eval::render_table(&report));
    Ok(())
}
