//! Measures what a span-boundary model adds to a trained stacked model: one is added to a copy
//! (`ner::add_boundaries`: learned from the guide's jackknifed tags of train, recomputed as the
//! run made them from its `training.json`; kept if dev does not fall), and test is scored without
//! and with it. With `--tune-o-penalty`, the copy first gets an `O` penalty picked on dev (for
//! models trained before it). BENCHMARKS.md › Span boundaries (issue 3, session 14), the test
//! table of the six saved models:
//!
//!     cargo run --release -p bench --bin ner_boundaries -- MODEL_DIR COPY_DIR --data ../shared/data/meddocan

use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use std::path::{Path, PathBuf};

fn copy_model(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to.join(ner::GUIDE_DIR))?;
    for entry in std::fs::read_dir(from)? {
        let p = entry?.path();
        // Any boundary model the source has is left behind: the copy learns its own.
        if p.is_file() && p.file_name() != Some(std::ffi::OsStr::new(perceptron::BOUNDARY_FILE)) {
            std::fs::copy(&p, to.join(p.file_name().expect("a file name")))?;
        }
    }
    for entry in std::fs::read_dir(from.join(ner::GUIDE_DIR))? {
        let p = entry?.path();
        std::fs::copy(&p, to.join(ner::GUIDE_DIR).join(p.file_name().expect("a file name")))?;
    }
    Ok(())
}

#[derive(Parser)]
#[command(about = "Add a span-boundary model to a copy of a trained stacked model; score test without and with it")]
struct Cli {
    /// The trained stacked model (left untouched).
    model: PathBuf,
    /// Where the copy goes (it gets the boundary model).
    copy: PathBuf,
    /// The MEDDOCAN directory (holding train/, dev/, test/).
    #[arg(long, default_value = "../shared/data/meddocan")]
    data: PathBuf,
    /// First pick an `O` penalty on dev for the copy (models trained before it).
    #[arg(long, env = "TUNE_O_PENALTY", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    tune_o_penalty: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (from, to, root) = (cli.model, cli.copy, cli.data);
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (train, dev, test) = (read("train")?, read("dev")?, read("test")?);
    let training: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(from.join("training.json"))?)?;
    let cfg: ner::TrainConfig = serde_json::from_value(training["config"].clone())?;
    copy_model(&from, &to)?;
    if cli.tune_o_penalty {
        // A model trained before the O penalty: pick it on dev as training now does (after the
        // guide weight, by the run's metric), and save the copy with it.
        let mut model = ner::Model::load(&to)?;
        model.tune_decoding(&dev, true, |pred| {
            let r = eval::evaluate(&dev, pred).map_err(anyhow::Error::msg)?;
            Ok(match cfg.select_metric {
                ner::Metric::Strict => r.entity_strict.micro.f1,
                ner::Metric::Token => r.token.micro.f1,
            })
        })?;
        println!("O penalty picked on dev: {} (guide weight {})", model.settings.o_penalty, model.settings.guide_weight);
        model.save(&to)?;
    }
    let t0 = std::time::Instant::now();
    let outcome = ner::add_boundaries(&cfg, &train, &dev, &to)?;
    println!("{outcome:?} in {:.0} s", t0.elapsed().as_secs_f64());
    // Test without the boundary model is the copy's own decoding (with its O penalty, if picked).
    let mut without = ner::Model::load(&to)?;
    without.boundaries = None;
    for (name, model) in [("without", without), ("with", ner::Model::load(&to)?)] {
        let r = eval::evaluate(&test, &model.predict(&test)?).map_err(anyhow::Error::msg)?;
        println!(
            "test {name} boundaries (has them: {}): token {:.4} (P {:.4} R {:.4}), strict {:.4} (P {:.4} R {:.4}), merged {:.4}",
            model.boundaries.is_some(),
            r.token.micro.f1,
            r.token.micro.precision,
            r.token.micro.recall,
            r.entity_strict.micro.f1,
            r.entity_strict.micro.precision,
            r.entity_strict.micro.recall,
            r.span_merged.micro.f1,
        );
    }
    Ok(())
}
