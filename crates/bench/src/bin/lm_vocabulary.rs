//! `generation.vocabulary = "corpus"` measured on a real generator: how much probability the
//! model puts outside the tokens of its training text, and how much faster decoding gets.
//!
//!     cargo run --release -p bench --bin lm_vocabulary -- GENERATOR_DIR TRAIN DEV [--docs 20] [--batch 20] [--new 640]
//!
//! - vocabulary: distinct token ids of TRAIN (any corpus format) under the generator's tokenizer,
//!   and the share of DEV's tokens outside them (real unseen text);
//! - mass: for the first `--docs` DEV documents, teacher-forced (first 512 tokens), the model's
//!   probability outside the vocabulary at every position (mean, 99th percentile, max) and the
//!   share of positions where it exceeds 1 − top-p (0.05), where the nucleus could differ;
//! - speed: new tokens/s of `--batch` samples × `--new` tokens (stop tokens cleared) from a DEV
//!   prompt at bf16, whole vocabulary vs restricted, alternated twice.
//!
//! Prints counts and probabilities only, never text.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Tensor, D};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Probability outside the training text's tokens, and decoding speed with the output layer cut to them")]
struct Cli {
    /// The generator (a model or LoRA directory).
    model: PathBuf,
    /// The generator's training corpus.
    train: PathBuf,
    /// Real held-out documents.
    dev: PathBuf,
    #[arg(long, default_value_t = 20)]
    docs: usize,
    #[arg(long, default_value_t = 20)]
    batch: usize,
    #[arg(long, default_value_t = 640)]
    new: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let read = |p: &PathBuf| corpus::read_corpus(p, None, &corpus::ReadOptions::default()).with_context(|| p.display().to_string());
    let (train, dev) = (read(&cli.train)?, read(&cli.dev)?);
    let mut generator = lm::Generator::load(&cli.model)?;
    let ids = generator.vocabulary_of(&train)?;
    let lm::Generator::Decoder(g) = &mut generator else { anyhow::bail!("{}: an n-gram model", cli.model.display()) };
    let vocab = g.model.config.vocab_size();
    let mut keep = vec![false; vocab];
    for &i in &ids {
        keep[i as usize] = true;
    }
    let (mut dev_tokens, mut dev_out) = (0usize, 0usize);
    for d in &dev {
        for t in g.tokenizer.encode(&d.text)? {
            dev_tokens += 1;
            dev_out += !keep[t as usize] as usize;
        }
    }
    println!(
        "vocabulary: {} of {vocab} tokens ({:.1}%) in {} training documents; dev tokens outside: {dev_out} of {dev_tokens} ({:.3}%)",
        ids.len(),
        100.0 * ids.len() as f64 / vocab as f64,
        train.len(),
        100.0 * dev_out as f64 / dev_tokens as f64
    );

    // Teacher-forced probability outside the vocabulary.
    let outside: Vec<u32> = (0..vocab as u32).filter(|&i| !keep[i as usize]).collect();
    let dev_cpu = g.model.params.device().clone();
    let outside_t = Tensor::new(outside.as_slice(), &dev_cpu)?;
    let mut mass: Vec<f32> = Vec::new();
    for d in dev.iter().take(cli.docs) {
        let mut seq = g.prompt_ids("")?;
        seq.extend(g.tokenizer.encode(&d.text)?);
        seq.truncate(512);
        let x = Tensor::new(seq.as_slice(), &dev_cpu)?.unsqueeze(0)?;
        let logits = g.model.forward_logits(&x, &mut nn::Mode::Eval)?.squeeze(0)?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        let out: Vec<f32> = probs.index_select(&outside_t, 1)?.sum(1)?.to_vec1()?;
        mass.extend(out);
    }
    mass.sort_by(|a, b| a.total_cmp(b));
    let mean = mass.iter().map(|&x| x as f64).sum::<f64>() / mass.len() as f64;
    let over = mass.iter().filter(|&&x| x > 0.05).count();
    println!(
        "mass outside, {} positions of {} dev documents: mean {mean:.2e}, p99 {:.2e}, max {:.2e}; above 0.05 at {over} ({:.2}%)",
        mass.len(),
        cli.docs.min(dev.len()),
        mass[mass.len() * 99 / 100],
        mass[mass.len() - 1],
        100.0 * over as f64 / mass.len() as f64
    );

    // Speed, alternated: whole vocabulary, restricted, whole, restricted.
    g.set_precision(lm::Precision::Bf16)?;
    g.stop.clear();
    let prompt = g.prompt_ids(&lm::first_words(&dev[0].text, 3))?;
    let seqs: Vec<(&[u32], u64)> = (0..cli.batch).map(|i| (prompt.as_slice(), i as u64)).collect();
    let sampling = lm::SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 };
    let all: Vec<u32> = (0..vocab as u32).collect();
    for round in 0..4 {
        // The whole vocabulary through the same path: the output layer's every row.
        let restricted = round % 2 == 1;
        g.restrict_vocabulary(if restricted { &ids } else { &all })?;
        let t = Instant::now();
        let out = g.generate_ids(&seqs, cli.new, &sampling)?;
        let secs = t.elapsed().as_secs_f64();
        let n: usize = out.iter().map(|o| o.len()).sum();
        println!(
            "{}: batch {}: {n} new tokens in {secs:.1} s = {:.1} new tokens/s",
            if restricted { "restricted" } else { "whole vocabulary" },
            cli.batch,
            n as f64 / secs
        );
    }
    Ok(())
}
