//! Experiment: a span-boundary model (`perceptron::train_boundaries`) trained on a tagger's
//! out-of-fold predictions of MEDDOCAN train (written by the `oof` example), applied to
//! predictions of dev; dev scored before and after.
//!
//! cargo run --release -p perceptron --example boundary -- ../shared/data/meddocan TRAIN_OOF.jsonl[,MORE.jsonl] DEV_PRED.jsonl...

use corpus::{read_corpus, Document, ReadOptions};
use perceptron::{train_boundaries, BoundaryConfig};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(&args[0]);
    let read = |p: &std::path::Path| read_corpus(p, None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (train, dev) = (read(&root.join("train"))?, read(&root.join("dev"))?);
    let mut oof: Vec<Document> = Vec::new();
    let mut gold: Vec<Document> = Vec::new();
    for (i, p) in args[1].split(',').enumerate() {
        // Several taggers' predictions of the same documents: each copy keeps its own id.
        for d in read(&PathBuf::from(p))? {
            let g = train.iter().find(|g| g.id == d.id).expect("an out-of-fold document of train");
            gold.push(Document { id: format!("{i}/{}", g.id), ..g.clone() });
            oof.push(Document { id: format!("{i}/{}", d.id), ..d });
        }
    }
    let reach: usize = std::env::var("REACH").map_or(2, |r| r.parse().expect("REACH"));
    let epochs: usize = std::env::var("EPOCHS").map_or(10, |r| r.parse().expect("EPOCHS"));
    let (model, summary) = train_boundaries(&BoundaryConfig { reach, epochs, ..Default::default() }, &gold, &oof)?;
    println!("{summary:?}");
    for p in &args[2..] {
        let pred = read(&PathBuf::from(p))?;
        let before = eval::evaluate(&dev, &pred).map_err(anyhow::Error::msg)?;
        let after = eval::evaluate(&dev, &model.apply_all(&pred)).map_err(anyhow::Error::msg)?;
        println!(
            "{p}: token {:.4} → {:.4}, strict {:.4} → {:.4} (tp {} → {})",
            before.token.micro.f1, after.token.micro.f1, before.entity_strict.micro.f1, after.entity_strict.micro.f1,
            before.entity_strict.micro.tp, after.entity_strict.micro.tp
        );
    }
    Ok(())
}
