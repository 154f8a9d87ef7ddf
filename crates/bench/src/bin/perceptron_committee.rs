//! Experiment: saved perceptrons decoded as one committee (`Perceptron::committee_of`, weighed
//! on dev); every tagger alone and the committee scored on dev and test. BENCHMARKS.md › Lexical
//! inputs and stacking on the perceptron, the committee of saved stacked taggers (README: "six
//! saved stacked taggers as one"):
//!
//!     cargo run --release -p bench --bin perceptron_committee -- --data ../shared/data/meddocan MODEL_DIR MODEL_DIR...

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use perceptron::Perceptron;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Saved perceptrons alone and decoded as one committee, scored on MEDDOCAN dev and test")]
struct Cli {
    /// The MEDDOCAN directory (holding dev/ and test/).
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
    /// Saved perceptron directories.
    #[arg(required = true)]
    models: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = cli.data;
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (dev, test) = (read("dev")?, read("test")?);
    let mut taggers: Vec<Perceptron> = cli.models.iter().map(|d| Perceptron::load(&PathBuf::from(d))).collect::<anyhow::Result<_>>()?;
    let score = |gold: &[corpus::Document], p: &Perceptron| -> anyhow::Result<String> {
        let r = eval::evaluate(gold, &p.predict(gold)).map_err(anyhow::Error::msg)?;
        Ok(format!("token {:.4} strict {:.4}", r.token.micro.f1, r.entity_strict.micro.f1))
    };
    for (dir, t) in cli.models.iter().zip(&taggers) {
        println!("{dir}: dev {} | test {}", score(&dev, t)?, score(&test, t)?);
    }
    if taggers.len() == 1 {
        return Ok(()); // one directory: itself scored above (a saved committee is scored whole)
    }
    let first = taggers.remove(0);
    let committee = Perceptron::committee_of(first, taggers, &dev)?;
    println!("committee of {}: dev {} | test {}", committee.committee_size(), score(&dev, &committee)?, score(&test, &committee)?);
    Ok(())
}
