//! Measures decoding choices of a trained stacked model: decoded alone and as a product with its
//! guide perceptron, the guide weight picked on dev (by strict or token F1), without and with an
//! `O` penalty picked on dev after it (`Model::tune_decoding`, as training does), and scored on
//! test; every setting tried is printed with its dev scores. BENCHMARKS.md › Lexical inputs and
//! stacking on the perceptron (the guide-weight tables) and › An `O` penalty picked on dev:
//!
//!     cargo run --release -p bench --bin ner_guide_weight -- MODEL_DIR --data ../shared/data/meddocan

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Guide weight and O penalty of a stacked NER model picked on dev, scored on test")]
struct Cli {
    /// The trained stacked model.
    model: PathBuf,
    /// The MEDDOCAN directory (holding dev/ and test/).
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (dir, root) = (cli.model, cli.data);
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (dev, test) = (read("dev")?, read("test")?);
    let mut model = ner::Model::load(&dir)?;
    for metric in [ner::Metric::Strict, ner::Metric::Token] {
        for o_penalty in [false, true] {
            let t0 = std::time::Instant::now();
            let tried = model.tune_decoding(&dev, o_penalty, |pred| {
                let r = eval::evaluate(&dev, pred).map_err(anyhow::Error::msg)?;
                let (token, strict) = (r.token.micro.f1, r.entity_strict.micro.f1);
                eprintln!("  dev token {token:.4} strict {strict:.4}");
                Ok(if matches!(metric, ner::Metric::Strict) { strict } else { token })
            })?;
            let tried: Vec<String> = tried.iter().map(|t| format!("w {:.4} O {:.3}: {:.4}", t.guide_weight, t.o_penalty, t.score)).collect();
            println!("by {metric:?} on dev, O penalty tuned {o_penalty}, in {:.0} s: {}", t0.elapsed().as_secs_f64(), tried.join(" | "));
            let r = eval::evaluate(&test, &model.predict(&test)?).map_err(anyhow::Error::msg)?;
            println!(
                "test, guide weight {}, O penalty {}: token {:.4} (P {:.4} R {:.4}), strict {:.4} (P {:.4} R {:.4})",
                model.settings.guide_weight,
                model.settings.o_penalty,
                r.token.micro.f1,
                r.token.micro.precision,
                r.token.micro.recall,
                r.entity_strict.micro.f1,
                r.entity_strict.micro.precision,
                r.entity_strict.micro.recall
            );
        }
    }
    Ok(())
}
