//! Experiment: saved perceptrons decoded as one committee (`Perceptron::committee_of`, weighed
//! on dev); every tagger alone and the committee scored on dev and test.
//!
//! cargo run --release -p perceptron --example committee -- ../shared/data/meddocan MODEL_DIR MODEL_DIR...

use corpus::{read_corpus, ReadOptions};
use perceptron::Perceptron;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(&args[0]);
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (dev, test) = (read("dev")?, read("test")?);
    let mut taggers: Vec<Perceptron> = args[1..].iter().map(|d| Perceptron::load(&PathBuf::from(d))).collect::<anyhow::Result<_>>()?;
    let score = |gold: &[corpus::Document], p: &Perceptron| -> anyhow::Result<String> {
        let r = eval::evaluate(gold, &p.predict(gold)).map_err(anyhow::Error::msg)?;
        Ok(format!("token {:.4} strict {:.4}", r.token.micro.f1, r.entity_strict.micro.f1))
    };
    for (dir, t) in args[1..].iter().zip(&taggers) {
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
