//! Experiment: a stacked perceptron's out-of-fold tags of MEDDOCAN train (each document tagged by
//! a second stage that did not see it) and the kept tagger's tags of dev, written as JSONL, for
//! studying and training what is stacked on the tagger (e.g. the span-boundary model).
//! `plain` instead writes a plain tagger's jackknifed tags of train (`train_plain_oof.jsonl`);
//! `tokens`, every document's word tokens (`tokens.jsonl`, character offsets).
//!
//! cargo run --release -p perceptron --example oof -- ../shared/data/meddocan SEED OUT_DIR [plain|tokens]

use corpus::{read_corpus, ReadOptions};
use perceptron::{train_stacked_with_out_of_fold, PerceptronConfig};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let arg = |i: usize| std::env::args().nth(i);
    let root = PathBuf::from(arg(1).unwrap_or_else(|| "../shared/data/meddocan".into()));
    let seed: u64 = arg(2).map_or(42, |e| e.parse().expect("SEED is a number"));
    let out = PathBuf::from(arg(3).expect("OUT_DIR"));
    std::fs::create_dir_all(&out)?;
    let read = |s: &str| read_corpus(&root.join(s), None, &ReadOptions::default()).map_err(anyhow::Error::msg);
    let (train, dev) = (read("train")?, read("dev")?);
    if arg(4).as_deref() == Some("tokens") {
        // Only the word tokens (character offsets) of every document, one JSON line each.
        let mut lines = String::new();
        for d in train.iter().chain(&dev).chain(&read("test")?) {
            let t: Vec<[usize; 2]> = corpus::tokenize(&d.text).iter().map(|t| [t.start, t.end]).collect();
            lines += &serde_json::json!({"id": d.id, "tokens": t}).to_string();
            lines.push('\n');
        }
        std::fs::write(out.join("tokens.jsonl"), lines)?;
        return Ok(());
    }
    if arg(4).as_deref() == Some("plain") {
        // The plain (unstacked) jackknife: each train document tagged by a tagger trained on the
        // other 4 folds (what a stacked model's inputs are).
        let cfg = PerceptronConfig { epochs: 20, seed, ..Default::default() };
        let oof = perceptron::jackknife(&cfg, 5, &train, &[], |p, d| p.predict(std::slice::from_ref(d)).remove(0))?;
        corpus::write_corpus(&out.join("train_plain_oof.jsonl"), None, &oof).map_err(anyhow::Error::msg)?;
        return Ok(());
    }
    let cfg = PerceptronConfig { epochs: 20, stack_folds: 5, seed, ..Default::default() };
    let (model, _, oof) = train_stacked_with_out_of_fold(&cfg, 5, &train, &dev)?;
    corpus::write_corpus(&out.join("train_oof.jsonl"), None, &oof).map_err(anyhow::Error::msg)?;
    corpus::write_corpus(&out.join("dev.jsonl"), None, &model.predict(&dev)).map_err(anyhow::Error::msg)?;
    model.save(&out.join("guide"))?;
    let r = eval::evaluate(&train, &oof).map_err(anyhow::Error::msg)?;
    println!("train out-of-fold: token {:.4} strict {:.4}", r.token.micro.f1, r.entity_strict.micro.f1);
    Ok(())
}
