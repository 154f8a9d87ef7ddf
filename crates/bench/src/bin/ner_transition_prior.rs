//! Measures the effect of the corpus transition prior on a trained model: test-set scores when
//! decoding with BIO constraints only, and with the tag-transition log-probabilities of the
//! training documents added. BENCHMARKS.md › Transition prior in NER decoding (issue 3):
//!
//!     cargo run --release -p bench --bin ner_transition_prior -- --model MODEL_DIR \
//!         --train ../shared/data/meddocan/train --test ../shared/data/meddocan/test

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Test scores of a NER model decoded without and with the training corpus's tag-transition prior")]
struct Cli {
    /// The trained model.
    #[arg(long)]
    model: PathBuf,
    /// Training documents (the transition counts).
    #[arg(long)]
    train: PathBuf,
    /// Test documents (scored).
    #[arg(long)]
    test: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let read = |p: &PathBuf| read_corpus(p, None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (train, test) = (read(&cli.train)?, read(&cli.test)?);
    let mut model = ner::Model::load(&cli.model)?;
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
