//! Measures domain quality of a small decoder: trained from scratch on a corpus's training text
//! within a time budget, its dev perplexity, and generated documents compared with real ones (mean
//! length, distinct-2, share carrying header fields), next to the word 4-gram baseline.
//! BENCHMARKS.md › Causal LM (issue 4), "Domain quality":
//!
//!     cargo run --release -p bench --bin lm_domain -- --train ../shared/data/meddocan/train \
//!         --dev ../shared/data/meddocan/dev --out /tmp/lm-domain --max-minutes 15 --prompts 100
//!
//! A rerun with the same `--out` resumes training (or skips it when it finished).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use corpus::{Document, Format, ReadOptions};
use lm::{GenerateConfig, Generator, Preset, SamplingConfig, TrainConfig};

const FIELDS: [&str; 6] = ["Nombre:", "Apellidos:", "Fecha de nacimiento:", "NHC:", "Fecha de Ingreso:", "Médico:"];

struct Stats {
    docs: usize,
    words: f64,
    chars: f64,
    distinct2: f64,
    fields: Vec<f64>,
}

fn stats(docs: &[Document]) -> Stats {
    let mut bigrams = HashSet::new();
    let (mut total2, mut words, mut chars) = (0usize, 0usize, 0usize);
    for d in docs {
        let chs: Vec<char> = d.text.chars().collect();
        let toks: Vec<String> = corpus::tokenize(&d.text).iter().map(|t| chs[t.start..t.end].iter().collect()).collect();
        words += toks.len();
        chars += chs.len();
        for w in toks.windows(2) {
            bigrams.insert((w[0].clone(), w[1].clone()));
            total2 += 1;
        }
    }
    let n = docs.len().max(1) as f64;
    Stats {
        docs: docs.len(),
        words: words as f64 / n,
        chars: chars as f64 / n,
        distinct2: bigrams.len() as f64 / total2.max(1) as f64,
        fields: FIELDS.iter().map(|f| docs.iter().filter(|d| d.text.contains(f)).count() as f64 / n).collect(),
    }
}

fn row(name: &str, s: &Stats) -> String {
    let f: Vec<String> = s.fields.iter().map(|x| format!("{:.0}%", 100.0 * x)).collect();
    format!("| {name} | {} | {:.0} | {:.0} | {:.3} | {} |", s.docs, s.words, s.chars, s.distinct2, f.join(" | "))
}

#[derive(Parser)]
#[command(about = "Train a small GPT-2 from scratch and the word 4-gram; compare their dev perplexity and samples")]
struct Cli {
    /// Training documents.
    #[arg(long)]
    train: PathBuf,
    /// Dev documents (perplexity; prompts from their first words).
    #[arg(long)]
    dev: PathBuf,
    /// Output directory (models and samples); a rerun resumes.
    #[arg(long)]
    out: PathBuf,
    /// Training time budget of the GPT-2.
    #[arg(long, default_value_t = 15.0)]
    max_minutes: f64,
    /// Dev documents whose first three words prompt one sample each.
    #[arg(long, default_value_t = 100)]
    prompts: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (train_path, dev_path, out) = (cli.train, cli.dev, cli.out);
    let (minutes, n_prompts) = (cli.max_minutes, cli.prompts);
    let train = corpus::read_corpus(&train_path, None, &ReadOptions::default())?;
    let dev = corpus::read_corpus(&dev_path, None, &ReadOptions::default())?;

    // A small GPT-2: 4 layers × 192, BPE 4000, blocks of 1024 tokens (documents are ~700 tokens;
    // learned positions must have been trained to generate whole documents).
    let mut cfg = TrainConfig {
        generator: "gpt2".into(),
        preset: Preset::Small,
        block_size: 1024,
        batch_size: 2,
        grad_accum: 2,
        epochs: 2,
        lr: 2e-3,
        warmup_ratio: 0.05,
        max_minutes: Some(minutes),
        seed: 1,
        ..Default::default()
    };
    (cfg.dims.hidden, cfg.dims.layers, cfg.dims.heads, cfg.dims.vocab_size, cfg.dims.max_positions) = (Some(192), Some(4), Some(4), Some(4000), Some(1024));
    let gpt_dir = out.join("gpt2");
    let t = Instant::now();
    let report = lm::train(&cfg, &train, &dev, &gpt_dir, &progress::Lines)?;
    let train_secs = t.elapsed().as_secs_f64();
    println!("trained {} steps in {:.1} min ({:.0} tokens/s), finished: {}", report.steps, train_secs / 60.0, report.tokens_per_sec, report.finished);
    for e in &report.epochs {
        println!("  epoch {}{}: train loss {:.3}, dev perplexity {:.2}", e.epoch, if e.complete { "" } else { " (partial)" }, e.train_loss, e.dev_perplexity);
    }

    let ngram_dir = out.join("ngram");
    let ngram_report = lm::train(&TrainConfig { generator: "ngram".into(), ..Default::default() }, &train, &dev, &ngram_dir, &progress::Silent)?;

    let prompts = lm::prompts_from_docs(&dev[..n_prompts.min(dev.len())], 3);
    let gen_cfg = GenerateConfig {
        samples_per_prompt: 1,
        max_new_tokens: 1000,
        sampling: SamplingConfig { temperature: 1.0, top_k: 0, top_p: 0.95 },
        seed: 7,
        batch_size: 16,
        ..Default::default()
    };
    let t = Instant::now();
    let gpt_docs = Generator::load(&gpt_dir)?.generate(&prompts, &gen_cfg)?;
    let gen_secs = t.elapsed().as_secs_f64();
    let ngram_docs = Generator::load(&ngram_dir)?.generate(&prompts, &GenerateConfig { max_new_tokens: 1000, ..gen_cfg.clone() })?;
    corpus::write_corpus(&out.join("gpt2_samples.jsonl"), Some(Format::Jsonl), &gpt_docs)?;
    corpus::write_corpus(&out.join("ngram_samples.jsonl"), Some(Format::Jsonl), &ngram_docs)?;

    println!();
    println!("dev perplexity: gpt2 {:.2} per BPE token (vocab 4000); word 4-gram {:.1} per word", report.best_dev_perplexity, ngram_report.best_dev_perplexity);
    println!("generation: {} documents in {:.0} s", gpt_docs.len(), gen_secs);
    println!();
    println!("| documents | n | words | chars | distinct-2 | {} |", FIELDS.join(" | "));
    println!("|---|---|---|---|---|{}", "---|".repeat(FIELDS.len()));
    println!("{}", row("real (dev)", &stats(&dev)));
    println!("{}", row("gpt2 from scratch", &stats(&gpt_docs)));
    println!("{}", row("word 4-gram", &stats(&ngram_docs)));
    println!();
    for d in gpt_docs.iter().take(2) {
        let head: String = d.text.chars().take(400).collect();
        println!("--- {} (first 400 chars) ---\n{head}\n", d.id);
    }
    Ok(())
}
