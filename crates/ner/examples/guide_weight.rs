//! Benchmark: a stacked model decoded alone and as a product with its guide perceptron, the
//! guide weight picked on dev (by strict or token F1) and scored on test.
//!
//! cargo run --release -p ner --example guide_weight -- MODEL_DIR ../shared/data/meddocan

use corpus::{read_corpus, ReadOptions};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).expect("MODEL_DIR"));
    let root = PathBuf::from(std::env::args().nth(2).unwrap_or_else(|| "../shared/data/meddocan".into()));
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (dev, test) = (read("dev")?, read("test")?);
    let mut model = ner::Model::load(&dir)?;
    for metric in [ner::Metric::Strict, ner::Metric::Token] {
        let t0 = std::time::Instant::now();
        let s = ner::train::evaluate_tuned(&mut model, &dev, metric)?;
        println!("picked by {metric:?} on dev in {:.0} s: {s:?}", t0.elapsed().as_secs_f64());
        let pred = model.predict(&test)?;
        let r = eval::evaluate(&test, &pred).map_err(anyhow::Error::msg)?;
        println!("test, guide weight {}: token {:.4} (P {:.4} R {:.4}), strict {:.4}", model.settings.guide_weight, r.token.micro.f1, r.token.micro.precision, r.token.micro.recall, r.entity_strict.micro.f1);
    }
    Ok(())
}
