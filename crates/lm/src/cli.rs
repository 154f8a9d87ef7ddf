//! clap arguments and entry points of `synthdeid lm {train, generate, perplexity}`. The binary
//! only adds a subcommand variant holding these `Args` and calls the `run_*` function.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use corpus::{Document, Format, ReadOptions};

use crate::config::{GenerateConfig, Preset, TrainConfig};
use crate::prompts::prompts_from_docs;
use crate::sampling::SamplingConfig;
use crate::Generator;

fn read_docs(path: &Path) -> Result<Vec<Document>> {
    corpus::read_corpus(path, None, &ReadOptions::default()).with_context(|| format!("reading {}", path.display()))
}

/// `synthdeid lm train`: domain-adapt a generator.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Training corpus (BRAT directory, JSONL, or text directory).
    #[arg(long)]
    pub train: PathBuf,
    /// Development corpus (perplexity each epoch; the best epoch is kept).
    #[arg(long)]
    pub dev: PathBuf,
    /// Output model directory (HF layout; a checkpoint inside allows resuming).
    #[arg(long)]
    pub out: PathBuf,
    /// gpt2 or llama (transformer decoders), or ngram (word 4-gram baseline).
    #[arg(long, default_value = "gpt2")]
    pub generator: String,
    /// Size preset of a model trained from scratch.
    #[arg(long, value_enum, default_value = "small")]
    pub preset: Preset,
    /// Pretrained model to fine-tune (fully, or with LoRA when --lora-rank > 0): an HF directory or a GGUF file / directory.
    #[arg(long)]
    pub init: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout: f64,
    /// Comma-separated module names (default: c_attn for GPT-2, q_proj,v_proj for Llama).
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Stop after this many minutes (saving a checkpoint; run again to resume).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub block_size: usize,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.05)]
    pub warmup_ratio: f64,
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long)]
    pub vocab_size: Option<usize>,
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub kv_heads: Option<usize>,
    #[arg(long)]
    pub ffn: Option<usize>,
    #[arg(long)]
    pub max_positions: Option<usize>,
    #[arg(long)]
    pub dropout: Option<f64>,
    /// n of the n-gram baseline.
    #[arg(long, default_value_t = 4)]
    pub ngram_order: usize,
    #[arg(long)]
    pub no_progress: bool,
}

impl TrainArgs {
    pub fn to_config(&self) -> TrainConfig {
        let mut c = TrainConfig {
            generator: self.generator.clone(),
            preset: self.preset,
            init: self.init.clone(),
            epochs: self.epochs,
            max_minutes: self.max_minutes,
            seed: self.seed,
            block_size: self.block_size,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            warmup_ratio: self.warmup_ratio,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            progress: !self.no_progress,
            ..Default::default()
        };
        c.lora.rank = self.lora_rank;
        c.lora.alpha = self.lora_alpha;
        c.lora.dropout = self.lora_dropout;
        c.lora.target_modules = self.lora_targets.clone();
        c.ngram.order = self.ngram_order;
        let d = &mut c.dims;
        (d.vocab_size, d.hidden, d.layers, d.heads, d.kv_heads, d.ffn, d.max_positions, d.dropout) =
            (self.vocab_size, self.hidden, self.layers, self.heads, self.kv_heads, self.ffn, self.max_positions, self.dropout);
        c
    }
}

pub fn run_train(args: &TrainArgs) -> Result<()> {
    let train = read_docs(&args.train)?;
    let dev = read_docs(&args.dev)?;
    let report = crate::train(&args.to_config(), &train, &dev, &args.out)?;
    println!("best dev perplexity: {:.4}", report.best_dev_perplexity);
    if !report.finished {
        println!("stopped by --max-minutes after {} steps; run the same command again to resume", report.steps);
    }
    Ok(())
}

/// `synthdeid lm generate`: sample synthetic documents from prompts.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Model directory written by `lm train`, a local HF GPT-2 / Llama / Mistral / Qwen2 / Gemma 3 directory, or a GGUF file (or a directory holding one, as `models fetch` leaves it).
    #[arg(long)]
    pub model: PathBuf,
    /// Corpus whose documents' first words are the prompts.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Output: a `.jsonl` file, else a directory of `.txt` files.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub prompt_words: usize,
    #[arg(long, default_value_t = 1)]
    pub samples_per_prompt: usize,
    /// New subword tokens per sample (words for the n-gram baseline).
    #[arg(long, default_value_t = 512)]
    pub max_new_tokens: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f64,
    /// 0: no top-k cut.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// 0: greedy.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    #[arg(long)]
    pub no_progress: bool,
}

impl GenerateArgs {
    pub fn to_config(&self) -> GenerateConfig {
        GenerateConfig {
            prompt_words: self.prompt_words,
            samples_per_prompt: self.samples_per_prompt,
            max_new_tokens: self.max_new_tokens,
            sampling: SamplingConfig { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p },
            seed: self.seed,
            batch_size: self.batch_size,
            progress: !self.no_progress,
        }
    }
}

/// Writes documents as JSONL (`.jsonl` path) or as a text directory.
pub fn write_docs(path: &Path, docs: &[Document]) -> Result<()> {
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    corpus::write_corpus(path, if jsonl { Some(Format::Jsonl) } else { Some(Format::Text) }, docs)
        .with_context(|| format!("writing {}", path.display()))
}

pub fn run_generate(args: &GenerateArgs) -> Result<()> {
    let cfg = args.to_config();
    let generator = Generator::load(&args.model)?;
    let prompts = prompts_from_docs(&read_docs(&args.prompts)?, cfg.prompt_words);
    let t = std::time::Instant::now();
    let docs = generator.generate(&prompts, &cfg)?;
    write_docs(&args.out, &docs)?;
    eprintln!("{} documents from {} prompts in {:.1}s -> {}", docs.len(), prompts.len(), t.elapsed().as_secs_f64(), args.out.display());
    Ok(())
}

/// `synthdeid lm perplexity`.
/// `synthdeid lm convert`: a GGUF checkpoint as an HF directory.
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// GGUF file, or a directory holding one (as `models fetch` leaves it).
    #[arg(long)]
    pub model: PathBuf,
    /// Output HF directory: config.json, model.safetensors (f32), tokenizer.json.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_convert(args: &ConvertArgs) -> Result<()> {
    let file = crate::gguf::find(&args.model)?.with_context(|| format!("{}: no .gguf file there", args.model.display()))?;
    crate::gguf::write_hf_dir(&file, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct PerplexityArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Corpus to score.
    #[arg(long)]
    pub input: PathBuf,
}

pub fn run_perplexity(args: &PerplexityArgs) -> Result<()> {
    let p = crate::perplexity_report(&args.model, &read_docs(&args.input)?)?;
    println!("perplexity: {:.4}", p.per_token);
    println!("perplexity per word: {:.4} ({} tokens, {} words)", p.per_word, p.tokens, p.words);
    Ok(())
}
