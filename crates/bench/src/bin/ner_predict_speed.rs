//! Prediction throughput and per-document latency of a saved transformer / stacked tagger (the
//! whole recipe: guide perceptron, encoder, decoding, boundary model), as `ner predict` and
//! `deid --model` run it. BENCHMARKS.md › "Encoder inference path (issue 29)":
//!
//! ```text
//! cargo run --release -p bench --bin ner_predict_speed -- --model M --input ../shared/data/meddocan/test
//! ```
//! First all documents in one call (documents/s), then each document in a call of its own, as a
//! single note arrives (p50 / p95 latency). `--path training` runs the encoder through the
//! training forward (eval mode) instead of the inference path, for comparison.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use corpus::{read_corpus, ReadOptions};
use ner::{ForwardPath, Model};

#[derive(Parser)]
#[command(about = "Documents/s and per-document latency of a saved tagger's prediction")]
struct Cli {
    /// A model directory written by `ner train`.
    #[arg(long)]
    model: PathBuf,
    /// Documents (BRAT directory, JSONL or text).
    #[arg(long)]
    input: PathBuf,
    /// `inference` (what prediction runs) or `training` (the training forward in eval mode).
    #[arg(long, default_value = "inference", value_parser = ["inference", "training"])]
    path: String,
    /// Time at most this many documents one at a time (0: skip).
    #[arg(long, default_value_t = usize::MAX)]
    singles: usize,
}

fn main() -> Result<()> {
    let a = Cli::parse();
    let path = if a.path == "training" { ForwardPath::Training } else { ForwardPath::Inference };
    let docs = read_corpus(&a.input, None, &ReadOptions::default())?;
    let t = Instant::now();
    let model = Model::load(&a.model)?;
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if path == ForwardPath::Inference {
        model.pack_for_inference()?;
    }
    let pack = t.elapsed().as_secs_f64();
    let words: usize = docs.iter().map(|d| corpus::tokenize(&d.text).len()).sum();
    // What the encoder sees: the prediction windows and their sub-words (guide tags aside).
    let windows = {
        let mut m = Model::load(&a.model)?;
        m.settings.guide = false;
        m.encode(&docs, m.settings.stride.clamp(1, m.settings.window), false)
    };
    let subwords: usize = windows.iter().map(|e| e.ids.len()).sum();
    let t = Instant::now();
    let pred = model.predict_via(&docs, path)?;
    let all = t.elapsed().as_secs_f64();
    let spans: usize = pred.iter().map(|d| d.spans.len()).sum();
    println!(
        "{} ({:?} path, {} threads): load {load:.2} s, packing {pack:.3} s; {} documents ({words} words, {} windows of {subwords} sub-words, {spans} spans) in one call: {all:.2} s = {:.1} documents/s, {:.0} words/s",
        a.model.display(),
        path,
        rayon::current_num_threads(),
        docs.len(),
        windows.len(),
        docs.len() as f64 / all,
        words as f64 / all
    );
    let n = a.singles.min(docs.len());
    if n > 0 {
        let mut lat = progress::Latencies::with_capacity(n);
        let t = Instant::now();
        for d in &docs[..n] {
            let t = Instant::now();
            let p = model.predict_via(std::slice::from_ref(d), path)?;
            lat.push(t.elapsed());
            std::hint::black_box(p);
        }
        let s = t.elapsed().as_secs_f64();
        let l = lat.summary().expect("n > 0 documents timed");
        println!(
            "{n} documents one call each in {s:.2} s: {:.1} documents/s, p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            n as f64 / s,
            l.p50_ms,
            l.p95_ms,
            l.max_ms
        );
    }
    Ok(())
}
