//! Measures the effect of the corpus transition prior on a trained model: test-set scores when
//! decoding with BIO constraints only, and with the tag-transition log-probabilities of the
//! training documents added.
//!
//! cargo run --release -p ner --example transition_prior -- MODEL_DIR TRAIN TEST

use corpus::{read_corpus, ReadOptions};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    anyhow::ensure!(args.len() == 3, "usage: transition_prior MODEL_DIR TRAIN TEST");
    let read = |p: &PathBuf| read_corpus(p, None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (train, test) = (read(&args[1])?, read(&args[2])?);
    let mut model = ner::Model::load(&args[0])?;
    for with in [false, true] {
        model.transitions = with.then(|| model.labels.transition_log_probs(&train));
        let pred = model.predict(&test)?;
        let r = eval::evaluate(&test, &pred).map_err(anyhow::Error::msg)?;
        println!(
            "transition prior {:>3}: token F1 {:.4}, entity-strict P/R/F1 {:.4}/{:.4}/{:.4}, span-merged F1 {:.4}",
            if with { "on" } else { "off" },
            r.token.micro.f1,
            r.entity_strict.micro.precision,
            r.entity_strict.micro.recall,
            r.entity_strict.micro.f1,
            r.span_merged.micro.f1
        );
    }
    Ok(())
}
